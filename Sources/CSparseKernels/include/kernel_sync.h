#ifndef SPARSESERVE_KERNEL_SYNC_H
#define SPARSESERVE_KERNEL_SYNC_H

/// Sequentially consistent atomics on a long, for the kernel pool's hand-off counters.
long ss_atomic_load(const long *p);
void ss_atomic_store(long *p, long v);
long ss_atomic_fetch_add(long *p, long v);
/// A short pause for spin-wait loops (x86 `pause`).
void ss_cpu_relax(void);

/// Names the calling OS thread (first 15 characters on Linux), for top, gdb and /proc.
int ss_set_thread_name(const char *name);

#endif
