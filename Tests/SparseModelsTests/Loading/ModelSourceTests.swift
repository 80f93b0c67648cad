import Foundation
import SparseTestSupport
import XCTest
@testable import SparseModels

/// What every loader starts from: the folder must exist and be a folder, its manifest is read,
/// and errors about the manifest name its file.
final class ModelSourceTests: XCTestCase {
    func testReadsTheManifestOfAFolder() throws {
        let folder = try ModelFolder(self, manifest: #"{"architecture": "identity", "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1]}], "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}]}"#)
        let source = try ModelSource(directory: folder.path, plan: .dense, compressor: nil, timeLayers: false)
        XCTAssertEqual(source.manifestPath, folder.path + "/model.json")
        XCTAssertEqual(source.manifest.architecture, .identity)
        XCTAssertFalse(source.timeLayers)
        XCTAssertEqual("\(source.fail("bad layer"))", "\(folder.path)/model.json: bad layer")
    }

    func testMissingFoldersAndManifests() throws {
        let directory = try makeTemporaryDirectory()
        assertError(try ModelSource(directory: directory.appendingPathComponent("none").path, plan: .dense, compressor: nil, timeLayers: false),
                    contains: ["none", "model directory does not exist"])
        let file = directory.appendingPathComponent("file")
        try Data("x".utf8).write(to: file)
        assertError(try ModelSource(directory: file.path, plan: .dense, compressor: nil, timeLayers: false),
                    contains: ["model directory does not exist"])
        assertError(try ModelSource(directory: directory.path, plan: .dense, compressor: nil, timeLayers: false), contains: ["model.json"])
    }
}
