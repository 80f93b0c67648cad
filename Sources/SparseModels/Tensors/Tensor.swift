/// Element types of the Open Inference Protocol that SparseServe understands.
public enum DataType: String, Sendable, CaseIterable, Codable {
    case bool = "BOOL"
    case uint8 = "UINT8"
    case int32 = "INT32"
    case int64 = "INT64"
    case fp32 = "FP32"
    case fp64 = "FP64"
    case bytes = "BYTES"

    /// Bytes per element, or nil for variable-length BYTES.
    public var byteSize: Int? {
        switch self {
        case .bool, .uint8: return 1
        case .int32, .fp32: return 4
        case .int64, .fp64: return 8
        case .bytes: return nil
        }
    }
}

/// The typed element storage of a tensor (row-major).
public enum TensorStorage: Sendable, Equatable {
    case bool([Bool])
    case uint8([UInt8])
    case int32([Int32])
    case int64([Int64])
    case fp32([Float])
    case fp64([Double])
    case bytes([[UInt8]])

    public var datatype: DataType {
        switch self {
        case .bool: return .bool
        case .uint8: return .uint8
        case .int32: return .int32
        case .int64: return .int64
        case .fp32: return .fp32
        case .fp64: return .fp64
        case .bytes: return .bytes
        }
    }

    public var count: Int {
        switch self {
        case .bool(let a): return a.count
        case .uint8(let a): return a.count
        case .int32(let a): return a.count
        case .int64(let a): return a.count
        case .fp32(let a): return a.count
        case .fp64(let a): return a.count
        case .bytes(let a): return a.count
        }
    }
}

/// A dense row-major tensor: shape plus typed storage (`shape.product == storage.count`).
public struct Tensor: Sendable, Equatable {
    public var shape: [Int]
    public var storage: TensorStorage

    public init(shape: [Int], storage: TensorStorage) {
        precondition(shape.reduce(1, *) == storage.count, "shape \(shape) does not match \(storage.count) elements")
        self.shape = shape
        self.storage = storage
    }

    public var datatype: DataType { storage.datatype }
    public var elementCount: Int { storage.count }
}

/// A model input or output as declared by the model: name, datatype and shape (-1 = any size).
public struct TensorSpec: Sendable, Equatable, Codable {
    public var name: String
    public var datatype: DataType
    public var shape: [Int]
    /// Other shapes the model takes for this input, batch first, each holding the same elements as
    /// `shape` (e.g. `[-1, 150]` for `[-1, 1, 150]`); requests in them are reshaped to `shape`.
    /// Only for inputs whose declared shape is fixed past the batch dimension.
    public var alternativeShapes: [[Int]]

    public init(name: String, datatype: DataType, shape: [Int], alternativeShapes: [[Int]] = []) {
        self.name = name
        self.datatype = datatype
        self.shape = shape
        self.alternativeShapes = alternativeShapes
    }

    enum CodingKeys: String, CodingKey { case name, datatype, shape }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(name: try c.decode(String.self, forKey: .name), datatype: try c.decode(DataType.self, forKey: .datatype),
                  shape: try c.decode([Int].self, forKey: .shape))
    }
}

/// Errors a model raises for inputs it cannot run (mapped to HTTP 400 by the server).
public struct InvalidInputError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A loaded, runnable model. Implementations are immutable after loading and safe to call from any thread.
public protocol InferenceModel: Sendable {
    /// Architecture name from the manifest, e.g. "mlp".
    var architecture: String { get }
    /// Declared inputs; the first dimension is the batch (-1).
    var inputs: [TensorSpec] { get }
    /// Declared outputs; the first dimension is the batch (-1).
    var outputs: [TensorSpec] { get }
    /// Runs a forward pass. Inputs are already checked against `inputs` (names, datatypes, shapes).
    /// Returns every declared output.
    func infer(_ inputs: [String: Tensor]) throws -> [String: Tensor]
}

/// A text model whose inputs the server tokenizes itself, so that it can enforce per-input token
/// limits (refusing, or cutting only when asked), accept pre-tokenized inputs and report token
/// usage. Besides its declared text input, `infer` accepts `tokenIDsInput`: INT32 `[n, L]`, one
/// complete sequence per row (`[CLS]` … `[SEP]`), padded with -1.
public protocol TextEncodingModel: InferenceModel {
    /// The most tokens one input may have, `[CLS]` and `[SEP]` included.
    var maxTokens: Int { get }
    /// Token ids of a UTF-8 text with `[CLS]`/`[SEP]`, cut to `limit` ids when given (keeping
    /// `[SEP]`), and the count before cutting. Invalid UTF-8 is an `InvalidInputError`.
    func tokenize(utf8: [UInt8], limit: Int?) throws -> (ids: [Int32], fullCount: Int)
    /// A pre-tokenized input: ids must be in the vocabulary; `[CLS]`/`[SEP]` are added when missing;
    /// cut to `limit` when given (keeping `[SEP]`). Returns the ids and the count before cutting.
    func prepare(tokenIDs: [Int32], limit: Int?) throws -> (ids: [Int32], fullCount: Int)
}

/// Name of the INT32 `[n, L]` token-id input a `TextEncodingModel` accepts instead of texts.
public let tokenIDsInputName = "input_ids"
