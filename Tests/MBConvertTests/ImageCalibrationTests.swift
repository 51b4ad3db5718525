import Foundation
import MBConvert
import MBCore
import MBImage
import MBRuntime
import TestSupport
import Testing

/// Calibration on a folder of PNG/JPEG images: decoding (libpng, libjpeg-turbo), the declared
/// preprocessing to the value, bad files named in one line, and the same `.mbm` bytes as the
/// same images preconverted to `.npy`, in one batch or streamed.
@Suite struct ImageCalibrationTests {
    let root = SharedFixtures.repositoryRoot

    /// A seeded picture with smooth gradients plus noise (JPEG keeps it close).
    static func picture(height: Int, width: Int, seed: UInt64) -> Image {
        var rng = SeededGenerator(seed: seed)
        var rgb = [UInt8](repeating: 0, count: height * width * 3)
        for y in 0..<height {
            for x in 0..<width {
                let base = [x * 255 / max(1, width - 1), y * 255 / max(1, height - 1), (x + y) * 255 / max(1, width + height - 2)]
                for c in 0..<3 { rgb[(y * width + x) * 3 + c] = UInt8(min(255, max(0, base[c] + Int(rng.nextNormal() * 6)))) }
            }
        }
        return Image(width: width, height: height, rgb: rgb)
    }

    @Test func pngDecodesExactlyAndJPEGClosely() throws {
        let image = Self.picture(height: 7, width: 5, seed: 1)
        #expect(try Image.decode(ImageEncoding.png(image), path: "a.png") == image)
        // Left half red, right half blue: the channel order survives JPEG.
        var rgb = [UInt8](repeating: 0, count: 16 * 16 * 3)
        for y in 0..<16 { for x in 0..<16 { rgb[(y * 16 + x) * 3 + (x < 8 ? 0 : 2)] = 220 } }
        let halves = Image(width: 16, height: 16, rgb: rgb)
        let decoded = try Image.decode(ImageEncoding.jpeg(halves, quality: 100), path: "b.jpg")
        #expect(decoded.width == 16 && decoded.height == 16)
        // Chroma subsampling smears the colour edge (columns 7 and 8); away from it the pixels are close.
        var far = 0
        for y in 0..<16 {
            for x in [0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15] {
                for c in 0..<3 { far = max(far, abs(Int(decoded.rgb[(y * 16 + x) * 3 + c]) - Int(halves.rgb[(y * 16 + x) * 3 + c]))) }
            }
        }
        #expect(far <= 8, "JPEG q100, away from the edge: max |Δ| \(far)")
        let left = (8 * 16 + 3) * 3, right = (8 * 16 + 12) * 3
        #expect(decoded.rgb[left] > 200 && decoded.rgb[left + 2] < 20 && decoded.rgb[right] < 20 && decoded.rgb[right + 2] > 200)
    }

