/* Piecewise-linear activation tables (see include/pwl.h). */
#include "pwl.h"
#include "internal.h"
#include <string.h>

static void pwl_portable(const float *slope, const float *offset, int segments, float lo, float inv_h,
                         float *x, ptrdiff_t count) {
    const float last = (float)(segments - 1);
    for (ptrdiff_t i = 0; i < count; i++) {
        float t = (x[i] - lo) * inv_h;
        t = t > 0.0f ? t : 0.0f;      /* also maps NaN to segment 0 */
        t = t < last ? t : last;
        const int s = (int)t;
        x[i] = slope[s] * x[i] + offset[s];
    }
}

#ifdef SS_X86
/* Segment index of every lane: cvtt(clamp((v - lo) * inv_h, 0, segments - 1)). */
SS_T512 SS_AI __m512i segment512(__m512 v, __m512 vlo, __m512 vinv, __m512 vmax) {
    const __m512 t = _mm512_mul_ps(_mm512_sub_ps(v, vlo), vinv);
    return _mm512_cvttps_epi32(_mm512_min_ps(_mm512_max_ps(t, _mm512_setzero_ps()), vmax));
}

/* Up to 64 segments: tables in 8 registers (slopes and offsets, 4 x 16 each). */
SS_T512 static void pwl_512(const float *slope, const float *offset, int segments, float lo, float inv_h,
                            float *x, ptrdiff_t count) {
    float sl[64] = { 0 }, of[64] = { 0 };
    memcpy(sl, slope, (size_t)segments * sizeof(float));
    memcpy(of, offset, (size_t)segments * sizeof(float));
    const __m512 s0 = _mm512_loadu_ps(sl), s1 = _mm512_loadu_ps(sl + 16), s2 = _mm512_loadu_ps(sl + 32), s3 = _mm512_loadu_ps(sl + 48);
    const __m512 o0 = _mm512_loadu_ps(of), o1 = _mm512_loadu_ps(of + 16), o2 = _mm512_loadu_ps(of + 32), o3 = _mm512_loadu_ps(of + 48);
    const __m512 vlo = _mm512_set1_ps(lo), vinv = _mm512_set1_ps(inv_h);
    const __m512 vmax = _mm512_set1_ps((float)(segments - 1));
    const __m512i bit5 = _mm512_set1_epi32(32);
    for (ptrdiff_t i = 0; i < count; i += 16) {
        const __mmask16 mask = count - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (count - i)) - 1u);
        const __m512 v = _mm512_maskz_loadu_ps(mask, x + i);
        const __m512i idx = segment512(v, vlo, vinv, vmax);
        __m512 a, b;
        if (segments <= 16) {
            a = _mm512_permutexvar_ps(idx, s0);
            b = _mm512_permutexvar_ps(idx, o0);
        } else if (segments <= 32) {
            a = _mm512_permutex2var_ps(s0, idx, s1);
            b = _mm512_permutex2var_ps(o0, idx, o1);
        } else {
            const __mmask16 high = _mm512_test_epi32_mask(idx, bit5);
            a = _mm512_mask_blend_ps(high, _mm512_permutex2var_ps(s0, idx, s1), _mm512_permutex2var_ps(s2, idx, s3));
            b = _mm512_mask_blend_ps(high, _mm512_permutex2var_ps(o0, idx, o1), _mm512_permutex2var_ps(o2, idx, o3));
        }
        _mm512_mask_storeu_ps(x + i, mask, _mm512_fmadd_ps(a, v, b));
    }
}

SS_T512 static void pwl_512_gather(const float *slope, const float *offset, int segments, float lo, float inv_h,
                                   float *x, ptrdiff_t count) {
    const __m512 vlo = _mm512_set1_ps(lo), vinv = _mm512_set1_ps(inv_h);
    const __m512 vmax = _mm512_set1_ps((float)(segments - 1));
    for (ptrdiff_t i = 0; i < count; i += 16) {
        const __mmask16 mask = count - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (count - i)) - 1u);
        const __m512 v = _mm512_maskz_loadu_ps(mask, x + i);
        const __m512i idx = segment512(v, vlo, vinv, vmax);
        const __m512 a = _mm512_i32gather_ps(idx, slope, 4), b = _mm512_i32gather_ps(idx, offset, 4);
        _mm512_mask_storeu_ps(x + i, mask, _mm512_fmadd_ps(a, v, b));
    }
}

