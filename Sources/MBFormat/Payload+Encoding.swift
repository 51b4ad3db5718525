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
        case .quantized(let q):
            return try encodeQuantized(q, tensor: t)
        }
    }

    /// Encodings 3 (linear) and 4 (palette): descriptor `u8 bits, u8 value type, u16 reserved,
    /// i32 axis, u32 channels per group, u32 group count`; payload: the table (scales then zero
    /// points, or palettes), zero padding to 8 bytes, the code stream in u64 words.
    static func encodeQuantized(_ q: QuantizedTensor, tensor t: StoredTensor) throws(MBMError) -> Encoded {
        func fail(_ m: String) -> MBMError { MBMError(.invalid, file: "<writer>", place: "tensor '\(t.name)'", m) }
        do throws(PackedTensorError) { try q.validate() } catch { throw fail(error.message) }
        guard q.shape == t.shape else { throw fail("quantized shape \(q.shape) differs from the tensor's \(t.shape)") }
        var d = ByteWriter()
        d.u8(UInt8(q.bits))
        d.u8(q.halfValues ? 1 : 0)
        d.u16(0)
        d.i32(Int32(q.axis ?? -1))
        d.u32(UInt32(q.axis == nil ? 1 : q.channelsPerGroup))
        d.u32(UInt32(q.groupCount))
        var p = ByteWriter()
        for v in q.values { if q.halfValues { p.u16(v.float16Bits) } else { p.f32(v) } }
        p.raw(q.zeroPoints)
        p.pad(to: 8)
        for w in q.packedCodes { p.u64(w) }
        return Encoded(descriptor: d.bytes, payload: p.bytes, rawSlice: nil, maskBytes: 0)
    }

    /// A linear or palette entry's descriptor, checked against the payload's size.
    struct QuantizedDescriptor: Sendable {
        var scheme: QuantizedTensor.Scheme
        var bits: Int
        var valueType: UInt8
        var groupAxis: Int?
        var perGroup: Int
        var valueCount: Int
        var zeroBytes: Int
        var tableBytes: Int
        var codeWords: Int
    }

    static func readQuantizedDescriptor(
        scheme: QuantizedTensor.Scheme, shape: [Int], count: Int, directory r: inout ByteReader, payloadBytes: Int
    ) throws(DecodeFailure) -> QuantizedDescriptor {
        let bits: Int, valueType: UInt8, axis: Int32, perGroup: Int, groups: Int
        do {
            bits = Int(try r.u8("code bits"))
            valueType = try r.u8("value type")
            let reserved = try r.u16("reserved")
            axis = try r.i32("group axis")
            perGroup = Int(try r.u32("channels per group"))
            groups = Int(try r.u32("group count"))
            guard reserved == 0 else { throw DecodeFailure("reserved descriptor bytes are \(reserved), not zero") }
        } catch let e as ByteReader.Failure {
            throw DecodeFailure("\(scheme.rawValue) descriptor: \(e)")
        } catch let e as DecodeFailure {
            throw e
        } catch {
            throw DecodeFailure("\(error)")
        }
        guard QuantizedTensor.bitRange.contains(bits) else { throw DecodeFailure("\(bits)-bit codes; expected 1...8") }
        guard valueType <= 1 else { throw DecodeFailure("unknown value type \(valueType) (0 = float32, 1 = float16)") }
        let groupAxis: Int?
        if axis == -1 {
            guard perGroup == 1, groups == 1 else { throw DecodeFailure("one group for the tensor, but \(groups) groups of \(perGroup)") }
            groupAxis = nil
        } else {
            guard axis >= 0, Int(axis) < shape.count else { throw DecodeFailure("group axis \(axis) outside shape \(shape)") }
            guard perGroup >= 1 else { throw DecodeFailure("0 channels per group") }
            groupAxis = Int(axis)
        }
        let expected = QuantizedTensor.groupCount(shape: shape, axis: groupAxis, channelsPerGroup: perGroup)
        guard groups == expected else { throw DecodeFailure("\(groups) groups; shape \(shape) in groups of \(perGroup) needs \(expected)") }
        let valueSize = valueType == 1 ? 2 : 4
        let valueCount = scheme == .linear ? groups : groups << bits
        let zeroBytes = scheme == .linear ? groups : 0
        let tableBytes = (valueCount * valueSize + zeroBytes + 7) / 8 * 8
        let codeWords = (count.multipliedReportingOverflow(by: bits).partialValue + 63) / 64
        guard count <= Int.max / 8, payloadBytes == tableBytes + codeWords * 8 else {
            throw DecodeFailure("payload is \(payloadBytes) bytes; its descriptor needs \(tableBytes + codeWords * 8)")
        }
        return QuantizedDescriptor(scheme: scheme, bits: bits, valueType: valueType, groupAxis: groupAxis, perGroup: perGroup,
                                   valueCount: valueCount, zeroBytes: zeroBytes, tableBytes: tableBytes, codeWords: codeWords)
    }

    static func decodeQuantized(
        _ d: QuantizedDescriptor, shape: [Int], count: Int, payload: ByteSlice
    ) throws(DecodeFailure) -> QuantizedTensor {
        let (scheme, bits, valueType, groupAxis, perGroup) = (d.scheme, d.bits, d.valueType, d.groupAxis, d.perGroup)
        let (valueCount, zeroBytes, tableBytes, codeWords) = (d.valueCount, d.zeroBytes, d.tableBytes, d.codeWords)
        let valueSize = valueType == 1 ? 2 : 4
        var values: [Float] = [], zeroPoints: [UInt8] = [], words: [UInt64] = []
        payload.withBytes { raw in
            values = (0..<valueCount).map { i in
                valueType == 1
                    ? Float(float16Bits: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i * valueSize, as: UInt16.self)))
                    : Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * valueSize, as: UInt32.self)))
            }
            zeroPoints = (0..<zeroBytes).map { raw[valueCount * valueSize + $0] }
            words = (0..<codeWords).map { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: tableBytes + $0 * 8, as: UInt64.self)) }
        }
        let used = count * bits
        if used % 64 != 0, words[used / 64] >> UInt64(used % 64) != 0 { throw DecodeFailure("non-zero padding bits after the last code") }
        let q = QuantizedTensor(shape: shape, scheme: scheme, bits: bits, axis: groupAxis, channelsPerGroup: groupAxis == nil ? 1 : perGroup,
                                codes: QuantizedTensor.unpackCodes(words, count: count, bits: bits), values: values,
                                zeroPoints: zeroPoints, halfValues: valueType == 1)
        do throws(PackedTensorError) { try q.validate() } catch { throw DecodeFailure(error.message) }
        return q
    }

    static func encodeBinarized(_ b: PackedTensor, tensor t: StoredTensor) throws(MBMError) -> Encoded {
        func fail(_ m: String) -> MBMError { MBMError(.invalid, file: "<writer>", place: "tensor '\(t.name)'", m) }
        do throws(PackedTensorError) {
            try b.validate()
        } catch {
            throw fail(error.message)
        }
        guard b.shape == t.shape else { throw fail("packed shape \(b.shape) differs from the tensor's \(t.shape)") }
        let levels = b.levels.count
        var counts = [Int](repeating: 0, count: levels)
        for m in b.mask { counts[Int(m) - 1] += 1 }
        // Every entry at the top width: nothing to store.
        let uniform = counts[levels - 1] == b.mask.count
        var coded = MaskCoder.Coded(stream: [], frequencies: [], blocks: nil)
        if !uniform {
            do {
                coded = try MaskCoder.code(mask: b.mask, levels: levels, shape: b.shape)
            } catch {
                throw fail((error as? MaskCoder.Failure)?.message ?? "\(error)")
            }
        }
        let (maskStream, frequencies, blocks) = (coded.stream, coded.frequencies, coded.blocks)
        let axis: Int? = if case .channel(let a) = b.scale { a } else { nil }
        var d = ByteWriter()
        d.u8(UInt8(levels))
        d.u8(axis == nil ? 0 : 1)
        d.u8(uniform ? 0 : blocks == nil ? 1 : 2)
        d.u8(b.halfScales ? 1 : 0)
        d.i32(Int32(axis ?? -1))
        d.u32(UInt32(b.groupCount))
        d.u64(UInt64(maskStream.count))
        for f in frequencies { d.u16(f) }
        for level in b.levels { d.u64(UInt64(level.bitCount)) }
        for size in blocks?.sizes ?? [] { d.u32(UInt32(size)) }

        var p = ByteWriter()
        for level in b.levels { for s in level.scales { if b.halfScales { p.u16(s.float16Bits) } else { p.f32(s) } } }
        p.pad(to: 8)
        for level in b.levels { for w in level.signs { p.u64(w) } }
        p.raw(maskStream)
        return Encoded(descriptor: d.bytes, payload: p.bytes, rawSlice: nil, maskBytes: maskStream.count)
    }

    /// What a directory entry says about its payload beyond name, type, shape and encoding,
    /// checked against the payload's size: enough to decode the payload later without reading
    /// the directory again.
    enum Descriptor: Sendable {
        case raw
        case strings
        case binarized(BinarizedDescriptor)
        case quantized(QuantizedDescriptor)
    }

    /// Reads one directory entry's descriptor (after name/type/shape/encoding/offset/length) and
    /// checks it against the payload's size; the payload itself is not read.
    static func readDescriptor(
        encoding: TensorEncoding, elementType: ElementType, shape: [Int], count: Int,
        directory r: inout ByteReader, payloadBytes: Int
    ) throws(DecodeFailure) -> Descriptor {
        func floating(_ what: String) throws(DecodeFailure) {
            guard elementType == .float || elementType == .float16 || elementType == .bfloat16 || elementType == .double else {
                throw DecodeFailure("\(what) payload for a \(elementType.name) tensor")
            }
        }
        switch encoding {
        case .raw:
            guard elementType != .string, let need = elementType.rawByteCount(elements: count) else {
                throw DecodeFailure("raw encoding cannot hold \(elementType.name) elements")
            }
            guard payloadBytes == need else {
                throw DecodeFailure("raw payload is \(payloadBytes) bytes; shape \(shape) of \(elementType.name) needs \(need)")
            }
            return .raw
        case .strings:
            guard elementType == .string else { throw DecodeFailure("strings encoding for a \(elementType.name) tensor") }
            return .strings
        case .binarized:
            let d = try readBinarizedDescriptor(shape: shape, count: count, directory: &r, payloadBytes: payloadBytes)
            try floating("binarized")
            return .binarized(d)
        case .linear, .palette:
            try floating("\(encoding)")
            return .quantized(try readQuantizedDescriptor(scheme: encoding == .linear ? .linear : .palette, shape: shape, count: count,
                                                          directory: &r, payloadBytes: payloadBytes))
        }
    }

    /// Decodes and validates the payload at `payload` (already range-checked) as `descriptor` says.
    static func decodePayload(
        _ descriptor: Descriptor, name: String, elementType: ElementType, shape: [Int], count: Int,
        payload: ByteSlice, verifyScales: Bool
    ) throws(DecodeFailure) -> StoredTensor {
        var t = StoredTensor(name: name, elementType: elementType, shape: shape, payload: .raw(payload))
        t.storedBytes = payload.count
        switch descriptor {
        case .raw:
            break
        case .strings:
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
        case .binarized(let d):
            t.payload = .binarized(try decodeBinarized(d, shape: shape, count: count, payload: payload, verifyScales: verifyScales))
            t.maskBytes = d.maskBytes
            t.maskBlocks = d.blocks?.sizes
        case .quantized(let d):
            t.payload = .quantized(try decodeQuantized(d, shape: shape, count: count, payload: payload))
        }
        return t
    }

    /// Reads one directory entry (after name/type/shape/encoding/offset/length), validating the
    /// payload at `payload` (already range-checked) against it.
    static func decode(
        encoding: TensorEncoding, name: String, elementType: ElementType, shape: [Int], count: Int,
        directory r: inout ByteReader, payload: ByteSlice, verifyScales: Bool
    ) throws(DecodeFailure) -> StoredTensor {
        let d = try readDescriptor(encoding: encoding, elementType: elementType, shape: shape, count: count, directory: &r, payloadBytes: payload.count)
        return try decodePayload(d, name: name, elementType: elementType, shape: shape, count: count, payload: payload, verifyScales: verifyScales)
    }

    struct DecodeFailure: Error {
        var message: String
        init(_ message: String) { self.message = message }
    }

    /// A binarized entry's descriptor, checked against the payload's size.
    struct BinarizedDescriptor: Sendable {
        var levels: Int
        var scaleMode: UInt8
        var maskCoding: UInt8
        var scaleType: UInt8
        var axis: Int32
        var groups: Int
        var maskBytes: Int
        var frequencies: [UInt16]
        var bitCounts: [Int]
        /// Mask coding 2: the blocks the mask is constant on.
        var blocks: MaskBlocks?
        /// Where each level's sign words start in the payload, and their bytes.
        var wordRanges: [(offset: Int, bytes: Int)]
        /// Where the mask stream starts in the payload.
        var maskOffset: Int
    }

    static func readBinarizedDescriptor(
        shape: [Int], count: Int, directory r: inout ByteReader, payloadBytes: Int
    ) throws(DecodeFailure) -> BinarizedDescriptor {
        let levels: Int, scaleMode: UInt8, maskCoding: UInt8, scaleType: UInt8, axis: Int32, groups: Int, maskBytes: Int
        var frequencies: [UInt16] = []
        var bitCounts: [Int] = []
        var blockSizes: [Int] = []
        do {
            levels = Int(try r.u8("levels"))
            scaleMode = try r.u8("scale mode")
            maskCoding = try r.u8("mask coding")
            scaleType = try r.u8("scale type")
            axis = try r.i32("channel axis")
            groups = Int(try r.u32("group count"))
            let mb = try r.u64("mask bytes")
            guard (1...8).contains(levels) else { throw DecodeFailure("\(levels) levels; expected 1...8") }
            guard scaleMode <= 1 else { throw DecodeFailure("unknown scale mode \(scaleMode)") }
            guard maskCoding <= 2 else { throw DecodeFailure("unknown mask coding \(maskCoding)") }
            guard scaleType <= 1 else { throw DecodeFailure("unknown scale type \(scaleType) (0 = float32, 1 = float16)") }
            guard mb <= UInt64(payloadBytes) else { throw DecodeFailure("mask of \(mb) bytes does not fit the \(payloadBytes)-byte payload") }
            maskBytes = Int(mb)
            if maskCoding >= 1 { for _ in 0..<levels { frequencies.append(try r.u16("mask frequency")) } }
            for _ in 0..<levels {
                let n = try r.u64("sign bit count")
                guard n <= UInt64(count) else { throw DecodeFailure("level has \(n) sign bits for \(count) entries") }
                bitCounts.append(Int(n))
            }
            if maskCoding == 2 { for _ in shape.indices { blockSizes.append(Int(try r.u32("mask block size"))) } }
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
        var blocks: MaskBlocks?
        if maskCoding == 2 {
            do throws(PackedTensorError) { blocks = try MaskBlocks(shape: shape, sizes: blockSizes) } catch { throw DecodeFailure(error.message) }
        }
        // Payload layout: scales, pad to 8, sign words per level, mask stream.
        let scaleSize = scaleType == 1 ? 2 : 4
        let (scaleBytes, o1) = (levels * groups).multipliedReportingOverflow(by: scaleSize)
        guard !o1 else { throw DecodeFailure("scale count overflows") }
        // Every entry has at least one bit, and level 1's signs are stored in full, so the
        // payload bounds the entry count before anything is allocated for the mask.
        guard bitCounts[0] == count else {
            throw DecodeFailure("level 1 has \(bitCounts[0]) sign bits; every one of the \(count) entries needs one")
        }
        var offset = (scaleBytes + 7) / 8 * 8
        var wordRanges: [(offset: Int, bytes: Int)] = []
        for n in bitCounts {
            let bytes = n / 64 * 8 + (n % 64 == 0 ? 0 : 8)
            let (next, overflow) = offset.addingReportingOverflow(bytes)
            guard !overflow, next <= payloadBytes else {
                throw DecodeFailure("sign bits of \(bitCounts) do not fit the \(payloadBytes)-byte payload")
            }
            wordRanges.append((offset, bytes))
            offset = next
        }
        guard offset + maskBytes == payloadBytes else {
            throw DecodeFailure("payload is \(payloadBytes) bytes; its descriptor needs \(offset + maskBytes)")
        }
        return BinarizedDescriptor(levels: levels, scaleMode: scaleMode, maskCoding: maskCoding, scaleType: scaleType, axis: axis,
                                   groups: groups, maskBytes: maskBytes, frequencies: frequencies, bitCounts: bitCounts,
                                   blocks: blocks, wordRanges: wordRanges, maskOffset: offset)
    }

    static func decodeBinarized(
        _ d: BinarizedDescriptor, shape: [Int], count: Int, payload: ByteSlice, verifyScales: Bool
    ) throws(DecodeFailure) -> PackedTensor {
        let (levels, scaleMode, maskCoding, scaleType, axis, groups) = (d.levels, d.scaleMode, d.maskCoding, d.scaleType, d.axis, d.groups)
        let (maskBytes, frequencies, bitCounts, wordRanges, offset) = (d.maskBytes, d.frequencies, d.bitCounts, d.wordRanges, d.maskOffset)
        let scaleSize = scaleType == 1 ? 2 : 4
        var scales: [[Float]] = []
        var badScale: String?
        payload.withBytes { raw in
            for k in 0..<levels {
                var level: [Float] = []
                level.reserveCapacity(groups)
                for g in 0..<groups {
                    let at = (k * groups + g) * scaleSize
                    let v = scaleType == 1
                        ? Float(float16Bits: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt16.self)))
                        : Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
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
        if maskCoding >= 1 {
            // Coding 1: one symbol per entry; coding 2: one per block, then expanded.
            var symbols = [UInt8](repeating: 0, count: d.blocks?.count ?? count)
            do {
                try payload.withBytes { raw in
                    let stream = UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + maskBytes)])
                    try symbols.withUnsafeMutableBufferPointer { out in
                        try MaskCoder.decode(stream, count: out.count, frequencies: frequencies, into: out)
                    }
                }
            } catch {
                throw DecodeFailure((error as? MaskCoder.Failure)?.message ?? "\(error)")
            }
            if let blocks = d.blocks { symbols = blocks.expand(symbols) }
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
        // The packed form: per-group active counts come from the mask in group-major order.
        let scale: ScaleMode = scaleMode == 0 ? .tensor : .channel(axis: Int(axis))
        let layout: GroupLayout
        do { layout = try GroupLayout(shape: shape, scale: scale) } catch { throw DecodeFailure(error.message) }
        let flatMask = mask ?? [UInt8](repeating: UInt8(levels), count: count)
        var activeCounts = [[Int]](repeating: [Int](repeating: 0, count: groups), count: levels)
        if mask == nil {
            for k in 0..<levels { activeCounts[k] = [Int](repeating: layout.groupSize, count: groups) }
        } else {
            for p in 0..<count {
                let g = layout.groupSize == 0 ? 0 : p / layout.groupSize
                let m = Int(flatMask[layout.flatIndex(ofGroupMajor: p)])
                for k in 0..<m { activeCounts[k][g] += 1 }
            }
        }
        var packedLevels: [PackedLevel] = []
        for k in 0..<levels {
            let wordsOfLevel = words[k].withBytes { raw in
                (0..<(raw.count / 8)).map { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)) }
            }
            packedLevels.append(PackedLevel(scales: scales[k], activeCounts: activeCounts[k], signs: wordsOfLevel))
        }
        let packed = PackedTensor(shape: shape, scale: scale, mask: flatMask, levels: packedLevels, halfScales: scaleType == 1)
        do throws(PackedTensorError) { try packed.validate() } catch { throw DecodeFailure(error.message) }
        return packed
    }
}
