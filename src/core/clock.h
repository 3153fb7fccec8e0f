/*
 * The runtime's clock: CLOCK_MONOTONIC, or, for tests, a paused clock that moves only when
 * told to (edo_time_advance) or, with auto-advance, when the runtime has nothing else to do,
 * and then straight to the next timer's deadline.
 *
 * Everything a task sees as time is on its runtime's clock: edo_now() in a task (or in the
 * scheduler of a worker), every timer, and so every sleep, timeout and deadline. The
 * runtime's housekeeping is not: the monitor, the driver's last-poll stamp and the
 * shutdown grace period use edo__real_ms(), so a paused clock can never stall them.
 *
 * Owned by clock.c. `paused`, `frozen_ns`, `offset_ns` and the round's state are written
 * under `lock`, and the first three are also read without it, by every clock read of the
 * runtime's threads. `auto_advance`, `holds` and `busy_gen` are atomics written without
 * it (a switch of auto-advance, a hold around a call, the pool's kick) and read where a
 * round decides.
 */
#ifndef EDO_CORE_CLOCK_H
#define EDO_CORE_CLOCK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct edo_runtime edo_runtime;
typedef struct edo__worker edo__worker;

typedef struct edo__clock {
    _Atomic bool paused;
    _Atomic bool auto_advance; /* jump to the next timer when the runtime is idle */
    _Atomic int64_t frozen_ns; /* while paused: the time it shows */
    _Atomic int64_t offset_ns; /* while not paused: added to CLOCK_MONOTONIC */
    bool counted;              /* in edo__virtual_clocks */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* the idle round's barrier (clock.c) */
    /* Auto-advance: workers that found nothing to do and are about to sleep, and the round
     * the last of them runs before it moves the clock (clock.c explains it). */
    int idle;
    bool round;                 /* a round is under way */
    int arrived;                /* workers that reported at its barrier */
    _Atomic uint64_t round_gen; /* bumped at the start of each round */
    _Atomic uint64_t busy_gen;  /* bumped whenever a worker counted idle runs a task again,
                                 * and by edo__clock_kick (without the lock) */
    uint64_t stalled_at;        /* busy_gen when a round last failed to move the clock: no new
                                 * round until it changes (UINT64_MAX: none failed) */
    _Atomic int holds;          /* calls in flight that end by themselves (edo__clock_hold) */
} edo__clock;

/* Runtimes whose clock is not plain CLOCK_MONOTONIC (paused now, or paused before): while
 * there are none, reading the clock costs what clock_gettime costs. */
extern _Atomic int edo__virtual_clocks;

/* CLOCK_MONOTONIC in nanoseconds and milliseconds, whatever any runtime's clock says. */
int64_t edo__now_ns(void);
int64_t edo__real_ms(void);

void edo__clock_init(edo__clock *c, bool paused);
void edo__clock_fini(edo__clock *c);

/* rt's clock in nanoseconds (rt NULL: the real clock). */
int64_t edo__clock_ns_slow(const edo_runtime *rt);
static inline int64_t edo__clock_ns(const edo_runtime *rt)
{
    if (__builtin_expect(!atomic_load_explicit(&edo__virtual_clocks, memory_order_relaxed), 1))
        return edo__now_ns();
    return edo__clock_ns_slow(rt);
}
static inline int64_t edo__clock_ms(const edo_runtime *rt)
{
    return edo__clock_ns(rt) / 1000000;
}

/* Whether rt's clock stands still (paused): its timers fire only when it is moved. */
bool edo__clock_paused(const edo_runtime *rt);

/* A worker with nothing to run, about to sleep, on a runtime whose paused clock
 * auto-advances: counts it idle, and if it is the last worker to be, makes sure the
 * runtime really is idle and moves the clock to the next timer, whose tasks it then has
 * queued. Returns true if w has work now (it must not sleep). */
bool edo__clock_idle(edo__worker *w);

/* A worker that edo__clock_idle counted idle is about to run a task again. */
void edo__clock_busy(edo__worker *w);

/* The blocking pool has fallen idle: a stalled auto-advance is to look again. */
void edo__clock_kick(edo_runtime *rt);

/* Shutdown: wakes the workers waiting in a round, so that they see rt->stopping. */
void edo__clock_wake_all(edo_runtime *rt);

/* A call that ends by itself, without a peer (a file operation on the ring), is in
 * flight: auto-advance waits for it, as it does for the blocking pool's calls. */
void edo__clock_hold(edo_runtime *rt);
void edo__clock_unhold(edo_runtime *rt);

#endif
