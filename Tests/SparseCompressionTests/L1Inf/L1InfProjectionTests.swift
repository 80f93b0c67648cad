import CSparseKernels
import Foundation
import XCTest
import SparseKernels
import SparseModels
@testable import SparseCompression

final class L1InfProjectionTests: XCTestCase {
    func testL1BallProjection() {
        XCTAssertEqual(L1InfProjection.projectOntoL1Ball([0.1, 0.2], radius: 1), [0.1, 0.2], "inside: unchanged")
        let p = L1InfProjection.projectOntoL1Ball([3, 1, 0.5, 2], radius: 2)
        XCTAssertEqual(p.reduce(0, +), 2, accuracy: 1e-12)
        XCTAssertEqual(p, [1.5, 0, 0, 0.5].map { $0 }, "threshold θ = 1.5")
        XCTAssertEqual(L1InfProjection.projectOntoL1Ball([1, 2], radius: 0), [0, 0])
    }

    /// Condat's threshold (C) equals the sort-based one on random, tied and sparse vectors.
    func testCondatThresholdMatchesSortBased() {
        var rng = SplitMix(seed: 12)
        for trial in 0..<300 {
            let n = 1 + trial % 97
            let v: [Float] = (0..<n).map { k in
                switch trial % 4 {
                case 0: return Float(abs(rng.normal()))
                case 1: return Float(Int(abs(rng.normal()) * 3)) / 2  // ties and zeros
                case 2: return k % 5 == 0 ? Float(abs(rng.normal()) * 100) : Float(rng.uniform())
                default: return Float(rng.uniform())
                }
            }
            let total = v.reduce(0.0) { $0 + Double($1) }
            for ratio in [0.0, 0.01, 0.3, 0.9, 1.0, 1.5] {
                let radius = ratio * total
                var scratch = [Double](repeating: 0, count: 2 * n)
                let theta = ss_l1_ball_threshold(v, n, radius, &scratch)
                let got = v.map { max(0, Double($0) - theta) }
                let want = L1InfProjection.projectOntoL1Ball(v.map(Double.init), radius: radius)
                for (a, b) in zip(got, want) { XCTAssertEqual(a, b, accuracy: 1e-9 * max(1, total), "trial \(trial) ratio \(ratio)") }
            }
        }
    }

    func randomMatrix(_ rows: Int, _ columns: Int, seed: UInt64) -> [Float] {
        // Gaussian with row scales e^N(0,1), as in the design notes' benchmark matrix.
        var rng = SplitMix(seed: seed)
        let scales = (0..<rows).map { _ in exp(rng.normal()) }
        return (0..<(rows * columns)).map { Float(rng.normal() * scales[$0 / columns]) }
    }

    func l1inf(_ w: [Float], _ rows: Int, _ columns: Int, _ groups: L1InfProjection.Groups) -> Double {
        var maxima = [Double](repeating: 0, count: groups == .rows ? rows : columns)
        for r in 0..<rows { for c in 0..<columns {
            let g = groups == .rows ? r : c
            maxima[g] = max(maxima[g], Double(abs(w[r * columns + c])))
        } }
        return maxima.reduce(0, +)
    }

