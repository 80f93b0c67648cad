/*
 * General single-precision GEMM for training: C = alpha * op(A) * op(B) + beta * C, with either
 * operand transposed, on a column range of C.
 *
 * BLIS-style blocking: column blocks of NC, depth blocks of KC, row blocks of MC. Each (KC x NC)
 * block of op(B) is packed into NR-wide panels and each (MC x KC) block of op(A) into MR-tall
 * panels (zero-padded), so the micro-kernel reads both operands contiguously whatever the
 * transposes. The micro-kernel keeps an MR x NR tile in registers across the KC loop, then
 * writes it through a small buffer (edge tiles store only their valid part). On AVX-512 the packs
 * run as 16 x 16 register transposes and masked row copies, the tile store as masked vectors.
 *   AVX-512  MR 12 x NR 32 (24 zmm accumulators)
 *   AVX2     MR  6 x NR 16 (12 ymm accumulators)
 *   portable MR  4 x NR 16
 * Packed panels live in this thread's scratch slots 0 (A) and 1 (B).
 */
#include "train.h"
#include "internal.h"
#include <string.h>

enum { KC = 256, MC = 96, NC = 1024, MR_MAX = 12, NR_MAX = 32 };

typedef struct {
    int trans_a, trans_b;
    const float *a, *b;
    ptrdiff_t lda, ldb;
} operands;

/* Ap[panel][kk][mr] = op(A)[i0 + panel*mr + r][k0 + kk], zero past row m. */
static void pack_a(const operands *o, ptrdiff_t i0, ptrdiff_t rows, ptrdiff_t k0, ptrdiff_t kc, int mr, float *ap) {
    for (ptrdiff_t p = 0; p < rows; p += mr) {
        float *dst = ap + p * kc;
        int valid = (int)ss_min(mr, rows - p);
        if (o->trans_a) {
            /* op(A)'s rows are A's columns: each kk reads `valid` consecutive floats */
            for (ptrdiff_t kk = 0; kk < kc; kk++) {
                const float *src = o->a + (k0 + kk) * o->lda + i0 + p;
                for (int r = 0; r < mr; r++) dst[kk * mr + r] = r < valid ? src[r] : 0.0f;
            }
            continue;
        }
        for (int r = 0; r < mr; r++) {
            if (r >= valid) {
                for (ptrdiff_t kk = 0; kk < kc; kk++) dst[kk * mr + r] = 0.0f;
            } else {
                const float *src = o->a + (i0 + p + r) * o->lda + k0;
                for (ptrdiff_t kk = 0; kk < kc; kk++) dst[kk * mr + r] = src[kk];
            }
        }
    }
}

/* Bp[panel][kk][nr] = op(B)[k0 + kk][j0 + panel*nr + c], zero past the block's columns. */
static void pack_b(const operands *o, ptrdiff_t j0, ptrdiff_t cols, ptrdiff_t k0, ptrdiff_t kc, int nr, float *bp) {
    for (ptrdiff_t p = 0; p < cols; p += nr) {
        float *dst = bp + p * kc;
        int valid = (int)ss_min(nr, cols - p);
        if (o->trans_b) {
            for (int c = 0; c < nr; c++) {
                if (c >= valid) {
                    for (ptrdiff_t kk = 0; kk < kc; kk++) dst[kk * nr + c] = 0.0f;
                    continue;
                }
                const float *src = o->b + (j0 + p + c) * o->ldb + k0;
                for (ptrdiff_t kk = 0; kk < kc; kk++) dst[kk * nr + c] = src[kk];
            }
        } else {
            for (ptrdiff_t kk = 0; kk < kc; kk++) {
                const float *src = o->b + (k0 + kk) * o->ldb + j0 + p;
                float *row = dst + kk * nr;
                for (int c = 0; c < valid; c++) row[c] = src[c];
                for (int c = valid; c < nr; c++) row[c] = 0.0f;
            }
        }
    }
}

