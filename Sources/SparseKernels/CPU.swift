import CSparseKernels

/// The instruction-set level the C kernels run on, chosen once at run time from CPUID.
public enum InstructionSet: String, Sendable, CaseIterable, Comparable {
    case portable, avx2, avx512

    /// What this process uses (honours the `SPARSESERVE_ISA` cap).
    public static var current: InstructionSet { InstructionSet(ss_detect_isa()) }

    /// The best level the hardware supports, ignoring `SPARSESERVE_ISA`.
    public static var hardware: InstructionSet { InstructionSet(ss_hardware_isa()) }

    /// Every level this machine can run (tests exercise each kernel path with these).
    public static var available: [InstructionSet] { allCases.filter { $0 <= hardware } }

    init(_ isa: ss_isa) {
        switch isa {
        case SS_ISA_AVX512: self = .avx512
        case SS_ISA_AVX2: self = .avx2
        default: self = .portable
        }
    }

    /// The C enum value (for C code outside this module, e.g. the compression solvers).
    public var cValue: ss_isa {
        switch self {
        case .portable: return SS_ISA_PORTABLE
        case .avx2: return SS_ISA_AVX2
        case .avx512: return SS_ISA_AVX512
        }
    }

    private var rank: Int {
        switch self {
        case .portable: return 0
        case .avx2: return 1
        case .avx512: return 2
        }
    }

    public static func < (a: InstructionSet, b: InstructionSet) -> Bool { a.rank < b.rank }
}
