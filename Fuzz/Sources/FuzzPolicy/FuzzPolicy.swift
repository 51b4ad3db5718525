import MBPolicy

/// Policy parser: text checks, YAML composition (Yams/libyaml), schema. Any bytes must give a
/// policy or diagnostics.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPolicy(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: data, count: size))
    let result = Policy.parse(bytes: bytes, file: "fuzz.txt")
    // A parse either yields a policy or at least one error, never both.
    precondition((result.policy == nil) == !result.errors.isEmpty, "policy and errors disagree: \(result.diagnostics)")
    return 0
}

// SwiftPM links executables with `main` aliased to `<module>_main`; hand libFuzzer's driver
// the test function from there (LLVMFuzzerRunDriver is libFuzzer's entry for custom mains).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ test: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@_cdecl("FuzzPolicy_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzPolicy)
}
