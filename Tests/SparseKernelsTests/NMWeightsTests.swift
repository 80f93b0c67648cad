import Foundation
import XCTest
import SparseKernels

/// N:M operators: packing, masks, and every kernel path (one/two-row selection GEMV, the
/// multi-row GEMV for batches under 16, the weight-broadcast GEMM and its 16-row remainder split)
/// against a float64 reference on every instruction set, with K, N and M tails.
final class NMWeightsTests: XCTestCase {
    static let patterns = [(1, 4), (2, 4), (3, 4), (1, 8), (2, 8), (4, 8), (7, 8), (1, 16), (4, 16), (8, 16), (15, 16)]

    func testEveryPatternMatchesReference() throws {
        var random = TestRandom(seed: 11)
        for (n, m) in Self.patterns {
            for (k, outputs) in [(5, 3), (37, 17), (64, 33)] {
                let dense = random.array(outputs * k)
                let bias = random.array(outputs)
                let op = try NMWeights(magnitudePruning: dense, outputFeatures: outputs, inputFeatures: k, n: n, m: m, bias: bias)
                let pruned = op.denseWeights()
                XCTAssertEqual(pruned, NMWeights.magnitudeMask(dense, outputFeatures: outputs, inputFeatures: k, n: n, m: m))
                OperatorChecker.check(op, dense: pruned, bias: bias, rowCounts: [1, 2, 3, 8, 17, 33], random: &random,
                                      "\(n):\(m) k=\(k) n=\(outputs)")
            }
        }
    }

    /// Row counts around every switch point: 1–2 (GEMV), 3–15 (multi-row GEMV on AVX-512: passes
    /// of 9–16 expanded rows for m = 4, chunks of 8/4/2/1; GEMM elsewhere), 16+ (GEMM tiles of up
    /// to 64 plus a remainder; m = 4 on AVX-512 keeps the GEMV up to 31 rows).
    func testRowCountsAcrossKernelSwitches() throws {
        var random = TestRandom(seed: 12)
        for (n, m) in [(2, 4), (4, 8), (8, 16)] {
            let (k, outputs) = (100, 40)
            let dense = random.array(outputs * k)
            let op = try NMWeights(magnitudePruning: dense, outputFeatures: outputs, inputFeatures: k, n: n, m: m)
            OperatorChecker.check(op, dense: op.denseWeights(), bias: nil,
                                  rowCounts: [4, 5, 6, 7, 9, 15, 16, 18, 31, 32, 47, 64, 65, 70, 129],
                                  activations: [.none, .relu], random: &random, "\(n):\(m)")
        }
    }

    /// m = 4 batches over more than 4096 inputs take the selection kernel on unexpanded rows (up to
    /// 4096 inputs the rows are expanded, see nm.c); both forms, with a K tail.
    func testLongRowsSelectionPaths() throws {
        var random = TestRandom(seed: 15)
        for k in [4103, 4093, 1031] {
            let outputs = 19
            let op = try NMWeights(magnitudePruning: random.array(outputs * k), outputFeatures: outputs, inputFeatures: k, n: 2, m: 4,
                                   bias: random.array(outputs))
            OperatorChecker.check(op, dense: op.denseWeights(), bias: op.bias, rowCounts: [1, 3, 9, 20], activations: [.none, .relu],
                                  random: &random, "2:4 k=\(k)")
        }
    }

    /// Calls split across two threads by output panels (4 parts a thread, each thread preparing
    /// the selection kernel's rows and the batched kernel's transposed input once for its parts)
    /// against the reference, with row counts on both kernels.
    func testSplitCalls() throws {
        var random = TestRandom(seed: 16)
        let pool = KernelPool(threads: 2, minimumSplitSeconds: 0)
        for (n, m) in [(2, 4), (4, 8)] {
            let (k, outputs) = (70, 150)
            let op = try NMWeights(magnitudePruning: random.array(outputs * k), outputFeatures: outputs, inputFeatures: k, n: n, m: m,
                                   bias: random.array(outputs))
            OperatorChecker.check(op, dense: op.denseWeights(), bias: op.bias, rowCounts: [3, 5, 8, 9, 14, 17, 31, 33, 47],
                                  activations: [.none, .relu, .gelu], random: &random, pool: pool, "\(n):\(m) split")
        }
    }

    /// Split calls one after another on the same input and output memory with new input values
    /// each time: input a thread prepared for one call (selection rows at 14 rows, transposed
    /// tiles and selection rows at 40) is never taken for the next.
    func testSplitCallsOnReusedMemory() throws {
        var random = TestRandom(seed: 17)
        let pool = KernelPool(threads: 2, minimumSplitSeconds: 0)
        let (k, outputs) = (96, 200)
        let op = try NMWeights(magnitudePruning: random.array(outputs * k), outputFeatures: outputs, inputFeatures: k, n: 2, m: 4)
        let w = op.denseWeights()
        let x = UnsafeMutableBufferPointer<Float>.allocate(capacity: 40 * k)
        let y = UnsafeMutableBufferPointer<Float>.allocate(capacity: 40 * outputs)
        defer { x.deallocate(); y.deallocate() }
        for (round, rows) in [14, 14, 40, 40, 14, 40].enumerated() {
            let values = random.array(rows * k)
            _ = x.update(fromContentsOf: values)
            op.apply(x.baseAddress!, rows: rows, inputStride: k, into: y.baseAddress!, outputStride: outputs, activation: .none,
                     pool: pool, isa: .current)
            let reference = OperatorChecker.reference(x: values, rows: rows, weights: w, outputs: outputs, inputs: k, bias: nil)
            OperatorChecker.assertClose(Array(y.prefix(rows * outputs)), reference, activation: .none, tolerance: 1e-5,
                                        "round \(round), \(rows) rows")
        }
    }

