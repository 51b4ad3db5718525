/// One problem found in a policy file, at a line and column.
public struct PolicyDiagnostic: Sendable, Hashable, CustomStringConvertible {
    public enum Severity: String, Sendable, Hashable {
        case error, warning
    }

    public var file: String
    public var position: SourcePosition
    public var severity: Severity
    public var message: String

    public init(file: String, position: SourcePosition, severity: Severity = .error, message: String) {
        self.file = file
        self.position = position
        self.severity = severity
        self.message = message
    }

    /// `policy.txt:14:9: fraction for 3-bit must be in [0, 1], got 1.2`; warnings say so.
    public var description: String {
        "\(file):\(position.line):\(position.column): " + (severity == .warning ? "warning: " : "") + message
    }
}

/// Thrown when a policy file has errors: every problem found, in file order.
public struct PolicyError: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [PolicyDiagnostic]

    public init(diagnostics: [PolicyDiagnostic]) {
        self.diagnostics = diagnostics
    }

    public var errors: [PolicyDiagnostic] { diagnostics.filter { $0.severity == .error } }

    /// One line per problem.
    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}
