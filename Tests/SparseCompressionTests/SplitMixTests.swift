import Foundation
import XCTest
@testable import SparseCompression

/// The fits' random source: SplitMix64's reference sequence, uniforms strictly inside (0, 1), and
/// standard normal moments.
final class SplitMixTests: XCTestCase {
    func testReferenceSequence() {
        var zero = SplitMix(seed: 0)
        XCTAssertEqual([zero.next(), zero.next(), zero.next()], [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F])
        var answer = SplitMix(seed: 42)
        XCTAssertEqual(answer.next(), 0xBDD7_3226_2FEB_6E95)
        var a = SplitMix(seed: 7), b = SplitMix(seed: 7)
        XCTAssertEqual((0..<5).map { _ in a.normal() }, (0..<5).map { _ in b.normal() }, "same seed, same samples")
    }

    func testUniformAndNormalDistributions() {
        var rng = SplitMix(seed: 2024)
        let uniforms = (0..<20_000).map { _ in rng.uniform() }
        XCTAssertTrue(uniforms.allSatisfy { $0 > 0 && $0 < 1 }, "never 0 (log(0) in Box–Muller) nor 1")
        XCTAssertEqual(uniforms.reduce(0, +) / 20_000, 0.5, accuracy: 0.01)
        let normals = (0..<20_000).map { _ in rng.normal() }
        let mean = normals.reduce(0, +) / 20_000
        let variance = normals.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 20_000
        XCTAssertEqual(mean, 0, accuracy: 0.03)
        XCTAssertEqual(variance, 1, accuracy: 0.05)
        XCTAssertTrue(normals.allSatisfy(\.isFinite))
        XCTAssertEqual(Double(normals.filter { abs($0) < 1 }.count) / 20_000, 0.6827, accuracy: 0.015, "68 % within one sigma")
    }
}
