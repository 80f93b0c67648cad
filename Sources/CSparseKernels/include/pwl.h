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

#endif
