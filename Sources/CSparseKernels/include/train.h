#ifndef SPARSESERVE_TRAIN_H
#define SPARSESERVE_TRAIN_H
/*
 * Kernels of recovery training (fine-tuning a compressed model against its dense teacher):
 * the three GEMM layouts of a linear layer's forward and backward pass, activation backward,
 * bias gradients, a masked Adam step, sums of squares, and the distillation losses.
 * Every kernel has an explicit-ISA form (clamped to the hardware) like the inference kernels.
 */
#include <stddef.h>
#include <stdint.h>
#include "cpu_features.h"
#include "activations.h"
#include "status.h"

/// C = alpha * op(A) * op(B) + beta * C on output columns [n_begin, n_end) only (so pool workers
/// can split a call by column ranges). op(A) is M x K: A is row-major [M][K] with row stride lda,
/// or with trans_a it is [K][M] and op(A) = A^T. op(B) is K x N: B is [K][N] (ldb), or with
/// trans_b [N][K] and op(B) = B^T. C is [M][N] (ldc). beta == 0 never reads C.
/// A linear layer Y = X W^T uses (0, 1); dX = dY W uses (0, 0); dW = dY^T X uses (1, 0).
/// Returns SS_OK, SS_ERR_ARGUMENT (doing nothing) for a negative size or an invalid column range, or
/// SS_ERR_NO_MEMORY when the packing buffers cannot be allocated.
ss_status ss_train_gemm_isa(ss_isa isa, int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha,
                      const float *a, ptrdiff_t lda, const float *b, ptrdiff_t ldb, float beta, float *c, ptrdiff_t ldc,
                      ptrdiff_t n_begin, ptrdiff_t n_end);

/// dx[i] = dy[i] * act'(x[i]) for the pre-activation x (SS_ACT_NONE, SS_ACT_RELU, SS_ACT_GELU with
/// the exact erf form). dx may alias dy. Returns SS_ERR_ARGUMENT (doing nothing) for other activations.
ss_status ss_train_act_backward_isa(ss_isa isa, ss_act_kind act, const float *x, const float *dy, float *dx, ptrdiff_t n);

/// db[j] += sum over rows r of dy[r * ld + j], j < cols (the bias gradient of a linear layer).
void ss_train_column_sums_isa(ss_isa isa, const float *dy, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld, float *db);

/// Adam settings for one step; `step` counts from 1 (bias corrections 1 - beta^step).
typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
    int64_t step;
} ss_adam_config;

/// One Adam step (decoupled weight decay, AdamW) on p[0..<n] with gradient g and moments m, v.
/// Where mask is given and mask[i] == 0, nothing of element i changes: pruned weights stay exactly
/// zero and their moments stay untouched.
void ss_train_adam_isa(ss_isa isa, const ss_adam_config *config, float *p, const float *g, float *m, float *v,
                       const uint8_t *mask, ptrdiff_t n);

/// Sum of x[i]^2 in double (gradient norms; NaN or inf in x gives a non-finite result).
double ss_train_sum_squares_isa(ss_isa isa, const float *x, ptrdiff_t n);

/// x[i] *= s.
void ss_train_scale_isa(ss_isa isa, float *x, ptrdiff_t n, float s);

/// Layer norm backward over `rows` rows of `cols` (row stride ld), for y = (x - mean) * rstd * gamma
/// + beta with the input x (gamma NULL: 1): dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with
/// g = dy * gamma, xhat = (x - mean) * rstd; dgamma += sum over rows of dy * xhat and dbeta += sum
/// of dy (either NULL: not computed). dx may alias dy.
void ss_train_layer_norm_backward_isa(ss_isa isa, const float *x, const float *dy, float *dx, ptrdiff_t rows, ptrdiff_t cols,
                                      ptrdiff_t ld, const float *gamma, float eps, float *dgamma, float *dbeta);

/// Softmax backward per row for p = softmax(s): ds = p * (dp - sum(p * dp)). ds may alias dp.
void ss_train_softmax_backward_isa(ss_isa isa, const float *p, const float *dp, float *ds, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld);

/// Distillation loss of a classifier over `rows` rows of `cols` logits (row stride ld):
///   (1 - alpha) * CE(softmax(s), label) + alpha * T^2 * KL(softmax(t / T) || softmax(s / T)),
/// averaged over rows. labels (NULL: no label term, its weight moves to the teacher term) hold
/// class indices in [0, cols); teacher (NULL: no teacher term) holds the teacher's logits.
/// Writes d loss / d s into grad (row stride ld) and returns the loss; -1 for a label out of range.
double ss_train_distill_xent(const float *s, const float *teacher, const int32_t *labels, ptrdiff_t rows, ptrdiff_t cols,
                             ptrdiff_t ld, float alpha, float temperature, float *grad);

