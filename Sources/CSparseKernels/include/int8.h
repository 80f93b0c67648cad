#ifndef SPARSESERVE_INT8_H
#define SPARSESERVE_INT8_H
#include <stddef.h>
#include <stdint.h>
#include "cpu_features.h"
#include "activations.h"
#include "status.h"

/*
 * int8 linear layers, Y[M][N] = act(X[M][K] W^T + bias), two kinds:
 *
 * W8A8 ("q8", int8 x int8 -> int32): weights symmetric int8 with one fp32 scale per output row;
 * each token row of X is quantized at call time to int8 with its own scale (absmax / 127, round
 * to nearest even) and stored offset by +128 as uint8 for `vpdpbusd` (u8 x s8). The offset is
 * removed exactly with a per-row correction 128 * sum_k w[j][k] computed at pack time, so every
 * level (VNNI, AVX-512BW / AVX2 16-bit madd, portable) produces the same int32 sums:
 *   y[t][j] = act(xscale[t] * wscale[j] * (sum_k xq[t][k] w[j][k]) + bias[j]).
 * Packed weight: 16-row panels of 4-input quads, wp[p][K4/4][16][4] (K4 = K rounded up to 4),
 * 64 bytes per (panel, quad) = one zmm, and 16 quads of a panel = one AMX tile (the AMX level
 * runs calls of 8 rows or more with `tdpbusd` when K4 is a multiple of 64); rows past N and
 * inputs past K are zero.
 * Exactness: int32 sums cannot overflow for K <= 65536 (|u8 * s8| <= 255 * 128); larger K is refused.
 *
 * W8 ("w8", weight-only, fp32 activations): int8 weights dequantised in registers (int8 -> fp32
 * convert, times the group scale) and fp32 FMAs; scales per output row (group = 0) or per row
 * and group of `group` consecutive inputs. Packed weight wp[p][K][16] (16 bytes per panel and
 * input); packed scales sp[p][G][16] (G = 1 for per-row scales, else ceil(K / group)).
 */

/// Symmetric int8 quantization of a row-major N x K weight (stride ldw): per row (group = 0) or
/// per row and group of `group` inputs, scale = absmax / 127 (1 for an all-zero group), q =
/// round(w / scale) in [-127, 127]. q is N x K (stride K); scales N x G row-major. Returns
/// SS_ERR_ARGUMENT for bad sizes or a non-finite weight.
int ss_int8_quantize_weights(const float *w, ptrdiff_t n, ptrdiff_t k, ptrdiff_t ldw, ptrdiff_t group,
                             int8_t *q, float *scales);

/* ---- W8A8 ---------------------------------------------------------------------------------- */

/// Bytes of a packed q8 weight: ceil(N/16)*16 * K4; corrections hold ceil(N/16)*16 int32.
ptrdiff_t ss_q8_packed_bytes(ptrdiff_t n, ptrdiff_t k);
ptrdiff_t ss_q8_padded_rows(ptrdiff_t n);
/// Packs int8 weights q (N x K, stride ldq) and writes correction[j] = 128 * sum_k q[j][k].
int ss_q8_pack(const int8_t *q, ptrdiff_t n, ptrdiff_t k, ptrdiff_t ldq, int8_t *wp, int32_t *correction);

/// Bytes per quantized activation row: K4.
ptrdiff_t ss_q8_row_bytes(ptrdiff_t k);
/// Quantizes M rows of x (stride ldx) into xq (M rows of K4 bytes, +128 offset, padding = 128)
/// and xscale (M values). Non-finite inputs give SS_ERR_ARGUMENT.
int ss_q8_quantize_rows_isa(ss_qisa isa, const float *x, ptrdiff_t ldx, ptrdiff_t m, ptrdiff_t k,
                            uint8_t *xq, float *xscale);

/// The GEMM over already quantized rows (xq: M rows of K4 bytes), output columns [n_begin,
/// n_end) only (n_begin a multiple of 16, n_end a multiple of 16 or N). wscale and correction have
/// ss_q8_padded_rows(N) entries; bias N or NULL.
int ss_q8_gemm_quantized_cols_isa(ss_qisa isa, const int8_t *wp, const int32_t *correction, const float *wscale,
                                  const float *bias, ptrdiff_t n, ptrdiff_t k, const uint8_t *xq, const float *xscale,
                                  ptrdiff_t m, float *y, ptrdiff_t ldy, ss_act_kind act, ptrdiff_t n_begin, ptrdiff_t n_end);

/// Quantizes x (per-thread scratch) and runs the GEMM over columns [n_begin, n_end).
int ss_q8_gemm_cols_isa(ss_qisa isa, const int8_t *wp, const int32_t *correction, const float *wscale,
                        const float *bias, ptrdiff_t n, ptrdiff_t k, const float *x, ptrdiff_t ldx,
                        ptrdiff_t m, float *y, ptrdiff_t ldy, ss_act_kind act, ptrdiff_t n_begin, ptrdiff_t n_end);

/* ---- W8 (weight-only) ------------------------------------------------------------------------ */

ptrdiff_t ss_w8_packed_bytes(ptrdiff_t n, ptrdiff_t k);
/// Floats of packed scales: ceil(N/16)*16 * G, G = 1 (group = 0) or ceil(K / group).
ptrdiff_t ss_w8_scale_count(ptrdiff_t n, ptrdiff_t k, ptrdiff_t group);
/// Packs q (N x K, stride ldq) and scales (N x G row-major, as from ss_int8_quantize_weights).
int ss_w8_pack(const int8_t *q, const float *scales, ptrdiff_t n, ptrdiff_t k, ptrdiff_t ldq, ptrdiff_t group,
               int8_t *wp, float *sp);
/// Y = act(X Wdeq^T + bias) over output columns [n_begin, n_end) (alignment as for dense).
int ss_w8_gemm_cols_isa(ss_isa isa, const int8_t *wp, const float *sp, ptrdiff_t group, const float *bias,
                        ptrdiff_t n, ptrdiff_t k, const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy,
                        ptrdiff_t m, ss_act_kind act, ptrdiff_t n_begin, ptrdiff_t n_end);

#endif
