import Foundation
import XCTest
@testable import SparseJSON

/// JSONValueEncoder: Codable values as `JSON`, written with the package's one escaper, as
/// JSONEncoder wrote the artifact metadata (sorted keys, nil optionals omitted, Data as base64).
final class JSONValueEncoderTests: XCTestCase {
    struct Layer: Codable, Equatable {
        var name: String
        var shape: [Int]
        var density: Double
        var error: Float
        var note: String?
        var tags: [String: Int]
        var pinned: Bool
        var payload: Data
        var kind: Kind
        enum Kind: String, Codable { case dense, nm }
    }

    /// A type with a hand-written encoder using nested and super containers.
    struct Custom: Encodable {
        enum Keys: String, CodingKey { case outer, list, value }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: Keys.self)
            var outer = c.nestedContainer(keyedBy: Keys.self, forKey: .outer)
            try outer.encode(1, forKey: .value)
            try outer.encodeNil(forKey: .list)
            var list = c.nestedUnkeyedContainer(forKey: .list)
            try list.encode("a")
            var inner = list.nestedUnkeyedContainer()
            try inner.encode(true)
            try list.encodeNil()
            try Single(value: 7).encode(to: c.superEncoder(forKey: .value))
        }
    }

    struct Single: Encodable {
        var value: UInt8
        func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            try c.encode(value)
        }
    }

    let layer = Layer(name: "fc1 \u{2028}/x", shape: [256, 64], density: 0.5, error: 0.1, note: nil, tags: ["z": 1, "a": 2],
                      pinned: true, payload: Data([1, 2, 3]), kind: .nm)

    func testRecordsAreWrittenSortedWithTheOneEscaper() throws {
        let text = try JSONValueEncoder().text(layer)
        XCTAssertEqual(text, #"{"density":0.5,"error":0.1,"kind":"nm","name":"fc1 \u2028/x","payload":"AQID","pinned":true,"shape":[256,64],"tags":{"a":2,"z":1}}"#)
        XCTAssertEqual(try JSONDecoder().decode(Layer.self, from: Data(text.utf8)), layer, "JSONDecoder reads it back")
        XCTAssertEqual(try JSONDecoder().decode(Layer.self, from: Data(try JSONValueEncoder().text(layer, indent: 2).utf8)), layer)
        var unsorted = JSONValueEncoder()
        unsorted.sortedKeys = false
        XCTAssertEqual(try unsorted.encode(layer).objectValue?.map { $0.0 },
                       ["name", "shape", "density", "error", "tags", "pinned", "payload", "kind"])
    }

    func testNestedSuperAndSingleValueContainers() throws {
        XCTAssertEqual(try JSONValueEncoder().text(Custom()), #"{"list":["a",[true],null],"outer":{"list":null,"value":1},"value":7}"#)
        XCTAssertEqual(try JSONValueEncoder().text([Single(value: 1), Single(value: 2)]), "[1,2]")
        XCTAssertEqual(try JSONValueEncoder().text(Optional<Int>.none), "null")
        XCTAssertEqual(try JSONValueEncoder().encode(Int64.max), .number(double: Double(Int64.max), integer: Int64.max))
        XCTAssertEqual(try JSONValueEncoder().text(URL(fileURLWithPath: "/a b")), #""file:///a%20b""#)
    }

    func testNonFiniteNumbersAreRefusedOrSpelledOut() throws {
        var broken = layer
        broken.error = .nan
        XCTAssertThrowsError(try JSONValueEncoder().text(broken)) { XCTAssertEqual("\($0)", "cannot write the non-finite number at 'error' as JSON") }
        XCTAssertThrowsError(try JSONValueEncoder().text([["x": [1.0, -.infinity]]])) {
            XCTAssertEqual(($0 as? JSONValueEncoder.NonFiniteNumber)?.path, "0.x.1")
        }
        var spelled = JSONValueEncoder()
        spelled.nonFiniteFloats = .strings(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        XCTAssertEqual(try spelled.text([Double.infinity, -.infinity, .nan, 1]), #"["inf","-inf","nan",1.0]"#)
    }
}
