import ArgumentParser
import Foundation
import MBConvert
import MBCore
import MBFormat
import MBRuntime

/// `mbbench frontier`: stored size against kept answers for a grid of policies, each converted
/// with and without calibration inputs and evaluated on separate inputs.
struct FrontierBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "frontier",
        abstract: "Stored bits per weight against top-1 agreement, margin-aware agreement and cosine, for a grid of policies.",
        discussion: """
            Each policy (the built-in grid, or every .txt in --policies) is converted without and with \
            --calibrate (policies that need calibration inputs, 'fit: output' or 'allocate: sensitivity', \
            only with), then run on the evaluation inputs and compared with the float model on the same \
            runtime. Stored bits per weight count everything stored for every weight the policy governs \
            (signs, masks, scales, kept floats; the first layer included) over all of them; the whole \
            file's bits per weight are listed too. Top-1 and margin-aware agreement apply to class \
            scores ([inputs, classes] outputs); for embeddings and regressions read the row cosine (mean \
            over inputs), the SNR against the spread of the float outputs over the inputs, and the mean \
            absolute error. --csv writes the same rows.
            """
    )

    @OptionGroup var data: ClassifierData

    @Option(help: "A policy .txt file, or a folder of them, to measure instead of the built-in grid (repeatable).")
    var policies: [String] = []

    @Flag(help: "Measure the built-in grid as well as --policies.")
    var withGrid = false

    @Option(help: "Only the policies whose name contains this text (repeatable; any may match).")
    var only: [String] = []

    @Option(help: "Also write the table as CSV to this file.")
    var csv: String?

    @Option(help: "Run the evaluation inputs this many at a time (0: all at once), for models with large activations.")
    var evalBatch = 0

    /// The built-in grid: the paper's mixes, homogeneous residual bits, weight and output fit,
    /// tensor scales and float16 channel scales.
    static var grid: [(name: String, text: String)] {
        var out: [(String, String)] = []
        let storages = [("paper 70/20/10", "mix: {1: 0.7, 2: 0.2, 3: 0.1}"), ("2-bit", "bits: 2"), ("3-bit", "bits: 3")]
        let scales = [("tensor", "scale: tensor"), ("channel f16", "scale: channel\n  scale_type: float16")]
        for (sName, storage) in storages {
            for (cName, scale) in scales {
                for fit in ["weights", "output"] {
                    let refit = fit == "output" || sName != "paper 70/20/10" ? "alternating" : "false"
                    out.append(("\(sName), \(cName), refit \(refit), fit \(fit)",
                                "version: 1\ndefault:\n  \(storage)\n  \(scale)\n  refit: \(refit)\n  fit: \(fit)\n"))
                }
            }
        }
        // Baselines (not binarized): int-n per channel with MSE clipping, k-means palettes per
        // tensor and per 32 output channels.
        for bits in [2, 3, 4, 6, 8] {
            out.append(("int\(bits) channel, clip mse", "version: 1\ndefault:\n  int: {bits: \(bits), clip: mse}\n"))
        }
        for bits in [2, 3, 4] {
            out.append(("palette\(bits) tensor", "version: 1\ndefault:\n  palette: \(bits)\n"))
            out.append(("palette\(bits) per 32 channels", "version: 1\ndefault:\n  palette: {bits: \(bits), channels: 32}\n"))
        }
        // Sensitivity targets: bits spread by each layer's measured effect on the outputs.
        for average in ["2.5", "3.0"] {
            out.append(("target \(average) sensitivity, channel f16, refit alternating",
                        "version: 1\ntarget: {average_bits: \(average), max_bits: 4, allocate: sensitivity}\ndefault:\n  scale: channel\n  scale_type: float16\n  refit: alternating\n"))
        }
        return out
    }

    func run() throws {
        let (model, calibration, eval, threads) = (data.model, data.calibration, data.eval, data.threads)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mbbench-frontier-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var list: [(name: String, path: String, text: String)] = []
        for source in policies {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: source, isDirectory: &isFolder) else { throw ValidationError("\(source): no such file or folder") }
            let files = isFolder.boolValue
                ? try FileManager.default.contentsOfDirectory(atPath: source).filter { $0.hasSuffix(".txt") }.sorted().map { (source as NSString).appendingPathComponent($0) }
                : [source]
            for path in files {
                list.append(((path as NSString).lastPathComponent, path, try String(contentsOfFile: path, encoding: .utf8)))
            }
        }
        if policies.isEmpty || withGrid {
            for (i, p) in Self.grid.enumerated() {
                let path = dir + "/grid-\(i).txt"
                try p.text.write(toFile: path, atomically: true, encoding: .utf8)
                list.append((p.name, path, p.text))
            }
        }
        if !only.isEmpty { list = list.filter { p in only.contains { p.name.contains($0) } } }
        let float = try ModelLoading.load(path: model)
        let feeds = try Calibration.loadInputs(eval, model: float)
        let reference = try Self.run(float, feeds, batch: evalBatch, threads: threads)
        let output = float.outputs[0].name
        let header = ["policy", "calibrated", "stored bits/w", "file bits/w", "top-1", "margin-aware", "cosine", "row cosine",
                      "spread SNR dB", "mean |Δ|", "convert s"]
        var rows: [[String]] = []
        for p in list {
            let needsData = p.text.contains("fit: output") || p.text.contains("sensitivity")
            for calibrate in needsData ? [true] : [false, true] {
                var options = Conversion.Options(force: true)
                options.threads = threads
                if calibrate { options.calibrate = calibration }
                let out = dir + "/m.mbm"
                let row: [String]
                do {
                    let report = try Conversion.run(model: model, policy: p.path, output: out, options: options)
                    let values = try Self.run(MBModel(contentsOf: URL(fileURLWithPath: out)), feeds, batch: evalBatch, threads: threads)
                    let check = Verify.compare(output, reference[output]!, values[output]!)
                    row = [p.name, calibrate ? "yes" : "no", String(format: "%.3f", report.totals?.bitsPerWeight ?? 0),
                           String(format: "%.3f", report.totals?.fileBitsPerWeight ?? 0),
                           check.top1Agreement.map { String(format: "%.1f%%", 100 * $0) } ?? "n/a",
                           check.marginAgreement.map { String(format: "%.1f%%", 100 * $0) } ?? "n/a",
                           String(format: "%.4f", check.cosine)] + OutputAgreement(reference[output]!.floats, values[output]!.floats, rows: feeds.values.first!.shape[0]).columns
                        + [String(format: "%.1f", report.totals?.seconds ?? 0)]
                } catch {
                    row = [p.name, calibrate ? "yes" : "no", "error: \(error)"] + Array(repeating: "", count: header.count - 3)
                }
                print(row.joined(separator: " | "))
                rows.append(row)
            }
        }
        print("\n\(model): \(feeds.values.first!.shape[0]) evaluation inputs (\(eval)), calibration \(calibration)")
        print(table(header: header, rows: rows, rightAligned: Set(2..<header.count)), terminator: "")
        if let csv {
            let quoted = ([header] + rows).map { $0.map { "\"" + $0.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }.joined(separator: ",") }
            try (quoted.joined(separator: "\n") + "\n").write(toFile: csv, atomically: true, encoding: .utf8)
        }
    }
}

