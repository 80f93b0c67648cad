import Foundation
import SparseTestSupport
import XCTest
import SparseModels

final class SafeTensorsTests: XCTestCase {
    func testWriterRoundTrip() throws {
        var writer = SafeTensorsWriter(metadata: ["format": "test", "quote\"key": "line\nbreak"])
        try writer.add("weights", floats: [1, -2.5, 3, .infinity, 0, 6], shape: [2, 3])
        try writer.add("ids", int64s: [7, -1, Int64.max], shape: [3])
        try writer.add("flags", dtype: .bool, shape: [2], bytes: Data([1, 0]))
        try writer.add("empty", floats: [], shape: [0, 4])
        try writer.add("halves", dtype: .f16, shape: [4], bytes: Data([0x00, 0x3C, 0x00, 0xC0, 0x01, 0x00, 0x00, 0x7C]))
        try writer.add("brains", dtype: .bf16, shape: [2], bytes: Data([0x80, 0x3F, 0x20, 0xC1]))
        try writer.add("doubles", dtype: .f64, shape: [1], bytes: withUnsafeBytes(of: (0.1 as Double).bitPattern.littleEndian) { Data($0) })
        try writer.add("small", dtype: .i8, shape: [2], bytes: Data([0xFF, 0x05]))
        let data = writer.serialized()
        XCTAssertEqual((data.count - 8 - writer.headerJSON().utf8.count) % 8 < 8, true)

        let file = try SafeTensors(data: data, source: "mem.safetensors")
        XCTAssertEqual(file.metadata, ["format": "test", "quote\"key": "line\nbreak"])
        XCTAssertEqual(file.names, ["weights", "ids", "flags", "empty", "halves", "brains", "doubles", "small"])
        XCTAssertEqual(try file.tensor(named: "weights", shape: [2, 3]), [1, -2.5, 3, .infinity, 0, 6])
        XCTAssertEqual(try file.int64Tensor(named: "ids"), [7, -1, Int64.max])
        XCTAssertEqual(try file.int64Tensor(named: "flags"), [1, 0])
        XCTAssertEqual(try file.tensor(named: "empty"), [])
        XCTAssertEqual(try file.tensor(named: "halves"), [1, -2, Float(bitPattern: 0x3380_0000), .infinity])
        XCTAssertEqual(try file.tensor(named: "brains"), [1, -10])
        XCTAssertEqual(try file.tensor(named: "doubles"), [Float(0.1)])
        XCTAssertEqual(try file.int64Tensor(named: "small"), [-1, 5])
        XCTAssertEqual(try file.info(named: "weights").shape, [2, 3])
        XCTAssertEqual(try file.rawBytes(named: "flags"), Data([1, 0]))

        // Through a real file, and readable by the same rules after a rewrite.
        let dir = try makeTemporaryDirectory()
        let path = dir.appendingPathComponent("t.safetensors").path
        try writer.write(to: path)
        let reread = try SafeTensors(contentsOf: path)
        XCTAssertEqual(reread.tensors, file.tensors)
        XCTAssertEqual(reread.source, path)
    }

    func testAccessorErrors() throws {
        var writer = SafeTensorsWriter()
        try writer.add("w", floats: [1, 2], shape: [2])
        try writer.add("i", int64s: [1], shape: [1])
        let file = try SafeTensors(data: writer.serialized(), source: "acc.safetensors")
        assertError(try file.tensor(named: "missing"), contains: ["acc.safetensors", "'missing'", "no such tensor", "w"])
        assertError(try file.tensor(named: "w", shape: [1, 2]), contains: ["'w'", "[2]", "[1, 2]"])
        assertError(try file.tensor(named: "i"), contains: ["'i'", "I64", "not a floating-point"])
        assertError(try file.int64Tensor(named: "w"), contains: ["'w'", "F32", "not an integer"])
        XCTAssertThrowsError(try writer.add("w", floats: [1], shape: [1]))
        XCTAssertThrowsError(try writer.add("x", floats: [1, 2, 3], shape: [2]))
    }