/// Mean squared error scale * sum((p - t)^2) / rows over rows x cols values (row strides ld),
/// its gradient into grad (NULL: not written). Returns the loss.
double ss_train_mse(const float *p, const float *t, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld, float scale, float *grad);

/// Multi-head self-attention forward of one sequence of `length` tokens for training: for each of
/// `heads` heads h, P_h = softmax(scale * Q_h K_h^T) is stored at probs + h * length^2 (row-major
/// length x length) and out_h = P_h V_h. Q_h, K_h, V_h and out_h are columns h*d .. h*d+d-1 of the
/// sequence's rows of q, k, v (row stride ld) and out (ldo). Returns SS_ERR_ARGUMENT (doing
/// nothing) for empty sizes or strides that do not cover heads * head_dim.
ss_status ss_train_attention_forward_isa(ss_isa isa, const float *q, const float *k, const float *v, ptrdiff_t ld,
                                         float *out, ptrdiff_t ldo, ptrdiff_t length, ptrdiff_t heads, ptrdiff_t head_dim,
                                         float scale, float *probs);

/// Its backward pass from dout (row stride ldo) and the forward's probs: writes dq, dk, dv (same
/// column layout, row stride ldd; they may be one [length x 3H] buffer like q, k, v).
/// `scratch` holds length^2 floats.
ss_status ss_train_attention_backward_isa(ss_isa isa, const float *q, const float *k, const float *v, ptrdiff_t ld,
                                          const float *dout, ptrdiff_t ldo, const float *probs, ptrdiff_t length,
                                          ptrdiff_t heads, ptrdiff_t head_dim, float scale, float *dq, float *dk, float *dv,
                                          ptrdiff_t ldd, float *scratch);

/// Geometry of a 1-D convolution over time-major rows (value t * channels + c): output step t, tap k
/// reads input step t * stride - pad_left + k * dilation (zero outside 0 ..< length).
typedef struct {
    ptrdiff_t length, channels, kernel, stride, dilation, pad_left, out_len;
} ss_conv1d_shape;

/// im2col: for each of `rows` rows of x ([rows][length * channels]) and output step t, the window
/// [kernel * channels] (tap k's channels at k * channels) into cols at row r * out_len + t. A
/// convolution is then the linear layer Y = cols W^T with W [out][kernel * channels].
ss_status ss_train_im2col_isa(ss_isa isa, const ss_conv1d_shape *shape, const float *x, ptrdiff_t rows, float *cols);

/// col2im, the adjoint of im2col: dx (overwritten) = the sum of every window's columns of dcols
/// at the input steps it read (the gradient of a convolution's input from that of its windows).
ss_status ss_train_col2im_isa(ss_isa isa, const ss_conv1d_shape *shape, const float *dcols, ptrdiff_t rows, float *dx);

/// Max pooling over time per channel, windows of `kernel` steps every `stride` (out_len windows,
/// which must fit the length): y [rows][out_len * channels] and, per output, the input step of
/// the window's first maximum in arg (a NaN counts as a maximum, as in inference).
ss_status ss_train_maxpool_isa(ss_isa isa, const float *x, ptrdiff_t rows, ptrdiff_t length, ptrdiff_t channels, ptrdiff_t kernel,
                               ptrdiff_t stride, ptrdiff_t out_len, float *y, int32_t *arg);

/// Its backward pass: dx (overwritten, [rows][length * channels]) gets each dy at its arg step.
/// Returns SS_ERR_ARGUMENT for a step outside the length.
ss_status ss_train_maxpool_backward_isa(ss_isa isa, const float *dy, const int32_t *arg, ptrdiff_t rows, ptrdiff_t length,
                                        ptrdiff_t channels, ptrdiff_t out_len, float *dx);

/// Average pooling (windows as for max pooling; a global pool is kernel = length) and its
/// backward pass (dx overwritten: dy / kernel at every step of the window).
ss_status ss_train_avgpool_isa(ss_isa isa, const float *x, ptrdiff_t rows, ptrdiff_t length, ptrdiff_t channels, ptrdiff_t kernel,
                               ptrdiff_t stride, ptrdiff_t out_len, float *y);
ss_status ss_train_avgpool_backward_isa(ss_isa isa, const float *dy, ptrdiff_t rows, ptrdiff_t length, ptrdiff_t channels,
                                        ptrdiff_t kernel, ptrdiff_t stride, ptrdiff_t out_len, float *dx);

#endif
