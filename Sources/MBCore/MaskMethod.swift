/// How the mask M is chosen (HBB.md section 3); the raw values are the names policies, reports
/// and the CLI use. Only the first four are in the paper.
public enum MaskMethod: String, CaseIterable, Sendable, Hashable, CustomStringConvertible {
    /// Fewer bits to the values whose magnitude is closest to the mean magnitude (the paper's
    /// Algorithm 1 made precise; the default).
    case middleOut = "middle-out"
    /// Fewer bits to the largest magnitudes first (key -|T|).
    case topDown = "top-down"
    /// Fewer bits to the smallest magnitudes first (key |T|).
    case bottomUp = "bottom-up"
    /// A seeded random permutation.
    case random = "random"
    /// NOT in the paper: Middle-Out ranked on the residual of the previous level.
    case residualMiddleOut = "residual-middle-out"

    public var description: String { rawValue }

    /// The column title the paper uses.
    public var title: String {
        switch self {
        case .middleOut: return "Middle-Out"
        case .topDown: return "Top-Down"
        case .bottomUp: return "Bottom-Up"
        case .random: return "Random"
        case .residualMiddleOut: return "Residual-Middle-Out"
        }
    }
}
