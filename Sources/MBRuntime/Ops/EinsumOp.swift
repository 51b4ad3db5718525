import MBCore

/// Einsum: terms of letters (and one `...` each for broadcast dimensions), explicit (`->`) or
/// implicit output (the letters used once, in alphabetical order, after the broadcast ones).
/// A plain loop over every label, accumulating in Double (correct for any equation; not fast).
enum EinsumOp {
    struct Equation {
        /// Per input, its axes as labels (broadcast dimensions get labels after "z").
        var inputs: [[Character]]
        var output: [Character]
    }

    /// Labels standing for the dimensions `...` covers, as many as `count`, outermost first.
    static func ellipsisLabels(_ count: Int) -> [Character] {
        (0..<count).map { Character(UnicodeScalar(0x100 + $0)!) }
    }

    static func parse(_ text: String, ranks: [Int]) throws -> Equation {
        let cleaned = text.filter { !$0.isWhitespace }
        let sides = cleaned.pieces(separatedBy: "->")
        guard sides.count <= 2 else { throw OpError("equation '\(text)' has more than one '->'") }
        let terms = sides[0].pieces(separatedBy: ",")
        guard terms.count == ranks.count else { throw OpError("equation '\(text)' has \(terms.count) terms for \(ranks.count) inputs") }
        /// A term's letters before and after its `...` (nil when it has none).
        func letters(_ term: String) throws -> (before: [Character], after: [Character]?) {
            let parts = term.pieces(separatedBy: "...")
            guard parts.count <= 2, parts.joined().allSatisfy({ $0.isLetter && $0.isASCII }) else {
                throw OpError("term '\(term)' of '\(text)' is not letters with at most one '...'")
            }
            return (Array(parts[0]), parts.count == 2 ? Array(parts[1]) : nil)
        }
        let split = try terms.map(letters)
        var broadcastRank = 0
        for ((before, after), rank) in zip(split, ranks) {
            let letters = before.count + (after?.count ?? 0)
            guard after != nil ? letters <= rank : letters == rank else {
                throw OpError("equation '\(text)' has \(letters) letters for an input of rank \(rank)")
            }
            if after != nil { broadcastRank = max(broadcastRank, rank - letters) }
        }
        // Every ellipsis ends at the same label, as broadcasting aligns dimensions from the right.
        let ellipsis = ellipsisLabels(broadcastRank)
        let inputs = zip(split, ranks).map { term, rank -> [Character] in
            guard let after = term.after else { return term.before }
            return term.before + ellipsis.suffix(rank - term.before.count - after.count) + after
        }
        let output: [Character]
        if sides.count == 2 {
            let (before, after) = try letters(sides[1])
            output = after.map { before + ellipsis + $0 } ?? before
        } else {
            var counts: [Character: Int] = [:]
            for term in inputs { for l in term where l.isASCII { counts[l, default: 0] += 1 } }
            output = ellipsis + counts.filter { $0.value == 1 }.keys.sorted()
        }
        let known = Set(inputs.joined())
        if let unknown = output.first(where: { !known.contains($0) }) { throw OpError("output label '\(unknown)' of '\(text)' appears in no input") }
        return Equation(inputs: inputs, output: output)
    }

    static let table: [String: OpTable.Compile] = [
        "Einsum": { n in
            let text = try n.string("equation", default: "")
            guard !text.isEmpty else { throw n.bad("attribute 'equation' is required") }
            return { i, c in
                let xs = try (0..<i.count).map { try i.float($0, "Inputs") }
                let eq = try parse(text, ranks: xs.map(\.rank))
                // Each label's size; 1 broadcasts against anything.
                var size: [Character: Int] = [:]
                for (x, labels) in zip(xs, eq.inputs) {
                    for (d, l) in labels.enumerated() {
                        let s = x.shape[d]
                        if let known = size[l], known != s {
                            guard known == 1 || s == 1 else { throw OpError("label '\(l)' has sizes \(known) and \(s) in '\(text)'") }
                            size[l] = max(known, s)
                        } else if size[l] == nil {
                            size[l] = s
                        }
                    }
                }
                let outShape = eq.output.map { size[$0] ?? 1 }
                let summed = Array(Set(eq.inputs.joined()).subtracting(eq.output)).sorted()
                let all = eq.output + summed
                let extents = all.map { size[$0] ?? 1 }
                // Per input: the stride of each label in `all` (0 when absent or broadcast).
                let strides: [[Int]] = zip(xs, eq.inputs).map { x, labels in
                    let st = contiguousStrides(x.shape)
                    return all.map { l in
                        var s = 0
                        for (d, m) in labels.enumerated() where m == l && x.shape[d] != 1 { s += st[d] }
                        return s
                    }
                }
                let y = try c.alloc(.float, outShape)
                let dst = y.mutable(Float.self)
                let outCount = outShape.reduce(1, *), sumCount = summed.map { size[$0] ?? 1 }.reduce(1, *)
                let pointers = xs.map { $0.pointer(Float.self) }
                var index = Array(repeating: 0, count: all.count)
                for o in 0..<outCount {
                    var acc = 0.0
                    for _ in 0..<sumCount {
                        var product = 1.0
                        for (k, p) in pointers.enumerated() {
                            var off = 0
                            for d in 0..<all.count { off += index[d] * strides[k][d] }
                            product *= Double(p[off])
                        }
                        acc += product
                        // Advance the summed labels (the innermost part of `index`).
                        var d = all.count - 1
                        while d >= eq.output.count {
                            index[d] += 1
                            if index[d] < extents[d] { break }
                            index[d] = 0
                            d -= 1
                        }
                    }
                    dst[o] = Float(acc)
                    var d = eq.output.count - 1
                    while d >= 0 {
                        index[d] += 1
                        if index[d] < extents[d] { break }
                        index[d] = 0
                        d -= 1
                    }
                }
                return [y]
            }
        },
    ]
}

private extension String {
    /// Foundation's `components(separatedBy:)` from the standard library (the runtime does not
    /// import Foundation): every piece, empty ones included.
    func pieces(separatedBy separator: String) -> [String] {
        split(separator: separator, omittingEmptySubsequences: false).map(String.init)
    }
}
