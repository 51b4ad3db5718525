import Foundation
import MBCore
import Testing

/// Bytes from hex text (the fixtures below are what `np.save` wrote with numpy 2.4).
private func hex(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var chars = s.makeIterator()
    while let a = chars.next(), let b = chars.next() { out.append(UInt8(String([a, b]), radix: 16)!) }
    return out
}

/// A .npy file built by hand: magic, version, header length field, header text, data.
private func handMade(major: UInt8 = 1, header: String, data: [UInt8] = []) -> [UInt8] {
    let lengthBytes = major == 1 ? 2 : 4
    let h = Array(header.utf8)
    var out: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, major, 0]
    for i in 0..<lengthBytes { out.append(UInt8((h.count >> (8 * i)) & 0xFF)) }
    return out + h + data
}

private func problem(_ bytes: [UInt8]) -> NPYError.Problem? {
    do {
        _ = try NPY.parse(bytes, file: "t.npy")
        return nil
    } catch {
        #expect(error.description.hasPrefix("t.npy: "), "error must name the file: \(error)")
        return error.problem
    }
}

@Suite struct NPYTests {
    // np.save(np.array([1.0, -2.0, 0.5], dtype='<f4'))
    static let numpyFloat3 = hex(
        "934e554d5059010076007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028332c292c207d2020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a0000803f000000c00000003f")
    // np.save(np.array([7, -1], dtype='<i4'))
    static let numpyInt32 = hex(
        "934e554d5059010076007b276465736372273a20273c6934272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c292c207d2020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a07000000ffffffff")
    // np.save(np.zeros((2, 3), dtype=bool))
    static let numpyBool2x3 = hex(
        "934e554d5059010076007b276465736372273a20277c6231272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c2033292c207d202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a000000000000")
    // np.save(np.float64(2.5))
    static let numpyScalarDouble = hex(
        "934e554d5059010076007b276465736372273a20273c6638272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028292c207d20202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a0000000000000440")

    @Test func readsWhatNumpyWrote() throws {
        let f = try NPY.parse(Self.numpyFloat3)
        #expect(f.elementType == .float && f.shape == [3])
        #expect(f.floatValues() == [1.0, -2.0, 0.5])
        let i = try NPY.parse(Self.numpyInt32)
        #expect(i.elementType == .int32 && i.shape == [2] && i.floatValues() == [7, -1])
        let b = try NPY.parse(Self.numpyBool2x3)
        #expect(b.elementType == .bool && b.shape == [2, 3] && b.floatValues() == [0, 0, 0, 0, 0, 0])
        let d = try NPY.parse(Self.numpyScalarDouble)
        #expect(d.elementType == .double && d.shape == [] && d.floatValues() == [2.5])
    }

    @Test func writesTheSameBytesAsNumpy() throws {
        #expect(NPY.encode(NPYArray(floats: [1.0, -2.0, 0.5], shape: [3])) == Self.numpyFloat3)
        #expect(NPY.encode(try NPY.parse(Self.numpyInt32)) == Self.numpyInt32)
        #expect(NPY.encode(try NPY.parse(Self.numpyBool2x3)) == Self.numpyBool2x3)
        #expect(NPY.encode(try NPY.parse(Self.numpyScalarDouble)) == Self.numpyScalarDouble)
    }

