import Foundation
import MBConvert

/// `--report FILE.html` of a conversion or of `verify`: one self-contained page with the model
/// summary, where the bytes go, every layer (table and charts), the per-layer diagnostic and
/// outputs of `verify`, and the policy text. Only the parts given are drawn.
public enum HTMLReport {
    public struct Input: Sendable {
        public var conversion: ConversionReport?
        public var storage: StorageBreakdown?
        public var verification: Verify.Report?
        public init(conversion: ConversionReport? = nil, storage: StorageBreakdown? = nil, verification: Verify.Report? = nil) {
            self.conversion = conversion
            self.storage = storage
            self.verification = verification
        }
    }

    public static func render(_ input: Input) -> String {
        let model = input.conversion?.model ?? input.verification?.onnx ?? ""
        let file = input.conversion?.output ?? input.verification?.mbm ?? input.storage?.file ?? ""
        let name = (model as NSString).lastPathComponent
        var body = "<h1>\(HTML.escape(name)) → \(HTML.escape((file as NSString).lastPathComponent))</h1>\n"
        body += "<p class=\"note\">mbconvert \(HTML.escape(MBConvertInfo.version)) · \(input.verification == nil ? "conversion report" : "verification report") · \(HTML.escape(model)) → \(HTML.escape(file))</p>\n"
        body += ReportSections.summary(input)
        // A verification leads with its answers (outputs, which layer broke it), then the file.
        if let v = input.verification { body += ReportSections.verification(v) }
        if let storage = input.storage { body += ReportSections.sizes(storage, onnxBytes: input.conversion?.onnxBytes) }
        if let layers = input.conversion?.layers ?? input.storage?.layers, !layers.isEmpty {
            body += ReportSections.layers(ReportSections.withStoredBits(layers, input.storage), conversion: input.conversion)
        }
        if let w = input.conversion?.warnings, !w.isEmpty {
            body += "<h2>Warnings</h2><ul>" + w.map { "<li>\(HTML.escape($0))</li>" }.joined() + "</ul>\n"
        }
        if let policy = input.storage?.policyText {
            body += "<h2>Policy</h2>\n<pre>\(HTML.escape(policy))</pre>\n"
        }
        return HTML.page(title: "mbconvert report: \(name)", body: body)
    }

    /// Writes the page atomically (a temporary file, then a rename).
    public static func write(_ input: Input, to path: String) throws {
        do { try render(input).write(toFile: path, atomically: true, encoding: .utf8) } catch {
            throw ConversionError("\(path): cannot write the report (\(error.localizedDescription))")
        }
    }
}
