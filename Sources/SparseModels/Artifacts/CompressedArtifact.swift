import Foundation
import SparseKernels
import SparseJSON

/// Compressed artifacts: a model directory written by `sparse-serve compress` whose
/// `model.safetensors` holds every linear layer in the stored form of its compression method
/// (tensors `<layer>.<method>.<part>`, see `PackedLayer.parts()`), the model's other tensors
/// unchanged, and in `__metadata__` the format version, the tool version, the source model, the
/// compression JSON and per-layer facts. Its `model.json` is the source manifest plus
/// `"compressed": {"format": "sparse-serve-artifact", "version": 1}`; every other file of the
/// source directory is copied. Loading one reads the packed tensors directly — no re-compression —
/// and checks them against the metadata.
public enum CompressedArtifact {
    public static let format = "sparse-serve-artifact"
    public static let formatVersion = 1
    static let formatKey = "format"

    /// Keys of the safetensors `__metadata__` map (all values are strings; `compression`,
    /// `layers` and `totals` hold JSON).
    public enum MetadataKey {
        public static let format = "format", formatVersion = "format_version", toolVersion = "tool_version"
        public static let sourceModel = "source_model", sourceFingerprint = "source_fingerprint"
        public static let compression = "compression", activations = "activations", layers = "layers", totals = "totals"
        /// Present when the layers were recovery-trained: the run's report (JSON).
        public static let recovery = "recovery"
        /// Optional: the calibration report and the held-out quality (JSON objects).
        public static let calibration = "calibration", quality = "quality"
    }

    /// The `"compressed"` marker of an artifact's `model.json`.
    public struct Marker: Sendable, Equatable, Codable {
        public var format: String
        public var version: Int

        public init(format: String = CompressedArtifact.format, version: Int = CompressedArtifact.formatVersion) {
            self.format = format
            self.version = version
        }

        enum CodingKeys: String, CodingKey, CaseIterable { case format, version }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(allowed: CodingKeys.allCases.map(\.stringValue))
            let c = try decoder.container(keyedBy: CodingKeys.self)
            format = try c.decode(String.self, forKey: .format)
            version = try c.decode(Int.self, forKey: .version)
        }

