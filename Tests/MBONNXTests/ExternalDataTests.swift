import Foundation
import MBCore
import MBONNX
import Testing

/// External data, as the onnx package writes it (Fixtures/external_small.*, made by
/// Scripts/fixtures/make_onnx_fixtures.py), and hand-broken copies of it.
@Suite struct ExternalDataTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// Copies the fixture into a fresh folder, optionally rewriting its external_data entries.
    func copyFixture(edit: ((inout ONNXModel) -> Void)? = nil, weights: ((inout Data) -> Void)? = nil) throws -> URL {
        let dir = ModelBuilder.temporaryDirectory()
        var data = try Data(contentsOf: Self.fixtures.appendingPathComponent("external_small.weights"))
        weights?(&data)
        try data.write(to: dir.appendingPathComponent("external_small.weights"))
        let modelURL = dir.appendingPathComponent("external_small.onnx")
        let original = try Data(contentsOf: Self.fixtures.appendingPathComponent("external_small.onnx"))
        if let edit {
            var model = try original.withUnsafeBytes { try ONNXReader().decode($0, file: "fixture") }
            edit(&model)
            try ONNXWriter().write(model, to: modelURL.path)
        } else {
            try original.write(to: modelURL)
        }
        return modelURL
    }

    func setEntry(_ model: inout ONNXModel, tensor: String, key: String, value: String) {
        let i = model.graph!.initializers.firstIndex { $0.name == tensor }!
        if let k = model.graph!.initializers[i].externalData.firstIndex(where: { $0.key == key }) {
            model.graph!.initializers[i].externalData[k].value = value
        } else {
            model.graph!.initializers[i].externalData.append(ONNXStringPair(key: key, value: value))
        }
    }

    @Test func importsThroughTheMappedFile() throws {
        let url = try copyFixture()
        let model = try ONNXReader().load(path: url.path)
        let inits = model.graph!.initializers
        #expect(inits.map(\.name) == ["conv.w", "conv.b", "fc.w"])
        #expect(inits.allSatisfy { $0.isExternal && $0.rawData == nil })
        #expect(inits.map { $0.external!.offset } == [0, 864, 896])
        let w = try inits[0].floatValues()
        #expect(w.count == 216)
        #expect(w.first == 0.001230153371579945 as Float)
        #expect(w.last == 0.044385891407728195 as Float)
        #expect(try inits[1].floatValues().first == -0.2458030730485916 as Float)
        let fc = try inits[2].floatValues()
        #expect(fc.last == -1.1422395706176758 as Float)
        let sum = fc.reduce(0.0) { $0 + Double($1) }
        #expect(abs(sum - -53.43636236243765) < 1e-9, "sum \(sum)")
        // The bytes are a view of the weights file, not a copy.
        let file = try Data(contentsOf: url.deletingLastPathComponent().appendingPathComponent("external_small.weights"))
        #expect(inits[2].external!.bytes.bytes == Array(file[896..<(896 + 11520)]))
        // And the model round-trips byte for byte with its external references.
        let original = try [UInt8](Data(contentsOf: url))
        #expect(try ONNXWriter().encode(model) == original)
    }

    @Test func locationLeavingTheFolderIsRefused() throws {
        let url = try copyFixture { setEntry(&$0, tensor: "conv.w", key: "location", value: "../../etc/passwd") }
        #expect {
            try ONNXReader().load(path: url.path)
        } throws: { error in
            (error as? ONNXError)?.description
                == "\(url.path): graph initializer 'conv.w': external data location '../../etc/passwd' leads outside the model's folder"
        }
    }

    @Test func absoluteLocationIsRefused() throws {
        let url = try copyFixture { setEntry(&$0, tensor: "conv.b", key: "location", value: "/etc/passwd") }
        #expect {
            try ONNXReader().load(path: url.path)
        } throws: { error in
            (error as? ONNXError)?.description
                == "\(url.path): graph initializer 'conv.b': external data location '/etc/passwd' is absolute; it must be relative to the model's folder"
        }
    }

    @Test func symbolicLinkOutOfTheFolderIsRefused() throws {
        let url = try copyFixture { setEntry(&$0, tensor: "conv.b", key: "location", value: "link.bin") }
        try FileManager.default.createSymbolicLink(atPath: url.deletingLastPathComponent().appendingPathComponent("link.bin").path,
                                                   withDestinationPath: "/etc/hostname")
        #expect {
            try ONNXReader().load(path: url.path)
        } throws: { error in
            (error as? ONNXError)?.description.contains("resolves to /etc/hostname, outside the model's folder") == true
        }
    }

    @Test func lengthPastTheEndOfTheDataFile() throws {
        let url = try copyFixture { setEntry(&$0, tensor: "fc.w", key: "length", value: "20000") }
        #expect {
            try ONNXReader().load(path: url.path)
        } throws: { error in
            (error as? ONNXError)?.description
                == "\(url.path): graph initializer 'fc.w': external data 'external_small.weights' offset 896 + length 20000 is past the end of the file (12416 bytes)"
        }
    }

    @Test func truncatedDataFile() throws {
        let url = try copyFixture(weights: { $0 = $0.prefix(5000) })
        #expect {
            try ONNXReader().load(path: url.path)
        } throws: { error in
            (error as? ONNXError)?.description
                == "\(url.path): graph initializer 'fc.w': external data 'external_small.weights' offset 896 + length 11520 is past the end of the file (5000 bytes)"
        }
    }

    @Test func missingDataFile() throws {
        let url = try copyFixture()
        try FileManager.default.removeItem(at: url.deletingLastPathComponent().appendingPathComponent("external_small.weights"))
        #expect {
            try ONNXReader().load(path: url.path)
        } throws: { error in
            let d = (error as? ONNXError)?.description ?? ""
            return d.hasPrefix("\(url.path): graph initializer 'conv.w': cannot read external data file 'external_small.weights'")
        }
    }

    @Test func lengthDisagreeingWithShape() throws {
        let url = try copyFixture { setEntry(&$0, tensor: "conv.b", key: "length", value: "28") }
        #expect {
            try ONNXReader().load(path: url.path)
        } throws: { error in
            (error as? ONNXError)?.description
                == "\(url.path): graph initializer 'conv.b': external data holds 28 bytes, shape [8] of float needs 32"
        }
    }
}
