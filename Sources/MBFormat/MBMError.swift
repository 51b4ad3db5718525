/// A problem with an `.mbm` file: which file, where in it, and what is wrong.
public struct MBMError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: String, Sendable {
        case unreadable, notMBM, newerVersion, truncated, corrupt, checksum, unsupported, invalid, writeFailed
        /// A resource limit of `MBMFile.Options` was reached; raise it there if the file is genuine.
        case limitExceeded
    }

    public var kind: Kind
    public var file: String
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
