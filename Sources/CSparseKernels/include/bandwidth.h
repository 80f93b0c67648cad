#ifndef SPARSESERVE_BANDWIDTH_H
#define SPARSESERVE_BANDWIDTH_H
#include <stddef.h>

/// STREAM-like read of n floats: their sum with eight independent vector accumulators (AVX-512,
/// AVX2 or C by ss_detect_isa()), so the loop is bound by memory reads alone. Benchmarks divide
/// the bytes by its time to get the read bandwidth a GEMV's weight stream is compared with.
float ss_read_sum(const float *x, ptrdiff_t n);

#endif
