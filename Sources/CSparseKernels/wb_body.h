/*
 * Weight-broadcast x activation-vector inner kernels, written once for any vector width.
 *
 * Included once per instruction set by weight_broadcast.h with WB_ISA set to 512 or 256; the
 * functions get that suffix. X^T rows (one per input column) hold MV vectors of tokens with
 * row stride ldt floats; the functions accumulate into transposed outputs yt (one row per output).
 */

#if WB_ISA == 512
#define WB_TARGET SS_T512
#define WB_VEC __m512
#define WB_WIDTH 16
#define WB_NAME(x) x##512
#define WB_SET1 _mm512_set1_ps
#define WB_LOAD _mm512_loadu_ps
#define WB_STORE _mm512_storeu_ps
#define WB_FMA _mm512_fmadd_ps
#define WB_ADD _mm512_add_ps
#define WB_ZERO _mm512_setzero_ps
#else
#define WB_TARGET SS_T256
#define WB_VEC __m256
#define WB_WIDTH 8
#define WB_NAME(x) x##256
#define WB_SET1 _mm256_set1_ps
#define WB_LOAD _mm256_loadu_ps
#define WB_STORE _mm256_storeu_ps
#define WB_FMA _mm256_fmadd_ps
#define WB_ADD _mm256_add_ps
#define WB_ZERO _mm256_setzero_ps
#endif

/* N:M: output rows j .. j+3 of one 16-row panel over groups [g0, g1) (index layout in nm.h; the
 * positions of lanes j+r sit REL_SHIFT bits above lane j's for even j). The accumulators start
 * from the bias (first K block) or from yt. */
#ifndef WB_REL_SHIFT
#define WB_REL_SHIFT(MC, r) ((MC) == 4 ? 2 * (r) : 32 * ((r) & 1) + 4 * ((r) >> 1))
#endif
WB_TARGET SS_AI void WB_NAME(wb_nm_rows)(const float *vp, const void *ip, int n, ptrdiff_t g0, ptrdiff_t g1, int j,
                                         const float *xt, const ptrdiff_t ldt, float *yt, const float *bias, int first,
                                         const int MC, const int MV) {
    enum { R = 4 };
    WB_VEC acc[R][4];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < MV; v++)
            acc[r][v] = first ? WB_SET1(bias ? bias[j + r] : 0.0f) : WB_LOAD(yt + (j + r) * ldt + WB_WIDTH * v);
    const uint64_t mask = (uint64_t)MC - 1;
    for (ptrdiff_t g = g0; g < g1; g++) {
        const float *xg = xt + g * MC * ldt;
        for (int s = 0; s < n; s++) {
            const ptrdiff_t e = g * n + s;
            /* lane j's position is at bit 2j in both layouts when j is even */
            const uint64_t word = (MC == 4 ? (uint64_t)((const uint32_t *)ip)[e] : ((const uint64_t *)ip)[e]) >> (2 * j);
            const float *val = vp + e * SS_PANEL + j;
            for (int r = 0; r < R; r++) {
                const float *xr = xg + (ptrdiff_t)((word >> WB_REL_SHIFT(MC, r)) & mask) * ldt;
                const WB_VEC w = WB_SET1(val[r]);
                for (int v = 0; v < MV; v++) acc[r][v] = WB_FMA(w, WB_LOAD(xr + WB_WIDTH * v), acc[r][v]);
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < MV; v++) WB_STORE(yt + (j + r) * ldt + WB_WIDTH * v, acc[r][v]);
}

/* CSR: one output row (non-zeros e0 .. e1-1) starting from bias b, with U independent chains of
 * MV vectors (U * MV <= 8 accumulators). */
WB_TARGET SS_AI void WB_NAME(wb_csr_row)(const int32_t *col, const float *val, int32_t e0, int32_t e1,
                                         const float *xt, ptrdiff_t ldt, float *out, float b, const int MV) {
    enum { UMAX = 4 };
    const int U = MV == 1 ? 4 : MV == 2 ? 2 : 1;
    WB_VEC a[UMAX][4];
    for (int u = 0; u < U; u++)
        for (int v = 0; v < MV; v++) a[u][v] = u == 0 ? WB_SET1(b) : WB_ZERO();
    int32_t e = e0;
    for (; e + U <= e1; e += U)
        for (int u = 0; u < U; u++) {
            const WB_VEC w = WB_SET1(val[e + u]);
            const float *xr = xt + (ptrdiff_t)col[e + u] * ldt;
            for (int v = 0; v < MV; v++) a[u][v] = WB_FMA(w, WB_LOAD(xr + WB_WIDTH * v), a[u][v]);
        }
    for (; e < e1; e++) {
        const WB_VEC w = WB_SET1(val[e]);
        const float *xr = xt + (ptrdiff_t)col[e] * ldt;
        for (int v = 0; v < MV; v++) a[0][v] = WB_FMA(w, WB_LOAD(xr + WB_WIDTH * v), a[0][v]);
    }
    for (int u = 1; u < U; u++)
        for (int v = 0; v < MV; v++) a[0][v] = WB_ADD(a[0][v], a[u][v]);
    for (int v = 0; v < MV; v++) WB_STORE(out + WB_WIDTH * v, a[0][v]);
}

#undef WB_TARGET
#undef WB_VEC
#undef WB_WIDTH
#undef WB_NAME
#undef WB_SET1
#undef WB_LOAD
#undef WB_STORE
#undef WB_FMA
#undef WB_ADD
#undef WB_ZERO
