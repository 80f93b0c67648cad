import Foundation
import XCTest
import SparseKernels

/// Runs linear operators on deliberately awkward buffers and checks them against a float64
/// reference of their dense weight.
struct OperatorChecker {
    /// act(x · wᵀ + b) pre-activation values and, per output, Σ|w·x| + |b| (the scale of the
    /// float32 rounding error), for `rows` rows of `x` (row stride `rowStride`, default k).
    static func reference(x: [Float], rows: Int, weights w: [Float], outputs n: Int, inputs k: Int,
                          bias: [Float]?, rowStride: Int? = nil) -> (values: [Double], scale: [Double]) {
        let ldx = rowStride ?? k
        var values = [Double](repeating: 0, count: rows * n), scale = values
        for r in 0..<rows {
            for o in 0..<n {
                let b = Double(bias?[o] ?? 0)
                var sum = b, magnitude = abs(b)
                for c in 0..<k {
                    let term = Double(x[r * ldx + c]) * Double(w[o * k + c])
                    sum += term
                    magnitude += abs(term)
                }
                values[r * n + o] = sum
                scale[r * n + o] = magnitude
            }
        }
        return (values, scale)
    }

    /// Runs `op` with x one float past a 64-byte boundary and row strides k + 3 / n + 5 (so no row
    /// is aligned), y pre-filled with NaN; returns the outputs and fails if anything past column n
    /// was written.
    static func run(_ op: any LinearOperator, x: [Float], rows: Int, activation: Activation, isa: InstructionSet,
                    pool: KernelPool? = nil, file: StaticString = #filePath, line: UInt = #line) -> [Float] {
        let k = op.inputFeatures, n = op.outputFeatures
        let ldx = k + 3, ldy = n + 5
        let xin = UnsafeMutableRawPointer.allocate(byteCount: (rows * ldx + 17) * 4, alignment: 64).bindMemory(to: Float.self, capacity: rows * ldx + 17)
        let yout = UnsafeMutableRawPointer.allocate(byteCount: (rows * ldy + 17) * 4, alignment: 64).bindMemory(to: Float.self, capacity: rows * ldy + 17)
        defer { xin.deallocate(); yout.deallocate() }
        xin.initialize(repeating: 0, count: rows * ldx + 17)
        yout.initialize(repeating: .nan, count: rows * ldy + 17)
        for r in 0..<rows { for c in 0..<k { xin[1 + r * ldx + c] = x[r * k + c] } }
        op.apply(xin + 1, rows: rows, inputStride: ldx, into: yout + 1, outputStride: ldy, activation: activation, pool: pool, isa: isa)
        var out = [Float](repeating: 0, count: rows * n)
        for r in 0..<rows {
            for o in 0..<n { out[r * n + o] = yout[1 + r * ldy + o] }
            for o in n..<ldy where !yout[1 + r * ldy + o].isNaN {
                XCTFail("\(op.storage) \(isa): row \(r) written past column \(n)", file: file, line: line)
                break
            }
        }
        return out
    }

    /// Fails unless every output is within `tolerance` × (its rounding scale) of the reference
    /// after the activation (plus 1e-6 relative for the activation itself).
    static func assertClose(_ got: [Float], _ reference: (values: [Double], scale: [Double]), activation: Activation,
                            tolerance: Double = 1e-5, _ what: @autoclosure () -> String,
                            file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, reference.values.count, what(), file: file, line: line)
        var worst = 0.0, worstAt = 0
        for i in got.indices {
            let expected = referenceActivation(activation, reference.values[i])
            let bound = tolerance * (reference.scale[i] + 1e-3) + 1e-6 * abs(expected)
            let ratio = got[i].isFinite ? abs(Double(got[i]) - expected) / bound : .infinity
            if ratio > worst { (worst, worstAt) = (ratio, i) }
        }
        XCTAssertLessThanOrEqual(worst, 1, "\(what()): worst at \(worstAt), got \(got.isEmpty ? 0 : got[worstAt])", file: file, line: line)
    }

    /// Runs and checks one operator against its dense weight for each row count, activation
    /// (rotating) and instruction set.
    static func check(_ op: any LinearOperator, dense w: [Float], bias: [Float]?, rowCounts: [Int],
                      activations: [Activation] = Activation.allCases, random: inout TestRandom, tolerance: Double = 1e-5,
                      pool: KernelPool? = nil, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let k = op.inputFeatures, n = op.outputFeatures
        for (index, rows) in rowCounts.enumerated() {
            let x = random.array(rows * k)
            let ref = reference(x: x, rows: rows, weights: w, outputs: n, inputs: k, bias: bias)
            let activation = activations[index % activations.count]
            for isa in InstructionSet.available {
                let got = run(op, x: x, rows: rows, activation: activation, isa: isa, pool: pool, file: file, line: line)
                assertClose(got, ref, activation: activation, tolerance: tolerance,
                            "\(what) rows=\(rows) \(activation) \(isa)", file: file, line: line)
            }
        }
    }
}

