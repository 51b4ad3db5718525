#if canImport(CPNG) && canImport(CJPEG)
import CJPEG
import CPNG
import Foundation
import MBImage

/// PNG and JPEG encoders for the tests' image fixtures (libpng, libjpeg-turbo; the product only decodes).
public enum ImageEncoding {
    /// `image` as a PNG file's bytes (lossless).
    public static func png(_ image: Image) -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        let status = image.rgb.withUnsafeBufferPointer { mb_png_encode($0.baseAddress, UInt32(image.width), UInt32(image.height), 3, &out, &size) }
        precondition(status == 0 && out != nil, "libpng could not encode a \(image.width)x\(image.height) image")
        defer { free(out) }
        return Array(UnsafeBufferPointer(start: out, count: size))
    }

    /// `image` as a baseline JPEG file's bytes at `quality` (1...100).
    public static func jpeg(_ image: Image, quality: Int = 95) -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        let status = image.rgb.withUnsafeBufferPointer {
            mb_jpeg_encode_rgb($0.baseAddress, UInt32(image.width), UInt32(image.height), Int32(quality), &out, &size)
        }
        precondition(status == 0 && out != nil, "libjpeg could not encode a \(image.width)x\(image.height) image")
        defer { free(out) }
        return Array(UnsafeBufferPointer(start: out, count: size))
    }
}
#endif
