import CSparseKernels
import XCTest
@testable import SparseKernels

/// W8A8 (int8 × dynamically quantized int8 activations): every level against an fp64 reference of
/// the dequantised weights and activations with odd shapes and tails; exact int32 sums on
/// adversarial extremes; refusal of bad stored scales.
final class Int8DynamicWeightsTests: XCTestCase {
    /// The activations exactly as the kernel quantizes them (per row: absmax / 127, nearest even).
    static func dequantizedRows(_ x: [Float], _ k: Int) -> [Float] {
        var out = x
        for r in 0..<(x.count / k) {
            let row = x[(r * k)..<(r * k + k)]
            let absmax = row.map(abs).max() ?? 0
            guard absmax > 0 else { continue }
            let inv: Float = 127 / absmax, scale: Float = absmax / 127
            for c in 0..<k {
                let q = min(127, max(-127, (x[r * k + c] * inv).rounded(.toNearestOrEven)))
                out[r * k + c] = Float(Double(q) * Double(scale))  // exact: q has 8 bits, scale 24
            }
        }
        return out
    }

    static func pinned(_ op: Int8DynamicWeights, _ level: QuantizedInstructionSet) -> PinnedLevel {
        PinnedLevel(op) { x, rows, ldx, y, ldy, act, pool in
            op.apply(x, rows: rows, inputStride: ldx, into: y, outputStride: ldy, activation: act, pool: pool, level: level)
        }
    }

    func testEveryLevelMatchesDequantisedReference() throws {
        var random = TestRandom(seed: 71)
        for (k, n) in [(5, 3), (37, 17), (64, 33), (130, 47), (385, 20)] {
            let op = try Int8DynamicWeights(weights: random.array(n * k), outputFeatures: n, inputFeatures: k, bias: random.array(n))
            let w = op.denseWeights()
            for level in QuantizedInstructionSet.available {
                OperatorChecker.checkTransformed(Self.pinned(op, level), dense: w, bias: op.bias, rowCounts: [1, 2, 3, 8, 17, 33, 70],
                                                 random: &random, transform: Self.dequantizedRows, "int8 dynamic k=\(k) n=\(n) \(level)")
            }
        }
    }

    func testSplitAcrossPoolMatchesSerial() throws {
        var random = TestRandom(seed: 72)
        let (k, n, rows) = (96, 200, 40)
        let op = try Int8DynamicWeights(weights: random.array(n * k), outputFeatures: n, inputFeatures: k)
        let x = Matrix(rows: rows, columns: k, values: random.array(rows * k))
        let pool = KernelPool(threads: 2, minimumSplitSeconds: 0)
        XCTAssertEqual(op.apply(x, activation: .gelu, pool: pool).values, op.apply(x, activation: .gelu).values)
    }

    /// A call split by token rows (each part quantizes its own rows) or by output panels (each
    /// chunk of rows quantized once, the bytes shared): bit for bit the unsplit result on every
    /// level, over three chunks (K = 4100: 56 rows per chunk), with 150 rows (a last token part
    /// 6 rows past its tiles) and 61 (under two token parts of 32: split by panels), row strides
    /// wider than the rows and a fused GELU (`checkSplitEqualsSerial`).
    func testSplitByTokensAndSharedQuantizationMatchSerial() throws {
        var random = TestRandom(seed: 73)
        let (k, n) = (4100, 40)
        let op = try Int8DynamicWeights(weights: random.array(n * k), outputFeatures: n, inputFeatures: k, bias: random.array(n))
        for rows in [150, 61] { OperatorChecker.checkSplitEqualsSerial(op, rows: rows, random: &random, "int8 dynamic") }
    }

    /// MiniLM's shapes at 128 tokens (the 2-thread case of issue 17): split by token rows into 4
    /// parts of 32, bit for bit the unsplit result on every level.
    func testMiniLMShapesSplitMatchesSerial() throws {
        try OperatorChecker.checkMiniLMShapesSplitEqualsSerial(seed: 74, "int8 dynamic") { w, k, n, bias in
            try Int8DynamicWeights(weights: w, outputFeatures: n, inputFeatures: k, bias: bias)
        }
    }

    /// Every weight -128 or 127 and every activation byte 0 or 255 (int8 -128 / 127 after the
    /// offset), K = 4099 (odd tail): sums up to 6.7e7 must come out exactly on every level.
    func testExactInt32AccumulationOnExtremes() throws {
        let (k, n, m) = (4099, 20, 3)
        let k4 = ss_q8_row_bytes(k), rows = ss_q8_padded_rows(n)
        for weight in [Int8(-128), 127] {
            for byte in [UInt8(0), 255] {
                let q = [Int8](repeating: weight, count: n * k)
                var packed = [Int8](repeating: 0, count: ss_q8_packed_bytes(n, k)), correction = [Int32](repeating: 0, count: rows)
                XCTAssertEqual(ss_q8_pack(q, n, k, k, &packed, &correction), 0)
                var xq = [UInt8](repeating: 128, count: m * k4)
                for r in 0..<m { for c in 0..<k { xq[r * k4 + c] = byte } }
                let ones = [Float](repeating: 1, count: rows), xscale = [Float](repeating: 1, count: m)
                let exact = Float(Int64(k) * (Int64(byte) - 128) * Int64(weight))
                for level in QuantizedInstructionSet.available {
                    var y = [Float](repeating: .nan, count: m * n)
                    XCTAssertEqual(ss_q8_gemm_quantized_cols_isa(level.cValue, packed, correction, ones, nil, n, k, xq, xscale, m,
                                                                 &y, n, SS_ACT_NONE, 0, n), 0)
                    XCTAssertEqual(y, [Float](repeating: exact, count: m * n), "w=\(weight) x=\(byte) \(level)")
                }
            }
        }
    }

