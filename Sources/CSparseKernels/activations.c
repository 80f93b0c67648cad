/*
 * Element-wise activations, softmax and layer norm over float arrays, in place.
 *
 * Three implementations of each, picked at run time: AVX-512 (zmm), AVX2+FMA (ymm) and portable C.
 * The vector paths never call libm. Their building blocks:
 *   exp    Cody-Waite reduction x = n*ln2 + r (|r| <= ln2/2), degree-7 Taylor polynomial for e^r,
 *          scaling by 2^n (vscalefps on AVX-512, two exponent multiplies on AVX2 so that results
 *          in the subnormal range and just below FLT_MAX stay exact).
 *   erfc   the Numerical Recipes rational-exponential fit erfc(z) = t*exp(-z^2 + P(t)),
 *          t = 1/(1 + z/2), fractional error < 1.2e-7. z^2 is kept as an exact hi+lo pair and fed
 *          to a two-part exp, so erfc keeps its relative accuracy deep into the tail.
 *   tanh   odd Taylor series for |x| < 0.55, 1 - 2/(e^{2|x|} + 1) above, sign restored.
 *   sigmoid  e = exp(-|x|) (never overflows), 1/(1+e) or e/(1+e) by the sign of x.
 * NaN inputs give NaN outputs: every clamp is written min/max(constant, x), and those instructions
 * return their second operand when either is NaN.
 *
 * The vector code is written once, below the portable code, over a few primitives (VADD, VFMA,
 * tail masks, ...). This file includes itself twice to instantiate it: SS_ACT_VECTOR_PASS = 512
 * maps the primitives to AVX-512 intrinsics and suffixes every function with _512, 256 to AVX2.
 */
#ifndef SS_ACT_VECTOR_PASS
#include "activations.h"
#include <math.h>
#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SS_X86 1
#endif

#define SS_INLINE static inline __attribute__((always_inline))

/* Shared constants. */
#define C_LOG2E 1.44269504088896341f
#define C_LN2_HI 0.693359375f          /* 10 significant bits: n*LN2_HI is exact for |n| < 2^14 */
#define C_LN2_LO (-2.12194440e-4f)
#define C_EXP_MIN (-104.0f)            /* e^-104 rounds to 0 */
#define C_EXP_MAX 89.0f                /* e^89 overflows to +inf */
#define C_INV_SQRT2 0.70710678118654752f
#define C_TANH_SMALL 0.55f
#define C_GELU_CLAMP 14.5f             /* Phi(-14.5) underflows to 0 in float */
#define C_GELU_FLOOR (-20.0f)          /* keeps -inf * Phi(-inf) from becoming NaN */
#define C_SILU_FLOOR (-200.0f)

/* Polynomial coefficients, highest degree first (for Horner evaluation). */
/* e^r ~ sum r^k / k!, k = 7 .. 0. */
static const float exp_coefficients[] = {
    1.98412698e-4f, 1.38888889e-3f, 8.33333333e-3f, 4.16666667e-2f, 1.66666667e-1f, 0.5f, 1.0f, 1.0f,
};
/* erfc fit: P(t) = c9 t^9 + ... + c0 (Numerical Recipes' erfcc). */
static const float erfc_coefficients[] = {
    0.17087277f, -0.82215223f, 1.48851587f, -1.13520398f, 0.27886807f,
    -0.18628806f, 0.09678418f, 0.37409196f, 1.00002368f, -1.26551223f,
};
/* tanh(x)/x - 1 = s * Q(s), s = x^2: Taylor coefficients of tanh from x^19 down to x^3. */
static const float tanh_coefficients[] = {
    -2.3912911424e-04f, 5.9002744095e-04f, -1.4558343871e-03f, 3.5921280366e-03f, -8.8632355299e-03f,
    2.1869488536e-02f, -5.3968253968e-02f, 1.3333333333e-01f, -3.3333333333e-01f,
};
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ------------------------------------------------------------------------------------------ */
/* Portable C (libm).                                                                          */
/* ------------------------------------------------------------------------------------------ */

static float scalar_gelu(float x) {
    double xc = x < C_GELU_FLOOR ? C_GELU_FLOOR : x;   /* double: x/sqrt(2) must not round */
    return (float)(xc * 0.5 * erfc(-xc * 0.70710678118654752));
}

