import MBCore
import MBPolicy
import Testing

/// No input may crash the parser: random bytes, random text, and every truncation and
/// single-byte corruption of a valid policy give a result (policy or diagnostics), never a trap.
@Suite struct RobustnessTests {
    static let valid = """
        version: 1
        target: {average_bits: 1.6}
        rules:
          - label: ends
            match: {position: [first, last], name: "re:.*(conv|fc)[0-9]+", tensor: 'w[0-9]*'}
            keep: float32
          - match: {op: [Conv, Gemm], kernel: 1x1, min_elements: 10, depthwise: false}
            mix: {1: 0.7, 2: 0.2, 3: 0.1}
            method: middle-out
        default:
          scale: channel

        """

    /// Every result is consistent: a policy exactly when there are no errors, and every
    /// diagnostic has a position inside the text.
    static func checkConsistent(_ bytes: [UInt8], _ label: String) {
        let r = Policy.parse(bytes: bytes, file: "fuzz.txt")
        #expect((r.policy != nil) == r.errors.isEmpty, "\(label)")
        let lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).count
        for d in r.diagnostics {
            #expect(d.position.line >= 1 && d.position.line <= max(1, lines + 1) && d.position.column >= 1, "\(label): \(d)")
        }
    }

    @Test func validPolicyParses() {
        let r = Policy.parse(text: Self.valid, file: "v.txt")
        #expect(r.diagnostics.isEmpty, "\(r.diagnostics)")
    }

    @Test func everyTruncation() {
        let bytes = Array(Self.valid.utf8)
        for n in 0...bytes.count { Self.checkConsistent(Array(bytes.prefix(n)), "prefix \(n)") }
    }

    @Test func everySingleByteCorruption() {
        let bytes = Array(Self.valid.utf8)
        // Bytes that upset YAML or our checks the most.
        let replacements: [UInt8] = [0x00, 0x09, 0x0A, UInt8(ascii: ":"), UInt8(ascii: "["), UInt8(ascii: "{"),
                                     UInt8(ascii: "'"), UInt8(ascii: "\""), UInt8(ascii: "&"), UInt8(ascii: "*"), 0xFF, 0xC3]
        for i in bytes.indices {
            for r in replacements {
                var b = bytes
                b[i] = r
                Self.checkConsistent(b, "byte \(i) = 0x\(String(r, radix: 16))")
            }
        }
    }

    @Test func seededRandomInput() {
        var rng = SeededGenerator(seed: 0x90_11C7)
        let alphabet = Array("version: 1\nrules:- match{op,Conv}[]'\"#&*!|>%@`\t 0.5 bits mix 2 3\n".utf8)
        for round in 0..<400 {
            let n = Int(rng.next() % 200)
            let bytes: [UInt8] = (0..<n).map { _ in
                round % 2 == 0 ? UInt8(truncatingIfNeeded: rng.next()) : alphabet[Int(rng.next() % UInt64(alphabet.count))]
            }
            Self.checkConsistent(bytes, "seed 0x9011C7 round \(round)")
        }
    }

    @Test func deepBlockNestingIsHandled() {
        var text = "version: 1\nx:\n"
        for depth in 1...300 { text += String(repeating: " ", count: depth) + "a:\n" }
        let r = Policy.parse(text: text, file: "deep.txt")
        #expect(r.diagnostics.map(\.description) == ["deep.txt:2:1: unknown key 'x'; expected one of: version, target, rules, default, images"])
    }

    @Test func manyDuplicatesStillTerminate() {
        var text = "version: 1\ndefault:\n"
        for _ in 0..<150 { text += "  bits: 2\n" }
        let r = Policy.parse(text: text, file: "d.txt")
        // The first 100 repeats are each located; then the search stops, reporting the first use.
        #expect(r.errors.count == 101)
        #expect(r.errors.first?.description == "d.txt:3:3: duplicate key 'bits'")
        #expect(r.errors.last?.description == "d.txt:103:3: duplicate key 'bits' (first at 3:3)")
    }
}
