/*
 * Kernels of recovery training for 1-D convolutional classifiers (time-major rows: value
 * t * channels + c): im2col and its adjoint col2im, so a convolution's forward and backward run
 * as the training GEMMs of a linear layer on the window matrix; max pooling that keeps the
 * position of each window's maximum, and its backward; average pooling and its backward.
 *
 * These are copies, scatter-adds and compares over channel segments (the arithmetic is in the
 * GEMMs). Each loop body is written once as a macro and instantiated for AVX-512, AVX2 (target
 * attributes; the compiler vectorises the channel loops) and portable code, dispatched like the
 * other kernels. Element by element every path does the same operations in the same order, so
 * all paths give identical results.
 */
#include "train.h"
#include "internal.h"
#include <string.h>

/* Input step of output step t, tap k. */
static inline ptrdiff_t conv_step(const ss_conv1d_shape *s, ptrdiff_t t, ptrdiff_t k) {
    return t * s->stride - s->pad_left + k * s->dilation;
}

static int conv_shape_ok(const ss_conv1d_shape *s, ptrdiff_t rows) {
    return s && rows >= 0 && s->length > 0 && s->channels > 0 && s->kernel > 0 && s->stride > 0 && s->dilation > 0 &&
           s->pad_left >= 0 && s->out_len > 0;
}

static int pool_shape_ok(ptrdiff_t rows, ptrdiff_t length, ptrdiff_t channels, ptrdiff_t kernel, ptrdiff_t stride, ptrdiff_t out_len) {
    return rows >= 0 && length > 0 && channels > 0 && kernel > 0 && stride > 0 && out_len > 0 && (out_len - 1) * stride + kernel <= length;
}

/* ---- loop bodies, instantiated per ISA ---- */

#define IM2COL_BODY                                                                                   \
    ptrdiff_t c = s->channels, w = s->kernel * c;                                                     \
    for (ptrdiff_t r = 0; r < rows; r++) {                                                            \
        const float *xr = x + r * s->length * c;                                                      \
        for (ptrdiff_t t = 0; t < s->out_len; t++) {                                                  \
            float *dst = cols + (r * s->out_len + t) * w;                                             \
            for (ptrdiff_t k = 0; k < s->kernel; k++) {                                               \
                ptrdiff_t step = conv_step(s, t, k);                                                  \
                float *seg = dst + k * c;                                                             \
                if (step < 0 || step >= s->length) {                                                  \
                    for (ptrdiff_t i = 0; i < c; i++) seg[i] = 0.0f;                                  \
                } else {                                                                              \
                    const float *src = xr + step * c;                                                 \
                    for (ptrdiff_t i = 0; i < c; i++) seg[i] = src[i];                                \
                }                                                                                     \
            }                                                                                         \
        }                                                                                             \
    }

/* dx = sum over windows of their columns (taps in order t, k: a fixed order on every path). */
#define COL2IM_BODY                                                                                   \
    ptrdiff_t c = s->channels, w = s->kernel * c;                                                     \
    for (ptrdiff_t r = 0; r < rows; r++) {                                                            \
        float *dr = dx + r * s->length * c;                                                           \
        for (ptrdiff_t i = 0; i < s->length * c; i++) dr[i] = 0.0f;                                   \
        for (ptrdiff_t t = 0; t < s->out_len; t++) {                                                  \
            const float *src = cols + (r * s->out_len + t) * w;                                       \
            for (ptrdiff_t k = 0; k < s->kernel; k++) {                                               \
                ptrdiff_t step = conv_step(s, t, k);                                                  \
                if (step < 0 || step >= s->length) continue;                                          \
                float *seg = dr + step * c;                                                           \
                const float *g = src + k * c;                                                         \
                for (ptrdiff_t i = 0; i < c; i++) seg[i] += g[i];                                     \
            }                                                                                         \
        }                                                                                             \
    }

