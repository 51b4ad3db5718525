import MBCore
import Foundation
import MBPolicy
import TestSupport
import Testing

/// A complete, valid policy parses into exactly what it says.
@Suite struct GoodPolicyTests {
    static let full = """
        # every key the format has
        version: 1
        rules:
          - label: stem
            match: {position: [first, last]}
            keep: float32
          - match:
              op: Conv
              depthwise: true
            bits: 3
            scale: channel
          - match: {name: "re:.*pointwise.*", kernel: 1x1, min_elements: 1024, max_elements: 1_000_000}
            mix: {3: 0.1, 1: 0.7, 2: 0.2}
            method: residual-middle-out
            refit: true
          - match: {tensor: ["fc*_w", "classifier?weight"], op: [Gemm, MatMul]}
            average: 1.5
            method: top-down
          - match: {tensor: "*_b"}
            keep: float16
        default:
          mix: {1: 0.7, 2: 0.2, 3: 0.1}
          scale: tensor

        """

    @Test func fullPolicyParses() throws {
        let result = Policy.parse(text: Self.full, file: "full.txt")
        #expect(result.diagnostics.isEmpty, "\(result.diagnostics)")
        let p = try #require(result.policy)
        #expect(p.version == 1)
        #expect(p.rules.count == 5)
        #expect(p.target == nil)

        let stem = p.rules[0]
        #expect(stem.label == "stem")
        #expect(stem.index == 1)
        #expect(stem.position == SourcePosition(line: 4, column: 5))
        #expect(stem.match.positions == [.first, .last])
        #expect(stem.settings == Policy.Settings(storage: .keep(.float)))
        #expect(stem.displayName == "rule 'stem' (line 4)")

        let dw = p.rules[1]
        #expect(dw.match.ops == ["Conv"])
        #expect(dw.match.depthwise == true)
        #expect(try dw.settings == Policy.Settings(storage: .distribution(.homogeneous(3)), scale: .channel))
        #expect(dw.displayName == "rule 2 (line 7)")

        let pw = p.rules[2]
        #expect(pw.match.nodeNames.map(\.source) == ["re:.*pointwise.*"])
        #expect(pw.match.kernel == [1, 1])
        #expect(pw.match.minElements == 1024)
        #expect(pw.match.maxElements == 1_000_000)
        let mix = try #require(BitDistribution([(1, 0.7), (2, 0.2), (3, 0.1)]))
        #expect(pw.settings == Policy.Settings(storage: .distribution(mix), method: .residualMiddleOut, refit: true))
        #expect(mix.entries.map(\.bits) == [1, 2, 3])

        let fc = p.rules[3]
        #expect(fc.match.tensorNames.map(\.source) == ["fc*_w", "classifier?weight"])
        #expect(fc.match.ops == ["Gemm", "MatMul"])
        #expect(fc.settings == Policy.Settings(storage: .average(1.5), method: .topDown))

        #expect(p.rules[4].settings == Policy.Settings(storage: .keep(.float16)))
        #expect(p.defaultSettings == Policy.Settings(storage: .distribution(mix), scale: .tensor))
        #expect(p.defaultPosition == SourcePosition(line: 21, column: 1))
        #expect(p.text == Self.full)
    }

    @Test func targetPolicyLeavesStorageToTheTarget() throws {
        let text = """
            version: 1
            target: {average_bits: 1.6, max_bits: 4}
            rules:
              - match: {position: first}
                keep: float32
            default:
              scale: channel

            """
        let p = try Policy(text: text, file: "t.txt")
        #expect(p.target == Policy.Target(averageBits: 1.6, maxBits: 4, position: SourcePosition(line: 2, column: 1)))
        #expect(p.defaultSettings == Policy.Settings(storage: .target, scale: .channel))
    }

    @Test func sensitivityAllocationAndAlternatingRefitAreNamedOptions() throws {
        let text = """
            version: 1
            target: {average_bits: 2.5, max_bits: 4, allocate: sensitivity}
            rules:
              - match: {op: Gemm}
                bits: 8
                refit: alternating
            default:
              refit: true

            """
        let p = try Policy(text: text, file: "t.txt")
        #expect(p.target == Policy.Target(averageBits: 2.5, maxBits: 4, allocate: .sensitivity, position: SourcePosition(line: 2, column: 1)))
        #expect(p.rules[0].settings.refit == .alternating)
        #expect(p.defaultSettings?.refit == .leastSquares)
        // Unset, the HBB.md defaults: weight-error spread, no refit.
        let plain = try Policy(text: "version: 1\ntarget: {average_bits: 2}\ndefault: {scale: tensor}\n", file: "t.txt")
        #expect(plain.target?.allocate == .weightError)
        #expect(plain.defaultSettings?.action == .binarize(.init(allocation: .target, refit: .off)))
    }

