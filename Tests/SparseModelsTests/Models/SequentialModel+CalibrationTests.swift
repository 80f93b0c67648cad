import Foundation
import SparseTestSupport
import XCTest
import SparseKernels
@testable import SparseModels
@testable import SparseCompression

/// Calibrated one-shot compression of a sequential model: the conv layers are stages whose inputs
/// are their windows, compressed on the model's own activations.
final class SequentialModelCalibrationTests: XCTestCase {
    var timeseries: String { repositoryRoot().appendingPathComponent("models/timeseries").path }

    func testConvWindowsAreCalibratedAndKeepExactMasks() throws {
        let plan = CompressionPlan(method: .dense, overrides: [("conv*", .pinned(.nm(n: 2, m: 4)))])
        var lines: [String] = []
        let calibrated = try CalibratedCompressor.run(modelDirectory: timeseries, plan: plan, options: CalibrationOptions()) { lines.append($0) }
        XCTAssertEqual(Set(calibrated.packed.keys), ["conv1", "conv2", "conv3"])
        XCTAssertEqual(calibrated.packed["conv2"]?.inputFeatures, 40)  // kernel 5 × 8 channels
        // One stage row per window: 50 series × 150 output steps for conv1.
        XCTAssertTrue(lines.first?.contains("calibrated conv1 on 7500 inputs") == true, lines.first ?? "")
        for packed in calibrated.packed.values { XCTAssertNotNil(try packed.makeOperator() as? NMWeights) }
        let held = timeseries + "/test.safetensors"
        let (dense, _) = try ModelLoader.open(directory: timeseries, timeLayers: false)
        let (model, _) = try ModelLoader.open(directory: timeseries, compression: plan, compressor: calibrated, timeLayers: false)
        let (magnitude, _) = try ModelLoader.open(directory: timeseries, compression: plan, compressor: WeightCompressor(), timeLayers: false)
        let quality = try HeldOutQuality.measure(compressed: model, dense: dense, path: held)
        let weightOnly = try HeldOutQuality.measure(compressed: magnitude, dense: dense, path: held)
        XCTAssertEqual(try XCTUnwrap(quality.denseAccuracy), 146.0 / 150, accuracy: 1e-9)
        XCTAssertGreaterThan(try XCTUnwrap(quality.accuracy), try XCTUnwrap(weightOnly.accuracy))
    }
}