/// An operator pinned to one quantized level whatever `InstructionSet` it is given, so the
/// shared checker runs the int8/bf16 kernels on each level, including AVX-512 without the dot
/// products.
final class PinnedLevel: LinearOperator, @unchecked Sendable {
    typealias Body = (UnsafePointer<Float>, Int, Int, UnsafeMutablePointer<Float>, Int, Activation, KernelPool?) -> Void
    let base: any LinearOperator
    let body: Body
    init(_ base: any LinearOperator, _ body: @escaping Body) {
        self.base = base
        self.body = body
    }
    var inputFeatures: Int { base.inputFeatures }
    var outputFeatures: Int { base.outputFeatures }
    var storage: String { base.storage }
    var parameterCount: Int { base.parameterCount }
    var byteCount: Int { base.byteCount }
    func apply(_ x: UnsafePointer<Float>, rows: Int, inputStride: Int, into y: UnsafeMutablePointer<Float>, outputStride: Int,
               activation: Activation, pool: KernelPool?, isa: InstructionSet) {
        body(x, rows, inputStride, y, outputStride, activation, pool)
    }
}

extension OperatorChecker {
    /// `op` on the rows of `x` at `level` (no pool), as a new output array.
    static func applied(_ op: some QuantizedLevelOperator, _ x: Matrix, level: QuantizedInstructionSet,
                        activation: Activation) -> [Float] {
        var y = [Float](repeating: .nan, count: x.rows * op.outputFeatures)
        x.values.withUnsafeBufferPointer { xs in
            y.withUnsafeMutableBufferPointer { ys in
                op.apply(xs.baseAddress!, rows: x.rows, inputStride: x.columns, into: ys.baseAddress!, outputStride: op.outputFeatures,
                         activation: activation, pool: nil, level: level)
            }
        }
        return y
    }
}

extension OperatorChecker {
    /// Checks `op` (already pinned to a level) against the fp64 reference of weight `w` applied to
    /// `transform(x)` (the inputs as the kernel sees them, e.g. quantized), for each row count.
    static func checkTransformed(_ op: any LinearOperator, dense w: [Float], bias: [Float]?, rowCounts: [Int],
                                 random: inout TestRandom, tolerance: Double = 1e-5, pool: KernelPool? = nil,
                                 transform: ([Float], Int) -> [Float], _ what: String,
                                 file: StaticString = #filePath, line: UInt = #line) {
        let k = op.inputFeatures, n = op.outputFeatures
        for (index, rows) in rowCounts.enumerated() {
            let x = random.array(rows * k)
            let ref = reference(x: transform(x, k), rows: rows, weights: w, outputs: n, inputs: k, bias: bias)
            let activation = Activation.allCases[index % Activation.allCases.count]
            let got = run(op, x: x, rows: rows, activation: activation, isa: .current, pool: pool, file: file, line: line)
            assertClose(got, ref, activation: activation, tolerance: tolerance, "\(what) rows=\(rows) \(activation)",
                        file: file, line: line)
        }
    }
}

extension OperatorChecker {
    /// 2-thread pools that split every call: by token rows from 2 parts of 32 rows (the default),
    /// from 2 parts of one 8-row tile, and never by token rows (by output panels only).
    static let splitPools: [(String, KernelPool)] = [
        ("token parts >= 32 rows", KernelPool(threads: 2, minimumSplitSeconds: 0)),
        ("token parts >= 8 rows", KernelPool(threads: 2, minimumSplitSeconds: 0, minimumTokenSplitRows: 8)),
        ("output panels only", KernelPool(threads: 2, minimumSplitSeconds: 0, minimumTokenSplitRows: .max)),
    ]

    /// `op` split across each of `splitPools` against the same call unsplit, on every quantized
    /// level: bit for bit equal, with row strides wider than the rows (ldx = k + 3, ldy = n + 5),
    /// a fused GELU, and the columns past n left alone.
    static func checkSplitEqualsSerial(_ op: some QuantizedLevelOperator, rows: Int, random: inout TestRandom,
                                       _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        let (ldx, ldy) = (op.inputFeatures + 3, op.outputFeatures + 5)
        let x = random.array(rows * ldx)
        for level in QuantizedInstructionSet.available {
            var serial = [Float](repeating: -7, count: rows * ldy)
            op.apply(x, rows: rows, inputStride: ldx, into: &serial, outputStride: ldy, activation: .gelu, pool: nil, level: level)
            for (split, pool) in splitPools {
                var y = [Float](repeating: -7, count: rows * ldy)
                op.apply(x, rows: rows, inputStride: ldx, into: &y, outputStride: ldy, activation: .gelu, pool: pool, level: level)
                XCTAssertEqual(y, serial, "\(message) rows=\(rows) \(level), \(split)", file: file, line: line)
                XCTAssertEqual(y[ldy - 1], -7, "\(message): columns past n untouched", file: file, line: line)
            }
        }
    }

    /// `checkSplitEqualsSerial` at MiniLM's shapes (K × N = 384 × 384 and 1536 × 384) with 128
    /// rows, the 2-thread case of issue 17 (by default split by token rows into 4 parts of 32);
    /// `make(weights, k, n, bias)` builds the operator.
    static func checkMiniLMShapesSplitEqualsSerial(seed: UInt64, _ message: String,
                                                   make: ([Float], Int, Int, [Float]) throws -> some QuantizedLevelOperator,
                                                   file: StaticString = #filePath, line: UInt = #line) rethrows {
        var random = TestRandom(seed: seed)
        for (k, n) in [(384, 384), (1536, 384)] {
            let op = try make(random.array(n * k), k, n, random.array(n))
            checkSplitEqualsSerial(op, rows: 128, random: &random, "\(message) \(k)x\(n)", file: file, line: line)
        }
    }
}
