import CSparseKernels
import XCTest
import SparseKernels

/// Instruction-set levels: order, what this process may use, and the C values they map to.
final class CPUTests: XCTestCase {
    func testLevelsAreOrdered() {
        XCTAssertEqual(InstructionSet.allCases.sorted(), [.portable, .avx2, .avx512])
        XCTAssertLessThan(InstructionSet.portable, .avx2)
        XCTAssertFalse(InstructionSet.avx512 < .avx512)
    }

    /// The current level never exceeds the hardware; every available level is at most the hardware's
    /// and portable is always among them.
    func testCurrentAndAvailableRespectTheHardware() {
        XCTAssertLessThanOrEqual(InstructionSet.current, InstructionSet.hardware)
        XCTAssertEqual(InstructionSet.available.first, .portable)
        XCTAssertEqual(InstructionSet.available.last, InstructionSet.hardware)
        if let cap = ProcessInfo.processInfo.environment["SPARSESERVE_ISA"], let limit = InstructionSet(rawValue: cap) {
            XCTAssertLessThanOrEqual(InstructionSet.current, limit, "SPARSESERVE_ISA caps the level")
        } else {
            XCTAssertEqual(InstructionSet.current, InstructionSet.hardware)
        }
    }

    func testCValuesMatchTheKernels() {
        XCTAssertEqual(InstructionSet.portable.cValue, SS_ISA_PORTABLE)
        XCTAssertEqual(InstructionSet.avx2.cValue, SS_ISA_AVX2)
        XCTAssertEqual(InstructionSet.avx512.cValue, SS_ISA_AVX512)
        XCTAssertEqual(InstructionSet.current.cValue, ss_detect_isa())
        XCTAssertEqual(InstructionSet(rawValue: "avx512"), .avx512)
        XCTAssertNil(InstructionSet(rawValue: "AVX512"))
    }
}
