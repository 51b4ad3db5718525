#if canImport(Glibc)
import Glibc
#endif
import Foundation
import MBCore
import MBONNX
import TestSupport
import Testing

/// `mbconvert model.onnx policy.txt -o out.mbm` never leaves a half-written `out.mbm`, never
/// overwrites its inputs, and replaces an existing output only with --force.
@Suite(.serialized) struct OutputSafetyTests {
    let dir: URL
    let policy: URL

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("mbconvert-output-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        policy = dir.appendingPathComponent("keep.txt")
        try "version: 1\ndefault:\n  keep: float32\n".write(to: policy, atomically: true, encoding: .utf8)
    }

    /// y = x + c0 + c1 + ... with `constants` float constants of `elements` each: the .mbm is
    /// about constants x elements x 4 bytes, written one constant at a time.
    func writeModel(_ name: String, constants: Int, elements: Int) throws -> URL {
        var model = ONNXModel()
        model.irVersion = 8
        model.opsetImports = [ONNXOperatorSetID(domain: "", version: 13)]
        var g = ONNXGraph()
        g.name = "adds"
        var x = ONNXValueInfo()
        x.name = "x"
        x.type = ONNXTypeProto(value: .tensor(elemType: 1, shape: ONNXShape(dims: [.init(value: .fixed(Int64(elements)))])))
        g.inputs = [x]
        var previous = "x"
        for k in 0..<constants {
            var t = ONNXTensor()
            t.name = "c\(k)"
            t.dims = [Int64(elements)]
            t.dataType = ElementType.float.rawValue
            let values = [Float](repeating: Float(k), count: elements)
            t.rawData = values.withUnsafeBytes { ByteSlice(storage: ByteStorage(copying: $0)) }
            g.initializers.append(t)
            var node = ONNXNode()
            node.name = "add\(k)"
            node.opType = "Add"
            node.inputs = [previous, "c\(k)"]
            node.outputs = [k == constants - 1 ? "y" : "s\(k)"]
            previous = node.outputs[0]
            g.nodes.append(node)
        }
        var y = ONNXValueInfo()
        y.name = "y"
        g.outputs = [y]
        model.graph = g
        let url = dir.appendingPathComponent(name)
        try ONNXWriter().write(model, to: url.path)
        return url
    }

