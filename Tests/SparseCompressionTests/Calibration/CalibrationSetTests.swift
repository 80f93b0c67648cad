import Foundation
import SparseKernels
import SparseModels
import SparseTestSupport
import XCTest
@testable import SparseCompression

/// Calibration files: the shipped sets load; bad files are refused naming the file and the line or tensor.
final class CalibrationSetTests: XCTestCase {
    /// A text encoder whose tokens are the words (plus [CLS] and [SEP]), at most 6 per text.
    struct WordModel: TextEncodingModel {
        let architecture = "words"
        let inputs = [TensorSpec(name: "text", datatype: .bytes, shape: [-1])]
        let outputs = [TensorSpec(name: "embedding", datatype: .fp32, shape: [-1, 2])]
        let maxTokens = 6
        func infer(_ inputs: [String: Tensor]) throws -> [String: Tensor] { [:] }
        func tokenize(utf8: [UInt8], limit: Int?) throws -> (ids: [Int32], fullCount: Int) {
            guard let text = String(validating: utf8, as: UTF8.self) else { throw InvalidInputError("text is not valid UTF-8") }
            let ids = [101] + text.split(separator: " ").map { _ in Int32(7) } + [102]
            return (ids, ids.count)
        }
        func prepare(tokenIDs: [Int32], limit: Int?) throws -> (ids: [Int32], fullCount: Int) { (tokenIDs, tokenIDs.count) }
    }

    func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let url = try makeTemporaryDirectory().appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }

    func testTextFiles() throws {
        let model = WordModel()
        let ok = try CalibrationSet.load(path: try write(Array("a b c\n\n  \nd e\r\n".utf8), "ok.txt"), for: model)
        XCTAssertEqual(ok.count, 2)
        guard case .tokens(let ids) = ok.samples else { return XCTFail("not tokens") }
        XCTAssertEqual(ids.map(\.count), [5, 4])
        XCTAssertEqual(ok.batches(size: 1).count, 2)
        let empty = try write(Array("\n \n".utf8), "empty.txt")
        assertError(try CalibrationSet.load(path: empty, for: model), contains: [empty, "is empty"])
        let long = try write(Array("a b\na b c d e\n".utf8), "long.txt")
        assertError(try CalibrationSet.load(path: long, for: model), contains: ["\(long):2", "7 tokens", "at most 6"])
        let bad = try write(Array("fine\n".utf8) + [0xFF, 0xFE, 0x0A], "bad.txt")
        assertError(try CalibrationSet.load(path: bad, for: model), contains: ["\(bad):2", "UTF-8"])
        assertError(try CalibrationSet.load(path: "/nonexistent/calib.txt", for: model), contains: ["/nonexistent/calib.txt", "cannot read"])
    }

    func testShippedDigitsSetAndBadTensors() throws {
        let digits = repositoryRoot().appendingPathComponent("models/digits-mlp").path
        let (model, _) = try ModelLoader.open(directory: digits, compression: .dense, compressor: nil, timeLayers: false)
        let set = try CalibrationSet.load(path: digits + "/calibration.safetensors", for: model)
        XCTAssertEqual(set.count, 1347)
        XCTAssertEqual(set.labels?.count, 1347)
        XCTAssertEqual(set.prefix(10).count, 10)

        func file(_ tensors: [(String, SafeTensorsDType, [Int], [UInt8])]) throws -> String {
            var writer = SafeTensorsWriter()
            for (name, dtype, shape, bytes) in tensors { try writer.add(name, dtype: dtype, shape: shape, bytes: Data(bytes)) }
            let url = try makeTemporaryDirectory().appendingPathComponent("c.safetensors")
            try writer.write(to: url.path)
            return url.path
        }
        let floats = { (values: [Float]) in values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) } }
        let wrongShape = try file([("inputs", .f32, [2, 63], floats([Float](repeating: 1, count: 126)))])
        assertError(try CalibrationSet.load(path: wrongShape, for: model), contains: [wrongShape, "'inputs'", "[63]", "[64]"])
        let wrongType = try file([("inputs", .i64, [1, 64], [UInt8](repeating: 0, count: 512))])
        assertError(try CalibrationSet.load(path: wrongType, for: model), contains: ["'inputs'", "dtype"])
        let missing = try file([("x", .f32, [1, 64], floats([Float](repeating: 1, count: 64)))])
        assertError(try CalibrationSet.load(path: missing, for: model), contains: ["'inputs'", "missing"])
        let nan = try file([("inputs", .f32, [1, 64], floats([Float](repeating: .nan, count: 64)))])
        assertError(try CalibrationSet.load(path: nan, for: model), contains: ["'inputs'", "finite"])
        let labels = try file([("inputs", .f32, [2, 64], floats([Float](repeating: 1, count: 128))), ("labels", .i64, [3], [UInt8](repeating: 0, count: 24))])
        assertError(try CalibrationSet.load(path: labels, for: model), contains: ["'labels'", "I64 [2]"])
        let text = try write(Array("not safetensors".utf8), "c.safetensors")
        assertError(try CalibrationSet.load(path: text, for: model), contains: [text, "not a safetensors file"])
    }
}
