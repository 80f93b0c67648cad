import Foundation
import XCTest
@testable import SparseKernels
import CSparseKernels

/// The training attention kernels (train_attention.c) against a float64 reference: the forward
/// pass (outputs and kept probabilities) and the backward pass against central differences, on
/// every instruction set, packed sequences of several lengths (incl. 1) with a strided q/k/v.
final class TrainingAttentionTests: XCTestCase {
    let heads = 2, d = 5
    var h: Int { heads * d }
    let spans = [TransformerKernels.Sequence(start: 0, length: 3), .init(start: 3, length: 1), .init(start: 4, length: 7)]
    var tokens: Int { 11 }

    /// Float64 attention of q/k/v side by side (row stride 3h) into [tokens × h].
    func reference(_ qkv: [Double]) -> [Double] {
        var out = [Double](repeating: 0, count: tokens * h)
        let scale = 1 / Double(d).squareRoot()
        for s in spans {
            for head in 0..<heads {
                for i in 0..<s.length {
                    let qi = (s.start + i) * 3 * h + head * d
                    let scores = (0..<s.length).map { j in (0..<d).reduce(0.0) { $0 + qkv[qi + $1] * qkv[(s.start + j) * 3 * h + h + head * d + $1] } * scale }
                    let mx = scores.max()!, e = scores.map { Foundation.exp($0 - mx) }, z = e.reduce(0, +)
                    for c in 0..<d {
                        out[(s.start + i) * h + head * d + c] = (0..<s.length).reduce(0.0) { $0 + e[$1] / z * qkv[(s.start + $1) * 3 * h + 2 * h + head * d + c] }
                    }
                }
            }
        }
        return out
    }

    func forward(_ qkv: [Float], isa: InstructionSet) -> (out: [Float], probabilities: [Float]) {
        var out = [Float](repeating: .nan, count: tokens * h)
        var p = [Float](repeating: .nan, count: TrainingKernels.attentionProbabilityOffsets(spans, heads: heads).total)
        qkv.withUnsafeBufferPointer { q in
            TrainingKernels.attentionForward(q: q.baseAddress!, k: q.baseAddress! + h, v: q.baseAddress! + 2 * h, stride: 3 * h, output: &out,
                                             outputStride: h, sequences: spans, heads: heads, headDimension: d, scale: 1 / Float(d).squareRoot(),
                                             probabilities: &p, isa: isa)
        }
        return (out, p)
    }

    func testForwardMatchesReferenceAndKeepsProbabilities() {
        var rng = TestRandom(seed: 31)
        let qkv = rng.array(tokens * 3 * h).map { 2 * $0 }
        let want = reference(qkv.map(Double.init))
        for isa in InstructionSet.available {
            let (out, p) = forward(qkv, isa: isa)
            for i in out.indices { XCTAssertEqual(Double(out[i]), want[i], accuracy: 1e-5, "\(isa) out[\(i)]") }
            // Each kept probability row sums to 1; a sequence of one token attends only to itself.
            let offsets = TrainingKernels.attentionProbabilityOffsets(spans, heads: heads).offsets
            for (s, offset) in zip(spans, offsets) {
                for row in 0..<(heads * s.length) {
                    let sum = p[offset + row * s.length ..< offset + (row + 1) * s.length].reduce(0, +)
                    XCTAssertEqual(sum, 1, accuracy: 1e-5, "\(isa)")
                }
            }
            XCTAssertEqual(p[offsets[1]], 1, accuracy: 1e-6)
        }
    }

    /// d(Σ g·out)/d(q, k, v) against central differences of the float64 reference.
    func testBackwardMatchesFiniteDifferences() {
        var rng = TestRandom(seed: 32)
        let qkv = rng.array(tokens * 3 * h).map { 2 * $0 }, g = rng.array(tokens * h)
        func loss(_ x: [Double]) -> Double { zip(reference(x), g).reduce(0.0) { $0 + $1.0 * Double($1.1) } }
        let base = qkv.map(Double.init)
        for isa in InstructionSet.available {
            let (_, p) = forward(qkv, isa: isa)
            var grad = [Float](repeating: .nan, count: tokens * 3 * h)
            qkv.withUnsafeBufferPointer { q in
                grad.withUnsafeMutableBufferPointer { dg in
                    TrainingKernels.attentionBackward(q: q.baseAddress!, k: q.baseAddress! + h, v: q.baseAddress! + 2 * h, stride: 3 * h,
                                                      outputGradient: g, outputStride: h, probabilities: p, sequences: spans, heads: heads,
                                                      headDimension: d, scale: 1 / Float(d).squareRoot(), dq: dg.baseAddress!,
                                                      dk: dg.baseAddress! + h, dv: dg.baseAddress! + 2 * h, gradientStride: 3 * h, isa: isa)
                }
            }
            for i in stride(from: 0, to: grad.count, by: 3) {
                var plus = base, minus = base
                plus[i] += 1e-5
                minus[i] -= 1e-5
                XCTAssertEqual(Double(grad[i]), (loss(plus) - loss(minus)) / 2e-5, accuracy: 2e-4, "\(isa) element \(i)")
            }
        }
    }

    func testInvalidArgumentsAreRefused() {
        var out = [Float](repeating: 0, count: 4), p = [Float](repeating: 0, count: 4), x = [Float](repeating: 0, count: 8)
        XCTAssertEqual(ss_train_attention_forward_isa(InstructionSet.current.cValue, x, x, x, 1, &out, 4, 2, 2, 2, 1, &p), SS_ERR_ARGUMENT)
        XCTAssertEqual(ss_train_attention_forward_isa(InstructionSet.current.cValue, x, x, x, 4, &out, 4, 0, 2, 2, 1, &p), SS_ERR_ARGUMENT)
    }
}
