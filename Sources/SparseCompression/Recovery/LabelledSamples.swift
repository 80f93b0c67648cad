import Foundation
import SparseModels

/// Samples of a numeric model for recovery training or held-out evaluation, read from a
/// safetensors file: `inputs` (floating point `[n, features]`) and optionally `labels` (integer
/// `[n]`, class indices). The file layout of `models/digits-mlp/test.safetensors`. Errors name the
/// file and the tensor.
public struct LabelledSamples: Sendable {
    public static let inputsTensor = "inputs"
    public static let labelsTensor = "labels"

    public let source: String
    public let count: Int
    public let features: Int
    /// Row-major `count × features`.
    public let inputs: [Float]
    public let labels: [Int32]?

    /// Reads and checks the file for a model of `features` inputs and `classes` outputs.
    public init(path: String, features: Int, classes: Int) throws {
        let file = try SafeTensors(contentsOf: path)
        func fail(_ tensor: String?, _ reason: String) -> SafeTensorsError { SafeTensorsError(file: path, tensor: tensor, reason: reason) }
        guard file.contains(Self.inputsTensor) else {
            throw fail(nil, "no tensor '\(Self.inputsTensor)' (the samples, [n, \(features)]); tensors: \(file.names.joined(separator: ", "))")
        }
        let info = try file.info(named: Self.inputsTensor)
        guard info.shape.count == 2, info.shape[1] == features, info.shape[0] > 0 else {
            throw fail(Self.inputsTensor, "shape \(info.shape), the model needs [n, \(features)] with n > 0")
        }
        let values = try file.tensor(named: Self.inputsTensor)
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

    /// Rows `indices` as a batch.
    func batch(_ indices: ArraySlice<Int>) -> (inputs: [Float], labels: [Int32]?) {
        var x = [Float]()
        x.reserveCapacity(indices.count * features)
        for i in indices { x.append(contentsOf: inputs[i * features ..< (i + 1) * features]) }
        return (x, labels.map { l in indices.map { l[$0] } })
    }
}
