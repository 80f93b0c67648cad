import Foundation
import XCTest
import SparseKernels

final class TransformerKernelsTests: XCTestCase {
    /// Deterministic values in [-scale, scale).
    func randomValues(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { _ in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale
        }
    }

    func testAddLayerNormMatchesDoubleReference() {
        for isa in InstructionSet.available {
            for columns in [1, 5, 16, 37, 384, 1000] {
                for (withResidual, withAffine) in [(true, true), (false, true), (true, false)] {
                    let rows = 7
                    let x0 = randomValues(rows * columns, seed: UInt64(columns), scale: 3).map { $0 + 5 }  // offset mean
                    let res = randomValues(rows * columns, seed: UInt64(columns) + 1)
                    let gamma = randomValues(columns, seed: 99).map { $0 + 1 }
                    let beta = randomValues(columns, seed: 98)
                    var x = x0
                    x.withUnsafeMutableBufferPointer { xb in
                        res.withUnsafeBufferPointer { rb in
                            gamma.withUnsafeBufferPointer { gb in
                                beta.withUnsafeBufferPointer { bb in
                                    TransformerKernels.addLayerNorm(xb.baseAddress!, rows: rows, columns: columns,
                                                                    residual: withResidual ? rb.baseAddress : nil,
                                                                    gamma: withAffine ? gb.baseAddress : nil,
                                                                    beta: withAffine ? bb.baseAddress : nil,
                                                                    epsilon: 1e-12, isa: isa)
                                }
                            }
                        }
                    }
                    var worst = 0.0
                    for r in 0..<rows {
                        let v = (0..<columns).map { Double(x0[r * columns + $0]) + (withResidual ? Double(res[r * columns + $0]) : 0) }
                        let mean = v.reduce(0, +) / Double(columns)
                        let variance = v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(columns)
                        for c in 0..<columns {
                            var want = (v[c] - mean) / (variance + 1e-12).squareRoot()
                            if withAffine { want = want * Double(gamma[c]) + Double(beta[c]) }
                            worst = max(worst, abs(Double(x[r * columns + c]) - want))
                        }
                    }
                    XCTAssertLessThan(worst, 2e-5, "\(isa) columns \(columns) residual \(withResidual) affine \(withAffine)")
                }
            }
        }
    }

    func testLayerNormOfConstantRowIsBeta() {
        for isa in InstructionSet.available {
            var x = [Float](repeating: 4.25, count: 40)
            let beta = (0..<40).map { Float($0) }
            x.withUnsafeMutableBufferPointer { xb in
                beta.withUnsafeBufferPointer { bb in
                    TransformerKernels.addLayerNorm(xb.baseAddress!, rows: 1, columns: 40, gamma: nil, beta: bb.baseAddress,
                                                    epsilon: 1e-12, isa: isa)
                }
            }
            XCTAssertEqual(x, beta, "\(isa)")
        }
    }

    /// Naive float64 attention of one sequence (rows start..<start+length) for every head.
    func referenceAttention(q: [Float], k: [Float], v: [Float], stride: Int, start: Int, length: Int,
                            heads: Int, d: Int, scale: Double) -> [[Double]] {
        var out = [[Double]](repeating: [Double](repeating: 0, count: heads * d), count: length)
        for h in 0..<heads {
            for i in 0..<length {
                var scores = (0..<length).map { j -> Double in
                    var dot = 0.0
                    for t in 0..<d { dot += Double(q[(start + i) * stride + h * d + t]) * Double(k[(start + j) * stride + h * d + t]) }
                    return dot * scale
                }
                let m = scores.max()!
                scores = scores.map { Foundation.exp($0 - m) }
                let sum = scores.reduce(0, +)
                for t in 0..<d {
                    var acc = 0.0
                    for j in 0..<length { acc += scores[j] / sum * Double(v[(start + j) * stride + h * d + t]) }
                    out[i][h * d + t] = acc
                }
            }
        }
        return out
    }

