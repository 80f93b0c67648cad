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

/// 1 when this CPU has AMX-INT8 and AMX-BF16 tiles and this process may use them (cached; the
/// first call asks Linux for the permission).
int ss_amx_usable(void);
/// W8A8 on AMX tiles (amx.c) over all m quantized rows, columns [n_begin, n_end), with
/// ss_q8_gemm_quantized_cols_isa's operands and outputs. Returns the rows it computed: m, or 0
/// without AMX, with K4 not a multiple of 64 or fewer than SS_AMX_MIN_ROWS rows.
int ss_q8_amx_rows(const int8_t *wp, const int32_t *correction, const float *wscale, const float *bias, ptrdiff_t k,
                   const uint8_t *xq, const float *xscale, ptrdiff_t m, float *y, ptrdiff_t ldy, ss_act_kind act,
                   ptrdiff_t n_begin, ptrdiff_t n_end);
/// bf16 weights on AMX tiles: the packed weight, m >= 1 rows already rounded to bf16 (xb: rows
/// of K rounded up to 2 values, as bf16.c rounds them); returns m, or 0 without AMX or with 2 K2
/// (bytes per row) not a multiple of 64.
int ss_bf16_amx_rows(const uint16_t *wp, const float *bias, ptrdiff_t k, const uint16_t *xb, ptrdiff_t m, float *y,
                     ptrdiff_t ldy, ss_act_kind act, ptrdiff_t n_begin, ptrdiff_t n_end);

/* Per-thread scratch (scratch.h) slots used inside the kernels. */
enum { SS_SCRATCH_TILES = 0, SS_SCRATCH_PANEL = 1, SS_SCRATCH_ROWS = 2,
       /* quantized or rounded activations of the int8 / bf16 kernels: their input may itself live
        * in slot 2 or 3 (a caller's scratch, e.g. BLAST's mixed h) */
       SS_SCRATCH_QUANT = 4 };

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
/// The loop nest of the panel-tiled kernels (int8, int8_weights, bf16; as in dense.c): rows in
/// chunks of `chunk` (so a chunk of X stays in L2), then groups of `panels` output panels (or
/// `gemv_panels` when M <= 2) within columns [n_begin, n_end), then balanced row tiles of at most
/// `max_rows` rows. `chunk_begin` (may be NULL) runs before each chunk, `tile` computes one
/// register tile; activations other than ReLU (which tiles fuse) are applied to y afterwards.
typedef struct { int max_rows, panels, gemv_panels; } ss_tile_shape;
typedef struct {
    void *ctx;
    void (*chunk_begin)(void *ctx, ptrdiff_t r0, ptrdiff_t rows);
    void (*tile)(void *ctx, ptrdiff_t row, int mr, ptrdiff_t panel, int np, ptrdiff_t col0, ptrdiff_t cols);
} ss_tile_visitor;
void ss_panel_tiles(ss_tile_shape shape, ptrdiff_t m, ptrdiff_t chunk, ptrdiff_t n_begin, ptrdiff_t n_end,
                    ss_isa act_isa, ss_act_kind act, float *y, ptrdiff_t ldy, const ss_tile_visitor *visitor);
/* Register-tile kernel sets of the AVX-512 panel kernels: rows 1..8 for 1..3 panels, rows 1..2
 * for 4..8 panels (GEMV). SS_TILES_8X3(DEF) expands DEF(MR, NP) for each; SS_TILE_TABLE_8X3(P)
 * is the initializer of a [9][9] table [np][mr] of the functions P##_MR_NP (NULL elsewhere). */
#define SS_TILES_ROWS_(DEF, NP) DEF(1, NP) DEF(2, NP) DEF(3, NP) DEF(4, NP) DEF(5, NP) DEF(6, NP) DEF(7, NP) DEF(8, NP)
#define SS_TILES_8X3(DEF) SS_TILES_ROWS_(DEF, 1) SS_TILES_ROWS_(DEF, 2) SS_TILES_ROWS_(DEF, 3) \
    DEF(1, 4) DEF(1, 5) DEF(1, 6) DEF(1, 7) DEF(1, 8) DEF(2, 4) DEF(2, 5) DEF(2, 6) DEF(2, 7) DEF(2, 8)
#define SS_TILE_ROWS_(P, NP) { NULL, P##_1_##NP, P##_2_##NP, P##_3_##NP, P##_4_##NP, P##_5_##NP, P##_6_##NP, P##_7_##NP, P##_8_##NP }
#define SS_TILE_GEMV_(P, NP) { NULL, P##_1_##NP, P##_2_##NP, NULL, NULL, NULL, NULL, NULL, NULL }
#define SS_TILE_TABLE_8X3(P) { { NULL }, SS_TILE_ROWS_(P, 1), SS_TILE_ROWS_(P, 2), SS_TILE_ROWS_(P, 3), \
    SS_TILE_GEMV_(P, 4), SS_TILE_GEMV_(P, 5), SS_TILE_GEMV_(P, 6), SS_TILE_GEMV_(P, 7), SS_TILE_GEMV_(P, 8) }

/// 0 when [n_begin, n_end) is a valid panel-aligned column range of N (n_begin a multiple of 16,
/// n_end one or N) and the sizes are positive (m >= 0), else SS_ERR_ARGUMENT (-1).
int ss_check_columns(ptrdiff_t n, ptrdiff_t k, ptrdiff_t m, ptrdiff_t n_begin, ptrdiff_t n_end);

/// Portable forms of the transposes.
void ss_xpose_in_c(const float *x, ptrdiff_t ldx, ptrdiff_t rows, ptrdiff_t k, ptrdiff_t k_pad,
                   float *xt, ptrdiff_t ldt, ptrdiff_t cols_pad);
void ss_xpose_out_c(const float *yt, ptrdiff_t ldt, ptrdiff_t rows, ptrdiff_t cols, float *y, ptrdiff_t ldy);

#endif
