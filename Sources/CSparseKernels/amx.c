/*
 * GEMMs on AMX tiles (Sapphire Rapids and later) over the packs of the dot-product level:
 *
 *   W8A8 (`tdpbusd`): the packed int8 weights, quantized rows and int32 sums of int8.c, so the
 *     outputs equal the VNNI level's bit for bit;
 *   bf16 weights (`tdpbf16ps`): the bf16 pack and the rows rounded to bf16 as bf16.c's dot level
 *     rounds them; fp32 sums in another order (results within rounding of that level's).
 *
 * A 16 x 64-byte tile holds 16 rows x 64 bytes of input (64 quantized bytes or 32 bf16 values) at
 * the rows' own stride, or one panel's 16 quads / pairs of one block of K (contiguous in both
 * packs: wp[p][q][16][4 bytes] is exactly the layout the tile products want for B). Blocks of 32
 * rows x 32 columns use all 8 tiles: 4 accumulators, 2 row tiles, 2 panel tiles; the rows past
 * the last 16-row block run as one shorter row tile (the tiles configured again). The accumulators
 * go to a 4 KB buffer and through an epilogue as the dot level's (correction and scales for int8,
 * bias, ReLU; other activations after it, per row).
 */
#include "bfloat16.h"
#include "int8.h"
#include "internal.h"
#include <string.h>

#ifdef SS_X86
#include <immintrin.h>

#define SS_TAMX __attribute__((target("amx-tile,amx-int8,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,fma")))

enum { AMX_ROWS = 16, AMX_BYTES = 64, AMX_TILE_BYTES = AMX_ROWS * AMX_BYTES };

/* The 64-byte tile configuration (palette 1): every tile 16 rows of 64 bytes. */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_config;

/* Tiles 0-3 (sums) and 4-5 (rows) of `rows` rows; 6-7 (panels) of 16. */
SS_TAMX static void amx_configure(int rows) {
    amx_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 8; t++) {
        c.colsb[t] = AMX_BYTES;
        c.rows[t] = (uint8_t)(t < 6 ? rows : AMX_ROWS);
    }
    _tile_loadconfig(&c);
}

/* One 32 x 32 block's accumulators: [row tile][panel][16 x 16] int32 or float. */
typedef union {
    int32_t i[2][2][AMX_ROWS * 16];
    float f[2][2][AMX_ROWS * 16];
} amx_acc;

/* Sums of RB row tiles x (stride ldx bytes) times NB panels w (stride ps bytes) over kb blocks of
 * 64 input bytes into acc (DOT: a tile product; tile numbers must be constants). */
#define AMX_SUMS(NAME, DOT, RB, NB)                                                                     \
    SS_TAMX static void NAME(const uint8_t *x, ptrdiff_t ldx, const uint8_t *w, ptrdiff_t ps,           \
                             ptrdiff_t kb, amx_acc *acc) {                                              \
        _tile_zero(0); if (NB > 1) _tile_zero(1);                                                       \
        if (RB > 1) { _tile_zero(2); if (NB > 1) _tile_zero(3); }                                       \
        for (ptrdiff_t b = 0; b < kb; b++) {                                                            \
            _tile_loadd(6, w + b * AMX_TILE_BYTES, AMX_BYTES);                                          \
            _tile_loadd(4, x + b * AMX_BYTES, ldx);                                                     \
            if (NB > 1) _tile_loadd(7, w + ps + b * AMX_TILE_BYTES, AMX_BYTES);                         \
            if (RB > 1) _tile_loadd(5, x + AMX_ROWS * ldx + b * AMX_BYTES, ldx);                        \
            DOT(0, 4, 6);                                                                               \
            if (NB > 1) DOT(1, 4, 7);                                                                   \
            if (RB > 1) { DOT(2, 5, 6); if (NB > 1) DOT(3, 5, 7); }                                     \
        }                                                                                               \
        _tile_stored(0, acc->i[0][0], 64); if (NB > 1) _tile_stored(1, acc->i[0][1], 64);              \
        if (RB > 1) { _tile_stored(2, acc->i[1][0], 64); if (NB > 1) _tile_stored(3, acc->i[1][1], 64); } \
    }