static float scalar_sigmoid(float x) {
    float e = expf(-fabsf(x));
    return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

static float scalar_silu(float x) {
    float xc = x < C_SILU_FLOOR ? C_SILU_FLOOR : x;
    return xc * scalar_sigmoid(xc);
}

static void apply_portable(ss_act_kind act, float *x, ptrdiff_t n) {
    ptrdiff_t i;
    switch (act) {
    case SS_ACT_NONE: break;
    case SS_ACT_RELU: for (i = 0; i < n; i++) x[i] = x[i] < 0.0f ? 0.0f : x[i]; break;
    case SS_ACT_GELU: for (i = 0; i < n; i++) x[i] = scalar_gelu(x[i]); break;
    case SS_ACT_TANH: for (i = 0; i < n; i++) x[i] = tanhf(x[i]); break;
    case SS_ACT_SIGMOID: for (i = 0; i < n; i++) x[i] = scalar_sigmoid(x[i]); break;
    case SS_ACT_SILU: for (i = 0; i < n; i++) x[i] = scalar_silu(x[i]); break;
    case SS_ACT_EXP: for (i = 0; i < n; i++) x[i] = expf(x[i]); break;
    }
}

static void softmax_portable(float *x, ptrdiff_t cols) {
    float mx = -INFINITY, sum = 0.0f;
    ptrdiff_t j;
    for (j = 0; j < cols; j++) mx = (x[j] > mx || x[j] != x[j]) ? x[j] : mx;
    for (j = 0; j < cols; j++) { x[j] = expf(x[j] - mx); sum += x[j]; }
    float inv = 1.0f / sum;
    for (j = 0; j < cols; j++) x[j] *= inv;
}

static void layer_norm_portable(float *x, ptrdiff_t cols, const float *gamma, const float *beta, float eps) {
    float sum = 0.0f, sq = 0.0f;
    ptrdiff_t j;
    for (j = 0; j < cols; j++) sum += x[j];
    float mean = sum / (float)cols;
    for (j = 0; j < cols; j++) { float d = x[j] - mean; sq += d * d; }
    float inv = 1.0f / sqrtf(sq / (float)cols + eps);
    for (j = 0; j < cols; j++) {
        float v = (x[j] - mean) * inv;
        if (gamma) v *= gamma[j];
        if (beta) v += beta[j];
        x[j] = v;
    }
}

#ifdef SS_X86
#define SS_ACT_VECTOR_PASS 512
#include __FILE__
#undef SS_ACT_VECTOR_PASS
#define SS_ACT_VECTOR_PASS 256
#include __FILE__
#undef SS_ACT_VECTOR_PASS
#endif

/* ------------------------------------------------------------------------------------------ */
/* Dispatch                                                                                    */
/* ------------------------------------------------------------------------------------------ */

void ss_act_apply_isa(ss_isa isa, ss_act_kind act, float *x, ptrdiff_t n) {
    if (n <= 0 || act == SS_ACT_NONE) return;
#ifdef SS_X86
    switch (ss_clamp_isa(isa)) {
    case SS_ISA_AVX512: apply_512(act, x, n); return;
    case SS_ISA_AVX2: apply_256(act, x, n); return;
    default: break;
    }
#else
    (void)isa;
#endif
    apply_portable(act, x, n);
}

void ss_act_apply(ss_act_kind act, float *x, ptrdiff_t n) { ss_act_apply_isa(ss_detect_isa(), act, x, n); }

void ss_act_softmax_rows_isa(ss_isa isa, float *x, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld) {
    if (cols <= 0) return;
    isa = ss_clamp_isa(isa);
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *row = x + r * ld;
#ifdef SS_X86
        if (isa == SS_ISA_AVX512) { softmax_512(row, cols); continue; }
        if (isa == SS_ISA_AVX2) { softmax_256(row, cols); continue; }
#endif
        softmax_portable(row, cols);
    }
}

void ss_act_layer_norm_rows_isa(ss_isa isa, float *x, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld,
                                const float *gamma, const float *beta, float eps) {
    if (cols <= 0) return;
    isa = ss_clamp_isa(isa);
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *row = x + r * ld;
#ifdef SS_X86
        if (isa == SS_ISA_AVX512) { layer_norm_512(row, cols, gamma, beta, eps); continue; }
        if (isa == SS_ISA_AVX2) { layer_norm_256(row, cols, gamma, beta, eps); continue; }
#endif
        layer_norm_portable(row, cols, gamma, beta, eps);
    }
}

