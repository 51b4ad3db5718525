import MBPolicy
import Testing

/// Every way to get a policy wrong that we know of, each with the exact diagnostics (position and
/// message) the parser must give. All problems of a file come at once, in file order.
@Suite struct BadPolicyTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var text: String
        /// "line:column: message", warnings prefixed "warning: ", in file order.
        var expected: [String]
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "empty file", text: "",
             expected: ["1:1: file is empty; a policy starts with 'version: 1'"]),
        Case(name: "only comments", text: "# nothing here\n\n   # still nothing\n",
             expected: ["1:1: file has only comments and blank lines; a policy starts with 'version: 1'"]),
        Case(name: "missing version", text: "default:\n  bits: 2\n",
             expected: ["1:1: missing 'version: 1'; every policy states its format version"]),
        Case(name: "unsupported version", text: "version: 2\ndefault: {bits: 2}\n",
             expected: ["1:10: unsupported policy version 2; this mbconvert reads version 1"]),
        Case(name: "version of the wrong type", text: "version: \"1\"\ndefault: {bits: 2}\n",
             expected: ["1:10: version must be an integer, got '1'"]),
        Case(name: "unknown top-level key with a hint", text: "version: 1\nrule:\n  - match: {op: Conv}\n    bits: 2\n",
             expected: ["2:1: unknown key 'rule'; did you mean 'rules'?"]),
        Case(name: "unknown key without a near match", text: "version: 1\ncolour: blue\ndefault: {bits: 2}\n",
             expected: ["2:1: unknown key 'colour'; expected one of: version, target, rules, default, images"]),
        Case(name: "unknown rule key", text: "version: 1\nrules:\n  - match: {op: Conv}\n    mxi: {1: 1}\n    bits: 2\n",
             expected: ["4:5: unknown key 'mxi'; did you mean 'mix'?"]),
        Case(name: "fraction above 1", text: "version: 1\ndefault:\n  mix: {1: 0.7, 2: 0.2, 3: 1.2}\n",
             expected: ["3:28: fraction for 3-bit must be in [0, 1], got 1.2"]),
        Case(name: "negative fraction", text: "version: 1\ndefault:\n  mix: {1: 1.1, 2: -0.1}\n",
             expected: ["3:12: fraction for 1-bit must be in [0, 1], got 1.1",
                        "3:20: fraction for 2-bit must be in [0, 1], got -0.1"]),
        Case(name: "fractions not summing to 1", text: "version: 1\ndefault:\n  mix: {1: 0.7, 2: 0.2}\n",
             expected: ["3:8: fractions must sum to 1 (within 1e-6), got 0.9"]),
        Case(name: "fractions off by more than 1e-6", text: "version: 1\ndefault:\n  mix:\n    1: 0.7\n    2: 0.2\n    3: 0.100002\n",
             expected: ["4:5: fractions must sum to 1 (within 1e-6), got 1.000002"]),
        Case(name: "bitwidth 0 in a mix", text: "version: 1\ndefault: {mix: {0: 0.5, 2: 0.5}}\n",
             expected: ["2:17: bitwidth must be from 1 to 8, got 0"]),
        Case(name: "bits 9", text: "version: 1\ndefault:\n  bits: 9\n",
             expected: ["3:9: bitwidth must be from 1 to 8, got 9"]),
        Case(name: "bits 0", text: "version: 1\nrules:\n  - match: {op: Gemm}\n    bits: 0\ndefault: {keep: float32}\n",
             expected: ["4:11: bitwidth must be from 1 to 8, got 0"]),
        Case(name: "bits of the wrong type", text: "version: 1\ndefault: {bits: two}\n",
             expected: ["2:17: bits must be an integer from 1 to 8, got 'two'"]),
        Case(name: "quoted fraction is a string", text: "version: 1\ndefault: {mix: {1: '0.5', 2: 0.5}}\n",
             expected: ["2:20: fraction for 1-bit must be a number, got '0.5'"]),
        Case(name: "mix key that is not a bitwidth", text: "version: 1\ndefault: {mix: {one: 1}}\n",
             expected: ["2:17: mix keys are bitwidths from 1 to 8, got 'one'"]),
        Case(name: "mix that is not a mapping", text: "version: 1\ndefault: {mix: [0.7, 0.3]}\n",
             expected: ["2:16: mix must map bitwidths to fractions, e.g. {1: 0.7, 2: 0.2, 3: 0.1}, got a list"]),
        Case(name: "empty mix", text: "version: 1\ndefault: {mix: {}}\n",
             expected: ["2:16: mix is empty; give at least one bitwidth, e.g. {1: 0.7, 2: 0.2, 3: 0.1}"]),
        Case(name: "same bitwidth spelled twice", text: "version: 1\ndefault: {mix: {1: 0.5, 01: 0.5}}\n",
             expected: ["2:25: bitwidth 1 appears twice in mix (first at 2:17)"]),
        Case(name: "average out of range", text: "version: 1\ndefault: {average: 0.5}\n",
             expected: ["2:20: average must be from 1 to 8 bits, got 0.5"]),
        Case(name: "unknown method with a hint", text: "version: 1\ndefault:\n  mix: {1: 0.7, 2: 0.3}\n  method: middleout\n",
             expected: ["4:11: unknown method 'middleout'; did you mean 'middle-out'?"]),
        Case(name: "unknown method without a near match", text: "version: 1\ndefault:\n  mix: {1: 0.7, 2: 0.3}\n  method: kmeans\n",
             expected: ["4:11: unknown method 'kmeans'; expected one of: middle-out, top-down, bottom-up, random, residual-middle-out, saliency"]),
        Case(name: "unknown scale", text: "version: 1\ndefault: {bits: 2, scale: layer}\n",
             expected: ["2:27: unknown scale 'layer'; expected one of: tensor, channel"]),
        Case(name: "refit that is not a boolean", text: "version: 1\ndefault: {bits: 2, refit: maybe}\n",
             expected: ["2:27: refit must be true, false or alternating, got 'maybe'"]),
        Case(name: "unknown keep type", text: "version: 1\ndefault: {keep: int8}\n",
             expected: ["2:17: unknown keep type 'int8'; expected one of: float32, float16"]),
        Case(name: "bad regex", text: "version: 1\nrules:\n  - match: {name: 're:conv(1'}\n    keep: float32\ndefault: {bits: 2}\n",
             expected: ["3:19: invalid regex 'conv(1': expected ')'"]),
        Case(name: "empty regex", text: "version: 1\nrules:\n  - match: {tensor: 're:'}\n    keep: float32\n",
             expected: ["3:21: regex after 're:' is empty"]),
        Case(name: "unclosed glob bracket", text: "version: 1\nrules:\n  - match: {tensor: 'conv[12'}\n    keep: float32\n",
             expected: ["3:21: glob 'conv[12' has an unclosed '['"]),
        Case(name: "duplicate keys, all reported", text: "version: 1\nrules:\n  - match: {op: Conv, op: Gemm}\n    bits: 2\n    bits: 3\ndefault: {bits: 2}\ndefault: {bits: 3}\n",
             expected: ["3:23: duplicate key 'op' (first at 3:13)",
                        "5:5: duplicate key 'bits' (first at 4:5)",
                        "7:1: duplicate key 'default' (first at 6:1)"]),
        Case(name: "tab indentation", text: "version: 1\ndefault:\n\tbits: 2\n\tscale: tensor\n",
             expected: ["3:1: tab in indentation; YAML indents with spaces only",
                        "4:1: tab in indentation; YAML indents with spaces only"]),
        Case(name: "YAML syntax error", text: "version: 1\nrules:\n  - match: {op: Conv\n    bits: 2\n",
             expected: ["4:9: invalid YAML: did not find expected ',' or '}' (while parsing a flow mapping at 3:12)"]),
        Case(name: "mix, bits, average and keep conflict", text: "version: 1\ndefault:\n  mix: {1: 1}\n  bits: 2\n  average: 1.5\n  keep: float16\n",
             expected: ["4:3: 'bits' conflicts with 'mix' at 3:3; a default states one of mix, bits, average, keep, int, palette",
                        "5:3: 'average' conflicts with 'mix' at 3:3; a default states one of mix, bits, average, keep, int, palette",
                        "6:3: 'keep' conflicts with 'mix' at 3:3; a default states one of mix, bits, average, keep, int, palette"]),
        Case(name: "binarization option with keep", text: "version: 1\ndefault: {keep: float16, scale: channel, method: top-down}\n",
             expected: ["2:26: 'scale' has no effect with 'keep': the tensor is not binarized",
                        "2:42: 'method' has no effect with 'keep': the tensor is not binarized"]),
        Case(name: "rule without storage", text: "version: 1\nrules:\n  - match: {op: Conv}\n    scale: channel\n",
             expected: ["3:5: rule states none of mix, bits, average, keep, int, palette (or add a whole-model 'target:' to spread bits)"]),
        Case(name: "rule without match", text: "version: 1\nrules:\n  - op: Conv\n    bits: 2\n",
             expected: ["3:5: 'op' is a condition; put it under 'match:'",
                        "3:5: rule has no 'match:'; use 'default:' for the weights no rule matches"]),
        Case(name: "setting inside match", text: "version: 1\nrules:\n  - match: {op: Conv, bits: 2}\n    keep: float32\n",
             expected: ["3:23: 'bits' is a setting, not a condition; write it beside 'match:'"]),
        Case(name: "empty match", text: "version: 1\nrules:\n  - match: {}\n    bits: 2\n",
             expected: ["3:5: match needs at least one condition (name, tensor, op, position, min_elements, max_elements, depthwise, kernel); use 'default:' for everything else"]),
        Case(name: "op in the wrong case", text: "version: 1\nrules:\n  - match: {op: [Conv, gemm]}\n    bits: 2\n",
             expected: ["3:24: unknown op 'gemm'; op types are case-sensitive: did you mean 'Gemm'?"]),
        Case(name: "bad position", text: "version: 1\nrules:\n  - match: {position: middle}\n    bits: 2\n",
             expected: ["3:23: unknown position 'middle'; expected one of: first, last"]),
        Case(name: "bad element bounds", text: "version: 1\nrules:\n  - match: {min_elements: -5}\n    bits: 2\n  - match: {min_elements: 100, max_elements: 10}\n    bits: 2\n",
             expected: ["3:27: min_elements must be a non-negative integer, got -5",
                        "5:46: max_elements 10 is below min_elements 100; the rule can never match"]),
        Case(name: "depthwise not a boolean", text: "version: 1\nrules:\n  - match: {depthwise: 1}\n    bits: 2\n",
             expected: ["3:24: depthwise must be true or false, got '1'"]),
        Case(name: "bad kernel", text: "version: 1\nrules:\n  - match: {kernel: 1by1}\n    bits: 2\n  - match: {kernel: [3, 0]}\n    bits: 2\n",
             expected: ["3:21: kernel must be spatial sizes such as 1x1, 3x3 or 3, got '1by1'",
                        "5:25: kernel must be spatial sizes such as 1x1, 3x3 or 3, got '0'"]),
        Case(name: "rules not a list", text: "version: 1\nrules:\n  match: {op: Conv}\n  bits: 2\n",
             expected: ["3:3: rules must be a list of rules, each starting with '- ', got a mapping"]),
        Case(name: "a rule that is not a mapping", text: "version: 1\nrules:\n  - Conv\n",
             expected: ["3:5: a rule must be a mapping with 'match:' and settings, got 'Conv'"]),
        Case(name: "policy that is a list", text: "- version: 1\n",
             expected: ["1:1: a policy is a mapping of keys (version, target, rules, default, images), got a list"]),
        Case(name: "setting at the top level", text: "version: 1\nbits: 2\n",
             expected: ["2:1: 'bits' is a setting; put it under 'default:' or in a rule"]),
        Case(name: "condition in default", text: "version: 1\ndefault: {op: Conv, bits: 2}\n",
             expected: ["2:11: 'op' is a condition; 'default' has none (it covers the weights no rule matches)"]),
        Case(name: "target out of range", text: "version: 1\ntarget: {average_bits: 3.5}\ndefault: {scale: channel}\n",
             expected: ["2:24: average_bits must be from 1 to 3 (max_bits), got 3.5"]),
        Case(name: "target without average_bits", text: "version: 1\ntarget: {max_bits: 4}\ndefault: {bits: 2}\n",
             expected: ["2:1: target needs 'average_bits', e.g. target: {average_bits: 1.6}"]),
        Case(name: "unknown target allocation", text: "version: 1\ntarget: {average_bits: 2, allocate: sensitive}\ndefault: {scale: channel}\n",
             expected: ["2:37: unknown allocate 'sensitive'; expected one of: weight-error, sensitivity"]),
        Case(name: "refit of an unknown kind", text: "version: 1\ndefault: {bits: 2, refit: alternate}\n",
             expected: ["2:27: refit must be true, false or alternating, got 'alternate'"]),
        Case(name: "damping of zero", text: "version: 1\ndefault: {bits: 2, fit: output, damping: 0}\n",
             expected: ["2:42: damping must be a positive finite number (a fraction of the mean diagonal of XᵀX), got 0"]),
        Case(name: "negative damping", text: "version: 1\ndefault: {bits: 2, fit: output, damping: -0.1}\n",
             expected: ["2:42: damping must be a positive finite number (a fraction of the mean diagonal of XᵀX), got -0.1"]),
        Case(name: "infinite damping", text: "version: 1\ndefault: {bits: 2, fit: output, damping: .inf}\n",
             expected: ["2:42: damping must be a positive finite number (a fraction of the mean diagonal of XᵀX), got .inf"]),
        Case(name: "NaN damping", text: "version: 1\ndefault: {bits: 2, fit: output, damping: .nan}\n",
             expected: ["2:42: damping must be a positive finite number (a fraction of the mean diagonal of XᵀX), got .nan"]),
        Case(name: "damping that is not a number", text: "version: 1\ndefault: {bits: 2, fit: output, damping: strong}\n",
             expected: ["2:42: damping must be a positive number (a fraction of the mean diagonal of XᵀX), e.g. damping: 0.1, got 'strong'"]),
        Case(name: "damping on a kept tensor", text: "version: 1\ndefault: {keep: float32, damping: 0.1}\n",
             expected: ["2:26: 'damping' has no effect with 'keep': the tensor is not binarized"]),
        Case(name: "saliency without an output fit", text: "version: 1\ndefault: {mix: {1: 0.7, 2: 0.3}, granularity: group:4, method: saliency}\n",
             expected: ["2:56: method: saliency ranks mask groups by the layer's output error on the calibration inputs; it needs 'fit: output' (or 'fit: output-gain') in the same default"]),
        Case(name: "saliency on a per-entry mask", text: "version: 1\ndefault: {mix: {1: 0.7, 2: 0.3}, fit: output, method: saliency}\n",
             expected: ["2:47: method: saliency chooses structured masks; add 'granularity: group:N' or 'granularity: channel' (per-entry masks use middle-out, top-down, bottom-up, random or residual-middle-out)"]),
        Case(name: "saliency misspelled", text: "version: 1\ndefault: {mix: {1: 0.7, 2: 0.3}, method: salency}\n",
             expected: ["2:42: unknown method 'salency'; did you mean 'saliency'?"]),
        Case(name: "saliency for activations", text: "version: 1\ndefault: {keep: float32, activations: {bits: 2, method: saliency}}\n",
             expected: ["2:57: unknown method 'saliency'; expected one of: middle-out, top-down, bottom-up, random, residual-middle-out"]),
        Case(name: "non-scalar key", text: "version: 1\n[a, b]: 1\n",
             expected: ["2:1: keys must be plain words, got a list"]),
        Case(name: "binary garbage", text: "\u{0}\u{1}ELF\u{2}",
             expected: ["1:1: control character U+0000 is not allowed in a policy file (is this a binary file?)"]),
        Case(name: "undefined alias", text: "version: 1\ndefault: *common\n",
             expected: ["2:10: invalid YAML: found undefined alias"]),
        Case(name: "brackets nested absurdly deep", text: "version: 1\nx: " + String(repeating: "[", count: 100) + "\n",
             expected: ["2:68: brackets nested deeper than 64 levels"]),
    ]

    @Test(arguments: cases)
    func reportsExactly(_ c: Case) {
        let result = Policy.parse(text: c.text, file: "policy.txt")
        let got = result.diagnostics.map { d in
            "\(d.position.line):\(d.position.column): " + (d.severity == .warning ? "warning: " : "") + d.message
        }
        #expect(got == c.expected, "\(c.name)")
        #expect(result.policy == nil, "\(c.name): a policy with errors must not be returned")
        // The one-line form names the file first.
        for d in result.diagnostics { #expect(d.description.hasPrefix("policy.txt:\(d.position.line):\(d.position.column): ")) }
    }

    @Test func atLeastFifteenCases() {
        #expect(Self.cases.count >= 15)
    }

    @Test func invalidUTF8IsLocated() {
        let bytes = Array("version: 1\ndefault: {bits: 2}\n# caf".utf8) + [0xC3, 0x28]
        let result = Policy.parse(bytes: bytes, file: "p.txt")
        #expect(result.diagnostics.map(\.description) == ["p.txt:3:6: not UTF-8 text: invalid byte 0xC3 at offset 35 (is this a binary file?)"])
    }

    @Test func tooLargeFileIsRefused() {
        let bytes = [UInt8](repeating: UInt8(ascii: "#"), count: (1 << 20) + 1)
        let result = Policy.parse(bytes: bytes, file: "p.txt")
        #expect(result.diagnostics.map(\.description) == ["p.txt:1:1: file is 1048577 bytes; a policy file may be at most 1048576 bytes (is this the right file?)"])
    }

    @Test func warningsDoNotStopAPolicy() throws {
        let result = Policy.parse(text: "version: 1\ndefault: {bits: 2, method: top-down}\n", file: "p.txt")
        #expect(result.diagnostics.map(\.description) == ["p.txt:2:20: warning: 'method' has no effect with 'bits': every entry gets the same bitwidth"])
        #expect(result.policy != nil)
        let target = Policy.parse(text: "version: 1\ntarget: {average_bits: 1.5}\ndefault: {bits: 2}\n", file: "p.txt")
        #expect(target.diagnostics.map(\.description) == ["p.txt:2:1: warning: target has no effect: every rule and the default state their own mix, bits, average or keep"])
        #expect(target.policy != nil)
    }

    /// The throwing initializer carries every diagnostic; its description is one line each.
    @Test func policyErrorListsEverything() {
        do {
            _ = try Policy(text: "version: 1\ndefault: {bits: 9, scale: layer}\n", file: "p.txt")
            Issue.record("expected an error")
        } catch {
            #expect(error.description == """
                p.txt:2:17: bitwidth must be from 1 to 8, got 9
                p.txt:2:27: unknown scale 'layer'; expected one of: tensor, channel
                """)
        }
    }
}
