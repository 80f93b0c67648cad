#ifndef SPARSESERVE_NM_INT8_H
#define SPARSESERVE_NM_INT8_H
#include <stddef.h>
#include <stdint.h>
#include "cpu_features.h"
#include "activations.h"
#include "status.h"

/*
 * 2:4-sparse W8A8 linear layers: int8 weights (one scale per output row) of which every group of
 * 4 inputs keeps at most 2, times per-token dynamically quantized int8 activations (as int8.h).
 *
 * Pack, 16-row panels of blocks of 8 inputs (two groups), B = ceil(K / 8):
 *   values  [p][B][16][4] int8: row j's kept weights, two from each group (zero in unused slots);
 *   codes   [p][ceil(B/4)][64] uint8, one byte per row and block: bits 2q..2q+1 = position
 *           (0..3) of value q inside its group; each 64-byte group holds 4 blocks, qword w the
 *           pair of rows 2w, 2w+1 (byte 8w + 2t + (j & 1) for row j, block t of the group), so
 *           the kernel loads one zmm per 4 blocks and decodes each block with one shuffle;
 *           blocks past B hold SS_NM8_FILLER_CODE;
 *   correction [ceil(N/16)*16] int32 = 128 * (sum of the row's weights), as in int8.h.
 * 0.625 bytes per dense weight (int8 dense: 1).
 *
 * Kernel (per token row): AVX-512 dot level (VNNI + VBMI) broadcasts the block's 8 input bytes,
 * decodes each lane's 4 positions in-register from its code group (vpmultishiftqb + vpternlogd), gathers the inputs
 * with vpshufb and multiplies with one vpdpbusd per 16 rows x 8 inputs; other levels run the
 * portable C loop (same int32 sums). Up to 8 token rows share each block's decode (batches run
 * as chunks of 16 quantized rows; no weight-broadcast GEMM), and the rescaling epilogue runs 16
 * lanes at a time on AVX-512 (for one row, on each panel's sums as soon as they are summed).
 *
 * Batched kernel (M >= 2 on the AVX-512 dot level; nm_int8_gemm.c): byte indices expanded once
 * from the codes (same layout as values: lane j of block b holds, per kept weight, its input's
 * offset 8*(b % 8) + 4*(q >> 1) + position inside the 64-input window of blocks 8*(b/8)..+7).
 * Per window, a tile of up to 12 tokens reuses the panel's 8 index and 8 value zmm; per token and
 * block one `vpermb` selects each row's 4 kept activations and one `vpdpbusd` accumulates them.
 * Same int32 sums and epilogue (operation order) as the GEMV, so the outputs are identical.
 */

enum { SS_NM8_CODE_BLOCKS = 4, SS_NM8_FILLER_CODE = 0x44 /* positions 0, 1 in both groups */ };
/// Offset of row j (0..15) of panel p, block b (of B) in the codes.
static inline ptrdiff_t ss_nm8_code_offset(ptrdiff_t p, ptrdiff_t b, ptrdiff_t j, ptrdiff_t B) {
    const ptrdiff_t groups = (B + SS_NM8_CODE_BLOCKS - 1) / SS_NM8_CODE_BLOCKS;
    return (p * groups + b / SS_NM8_CODE_BLOCKS) * SS_NM8_CODE_BLOCKS * 16 + 8 * (j >> 1) + 2 * (b % SS_NM8_CODE_BLOCKS) + (j & 1);
}
ptrdiff_t ss_nm8_value_bytes(ptrdiff_t n, ptrdiff_t k);
ptrdiff_t ss_nm8_code_bytes(ptrdiff_t n, ptrdiff_t k);
/// Packs int8 weights q (N x K, stride ldq) whose groups of 4 hold at most 2 non-zeros; returns
/// SS_ERR_ARGUMENT (naming nothing) when a group holds more.
int ss_nm8_pack(const int8_t *q, ptrdiff_t n, ptrdiff_t k, ptrdiff_t ldq, int8_t *values, uint8_t *codes,
                int32_t *correction);
/// Y = act(xscale * wscale * (Xq . W) + bias) over output columns [n_begin, n_end) (alignment as
/// for dense); x fp32 is quantized per row here. wscale: ceil(N/16)*16 floats.
int ss_nm8_gemm_cols_isa(ss_qisa isa, const int8_t *values, const uint8_t *codes, const int32_t *correction,
                         const float *wscale, const float *bias, ptrdiff_t n, ptrdiff_t k, const float *x, ptrdiff_t ldx,
                         ptrdiff_t m, float *y, ptrdiff_t ldy, ss_act_kind act, ptrdiff_t n_begin, ptrdiff_t n_end);

/// Bytes of the expanded byte indices (= ss_nm8_value_bytes).
ptrdiff_t ss_nm8_index_bytes(ptrdiff_t n, ptrdiff_t k);
/// Expands the 2-bit codes into the batched kernel's window byte indices. 0 or SS_ERR_ARGUMENT.
int ss_nm8_expand_indices(const uint8_t *codes, ptrdiff_t n, ptrdiff_t k, uint8_t *indices);
/// As ss_nm8_gemm_cols_isa, with the batched kernel when the level is the AVX-512 dot level, M >= 2
/// and indices (from ss_nm8_expand_indices) is not NULL; otherwise exactly ss_nm8_gemm_cols_isa.
int ss_nm8_gemm_indexed_cols_isa(ss_qisa isa, const int8_t *values, const uint8_t *codes, const uint8_t *indices,
                                 const int32_t *correction, const float *wscale, const float *bias, ptrdiff_t n, ptrdiff_t k,
                                 const float *x, ptrdiff_t ldx, ptrdiff_t m, float *y, ptrdiff_t ldy, ss_act_kind act,
                                 ptrdiff_t n_begin, ptrdiff_t n_end);

/// Bytes per row of the batched kernel's quantized input: K rounded up to 64 (padding = 128).
ptrdiff_t ss_nm8_quantized_row_bytes(ptrdiff_t k);
/// Quantizes M rows of x (stride ldx) as the batched kernel does (int8.h's per-row scale, +128
/// offset) into xq (M rows of ss_nm8_quantized_row_bytes(K)) and xs (M scales).
int ss_nm8_quantize_rows_isa(ss_qisa isa, const float *x, ptrdiff_t ldx, ptrdiff_t m, ptrdiff_t k, uint8_t *xq, float *xs);
/// The batched kernel over rows quantized by ss_nm8_quantize_rows_isa (all M rows at once: the
/// caller keeps them L2-sized): for several threads sharing one quantization. Only on the AVX-512
/// dot level (after clamping) and with indices; SS_ERR_ARGUMENT otherwise. Any M >= 0 (one row
/// gives the GEMV's sums).
int ss_nm8_gemm_quantized_indexed_cols_isa(ss_qisa isa, const int8_t *values, const uint8_t *indices, const int32_t *correction,
                                           const float *wscale, const float *bias, ptrdiff_t n, ptrdiff_t k, const uint8_t *xq,
                                           const float *xs, ptrdiff_t m, float *y, ptrdiff_t ldy, ss_act_kind act,
                                           ptrdiff_t n_begin, ptrdiff_t n_end);

#endif
