import Foundation
import SparseModels

/// Calibration data for compression (and training data for recovery): the inputs a model sees,
/// read from a text file (one sample per line, for text encoders) or a safetensors file (tensor
/// `inputs` of shape `[n, ...]` matching the model's input, FP32; optional `labels`, I64 `[n]`).
/// Loading checks everything up front and names the file and line or tensor of a problem.
///
/// Use: `let set = try CalibrationSet.load(path:for:)`, then `set.batches(size:)` for sample
/// batches, or `LayerwiseCalibration` (per-layer activations) in the compression pass.
public struct CalibrationSet: Sendable {
    public enum Samples: Sendable {
        /// Token ids per text (`[CLS]` … `[SEP]`), as the model's tokenizer gives them.
        case tokens([[Int32]])
        /// Row-major FP32 samples of `featureShape` each (e.g. `[64]`, `[1, 150]`).
        case tensors(values: [Float], featureShape: [Int])
    }

    /// Where the samples came from (the path given).
    public var source: String
    public var samples: Samples
    /// Class labels of tensor samples, when the file holds them.
    public var labels: [Int64]?

    public init(source: String, samples: Samples, labels: [Int64]? = nil) {
        self.source = source
        self.samples = samples
        self.labels = labels
    }

    public var count: Int {
        switch samples {
        case .tokens(let ids): return ids.count
        case let .tensors(values, shape): return values.count / max(1, shape.reduce(1, *))
        }
    }

    /// Samples [from, from + count) (clamped to what there is).
    public func slice(from: Int, count: Int) -> CalibrationSet {
        let range = min(from, self.count)..<min(from + count, self.count)
        let labels = self.labels.map { Array($0[range]) }
        switch samples {
        case .tokens(let ids):
            return CalibrationSet(source: source, samples: .tokens(Array(ids[range])), labels: labels)
        case let .tensors(values, shape):
            let width = shape.reduce(1, *)
            return CalibrationSet(source: source, samples: .tensors(values: Array(values[(range.lowerBound * width)..<(range.upperBound * width)]),
                                                                    featureShape: shape), labels: labels)
        }
    }

    /// The first `count` samples.
    public func prefix(_ count: Int) -> CalibrationSet { slice(from: 0, count: count) }

    /// Consecutive batches of at most `size` samples, in file order.
    public func batches(size: Int) -> [CalibrationSet] {
        stride(from: 0, to: count, by: max(1, size)).map { slice(from: $0, count: size) }
    }

    /// Reads `path` for `model`: lines of text for a `TextEncodingModel` (blank lines skipped;
    /// every line valid UTF-8 and within the model's token limit), otherwise a safetensors file
    /// whose `inputs` match the model's first input. Empty files are refused.
    public static func load(path: String, for model: any InferenceModel) throws -> CalibrationSet {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              let size = (attributes[.size] as? NSNumber)?.intValue else {
            throw CalibrationError(file: path, "cannot read the file")
        }
        guard size <= maximumFileBytes else { throw CalibrationError(file: path, "is \(size) bytes; calibration files are limited to \(maximumFileBytes)") }
        if let encoder = model as? any TextEncodingModel { return try loadTexts(path: path, model: encoder) }
        guard let spec = model.inputs.first else { throw CalibrationError(file: path, "the model declares no input") }
        return try loadTensors(path: path, spec: spec)
    }

    /// Largest calibration file read (texts or tensors).
    public static let maximumFileBytes = 256 << 20

    static func loadTexts(path: String, model: any TextEncodingModel) throws -> CalibrationSet {
        guard let data = FileManager.default.contents(atPath: path) else { throw CalibrationError(file: path, "cannot read the file") }
        var sequences: [[Int32]] = []
        var lineNumber = 0
        for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            var bytes = Array(line)
            if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
            guard bytes.contains(where: { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") }) else { continue }
            let (ids, full): ([Int32], Int)
            do {
                (ids, full) = try model.tokenize(utf8: bytes, limit: nil)
            } catch {
                throw CalibrationError(file: path, line: lineNumber, "\(error)")
            }
            guard full <= model.maxTokens else {
                throw CalibrationError(file: path, line: lineNumber, "has \(full) tokens; the model takes at most \(model.maxTokens)")
            }
            sequences.append(ids)
        }
        guard !sequences.isEmpty else { throw CalibrationError(file: path, "is empty: it needs one text per line") }
        return CalibrationSet(source: path, samples: .tokens(sequences))
    }

    static func loadTensors(path: String, spec: TensorSpec) throws -> CalibrationSet {
        let file: SafeTensors
        do {
            file = try SafeTensors(contentsOf: path)
        } catch {
            throw CalibrationError(file: path, "is not a safetensors file of calibration inputs: \(error)")
        }
        guard file.contains("inputs") else {
            throw CalibrationError(file: path, tensor: "inputs", "is missing (a calibration file holds 'inputs' [n, ...] and optionally 'labels' [n])")
        }
        let info = try file.info(named: "inputs")
        let shapes = ([spec.shape] + spec.alternativeShapes).map { Array($0.dropFirst()) }
        let features = Array(info.shape.dropFirst())
        guard info.dtype == .f32 else { throw CalibrationError(file: path, tensor: "inputs", "has dtype \(info.dtype.rawValue); calibration inputs are F32") }
        guard info.shape.count >= 2, info.shape[0] > 0 else {
            throw CalibrationError(file: path, tensor: "inputs", "has shape \(info.shape); it needs [n, ...] with n > 0 samples")
        }
        guard shapes.contains(where: { Self.matches(features, $0) }) else {
            throw CalibrationError(file: path, tensor: "inputs", "has samples of shape \(features); the model's input '\(spec.name)' takes \(shapes.map { "\($0)" }.joined(separator: " or "))")
        }
        let values = try file.tensor(named: "inputs")
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw CalibrationError(file: path, tensor: "inputs", "element \(bad) is not a finite number")
        }
        var labels: [Int64]?
        if file.contains("labels") {
            let l = try file.info(named: "labels")
            guard l.dtype == .i64, l.shape == [info.shape[0]] else {
                throw CalibrationError(file: path, tensor: "labels", "must be I64 [\(info.shape[0])], found \(l.dtype.rawValue) \(l.shape)")
            }
            labels = try file.int64Tensor(named: "labels")
        }
        return CalibrationSet(source: path, samples: .tensors(values: values, featureShape: features), labels: labels)
    }

    /// A declared shape (with -1 for any size) against a concrete one.
    static func matches(_ concrete: [Int], _ declared: [Int]) -> Bool {
        concrete.count == declared.count && zip(concrete, declared).allSatisfy { $1 < 0 || $0 == $1 }
    }
}

/// A calibration file that cannot be used, naming the file and the line or tensor.
public struct CalibrationError: Error, CustomStringConvertible, Sendable, Equatable {
    public var file: String
    public var line: Int?
    public var tensor: String?
    public var reason: String

    public init(file: String, line: Int? = nil, tensor: String? = nil, _ reason: String) {
        self.file = file
        self.line = line
        self.tensor = tensor
        self.reason = reason
    }

    public var description: String {
        let place = line.map { "\(file):\($0)" } ?? tensor.map { "\(file): tensor '\($0)'" } ?? file
        return "calibration \(place): \(reason)"
    }
}
