import MBCore
import MBPolicy
import Testing

/// Which rule governs which tensor: every condition on its own, then first-match-wins and the
/// default, on a made-up model with the variety the shared models have.
@Suite struct MatchingTests {
    static func weight(_ name: String, node: String, op: String = "Conv", shape: [Int64], first: Bool = false,
                       last: Bool = false, depthwise: Bool = false) -> PolicySubject {
        PolicySubject(tensorName: name, consumers: [.init(name: node, opType: op)], shape: shape,
                      elementCount: Int(shape.reduce(1, *)), isFirst: first, isLast: last, isDepthwise: depthwise)
    }

    static let stem = weight("conv1.weight", node: "stem/conv", shape: [32, 3, 3, 3], first: true)
    static let dw = weight("block1.dw.weight", node: "block1/dw", shape: [32, 1, 3, 3], depthwise: true)
    static let pw = weight("block1.pw.weight", node: "block1/pw", shape: [64, 32, 1, 1])
    static let big = weight("block2.conv.weight", node: "block2/conv", shape: [128, 64, 3, 3])
    static let fc = weight("fc.weight", node: "", op: "Gemm", shape: [10, 128], last: true)
    static let bias = PolicySubject(tensorName: "fc.bias", consumers: [.init(name: "", opType: "Gemm")], shape: [10],
                                    elementCount: 10, isWeight: false)
    static let shared = PolicySubject(tensorName: "tied.weight", consumers: [.init(name: "enc", opType: "MatMul"), .init(name: "dec", opType: "Gemm")],
                                      shape: [16, 16], elementCount: 256)
    static let all = [stem, dw, pw, big, fc, bias, shared]

    /// The names of the subjects the single rule `match` selects.
    static func selected(_ match: String) throws -> [String] {
        let p = try Policy(text: "version: 1\nrules:\n  - match: \(match)\n    keep: float16\n", file: "m.txt")
        return all.filter { p.rules[0].match.matches($0) }.map(\.tensorName)
    }

    @Test func globs() throws {
        #expect(try Self.selected("{tensor: 'block1.*'}") == ["block1.dw.weight", "block1.pw.weight"])
        #expect(try Self.selected("{tensor: '*.weight'}") == ["conv1.weight", "block1.dw.weight", "block1.pw.weight", "block2.conv.weight", "fc.weight", "tied.weight"])
        // Globs match the whole name.
        #expect(try Self.selected("{tensor: 'block1'}") == [])
        #expect(try Self.selected("{tensor: 'block?.conv.weight'}") == ["block2.conv.weight"])
        #expect(try Self.selected("{tensor: 'block[!1].*'}") == ["block2.conv.weight"])
        #expect(try Self.selected("{tensor: 'block[1-2].[dp]w.*'}") == ["block1.dw.weight", "block1.pw.weight"])
        #expect(try Self.selected("{name: 'block1/*'}") == ["block1.dw.weight", "block1.pw.weight"])
        // A list means any of them.
        #expect(try Self.selected("{name: ['stem/*', 'dec']}") == ["conv1.weight", "tied.weight"])
        // A tensor-name pattern is the only way to reach a tensor that is not a weight.
        #expect(try Self.selected("{tensor: 'fc.*'}") == ["fc.weight", "fc.bias"])
    }

    @Test func regexes() throws {
        #expect(try Self.selected("{tensor: 're:block[0-9]+\\.(dw|pw)\\.weight'}") == ["block1.dw.weight", "block1.pw.weight"])
        // Whole-name match: a fragment does not match without .*
        #expect(try Self.selected("{name: 're:conv'}") == [])
        #expect(try Self.selected("{name: 're:.*conv'}") == ["conv1.weight", "block2.conv.weight"])
        // An unnamed node ("") is matched by patterns that accept the empty name.
        #expect(try Self.selected("{name: 're:^$'}") == ["fc.weight"])
    }