    func partialFiles(of output: URL) -> [String] {
        let prefix = output.lastPathComponent + ".partial-"
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasPrefix(prefix) }.sorted()
    }

    @Test func refusesToOverwriteTheInputModel() throws {
        let model = try writeModel("m.onnx", constants: 1, elements: 4)
        let before = try Data(contentsOf: model)
        let r = try CLI.run([model.path, policy.path, "-o", model.path, "--force"])
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr == "mbconvert: error: \(model.path): refusing to overwrite the input file \(model.path)\n", "\(r)")
        #expect(try Data(contentsOf: model) == before)
        let viaPolicy = try CLI.run([model.path, policy.path, "-o", policy.path, "--force"])
        #expect(viaPolicy.stderr == "mbconvert: error: \(policy.path): refusing to overwrite the input file \(policy.path)\n", "\(viaPolicy)")
    }

    @Test func refusesToReplaceAnExistingOutputWithoutForce() throws {
        let model = try writeModel("m.onnx", constants: 1, elements: 4)
        let out = dir.appendingPathComponent("m.mbm")
        try Data("keep me".utf8).write(to: out)
        let r = try CLI.run([model.path, policy.path, "-o", out.path, "--quiet"])
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr == "mbconvert: error: \(out.path): already exists; pass --force to replace it\n", "\(r)")
        #expect(try Data(contentsOf: out) == Data("keep me".utf8))
        let forced = try CLI.run([model.path, policy.path, "-o", out.path, "--quiet", "--force"])
        #expect(forced.status == 0, "\(forced)")
        #expect(try Data(contentsOf: out).prefix(4) == Data([0x89, 0x4D, 0x42, 0x4D]))
        #expect(partialFiles(of: out) == [])
    }

    /// Starts mbconvert as a shell would: no blocked signals, default dispositions (a test
    /// runner's threads may block SIGINT, and posix_spawn would pass that on).
    func spawn(_ arguments: [String]) -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), defaults = sigset_t()
        sigemptyset(&none)
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGTERM)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let path = CLI.executable().path
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, path, &actions, &attributes, argv, environ)
        precondition(status == 0, "posix_spawn \(path): \(status)")
        return pid
    }

    /// Whether `pid` has exited; its wait status in `status` when it has.
    func exited(_ pid: pid_t, _ status: inout Int32) -> Bool {
        waitpid(pid, &status, WNOHANG) == pid
    }

    /// Starts a conversion and freezes it (SIGSTOP) once its output file has bytes but before it
    /// is complete; returns the process and the temporary's name as /proc shows it.
    func stopMidWrite(_ model: URL, _ out: URL, expectedBytes: Int) throws -> (pid_t, String)? {
        let pid = spawn([model.path, policy.path, "-o", out.path, "--quiet", "--threads", "1"])
        let fds = "/proc/\(pid)/fd"
        var status: Int32 = 0
        while !exited(pid, &status) {
            for fd in (try? FileManager.default.contentsOfDirectory(atPath: fds)) ?? [] {
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(fds)/\(fd)"),
                      target.hasPrefix(dir.path + "/"), !target.hasSuffix(".onnx"), !target.hasSuffix(".txt") else { continue }
                var st = stat()
                guard stat("\(fds)/\(fd)", &st) == 0, st.st_size > 0 else { continue }
                kill(pid, SIGSTOP)
                // Frozen now: is the file still incomplete?
                var after = stat()
                if stat("\(fds)/\(fd)", &after) == 0, Int(after.st_size) < expectedBytes {
                    return (pid, target)
                }
                kill(pid, SIGCONT)
            }
            usleep(100)
        }
        return nil
    }

    func killMidWrite(_ signal: Int32) throws -> (status: Int32, temporary: String, leftovers: [String], out: URL, model: URL)? {
        let model = try writeModel("big-\(signal).onnx", constants: 24, elements: 1 << 18)
        let out = dir.appendingPathComponent("big-\(signal).mbm")
        // 24 MiB of constants; try a few times in case a run slips through the write unobserved.
        for _ in 0..<3 {
            guard let (pid, temporary) = try stopMidWrite(model, out, expectedBytes: 24 << 20) else {
                try? FileManager.default.removeItem(at: out)
                continue
            }
            #expect(!FileManager.default.fileExists(atPath: out.path), "the output exists while it is being written")
            kill(pid, signal)
            kill(pid, SIGCONT)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            // Killed by a signal: the low 7 bits of the wait status are its number.
            return (status & 0x7F, temporary, partialFiles(of: out), out, model)
        }
        Issue.record("never caught the conversion mid-write")
        return nil
    }

    @Test func sigkillMidWriteLeavesNoOutput() throws {
        guard let r = try killMidWrite(SIGKILL) else { return }
        #expect(r.status == SIGKILL)
        #expect(!FileManager.default.fileExists(atPath: r.out.path))
        // On Linux the file being written has no name (O_TMPFILE): nothing survives the kill.
        // Elsewhere `<out>.partial-<pid>` may remain, and the next conversion removes it.
        if r.temporary.hasSuffix(" (deleted)") {
            #expect(r.leftovers == [], "\(r.temporary)")
        } else {
            #expect(r.leftovers.count <= 1)
        }
        let again = try CLI.run([r.model.path, policy.path, "-o", r.out.path, "--quiet"])
        #expect(again.status == 0, "\(again)")
        #expect(partialFiles(of: r.out) == [])
        #expect(try Data(contentsOf: r.out).count > 24 << 20)
    }

    @Test func sigintMidWriteLeavesNothing() throws {
        guard let r = try killMidWrite(SIGINT) else { return }
        #expect(r.status == SIGINT)
        #expect(!FileManager.default.fileExists(atPath: r.out.path))
        #expect(r.leftovers == [])
    }
}
