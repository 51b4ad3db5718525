import Foundation

/// The declared preprocessing that turns a decoded image into one model input entry, in this
/// order: resize, center crop, channel order, scale, mean/std, layout.
///
/// - resize: none, the shorter side to S (the longer side to ⌊S·long/short⌋, as torchvision's
///   `Resize(S)`), or exactly H×W. Bilinear with half-pixel centres and clamped edges, no
///   antialiasing (OpenCV's `INTER_LINEAR`), each result rounded to 8 bits like an image library's.
/// - crop: the centred H×W window (offsets ⌊(h − H)/2⌉, halves to even, as torchvision's `CenterCrop`).
/// - channels: RGB, BGR, or gray (Y = 0.299 R + 0.587 G + 0.114 B, rounded: ITU-R BT.601).
/// - scale: pixel / 255 · range, range 1 ([0, 1]) or 255 ([0, 255]).
/// - mean, std: (x − mean[c]) / std[c], one value for every channel or one per channel in the
///   order fed to the model (after `channels`). Default 0 and 1.
/// - layout: NCHW (C, H, W per entry) or NHWC (H, W, C).
/// Arithmetic after the 8-bit steps is in Double, rounded to float32 once.
public struct ImagePreprocessing: Sendable, Equatable, CustomStringConvertible {
    public struct Size: Sendable, Equatable, CustomStringConvertible {
        public var height: Int
        public var width: Int
        public init(height: Int, width: Int) {
            self.height = height
            self.width = width
        }
        public var description: String { "\(height)x\(width)" }
    }

    public enum Resize: Sendable, Equatable {
        case none
        case shorterSide(Int)
        case exact(Size)
    }

    public enum Channels: String, Sendable, CaseIterable { case rgb, bgr, gray }
    public enum Layout: String, Sendable, CaseIterable { case nchw, nhwc }

    public var resize: Resize = .none
    public var crop: Size?
    public var channels: Channels = .rgb
    /// 1: values in [0, 1]; 255: values in [0, 255].
    public var range: Double = 1
    public var mean: [Double] = []
    public var std: [Double] = []
    public var layout: Layout = .nchw

    public init() {}

    public var channelCount: Int { channels == .gray ? 1 : 3 }

    public var description: String {
        var parts: [String] = []
        switch resize {
        case .none: break
        case .shorterSide(let s): parts.append("resize shorter side to \(s)")
        case .exact(let size): parts.append("resize to \(size)")
        }
        if let crop { parts.append("center crop \(crop)") }
        parts.append(channels.rawValue.uppercased())
        parts.append(range == 1 ? "[0, 1]" : "[0, 255]")
        if !mean.isEmpty { parts.append("mean \(mean.map { "\($0)" }.joined(separator: ","))") }
        if !std.isEmpty { parts.append("std \(std.map { "\($0)" }.joined(separator: ","))") }
        parts.append(layout.rawValue.uppercased())
        return parts.joined(separator: ", ")
    }

    /// What is wrong with the settings themselves, or nil.
    public var problem: String? {
        if case .shorterSide(let s) = resize, s < 1 { return "resize \(s): sizes must be at least 1" }
        if case .exact(let size) = resize, size.height < 1 || size.width < 1 { return "resize \(size): sizes must be at least 1" }
        if let crop, crop.height < 1 || crop.width < 1 { return "crop \(crop): sizes must be at least 1" }
        if range != 1 && range != 255 { return "scale \(range): give 1 (values in [0, 1]) or 255 (values in [0, 255])" }
        for (name, values) in [("mean", mean), ("std", std)] where !values.isEmpty {
            if values.count != 1 && values.count != channelCount {
                return "\(name) has \(values.count) values; give one, or one per channel (\(channelCount) for \(channels.rawValue.uppercased()))"
            }
            if let bad = values.first(where: { !$0.isFinite }) { return "\(name) value \(bad) is not finite" }
        }
        if std.contains(0) { return "std must not be 0" }
        return nil
    }

    /// The shape of one entry for an image of this size after preprocessing (no batch axis).
    public func entryShape(height: Int, width: Int) -> [Int] {
        var (h, w) = resized(height: height, width: width)
        if let crop { (h, w) = (crop.height, crop.width) }
        return layout == .nchw ? [channelCount, h, w] : [h, w, channelCount]
    }

    func resized(height h: Int, width w: Int) -> (Int, Int) {
        switch resize {
        case .none: return (h, w)
        case .exact(let size): return (size.height, size.width)
        case .shorterSide(let s):
            return h <= w ? (s, max(1, Int(Double(s) * Double(w) / Double(h)))) : (max(1, Int(Double(s) * Double(h) / Double(w))), s)
        }
    }

