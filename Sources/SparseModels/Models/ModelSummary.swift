/// Sizes of a loaded model, layer by layer (for `inspect`, metadata and compression reports).
public struct ModelSummary: Sendable, Equatable, Codable {
    /// One layer: its shape, parameters and the bytes its weights occupy in memory.
    public struct Layer: Sendable, Equatable, Codable {
        public var name: String
        public var type: String
        public var inputFeatures: Int
        public var outputFeatures: Int
        public var activation: String?
        public var parameterCount: Int
        public var byteCount: Int
        /// Operator storage ("dense", "nm 2:4", "csr", …); nil for layers without weights.
        public var storage: String?
        /// Stored over dense-equivalent parameters.
        public var density: Double?
        /// ‖W − Ŵ‖ / ‖W‖ of the compressed weight (0 for dense).
        public var relativeError: Double?
        /// What compression did to this linear layer (nil for layers without a weight matrix).
        public var compression: LayerCompressionFacts?

        public init(name: String, type: String, inputFeatures: Int, outputFeatures: Int, activation: String?,
                    parameterCount: Int, byteCount: Int) {
            self.name = name
            self.type = type
            self.inputFeatures = inputFeatures
            self.outputFeatures = outputFeatures
            self.activation = activation
            self.parameterCount = parameterCount
            self.byteCount = byteCount
        }
    }

    public var architecture: String
    public var name: String?
    public var layers: [Layer]
    /// Where the compressed layers came from, when the model was loaded from an artifact.
    public var artifact: ArtifactProvenance?

    public init(architecture: String, name: String?, layers: [Layer]) {
        self.architecture = architecture
        self.name = name
        self.layers = layers
    }

    public var parameterCount: Int { layers.reduce(0) { $0 + $1.parameterCount } }
    /// Stored parameters over those of the dense layers (1 for a dense model).
    public var density: Double {
        let dense = layers.reduce(0.0) { $0 + (($1.density ?? 0) > 0 ? Double($1.parameterCount) / $1.density! : 0) }
        return dense > 0 ? Double(parameterCount) / dense : 1
    }
    public var byteCount: Int { layers.reduce(0) { $0 + $1.byteCount } }

    /// Bytes of the linear layers' weights and biases as dense FP32, as their compression stores
    /// them, and the ratio of the two; nil without linear layers.
    public var compressionTotals: (denseBytes: Int, storedBytes: Int, ratio: Double)? {
        let facts = layers.compactMap(\.compression)
        guard !facts.isEmpty else { return nil }
        let dense = facts.reduce(0) { $0 + $1.denseBytes }, stored = facts.reduce(0) { $0 + $1.storedBytes }
        return (dense, stored, stored > 0 ? Double(dense) / Double(stored) : 1)
    }
}

/// What compressing one linear layer produced: the method and its parameters, the stored form's
/// size, density and error, the N:M mask check, and which form runs.
public struct LayerCompressionFacts: Sendable, Equatable, Codable {
    /// "dense", "nm", "csr", "blast" or "l1inf".
    public var method: String
    /// The method's parameters (e.g. n, m, mask; density; blocks, rank; groups, radiusRatio).
    public var parameters: [String: ParameterValue]
    /// Kept compressed even where dense timed faster.
    public var pinned: Bool
    /// Numbers the stored form holds (weights, factors, bias; not index metadata).
    public var storedParameters: Int
    /// Bytes of the stored form's tensors, index metadata and bias included.
    public var storedBytes: Int
    /// Bytes of the dense FP32 weight and bias.
    public var denseBytes: Int
    /// Stored over dense parameters.
    public var density: Double
    /// ‖W − Ŵ‖_F / ‖W‖_F against the dense weight.
    public var relativeError: Double
    /// N:M only: the result of checking the index stream (exactly n per group, and per column of
    /// every m×m block when transposable).
    public var maskCheck: String?
    /// Load-time timing of the compressed form against the dense form of the same weights (nil
    /// when pinned, or for methods that are not timed).
    public var timing: LayerTimingChoice?

    public init(method: String, parameters: [String: ParameterValue], pinned: Bool, storedParameters: Int, storedBytes: Int,
                denseBytes: Int, density: Double, relativeError: Double, maskCheck: String? = nil, timing: LayerTimingChoice? = nil) {
        self.method = method
        self.parameters = parameters
        self.pinned = pinned
        self.storedParameters = storedParameters
        self.storedBytes = storedBytes
        self.denseBytes = denseBytes
        self.density = density
        self.relativeError = relativeError
        self.maskCheck = maskCheck
        self.timing = timing
    }
}

/// The compressed and the dense form of a layer timed on its real shape (1 and 32 rows), and
/// which one runs.
public struct LayerTimingChoice: Sendable, Equatable, Codable {
    public var compressedMicroseconds: Double
    public var denseMicroseconds: Double
    public var runsDense: Bool
}

/// A method parameter's value: integer, number, string or boolean.
public enum ParameterValue: Sendable, Equatable, Codable, CustomStringConvertible {
    case int(Int), double(Double), string(String), bool(Bool)

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int.self) { self = .int(i) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else { self = .string(try c.decode(String.self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .int(let v): try c.encode(v)
        case .double(let v): try c.encode(v)
        case .string(let v): try c.encode(v)
        case .bool(let v): try c.encode(v)
        }
    }

    public var description: String {
        switch self {
        case .int(let v): return "\(v)"
        case .double(let v): return "\(v)"
        case .string(let v): return v
        case .bool(let v): return "\(v)"
        }
    }

    public var intValue: Int? { if case .int(let v) = self { return v } else { return nil } }
    public var stringValue: String? { if case .string(let v) = self { return v } else { return nil } }
}

/// Where an artifact came from (its safetensors metadata).
public struct ArtifactProvenance: Sendable, Equatable, Codable {
    public var formatVersion: Int
    public var toolVersion: String
    public var sourceModel: String
    /// FNV-1a 64 of the source model.safetensors, hex.
    public var sourceFingerprint: String
    /// The compression JSON the artifact was made with.
    public var compression: String
    /// Its top-level method ("nm", "blast", …).
    public var method: String
    /// Data-aware compression: the calibration data and options used (JSON), when there were any.
    public var calibration: String?
    /// Quality measured on held-out data when it was made (JSON), when it was measured.
    public var quality: String?
    /// The recovery-training report (JSON), when the layers were recovery-trained.
    public var recovery: String? = nil
}

/// A model that can describe its layers.
public protocol SummarizedModel {
    var summary: ModelSummary { get }
}

extension MLPModel: SummarizedModel {}

extension IdentityModel: SummarizedModel {
    public var summary: ModelSummary { ModelSummary(architecture: architecture, name: nil, layers: []) }
}
