import Yams

/// YAML composition through Yams' node API (so every node keeps its line and column).
///
/// Yams refuses a mapping with a repeated key by throwing, which would hide every other problem
/// in the file. So on a duplicate we find the repeated key in the text, report it there, blank
/// it out with private-use characters of the same length (columns stay put), remember its
/// position so the schema pass skips it, and compose again.
extension PolicyParser {
    struct Composed {
        var root: Node?
        var diagnostics: [PolicyDiagnostic] = []
        /// Positions of repeated keys that were blanked out; their entries are ignored.
        var ignoredKeys: Set<SourcePosition> = []
        /// Composition failed (a syntax error): there is no tree to validate.
        var failed = false
    }

    /// At most this many repeated keys are reported (each costs one more parse).
    static let maxDuplicateRetries = 100

    static func compose(_ original: String, file: String) -> Composed {
        var result = Composed()
        var text = original
        var blanked = 0
        while true {
            do {
                result.root = try Yams.compose(yaml: text)
                return result
            } catch let YamlError.duplicatedKeysInMapping(duplicates, context) {
                let key = duplicates.sorted().first ?? ""
                let first = SourcePosition(line: context.mark.line, column: context.mark.column)
                guard blanked < maxDuplicateRetries, let (second, length) = findRepeatedKey(key, after: first, in: text) else {
                    result.diagnostics.append(PolicyDiagnostic(file: file, position: first, message: "duplicate key '\(key)'"))
                    result.failed = true
                    return result
                }
                result.diagnostics.append(PolicyDiagnostic(file: file, position: second,
                                                           message: "duplicate key '\(key)' (first at \(first))"))
                result.ignoredKeys.insert(second)
                text = blank(in: text, at: second, length: length, tag: blanked)
                blanked += 1
            } catch let error as YamlError {
                result.diagnostics.append(diagnostic(for: error, file: file))
                result.failed = true
                return result
            } catch {
                result.diagnostics.append(PolicyDiagnostic(file: file, position: SourcePosition(line: 1, column: 1),
                                                           message: "invalid YAML: \(error)"))
                result.failed = true
                return result
            }
        }
    }

    static func diagnostic(for error: YamlError, file: String) -> PolicyDiagnostic {
        func make(_ mark: Mark, _ context: YamlError.Context?, _ problem: String) -> PolicyDiagnostic {
            var message = "invalid YAML: \(problem)"
            if let context, context.mark.line != mark.line || context.mark.column != mark.column {
                message += " (\(context.text) at \(context.mark.line):\(context.mark.column))"
            }
            return PolicyDiagnostic(file: file, position: SourcePosition(line: mark.line, column: mark.column), message: message)
        }
        switch error {
        case let .scanner(context, problem, mark, _): return make(mark, context, problem)
        case let .parser(context, problem, mark, _): return make(mark, context, problem)
        case let .composer(context, problem, mark, _): return make(mark, context, problem)
        case let .reader(problem, _, _, _):
            return PolicyDiagnostic(file: file, position: SourcePosition(line: 1, column: 1), message: "invalid text: \(problem)")
        default:
            return PolicyDiagnostic(file: file, position: SourcePosition(line: 1, column: 1), message: "invalid YAML: \(error)")
        }
    }

    /// The next occurrence of mapping key `key` in the same mapping as the one at `first`, and the
    /// length of its token in scalars (quotes included). Block mappings: the next line whose
    /// content starts at the same column, before the mapping ends (content further left). Flow
    /// mappings: the next `, key:` at the same bracket depth.
    static func findRepeatedKey(_ key: String, after first: SourcePosition, in text: String) -> (SourcePosition, Int)? {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { Array($0.unicodeScalars) }
        // libyaml also breaks lines at a lone CR (and NEL, LS, PS), so its position may not name
        // a real place in these lines: then there is no second key to point at.
        guard first.line >= 1, first.line <= lines.count, first.column >= 1, first.column - 1 <= lines[first.line - 1].count else { return nil }
        let tokens = [key, "\"\(key)\"", "'\(key)'"].map { Array($0.unicodeScalars) }
        func keyToken(_ line: [Unicode.Scalar], at c: Int) -> Int? {
            for t in tokens where c + t.count <= line.count && Array(line[c..<(c + t.count)]) == t {
                var j = c + t.count
                while j < line.count, line[j] == " " { j += 1 }
                if j < line.count, line[j] == ":" { return t.count }
            }
            return nil
        }
        let firstLine = lines[first.line - 1]
        let c0 = first.column - 1
        var k = c0 - 1
        while k >= 0, firstLine[k] == " " { k -= 1 }
        let inFlow = k >= 0 && (firstLine[k] == "{" || firstLine[k] == ",")

        if !inFlow {
            for l in first.line..<lines.count {
                let line = lines[l]
                guard let start = line.firstIndex(where: { $0 != " " }), line[start] != "#" else { continue }
                if start < c0 { return nil }
                if start == c0, let length = keyToken(line, at: c0) { return (SourcePosition(line: l + 1, column: c0 + 1), length) }
            }
            return nil
        }

        var depth = 0
        var l = first.line - 1, c = c0 + 1
        var sawComma = false
        while l < lines.count {
            let line = lines[l]
            while c < line.count {
                let s = line[c]
                if depth == 0, sawComma, s != " " {
                    if let length = keyToken(line, at: c) { return (SourcePosition(line: l + 1, column: c + 1), length) }
                    sawComma = false
                }
                switch s {
                case "{", "[": depth += 1
                case "}", "]":
                    depth -= 1
                    if depth < 0 { return nil }
                case ",": if depth == 0 { sawComma = true }
                default: break
                }
                c += 1
            }
            l += 1
            c = 0
        }
        return nil
    }

    /// `text` with `length` scalars at `position` replaced by private-use characters unique to `tag`.
    static func blank(in text: String, at position: SourcePosition, length: Int, tag: Int) -> String {
        let filler = Unicode.Scalar(0xE000 + UInt32(tag % 6000))!
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { Array($0.unicodeScalars) }
        let l = position.line - 1, c = position.column - 1
        guard l >= 0, l < lines.count, c >= 0, c < lines[l].count else { return text }
        for i in c..<min(c + length, lines[l].count) { lines[l][i] = filler }
        return lines.map { String(String.UnicodeScalarView($0)) }.joined(separator: "\n")
    }
}
