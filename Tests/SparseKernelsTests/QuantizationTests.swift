import CSparseKernels
import XCTest
@testable import SparseKernels

/// Symmetric int8 quantization (scales, rounding, groups with a tail, all-zero groups), its
/// refusals, the stored-scale checks, granularity and instruction-level mapping.
final class QuantizationTests: XCTestCase {
    func testChannelScalesAreRowAbsmaxOver127AndValuesRound() throws {
        let w: [Float] = [0.5, -1.27, 0.3, 0,
                          0, 0, 0, 0,
                          2.54, 1.3, -0.013, 0.635]
        let (values, scales) = try quantizeInt8(w, rows: 3, columns: 4, granularity: .channel)
        XCTAssertEqual(scales.count, 3)
        XCTAssertEqual(scales[0], 0.01, accuracy: 1e-7)
        XCTAssertEqual(scales[1], 1, "an all-zero row gets scale 1, not 0")
        XCTAssertEqual(scales[2], 0.02, accuracy: 1e-7)
        XCTAssertEqual(Array(values[0..<4]), [50, -127, 30, 0])
        XCTAssertEqual(Array(values[4..<8]), [0, 0, 0, 0])
        XCTAssertEqual(values[8], 127)
        XCTAssertEqual(Array(values[9..<12]), [65, -1, 32], "1.3 / 0.02 = 65, -0.65 → -1, 31.75 → 32")
        XCTAssertFalse(values.contains(-128), "symmetric: -128 is never produced")
    }

    /// Group scales per row and group of inputs; the last group of a row may be shorter.
    func testGroupScalesCoverATail() throws {
        var random = TestRandom(seed: 401)
        let (rows, columns, width) = (3, 10, 4)
        var w = random.array(rows * columns)
        w[1 * columns + 8] = 0; w[1 * columns + 9] = 0  // row 1's tail group is all zero
        let (values, scales) = try quantizeInt8(w, rows: rows, columns: columns, granularity: .group(width))
        XCTAssertEqual(scales.count, rows * 3)
        for r in 0..<rows {
            for g in 0..<3 {
                let range = (r * columns + g * width)..<(r * columns + min(columns, (g + 1) * width))
                let absmax = w[range].map(abs).max()!
                let scale = scales[r * 3 + g]
                XCTAssertEqual(scale, absmax == 0 ? 1 : absmax / 127, accuracy: 1e-7, "row \(r) group \(g)")
                for i in range {
                    XCTAssertEqual(Float(values[i]), (w[i] / scale).rounded(), accuracy: 1, "weight \(i)")
                    XCTAssertLessThanOrEqual(abs(Float(values[i]) * scale - w[i]), scale * 0.5001, "weight \(i)")
                }
            }
        }
    }

    func testRefusalsNameTheProblem() {
        XCTAssertThrowsError(try quantizeInt8([1, 2, 3], rows: 2, columns: 2, granularity: .channel)) { error in
            XCTAssertEqual("\(error)", "3 weights for a 2×2 matrix")
        }
        XCTAssertThrowsError(try quantizeInt8([], rows: 0, columns: 0, granularity: .channel))
        XCTAssertThrowsError(try quantizeInt8([1, 2], rows: 1, columns: 2, granularity: .group(-3))) { error in
            XCTAssertEqual(error as? QuantizationError, .invalidGroup(-3))
        }
        XCTAssertThrowsError(try quantizeInt8([1, .infinity, 2, .nan], rows: 2, columns: 2, granularity: .channel)) { error in
            XCTAssertEqual(error as? QuantizationError, .nonFiniteWeight(index: 1))
            XCTAssertEqual("\(error)", "weight 1 is not finite")
        }
    }

    /// A stored scale is usable when positive and 127 × scale stays finite (the largest weight).
    func testStoredScaleChecks() {
        XCTAssertTrue(isUsableScale(1e-30))
        XCTAssertTrue(isUsableScale(Float.greatestFiniteMagnitude / 128))
        for bad: Float in [0, -1, .nan, .infinity, Float.greatestFiniteMagnitude / 100] {
            XCTAssertFalse(isUsableScale(bad), "\(bad)")
        }
        XCTAssertNoThrow(try QuantizationError.checkScales([1, 2], expected: 2, what: "w"))
        XCTAssertThrowsError(try QuantizationError.checkScales([1], expected: 2, what: "layer.weight")) { error in
            XCTAssertEqual("\(error)", "layer.weight: 1 scales, expected 2")
        }
        XCTAssertThrowsError(try QuantizationError.checkScales([1, 2, 1.5e37], expected: 3, what: "w")) { error in
            XCTAssertEqual(error as? QuantizationError, .invalidScale(index: 2, value: 1.5e37))
        }
    }

