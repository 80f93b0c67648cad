/* BLAST diagonal mix (see include/blast.h). */
#include "blast.h"
#include "internal.h"

static void mix_portable(const float *z, ptrdiff_t ldz, ptrdiff_t rows, int b2, ptrdiff_t r,
                         const float *s, float *h, ptrdiff_t ldh, int i0, int i1) {
    for (ptrdiff_t row = 0; row < rows; row++)
        for (int i = i0; i < i1; i++) {
            float *out = h + row * ldh + (ptrdiff_t)i * r;
            for (ptrdiff_t t = 0; t < r; t++) out[t] = 0.0f;
            for (int j = 0; j < b2; j++) {
                const float *zz = z + row * ldz + (ptrdiff_t)j * r, *ss = s + ((ptrdiff_t)i * b2 + j) * r;
                for (ptrdiff_t t = 0; t < r; t++) out[t] += ss[t] * zz[t];
            }
        }
}

#ifdef SS_X86
SS_T512 static void mix_512(const float *z, ptrdiff_t ldz, ptrdiff_t rows, int b2, ptrdiff_t r,
                            const float *s, float *h, ptrdiff_t ldh, int i0, int i1) {
    for (ptrdiff_t row = 0; row < rows; row++)
        for (int i = i0; i < i1; i++) {
            float *out = h + row * ldh + (ptrdiff_t)i * r;
            for (ptrdiff_t t = 0; t < r; t += 16) {
                const __mmask16 mask = r - t >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (r - t)) - 1u);
                __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
                int j = 0;
                for (; j + 2 <= b2; j += 2) {
                    a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, s + ((ptrdiff_t)i * b2 + j) * r + t),
                                         _mm512_maskz_loadu_ps(mask, z + row * ldz + (ptrdiff_t)j * r + t), a0);
                    a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, s + ((ptrdiff_t)i * b2 + j + 1) * r + t),
                                         _mm512_maskz_loadu_ps(mask, z + row * ldz + (ptrdiff_t)(j + 1) * r + t), a1);
                }
                if (j < b2)
                    a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, s + ((ptrdiff_t)i * b2 + j) * r + t),
                                         _mm512_maskz_loadu_ps(mask, z + row * ldz + (ptrdiff_t)j * r + t), a0);
                _mm512_mask_storeu_ps(out + t, mask, _mm512_add_ps(a0, a1));
            }
        }
}

SS_T256 static void mix_256(const float *z, ptrdiff_t ldz, ptrdiff_t rows, int b2, ptrdiff_t r,
                            const float *s, float *h, ptrdiff_t ldh, int i0, int i1) {
    const ptrdiff_t whole = r / 8 * 8;
    for (ptrdiff_t row = 0; row < rows; row++)
        for (int i = i0; i < i1; i++) {
            float *out = h + row * ldh + (ptrdiff_t)i * r;
            for (ptrdiff_t t = 0; t < whole; t += 8) {
                __m256 a = _mm256_setzero_ps();
                for (int j = 0; j < b2; j++)
                    a = _mm256_fmadd_ps(_mm256_loadu_ps(s + ((ptrdiff_t)i * b2 + j) * r + t),
                                        _mm256_loadu_ps(z + row * ldz + (ptrdiff_t)j * r + t), a);
                _mm256_storeu_ps(out + t, a);
            }
            for (ptrdiff_t t = whole; t < r; t++) {
                float a = 0.0f;
                for (int j = 0; j < b2; j++) a += s[((ptrdiff_t)i * b2 + j) * r + t] * z[row * ldz + (ptrdiff_t)j * r + t];
                out[t] = a;
            }
        }
}
#endif

void ss_blast_mix_blocks_isa(ss_isa isa, const float *z, ptrdiff_t ldz, ptrdiff_t rows, int b1, int b2,
                             ptrdiff_t r, const float *s, float *h, ptrdiff_t ldh, int i_begin, int i_end) {
    if (rows <= 0 || r <= 0 || b2 <= 0) return;
    if (i_begin < 0) i_begin = 0;
    if (i_end > b1) i_end = b1;
    if (i_begin >= i_end) return;
    isa = ss_clamp_isa(isa);
#ifdef SS_X86
    if (isa == SS_ISA_AVX512) { mix_512(z, ldz, rows, b2, r, s, h, ldh, i_begin, i_end); return; }
    if (isa == SS_ISA_AVX2) { mix_256(z, ldz, rows, b2, r, s, h, ldh, i_begin, i_end); return; }
#endif
    mix_portable(z, ldz, rows, b2, r, s, h, ldh, i_begin, i_end);
}

void ss_blast_mix_isa(ss_isa isa, const float *z, ptrdiff_t rows, int b1, int b2, ptrdiff_t r,
                      const float *s, float *h) {
    ss_blast_mix_blocks_isa(isa, z, (ptrdiff_t)b2 * r, rows, b1, b2, r, s, h, (ptrdiff_t)b1 * r, 0, b1);
}
