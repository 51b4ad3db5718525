import MBPolicy
import Testing

/// `images:`: how PNG/JPEG calibration images become inputs, as the policy declares it.
@Suite struct ImagesPolicyTests {
    @Test func everyKeyParses() throws {
        let text = """
            version: 1
            images: {resize: 256, crop: 48x192, channels: bgr, scale: 255, mean: [103.5, 116.3, 123.7], std: 57.4, layout: nhwc}
            default: {bits: 2}
            """
        let result = Policy.parse(text: text, file: "p.txt")
        #expect(result.diagnostics.isEmpty, "\(result.diagnostics)")
        let images = try #require(result.policy?.images)
        #expect(images.resize == .shorterSide(256) && images.crop! == (48, 192))
        #expect(images.channels == "bgr" && images.scale == 255 && images.layout == "nhwc")
        #expect(images.mean == [103.5, 116.3, 123.7] && images.std == [57.4])
        #expect(images.position.line == 2)
        let exact = try #require(Policy.parse(text: "version: 1\nimages: {resize: [48, 192]}\n", file: "q.txt").policy?.images)
        #expect(exact.resize == .exact(height: 48, width: 192) && exact.crop == nil && exact.channels == nil)
        #expect(Policy.parse(text: "version: 1\ndefault: {bits: 2}\n", file: "r.txt").policy?.images == nil)
    }

    @Test(arguments: [
        ("version: 1\nimages: {resize: 0}\n", "2:18: resize must be at least 1, got 0"),
        ("version: 1\nimages: {crop: 4x}\n", "2:16: crop must be a size: a number, HxW like 48x192, or [height, width], got '4x'"),
        ("version: 1\nimages: {channels: bgra}\n", "2:20: unknown channels 'bgra'; did you mean 'bgr'?"),
        ("version: 1\nimages: {scale: 2}\n", "2:17: scale must be 1 (values in [0, 1]) or 255 (values in [0, 255]), got 2"),
        ("version: 1\nimages: {std: [1, 0]}\n", "2:15: std must not be 0"),
        ("version: 1\nimages: {mean: [a]}\n", "2:17: mean must be a number or a list of numbers (one per channel), got 'a'"),
        ("version: 1\nimages: {size: 3}\n", "2:10: unknown key 'size'; did you mean 'resize'?"),
        ("version: 1\nimages: 224\n", "2:9: images must be a mapping such as {resize: 256, crop: 224}, got '224'"),
    ])
    func badValuesAreNamedWithTheirPlace(text: String, expected: String) {
        let result = Policy.parse(text: text, file: "p.txt")
        #expect(result.diagnostics.map { "\($0.position): \($0.message)" } == [expected])
    }
}