    /// Runs the attention kernel on arrays; output rows start filled with `fill`.
    func attention(q: [Float], k: [Float], v: [Float], stride: Int, sequences: [TransformerKernels.Sequence], heads: Int, d: Int,
                   scale: Float, exp: PWLActivation? = nil, pool: KernelPool? = nil, isa: InstructionSet, fill: Float = 0) -> [Float] {
        var out = [Float](repeating: fill, count: q.count)
        q.withUnsafeBufferPointer { qb in
            k.withUnsafeBufferPointer { kb in
                v.withUnsafeBufferPointer { vb in
                    out.withUnsafeMutableBufferPointer { ob in
                        TransformerKernels.attention(query: qb.baseAddress!, queryStride: stride, key: kb.baseAddress!, keyStride: stride,
                                                     value: vb.baseAddress!, valueStride: stride, output: ob.baseAddress!, outputStride: stride,
                                                     sequences: sequences, heads: heads, headDimension: d, scale: scale, exp: exp,
                                                     pool: pool, isa: isa)
                    }
                }
            }
        }
        return out
    }

    func testAttentionMatchesReferenceOnPaddedBatch() {
        let pool = KernelPool(threads: 2)
        for isa in InstructionSet.available {
            for (heads, d) in [(3, 32), (2, 20), (4, 8), (1, 1)] {
                let width = heads * d
                let stride = width + 3  // rows wider than the heads, like a fused QKV buffer
                // Padded layout: sequences start at multiples of 80, lengths vary; padding rows hold a sentinel.
                let lengths = [1, 17, 70, 33, 0, 64, 65]
                let sequences = lengths.enumerated().map { TransformerKernels.Sequence(start: $0.offset * 80, length: $0.element) }
                let rows = lengths.count * 80
                let q = randomValues(rows * stride, seed: 1, scale: 2), k = randomValues(rows * stride, seed: 2, scale: 2)
                let v = randomValues(rows * stride, seed: 3)
                let scale = 1 / Float(d).squareRoot()
                for usePool in [false, true] {
                    let out = attention(q: q, k: k, v: v, stride: stride, sequences: sequences, heads: heads, d: d, scale: scale,
                                        pool: usePool ? pool : nil, isa: isa, fill: 12345)
                    var worst = 0.0
                    for seq in sequences {
                        let want = referenceAttention(q: q, k: k, v: v, stride: stride, start: seq.start, length: seq.length,
                                                      heads: heads, d: d, scale: Double(scale))
                        for i in 0..<seq.length {
                            for c in 0..<width { worst = max(worst, abs(Double(out[(seq.start + i) * stride + c]) - want[i][c])) }
                            XCTAssertEqual(out[(seq.start + i) * stride + width ..< (seq.start + i + 1) * stride].allSatisfy { $0 == 12345 }, true,
                                           "columns past the heads are not written")
                        }
                        for row in (seq.start + seq.length)..<(seq.start + 80) {
                            XCTAssertTrue(out[row * stride ..< (row + 1) * stride].allSatisfy { $0 == 12345 },
                                          "\(isa) padding row \(row) was written")
                        }
                    }
                    XCTAssertLessThan(worst, 2e-5, "\(isa) heads \(heads) d \(d) pool \(usePool)")
                }
            }
        }
    }

    /// Huge scores must not overflow the softmax: the result is the value row of the best key.
    func testAttentionIsStableForLargeScores() {
        for isa in InstructionSet.available {
            let d = 16, length = 5
            var q = [Float](repeating: 0, count: length * d), k = q
            let v = randomValues(length * d, seed: 5)
            for i in 0..<length { q[i * d] = 1000 }
            for j in 0..<length { k[j * d] = Float(j) * 100 }  // key 4 wins by 100·1000 in every row
            let out = attention(q: q, k: k, v: v, stride: d, sequences: [.init(start: 0, length: length)], heads: 1, d: d,
                                scale: 1, isa: isa)
            for i in 0..<length {
                XCTAssertEqual(Array(out[i * d ..< (i + 1) * d]), Array(v[4 * d ..< 5 * d]), "\(isa) row \(i)")
            }
        }
    }

