import Yams

/// Reading typed values out of Yams nodes, reporting every mismatch at the node's position.
/// Types follow YAML's own resolution: `2` is an integer, `"2"` is a string, `yes`/`true` are
/// booleans; a quoted number where a number belongs is a type error, not silently converted.
struct SchemaReader {
    let file: String
    /// Repeated keys already reported by the composer.
    let ignoredKeys: Set<SourcePosition>
    var diagnostics: [PolicyDiagnostic] = []

    init(file: String, ignoredKeys: Set<SourcePosition>) {
        self.file = file
        self.ignoredKeys = ignoredKeys
    }

    struct Entry {
        var key: String
        var keyNode: Node
        var value: Node
        var position: SourcePosition
    }

    mutating func error(_ at: SourcePosition, _ message: String) {
        diagnostics.append(PolicyDiagnostic(file: file, position: at, message: message))
    }

    mutating func warning(_ at: SourcePosition, _ message: String) {
        diagnostics.append(PolicyDiagnostic(file: file, position: at, severity: .warning, message: message))
    }

    static func position(_ node: Node) -> SourcePosition {
        node.mark.map { SourcePosition(line: $0.line, column: $0.column) } ?? SourcePosition(line: 1, column: 1)
    }

    /// The resolved tag (int, float, bool, str, null...) of a node.
    static func tagName(_ node: Node) -> Tag.Name { Tag.Name(rawValue: node.tag.rawValue) }

    static func isNull(_ node: Node) -> Bool {
        if case .scalar(let s) = node { return s.style == .plain && SchemaReader.tagName(node) == .null }
        return false
    }

    /// How a value reads in an error: the scalar as written, or its kind.
    static func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let s): return isNull(node) ? "nothing" : "'\(truncated(s.string))'"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    static func truncated(_ s: String) -> String {
        let oneLine = s.replacingOccurrences(of: "\n", with: "\\n")
        return oneLine.count > 40 ? String(oneLine.prefix(40)) + "..." : oneLine
    }

    /// The entries of a mapping, or nil (with an error naming `what`) when `node` is not one.
    /// Non-scalar keys and blanked-out repeated keys are left out.
    mutating func entries(_ node: Node, _ what: String) -> [Entry]? {
        guard case .mapping(let mapping) = node else {
            error(Self.position(node), "\(what), got \(Self.describe(node))")
            return nil
        }
        var out: [Entry] = []
        for (k, v) in mapping {
            let at = Self.position(k)
            if ignoredKeys.contains(at) { continue }
            guard case .scalar(let s) = k, !Self.isNull(k) else {
                error(at, "keys must be plain words, got \(Self.describe(k))")
                continue
            }
            out.append(Entry(key: s.string, keyNode: k, value: v, position: at))
        }
        return out
    }

    /// Reports keys outside `allowed`, with a hint: the closest allowed key, or where the key
    /// belongs when it is valid elsewhere (`elsewhere[key]`).
    mutating func checkKeys(_ entries: [Entry], allowed: [String], elsewhere: [String: String] = [:]) {
        for e in entries where !allowed.contains(e.key) {
            if let hint = elsewhere[e.key] {
                error(e.position, "'\(e.key)' \(hint)")
            } else if let near = closestMatch(to: e.key, in: allowed) {
                error(e.position, "unknown key '\(e.key)'; did you mean '\(near)'?")
            } else {
                error(e.position, "unknown key '\(e.key)'; expected one of: \(allowed.joined(separator: ", "))")
            }
        }
    }

    /// An integer value (YAML int), or nil after reporting `what`.
    mutating func int(_ node: Node, _ what: String) -> Int? {
        if case .scalar(let s) = node, SchemaReader.tagName(node) == .int, let v = Int.construct(from: s) { return v }
        error(Self.position(node), "\(what), got \(Self.describe(node))")
        return nil
    }

    /// A number (YAML int or float), or nil after reporting `what`.
    mutating func number(_ node: Node, _ what: String) -> Double? {
        if case .scalar(let s) = node, SchemaReader.tagName(node) == .int || SchemaReader.tagName(node) == .float {
            if SchemaReader.tagName(node) == .int, let v = Int.construct(from: s) { return Double(v) }
            if let v = Double.construct(from: s) { return v }
        }
        error(Self.position(node), "\(what), got \(Self.describe(node))")
        return nil
    }

    /// `refit: true | false | alternating` (a YAML boolean, or the word).
    mutating func refitMode(_ node: Node) -> RefitMode? {
        if case .scalar(let s) = node, SchemaReader.tagName(node) == .bool, let v = Bool.construct(from: s) { return v ? .leastSquares : .off }
        if case .scalar(let s) = node, s.string == RefitMode.alternating.rawValue { return .alternating }
        error(Self.position(node), "refit must be true, false or alternating, got \(Self.describe(node))")
        return nil
    }

    mutating func bool(_ node: Node, _ what: String) -> Bool? {
        if case .scalar(let s) = node, SchemaReader.tagName(node) == .bool, let v = Bool.construct(from: s) { return v }
        error(Self.position(node), "\(what), got \(Self.describe(node))")
        return nil
    }

    /// Any non-empty scalar as text (names may look like numbers: `name: 123`).
    mutating func text(_ node: Node, _ what: String) -> String? {
        if case .scalar(let s) = node, !Self.isNull(node), !s.string.isEmpty { return s.string }
        error(Self.position(node), "\(what), got \(Self.describe(node))")
        return nil
    }

    /// One scalar or a non-empty list of scalars, each read by `read` (which reports its own
    /// problems with a scalar).
    mutating func oneOrMany<T>(_ node: Node, _ what: String, _ read: (inout SchemaReader, Node) -> T?) -> [T]? {
        var items = [node]
        if case .sequence(let seq) = node {
            guard !Array(seq).isEmpty else {
                error(Self.position(node), "\(what), got an empty list")
                return nil
            }
            items = Array(seq)
        }
        var out: [T] = []
        var ok = true
        for item in items {
            guard case .scalar = item else {
                error(Self.position(item), "\(what), got \(Self.describe(item))" + (items.count > 1 || item != node ? " in the list" : ""))
                ok = false
                continue
            }
            if let v = read(&self, item) { out.append(v) } else { ok = false }
        }
        return ok ? out : nil
    }

    /// One of an enum's raw values; unknown names get a "did you mean".
    /// `key` names the setting in type errors, `noun` the kind of value in "unknown ..." errors.
    mutating func choice<E: RawRepresentable & CaseIterable>(_ node: Node, _ key: String, noun: String? = nil, _: E.Type) -> E? where E.RawValue == String {
        choice(node, key, noun: noun, E.allCases.map { ($0.rawValue, $0) })
    }

    /// One of `table`'s values, by its name in the file.
    mutating func choice<T>(_ node: Node, _ key: String, noun: String? = nil, _ table: [(name: String, value: T)]) -> T? {
        let names = table.map(\.name)
        guard case .scalar(let s) = node, !Self.isNull(node) else {
            error(Self.position(node), "\(key) must be one of \(names.joined(separator: ", ")), got \(Self.describe(node))")
            return nil
        }
        if let v = table.first(where: { $0.name == s.string })?.value { return v }
        let hint = closestMatch(to: s.string, in: names).map { "; did you mean '\($0)'?" }
            ?? "; expected one of: \(names.joined(separator: ", "))"
        error(Self.position(node), "unknown \(noun ?? key) '\(Self.truncated(s.string))'\(hint)")
        return nil
    }
}
