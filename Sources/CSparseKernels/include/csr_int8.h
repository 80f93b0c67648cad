#ifndef SPARSESERVE_CSR_INT8_H
#define SPARSESERVE_CSR_INT8_H
#include <stddef.h>
#include <stdint.h>
#include "cpu_features.h"
#include "activations.h"
#include "status.h"

/*
 * Unstructured sparse W8A8 linear layer in CSR form: output row i keeps int8 values
 * val[row_ptr[i] .. row_ptr[i+1]) at input columns col[...] with one fp32 scale wscale[i]; each
 * token row of X is quantized at call time to int8 (absmax / 127, nearest even, as int8.h) and
 * the products are summed exactly in int32:
 *   y[t][i] = act(xscale[t] * wscale[i] * sum_e xq[t][col[e]] * val[e] + bias[i]).
 * Exactness: |xq|, |val| <= 128, so rows of at most SS_CSR8_MAX_ROW_NONZEROS non-zeros cannot
 * overflow int32; longer rows are refused (SS_ERR_ARGUMENT).
 *
 * Activations are widened to 16-bit values in 32-bit lanes (upper half zero), so one vpmaddwd
 * (AVX2 / AVX-512BW) or vpdpwssd (VNNI) per 8 or 16 lanes gives the exact product:
 *   M <= 2 (GEMV): per output row, 16 (8) inputs gathered by column and multiplied at once;
 *   M >= 3 (GEMM): tiles of up to 64 tokens transposed (K-major), each value broadcast against
 *     vectors of tokens (weight-broadcast, as the fp32 CSR kernel), int32 panels rescaled and
 *     transposed back with bias and activation.
 */

#define SS_CSR8_MAX_ROW_NONZEROS 131071

/// Y = act(...) for output rows [row_begin, row_end) from fp32 activations x (M x K, stride ldx),
/// quantized per row here. wscale and bias (or NULL) have `rows` entries; columns must lie in
/// 0..K-1 (the caller checks them once, as CSRInt8Weights does). Returns SS_OK, SS_ERR_ARGUMENT
/// (sizes, a decreasing row_ptr in the range, a row over the limit) or SS_ERR_NO_MEMORY.
int ss_csr8_gemm_rows_isa(ss_qisa isa, const int32_t *row_ptr, const int32_t *col, const int8_t *val,
                          const float *wscale, const float *bias, ptrdiff_t rows, ptrdiff_t k,
                          const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t m,
                          ss_act_kind act, ptrdiff_t row_begin, ptrdiff_t row_end);

/// The same over already quantized activations: xq is M rows of K int8 (stride ldq), xscale M
/// scales (any int8 value, -128 included, is multiplied exactly).
int ss_csr8_gemm_quantized_rows_isa(ss_qisa isa, const int32_t *row_ptr, const int32_t *col, const int8_t *val,
                                    const float *wscale, const float *bias, ptrdiff_t rows, ptrdiff_t k,
                                    const int8_t *xq, ptrdiff_t ldq, const float *xscale, float *y, ptrdiff_t ldy,
                                    ptrdiff_t m, ss_act_kind act, ptrdiff_t row_begin, ptrdiff_t row_end);

#endif