    /// Bi-level: ‖X‖₁,∞ = η to 1e-6 relative when ‖Y‖₁,∞ > η (X = Y otherwise); the identity
    /// ‖Y − X‖₁,∞ + ‖X‖₁,∞ = ‖Y‖₁,∞; |X| ≤ |Y| with the same signs; every instruction set gives the
    /// same bits.
    func testBilevelRadiusAndIdentity() {
        for (rows, columns) in [(37, 203), (256, 64), (3, 1000)] {
            let y = randomMatrix(rows, columns, seed: UInt64(rows * columns))
            for groups in [L1InfProjection.Groups.rows, .columns] {
                let norm = l1inf(y, rows, columns, groups)
                XCTAssertEqual(L1InfProjection.norm(y, rows: rows, columns: columns, groups: groups), norm, accuracy: 1e-6 * norm)
                for ratio in [0.01, 0.05, 0.2, 0.7, 0.999, 1.2] {
                    let eta = ratio * norm
                    let x = L1InfProjection.project(y, rows: rows, columns: columns, groups: groups, radius: eta, radiusRatio: nil)
                    let label = "\(rows)x\(columns) \(groups) ρ=\(ratio)"
                    if ratio >= 1 {
                        XCTAssertEqual(x, y, label)
                        continue
                    }
                    XCTAssertEqual(l1inf(x, rows, columns, groups), eta, accuracy: 1e-6 * eta, label)
                    let residual = zip(y, x).map { $0 - $1 }
                    XCTAssertEqual(l1inf(residual, rows, columns, groups) + l1inf(x, rows, columns, groups), norm, accuracy: 1e-6 * norm, label)
                    for (a, b) in zip(x, y) { XCTAssertTrue(abs(a) <= abs(b) && (a == 0 || a.sign == b.sign), label) }
                    for isa in InstructionSet.available {
                        XCTAssertEqual(L1InfProjection.project(y, rows: rows, columns: columns, groups: groups, radius: eta,
                                                               radiusRatio: nil, pool: KernelPool(threads: 2, minimumSplitSeconds: 0), isa: isa), x, "\(label) \(isa)")
                    }
                }
            }
        }
    }

    /// Non-temporal stores (used for outputs beyond the caches) write the same values, whatever
    /// the destination's alignment (the first elements up to a 64-byte boundary use plain stores).
    func testStreamingStoresWriteTheSameValues() {
        let rows = 13, columns = 301
        let y = randomMatrix(rows, columns, seed: 3)
        for groups in [L1InfProjection.Groups.rows, .columns] {
            for isa in InstructionSet.available {
                for offset in [0, 1, 5, 15] {
                    var plain = [Float](repeating: 0, count: rows * columns + 16), streamed = plain
                    y.withUnsafeBufferPointer { yp in
                        plain.withUnsafeMutableBufferPointer { xp in
                            _ = L1InfProjection.project(yp.baseAddress!, rows: rows, columns: columns, groups: groups, into: xp.baseAddress! + offset,
                                                        radius: nil, radiusRatio: 0.3, pool: nil, isa: isa, streaming: false)
                        }
                        streamed.withUnsafeMutableBufferPointer { xp in
                            _ = L1InfProjection.project(yp.baseAddress!, rows: rows, columns: columns, groups: groups, into: xp.baseAddress! + offset,
                                                        radius: nil, radiusRatio: 0.3, pool: KernelPool(threads: 2, minimumSplitSeconds: 0),
                                                        isa: isa, streaming: true)
                        }
                    }
                    XCTAssertEqual(plain, streamed, "\(groups) \(isa) offset \(offset)")
                }
            }
        }
    }

