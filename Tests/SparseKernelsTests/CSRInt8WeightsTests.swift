import CSparseKernels
import XCTest
@testable import SparseKernels

/// CSR int8 (dynamic activations): every level against the fp64 reference of the dequantised
/// weight and quantized activations (GEMV and GEMM paths, tails, empty and repeated-column rows);
/// the same outputs as the dense int8 kernel on the same int8 weights; exact int32 sums on -128 /
/// 127 extremes; refusal of malformed arrays and scales.
final class CSRInt8WeightsTests: XCTestCase {
    static func pinned(_ op: CSRInt8Weights, _ level: QuantizedInstructionSet) -> PinnedLevel {
        PinnedLevel(op) { x, rows, ldx, y, ldy, act, pool in
            op.apply(x, rows: rows, inputStride: ldx, into: y, outputStride: ldy, activation: act, pool: pool, level: level)
        }
    }

    func testEveryLevelMatchesDequantisedReference() throws {
        var random = TestRandom(seed: 121)
        for (k, n, density) in [(5, 3, 0.6), (37, 17, 0.3), (130, 47, 0.1), (64, 16, 1.0), (10, 4, 0.0)] {
            let source = CSRWeights(magnitudePruning: random.array(n * k), outputFeatures: n, inputFeatures: k, density: density,
                                    bias: random.array(n))
            let op = try CSRInt8Weights(source)
            XCTAssertEqual(op.columns, source.columns)
            for level in QuantizedInstructionSet.available {
                OperatorChecker.checkTransformed(Self.pinned(op, level), dense: op.denseWeights(), bias: op.bias,
                                                 rowCounts: [1, 2, 3, 9, 17, 33, 70], random: &random,
                                                 transform: Int8DynamicWeightsTests.dequantizedRows,
                                                 "csr int8 k=\(k) n=\(n) density=\(density) \(level)")
            }
        }
    }

    /// Rows of very different lengths (empty, one, all 37 and more), unsorted and repeated columns.
    func testIrregularRows() throws {
        var random = TestRandom(seed: 122)
        let (k, n) = (37, 6)
        let (rowStart, columns) = CSRWeightsTests.irregular
        let values: [Int8] = (0..<columns.count).map { (i: Int) -> Int8 in Int8((i * 37) % 255 - 127) }
        let op = try CSRInt8Weights(rowStart: rowStart, columns: columns, values: values, scales: [0.5, 0.25, 1, 2, 1, 0.125],
                                    outputFeatures: n, inputFeatures: k)
        for level in QuantizedInstructionSet.available {
            OperatorChecker.checkTransformed(Self.pinned(op, level), dense: op.denseWeights(), bias: nil, rowCounts: [1, 2, 9, 33],
                                             random: &random, transform: Int8DynamicWeightsTests.dequantizedRows,
                                             "irregular csr int8 \(level)")
        }
    }

    /// A dense pattern stored as CSR gives exactly the dense int8 kernel's outputs (same int32
    /// sums, same rescaling), -128 weights and a K tail included.
    func testEqualsDenseInt8OnTheSameWeights() throws {
        let (k, n) = (1029, 40)
        var random = TestRandom(seed: 123)
        let values: [Int8] = (0..<(n * k)).map { (i: Int) -> Int8 in
            (i * 7) % 5 == 0 ? -128 : Int8(i % 255 - 127)
        }
        let scales = (0..<n).map { Float($0 + 1) / 64 }
        let rowStart: [Int32] = (0...n).map { Int32($0 * k) }
        let columns: [Int32] = (0..<(n * k)).map { Int32($0 % k) }
        let sparse = try CSRInt8Weights(rowStart: rowStart, columns: columns, values: values, scales: scales,
                                        outputFeatures: n, inputFeatures: k, bias: random.array(n))
        let dense = try Int8DynamicWeights(values: values, scales: scales, outputFeatures: n, inputFeatures: k, bias: sparse.bias)
        for rows in [1, 2, 3, 17] {
            let x = Matrix(rows: rows, columns: k, values: random.array(rows * k))
            for isa in InstructionSet.available {
                XCTAssertEqual(sparse.apply(x, isa: isa).values, dense.apply(x, isa: isa).values, "rows=\(rows) \(isa)")
            }
        }
    }

    /// Every weight and every quantized activation -128 or 127 (through the quantized entry point),
    /// rows of 4099 non-zeros: sums up to 6.7e7 come out exactly on every level, GEMV and GEMM.
    func testExactInt32AccumulationOnExtremes() {
        let (k, n) = (4099, 20)
        let rowStart: [Int32] = (0...n).map { Int32($0 * k) }
        let columns: [Int32] = (0..<(n * k)).map { Int32(($0 * 13) % k) }
        let ones = [Float](repeating: 1, count: n)
        for weight in [Int8(-128), 127] {
            for activation in [Int8(-128), 127] {
                let values = [Int8](repeating: weight, count: n * k)
                let exact = Float(Int64(k) * Int64(activation) * Int64(weight))
                for m in [1, 2, 3, 17] {
                    let xq = [Int8](repeating: activation, count: m * k), xscale = [Float](repeating: 1, count: m)
                    for level in QuantizedInstructionSet.available {
                        var y = [Float](repeating: .nan, count: m * n)
                        XCTAssertEqual(ss_csr8_gemm_quantized_rows_isa(level.cValue, rowStart, columns, values, ones, nil, n, k, xq, k,
                                                                       xscale, &y, n, m, SS_ACT_NONE, 0, n), 0)
                        XCTAssertEqual(y, [Float](repeating: exact, count: m * n), "w=\(weight) x=\(activation) m=\(m) \(level)")
                    }
                }
            }
        }
    }

