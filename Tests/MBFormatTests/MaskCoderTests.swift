import MBCore
import MBFormat
import Testing

@Suite struct MaskCoderTests {
    func roundTrip(_ symbols: [UInt8], alphabet: Int) throws -> [UInt8] {
        var counts = [Int](repeating: 0, count: alphabet)
        for s in symbols { counts[Int(s)] += 1 }
        let freqs = MaskCoder.frequencies(counts: counts)
        let stream = try symbols.withUnsafeBufferPointer { try MaskCoder.encode($0, frequencies: freqs) }
        var out = [UInt8](repeating: 0xFF, count: symbols.count)
        try stream.withUnsafeBytes { raw in
            try out.withUnsafeMutableBufferPointer { try MaskCoder.decode(raw, count: symbols.count, frequencies: freqs, into: $0) }
        }
        #expect(out == symbols, "alphabet \(alphabet), \(symbols.count) symbols")
        return stream
    }

    @Test(arguments: [0, 1, 2, 3, 63, 64, 65, 1000])
    func roundTripsEveryLength(_ n: Int) throws {
        var rng = SeededGenerator(seed: UInt64(n))
        let symbols = (0..<n).map { _ in UInt8(rng.next() % 3) }
        _ = try roundTrip(symbols, alphabet: 3)
    }

    @Test func singleSymbolAlphabetCostsAlmostNothing() throws {
        let stream = try roundTrip([UInt8](repeating: 0, count: 100_000), alphabet: 1)
        #expect(stream.count == 4)
    }

    @Test func allEightWidthsRoundTrip() throws {
        var rng = SeededGenerator(seed: 8)
        _ = try roundTrip((0..<50_000).map { _ in UInt8(rng.next() % 8) }, alphabet: 8)
    }

    /// 70/20/10 costs about H(P) = 1.157 bits per entry.
    @Test func costIsCloseToTheEntropy() throws {
        var rng = SeededGenerator(seed: 710)
        let n = 1_000_000
        let symbols = (0..<n).map { _ -> UInt8 in
            let u = rng.nextUnitDouble()
            return u < 0.7 ? 0 : (u < 0.9 ? 1 : 2)
        }
        let stream = try roundTrip(symbols, alphabet: 3)
        var counts = [0, 0, 0]
        for s in symbols { counts[Int(s)] += 1 }
        let entropy = counts.reduce(0.0) { h, c in let p = Double(c) / Double(n); return h - p * log2(p) }
        let bitsPerEntry = Double(stream.count * 8) / Double(n)
        #expect(bitsPerEntry >= entropy)
        #expect(bitsPerEntry - entropy < 0.002, "\(bitsPerEntry) bits/entry vs entropy \(entropy)")
    }

    @Test func damagedStreamsAreDetected() throws {
        var rng = SeededGenerator(seed: 3)
        let symbols = (0..<5000).map { _ in UInt8(rng.next() % 3) }
        let freqs = MaskCoder.frequencies(counts: [1700, 1700, 1600])
        let stream = try symbols.withUnsafeBufferPointer { try MaskCoder.encode($0, frequencies: freqs) }
        var out = [UInt8](repeating: 0, count: symbols.count)
        // Truncated: must throw, never read past the end.
        #expect(throws: MaskCoder.Failure.self) {
            try Array(stream.dropLast(10)).withUnsafeBytes { raw in
                try out.withUnsafeMutableBufferPointer { try MaskCoder.decode(raw, count: symbols.count, frequencies: freqs, into: $0) }
            }
        }
        // Trailing byte: the end check catches it.
        #expect(throws: MaskCoder.Failure.self) {
            try (stream + [0]).withUnsafeBytes { raw in
                try out.withUnsafeMutableBufferPointer { try MaskCoder.decode(raw, count: symbols.count, frequencies: freqs, into: $0) }
            }
        }
    }

    @Test func frequenciesSumToTheTotalAndKeepRareSymbols() {
        for counts in [[7, 2, 1], [1_000_000, 1, 0], [0, 0, 5], [3, 3, 3, 3, 3, 3, 3, 3], [1, 1]] {
            let f = MaskCoder.frequencies(counts: counts)
            #expect(f.reduce(0) { $0 + Int($1) } == MaskCoder.total, "\(counts) -> \(f)")
            for (c, q) in zip(counts, f) { #expect((c == 0) == (q == 0), "\(counts) -> \(f)") }
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