    @Test func mixStatistics() throws {
        let mix = try #require(BitDistribution([(1, 0.7), (2, 0.2), (3, 0.1)]))
        #expect(abs(mix.averageBits - 1.4) < 1e-12)
        #expect(abs(mix.entropy - 1.1567796494470395) < 1e-12)
        #expect(mix.counts(elements: 1000) == [700, 200, 100])
        // Half away from zero for every width but the last, which takes the rest.
        #expect(mix.counts(elements: 5) == [4, 1, 0])
        #expect(mix.counts(elements: 15) == [11, 3, 1])
        #expect(mix.policyText == "{1: 0.7, 2: 0.2, 3: 0.1}")
        #expect(try BitDistribution.homogeneous(2).description == "2-bit")
        #expect(try BitDistribution.homogeneous(2).entropy == 0)
        // A zero fraction is kept as written but receives no entries.
        let zero = try #require(BitDistribution([(1, 0.9), (2, 0.1), (3, 0)]))
        #expect(zero.used.map(\.bits) == [1, 2])
        #expect(zero.counts(elements: 10) == [9, 1])
        #expect(zero.maxUsedBits == 2)
        #expect(BitDistribution([(1, 0.5), (2, 0.4)]) == nil)
        #expect(BitDistribution([(0, 1)]) == nil)
        #expect(BitDistribution([(2, 0.5), (2, 0.5)]) == nil)
    }

    @Test func methodNamesAreMBBinarizes() {
        #expect(MaskMethod.allCases.map(\.rawValue) == ["middle-out", "top-down", "bottom-up", "random", "residual-middle-out"])
    }
}

/// The complete example in Schemas/policy.md parses without a single diagnostic.
@Test func schemaDocumentExampleParses() throws {
    let url = SharedFixtures.repositoryRoot.appendingPathComponent("Schemas/policy.md")
    let doc = try String(contentsOf: url, encoding: .utf8)
    let start = try #require(doc.range(of: "```yaml\n"))
    let end = try #require(doc.range(of: "```", range: start.upperBound..<doc.endIndex))
    let result = Policy.parse(text: String(doc[start.upperBound..<end.lowerBound]), file: "policy.md")
    #expect(result.diagnostics.isEmpty, "\(result.diagnostics)")
    #expect(result.policy?.rules.count == 5)
    #expect(result.policy?.target?.averageBits == 1.6)
}

/// `damping:` reaches the decision; unset it is the output fit's 0.01.
@Test func outputFitDampingIsANamedOption() throws {
    let p = try #require(Policy.parse(text: "version: 1\nrules:\n  - match: {op: Gemm}\n    bits: 2\n    fit: output\n    damping: 0.1\ndefault: {bits: 2, fit: output}\n", file: "d.txt").policy)
    #expect(p.rules[0].settings.damping == 0.1)
    guard case .binarize(let fitted) = p.rules[0].settings.action, case .binarize(let plain)? = p.defaultSettings?.action else {
        Issue.record("both rules binarize")
        return
    }
    #expect(fitted.damping == 0.1)
    #expect(plain.damping == WeightDecision.Binarization.defaultDamping && plain.damping == 0.01)
    // Without an output fit it changes nothing, and the parser says so.
    let unused = Policy.parse(text: "version: 1\ndefault: {bits: 2, damping: 0.1}\n", file: "d.txt")
    #expect(unused.policy != nil)
    #expect(unused.diagnostics.map(\.description) == ["d.txt:2:20: warning: 'damping' has no effect without 'fit: output' or 'fit: output-gain': only the output fit is damped"])
}

/// `method: saliency` reaches the decision as its own flag (the method stays middle-out, for a
/// layer that falls back to its weights); `bits:` makes it a warning like any method.
@Test func saliencyIsANamedMethod() throws {
    let text = "version: 1\ndefault: {mix: {1: 0.7, 2: 0.3}, fit: output, granularity: channel, method: saliency}\n"
    let parsed = Policy.parse(text: text, file: "s.txt")
    #expect(parsed.diagnostics.isEmpty, "\(parsed.diagnostics)")
    guard case .binarize(let b)? = parsed.policy?.defaultSettings?.action else {
        Issue.record("binarizes")
        return
    }
    #expect(b.saliency && b.method == .middleOut && b.granularity == .channel)
    let plain = Policy.parse(text: "version: 1\ndefault: {mix: {1: 0.7, 2: 0.3}, fit: output, granularity: channel}\n", file: "s.txt")
    guard case .binarize(let p)? = plain.policy?.defaultSettings?.action else { return }
    #expect(!p.saliency)
    let homogeneous = Policy.parse(text: "version: 1\ndefault: {bits: 2, fit: output, method: saliency}\n", file: "s.txt")
    #expect(homogeneous.policy != nil)
    #expect(homogeneous.diagnostics.map(\.description) == ["s.txt:2:33: warning: 'method' has no effect with 'bits': every entry gets the same bitwidth"])
}

/// The frontier's measured policies (README) parse without a single diagnostic, every rule
/// fitting with `fit: output-gain`.
@Test func frontierExamplePoliciesParse() throws {
    let dir = SharedFixtures.repositoryRoot.appendingPathComponent("Examples/frontier/policies")
    let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".txt") }.sorted()
    #expect(names.count >= 5, "\(names)")
    for name in names {
        let text = try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
        let result = Policy.parse(text: text, file: name)
        #expect(result.diagnostics.isEmpty, "\(name): \(result.diagnostics)")
        let policy = try #require(result.policy, "\(name)")
        #expect(policy.rules.allSatisfy { $0.settings.fit == .outputGain } && policy.defaultSettings?.fit == .outputGain, "\(name)")
    }
}
