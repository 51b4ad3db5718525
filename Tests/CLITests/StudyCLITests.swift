import Foundation
import MBCore
import TestSupport
import Testing

/// `mbconvert study`, run as the built binary: output, exit codes, and the bad-argument path.
@Suite struct StudyCLITests {
    @Test func smallSyntheticStudyPrintsTablesAndStorage() throws {
        let r = try CLI.run(["study", "--synthetic", "normal:20000:0", "--bits", "1,2", "--mix", "7/2/1,9/1/0", "--method", "middle-out,random"])
        #expect(r.status == 0, "\(r)")
        #expect(r.stderr.isEmpty, "\(r)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "tensor normal:20000:0 [20000] (20000 values)", "\(r)")
        #expect(lines.contains("exact mode: no (more than 510 distinct values)"), "\(r)")
        // The mix x method grid: 7/2/1 Middle-Out is ~0.327 (HBB.md section 4), Random ~0.53.
        let grid = try #require(lines.first { $0.hasPrefix("  7/2/1 ") }, "\(r)")
        let cells = grid.split(separator: " ").map(String.init)
        #expect(cells.count == 4, "\(grid)")
        let middleOut = try #require(Double(cells[2])), random = try #require(Double(cells[3]))
        #expect(abs(middleOut - 0.327) <= 0.005 && abs(random - 0.53) <= 0.02, "\(grid)")
        // Storage: 1.4 sign bits + H(0.7, 0.2, 0.1) = 1.157 mask bits + 3 scales / 20000.
        #expect(r.stdout.contains("2.562 = 1.400 + 1.157 + 0.0048"), "\(r)")
    }

    @Test func jsonAndCSVCarryTheSameNumbers() throws {
        let args = ["study", "--synthetic", "uniform:3000:2", "--bits", "2", "--mix", "0.6,0.3,0.1@2,3,4", "--refit"]
        let json = try CLI.run(args + ["--json"])
        #expect(json.status == 0, "\(json)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let rows = try #require(object["rows"] as? [[String: Any]])
        #expect(rows.map { $0["config"] as? String } == ["2-bit", "0.6,0.3,0.1@2,3,4"])
        let csv = try CLI.run(args + ["--csv"])
        #expect(csv.status == 0, "\(csv)")
        let csvLines = csv.stdout.split(separator: "\n")
        #expect(csvLines.count == 3 && csvLines[0].hasPrefix("tensor,kind,config,method,scale,"), "\(csv)")
        let error = try #require(rows[1]["normalizedError"] as? Double)
        #expect(csvLines[2].contains(",\(error),"), "\(csv)")
        let refit = try #require(rows[1]["refitNormalizedError"] as? Double)
        #expect(refit <= error)
    }

