/// Edit distance with adjacent transpositions counted as one edit (optimal string alignment),
/// since swapped letters ("mxi") are the commonest typo. Short key names only, so the O(n*m)
/// table is fine.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.lowercased()), b = Array(b.lowercased())
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
    for i in 0...a.count { d[i][0] = i }
    for j in 0...b.count { d[0][j] = j }
    for i in 1...a.count {
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1) }
        }
    }
    return d[a.count][b.count]
}

/// The closest candidate when it is close enough to be a likely typo: at most 2 edits, and
/// fewer edits than half the word (so "x" does not suggest "op"). Ties go to the first candidate.
func closestMatch(to word: String, in candidates: [String]) -> String? {
    guard word.count <= 64 else { return nil }
    var best: (String, Int)?
    for c in candidates {
        let d = editDistance(word, c)
        if d <= 2, d * 2 <= max(word.count, c.count), best == nil || d < best!.1 { best = (c, d) }
    }
    return best?.0
}
