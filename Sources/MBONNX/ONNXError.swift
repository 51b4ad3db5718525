/// Everything that can go wrong reading or writing an `.onnx` file. `description` is the one
/// line a user sees: the file, the place inside it, and the problem.
public struct ONNXError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: String, Sendable {
        case fileNotFound
        case unreadable
        case tooLarge
        /// A resource limit of `ONNXReader.Options` was reached (nodes, nesting, attribute
        /// values, tensor elements); raise it there if the model is genuine.
        case limitExceeded
        case malformed
        case notAModel
        case tensorData
        /// Valid ONNX that the graph IR cannot hold (an element or attribute type it lacks).
        case unsupported
        case externalData
        case exportTooLarge
        case writeFailed
    }

    public var kind: Kind
    /// The file the problem is in.
    public var file: String
    /// Where in the file (a message path, a byte offset, a tensor), when known.
    public var place: String?
    public var message: String

    public init(_ kind: Kind, file: String, place: String? = nil, _ message: String) {
        self.kind = kind
        self.file = file
        self.place = place
        self.message = message
    }

    public var description: String {
        if let place { return "\(file): \(place): \(message)" }
        return "\(file): \(message)"
    }
}
