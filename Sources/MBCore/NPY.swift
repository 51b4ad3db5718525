#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// NumPy's `.npy` format (versions 1.0, 2.0 and 3.0), C order, little-endian.
///
/// Layout: the magic `\x93NUMPY`, a major and a minor version byte, the header length (2 bytes
/// little-endian in version 1, 4 bytes in versions 2 and 3), then a Python dict literal
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }` padded with spaces and ended by
/// a newline so the data starts on a 64-byte boundary, then the raw elements.
///
/// Supported element types are listed once in `NPY.supportedTypes`; everything else (Fortran
/// order, big-endian data, object arrays, other dtypes) is refused with an error that names the
/// file.
public enum NPY {
    /// One row per supported dtype: the descr numpy writes, and ours.
    public struct DType: Sendable {
        public let descr: String
        public let elementType: ElementType
        public let itemSize: Int
    }

    public static let supportedTypes: [DType] = [
        DType(descr: "<f4", elementType: .float, itemSize: 4),
        DType(descr: "<f2", elementType: .float16, itemSize: 2),
        DType(descr: "<f8", elementType: .double, itemSize: 8),
        DType(descr: "<i8", elementType: .int64, itemSize: 8),
        DType(descr: "<i4", elementType: .int32, itemSize: 4),
        DType(descr: "<i2", elementType: .int16, itemSize: 2),
        DType(descr: "|i1", elementType: .int8, itemSize: 1),
        DType(descr: "<u8", elementType: .uint64, itemSize: 8),
        DType(descr: "<u4", elementType: .uint32, itemSize: 4),
        DType(descr: "<u2", elementType: .uint16, itemSize: 2),
        DType(descr: "|u1", elementType: .uint8, itemSize: 1),
        DType(descr: "|b1", elementType: .bool, itemSize: 1),
        // numpy has no bfloat16: ml_dtypes' bfloat16 (what onnx.numpy_helper returns) saves as a
        // 2-byte void type. Older onnx helpers hand out the bit patterns as uint16 ('<u2'), read as
        // uint16 here; `NPYArray.reinterpreted(as: .bfloat16)` takes them for what they are.
        DType(descr: "<V2", elementType: .bfloat16, itemSize: 2),
        // ml_dtypes' one-byte types (float8*, float4e2m1, int4, uint4, int2, uint2) save as a 1-byte
        // void type: read as their bytes (uint8); the model's declared type says what the bytes
        // are (`MBTensor(npy:declared:)`). Below '|u1', so uint8 arrays are written as '|u1'.
        DType(descr: "|V1", elementType: .uint8, itemSize: 1),
    ]

    /// The table row for an element type, or nil if `.npy` support does not cover it.
    public static func dtype(for type: ElementType) -> DType? {
        supportedTypes.first { $0.elementType == type }
    }

    /// The table row for a descr as found in a header. Single-byte types may be spelled with
    /// any byte-order character; `=` means native order, which is little-endian on every
    /// platform we build for.
    static func dtype(forDescr descr: String) -> DType? {
        guard let order = descr.first else { return nil }
        let code = descr.dropFirst()
        for row in supportedTypes where row.descr.dropFirst() == code {
            // Void types carry no byte order of their own: numpy writes '|', ml_dtypes '<'.
            if row.itemSize == 1 { return "|<>=".contains(order) ? row : nil }
            if code.hasPrefix("V") { return "|<=".contains(order) ? row : nil }
            return order == "<" || order == "=" ? row : nil
        }
        return nil
    }

    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY
}

/// An n-dimensional array read from or written to a `.npy` file: C order, little-endian bytes.
public struct NPYArray: Sendable, Equatable {
    public var elementType: ElementType
    public var shape: [Int]
    /// `elementCount * itemSize` bytes, little-endian, C order.
    public var data: [UInt8]

    public var elementCount: Int { shape.reduce(1, *) }

    /// Checks the element type against the supported table and the byte count against the shape.
    public init(elementType: ElementType, shape: [Int], data: [UInt8]) throws(NPYError) {
        guard let dtype = NPY.dtype(for: elementType) else {
            throw NPYError(file: "<memory>", problem: .unsupportedElementType(elementType.name))
        }
        guard let count = MBCore.elementCount(of: shape.map(Int64.init)),
              case let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.itemSize), !overflow
        else { throw NPYError(file: "<memory>", problem: .badShape(describeShape(shape.map(Int64.init)))) }
        guard bytes == data.count else {
            throw NPYError(file: "<memory>", problem: .dataSize(expected: bytes, got: data.count))
        }
        self.elementType = elementType
        self.shape = shape
        self.data = data
    }

    /// A float32 array.
    public init(floats: [Float], shape: [Int]) {
        precondition(shape.reduce(1, *) == floats.count, "shape \(shape) does not hold \(floats.count) values")
        var bytes = [UInt8](repeating: 0, count: floats.count * 4)
        bytes.withUnsafeMutableBytes { raw in
            for (i, f) in floats.enumerated() { raw.storeBytes(of: f.bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self) }
        }
        elementType = .float
        self.shape = shape
        data = bytes
    }

    /// The same bytes taken as another element type of the same size (uint16 bit patterns as
    /// bfloat16, the convention of older onnx helpers); nil when the sizes differ or the type has
    /// no `.npy` form.
    public func reinterpreted(as type: ElementType) -> NPYArray? {
        guard let from = NPY.dtype(for: elementType), let to = NPY.dtype(for: type), from.itemSize == to.itemSize else { return nil }
        return try? NPYArray(elementType: type, shape: shape, data: data)
    }

    /// The elements of an integer or bool array as Int64, exactly (uint64 as its bit pattern); nil
    /// for float types.
    public func int64Values() -> [Int64]? {
        let n = elementCount
        func load<T: FixedWidthInteger>(_: T.Type) -> [Int64] {
            data.withUnsafeBytes { raw in
                (0..<n).map { Int64(truncatingIfNeeded: T(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self))) }
            }
        }
        switch elementType {
        case .int8: return load(Int8.self)
        case .uint8: return load(UInt8.self)
        case .bool: return data.map { $0 != 0 ? 1 : 0 }
        case .int16: return load(Int16.self)
        case .uint16: return load(UInt16.self)
        case .int32: return load(Int32.self)
        case .uint32: return load(UInt32.self)
        case .int64: return load(Int64.self)
        case .uint64: return load(UInt64.self)
        default: return nil
        }
    }

    /// The elements converted to Float (float64 and integers are rounded to nearest; bool is 0 or 1).
    public func floatValues() -> [Float] {
        let n = elementCount
        var out = [Float](repeating: 0, count: n)
        data.withUnsafeBytes { raw in
            out.withUnsafeMutableBufferPointer { dst in
                switch elementType {
                case .float:
                    for i in 0..<n { dst[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))) }
                case .float16:
                    for i in 0..<n { dst[i] = Float(float16Bits: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) }
                case .double:
                    for i in 0..<n { dst[i] = Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)))) }
                case .int64:
                    for i in 0..<n { dst[i] = Float(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))) }
                case .int32:
                    for i in 0..<n { dst[i] = Float(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: Int32.self))) }
                case .uint8:
                    for i in 0..<n { dst[i] = Float(raw[i]) }
                case .int8:
                    for i in 0..<n { dst[i] = Float(Int8(bitPattern: raw[i])) }
                case .int16:
                    for i in 0..<n { dst[i] = Float(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: Int16.self))) }
                case .uint16:
                    for i in 0..<n { dst[i] = Float(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) }
                case .uint32:
                    for i in 0..<n { dst[i] = Float(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))) }
                case .uint64:
                    for i in 0..<n { dst[i] = Float(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))) }
                case .bfloat16:
                    // The upper half of a float32: exact.
                    for i in 0..<n { dst[i] = Float(bitPattern: UInt32(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) << 16) }
                case .bool:
                    for i in 0..<n { dst[i] = raw[i] != 0 ? 1 : 0 }
                default:
                    preconditionFailure("NPYArray holds an unsupported type \(elementType.name)")
                }
            }
        }
        return out
    }
}

/// A `.npy` problem, always naming the file (or `<memory>` for in-memory data).
public struct NPYError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Problem: Sendable, Equatable {
        case cannotRead(String)
        case cannotWrite(String)
        case badMagic
        case unsupportedVersion(major: UInt8, minor: UInt8)
        case truncated(needed: Int, available: Int, what: String)
        case malformedHeader(String)
        case fortranOrder
        case unsupportedDType(String)
        case unsupportedElementType(String)
        case badShape(String)
        case dataSize(expected: Int, got: Int)
    }

    public let file: String
    public let problem: Problem

    public init(file: String, problem: Problem) {
        self.file = file
        self.problem = problem
    }

    public var description: String {
        let what: String
        switch problem {
        case .cannotRead(let reason): what = "cannot read: \(reason)"
        case .cannotWrite(let reason): what = "cannot write: \(reason)"
        case .badMagic: what = "not a .npy file (bad magic; expected \\x93NUMPY)"
        case .unsupportedVersion(let major, let minor): what = "unsupported .npy format version \(major).\(minor) (supported: 1.0, 2.0, 3.0)"
        case .truncated(let needed, let available, let what_): what = "truncated: \(what_) needs \(needed) bytes, file has \(available)"
        case .malformedHeader(let reason): what = "malformed header: \(reason)"
        case .fortranOrder: what = "Fortran-order arrays are not supported (save with C order: np.ascontiguousarray)"
        case .unsupportedDType(let descr):
            what = "unsupported dtype '\(descr)' (supported: \(NPY.supportedTypes.map(\.descr).joined(separator: ", ")))"
        case .unsupportedElementType(let name): what = "element type \(name) cannot be stored in .npy by mbconvert"
        case .badShape(let shape): what = "bad shape \(shape): negative or too large"
        case .dataSize(let expected, let got): what = "data holds \(got) bytes, the header's shape and dtype need \(expected)"
        }
        return "\(file): \(what)"
    }
}

// MARK: - Reading

extension NPY {
    /// Reads a `.npy` file.
    public static func read(path: String) throws(NPYError) -> NPYArray {
        let storage = try mapped(path)
        let result = ByteSlice(storage: storage).withBytes { raw in
            Result { () throws(NPYError) -> NPYArray in try parse(raw, file: path) }
        }
        return try result.get()
    }

    /// Parses the bytes of a `.npy` file; `file` names it in errors.
    public static func parse(_ bytes: [UInt8], file: String = "<memory>") throws(NPYError) -> NPYArray {
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(NPYError) -> NPYArray in try parse(raw, file: file) }
        }
        return try result.get()
    }

    static func parse(_ raw: UnsafeRawBufferPointer, file: String) throws(NPYError) -> NPYArray {
        let layout = try self.layout(raw, file: file)
        let data = Array(UnsafeRawBufferPointer(rebasing: raw[layout.dataOffset..<(layout.dataOffset + layout.byteCount)]))
        return try NPYArray(elementType: layout.elementType, shape: layout.shape, data: data)
    }

    /// Where a `.npy` file's elements are: its element type, shape and the data's byte range.
    public struct Layout: Sendable, Equatable {
        public var elementType: ElementType
        public var shape: [Int]
        public var dataOffset: Int
        public var byteCount: Int
        /// Bytes of one entry along axis 0 (the whole array for a scalar).
        public var rowBytes: Int { shape.isEmpty ? byteCount : (shape[0] == 0 ? 0 : byteCount / shape[0]) }
    }

    /// The layout of the `.npy` file at `path`, from its header, with every check `read` makes
    /// (the data's size included) but without reading the data.
    public static func layout(path: String) throws(NPYError) -> Layout {
        let storage = try mapped(path)
        let result = ByteSlice(storage: storage).withBytes { raw in
            Result { () throws(NPYError) -> Layout in try layout(raw, file: path) }
        }
        return try result.get()
    }

    /// Entries `rows` along axis 0 of the `.npy` file at `path` (rank >= 1), read without
    /// touching the rest of the data: calibration streams large files batch by batch this way.
    public static func readRows(path: String, rows: Range<Int>) throws(NPYError) -> NPYArray {
        let storage = try mapped(path)
        let result = ByteSlice(storage: storage).withBytes { raw in
            Result { () throws(NPYError) -> NPYArray in
                let l = try layout(raw, file: path)
                precondition(!l.shape.isEmpty && rows.lowerBound >= 0 && rows.upperBound <= l.shape[0],
                             "\(path): rows \(rows) outside shape \(l.shape)")
                let start = l.dataOffset + rows.lowerBound * l.rowBytes
                let data = Array(UnsafeRawBufferPointer(rebasing: raw[start..<(start + rows.count * l.rowBytes)]))
                return try NPYArray(elementType: l.elementType, shape: [rows.count] + Array(l.shape.dropFirst()), data: data)
            }
        }
        return try result.get()
    }

    private static func mapped(_ path: String) throws(NPYError) -> ByteStorage {
        do throws(FileMapping.Failure) {
            return try FileMapping.map(path: path)
        } catch {
            let reason: String
            switch error {
            case .open(_, let e): reason = String(cString: strerror(e))
            case .notARegularFile: reason = "not a regular file"
            case .map(_, let e): reason = "cannot map: \(String(cString: strerror(e)))"
            }
            throw NPYError(file: path, problem: .cannotRead(reason))
        }
    }

    static func layout(_ raw: UnsafeRawBufferPointer, file: String) throws(NPYError) -> Layout {
        func fail(_ p: NPYError.Problem) -> NPYError { NPYError(file: file, problem: p) }
        guard raw.count >= 8 else {
            if raw.count < 6 || !raw.prefix(6).elementsEqual(magic) { throw fail(.badMagic) }
            throw fail(.truncated(needed: 8, available: raw.count, what: "the preamble"))
        }
        guard raw.prefix(6).elementsEqual(magic) else { throw fail(.badMagic) }
        let major = raw[6], minor = raw[7]
        let lengthBytes: Int
        switch (major, minor) {
        case (1, 0): lengthBytes = 2
        case (2, 0), (3, 0): lengthBytes = 4
        default: throw fail(.unsupportedVersion(major: major, minor: minor))
        }
        let headerStart = 8 + lengthBytes
        guard raw.count >= headerStart else {
            throw fail(.truncated(needed: headerStart, available: raw.count, what: "the header length"))
        }
        var headerLength = 0
        for i in 0..<lengthBytes { headerLength |= Int(raw[8 + i]) << (8 * i) }
        let dataStart = headerStart + headerLength
        guard raw.count >= dataStart else {
            throw fail(.truncated(needed: dataStart, available: raw.count, what: "a header of \(headerLength) bytes"))
        }
        let headerBytes = UnsafeRawBufferPointer(rebasing: raw[headerStart..<dataStart])
        let headerText: String
        if major == 3 {
            guard let text = String(validating: headerBytes, as: UTF8.self) else { throw fail(.malformedHeader("not UTF-8")) }
            headerText = text
        } else {
            // Latin-1: every byte is one code point.
            headerText = String(String.UnicodeScalarView(headerBytes.map { Unicode.Scalar($0) }))
        }
        let header: Header
        do throws(HeaderError) {
            var parser = HeaderParser(headerText)
            header = try parser.parse()
        } catch {
            throw fail(.malformedHeader(error.reason))
        }
        if header.fortranOrder { throw fail(.fortranOrder) }
        guard let dtype = dtype(forDescr: header.descr) else { throw fail(.unsupportedDType(header.descr)) }
        guard let count = MBCore.elementCount(of: header.shape.map(Int64.init)),
              case let (byteCount, overflow) = count.multipliedReportingOverflow(by: dtype.itemSize), !overflow
        else { throw fail(.badShape(describeShape(header.shape.map(Int64.init)))) }
        let available = raw.count - dataStart
        guard available >= byteCount else {
            throw fail(.truncated(needed: dataStart + byteCount, available: raw.count,
                                  what: "shape \(describeShape(header.shape.map(Int64.init))) of \(header.descr)"))
        }
        guard available == byteCount else { throw fail(.dataSize(expected: byteCount, got: available)) }
        return Layout(elementType: dtype.elementType, shape: header.shape, dataOffset: dataStart, byteCount: byteCount)
    }

    struct Header {
        var descr: String
        var fortranOrder: Bool
        var shape: [Int]
    }

    struct HeaderError: Error { let reason: String }

    /// A parser for exactly the dict literal numpy writes: string keys, and values that are a
    /// string, True/False, or a tuple of non-negative integers.
    struct HeaderParser {
        private let chars: [Character]
        private var pos = 0

        init(_ text: String) { chars = Array(text) }

        private enum Value {
            case string(String)
            case bool(Bool)
            case tuple([Int])
        }

        mutating func parse() throws(HeaderError) -> Header {
            skipSpace()
            try expect("{")
            var fields: [String: Value] = [:]
            while true {
                skipSpace()
                if peek() == "}" { pos += 1; break }
                let key = try parseString()
                skipSpace()
                try expect(":")
                skipSpace()
                let value = try parseValue()
                if fields[key] != nil { throw HeaderError(reason: "key '\(key)' appears twice") }
                fields[key] = value
                skipSpace()
                if peek() == "," { pos += 1; continue }
                skipSpace()
                try expect("}")
                break
            }
            skipSpace()
            guard pos == chars.count else { throw HeaderError(reason: "unexpected text after the dict at offset \(pos)") }
            guard case .string(let descr)? = fields["descr"] else { throw HeaderError(reason: "missing string key 'descr'") }
            guard case .bool(let fortran)? = fields["fortran_order"] else { throw HeaderError(reason: "missing boolean key 'fortran_order'") }
            guard case .tuple(let shape)? = fields["shape"] else { throw HeaderError(reason: "missing tuple key 'shape'") }
            let unknown = Set(fields.keys).subtracting(["descr", "fortran_order", "shape"])
            if let extra = unknown.sorted().first { throw HeaderError(reason: "unexpected key '\(extra)'") }
            return Header(descr: descr, fortranOrder: fortran, shape: shape)
        }

        private func peek() -> Character? { pos < chars.count ? chars[pos] : nil }

        private mutating func skipSpace() {
            while let c = peek(), c == " " || c == "\n" || c == "\t" || c == "\r" { pos += 1 }
        }

        private mutating func expect(_ c: Character) throws(HeaderError) {
            guard peek() == c else {
                throw HeaderError(reason: "expected '\(c)' at offset \(pos), found \(peek().map { "'\($0)'" } ?? "end of header")")
            }
            pos += 1
        }

        private mutating func parseString() throws(HeaderError) -> String {
            guard let quote = peek(), quote == "'" || quote == "\"" else {
                throw HeaderError(reason: "expected a quoted string at offset \(pos)")
            }
            pos += 1
            var s = ""
            while let c = peek(), c != quote {
                s.append(c)
                pos += 1
            }
            try expect(quote)
            return s
        }

        private mutating func parseValue() throws(HeaderError) -> Value {
            switch peek() {
            case "'", "\"": return .string(try parseString())
            case "(":
                pos += 1
                var dims: [Int] = []
                while true {
                    skipSpace()
                    if peek() == ")" { pos += 1; break }
                    var digits = ""
                    while let c = peek(), c.isASCII, c.isNumber { digits.append(c); pos += 1 }
                    if digits.isEmpty, peek() == "-" { throw HeaderError(reason: "negative dimension in shape") }
                    guard !digits.isEmpty, let d = Int(digits) else { throw HeaderError(reason: "expected a dimension at offset \(pos)") }
                    dims.append(d)
                    skipSpace()
                    if peek() == "L" { pos += 1 }  // Python 2 long suffix
                    skipSpace()
                    if peek() == "," { pos += 1; continue }
                    skipSpace()
                    try expect(")")
                    break
                }
                return .tuple(dims)
            default:
                for (word, value) in [("True", true), ("False", false)] where matches(word) {
                    pos += word.count
                    return .bool(value)
                }
                throw HeaderError(reason: "unexpected value at offset \(pos)")
            }
        }

        private func matches(_ word: String) -> Bool {
            let w = Array(word)
            return pos + w.count <= chars.count && Array(chars[pos..<(pos + w.count)]) == w
        }
    }
}

// MARK: - Writing

extension NPY {
    /// The bytes of a `.npy` file for `array`, laid out as numpy 2 lays them out (same bytes as
    /// `np.save`): version 1.0 when the header fits in 65535 bytes, else 2.0; the data starts on
    /// a 64-byte boundary.
    public static func encode(_ array: NPYArray) -> [UInt8] {
        let dtype = NPY.dtype(for: array.elementType)!  // NPYArray's initializers guarantee support
        let shapeText: String
        switch array.shape.count {
        case 0: shapeText = "()"
        case 1: shapeText = "(\(array.shape[0]),)"
        default: shapeText = "(" + array.shape.map(String.init).joined(separator: ", ") + ")"
        }
        var dict = "{'descr': '\(dtype.descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        // Like numpy, leave room to rewrite the first dimension in place (up to 21 digits).
        if let first = array.shape.first { dict += String(repeating: " ", count: max(0, 21 - String(first).count)) }
        var version: UInt8 = 1
        var lengthBytes = 2
        func paddedLength() -> Int {
            let unpadded = 8 + lengthBytes + dict.utf8.count + 1  // + "\n"
            return (unpadded + 63) / 64 * 64
        }
        if paddedLength() - 8 - lengthBytes > 0xFFFF {
            version = 2
            lengthBytes = 4
        }
        let total = paddedLength()
        let headerLength = total - 8 - lengthBytes
        var out = magic
        out.reserveCapacity(total + array.data.count)
        out += [version, 0]
        for i in 0..<lengthBytes { out.append(UInt8((headerLength >> (8 * i)) & 0xFF)) }
        out += Array(dict.utf8)
        out += [UInt8](repeating: 0x20, count: headerLength - dict.utf8.count - 1)
        out.append(0x0A)
        out += array.data
        return out
    }

    /// Writes `array` to `path` (replacing it).
    public static func write(_ array: NPYArray, to path: String) throws(NPYError) {
        let bytes = encode(array)
        guard let file = fopen(path, "wb") else {
            throw NPYError(file: path, problem: .cannotWrite(String(cString: strerror(errno))))
        }
        let written = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        let closed = fclose(file)
        guard written == bytes.count, closed == 0 else {
            throw NPYError(file: path, problem: .cannotWrite(String(cString: strerror(errno))))
        }
    }
}
