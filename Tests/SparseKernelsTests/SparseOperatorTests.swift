import Foundation
import XCTest
import SparseKernels

/// N:M, CSR and BLAST operators and the PWL table against double-precision references, on every
/// instruction set this CPU has, with odd shapes and unaligned buffers.
final class SparseOperatorTests: XCTestCase {
    /// act(x · wᵀ + b) in Double; returns values and a per-element error budget.
    func reference(_ x: [Float], rows: Int, _ w: [Float], n: Int, k: Int, bias: [Float]?, _ act: Activation) -> [Double] {
        var y = [Double](repeating: 0, count: rows * n)
        for r in 0..<rows {
            for o in 0..<n {
                var acc = Double(bias?[o] ?? 0)
                for c in 0..<k { acc += Double(x[r * k + c]) * Double(w[o * k + c]) }
                y[r * n + o] = referenceActivation(act, acc)
            }
        }
        return y
    }

    /// Runs `op` on `x` placed one float past an aligned start, so nothing is 64-byte aligned.
    func run(_ op: LinearOperator, _ x: [Float], rows: Int, _ act: Activation, _ isa: InstructionSet) -> [Float] {
        let k = op.inputFeatures, n = op.outputFeatures
        let xin = UnsafeMutablePointer<Float>.allocate(capacity: rows * k + 1)
        let yout = UnsafeMutablePointer<Float>.allocate(capacity: rows * n + 1)
        defer { xin.deallocate(); yout.deallocate() }
        for i in 0..<(rows * k) { xin[i + 1] = x[i] }
        op.apply(xin + 1, rows: rows, into: yout + 1, activation: act, isa: isa)
        return (0..<(rows * n)).map { yout[$0 + 1] }
    }