    /// Mixed extremes with varying signs and uneven row lengths, against Int64 sums.
    func testExactSumsOnMixedExtremes() {
        let (k, n, m) = (1027, 33, 5)
        var rowStart: [Int32] = [0], columns: [Int32] = []
        for row in 0..<n {
            for c in stride(from: row % 3, to: k, by: 1 + row % 4) { columns.append(Int32(c)) }
            rowStart.append(Int32(columns.count))
        }
        let values: [Int8] = (0..<columns.count).map { (i: Int) -> Int8 in [-128, 127, -1][i % 3] }
        let xq: [Int8] = (0..<(m * k)).map { (i: Int) -> Int8 in [127, -128, -1, 3, 3][i % 5] }
        var expected = [Float](repeating: 0, count: m * n)
        for t in 0..<m {
            for row in 0..<n {
                var sum: Int64 = 0
                for e in Int(rowStart[row])..<Int(rowStart[row + 1]) { sum += Int64(xq[t * k + Int(columns[e])]) * Int64(values[e]) }
                expected[t * n + row] = Float(sum)
            }
        }
        let ones = [Float](repeating: 1, count: n), xscale = [Float](repeating: 1, count: m)
        for level in QuantizedInstructionSet.available {
            for rows in [1, m] {
                var y = [Float](repeating: .nan, count: rows * n)
                XCTAssertEqual(ss_csr8_gemm_quantized_rows_isa(level.cValue, rowStart, columns, values, ones, nil, n, k, xq, k, xscale,
                                                               &y, n, rows, SS_ACT_NONE, 0, n), 0)
                XCTAssertEqual(y, Array(expected[0..<(rows * n)]), "rows=\(rows) \(level)")
            }
        }
    }

    func testSplitAcrossPoolMatchesSerial() throws {
        var random = TestRandom(seed: 124)
        let (k, n, rows) = (96, 200, 40)
        let op = try CSRInt8Weights(CSRWeights(magnitudePruning: random.array(n * k), outputFeatures: n, inputFeatures: k, density: 0.2))
        let x = Matrix(rows: rows, columns: k, values: random.array(rows * k))
        let pool = KernelPool(threads: 2, minimumSplitSeconds: 0)
        XCTAssertEqual(op.apply(x, activation: .gelu, pool: pool).values, op.apply(x, activation: .gelu).values)
    }

    func testRefusesMalformedArraysAndScales() {
        func make(_ rowStart: [Int32], _ columns: [Int32], _ scales: [Float] = [1, 1], bias: [Float]? = nil) throws -> CSRInt8Weights {
            try CSRInt8Weights(rowStart: rowStart, columns: columns, values: columns.map { _ in 1 }, scales: scales,
                               outputFeatures: 2, inputFeatures: 2, bias: bias)
        }
        XCTAssertNoThrow(try make([0, 1, 2], [0, 1]))
        XCTAssertThrowsError(try make([0, 2, 1], [0, 1]))
        XCTAssertThrowsError(try make([0, 1, 2], [0, 2]))
        XCTAssertThrowsError(try make([0, 1], [0]))
        XCTAssertThrowsError(try make([0, 1, 2], [0, 1], [1, .nan]))
        XCTAssertThrowsError(try make([0, 1, 2], [0, 1], [1, 0]))
        XCTAssertThrowsError(try make([0, 1, 2], [0, 1], [1]))
        XCTAssertThrowsError(try make([0, 1, 2], [0, 1], bias: [1]))
        let long = CSRInt8Weights.maximumRowNonZeros + 1
        XCTAssertThrowsError(try CSRInt8Weights(rowStart: [0, Int32(long)], columns: [Int32](repeating: 0, count: long),
                                                values: [Int8](repeating: 1, count: long), scales: [1], outputFeatures: 1, inputFeatures: 1))
        // The C kernel refuses such a row too, and a decreasing row_ptr, doing nothing.
        var y: [Float] = [7]
        XCTAssertEqual(ss_csr8_gemm_rows_isa(SS_QISA_PORTABLE, [0, Int32(long)], [Int32](repeating: 0, count: long),
                                             [Int8](repeating: 1, count: long), [1], nil, 1, 1, [1], 1, &y, 1, 1, SS_ACT_NONE, 0, 1),
                       SS_ERR_ARGUMENT.rawValue)
        XCTAssertEqual(ss_csr8_gemm_rows_isa(SS_QISA_PORTABLE, [1, 0], [0], [1], [1], nil, 1, 1, [1], 1, &y, 1, 1, SS_ACT_NONE, 0, 1),
                       SS_ERR_ARGUMENT.rawValue)
        XCTAssertEqual(y, [7])
    }
}
