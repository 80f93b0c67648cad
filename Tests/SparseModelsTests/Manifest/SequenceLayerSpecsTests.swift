import Foundation
import SparseKernels
import XCTest
@testable import SparseModels

/// The sequence layers' manifest entries on their own: defaults, tensor names from `name`, padding
/// forms and their steps, pooling kinds, refusals naming the key, and encode → decode round trips
/// that leave defaults out.
final class SequenceLayerSpecsTests: XCTestCase {
    private func decode<T: Decodable>(_ type: T.Type, _ json: String) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(json.utf8))
    }

    private func failure<T: Decodable>(_ type: T.Type, _ json: String) -> String {
        do {
            _ = try decode(type, json)
            return "decoded"
        } catch let error as DecodingError {
            return error.conciseDescription
        } catch {
            return "\(error)"
        }
    }

    private func roundTrip<T: Codable & Equatable>(_ value: T, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let data = try JSONEncoder().encode(value)
        XCTAssertEqual(try JSONDecoder().decode(T.self, from: data), value, file: file, line: line)
        return String(decoding: data, as: UTF8.self)
    }

    func testConv1dDefaultsAndNames() throws {
        let conv = try decode(Conv1dLayerSpec.self, #"{"type": "conv1d", "name": "c1"}"#)
        XCTAssertEqual(conv, Conv1dLayerSpec(name: "c1", weight: "c1.weight"))
        XCTAssertNil(conv.bias, "a bias is only used when named")
        let full = try decode(Conv1dLayerSpec.self, #"{"weight": "w", "bias": "b", "stride": 2, "padding": [1, 0], "dilation": 3, "activation": "relu"}"#)
        XCTAssertEqual(full, Conv1dLayerSpec(weight: "w", bias: "b", stride: 2, padding: .explicit(left: 1, right: 0), dilation: 3, activation: .relu))
        XCTAssertTrue(failure(Conv1dLayerSpec.self, "{}").contains("required key 'weight' is missing"))
        XCTAssertEqual(failure(Conv1dLayerSpec.self, #"{"name": "c", "stride": 0}"#), "stride: must be at least 1, got 0")
        XCTAssertTrue(failure(Conv1dLayerSpec.self, #"{"name": "c", "padding": "same", "stride": 3}"#).contains("'same' needs stride 1, got stride 3"))
    }

    func testPaddingForms() throws {
        XCTAssertEqual(try decode([Conv1dPadding].self, #"["valid", "same", "causal", 2, [0, 3]]"#),
                       [.valid, .same, .causal, .explicit(left: 2, right: 2), .explicit(left: 0, right: 3)])
        for (json, fragment) in [(#"["full"]"#, "unknown padding 'full'"), ("[-1]", "must not be negative, got -1"),
                                 ("[[1]]", "two non-negative numbers"), ("[[1, -2]]", "two non-negative numbers"),
                                 ("[true]", "a number of steps or [left, right]")] {
            XCTAssertTrue(failure([Conv1dPadding].self, json).contains(fragment), json)
        }
        XCTAssertTrue(try roundTrip(Conv1dPadding.explicit(left: 4, right: 1)).contains("[4,1]"))
        XCTAssertEqual(try roundTrip(Conv1dPadding.causal), #""causal""#)
    }

    /// Steps for kernel 4, dilation 2 (span 7): "same" puts the odd step on the right, "causal" all on the left.
    func testPaddingSteps() {
        XCTAssertTrue(Conv1dPadding.valid.steps(kernelSize: 4, dilation: 2) == (0, 0))
        XCTAssertTrue(Conv1dPadding.same.steps(kernelSize: 4, dilation: 2) == (3, 3))
        XCTAssertTrue(Conv1dPadding.same.steps(kernelSize: 4, dilation: 1) == (1, 2))
        XCTAssertTrue(Conv1dPadding.causal.steps(kernelSize: 4, dilation: 2) == (6, 0))
        XCTAssertTrue(Conv1dPadding.explicit(left: 5, right: 0).steps(kernelSize: 4, dilation: 2) == (5, 0))
    }

    func testConv1dEncodingLeavesDefaultsOut() throws {
        let plain = try roundTrip(Conv1dLayerSpec(name: "c", weight: "c.weight"))
        for key in ["stride", "padding", "dilation", "activation", "bias"] { XCTAssertFalse(plain.contains(key), plain) }
        let full = try roundTrip(Conv1dLayerSpec(weight: "w", stride: 2, padding: .causal, dilation: 2, activation: .gelu))
        for key in ["stride", "padding", "dilation", "activation"] { XCTAssertTrue(full.contains(key), full) }
    }

    func testRecurrenceDefaultsChoicesAndRoundTrip() throws {
        let rec = try decode(RecurrenceLayerSpec.self, #"{"type": "recurrence", "name": "r"}"#)
        XCTAssertEqual(rec, RecurrenceLayerSpec(name: "r", weight: "r.weight", decay: "r.decay"))
        XCTAssertEqual(rec.output, .sequence)
        XCTAssertEqual(rec.form, .auto)
        let named = try decode(RecurrenceLayerSpec.self, #"{"weight": "B", "decay": "a", "output": "last", "form": "scan"}"#)
        XCTAssertEqual(named, RecurrenceLayerSpec(weight: "B", decay: "a", output: .last, form: .scan))
        XCTAssertTrue(failure(RecurrenceLayerSpec.self, #"{"weight": "B"}"#).contains("required key 'decay' is missing"))
        XCTAssertEqual(failure(RecurrenceLayerSpec.self, #"{"name": "r", "output": "first"}"#), "output: unknown value 'first' (known: sequence, last)")
        XCTAssertTrue(failure(RecurrenceLayerSpec.self, #"{"name": "r", "state": 4}"#).contains("unknown key 'state'"))
        XCTAssertFalse(try roundTrip(rec).contains("form"))
        XCTAssertTrue(try roundTrip(named).contains(#""form":"scan""#))
    }

    func testPoolKindsAndWindows() throws {
        let max = try decode(PoolLayerSpec.self, #"{"type": "maxpool1d", "kernelSize": 3}"#)
        XCTAssertEqual(max, PoolLayerSpec(kind: .max, kernelSize: 3, stride: 3), "stride defaults to the kernel size")
        XCTAssertEqual(max.type, "maxpool1d")
        let average = try decode(PoolLayerSpec.self, #"{"type": "avgpool1d", "name": "p", "kernelSize": 4, "stride": 2}"#)
        XCTAssertEqual(average, PoolLayerSpec(name: "p", kind: .average, kernelSize: 4, stride: 2))
        let global = try decode(PoolLayerSpec.self, #"{"type": "globalmaxpool1d"}"#)
        XCTAssertEqual(global, PoolLayerSpec(kind: .max))
        XCTAssertEqual(global.type, "globalmaxpool1d")
        XCTAssertEqual(PoolLayerSpec(kind: .average).type, "globalavgpool1d")
        XCTAssertTrue(failure(PoolLayerSpec.self, #"{"type": "maxpool1d"}"#).contains("required key 'kernelSize' is missing"))
        XCTAssertTrue(failure(PoolLayerSpec.self, #"{"type": "globalavgpool1d", "kernelSize": 2}"#).contains("unknown key 'kernelSize'"),
                      "a global pool takes no window")
        XCTAssertTrue(failure(PoolLayerSpec.self, #"{"type": "avgpool1d", "kernelSize": 2, "stride": 0}"#).contains("at least 1"))
        let encoded = String(decoding: try JSONEncoder().encode(max), as: UTF8.self)
        XCTAssertFalse(encoded.contains("stride"), "a stride equal to the window is left out: \(encoded)")
    }
}