#ifdef SS_X86
/* r[0..15] (16 rows of 16 floats) transposed in place: r[j] lane i = old r[i] lane j. */
SS_T512 static inline void transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        u[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        u[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    /* u[4i + c] holds, in 128-bit lane L, rows 4i..4i+3 of column 4L + c */
    for (int c = 0; c < 4; c++) {
        __m512 x0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88), x1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
        __m512 y0 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88), y1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
        r[c] = _mm512_shuffle_f32x4(x0, y0, 0x88);
        r[4 + c] = _mm512_shuffle_f32x4(x1, y1, 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(x0, y0, 0xDD);
        r[12 + c] = _mm512_shuffle_f32x4(x1, y1, 0xDD);
    }
}

/* dst[kk * stride + i] = rows[i][kk] for i < count (rows past `valid` as zeros) and kk < kc,
 * `count` <= 16 lanes written per kk: 16 x 16 register transposes, scalar past the last full 16. */
SS_T512 static void transpose_rows_512(const float *base, ptrdiff_t ld, int valid, int count, ptrdiff_t kc, float *dst, ptrdiff_t stride) {
    __mmask16 lanes = (__mmask16)((1u << count) - 1u);
    ptrdiff_t kk = 0;
    for (; kk + 16 <= kc; kk += 16) {
        __m512 r[16];
        for (int i = 0; i < 16; i++) r[i] = i < valid ? _mm512_loadu_ps(base + i * ld + kk) : _mm512_setzero_ps();
        transpose16(r);
        for (int j = 0; j < 16; j++) _mm512_mask_storeu_ps(dst + (kk + j) * stride, lanes, r[j]);
    }
    for (; kk < kc; kk++)
        for (int i = 0; i < count; i++) dst[kk * stride + i] = i < valid ? base[i * ld + kk] : 0.0f;
}

/* pack_a for MR 12: row-major A by transposes, transposed A by masked row copies. */
SS_T512 static void pack_a_512(const operands *o, ptrdiff_t i0, ptrdiff_t rows, ptrdiff_t k0, ptrdiff_t kc, int mr, float *ap) {
    for (ptrdiff_t p = 0; p < rows; p += mr) {
        float *dst = ap + p * kc;
        int valid = (int)ss_min(mr, rows - p);
        if (!o->trans_a) {
            transpose_rows_512(o->a + (i0 + p) * o->lda + k0, o->lda, valid, mr, kc, dst, mr);
            continue;
        }
        __mmask16 load = (__mmask16)((1u << valid) - 1u), store = (__mmask16)((1u << mr) - 1u);
        for (ptrdiff_t kk = 0; kk < kc; kk++)
            _mm512_mask_storeu_ps(dst + kk * mr, store, _mm512_maskz_loadu_ps(load, o->a + (k0 + kk) * o->lda + i0 + p));
    }
}

/* pack_b for NR 32: transposed B by transposes of 16 columns at a time, row-major B by masked copies. */
SS_T512 static void pack_b_512(const operands *o, ptrdiff_t j0, ptrdiff_t cols, ptrdiff_t k0, ptrdiff_t kc, int nr, float *bp) {
    for (ptrdiff_t p = 0; p < cols; p += nr) {
        float *dst = bp + p * kc;
        int valid = (int)ss_min(nr, cols - p);
        if (o->trans_b) {
            for (int h = 0; h < nr; h += 16)
                transpose_rows_512(o->b + (j0 + p + h) * o->ldb + k0, o->ldb, (int)ss_min(16, ss_max(0, valid - h)), 16, kc, dst + h, nr);
            continue;
        }
        __mmask16 lo = (__mmask16)(valid >= 16 ? 0xFFFFu : (1u << valid) - 1u);
        __mmask16 hi = (__mmask16)(valid >= 32 ? 0xFFFFu : valid <= 16 ? 0u : (1u << (valid - 16)) - 1u);
        for (ptrdiff_t kk = 0; kk < kc; kk++) {
            const float *src = o->b + (k0 + kk) * o->ldb + j0 + p;
            _mm512_storeu_ps(dst + kk * nr, _mm512_maskz_loadu_ps(lo, src));
            _mm512_storeu_ps(dst + kk * nr + 16, _mm512_maskz_loadu_ps(hi, src + 16));
        }
    }
}
#endif

