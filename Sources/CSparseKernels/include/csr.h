#ifndef SPARSESERVE_CSR_H
#define SPARSESERVE_CSR_H
#include <stddef.h>
#include <stdint.h>
#include "cpu_features.h"
#include "activations.h"
#include "status.h"

/*
 * Unstructured sparse linear layer in CSR form, Y[R][N] = act(X[R][K] * W^T + bias): output row
 * i keeps the weights val[row_ptr[i] .. row_ptr[i+1]) at input columns col[...] (ascending or
 * not; repeated columns add up).
 *
 *   R <= 2 (GEMV): per row, a dot product over its non-zeros with the inputs gathered
 *     (vgatherdps, 16 or 8 at a time).
 *   R >= 3 (GEMM): the same weight-broadcast x transposed-activation kernel as N:M (tiles of 64
 *     tokens, X^T L1/L2-resident), one row at a time with independent accumulator chains.
 */

/// Y = act(X W^T + bias); x is R x K (stride ldx), y is R x N (stride ldy), bias N values or NULL.
/// Returns SS_OK, SS_ERR_ARGUMENT or SS_ERR_NO_MEMORY (scratch allocation failed; y unspecified).
int ss_csr_gemm_isa(ss_isa isa, const int32_t *row_ptr, const int32_t *col, const float *val,
                    const float *bias, ptrdiff_t rows, ptrdiff_t k,
                    const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t r,
                    ss_act_kind act);

/// As ss_csr_gemm_isa for output rows [row_begin, row_end) only (split points should be multiples
/// of 16 so threads do not share output cache lines).
int ss_csr_gemm_rows_isa(ss_isa isa, const int32_t *row_ptr, const int32_t *col, const float *val,
                         const float *bias, ptrdiff_t rows, ptrdiff_t k,
                         const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t r,
                         ss_act_kind act, ptrdiff_t row_begin, ptrdiff_t row_end);

/// Transpose-once form for calls split across threads: the floats the transposed input of r rows
/// needs (0: none), the transpose, and the kernel over rows [row_begin, row_end) reading it.
ptrdiff_t ss_csr_input_floats(ss_isa isa, ptrdiff_t k, ptrdiff_t r);
void ss_csr_prepare_input_isa(ss_isa isa, const float *x, ptrdiff_t ldx, ptrdiff_t r, ptrdiff_t k, float *xt);
int ss_csr_gemm_prepared_rows_isa(ss_isa isa, const int32_t *row_ptr, const int32_t *col, const float *val,
                                  const float *bias, ptrdiff_t rows, ptrdiff_t k,
                                  const float *x, ptrdiff_t ldx, const float *xt, float *y, ptrdiff_t ldy, ptrdiff_t r,
                                  ss_act_kind act, ptrdiff_t row_begin, ptrdiff_t row_end);

#endif
