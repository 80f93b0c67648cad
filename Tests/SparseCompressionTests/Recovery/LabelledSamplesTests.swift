import Foundation
import SparseTestSupport
import XCTest
@testable import SparseModels
@testable import SparseCompression

/// Recovery samples read from safetensors: `[n, features]` rows with optional integer labels,
/// `[n, channels, length]` series turned time-major, refusals naming the file and the tensor, and
/// mini-batches gathered in the order asked.
final class LabelledSamplesTests: XCTestCase {
    /// A safetensors file with `inputs` (and `labels` when given) in a temporary folder.
    func file(inputs: [Float], shape: [Int], labels: [Int64]? = nil, labelShape: [Int]? = nil, inputName: String = "inputs") throws -> String {
        let dir = try makeTemporaryDirectory()
        var writer = SafeTensorsWriter()
        try writer.add(inputName, floats: inputs, shape: shape)
        if let labels { try writer.add("labels", int64s: labels, shape: labelShape ?? [labels.count]) }
        let path = dir.appendingPathComponent("samples.safetensors").path
        try writer.write(to: path)
        return path
    }

    func testRowsAndLabels() throws {
        let x: [Float] = [1, 2, 3, 4, 5, 6]
        let path = try file(inputs: x, shape: [3, 2], labels: [2, 0, 1])
        let samples = try LabelledSamples(path: path, features: 2, classes: 3)
        XCTAssertEqual(samples.source, path)
        XCTAssertEqual(samples.count, 3)
        XCTAssertEqual(samples.features, 2)
        XCTAssertEqual(samples.inputs, x)
        XCTAssertEqual(samples.labels, [2, 0, 1])
        let unlabelled = try LabelledSamples(path: try file(inputs: x, shape: [3, 2]), features: 2, classes: 3)
        XCTAssertNil(unlabelled.labels)
        XCTAssertEqual(unlabelled.inputs, x)
    }

    func testBatchGathersRowsAndLabelsInTheOrderAsked() throws {
        let samples = try LabelledSamples(path: try file(inputs: [1, 2, 3, 4, 5, 6], shape: [3, 2], labels: [2, 0, 1]), features: 2, classes: 3)
        let batch = samples.batch([2, 0])
        XCTAssertEqual(batch.inputs, [5, 6, 1, 2])
        XCTAssertEqual(batch.labels, [1, 2])
        XCTAssertEqual(samples.batch([]).inputs, [])
        let unlabelled = try LabelledSamples(path: try file(inputs: [1, 2, 3, 4], shape: [2, 2]), features: 2, classes: 3)
        XCTAssertNil(unlabelled.batch([1]).labels)
        XCTAssertEqual(unlabelled.batch([1, 1]).inputs, [3, 4, 3, 4])
    }

    /// `[n, channels, length]` (PyTorch's layout) becomes rows of `length × channels`, time-major.
    func testSeriesAreTransposedToTimeMajorRows() throws {
        // two samples, 2 channels of 3 steps: sample s, channel c, step t holds 100 s + 10 c + t
        var x: [Float] = []
        for s in 0..<2 { for c in 0..<2 { for t in 0..<3 { x.append(Float(100 * s + 10 * c + t)) } } }
        let samples = try LabelledSamples(path: try file(inputs: x, shape: [2, 2, 3]), features: 6, classes: 2, channels: 2)
        XCTAssertEqual(samples.count, 2)
        XCTAssertEqual(samples.inputs, [0, 10, 1, 11, 2, 12, 100, 110, 101, 111, 102, 112])
        XCTAssertEqual(LabelledSamples.timeMajor([1, 2, 3, 4], rows: 1, channels: 1, length: 4), [1, 2, 3, 4])
        // a single-channel model also reads [n, 1, length]
        let one = try LabelledSamples(path: try file(inputs: [1, 2, 3, 4], shape: [2, 1, 2]), features: 2, classes: 2, channels: 1)
        XCTAssertEqual(one.inputs, [1, 2, 3, 4])
    }

    func testRefusalsNameTheFileAndTheTensor() throws {
        let wrongName = try file(inputs: [1, 2], shape: [1, 2], inputName: "x")
        assertError(try LabelledSamples(path: wrongName, features: 2, classes: 2),
                    contains: [wrongName, "no tensor 'inputs'", "tensors: x"])
        assertError(try LabelledSamples(path: try file(inputs: [1, 2, 3], shape: [1, 3]), features: 2, classes: 2),
                    contains: ["'inputs'", "shape [1, 3], the model needs [n, 2] with n > 0"])
        assertError(try LabelledSamples(path: try file(inputs: [], shape: [0, 2]), features: 2, classes: 2),
                    contains: ["shape [0, 2]", "n > 0"])
        assertError(try LabelledSamples(path: try file(inputs: [1, 2, 3, 4], shape: [1, 2, 2]), features: 4, classes: 2, channels: 4),
                    contains: ["the model needs [n, 4, 1]"])
        assertError(try LabelledSamples(path: try file(inputs: [1, 2, .nan, 4], shape: [2, 2]), features: 2, classes: 2),
                    contains: ["'inputs'", "sample 1 holds a non-finite value"])
        assertError(try LabelledSamples(path: try file(inputs: [1, 2, 3, 4], shape: [2, 2], labels: [0, 3]), features: 2, classes: 3),
                    contains: ["'labels'", "label 3 of sample 1 is not a class index in 0..<3"])
        assertError(try LabelledSamples(path: try file(inputs: [1, 2, 3, 4], shape: [2, 2], labels: [-1, 0]), features: 2, classes: 3),
                    contains: ["label -1 of sample 0"])
        XCTAssertThrowsError(try LabelledSamples(path: try file(inputs: [1, 2, 3, 4], shape: [2, 2], labels: [0, 1, 1]), features: 2, classes: 3),
                             "one label per sample")
        assertError(try LabelledSamples(path: "/nonexistent/samples.safetensors", features: 2, classes: 2),
                    contains: ["/nonexistent/samples.safetensors"])
    }
}
