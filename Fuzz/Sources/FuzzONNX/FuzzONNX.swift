import MBConvert
import MBCore
import MBONNX

/// ONNX importer: bytes → WireCheck + protobuf-c → Swift values → IR lowering → weight discovery
/// (folding plans) → constant folding. Every input must end in a value or a thrown error.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzONNX(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    guard let model = try? ONNXReader(options: FuzzLimits.reader).decode(bytes, file: "fuzz.onnx") else { return 0 }
    guard let discovery = try? WeightDiscovery(onnx: model, file: "fuzz.onnx", limits: FuzzLimits.folding) else { return 0 }
    _ = try? ConstantFolding.fold(discovery.graph, limits: FuzzLimits.folding)
    return 0
}

/// Limits well under libFuzzer's 2 GB RSS cap, so a refused allocation is an error, not an OOM.
enum FuzzLimits {
    static var reader: ONNXReader.Options {
        var o = ONNXReader.Options()
        o.maxTensorElements = 1 << 22
        return o
    }
    static let folding = ConstantFolding.Limits(maxBytes: 1 << 24)
}

// SwiftPM links executables with `main` aliased to `<module>_main`; hand libFuzzer's driver
// the test function from there (LLVMFuzzerRunDriver is libFuzzer's entry for custom mains).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ test: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@_cdecl("FuzzONNX_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzONNX)
}
