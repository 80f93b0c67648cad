#ifndef SPARSESERVE_CPU_FEATURES_H
#define SPARSESERVE_CPU_FEATURES_H
/// Instruction-set levels the kernels dispatch on at run time.
typedef enum { SS_ISA_PORTABLE = 0, SS_ISA_AVX2 = 1, SS_ISA_AVX512 = 2 } ss_isa;
/// The best level this CPU supports (cached after the first call); SPARSESERVE_ISA=portable|avx2|avx512 caps it.
ss_isa ss_detect_isa(void);
/// The best level the hardware supports, ignoring SPARSESERVE_ISA (tests use it to run every path).
ss_isa ss_hardware_isa(void);
/// `requested` lowered to what the hardware supports, so an explicit-ISA kernel call can never fault.
ss_isa ss_clamp_isa(ss_isa requested);
#endif