    /// One model input entry from `image` (shape `entryShape`, values in that layout); `path`
    /// names the image in errors.
    public func apply(_ image: Image, path: String) throws(ImageError) -> [Float] {
        if let problem { throw ImageError(path, problem) }
        var img = image
        let (h, w) = resized(height: image.height, width: image.width)
        if (h, w) != (image.height, image.width) { img = Self.bilinear(image, height: h, width: w) }
        if let crop {
            guard crop.height <= img.height, crop.width <= img.width else {
                throw ImageError(path, "the image is \(img.height)x\(img.width) (height x width) after resizing; the crop \(crop) does not fit")
            }
            img = Self.centerCrop(img, crop)
        }
        let c = channelCount, n = img.width * img.height
        let order: [Int] = channels == .bgr ? [2, 1, 0] : [0, 1, 2]
        var out = [Float](repeating: 0, count: n * c)
        for ch in 0..<c {
            let m = mean.isEmpty ? 0 : mean[mean.count == 1 ? 0 : ch]
            let s = std.isEmpty ? 1 : std[std.count == 1 ? 0 : ch]
            for i in 0..<n {
                let byte: UInt8
                if channels == .gray {
                    let y = 0.299 * Double(img.rgb[3 * i]) + 0.587 * Double(img.rgb[3 * i + 1]) + 0.114 * Double(img.rgb[3 * i + 2])
                    byte = UInt8(min(255, max(0, y.rounded())))
                } else {
                    byte = img.rgb[3 * i + order[ch]]
                }
                let value = Float((Double(byte) / 255 * range - m) / s)
                out[layout == .nchw ? ch * n + i : i * c + ch] = value
            }
        }
        return out
    }

    /// Bilinear resampling with half-pixel centres and clamped edges, rounded to 8 bits.
    static func bilinear(_ image: Image, height: Int, width: Int) -> Image {
        func taps(_ size: Int, _ from: Int) -> [(Int, Int, Double)] {
            let ratio = Double(from) / Double(size)
            return (0..<size).map { d in
                let src = max(0, (Double(d) + 0.5) * ratio - 0.5)
                let i0 = min(Int(src), from - 1)
                return (i0, min(i0 + 1, from - 1), src - Double(i0))
            }
        }
        let xs = taps(width, image.width), ys = taps(height, image.height)
        var out = [UInt8](repeating: 0, count: width * height * 3)
        image.rgb.withUnsafeBufferPointer { p in
            for (y, (y0, y1, fy)) in ys.enumerated() {
                for (x, (x0, x1, fx)) in xs.enumerated() {
                    for c in 0..<3 {
                        let a = Double(p[(y0 * image.width + x0) * 3 + c]), b = Double(p[(y0 * image.width + x1) * 3 + c])
                        let d = Double(p[(y1 * image.width + x0) * 3 + c]), e = Double(p[(y1 * image.width + x1) * 3 + c])
                        let v = (a * (1 - fx) + b * fx) * (1 - fy) + (d * (1 - fx) + e * fx) * fy
                        out[(y * width + x) * 3 + c] = UInt8(min(255, max(0, v.rounded())))
                    }
                }
            }
        }
        return Image(width: width, height: height, rgb: out)
    }

    static func centerCrop(_ image: Image, _ size: Size) -> Image {
        let top = Int((Double(image.height - size.height) / 2).rounded(.toNearestOrEven))
        let left = Int((Double(image.width - size.width) / 2).rounded(.toNearestOrEven))
        var out: [UInt8] = []
        out.reserveCapacity(size.height * size.width * 3)
        for y in top..<(top + size.height) {
            let start = ((y * image.width) + left) * 3
            out += image.rgb[start..<(start + size.width * 3)]
        }
        return Image(width: size.width, height: size.height, rgb: out)
    }
}

extension ImagePreprocessing {
    /// The option and policy value grammars; each error says what is wrong.
    public enum Parse {
        /// `224` or `48x192` (height x width).
        public static func size(_ text: String) throws(ImageError) -> Size {
            let parts = text.lowercased().split(separator: "x", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard (1...2).contains(parts.count), parts.allSatisfy({ ($0 ?? 0) >= 1 }) else {
                throw ImageError("expected a size like 224 or 48x192 (height x width, at least 1), got '\(text)'")
            }
            return Size(height: parts[0]!, width: parts.count == 2 ? parts[1]! : parts[0]!)
        }

        /// `256` (the shorter side) or `48x192` (exactly, height x width).
        public static func resize(_ text: String) throws(ImageError) -> Resize {
            let size = try size(text)
            return text.lowercased().contains("x") ? .exact(size) : .shorterSide(size.height)
        }

        /// `0.485,0.456,0.406` or `0.5`.
        public static func values(_ text: String) throws(ImageError) -> [Double] {
            var out: [Double] = []
            for p in text.split(separator: ",", omittingEmptySubsequences: false) {
                guard let x = Double(p.trimmingCharacters(in: .whitespaces)), x.isFinite else {
                    throw ImageError("expected numbers separated by commas, got '\(p)'")
                }
                out.append(x)
            }
            return out
        }

        /// `1` ([0, 1]) or `255` ([0, 255]).
        public static func range(_ text: String) throws(ImageError) -> Double {
            guard let x = Double(text.trimmingCharacters(in: .whitespaces)), x == 1 || x == 255 else {
                throw ImageError("expected 1 (values in [0, 1]) or 255 (values in [0, 255]), got '\(text)'")
            }
            return x
        }
    }
}
