import MBCore
import MBRuntime

/// Named tolerances and error measures for comparing runtime outputs with references.
enum Tolerance {
    /// Shared models vs onnxruntime: worst |Δ| relative to the output's largest magnitude.
    static let sharedModelRelative: Float = 1e-4
    /// ONNX backend cases (the onnx backend test defaults are rtol 1e-3, atol 1e-7; we allow atol 1e-5).
    static let backendRelative: Float = 1e-3
    static let backendAbsolute: Float = 1e-5
    /// Backend cases whose outputs are float16: the reference rounds every intermediate to half
    /// precision (unit roundoff 2^-11 ≈ 4.9e-4) where the runtime computes in float.
    static let backendFloat16Relative: Float = 4e-3
    /// The same for bfloat16 outputs (unit roundoff 2^-8 ≈ 3.9e-3).
    static let backendBFloat16Relative: Float = 3e-2
}

struct Difference: CustomStringConvertible {
    var maxAbs: Float = 0
    var refScale: Float = 0
    /// Index of the worst element.
    var worst = 0
    var shapeMismatch: String?
    /// max |Δ| / max |reference| (0 for all-zero references with zero error).
    var relative: Float { maxAbs == 0 ? 0 : maxAbs / max(refScale, Float.leastNormalMagnitude) }
    /// Elements outside atol + rtol·|ref|.
    var outside = 0

    var description: String {
        if let shapeMismatch { return shapeMismatch }
        return "max |Δ| \(maxAbs) (element \(worst)), relative to max |ref| \(refScale): \(relative), \(outside) outside tolerance"
    }
}

func compare(_ got: MBTensor, _ expected: MBTensor, rtol: Float = Tolerance.backendRelative, atol: Float = Tolerance.backendAbsolute) -> Difference {
    var d = Difference()
    guard got.shape == expected.shape else {
        d.shapeMismatch = "shape \(got.shape) (\(got.elementType.name)) vs expected \(expected.shape) (\(expected.elementType.name))"
        return d
    }
    let a = got.floats, b = expected.floats
    for i in 0..<b.count {
        let ref = b[i], v = a[i]
        d.refScale = max(d.refScale, abs(ref))
        if ref.isNaN && v.isNaN { continue }
        if v == ref { continue }  // also equal infinities, whose difference is NaN
        let diff = abs(v - ref)
        if !(diff <= d.maxAbs) || diff.isNaN { d.maxAbs = diff.isNaN ? .infinity : diff; d.worst = i }
        if !(diff <= atol + rtol * abs(ref)) { d.outside += 1 }
    }
    return d
}
