import Yams

/// What parsing a policy file gives: the policy when there are no errors, and every diagnostic
/// (errors and warnings) in file order either way.
public struct PolicyParseResult: Sendable {
    public var policy: Policy?
    public var diagnostics: [PolicyDiagnostic]

    public var errors: [PolicyDiagnostic] { diagnostics.filter { $0.severity == .error } }
    public var warnings: [PolicyDiagnostic] { diagnostics.filter { $0.severity == .warning } }
}

extension Policy {
    /// Parses and validates a policy. `file` names the source in diagnostics.
    public static func parse(bytes: [UInt8], file: String) -> PolicyParseResult {
        PolicyParser.parse(bytes: bytes, file: file)
    }

    public static func parse(text: String, file: String) -> PolicyParseResult {
        PolicyParser.parse(bytes: Array(text.utf8), file: file)
    }

    /// Parses, throwing every problem when there is any error. Warnings are returned by `parse`.
    public init(text: String, file: String) throws(PolicyError) {
        let result = Policy.parse(text: text, file: file)
        guard let policy = result.policy else { throw PolicyError(diagnostics: result.diagnostics) }
        self = policy
    }
}

/// The three passes: text checks, YAML composition, then the schema (keys, types, ranges, and
/// rules that contradict themselves). Each pass collects every problem it can see; a later pass
/// runs only when the earlier ones left something to look at.
enum PolicyParser {
    static func parse(bytes: [UInt8], file: String) -> PolicyParseResult {
        let textCheck = checkText(bytes, file: file)
        guard let text = textCheck.text else { return PolicyParseResult(policy: nil, diagnostics: textCheck.diagnostics) }

        let composed = compose(text, file: file)
        var diagnostics = textCheck.diagnostics
        if composed.failed {
            // After patched-over tabs a syntax error is most likely their consequence.
            if !textCheck.patched { diagnostics += composed.diagnostics }
            return PolicyParseResult(policy: nil, diagnostics: sorted(diagnostics))
        }
        diagnostics += composed.diagnostics
        guard let root = composed.root else {
            diagnostics.append(PolicyDiagnostic(file: file, position: SourcePosition(line: 1, column: 1),
                                                message: "file has only comments and blank lines; a policy starts with 'version: \(Policy.supportedVersion)'"))
            return PolicyParseResult(policy: nil, diagnostics: sorted(diagnostics))
        }

        var schema = SchemaReader(file: file, ignoredKeys: composed.ignoredKeys)
        let policy = schema.policy(root, text: String(decoding: bytes, as: UTF8.self))
        diagnostics += schema.diagnostics
        let all = sorted(diagnostics)
        let hasErrors = all.contains { $0.severity == .error }
        return PolicyParseResult(policy: hasErrors ? nil : policy, diagnostics: all)
    }

    /// File order; at one position errors before warnings. Stable for equal keys.
    static func sorted(_ d: [PolicyDiagnostic]) -> [PolicyDiagnostic] {
        d.enumerated().sorted { a, b in
            if a.element.position != b.element.position { return a.element.position < b.element.position }
            if a.element.severity != b.element.severity { return a.element.severity == .error }
            return a.offset < b.offset
        }.map(\.element)
    }
}