extension FrontierBench {
    /// Runs `model` on float `feeds` `batch` entries (axis 0) at a time and joins the outputs
    /// along axis 0 (every input and output batched on its first axis).
    static func run(_ model: MBModel, _ feeds: [String: MBTensor], batch: Int, threads: Int) throws -> [String: MBTensor] {
        let session = model.makeSession(.init(threads: threads))
        guard let count = feeds.values.first?.shape.first, batch > 0, batch < count else { return try session.run(feeds) }
        var parts: [String: (shape: [Int], values: [Float])] = [:]
        var start = 0
        while start < count {
            let end = min(count, start + batch)
            var chunk: [String: MBTensor] = [:]
            for (name, t) in feeds {
                let inner = t.shape.dropFirst().reduce(1, *)
                chunk[name] = MBTensor(shape: [end - start] + t.shape.dropFirst(), floats: Array(t.floats[(start * inner)..<(end * inner)]))
            }
            for (name, y) in try session.run(chunk) {
                var part = parts[name] ?? (shape: [0] + y.shape.dropFirst(), values: [])
                part.shape[0] += y.shape.first ?? 0
                part.values += y.floats
                parts[name] = part
            }
            start = end
        }
        return parts.mapValues { MBTensor(shape: $0.shape, floats: $0.values) }
    }
}

/// Agreement measures for outputs that are not class scores (embeddings, regressions): the
/// mean cosine between each input's float and converted output row, the error against the
/// spread of the float outputs over the inputs (each output element's mean removed, so a large
/// constant part of a regression output does not hide the error), and the mean absolute error.
struct OutputAgreement {
    var rowCosine = 0.0, spreadSNR = 0.0, meanAbs = 0.0

