import MBCore
import MBFormat
import MBRuntime

/// `.mbm` reader plus runtime load: bytes → MBMFile.parse (every count, offset and CRC checked)
/// → MBModel(ir:) (graph checks, op compilation, load-time folding of constant subgraphs) → one
/// run on zero inputs when every input has a small fixed shape.
///
/// Mutated bytes almost never keep their CRC-32s, so each input is tried twice: as it is (the
/// checksum paths), and with every CRC recomputed (everything behind them).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMBM(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: data, count: size))
    load(bytes)
    if let fixed = withChecksumsFixed(bytes), fixed != bytes { load(fixed) }
    return 0
}

func load(_ bytes: [UInt8]) {
    guard let file = try? MBMFile.parse(bytes, name: "fuzz.mbm") else { return }
    // Well under libFuzzer's 2 GB RSS cap: a refused allocation is an error, not an OOM.
    guard let model = try? MBModel(ir: file.model, options: MBModel.Options(maxTensorBytes: 1 << 24)) else { return }
    var inputs: [String: MBTensor] = [:]
    for info in model.inputs {
        guard let dims = info.shape else { return }
        var shape: [Int] = []
        for d in dims {
            guard case .fixed(let n) = d, n >= 0, n <= 4096 else { return }
            shape.append(Int(n))
        }
        guard let count = elementCount(of: shape), count <= 1 << 16 else { return }
        switch info.elementType ?? .float {
        case .float, .float16: inputs[info.name] = MBTensor(shape: shape, floats: [Float](repeating: 0.5, count: count))
        case .int64: inputs[info.name] = MBTensor(shape: shape, int64s: [Int64](repeating: 1, count: count))
        case .int32: inputs[info.name] = MBTensor(shape: shape, int32s: [Int32](repeating: 1, count: count))
        case .bool: inputs[info.name] = MBTensor(shape: shape, bools: [Bool](repeating: true, count: count))
        default: return
        }
    }
    _ = try? model.makeSession(MBSession.Options(maxTensorBytes: 1 << 24)).run(inputs)
}

/// The bytes with the header, section table and section CRC-32s recomputed (and the declared
/// length set to the real one), when the header and table are in range; nil otherwise.
func withChecksumsFixed(_ input: [UInt8]) -> [UInt8]? {
    var b = input
    guard b.count >= 64, Array(b[0..<8]) == MBMLayout.magic else { return nil }
    func u32(_ o: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[o + $1]) << (8 * UInt32($1)) } }
    func u64(_ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[o + $1]) << (8 * UInt64($1)) } }
    func put32(_ v: UInt32, _ o: Int) { for i in 0..<4 { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) } }
    func put64(_ v: UInt64, _ o: Int) { for i in 0..<8 { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) } }
    put64(UInt64(b.count), 16)
    let tableOffset = u64(24), count = UInt64(u32(32))
    guard tableOffset <= UInt64(b.count), count <= 1024, tableOffset + count * 32 <= UInt64(b.count) else { return nil }
    let table = Int(tableOffset)
    for i in 0..<Int(count) {
        let e = table + i * 32
        let offset = u64(e + 8), length = u64(e + 16)
        guard offset <= UInt64(b.count), length <= UInt64(b.count) - offset else { continue }
        put32(CRC32.checksum(Array(b[Int(offset)..<Int(offset + length)])), e + 24)
    }
    put32(CRC32.checksum(Array(b[table..<(table + Int(count) * 32)])), 36)
    put32(CRC32.checksum(Array(b[0..<60])), 60)
    return b
}

// SwiftPM links executables with `main` aliased to `<module>_main`; hand libFuzzer's driver
// the test function from there (LLVMFuzzerRunDriver is libFuzzer's entry for custom mains).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ test: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@_cdecl("FuzzMBM_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzMBM)
}
