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

/// Levels of the quantized (int8 / bf16) kernels: the fp32 levels plus one for AVX-512 with the
/// dot-product extensions VNNI (`vpdpbusd`) and BF16 (`vdpbf16ps`), and VBMI (byte permutes for
/// the sparse int8 decode), which must all be present (Ice Lake / Zen 4 and later), and one more
/// for that plus AMX tiles (AMX-INT8 and AMX-BF16, Sapphire Rapids and later, with Linux's
/// permission for the tile data): kernels without an AMX path run their dot-product one there.
typedef enum { SS_QISA_PORTABLE = 0, SS_QISA_AVX2 = 1, SS_QISA_AVX512 = 2, SS_QISA_AVX512_DOT = 3, SS_QISA_AMX = 4 } ss_qisa;
/// Fewest rows of a call the AMX kernels run on tiles (fewer: the dot-product level's registers).
#define SS_AMX_MIN_ROWS 8
/// Best quantized level (cached); SPARSESERVE_ISA caps it as for ss_detect_isa ("avx512" keeps
/// the plain AVX-512 paths, "avx512dot" the dot-product ones without AMX, unset allows AMX).
ss_qisa ss_detect_qisa(void);
/// Best level the hardware supports, ignoring SPARSESERVE_ISA.
ss_qisa ss_hardware_qisa(void);
/// `requested` lowered to what the hardware supports.
ss_qisa ss_clamp_qisa(ss_qisa requested);
/// The fp32 level a quantized level runs its fp32 helpers (activations) on.
ss_isa ss_qisa_base(ss_qisa level);
#endif
