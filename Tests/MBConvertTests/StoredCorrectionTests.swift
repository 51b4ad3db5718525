import Foundation
@testable import MBConvert
import Testing

/// Recorded calibration corrections come from a file: each one that cannot be folded into a
/// graph is named before `verify` applies it (a bad axis or mismatched counts used to index out
/// of range).
@Suite struct StoredCorrectionTests {
    static func decode(_ json: String) throws -> Calibration.StoredCorrection {
        try JSONDecoder().decode(Calibration.StoredCorrection.self, from: Data(json.utf8))
    }

    @Test func wellFormedCorrectionHasNoProblem() throws {
        let c = try Self.decode(#"{"output":"y","rank":4,"axis":1,"scaleBits":[1065353216,1065353216],"shiftBits":[0,0]}"#)
        #expect(c.problem == nil)
    }

    @Test(arguments: [
        (#"{"output":"y","rank":4,"axis":1,"scaleBits":[1065353216,1065353216],"shiftBits":[0]}"#, "2 scales but 1 shifts"),
        (#"{"output":"y","rank":4,"axis":4,"scaleBits":[1065353216],"shiftBits":[0]}"#, "axis 4 outside 0..<4"),
        (#"{"output":"y","rank":2,"axis":-1,"scaleBits":[1065353216],"shiftBits":[0]}"#, "axis -1 outside 0..<2"),
        (#"{"output":"y","rank":0,"axis":0,"scaleBits":[1065353216],"shiftBits":[0]}"#, "rank 0 outside 1...64"),
        (#"{"output":"y","rank":4,"axis":1,"scaleBits":[],"shiftBits":[]}"#, "no channels"),
        (#"{"output":"","rank":4,"axis":1,"scaleBits":[1065353216],"shiftBits":[0]}"#, "no output name"),
    ])
    func malformedCorrectionIsNamed(json: String, expected: String) throws {
        #expect(try Self.decode(json).problem == expected, "\(json)")
    }
}
