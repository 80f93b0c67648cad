#ifndef SPARSESERVE_SPARSE_H
#define SPARSESERVE_SPARSE_H
#include <stddef.h>
#include <stdint.h>
#include "cpu_features.h"
#include "activations.h"

/*
 * N:M-sparse and CSR linear layers, Y[R][N] = act(X[R][K] * W^T + bias).
 *
 * N:M packed layout (every group of m consecutive inputs of an output row keeps n weights),
 * in 16-row panels like the dense kernel: for panel p, group g, slot s < n:
 *   values  vals[((p*G + g)*n + s)*16 + j]     weight of output row 16p+j
 *   indices m == 4:  idx32[(p*G + g)*n + s], 2 bits per lane j (bits 2j..2j+1)
 *           m == 8, 16: idx64[(p*G + g)*n + s], 4 bits per lane j (bits 4j..4j+3)
 * G = ceil(K/m). Rows past N and padding slots hold weight 0.
 *
 * GEMV (R <= 2) selects each lane's input inside registers (vpermps over the group's inputs,
 * no gathers). GEMM transposes X to X^T[K][R16] once and runs weight-broadcast x activation-
 * vector FMAs over 64-row blocks, writes Y^T and transposes back; the bias and activation are
 * applied on Y^T rows.
 */

/// Floats of values and 32/64-bit index words for an n:m pack of an N x K weight.
ptrdiff_t ss_nm_value_count(ptrdiff_t rows, ptrdiff_t k, int n, int m);
ptrdiff_t ss_nm_index_count(ptrdiff_t rows, ptrdiff_t k, int n, int m);

/// Packs a row-major N x K weight (stride ldw) whose every group of m inputs has at most n
/// non-zeros. `indices` is uint32_t* for m == 4 and uint64_t* for m == 8 or 16.
/// Returns 0, or -1 when a group holds more than n non-zeros or n/m are unsupported
/// (m in {4, 8, 16}, 1 <= n < m).
int ss_nm_pack(const float *w, ptrdiff_t rows, ptrdiff_t k, ptrdiff_t ldw, int n, int m,
               float *values, void *indices);

/// Y = act(X W^T + bias) for an n:m pack; x is R x K (stride ldx), y is R x N (stride ldy).
/// `scratch` needs ss_sparse_scratch_floats(R, K, N) floats (NULL: allocated internally).
void ss_nm_gemm_isa(ss_isa isa, const float *values, const void *indices, int n, int m,
                    const float *bias, ptrdiff_t rows, ptrdiff_t k,
                    const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t r,
                    ss_act_kind act, float *scratch);

/// CSR weight (row_ptr[N+1], col[nnz], val[nnz]), same contract as ss_nm_gemm_isa.
void ss_csr_gemm_isa(ss_isa isa, const int32_t *row_ptr, const int32_t *col, const float *val,
                     const float *bias, ptrdiff_t rows, ptrdiff_t k,
                     const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t r,
                     ss_act_kind act, float *scratch);

/// Scratch floats the GEMM path needs for R rows (0 when R <= 2).
ptrdiff_t ss_sparse_scratch_floats(ptrdiff_t r, ptrdiff_t k, ptrdiff_t rows);

/// out[c][r] = in[r][c] for an R x C matrix (strides ldi, ldo), cache-blocked.
void ss_transpose(const float *in, ptrdiff_t r, ptrdiff_t c, ptrdiff_t ldi, float *out, ptrdiff_t ldo);

/*
 * Piecewise-linear activation table: `segments` uniform segments on [lo, hi], segment i is
 * y = slope[i] * x + offset[i]; inputs outside [lo, hi] use the first or last segment's line.
 * The AVX-512 path keeps up to 32 segments in registers (vpermps / vpermt2ps).
 */
void ss_pwl_apply_isa(ss_isa isa, const float *slope, const float *offset, int segments,
                      float lo, float hi, float *x, ptrdiff_t count);

/// BLAST diagonal mix: h[row][i][0..r) = sum_j s[(i*b2 + j)*r + t] * z[row][j][t] for R rows;
/// z is R x (b2*r), h is R x (b1*r), both row-major.
void ss_blast_mix_isa(ss_isa isa, const float *z, ptrdiff_t rows, int b1, int b2, ptrdiff_t r,
                      const float *s, float *h);

/// Atomics for the kernel pool (sequentially consistent).
long ss_atomic_load(const long *p);
void ss_atomic_store(long *p, long v);
long ss_atomic_fetch_add(long *p, long v);
/// A short pause for spin-wait loops.
void ss_cpu_relax(void);

#endif