    @Test(arguments: NPY.supportedTypes.map(\.elementType), [[], [0], [1], [3], [2, 3, 4], [5, 0, 2]] as [[Int]])
    func roundTripsEveryTypeAndShape(type: ElementType, shape: [Int]) throws {
        let itemSize = NPY.dtype(for: type)!.itemSize
        let count = shape.reduce(1, *)
        var rng = SeededGenerator(seed: UInt64(type.rawValue) &* 31 &+ UInt64(count))
        var data = (0..<(count * itemSize)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        if type == .bool { data = data.map { $0 & 1 } }
        let array = try NPYArray(elementType: type, shape: shape, data: data)
        let bytes = NPY.encode(array)
        #expect(bytes.count % 64 == data.count % 64, "data must start on a 64-byte boundary (type \(type.name), shape \(shape))")
        let back = try NPY.parse(bytes)
        #expect(back == array, "type \(type.name) shape \(shape)")
    }

    @Test func versionsTwoAndThreeAreRead() throws {
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n"
        let data: [UInt8] = [0, 0, 0x80, 0x3F, 0, 0, 0, 0x40]
        for major: UInt8 in [2, 3] {
            let a = try NPY.parse(handMade(major: major, header: header, data: data))
            #expect(a.floatValues() == [1, 2], "version \(major)")
        }
        // A header longer than 65535 bytes makes the writer switch to version 2.
        let big = try NPYArray(elementType: .uint8, shape: Array(repeating: 1, count: 30_000), data: [9])
        let bytes = NPY.encode(big)
        #expect(bytes[6] == 2)
        #expect(try NPY.parse(bytes) == big)
    }

    @Test func headerSpellingsNumpyAccepts() throws {
        // Double quotes, no trailing comma, keys in another order, '=' byte order, 1-byte types with '<'.
        let a = try NPY.parse(handMade(header: "{\"shape\": (1, 2), \"fortran_order\": False, \"descr\": \"=f4\"}", data: [0, 0, 0x80, 0x3F, 0, 0, 0, 0]))
        #expect(a.shape == [1, 2] && a.floatValues() == [1, 0])
        let b = try NPY.parse(handMade(header: "{'descr': '<u1', 'fortran_order': False, 'shape': (2,), }", data: [3, 4]))
        #expect(b.floatValues() == [3, 4])
    }

    @Test func oneErrorPerCorruption() {
        let good = Self.numpyFloat3
        #expect(problem(Array(good.prefix(3))) == .badMagic)
        #expect(problem([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x58, 1, 0, 0, 0]) == .badMagic)
        #expect(problem(Array(good.prefix(7))) == .truncated(needed: 8, available: 7, what: "the preamble"))
        #expect(problem(Array(good.prefix(9))) == .truncated(needed: 10, available: 9, what: "the header length"))
        #expect(problem(Array(good.prefix(100))) == .truncated(needed: 128, available: 100, what: "a header of 118 bytes"))
        #expect(problem(Array(good.prefix(135))) == .truncated(needed: 140, available: 135, what: "shape [3] of <f4"))
        #expect(problem(good + [0]) == .dataSize(expected: 12, got: 13))
        var v4 = good
        v4[6] = 4
        #expect(problem(v4) == .unsupportedVersion(major: 4, minor: 0))
        var v11 = good
        v11[7] = 1
        #expect(problem(v11) == .unsupportedVersion(major: 1, minor: 1))
        #expect(problem(handMade(header: "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }", data: [0, 0, 0, 0])) == .fortranOrder)
        for descr in [">f4", "<c8", "|O", "<f16", "<U3", ">i8", ">u2", "<V3"] {
            #expect(problem(handMade(header: "{'descr': '\(descr)', 'fortran_order': False, 'shape': (1,), }", data: [0, 0, 0, 0])) == .unsupportedDType(descr), "descr \(descr)")
        }
        for (header, reason) in [
            ("{'descr': '<f4', 'shape': (1,), }", "missing boolean key 'fortran_order'"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", "negative dimension in shape"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", "unexpected value at offset 61"),
            ("['descr']", "expected '{' at offset 0, found '['"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), } extra", "unexpected text after the dict at offset 58"),
        ] {
            #expect(problem(handMade(header: header, data: [0, 0, 0, 0])) == .malformedHeader(reason), "header \(header)")
        }
        // A shape whose byte count overflows.
        #expect(problem(handMade(header: "{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904, 4), }")) == .badShape("[4611686018427387904, 4]"))
    }

    @Test func errorsNameTheFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("npy-tests-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("w.npy").path
        let array = NPYArray(floats: [0.25, -8], shape: [1, 2])
        try NPY.write(array, to: path)
        #expect(try NPY.read(path: path) == array)
        let missing = dir.appendingPathComponent("missing.npy").path
        #expect {
            _ = try NPY.read(path: missing)
        } throws: { error in
            (error as? NPYError)?.description.hasPrefix(missing + ": cannot read") == true
        }
        let bad = dir.appendingPathComponent("bad.npy").path
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: bad))
        #expect(throws: NPYError(file: bad, problem: .badMagic)) { _ = try NPY.read(path: bad) }
    }

    #if !(os(macOS) && arch(x86_64))  // Float16 is missing only there
    @Test func float16FilesReadEveryBitPatternExactly() throws {
        let patterns = (0...UInt16.max).flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        let array = try NPY.parse(NPY.encode(try NPYArray(elementType: .float16, shape: [65536], data: patterns)))
        for (i, ours) in array.floatValues().enumerated() {
            let swift = Float(Float16(bitPattern: UInt16(i)))
            let same = swift.isNaN ? ours.isNaN && ours.sign == swift.sign : ours.bitPattern == swift.bitPattern
            if !same { Issue.record("half bits 0x\(String(i, radix: 16)): read \(ours), Float16 gives \(swift)") }
        }
    }
    #endif
}

