import Foundation
import XCTest
@testable import SparseServe

/// ModelDirectory (`--model-dir`): the folder's own config, the folder as one model, or one model
/// per subfolder; folders that cannot be served are errors naming their path.
final class ModelDirectoryTests: XCTestCase {
    var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("model-dir-\(UUID().uuidString)").appendingPathComponent("models")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let top = root.deletingLastPathComponent()
        addTeardownBlock { try? FileManager.default.removeItem(at: top) }
    }

    func model(_ relative: String) throws {
        let folder = relative.isEmpty ? root! : root.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try #"{"architecture": "identity"}"#.write(to: folder.appendingPathComponent("model.json"), atomically: true, encoding: .utf8)
    }

    func testAModelFolderIsOneEndpointNamedByTheFlagOrTheFolder() throws {
        try model("")
        try model("nested")  // not looked at: the folder itself is the model
        let named = try ModelDirectory.config(path: root.path, name: "digits-2of4")
        XCTAssertEqual(named.endpoints.map(\.name), ["digits-2of4"])
        XCTAssertEqual(named.endpoints[0].modelPath, root.path)
        XCTAssertEqual(named.endpoints[0].batching, BatchingConfig(), "default endpoint settings")
        XCTAssertEqual(named.baseDirectory, root.path)
        XCTAssertEqual(try ModelDirectory.config(path: root.path + "/").endpoints.map(\.name), ["models"])
        assertFailure(try ModelDirectory.config(path: root.path, name: "no spaces"), root.path, "'no spaces' cannot name an endpoint")
    }

    func testEachModelSubfolderIsAnEndpointNamedAfterIt() throws {
        try model("b-model")
        try model("a-model")
        try model(".hidden")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("empty"), withIntermediateDirectories: true)
        try "x".write(to: root.appendingPathComponent("README.txt"), atomically: true, encoding: .utf8)
        let config = try ModelDirectory.config(path: root.path, name: "ignored")
        XCTAssertEqual(config.endpoints.map(\.name), ["a-model", "b-model"])
        XCTAssertEqual(config.endpoints.map(\.modelPath), [root.appendingPathComponent("a-model").path, root.appendingPathComponent("b-model").path])
        try model("bad name")
        assertFailure(try ModelDirectory.config(path: root.path), root.appendingPathComponent("bad name").path, "cannot name an endpoint")
    }

    func testTheFoldersOwnConfigWins() throws {
        try model("weights")
        try model("")
        try #"{"endpoints": [{"name": "tuned", "model": "weights", "maxInputs": 7}]}"#
            .write(to: root.appendingPathComponent(ModelDirectory.configFileName), atomically: true, encoding: .utf8)
        let config = try ModelDirectory.config(path: root.path, name: "ignored")
        XCTAssertEqual(config.endpoints.map(\.name), ["tuned"])
        XCTAssertEqual(config.endpoints[0].modelPath, root.appendingPathComponent("weights").path)
        XCTAssertEqual(config.endpoints[0].maxInputs, 7)
        try "{".write(to: root.appendingPathComponent(ModelDirectory.configFileName), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ModelDirectory.config(path: root.path)) { XCTAssertTrue($0 is ConfigError, "\($0)") }
    }

    func testFoldersThatCannotBeServedAreNamed() throws {
        assertFailure(try ModelDirectory.config(path: root.path), root.path, "holds no model")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("sub"), withIntermediateDirectories: true)
        try "weights".write(to: root.appendingPathComponent("sub/model.safetensors"), atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(at: root.appendingPathComponent("folder-named/model.json"), withIntermediateDirectories: true)
        assertFailure(try ModelDirectory.config(path: root.path), root.path, "holds no model")
        let missing = root.appendingPathComponent("missing").path
        assertFailure(try ModelDirectory.config(path: missing), missing, "does not exist")
        let file = root.appendingPathComponent("README.txt")
        try "x".write(to: file, atomically: true, encoding: .utf8)
        assertFailure(try ModelDirectory.config(path: file.path), file.path, "is not a folder")
        if getuid() != 0 {  // root reads any folder
            try model("locked/inner")
            let locked = root.appendingPathComponent("locked")
            try FileManager.default.setAttributes([.posixPermissions: 0], ofItemAtPath: locked.path)
            defer { try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: locked.path) }
            assertFailure(try ModelDirectory.config(path: locked.path), locked.path, "cannot be read")
        }
    }

    func assertFailure(_ expression: @autoclosure () throws -> ServiceConfig, _ path: String, _ fragment: String,
                       file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try expression(), file: file, line: line) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix("--model-dir '\(path)': ") && text.contains(fragment), text, file: file, line: line)
        }
    }
}