#define AMX_SUM_SET(P, DOT) \
    AMX_SUMS(P##_1x1, DOT, 1, 1) AMX_SUMS(P##_1x2, DOT, 1, 2) AMX_SUMS(P##_2x1, DOT, 2, 1) AMX_SUMS(P##_2x2, DOT, 2, 2) \
    static void (*const P[3][3])(const uint8_t *, ptrdiff_t, const uint8_t *, ptrdiff_t, ptrdiff_t, amx_acc *) = \
        { { NULL }, { NULL, P##_1x1, P##_1x2 }, { NULL, P##_2x1, P##_2x2 } };
AMX_SUM_SET(q8_sums, _tile_dpbusd)
AMX_SUM_SET(bf_sums, _tile_dpbf16ps)

/* What a block's accumulators become: an output tile's rows x columns [0, cols). */
typedef struct {
    const int32_t *correction;  /* int8 only (NULL: fp32 sums, no scales) */
    const float *wscale, *xscale, *bias;
    float *y;
    ptrdiff_t ldy, cols;
    int relu;
} amx_out;

SS_T512 static void amx_epilogue(const amx_out *o, const void *acc, int rows) {
    const __mmask16 m = o->cols >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << o->cols) - 1u);
    const __m512 b = o->bias ? _mm512_maskz_loadu_ps(m, o->bias) : _mm512_setzero_ps();
    const __m512i corr = o->correction ? _mm512_loadu_si512(o->correction) : _mm512_setzero_si512();
    const __m512 ws = o->correction ? _mm512_loadu_ps(o->wscale) : _mm512_setzero_ps();
    for (int i = 0; i < rows; i++) {
        __m512 v;
        if (o->correction) {
            const __m512 s = _mm512_mul_ps(_mm512_set1_ps(o->xscale[i]), ws);
            v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_loadu_si512((const int32_t *)acc + i * 16), corr)), s);
        } else {
            v = _mm512_loadu_ps((const float *)acc + i * 16);
        }
        if (o->bias) v = _mm512_add_ps(v, b);
        if (o->relu) v = _mm512_max_ps(_mm512_setzero_ps(), v);
        _mm512_mask_storeu_ps(o->y + i * o->ldy, m, v);
    }
}

/* The operands of one AMX call. */
typedef struct {
    const uint8_t *w, *x;       /* pack at panel 0; rows at row 0 */
    ptrdiff_t ps, ldx, kb;      /* bytes per panel, per row; 64-byte blocks of K */
    ptrdiff_t rows;
    amx_out out;                /* at row 0, column 0 */
    ss_act_kind act;
    ptrdiff_t n_begin, n_end;
} amx_call;

typedef void (*const amx_sum_set[3][3])(const uint8_t *, ptrdiff_t, const uint8_t *, ptrdiff_t, ptrdiff_t, amx_acc *);

/* Rows [r0, r0 + tiles * tile_rows) over every panel pair: panel pairs outside (their weights
 * stay in L1 across the row tiles), pairs of row tiles of tile_rows (the configured height) inside. */
SS_TAMX static void amx_pass(const amx_call *c, amx_sum_set sums, ptrdiff_t r0, ptrdiff_t tiles, int tile_rows) {
    const ptrdiff_t p_begin = c->n_begin / SS_PANEL, p_end = ss_ceil_div(c->n_end, SS_PANEL);
    _Alignas(64) amx_acc acc;
    for (ptrdiff_t p = p_begin; p < p_end; p += 2) {
        const int nb = p + 1 < p_end ? 2 : 1;
        for (ptrdiff_t r = 0; r < tiles; r += 2) {
            const int rb = r + 1 < tiles ? 2 : 1;
            sums[rb][nb](c->x + (r0 + r * tile_rows) * c->ldx, c->ldx, c->w + p * c->ps, c->ps, c->kb, &acc);
            for (int i = 0; i < rb; i++)
                for (int j = 0; j < nb; j++) {
                    const ptrdiff_t col0 = (p + j) * SS_PANEL, row0 = r0 + (r + i) * tile_rows;
                    amx_out o = c->out;
                    o.cols = ss_min(col0 + SS_PANEL, c->n_end) - col0;
                    o.y += row0 * o.ldy + col0;
                    o.bias = o.bias ? o.bias + col0 : NULL;
                    if (o.correction) { o.correction += col0; o.wscale += col0; o.xscale += row0; }
                    amx_epilogue(&o, acc.i[i][j], tile_rows);
                    if (c->act != SS_ACT_NONE && c->act != SS_ACT_RELU)
                        for (int t = 0; t < tile_rows; t++) ss_act_apply_isa(SS_ISA_AVX512, c->act, o.y + t * o.ldy, o.cols);
                }
        }
    }
}

