import Foundation
import XCTest
import SparseKernels

/// Piecewise-linear tables: every activation, table sizes on each register path (≤ 8/16/32/64
/// segments) and the gather fallback; results equal across instruction sets and within the
/// table's stated error.
final class PWLActivationTests: XCTestCase {
    func testWithinStatedErrorAndEqualAcrossInstructionSets() {
        var random = TestRandom(seed: 9)
        let x = (0..<1003).map { _ in random.next() * 8 }  // inside [-8, 8]
        for activation in Activation.allCases {
            for segments in [8, 16, 24, 32, 48, 64, 100] {
                let table = PWLActivation(activation, segments: segments)
                var portable = x
                table.apply(to: &portable, isa: .portable)
                for (input, y) in zip(x, portable) {
                    let exact = activation.exactValue(Double(input))
                    XCTAssertLessThanOrEqual(abs(Double(y) - exact), table.error.maxAbsolute * 1.05 + 1e-6,
                                             "\(activation) \(segments) at \(input)")
                }
                for isa in InstructionSet.available {
                    var v = x
                    table.apply(to: &v, isa: isa)
                    for (a, b) in zip(v, portable) { XCTAssertEqual(a, b, accuracy: 2e-6 * max(1, abs(b)), "\(activation) \(segments) \(isa)") }
                }
            }
        }
    }

    /// Error shrinks about 4× per doubling of segments (second-order), and the report is consistent.
    func testErrorReport() {
        let coarse = PWLActivation(.gelu, segments: 16), fine = PWLActivation(.gelu, segments: 32)
        XCTAssertLessThan(fine.error.maxAbsolute, coarse.error.maxAbsolute / 3)
        XCTAssertLessThan(fine.error.maxAbsolute, 0.012)
        XCTAssertLessThanOrEqual(fine.error.rms, fine.error.maxAbsolute)
        XCTAssertEqual(PWLActivation(.relu, segments: 16).error.maxAbsolute, 0, accuracy: 1e-6)  // knots at 0: exact
        XCTAssertEqual(fine.name, "gelu")
        XCTAssertTrue(fine.error.description.contains("max abs"))
    }

    func testCustomFunctionAndTails() {
        let exp = PWLActivation(function: { Foundation.exp($0) }, name: "exp", segments: 64, lo: -16, hi: 0)
        XCTAssertNil(exp.activation)
        XCTAssertLessThan(exp.error.maxAbsolute, 5e-3)  // h = 0.25: h²/8 · max f'' / 2 ≈ 3.9e-3
        var values: [Float] = [-8, -1, -0.25, 0]
        exp.apply(to: &values)
        for (v, x) in zip(values, [-8.0, -1, -0.25, 0]) { XCTAssertEqual(Double(v), Foundation.exp(x), accuracy: exp.error.maxAbsolute + 1e-6) }
        // tails continue the end segments: GELU(-20) ≈ 0, GELU(20) ≈ 20; NaN stays NaN
        var tails: [Float] = [-20, 20, .nan]
        for isa in InstructionSet.available {
            var t = tails
            PWLActivation(.gelu, segments: 32).apply(to: &t, isa: isa)
            XCTAssertEqual(t[0], 0, accuracy: 1e-3, "\(isa)")
            XCTAssertEqual(t[1], 20, accuracy: 1e-2, "\(isa)")
            XCTAssertTrue(t[2].isNaN, "\(isa)")
        }
        tails = []
        PWLActivation(.gelu).apply(to: &tails)  // empty input is fine
    }
}