/* tile[r][c] (row stride nr) into C: c = alpha * tile + beta * c, beta == 0 not reading C. */
static void store_tile(const float *tile, int nr, int rows, int cols, float alpha, float beta, float *c, ptrdiff_t ldc) {
    for (int r = 0; r < rows; r++) {
        float *dst = c + r * ldc;
        const float *src = tile + r * nr;
        if (beta == 0.0f) {
            for (int j = 0; j < cols; j++) dst[j] = alpha * src[j];
        } else {
            for (int j = 0; j < cols; j++) dst[j] = alpha * src[j] + beta * dst[j];
        }
    }
}

typedef void (*micro_fn)(ptrdiff_t kc, const float *ap, const float *bp, float *tile);

static void micro_portable(ptrdiff_t kc, const float *ap, const float *bp, float *tile) {
    enum { MR = 4, NR = 16 };
    float acc[MR][NR];
    memset(acc, 0, sizeof acc);
    for (ptrdiff_t kk = 0; kk < kc; kk++) {
        const float *a = ap + kk * MR, *b = bp + kk * NR;
        for (int r = 0; r < MR; r++)
            for (int j = 0; j < NR; j++) acc[r][j] += a[r] * b[j];
    }
    memcpy(tile, acc, sizeof acc);
}

#ifdef SS_X86
/* An MR x (2 vectors) register tile over kc; one definition per instruction set. */
#define DEFINE_MICRO(NAME, TGT, V, LANES, MR, ZERO, LOAD, BCAST, FMA, STORE) \
    TGT static void NAME(ptrdiff_t kc, const float *ap, const float *bp, float *tile) { \
        enum { NR = 2 * LANES }; \
        V acc[MR][2]; \
        for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = ZERO(); \
        for (ptrdiff_t kk = 0; kk < kc; kk++) { \
            V b0 = LOAD(bp + kk * NR), b1 = LOAD(bp + kk * NR + LANES); \
            const float *a = ap + kk * MR; \
            for (int r = 0; r < MR; r++) { \
                V av = BCAST(a[r]); \
                acc[r][0] = FMA(av, b0, acc[r][0]); \
                acc[r][1] = FMA(av, b1, acc[r][1]); \
            } \
        } \
        for (int r = 0; r < MR; r++) { \
            STORE(tile + r * NR, acc[r][0]); \
            STORE(tile + r * NR + LANES, acc[r][1]); \
        } \
    }
DEFINE_MICRO(micro_512, SS_T512, __m512, 16, 12, _mm512_setzero_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_storeu_ps)
DEFINE_MICRO(micro_256, SS_T256, __m256, 8, 6, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_storeu_ps)

/* store_tile for NR 32: two masked vectors per row. */
SS_T512 static void store_tile_512(const float *tile, int nr, int rows, int cols, float alpha, float beta, float *c, ptrdiff_t ldc) {
    __mmask16 lo = (__mmask16)(cols >= 16 ? 0xFFFFu : (1u << cols) - 1u);
    __mmask16 hi = (__mmask16)(cols >= 32 ? 0xFFFFu : cols <= 16 ? 0u : (1u << (cols - 16)) - 1u);
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int r = 0; r < rows; r++) {
        float *dst = c + r * ldc;
        __m512 t0 = _mm512_mul_ps(va, _mm512_loadu_ps(tile + r * nr)), t1 = _mm512_mul_ps(va, _mm512_loadu_ps(tile + r * nr + 16));
        if (beta != 0.0f) {
            t0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(lo, dst), t0);
            t1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(hi, dst + 16), t1);
        }
        _mm512_mask_storeu_ps(dst, lo, t0);
        _mm512_mask_storeu_ps(dst + 16, hi, t1);
    }
}
#endif

/* C[:, n_begin..n_end) = beta * C there (the K == 0 case). */
static void scale_columns(float *c, ptrdiff_t ldc, ptrdiff_t m, ptrdiff_t n_begin, ptrdiff_t n_end, float beta) {
    for (ptrdiff_t i = 0; i < m; i++)
        for (ptrdiff_t j = n_begin; j < n_end; j++) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
}