    init(_ reference: [Float], _ values: [Float], rows: Int) {
        let n = reference.count, width = rows > 0 ? n / rows : n
        guard rows > 0, width > 0, values.count == n else { return }
        var mean = [Double](repeating: 0, count: width)
        for i in 0..<n { mean[i % width] += Double(reference[i]) / Double(rows) }
        var spread = 0.0, noise = 0.0, cosines = 0.0
        for r in 0..<rows {
            var dot = 0.0, na = 0.0, nb = 0.0
            for j in 0..<width {
                let a = Double(reference[r * width + j]), b = Double(values[r * width + j])
                dot += a * b; na += a * a; nb += b * b
                spread += (a - mean[j]) * (a - mean[j])
                noise += (a - b) * (a - b)
                meanAbs += abs(a - b)
            }
            cosines += na == 0 || nb == 0 ? (na == nb ? 1 : 0) : dot / (na * nb).squareRoot()
        }
        rowCosine = cosines / Double(rows)
        spreadSNR = noise == 0 ? .infinity : 10 * log10(spread / noise)
        meanAbs /= Double(n)
    }

    var columns: [String] {
        [String(format: "%.4f", rowCosine), String(format: "%.1f", spreadSNR), String(format: "%.4g", meanAbs)]
    }
}

/// `mbbench mask-entropy`: how many bits per entry a per-entry mask needs, unconditionally and
/// given a context (kernel tap, output channel, input channel, the previous entry), against what
/// the file's rANS stream spends. A context model pays only if its conditional entropy plus its
/// frequency tables (one 15-bit frequency per symbol per context) beat the stored stream.
struct MaskEntropyBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mask-entropy",
        abstract: "Conditional entropy of the stored per-entry masks of .mbm files, per context, against the stored stream."
    )

    @Argument(help: "Converted .mbm files.")
    var files: [String]

    func run() throws {
        let contexts = ["none", "kernel tap", "output channel", "input channel", "previous entry", "tap + previous"]
        var rows: [[String]] = []
        for path in files {
            let file = try MBMFile.open(path: path)
            var entries = 0, streamBits = 0, perEntryBits = 0
            var bits = [Double](repeating: 0, count: contexts.count)
            for t in file.model.graph.constants {
                guard case .binarized(let p) = t.storage, p.levels.count > 1, p.mask.contains(where: { Int($0) != p.levels.count }) else { continue }
                let shape = p.shape, n = p.count, K = p.levels.count
                let taps = shape.count >= 3 ? shape[2...].reduce(1, *) : 1
                let inner = shape.count >= 2 ? shape[1...].reduce(1, *) : n
                let channelsIn = shape.count >= 2 ? shape[1] : 1
                func context(_ c: Int, _ j: Int) -> Int {
                    let previous = j == 0 ? 0 : Int(p.mask[j - 1])
                    switch c {
                    case 1: return j % taps
                    case 2: return j / inner
                    case 3: return (j / taps) % channelsIn
                    case 4: return previous
                    case 5: return (j % taps) * (K + 1) + previous
                    default: return 0
                    }
                }
                for c in contexts.indices {
                    var counts: [Int: [Int]] = [:]
                    for j in 0..<n { counts[context(c, j), default: [Int](repeating: 0, count: K)][Int(p.mask[j]) - 1] += 1 }
                    var h = 0.0
                    for (_, row) in counts {
                        let total = Double(row.reduce(0, +))
                        for x in row where x > 0 { h -= Double(x) * log2(Double(x) / total) }
                    }
                    bits[c] += h + Double(counts.count * K * 15)
                }
                entries += n
                // What the file spends on this mask: the rANS stream plus its frequency table.
                streamBits += maskStreamBytes(p) * 8 + K * 16
                // The same with one symbol per entry (mask coding 1, what files before coding 2 stored).
                let perEntry = (try? MaskCoder.code(mask: p.mask, levels: K, shape: p.shape, blocks: false))?.stream.count ?? 0
                perEntryBits += perEntry * 8 + K * 16
            }
            guard entries > 0 else { continue }
            rows.append([URL(fileURLWithPath: path).lastPathComponent, String(entries), String(format: "%.4f", Double(streamBits) / Double(entries)),
                         String(format: "%.4f", Double(perEntryBits) / Double(entries))]
                        + bits.map { String(format: "%.4f", $0 / Double(entries)) })
        }
        let header = ["file", "mask entries", "stored", "per entry"] + contexts.map { "H(M | \($0))" }
        print(table(header: header, rows: rows, rightAligned: Set(1..<header.count)), terminator: "")
        print("bits per mask entry; \"per entry\": one rANS symbol per entry (mask coding 1), which \"stored\" undercuts for structured masks")
        print("(coding 2, one symbol per block); each conditional figure includes its frequency tables (15 bits per symbol per context)")
    }

    /// The rANS stream's length for this mask, as the writer would store it (one symbol per
    /// block for a structured mask, its block sizes counted).
    func maskStreamBytes(_ p: PackedTensor) -> Int {
        guard let coded = try? MaskCoder.code(mask: p.mask, levels: p.levels.count, shape: p.shape) else { return 0 }
        return coded.stream.count + 4 * (coded.blocks?.sizes.count ?? 0)
    }
}
