/*
 * The runtime's clock (clock.h) and the paused clock of edo_time_pause.
 *
 * Auto-advance moves a paused clock to the next timer when the runtime is idle: no task is
 * ready, no blocking call or file operation is in flight, and no driver holds an event
 * that a task caused before it went to sleep (a write to a socketpair makes the other end
 * readable at once; under io_uring the completion may still wait in the kernel for the
 * worker whose operation it is). Events from outside the runtime (a TCP peer elsewhere, a
 * child process) are not waited for: nothing can tell how far off they are.
 *
 * With one worker that is simple: the worker polls its driver without waiting, and if that
 * gave it nothing, it moves the clock. With several, each worker that finds nothing to do
 * counts itself idle before it sleeps, and the last one runs a round: it wakes the others,
 * each polls its own driver once more and reports at a barrier (or finds work and leaves),
 * and only when all of them have reported with nothing found does it look at the shared
 * queues, the pool and the driver itself and move the clock. A report counts only if its
 * poll was made after the round began, so no event caused before every task was idle can
 * be missed, whichever worker's driver it went to. A round that did not move the clock (it
 * found work, a call in flight, or no timer at all) stalls auto-advance until some worker
 * runs a task again, or the blocking pool falls idle (edo__clock_kick: a call nobody
 * waits for ends without waking a task): until then another round would find the same.
 */
#include "core/runtime.h"

#include <errno.h>
#include <sched.h>
#include <time.h>

_Atomic int edo__virtual_clocks;

int64_t edo__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t edo__real_ms(void)
{
    return edo__now_ns() / 1000000;
}

void edo__clock_init(edo__clock *c, bool paused)
{
    atomic_init(&c->paused, false);
    atomic_init(&c->auto_advance, true);
    atomic_init(&c->frozen_ns, 0);
    atomic_init(&c->offset_ns, 0);
    atomic_init(&c->round_gen, 0);
    atomic_init(&c->holds, 0);
    c->counted = false;
    c->idle = c->arrived = 0;
    c->round = false;
    atomic_init(&c->busy_gen, 0);
    c->stalled_at = UINT64_MAX;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    if (paused) {
        /* At a whole millisecond, so that a sleep of N ms from here lasts exactly N. */
        atomic_store(&c->frozen_ns, (edo__now_ns() + 999999) / 1000000 * 1000000);
        atomic_store(&c->paused, true);
        c->counted = true;
        atomic_fetch_add(&edo__virtual_clocks, 1);
    }
}

void edo__clock_fini(edo__clock *c)
{
    if (c->counted)
        atomic_fetch_sub(&edo__virtual_clocks, 1);
    c->counted = false;
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
}

int64_t edo__clock_ns_slow(const edo_runtime *rt)
{
    if (!rt)
        return edo__now_ns();
    const edo__clock *c = &rt->clock;
    if (atomic_load_explicit(&c->paused, memory_order_acquire))
        return atomic_load_explicit(&c->frozen_ns, memory_order_relaxed);
    return edo__now_ns() + atomic_load_explicit(&c->offset_ns, memory_order_relaxed);
}

bool edo__clock_paused(const edo_runtime *rt)
{
    return atomic_load_explicit(&edo__virtual_clocks, memory_order_relaxed) &&
           atomic_load_explicit(&rt->clock.paused, memory_order_acquire);
}

int64_t edo_now(void)
{
    if (__builtin_expect(!atomic_load_explicit(&edo__virtual_clocks, memory_order_relaxed), 1))
        return edo__now_ns() / 1000000;
    edo__worker *w = edo__worker_current();
    return edo__clock_ms(w ? w->rt : NULL);
}

/* Where a paused clock stops, in ns (some 146 years): both ways of moving it stay below,
 * so it can neither overflow nor go back. A timer due later waits for ever. */
#define CLOCK_MAX_NS (EDO_NEVER / 2)

/* ---- moving the clock ---------------------------------------------------------------- */

/* Fires every worker's timers that are due at rt's clock now. Returns how many. */
static int fire_all(edo_runtime *rt)
{
    int64_t now = edo__clock_ms(rt);
    int n = 0;
    for (int i = 0; i < rt->nworkers; i++)
        n += edo__fire_timers(&rt->workers[i], now);
    return n;
}

/* Moves a paused clock forward to the earliest timer of any worker and fires what is due
 * then; until something fires, since an upper level of a wheel names when its slot is to
 * be split rather than a deadline. Returns the number fired, 0 if there is no timer. With
 * the clock's lock held. */