/// The integer dtypes and bfloat16, as numpy 2.4 (and ml_dtypes 0.7 for bfloat16) save them.
@Suite struct NPYWideDTypeTests {
    static let header = "934e554d5059010076007b276465736372273a20"
    static let tail = "272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028"
    static let pad = "2020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a"

    // np.save(np.array([-128, 127, -1], dtype='|i1'))
    static let int8 = hex(header + "277c6931" + tail + "332c292c207d" + pad + "807fff")
    // np.save(np.array([-32768, 32767], dtype='<i2'))
    static let int16 = hex(header + "273c6932" + tail + "322c292c207d" + pad + "0080ff7f")
    // np.save(np.array([65535, 1], dtype='<u2'))
    static let uint16 = hex(header + "273c7532" + tail + "322c292c207d" + pad + "ffff0100")
    // np.save(np.array([4294967295, 16777217], dtype='<u4'))
    static let uint32 = hex(header + "273c7534" + tail + "322c292c207d" + pad + "ffffffff01000001")
    // np.save(np.array([2**64 - 1, 2**53 + 1], dtype='<u8'))
    static let uint64 = hex(header + "273c7538" + tail + "322c292c207d" + pad + "ffffffffffffffff0100000000002000")
    // np.save(np.array([1.0, -2.5, 3.140625], dtype=ml_dtypes.bfloat16)): descr '<V2'
    static let bfloat16 = hex(header + "273c5632" + tail + "332c292c207d" + pad + "803f20c04940")

    @Test func readsEachExactly() throws {
        let i8 = try NPY.parse(Self.int8)
        #expect(i8.elementType == .int8 && i8.int64Values() == [-128, 127, -1] && i8.floatValues() == [-128, 127, -1])
        let i16 = try NPY.parse(Self.int16)
        #expect(i16.elementType == .int16 && i16.int64Values() == [-32768, 32767])
        let u16 = try NPY.parse(Self.uint16)
        #expect(u16.elementType == .uint16 && u16.int64Values() == [65535, 1])
        let u32 = try NPY.parse(Self.uint32)
        #expect(u32.elementType == .uint32 && u32.int64Values() == [4294967295, 16777217])
        let u64 = try NPY.parse(Self.uint64)
        // uint64 as its bit pattern: 2^64 - 1 is -1.
        #expect(u64.elementType == .uint64 && u64.int64Values() == [-1, 9007199254740993])
        let bf = try NPY.parse(Self.bfloat16)
        #expect(bf.elementType == .bfloat16 && bf.shape == [3] && bf.floatValues() == [1.0, -2.5, 3.140625])
        #expect(bf.int64Values() == nil)
    }

    @Test func writesTheSameBytes() throws {
        for bytes in [Self.int8, Self.int16, Self.uint16, Self.uint32, Self.uint64, Self.bfloat16] {
            #expect(NPY.encode(try NPY.parse(bytes)) == bytes)
        }
    }

    /// Older onnx helpers hand out bfloat16 as its uint16 bit patterns.
    @Test func uint16BitPatternsAsBFloat16() throws {
        let u16 = try NPY.parse(hex(Self.header + "273c7532" + Self.tail + "322c292c207d" + Self.pad + "803f20c0"))
        let bf = try #require(u16.reinterpreted(as: .bfloat16))
        #expect(bf.floatValues() == [1.0, -2.5])
        #expect(u16.reinterpreted(as: .float) == nil)
    }

    /// ml_dtypes' one-byte types save as '<V1': read as their bytes.
    @Test func oneByteVoidReadsAsBytes() throws {
        // np.save(np.array([448, -0.5], dtype=ml_dtypes.float8_e4m3fn)): descr '<V1'
        let f8 = try NPY.parse(hex(Self.header + "273c5631" + Self.tail + "322c292c207d" + Self.pad + "7eb0"))
        #expect(f8.elementType == .uint8 && f8.data == [0x7E, 0xB0])
        // Written back as uint8.
        #expect(NPY.dtype(for: .uint8)?.descr == "|u1")
    }

    /// A void type's byte order: '|' (numpy) and '<' (ml_dtypes) read; '>' refused.
    @Test func voidByteOrders() throws {
        let bar = hex(Self.header + "277c5632" + Self.tail + "332c292c207d" + Self.pad + "803f20c04940")
        #expect(try NPY.parse(bar).elementType == .bfloat16)
        let big = hex(Self.header + "273e5632" + Self.tail + "332c292c207d" + Self.pad + "803f20c04940")
        #expect(throws: NPYError.self) { try NPY.parse(big) }
    }
}
