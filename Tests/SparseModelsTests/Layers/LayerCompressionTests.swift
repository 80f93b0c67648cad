import XCTest
@testable import SparseModels

/// Methods as reports and artifacts name them: method names, pinning and quantization peeled off,
/// recorded parameters (BLAST's rank resolved), the rank formula and the relative error.
final class LayerCompressionTests: XCTestCase {
    func testUnpinnedPeelsPinningAndQuantization() {
        let nm = LayerCompression.nm(n: 2, m: 4)
        XCTAssertTrue(nm.unpinned == (nm, false))
        XCTAssertTrue(LayerCompression.pinned(nm).unpinned == (nm, true))
        XCTAssertTrue(LayerCompression.pinned(.quantized(nm, .bf16)).unpinned == (nm, true))
        XCTAssertTrue(LayerCompression.quantized(.pinned(nm), .bf16).unpinned == (nm, true))
        XCTAssertEqual(LayerCompression.pinned(.quantized(nm, .int8Dynamic)).quantization, .int8Dynamic)
        XCTAssertNil(LayerCompression.pinned(nm).quantization)
    }

    func testMethodNames() {
        let cases: [(LayerCompression, String)] = [
            (.dense, "dense"), (.nm(n: 1, m: 4), "nm"), (.transposableNM(n: 2, m: 4), "nm"), (.csr(density: 0.1), "csr"),
            (.blast(blocks: 2, rank: nil, parameterRatio: 0.3, iterations: 5), "blast"),
            (.l1inf(groups: .rows, radius: 1, radiusRatio: nil), "l1inf"), (.pinned(.csr(density: 0.2)), "csr"),
            (.quantized(.dense, .bf16), "dense"),
        ]
        for (method, name) in cases { XCTAssertEqual(method.methodName, name, "\(method)") }
    }

    func testRecordedParameters() {
        XCTAssertEqual(LayerCompression.dense.parameters(outputFeatures: 4, inputFeatures: 4), [:])
        XCTAssertEqual(LayerCompression.transposableNM(n: 2, m: 4).parameters(outputFeatures: 8, inputFeatures: 8),
                       ["n": .int(2), "m": .int(4), "mask": .string("transposable")])
        XCTAssertEqual(LayerCompression.pinned(.nm(n: 2, m: 4)).parameters(outputFeatures: 8, inputFeatures: 8)["mask"], .string("magnitude"))
        // 0.3 · 384 · 1536 / (384 + 1536 + 16) = 91.4 → rank 91
        let blast = LayerCompression.blast(blocks: 4, rank: nil, parameterRatio: 0.3, iterations: 20)
        XCTAssertEqual(blast.parameters(outputFeatures: 384, inputFeatures: 1536),
                       ["blocks": .int(4), "iterations": .int(20), "rank": .int(91), "parameterRatio": .double(0.3)])
        let quantized = LayerCompression.quantized(.nm(n: 2, m: 4), .int8Dynamic).parameters(outputFeatures: 8, inputFeatures: 8)
        XCTAssertEqual(quantized["weights"], .string("int8"))
        XCTAssertEqual(quantized["n"], .int(2))
        XCTAssertEqual(LayerCompression.l1inf(groups: .columns, radius: nil, radiusRatio: 0.25).parameters(outputFeatures: 2, inputFeatures: 2),
                       ["groups": .string("columns"), "radiusRatio": .double(0.25)])
    }

    func testBlastRankAndRelativeError() {
        XCTAssertEqual(LayerCompression.blastRank(2, nil, 100, 100), 24, "½ · 10000 / 204")
        XCTAssertEqual(LayerCompression.blastRank(16, 0.01, 8, 8), 1, "never below 1")
        XCTAssertEqual(LayerCompression.relativeError([3, 4], [3, 4]), 0)
        XCTAssertEqual(LayerCompression.relativeError([3, 4], [0, 0]), 1)
        XCTAssertEqual(LayerCompression.relativeError([3, 4], [3, 0]), 0.8, accuracy: 1e-12)
        XCTAssertEqual(LayerCompression.relativeError([0, 0], [1, 1]), 0, "a zero reference reports 0")
    }

    func testDescriptions() {
        XCTAssertEqual("\(LayerCompression.pinned(.nm(n: 2, m: 4)))", "nm 2:4 (pinned)")
        XCTAssertEqual("\(LayerCompression.blast(blocks: 4, rank: 8, parameterRatio: nil, iterations: 1))", "blast b=4 r=8")
        XCTAssertEqual("\(LayerCompression.l1inf(groups: .rows, radius: nil, radiusRatio: nil))", "l1inf rows ratio=0.5")
        XCTAssertEqual("\(LayerCompression.quantized(.dense, .int8(.channel)))", "dense int8 channel")
    }
}
