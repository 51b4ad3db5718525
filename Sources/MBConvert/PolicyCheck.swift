import Foundation
import MBCore
import MBONNX
@_exported import MBPolicy

/// `mbconvert policy check policy.txt [model.onnx]`: validate a policy and, with a model, show
/// what it decides for every weight and what that will cost, without binarizing anything big
/// (a dry run). `average` rules and a `target` need error estimates: those binarize a seeded
/// subsample of each affected weight (AverageBitsSearch, TargetSpread).
public enum PolicyCheck {
    public struct Options: Sendable {
        /// A rule that matches no tensor is an error rather than a warning.
        public var strict = false
        public init(strict: Bool = false) { self.strict = strict }
    }

    public static func run(policy policyPath: String, model modelPath: String?, options: Options = Options()) throws -> PolicyCheckReport {
        let bytes: [UInt8]
        do {
            bytes = Array(try Data(contentsOf: URL(fileURLWithPath: policyPath)))
        } catch {
            let exists = FileManager.default.fileExists(atPath: policyPath)
            throw ConversionError("\(policyPath): " + (exists ? "cannot read the file" : "no such file"))
        }
        let parsed = Policy.parse(bytes: bytes, file: policyPath)
        var report = PolicyCheckReport(policyFile: policyPath, modelFile: modelPath)
        report.add(parsed.diagnostics)
        guard let policy = parsed.policy else { return report }
        report.describe(policy)

        guard let modelPath else { return report }
        let model = try ONNXReader().load(path: modelPath)
        let discovery = try WeightDiscovery(onnx: model, file: modelPath)
        try check(policy, against: discovery, modelName: URL(fileURLWithPath: modelPath).lastPathComponent, options: options, into: &report)
        return report
    }

    /// Resolves `policy` against the discovered tensors and predicts storage.
    public static func check(_ policy: Policy, against discovery: WeightDiscovery, modelName: String,
                             options: Options = Options(), into report: inout PolicyCheckReport) throws {
        let subjects = discovery.subjects
        let resolution = policy.resolve(subjects)
        report.add(policy.unusedRuleDiagnostics(resolution, subjects: subjects, modelName: modelName, strict: options.strict))
        for (i, count) in resolution.ruleCounts.enumerated() { report.rules[i].tensors = count }
        report.defaultTensors = resolution.defaultCount

        var plans: [ConversionPlan] = []
        for (tensor, decision) in zip(discovery.tensors, resolution.decisions) {
            guard let decision else { continue }
            plans.append(ConversionPlan(tensor: tensor, decision: decision))
        }
        do {
            try resolveAllocations(&plans, policy: policy, discovery: discovery)
        } catch let problem as TargetSpread.Infeasible {
            report.add([PolicyDiagnostic(file: policy.file, position: problem.position, message: problem.message)])
        }
        report.rows = plans.map { PolicyCheckReport.Row(plan: $0, policy: policy) }
        report.totals = PolicyCheckReport.Totals(rows: report.rows)
    }

    /// The decision and resolved P of every tensor a rule (or the default) governs, in discovery
    /// order: what conversion binarizes. Allocation problems (an infeasible target) throw.
    public static func plans(_ policy: Policy, against discovery: WeightDiscovery) throws -> [ConversionPlan] {
        let resolution = policy.resolve(discovery.subjects)
        var plans: [ConversionPlan] = []
        for (tensor, decision) in zip(discovery.tensors, resolution.decisions) {
            guard let decision else { continue }
            plans.append(ConversionPlan(tensor: tensor, decision: decision))
        }
        try resolveAllocations(&plans, policy: policy, discovery: discovery)
        return plans
    }

    /// Fills in P for every binarized tensor: stated mixes directly, `target` layers by the
    /// greedy spread, then `average` layers (and the spread's outcome) by the P search.
    static func resolveAllocations(_ plans: inout [ConversionPlan], policy: Policy, discovery: WeightDiscovery) throws {
        for i in plans.indices {
            guard case .binarize(let b) = plans[i].decision.action else { continue }
            switch b.allocation {
            case .mix(let m): plans[i].mix = m
            case .average(let a): plans[i].requestedAverage = a
            case .target: break
            }
        }
        if let target = policy.target {
            try TargetSpread.spread(&plans, target: target, discovery: discovery)
        }
        for i in plans.indices where plans[i].mix == nil {
            guard case .binarize(let b) = plans[i].decision.action, let average = plans[i].requestedAverage else { continue }
            let values = try AverageBitsSearch.sample(discovery: discovery, tensor: plans[i].tensor, scale: b.scale)
            plans[i].mix = try AverageBitsSearch.best(average: average, maxBits: plans[i].searchMaxBits, sample: values, method: b.method).mix
        }
    }
}
