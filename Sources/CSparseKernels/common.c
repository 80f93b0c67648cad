/*
 * Shared kernel helpers: per-thread scratch buffers and the transposes the weight-broadcast
 * GEMM kernels use to move a row-major X tile into K-major form and their K-major results back.
 */
#include "internal.h"
#include "status.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* Per-thread scratch                                                                          */
/* ------------------------------------------------------------------------------------------ */

enum { SCRATCH_SLOTS = 5 };
/* Capacity (floats) kept however small later requests are; above it a buffer more than four
   times what a call asks for is replaced by one of the asked size. */
enum { SCRATCH_KEEP_FLOATS = 1 << 20 };
typedef struct {
    float *buffer[SCRATCH_SLOTS];
    size_t capacity[SCRATCH_SLOTS];
} scratch_set;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_destroy(void *value) {
    scratch_set *set = value;
    for (int i = 0; i < SCRATCH_SLOTS; i++) free(set->buffer[i]);
    free(set);
}

static void scratch_make_key(void) { pthread_key_create(&scratch_key, scratch_destroy); }

static int scratch_failures;  /* ss_scratch_fail_next */

void ss_scratch_fail_next(int calls) { __atomic_store_n(&scratch_failures, calls > 0 ? calls : 0, __ATOMIC_SEQ_CST); }

static int scratch_should_fail(void) {
    int left = __atomic_load_n(&scratch_failures, __ATOMIC_SEQ_CST);
    while (left > 0)
        if (__atomic_compare_exchange_n(&scratch_failures, &left, left - 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return 1;
    return 0;
}

size_t ss_thread_scratch_capacity(int slot) {
    if (slot < 0 || slot >= SCRATCH_SLOTS) return 0;
    pthread_once(&scratch_once, scratch_make_key);
    const scratch_set *set = pthread_getspecific(scratch_key);
    return set ? set->capacity[slot] : 0;
}

const char *ss_status_message(int status) {
    switch (status) {
    case SS_OK: return "ok";
    case SS_ERR_ARGUMENT: return "invalid argument";
    case SS_ERR_NO_MEMORY: return "out of memory (kernel scratch buffer)";
    default: return "unknown kernel status";
    }
}

float *ss_thread_scratch(int slot, size_t floats) {
    if (slot < 0 || slot >= SCRATCH_SLOTS) return NULL;
    pthread_once(&scratch_once, scratch_make_key);
    scratch_set *set = pthread_getspecific(scratch_key);
    if (!set) {
        set = calloc(1, sizeof *set);
        if (!set) return NULL;
        if (pthread_setspecific(scratch_key, set) != 0) {
            free(set);
            return NULL;
        }
    }
    /* A buffer far larger than this call needs (left by one huge batch) is given back. */
    const int oversized = set->capacity[slot] > SCRATCH_KEEP_FLOATS && set->capacity[slot] / 4 > floats;
    if (set->capacity[slot] < floats || !set->buffer[slot] || oversized) {
        free(set->buffer[slot]);
        set->buffer[slot] = NULL;
        set->capacity[slot] = 0;
        const size_t capacity = floats + floats / 4 + 64;
        void *p = NULL;
        if (scratch_should_fail()) return NULL;
        if (posix_memalign(&p, 64, capacity * sizeof(float)) != 0) return NULL;
        set->buffer[slot] = p;
        set->capacity[slot] = capacity;
    }
    return set->buffer[slot];
}

/* ------------------------------------------------------------------------------------------ */
/* Transposes                                                                                  */
/* ------------------------------------------------------------------------------------------ */

void ss_xpose_in_c(const float *x, ptrdiff_t ldx, ptrdiff_t rows, ptrdiff_t k, ptrdiff_t k_pad,
                   float *xt, ptrdiff_t ldt, ptrdiff_t cols_pad) {
    for (ptrdiff_t kk = 0; kk < k_pad; kk++) {
        float *dst = xt + kk * ldt;
        for (ptrdiff_t t = 0; t < cols_pad; t++) dst[t] = (kk < k && t < rows) ? x[t * ldx + kk] : 0.0f;
    }
}

void ss_xpose_out_c(const float *yt, ptrdiff_t ldt, ptrdiff_t rows, ptrdiff_t cols, float *y, ptrdiff_t ldy) {
    for (ptrdiff_t t = 0; t < rows; t++)
        for (ptrdiff_t j = 0; j < cols; j++) y[t * ldy + j] = yt[j * ldt + t];
}

#ifdef SS_X86
/* In-place 16 x 16 transpose of r[0..15] (row i in r[i]). */
SS_T512 SS_AI void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 2]);
        const __m512d c = _mm512_castps_pd(t[4 * i + 1]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
    }
    /* r[4i + q], 128-bit lane L: column 4L + q of rows 4i..4i+3. */
    for (int q = 0; q < 4; q++) {
        t[q] = _mm512_shuffle_f32x4(r[q], r[4 + q], 0x88);
        t[4 + q] = _mm512_shuffle_f32x4(r[q], r[4 + q], 0xDD);
        t[8 + q] = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0x88);
        t[12 + q] = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0xDD);
    }
    for (int q = 0; q < 4; q++) {
        r[q] = _mm512_shuffle_f32x4(t[q], t[8 + q], 0x88);
        r[8 + q] = _mm512_shuffle_f32x4(t[q], t[8 + q], 0xDD);
        r[4 + q] = _mm512_shuffle_f32x4(t[4 + q], t[12 + q], 0x88);
        r[12 + q] = _mm512_shuffle_f32x4(t[4 + q], t[12 + q], 0xDD);
    }
}