    @Test func opPositionSizeDepthwiseKernel() throws {
        #expect(try Self.selected("{op: Conv}") == ["conv1.weight", "block1.dw.weight", "block1.pw.weight", "block2.conv.weight"])
        // A shared weight matches through any of its consumers.
        #expect(try Self.selected("{op: Gemm}") == ["fc.weight", "tied.weight"])
        #expect(try Self.selected("{op: [MatMul]}") == ["tied.weight"])
        #expect(try Self.selected("{position: first}") == ["conv1.weight"])
        #expect(try Self.selected("{position: last}") == ["fc.weight"])
        #expect(try Self.selected("{position: [first, last]}") == ["conv1.weight", "fc.weight"])
        #expect(try Self.selected("{min_elements: 1280}") == ["block1.pw.weight", "block2.conv.weight", "fc.weight"])
        #expect(try Self.selected("{max_elements: 288}") == ["block1.dw.weight", "tied.weight"])
        #expect(try Self.selected("{min_elements: 256, max_elements: 864}") == ["conv1.weight", "block1.dw.weight", "tied.weight"])
        #expect(try Self.selected("{depthwise: true}") == ["block1.dw.weight"])
        #expect(try Self.selected("{depthwise: false, op: Conv}") == ["conv1.weight", "block1.pw.weight", "block2.conv.weight"])
        #expect(try Self.selected("{kernel: 1x1}") == ["block1.pw.weight"])
        #expect(try Self.selected("{kernel: [3, 3]}") == ["conv1.weight", "block1.dw.weight", "block2.conv.weight"])
        // Kernel applies to Conv weights only; a Gemm weight has none.
        #expect(try Self.selected("{kernel: 10x128}") == [])
        // All conditions must hold.
        #expect(try Self.selected("{op: Conv, kernel: 3x3, depthwise: false, min_elements: 1000}") == ["block2.conv.weight"])
    }

    @Test func firstMatchWinsThenDefault() throws {
        let text = """
            version: 1
            rules:
              - match: {position: [first, last]}
                keep: float32
              - match: {op: Conv, depthwise: true}
                bits: 3
              - match: {op: Conv}
                mix: {1: 0.7, 2: 0.2, 3: 0.1}
              - match: {kernel: 1x1}
                bits: 1
              - match: {tensor: '*.bias'}
                keep: float16
            default:
              bits: 2
              scale: channel

            """
        let p = try Policy(text: text, file: "order.txt")
        let r = p.resolve(Self.all)
        #expect(r.decisions.map { $0?.source } == [.rule(0), .rule(1), .rule(2), .rule(2), .rule(0), .rule(4), .defaultSettings])
        // Rule 4 (kernel 1x1) comes after the general Conv rule, so it governs nothing.
        #expect(r.ruleCounts == [2, 1, 2, 0, 1])
        #expect(r.defaultCount == 1)
        let mix = BitDistribution([(1, 0.7), (2, 0.2), (3, 0.1)])!
        #expect(r.decisions[2]?.action == .binarize(.init(allocation: .mix(mix), method: .middleOut, scale: .tensor, refit: false)))
        #expect(try r.decisions[6]?.action == .binarize(.init(allocation: .mix(.homogeneous(2)), scale: .channel)))
        #expect(r.decisions[5]?.action == .keep(.float16))

        let unused = p.unusedRuleDiagnostics(r, subjects: Self.all, modelName: "m.onnx", strict: false)
        #expect(unused.map(\.description) == [
            "order.txt:9:5: warning: rule 4 governs nothing in m.onnx: the 1 tensor(s) it matches go to earlier rule 3 (line 7) (first match wins)",
        ])
        let strict = p.unusedRuleDiagnostics(r, subjects: Self.all, modelName: "m.onnx", strict: true)
        #expect(strict.map(\.severity) == [.error])
        #expect(p.describe(.rule(1)) == "rule 2 (line 5)")
        #expect(p.describe(.defaultSettings) == "default (line 13)")
    }

    @Test func withoutDefaultWeightsStayFloat32AndOthersUntouched() throws {
        let p = try Policy(text: "version: 1\nrules:\n  - match: {tensor: nothing-like-this}\n    bits: 2\n", file: "n.txt")
        let r = p.resolve(Self.all)
        #expect(r.decisions[0] == WeightDecision(source: .implicitDefault, action: .keep(.float)))
        #expect(r.decisions[5] == nil, "a bias no rule names stays as it is")
        #expect(p.unusedRuleDiagnostics(r, subjects: Self.all, modelName: "m.onnx", strict: false).map(\.description)
                == ["n.txt:3:5: warning: rule 1 matches no tensor in m.onnx"])
    }
}
