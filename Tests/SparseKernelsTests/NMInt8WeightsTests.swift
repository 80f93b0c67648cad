import CSparseKernels
import XCTest
@testable import SparseKernels

/// 2:4 int8 (dynamic activations): every level against the fp64 reference of the dequantised
/// pruned weight and quantized activations; the same int32 sums as the dense int8 kernel on the
/// same weights; extremes; refusal of over-full groups.
final class NMInt8WeightsTests: XCTestCase {
    func testEveryLevelMatchesDequantisedReference() throws {
        var random = TestRandom(seed: 101)
        for (k, n) in [(5, 3), (37, 17), (64, 33), (130, 47)] {
            let op = try NMInt8Weights(magnitudePruning: random.array(n * k), outputFeatures: n, inputFeatures: k, bias: random.array(n))
            let w = op.denseWeights()
            for g in 0..<(n * ((k + 3) / 4)) {
                let row = g / ((k + 3) / 4), c0 = (g % ((k + 3) / 4)) * 4
                XCTAssertLessThanOrEqual((c0..<min(k, c0 + 4)).filter { w[row * k + $0] != 0 }.count, 2)
            }
            for level in QuantizedInstructionSet.available {
                let pinned = PinnedLevel(op) { x, rows, ldx, y, ldy, act, pool in
                    op.apply(x, rows: rows, inputStride: ldx, into: y, outputStride: ldy, activation: act, pool: pool, level: level)
                }
                OperatorChecker.checkTransformed(pinned, dense: w, bias: op.bias, rowCounts: [1, 2, 3, 9, 17, 33], random: &random,
                                                 transform: Int8DynamicWeightsTests.dequantizedRows, "2:4 int8 k=\(k) n=\(n) \(level)")
            }
        }
    }

    /// Same weights through the dense int8 kernel (`denseInt8Form`, what a model runs where it
    /// times faster): identical outputs (same int32 sums), including -128 weights, a K tail (1029)
    /// and whole 64-byte blocks (1024: AMX tiles from 16 rows where the CPU has them), a bias and GELU.
    func testEqualsDenseInt8OnTheSameWeights() throws {
        var random = TestRandom(seed: 102)
        for k in [1029, 1024] {
            let n = 40
            var values = [Int8](repeating: 0, count: n * k)
            for r in 0..<n { for c in 0..<k where (c + r) % 4 < 2 { values[r * k + c] = (r + c) % 5 == 0 ? -128 : Int8(c % 255 - 127) } }
            let scales = (0..<n).map { Float($0 + 1) / 64 }
            let sparse = try NMInt8Weights(values: values, scales: scales, outputFeatures: n, inputFeatures: k, bias: random.array(n))
            let dense = try sparse.denseInt8Form()
            for rows in [3, 17, 33] {  // row blocks of 1 to 8 rows, chunks of 16
                let x = Matrix(rows: rows, columns: k, values: random.array(rows * k))
                for level in QuantizedInstructionSet.available {
                    XCTAssertEqual(OperatorChecker.applied(sparse, x, level: level, activation: .gelu),
                                   OperatorChecker.applied(dense, x, level: level, activation: .gelu), "k=\(k) rows=\(rows) \(level)")
                }
            }
        }
    }

    /// Batches of 2 or more rows (the batched `vpermb` kernel on the AVX-512 dot level, the GEMV
    /// elsewhere) on odd shapes: K not a multiple of 64, N not a multiple of 16, token tiles and
    /// chunk tails. Every level against the fp64 reference, and row for row identical to one-row calls.
    func testBatchedRowsMatchReferenceAndOneRowCalls() throws {
        var random = TestRandom(seed: 103)
        for (k, n) in [(70, 21), (200, 37), (64, 16), (520, 50)] {
            let op = try NMInt8Weights(magnitudePruning: random.array(n * k), outputFeatures: n, inputFeatures: k, bias: random.array(n))
            for level in QuantizedInstructionSet.available {
                OperatorChecker.checkTransformed(Self.pinned(op, level), dense: op.denseWeights(), bias: op.bias,
                                                 rowCounts: [2, 3, 5, 17, 33, 65], random: &random,
                                                 transform: Int8DynamicWeightsTests.dequantizedRows, "2:4 int8 k=\(k) n=\(n) \(level)")
                for (index, rows) in [2, 3, 5, 13, 33, 65].enumerated() {
                    let x = random.array(rows * k), activation = Activation.allCases[index % Activation.allCases.count]
                    let batched = Self.run(op, x, rows: rows, activation: activation, level: level)
                    let single = (0..<rows).flatMap { r in
                        Self.run(op, Array(x[(r * k)..<(r * k + k)]), rows: 1, activation: activation, level: level)
                    }
                    XCTAssertEqual(batched, single, "k=\(k) n=\(n) rows=\(rows) \(activation) \(level)")
                }
            }
        }
    }

