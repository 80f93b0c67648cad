import XCTest
@testable import SparseKernels

/// The protocol's defaults: a type implementing only the contiguous `apply` gets strided rows
/// (through copies), row splits across a pool and the `Matrix` form, all equal to its own
/// contiguous result; density and cost; the aligned buffers kernels read.
final class LinearOperatorTests: XCTestCase {
    /// y = act(x · Wᵀ + b) by plain loops, contiguous rows only; counts its calls (thread-safely).
    private final class NaiveOperator: LinearOperator, @unchecked Sendable {
        let inputFeatures: Int, outputFeatures: Int
        let weights: [Float], bias: [Float]?
        private let lock = NSLock()
        private var calls = 0
        init(weights: [Float], outputs: Int, inputs: Int, bias: [Float]?) {
            self.weights = weights
            self.outputFeatures = outputs
            self.inputFeatures = inputs
            self.bias = bias
        }
        var storage: String { "naive" }
        var parameterCount: Int { weights.count + (bias?.count ?? 0) }
        var byteCount: Int { parameterCount * 4 }
        var callCount: Int { lock.lock(); defer { lock.unlock() }; return calls }

        func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>, activation: Activation, isa: InstructionSet) {
            lock.lock(); calls += 1; lock.unlock()
            for r in 0..<rows {
                for o in 0..<outputFeatures {
                    var sum = bias?[o] ?? 0
                    for c in 0..<inputFeatures { sum += x[r * inputFeatures + c] * weights[o * inputFeatures + c] }
                    y[r * outputFeatures + o] = activation == .relu ? max(0, sum) : sum
                }
            }
        }
    }

    private func makeOperator(_ random: inout TestRandom, outputs: Int = 5, inputs: Int = 7) -> NaiveOperator {
        NaiveOperator(weights: random.array(outputs * inputs), outputs: outputs, inputs: inputs, bias: random.array(outputs))
    }

    func testStridedRowsEqualContiguousAndLeaveGapsAlone() {
        var random = TestRandom(seed: 501)
        let op = makeOperator(&random)
        let (rows, k, n, ldx, ldy) = (4, 7, 5, 10, 8)
        let packed = random.array(rows * k)
        var strided = [Float](repeating: .nan, count: rows * ldx)
        for r in 0..<rows { for c in 0..<k { strided[r * ldx + c] = packed[r * k + c] } }
        var expected = [Float](repeating: 0, count: rows * n)
        op.apply(packed, rows: rows, into: &expected, activation: .relu, isa: .portable)
        var y = [Float](repeating: -7, count: rows * ldy)
        op.apply(strided, rows: rows, inputStride: ldx, into: &y, outputStride: ldy, activation: .relu, pool: nil, isa: .portable)
        for r in 0..<rows {
            XCTAssertEqual(Array(y[r * ldy ..< r * ldy + n]), Array(expected[r * n ..< (r + 1) * n]), "row \(r)")
            XCTAssertEqual(Array(y[r * ldy + n ..< (r + 1) * ldy]), [-7, -7, -7], "row \(r): columns past n untouched")
        }
    }

    /// Overlapping input rows (stride 0: one row broadcast) are allowed: x is only read.
    func testOverlappingInputRows() {
        var random = TestRandom(seed: 502)
        let op = makeOperator(&random)
        let row = random.array(7)
        var once = [Float](repeating: 0, count: 5)
        op.apply(row, rows: 1, into: &once, activation: .none, isa: .portable)
        var y = [Float](repeating: 0, count: 3 * 5)
        op.apply(row, rows: 3, inputStride: 0, into: &y, outputStride: 5, activation: .none, pool: nil, isa: .portable)
        XCTAssertEqual(y, once + once + once)
    }

    /// 64+ rows worth splitting go out in parts of at least 32 rows, and the result equals the serial one.
    func testLargeCallsSplitByRowsAcrossThePool() {
        var random = TestRandom(seed: 503)
        let op = makeOperator(&random, outputs: 64, inputs: 96)
        let x = Matrix(rows: 130, columns: 96, values: random.array(130 * 96))
        let serial = op.apply(x, activation: .relu)
        XCTAssertEqual(op.callCount, 1)
        let pool = KernelPool(threads: 2, minimumSplitSeconds: 0)
        let split = op.apply(x, activation: .relu, pool: pool)
        XCTAssertEqual(split, serial)
        XCTAssertGreaterThan(op.callCount, 2, "the pooled call was split")
        XCTAssertLessThanOrEqual(op.callCount - 1, 130 / 32)
        let before = op.callCount
        _ = op.apply(Matrix(rows: 63, columns: 96, values: random.array(63 * 96)), pool: pool)
        XCTAssertEqual(op.callCount, before + 1, "under 64 rows: one call")
    }

    func testZeroRowsDoNothing() {
        var random = TestRandom(seed: 504)
        let op = makeOperator(&random)
        let result = op.apply(Matrix(rows: 0, columns: 7))
        XCTAssertEqual(result, Matrix(rows: 0, columns: 5))
        XCTAssertEqual(op.callCount, 0)
    }

    func testDensityAndCost() {
        var random = TestRandom(seed: 505)
        let op = makeOperator(&random, outputs: 4, inputs: 6)
        XCTAssertEqual(op.density, 1)
        XCTAssertEqual(op.flopsPerRow, 2 * (24 + 4))
        let unbiased = NaiveOperator(weights: [Float](repeating: 1, count: 24), outputs: 4, inputs: 6, bias: nil)
        XCTAssertEqual(unbiased.density, 24.0 / 28.0, accuracy: 1e-12)
        let dense = DenseWeights(weights: [Float](repeating: 1, count: 24), outputFeatures: 4, inputFeatures: 6)
        XCTAssertFalse(dense.splits(rows: 1, pool: nil))
    }

    func testOptionalPointerAndAlignedBuffers() {
        XCTAssertTrue(withOptionalPointer(nil) { $0 == nil })
        XCTAssertEqual(withOptionalPointer([3, 4]) { $0?[1] }, 4)
        let buffer = AlignedBuffer<Float>([1, 2, 3], zero: 0)
        XCTAssertEqual(Int(bitPattern: buffer.pointer) % 64, 0)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: buffer.pointer, count: 3)), [1, 2, 3])
        XCTAssertEqual(buffer.byteCount, 12)
        let empty = AlignedBuffer<Int8>([], zero: 0)
        XCTAssertEqual(empty.count, 0)
        XCTAssertEqual(empty.pointer.pointee, 0, "an empty buffer still has one zeroed element to point at")
    }
}
