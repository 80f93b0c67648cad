import SparseKernels
import SparseModels
import SparseTestSupport
import XCTest
@testable import SparseCompression

/// Sentence embeddings from packed token states (mean or [CLS], optionally unit length) and the
/// gradient of the end-to-end loss against central differences.
final class SentencePoolingTests: XCTestCase {
    private func states(_ random: inout SeededRandom, lengths: [Int], width: Int) -> PackedStates {
        PackedStates(spans: PackedStates.spans(lengths: lengths), width: width, values: random.array(lengths.reduce(0, +) * width))
    }

    func testMeanAndCLSPooling() {
        let s = PackedStates(spans: PackedStates.spans(lengths: [2, 1]), width: 2, values: [1, 2, 3, 6, -4, 0])
        XCTAssertEqual(s.tokens, 3)
        XCTAssertEqual(SentencePooling(pooling: .mean, normalize: false).embed(s).embeddings, [2, 4, -4, 0])
        XCTAssertEqual(SentencePooling(pooling: .cls, normalize: false).embed(s).embeddings, [1, 2, -4, 0])
        let (unit, norms) = SentencePooling(pooling: .mean, normalize: true).embed(s)
        XCTAssertEqual(norms[0], Float(20).squareRoot(), accuracy: 1e-6)
        XCTAssertEqual(norms[1], 4)
        XCTAssertEqual(unit[0], 2 / Float(20).squareRoot(), accuracy: 1e-6)
        XCTAssertEqual(Array(unit[2...]), [-1, 0])
    }

    func testLossGradientMatchesFiniteDifferences() {
        var random = SeededRandom(seed: 91)
        for (pooling, normalize) in [(BertEncoderOptions.Pooling.mean, true), (.mean, false), (.cls, true)] {
            let pool = SentencePooling(pooling: pooling, normalize: normalize)
            var s = states(&random, lengths: [3, 1, 2], width: 4)
            let target = random.array(3 * 4)
            let (loss, gradient) = pool.loss(s, target: target)
            XCTAssertGreaterThan(loss, 0)
            let h: Float = 1e-2
            for i in stride(from: 0, to: s.values.count, by: 3) {
                let v = s.values[i]
                s.values[i] = v + h
                let up = pool.loss(s, target: target).loss
                s.values[i] = v - h
                let down = pool.loss(s, target: target).loss
                s.values[i] = v
                XCTAssertEqual(Double(gradient[i]), (up - down) / Double(2 * h), accuracy: 2e-3, "\(pooling) normalize \(normalize) [\(i)]")
            }
        }
    }
}