    func testRowScaledChecks() {
        XCTAssertNoThrow(try QuantizationError.checkRowScaled(values: 6, scales: [1, 1], bias: [0, 0], outputs: 2, inputs: 3, what: "w"))
        for (values, outputs, inputs) in [(5, 2, 3), (0, 0, 3), (65537, 1, 65537)] {
            XCTAssertThrowsError(try QuantizationError.checkRowScaled(values: values, scales: [1], bias: nil, outputs: outputs,
                                                                     inputs: inputs, what: "w"), "\(values) \(outputs)×\(inputs)")
        }
        XCTAssertThrowsError(try QuantizationError.checkRowScaled(values: 6, scales: [1, 1], bias: [0], outputs: 2, inputs: 3, what: "fc")) { error in
            XCTAssertEqual("\(error)", "fc: bias has 1 values, expected 2")
        }
        XCTAssertNoThrow(try QuantizationError.checkBias(nil, outputs: 2, what: "fc"))
        XCTAssertNoThrow(try QuantizationError.checkBias([1, 2], outputs: 2, what: "fc"))
        XCTAssertThrowsError(try QuantizationError.checkBias([1, 2, 3], outputs: 2, what: "bf16")) { error in
            XCTAssertEqual("\(error)", "bf16: bias has 3 values, expected 2")
        }
    }

    func testGranularity() {
        XCTAssertEqual(Int8Granularity.channel.scalesPerRow(inputFeatures: 1000), 1)
        XCTAssertEqual(Int8Granularity.group(64).scalesPerRow(inputFeatures: 64), 1)
        XCTAssertEqual(Int8Granularity.group(64).scalesPerRow(inputFeatures: 65), 2)
        XCTAssertEqual(Int8Granularity.channel.cGroup, 0)
        XCTAssertEqual(Int8Granularity.group(32).cGroup, 32)
        XCTAssertEqual("\(Int8Granularity.group(32))", "group 32")
        XCTAssertEqual("\(Int8Granularity.channel)", "channel")
    }

    /// fp32 levels map onto quantized ones; AVX-512 means at least the plain AVX-512 level.
    func testInstructionLevels() {
        XCTAssertEqual(QuantizedInstructionSet(.portable), .portable)
        XCTAssertEqual(QuantizedInstructionSet(.avx2), .avx2)
        XCTAssertGreaterThanOrEqual(QuantizedInstructionSet(.avx512), .avx512)
        XCTAssertEqual(QuantizedInstructionSet.available.first, .portable)
        XCTAssertTrue(QuantizedInstructionSet.available.allSatisfy { $0 <= .hardware })
        XCTAssertTrue(QuantizedInstructionSet.portable < .avx512Dot)
        if InstructionSet.hardware == .avx512 { XCTAssertGreaterThanOrEqual(QuantizedInstructionSet.hardware, .avx512) }
    }

    /// Factor storages make the operator they name, with the factor's shape and bias.
    func testBlastFactorStorageMakesItsOperator() throws {
        var random = TestRandom(seed: 402)
        let w = random.array(6 * 5)
        for storage in BlastFactorStorage.allCases {
            let op = try storage.makeOperator(weights: w, outputs: 6, inputs: 5, bias: [1, 2, 3, 4, 5, 6])
            XCTAssertEqual(op.outputFeatures, 6)
            XCTAssertEqual(op.inputFeatures, 5)
            let unpacked = op.unpackedWeights()
            let tolerance: Float = storage == .fp32 ? 0 : 0.01
            for i in w.indices { XCTAssertEqual(unpacked[i], w[i], accuracy: tolerance, "\(storage) weight \(i)") }
        }
        XCTAssertTrue(try BlastFactorStorage.fp32.makeOperator(weights: w, outputs: 6, inputs: 5, bias: nil) is DenseWeights)
        XCTAssertTrue(try BlastFactorStorage.bf16.makeOperator(weights: w, outputs: 6, inputs: 5, bias: nil) is BF16Weights)
        XCTAssertTrue(try BlastFactorStorage.int8.makeOperator(weights: w, outputs: 6, inputs: 5, bias: nil) is Int8DynamicWeights)
        XCTAssertTrue(try BlastFactorStorage.int8WeightOnly.makeOperator(weights: w, outputs: 6, inputs: 5, bias: nil) is Int8Weights)
    }

    func testPaddedRowsAreZeroFilledToWholePanels() {
        let buffer = AlignedBuffer<Float>.paddedRows([1, 2, 3], outputs: 3)
        XCTAssertEqual(buffer.count, ss_q8_padded_rows(3))
        XCTAssertEqual(buffer.count % 16, 0)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: buffer.pointer, count: buffer.count)),
                       [1, 2, 3] + [Float](repeating: 0, count: buffer.count - 3))
        XCTAssertEqual(Int(bitPattern: buffer.pointer) % 64, 0)
    }
}