/* Up to 32 segments: four 8-entry registers per table, selected by index bits 3 and 4. */
SS_T256 SS_AI __m256 lookup256(const __m256 t[4], __m256i idx, int segments) {
    const __m256 a = _mm256_permutevar8x32_ps(t[0], idx);
    if (segments <= 8) return a;
    const __m256 hi3 = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28));
    const __m256 lo16 = _mm256_blendv_ps(a, _mm256_permutevar8x32_ps(t[1], idx), hi3);
    if (segments <= 16) return lo16;
    const __m256 hi16 = _mm256_blendv_ps(_mm256_permutevar8x32_ps(t[2], idx), _mm256_permutevar8x32_ps(t[3], idx), hi3);
    return _mm256_blendv_ps(lo16, hi16, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 27)));
}

SS_T256 static void pwl_256(const float *slope, const float *offset, int segments, float lo, float inv_h,
                            float *x, ptrdiff_t count) {
    float sl[32] = { 0 }, of[32] = { 0 };
    const int table = segments <= 32;
    if (table) {
        memcpy(sl, slope, (size_t)segments * sizeof(float));
        memcpy(of, offset, (size_t)segments * sizeof(float));
    }
    __m256 st[4], ot[4];
    for (int q = 0; q < 4; q++) {
        st[q] = _mm256_loadu_ps(sl + 8 * q);
        ot[q] = _mm256_loadu_ps(of + 8 * q);
    }
    const __m256 vlo = _mm256_set1_ps(lo), vinv = _mm256_set1_ps(inv_h);
    const __m256 vmax = _mm256_set1_ps((float)(segments - 1));
    ptrdiff_t i = 0;
    for (; i + 8 <= count; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        __m256 t = _mm256_mul_ps(_mm256_sub_ps(v, vlo), vinv);
        t = _mm256_min_ps(_mm256_max_ps(t, _mm256_setzero_ps()), vmax);
        const __m256i idx = _mm256_cvttps_epi32(t);
        __m256 a, b;
        if (table) {
            a = lookup256(st, idx, segments);
            b = lookup256(ot, idx, segments);
        } else {
            a = _mm256_i32gather_ps(slope, idx, 4);
            b = _mm256_i32gather_ps(offset, idx, 4);
        }
        _mm256_storeu_ps(x + i, _mm256_fmadd_ps(a, v, b));
    }
    pwl_portable(slope, offset, segments, lo, inv_h, x + i, count - i);
}
#endif

void ss_pwl_apply_isa(ss_isa isa, const float *slope, const float *offset, int segments,
                      float lo, float hi, float *x, ptrdiff_t count) {
    if (segments <= 0 || count <= 0 || !(hi > lo)) return;
    const float inv_h = (float)segments / (hi - lo);
    isa = ss_clamp_isa(isa);
#ifdef SS_X86
    if (isa == SS_ISA_AVX512) {
        if (segments <= 64) pwl_512(slope, offset, segments, lo, inv_h, x, count);
        else pwl_512_gather(slope, offset, segments, lo, inv_h, x, count);
        return;
    }
    if (isa == SS_ISA_AVX2) { pwl_256(slope, offset, segments, lo, inv_h, x, count); return; }
#endif
    pwl_portable(slope, offset, segments, lo, inv_h, x, count);
}

void ss_pwl_softmax_rows_isa(ss_isa isa, const ss_pwl_table *t, float *x, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld) {
    if (cols <= 0) return;
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *row = x + r * ld;
        float top = row[0];
        for (ptrdiff_t c = 1; c < cols; c++) top = row[c] > top ? row[c] : top;
        for (ptrdiff_t c = 0; c < cols; c++) {
            const float d = row[c] - top;
            row[c] = d > t->lo ? d : t->lo;
        }
        ss_pwl_apply_isa(isa, t->slope, t->offset, t->segments, t->lo, t->hi, row, cols);
        float sum = 0.0f;
        for (ptrdiff_t c = 0; c < cols; c++) {
            row[c] = row[c] > 0.0f ? row[c] : 0.0f;
            sum += row[c];
        }
        const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
        for (ptrdiff_t c = 0; c < cols; c++) row[c] *= inv;
    }
}
