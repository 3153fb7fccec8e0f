/*
 * Mutex: one atomic word for the uncontended case, a spinlock and a waiter queue (wait.h)
 * for the rest.
 *
 * The word holds LOCKED and WAITERS. Lock without contention is a compare-and-swap from 0
 * to LOCKED, unlock one from LOCKED back to 0: no spinlock, no queue. Any other value
 * sends both sides to the slow path, under the spinlock:
 *  - WAITERS is set and cleared only under the spinlock, and is set exactly while the
 *    queue is not empty. While it is set, both fast paths fail (their compare-and-swap
 *    expects a word without it), so the word only changes under the spinlock.
 *  - An unlock with waiters does not clear LOCKED: it takes the first waiter out and
 *    completes it, and the lock passes to that waiter without ever being free. A newcomer
 *    then finds the word non-zero and queues behind the others, which is what makes the
 *    mutex first in, first out.
 *
 * The race that matters is a locker about to queue against the holder's fast unlock. The
 * locker, under the spinlock, turns LOCKED into LOCKED | WAITERS by compare-and-swap and
 * queues its waiter in the same critical section. Either the holder's unlock (LOCKED -> 0)
 * comes first: the locker's swap fails, it reads 0 and takes the lock itself. Or the
 * locker's swap comes first: the holder's fast unlock fails, and its slow path takes the
 * spinlock, which it can only get after the waiter is queued, so it finds the waiter and
 * hands it the lock. No wake-up is lost and the lock is never left held by nobody.
 */
#include "sync/resource.h"
#include "sync/sync.h"

#include <errno.h>
#include <stdlib.h>

enum {
    LOCKED = 1u,
    WAITERS = 2u,
};

struct edo_mutex {
    _Atomic uint32_t state;
    edo__spin lock;
    edo__waitq q;
    _Atomic uint64_t holder; /* the holding task's id (edo__holder_self), for observers */
    edo__res res;
};

int edo_mutex_new(edo_mutex **m)
{
    if (!m)
        return -EINVAL;
    *m = calloc(1, sizeof **m);
    if (!*m)
        return -ENOMEM;
    edo__res_add(&(*m)->res, EDO_RES_MUTEX);
    return 0;
}

static inline int held(edo_mutex *m)
{
    atomic_store_explicit(&m->holder, edo__holder_self(), memory_order_relaxed);
    return 0;
}

static inline bool fast_lock(edo_mutex *m)
{
    uint32_t unlocked = 0;
    return atomic_compare_exchange_strong_explicit(&m->state, &unlocked, LOCKED,
                                                   memory_order_acquire, memory_order_relaxed);
}

/* A waiter that gave up: it no longer waits, and the last one clears WAITERS (the holder
 * is still there, so LOCKED stays). */
static void withdraw(void *obj, edo__waiter *w, edo__wakeups *wk)
{
    edo_mutex *m = obj;
    edo__waitq_remove(&m->q, w);
    if (edo__waitq_empty(&m->q))
        atomic_store_explicit(&m->state, LOCKED, memory_order_relaxed);
}

static int lock_slow(edo_mutex *m)
{
    edo__spin_lock(&m->lock);
    uint32_t s = atomic_load_explicit(&m->state, memory_order_relaxed);
    for (;;) {
        if (s == 0) {
            /* Unlocked since the fast path looked, and nobody waits (WAITERS would be
             * set): ours, without queueing. */
            if (atomic_compare_exchange_weak_explicit(&m->state, &s, LOCKED, memory_order_acquire,
                                                      memory_order_relaxed)) {
                edo__spin_unlock(&m->lock);
                return 0;
            }
        } else if (s & WAITERS) {
            break; /* others queued: the word cannot change until we unlock the spinlock */
        } else if (atomic_compare_exchange_weak_explicit(&m->state, &s, LOCKED | WAITERS,
                                                         memory_order_relaxed,
                                                         memory_order_relaxed)) {
            break; /* the holder's unlock will now take the slow path and find us */
        }
    }
    /* Completed: the lock is ours, whatever deadline or abort came meanwhile (wait.h). The
     * unlocker's writes reach us through the spinlock and the waiter's `done`. */
    return edo__wait_queued(&m->q, &m->lock, EDO_WAIT_LOCK, EDO__OP_MUTEX, NULL, 0, withdraw, m);
}

int edo_mutex_lock(edo_mutex *m)
{
    if (!m)
        return -EINVAL;
    /* A task that locks and unlocks in a loop without ever waiting must still let the
     * others run (and queue for the lock). Before taking it: never yield holding it. */
    edo__budget_spend();
    if (__builtin_expect(fast_lock(m), 1))
        return held(m);
    int rc = lock_slow(m);
    return rc < 0 ? rc : held(m);
}

int edo_mutex_try_lock(edo_mutex *m)
{
    if (!m)
        return -EINVAL;
    return fast_lock(m) ? held(m) : -EBUSY;
}

static void unlock_slow(edo_mutex *m)
{
    edo__wakeups wk = { 0 };
    edo__spin_lock(&m->lock);
    edo__waiter *w = edo__waitq_claim(&m->q);
    if (w) {
        /* Handed over: LOCKED stays, so no newcomer gets in first. */
        edo__complete(&wk, w, 0);
        if (edo__waitq_empty(&m->q))
            atomic_store_explicit(&m->state, LOCKED, memory_order_relaxed);
    } else {
        /* The waiters that made the fast path fail have all given up since. */
        atomic_store_explicit(&m->state, 0, memory_order_release);
    }
    edo__spin_unlock(&m->lock);
    edo__wakeups_run(&wk);
}

void edo_mutex_unlock(edo_mutex *m)
{
    if (!m)
        return;
    atomic_store_explicit(&m->holder, 0, memory_order_relaxed);
    uint32_t locked = LOCKED;
    if (__builtin_expect(atomic_compare_exchange_strong_explicit(
                             &m->state, &locked, 0, memory_order_release, memory_order_relaxed),
                         1))
        return;
    unlock_slow(m);
}

void edo_mutex_free(edo_mutex *m)
{
    if (!m)
        return;
    edo__res_remove(&m->res);
    free(m);
}

void edo__mutex_describe(edo__res *r, edo_resource_info *info)
{
    edo_mutex *m = edo__container_of(r, edo_mutex, res);
    info->addr = m;
    edo__spin_lock(&m->lock);
    if (atomic_load_explicit(&m->state, memory_order_relaxed) & LOCKED)
        info->holder = atomic_load_explicit(&m->holder, memory_order_relaxed);
    edo__res_waiters(&m->q, info);
    edo__spin_unlock(&m->lock);
}