    func testMalformedFilesAreErrorsNamingTheProblem() throws {
        let goodHeader = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I32","shape":[1],"data_offsets":[8,12]}}"#
        let twelve = [UInt8](repeating: 0, count: 12)
        XCTAssertNoThrow(try SafeTensors(data: safetensorsBytes(header: goodHeader, data: twelve), source: "ok"))

        let cases: [(String, Data, [String])] = [
            ("tiny", Data([1, 2, 3]), ["3 bytes"]),
            ("header longer than file", safetensorsBytes(header: goodHeader, data: twelve, declaredLength: 10_000), ["header length 10000", "truncated"]),
            ("absurd header", safetensorsBytes(header: goodHeader, data: twelve, declaredLength: 1 << 40), ["exceeds"]),
            ("truncated data", safetensorsBytes(header: goodHeader, data: Array(twelve.prefix(10))), ["'b'", "run past", "truncated"]),
            ("trailing bytes", safetensorsBytes(header: goodHeader, data: twelve + [0, 0, 0, 0]), ["cover only 12"]),
            ("bad JSON", safetensorsBytes(header: #"{"a": {"dtype": "F32", "#, data: []), ["invalid JSON header"]),
            ("not an object", safetensorsBytes(header: "[1,2,3]", data: []), ["invalid JSON header"]),
            ("unknown dtype", safetensorsBytes(header: #"{"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}"#, data: [0]),
             ["'a'", "unknown dtype 'F8'"]),
            ("size mismatch", safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: twelve),
             ["'a'", "span 8 bytes", "needs 12"]),
            ("offsets out of range", safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, data: Array(twelve.prefix(8))),
             ["'a'", "run past"]),
            ("reversed offsets", safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}"#, data: []),
             ["'a'", "increasing"]),
            ("overlap", safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                                         data: Array(twelve.prefix(8))), ["'b'", "overlap"]),
            ("gap", safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: Array(twelve.prefix(8))),
             ["'a'", "belong to no tensor"]),
            ("negative dim", safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]),
             ["'a'", "negative"]),
            ("huge shape", safetensorsBytes(header: #"{"a":{"dtype":"F64","shape":[4611686018427387904,4],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]),
             ["'a'", "more bytes"]),
            ("three offsets", safetensorsBytes(header: #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}"#, data: [0]),
             ["'a'", "[begin, end]"]),
            ("unknown entry key", safetensorsBytes(header: #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":1}}"#, data: [0]),
             ["extra"]),
            ("missing shape", safetensorsBytes(header: #"{"a":{"dtype":"U8","data_offsets":[0,1]}}"#, data: [0]), ["shape"]),
            ("fractional offset", safetensorsBytes(header: #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1.5]}}"#, data: [0]),
             ["invalid JSON header"]),
            ("metadata not strings", safetensorsBytes(header: #"{"__metadata__":{"k":1}}"#, data: []), ["__metadata__"]),
        ]
        for (label, data, fragments) in cases {
            do {
                _ = try SafeTensors(data: data, source: "bad-\(label).safetensors")
                XCTFail("\(label): accepted")
            } catch {
                let message = "\(error)"
                XCTAssertTrue(error is SafeTensorsError, "\(label): \(type(of: error))")
                XCTAssertTrue(message.contains("bad-\(label).safetensors"), "\(label): \(message)")
                for fragment in fragments {
                    XCTAssertTrue(message.contains(fragment), "\(label): '\(fragment)' not in: \(message)")
                }
            }
        }
    }

    func testMissingFileAndDirectory() throws {
        assertError(try SafeTensors(contentsOf: "/nonexistent/model.safetensors"), contains: ["/nonexistent/model.safetensors", "does not exist"])
        let dir = try makeTemporaryDirectory()
        assertError(try SafeTensors(contentsOf: dir.path), contains: ["directory"])
    }

    func testTruncationAtEveryLengthNeverCrashes() throws {
        var writer = SafeTensorsWriter(metadata: ["m": "v"])
        try writer.add("a", floats: [1, 2, 3], shape: [3])
        try writer.add("b", int64s: [4], shape: [1])
        let full = writer.serialized()
        for length in 0..<full.count {
            XCTAssertThrowsError(try SafeTensors(data: full.prefix(length), source: "cut"), "length \(length)")
        }
        XCTAssertNoThrow(try SafeTensors(data: full, source: "whole"))
    }

    func testReadsTheCommittedModelWrittenByPython() throws {
        let path = repositoryRoot().appendingPathComponent("models/digits-mlp/model.safetensors").path
        let file = try SafeTensors(contentsOf: path)
        XCTAssertEqual(try file.info(named: "fc1.weight").shape, [256, 64])
        XCTAssertEqual(try file.info(named: "fc3.bias").shape, [10])
        XCTAssertNotNil(file.metadata["test_accuracy"])
    }
}
