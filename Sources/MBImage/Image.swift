#if canImport(CPNG) && canImport(CJPEG)
import CJPEG
import CPNG
#endif
import Foundation

/// A decoded picture: 8-bit RGB pixels, rows top to bottom, interleaved (R, G, B per pixel).
public struct Image: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var rgb: [UInt8]

    public init(width: Int, height: Int, rgb: [UInt8]) {
        precondition(rgb.count == width * height * 3, "\(rgb.count) bytes for \(width)x\(height) RGB")
        self.width = width
        self.height = height
        self.rgb = rgb
    }

    /// The file types read, by extension (case-insensitive).
    public static let extensions: Set<String> = ["png", "jpg", "jpeg"]

    /// The most pixels `read`/`decode` accept by default: 2^28 (a 16384 x 16384 picture, 1 GiB as
    /// RGBA while decoding). A PNG or JPEG header can claim up to 4 G pixels in a few bytes; the
    /// claim is checked before any pixel memory is taken, like PIL's decompression-bomb limit.
    public static let defaultMaximumPixels = 1 << 28

    public static func isImage(_ path: String) -> Bool {
        extensions.contains((path as NSString).pathExtension.lowercased())
    }

    /// Decodes a PNG (libpng) or JPEG (libjpeg-turbo) file, told apart by its first bytes (not
    /// its name). PNG alpha is dropped, not composited (as PIL's `convert("RGB")` and OpenCV's
    /// `imread` do); grayscale files come out with R = G = B; 16-bit PNGs are reduced to 8 bits by
    /// libpng. A truncated or corrupt file is an error (libjpeg's warnings included), never a
    /// partly grey picture.
    public static func read(path: String, maximumPixels: Int = defaultMaximumPixels) throws(ImageError) -> Image {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe) } catch {
            throw ImageError(path, FileManager.default.fileExists(atPath: path) ? "cannot read the file" : "no such file")
        }
        return try decode(Array(data), path: path, maximumPixels: maximumPixels)
    }

    /// Decodes PNG or JPEG bytes; `path` names them in errors.
    public static func decode(_ bytes: [UInt8], path: String, maximumPixels: Int = defaultMaximumPixels) throws(ImageError) -> Image {
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        let isPNG = bytes.starts(with: png), isJPEG = bytes.starts(with: [0xFF, 0xD8, 0xFF])
        guard isPNG || isJPEG else {
            throw ImageError(path, bytes.isEmpty ? "empty file (expected a PNG or JPEG image)" : "not a PNG or JPEG image (its first bytes are neither signature)")
        }
        #if canImport(CPNG) && canImport(CJPEG)
        var pixels: UnsafeMutablePointer<UInt8>?
        var width: UInt32 = 0, height: UInt32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = bytes.withUnsafeBufferPointer { b in
            message.withUnsafeMutableBufferPointer { m in
                let cap = UInt64(max(0, maximumPixels))
                return isPNG ? mb_png_decode_rgba(b.baseAddress, b.count, cap, &pixels, &width, &height, m.baseAddress, m.count)
                             : mb_jpeg_decode_rgb(b.baseAddress, b.count, cap, &pixels, &width, &height, m.baseAddress, m.count)
            }
        }
        guard status == 0, let pixels else {
            let why = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw ImageError(path, "\(isPNG ? "PNG (libpng)" : "JPEG (libjpeg)"): \(why.isEmpty ? "cannot decode" : why)")
        }
        defer { free(pixels) }
        let n = Int(width) * Int(height)
        guard n > 0 else { throw ImageError(path, "the image has no pixels (\(width)x\(height))") }
        var rgb = [UInt8](repeating: 0, count: n * 3)
        if isPNG {
            for i in 0..<n {
                rgb[3 * i] = pixels[4 * i]
                rgb[3 * i + 1] = pixels[4 * i + 1]
                rgb[3 * i + 2] = pixels[4 * i + 2]
            }
        } else {
            rgb.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: pixels, count: n * 3) }
        }
        return Image(width: Int(width), height: Int(height), rgb: rgb)
        #else
        throw ImageError(path, "this build has no PNG/JPEG decoder (libpng and libjpeg are linked on Linux only); give .npy inputs")
        #endif
    }
}

/// Why an image cannot be used, in one line naming the file.
public struct ImageError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String
    public init(_ path: String, _ problem: String) { description = "\(path): \(problem)" }
    public init(_ message: String) { description = message }
}
