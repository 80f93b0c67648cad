#ifndef SPARSESERVE_NM_H
#define SPARSESERVE_NM_H
#include <stddef.h>
#include <stdint.h>
#include "cpu_features.h"
#include "activations.h"
#include "status.h"

/*
 * N:M-sparse linear layer Y[R][N] = act(X[R][K] * W^T + bias): in every group of m consecutive
 * inputs (m in {4, 8, 16}), each output row keeps at most n weights (1 <= n < m).
 *
 * Packed layout, in 16-row panels (output rows 16p .. 16p+15), G = ceil(K / m) groups:
 *   values  vals[((p*G + g)*n + s)*16 + j]   weight in slot s of group g for output row 16p+j
 *   indices one word per (p, g, s) holding each lane's position (0..m-1) inside the group:
 *           m == 4:     uint32_t idx[(p*G + g)*n + s], lane j at bits 2j .. 2j+1
 *           m == 8, 16: uint64_t idx[(p*G + g)*n + s], lane j at bits 32*(j&1) + 4*(j>>1) .. +3
 *           (even lanes in the low half, odd lanes in the high half, so one vpsrlvd of the
 *           broadcast word leaves every lane's position in its low 4 bits)
 * Rows past N and unused slots hold weight 0 at a position no other slot of that lane uses.
 * Storage: 4 bytes per kept weight plus 2 (m = 4) or 4 (m = 8, 16) bits of index.
 *
 * Kernels (chosen per call):
 *   Selection (R <= 2; on AVX-512 also the rows left over by 16-token tiles, and every row when
 *     m = 4 and R <= 31): per slot, the group's inputs are in a register (m = 4, R >= 3, K <= 4096: rows
 *     copied with each group repeated in every 128-bit lane, so this is a plain load), each lane's input is
 *     selected in-register (vpsrlvd decode + vpermps), then one FMA per 16 outputs; up to 8 rows
 *     share each decode (9-16 expanded m = 4 rows in one pass), and every row of a call (up to 32
 *     at a time) runs on a block of output panels before the next, so the weights are streamed
 *     from memory once per call.
 *   Weight broadcast (the other rows): tiles of up to 64 tokens of X are transposed once (K-major, L1/L2-resident);
 *     every kept weight is broadcast and multiplies a vector of tokens (weight-broadcast x
 *     activation-vector), four output rows interleaved, the K loop blocked to ~128 inputs, and the
 *     16 x 64 result transposed back in registers with bias and activation applied.
 */

/// Floats of values and index words (uint32 for m = 4, uint64 otherwise) of an n:m pack.
ptrdiff_t ss_nm_value_count(ptrdiff_t rows, ptrdiff_t k, int n, int m);
ptrdiff_t ss_nm_index_count(ptrdiff_t rows, ptrdiff_t k, int n, int m);

/// Packs a row-major rows x K weight (row stride ldw) whose every group of m inputs has at most
/// n non-zeros. Returns 0, or -1 when a group holds more than n non-zeros or n/m are unsupported.
int ss_nm_pack(const float *w, ptrdiff_t rows, ptrdiff_t k, ptrdiff_t ldw, int n, int m,
               float *values, void *indices);

/// The dense rows x K weight (row stride ldw) a pack represents (zeros where pruned).
void ss_nm_unpack(const float *values, const void *indices, ptrdiff_t rows, ptrdiff_t k, int n, int m,
                  float *w, ptrdiff_t ldw);

/// Y = act(X W^T + bias); x is R x K (stride ldx), y is R x N (stride ldy), bias N values or
/// NULL. Any R, N, K; no alignment needed. Returns SS_OK, SS_ERR_ARGUMENT (unsupported n:m or
/// sizes) or SS_ERR_NO_MEMORY (a per-thread scratch buffer could not be allocated; y is then
/// unspecified). status.h.
int ss_nm_gemm_isa(ss_isa isa, const float *values, const void *indices, int n, int m,
                   const float *bias, ptrdiff_t rows, ptrdiff_t k,
                   const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t r,
                   ss_act_kind act);

/// As ss_nm_gemm_isa, but only output panels [panel_begin, panel_end) (columns 16*panel_begin ..
/// min(16*panel_end, N)), so threads can split one call by output panels. `call`: nonzero and the
/// same for every part of one split call and for no other call (0: none): a thread that runs
/// several parts of it then prepares the input (the batched kernel's transposed tiles, the
/// selection kernel's expanded or padded rows) once, in its own scratch.
int ss_nm_gemm_panels_isa(ss_isa isa, const float *values, const void *indices, int n, int m,
                          const float *bias, ptrdiff_t rows, ptrdiff_t k,
                          const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t r,
                          ss_act_kind act, ptrdiff_t panel_begin, ptrdiff_t panel_end, uint64_t call);

/// N:M with bf16 values: the pack of ss_nm_pack with every value rounded to bf16 (same layout,
/// uint16 bit patterns), run on the in-register-selection kernel for every row (values widened
/// to fp32 in registers; up to 8 rows share each decode on AVX-512, 16 for m = 4 from 9 rows; no weight-broadcast GEMM
/// for bf16 yet). Same status values.
int ss_nm_bf16_gemv_panels_isa(ss_isa isa, const uint16_t *values, const void *indices, int n, int m,
                               const float *bias, ptrdiff_t rows, ptrdiff_t k,
                               const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t r,
                               ss_act_kind act, ptrdiff_t panel_begin, ptrdiff_t panel_end);

#endif