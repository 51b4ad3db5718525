import MBCore
import MBPolicy
import Testing

/// The layer settings `granularity:` and `activations:`.
@Suite struct ActivationPolicyTests {
    @Test func granularityAndActivationsParse() throws {
        let text = """
            version: 1
            rules:
              - match: {position: [first, last]}
                keep: float32
                activations: {bits: 2}
              - match: {op: Conv}
                mix: {1: 0.7, 2: 0.2, 3: 0.1}
                granularity: group:64
                activations: {mix: {1: 0.7, 2: 0.2, 3: 0.1}, method: middle-out, granularity: group:256}
            default:
              bits: 2
              granularity: channel

            """
        let result = Policy.parse(text: text, file: "a.txt")
        #expect(result.diagnostics.isEmpty, "\(result.diagnostics)")
        let p = try #require(result.policy)
        #expect(try p.rules[0].settings.activations == ActivationSpec(distribution: .homogeneous(2)))
        #expect(p.rules[1].settings.granularity == .group(64))
        #expect(p.rules[1].settings.activations?.granularity == .group(256))
        #expect(p.rules[1].settings.activations?.distribution.entries.map(\.bits) == [1, 2, 3])
        #expect(p.defaultSettings?.granularity == .channel)
        guard case .binarize(let b) = p.defaultSettings!.action else { Issue.record("default must binarize"); return }
        #expect(b.granularity == .channel)
    }

    @Test(arguments: [
        ("granularity: group:0", "3:16", "granularity must be element, group:N (N >= 1) or channel, got 'group:0'"),
        ("granularity: rows", "3:16", "granularity must be element, group:N (N >= 1) or channel, got 'rows'"),
        ("activations: {mix: {1: 0.7, 2: 0.2, 3: 0.1}, granularity: channel}", "3:61", "granularity must be element or group:N (N >= 1), got 'channel'"),
        ("activations: {mix: {1: 0.5, 2: 0.5}, method: top-down}", "3:48", "activations are binarized at run time by middle-out only, got top-down"),
        ("activations: {method: middle-out}", "3:16", "activations need 'mix:' or 'bits:', e.g. activations: {mix: {1: 0.7, 2: 0.2, 3: 0.1}}"),
        ("activations: {bits: 2, mix: {1: 1}}", "3:26", "'mix' conflicts with 'bits' at 3:17; activations state one of mix, bits"),
    ])
    func badSettingsAreReportedWithPositions(line: String, at: String, message: String) {
        let result = Policy.parse(text: "version: 1\ndefault:\n  \(line)\n  bits: 1\n", file: "b.txt")
        let errors = result.diagnostics.filter { $0.severity == .error }.map(\.description)
        #expect(errors.contains { $0.contains(message) }, "\(line): \(errors)")
        #expect(errors.contains { $0.hasPrefix("b.txt:\(at):") }, "\(line): expected position \(at) in \(errors)")
    }
}
