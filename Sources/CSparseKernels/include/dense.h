#ifndef SPARSESERVE_DENSE_H
#define SPARSESERVE_DENSE_H
#include <stddef.h>
#include "cpu_features.h"
#include "activations.h"

/// Output features per packed weight panel.
#define SS_DENSE_PANEL 16

/// Floats needed for the packed form of an N x K weight: ceil(N/16) * K * 16.
ptrdiff_t ss_dense_packed_floats(ptrdiff_t n, ptrdiff_t k);

/// Packs a row-major weight W[N][K] (row stride ldw >= K; PyTorch's [out, in] layout) into panels
/// Wp[ceil(N/16)][K][16]: Wp[p][k][j] = W[16p + j][k], rows past N are zero. 64-byte alignment of
/// `wp` is best for speed but not required.
void ss_dense_pack(const float *w, ptrdiff_t n, ptrdiff_t k, ptrdiff_t ldw, float *wp);

/// Y[M][N] = act(X[M][K] * W^T + bias) on the best instruction set (ss_detect_isa()).
/// X and Y are row-major with row strides ldx >= K and ldy >= N and must not overlap; bias has N
/// values or is NULL. Any M, N, K >= 0; pointers need no alignment.
void ss_dense_gemm(const float *wp, const float *bias, ptrdiff_t n, ptrdiff_t k,
                   const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t m,
                   ss_act_kind act);

/// As ss_dense_gemm, but computes (and writes) only output columns [n_begin, n_end), on an explicit
/// instruction set (lowered to what the hardware supports). n_begin must be a multiple of 16 and
/// n_end a multiple of 16 or N, so workers that split a layer by panels never share a cache line
/// of weights. Returns 0, or -1 (doing nothing) when the range is invalid.
int ss_dense_gemm_cols_isa(ss_isa isa, const float *wp, const float *bias, ptrdiff_t n, ptrdiff_t k,
                           const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t m,
                           ss_act_kind act, ptrdiff_t n_begin, ptrdiff_t n_end);

#endif
