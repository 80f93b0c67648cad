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
#include "scratch.h"

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

/* Per-thread scratch (scratch.h) slots used inside the kernels. */
enum { SS_SCRATCH_TILES = 0, SS_SCRATCH_PANEL = 1, SS_SCRATCH_ROWS = 2 };

/* Token tiles of the weight-broadcast GEMMs: X^T of up to SS_TILE tokens per tile, tile t at
 * xt + t * k_pad * SS_TILE, K-major with row stride ss_tile_ldt(isa, tokens in the tile). */
enum { SS_TILE = 64 };
static inline ptrdiff_t ss_tile_ldt(ss_isa isa, ptrdiff_t tokens) {
    return isa == SS_ISA_AVX512 ? (tokens + 15) / 16 * 16 : SS_TILE;
}
static inline ptrdiff_t ss_tiles_floats(ptrdiff_t k_pad, ptrdiff_t r) { return (r + SS_TILE - 1) / SS_TILE * k_pad * SS_TILE; }
/// Transposes rows 0..r-1 of x into the tiles (rows k..k_pad-1 and unused token columns zero).
void ss_tiles_transpose(ss_isa isa, const float *x, ptrdiff_t ldx, ptrdiff_t r, ptrdiff_t k, ptrdiff_t k_pad, float *xt);

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
