#ifndef SPARSESERVE_BLAST_H
#define SPARSESERVE_BLAST_H
#include <stddef.h>
#include "cpu_features.h"

/*
 * BLAST layer y = sum_j U_i diag(s_ij) V_j^T x_j (output block i, input block j) as three steps:
 * z_j = x_j V_j (b2 dense GEMMs), h_i = sum_j s_ij * z_j (this diagonal mix, accumulated in
 * registers: the b1 x b2 x rows x r products are never stored), y_i = h_i U_i^T (b1 dense GEMMs
 * with the bias and activation fused). The GEMMs run on the dense kernel (dense.h).
 */

/// Diagonal mix for output blocks [i_begin, i_end): h[row][i][t] = sum_j s[(i*b2 + j)*r + t] *
/// z[row][j][t] for `rows` rows; z is rows x (b2*r) with row stride ldz, h is rows x (b1*r) with
/// row stride ldh (only blocks i_begin..i_end-1 are written).
void ss_blast_mix_blocks_isa(ss_isa isa, const float *z, ptrdiff_t ldz, ptrdiff_t rows, int b1, int b2,
                             ptrdiff_t r, const float *s, float *h, ptrdiff_t ldh, int i_begin, int i_end);

/// All blocks, dense strides (z: b2*r, h: b1*r).
void ss_blast_mix_isa(ss_isa isa, const float *z, ptrdiff_t rows, int b1, int b2, ptrdiff_t r,
                      const float *s, float *h);

#endif
