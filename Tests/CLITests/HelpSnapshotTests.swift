import Foundation
import Testing
import TestSupport

/// Every command's `--help` against its snapshot (Snapshots/help/), so a change to an option's
/// name, default or help text shows up in review. MBCONVERT_RECORD_SNAPSHOTS=1 re-records.
@Suite struct HelpSnapshotTests {
    static let snapshots = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Snapshots/help")
    static let commands: [[String]] = [
        [], ["convert"], ["inspect"], ["policy"], ["policy", "check"], ["study"], ["run"], ["bench"], ["export-onnx"], ["verify"],
    ]

    @Test(arguments: commands)
    func helpMatchesItsSnapshot(_ command: [String]) throws {
        // A fixed width: ArgumentParser wraps help to the terminal's COLUMNS otherwise.
        setenv("COLUMNS", "100", 1)
        let r = try CLI.run(command + ["--help"])
        #expect(r.status == 0, "\(r)")
        let name = (["mbconvert"] + command).joined(separator: "-") + ".txt"
        let problem = Snapshot.check(r.stdout, against: Self.snapshots.appendingPathComponent(name))
        #expect(problem == nil, "\(problem ?? "")")
    }
}
