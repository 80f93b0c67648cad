import Foundation
import SparseKernels

/// A model directory that cannot be loaded: `file` is the offending file, `message` what is wrong.
public struct ModelLoadError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var message: String

    public init(file: String, _ message: String) {
        self.file = file
        self.message = message
    }

    public var description: String { "\(file): \(message)" }
}

/// The `model.json` manifest of a model directory: architecture, declared inputs and outputs, and
/// (for layered architectures) the layer list that names tensors of `model.safetensors`.
/// Unknown keys anywhere are rejected, naming the key.
public struct ModelManifest: Sendable, Equatable, Codable {
    public var architecture: ModelArchitecture
    public var name: String?
    public var description: String?
    public var inputs: [TensorSpec]
    public var outputs: [TensorSpec]
    public var layers: [LayerSpec]
    /// Class names, one per output feature of a classifier.
    public var labels: [String]?
    /// Set in compressed artifacts (`sparse-serve compress`): their linear layers are stored packed.
    public var compressed: CompressedArtifact.Marker?
    /// A bert-encoder's pooling and tokenizer options (only that architecture takes the block).
    public var encoder: BertEncoderOptions.Block?

    public init(architecture: ModelArchitecture, name: String? = nil, description: String? = nil, inputs: [TensorSpec],
                outputs: [TensorSpec], layers: [LayerSpec] = [], labels: [String]? = nil) {
        self.architecture = architecture
        self.name = name
        self.description = description
        self.inputs = inputs
        self.outputs = outputs
        self.layers = layers
        self.labels = labels
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case architecture, name, description, inputs, outputs, layers, labels, compressed, encoder
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(allowed: CodingKeys.allCases.map(\.stringValue))
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let architectureName = try c.decode(String.self, forKey: .architecture)
        guard let architecture = ModelArchitecture(rawValue: architectureName) else {
            let known = ModelArchitecture.allCases.map(\.rawValue).joined(separator: ", ")
            throw DecodingError.dataCorruptedError(forKey: .architecture, in: c,
                                                   debugDescription: "unknown architecture '\(architectureName)' (known: \(known))")
        }
        self.architecture = architecture
        name = try c.decodeIfPresent(String.self, forKey: .name)
        description = try c.decodeIfPresent(String.self, forKey: .description)
        inputs = try c.decode([StrictTensorSpec].self, forKey: .inputs).map(\.spec)
        outputs = try c.decode([StrictTensorSpec].self, forKey: .outputs).map(\.spec)
        layers = try c.decodeIfPresent([LayerSpec].self, forKey: .layers) ?? []
        labels = try c.decodeIfPresent([String].self, forKey: .labels)
        compressed = try c.decodeIfPresent(CompressedArtifact.Marker.self, forKey: .compressed)
        encoder = try c.decodeIfPresent(BertEncoderOptions.Block.self, forKey: .encoder)
    }

    /// Decodes a manifest; `source` names it in errors.
    public static func decode(_ data: Data, source: String) throws -> ModelManifest {
        let manifest: ModelManifest
        do {
            manifest = try JSONDecoder().decode(ModelManifest.self, from: data)
        } catch let error as DecodingError {
            throw ModelLoadError(file: source, "invalid manifest: \(error.conciseDescription)")
        } catch {
            throw ModelLoadError(file: source, "invalid manifest: \(error)")
        }
        try manifest.validate(source: source)
        return manifest
    }