static int advance_to_next(edo_runtime *rt)
{
    for (;;) {
        int64_t next = INT64_MAX;
        for (int i = 0; i < rt->nworkers; i++) {
            edo__worker *w = &rt->workers[i];
            edo__spin_lock(&w->wheel_lock);
            int64_t d = edo__wheel_next(&w->wheel);
            edo__spin_unlock(&w->wheel_lock);
            if (d < next)
                next = d;
        }
        if (next == INT64_MAX || next >= CLOCK_MAX_NS / 1000000)
            return 0;
        int64_t ns = next * 1000000;
        if (ns > atomic_load(&rt->clock.frozen_ns))
            atomic_store(&rt->clock.frozen_ns, ns);
        int n = fire_all(rt);
        if (n)
            return n;
    }
}

static edo_runtime *task_runtime(void)
{
    edo__worker *w = edo__worker_current();
    return w && w->current ? w->rt : NULL;
}

static void wake_all_workers(edo_runtime *rt)
{
    if (!rt->threaded) {
        edo__wake_lone_worker(rt);
        return;
    }
    for (int i = 0; i < rt->nworkers; i++)
        edo__wake_worker(&rt->workers[i]);
}

int edo_time_pause(void)
{
    edo_runtime *rt = task_runtime();
    if (!rt)
        return -EDO_ENOTASK;
    edo__clock *c = &rt->clock;
    pthread_mutex_lock(&c->lock);
    if (!atomic_load(&c->paused)) {
        int64_t now = edo__now_ns() + atomic_load(&c->offset_ns);
        atomic_store(&c->frozen_ns, (now + 999999) / 1000000 * 1000000);
        if (!c->counted) {
            c->counted = true;
            atomic_fetch_add(&edo__virtual_clocks, 1);
        }
        atomic_store(&c->paused, true);
    }
    c->stalled_at = UINT64_MAX;
    pthread_mutex_unlock(&c->lock);
    /* Workers asleep since before the pause must come round to count themselves idle. */
    wake_all_workers(rt);
    return 0;
}

int edo_time_resume(void)
{
    edo_runtime *rt = task_runtime();
    if (!rt)
        return -EDO_ENOTASK;
    edo__clock *c = &rt->clock;
    pthread_mutex_lock(&c->lock);
    if (atomic_load(&c->paused)) {
        /* On from where it stood: the clock never goes back. */
        atomic_store(&c->offset_ns, atomic_load(&c->frozen_ns) - edo__now_ns());
        atomic_store(&c->paused, false);
    }
    pthread_mutex_unlock(&c->lock);
    /* Sleeping workers wait without a timeout while the clock is paused. */
    wake_all_workers(rt);
    return 0;
}

int edo_time_advance(int64_t ms)
{
    edo_runtime *rt = task_runtime();
    if (!rt)
        return -EDO_ENOTASK;
    if (ms < 0)
        return -EINVAL;
    edo__clock *c = &rt->clock;
    pthread_mutex_lock(&c->lock);
    if (!atomic_load(&c->paused)) {
        pthread_mutex_unlock(&c->lock);
        return -EINVAL;
    }
    int64_t now = atomic_load(&c->frozen_ns);
    int64_t room = now < CLOCK_MAX_NS ? CLOCK_MAX_NS - now : 0;
    int64_t step = ms > room / 1000000 ? room : ms * 1000000;
    atomic_store(&c->frozen_ns, now + step);
    fire_all(rt);
    pthread_mutex_unlock(&c->lock);
    /* The tasks whose timers fired run before the caller goes on (with one worker; with
     * several, other workers may take them). */
    int rc = edo_yield();
    return rc == -ECANCELED ? rc : 0;
}

int edo_time_auto_advance(bool on)
{
    edo_runtime *rt = task_runtime();
    if (!rt)
        return -EDO_ENOTASK;
    atomic_store(&rt->clock.auto_advance, on);
    if (on)
        wake_all_workers(rt); /* as for edo_time_pause */
    return 0;
}

bool edo_time_paused(void)
{
    edo_runtime *rt = task_runtime();
    return rt && edo__clock_paused(rt);
}

/* ---- auto-advance ----------------------------------------------------------------------- */

void edo__clock_hold(edo_runtime *rt)
{
    atomic_fetch_add(&rt->clock.holds, 1);
}

void edo__clock_unhold(edo_runtime *rt)
{
    atomic_fetch_sub(&rt->clock.holds, 1);
}