    /// Groups with fewer than n non-zeros (padding slots), whole zero rows, and K not a multiple of m.
    func testSparserThanPatternAndZeroRows() throws {
        var random = TestRandom(seed: 13)
        for (n, m) in [(2, 4), (3, 8), (4, 16)] {
            let (k, outputs) = (45, 21)
            var w = NMWeights.magnitudeMask(random.array(outputs * k), outputFeatures: outputs, inputFeatures: k, n: n, m: m)
            for i in w.indices where i % 3 == 0 { w[i] = 0 }
            for c in 0..<k { w[5 * k + c] = 0 }
            let op = try NMWeights(prunedWeights: w, outputFeatures: outputs, inputFeatures: k, n: n, m: m, bias: random.array(outputs))
            XCTAssertEqual(op.denseWeights(), w)
            XCTAssertEqual(op.nonZeroCount, w.filter { $0 != 0 }.count)
            OperatorChecker.check(op, dense: w, bias: op.bias, rowCounts: [1, 2, 5, 16, 20], random: &random, "\(n):\(m) sparse")
        }
    }

    func testMaskInitializerKeepsExactlyTheMask() throws {
        var random = TestRandom(seed: 14)
        let (k, outputs) = (16, 8)
        let w = random.array(outputs * k)
        // keep positions 0 and 3 of every group of 4 (not the largest magnitudes)
        let mask = (0..<(outputs * k)).map { [0, 3].contains(($0 % k) % 4) }
        let op = try NMWeights(weights: w, mask: mask, outputFeatures: outputs, inputFeatures: k, n: 2, m: 4)
        XCTAssertEqual(op.denseWeights(), zip(w, mask).map { $1 ? $0 : 0 })
        XCTAssertThrowsError(try NMWeights(weights: w, mask: [Bool](repeating: true, count: w.count), outputFeatures: outputs,
                                           inputFeatures: k, n: 2, m: 4))
        XCTAssertThrowsError(try NMWeights(weights: w, mask: [true], outputFeatures: outputs, inputFeatures: k, n: 2, m: 4))
    }

    func testRejectsBadPatternsAndOverfullGroups() {
        XCTAssertThrowsError(try NMWeights(prunedWeights: [1, 2, 3, 4], outputFeatures: 1, inputFeatures: 4, n: 2, m: 5))
        XCTAssertThrowsError(try NMWeights(prunedWeights: [1, 2, 3, 4], outputFeatures: 1, inputFeatures: 4, n: 4, m: 4))
        XCTAssertThrowsError(try NMWeights(prunedWeights: [1, 2, 3, 4], outputFeatures: 1, inputFeatures: 4, n: 0, m: 4))
        XCTAssertThrowsError(try NMWeights(prunedWeights: [1, 2, 3], outputFeatures: 1, inputFeatures: 4, n: 2, m: 4))
        XCTAssertThrowsError(try NMWeights(prunedWeights: [1, 2, 3, 0], outputFeatures: 1, inputFeatures: 4, n: 2, m: 4)) { error in
            XCTAssertEqual(error as? NMWeights.PackError, .tooManyNonZeros(n: 2, m: 4))
        }
        let op = try? NMWeights(prunedWeights: [1, 0, 3, 0, 0, 0, 0, 0], outputFeatures: 1, inputFeatures: 8, n: 2, m: 4)
        XCTAssertEqual(op?.nonZeroCount, 2)
        XCTAssertEqual(op?.storage, "nm 2:4")
    }

    func testSizeFacts() throws {
        var random = TestRandom(seed: 15)
        let (k, outputs) = (64, 32)
        let w = random.array(outputs * k)
        let op24 = try NMWeights(magnitudePruning: w, outputFeatures: outputs, inputFeatures: k, n: 2, m: 4, bias: random.array(outputs))
        XCTAssertEqual(op24.parameterCount, outputs * k / 2 + outputs)
        XCTAssertEqual(op24.byteCount, outputs * k / 2 * 4 + (outputs / 16) * (k / 4) * 2 * 4 + outputs * 4)  // values + 2-bit indices + bias
        XCTAssertEqual(op24.density, Double(outputs * k / 2 + outputs) / Double(outputs * k + outputs), accuracy: 1e-12)
        let op28 = try NMWeights(magnitudePruning: w, outputFeatures: outputs, inputFeatures: k, n: 2, m: 8)
        XCTAssertEqual(op28.byteCount, outputs * k / 4 * 4 + (outputs / 16) * (k / 8) * 2 * 8)  // values + 4-bit indices
    }

    /// Magnitude masks keep the n largest |w| per group, lower index first on ties.
    func testMagnitudeMask() {
        let w: [Float] = [0.1, -0.5, 0.5, 0.2, /* tail group of 2: */ 3, -4]
        XCTAssertEqual(NMWeights.magnitudeMask(w, outputFeatures: 1, inputFeatures: 6, n: 2, m: 4), [0, -0.5, 0.5, 0, 3, -4])
        XCTAssertEqual(NMWeights.magnitudeMask(w, outputFeatures: 1, inputFeatures: 6, n: 1, m: 4), [0, -0.5, 0, 0, 0, -4])
    }
}