    /// With a piecewise-linear exp the attention stays within the table's error of the exact one:
    /// softmax weights are off by at most the table's relative error, so each output moves by at
    /// most ≈ 2 × that error × max |v|. Huge score gaps clamp to the table's lo (weights ≈ 0, never
    /// negative), so the result is still the best key's value row.
    func testAttentionWithPiecewiseLinearExp() {
        let table = PWLActivation(function: { Foundation.exp($0) }, name: "exp", segments: 64, lo: -12, hi: 0)
        let relative = table.error.maxAbsolute  // exp ≤ 1 on the range: absolute error bounds the relative one at 0
        XCTAssertLessThan(relative, 0.01)
        let pool = KernelPool(threads: 2)
        for isa in InstructionSet.available {
            let heads = 3, d = 16, stride = heads * d
            let lengths = [1, 9, 40, 128]
            var start = 0
            let sequences = lengths.map { length -> TransformerKernels.Sequence in
                defer { start += length }
                return .init(start: start, length: length)
            }
            let q = randomValues(start * stride, seed: 11, scale: 3), k = randomValues(start * stride, seed: 12, scale: 3)
            let v = randomValues(start * stride, seed: 13)
            let scale = 1 / Float(d).squareRoot()
            let exact = attention(q: q, k: k, v: v, stride: stride, sequences: sequences, heads: heads, d: d, scale: scale, isa: isa)
            let pwl = attention(q: q, k: k, v: v, stride: stride, sequences: sequences, heads: heads, d: d, scale: scale,
                                exp: table, pool: pool, isa: isa)
            let worst = zip(exact, pwl).map { abs(Double($0) - Double($1)) }.max()!
            XCTAssertGreaterThan(worst, 0, "\(isa): the table is really used")
            XCTAssertLessThan(worst, 2.5 * table.error.maxRelative * Double(v.map(abs).max()!), "\(isa)")

            // Score gaps of 10⁵: every weight but the best key's is exp(lo) ≈ 6e-6 or less, never negative.
            let length = 5
            var qs = [Float](repeating: 0, count: length * d), ks = qs
            for i in 0..<length { qs[i * d] = 1000 }
            for j in 0..<length { ks[j * d] = Float(j) * 100 }
            let vs = randomValues(length * d, seed: 5)
            let out = attention(q: qs, k: ks, v: vs, stride: d, sequences: [.init(start: 0, length: length)], heads: 1, d: d,
                                scale: 1, exp: table, isa: isa)
            for i in 0..<length {
                for c in 0..<d { XCTAssertEqual(out[i * d + c], vs[4 * d + c], accuracy: 1e-4, "\(isa) row \(i)") }
            }
        }
    }

    func testMeanPool() {
        let rows = 3, columns = 4
        let x: [Float] = [1, 2, 3, 4, 3, 2, 1, 0, 2, 2, 2, 2, 99, 99, 99, 99]  // last row not pooled
        var plain = [Float](repeating: 0, count: columns), unit = plain
        x.withUnsafeBufferPointer { xb in
            TransformerKernels.meanPool(xb.baseAddress!, rows: rows, columns: columns, normalize: false, into: &plain)
            TransformerKernels.meanPool(xb.baseAddress!, rows: rows, columns: columns, normalize: true, into: &unit)
        }
        XCTAssertEqual(plain, [2, 2, 2, 2])
        XCTAssertEqual(unit, [0.5, 0.5, 0.5, 0.5])
        var zero = [Float](repeating: 1, count: 2)
        [Float](repeating: 0, count: 4).withUnsafeBufferPointer { xb in
            TransformerKernels.meanPool(xb.baseAddress!, rows: 2, columns: 2, normalize: true, into: &zero)
        }
        XCTAssertEqual(zero, [0, 0], "a zero mean stays zero instead of dividing by 0")
    }
}