    /// The exact projection against an independent oracle (bisection on θ, each μ_g(θ) by
    /// bisection): same bounds; it is feasible with ‖X‖₁,∞ = η, at least as close to Y as the
    /// bi-level one, which zeroes at least as many groups.
    func testExactProjectionAgainstBisectionOracle() {
        let rows = 24, columns = 40
        let y = randomMatrix(rows, columns, seed: 77)
        for groups in [L1InfProjection.Groups.rows, .columns] {
            let count = groups == .rows ? rows : columns, length = groups == .rows ? columns : rows
            let values = (0..<count).map { g in (0..<length).map { k in Double(abs(groups == .rows ? y[g * columns + k] : y[k * columns + g])) } }
            func mu(_ g: Int, _ theta: Double) -> Double {
                // Σ_k (|y| − μ)₊ = θ, μ ≥ 0
                let v = values[g]
                var total = 0.0
                for a in v { total += a }
                guard total > theta else { return 0 }
                var lo = 0.0, hi = v.max()!
                for _ in 0..<60 {
                    let mid = (lo + hi) / 2
                    var excess = 0.0
                    for a in v where a > mid { excess += a - mid }
                    if excess > theta { lo = mid } else { hi = mid }
                }
                return (lo + hi) / 2
            }
            let norm = l1inf(y, rows, columns, groups)
            for ratio in [0.05, 0.3, 0.8] {
                let eta = ratio * norm
                var lo = 0.0, hi = values.map { $0.reduce(0, +) }.max()!
                for _ in 0..<60 {
                    let mid = (lo + hi) / 2
                    var sum = 0.0
                    for g in 0..<count { sum += mu(g, mid) }
                    if sum > eta { lo = mid } else { hi = mid }
                }
                let oracle = (0..<count).map { mu($0, (lo + hi) / 2) }
                var exact = [Float](repeating: 0, count: y.count), bilevel = exact
                let bounds = y.withUnsafeBufferPointer { yp in exact.withUnsafeMutableBufferPointer { xp in
                    L1InfProjection.projectExact(yp.baseAddress!, rows: rows, columns: columns, groups: groups, into: xp.baseAddress!,
                                                 radius: eta, radiusRatio: nil)
                } }
                y.withUnsafeBufferPointer { yp in bilevel.withUnsafeMutableBufferPointer { xp in
                    _ = L1InfProjection.project(yp.baseAddress!, rows: rows, columns: columns, groups: groups, into: xp.baseAddress!,
                                                radius: eta, radiusRatio: nil)
                } }
                let label = "\(groups) ρ=\(ratio)"
                for (a, b) in zip(bounds, oracle) { XCTAssertEqual(Double(a), b, accuracy: 1e-5 * max(1, b), label) }
                XCTAssertEqual(l1inf(exact, rows, columns, groups), eta, accuracy: 1e-5 * eta, label)
                func distance(_ x: [Float]) -> Double { zip(x, y).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) } }
                XCTAssertLessThanOrEqual(distance(exact), distance(bilevel) * (1 + 1e-6), label)
                func zeroGroups(_ b: [Float]) -> Int { b.filter { $0 == 0 }.count }
                let bilevelBounds = y.withUnsafeBufferPointer { yp in bilevel.withUnsafeMutableBufferPointer { xp in
                    L1InfProjection.project(yp.baseAddress!, rows: rows, columns: columns, groups: groups, into: xp.baseAddress!,
                                            radius: eta, radiusRatio: nil)
                } }
                XCTAssertGreaterThanOrEqual(zeroGroups(bilevelBounds), zeroGroups(bounds), label)
            }
        }
    }

    /// The compacted layer equals the dense layer on the projected weights, dropped neurons
    /// included (they output activation(bias)).
    func testCompactedLayerMatchesDenseOnProjectedWeights() throws {
        var rng = SplitMix(seed: 8)
        let outs = 24, ins = 40, rows = 7
        let w = (0..<(outs * ins)).map { _ in Float(rng.normal()) }
        let bias = (0..<outs).map { _ in Float(rng.normal()) }
        let x = (0..<(rows * ins)).map { _ in Float(rng.normal()) }
        for groups in [L1InfProjection.Groups.columns, .rows] {
            let method = LayerCompression.l1inf(groups: groups, radius: nil, radiusRatio: 0.1)
            let (op, error) = try method.makeOperator(weights: w, outputFeatures: outs, inputFeatures: ins, bias: bias)
            XCTAssertTrue(op.storage.hasPrefix("l1inf"), op.storage)
            XCTAssertLessThan(op.parameterCount, outs * ins + outs)
            XCTAssertGreaterThan(error, 0)
            let projected = L1InfProjection.project(w, rows: outs, columns: ins, groups: groups, radius: nil, radiusRatio: 0.1)
            let reference = DenseWeights(weights: projected, outputFeatures: outs, inputFeatures: ins, bias: bias)
            for act in [Activation.none, .gelu] {
                let got = op.apply(Matrix(rows: rows, columns: ins, values: x), activation: act).values
                let want = reference.apply(Matrix(rows: rows, columns: ins, values: x), activation: act).values
                for (a, b) in zip(got, want) { XCTAssertEqual(a, b, accuracy: 1e-6 * max(1, abs(b))) }
            }
        }
    }
}
