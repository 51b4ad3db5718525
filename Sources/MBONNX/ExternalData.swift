import MBCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Resolves tensors stored as ONNX external data: `location` is taken relative to the model's
/// folder and may not be absolute or lead outside it (also through symbolic links); offset and
/// length are checked against the file; the bytes are used through one memory map per file.
struct ExternalDataResolver {
    let modelFile: String
    let folder: String
    private var mappings: [String: ByteStorage] = [:]

    init(modelFile: String, folder: String) {
        self.modelFile = modelFile
        self.folder = folder
    }

    mutating func resolve(_ model: inout ONNXModel) throws(ONNXError) {
        guard var graph = model.graph else { return }
        try resolve(graph: &graph, place: "graph")
        model.graph = graph
    }

    private mutating func resolve(graph: inout ONNXGraph, place: String) throws(ONNXError) {
        for i in graph.initializers.indices {
            try resolve(tensor: &graph.initializers[i], place: "\(place) initializer '\(graph.initializers[i].name ?? "#\(i)")'")
        }
        for n in graph.nodes.indices {
            let nodePlace = "\(place) node '\(graph.nodes[n].name ?? "#\(n)")'"
            for a in graph.nodes[n].attributes.indices {
                let attrPlace = "\(nodePlace) attribute '\(graph.nodes[n].attributes[a].name ?? "#\(a)")'"
                if graph.nodes[n].attributes[a].t != nil {
                    try resolve(tensor: &graph.nodes[n].attributes[a].t!, place: attrPlace)
                }
                for t in graph.nodes[n].attributes[a].tensors.indices {
                    try resolve(tensor: &graph.nodes[n].attributes[a].tensors[t], place: "\(attrPlace)[\(t)]")
                }
                if graph.nodes[n].attributes[a].g != nil {
                    try resolve(graph: &graph.nodes[n].attributes[a].g!, place: attrPlace)
                }
                for g in graph.nodes[n].attributes[a].graphs.indices {
                    try resolve(graph: &graph.nodes[n].attributes[a].graphs[g], place: "\(attrPlace)[\(g)]")
                }
            }
        }
    }

    private mutating func resolve(tensor: inout ONNXTensor, place: String) throws(ONNXError) {
        guard tensor.isExternal else { return }
        func fail(_ message: String) -> ONNXError { ONNXError(.externalData, file: modelFile, place: place, message) }
        var location: String?
        var offset = 0
        var length: Int?
        for entry in tensor.externalData {
            switch entry.key {
            case "location": location = entry.value
            case "offset":
                guard let v = entry.value.flatMap({ Int($0) }), v >= 0 else { throw fail("external data offset '\(entry.value ?? "")' is not a non-negative integer") }
                offset = v
            case "length":
                guard let v = entry.value.flatMap({ Int($0) }), v >= 0 else { throw fail("external data length '\(entry.value ?? "")' is not a non-negative integer") }
                length = v
            default: break  // "checksum" and future keys
            }
        }
        guard let location, !location.isEmpty else { throw fail("external data has no 'location'") }
        guard !location.hasPrefix("/") else { throw fail("external data location '\(location)' is absolute; it must be relative to the model's folder") }
        var depth = 0
        for part in location.split(separator: "/", omittingEmptySubsequences: true) {
            if part == ".." { depth -= 1 } else if part != "." { depth += 1 }
            guard depth >= 0 else { throw fail("external data location '\(location)' leads outside the model's folder") }
        }
        let path = folder + "/" + location
        // Symbolic links may still lead elsewhere: compare real paths.
        if let realFolder = Self.realPath(folder), let realFile = Self.realPath(path),
           !(realFile.hasPrefix(realFolder.hasSuffix("/") ? realFolder : realFolder + "/")) {
            throw fail("external data location '\(location)' resolves to \(realFile), outside the model's folder")
        }
        let storage: ByteStorage
        if let cached = mappings[path] {
            storage = cached
        } else {
            do { storage = try FileMapping.map(path: path) } catch {
                throw fail("cannot read external data file '\(location)': \(error)")
            }
            mappings[path] = storage
        }
        guard offset <= storage.count else {
            throw fail("external data offset \(offset) is past the end of '\(location)' (\(storage.count) bytes)")
        }
        let available = storage.count - offset
        let count = length ?? available
        guard count <= available else {
            throw fail("external data '\(location)' offset \(offset) + length \(count) is past the end of the file (\(storage.count) bytes)")
        }
        tensor.external = .init(location: location, path: path, offset: offset, length: count,
                                bytes: ByteSlice(storage: storage, offset: offset, count: count))
    }

    private static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }
}
