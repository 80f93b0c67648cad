#ifndef SPARSESERVE_LINALG_H
#define SPARSESERVE_LINALG_H
#include <stddef.h>
#include "cpu_features.h"

/*
 * Small double-precision linear algebra for the compression fits (BLAST's r x r normal
 * equations). Row-major, no threading; sizes are a few hundred at most.
 */

/// out (cols x cols) = a^T a for a row-major rows x cols matrix a.
void ss_dgram(const double *a, ptrdiff_t rows, ptrdiff_t cols, double *out);

/// Cholesky factor L (lower, row-major, in place over the symmetric positive semi-definite r x r
/// matrix a; the upper triangle is zeroed). Pivots are floored at `jitter` (> 0) so a singular
/// matrix still factors.
void ss_dcholesky(double *a, ptrdiff_t r, double jitter);

/// Solves (L L^T) x = b in place for `count` right-hand sides stored as rows of b (count x r).
void ss_dcholesky_solve_rows(const double *l, ptrdiff_t r, double *b, ptrdiff_t count);

/// The inverse of a lower-triangular L (non-zero diagonal) into inv (r x r, lower).
void ss_dlower_inverse(const double *l, ptrdiff_t r, double *inv);

/// The inverse of (L L^T) into inv (r x r, symmetric).
void ss_dcholesky_inverse(const double *l, ptrdiff_t r, double *inv);

/// y += a x over n doubles, on `isa` (lowered to what the CPU has).
void ss_daxpy(ss_isa isa, ptrdiff_t n, double a, const double *x, double *y);

/// x . y over n doubles, on `isa` (lowered to what the CPU has).
double ss_ddot(ss_isa isa, ptrdiff_t n, const double *x, const double *y);

#endif
