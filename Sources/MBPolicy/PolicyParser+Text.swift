/// Checks on the raw bytes before YAML sees them: size, UTF-8, binary data, tabs. libyaml would
/// reject most of these too, but with messages like "found character that cannot start any
/// token"; ours say what is wrong and where.
extension PolicyParser {
    /// Policy files are small; anything bigger is almost certainly the wrong file.
    static let maxFileBytes = 1 << 20

    /// Deepest `[`/`{` nesting accepted. libyaml stops at 1000, but Yams builds its tree
    /// recursively; a policy never needs more than a handful.
    static let maxFlowDepth = 64

    struct TextCheck {
        /// The text to hand to YAML (leading tabs replaced by spaces, one for one, so every
        /// column stays where it was).
        var text: String?
        var diagnostics: [PolicyDiagnostic] = []
        /// True when a problem (tabs) was patched over: a later YAML syntax error is then
        /// probably a consequence and is not reported.
        var patched = false
    }

    static func checkText(_ bytes: [UInt8], file: String) -> TextCheck {
        var check = TextCheck()
        func fail(_ line: Int, _ column: Int, _ message: String) -> TextCheck {
            check.diagnostics.append(PolicyDiagnostic(file: file, position: SourcePosition(line: line, column: column), message: message))
            check.text = nil
            return check
        }
        if bytes.count > maxFileBytes {
            return fail(1, 1, "file is \(bytes.count) bytes; a policy file may be at most \(maxFileBytes) bytes (is this the right file?)")
        }
        if bytes.isEmpty {
            return fail(1, 1, "file is empty; a policy starts with 'version: \(Policy.supportedVersion)'")
        }

        // Decode by hand so the first bad byte can be located.
        var scalars = String.UnicodeScalarView()
        var line = 1, column = 1
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var offset = 0
        decoding: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let s):
                if let problem = disallowed(s) {
                    return fail(line, column, "\(problem) (is this a binary file?)")
                }
                scalars.append(s)
                offset += UTF8.width(s)
                if s == "\n" {
                    line += 1
                    column = 1
                } else {
                    column += 1
                }
            case .emptyInput:
                break decoding
            case .error:
                let byte = offset < bytes.count ? bytes[offset] : 0
                return fail(line, column, "not UTF-8 text: invalid byte 0x\(hex(byte)) at offset \(offset) (is this a binary file?)")
            }
        }

        var text = String(scalars)
        let (tabs, patchedText) = replaceIndentationTabs(text)
        for (l, c) in tabs {
            check.diagnostics.append(PolicyDiagnostic(file: file, position: SourcePosition(line: l, column: c),
                                                      message: "tab in indentation; YAML indents with spaces only"))
        }
        if !tabs.isEmpty {
            text = patchedText
            check.patched = true
        }
        if let (l, c) = firstTooDeepBracket(text) {
            return fail(l, c, "brackets nested deeper than \(maxFlowDepth) levels")
        }
        check.text = text
        return check
    }

    /// What YAML 1.1 allows in a stream: tab, newlines and printable characters. Returns a
    /// description of the first disallowed scalar or nil.
    static func disallowed(_ s: Unicode.Scalar) -> String? {
        let v = s.value
        let ok = v == 0x09 || v == 0x0A || v == 0x0D || (0x20...0x7E).contains(v) || v == 0x85
            || (0xA0...0xD7FF).contains(v) || (0xE000...0xFFFD).contains(v) || (0x10000...0x10FFFF).contains(v)
        if ok { return nil }
        return "control character U+\(String(repeating: "0", count: max(0, 4 - String(v, radix: 16).count)) + String(v, radix: 16, uppercase: true)) is not allowed in a policy file"
    }

    static func hex(_ b: UInt8) -> String {
        let s = String(b, radix: 16, uppercase: true)
        return s.count == 1 ? "0" + s : s
    }

    /// Every tab in a line's leading whitespace (1-based line and column), and the text with
    /// those tabs turned into spaces.
    static func replaceIndentationTabs(_ text: String) -> ([(Int, Int)], String) {
        var found: [(Int, Int)] = []
        var out = String.UnicodeScalarView()
        var line = 1, column = 1
        var leading = true
        for s in text.unicodeScalars {
            if s == "\n" {
                out.append(s)
                line += 1
                column = 1
                leading = true
                continue
            }
            if leading, s == "\t" {
                found.append((line, column))
                out.append(" ")
            } else {
                // A sequence dash ("- ") keeps us in the indentation: "-\tkey" is a tab indent too.
                if !(s == " " || (s == "-" && leading)) { leading = false }
                out.append(s)
            }
            column += 1
        }
        return (found, String(out))
    }

    /// Position of the first `[` or `{` deeper than `maxFlowDepth`, ignoring comments and quoted
    /// text (approximately: good enough to stop pathological input, never wrong for real files
    /// since those stay far below the limit).
    static func firstTooDeepBracket(_ text: String) -> (Int, Int)? {
        var depth = 0
        var line = 1, column = 1
        var quote: Unicode.Scalar?
        var comment = false
        var previous: Unicode.Scalar = "\n"
        for s in text.unicodeScalars {
            defer {
                previous = s
                if s == "\n" {
                    line += 1
                    column = 1
                    comment = false
                } else {
                    column += 1
                }
            }
            if comment { continue }
            if let q = quote {
                if s == q { quote = nil }
                continue
            }
            switch s {
            case "#" where previous == " " || previous == "\n" || previous == "\t": comment = true
            case "\"", "'": if depth > 0 { quote = s }
            case "[", "{":
                depth += 1
                if depth > maxFlowDepth { return (line, column) }
            case "]", "}": depth = max(0, depth - 1)
            default: break
            }
        }
        return nil
    }
}
