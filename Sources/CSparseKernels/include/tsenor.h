#ifndef SPARSESERVE_TSENOR_H
#define SPARSESERVE_TSENOR_H
#include <stddef.h>
#include <stdint.h>
#include "cpu_features.h"

/*
 * Transposable N:M masks (TSENOR): every m x m block keeps exactly n entries in each of its rows
 * and each of its columns, chosen to keep as much |w| as possible.
 *
 *   m = 4, n = 2: exact, by scoring the 90 feasible 4 x 4 patterns.
 *   otherwise: entropic optimal transport on the block (S = exp(tau (|w| - max) / mean(|w|)),
 *     Dykstra: row scaling, column scaling, clip at 1 with its correction, until the sums settle
 *     or `iterations`), greedy rounding of S with repair to exactly n per row and column, then
 *     2-opt exchanges on |w|; the same rounding + 2-opt on |w| itself is the safeguard, and the
 *     better of the two is kept (so never worse than greedy).
 */

#define SS_TSENOR_MAX_M 32

typedef struct {
    int n, m;             /* 1 <= n < m <= SS_TSENOR_MAX_M */
    float tau;            /* entropic sharpness on the mean-normalised block */
    int iterations;       /* Dykstra iterations (upper bound; stops earlier once the sums settle) */
    int two_opt_rounds;   /* sweeps of 2-opt exchanges (each over all row pairs) */
    ss_isa isa;           /* Dykstra on AVX2 when m is a multiple of 8 (lowered to what the CPU has) */
} ss_tsenor_params;

/// One m x m block: `w` row-major (stride ldw; signs ignored), `mask` row-major (stride ldmask)
/// gets 1 for kept entries and 0 otherwise. Returns the kept sum of |w|.
float ss_tsenor_block(const ss_tsenor_params *p, const float *w, ptrdiff_t ldw, uint8_t *mask, ptrdiff_t ldmask);

/// Blocks [begin, end) of a rows x cols matrix (row-major, stride ld; both dimensions multiples
/// of m), numbered row-major over the (rows/m) x (cols/m) block grid; the mask has the matrix's
/// shape and stride `cols`.
void ss_tsenor_blocks(const ss_tsenor_params *p, const float *w, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t ld,
                      ptrdiff_t begin, ptrdiff_t end, uint8_t *mask);

/// The exact 2:4 block (the best of the 90 patterns); `pattern` (16 bits, bit 4*i+j for row i,
/// column j) of the winner is returned.
unsigned ss_tsenor_2of4(const float *w, ptrdiff_t ldw);

#endif
