import Foundation
import SparseTestSupport
import XCTest
@testable import SparseModels

/// LooseJSON: third-party files read leniently (scalars kept with their kind, containers as
/// `.other`, unreadable files as nil).
final class LooseJSONTests: XCTestCase {
    func testScalarsKeepTheirKind() throws {
        let data = Data(#"{"flag": true, "one": 1, "half": 0.5, "big": 1e3, "name": "x", "list": [1], "object": {"a": 1}, "nothing": null}"#.utf8)
        let values = try JSONDecoder().decode([String: LooseJSONValue].self, from: data)
        XCTAssertEqual(values["flag"], .bool(true))
        XCTAssertEqual(values["one"], .int(1), "1 is an integer, not true")
        XCTAssertEqual(values["half"], .double(0.5))
        XCTAssertEqual(values["big"]?.double, 1000)
        XCTAssertEqual(values["name"], .string("x"))
        XCTAssertEqual(values["list"], .other)
        XCTAssertEqual(values["object"], .other)
        XCTAssertEqual(values["nothing"], .other)
    }

    func testAccessorsConvertOnlyWhereLossless() {
        XCTAssertEqual(LooseJSONValue.int(3).double, 3)
        XCTAssertNil(LooseJSONValue.double(3.5).int)
        XCTAssertNil(LooseJSONValue.bool(true).int)
        XCTAssertNil(LooseJSONValue.int(1).bool)
        XCTAssertNil(LooseJSONValue.string("1").int)
        XCTAssertNil(LooseJSONValue.other.string)
    }

    func testFilesAreReadAsObjectsOrListsOrNil() throws {
        let folder = try makeTemporaryDirectory()
        func file(_ name: String, _ text: String) throws -> String {
            let path = folder.appendingPathComponent(name).path
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let object = try file("object.json", #"{"max_seq_length": 128, "do_lower_case": false}"#)
        let list = try file("list.json", #"[{"type": "a"}, {"type": "b", "idx": 1}]"#)
        let broken = try file("broken.json", #"{"a": "#)
        XCTAssertEqual(LooseJSON.object(at: object)?["max_seq_length"], .int(128))
        XCTAssertEqual(LooseJSON.objects(at: list)?.compactMap { $0["type"]?.string }, ["a", "b"])
        XCTAssertNil(LooseJSON.object(at: list), "a list is not an object")
        XCTAssertNil(LooseJSON.objects(at: object), "an object is not a list")
        XCTAssertNil(LooseJSON.object(at: broken))
        XCTAssertNil(LooseJSON.object(at: folder.appendingPathComponent("missing.json").path))
    }
}
