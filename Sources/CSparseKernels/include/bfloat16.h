#ifndef SPARSESERVE_BFLOAT16_H
#define SPARSESERVE_BFLOAT16_H
#include <stddef.h>
#include <stdint.h>
#include "cpu_features.h"
#include "activations.h"
#include "status.h"

/*
 * bf16-weight linear layers, Y[M][N] = act(X[M][K] W^T + bias), fp32 activations and outputs.
 * Packed weight: 16-row panels of input pairs, wp[p][K2/2][16][2] uint16 (K2 = K rounded up to
 * 2; rows past N and the input past an odd K are zero), i.e. one 32-bit lane per (row, pair) as
 * `vdpbf16ps` wants it. Weights are rounded to bf16 to nearest even.
 *
 *   AMX level: calls of 8 rows or more as `tdpbf16ps` tile products over the same pack (16
 *     pairs of a panel = one tile; K2 a multiple of 32), inputs rounded as below; others below;
 *   AVX512_DOT level: inputs rounded to bf16 (nearest even, per call) and `vdpbf16ps`
 *     (2 products per lane and instruction, fp32 accumulation);
 *   AVX-512 / AVX2 / portable: each weight widened to fp32 in registers (a shift or a mask) and
 *     fp32 FMAs with the unrounded inputs.
 * Tiles as in dense.c (AVX-512 8 rows x 3 panels, GEMV 8 panels).
 */

/// Packed length in uint16: ceil(N/16)*16 * K2.
ptrdiff_t ss_bf16_packed_count(ptrdiff_t n, ptrdiff_t k);
/// Rounds a row-major N x K weight (stride ldw) to bf16 and packs it. Non-finite weights give
/// SS_ERR_ARGUMENT.
int ss_bf16_pack(const float *w, ptrdiff_t n, ptrdiff_t k, ptrdiff_t ldw, uint16_t *wp);
/// Packs weights that are already bf16 bit patterns (N x K, stride ldw).
int ss_bf16_pack_bits(const uint16_t *w, ptrdiff_t n, ptrdiff_t k, ptrdiff_t ldw, uint16_t *wp);
/// float -> bf16 bits, nearest even (NaN stays NaN).
uint16_t ss_bf16_from_float(float x);

/// Y = act(X W^T + bias) over output columns [n_begin, n_end) (alignment as for dense).
int ss_bf16_gemm_cols_isa(ss_qisa isa, const uint16_t *wp, const float *bias, ptrdiff_t n, ptrdiff_t k,
                          const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t m,
                          ss_act_kind act, ptrdiff_t n_begin, ptrdiff_t n_end);

#endif