    @Test func npyInputAndExactMode() throws {
        // A tensor whose values are already +-0.5 +-0.25: exact mode finds 2 levels.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("study-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("w.npy").path
        let values: [Float] = (0..<64).map { [0.75, 0.25, -0.25, -0.75][$0 % 4] }
        try NPY.write(NPYArray(floats: values, shape: [8, 8]), to: path)
        let r = try CLI.run(["study", path, "--bits", "2"])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.hasPrefix("tensor w.npy [8, 8] (64 values)\nexact mode: qualifies: 2 level(s), tensor scales"), "\(r)")
        #expect(r.stdout.contains("  2           0.000      inf       0.0000"), "\(r)")
    }

    @Test(arguments: [
        (["study", "--synthetic", "normal:100:0", "--mix", "7/2/2"], "The value '7/2/2' is invalid for '--mix <mix>': invalid binarization setting: tenths must be non-negative and sum to 10, got 7/2/2"),
        (["study", "--synthetic", "normal:100:0", "--method", "sideways"], "The value 'sideways' is invalid for '--method <method>'. Please provide one of 'middle-out', 'top-down'"),
        (["study", "--synthetic", "cauchy:100:0"], "The value 'cauchy:100:0' is invalid for '--synthetic <synthetic>': unknown distribution 'cauchy'"),
        (["study", "--bits", "2"], "give exactly one source"),
        (["study", "Examples/models/tiny_cnn.onnx", "--eval", "Examples/models/tiny_cnn.input.npy"], "the model sweep (--eval) takes --sweep-average B"),
        (["study", "--synthetic", "normal:100:0", "--eval", "x.npy"], "--eval, --calibrate, --report and --threads sweep an .onnx model"),
        (["study", "Examples/models/tiny_cnn.onnx", "--sweep-average", "1.4", "--eval", "x.npy", "--image-crop", "0x3"], "The value '0x3' is invalid for '--image-crop <HxW>'"),
    ])
    func badArgumentsExitWithUsageErrors(arguments: [String], message: String) throws {
        let r = try CLI.run(arguments)
        #expect(r.status == 64, "\(r)")
        #expect(r.stdout.isEmpty, "\(r)")
        #expect(r.stderr.contains(message), "\(r)")
    }

    @Test func onnxWeightsByNameAndAll() throws {
        let r = try CLI.run(["study", "Examples/models/tiny_cnn.onnx", "--tensor", "fc.weight", "--mix", "7/2/1"])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.hasPrefix("tensor fc.weight [10, 64] (640 values)"), "\(r)")
        let all = try CLI.run(["study", "Examples/models/tiny_cnn.onnx", "--all", "--bits", "1"])
        #expect(all.status == 0, "\(all)")
        #expect(all.stdout.components(separatedBy: "\ntensor ").count + (all.stdout.hasPrefix("tensor ") ? 0 : -1) == 6, "\(all)")
        let missing = try CLI.run(["study", "Examples/models/tiny_cnn.onnx", "--tensor", "nope", "--bits", "1"])
        #expect(missing.status == 1)
        #expect(missing.stderr.hasPrefix("mbconvert: error: Examples/models/tiny_cnn.onnx: no float constant named 'nope'"), "\(missing)")
        let noFile = try CLI.run(["study", "no/model.onnx", "--all"])
        #expect(noFile.status == 1)
        #expect(noFile.stderr == "mbconvert: error: no/model.onnx: no such file\n", "\(noFile)")
    }

    @Test func unreadableInputIsOneLineAndExitCode1() throws {
        let r = try CLI.run(["study", "/nonexistent/w.npy"])
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr == "mbconvert: error: /nonexistent/w.npy: cannot read: No such file or directory\n", "\(r)")
    }

    /// The model sweep: every P with average 1.4 over 1/2/3 bits (five on the 0.05 grid),
    /// measured on the model, with the simplex heat maps in the report.
    @Test func modelSweepAtAFixedAverage() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("study-sweep-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let page = dir.appendingPathComponent("sweep.html").path
        let r = try CLI.run(["study", "Examples/models/tiny_cnn.onnx", "--sweep-average", "1.4", "--eval", "Examples/models/tiny_cnn.input.npy",
                             "--threads", "1", "--report", page])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("B = 1.4: 5 distributions P over widths 1,2,3"), "\(r)")
        for p in ["0.60/0.40/0.00", "0.65/0.30/0.05", "0.70/0.20/0.10", "0.75/0.10/0.15", "0.80/0.00/0.20"] { #expect(r.stdout.contains(p), "\(p)") }
        #expect(r.stderr.hasPrefix("sweep: ") && r.stderr.contains("5/5"), "\(r)")
        let html = try String(contentsOfFile: page, encoding: .utf8)
        #expect(html.components(separatedBy: "class=\"cell\"").count - 1 == 10 && html.contains(">B = 1.4</text>"))
        let json = try CLI.run(["study", "Examples/models/tiny_cnn.onnx", "--sweep-average", "1.4", "--eval", "Examples/models/tiny_cnn.input.npy",
                                "--threads", "1", "--grid-bits", "1,2", "--json"])
        #expect(json.status == 0 && json.stderr.isEmpty && json.stdout.contains("\"fractions\""), "\(json)")
        #expect(json.stdout.components(separatedBy: "\"top1\"").count - 1 == 1, "one P over 1/2 bits averages 1.4: \(json)")
    }
}
