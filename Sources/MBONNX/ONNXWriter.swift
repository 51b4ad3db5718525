import CONNXProto
import MBCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes `ONNXModel` values as `.onnx` bytes through protobuf-c, streamed to the file.
public struct ONNXWriter: Sendable {
    /// protobuf-c stores message lengths in 32 bits and silently truncates past 2 GiB.
    public static let maxMessageBytes = (1 << 31) - 1

    public init() {}

    /// The exact encoded size of `model`.
    public func encodedSize(_ model: ONNXModel) -> Int {
        let encoder = ProtobufCEncoder()
        let tree = encoder.model(model)
        return withExtendedLifetime(model) {
            tree.withMemoryRebound(to: ProtobufCMessage.self, capacity: 1) { protobuf_c_message_get_packed_size($0) }
        }
    }

    /// Writes `model` to `path` atomically: a temporary file beside it, renamed into place when
    /// complete. Nothing is left behind on failure.
    public func write(_ model: ONNXModel, to path: String) throws(ONNXError) {
        let encoder = ProtobufCEncoder()
        defer { encoder.release() }
        let tree = encoder.model(model)
        let size = withExtendedLifetime(model) {
            tree.withMemoryRebound(to: ProtobufCMessage.self, capacity: 1) { protobuf_c_message_get_packed_size($0) }
        }
        guard size <= Self.maxMessageBytes else {
            throw ONNXError(.exportTooLarge, file: path,
                            "the model would encode to \(size) bytes; protobuf models must stay under 2 GiB. Keep large weights as external data")
        }
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw ONNXError(.writeFailed, file: path, "cannot create \(temporary): \(String(cString: strerror(errno)))")
        }
        var written: UInt64 = 0
        let status = withExtendedLifetime(model) {
            tree.withMemoryRebound(to: ProtobufCMessage.self, capacity: 1) { mb_pack_to_fd($0, fd, &written) }
        }
        let closeFailed = close(fd) != 0
        guard status == 0, !closeFailed, written == UInt64(size) else {
            unlink(temporary)
            let reason = status != 0 ? String(cString: strerror(status)) : "short write (\(written) of \(size) bytes)"
            throw ONNXError(.writeFailed, file: path, "cannot write: \(reason)")
        }
        guard rename(temporary, path) == 0 else {
            let e = errno
            unlink(temporary)
            throw ONNXError(.writeFailed, file: path, "cannot rename \(temporary) into place: \(String(cString: strerror(e)))")
        }
    }

    /// Encodes to memory (for tests and small models).
    public func encode(_ model: ONNXModel) throws(ONNXError) -> [UInt8] {
        let size = encodedSize(model)
        guard size <= Self.maxMessageBytes else {
            throw ONNXError(.exportTooLarge, file: "<memory>", "the model would encode to \(size) bytes; protobuf models must stay under 2 GiB")
        }
        let encoder = ProtobufCEncoder()
        defer { encoder.release() }
        let tree = encoder.model(model)
        return withExtendedLifetime(model) {
            tree.withMemoryRebound(to: ProtobufCMessage.self, capacity: 1) { msg -> [UInt8] in
                let size = protobuf_c_message_get_packed_size(msg)
                guard size <= Self.maxMessageBytes else { return [] }
                var out = [UInt8](repeating: 0, count: size)
                out.withUnsafeMutableBufferPointer { _ = protobuf_c_message_pack(msg, $0.baseAddress) }
                return out
            }
        }
    }
}