/* The first maximum of each window wins; a NaN replaces the running maximum (as inference does). */
#define MAXPOOL_BODY                                                                                  \
    for (ptrdiff_t r = 0; r < rows; r++) {                                                            \
        const float *xr = x + r * length * channels;                                                  \
        for (ptrdiff_t t = 0; t < out_len; t++) {                                                     \
            float *yt = y + (r * out_len + t) * channels;                                             \
            int32_t *at = arg + (r * out_len + t) * channels;                                         \
            const float *first = xr + t * stride * channels;                                          \
            for (ptrdiff_t i = 0; i < channels; i++) { yt[i] = first[i]; at[i] = (int32_t)(t * stride); } \
            for (ptrdiff_t k = 1; k < kernel; k++) {                                                  \
                const float *row = first + k * channels;                                              \
                for (ptrdiff_t i = 0; i < channels; i++)                                              \
                    if (row[i] > yt[i] || row[i] != row[i]) { yt[i] = row[i]; at[i] = (int32_t)(t * stride + k); } \
            }                                                                                         \
        }                                                                                             \
    }

#define AVGPOOL_BODY                                                                                  \
    float count = (float)kernel;                                                                      \
    for (ptrdiff_t r = 0; r < rows; r++) {                                                            \
        const float *xr = x + r * length * channels;                                                  \
        for (ptrdiff_t t = 0; t < out_len; t++) {                                                     \
            float *yt = y + (r * out_len + t) * channels;                                             \
            const float *first = xr + t * stride * channels;                                          \
            for (ptrdiff_t i = 0; i < channels; i++) yt[i] = first[i];                                \
            for (ptrdiff_t k = 1; k < kernel; k++)                                                    \
                for (ptrdiff_t i = 0; i < channels; i++) yt[i] += first[k * channels + i];            \
            for (ptrdiff_t i = 0; i < channels; i++) yt[i] /= count;                                  \
        }                                                                                             \
    }

#define AVGPOOL_BACKWARD_BODY                                                                         \
    float scale = 1.0f / (float)kernel;                                                               \
    for (ptrdiff_t r = 0; r < rows; r++) {                                                            \
        float *dr = dx + r * length * channels;                                                       \
        for (ptrdiff_t i = 0; i < length * channels; i++) dr[i] = 0.0f;                               \
        for (ptrdiff_t t = 0; t < out_len; t++) {                                                     \
            const float *g = dy + (r * out_len + t) * channels;                                       \
            for (ptrdiff_t k = 0; k < kernel; k++) {                                                  \
                float *seg = dr + (t * stride + k) * channels;                                        \
                for (ptrdiff_t i = 0; i < channels; i++) seg[i] += g[i] * scale;                      \
            }                                                                                         \
        }                                                                                             \
    }

#define CONV_ARGS const ss_conv1d_shape *s, ptrdiff_t rows
#define POOL_ARGS ptrdiff_t rows, ptrdiff_t length, ptrdiff_t channels, ptrdiff_t kernel, ptrdiff_t stride, ptrdiff_t out_len

#define INSTANTIATE(SUFFIX, ATTR)                                                                                \
    ATTR static void im2col_##SUFFIX(CONV_ARGS, const float *x, float *cols) { IM2COL_BODY }                    \
    ATTR static void col2im_##SUFFIX(CONV_ARGS, const float *cols, float *dx) { COL2IM_BODY }                   \
    ATTR static void maxpool_##SUFFIX(POOL_ARGS, const float *x, float *y, int32_t *arg) { MAXPOOL_BODY }       \
    ATTR static void avgpool_##SUFFIX(POOL_ARGS, const float *x, float *y) { AVGPOOL_BODY }                     \
    ATTR static void avgpool_backward_##SUFFIX(POOL_ARGS, const float *dy, float *dx) { AVGPOOL_BACKWARD_BODY }

