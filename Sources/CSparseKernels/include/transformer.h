#ifndef SPARSESERVE_TRANSFORMER_H
#define SPARSESERVE_TRANSFORMER_H
#include <stddef.h>
#include "cpu_features.h"
#include "pwl.h"

/*
 * Transformer-encoder building blocks over row-major float matrices (one row per token).
 * Sequences of a batch may be stored back to back (no padding) or padded to a common length:
 * the attention kernels take each sequence's first row and length, and never read or write rows
 * past a sequence's length, so padding rows are simply left alone.
 */

/// x[r] = LayerNorm(x[r] + residual[r]) * gamma + beta for `rows` rows of `cols` values, in place
/// (row strides ldx and ldr; residual may be NULL). Mean and variance are taken in two passes.
void ss_tf_add_layer_norm_isa(ss_isa isa, float *x, ptrdiff_t ldx, const float *residual, ptrdiff_t ldr,
                              ptrdiff_t rows, ptrdiff_t cols, const float *gamma, const float *beta, float eps);

/// Scratch floats one ss_tf_attention_isa call needs for a sequence of up to `max_length` tokens.
ptrdiff_t ss_tf_attention_scratch_floats(ptrdiff_t max_length, ptrdiff_t head_dim);

/// Scaled dot-product self-attention of heads [head_begin, head_end) of one sequence of `length`
/// tokens: for each head h, out[:, h*d:(h+1)*d] = softmax(scale * Q_h K_h^T) V_h, where Q_h is
/// columns h*d..h*d+d-1 of rows 0..length-1 of q (row stride ldq), and likewise K_h, V_h.
/// Scores are small GEMMs on the packed dense kernel, softmax rows use the vectorised exp, or the
/// piecewise-linear `exp_table` when it is not NULL (ss_pwl_softmax_rows_isa).
/// `scratch` holds ss_tf_attention_scratch_floats(length, d) floats (NULL: allocated here).
/// Returns 0, or -1 when the arguments are invalid or scratch cannot be allocated.
int ss_tf_attention_isa(ss_isa isa, const float *q, ptrdiff_t ldq, const float *k, ptrdiff_t ldk,
                        const float *v, ptrdiff_t ldv, float *out, ptrdiff_t ldo, ptrdiff_t length,
                        ptrdiff_t head_begin, ptrdiff_t head_end, ptrdiff_t head_dim, float scale,
                        const ss_pwl_table *exp_table, float *scratch);

/// Multi-head self-attention over a batch: sequence s occupies rows starts[s] .. starts[s] +
/// lengths[s] - 1 of q, k, v and out (padding rows between sequences are not touched and never
/// attended to). All `heads` heads of every sequence, on the calling thread; `exp_table` as above.
int ss_tf_attention_batch_isa(ss_isa isa, const float *q, ptrdiff_t ldq, const float *k, ptrdiff_t ldk,
                              const float *v, ptrdiff_t ldv, float *out, ptrdiff_t ldo,
                              const ptrdiff_t *starts, const ptrdiff_t *lengths, ptrdiff_t sequences,
                              ptrdiff_t heads, ptrdiff_t head_dim, float scale, const ss_pwl_table *exp_table);

/// out[c] = mean over rows of x[r][c] (row stride ldx); when `normalize` is set the result is
/// scaled to unit L2 norm (left as is when its norm is 0). rows > 0.
void ss_tf_mean_pool(const float *x, ptrdiff_t ldx, ptrdiff_t rows, ptrdiff_t cols, int normalize, float *out);

#endif