    /// Mixed extremes: each product's sign varies, the sum is checked against Int64 exactly; K =
    /// 1027 (odd tail) and K = 1088 with 37 rows (17 blocks of 64 inputs, two 16-row AMX blocks
    /// and 5 rows past them on the AMX level).
    func testExactSumsOnMixedExtremes() throws {
        for (k, m) in [(1027, 5), (1088, 37)] { try checkExactSumsOnMixedExtremes(k: k, n: 33, m: m) }
    }

    func checkExactSumsOnMixedExtremes(k: Int, n: Int, m: Int) throws {
        let k4 = ss_q8_row_bytes(k), rows = ss_q8_padded_rows(n)
        let q = (0..<(n * k)).map { Int8($0 % 3 == 0 ? -128 : $0 % 3 == 1 ? 127 : -1) }
        var xq = [UInt8](repeating: 128, count: m * k4)
        for r in 0..<m { for c in 0..<k { xq[r * k4 + c] = (r + c) % 2 == 0 ? 255 : 0 } }
        var packed = [Int8](repeating: 0, count: ss_q8_packed_bytes(n, k)), correction = [Int32](repeating: 0, count: rows)
        XCTAssertEqual(ss_q8_pack(q, n, k, k, &packed, &correction), 0)
        let ones = [Float](repeating: 1, count: rows), xscale = [Float](repeating: 1, count: m)
        var expected = [Float](repeating: 0, count: m * n)
        for r in 0..<m {
            for j in 0..<n {
                var sum: Int64 = 0
                for c in 0..<k { sum += (Int64(xq[r * k4 + c]) - 128) * Int64(q[j * k + c]) }
                expected[r * n + j] = Float(sum)
            }
        }
        for level in QuantizedInstructionSet.available {
            var y = [Float](repeating: .nan, count: m * n)
            XCTAssertEqual(ss_q8_gemm_quantized_cols_isa(level.cValue, packed, correction, ones, nil, n, k, xq, xscale, m,
                                                         &y, n, SS_ACT_NONE, 0, n), 0)
            XCTAssertEqual(y, expected, "\(level)")
        }
    }

    /// The AMX level's tile blocks (32 rows x 32 columns, and the 16-row / 1-panel edges) against
    /// the VNNI level, bit for bit: both sum the same int32 products and share one epilogue. Row
    /// counts from 8 (one short tile) up, with and without a tail past the 16-row blocks (a
    /// shorter tile), an odd last panel, K of 1, 6 and 24
    /// blocks of 64, a fused bias, ReLU and GELU (split calls: the tests above, on every level).
    func testAMXBlocksEqualDotLevel() throws {
        guard QuantizedInstructionSet.available.contains(.amx) else { throw XCTSkip("no AMX on this CPU") }
        var random = TestRandom(seed: 75)
        for (k, n) in [(64, 40), (384, 384), (1536, 48)] {
            let op = try Int8DynamicWeights(weights: random.array(n * k), outputFeatures: n, inputFeatures: k, bias: random.array(n))
            for rows in [8, 9, 14, 16, 31, 32, 48, 77] {
                let x = Matrix(rows: rows, columns: k, values: random.array(rows * k))
                for act in [Activation.none, .relu, .gelu] {
                    XCTAssertEqual(OperatorChecker.applied(op, x, level: .amx, activation: act),
                                   OperatorChecker.applied(op, x, level: .avx512Dot, activation: act),
                                   "k=\(k) n=\(n) rows=\(rows) \(act)")
                }
            }
        }
    }

    func testRefusesBadStoredTensors() {
        let values = [Int8](repeating: 1, count: 8)
        for bad: Float in [0, -1, .nan, .infinity] {
            XCTAssertThrowsError(try Int8DynamicWeights(values: values, scales: [1, bad], outputFeatures: 2, inputFeatures: 4)) { error in
                guard case .invalidScale(let index, _)? = error as? QuantizationError else { return XCTFail("\(error)") }
                XCTAssertEqual(index, 1)
            }
        }
        XCTAssertThrowsError(try Int8DynamicWeights(values: values, scales: [1], outputFeatures: 2, inputFeatures: 4))
        XCTAssertThrowsError(try Int8DynamicWeights(values: values, scales: [1, 1], outputFeatures: 2, inputFeatures: 3))
        XCTAssertThrowsError(try Int8DynamicWeights(values: values, scales: [1, 1], outputFeatures: 2, inputFeatures: 4, bias: [0]))
        XCTAssertThrowsError(try Int8DynamicWeights(weights: [1, .nan], outputFeatures: 1, inputFeatures: 2))
    }

    func testNonFiniteInputRowGivesNaNNotACrash() throws {
        let op = try Int8DynamicWeights(weights: [1, 2, 3, 4, 5, 6], outputFeatures: 2, inputFeatures: 3)
        let y = op.apply(Matrix(rows: 2, columns: 3, values: [1, .nan, 0, 1, 1, 1]))
        XCTAssertTrue(y[0, 0].isNaN && y[0, 1].isNaN)
        XCTAssertEqual(y[1, 0], 6, accuracy: 0.05)
    }
}
