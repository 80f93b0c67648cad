/*
 * Private helpers shared by the kernel files (not part of the module's public headers):
 * target attributes, masks, per-thread scratch memory and in-register transposes.
 */
#ifndef SPARSESERVE_INTERNAL_H
#define SPARSESERVE_INTERNAL_H
#include <stddef.h>
#include <stdint.h>
#include "cpu_features.h"
#include "activations.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SS_X86 1
#endif

#define SS_T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define SS_T256 __attribute__((target("avx2,fma")))
#define SS_AI static inline __attribute__((always_inline))
#define SS_PANEL 16

static inline ptrdiff_t ss_min(ptrdiff_t a, ptrdiff_t b) { return a < b ? a : b; }
static inline ptrdiff_t ss_max(ptrdiff_t a, ptrdiff_t b) { return a > b ? a : b; }
static inline ptrdiff_t ss_ceil_div(ptrdiff_t a, ptrdiff_t b) { return (a + b - 1) / b; }

/// A 64-byte aligned buffer of at least `floats` floats owned by the calling thread, one per
/// `slot` (0..3). It grows on demand, is reused by later calls on the same thread (so kernels do
/// not hit malloc/mmap on every call) and is freed when the thread exits. NULL if out of memory.
/// Contents are not preserved across calls that ask for more than the current capacity.
float *ss_thread_scratch(int slot, size_t floats);

#ifdef SS_X86
/// xt[kk * ldt + t] = x[t * ldx + kk] for t < rows (<= ldt), kk < k; columns t in [rows, cols_pad)
/// and rows kk in [k, k_pad) are zero. cols_pad is a multiple of 16.
void ss_xpose_in_512(const float *x, ptrdiff_t ldx, ptrdiff_t rows, ptrdiff_t k, ptrdiff_t k_pad,
                     float *xt, ptrdiff_t ldt, ptrdiff_t cols_pad);
/// y[t * ldy + j] = yt[j * ldt + t] for j < cols (<= 16), t < rows: the 16 x rows block of a
/// panel's transposed outputs written back row-major (masked for column and row tails).
void ss_xpose_out_512(const float *yt, ptrdiff_t ldt, ptrdiff_t rows, ptrdiff_t cols, float *y, ptrdiff_t ldy);
/// AVX2 forms (cols_pad a multiple of 8).
void ss_xpose_in_256(const float *x, ptrdiff_t ldx, ptrdiff_t rows, ptrdiff_t k, ptrdiff_t k_pad,
                     float *xt, ptrdiff_t ldt, ptrdiff_t cols_pad);
void ss_xpose_out_256(const float *yt, ptrdiff_t ldt, ptrdiff_t rows, ptrdiff_t cols, float *y, ptrdiff_t ldy);
#endif
/// Activation on the first `cols` rows of a panel's transposed outputs yt (16 x ldt), then
/// written back row-major: y[t * ldy + j] = yt[j * ldt + t] for t < tokens, j < cols.
void ss_panel_store(ss_isa isa, ss_act_kind act, float *yt, ptrdiff_t ldt, ptrdiff_t tokens, ptrdiff_t cols,
                    float *y, ptrdiff_t ldy);
/// Portable forms of the transposes.
void ss_xpose_in_c(const float *x, ptrdiff_t ldx, ptrdiff_t rows, ptrdiff_t k, ptrdiff_t k_pad,
                   float *xt, ptrdiff_t ldt, ptrdiff_t cols_pad);
void ss_xpose_out_c(const float *yt, ptrdiff_t ldt, ptrdiff_t rows, ptrdiff_t cols, float *y, ptrdiff_t ldy);

#endif