/* The runtime has nothing to do that could change what the clock is moved to: nothing
 * queued anywhere, no call in flight that ends by itself, nothing ready in the driver. Called
 * by the worker running a round, the others at its barrier. */
static bool runtime_quiet(edo__worker *w)
{
    edo_runtime *rt = w->rt;
    /* Events ready in the driver are taken now (into w's queue). It cannot be busy:
     * every other worker waits at the barrier, and the monitor leaves the driver alone
     * while the clock is paused; but be safe if it is. */
    for (int tries = 0; !rt->driver->drain(rt); tries++) {
        if (tries == 100)
            return false;
        sched_yield();
    }
    return !edo__has_local_work(w) && !edo__work_exists(rt) && edo__pool_idle(rt) &&
           !atomic_load(&rt->clock.holds);
}

bool edo__clock_idle(edo__worker *w)
{
    edo_runtime *rt = w->rt;
    edo__clock *c = &rt->clock;
    for (;;) {
        uint64_t seen = atomic_load(&c->round_gen);
        if (edo__poll_now(w))
            return true;
        pthread_mutex_lock(&c->lock);
        if (!atomic_load(&c->paused) || !atomic_load(&c->auto_advance) ||
            atomic_load(&rt->stopping)) {
            pthread_mutex_unlock(&c->lock);
            return false;
        }
        if (c->round && seen != atomic_load(&c->round_gen)) {
            /* The round began after this worker polled: poll again for it. */
            pthread_mutex_unlock(&c->lock);
            continue;
        }
        /* Idle from here on, until it runs a task again: it goes to sleep, or to report. */
        if (!w->clock_idle) {
            w->clock_idle = true;
            c->idle++;
        }
        if (c->round) {
            c->arrived++;
            pthread_cond_broadcast(&c->cond);
            while (c->round && atomic_load(&c->round_gen) == seen && !atomic_load(&rt->stopping))
                pthread_cond_wait(&c->cond, &c->lock);
            pthread_mutex_unlock(&c->lock);
            return edo__has_local_work(w);
        }
        if (c->idle < rt->nworkers || atomic_load(&c->busy_gen) == c->stalled_at) {
            pthread_mutex_unlock(&c->lock);
            return false;
        }
        /* The last worker to fall idle: a round. */
        uint64_t busy_at_start = atomic_load(&c->busy_gen);
        c->round = true;
        c->arrived = 0;
        atomic_fetch_add(&c->round_gen, 1);
        pthread_mutex_unlock(&c->lock);
        for (int i = 0; i < rt->nworkers; i++)
            if (&rt->workers[i] != w)
                edo__wake_worker(&rt->workers[i]);
        bool found = edo__poll_now(w); /* its own poll too must follow every other's task */
        pthread_mutex_lock(&c->lock);
        while (!found && c->arrived < rt->nworkers - 1 && c->idle == rt->nworkers &&
               !atomic_load(&rt->stopping))
            pthread_cond_wait(&c->cond, &c->lock);
        bool moved = false;
        if (!found && c->arrived == rt->nworkers - 1 && c->idle == rt->nworkers && runtime_quiet(w))
            moved = advance_to_next(rt) > 0;
        /* Whatever stopped this round (work found, a call in flight, no timer at all)
         * ends in some worker running a task; until then another round would find the
         * same. */
        if (!moved)
            c->stalled_at = busy_at_start;
        c->round = false;
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
        return edo__has_local_work(w);
    }
}

void edo__clock_busy(edo__worker *w)
{
    edo__clock *c = &w->rt->clock;
    pthread_mutex_lock(&c->lock);
    if (w->clock_idle) {
        w->clock_idle = false;
        c->idle--;
    }
    atomic_fetch_add(&c->busy_gen, 1);
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

void edo__clock_kick(edo_runtime *rt)
{
    if (!edo__clock_paused(rt))
        return;
    /* Without the clock's lock: the pool calls this under its own, which a round takes
     * under the clock's (edo__pool_idle). A new busy_gen ends the stall. */
    atomic_fetch_add(&rt->clock.busy_gen, 1);
    wake_all_workers(rt);
}

void edo__clock_wake_all(edo_runtime *rt)
{
    /* Ends the waits of a round at shutdown (they look at rt->stopping). */
    pthread_mutex_lock(&rt->clock.lock);
    pthread_cond_broadcast(&rt->clock.cond);
    pthread_mutex_unlock(&rt->clock.lock);
}
