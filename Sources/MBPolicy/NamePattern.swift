/// A name matcher: a glob (`*`, `?`, `[abc]`, `[!a-z]`, `\` escapes) or, written `re:...`, a
/// regular expression (Swift Regex syntax). Both must match the WHOLE name, so `conv*` and
/// `re:conv.*` mean the same; write `*conv*` or `re:.*conv.*` for "contains".
public struct NamePattern: Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        case glob([GlobToken])
        case regex(CompiledRegex)
    }

    public enum GlobToken: Sendable, Equatable {
        case literal(Character)
        case anyOne
        case anyRun
        /// `[...]`: ranges of characters, negated by a leading `!` or `^`.
        case set(ranges: [ClosedRange<Character>], negated: Bool)
    }

    /// Swift's Regex is not Sendable; this box only ever reads it.
    public final class CompiledRegex: @unchecked Sendable {
        let regex: Regex<AnyRegexOutput>
        init(_ regex: Regex<AnyRegexOutput>) { self.regex = regex }
    }

    /// The pattern as written (with `re:` for regexes).
    public let source: String
    public let kind: Kind

    /// Parses `source`; throws a message (without position) when the glob or regex is invalid.
    public init(_ source: String) throws(PatternProblem) {
        self.source = source
        if source.hasPrefix("re:") {
            let body = String(source.dropFirst(3))
            guard !body.isEmpty else { throw PatternProblem(message: "regex after 're:' is empty") }
            do {
                kind = .regex(CompiledRegex(try Regex(body)))
            } catch {
                throw PatternProblem(message: "invalid regex '\(body)': \(error)")
            }
        } else {
            kind = .glob(try Self.parseGlob(source))
        }
    }

    public var description: String { source }

    public func matches(_ name: String) -> Bool {
        switch kind {
        case .regex(let r):
            return (try? r.regex.wholeMatch(in: name)) != nil
        case .glob(let tokens):
            return Self.globMatch(tokens[...], Array(name)[...])
        }
    }

    public struct PatternProblem: Error, Sendable {
        public var message: String
    }

    static func parseGlob(_ s: String) throws(PatternProblem) -> [GlobToken] {
        var tokens: [GlobToken] = []
        let chars = Array(s)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            switch c {
            case "*":
                // Runs of stars are one star; keeps matching linear in practice.
                if tokens.last != .anyRun { tokens.append(.anyRun) }
                i += 1
            case "?":
                tokens.append(.anyOne)
                i += 1
            case "\\":
                guard i + 1 < chars.count else { throw PatternProblem(message: "glob '\(s)' ends with a lone '\\'") }
                tokens.append(.literal(chars[i + 1]))
                i += 2
            case "[":
                var j = i + 1
                var negated = false
                if j < chars.count, chars[j] == "!" || chars[j] == "^" {
                    negated = true
                    j += 1
                }
                var ranges: [ClosedRange<Character>] = []
                var first = true
                // A `]` right after the opening bracket is a literal, as in shell globs.
                while j < chars.count, chars[j] != "]" || first {
                    first = false
                    var lo = chars[j]
                    if lo == "\\", j + 1 < chars.count {
                        j += 1
                        lo = chars[j]
                    }
                    if j + 2 < chars.count, chars[j + 1] == "-", chars[j + 2] != "]" {
                        let hi = chars[j + 2]
                        guard lo <= hi else { throw PatternProblem(message: "glob '\(s)': range '\(lo)-\(hi)' is reversed") }
                        ranges.append(lo...hi)
                        j += 3
                    } else {
                        ranges.append(lo...lo)
                        j += 1
                    }
                }
                guard j < chars.count else { throw PatternProblem(message: "glob '\(s)' has an unclosed '['") }
                tokens.append(.set(ranges: ranges, negated: negated))
                i = j + 1
            default:
                tokens.append(.literal(c))
                i += 1
            }
        }
        return tokens
    }

    /// Iterative matching with one backtrack point per star (the classic wildcard algorithm):
    /// linear-ish, and no recursion, so no pattern can blow the stack.
    static func globMatch(_ pattern: ArraySlice<GlobToken>, _ name: ArraySlice<Character>) -> Bool {
        let p = Array(pattern), n = Array(name)
        var pi = 0, ni = 0
        var starP = -1, starN = 0
        while ni < n.count {
            if pi < p.count, p[pi] != .anyRun, tokenMatches(p[pi], n[ni]) {
                pi += 1
                ni += 1
            } else if pi < p.count, p[pi] == .anyRun {
                starP = pi
                starN = ni
                pi += 1
            } else if starP >= 0 {
                pi = starP + 1
                starN += 1
                ni = starN
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == .anyRun { pi += 1 }
        return pi == p.count
    }

    static func tokenMatches(_ t: GlobToken, _ c: Character) -> Bool {
        switch t {
        case .literal(let l): return l == c
        case .anyOne: return true
        case .anyRun: return true
        case .set(let ranges, let negated): return ranges.contains { $0.contains(c) } != negated
        }
    }
}
