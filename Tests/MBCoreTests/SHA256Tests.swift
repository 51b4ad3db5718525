import MBCore
import Testing

@Suite struct SHA256Tests {
    func digest(_ s: String) -> String { SHA256.hex(Array(s.utf8).withUnsafeBytes { SHA256.hash($0) }) }

    /// FIPS 180-4 examples and the empty string.
    @Test func knownVectors() {
        #expect(digest("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(digest("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(digest("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    /// Streaming in pieces of every size gives the one-shot digest (block boundaries 55, 56, 64).
    @Test func streamingAgreesWithOneShot() {
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let whole = data.withUnsafeBytes { SHA256.hash($0) }
        for piece in [1, 7, 55, 56, 63, 64, 65, 999] {
            var s = SHA256()
            var i = 0
            while i < data.count {
                let j = min(i + piece, data.count)
                s.update(Array(data[i..<j]))
                i = j
            }
            #expect(s.finalize() == whole, "piece size \(piece)")
        }
        // 1,000,000 'a': the FIPS long example.
        let million = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        #expect(SHA256.hex(million.withUnsafeBytes { SHA256.hash($0) }) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}
