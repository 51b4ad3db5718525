import MBCore

/// Detection models' region ops: NonMaxSuppression and RoiAlign.
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

    /// One bilinear sample of RoiAlign: four positions in the plane and their weights (all zero
    /// for samples outside [-1, size]).
    struct Sample { var at: (Int, Int, Int, Int); var w: (Float, Float, Float, Float) }

    static func sample(y yIn: Float, x xIn: Float, height: Int, width: Int) -> Sample {
        // Outside (or NaN): no contribution.
        guard yIn >= -1, yIn <= Float(height), xIn >= -1, xIn <= Float(width) else { return Sample(at: (0, 0, 0, 0), w: (0, 0, 0, 0)) }
        var y = max(yIn, 0), x = max(xIn, 0)
        var y0 = Int(y), x0 = Int(x), y1: Int, x1: Int
        if y0 >= height - 1 { y0 = height - 1; y1 = y0; y = Float(y0) } else { y1 = y0 + 1 }
        if x0 >= width - 1 { x0 = width - 1; x1 = x0; x = Float(x0) } else { x1 = x0 + 1 }
        let ly = y - Float(y0), lx = x - Float(x0), hy = 1 - ly, hx = 1 - lx
        return Sample(at: (y0 * width + x0, y0 * width + x1, y1 * width + x0, y1 * width + x1), w: (hy * hx, hy * lx, ly * hx, ly * lx))
    }

    static let table: [String: OpTable.Compile] = [
        "RoiAlign": { n in
            let mode = try n.string("mode", default: "avg")
            guard mode == "avg" || mode == "max" else { throw n.bad("mode '\(mode)' is not avg or max") }
            let outH = try n.int("output_height", default: 1), outW = try n.int("output_width", default: 1)
            guard outH > 0, outW > 0 else { throw n.bad("output_height and output_width must be positive") }
            let ratio = try n.int("sampling_ratio", default: 0)
            let spatialScale = try n.float("spatial_scale", default: 1)
            let coordinates = try n.string("coordinate_transformation_mode", default: n.opset >= 16 ? "half_pixel" : "output_half_pixel")
            guard coordinates == "half_pixel" || coordinates == "output_half_pixel" else { throw n.bad("coordinate_transformation_mode '\(coordinates)' is not half_pixel or output_half_pixel") }
            let halfPixel = coordinates == "half_pixel"
            return { i, c in
                let x = try i.float(0, "X"), rois = try i.float(1, "rois"), batchIndex = intValues(try i.required(2, "batch_indices"))
                guard x.rank == 4, rois.rank == 2, rois.shape[1] == 4, batchIndex.count == rois.shape[0] else {
                    throw OpError("X \(x.shape) must be NCHW, rois \(rois.shape) [R, 4] and batch_indices one per roi")
                }
                let (channels, height, width) = (x.shape[1], x.shape[2], x.shape[3])
                let y = try c.alloc(.float, [rois.shape[0], channels, outH, outW])
                let src = x.pointer(Float.self), box = rois.pointer(Float.self), dst = y.mutable(Float.self)
                let offset: Float = halfPixel ? 0.5 : 0
                for r in 0..<rois.shape[0] {
                    let b = batchIndex[r]
                    guard b >= 0 && b < x.shape[0] else { throw OpError("batch index \(b) is outside 0..<\(x.shape[0])") }
                    let x0 = box[r * 4] * spatialScale - offset, y0 = box[r * 4 + 1] * spatialScale - offset
                    var roiW = box[r * 4 + 2] * spatialScale - offset - x0, roiH = box[r * 4 + 3] * spatialScale - offset - y0
                    if !halfPixel { roiW = max(roiW, 1); roiH = max(roiH, 1) }
                    let binH = roiH / Float(outH), binW = roiW / Float(outW)
                    // An adaptive grid of ceil(bin size) samples, bounded (huge or NaN rois would
                    // otherwise ask for billions of samples).
                    func grid(_ bin: Float) -> Int { bin.isNaN ? 0 : Int(min(max(bin.rounded(.up), 0), 4096)) }
                    let gridH = ratio > 0 ? ratio : grid(roiH / Float(outH)), gridW = ratio > 0 ? ratio : grid(roiW / Float(outW))
                    _ = try c.checkedBytes(.float, [outH * outW, gridH, gridW, 8])
                    let count = Float(max(gridH * gridW, 1))
                    var samples: [Sample] = []
                    samples.reserveCapacity(outH * outW * max(gridH * gridW, 0))
                    for ph in 0..<outH {
                        for pw in 0..<outW {
                            for iy in 0..<max(gridH, 0) {
                                let yy = y0 + Float(ph) * binH + (Float(iy) + 0.5) * binH / Float(gridH)
                                for ix in 0..<max(gridW, 0) {
                                    let xx = x0 + Float(pw) * binW + (Float(ix) + 0.5) * binW / Float(gridW)
                                    samples.append(sample(y: yy, x: xx, height: height, width: width))
                                }
                            }
                        }
                    }
                    let perBin = max(gridH * gridW, 0)
                    for ch in 0..<channels {
                        let plane = src + (b * channels + ch) * height * width
                        for bin in 0..<(outH * outW) {
                            var value: Float = 0
                            for k in 0..<perBin {
                                let s = samples[bin * perBin + k]
                                if mode == "avg" {
                                    value += s.w.0 * plane[s.at.0] + s.w.1 * plane[s.at.1] + s.w.2 * plane[s.at.2] + s.w.3 * plane[s.at.3]
                                } else {
                                    let v = max(s.w.0 * plane[s.at.0], s.w.1 * plane[s.at.1], s.w.2 * plane[s.at.2], s.w.3 * plane[s.at.3])
                                    value = k == 0 ? v : max(value, v)
                                }
                            }
                            dst[((r * channels + ch) * outH * outW) + bin] = mode == "avg" ? value / count : value
                        }
                    }
                }
                return [y]
            }
        },
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