static inline __mmask16 mask16(ptrdiff_t count) {
    return count >= 16 ? (__mmask16)0xFFFF : count <= 0 ? (__mmask16)0 : (__mmask16)((1u << count) - 1u);
}

SS_T512 void ss_xpose_in_512(const float *x, ptrdiff_t ldx, ptrdiff_t rows, ptrdiff_t k, ptrdiff_t k_pad,
                             float *xt, ptrdiff_t ldt, ptrdiff_t cols_pad) {
    for (ptrdiff_t k0 = 0; k0 < k_pad; k0 += 16) {
        const __mmask16 kmask = mask16(k - k0);
        const ptrdiff_t kcount = ss_min(16, k_pad - k0);
        for (ptrdiff_t t0 = 0; t0 < cols_pad; t0 += 16) {
            __m512 r[16];
            for (int i = 0; i < 16; i++)
                r[i] = (t0 + i < rows && kmask) ? _mm512_maskz_loadu_ps(kmask, x + (t0 + i) * ldx + k0) : _mm512_setzero_ps();
            transpose16(r);
            for (ptrdiff_t c = 0; c < kcount; c++) _mm512_storeu_ps(xt + (k0 + c) * ldt + t0, r[c]);
        }
    }
}

SS_T512 void ss_xpose_out_512(const float *yt, ptrdiff_t ldt, ptrdiff_t rows, ptrdiff_t cols, float *y, ptrdiff_t ldy) {
    const __mmask16 cmask = mask16(cols);
    for (ptrdiff_t t0 = 0; t0 < rows; t0 += 16) {
        __m512 r[16];
        for (int j = 0; j < 16; j++) r[j] = _mm512_loadu_ps(yt + j * ldt + t0);
        transpose16(r);
        const ptrdiff_t count = ss_min(16, rows - t0);
        for (ptrdiff_t t = 0; t < count; t++) _mm512_mask_storeu_ps(y + (t0 + t) * ldy, cmask, r[t]);
    }
}

/* In-place 8 x 8 transpose of r[0..7]. */
SS_T256 SS_AI void transpose8(__m256 r[8]) {
    __m256 t[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        const __m256d a = _mm256_castps_pd(t[4 * i]), b = _mm256_castps_pd(t[4 * i + 2]);
        const __m256d c = _mm256_castps_pd(t[4 * i + 1]), d = _mm256_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm256_castpd_ps(_mm256_unpacklo_pd(a, b));
        r[4 * i + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(a, b));
        r[4 * i + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(c, d));
        r[4 * i + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(c, d));
    }
    for (int q = 0; q < 4; q++) {
        t[q] = _mm256_permute2f128_ps(r[q], r[4 + q], 0x20);
        t[4 + q] = _mm256_permute2f128_ps(r[q], r[4 + q], 0x31);
    }
    for (int i = 0; i < 8; i++) r[i] = t[i];
}

SS_T256 static inline __m256i mask8(ptrdiff_t count) {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const int c = count >= 8 ? 8 : count <= 0 ? 0 : (int)count;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(c), lanes);
}

SS_T256 void ss_xpose_in_256(const float *x, ptrdiff_t ldx, ptrdiff_t rows, ptrdiff_t k, ptrdiff_t k_pad,
                             float *xt, ptrdiff_t ldt, ptrdiff_t cols_pad) {
    for (ptrdiff_t k0 = 0; k0 < k_pad; k0 += 8) {
        const __m256i kmask = mask8(k - k0);
        const int any = k - k0 > 0;
        const ptrdiff_t kcount = ss_min(8, k_pad - k0);
        for (ptrdiff_t t0 = 0; t0 < cols_pad; t0 += 8) {
            __m256 r[8];
            for (int i = 0; i < 8; i++)
                r[i] = (t0 + i < rows && any) ? _mm256_maskload_ps(x + (t0 + i) * ldx + k0, kmask) : _mm256_setzero_ps();
            transpose8(r);
            for (ptrdiff_t c = 0; c < kcount; c++) _mm256_storeu_ps(xt + (k0 + c) * ldt + t0, r[c]);
        }
    }
}

