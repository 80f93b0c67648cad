import Foundation
import SparseKernels
import SparseTestSupport
import XCTest
@testable import SparseModels

/// The bert-encoder run stage by stage for calibration (tiny synthetic BERT, one layer): four
/// stages per layer named as compression plans name them, replacements feeding later stages with
/// the dense inputs tracked beside them, and a stage replaced in part refused.
final class BertEncoderModelCalibrationTests: XCTestCase {
    private func tiny() throws -> BertEncoderModel {
        let folder = try ModelFolder(self, manifest: BertEncoderLoaderTests.manifest(), tensors: BertEncoderLoaderTests.tensors(),
                                     files: ["config.json": BertEncoderLoaderTests.config(),
                                             "vocab.txt": BertEncoderLoaderTests.vocabulary.joined(separator: "\n") + "\n"])
        return try BertEncoderLoader.load(directory: folder.path)
    }

    private let samples = CalibrationSamples.tokens([[2, 5, 6, 3], [2, 7, 8, 3]])

    func testStagesOfALayer() throws {
        var stages: [(names: [String], rows: Int, features: Int, dense: Bool)] = []
        try tiny().runCalibration(samples, trackDense: false) { stage in
            stages.append((stage.layers.map(\.name), stage.rows, stage.features, stage.denseInputs != nil))
            return stage.layers.map { _ in nil }
        }
        let p = "encoder.layer.0."
        XCTAssertEqual(stages.map(\.names), [[p + "attention.self.query", p + "attention.self.key", p + "attention.self.value"],
                                             [p + "attention.output.dense"], [p + "intermediate.dense"], [p + "output.dense"]])
        XCTAssertEqual(stages.map(\.rows), [8, 8, 8, 8], "every token of both sequences")
        XCTAssertEqual(stages.map(\.features), [4, 4, 4, 8], "the output stage reads the FFN's 8 features")
        XCTAssertFalse(stages.contains { $0.dense })
        let layer = BertEncoderModel.stageLayers(layer: 2, .intermediate, hidden: 4, ffn: 8)
        XCTAssertEqual(layer.map(\.weight), ["encoder.layer.2.intermediate.dense.weight"])
        XCTAssertEqual(layer.map(\.outputs), [8])
    }

    /// A zero attention output changes what the FFN sees; the dense inputs tracked beside it do not.
    func testReplacementsFeedLaterStagesAndDenseIsTracked() throws {
        let model = try tiny()
        /// The inputs of the intermediate (FFN) stage: the model's own and the dense model's.
        func ffnInputs(replacing: Bool) throws -> (own: [Float], dense: [Float]) {
            var own: [Float] = [], dense: [Float] = []
            let zero = DenseWeights(weights: [Float](repeating: 0, count: 16), outputFeatures: 4, inputFeatures: 4)
            try model.runCalibration(samples, trackDense: true) { stage in
                if stage.layers.map(\.name) == ["encoder.layer.0.intermediate.dense"] {
                    let n = stage.rows * stage.features
                    own = Array(UnsafeBufferPointer(start: stage.inputs, count: n))
                    dense = Array(UnsafeBufferPointer(start: try XCTUnwrap(stage.denseInputs), count: n))
                }
                return stage.layers.map { replacing && $0.name.hasSuffix("attention.output.dense") ? zero : nil }
            }
            return (own, dense)
        }
        let plain = try ffnInputs(replacing: false), replaced = try ffnInputs(replacing: true)
        XCTAssertEqual(plain.own.count, 8 * 4)
        XCTAssertEqual(plain.dense, plain.own, "nothing replaced: dense and own inputs agree")
        XCTAssertNotEqual(replaced.own, plain.own, "the replaced attention output feeds the FFN")
        XCTAssertEqual(replaced.dense, plain.own, "the dense model runs beside it")
    }

    func testAStageIsReplacedWhole() throws {
        let model = try tiny()
        let one = DenseWeights(weights: [Float](repeating: 0, count: 16), outputFeatures: 4, inputFeatures: 4)
        XCTAssertThrowsError(try model.runCalibration(samples, trackDense: false) { stage in
            stage.layers.count == 3 ? [one, nil, nil] : stage.layers.map { _ in nil }
        }) { error in
            XCTAssertTrue("\(error)".contains("calibration replaced 1 of the 3 layers of stage"), "\(error)")
        }
    }
}
