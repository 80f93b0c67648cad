#ifndef SPARSESERVE_OBS_H
#define SPARSESERVE_OBS_H
#include <stddef.h>
#include <stdint.h>
#include "cpu_features.h"
#include "status.h"

/*
 * Data-aware compression of a linear layer y = W x (W: rows x cols, row-major) from calibration
 * inputs X (tokens x cols). The layer-wise loss is ||X W^T - X Wh^T||^2 = tr((W - Wh) H (W - Wh)^T)
 * with H = X^T X, so everything here works from H:
 *
 *   ss_gram_accumulate  H += X^T X (or the cross term X_a^T X_b), float products summed per chunk
 *                       of tokens and added into double.
 *   ss_obs_prepare      dead inputs, damping, and the upper Cholesky factor U of H^-1 (H^-1 = U^T U).
 *   ss_obs_prune        the SparseGPT sweep (optimal brain surgeon, one column at a time, lazy
 *                       blocks): at each group start the mask keeps, per row, the n of m weights
 *                       with the largest w^2 / U_jj^2 (on the already-updated weights), or follows a
 *                       given mask; each pruned weight's error is spread over the columns to its
 *                       right through row j of U.
 *   ss_obs_quantize     the same sweep with symmetric int8 rounding in place of pruning (GPTQ): each
 *                       weight goes to its nearest int8 level and its rounding error is spread over
 *                       the columns to its right; optionally with a fixed sparsity mask (pruned
 *                       weights go to 0 in the same sweep) and free trailing columns (e.g. the bias
 *                       of an augmented input) that are not rounded and absorb the error.
 *
 * Every function returns an ss_status: SS_ERR_NO_MEMORY when a buffer cannot be allocated,
 * SS_ERR_ARGUMENT for invalid sizes or a non-finite H (outputs are then unspecified).
 */

/// out[i * ldo + j] += sum_t a[t * lda + i] * b[t * ldb + j] for i in [row_begin, row_end) and
/// j in [0, cols_b) (j in [i, cols_b) when upper_only, for a = b: H's upper triangle; mirror it
/// with ss_gram_mirror). Products are summed in float over chunks of 64 tokens and each chunk's
/// sum is added into the double out.
ss_status ss_gram_accumulate(ss_isa isa, const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb,
                       ptrdiff_t tokens, ptrdiff_t cols_b, ptrdiff_t row_begin, ptrdiff_t row_end,
                       int upper_only, double *out, ptrdiff_t ldo);

/// Copies the upper triangle of the n x n matrix h onto its lower triangle.
void ss_gram_mirror(double *h, ptrdiff_t n);

/// In place over the symmetric positive semi-definite cols x cols H: inputs with H_jj == 0 (always
/// zero in the calibration data) get H_jj = 1 and dead[j] = 1 (else 0); then H += damp * mean(diag H)
/// * I; then H is replaced by the upper Cholesky factor U of H^-1 (lower triangle zero). Computed as
/// U = J L^-1 J with L = chol(J H J), J the order reversal.
ss_status ss_obs_prepare(double *h, ptrdiff_t cols, double damp, uint8_t *dead);

typedef struct {
    int n, m;          /* keep n of every m consecutive inputs in each row (1 <= n <= m) */
    ptrdiff_t block;   /* lazy-update width in columns, a multiple of m (128 is usual) */
    int fixed_mask;    /* 1: follow `mask` as given (1 = keep; any pattern); 0: choose it (n:m) */
} ss_obs_params;

/// The SparseGPT sweep over rows [row_begin, row_end) of w (stride ldw; cols a multiple of m, not
/// required when fixed_mask): inputs with dead[j] (may be NULL) are zeroed first; pruned weights end
/// exactly 0 and the kept ones carry the compensation. mask (stride cols, one byte per weight) is read
/// when fixed_mask, else written. u is ss_obs_prepare's factor. Rows are independent, so callers
/// split them across threads.
ss_status ss_obs_prune(ss_isa isa, const ss_obs_params *p, const double *u, ptrdiff_t cols, const uint8_t *dead,
                 float *w, ptrdiff_t ldw, ptrdiff_t row_begin, ptrdiff_t row_end, uint8_t *mask);

typedef struct {
    ptrdiff_t group;         /* 0: one scale per row, from the row's kept weights before the sweep;
                                else one per row and group of `group` columns, from the group's
                                weights when the sweep reaches it (already compensated) */
    ptrdiff_t free_cols;     /* the last free_cols columns are not rounded (they absorb the error) */
    const uint8_t *mask;     /* NULL: every weight kept; else 1 = keep (stride cols, indexed by row) */
} ss_obs_quant_params;

/// Scales per row for `cols` columns: 1 per channel, else ceil((cols - free_cols) / group).
ptrdiff_t ss_obs_quant_groups(const ss_obs_quant_params *p, ptrdiff_t cols);

/// The GPTQ sweep over rows [row_begin, row_end) of w (stride ldw >= cols). Scales are absmax / 127
/// over the kept weights (1 when all are zero), values rint(w / scale) clamped to -127...127. Writes
/// q (rows x (cols - free_cols) int8, stride ldq, indexed by row: rows before row_begin untouched),
/// scales (rows x ss_obs_quant_groups, indexed by row) and w: the dequantised q * scale in the rounded
/// columns (0 where pruned or dead), the compensated values in the free ones. u is ss_obs_prepare's
/// factor for all cols columns. Rows are independent, so callers split them across threads.
ss_status ss_obs_quantize(ss_isa isa, const ss_obs_quant_params *p, const double *u, ptrdiff_t cols, const uint8_t *dead,
                          float *w, ptrdiff_t ldw, ptrdiff_t row_begin, ptrdiff_t row_end, int8_t *q, ptrdiff_t ldq,
                          float *scales);

#endif
