#ifndef SPARSESERVE_PWL_H
#define SPARSESERVE_PWL_H
#include <stddef.h>
#include "cpu_features.h"

/*
 * Piecewise-linear activation table: `segments` uniform segments on [lo, hi]; segment i covers
 * [lo + i*h, lo + (i+1)*h) with h = (hi - lo) / segments and computes y = slope[i] * x + offset[i].
 * Inputs below lo use segment 0's line, inputs at or above hi the last segment's line.
 *
 * The segment index is cvtt(clamp((x - lo) / h, 0, segments - 1)); the slope and offset are then
 * picked from tables held in registers: AVX-512 one vpermps (<= 16 segments), one vpermt2ps
 * (<= 32) or two vpermt2ps and a blend (<= 64); AVX2 one vpermps (<= 8), or 2 / 4 vpermps with
 * blends (<= 16 / <= 32). Larger tables fall back to gathers (AVX2/AVX-512) or scalar lookups.
 */
void ss_pwl_apply_isa(ss_isa isa, const float *slope, const float *offset, int segments,
                      float lo, float hi, float *x, ptrdiff_t count);

/// A table as one argument (for kernels that take an optional approximation).
typedef struct ss_pwl_table {
    const float *slope;
    const float *offset;
    int segments;
    float lo, hi;
} ss_pwl_table;

/// Softmax of each of `rows` rows (`cols` values, row stride `ld`), in place, with exp replaced by
/// `exp_table` (built for exp on [lo, hi] with hi >= 0): each row's maximum is subtracted, the
/// differences are clamped below at the table's lo (so the end segment's line is never
/// extrapolated to the left), the table is applied, negative values are clamped to 0 and the row
/// is divided by its sum.
void ss_pwl_softmax_rows_isa(ss_isa isa, const ss_pwl_table *exp_table, float *x, ptrdiff_t rows, ptrdiff_t cols,
                             ptrdiff_t ld);

#endif