    /// A call split by token rows (each part quantizes its own rows) or, on the dot level, by
    /// output panels over rows quantized once per chunk and shared: bit for bit the unsplit result
    /// on every level, over three chunks (K = 4100: 56 rows per chunk; 113 rows leave a last
    /// chunk of one row, and a last token part of 41 or 17 rows), with row strides wider than the
    /// rows and a fused GELU (`checkSplitEqualsSerial`); one row: the GEMV on each thread's panels
    /// (its epilogue writes each panel's columns, the last one partial).
    func testSplitByTokensAndSharedQuantizationMatchSerial() throws {
        var random = TestRandom(seed: 104)
        let (k, n) = (4100, 40)
        let op = try NMInt8Weights(magnitudePruning: random.array(n * k), outputFeatures: n, inputFeatures: k, bias: random.array(n))
        for rows in [1, 2, 113] { OperatorChecker.checkSplitEqualsSerial(op, rows: rows, random: &random, "2:4 int8") }
    }

    /// MiniLM's shapes at 128 tokens (the 2-thread case of issue 17): split by token rows into 4
    /// parts of 32, bit for bit the unsplit result on every level.
    func testMiniLMShapesSplitMatchesSerial() throws {
        try OperatorChecker.checkMiniLMShapesSplitEqualsSerial(seed: 105, "2:4 int8") { w, k, n, bias in
            try NMInt8Weights(magnitudePruning: w, outputFeatures: n, inputFeatures: k, bias: bias)
        }
    }

    /// Kept weights all -128 or all 127 (or mixed) and activations at ±absmax (bytes 1 and 255 after
    /// the offset: the quantizer clamps to ±127), K = 4099 (window and block tails), 65 rows (more
    /// than one chunk of quantized rows): sums up to 3.3e7 exactly as an Int64 reference, rescaled
    /// with the kernels' operation order.
    func testExactSumsOnExtremes() throws {
        let (k, n, m) = (4099, 19, 65)
        var random = TestRandom(seed: 104)
        let signs = random.array(m * k)
        let x = signs.map { $0 < 0 ? Float(-1) : 1 }
        for pattern in 0..<3 {
            var values = [Int8](repeating: 0, count: n * k)
            let pairs = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]  // every position pair, varying per row and group
            for r in 0..<n {
                for g in 0..<((k + 3) / 4) {
                    let (a, b) = pairs[(r + 7 * g) % 6]
                    for c in [4 * g + a, 4 * g + b] where c < k {
                        values[r * k + c] = pattern == 0 ? -128 : pattern == 1 ? 127 : ((r + c) % 3 == 0 ? -128 : 127)
                    }
                }
            }
            let op = try NMInt8Weights(values: values, scales: [Float](repeating: 1, count: n), outputFeatures: n, inputFeatures: k)
            let xs: Float = 1 / 127
            var expected = [Float](repeating: 0, count: m * n)
            for t in 0..<m {
                for j in 0..<n {
                    var sum: Int64 = 0
                    for c in 0..<k { sum += Int64(x[t * k + c] < 0 ? -127 : 127) * Int64(values[j * k + c]) }
                    expected[t * n + j] = Float(Int32(sum)) * xs
                }
            }
            for level in QuantizedInstructionSet.available {
                XCTAssertEqual(Self.run(op, x, rows: m, activation: .none, level: level), expected, "pattern \(pattern) \(level)")
                XCTAssertEqual(Self.run(op, Array(x[0..<(2 * k)]), rows: 2, activation: .none, level: level), Array(expected[0..<(2 * n)]))
            }
        }
    }

    static func pinned(_ op: NMInt8Weights, _ level: QuantizedInstructionSet) -> PinnedLevel {
        PinnedLevel(op) { x, rows, ldx, y, ldy, act, pool in
            op.apply(x, rows: rows, inputStride: ldx, into: y, outputStride: ldy, activation: act, pool: pool, level: level)
        }
    }

    static func run(_ op: NMInt8Weights, _ x: [Float], rows: Int, activation: Activation, level: QuantizedInstructionSet) -> [Float] {
        var y = [Float](repeating: .nan, count: rows * op.outputFeatures)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                op.apply(xp.baseAddress!, rows: rows, inputStride: op.inputFeatures, into: yp.baseAddress!,
                         outputStride: op.outputFeatures, activation: activation, pool: nil, level: level)
            }
        }
        return y
    }

    func testRefusesOverfullGroupsAndBadScales() {
        XCTAssertThrowsError(try NMInt8Weights(values: [1, 1, 1, 0], scales: [1], outputFeatures: 1, inputFeatures: 4))
        XCTAssertNoThrow(try NMInt8Weights(values: [1, 0, 1, 0], scales: [1], outputFeatures: 1, inputFeatures: 4))
        XCTAssertThrowsError(try NMInt8Weights(values: [1, 0, 1, 0], scales: [.nan], outputFeatures: 1, inputFeatures: 4))
    }
}
