/// Levenshtein distance over characters (short key names only, so the O(n*m) table is fine).
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.lowercased()), b = Array(b.lowercased())
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
            current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
        }
        swap(&previous, &current)
    }
    return previous[b.count]
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

/// " (did you mean 'bits'?)" or "".
func didYouMean(_ word: String, _ candidates: [String]) -> String {
    closestMatch(to: word, in: candidates).map { "; did you mean '\($0)'?" } ?? ""
}