/* Whole 16-row blocks, then the rows past them as one shorter tile (tiles reconfigured). */
SS_TAMX static void amx_blocks(const amx_call *c, amx_sum_set sums) {
    const ptrdiff_t blocks = c->rows / AMX_ROWS;
    const int tail = (int)(c->rows % AMX_ROWS);
    if (blocks > 0) {
        amx_configure(AMX_ROWS);
        amx_pass(c, sums, 0, blocks, AMX_ROWS);
    }
    if (tail > 0) {
        amx_configure(tail);
        amx_pass(c, sums, blocks * AMX_ROWS, 1, tail);
    }
    _tile_release();
}

int ss_q8_amx_rows(const int8_t *wp, const int32_t *correction, const float *wscale, const float *bias, ptrdiff_t k,
                   const uint8_t *xq, const float *xscale, ptrdiff_t m, float *y, ptrdiff_t ldy, ss_act_kind act,
                   ptrdiff_t n_begin, ptrdiff_t n_end) {
    const ptrdiff_t k4 = (k + 3) / 4 * 4;
    if (!ss_amx_usable() || k4 % AMX_BYTES != 0 || m < SS_AMX_MIN_ROWS) return 0;
    const amx_call c = {
        .w = (const uint8_t *)wp, .x = xq, .ps = k4 * SS_PANEL, .ldx = k4, .kb = k4 / AMX_BYTES, .rows = m,
        .out = { .correction = correction, .wscale = wscale, .xscale = xscale, .bias = bias, .y = y, .ldy = ldy,
                 .relu = act == SS_ACT_RELU },
        .act = act, .n_begin = n_begin, .n_end = n_end,
    };
    amx_blocks(&c, q8_sums);
    return (int)m;
}

int ss_bf16_amx_rows(const uint16_t *wp, const float *bias, ptrdiff_t k, const uint16_t *xb, ptrdiff_t m, float *y,
                     ptrdiff_t ldy, ss_act_kind act, ptrdiff_t n_begin, ptrdiff_t n_end) {
    const ptrdiff_t k2 = (k + 1) / 2 * 2;
    if (!ss_amx_usable() || (2 * k2) % AMX_BYTES != 0 || m < 1) return 0;
    const amx_call c = {
        .w = (const uint8_t *)wp, .x = (const uint8_t *)xb, .ps = 2 * k2 * SS_PANEL, .ldx = 2 * k2, .kb = 2 * k2 / AMX_BYTES,
        .rows = m, .out = { .bias = bias, .y = y, .ldy = ldy, .relu = act == SS_ACT_RELU },
        .act = act, .n_begin = n_begin, .n_end = n_end,
    };
    amx_blocks(&c, bf_sums);
    return (int)m;
}
#else
int ss_q8_amx_rows(const int8_t *wp, const int32_t *correction, const float *wscale, const float *bias, ptrdiff_t k,
                   const uint8_t *xq, const float *xscale, ptrdiff_t m, float *y, ptrdiff_t ldy, ss_act_kind act,
                   ptrdiff_t n_begin, ptrdiff_t n_end) {
    (void)wp; (void)correction; (void)wscale; (void)bias; (void)k; (void)xq; (void)xscale; (void)m; (void)y; (void)ldy;
    (void)act; (void)n_begin; (void)n_end;
    return 0;
}

int ss_bf16_amx_rows(const uint16_t *wp, const float *bias, ptrdiff_t k, const uint16_t *xb, ptrdiff_t m, float *y,
                     ptrdiff_t ldy, ss_act_kind act, ptrdiff_t n_begin, ptrdiff_t n_end) {
    (void)wp; (void)bias; (void)k; (void)xb; (void)m; (void)y; (void)ldy; (void)act; (void)n_begin; (void)n_end;
    return 0;
}
#endif
