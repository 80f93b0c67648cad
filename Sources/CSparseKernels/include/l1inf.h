#ifndef SPARSESERVE_L1INF_H
#define SPARSESERVE_L1INF_H
#include <stddef.h>
#include "cpu_features.h"

/*
 * l1,inf projections of a row-major rows x cols matrix W (stride ld) whose groups are its rows or
 * its columns. Every function works on a range of rows (row groups) or columns (column groups),
 * so callers split them across threads.
 *
 * Bi-level (Perez & Barlaud): t_g = max |W_g|, u = projection of t onto the l1 ball of radius eta,
 * X_g = clip(W_g, -u_g, u_g). Exact (Euclidean) projection: the same clip with bounds mu_g(theta)
 * where sum_k (|W_gk| - mu_g)_+ = theta for every group that survives, theta chosen so that
 * sum_g mu_g = eta (found here by Newton's method on the convex piecewise-linear sum, which is
 * exact in finitely many steps, after sorting every group).
 */

/// Row groups: out[r] = max_c |w[r][c]| for r in [begin, end).
void ss_l1inf_row_max(ss_isa isa, const float *w, ptrdiff_t cols, ptrdiff_t ld, ptrdiff_t begin, ptrdiff_t end, float *out);
/// Column groups: out[c] = max_r |w[r][c]| for c in [begin, end).
void ss_l1inf_col_max(ss_isa isa, const float *w, ptrdiff_t rows, ptrdiff_t ld, ptrdiff_t begin, ptrdiff_t end, float *out);
/// Row groups: x[r][c] = clip(w[r][c], -bound[r], bound[r]) for r in [begin, end) (x has stride ldx).
/// `streaming` writes x with non-temporal stores (for outputs much larger than the cache).
void ss_l1inf_clip_rows(ss_isa isa, const float *w, ptrdiff_t cols, ptrdiff_t ld, const float *bound,
                        ptrdiff_t begin, ptrdiff_t end, float *x, ptrdiff_t ldx, int streaming);
/// Column groups: x[r][c] = clip(w[r][c], -bound[c], bound[c]) for c in [begin, end), every row.
void ss_l1inf_clip_cols(ss_isa isa, const float *w, ptrdiff_t rows, ptrdiff_t ld, const float *bound,
                        ptrdiff_t begin, ptrdiff_t end, float *x, ptrdiff_t ldx, int streaming);

/// The threshold theta of the Euclidean projection of a non-negative vector v (n values) onto
/// {u >= 0, sum u <= radius}: u = max(v - theta, 0); theta = 0 when sum v <= radius. Condat's
/// algorithm (expected O(n)); `scratch` holds 2n doubles.
double ss_l1_ball_threshold(const float *v, ptrdiff_t n, double radius, double *scratch);

/// Exact projection, step 1: |values| of groups [begin, end) (rows when column_groups == 0, else
/// columns) sorted descending into sorted[g * len ...] and their running sums into prefix[g * len ...],
/// len = cols for row groups, rows for column groups.
void ss_l1inf_sort_groups(const float *w, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld, int column_groups,
                          ptrdiff_t begin, ptrdiff_t end, float *sorted, float *prefix);
/// Exact projection, step 2: the bounds mu[g] of all `groups` (each `len` sorted values) for radius
/// eta (every mu_g = max |W_g| when the norm is already <= eta). Returns the Newton steps taken.
int ss_l1inf_exact_bounds(const float *sorted, const float *prefix, ptrdiff_t groups, ptrdiff_t len, double radius,
                          float *mu);

#endif
