/*
 * W8A8 GEMM on AMX tiles (Sapphire Rapids and later): the same packed weights, quantized rows
 * and int32 sums as int8.c, so the outputs equal the VNNI level's bit for bit.
 *
 * A 16 x 64-byte tile holds 16 quantized rows x 64 inputs (xq as stored, stride K4) or one
 * panel's 16 quads (16 x 64 bytes, contiguous in the pack: wp[p][q][16][4] is exactly the
 * layout `tdpbusd` wants for B). Blocks of 32 rows x 32 columns use all 8 tiles: 4 int32
 * accumulators, 2 row tiles, 2 panel tiles; one `tdpbusd` is 16 x 16 x 64 multiply-adds.
 * The int32 tiles go to a 4 KB buffer and through the same epilogue as the VNNI tile (the
 * correction, the two scales, bias, ReLU; other activations after it, per row).
 */
#include "int8.h"
#include "internal.h"
#include <string.h>

#ifdef SS_X86
#include <immintrin.h>

#define SS_TAMX __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512dq,fma")))

enum { AMX_ROWS = 16, AMX_BYTES = 64, AMX_TILE_BYTES = AMX_ROWS * AMX_BYTES };

/* The 64-byte tile configuration (palette 1): every tile 16 rows of 64 bytes. */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_config;

SS_TAMX static void amx_configure(void) {
    amx_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 8; t++) {
        c.colsb[t] = AMX_BYTES;
        c.rows[t] = AMX_ROWS;
    }
    _tile_loadconfig(&c);
}

/* Sums of row blocks x (RB of 16 rows, stride ldx) times panels w (NB, stride ps) over kb
 * blocks of 64 inputs into acc[rb][nb] (16 x 16 int32 each). Tile numbers must be constants. */
#define AMX_SUMS(NAME, RB, NB)                                                                          \
    SS_TAMX static void NAME(const uint8_t *x, ptrdiff_t ldx, const int8_t *w, ptrdiff_t ps,            \
                             ptrdiff_t kb, int32_t acc[2][2][AMX_ROWS * 16]) {                          \
        _tile_zero(0); if (NB > 1) _tile_zero(1);                                                       \
        if (RB > 1) { _tile_zero(2); if (NB > 1) _tile_zero(3); }                                       \
        for (ptrdiff_t b = 0; b < kb; b++) {                                                            \
            _tile_loadd(6, w + b * AMX_TILE_BYTES, AMX_BYTES);                                          \
            _tile_loadd(4, x + b * AMX_BYTES, ldx);                                                     \
            if (NB > 1) _tile_loadd(7, w + ps + b * AMX_TILE_BYTES, AMX_BYTES);                         \
            if (RB > 1) _tile_loadd(5, x + AMX_ROWS * ldx + b * AMX_BYTES, ldx);                        \
            _tile_dpbusd(0, 4, 6);                                                                      \
            if (NB > 1) _tile_dpbusd(1, 4, 7);                                                          \
            if (RB > 1) { _tile_dpbusd(2, 5, 6); if (NB > 1) _tile_dpbusd(3, 5, 7); }                   \
        }                                                                                               \
        _tile_stored(0, acc[0][0], 64); if (NB > 1) _tile_stored(1, acc[0][1], 64);                    \
        if (RB > 1) { _tile_stored(2, acc[1][0], 64); if (NB > 1) _tile_stored(3, acc[1][1], 64); }    \
    }
AMX_SUMS(sums_1x1, 1, 1)
AMX_SUMS(sums_1x2, 1, 2)
AMX_SUMS(sums_2x1, 2, 1)
AMX_SUMS(sums_2x2, 2, 2)

/* y rows [0, rows) x columns [0, cols) (cols <= 16) of one accumulator tile, as tile512's epilogue. */
SS_T512 static void amx_epilogue(const int32_t *acc, const int32_t *correction, const float *wscale, const float *bias,
                                 const float *xscale, int rows, ptrdiff_t cols, int relu, float *y, ptrdiff_t ldy) {
    const __mmask16 m = cols >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cols) - 1u);
    const __m512i corr = _mm512_loadu_si512(correction);
    const __m512 ws = _mm512_loadu_ps(wscale);
    const __m512 b = bias ? _mm512_maskz_loadu_ps(m, bias) : _mm512_setzero_ps();
    for (int i = 0; i < rows; i++) {
        const __m512 s = _mm512_mul_ps(_mm512_set1_ps(xscale[i]), ws);
        __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_loadu_si512(acc + i * 16), corr)), s);
        if (bias) v = _mm512_add_ps(v, b);
        if (relu) v = _mm512_max_ps(_mm512_setzero_ps(), v);
        _mm512_mask_storeu_ps(y + i * ldy, m, v);
    }
}

