/*
 * Multi-head self-attention of recovery training, one sequence per call (sequences are packed
 * back to back without padding, so a sequence attends to its own rows only and no mask is needed).
 *
 * Forward, per head h (Q_h = columns h*d .. h*d+d-1 of q, likewise K_h, V_h, out_h):
 *   P_h = softmax(scale * Q_h K_h^T)      kept in `probs` for the backward pass
 *   out_h = P_h V_h
 * Backward from dout:
 *   dV_h = P_h^T dout_h,  dP = dout_h V_h^T,  dS = P_h * (dP - rowsum(P_h * dP)),
 *   dQ_h = scale * dS K_h,  dK_h = scale * dS^T Q_h.
 * The products run on the training GEMM (ss_train_gemm_isa), the rows on the softmax and softmax
 * backward kernels, so every instruction set path is those kernels' (each tested on every ISA).
 */
#include "train.h"
#include "internal.h"

static int valid(ptrdiff_t length, ptrdiff_t heads, ptrdiff_t d, ptrdiff_t ld, ptrdiff_t ldo) {
    return length > 0 && heads > 0 && d > 0 && ld >= heads * d && ldo >= heads * d;
}

ss_status ss_train_attention_forward_isa(ss_isa isa, const float *q, const float *k, const float *v, ptrdiff_t ld,
                                         float *out, ptrdiff_t ldo, ptrdiff_t length, ptrdiff_t heads, ptrdiff_t head_dim,
                                         float scale, float *probs) {
    if (!valid(length, heads, head_dim, ld, ldo)) return SS_ERR_ARGUMENT;
    const ptrdiff_t l = length, d = head_dim;
    for (ptrdiff_t h = 0; h < heads; h++) {
        float *p = probs + h * l * l;
        ss_status s = ss_train_gemm_isa(isa, 0, 1, l, l, d, scale, q + h * d, ld, k + h * d, ld, 0.0f, p, l, 0, l);
        if (s != SS_OK) return s;
        ss_act_softmax_rows_isa(isa, p, l, l, l);
        s = ss_train_gemm_isa(isa, 0, 0, l, d, l, 1.0f, p, l, v + h * d, ld, 0.0f, out + h * d, ldo, 0, d);
        if (s != SS_OK) return s;
    }
    return SS_OK;
}

ss_status ss_train_attention_backward_isa(ss_isa isa, const float *q, const float *k, const float *v, ptrdiff_t ld,
                                          const float *dout, ptrdiff_t ldo, const float *probs, ptrdiff_t length,
                                          ptrdiff_t heads, ptrdiff_t head_dim, float scale, float *dq, float *dk, float *dv,
                                          ptrdiff_t ldd, float *scratch) {
    if (!valid(length, heads, head_dim, ld, ldo) || ldd < heads * head_dim) return SS_ERR_ARGUMENT;
    const ptrdiff_t l = length, d = head_dim;
    for (ptrdiff_t h = 0; h < heads; h++) {
        const float *p = probs + h * l * l, *dout_h = dout + h * d;
        ss_status s = ss_train_gemm_isa(isa, 1, 0, l, d, l, 1.0f, p, l, dout_h, ldo, 0.0f, dv + h * d, ldd, 0, d);
        if (s == SS_OK) s = ss_train_gemm_isa(isa, 0, 1, l, l, d, 1.0f, dout_h, ldo, v + h * d, ld, 0.0f, scratch, l, 0, l);
        if (s != SS_OK) return s;
        ss_train_softmax_backward_isa(isa, p, scratch, scratch, l, l, l);
        s = ss_train_gemm_isa(isa, 0, 0, l, d, l, scale, scratch, l, k + h * d, ld, 0.0f, dq + h * d, ldd, 0, d);
        if (s == SS_OK) s = ss_train_gemm_isa(isa, 1, 0, l, d, l, scale, scratch, l, q + h * d, ld, 0.0f, dk + h * d, ldd, 0, d);
        if (s != SS_OK) return s;
    }
    return SS_OK;
}
