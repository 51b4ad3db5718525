/// The pipeline's one error (conversion, constant folding, policy check, calibration,
/// verification, export): what the user must fix, as one line (one per problem for policy
/// files, each FILE:LINE:COLUMN), and the library error behind it (`cause`: an ONNXError,
/// MBMError, NPY error, ...), so callers can tell causes apart without parsing the text.
/// `mbconvert` prints `description` after "mbconvert: error: " and exits with status 1.
public struct ConversionError: Error, Sendable, CustomStringConvertible {
    /// The problem, without its place when `node` names it.
    public var lines: [String]
    /// The library error behind it, when there is one.
    public var cause: (any Error)?
    /// The node whose constant subgraph could not be folded, when that is the problem.
    public var node: String?

    public init(_ line: String, cause: (any Error)? = nil) {
        lines = [line]
        self.cause = cause
    }

    /// Several problems reported at once (a policy's diagnostics).
    public init(lines: [String]) { self.lines = lines }

    /// A library error as it describes itself, kept as the cause.
    public init(_ cause: any Error) { self.init("\(cause)", cause: cause) }

    /// A node that constant folding cannot evaluate.
    public init(node: String, _ message: String) {
        lines = [message]
        self.node = node
    }

    public var message: String { lines.joined(separator: "\n") }
    public var description: String { (node.map { "node '\($0)': " } ?? "") + message }
}
