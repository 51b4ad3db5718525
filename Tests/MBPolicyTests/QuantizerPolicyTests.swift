import MBCore
import MBPolicy
import Testing

/// `int:` and `palette:`: the baseline quantizers as policy storage keys.
@Suite struct QuantizerPolicyTests {
    @Test func shortAndLongFormsParse() throws {
        let text = """
            version: 1
            rules:
              - match: {position: first}
                int: 4
              - match: {op: Gemm}
                int: {bits: 3, clip: mse}
                scale_type: float16
              - match: {depthwise: true}
                palette: 3
                calibrate: false
            default:
              palette: {bits: 2, channels: 32}
            """
        let result = Policy.parse(text: text, file: "p.txt")
        #expect(result.diagnostics.isEmpty, "\(result.diagnostics)")
        let p = try #require(result.policy)
        #expect(p.rules[0].settings.storage == .quantize(QuantizationSpec(scheme: .linear, bits: 4)))
        #expect(p.rules[1].settings.storage == .quantize(QuantizationSpec(scheme: .linear, bits: 3, clip: .mse)))
        #expect(p.rules[1].settings.action == .quantize(WeightDecision.Quantization(spec: QuantizationSpec(scheme: .linear, bits: 3, clip: .mse),
                                                                                     calibrate: true, scaleType: .float16)))
        #expect(p.rules[2].settings.action == .quantize(WeightDecision.Quantization(spec: QuantizationSpec(scheme: .palette, bits: 3), calibrate: false)))
        #expect(p.rules[2].settings.action.calibrates == false)
        #expect(p.defaultSettings?.storage == .quantize(QuantizationSpec(scheme: .palette, bits: 2, channels: 32)))
        #expect(QuantizationSpec(scheme: .palette, bits: 2, channels: 32).description == "palette2 per 32 channels")
        #expect(QuantizationSpec(scheme: .linear, bits: 4, clip: .mse).description == "int4 clip mse")
    }

    @Test(arguments: [
        ("version: 1\ndefault: {int: 1}\n", ["2:16: int bits must be from 2 to 8, got 1"]),
        ("version: 1\ndefault: {palette: 9}\n", ["2:20: palette bits must be from 1 to 8, got 9"]),
        ("version: 1\ndefault: {palette: {bits: 2, channels: 0}}\n", ["2:40: channels must be at least 1, got 0"]),
        ("version: 1\ndefault: {palette: {channels: 4}}\n", ["2:20: palette needs 'bits:', e.g. palette: {bits: 2, channels: 32}"]),
        ("version: 1\ndefault: {int: {bits: 4, clip: max}}\n", ["2:32: unknown clip 'max'; expected one of: none, mse"]),
        ("version: 1\ndefault: {int: {bits: 4, channels: 2}}\n", ["2:26: unknown key 'channels'; expected one of: bits, clip"]),
        ("version: 1\ndefault: {int: 4, scale: channel}\n", ["2:19: 'scale' has no effect with 'int': the tensor is quantized, not binarized"]),
        ("version: 1\ndefault: {palette: 2, refit: true}\n", ["2:23: 'refit' has no effect with 'palette': the tensor is quantized, not binarized"]),
        ("version: 1\ndefault: {int: 4, bits: 2}\n", ["2:19: 'bits' conflicts with 'int' at 2:11; a default states one of mix, bits, average, keep, int, palette"]),
    ])
    func mistakesAreReported(text: String, expected: [String]) {
        let result = Policy.parse(text: text, file: "p.txt")
        let got = result.diagnostics.map { "\($0.position.line):\($0.position.column): \($0.message)" }
        #expect(got == expected, "\(text)")
        #expect(result.policy == nil)
    }
}
