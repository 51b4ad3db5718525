import MBCore

/// Post-processing of detection models: NonMaxSuppression.
enum DetectionOps {
    /// A box as [x_min, x_max, y_min, y_max], from corners in either order or a center and size.
    static func extent(_ b: UnsafePointer<Float>, centered: Bool) -> (Float, Float, Float, Float) {
        if centered {
            let hw = b[2] / 2, hh = b[3] / 2
            return (b[0] - hw, b[0] + hw, b[1] - hh, b[1] + hh)
        }
        return (min(b[1], b[3]), max(b[1], b[3]), min(b[0], b[2]), max(b[0], b[2]))
    }

    /// Whether two boxes overlap by more than `threshold` (intersection over union); empty or
    /// degenerate boxes never suppress.
    static func suppresses(_ a: (Float, Float, Float, Float), _ b: (Float, Float, Float, Float), threshold: Float) -> Bool {
        let ix0 = max(a.0, b.0), ix1 = min(a.1, b.1)
        guard ix1 > ix0 else { return false }
        let iy0 = max(a.2, b.2), iy1 = min(a.3, b.3)
        guard iy1 > iy0 else { return false }
        let intersection = (ix1 - ix0) * (iy1 - iy0)
        let areaA = (a.1 - a.0) * (a.3 - a.2), areaB = (b.1 - b.0) * (b.3 - b.2)
        let union = areaA + areaB - intersection
        guard intersection > 0, areaA > 0, areaB > 0, union > 0 else { return false }
        return intersection / union > threshold
    }

    static let table: [String: OpTable.Compile] = [
        "NonMaxSuppression": { n in
            let centered = try n.int("center_point_box", default: 0) != 0
            return { i, c in
                let boxes = try i.float(0, "boxes"), scores = try i.float(1, "scores")
                guard boxes.rank == 3, boxes.shape[2] == 4, scores.rank == 3, scores.shape[0] == boxes.shape[0], scores.shape[2] == boxes.shape[1] else {
                    throw OpError("boxes \(boxes.shape) must be [batches, boxes, 4] and scores \(scores.shape) [batches, classes, boxes]")
                }
                // Absent limits select nothing (a zero box count), as ONNX defines.
                let perClass = max(try i[2].flatMap { $0.count > 0 ? try IndexingOps.scalarInt($0, "max_output_boxes_per_class") : nil } ?? 0, 0)
                let iou = try i[3].flatMap { $0.count > 0 ? try floatScalar($0) : nil } ?? 0
                let scoreThreshold = try i[4].flatMap { $0.count > 0 ? try floatScalar($0) : nil }
                let (batches, classes, count) = (scores.shape[0], scores.shape[1], scores.shape[2])
                var selected: [Int64] = []
                let box = boxes.pointer(Float.self), score = scores.pointer(Float.self)
                for b in 0..<batches {
                    let extents = (0..<count).map { extent(box + (b * count + $0) * 4, centered: centered) }
                    for cl in 0..<classes {
                        let s = score + (b * classes + cl) * count
                        // Highest score first; equal scores keep the lower box index first.
                        var candidates = (0..<count).filter { k in scoreThreshold.map { s[k] > $0 } ?? true }
                        candidates.sort { s[$0] != s[$1] ? s[$0] > s[$1] : $0 < $1 }
                        var kept: [Int] = []
                        for k in candidates where kept.count < perClass {
                            if kept.contains(where: { suppresses(extents[k], extents[$0], threshold: iou) }) { continue }
                            kept.append(k)
                            selected += [Int64(b), Int64(cl), Int64(k)]
                        }
                    }
                }
                return [MBTensor(shape: [selected.count / 3, 3], int64s: selected)]
            }
        },
    ]
}