    /// Reads and decodes the manifest at `path`.
    public static func load(path: String) throws -> ModelManifest {
        guard FileManager.default.fileExists(atPath: path) else { throw ModelLoadError(file: path, "file does not exist") }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ModelLoadError(file: path, "cannot read file (\(error.localizedDescription))")
        }
        return try decode(data, source: path)
    }

    /// Checks that do not depend on the architecture: non-empty unique names, sane shapes.
    func validate(source: String) throws {
        guard encoder == nil || architecture == .bertEncoder else {
            throw ModelLoadError(file: source, "encoder: only bert-encoder models take an \"encoder\" block, this one is '\(architecture.rawValue)'")
        }
        for (kind, specs) in [("inputs", inputs), ("outputs", outputs)] {
            guard !specs.isEmpty else { throw ModelLoadError(file: source, "\(kind) must not be empty") }
            var seen = Set<String>()
            for (i, spec) in specs.enumerated() {
                guard !spec.name.isEmpty else { throw ModelLoadError(file: source, "\(kind)[\(i)].name must not be empty") }
                guard seen.insert(spec.name).inserted else {
                    throw ModelLoadError(file: source, "\(kind)[\(i)].name '\(spec.name)' is declared twice")
                }
                guard !spec.shape.isEmpty, spec.shape.allSatisfy({ $0 == -1 || $0 > 0 }) else {
                    throw ModelLoadError(file: source, "\(kind)[\(i)].shape \(spec.shape) must be non-empty, each dimension -1 or positive")
                }
            }
        }
    }
}

/// A `TensorSpec` decoded with unknown-key checking.
private struct StrictTensorSpec: Decodable {
    var spec: TensorSpec

    enum CodingKeys: String, CodingKey, CaseIterable { case name, datatype, shape }

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(allowed: CodingKeys.allCases.map(\.stringValue))
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let name = try c.decode(String.self, forKey: .name)
        let typeName = try c.decode(String.self, forKey: .datatype)
        guard let datatype = DataType(rawValue: typeName) else {
            throw DecodingError.dataCorruptedError(forKey: .datatype, in: c, debugDescription:
                "unknown datatype '\(typeName)' (known: \(DataType.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        spec = TensorSpec(name: name, datatype: datatype, shape: try c.decode([Int].self, forKey: .shape))
    }
}

/// One entry of a manifest's `"layers"` list, selected by its `"type"`. New layer types add a case
/// and a spec struct; each spec lists the keys it accepts.
public enum LayerSpec: Sendable, Equatable, Codable {
    /// `{"type": "linear", "name"?, "weight", "bias"?, "activation"?}`: y = act(x·Wᵀ + b), W `[out, in]`.
    case linear(LinearLayerSpec)
    /// `{"type": "activation", "name"?, "activation"}`: an element-wise function on its own.
    case activation(ActivationLayerSpec)
    /// `{"type": "softmax", "name"?}`: softmax over the features of each row.
    case softmax(SoftmaxLayerSpec)
    /// `{"type": "conv1d", …}`: a 1-D convolution over time (`sequential` models).
    case conv1d(Conv1dLayerSpec)
    /// `{"type": "recurrence", …}`: a linear recurrence over time (`sequential` models).
    case recurrence(RecurrenceLayerSpec)
    /// `{"type": "maxpool1d" | "avgpool1d" | "globalmaxpool1d" | "globalavgpool1d", …}` (`sequential` models).
    case pool(PoolLayerSpec)
    /// `{"type": "flatten", "name"?}` (`sequential` models).
    case flatten(FlattenLayerSpec)

    /// The layer types this build understands.
    public static let knownTypes = ["linear", "activation", "softmax", "conv1d", "recurrence", "maxpool1d", "avgpool1d",
                                    "globalmaxpool1d", "globalavgpool1d", "flatten"]

