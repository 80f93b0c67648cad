import Foundation
import SparseTestSupport
import XCTest
@testable import SparseModels
import SparseCompression

/// ModelLoader: the folder checks every architecture shares, dispatch by architecture, and the
/// plan checks made against the loaded model.
final class ModelLoaderTests: XCTestCase {
    var digits: String { repositoryRoot().appendingPathComponent("models/digits-mlp").path }

    func testDispatchesByArchitectureAndReportsTheLayerBuilder() throws {
        let mlp = try ModelLoader.open(directory: digits, timeLayers: false)
        XCTAssertTrue(mlp.model is MLPModel)
        XCTAssertNotNil(mlp.layers, "an mlp's linear layers come from a builder")
        let identity = try ModelLoader.open(directory: repositoryRoot().appendingPathComponent("Tests/fixtures/models/identity").path)
        XCTAssertTrue(identity.model is IdentityModel)
        XCTAssertNil(identity.layers)
        XCTAssertEqual(ModelLoader.summary(of: identity.model)?.layers.count, 0, "no layers with weights")
        XCTAssertEqual(ModelLoader.summary(of: mlp.model)?.layers.map(\.name), ["fc1", "fc2", "fc3", "softmax"])
    }

    func testArtifactsAreRecognisedByTheirManifestMarker() {
        XCTAssertFalse(ModelLoader.isArtifact(directory: digits))
        XCTAssertTrue(ModelLoader.isArtifact(directory: repositoryRoot().appendingPathComponent("models/digits-2of4").path))
        XCTAssertFalse(ModelLoader.isArtifact(directory: "/nonexistent"))
    }

    func testFolderAndPlanRefusalsNameTheProblem() throws {
        assertError(try ModelLoader.load(directory: "/nonexistent/model"), contains: ["/nonexistent/model", "model directory does not exist"])
        let typo = CompressionPlan(method: .dense, overrides: [("fc9", .pinned(.nm(n: 2, m: 4)))])
        assertError(try ModelLoader.load(directory: digits, compression: typo, compressor: WeightCompressor()),
                    contains: ["compression.layers.fc9: the pattern matches no layer of this model", "fc1, fc2, fc3", "model.json"])
        var pwl = CompressionPlan.dense
        pwl.activations = .pwl(segments: 16)
        assertError(try ModelLoader.load(directory: digits, compression: pwl),
                    contains: ["piecewise-linear activations", "bert-encoder models only", "'mlp'"])
        let sparse = CompressionPlan(method: .dense, overrides: [("fc2", .pinned(.nm(n: 2, m: 4)))])
        let summary = ModelLoader.summary(of: try ModelLoader.load(directory: digits, compression: sparse, compressor: WeightCompressor()))
        XCTAssertEqual(summary?.layers.first { $0.name == "fc2" }?.storage, "nm 2:4")
    }
}