#else /* SS_ACT_VECTOR_PASS: one instantiation of the vector kernels */
/* ------------------------------------------------------------------------------------------ */
/* Primitives                                                                                  */
/* ------------------------------------------------------------------------------------------ */
#if SS_ACT_VECTOR_PASS == 512
#define TGT __attribute__((target("avx512f,fma")))
#define FN(name) name##_512
#define LANES 16
#define VF __m512
#define VMASK __mmask16
#define VSET _mm512_set1_ps
#define VZERO _mm512_setzero_ps
#define VADD _mm512_add_ps
#define VSUB _mm512_sub_ps
#define VMUL _mm512_mul_ps
#define VDIV _mm512_div_ps
#define VFMA _mm512_fmadd_ps    /* a*b + c */
#define VFMS _mm512_fmsub_ps    /* a*b - c */
#define VFNMA _mm512_fnmadd_ps  /* c - a*b */
#define VMIN _mm512_min_ps
#define VMAX _mm512_max_ps
#define VABS _mm512_abs_ps
#define VLOAD _mm512_loadu_ps
#define VSTORE _mm512_storeu_ps
#define VROUND(x) _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

/* p * 2^n for integral n: vscalefps rounds once, so subnormal results are exact. */
TGT SS_INLINE VF FN(scale2n)(VF p, VF n) { return _mm512_scalef_ps(p, n); }
/* (a < b) ? t : f, and (x >= 0) ? t : f, per lane (false for NaN). */
TGT SS_INLINE VF FN(select_lt)(VF a, VF b, VF t, VF f) { return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), f, t); }
TGT SS_INLINE VF FN(select_ge0)(VF x, VF t, VF f) { return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, VZERO(), _CMP_GE_OQ), f, t); }
TGT SS_INLINE VF FN(sign_of)(VF x) { return _mm512_castsi512_ps(_mm512_and_epi32(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u))); }
TGT SS_INLINE VF FN(or_bits)(VF a, VF b) { return _mm512_castsi512_ps(_mm512_or_epi32(_mm512_castps_si512(a), _mm512_castps_si512(b))); }
/* Tail handling: the first `remaining` lanes (all when remaining >= LANES). */
TGT SS_INLINE VMASK FN(tail)(ptrdiff_t remaining) {
    return remaining >= LANES ? (VMASK)0xFFFF : (VMASK)((1u << remaining) - 1u);
}
TGT SS_INLINE VF FN(load_or)(VMASK m, const float *p, VF fill) { return _mm512_mask_loadu_ps(fill, m, p); }
TGT SS_INLINE void FN(store_masked)(float *p, VMASK m, VF v) { _mm512_mask_storeu_ps(p, m, v); }
TGT SS_INLINE VF FN(keep)(VMASK m, VF v) { return _mm512_maskz_mov_ps(m, v); }
TGT SS_INLINE float FN(hsum)(VF v) { return _mm512_reduce_add_ps(v); }

#else /* 256 */
#define TGT __attribute__((target("avx2,fma")))
#define FN(name) name##_256
#define LANES 8
#define VF __m256
#define VMASK __m256i
#define VSET _mm256_set1_ps
#define VZERO _mm256_setzero_ps
#define VADD _mm256_add_ps
#define VSUB _mm256_sub_ps
#define VMUL _mm256_mul_ps
#define VDIV _mm256_div_ps
#define VFMA _mm256_fmadd_ps
#define VFMS _mm256_fmsub_ps
#define VFNMA _mm256_fnmadd_ps
#define VMIN _mm256_min_ps
#define VMAX _mm256_max_ps
#define VABS(x) _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)))
#define VLOAD _mm256_loadu_ps
#define VSTORE _mm256_storeu_ps
#define VROUND(x) _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

