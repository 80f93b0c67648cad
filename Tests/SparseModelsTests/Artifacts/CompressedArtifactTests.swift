import Foundation
import SparseTestSupport
import XCTest
@testable import SparseModels

/// The artifact reader's own checks, without writing a model: the manifest marker, the
/// `__metadata__` header (format, version, JSON entries, activations, layer shapes, totals), each
/// layer record's stored layout, manifest marking and the source fingerprint.
/// (ArtifactWriterTests covers real artifacts end to end.)
final class CompressedArtifactTests: XCTestCase {
    private struct Failure: Error, CustomStringConvertible { var description: String }

    private let validMetadata: [String: String] = [
        "format": "sparse-serve-artifact", "format_version": "1", "tool_version": "test", "source_model": "/m",
        "source_fingerprint": "fnv1a64:0", "compression": #"{"method": "nm"}"#, "activations": "exact",
        "layers": "[]", "totals": #"{"denseBytes": 0, "storedBytes": 0, "compressionRatio": 1}"#,
    ]

    private func metadata(_ change: (inout [String: String]) -> Void = { _ in }) throws -> CompressedArtifact.Metadata {
        var meta = validMetadata
        change(&meta)
        let file = try SafeTensors(data: SafeTensorsWriter(metadata: meta).serialized(), source: "a/model.safetensors")
        return try CompressedArtifact.Metadata(file)
    }

