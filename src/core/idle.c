/*
 * Idle workers of a threaded runtime: who sleeps, who is woken, and the monitor.
 *
 * A worker with nothing to run first searches (takes from the inject queue, steals from
 * the others) and then sleeps. Work that appears is announced with edo__notify_parked,
 * which wakes one sleeping worker, and only if no worker is searching already: that one
 * will find the work, and when it does, it wakes the next (edo__end_search). So a burst of
 * work wakes the workers one after the other, as they are needed, never all at once.
 *
 * idle_state counts the searching workers and the workers not on the sleepers list
 * ("unparked"); both change together with the list, under idle_lock, except that a
 * searcher stops searching with a plain atomic decrement.
 *
 * A sleeping worker sleeps in the driver's poll when it can take the right to poll
 * (driver.h: with a driver shared by the runtime, one worker at a time), else on its
 * futex word. Every worker sleeps at most until its own next timer. A worker is woken
 * where it sleeps: by the driver's unpark, by FUTEX_WAKE on its word.
 *
 * The monitor thread looks at the workers every 10 ms, or every half the blocking threshold
 * if that is shorter (100 ms when all of them sleep; the first worker to wake up then
 * wakes it). A worker whose task has not switched for 10 ms is stuck in that task: its
 * due timers are fired from the monitor, its I/O rescued, and what is queued on it handed
 * to the others: its local queue moves to the inject queue (from here: the queue is
 * stealable), and the task in its LIFO slot, which only its own thread may touch, is
 * taken out by a probe (probe.h) when the runtime watches for blocking tasks (blocking.h:
 * it also reports a run past the threshold). If nobody has polled the driver for 10 ms
 * (every worker busy in long tasks), the monitor polls it. It also prints the task dump
 * the dump signal asked for (dumpsig.c).
 */
#include "core/runtime.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SEARCH_ONE 1u
#define UNPARKED_ONE (1u << 16)
#define SEARCHING(s) ((s)&0xffffu)
#define UNPARKED(s) ((s) >> 16)

/* Monitor intervals, ms. */
#define MONITOR_BUSY 10
#define MONITOR_IDLE 100

#ifdef EDO_TSAN
void edo__tsan_signal_point(void)
{
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur); /* intercepted: pending signals are handled */
}
#endif

void edo__futex_wait(_Atomic uint32_t *word, uint32_t val, int timeout_ms)
{
#ifdef EDO_TSAN
    if (timeout_ms < 0 || timeout_ms > EDO__TSAN_SLICE_MS)
        timeout_ms = EDO__TSAN_SLICE_MS;
#endif
    struct timespec ts, *tsp = NULL;
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000;
        tsp = &ts;
    }
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, val, tsp, NULL, 0);
#ifdef EDO_TSAN
    edo__tsan_signal_point();
#endif
}

void edo__futex_wake(_Atomic uint32_t *word, int n)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

void edo__wake_worker(edo__worker *w)
{
    atomic_store(&w->wake_word, 1);
    int mode = atomic_load(&w->sleep_mode);
    if (mode == EDO__SLEEP_DRIVER)
        w->rt->driver->unpark(w);
    else if (mode == EDO__SLEEP_FUTEX)
        edo__futex_wake(&w->wake_word, 1);
}

void edo__notify_parked(edo_runtime *rt)
{
    /* The cheap test first: with every worker busy, or one searching, nothing to do. */
    uint32_t s = atomic_load(&rt->idle_state);
    if (SEARCHING(s) || UNPARKED(s) >= (uint32_t)rt->nworkers)
        return;
    pthread_mutex_lock(&rt->idle_lock);
    s = atomic_load(&rt->idle_state);
    if (SEARCHING(s) || !rt->nsleepers) {
        pthread_mutex_unlock(&rt->idle_lock);
        return;
    }
    edo__worker *w = &rt->workers[rt->sleepers[--rt->nsleepers]];
    w->sleeper = false;
    /* It wakes up searching. */
    atomic_fetch_add(&rt->idle_state, SEARCH_ONE | UNPARKED_ONE);
    pthread_mutex_unlock(&rt->idle_lock);
    edo__wake_worker(w);
}

bool edo__begin_search(edo__worker *w)
{
    if (w->searching)
        return true;
    /* At most half the workers search: more would only contend on the same queues. */
    uint32_t s = atomic_load(&w->rt->idle_state);
    if (2 * SEARCHING(s) >= (uint32_t)w->rt->nworkers)
        return false;
    atomic_fetch_add(&w->rt->idle_state, SEARCH_ONE);
    w->searching = true;
    return true;
}

void edo__end_search(edo__worker *w)
{
    w->searching = false;
    uint32_t prev = atomic_fetch_sub(&w->rt->idle_state, SEARCH_ONE);
    if (SEARCHING(prev) == 1)
        edo__notify_parked(w->rt); /* the last searcher found work: there may be more */
}

/* Free stacks a parked worker keeps; the rest go where busy workers can reuse them. */
#define PARKED_STACKS 32