/* The blocks: panel pairs outside (their weights stay in L1 across the row blocks), row pairs inside. */
SS_TAMX static void amx_blocks(const int8_t *wp, const int32_t *correction, const float *wscale, const float *bias,
                               ptrdiff_t k4, const uint8_t *xq, const float *xscale, ptrdiff_t blocks, float *y, ptrdiff_t ldy,
                               ss_act_kind act, ptrdiff_t n_begin, ptrdiff_t n_end) {
    const ptrdiff_t quads = k4 / 4, kb = quads / AMX_ROWS, ps = quads * AMX_BYTES;
    const ptrdiff_t p_begin = n_begin / SS_PANEL, p_end = ss_ceil_div(n_end, SS_PANEL);
    const int relu = act == SS_ACT_RELU;
    _Alignas(64) int32_t acc[2][2][AMX_ROWS * 16];
    amx_configure();
    for (ptrdiff_t p = p_begin; p < p_end; p += 2) {
        const int nb = p + 1 < p_end ? 2 : 1;
        const int8_t *w = wp + p * ps;
        for (ptrdiff_t r = 0; r < blocks; r += 2) {
            const int rb = r + 1 < blocks ? 2 : 1;
            const uint8_t *x = xq + r * AMX_ROWS * k4;
            if (rb == 2) (nb == 2 ? sums_2x2 : sums_2x1)(x, k4, w, ps, kb, acc);
            else (nb == 2 ? sums_1x2 : sums_1x1)(x, k4, w, ps, kb, acc);
            for (int i = 0; i < rb; i++)
                for (int j = 0; j < nb; j++) {
                    const ptrdiff_t col0 = (p + j) * SS_PANEL, row0 = (r + i) * AMX_ROWS;
                    const ptrdiff_t cols = ss_min(col0 + SS_PANEL, n_end) - col0;
                    float *out = y + row0 * ldy + col0;
                    amx_epilogue(acc[i][j], correction + col0, wscale + col0, bias ? bias + col0 : NULL, xscale + row0,
                                 AMX_ROWS, cols, relu, out, ldy);
                    if (act != SS_ACT_NONE && act != SS_ACT_RELU)
                        for (int t = 0; t < AMX_ROWS; t++) ss_act_apply_isa(SS_ISA_AVX512, act, out + t * ldy, cols);
                }
        }
    }
    _tile_release();
}

int ss_q8_amx_rows(const int8_t *wp, const int32_t *correction, const float *wscale, const float *bias, ptrdiff_t k,
                   const uint8_t *xq, const float *xscale, ptrdiff_t m, float *y, ptrdiff_t ldy, ss_act_kind act,
                   ptrdiff_t n_begin, ptrdiff_t n_end) {
    const ptrdiff_t k4 = (k + 3) / 4 * 4;
    if (!ss_amx_usable() || (k4 / 4) % AMX_ROWS != 0 || m < AMX_ROWS) return 0;
    amx_blocks(wp, correction, wscale, bias, k4, xq, xscale, m / AMX_ROWS, y, ldy, act, n_begin, n_end);
    return (int)(m / AMX_ROWS * AMX_ROWS);
}
#else
int ss_q8_amx_rows(const int8_t *wp, const int32_t *correction, const float *wscale, const float *bias, ptrdiff_t k,
                   const uint8_t *xq, const float *xscale, ptrdiff_t m, float *y, ptrdiff_t ldy, ss_act_kind act,
                   ptrdiff_t n_begin, ptrdiff_t n_end) {
    (void)wp; (void)correction; (void)wscale; (void)bias; (void)k; (void)xq; (void)xscale; (void)m; (void)y; (void)ldy;
    (void)act; (void)n_begin; (void)n_end;
    return 0;
}
#endif
