import XCTest
@testable import SparseKernels

/// N:M with bf16 values on every instruction set against the fp64 reference of the bf16 weight.
final class NMBF16WeightsTests: XCTestCase {
    func testEveryPatternMatchesReference() throws {
        var random = TestRandom(seed: 111)
        for (n, m) in [(2, 4), (1, 4), (4, 8), (8, 16)] {
            for (k, outputs) in [(5, 3), (37, 17), (100, 40)] {
                let source = try NMWeights(magnitudePruning: random.array(outputs * k), outputFeatures: outputs, inputFeatures: k,
                                           n: n, m: m, bias: random.array(outputs))
                let op = try NMBF16Weights(source)
                let w = op.denseWeights()
                XCTAssertEqual(zip(w, source.denseWeights()).filter { ($0 == 0) != ($1 == 0) }.count, 0, "same mask")
                XCTAssertEqual(w, source.denseWeights().map { Float(bitPattern: UInt32(ss_bf16_from_float_swift($0)) << 16) })
                OperatorChecker.check(op, dense: w, bias: op.bias, rowCounts: [1, 2, 3, 8, 9, 20], random: &random,
                                      "\(op.storage) k=\(k) n=\(outputs)")
            }
        }
    }
}

/// Nearest-even bf16 rounding written independently of the C kernel's.
private func ss_bf16_from_float_swift(_ x: Float) -> UInt16 {
    let u = x.bitPattern
    return UInt16((u &+ 0x7FFF &+ ((u >> 16) & 1)) >> 16)
}
