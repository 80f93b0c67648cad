import Foundation
import SparseTestSupport
import XCTest
import SparseModels

/// A model folder a test writes: `model.json`, optional `model.safetensors` and other files;
/// removed when the test case ends.
struct ModelFolder {
    let url: URL
    var path: String { url.path }

    init(_ test: XCTestCase, manifest: String, tensors: [(name: String, values: [Float], shape: [Int])] = [],
         files: [String: String] = [:]) throws {
        url = try test.makeTemporaryDirectory()
        try write(ModelLoader.manifestFileName, manifest)
        if !tensors.isEmpty {
            var writer = SafeTensorsWriter()
            for t in tensors { try writer.add(t.name, floats: t.values, shape: t.shape) }
            try writer.write(to: url.appendingPathComponent(ModelLoader.weightsFileName).path)
        }
        for (name, text) in files { try write(name, text) }
    }

    /// Writes (or replaces) `name`, creating its folders.
    func write(_ name: String, _ text: String) throws {
        let file = url.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: file, atomically: true, encoding: .utf8)
    }
}

/// The FP32 values of output `name`, or a test failure.
func fp32Output(_ outputs: [String: Tensor], _ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> [Float] {
    guard case .fp32(let values)? = outputs[name]?.storage else {
        XCTFail("output '\(name)' is missing or not FP32", file: file, line: line)
        return []
    }
    return values
}

/// Asserts that two float arrays have the same length and agree within `tolerance`.
func assertClose(_ a: [Float], _ b: [Float], tolerance: Float = 1e-5, _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, message, file: file, line: line)
    let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
    XCTAssertLessThanOrEqual(worst, tolerance, "\(message): \(a) vs \(b)", file: file, line: line)
}
