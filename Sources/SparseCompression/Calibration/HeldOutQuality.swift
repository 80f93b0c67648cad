import Foundation
import SparseModels

/// Quality of a compressed model against its dense source on held-out data that compression never
/// saw: for classifiers (a safetensors file with `inputs` and `labels`, e.g. a model's
/// test.safetensors) the accuracy of both and their agreement; for text encoders (one text per
/// line) the mean and minimum cosine between compressed and dense embeddings.
public struct HeldOutQuality: Sendable, Equatable, Codable {
    public var source: String
    public var samples: Int
    public var accuracy: Double?
    public var denseAccuracy: Double?
    public var agreement: Double?
    public var meanCosine: Double?
    public var minCosine: Double?

    /// One line for logs and the CLI.
    public var summary: String {
        if let accuracy, let denseAccuracy, let agreement {
            return String(format: "held-out accuracy %.4f (dense %.4f, agreement %.4f) on %d samples of %@", accuracy, denseAccuracy,
                          agreement, samples, source)
        }
        return String(format: "held-out cosine to dense: mean %.4f, min %.4f on %d texts of %@", meanCosine ?? 0, minCosine ?? 0,
                      samples, source)
    }

    /// The default held-out file of a model folder: `heldout.txt` or `test.safetensors`.
    public static func defaultFile(inModel directory: String) -> String? {
        for name in ["heldout.txt", "test.safetensors"] {
            let path = (directory as NSString).appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: path) { return path }
        }
        return nil
    }

    /// Measures `compressed` against `dense` on the held-out file at `path` (at most `limit` samples).
    public static func measure(compressed: any InferenceModel, dense: any InferenceModel, path: String, limit: Int = 4096) throws -> HeldOutQuality {
        let set = try CalibrationSet.load(path: path, for: dense).prefix(limit)
        guard let input = dense.inputs.first, let output = dense.outputs.first(where: { $0.datatype == .fp32 }) else {
            throw CalibrationError(file: path, "the model has no input or FP32 output to compare")
        }
        var quality = HeldOutQuality(source: path, samples: set.count)
        let tensor: Tensor
        switch set.samples {
        case .tokens:
            let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
                .map { $0.hasSuffix("\r") ? String($0.dropLast()) : String($0) }
                .filter { $0.contains { $0 != " " && $0 != "\t" } }.prefix(limit)
            tensor = Tensor(shape: [lines.count], storage: .bytes(lines.map { Array($0.utf8) }))
        case let .tensors(values, shape):
            tensor = Tensor(shape: [set.count] + shape, storage: .fp32(values))
        }
        let a = try values(compressed.infer([input.name: tensor]), output.name)
        let b = try values(dense.infer([input.name: tensor]), output.name)
        let width = a.count / max(1, set.count)
        let rows = (0..<set.count).map { (Array(a[$0 * width..<($0 + 1) * width]), Array(b[$0 * width..<($0 + 1) * width])) }
        if let labels = set.labels {
            let predicted = rows.map { argmax($0.0) }, reference = rows.map { argmax($0.1) }
            quality.accuracy = fraction(zip(predicted, labels).map { Int64($0) == $1 })
            quality.denseAccuracy = fraction(zip(reference, labels).map { Int64($0) == $1 })
            quality.agreement = fraction(zip(predicted, reference).map { $0 == $1 })
        } else {
            let cosines = rows.map { cosine($0.0, $0.1) }
            quality.meanCosine = cosines.reduce(0, +) / Double(max(1, cosines.count))
            quality.minCosine = cosines.min()
        }
        return quality
    }

    static func values(_ outputs: [String: Tensor], _ name: String) throws -> [Float] {
        guard case .fp32(let v)? = outputs[name]?.storage else { throw CalibrationError(file: name, "output is not FP32") }
        return v
    }

    static func argmax(_ v: [Float]) -> Int { v.indices.max { v[$0] < v[$1] } ?? 0 }
    static func fraction(_ flags: [Bool]) -> Double { Double(flags.filter { $0 }.count) / Double(max(1, flags.count)) }
    static func cosine(_ a: [Float], _ b: [Float]) -> Double {
        var ab = 0.0, aa = 0.0, bb = 0.0
        for (x, y) in zip(a, b) { ab += Double(x) * Double(y); aa += Double(x) * Double(x); bb += Double(y) * Double(y) }
        return ab / max(1e-30, (aa * bb).squareRoot())
    }
}
