#ifndef SPARSESERVE_CSR_INT8_WEIGHTS_H
#define SPARSESERVE_CSR_INT8_WEIGHTS_H
#include <stddef.h>
#include <stdint.h>
#include "cpu_features.h"
#include "activations.h"
#include "status.h"

/*
 * Unstructured sparse weight-only int8 linear layer in CSR form ("csr w8"): output row i keeps
 * int8 values val[row_ptr[i] .. row_ptr[i+1]) at input columns col[...] with one fp32 scale
 * scale[i]; activations stay fp32:
 *   y[t][i] = act(scale[i] * sum_e val[e] * x[t][col[e]] + bias[i]).
 * The int8 values are widened to fp32 in registers and the row scale applied once with the bias.
 *   M <= 2 (GEMV): per output row, 16 (AVX-512) or 8 (AVX2) inputs gathered by column, 16 / 8
 *     values widened (vpmovsxbd + vcvtdq2ps), one FMA.
 *   M >= 3 (GEMM): tiles of up to 64 tokens transposed (K-major, as csr.h); each value is widened
 *     once and broadcast against vectors of tokens; the 16 x 64 panel is rescaled, biased and
 *     transposed back with the activation.
 * 5 bytes per kept weight (int8 value + int32 column) against fp32 CSR's 8.
 */

/// Y = act(...) for output rows [row_begin, row_end); x is M x K (stride ldx), y M x rows
/// (stride ldy); scale and bias (or NULL) have `rows` entries; columns must lie in 0..K-1 and
/// row_ptr must not decrease (the caller checks the structure once, as CSRWeights does). Returns
/// SS_OK, SS_ERR_ARGUMENT (sizes) or SS_ERR_NO_MEMORY.
int ss_csrw8_gemm_rows_isa(ss_isa isa, const int32_t *row_ptr, const int32_t *col, const int8_t *val,
                           const float *scale, const float *bias, ptrdiff_t rows, ptrdiff_t k,
                           const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t m,
                           ss_act_kind act, ptrdiff_t row_begin, ptrdiff_t row_end);

#endif
