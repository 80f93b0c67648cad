import Foundation
import SparseKernels
import SparseModels
import SparseTestSupport
import XCTest
@testable import SparseCompression

/// Held-out quality of a classifier against its dense source (digits' test.safetensors): the same
/// model agrees with itself, a compressed one scores its own accuracy; the one-line summaries and
/// the argmax, fraction and cosine helpers.
final class HeldOutQualityTests: XCTestCase {
    private var digits: String { repositoryRoot().appendingPathComponent("models/digits-mlp").path }

    func testClassifierAgainstItsDenseSource() throws {
        let path = try XCTUnwrap(HeldOutQuality.defaultFile(inModel: digits))
        XCTAssertTrue(path.hasSuffix("test.safetensors"))
        let dense = try ModelLoader.load(directory: digits)
        let same = try HeldOutQuality.measure(compressed: dense, dense: dense, path: path, limit: 200)
        XCTAssertEqual(same.samples, 200)
        XCTAssertEqual(same.agreement, 1)
        XCTAssertEqual(same.accuracy, same.denseAccuracy)
        XCTAssertGreaterThan(try XCTUnwrap(same.denseAccuracy), 0.9, "the digits MLP is a real classifier")
        XCTAssertNil(same.meanCosine)
        let sparse = try ModelLoader.load(directory: digits, compression: CompressionPlan(method: .csr(density: 0.05)), compressor: WeightCompressor())
        let pruned = try HeldOutQuality.measure(compressed: sparse, dense: dense, path: path, limit: 200)
        XCTAssertEqual(pruned.denseAccuracy, same.denseAccuracy)
        XCTAssertLessThan(try XCTUnwrap(pruned.agreement), 1, "95 % of the weights gone changes some answers")
        XCTAssertTrue(pruned.summary.hasPrefix("held-out accuracy "), pruned.summary)
        XCTAssertTrue(pruned.summary.hasSuffix("on 200 samples of \(path)"), pruned.summary)
    }

    func testDefaultFileAndHelpers() throws {
        let empty = try makeTemporaryDirectory()
        XCTAssertNil(HeldOutQuality.defaultFile(inModel: empty.path))
        try Data("a\n".utf8).write(to: empty.appendingPathComponent("heldout.txt"))
        try Data().write(to: empty.appendingPathComponent("test.safetensors"))
        XCTAssertEqual(HeldOutQuality.defaultFile(inModel: empty.path), empty.appendingPathComponent("heldout.txt").path, "texts first")
        XCTAssertEqual(HeldOutQuality.argmax([0.1, 0.7, 0.2]), 1)
        XCTAssertEqual(HeldOutQuality.argmax([]), 0)
        XCTAssertEqual(HeldOutQuality.fraction([true, false, true, true]), 0.75)
        XCTAssertEqual(HeldOutQuality.fraction([]), 0)
        XCTAssertEqual(HeldOutQuality.cosine([1, 0], [0, 2]), 0)
        XCTAssertEqual(HeldOutQuality.cosine([1, 2], [2, 4]), 1, accuracy: 1e-12)
        XCTAssertEqual(HeldOutQuality.cosine([0, 0], [1, 1]), 0, "a zero vector: 0, not NaN")
        let texts = HeldOutQuality(source: "h.txt", samples: 3, meanCosine: 0.98765, minCosine: 0.9)
        XCTAssertEqual(texts.summary, "held-out cosine to dense: mean 0.9877, min 0.9000 on 3 texts of h.txt")
    }
}
