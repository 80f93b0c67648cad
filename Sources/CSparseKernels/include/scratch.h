#ifndef SPARSESERVE_SCRATCH_H
#define SPARSESERVE_SCRATCH_H
#include <stddef.h>

/// A 64-byte aligned buffer of at least `floats` floats owned by the calling thread, one per
/// `slot` (0..4). It grows on demand, is reused by later calls on the same thread (so kernels do
/// not hit malloc/mmap and page faults on every call) and is freed when the thread exits. NULL if
/// out of memory. Contents are not preserved across calls that ask for more than the capacity,
/// nor across a call that asks for less than a quarter of a capacity above 4 MiB: such a buffer
/// (left by one huge batch) is freed and replaced by one of the size asked for, so a thread does
/// not keep its largest-ever scratch for good.
/// Slots 0-2 are used inside single kernel calls; slot 3 is for a caller that holds a buffer
/// across one split operation (prepared GEMM inputs, BLAST intermediates) while other threads
/// read or write it; slot 4 holds the int8 / bf16 kernels' converted activations (their input
/// may be a caller's slot 2 or 3 buffer).
float *ss_thread_scratch(int slot, size_t floats);

/// Capacity in floats of the calling thread's buffer in `slot` (0 when it has none).
size_t ss_thread_scratch_capacity(int slot);

/// Test hook: the next `calls` requests to ss_thread_scratch that need a new buffer (on any
/// thread) fail with NULL, so tests can check that kernels report out-of-memory.
void ss_scratch_fail_next(int calls);

#endif
