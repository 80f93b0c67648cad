import Foundation
import SparseKernels

// Placeholder entry point; the kernel benchmarks land with the kernel engine (issue 3).
print("kernel-bench: CPU \(InstructionSet.current)")