        func check(source: String) throws {
            guard format == CompressedArtifact.format else {
                throw ModelLoadError(file: source, "compressed.format '\(format)' is not '\(CompressedArtifact.format)'")
            }
            guard version == CompressedArtifact.formatVersion else {
                throw ModelLoadError(file: source, "compressed.version \(version) is not supported (this build reads artifact format version \(CompressedArtifact.formatVersion))")
            }
        }
    }

    /// One layer's entry in the metadata's `layers` list.
    public struct LayerRecord: Sendable, Equatable, Codable {
        public var name: String
        /// "dense", "nm", "csr", "blast" or "l1inf"; the tensors are `<name>.<method>.<part>`.
        public var method: String
        public var parameters: [String: ParameterValue]
        public var pinned: Bool
        /// `[out, in]`.
        public var shape: [Int]
        /// The dense weight and bias tensors of the source model this layer replaces.
        public var sourceWeight: String
        public var sourceBias: String?
        /// The layer's tensors in this file.
        public var tensors: [String]
        public var storedParameters: Int
        /// Bytes of the layer's tensors in this file.
        public var bytes: Int
        /// Bytes of the dense FP32 weight and bias.
        public var denseBytes: Int
        public var density: Double
        /// ‖W − Ŵ‖_F / ‖W‖_F against the source weight, measured when compressing.
        public var relativeError: Double
        /// N:M: what the index stream was checked to hold.
        public var maskCheck: String?
        /// Set when the layer is stored compacted (ℓ1,∞, or a dense neighbour it shrank).
        public var compaction: CompactionRecord?

        /// How a compacted layer's operator is shaped (`PackedLayer.Compaction`).
        public struct CompactionRecord: Sendable, Equatable, Codable {
            public var inputWidth: Int
            public var outputWidth: Int
            public var gather: Bool
            public var scatter: Bool
            /// Whether it stores a bias (its kept outputs', possibly with folded constants).
            public var bias: Bool
            public var storage: String
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case name, method, parameters, pinned, shape, sourceWeight, sourceBias, tensors, storedParameters, bytes, denseBytes,
                 density, relativeError, maskCheck, compaction
        }

        package init(name: String, weight: String, bias: String?, layer: BuiltLinearLayer) {
            self.name = name
            method = layer.facts.method
            parameters = layer.facts.parameters
            pinned = layer.facts.pinned
            shape = [layer.packed.outputFeatures, layer.packed.inputFeatures]
            sourceWeight = weight
            sourceBias = bias
            tensors = layer.packed.parts().map { "\(name).\(layer.facts.method).\($0.name)" }
            storedParameters = layer.facts.storedParameters
            bytes = layer.facts.storedBytes
            denseBytes = layer.facts.denseBytes
            density = layer.facts.density
            relativeError = layer.facts.relativeError
            maskCheck = layer.facts.maskCheck
            if case let .compacted(_, inputWidth, outputWidth, gather, scatter, storage) = layer.packed.layout {
                compaction = CompactionRecord(inputWidth: inputWidth, outputWidth: outputWidth, gather: gather, scatter: scatter,
                                              bias: layer.packed.bias != nil, storage: storage)
            }
        }

        /// Whether the stored form holds a bias.
        var storesBias: Bool { compaction?.bias ?? (sourceBias != nil) }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(allowed: CodingKeys.allCases.map(\.stringValue))
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name)
            method = try c.decode(String.self, forKey: .method)
            parameters = try c.decode([String: ParameterValue].self, forKey: .parameters)
            pinned = try c.decode(Bool.self, forKey: .pinned)
            shape = try c.decode([Int].self, forKey: .shape)
            sourceWeight = try c.decode(String.self, forKey: .sourceWeight)
            sourceBias = try c.decodeIfPresent(String.self, forKey: .sourceBias)
            tensors = try c.decode([String].self, forKey: .tensors)
            storedParameters = try c.decode(Int.self, forKey: .storedParameters)
            bytes = try c.decode(Int.self, forKey: .bytes)
            denseBytes = try c.decode(Int.self, forKey: .denseBytes)
            density = try c.decode(Double.self, forKey: .density)
            relativeError = try c.decode(Double.self, forKey: .relativeError)
            maskCheck = try c.decodeIfPresent(String.self, forKey: .maskCheck)
            compaction = try c.decodeIfPresent(CompactionRecord.self, forKey: .compaction)
        }

        /// The stored form's structure from `method` and `parameters` (quantized when they hold a
        /// `weights` key, see `WeightQuantization.parameters`); `fail` names the problem.
        func layout(_ fail: (String) -> any Error) throws -> PackedLayer.Layout {
            let base = try baseLayout(fail)
            guard let scheme = try WeightQuantization(parameters: parameters, fail) else { return base }
            switch base {
            case .dense, .nm, .blast, .csr: return .quantized(base, scheme)
            default: throw fail("a \(method) layer cannot be stored quantized (dense, nm, blast and csr can)")
            }
        }

        private func baseLayout(_ fail: (String) -> any Error) throws -> PackedLayer.Layout {
            func int(_ key: String) throws -> Int {
                guard let v = parameters[key]?.intValue else { throw fail("parameters.\(key) must be an integer") }
                return v
            }
            if let c = compaction {
                guard method == "dense" || method == "l1inf" else { throw fail("a \(method) layer cannot be stored compacted") }
                return .compacted(method: method, inputWidth: c.inputWidth, outputWidth: c.outputWidth, gather: c.gather, scatter: c.scatter, storage: c.storage)
            }
            switch method {
            case "dense": return .dense
            case "nm":
                let mask = parameters["mask"]?.stringValue
                guard mask == "magnitude" || mask == "transposable" else { throw fail("parameters.mask must be 'magnitude' or 'transposable'") }
                return .nm(n: try int("n"), m: try int("m"), transposable: mask == "transposable")
            case "csr": return .csr
            case "blast":
                let blocks = try int("blocks")
                return .blast(rowBlocks: blocks, columnBlocks: blocks, rank: try int("rank"))
            case "l1inf":
                throw fail("an l1inf layer is stored compacted, but 'compaction' is missing")
            default:
                throw fail("method '\(method)' is not one of dense, nm, csr, blast, l1inf")
            }
        }
    }

    /// Totals over the linear layers (the metadata's `totals`).
    public struct Totals: Sendable, Equatable, Codable {
        public var denseBytes: Int
        public var storedBytes: Int
        public var compressionRatio: Double

        package init(denseBytes: Int, storedBytes: Int, compressionRatio: Double) {
            self.denseBytes = denseBytes
            self.storedBytes = storedBytes
            self.compressionRatio = compressionRatio
        }
    }

    /// An artifact's `__metadata__`, parsed and checked for shape (the layers are checked against
    /// their tensors as they are built).
    public struct Metadata: Sendable {
        public var provenance: ArtifactProvenance
        /// How the model evaluates its activations (piecewise-linear tables are a load-time choice
        /// recorded with the compression).
        public var activations: ActivationApproximation
        public var layers: [LayerRecord]
        public var totals: Totals
        private var index: [String: Int]

        public init(_ file: SafeTensors) throws {
            let meta = file.metadata
            func fail(_ message: String) -> SafeTensorsError { SafeTensorsError(file: file.source, reason: "__metadata__: \(message)") }
            func value(_ key: String) throws -> String {
                guard let v = meta[key] else { throw fail("'\(key)' is missing (not a SparseServe artifact?)") }
                return v
            }
            guard try value(MetadataKey.format) == CompressedArtifact.format else {
                throw fail("format '\(meta[MetadataKey.format] ?? "")' is not '\(CompressedArtifact.format)'")
            }
            let version = try value(MetadataKey.formatVersion)
            guard Int(version) == CompressedArtifact.formatVersion else {
                throw fail("format_version '\(version)' is not supported (this build reads artifact format version \(CompressedArtifact.formatVersion))")
            }
            func decode<T: Decodable>(_ type: T.Type, _ key: String) throws -> T {
                do {
                    return try JSONDecoder().decode(T.self, from: Data(try value(key).utf8))
                } catch let error as DecodingError {
                    throw fail("'\(key)' is not valid: \(error.conciseDescription)")
                }
            }
            let compression = try value(MetadataKey.compression)
            let method = (try? JSON.parse(Array(compression.utf8)))?["method"]?.stringValue
            guard let method else { throw fail("'compression' must be a JSON object with a 'method'") }
            provenance = ArtifactProvenance(formatVersion: CompressedArtifact.formatVersion, toolVersion: try value(MetadataKey.toolVersion),
                                            sourceModel: try value(MetadataKey.sourceModel),
                                            sourceFingerprint: try value(MetadataKey.sourceFingerprint),
                                            compression: compression, method: method,
                                            calibration: try Self.object(meta[MetadataKey.calibration], MetadataKey.calibration, fail),
                                            quality: try Self.object(meta[MetadataKey.quality], MetadataKey.quality, fail),
                                            recovery: try Self.object(meta[MetadataKey.recovery], MetadataKey.recovery, fail))
            activations = try Self.activations(try value(MetadataKey.activations)) { fail($0) }
            layers = try decode([LayerRecord].self, MetadataKey.layers)
            totals = try decode(Totals.self, MetadataKey.totals)
            var index: [String: Int] = [:]
            for (i, record) in layers.enumerated() {
                guard index.updateValue(i, forKey: record.name) == nil else { throw fail("layer '\(record.name)' is listed twice") }
                guard record.shape.count == 2, record.shape.allSatisfy({ $0 > 0 && $0 < 1 << 31 }), record.shape[0] * record.shape[1] < 1 << 40 else {
                    throw fail("layers[\(i)] '\(record.name)': shape \(record.shape) is not [out, in] with positive sizes of a real layer")
                }
            }
            self.index = index
            // (Wrapping sums: each layer's own numbers are checked against its tensors when it is built.)
            let dense = layers.reduce(0) { $0 &+ $1.denseBytes }, stored = layers.reduce(0) { $0 &+ $1.bytes }
            guard totals.denseBytes == dense, totals.storedBytes == stored else {
                throw fail("totals say \(totals.denseBytes) dense and \(totals.storedBytes) stored bytes, the layers add up to \(dense) and \(stored)")
            }
        }

        /// An optional metadata entry that must hold a JSON object when present.
        static func object(_ text: String?, _ key: String, _ fail: (String) -> any Error) throws -> String? {
            guard let text else { return nil }
            guard (try? JSON.parse(Array(text.utf8)))?.objectValue != nil else {
                throw fail("'\(key)' must be a JSON object")
            }
            return text
        }

        /// "exact" or "pwl:<segments>".
        static func activations(_ text: String, _ fail: (String) -> any Error) throws -> ActivationApproximation {
            if text == "exact" { return .exact }
            if text.hasPrefix("pwl:"), let segments = Int(text.dropFirst(4)), (2...4096).contains(segments) { return .pwl(segments: segments) }
            throw fail("activations '\(text)' is not 'exact' or 'pwl:<segments>'")
        }

        package static func text(_ activations: ActivationApproximation) -> String {
            switch activations {
            case .exact: return "exact"
            case .pwl(let segments): return "pwl:\(segments)"
            }
        }

        /// The record of layer `name`.
        public func layer(_ name: String, file: String) throws -> LayerRecord {
            guard let i = index[name] else {
                throw SafeTensorsError(file: file, reason: "__metadata__: no entry for layer '\(name)' (listed: \(layers.map(\.name).joined(separator: ", ")))")
            }
            return layers[i]
        }

        /// Reads layer `name`'s packed tensors, builds it, and checks it against its record.
        func build(_ name: String, weight: String, bias: String?, outputs: Int, inputs: Int, file: SafeTensors, time: Bool) throws -> BuiltLinearLayer {
            let record = try layer(name, file: file.source)
            let prefix = "\(name).\(record.method)"
            func mismatch(_ tensor: String?, _ message: String) -> SafeTensorsError {
                SafeTensorsError(file: file.source, tensor: tensor, reason: "metadata of layer '\(name)': \(message)")
            }
            guard record.sourceWeight == weight, record.sourceBias == bias else {
                throw mismatch(nil, "replaces tensors \(record.sourceWeight)/\(record.sourceBias ?? "-"), the manifest names \(weight)/\(bias ?? "-")")
            }
            guard record.shape == [outputs, inputs] else {
                throw mismatch(nil, "shape \(record.shape), the model needs [\(outputs), \(inputs)]")
            }
            let layout = try record.layout { mismatch(nil, $0) }
            let expected = PackedLayer.partNames(layout, hasBias: record.storesBias).map { "\(prefix).\($0)" }
            guard record.tensors == expected else {
                throw mismatch(nil, "lists tensors \(record.tensors), a \(layout.method) layer stores \(expected)")
            }
            let packed = try PackedLayer.read(from: file, prefix: prefix, layout: layout, outputFeatures: outputs, inputFeatures: inputs,
                                              hasBias: record.storesBias, sourceHasBias: bias != nil)
            let built: BuiltLinearLayer
            do {
                built = try BuiltLinearLayer(packed: packed, parameters: record.parameters, pinned: record.pinned, reference: nil,
                                             relativeError: record.relativeError, time: time)
            } catch let error as PackedLayer.FormError {
                throw SafeTensorsError(file: file.source, tensor: "\(prefix).\(error.part ?? expected[0].split(separator: ".").last.map(String.init) ?? "")",
                                       reason: error.reason)
            }
            let facts = built.facts, main = expected[0]
            guard record.storedParameters == facts.storedParameters else {
                throw mismatch(main, "storedParameters \(record.storedParameters), the tensors hold \(facts.storedParameters)")
            }
            guard record.bytes == facts.storedBytes else { throw mismatch(main, "bytes \(record.bytes), the tensors hold \(facts.storedBytes)") }
            guard record.denseBytes == facts.denseBytes else { throw mismatch(main, "denseBytes \(record.denseBytes), the shape gives \(facts.denseBytes)") }
            guard abs(record.density - facts.density) <= 1e-9 * max(1, facts.density) else {
                throw mismatch(main, "density \(record.density), the tensors give \(facts.density)")
            }
            guard record.relativeError.isFinite, record.relativeError >= 0 else {
                throw mismatch(main, "relativeError \(record.relativeError) is not a non-negative number")
            }
            guard record.maskCheck == facts.maskCheck else {
                throw mismatch(expected[min(1, expected.count - 1)], "maskCheck '\(record.maskCheck ?? "-")', the index stream holds '\(facts.maskCheck ?? "-")'")
            }
            return built
        }
    }

    /// Reads and checks every layer an artifact's metadata lists, on its own (no model, not timed):
    /// for fuzzing and tests. Errors name the file and the tensor as a load's would.
    public static func readLayers(_ file: SafeTensors) throws -> [BuiltLinearLayer] {
        let metadata = try Metadata(file)
        return try metadata.layers.map { record in
            try metadata.build(record.name, weight: record.sourceWeight, bias: record.sourceBias, outputs: record.shape[0],
                               inputs: record.shape[1], file: file, time: false)
        }
    }

    /// Whether the manifest at `path` carries the `"compressed"` marker.
    package static func isMarked(_ path: String) throws -> Bool {
        guard let data = FileManager.default.contents(atPath: path) else { throw ModelLoadError(file: path, "file does not exist") }
        guard let json = try? JSONDecoder().decode([String: LooseJSONValue].self, from: data) else {
            throw ModelLoadError(file: path, "is not a JSON object")
        }
        return json["compressed"] != nil
    }

    /// The source manifest with the `"compressed"` marker added (re-encoded: a manifest has no
    /// keys `ModelManifest` does not hold).
    package static func markedManifest(_ path: String) throws -> Data {
        var manifest = try ModelManifest.load(path: path)
        manifest.compressed = Marker()
        return Data(try JSONValueEncoder().text(manifest, indent: 2).utf8)
    }

    /// FNV-1a 64 of a file's bytes, as "fnv1a64:<16 hex digits>".
    public static func fingerprint(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else { throw ModelLoadError(file: path, "cannot read file") }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            for byte in bytes {
                hash ^= UInt64(byte)
                hash = hash &* 0x0000_0100_0000_01b3
            }
        }
        return "fnv1a64:" + String(format: "%016llx", hash)
    }

    // MARK: Verifying against the source

    /// Re-measures each layer's relative error against the source model's dense weights, when
    /// the source model the metadata names is still there and unchanged (same fingerprint).
    /// Returns (layer, recorded, measured) rows, or a reason why it cannot verify.
    public static func verifyErrors(of builder: LinearLayerBuilder) -> Result<[(layer: String, recorded: Double, measured: Double)], ModelLoadError> {
        guard let artifact = builder.artifact else { return .failure(ModelLoadError(file: builder.weights.source, "not an artifact")) }
        let sourceWeights = ModelLoader.path(artifact.provenance.sourceModel, ModelLoader.weightsFileName)
        guard FileManager.default.fileExists(atPath: sourceWeights) else {
            return .failure(ModelLoadError(file: sourceWeights, "source model not found; errors not re-measured"))
        }
        do {
            guard try fingerprint(sourceWeights) == artifact.provenance.sourceFingerprint else {
                return .failure(ModelLoadError(file: sourceWeights, "source model changed since compression (fingerprint differs); errors not re-measured"))
            }
            let source = try SafeTensors(contentsOf: sourceWeights)
            var rows: [(String, Double, Double)] = []
            for entry in builder.built {
                let packed = entry.layer.packed
                guard let represented = packed.denseWeights(entry.layer.compressed) else { continue }  // compacted: see denseWeights
                let w = try builder.denseWeight(of: entry.name, tensor: entry.weight, outputs: packed.outputFeatures,
                                                inputs: packed.inputFeatures, in: source)
                rows.append((entry.name, entry.layer.facts.relativeError, LayerCompression.relativeError(w, represented)))
            }
            return .success(rows)
        } catch let error as ModelLoadError {
            return .failure(error)
        } catch {
            return .failure(ModelLoadError(file: sourceWeights, "\(error)"))
        }
    }
}