    @Test func preprocessingStepsGiveTheDeclaredValues() throws {
        // Bilinear 2x2 -> 4x4 (half-pixel centres, clamped edges), one grey channel.
        let grey = Image(width: 2, height: 2, rgb: [0, 100, 200, 255].flatMap { [UInt8($0), UInt8($0), UInt8($0)] })
        var p = ImagePreprocessing()
        p.resize = .exact(.init(height: 4, width: 4))
        p.range = 255
        let big = try p.apply(grey, path: "g.png")
        #expect(Array(big[0..<4]) == [0, 25, 75, 100])
        #expect(big[4] == 50 && Array(big[12..<16]) == [200, 214, 241, 255])
        #expect(big.count == 3 * 16 && Array(big[16..<20]) == [0, 25, 75, 100])  // NCHW: the next channel
        // Center crop, BGR, [0, 255], mean/std per channel, NHWC.
        let rgb: [UInt8] = [1, 2, 3, 10, 20, 30, 40, 50, 60, 7, 8, 9]  // one row of four pixels
        var q = ImagePreprocessing()
        q.crop = .init(height: 1, width: 2)
        q.channels = .bgr
        q.range = 255
        q.mean = [10, 20, 30]
        q.std = [2, 4, 5]
        q.layout = .nhwc
        #expect(q.entryShape(height: 1, width: 4) == [1, 2, 3])
        // Pixels 1 and 2 (offset ⌊(4 - 2) / 2⌉ = 1) as B, G, R.
        let expected: [Float] = [20 / 2, 0 / 4, -20 / 5, 50 / 2, 30 / 4, 10 / 5]  // (30 - 10) / 2, (20 - 20) / 4, ...
        #expect(try q.apply(Image(width: 4, height: 1, rgb: rgb), path: "r.png") == expected)
        // Gray (BT.601, rounded) in [0, 1].
        var g = ImagePreprocessing()
        g.channels = .gray
        #expect(try g.apply(Image(width: 1, height: 1, rgb: [10, 20, 30]), path: "y.png") == [Float(18.0 / 255)])
        // The shorter side, the longer in proportion (truncated, as torchvision).
        var s = ImagePreprocessing()
        s.resize = .shorterSide(36)
        #expect(s.entryShape(height: 40, width: 48) == [3, 36, 43] && s.entryShape(height: 48, width: 40) == [3, 43, 36])
        // Grammar and settings problems.
        #expect(try ImagePreprocessing.Parse.resize("48x192") == .exact(.init(height: 48, width: 192)))
        #expect(try ImagePreprocessing.Parse.resize("256") == .shorterSide(256))
        #expect(throws: ImageError.self) { try ImagePreprocessing.Parse.size("0x4") }
        var bad = ImagePreprocessing()
        bad.mean = [0.1, 0.2]
        #expect(bad.problem == "mean has 2 values; give one, or one per channel (3 for RGB)")
        var tooBig = ImagePreprocessing()
        tooBig.crop = .init(height: 9, width: 9)
        #expect(throws: ImageError("p.png", "the image is 1x1 (height x width) after resizing; the crop 9x9 does not fit")) {
            try tooBig.apply(Image(width: 1, height: 1, rgb: [0, 0, 0]), path: "p.png")
        }
    }

    @Test func badImagesAreNamedInOneLine() throws {
        let png = ImageEncoding.png(Self.picture(height: 8, width: 8, seed: 2))
        let jpeg = ImageEncoding.jpeg(Self.picture(height: 96, width: 96, seed: 3))
        let cases: [(bytes: [UInt8], expected: String)] = [
            (Array("not an image".utf8), "x: not a PNG or JPEG image"),
            ([], "x: empty file"),
            (Array(png.prefix(png.count / 2)), "x: PNG (libpng): "),
            (Array(jpeg.prefix(jpeg.count / 2)), "x: JPEG (libjpeg): Premature end of JPEG file"),
        ]
        for (bytes, expected) in cases {
            do {
                _ = try Image.decode(bytes, path: "x")
                Issue.record("decoded \(bytes.count) bad bytes; expected \(expected)")
            } catch {
                #expect(error.description.hasPrefix(expected) && !error.description.contains("\n"), "\(error.description)")
            }
        }
    }

    /// A header that claims more pixels than the cap is refused from the header, before the pixel
    /// buffer is taken: a 67-byte PNG can claim 4 G pixels. The PNG case patches a real file's
    /// IHDR (and its CRC) to 100000 x 100000; the JPEG case lowers the cap under a real picture.
    @Test func picturesOverThePixelCapAreRefusedFromTheHeader() throws {
        var png = ImageEncoding.png(Self.picture(height: 8, width: 8, seed: 4))
        // IHDR's data starts at byte 16 (signature 8, length 4, type 4); width, height big-endian.
        for (offset, value) in [(16, UInt32(100_000)), (20, UInt32(100_000))] {
            for k in 0..<4 { png[offset + k] = UInt8(truncatingIfNeeded: value >> (24 - 8 * k)) }
        }
        let crc = Self.crc32(png[12..<29])
        for k in 0..<4 { png[29 + k] = UInt8(truncatingIfNeeded: crc >> (24 - 8 * k)) }
        let jpeg = ImageEncoding.jpeg(Self.picture(height: 40, width: 30, seed: 5))
        let cases: [(bytes: [UInt8], cap: Int, expected: String)] = [
            (png, Image.defaultMaximumPixels,
             "big.png: PNG (libpng): the header claims 100000x100000 pixels, more than the 268435456 decoded at most"),
            (jpeg, 1_000, "big.png: JPEG (libjpeg): the header claims 30x40 pixels, more than the 1000 decoded at most"),
        ]
        for (bytes, cap, expected) in cases {
            #expect(throws: ImageError(expected)) { try Image.decode(bytes, path: "big.png", maximumPixels: cap) }
        }
        #expect(try Image.decode(jpeg, path: "ok.jpg", maximumPixels: 1_200).width == 30)
    }

    /// PNG's CRC-32 (ISO 3309, reflected 0xEDB88320), bit by bit: the test's own, not zlib's.
    static func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    /// Ten pictures (PNG and JPEG, landscape and portrait) through resize, crop, BGR and
    /// mean/std: calibrating on the folder gives the bytes of calibrating on the same entries
    /// preconverted to `.npy`, in one batch and streamed in batches of 3.
    @Test func imageFolderCalibratesLikeTheSameEntriesAsNPY() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("image-calib-\(UUID().uuidString)")
        let folder = dir.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for k in 0..<10 {
            let picture = Self.picture(height: k % 3 == 0 ? 48 : 40, width: k % 3 == 0 ? 40 : 48, seed: UInt64(10 + k))
            let bytes = k % 2 == 0 ? ImageEncoding.png(picture) : ImageEncoding.jpeg(picture, quality: 90)
            try Data(bytes).write(to: folder.appendingPathComponent(String(format: "img%02d.%@", k, k % 2 == 0 ? "png" : "JPG")))
        }
        var pre = ImagePreprocessing()
        pre.resize = .shorterSide(36)
        pre.crop = .init(height: 32, width: 32)
        pre.channels = .bgr
        pre.mean = [0.406, 0.456, 0.485]
        pre.std = [0.225, 0.224, 0.229]
        // The same entries written as .npy by hand: each file decoded and preprocessed in name order.
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        let values = try names.flatMap { try pre.apply(Image.read(path: folder.appendingPathComponent($0).path), path: $0) }
        let npy = dir.appendingPathComponent("calib.npy").path
        try NPY.write(NPYArray(floats: values, shape: [10, 3, 32, 32]), to: npy)

        let model = root.appendingPathComponent("Examples/models/tiny_cnn.onnx").path
        let policy = root.appendingPathComponent("Examples/policies/post-training.txt").path
        /// The file's bytes and every correction (node, mean |a − 1|, mean |b| / σ) as text.
        func convertWithCorrections(_ calibrate: String, batch: Int?, policy: String = policy,
                                    images: ImagePreprocessing? = pre) throws -> (Data, [String]) {
            var options = Conversion.Options(force: true)
            options.calibrate = calibrate
            options.images = images
            options.calibrationBatch = batch
            options.threads = 2
            let out = dir.appendingPathComponent("m.mbm")
            let report = try Conversion.run(model: model, policy: policy, output: out.path, options: options)
            return (try Data(contentsOf: out), (report.calibration ?? []).map { "\($0.node) \($0.meanScaleChange) \($0.meanShift)" })
        }
        func convert(_ calibrate: String, batch: Int?, policy: String = policy, images: ImagePreprocessing? = pre) throws -> Data {
            try convertWithCorrections(calibrate, batch: batch, policy: policy, images: images).0
        }
        let fromNPY = try convert(npy, batch: nil)
        #expect(try convert(folder.path, batch: nil) == fromNPY, "one batch of images differs from the .npy")
        #expect(try convert(folder.path, batch: 3) == fromNPY, "images streamed in batches of 3 differ from the .npy")
        // The same preprocessing declared in the policy instead; in both places it is an error.
        let declared = dir.appendingPathComponent("declared.txt").path
        try (String(contentsOfFile: policy, encoding: .utf8)
             + "images: {resize: 36, crop: 32, channels: bgr, mean: [0.406, 0.456, 0.485], std: [0.225, 0.224, 0.229]}\n")
            .write(toFile: declared, atomically: true, encoding: .utf8)
        let viaPolicy = try convertWithCorrections(folder.path, batch: 3, policy: declared, images: nil).1
        let viaNPY = try convertWithCorrections(npy, batch: nil).1
        #expect(!viaNPY.isEmpty && viaPolicy == viaNPY, "the policy's images: gives other corrections")
        #expect {
            _ = try convert(folder.path, batch: 3, policy: declared)
        } throws: { error in
            "\(error)".hasPrefix("\(declared):") && "\(error)".contains("images: the command line gives --image-* options too")
        }

        // Without the crop the portrait and landscape pictures give different shapes: named.
        var uneven = pre
        uneven.crop = nil
        let float = try ModelLoading.load(path: model)
        #expect {
            _ = try Calibration.loadInputs(folder.path, model: float, images: uneven)
        } throws: { error in
            "\(error)".contains("img01.JPG: 40x48 (height x width) gives an entry of shape [3, 36, 43]") && "\(error)".contains("the first image [3, 43, 36]")
        }
        // A broken picture among them stops the conversion with its name, and nothing is written.
        try Data("oops".utf8).write(to: folder.appendingPathComponent("img05.png"))
        try? FileManager.default.removeItem(at: dir.appendingPathComponent("m.mbm"))
        #expect {
            _ = try convert(folder.path, batch: 3)
        } throws: { error in
            "\(error)" == "\(folder.path)/img05.png: not a PNG or JPEG image (its first bytes are neither signature)"
        }
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("m.mbm").path))
    }
}