    enum TypeKey: String, CodingKey { case type }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: TypeKey.self)
        let type = try c.decode(String.self, forKey: .type)
        switch type {
        case "linear": self = .linear(try LinearLayerSpec(from: decoder))
        case "activation": self = .activation(try ActivationLayerSpec(from: decoder))
        case "softmax": self = .softmax(try SoftmaxLayerSpec(from: decoder))
        case "conv1d": self = .conv1d(try Conv1dLayerSpec(from: decoder))
        case "recurrence": self = .recurrence(try RecurrenceLayerSpec(from: decoder))
        case "maxpool1d", "avgpool1d", "globalmaxpool1d", "globalavgpool1d": self = .pool(try PoolLayerSpec(from: decoder))
        case "flatten": self = .flatten(try FlattenLayerSpec(from: decoder))
        default:
            throw DecodingError.dataCorruptedError(forKey: .type, in: c, debugDescription:
                "unknown layer type '\(type)' (known: \(Self.knownTypes.joined(separator: ", ")))")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: TypeKey.self)
        try c.encode(type, forKey: .type)
        switch self {
        case .linear(let spec): try spec.encode(to: encoder)
        case .activation(let spec): try spec.encode(to: encoder)
        case .softmax(let spec): try spec.encode(to: encoder)
        case .conv1d(let spec): try spec.encode(to: encoder)
        case .recurrence(let spec): try spec.encode(to: encoder)
        case .pool(let spec): try spec.encode(to: encoder)
        case .flatten(let spec): try spec.encode(to: encoder)
        }
    }

    /// The `"type"` string.
    public var type: String {
        switch self {
        case .linear: return "linear"
        case .activation: return "activation"
        case .softmax: return "softmax"
        case .conv1d: return "conv1d"
        case .recurrence: return "recurrence"
        case .pool(let spec): return spec.type
        case .flatten: return "flatten"
        }
    }

    /// The optional `"name"`.
    public var name: String? {
        switch self {
        case .linear(let spec): return spec.name
        case .activation(let spec): return spec.name
        case .softmax(let spec): return spec.name
        case .conv1d(let spec): return spec.name
        case .recurrence(let spec): return spec.name
        case .pool(let spec): return spec.name
        case .flatten(let spec): return spec.name
        }
    }
}

/// A fully connected layer reading its weight (and optional bias) from the safetensors file.
public struct LinearLayerSpec: Sendable, Equatable, Codable {
    public var name: String?
    /// Tensor name of the `[out, in]` weight; defaults to `"<name>.weight"`.
    public var weight: String
    /// Tensor name of the `[out]` bias, if any.
    public var bias: String?
    public var activation: Activation

    public init(name: String? = nil, weight: String, bias: String? = nil, activation: Activation = .none) {
        self.name = name
        self.weight = weight
        self.bias = bias
        self.activation = activation
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case type, name, weight, bias, activation }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(allowed: CodingKeys.allCases.map(\.stringValue))
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        weight = try decodeTensorName(c, .weight, name: name, suffix: "weight", layer: "a linear layer", decoder: decoder)
        bias = try c.decodeIfPresent(String.self, forKey: .bias)
        activation = try c.decodeIfPresent(Activation.self, forKey: .activation) ?? .none
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(name, forKey: .name)
        try c.encode(weight, forKey: .weight)
        try c.encodeIfPresent(bias, forKey: .bias)
        if activation != .none { try c.encode(activation, forKey: .activation) }
    }
}

/// A stand-alone element-wise activation layer.
public struct ActivationLayerSpec: Sendable, Equatable, Codable {
    public var name: String?
    public var activation: Activation

    public init(name: String? = nil, activation: Activation) {
        self.name = name
        self.activation = activation
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case type, name, activation }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(allowed: CodingKeys.allCases.map(\.stringValue))
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        activation = try c.decode(Activation.self, forKey: .activation)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(name, forKey: .name)
        try c.encode(activation, forKey: .activation)
    }
}

/// A row-wise softmax layer.
public struct SoftmaxLayerSpec: Sendable, Equatable, Codable {
    public var name: String?

    public init(name: String? = nil) { self.name = name }

    enum CodingKeys: String, CodingKey, CaseIterable { case type, name }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(allowed: CodingKeys.allCases.map(\.stringValue))
        name = try decoder.container(keyedBy: CodingKeys.self).decodeIfPresent(String.self, forKey: .name)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(name, forKey: .name)
    }
}