    private func record(_ name: String = "fc", method: String, parameters: String = "{}", shape: [Int] = [4, 8],
                        bytes: Int = 10, denseBytes: Int = 20, compaction: String? = nil) -> String {
        #"{"name": "\#(name)", "method": "\#(method)", "parameters": \#(parameters), "pinned": false, "shape": \#(shape), "#
            + #""sourceWeight": "\#(name).weight", "tensors": [], "storedParameters": 1, "bytes": \#(bytes), "#
            + #""denseBytes": \#(denseBytes), "density": 0.5, "relativeError": 0.1"#
            + (compaction.map { #", "compaction": \#($0)"# } ?? "") + "}"
    }

    func testValidHeaderIsRead() throws {
        let meta = try metadata {
            $0["activations"] = "pwl:64"
            $0["calibration"] = #"{"samples": 8}"#
            $0["layers"] = "[" + record("a", method: "dense") + "," + record("b", method: "csr", bytes: 5, denseBytes: 7) + "]"
            $0["totals"] = #"{"denseBytes": 27, "storedBytes": 15, "compressionRatio": 1.8}"#
        }
        XCTAssertEqual(meta.activations, .pwl(segments: 64))
        XCTAssertEqual(meta.provenance.method, "nm")
        XCTAssertEqual(meta.provenance.calibration, #"{"samples": 8}"#)
        XCTAssertNil(meta.provenance.quality)
        XCTAssertEqual(meta.layers.map(\.name), ["a", "b"])
        XCTAssertEqual(try meta.layer("b", file: "f").method, "csr")
        assertError(try meta.layer("c", file: "f"), contains: ["f", "no entry for layer 'c' (listed: a, b)"])
    }

    func testHeaderRefusalsNameTheEntry() {
        let cases: [((inout [String: String]) -> Void, String)] = [
            ({ $0["format"] = nil }, "'format' is missing (not a SparseServe artifact?)"),
            ({ $0["format"] = "onnx" }, "format 'onnx' is not 'sparse-serve-artifact'"),
            ({ $0["format_version"] = "one" }, "format_version 'one' is not supported"),
            ({ $0["source_fingerprint"] = nil }, "'source_fingerprint' is missing"),
            ({ $0["compression"] = "[1]" }, "'compression' must be a JSON object with a 'method'"),
            ({ $0["compression"] = #"{"method": 3}"# }, "'compression' must be a JSON object with a 'method'"),
            ({ $0["quality"] = "[]" }, "'quality' must be a JSON object"),
            ({ $0["recovery"] = "{" }, "'recovery' must be a JSON object"),
            ({ $0["activations"] = "pwl:4097" }, "activations 'pwl:4097' is not 'exact' or 'pwl:<segments>'"),
            ({ $0["activations"] = "pwl:" }, "activations 'pwl:'"),
            ({ $0["activations"] = "Exact" }, "activations 'Exact'"),
            ({ $0["layers"] = "{}" }, "'layers' is not valid: expected an array"),
            ({ $0["totals"] = #"{"denseBytes": 0}"# }, "'totals' is not valid: required key 'storedBytes' is missing"),
            ({ $0["layers"] = "[" + self.record(method: "dense", shape: [4]) + "]" }, "layers[0] 'fc': shape [4] is not [out, in]"),
            ({ $0["layers"] = "[" + self.record(method: "dense", shape: [0, 4]) + "]" }, "shape [0, 4] is not [out, in]"),
            ({ $0["layers"] = "[" + self.record(method: "dense", shape: [1 << 31, 1]) + "]" }, "is not [out, in]"),
            ({ $0["layers"] = "[" + self.record(method: "dense", shape: [1 << 30, 1 << 30]) + "]" }, "is not [out, in]"),
            ({ $0["layers"] = "[" + self.record(method: "dense") + "]" }, "totals say 0 dense and 0 stored bytes, the layers add up to 20 and 10"),
        ]
        for (change, fragment) in cases {
            assertError(try metadata(change), contains: ["a/model.safetensors", "__metadata__", fragment])
        }
    }

    func testActivationTexts() throws {
        func parse(_ text: String) throws -> ActivationApproximation {
            try CompressedArtifact.Metadata.activations(text) { Failure(description: $0) }
        }
        XCTAssertEqual(try parse("exact"), .exact)
        XCTAssertEqual(try parse("pwl:2"), .pwl(segments: 2))
        XCTAssertEqual(try parse("pwl:4096"), .pwl(segments: 4096))
        for bad in ["pwl:1", "pwl:-4", "pwl: 8", "pwl:8 ", "", "pwl:0x10"] { XCTAssertThrowsError(try parse(bad), bad) }
        for approximation in [ActivationApproximation.exact, .pwl(segments: 128)] {
            XCTAssertEqual(try parse(CompressedArtifact.Metadata.text(approximation)), approximation)
        }
    }

    func testRecordLayouts() throws {
        func layout(_ json: String) throws -> PackedLayer.Layout {
            let record = try JSONDecoder().decode(CompressedArtifact.LayerRecord.self, from: Data(json.utf8))
            return try record.layout { Failure(description: $0) }
        }
        XCTAssertEqual(try layout(record(method: "dense")), .dense)
        XCTAssertEqual(try layout(record(method: "nm", parameters: #"{"n": 2, "m": 4, "mask": "transposable"}"#)),
                       .nm(n: 2, m: 4, transposable: true))
        XCTAssertEqual(try layout(record(method: "blast", parameters: #"{"blocks": 4, "rank": 9, "iterations": 3}"#)),
                       .blast(rowBlocks: 4, columnBlocks: 4, rank: 9))
        XCTAssertEqual(try layout(record(method: "csr", parameters: #"{"density": 0.2, "weights": "int8", "granularity": "channel", "activations": "int8-dynamic"}"#)),
                       .quantized(.csr, .int8Dynamic))
        let compaction = #"{"inputWidth": 3, "outputWidth": 4, "gather": true, "scatter": false, "bias": true, "storage": "dense"}"#
        XCTAssertEqual(try layout(record(method: "l1inf", compaction: compaction)),
                       .compacted(method: "l1inf", inputWidth: 3, outputWidth: 4, gather: true, scatter: false, storage: "dense"))
        let refusals: [(String, String)] = [
            (record(method: "nm", parameters: #"{"n": 2, "m": 4}"#), "parameters.mask must be 'magnitude' or 'transposable'"),
            (record(method: "nm", parameters: #"{"n": "2", "m": 4, "mask": "magnitude"}"#), "parameters.n must be an integer"),
            (record(method: "blast", parameters: #"{"blocks": 2}"#), "parameters.rank must be an integer"),
            (record(method: "l1inf"), "an l1inf layer is stored compacted, but 'compaction' is missing"),
            (record(method: "nm", parameters: #"{"n": 2, "m": 4, "mask": "magnitude"}"#, compaction: compaction), "a nm layer cannot be stored compacted"),
            (record(method: "dense", parameters: #"{"weights": "bf16"}"#, compaction: compaction), "a dense layer cannot be stored quantized"),
            (record(method: "svd"), "method 'svd' is not one of dense, nm, csr, blast, l1inf"),
        ]
        for (json, message) in refusals {
            XCTAssertThrowsError(try layout(json), message) { XCTAssertTrue("\($0)".hasPrefix(message), "\($0)") }
        }
    }

    func testMarker() throws {
        let decoder = JSONDecoder()
        let marker = try decoder.decode(CompressedArtifact.Marker.self, from: Data(#"{"format": "sparse-serve-artifact", "version": 1}"#.utf8))
        XCTAssertEqual(marker, CompressedArtifact.Marker())
        XCTAssertNoThrow(try marker.check(source: "m.json"))
        XCTAssertThrowsError(try decoder.decode(CompressedArtifact.Marker.self, from: Data(#"{"format": "x", "version": 1, "extra": 0}"#.utf8)))
        assertError(try CompressedArtifact.Marker(format: "other").check(source: "m.json"), contains: ["m.json", "compressed.format 'other'"])
        assertError(try CompressedArtifact.Marker(version: 2).check(source: "m.json"), contains: ["compressed.version 2 is not supported"])
    }

    func testMarkingAndFingerprints() throws {
        let directory = try makeTemporaryDirectory()
        func file(_ name: String, _ text: String) throws -> String {
            let path = directory.appendingPathComponent(name).path
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            return path
        }
        XCTAssertFalse(try CompressedArtifact.isMarked(try file("plain.json", #"{"name": "m"}"#)))
        XCTAssertTrue(try CompressedArtifact.isMarked(try file("marked.json", #"{"compressed": {"format": "x", "version": 9}}"#)))
        assertError(try CompressedArtifact.isMarked(try file("list.json", "[1]")), contains: ["list.json", "is not a JSON object"])
        assertError(try CompressedArtifact.isMarked(directory.appendingPathComponent("none.json").path), contains: ["file does not exist"])
        // FNV-1a 64 test vectors: "" and "a".
        XCTAssertEqual(try CompressedArtifact.fingerprint(try file("empty", "")), "fnv1a64:cbf29ce484222325")
        XCTAssertEqual(try CompressedArtifact.fingerprint(try file("a", "a")), "fnv1a64:af63dc4c8601ec8c")
        assertError(try CompressedArtifact.fingerprint(directory.appendingPathComponent("none").path), contains: ["cannot read file"])
    }
}