typedef void (*pack_a_fn)(const operands *o, ptrdiff_t i0, ptrdiff_t rows, ptrdiff_t k0, ptrdiff_t kc, int mr, float *ap);
typedef void (*pack_b_fn)(const operands *o, ptrdiff_t j0, ptrdiff_t cols, ptrdiff_t k0, ptrdiff_t kc, int nr, float *bp);
typedef void (*store_fn)(const float *tile, int nr, int rows, int cols, float alpha, float beta, float *c, ptrdiff_t ldc);

/* The register tile and the routines that feed and drain it, per instruction set. */
typedef struct {
    int mr, nr;
    micro_fn micro;
    pack_a_fn pack_a;
    pack_b_fn pack_b;
    store_fn store;
} micro_choice;

static micro_choice choose(ss_isa isa) {
#ifdef SS_X86
    if (isa == SS_ISA_AVX512) return (micro_choice){12, 32, micro_512, pack_a_512, pack_b_512, store_tile_512};
    if (isa == SS_ISA_AVX2) return (micro_choice){6, 16, micro_256, pack_a, pack_b, store_tile};
#endif
    (void)isa;
    return (micro_choice){4, 16, micro_portable, pack_a, pack_b, store_tile};
}

/* One packed (MC x KC) A block against one packed (KC x NC) B block. */
static void block_product(micro_choice mc, const float *ap, const float *bp, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t kc,
                          float alpha, float beta, float *c, ptrdiff_t ldc) {
    float tile[MR_MAX * NR_MAX] __attribute__((aligned(64)));
    for (ptrdiff_t jr = 0; jr < cols; jr += mc.nr) {
        int nvalid = (int)ss_min(mc.nr, cols - jr);
        for (ptrdiff_t ir = 0; ir < rows; ir += mc.mr) {
            int mvalid = (int)ss_min(mc.mr, rows - ir);
            mc.micro(kc, ap + ir * kc, bp + jr * kc, tile);
            mc.store(tile, mc.nr, mvalid, nvalid, alpha, beta, c + ir * ldc + jr, ldc);
        }
    }
}

ss_status ss_train_gemm_isa(ss_isa isa, int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha,
                      const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb, float beta, float *c, ptrdiff_t ldc,
                      ptrdiff_t n_begin, ptrdiff_t n_end) {
    if (m < 0 || n < 0 || k < 0 || n_begin < 0 || n_end > n || n_begin > n_end) return SS_ERR_ARGUMENT;
    if (m == 0 || n_begin == n_end) return SS_OK;
    if (k == 0) {
        scale_columns(c, ldc, m, n_begin, n_end, beta);
        return SS_OK;
    }
    micro_choice mc = choose(ss_clamp_isa(isa));
    float *ap = ss_thread_scratch(0, (size_t)(MC + MR_MAX) * KC);
    float *bp = ss_thread_scratch(1, (size_t)(NC + NR_MAX) * KC);
    if (!ap || !bp) return SS_ERR_NO_MEMORY;
    operands o = {trans_a, trans_b, a, b, lda, ldb};
    for (ptrdiff_t jc = n_begin; jc < n_end; jc += NC) {
        ptrdiff_t nc = ss_min(NC, n_end - jc);
        for (ptrdiff_t pc = 0; pc < k; pc += KC) {
            ptrdiff_t kc = ss_min(KC, k - pc);
            float step_beta = pc == 0 ? beta : 1.0f;
            mc.pack_b(&o, jc, nc, pc, kc, mc.nr, bp);
            for (ptrdiff_t ic = 0; ic < m; ic += MC) {
                ptrdiff_t rows = ss_min(MC, m - ic);
                mc.pack_a(&o, ic, rows, pc, kc, mc.mr, ap);
                block_product(mc, ap, bp, rows, nc, kc, alpha, step_beta, c + ic * ldc + jc, ldc);
            }
        }
    }
    return SS_OK;
}
