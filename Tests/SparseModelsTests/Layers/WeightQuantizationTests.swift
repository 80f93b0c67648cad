import SparseKernels
import XCTest
@testable import SparseModels

/// Quantization schemes: the parameters an artifact records and reading them back, refusals of
/// inconsistent parameters, and which method × scheme combinations have a kernel.
final class WeightQuantizationTests: XCTestCase {
    private struct Failure: Error, CustomStringConvertible { var description: String }
    private func read(_ p: [String: ParameterValue]) throws -> WeightQuantization? {
        try WeightQuantization(parameters: p) { Failure(description: $0) }
    }

    func testParametersRoundTrip() throws {
        for scheme in [WeightQuantization.int8(.channel), .int8(.group(64)), .int8(.group(1)), .int8Dynamic, .bf16] {
            XCTAssertEqual(try read(scheme.parameters), scheme, "\(scheme)")
            XCTAssertEqual(try read(scheme.parameters.merging(["n": .int(2), "mask": .string("magnitude")]) { a, _ in a }), scheme,
                           "the method's own keys are ignored")
        }
        XCTAssertNil(try read(["n": .int(2), "m": .int(4)]), "no 'weights' key: not quantized")
        XCTAssertEqual(WeightQuantization.int8Dynamic.parameters["activations"], .string("int8-dynamic"))
        XCTAssertEqual("\(WeightQuantization.int8(.group(32)))", "int8 group 32")
    }

    func testInconsistentParametersAreRefused() {
        let bad: [[String: ParameterValue]] = [
            ["weights": .string("int4")],
            ["weights": .int(8)],
            ["weights": .string("bf16"), "granularity": .string("channel")],
            ["weights": .string("bf16"), "activations": .string("int8-dynamic")],
            ["weights": .string("int8")],
            ["weights": .string("int8"), "granularity": .string("group")],
            ["weights": .string("int8"), "granularity": .string("group"), "group": .int(0)],
            ["weights": .string("int8"), "granularity": .string("group"), "group": .int(65537)],
            ["weights": .string("int8"), "granularity": .string("group"), "group": .int(64), "activations": .string("int8-dynamic")],
            ["weights": .string("int8"), "granularity": .string("channel"), "group": .int(64)],
            ["weights": .string("int8"), "granularity": .string("channel"), "activations": .string("fp8")],
        ]
        for p in bad {
            XCTAssertThrowsError(try read(p), "\(p)") { error in
                XCTAssertTrue("\(error)".hasPrefix("parameters"), "\(error)")
            }
        }
    }

    /// The kernel table: every refused combination names the scheme, the method and why.
    func testKernelTable() {
        func allowed(_ q: WeightQuantization, _ method: LayerCompression, inputs: Int = 64) -> Bool {
            (try? q.check(method, outputs: 32, inputs: inputs)) != nil
        }
        let blast = LayerCompression.blast(blocks: 2, rank: 4, parameterRatio: nil, iterations: 10)
        let l1inf = LayerCompression.l1inf(groups: .columns, radius: nil, radiusRatio: 0.5)
        let table: [(WeightQuantization, LayerCompression, Bool)] = [
            (.int8(.channel), .dense, true), (.int8(.group(32)), .dense, true), (.int8Dynamic, .dense, true), (.bf16, .dense, true),
            (.int8Dynamic, .nm(n: 2, m: 4), true), (.int8Dynamic, .nm(n: 1, m: 4), true), (.int8Dynamic, .nm(n: 3, m: 4), false),
            (.int8Dynamic, .nm(n: 2, m: 8), false), (.int8(.channel), .nm(n: 2, m: 4), true), (.bf16, .nm(n: 4, m: 8), true),
            (.int8(.channel), .nm(n: 4, m: 8), true), (.int8(.group(64)), .nm(n: 8, m: 16), true), (.int8(.group(8)), .nm(n: 2, m: 4), true),
            (.int8(.group(6)), .nm(n: 2, m: 4), false), (.int8(.group(8)), .nm(n: 8, m: 16), false),
            (.int8Dynamic, .transposableNM(n: 2, m: 4), true), (.bf16, .transposableNM(n: 8, m: 16), true),
            (.int8Dynamic, blast, true), (.bf16, blast, true), (.int8(.channel), blast, true), (.int8(.group(64)), blast, false),
            (.int8Dynamic, .csr(density: 0.3), true), (.bf16, .csr(density: 0.3), false), (.int8(.group(8)), .csr(density: 0.3), false),
            (.int8(.channel), .csr(density: 0.3), true),
            (.int8Dynamic, l1inf, false), (.bf16, l1inf, false),
            (.int8Dynamic, .pinned(.nm(n: 2, m: 8)), false), (.bf16, .pinned(.nm(n: 2, m: 8)), true),
        ]
        for (q, method, expected) in table {
            XCTAssertEqual(allowed(q, method), expected, "\(q) with \(method)")
        }
        XCTAssertFalse(allowed(.int8Dynamic, .dense, inputs: 65537), "int8 sums stay exact only up to 65536 inputs")
        XCTAssertTrue(allowed(.int8(.channel), .dense, inputs: 65537))
        XCTAssertThrowsError(try WeightQuantization.int8(.group(6)).check(.nm(n: 2, m: 4), outputs: 8, inputs: 8)) { error in
            XCTAssertTrue("\(error)".contains("quantize int8 group 6 with nm 2:4"), "\(error)")
            XCTAssertTrue("\(error)".contains("not a multiple of 4"), "\(error)")
        }
    }
}