INSTANTIATE(portable, )
#ifdef SS_X86
INSTANTIATE(256, SS_T256)
INSTANTIATE(512, SS_T512)
#define DISPATCH(isa, name, ...)                                               \
    switch (ss_clamp_isa(isa)) {                                               \
    case SS_ISA_AVX512: name##_512(__VA_ARGS__); break;                        \
    case SS_ISA_AVX2: name##_256(__VA_ARGS__); break;                          \
    default: name##_portable(__VA_ARGS__); break;                              \
    }
#else
#define DISPATCH(isa, name, ...) ((void)(isa), name##_portable(__VA_ARGS__))
#endif

ss_status ss_train_im2col_isa(ss_isa isa, const ss_conv1d_shape *shape, const float *x, ptrdiff_t rows, float *cols) {
    if (!conv_shape_ok(shape, rows)) return SS_ERR_ARGUMENT;
    DISPATCH(isa, im2col, shape, rows, x, cols);
    return SS_OK;
}

ss_status ss_train_col2im_isa(ss_isa isa, const ss_conv1d_shape *shape, const float *cols, ptrdiff_t rows, float *dx) {
    if (!conv_shape_ok(shape, rows)) return SS_ERR_ARGUMENT;
    DISPATCH(isa, col2im, shape, rows, cols, dx);
    return SS_OK;
}

ss_status ss_train_maxpool_isa(ss_isa isa, const float *x, ptrdiff_t rows, ptrdiff_t length, ptrdiff_t channels, ptrdiff_t kernel,
                               ptrdiff_t stride, ptrdiff_t out_len, float *y, int32_t *arg) {
    if (!pool_shape_ok(rows, length, channels, kernel, stride, out_len)) return SS_ERR_ARGUMENT;
    DISPATCH(isa, maxpool, rows, length, channels, kernel, stride, out_len, x, y, arg);
    return SS_OK;
}

ss_status ss_train_maxpool_backward_isa(ss_isa isa, const float *dy, const int32_t *arg, ptrdiff_t rows, ptrdiff_t length,
                                        ptrdiff_t channels, ptrdiff_t out_len, float *dx) {
    if (rows < 0 || length <= 0 || channels <= 0 || out_len <= 0) return SS_ERR_ARGUMENT;
    (void)isa; /* a scatter of one value per output: no vector form */
    memset(dx, 0, (size_t)(rows * length * channels) * sizeof(float));
    for (ptrdiff_t r = 0; r < rows; r++)
        for (ptrdiff_t t = 0; t < out_len; t++)
            for (ptrdiff_t i = 0; i < channels; i++) {
                ptrdiff_t o = (r * out_len + t) * channels + i, step = arg[o];
                if (step < 0 || step >= length) return SS_ERR_ARGUMENT;
                dx[(r * length + step) * channels + i] += dy[o];
            }
    return SS_OK;
}

ss_status ss_train_avgpool_isa(ss_isa isa, const float *x, ptrdiff_t rows, ptrdiff_t length, ptrdiff_t channels, ptrdiff_t kernel,
                               ptrdiff_t stride, ptrdiff_t out_len, float *y) {
    if (!pool_shape_ok(rows, length, channels, kernel, stride, out_len)) return SS_ERR_ARGUMENT;
    DISPATCH(isa, avgpool, rows, length, channels, kernel, stride, out_len, x, y);
    return SS_OK;
}

ss_status ss_train_avgpool_backward_isa(ss_isa isa, const float *dy, ptrdiff_t rows, ptrdiff_t length, ptrdiff_t channels,
                                        ptrdiff_t kernel, ptrdiff_t stride, ptrdiff_t out_len, float *dx) {
    if (!pool_shape_ok(rows, length, channels, kernel, stride, out_len)) return SS_ERR_ARGUMENT;
    DISPATCH(isa, avgpool_backward, rows, length, channels, kernel, stride, out_len, dy, dx);
    return SS_OK;
}