    func assertClose(_ got: [Float], _ want: [Double], _ what: String, tolerance: Double = 2e-5, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, what, file: file, line: line)
        var worst = 0.0
        for (g, w) in zip(got, want) { worst = max(worst, abs(Double(g) - w) / max(1, abs(w))) }
        XCTAssertLessThanOrEqual(worst, tolerance, what, file: file, line: line)
    }

    func testNMMatchesReferenceEverywhere() throws {
        var rng = TestRandom(seed: 11)
        let patterns = [(1, 4), (2, 4), (3, 4), (2, 8), (4, 8), (3, 8), (1, 16), (8, 16)]
        for (n, m) in patterns {
            for (k, outs) in [(5, 3), (64, 17), (100, 40)] {
                let dense = rng.array(outs * k)
                let bias = rng.array(outs)
                let op = try NMWeights(magnitudePruning: dense, outputFeatures: outs, inputFeatures: k, n: n, m: m, bias: bias)
                let pruned = op.denseWeights()
                XCTAssertEqual(pruned, NMWeights.magnitudeMask(dense, outputFeatures: outs, inputFeatures: k, n: n, m: m))
                // every group keeps at most n weights
                for row in 0..<outs {
                    for g in stride(from: 0, to: k, by: m) {
                        XCTAssertLessThanOrEqual((g..<min(g + m, k)).filter { pruned[row * k + $0] != 0 }.count, n)
                    }
                }
                for rows in [1, 2, 3, 17, 33] {
                    let x = rng.array(rows * k)
                    for act in [Activation.none, .relu, .gelu] {
                        let want = reference(x, rows: rows, pruned, n: outs, k: k, bias: bias, act)
                        for isa in InstructionSet.available {
                            assertClose(run(op, x, rows: rows, act, isa), want, "\(n):\(m) k=\(k) n=\(outs) rows=\(rows) \(act) \(isa)")
                        }
                    }
                }
            }
        }
    }

    func testNMRejectsBadPatternsAndOverfullGroups() {
        XCTAssertThrowsError(try NMWeights(prunedWeights: [1, 2, 3, 4], outputFeatures: 1, inputFeatures: 4, n: 2, m: 5))
        XCTAssertThrowsError(try NMWeights(prunedWeights: [1, 2, 3, 4], outputFeatures: 1, inputFeatures: 4, n: 4, m: 4))
        XCTAssertThrowsError(try NMWeights(prunedWeights: [1, 2, 3, 0], outputFeatures: 1, inputFeatures: 4, n: 2, m: 4)) { error in
            XCTAssertEqual(error as? NMWeights.PackError, .tooManyNonZeros(n: 2, m: 4))
        }
        let op = try? NMWeights(prunedWeights: [1, 0, 3, 0, 0, 0, 0, 0], outputFeatures: 1, inputFeatures: 8, n: 2, m: 4)
        XCTAssertEqual(op?.nonZeroCount, 2)
        XCTAssertEqual(op?.storage, "nm 2:4")
    }

    func testCSRMatchesReference() {
        var rng = TestRandom(seed: 5)
        for (k, outs, density) in [(7, 5, 0.5), (96, 33, 0.1), (64, 16, 1.0), (10, 4, 0.0)] {
            let dense = rng.array(outs * k)
            let op = CSRWeights(magnitudePruning: dense, outputFeatures: outs, inputFeatures: k, density: density, bias: rng.array(outs))
            XCTAssertEqual(op.values.count, Int((Double(outs * k) * density).rounded()))
            var pruned = [Float](repeating: 0, count: outs * k)
            for row in 0..<outs {
                for e in Int(op.rowStart[row])..<Int(op.rowStart[row + 1]) { pruned[row * k + Int(op.columns[e])] = op.values[e] }
            }
            for rows in [1, 2, 5, 40] {
                let x = rng.array(rows * k)
                let want = reference(x, rows: rows, pruned, n: outs, k: k, bias: op.bias, .relu)
                for isa in InstructionSet.available {
                    assertClose(run(op, x, rows: rows, .relu, isa), want, "csr k=\(k) rows=\(rows) \(isa)")
                }
            }
        }
    }

    func testBlastMatchesItsDenseWeight() throws {
        var rng = TestRandom(seed: 3)
        for (outs, k, b1, b2, r) in [(12, 18, 2, 3, 4), (32, 32, 4, 4, 5), (40, 24, 1, 2, 7), (16, 48, 4, 1, 1)] {
            let p = outs / b1, q = k / b2
            let op = try BlastWeights(u: rng.array(b1 * p * r), v: rng.array(b2 * q * r), s: rng.array(b1 * b2 * r),
                                      outputFeatures: outs, inputFeatures: k, rowBlocks: b1, columnBlocks: b2, rank: r,
                                      bias: rng.array(outs))
            XCTAssertEqual(op.parameterCount, r * (outs + k + b1 * b2) + outs)
            let w = op.denseWeights()
            for rows in [1, 3, 20] {
                let x = rng.array(rows * k)
                let want = reference(x, rows: rows, w, n: outs, k: k, bias: op.bias, .gelu)
                for isa in InstructionSet.available {
                    assertClose(run(op, x, rows: rows, .gelu, isa), want, "blast \(outs)x\(k) b=\(b1)x\(b2) r=\(r) rows=\(rows) \(isa)", tolerance: 5e-5)
                }
            }
        }
        XCTAssertThrowsError(try BlastWeights(u: [], v: [], s: [], outputFeatures: 10, inputFeatures: 8, rowBlocks: 3, columnBlocks: 2, rank: 1))
    }

    func testPWLTableIsCloseAndIdenticalAcrossInstructionSets() {
        for (act, segments, bound) in [(Activation.gelu, 32, 0.012), (.tanh, 32, 0.012), (.sigmoid, 16, 0.006), (.relu, 16, 1e-6)] {
            let table = PWLActivation(act, segments: segments)
            XCTAssertLessThan(Double(table.maxAbsoluteError()), bound, "\(act)")
            var rng = TestRandom(seed: 9)
            let x = (0..<1003).map { _ in rng.next() * 12 }
            var portable = x
            table.apply(to: &portable, isa: .portable)
            for isa in InstructionSet.available {
                var v = x
                table.apply(to: &v, isa: isa)
                for (a, b) in zip(v, portable) { XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(b)), "\(act) \(isa)") }
            }
        }
        // tails continue the end segments: GELU(-20) ≈ 0, GELU(20) ≈ 20
        var tails: [Float] = [-20, 20]
        PWLActivation(.gelu, segments: 32).apply(to: &tails)
        XCTAssertEqual(tails[0], 0, accuracy: 1e-3)
        XCTAssertEqual(tails[1], 20, accuracy: 1e-2)
    }

    func testKernelPoolRunsEveryPartOnceAndMatchesSingleThread() {
        final class Counts: @unchecked Sendable {
            let lock = NSLock()
            var seen = [Int](repeating: 0, count: 257)
            func hit(_ i: Int) { lock.lock(); seen[i] += 1; lock.unlock() }
        }
        for threads in [1, 2, 3] {
            let pool = KernelPool(threads: threads)
            for round in 0..<50 {
                let counts = Counts()
                let parts = 1 + (round * 37) % 257
                pool.run(parts: parts) { counts.hit($0) }
                XCTAssertEqual(Array(counts.seen[0..<parts]), [Int](repeating: 1, count: parts), "threads=\(threads) parts=\(parts)")
                if round % 10 == 0 { Thread.sleep(forTimeInterval: 0.003) }  // let workers park
            }
        }
        var rng = TestRandom(seed: 21)
        let k = 384, n = 520, rows = 64
        let layer = DenseWeights(weights: rng.array(n * k), outputFeatures: n, inputFeatures: k, bias: rng.array(n))
        let x = rng.array(rows * k)
        let single = layer.apply(Matrix(rows: rows, columns: k, values: x), activation: .gelu).values
        let pool = KernelPool(threads: 3)
        // several callers at once: one splits, the others run alone; all results are exact
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            var y = [Float](repeating: 0, count: rows * n)
            x.withUnsafeBufferPointer { xs in
                y.withUnsafeMutableBufferPointer { ys in
                    layer.apply(xs.baseAddress!, rows: rows, into: ys.baseAddress!, activation: .gelu, pool: pool)
                }
            }
            XCTAssertEqual(y, single)
        }
    }
}
