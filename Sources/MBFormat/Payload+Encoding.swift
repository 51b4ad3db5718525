import MBCore

/// Encoding of tensor directory entries and payloads (Schemas/mbm-format.md, "Tensor directory").
enum PayloadCodec {
    /// The directory fields after offset and length, and the payload bytes to store.
    struct Encoded {
        var descriptor: [UInt8]
        var payload: [UInt8]
        /// For raw payloads the bytes are written straight from here, not copied into `payload`.
        var rawSlice: ByteSlice?
        var maskBytes: Int
        var length: Int { rawSlice?.count ?? payload.count }
    }

    static func encode(_ t: StoredTensor) throws(MBMError) -> Encoded {
        switch t.payload {
        case .raw(let bytes):
            return Encoded(descriptor: [], payload: [], rawSlice: bytes, maskBytes: 0)
        case .strings(let list):
            var w = ByteWriter()
            for s in list { w.blob(s) }
            return Encoded(descriptor: [], payload: w.bytes, rawSlice: nil, maskBytes: 0)
        case .binarized(let b):
            return try encodeBinarized(b, tensor: t)
        }
    }

    static func encodeBinarized(_ b: BinarizedPayload, tensor t: StoredTensor) throws(MBMError) -> Encoded {
        func fail(_ m: String) -> MBMError { MBMError(.invalid, file: "<writer>", place: "tensor '\(t.name)'", m) }
        guard (1...8).contains(b.levels), b.scales.count == b.levels, b.signWords.count == b.levels, b.signBitCounts.count == b.levels else {
            throw fail("binarized payload needs 1...8 levels with scales, signs and counts for each")
        }
        let groups = b.channelAxis.map { axis in axis >= 0 && axis < t.shape.count ? t.shape[axis] : -1 } ?? 1
        guard groups >= 0, b.scales.allSatisfy({ $0.count == groups }) else {
            throw fail("binarized payload needs \(groups) scales per level for shape \(t.shape)")
        }
        for (k, level) in b.scales.enumerated() {
            if let g = level.firstIndex(where: { !$0.isFinite }) { throw fail("level \(k + 1) scale of group \(g) is \(level[g])") }
        }
        var levelCounts = [Int](repeating: t.elementCount, count: b.levels)
        var maskStream: [UInt8] = []
        var frequencies: [UInt16] = []
        if let mask = b.mask {
            guard mask.count == t.elementCount else { throw fail("mask has \(mask.count) entries for \(t.elementCount) elements") }
            var counts = [Int](repeating: 0, count: b.levels)
            var symbols = [UInt8](repeating: 0, count: mask.count)
            for (i, m) in mask.enumerated() {
                guard m >= 1, Int(m) <= b.levels else { throw fail("mask entry \(i) is \(m), outside 1...\(b.levels)") }
                counts[Int(m) - 1] += 1
                symbols[i] = m - 1
            }
            var atLeast = 0
            for k in stride(from: b.levels - 1, through: 0, by: -1) {
                atLeast += counts[k]
                levelCounts[k] = atLeast
            }
            frequencies = MaskCoder.frequencies(counts: counts)
            do {
                maskStream = try symbols.withUnsafeBufferPointer { try MaskCoder.encode($0, frequencies: frequencies) }
            } catch {
                throw fail((error as? MaskCoder.Failure)?.message ?? "\(error)")
            }
        }
        guard levelCounts == b.signBitCounts else {
            throw fail("sign bit counts \(b.signBitCounts) disagree with the mask (\(levelCounts))")
        }
        var d = ByteWriter()
        d.u8(UInt8(b.levels))
        d.u8(b.channelAxis == nil ? 0 : 1)
        d.u8(b.mask == nil ? 0 : 1)
        d.u8(0)
        d.i32(Int32(b.channelAxis ?? -1))
        d.u32(UInt32(b.groupCount))
        d.u64(UInt64(maskStream.count))
        for f in frequencies { d.u16(f) }
        for n in b.signBitCounts { d.u64(UInt64(n)) }

        var p = ByteWriter()
        for level in b.scales { for s in level { p.f32(s) } }
        p.pad(to: 8)
        for (k, words) in b.signWords.enumerated() {
            guard words.count == (b.signBitCounts[k] + 63) / 64 * 8 else {
                throw fail("level \(k + 1) has \(words.count) sign bytes for \(b.signBitCounts[k]) bits")
            }
            words.withBytes { p.raw($0) }
        }
        p.raw(maskStream)
        return Encoded(descriptor: d.bytes, payload: p.bytes, rawSlice: nil, maskBytes: maskStream.count)
    }

