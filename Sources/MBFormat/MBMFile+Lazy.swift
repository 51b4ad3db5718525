import MBCore

extension MBMFile {
    /// A validated `.mbm` file whose tensors are decoded one at a time, when asked for.
    ///
    /// Opening checks what `MBMFile.open` checks before it decodes payloads: the header, the
    /// section table, every section's CRC-32 (read page by page, each page released once
    /// checked, so opening does not leave the file resident), the metadata, every directory
    /// entry (its descriptor against its payload's size, payloads inside DATA and not
    /// overlapping) and the graph. A binarized, int-n or palette payload is decoded by
    /// `tensor(_:)` and released again by the caller dropping it: memory follows the tensors
    /// in use, not the model. `decodeAll()` gives what `MBMFile.open` gives (it is built on it).
    public struct Lazy: Sendable {
        /// One tensor directory entry, checked; its payload is still in the file.
        public struct Entry: Sendable {
            public var name: String
            public var elementType: ElementType
            public var shape: [Int]
            public var encoding: TensorEncoding
            /// Bytes the payload occupies in the file.
            public var storedBytes: Int
            /// Where the payload starts in the file.
            public var payloadOffset: Int
            var descriptor: PayloadCodec.Descriptor

            public var elementCount: Int { shape.reduce(1, *) }

            /// Whether the graph holds a stand-in for this tensor until it is decoded (binarized,
            /// int-n and palette payloads; raw ones are views of the map, strings are decoded).
            public var isDeferred: Bool { encoding != .raw && encoding != .strings }

            /// Bytes of memory the decoded tensor holds (raw payloads are views of the map: 0):
            /// for a binarized one its mask (a byte per element), sign words, scales and active
            /// counts; for int-n and palette ones its codes (a byte per element) and table.
            public var decodedBytes: Int {
                switch descriptor {
                case .raw: return 0
                case .strings: return storedBytes
                case .binarized(let d):
                    return elementCount + d.bitCounts.reduce(0) { $0 + ($1 + 63) / 64 * 8 } + d.levels * d.groups * 12
                case .quantized(let d):
                    return elementCount + 4 * d.valueCount + d.zeroBytes
                }
            }
        }

        public var path: String
        public var majorVersion: UInt16
        public var minorVersion: UInt16
        public var fileBytes: Int
        public var sections: [SectionEntry]
        public var skippedSections: [SectionEntry]
        public var metadata: [MetadataEntry]
        /// The tensor directory, in file order (graph constants refer to it by position).
        public var entries: [Entry]
        /// The graph. Constants whose entry `isDeferred` are stand-ins: name, type and shape
        /// as stored, empty dense storage; `tensor(named:)` decodes the real one. Raw
        /// constants are views of the map, as in `MBMFile`.
        public var model: IRModel
        public var checksumsVerified: Bool
        let reader: MBMReader
        private let index: [String: Int]

        init(path: String, majorVersion: UInt16, minorVersion: UInt16, fileBytes: Int, sections: [SectionEntry],
             skippedSections: [SectionEntry], metadata: [MetadataEntry], entries: [Entry], model: IRModel,
             checksumsVerified: Bool, reader: MBMReader) {
            self.path = path
            self.majorVersion = majorVersion
            self.minorVersion = minorVersion
            self.fileBytes = fileBytes
            self.sections = sections
            self.skippedSections = skippedSections
            self.metadata = metadata
            self.entries = entries
            self.model = model
            self.checksumsVerified = checksumsVerified
            self.reader = reader
            index = Dictionary(entries.enumerated().map { ($0.element.name, $0.offset) }, uniquingKeysWith: { a, _ in a })
        }

        public func metadataValue(_ key: String) -> MetadataValue? {
            metadata.first { $0.key == key }?.value
        }

        /// The directory position of the tensor named `name` (the first, if names repeat).
        public func entryIndex(named name: String) -> Int? { index[name] }

        /// The tensor at directory position `i`, decoded and validated (errors name the file
        /// and the tensor, as `MBMFile.open` would). The pages of the payload it was decoded
        /// from are released; the result holds `entries[i].decodedBytes`.
        public func tensor(_ i: Int) throws(MBMError) -> StoredTensor {
            try reader.decode(entries[i], index: i)
        }

        /// `tensor(_:)` as the graph holds it.
        public func irTensor(_ i: Int) throws(MBMError) -> IRTensor {
            MBMReader.irTensor(try tensor(i))
        }

        /// `t` itself, or, when it is a stand-in of the graph, the tensor it stands for, decoded.
        public func resolve(_ t: IRTensor) throws(MBMError) -> IRTensor {
            guard let i = index[t.name], entries[i].isDeferred, case .dense(let b) = t.storage, b.count == 0 else { return t }
            return try irTensor(i)
        }

        /// Every tensor decoded and the graph holding them: what `MBMFile.open` returns.
        public func decodeAll() throws(MBMError) -> MBMFile {
            var tensors: [StoredTensor] = []
            tensors.reserveCapacity(entries.count)
            for i in entries.indices { tensors.append(try tensor(i)) }
            let graph = reader.mapping.buffer
            let s = sections.first { $0.tag == .graph }!
            let model = try reader.decodeGraph(UnsafeRawBufferPointer(rebasing: graph[s.offset..<(s.offset + s.length)]),
                                               tensors.map(MBMReader.irTensor))
            return MBMFile(path: path, majorVersion: majorVersion, minorVersion: minorVersion, fileBytes: fileBytes, sections: sections,
                           skippedSections: skippedSections, metadata: metadata, tensors: tensors, model: model,
                           checksumsVerified: checksumsVerified)
        }
    }

    /// The file checked and its graph read, its tensors left to decode one at a time
    /// (`Lazy.tensor(_:)`): memory follows the tensors in use rather than the model.
    public static func openLazily(path: String, options: Options = Options()) throws(MBMError) -> Lazy {
        let mapping: ByteStorage
        do { mapping = try FileMapping.map(path: path) } catch { throw MBMError(.unreadable, file: path, "\(error)") }
        return try MBMReader(path: path, mapping: mapping, options: options).openLazily()
    }

    /// `openLazily` for bytes already in memory (tests). `name` labels errors.
    public static func parseLazily(_ bytes: [UInt8], name: String = "<memory>", options: Options = Options()) throws(MBMError) -> Lazy {
        try MBMReader(path: name, mapping: ByteStorage(copying: bytes), options: options).openLazily()
    }
}
