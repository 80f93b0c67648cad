/*
 * Small double-precision linear algebra (see include/linalg.h). Everything is written as dot
 * products and axpys over contiguous rows, which run on AVX2 (FMA) when the CPU has it.
 */
#include "linalg.h"
#include "cpu_features.h"
#include "internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* y += a x over n doubles */
static void axpy_portable(ptrdiff_t n, double a, const double *x, double *y) {
    for (ptrdiff_t i = 0; i < n; i++) y[i] += a * x[i];
}

static double dot_portable(ptrdiff_t n, const double *x, const double *y) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    ptrdiff_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += x[i] * y[i]; s1 += x[i + 1] * y[i + 1]; s2 += x[i + 2] * y[i + 2]; s3 += x[i + 3] * y[i + 3];
    }
    for (; i < n; i++) s0 += x[i] * y[i];
    return (s0 + s1) + (s2 + s3);
}

#ifdef SS_X86
SS_T256 static void axpy256(ptrdiff_t n, double a, const double *x, double *y) {
    const __m256d av = _mm256_set1_pd(a);
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_pd(y + i, _mm256_fmadd_pd(av, _mm256_loadu_pd(x + i), _mm256_loadu_pd(y + i)));
        _mm256_storeu_pd(y + i + 4, _mm256_fmadd_pd(av, _mm256_loadu_pd(x + i + 4), _mm256_loadu_pd(y + i + 4)));
    }
    for (; i < n; i++) y[i] += a * x[i];
}

SS_T256 static double dot256(ptrdiff_t n, const double *x, const double *y) {
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) {
        s0 = _mm256_fmadd_pd(_mm256_loadu_pd(x + i), _mm256_loadu_pd(y + i), s0);
        s1 = _mm256_fmadd_pd(_mm256_loadu_pd(x + i + 4), _mm256_loadu_pd(y + i + 4), s1);
    }
    const __m256d s = _mm256_add_pd(s0, s1);
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    double r = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
    for (; i < n; i++) r += x[i] * y[i];
    return r;
}
#endif

static int use_avx2(void) { return ss_detect_isa() >= SS_ISA_AVX2; }

static void axpy(int avx2, ptrdiff_t n, double a, const double *x, double *y) {
#ifdef SS_X86
    if (avx2) { axpy256(n, a, x, y); return; }
#endif
    (void)avx2;
    axpy_portable(n, a, x, y);
}

static double dot(int avx2, ptrdiff_t n, const double *x, const double *y) {
#ifdef SS_X86
    if (avx2) return dot256(n, x, y);
#endif
    (void)avx2;
    return dot_portable(n, x, y);
}

void ss_dgram(const double *a, ptrdiff_t rows, ptrdiff_t cols, double *out) {
    const int avx2 = use_avx2();
    memset(out, 0, (size_t)(cols * cols) * sizeof(double));
    for (ptrdiff_t x = 0; x < rows; x++) {  /* upper triangle += a_x a_x^T */
        const double *ax = a + x * cols;
        for (ptrdiff_t i = 0; i < cols; i++)
            if (ax[i] != 0.0) axpy(avx2, cols - i, ax[i], ax + i, out + i * cols + i);
    }
    for (ptrdiff_t i = 0; i < cols; i++)
        for (ptrdiff_t j = 0; j < i; j++) out[i * cols + j] = out[j * cols + i];
}

void ss_dcholesky(double *a, ptrdiff_t r, double jitter) {
    const int avx2 = use_avx2();
    for (ptrdiff_t j = 0; j < r; j++) {
        double *aj = a + j * r;
        double d = aj[j] - dot(avx2, j, aj, aj);
        d = d > jitter ? d : jitter;
        const double ljj = sqrt(d);
        aj[j] = ljj;
        for (ptrdiff_t i = j + 1; i < r; i++) {
            double *ai = a + i * r;
            ai[j] = (ai[j] - dot(avx2, j, ai, aj)) / ljj;
        }
        for (ptrdiff_t k = j + 1; k < r; k++) aj[k] = 0.0;
    }
}

void ss_dcholesky_solve_rows(const double *l, ptrdiff_t r, double *b, ptrdiff_t count) {
    const int avx2 = use_avx2();
    for (ptrdiff_t row = 0; row < count; row++) {
        double *x = b + row * r;
        for (ptrdiff_t i = 0; i < r; i++) x[i] = (x[i] - dot(avx2, i, l + i * r, x)) / l[i * r + i];  /* L y = b */
        for (ptrdiff_t i = r - 1; i >= 0; i--) {  /* L^T x = y: x_i /= l_ii, then remove it from the rows above */
            x[i] /= l[i * r + i];
            const double xi = x[i];
            const double *li = l + i * r;
            for (ptrdiff_t k = 0; k < i; k++) x[k] -= li[k] * xi;
        }
    }
}

void ss_dcholesky_inverse(const double *l, ptrdiff_t r, double *inv) {
    const int avx2 = use_avx2();
    /* M = L^-1 (lower), in inv, row by row: row_i = (e_i - sum_{k<i} L_ik row_k) / L_ii */
    double *m = inv;
    memset(m, 0, (size_t)(r * r) * sizeof(double));
    for (ptrdiff_t i = 0; i < r; i++) {
        double *mi = m + i * r;
        const double *li = l + i * r;
        mi[i] = 1.0;
        for (ptrdiff_t k = 0; k < i; k++)
            if (li[k] != 0.0) axpy(avx2, k + 1, -li[k], m + k * r, mi);
        const double d = 1.0 / li[i];
        for (ptrdiff_t k = 0; k <= i; k++) mi[k] *= d;
    }
    /* (L L^T)^-1 = M^T M. Upper row i: sum over rows k >= i of M_ki * M_k[i..k] (contiguous), then
     * stored over row i of M, which no later row needs (they only read rows below themselves). */
    double *row = malloc((size_t)(r > 0 ? r : 1) * sizeof(double));
    if (!row) return;
    for (ptrdiff_t i = 0; i < r; i++) {
        memset(row + i, 0, (size_t)(r - i) * sizeof(double));
        for (ptrdiff_t k = i; k < r; k++) {
            const double c = m[k * r + i];
            if (c != 0.0) axpy(avx2, k - i + 1, c, m + k * r + i, row + i);
        }
        memcpy(m + i * r + i, row + i, (size_t)(r - i) * sizeof(double));
    }
    free(row);
    for (ptrdiff_t i = 0; i < r; i++)
        for (ptrdiff_t j = 0; j < i; j++) inv[i * r + j] = inv[j * r + i];
}