void edo__park_worker(edo__worker *w)
{
    edo_runtime *rt = w->rt;
    /* Tasks often end on another worker than the one that spawned them, so the stacks of a
     * burst collect in the caches of the workers that ran them, where a spawner elsewhere
     * cannot reach them and maps new ones. */
    edo__stack_cache_spill(&w->stacks, PARKED_STACKS);
    atomic_store(&w->parked, 1);
    pthread_mutex_lock(&rt->idle_lock);
    uint32_t dec = UNPARKED_ONE | (w->searching ? SEARCH_ONE : 0);
    uint32_t prev = atomic_fetch_sub(&rt->idle_state, dec);
    bool last_searcher = w->searching && SEARCHING(prev) == 1;
    rt->sleepers[rt->nsleepers++] = w->index;
    w->sleeper = true;
    pthread_mutex_unlock(&rt->idle_lock);
    w->searching = false;
    /* Work added while the last searcher was giving up saw a searcher and woke nobody:
     * look again now that no one searches (the adder's check and this one are ordered
     * by idle_state's sequentially consistent updates). */
    if (last_searcher && edo__work_exists(rt))
        edo__notify_parked(rt);
    for (;;) {
        edo__worker_sleep(w);
        pthread_mutex_lock(&rt->idle_lock);
        if (!w->sleeper) {
            /* Notified: counted as unparked and searching by the notifier. */
            pthread_mutex_unlock(&rt->idle_lock);
            w->searching = true;
            break;
        }
        if (edo__has_local_work(w) || atomic_load(&rt->stopping)) {
            /* Its timers or the driver gave it tasks (or the runtime stops). */
            for (int i = 0; i < rt->nsleepers; i++) {
                if (rt->sleepers[i] == w->index) {
                    rt->sleepers[i] = rt->sleepers[--rt->nsleepers];
                    break;
                }
            }
            w->sleeper = false;
            atomic_fetch_add(&rt->idle_state, UNPARKED_ONE);
            pthread_mutex_unlock(&rt->idle_lock);
            if (edo__queue_len(&w->queue) > 1)
                edo__notify_parked(rt);
            break;
        }
        pthread_mutex_unlock(&rt->idle_lock);
    }
    atomic_store(&w->parked, 0);
    /* The monitor may be in its long sleep (every worker slept): it must look at this one
     * within its busy interval, or a task this worker runs from now on could block it for
     * that long unseen. Only the first worker to wake pays for the wake-up. */
    if (atomic_load_explicit(&rt->monitor_idle, memory_order_relaxed) &&
        atomic_exchange(&rt->monitor_idle, false)) {
        atomic_fetch_or(&rt->monitor_word, EDO__MONITOR_LOOK);
        edo__futex_wake(&rt->monitor_word, 1);
    }
}

/* ---- the monitor ------------------------------------------------------------------------ */

/* Stuck in one task: its timers and I/O are served from here, its queue goes to the others. */
static void hand_off(edo_runtime *rt, edo__worker *w, int64_t now)
{
    edo__fire_timers(w, now);
    rt->driver->rescue(w);
    uint32_t moved = edo__handoff_queue(w);
    if (moved) {
        edo__counter_add(&w->n_handoffs, moved);
        edo__notify_parked(rt);
    }
}

void *edo__monitor_main(void *arg)
{
    edo_runtime *rt = arg;
    edo__thread_set_base_mask(&rt->base_sigmask);
    int busy = edo__blocking_interval(rt, MONITOR_BUSY);
    int interval = busy;
    for (int i = 0; i < rt->nworkers; i++)
        rt->workers[i].monitor_tick_at = edo__real_ms();
    while (!atomic_load(&rt->stopping)) {
        edo__futex_wait(&rt->monitor_word, 0, interval);
        /* The bits of a dump and of a worker's wake-up (the stop's word is never cleared). */
        atomic_fetch_and(&rt->monitor_word, ~(uint32_t)(EDO__MONITOR_DUMP | EDO__MONITOR_LOOK));
        if (atomic_load(&rt->stopping))
            break;
        edo__dump_if_asked(rt);
        int64_t real = edo__real_ms(), now = edo__clock_ms(rt);
        /* Every worker is in a long task: nobody collects I/O readiness. Not while the
         * clock is paused: its auto-advance must know that nobody but a worker takes
         * events from the driver (clock.c). */
        if (real - atomic_load_explicit(&rt->last_poll, memory_order_relaxed) >= MONITOR_BUSY &&
            !edo__clock_paused(rt))
            rt->driver->drain(rt);
        /* Idle until a worker is seen awake: announced before the look at `parked`, which a
         * waking worker stores before it looks here (edo__park_worker), so that either
         * the look sees it awake or it sees this and wakes the monitor from its long
         * sleep. */
        atomic_store(&rt->monitor_idle, true);
        bool all_idle = true;
        for (int i = 0; i < rt->nworkers; i++) {
            edo__worker *w = &rt->workers[i];
            uint32_t tick = atomic_load_explicit(&w->tick, memory_order_relaxed);
            if (atomic_load(&w->parked)) {
                w->monitor_tick = tick;
                w->monitor_tick_at = real;
                edo__blocking_idle(rt, w);
                continue;
            }
            all_idle = false;
            bool stuck = false;
            if (tick != w->monitor_tick) {
                w->monitor_tick = tick;
                w->monitor_tick_at = real;
            } else if (real - w->monitor_tick_at >= MONITOR_BUSY) {
                stuck = true;
                hand_off(rt, w, now);
            }
            edo__blocking_look(rt, w, stuck);
        }
        interval = all_idle ? MONITOR_IDLE : busy;
        if (!all_idle)
            atomic_store(&rt->monitor_idle, false);
    }
    edo__blocking_stop(rt);
    return NULL;
}
