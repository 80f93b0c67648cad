import Foundation
import SparseTestSupport
import XCTest
@testable import SparseModels

/// ModelArchitecture: the names a manifest may give, and the refusal of any other naming them all.
final class ModelArchitectureTests: XCTestCase {
    func testManifestNamesMapToArchitectures() {
        XCTAssertEqual(ModelArchitecture.allCases.map(\.rawValue), ["mlp", "sequential", "identity", "bert-encoder"])
        XCTAssertEqual(ModelArchitecture(rawValue: "bert-encoder"), .bertEncoder)
        XCTAssertNil(ModelArchitecture(rawValue: "bert_encoder"))
    }

    func testAnUnknownArchitectureIsRefusedListingTheKnownOnes() throws {
        let folder = try ModelFolder(self, manifest: #"{"architecture": "transformer", "inputs": [], "outputs": []}"#)
        assertError(try ModelLoader.load(directory: folder.path),
                    contains: ["unknown architecture 'transformer'", "mlp, sequential, identity, bert-encoder", "model.json"])
    }
}