/* p * 2^n for integral n in [-150, 128], as two exponent multiplies (each factor stays normal). */
TGT SS_INLINE VF FN(scale2n)(VF p, VF n) {
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1);
    __m256i n2 = _mm256_sub_epi32(ni, n1);
    VF s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, _mm256_set1_epi32(127)), 23));
    VF s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, _mm256_set1_epi32(127)), 23));
    return VMUL(VMUL(p, s1), s2);
}
TGT SS_INLINE VF FN(select_lt)(VF a, VF b, VF t, VF f) { return _mm256_blendv_ps(f, t, _mm256_cmp_ps(a, b, _CMP_LT_OQ)); }
TGT SS_INLINE VF FN(select_ge0)(VF x, VF t, VF f) { return _mm256_blendv_ps(f, t, _mm256_cmp_ps(x, VZERO(), _CMP_GE_OQ)); }
TGT SS_INLINE VF FN(sign_of)(VF x) { return _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u))); }
TGT SS_INLINE VF FN(or_bits)(VF a, VF b) { return _mm256_or_ps(a, b); }
TGT SS_INLINE VMASK FN(tail)(ptrdiff_t remaining) {
    int r = remaining >= LANES ? LANES : (int)remaining;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
TGT SS_INLINE VF FN(load_or)(VMASK m, const float *p, VF fill) {
    return _mm256_blendv_ps(fill, _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
}
TGT SS_INLINE void FN(store_masked)(float *p, VMASK m, VF v) { _mm256_maskstore_ps(p, m, v); }
TGT SS_INLINE VF FN(keep)(VMASK m, VF v) { return _mm256_and_ps(v, _mm256_castsi256_ps(m)); }
TGT SS_INLINE float FN(hsum)(VF v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif

/* ------------------------------------------------------------------------------------------ */
/* Functions (written once for both instruction sets)                                          */
/* ------------------------------------------------------------------------------------------ */

/* c[0] x^(n-1) + ... + c[n-1]; unrolled into broadcast constants by the compiler. */
TGT SS_INLINE VF FN(horner)(VF x, const float *c, int n) {
    VF p = VSET(c[0]);
    for (int i = 1; i < n; i++) p = VFMA(p, x, VSET(c[i]));
    return p;
}

/* e^(hi + lo) for |lo| small against hi; keeps the bits of lo that hi + lo would round away. */
TGT SS_INLINE VF FN(exp2part)(VF hi, VF lo) {
    VF n = VROUND(VMUL(VADD(hi, lo), VSET(C_LOG2E)));
    VF r = VFNMA(n, VSET(C_LN2_HI), hi);
    r = VADD(r, lo);
    r = VFNMA(n, VSET(C_LN2_LO), r);
    return FN(scale2n)(FN(horner)(r, exp_coefficients, COUNT(exp_coefficients)), n);
}

TGT SS_INLINE VF FN(vexp)(VF x) {
    x = VMIN(VSET(C_EXP_MAX), x);
    x = VMAX(VSET(C_EXP_MIN), x);
    return FN(exp2part)(x, VZERO());
}

TGT SS_INLINE VF FN(relu)(VF x) { return VMAX(VZERO(), x); }

TGT SS_INLINE VF FN(gelu)(VF x) {
    VF ax = VMIN(VSET(C_GELU_CLAMP), VABS(x));
    VF z = VMUL(ax, VSET(C_INV_SQRT2));
    VF t = VDIV(VSET(1.0f), VFMA(VSET(0.5f), z, VSET(1.0f)));
    VF p = FN(horner)(t, erfc_coefficients, COUNT(erfc_coefficients));
    /* -z^2 = -x^2/2 = hi + lo exactly, so the rounding of x/sqrt(2) never reaches the exponent. */
    VF sq = VMUL(ax, ax);
    VF hi = VMUL(VSET(-0.5f), sq);
    VF lo = VFMA(VSET(-0.5f), VFMS(ax, ax, sq), p);
    VF half_erfc = VMUL(VSET(0.5f), VMUL(t, FN(exp2part)(hi, lo)));
    VF phi = FN(select_ge0)(x, VSUB(VSET(1.0f), half_erfc), half_erfc);
    return VMUL(VMAX(VSET(C_GELU_FLOOR), x), phi);
}

TGT SS_INLINE VF FN(tanh)(VF x) {
    VF ax = VABS(x);
    VF e = FN(vexp)(VADD(ax, ax));
    VF big = VSUB(VSET(1.0f), VDIV(VSET(2.0f), VADD(e, VSET(1.0f))));
    VF s = VMUL(ax, ax);
    VF small = VFMA(VMUL(ax, s), FN(horner)(s, tanh_coefficients, COUNT(tanh_coefficients)), ax);
    return FN(or_bits)(FN(select_lt)(ax, VSET(C_TANH_SMALL), small, big), FN(sign_of)(x));
}

TGT SS_INLINE VF FN(sigmoid)(VF x) {
    VF e = FN(vexp)(VSUB(VZERO(), VABS(x)));
    VF q = VDIV(VSET(1.0f), VADD(VSET(1.0f), e));
    return FN(select_ge0)(x, q, VMUL(e, q));
}

TGT SS_INLINE VF FN(silu)(VF x) {
    VF xc = VMAX(VSET(C_SILU_FLOOR), x);
    return VMUL(xc, FN(sigmoid)(xc));
}

#define SS_ACT_LOOP(F)                                                               \
    do {                                                                             \
        ptrdiff_t i = 0;                                                             \
        for (; i + LANES <= n; i += LANES) VSTORE(x + i, F(VLOAD(x + i)));           \
        if (i < n) {                                                                 \
            VMASK m = FN(tail)(n - i);                                               \
            FN(store_masked)(x + i, m, F(FN(load_or)(m, x + i, VZERO())));           \
        }                                                                            \
    } while (0)

TGT static void FN(apply)(ss_act_kind act, float *x, ptrdiff_t n) {
    switch (act) {
    case SS_ACT_NONE: break;
    case SS_ACT_RELU: SS_ACT_LOOP(FN(relu)); break;
    case SS_ACT_GELU: SS_ACT_LOOP(FN(gelu)); break;
    case SS_ACT_TANH: SS_ACT_LOOP(FN(tanh)); break;
    case SS_ACT_SIGMOID: SS_ACT_LOOP(FN(sigmoid)); break;
    case SS_ACT_SILU: SS_ACT_LOOP(FN(silu)); break;
    case SS_ACT_EXP: SS_ACT_LOOP(FN(vexp)); break;
    }
}

TGT static void FN(softmax)(float *x, ptrdiff_t cols) {
    VF mx = VSET(-INFINITY);
    ptrdiff_t j;
    for (j = 0; j < cols; j += LANES) mx = VMAX(mx, FN(load_or)(FN(tail)(cols - j), x + j, VSET(-INFINITY)));
    /* Reduce lane by lane so that a NaN anywhere reaches the result. */
    float lanes[LANES], m = -INFINITY;
    VSTORE(lanes, mx);
    for (int l = 0; l < LANES; l++) m = (lanes[l] > m || lanes[l] != lanes[l]) ? lanes[l] : m;
    VF vm = VSET(m), sum = VZERO();
    for (j = 0; j < cols; j += LANES) {
        VMASK k = FN(tail)(cols - j);
        VF e = FN(keep)(k, FN(vexp)(VSUB(FN(load_or)(k, x + j, VZERO()), vm)));
        FN(store_masked)(x + j, k, e);
        sum = VADD(sum, e);
    }
    VF inv = VSET(1.0f / FN(hsum)(sum));
    for (j = 0; j < cols; j += LANES) {
        VMASK k = FN(tail)(cols - j);
        FN(store_masked)(x + j, k, VMUL(FN(load_or)(k, x + j, VZERO()), inv));
    }
}

TGT static void FN(layer_norm)(float *x, ptrdiff_t cols, const float *gamma, const float *beta, float eps) {
    VF acc = VZERO();
    ptrdiff_t j;
    for (j = 0; j < cols; j += LANES) acc = VADD(acc, FN(load_or)(FN(tail)(cols - j), x + j, VZERO()));
    VF mean = VSET(FN(hsum)(acc) / (float)cols);
    acc = VZERO();
    for (j = 0; j < cols; j += LANES) {
        VMASK k = FN(tail)(cols - j);
        VF d = FN(keep)(k, VSUB(FN(load_or)(k, x + j, VZERO()), mean));
        acc = VFMA(d, d, acc);
    }
    float var = FN(hsum)(acc) / (float)cols;
    VF inv = VSET(1.0f / _mm_cvtss_f32(_mm_sqrt_ss(_mm_set_ss(var + eps))));
    for (j = 0; j < cols; j += LANES) {
        VMASK k = FN(tail)(cols - j);
        VF v = VMUL(VSUB(FN(load_or)(k, x + j, VZERO()), mean), inv);
        if (gamma) v = VMUL(v, FN(load_or)(k, gamma + j, VZERO()));
        if (beta) v = VADD(v, FN(load_or)(k, beta + j, VZERO()));
        FN(store_masked)(x + j, k, v);
    }
}

#undef SS_ACT_LOOP
#undef TGT
#undef FN
#undef LANES
#undef VF
#undef VMASK
#undef VSET
#undef VZERO
#undef VADD
#undef VSUB
#undef VMUL
#undef VDIV
#undef VFMA
#undef VFMS
#undef VFNMA
#undef VMIN
#undef VMAX
#undef VABS
#undef VLOAD
#undef VSTORE
#undef VROUND
#endif /* SS_ACT_VECTOR_PASS */
