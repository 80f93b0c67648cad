import SparseCompression
import SparseTestSupport
import XCTest
@testable import SparseModels

/// Compression parameters are checked against layer shapes, and a layer's estimated memory and
/// work against the load limits, before anything is allocated.
final class CompressionLimitsTests: XCTestCase {
    var digitsDirectory: String { repositoryRoot().appendingPathComponent("models/digits-mlp").path }

    override func tearDown() {
        CompressionLimits.shared = CompressionLimits()
    }

    func testParametersThatDoNotFitTheLayerAreRefused() {
        let bad: [(LayerCompression, String)] = [
            (.blast(blocks: 1, rank: 65536, parameterRatio: nil, iterations: 100), "rank 65536"),
            (.blast(blocks: 3, rank: 2, parameterRatio: nil, iterations: 100), "blocks 3"),
            (.blast(blocks: 2, rank: 2, parameterRatio: nil, iterations: 0), "iterations 0"),
            (.blast(blocks: 2, rank: nil, parameterRatio: .nan, iterations: 10), "parameterRatio"),
            (.pinned(.blast(blocks: 1, rank: 1 << 40, parameterRatio: nil, iterations: 10)), "rank"),
            (.nm(n: 4, m: 4), "4:4"),
            (.transposableNM(n: 1, m: 1024), "1:1024"),
            (.csr(density: 0), "density"),
            (.l1inf(groups: .columns, radius: .infinity, radiusRatio: nil), "radius"),
            (.l1inf(groups: .rows, radius: nil, radiusRatio: 2), "radiusRatio"),
        ]
        for (method, expected) in bad {
            XCTAssertThrowsError(try method.validate(outputFeatures: 64, inputFeatures: 32), "\(method)") { error in
                XCTAssertTrue("\(error)".contains(expected), "\(error)")
            }
        }
        let maximum = LayerCompression.maximumBlastRank(blocks: 2, outputFeatures: 64, inputFeatures: 32)
        XCTAssertEqual(maximum, 64 * 32 / (64 + 32 + 4))
        XCTAssertNoThrow(try LayerCompression.blast(blocks: 2, rank: maximum, parameterRatio: nil, iterations: 5).validate(outputFeatures: 64, inputFeatures: 32))
        XCTAssertNoThrow(try LayerCompression.nm(n: 2, m: 4).validate(outputFeatures: 64, inputFeatures: 32))
        XCTAssertThrowsError(try LayerCompression.blast(blocks: 1, rank: 65536, parameterRatio: nil, iterations: 1)
            .pack(weights: [Float](repeating: 1, count: 64 * 32), outputFeatures: 64, inputFeatures: 32, bias: nil))
    }

    func testEstimatesGrowWithTheLayerAndNeverOverflow() {
        let blast = LayerCompression.blast(blocks: 2, rank: 16, parameterRatio: nil, iterations: 100)
        XCTAssertGreaterThan(blast.estimatedPeakBytes(outputFeatures: 1024, inputFeatures: 1024),
                             blast.estimatedPeakBytes(outputFeatures: 64, inputFeatures: 64))
        XCTAssertEqual(LayerCompression.dense.estimatedPeakBytes(outputFeatures: Int.max / 2, inputFeatures: 4), .max)
        XCTAssertEqual(LayerCompression.blast(blocks: 1, rank: 1 << 30, parameterRatio: nil, iterations: 1)
            .estimatedPeakBytes(outputFeatures: 8, inputFeatures: 8), .max)
    }

    func testLoadRefusesHugeRankWithoutAllocating() throws {
        let plan = CompressionPlan(method: .blast(blocks: 1, rank: 65536, parameterRatio: nil, iterations: 100))
        XCTAssertThrowsError(try ModelLoader.load(directory: digitsDirectory, compression: plan, compressor: WeightCompressor())) { error in
            XCTAssertTrue("\(error)".contains("rank 65536"), "\(error)")
        }
    }

    func testMemoryAndTimeLimitsRefuseALoad() throws {
        let plan = CompressionPlan(method: .blast(blocks: 1, rank: 4, parameterRatio: nil, iterations: 50))
        XCTAssertNoThrow(try ModelLoader.load(directory: digitsDirectory, compression: plan, compressor: WeightCompressor()))
        CompressionLimits.shared = CompressionLimits(maxLayerBytes: 1024)
        XCTAssertThrowsError(try ModelLoader.load(directory: digitsDirectory, compression: plan, compressor: WeightCompressor())) { error in
            XCTAssertTrue("\(error)".contains("over the limit"), "\(error)")
        }
        CompressionLimits.shared = CompressionLimits(maxSeconds: 1e-9)
        XCTAssertThrowsError(try ModelLoader.load(directory: digitsDirectory, compression: plan, compressor: WeightCompressor())) { error in
            XCTAssertTrue("\(error)".contains("time budget"), "\(error)")
        }
    }
}
