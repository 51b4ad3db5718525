import MBCore

/// `.npy` reader. Whatever parses must survive conversion to floats and re-encode to an array
/// that parses back equal.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNPY(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: data, count: size))
    guard let array = try? NPY.parse(bytes, file: "fuzz.npy") else { return 0 }
    precondition(array.floatValues().count == array.elementCount)
    let again = try? NPY.parse(NPY.encode(array), file: "re-encoded.npy")
    precondition(again == array, "re-encoding \(array.elementType.name)\(array.shape) does not parse back equal")
    return 0
}

// SwiftPM links executables with `main` aliased to `<module>_main`; hand libFuzzer's driver
// the test function from there (LLVMFuzzerRunDriver is libFuzzer's entry for custom mains).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ test: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@_cdecl("FuzzNPY_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzNPY)
}
