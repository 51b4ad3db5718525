import MBImage
import MBPolicy

extension ImagePreprocessing {
    /// The policy's `images:` as the preprocessing it declares (unset steps at their defaults).
    init(_ images: Policy.Images) {
        self.init()
        switch images.resize {
        case .shorterSide(let s)?: resize = .shorterSide(s)
        case .exact(let h, let w)?: resize = .exact(.init(height: h, width: w))
        case nil: resize = .none
        }
        crop = images.crop.map { Size(height: $0.height, width: $0.width) }
        channels = images.channels.flatMap(Channels.init(rawValue:)) ?? .rgb
        range = images.scale ?? 1
        mean = images.mean ?? []
        std = images.std ?? []
        layout = images.layout.flatMap(Layout.init(rawValue:)) ?? .nchw
    }

    /// The preprocessing of a conversion's calibration images: the command line's (`given`), or
    /// the policy's `images:`, or the defaults. Both at once is an error: one place says it.
    static func resolve(_ given: ImagePreprocessing?, policy: Policy) throws -> ImagePreprocessing {
        switch (given, policy.images) {
        case (_?, let images?):
            throw ConversionError(PolicyDiagnostic(file: policy.file, position: images.position,
                                                   message: "images: the command line gives --image-* options too; declare the preprocessing in one place").description)
        case (let given?, nil):
            return given
        case (nil, let images?):
            let p = ImagePreprocessing(images)
            if let problem = p.problem {
                throw ConversionError(PolicyDiagnostic(file: policy.file, position: images.position, message: "images: \(problem)").description)
            }
            return p
        case (nil, nil):
            return ImagePreprocessing()
        }
    }
}
