import Foundation
import SparseKernels
import SparseTestSupport
import XCTest
@testable import SparseModels

/// An MLP run layer by layer for calibration (digits, 64-256-256-10): one stage per linear layer
/// with its inputs, replacements feeding the later stages, and the dense model's inputs beside
/// them when tracked.
final class MLPModelCalibrationTests: XCTestCase {
    private func digits() throws -> MLPModel {
        let model = try ModelLoader.load(directory: repositoryRoot().appendingPathComponent("models/digits-mlp").path)
        return try XCTUnwrap(model as? MLPModel)
    }

    private struct Stage { var names: [String]; var inputs: [Float]; var dense: [Float]?; var features: Int }

    private func run(_ model: MLPModel, _ x: Matrix, trackDense: Bool,
                     replace: (String) -> (any LinearOperator)? = { _ in nil }) throws -> [Stage] {
        var stages: [Stage] = []
        try model.runCalibration(.rows(x), trackDense: trackDense) { stage in
            let n = stage.rows * stage.features
            stages.append(Stage(names: stage.layers.map(\.name), inputs: Array(UnsafeBufferPointer(start: stage.inputs, count: n)),
                                dense: stage.denseInputs.map { Array(UnsafeBufferPointer(start: $0, count: n)) }, features: stage.features))
            return stage.layers.map { replace($0.name) }
        }
        return stages
    }

    func testStagesSeeEachLayersInputs() throws {
        let model = try digits()
        var random = SeededRandom(seed: 5)
        let x = Matrix(rows: 3, columns: 64, values: random.array(3 * 64).map { ($0 + 1) * 8 })
        let stages = try run(model, x, trackDense: false)
        XCTAssertEqual(stages.map(\.names), [["fc1"], ["fc2"], ["fc3"]])
        XCTAssertEqual(stages.map(\.features), [64, 256, 256])
        XCTAssertEqual(stages[0].inputs, x.values)
        XCTAssertNil(stages[0].dense)
        XCTAssertTrue(stages[1].inputs.allSatisfy { $0 >= 0 }, "fc1's ReLU outputs")
        XCTAssertTrue(stages.dropFirst().allSatisfy { $0.inputs.contains { $0 > 0 } })
    }

    /// Replacing fc1 with a zero layer changes what fc2 and fc3 see; the tracked dense inputs do not change.
    func testReplacementsFeedLaterStagesAndDenseIsTracked() throws {
        let model = try digits()
        var random = SeededRandom(seed: 6)
        let x = Matrix(rows: 2, columns: 64, values: random.array(2 * 64).map { ($0 + 1) * 8 })
        let untouched = try run(model, x, trackDense: true)
        XCTAssertEqual(untouched[1].dense, untouched[1].inputs, "nothing replaced: dense and own inputs agree")
        let zero = DenseWeights(weights: [Float](repeating: 0, count: 256 * 64), outputFeatures: 256, inputFeatures: 64)
        let replaced = try run(model, x, trackDense: true) { $0 == "fc1" ? zero : nil }
        XCTAssertEqual(replaced[1].inputs, [Float](repeating: 0, count: 2 * 256), "fc2 sees the zero layer's ReLU outputs")
        XCTAssertEqual(replaced[1].dense, untouched[1].inputs, "the dense model runs beside it")
        XCTAssertEqual(replaced[2].dense, untouched[2].inputs)
        XCTAssertNotEqual(replaced[2].inputs, untouched[2].inputs)
    }

    func testOnlyRowsOfTheInputWidth() throws {
        let model = try digits()
        for samples in [CalibrationSamples.tokens([[1, 2]]), .rows(Matrix(rows: 2, columns: 10)), .rows(Matrix(rows: 0, columns: 64))] {
            XCTAssertThrowsError(try model.runCalibration(samples, trackDense: false) { _ in [] }) { error in
                XCTAssertEqual("\(error)", "an mlp calibrates on rows of 64 features")
            }
        }
    }
}
