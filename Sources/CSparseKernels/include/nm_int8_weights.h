#ifndef SPARSESERVE_NM_INT8_WEIGHTS_H
#define SPARSESERVE_NM_INT8_WEIGHTS_H
#include <stddef.h>
#include <stdint.h>
#include "cpu_features.h"
#include "activations.h"
#include "status.h"

/*
 * N:M-sparse weight-only int8 linear layers ("nm w8"): the N:M pack of nm.h (any n:m with m in
 * {4, 8, 16}, same slots and index words) with int8 values instead of fp32, fp32 activations:
 *   y[t][j] = act(sum_k x[t][k] * q[j][k] * scale(j, k) + bias[j]),
 * scale(j, k) = one fp32 scale per output row (group = 0) or per row and group of `group`
 * consecutive inputs (group a multiple of m, so an N:M group never straddles two scales).
 * Packed scales sp[p][GS][16] (GS = 1, or ceil(K / group)); rows past N hold scale 0.
 * 1 byte per kept weight plus the index bits (fp32 N:M: 4 bytes plus the index bits).
 *
 * Kernel (every row count): the in-register selection of nm.h — each slot's 16 lanes decode
 * their positions from the broadcast index word, pick their inputs with a permute, and the 16
 * int8 values are widened to fp32 in registers (times the group's scale when grouped; the
 * per-row scale is applied once in the epilogue with the bias). AVX-512: up to 8 token rows share
 * each decode; AVX2: one row at a time; portable C. Rows run in batches of 32 over blocks of
 * panels of ~64 KB of values, so a call streams the weights once per batch. No weight-broadcast
 * GEMM for large batches (as the bf16 N:M kernel).
 */

/// Floats of packed scales for `rows` outputs, K inputs: ceil(rows/16)*16 * GS.
ptrdiff_t ss_nmw8_scale_count(ptrdiff_t rows, ptrdiff_t k, int m, ptrdiff_t group);

/// Packs row-major scales (rows x GS, as ss_int8_quantize_weights writes them) into sp. Returns
/// SS_ERR_ARGUMENT for sizes, an unsupported m, or a group that is not a positive multiple of m.
int ss_nmw8_pack_scales(const float *scales, ptrdiff_t rows, ptrdiff_t k, int m, ptrdiff_t group, float *sp);

/// Y = act(X Wdeq^T + bias) over output panels [panel_begin, panel_end). values: the int8 pack
/// (ss_nm_value_count bytes), indices as nm.h, sp packed scales. Returns SS_OK, SS_ERR_ARGUMENT
/// or SS_ERR_NO_MEMORY.
int ss_nmw8_gemm_panels_isa(ss_isa isa, const int8_t *values, const void *indices, const float *sp, int n, int m,
                            ptrdiff_t group, const float *bias, ptrdiff_t rows, ptrdiff_t k,
                            const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t r,
                            ss_act_kind act, ptrdiff_t panel_begin, ptrdiff_t panel_end);

#endif
