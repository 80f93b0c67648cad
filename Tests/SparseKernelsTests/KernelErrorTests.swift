import CSparseKernels
import XCTest
@testable import SparseKernels

/// Kernels report a failed scratch allocation (ss_scratch_fail_next) as SS_ERR_NO_MEMORY instead
/// of returning silently, and KernelError names the operation and the cause.
final class KernelErrorTests: XCTestCase {
    override func tearDown() { ss_scratch_fail_next(0) }

    /// A fresh thread has no scratch buffers yet, so its first kernel call must allocate them.
    private func onFreshThread(_ body: @escaping @Sendable () -> Int32) -> Int32 {
        let result = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        defer { result.deallocate() }
        let done = DispatchSemaphore(value: 0)
        let box = UnsafeSendableMutableInt32(result)
        Thread {
            box.pointer.pointee = body()
            done.signal()
        }.start()
        done.wait()
        return result.pointee
    }

    func testNMKernelReportsOutOfMemory() throws {
        let (k, n) = (64, 32)
        let op = try NMWeights(magnitudePruning: (0..<(k * n)).map { Float($0 % 7) - 3 }, outputFeatures: n, inputFeatures: k, n: 2, m: 4)
        let values = op.packedValues, words = op.packedIndexWords.map { UInt32($0) }
        for (rows, isa) in [(1, SS_ISA_PORTABLE), (40, SS_ISA_PORTABLE), (40, ss_hardware_isa())] {
            let x = [Float](repeating: 1, count: rows * k)
            let status = onFreshThread {
                var y = [Float](repeating: 0, count: rows * n)
                ss_scratch_fail_next(1)
                return values.withUnsafeBufferPointer { v in
                    words.withUnsafeBufferPointer { i in
                        ss_nm_gemm_isa(isa, v.baseAddress, i.baseAddress, 2, 4, nil, n, k, x, k, &y, n, rows, SS_ACT_NONE)
                    }
                }
            }
            XCTAssertEqual(status, SS_ERR_NO_MEMORY.rawValue, "\(rows) rows")
        }
    }

    func testCSRKernelReportsOutOfMemory() {
        let (k, n, rows) = (32, 16, 20)
        let starts = (0...n).map { Int32($0 * 2) }, cols = (0..<(2 * n)).map { Int32($0 % k) }
        let vals = [Float](repeating: 1, count: 2 * n), x = [Float](repeating: 1, count: rows * k)
        let status = onFreshThread {
            var y = [Float](repeating: 0, count: rows * n)
            ss_scratch_fail_next(1)
            return ss_csr_gemm_isa(SS_ISA_PORTABLE, starts, cols, vals, nil, n, k, x, k, &y, n, rows, SS_ACT_NONE)
        }
        XCTAssertEqual(status, SS_ERR_NO_MEMORY.rawValue)
        var y = [Float](repeating: 0, count: rows * n)
        XCTAssertEqual(ss_csr_gemm_isa(SS_ISA_PORTABLE, starts, cols, vals, nil, n, k, x, k, &y, n, rows, SS_ACT_NONE), SS_OK.rawValue)
        XCTAssertEqual(y[0], 2)
    }

    func testKernelErrorNamesOperationAndCause() {
        XCTAssertNoThrow(try KernelError.check(SS_OK.rawValue, "x"))
        XCTAssertThrowsError(try KernelError.check(SS_ERR_NO_MEMORY.rawValue, "nm 2:4 384→1536")) { error in
            let e = error as? KernelError
            XCTAssertEqual(e?.isOutOfMemory, true)
            XCTAssertEqual(e?.description, "nm 2:4 384→1536: out of memory (kernel scratch buffer)")
        }
        XCTAssertEqual(KernelError(status: SS_ERR_ARGUMENT.rawValue, operation: "csr").description, "csr: invalid argument")
    }
}

private struct UnsafeSendableMutableInt32: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Int32>
    init(_ p: UnsafeMutablePointer<Int32>) { pointer = p }
}
