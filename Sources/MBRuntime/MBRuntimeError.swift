import MBCore

/// Every failure of the runtime, with the node it happened in when there is one:
/// `node 'conv1' (Conv): input 'W': expected 4 dimensions, got 3`.
public struct MBRuntimeError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: String, Sendable {
        /// The graph is malformed (undefined value, duplicate output, bad subgraph).
        case invalidGraph
        /// An operator (or an operator form) the runtime does not implement.
        case unsupportedOperator
        /// An attribute is missing, of the wrong type or out of range.
        case invalidAttribute
        /// A run's inputs do not match the model (name, element type, shape).
        case invalidInput
        /// A node failed while running (shapes that do not fit, bad index values).
        case execution
        /// A resource limit was reached: a tensor larger than `maxTensorBytes` (MBModel.Options
        /// at load, MBSession.Options at run time), a shape whose element count overflows, or
        /// subgraphs nested deeper than `MBModel.Options.maxGraphDepth`.
        case limitExceeded
    }

    public var kind: Kind
    /// Name of the node (or `#index` for unnamed nodes), nil for model-level problems.
    public var node: String?
    public var opType: String?
    public var message: String

    public init(_ kind: Kind, node: String? = nil, opType: String? = nil, _ message: String) {
        self.kind = kind
        self.node = node
        self.opType = opType
        self.message = message
    }

    public var description: String {
        guard let node else { return message }
        return "node '\(node)' (\(opType ?? "?")): \(message)"
    }
}

/// What an operator throws; the session adds the node's name and kind.
struct OpError: Error {
    var kind: MBRuntimeError.Kind
    var message: String
    init(_ message: String, kind: MBRuntimeError.Kind = .execution) {
        self.message = message
        self.kind = kind
    }
}