    /// Reads one directory entry (after name/type/shape/encoding/offset/length), validating the
    /// payload at `payload` (already range-checked) against it.
    static func decode(
        encoding: TensorEncoding, name: String, elementType: ElementType, shape: [Int], count: Int,
        directory r: inout ByteReader, payload: ByteSlice, verifyScales: Bool
    ) throws(DecodeFailure) -> StoredTensor {
        var t = StoredTensor(name: name, elementType: elementType, shape: shape, payload: .raw(payload))
        t.storedBytes = payload.count
        switch encoding {
        case .raw:
            guard elementType != .string, let need = elementType.rawByteCount(elements: count) else {
                throw DecodeFailure("raw encoding cannot hold \(elementType.name) elements")
            }
            guard payload.count == need else {
                throw DecodeFailure("raw payload is \(payload.count) bytes; shape \(shape) of \(elementType.name) needs \(need)")
            }
        case .strings:
            guard elementType == .string else { throw DecodeFailure("strings encoding for a \(elementType.name) tensor") }
            var list: [[UInt8]] = []
            try payload.withBytes { (bytes: UnsafeRawBufferPointer) throws(DecodeFailure) in
                var p = ByteReader(bytes)
                do {
                    for _ in 0..<count { list.append(try p.blob("string")) }
                } catch {
                    throw DecodeFailure("string payload: \(error)")
                }
                guard p.isAtEnd else { throw DecodeFailure("string payload has \(p.remaining) bytes after its \(count) strings") }
            }
            t.payload = .strings(list)
        case .binarized:
            let (b, maskBytes) = try decodeBinarized(shape: shape, count: count, directory: &r, payload: payload, verifyScales: verifyScales)
            guard elementType == .float || elementType == .float16 || elementType == .bfloat16 || elementType == .double else {
                throw DecodeFailure("binarized payload for a \(elementType.name) tensor")
            }
            t.payload = .binarized(b)
            t.maskBytes = maskBytes
        }
        return t
    }

    struct DecodeFailure: Error {
        var message: String
        init(_ message: String) { self.message = message }
    }