SS_T256 void ss_xpose_out_256(const float *yt, ptrdiff_t ldt, ptrdiff_t rows, ptrdiff_t cols, float *y, ptrdiff_t ldy) {
    /* A 16-wide panel is two 8 x 8 blocks per 8 tokens. */
    for (ptrdiff_t half = 0; half < 2 && half * 8 < cols; half++) {
        const __m256i cmask = mask8(cols - half * 8);
        for (ptrdiff_t t0 = 0; t0 < rows; t0 += 8) {
            __m256 r[8];
            for (int j = 0; j < 8; j++) r[j] = _mm256_loadu_ps(yt + (half * 8 + j) * ldt + t0);
            transpose8(r);
            const ptrdiff_t count = ss_min(8, rows - t0);
            for (ptrdiff_t t = 0; t < count; t++) _mm256_maskstore_ps(y + (t0 + t) * ldy + half * 8, cmask, r[t]);
        }
    }
}
#endif

void ss_tiles_transpose(ss_isa isa, const float *x, ptrdiff_t ldx, ptrdiff_t r, ptrdiff_t k, ptrdiff_t k_pad, float *xt) {
    for (ptrdiff_t t0 = 0; t0 < r; t0 += SS_TILE) {
        const ptrdiff_t tokens = ss_min(SS_TILE, r - t0);
        const ptrdiff_t ldt = ss_tile_ldt(isa, tokens);
        float *dst = xt + t0 / SS_TILE * k_pad * SS_TILE;
#ifdef SS_X86
        if (isa == SS_ISA_AVX512) { ss_xpose_in_512(x + t0 * ldx, ldx, tokens, k, k_pad, dst, ldt, ldt); continue; }
        if (isa == SS_ISA_AVX2) { ss_xpose_in_256(x + t0 * ldx, ldx, tokens, k, k_pad, dst, ldt, (tokens + 7) / 8 * 8); continue; }
#endif
        ss_xpose_in_c(x + t0 * ldx, ldx, tokens, k, k_pad, dst, ldt, tokens);
    }
}

void ss_panel_store(ss_isa isa, ss_act_kind act, float *yt, ptrdiff_t ldt, ptrdiff_t tokens, ptrdiff_t cols,
                    float *y, ptrdiff_t ldy) {
    if (act != SS_ACT_NONE) ss_act_apply_isa(isa, act, yt, cols * ldt);
#ifdef SS_X86
    if (isa == SS_ISA_AVX512) { ss_xpose_out_512(yt, ldt, tokens, cols, y, ldy); return; }
    if (isa == SS_ISA_AVX2) { ss_xpose_out_256(yt, ldt, tokens, cols, y, ldy); return; }
#endif
    ss_xpose_out_c(yt, ldt, tokens, cols, y, ldy);
}

/* ------------------------------------------------------------------------------------------ */
/* Panel-tiled loop nest                                                                       */
/* ------------------------------------------------------------------------------------------ */

int ss_check_columns(ptrdiff_t n, ptrdiff_t k, ptrdiff_t m, ptrdiff_t n_begin, ptrdiff_t n_end) {
    if (n <= 0 || k <= 0 || m < 0 || n_begin < 0 || n_end > n || n_begin > n_end) return SS_ERR_ARGUMENT;
    if (n_begin % SS_PANEL != 0 || (n_end % SS_PANEL != 0 && n_end != n)) return SS_ERR_ARGUMENT;
    return SS_OK;
}

void ss_panel_tiles(ss_tile_shape shape, ptrdiff_t m, ptrdiff_t chunk, ptrdiff_t n_begin, ptrdiff_t n_end,
                    ss_isa act_isa, ss_act_kind act, float *y, ptrdiff_t ldy, const ss_tile_visitor *visitor) {
    const int step = m <= 2 ? shape.gemv_panels : shape.panels;
    const ptrdiff_t p_begin = n_begin / SS_PANEL, p_end = ss_ceil_div(n_end, SS_PANEL);
    chunk = ss_max(shape.max_rows, chunk / shape.max_rows * shape.max_rows);
    for (ptrdiff_t r0 = 0; r0 < m; r0 += chunk) {
        const ptrdiff_t rows = ss_min(chunk, m - r0), tiles = ss_ceil_div(rows, shape.max_rows);
        if (visitor->chunk_begin) visitor->chunk_begin(visitor->ctx, r0, rows);
        for (ptrdiff_t p = p_begin; p < p_end; p += step) {
            const int np = (int)ss_min(p_end - p, step);
            const ptrdiff_t col0 = p * SS_PANEL, cols = ss_min((p + np) * SS_PANEL, n_end) - col0;
            ptrdiff_t r = r0;
            for (ptrdiff_t tix = 0; tix < tiles; tix++) {
                const int mr = (int)(rows / tiles + (tix < rows % tiles ? 1 : 0));
                visitor->tile(visitor->ctx, r, mr, p, np, col0, cols);
                if (act != SS_ACT_NONE && act != SS_ACT_RELU)
                    for (int i = 0; i < mr; i++) ss_act_apply_isa(act_isa, act, y + (r + i) * ldy + col0, cols);
                r += mr;
            }
        }
    }
}
