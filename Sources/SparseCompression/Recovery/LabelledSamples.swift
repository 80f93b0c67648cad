import Foundation
import SparseModels

/// Samples of a numeric model for recovery training or held-out evaluation, read from a
/// safetensors file: `inputs` (floating point `[n, features]`, or for sequence models
/// `[n, channels, length]`, kept time-major) and optionally `labels` (integer `[n]`, class
/// indices). The file layout of `models/digits-mlp/test.safetensors` and
/// `models/timeseries/test.safetensors`. Errors name the file and the tensor.
public struct LabelledSamples: Sendable {
    public static let inputsTensor = "inputs"
    public static let labelsTensor = "labels"

    public let source: String
    public let count: Int
    public let features: Int
    /// Row-major `count × features`.
    public let inputs: [Float]
    public let labels: [Int32]?

    /// Reads and checks the file for a model of `features` inputs and `classes` outputs; a model
    /// over `channels` channels of `features / channels` steps also takes `[n, channels, length]`
    /// (PyTorch's layout, transposed here to the time-major rows it trains on).
    public init(path: String, features: Int, classes: Int, channels: Int = 1) throws {
        let file = try SafeTensors(contentsOf: path)
        func fail(_ tensor: String?, _ reason: String) -> SafeTensorsError { SafeTensorsError(file: path, tensor: tensor, reason: reason) }
        guard file.contains(Self.inputsTensor) else {
            throw fail(nil, "no tensor '\(Self.inputsTensor)' (the samples, [n, \(features)]); tensors: \(file.names.joined(separator: ", "))")
        }
        let info = try file.info(named: Self.inputsTensor)
        let length = features / max(1, channels)
        let sequence = info.shape.count == 3 && info.shape[1] == channels && info.shape[2] == length
        guard info.shape.first.map({ $0 > 0 }) == true, (info.shape.count == 2 && info.shape[1] == features && channels == 1) || sequence else {
            let expected = channels > 1 ? "[n, \(channels), \(length)]" : "[n, \(features)]"
            throw fail(Self.inputsTensor, "shape \(info.shape), the model needs \(expected) with n > 0")
        }
        var values = try file.tensor(named: Self.inputsTensor)
        if channels > 1 { values = Self.timeMajor(values, rows: info.shape[0], channels: channels, length: length) }
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw fail(Self.inputsTensor, "sample \(bad / features) holds a non-finite value")
        }
        var labels: [Int32]?
        if file.contains(Self.labelsTensor) {
            let raw = try file.int64Tensor(named: Self.labelsTensor, shape: [info.shape[0]])
            if let bad = raw.firstIndex(where: { $0 < 0 || $0 >= Int64(classes) }) {
                throw fail(Self.labelsTensor, "label \(raw[bad]) of sample \(bad) is not a class index in 0..<\(classes)")
            }
            labels = raw.map { Int32($0) }
        }
        source = path
        count = info.shape[0]
        self.features = features
        inputs = values
        self.labels = labels
    }

    /// Each row's `channels × length` block as `length × channels`.
    static func timeMajor(_ values: [Float], rows: Int, channels: Int, length: Int) -> [Float] {
        var out = [Float](repeating: 0, count: values.count)
        for r in 0..<rows {
            for c in 0..<channels {
                for t in 0..<length { out[r * channels * length + t * channels + c] = values[r * channels * length + c * length + t] }
            }
        }
        return out
    }

    /// Rows `indices` as a batch.
    func batch(_ indices: ArraySlice<Int>) -> (inputs: [Float], labels: [Int32]?) {
        var x = [Float]()
        x.reserveCapacity(indices.count * features)
        for i in indices { x.append(contentsOf: inputs[i * features ..< (i + 1) * features]) }
        return (x, labels.map { l in indices.map { l[$0] } })
    }
}
