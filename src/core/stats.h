/*
 * The primitives of the always-on counters (per task: resumes, busy time; per worker:
 * ticks): a tick counter cheap enough to read at every switch, and an add for counters
 * that one thread writes and others read.
 *
 * edo__cycles: any thread. edo__counter_add: only the one thread that writes the counter
 * at the time (a task's counters: the worker running it); readers load it relaxed.
 * edo__cycles_to_ns (sched.c) calibrates against CLOCK_MONOTONIC on its first call and
 * refines that on later ones; any thread.
 */
#ifndef EDO_CORE_STATS_H
#define EDO_CORE_STATS_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

/* EDO_NO_COUNTERS (cmake -DEDO_COUNTERS=OFF) compiles the counters out, only to measure
 * what they cost; the snapshots then read zeros. */
#ifdef EDO_NO_COUNTERS
#define EDO__COUNTERS 0
#else
#define EDO__COUNTERS 1
#endif

/* A counter written by one thread at a time and read by others: no locked instruction. */
static inline void edo__counter_add(_Atomic uint64_t *c, uint64_t v)
{
    if (EDO__COUNTERS)
        atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                              memory_order_relaxed);
}

static inline void edo__counter_inc32(_Atomic uint32_t *c)
{
    if (EDO__COUNTERS)
        atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                              memory_order_relaxed);
}

/* A cheap monotonic tick counter for the busy-time counters: the TSC on x86-64 (no system
 * call, no vDSO), the virtual counter on aarch64, the coarse clock elsewhere. */
static inline uint64_t edo__cycles(void)
{
#if defined(__x86_64__)
    return __builtin_ia32_rdtsc();
#elif defined(__aarch64__)
    uint64_t v;
    __asm__ volatile("mrs %0, cntvct_el0" : "=r"(v));
    return v;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
#endif
}

/* Microseconds in 2^32 edo__cycles() ticks, for the run histograms (sched.c); set when a
 * runtime is made. */
extern _Atomic uint64_t edo__hist_mul;

/* Converts a span of edo__cycles() ticks to nanoseconds. */
uint64_t edo__cycles_to_ns(uint64_t cycles);

#endif