    static func decodeBinarized(
        shape: [Int], count: Int, directory r: inout ByteReader, payload: ByteSlice, verifyScales: Bool
    ) throws(DecodeFailure) -> (BinarizedPayload, Int) {
        let levels: Int, scaleMode: UInt8, maskCoding: UInt8, axis: Int32, groups: Int, maskBytes: Int
        var frequencies: [UInt16] = []
        var bitCounts: [Int] = []
        do {
            levels = Int(try r.u8("levels"))
            scaleMode = try r.u8("scale mode")
            maskCoding = try r.u8("mask coding")
            _ = try r.u8("reserved")
            axis = try r.i32("channel axis")
            groups = Int(try r.u32("group count"))
            let mb = try r.u64("mask bytes")
            guard (1...8).contains(levels) else { throw DecodeFailure("\(levels) levels; expected 1...8") }
            guard scaleMode <= 1 else { throw DecodeFailure("unknown scale mode \(scaleMode)") }
            guard maskCoding <= 1 else { throw DecodeFailure("unknown mask coding \(maskCoding)") }
            guard mb <= UInt64(payload.count) else { throw DecodeFailure("mask of \(mb) bytes does not fit the \(payload.count)-byte payload") }
            maskBytes = Int(mb)
            if maskCoding == 1 { for _ in 0..<levels { frequencies.append(try r.u16("mask frequency")) } }
            for _ in 0..<levels {
                let n = try r.u64("sign bit count")
                guard n <= UInt64(count) else { throw DecodeFailure("level has \(n) sign bits for \(count) entries") }
                bitCounts.append(Int(n))
            }
        } catch let e as ByteReader.Failure {
            throw DecodeFailure("binarized descriptor: \(e)")
        } catch let e as DecodeFailure {
            throw e
        } catch {
            throw DecodeFailure("\(error)")
        }
        // Groups must match the scale mode and shape.
        let expectedGroups: Int
        if scaleMode == 0 {
            guard axis == -1 else { throw DecodeFailure("tensor scales with channel axis \(axis)") }
            expectedGroups = 1
        } else {
            guard axis >= 0, Int(axis) < shape.count else { throw DecodeFailure("channel axis \(axis) outside shape \(shape)") }
            expectedGroups = shape[Int(axis)]
        }
        guard groups == expectedGroups else { throw DecodeFailure("\(groups) scale groups; shape \(shape) needs \(expectedGroups)") }
        if maskCoding == 0 {
            guard maskBytes == 0 else { throw DecodeFailure("uniform mask with \(maskBytes) stream bytes") }
        }
        // Payload layout: scales, pad to 8, sign words per level, mask stream.
        let (scaleBytes, o1) = (levels * groups).multipliedReportingOverflow(by: 4)
        guard !o1 else { throw DecodeFailure("scale count overflows") }
        // Every entry has at least one bit, and level 1's signs are stored in full, so the
        // payload bounds the entry count before anything is allocated for the mask.
        guard bitCounts[0] == count else {
            throw DecodeFailure("level 1 has \(bitCounts[0]) sign bits; every one of the \(count) entries needs one")
        }
        var offset = (scaleBytes + 7) / 8 * 8
        var wordRanges: [(Int, Int)] = []
        for n in bitCounts {
            let bytes = n / 64 * 8 + (n % 64 == 0 ? 0 : 8)
            let (next, overflow) = offset.addingReportingOverflow(bytes)
            guard !overflow, next <= payload.count else {
                throw DecodeFailure("sign bits of \(bitCounts) do not fit the \(payload.count)-byte payload")
            }
            wordRanges.append((offset, bytes))
            offset = next
        }
        guard offset + maskBytes == payload.count else {
            throw DecodeFailure("payload is \(payload.count) bytes; its descriptor needs \(offset + maskBytes)")
        }
        var scales: [[Float]] = []
        var badScale: String?
        payload.withBytes { raw in
            for k in 0..<levels {
                var level: [Float] = []
                level.reserveCapacity(groups)
                for g in 0..<groups {
                    let v = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: (k * groups + g) * 4, as: UInt32.self)))
                    if verifyScales, !v.isFinite, badScale == nil { badScale = "level \(k + 1) scale of group \(g) is \(v)" }
                    level.append(v)
                }
                scales.append(level)
            }
        }
        if let badScale { throw DecodeFailure(badScale) }
        var words: [ByteSlice] = []
        for (k, (o, n)) in wordRanges.enumerated() {
            let slice = ByteSlice(storage: payload.storage, offset: payload.offset + o, count: n)
            // Padding bits past the last sign must be zero: a cheap check against damage.
            let bits = bitCounts[k]
            if bits % 64 != 0 {
                let last = slice.withBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)) }
                guard last >> UInt64(bits % 64) == 0 else { throw DecodeFailure("level \(k + 1) has non-zero padding bits") }
            }
            words.append(slice)
        }
        var mask: [UInt8]?
        var levelCounts = [Int](repeating: 0, count: levels)
        if maskCoding == 1 {
            var symbols = [UInt8](repeating: 0, count: count)
            do {
                try payload.withBytes { raw in
                    let stream = UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + maskBytes)])
                    try symbols.withUnsafeMutableBufferPointer { out in
                        try MaskCoder.decode(stream, count: count, frequencies: frequencies, into: out)
                    }
                }
            } catch {
                throw DecodeFailure((error as? MaskCoder.Failure)?.message ?? "\(error)")
            }
            var histogram = [Int](repeating: 0, count: levels)
            for i in symbols.indices {
                histogram[Int(symbols[i])] += 1
                symbols[i] += 1
            }
            var atLeast = 0
            for k in stride(from: levels - 1, through: 0, by: -1) {
                atLeast += histogram[k]
                levelCounts[k] = atLeast
            }
            mask = symbols
        } else {
            levelCounts = [Int](repeating: count, count: levels)
        }
        guard levelCounts == bitCounts else {
            throw DecodeFailure("sign bit counts \(bitCounts) disagree with the mask (\(levelCounts))")
        }
        return (BinarizedPayload(levels: levels, channelAxis: scaleMode == 0 ? nil : Int(axis), scales: scales,
                                 signWords: words, signBitCounts: bitCounts, mask: mask), maskBytes)
    }
}
