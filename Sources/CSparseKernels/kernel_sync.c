#define _GNU_SOURCE
#include <pthread.h>
#include "kernel_sync.h"
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

long ss_atomic_load(const long *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
void ss_atomic_store(long *p, long v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
long ss_atomic_fetch_add(long *p, long v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
void ss_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#endif
}

int ss_set_thread_name(const char *name) {
#if defined(__linux__)
    char short_name[16];
    size_t i = 0;
    for (; i < sizeof short_name - 1 && name[i]; i++) short_name[i] = name[i];
    short_name[i] = 0;
    return pthread_setname_np(pthread_self(), short_name);
#else
    (void)name;
    return 0;
#endif
}
