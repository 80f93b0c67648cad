// Prototype (not in the package): rows in lanes, 16 inputs (4 groups) of one token per zmm, per-lane dword index 4*gl+pos,
// one vpermps + one FMA per 16 kept weights per token; idx/w loaded once per token block.
// 2:4 only, AVX-512 only, K a multiple of 16 (no tail); repacks the project's nm.h pack.
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>
#include "nm_chunk_permute.h"
struct proto_pack { ptrdiff_t n, k, P, C; int32_t *idx; float *w; };
proto_pack *proto_make(const float *vals, const void *idx, ptrdiff_t n, ptrdiff_t k) {
    proto_pack *pp = malloc(sizeof *pp);
    const ptrdiff_t P = (n + 15) / 16, G = (k + 3) / 4, C = (k + 15) / 16;
    pp->n = n; pp->k = k; pp->P = P; pp->C = C;
    pp->idx = aligned_alloc(64, P * C * 8 * 16 * 4);
    pp->w = aligned_alloc(64, P * C * 8 * 16 * 4);
    memset(pp->w, 0, P * C * 8 * 16 * 4);
    for (ptrdiff_t p = 0; p < P; p++) for (ptrdiff_t c = 0; c < C; c++) for (int q = 0; q < 8; q++) {
        const ptrdiff_t g = 4 * c + q / 2, s = q % 2, o = ((p * C + c) * 8 + q) * 16;
        for (int j = 0; j < 16; j++) {
            if (g < G) {
                const ptrdiff_t e = (p * G + g) * 2 + s;
                pp->w[o + j] = vals[e * 16 + j];
                pp->idx[o + j] = 4 * (q / 2) + ((((const uint32_t *)idx)[e] >> (2 * j)) & 3);
            } else { pp->w[o + j] = 0; pp->idx[o + j] = 0; }
        }
    }
    return pp;
}
#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
T512 static inline __attribute__((always_inline)) void block(const proto_pack *pp, ptrdiff_t p, const float *bias, const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, const int TB) {
    __m512 acc[8][2];
    for (int t = 0; t < TB; t++) { acc[t][0] = _mm512_setzero_ps(); acc[t][1] = _mm512_setzero_ps(); }
    const int32_t *ip = pp->idx + p * pp->C * 128;
    const float *wp = pp->w + p * pp->C * 128;
    for (ptrdiff_t c = 0; c < pp->C; c++) {
        __m512 xv[8];
        for (int t = 0; t < TB; t++) xv[t] = _mm512_loadu_ps(x + t * ldx + 16 * c);
        for (int q = 0; q < 8; q++) {
            const __m512i iv = _mm512_load_si512(ip + (c * 8 + q) * 16);
            const __m512 wv = _mm512_load_ps(wp + (c * 8 + q) * 16);
            for (int t = 0; t < TB; t++) acc[t][q & 1] = _mm512_fmadd_ps(wv, _mm512_permutexvar_ps(iv, xv[t]), acc[t][q & 1]);
        }
    }
    const ptrdiff_t valid = pp->n - 16 * p;
    const __mmask16 mk = valid >= 16 ? 0xFFFF : (__mmask16)((1u << valid) - 1);
    const __m512 b = bias ? _mm512_maskz_loadu_ps(mk, bias + 16 * p) : _mm512_setzero_ps();
    for (int t = 0; t < TB; t++) _mm512_mask_storeu_ps(y + t * ldy + 16 * p, mk, _mm512_add_ps(b, _mm512_add_ps(acc[t][0], acc[t][1])));
}
#define B(TB) T512 static void block##TB(const proto_pack *pp, ptrdiff_t p, const float *bias, const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy) { block(pp, p, bias, x, ldx, y, ldy, TB); }
B(1) B(2) B(3) B(4) B(8)
void proto_gemm(const proto_pack *pp, const float *bias, const float *x, ptrdiff_t ldx, float *y, ptrdiff_t ldy, ptrdiff_t m) {
    for (ptrdiff_t p = 0; p < pp->P; p++) {
        ptrdiff_t t = 0;
        for (; t + TBMAX <= m; t += TBMAX) (TBMAX == 8 ? block8 : block4)(pp, p, bias, x + t * ldx, ldx, y + t * ldy, ldy);
        const ptrdiff_t left = m - t;
        for (; t + 4 <= m; t += 4) block4(pp, p, bias, x + t * ldx, ldx, y + t * ldy, ldy);
        if (m - t == 3) block3(pp, p, bias, x + t * ldx, ldx, y + t * ldy, ldy);
        else if (m - t == 2) block2(pp, p, bias, x + t * ldx, ldx, y + t * ldy, ldy);
        else if (m - t == 1) block1(pp, p, bias, x + t * ldx, ldx, y + t * ldy, ldy);
        (void)left;
    }
}
