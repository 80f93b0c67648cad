#ifndef SPARSESERVE_ACTIVATIONS_H
#define SPARSESERVE_ACTIVATIONS_H
#include <stddef.h>
#include "cpu_features.h"

/// Element-wise functions the kernels can apply in place (also used as GEMM epilogues).
typedef enum {
    SS_ACT_NONE = 0,
    SS_ACT_RELU = 1,
    SS_ACT_GELU = 2,    /* exact form: x * Phi(x), Phi via a vectorised erfc (rel. error < 1e-6) */
    SS_ACT_TANH = 3,
    SS_ACT_SIGMOID = 4,
    SS_ACT_SILU = 5,
    SS_ACT_EXP = 6
} ss_act_kind;

/// Applies `act` to x[0..<n] in place on the best instruction set (ss_detect_isa()).
void ss_act_apply(ss_act_kind act, float *x, ptrdiff_t n);
/// Same, on an explicit instruction set (clamped to what the hardware supports).
void ss_act_apply_isa(ss_isa isa, ss_act_kind act, float *x, ptrdiff_t n);

/// Numerically stable softmax of each of `rows` rows (`cols` values, row stride `ld`), in place.
void ss_act_softmax_rows_isa(ss_isa isa, float *x, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld);

/// Layer norm of each row in place: (x - mean) / sqrt(var + eps) * gamma + beta.
/// gamma and beta (length cols) may be NULL (meaning 1 and 0).
void ss_act_layer_norm_rows_isa(ss_isa isa, float *x, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld,
                                const float *gamma, const float *beta, float eps);

#endif
