/*
 * Semaphore: the permits and two flags in one atomic word, a spinlock and a waiter queue
 * (wait.h) for the waits.
 *
 * The word is permits << 2 | CLOSED | WAITERS. As in the mutex (mutex.c), WAITERS is set
 * exactly while the queue is not empty and changes only under the spinlock; the fast
 * paths (an acquire that finds enough permits and nobody waiting, a release with nobody
 * waiting) are compare-and-swaps that expect it clear, so while anybody waits the word
 * only changes under the spinlock. A release with waiters adds its permits and hands them
 * out in queue order: the first waiter gets its n as soon as n are free, and those behind
 * it wait for it even if they need fewer, so that a large request is never starved by
 * small ones. The permits go straight to the waiters, never through the word, so a
 * newcomer cannot take them first.
 *
 * A waiter that gives up (deadline, abort) may have been what held the others back: the
 * withdrawal hands out the free permits again.
 */
#include "sync/resource.h"
#include "sync/sync.h"

#include <errno.h>
#include <stdlib.h>

enum {
    WAITERS = 1u,
    CLOSED = 2u,
    SHIFT = 2,
};

struct edo_sem {
    _Atomic uint64_t state;
    edo__spin lock;
    edo__waitq q;
    _Atomic uint64_t holder; /* a read-write lock's: the writer's id (rwlock.c) */
    edo__res res;            /* EDO_RES_SEM, or EDO_RES_RWLOCK for a read-write lock's */
};

static inline uint64_t permits_of(uint64_t s)
{
    return s >> SHIFT;
}

/* s with n more permits. The count saturates at EDO_SEM_MAX, where the word still has
 * room; nobody can take more than that at once anyway. */
static inline uint64_t add_permits(uint64_t s, uint64_t n)
{
    uint64_t p = permits_of(s);
    p = n >= EDO_SEM_MAX - p ? EDO_SEM_MAX : p + n;
    return p << SHIFT | (s & (WAITERS | CLOSED));
}

int edo_sem_new(edo_sem **s, uint64_t permits)
{
    return edo__sem_make(s, permits, EDO_RES_SEM);
}

int edo__sem_make(edo_sem **s, uint64_t permits, edo_resource_kind kind)
{
    if (!s)
        return -EINVAL;
    *s = NULL;
    if (permits > EDO_SEM_MAX)
        return -EINVAL;
    edo_sem *sem = calloc(1, sizeof *sem);
    if (!sem)
        return -ENOMEM;
    atomic_init(&sem->state, permits << SHIFT);
    edo__res_add(&sem->res, kind);
    *s = sem;
    return 0;
}

/* Without waiting and without the spinlock: 0, -EAGAIN (too few permits, or others
 * wait), or -EDO_ECLOSED. */
static int try_take(edo_sem *sem, uint64_t n)
{
    uint64_t s = atomic_load_explicit(&sem->state, memory_order_relaxed);
    for (;;) {
        if (s & CLOSED)
            return -EDO_ECLOSED;
        if ((s & WAITERS) || permits_of(s) < n)
            return -EAGAIN;
        if (atomic_compare_exchange_weak_explicit(&sem->state, &s, s - (n << SHIFT),
                                                  memory_order_acquire, memory_order_relaxed))
            return 0;
    }
}

/* Under the spinlock, with waiters queued (so the word is ours): hands p permits out to
 * the waiters in order, as far as they go, and stores what is left. */
static void serve(edo_sem *sem, uint64_t s, edo__wakeups *wk)
{
    uint64_t p = permits_of(s);
    edo__waiter *w;
    while ((w = edo__waitq_first(&sem->q)) && w->n <= p) {
        edo__waitq_remove(&sem->q, w);
        p -= w->n;
        edo__complete(wk, w, 0);
    }
    uint64_t flags = (s & CLOSED) | (edo__waitq_empty(&sem->q) ? 0 : WAITERS);
    atomic_store_explicit(&sem->state, p << SHIFT | flags, memory_order_release);
}

static void withdraw(void *obj, edo__waiter *w, edo__wakeups *wk)
{
    edo_sem *sem = obj;
    bool first = edo__waitq_first(&sem->q) == w;
    edo__waitq_remove(&sem->q, w);
    /* The waiters behind the first one waited for it only: the permits free now may be
     * enough for them. (And the last one to leave clears WAITERS.) */
    if (first || edo__waitq_empty(&sem->q))
        serve(sem, atomic_load_explicit(&sem->state, memory_order_relaxed), wk);
}

int edo_sem_acquire(edo_sem *sem, uint64_t n)
{
    if (!sem || n == 0 || n > EDO_SEM_MAX)
        return -EINVAL;
    edo__budget_spend(); /* as a channel's calls: one that never waits lets others run */
    int rc = try_take(sem, n);
    if (rc != -EAGAIN)
        return rc;
    edo__spin_lock(&sem->lock);
    uint64_t s = atomic_load_explicit(&sem->state, memory_order_relaxed);
    for (;;) {
        if (s & CLOSED) {
            edo__spin_unlock(&sem->lock);
            return -EDO_ECLOSED;
        }
        if (s & WAITERS)
            break; /* behind the others, whatever is free */
        if (permits_of(s) >= n) {
            /* Released since try_take looked. */
            if (atomic_compare_exchange_weak_explicit(&sem->state, &s, s - (n << SHIFT),
                                                      memory_order_acquire, memory_order_relaxed)) {
                edo__spin_unlock(&sem->lock);
                return 0;
            }
        } else if (atomic_compare_exchange_weak_explicit(
                       &sem->state, &s, s | WAITERS, memory_order_relaxed, memory_order_relaxed)) {
            /* From now on a release takes the spinlock, after our waiter is queued (the
             * race is the mutex's, see mutex.c). */
            break;
        }
    }
    return edo__wait_queued(&sem->q, &sem->lock, EDO_WAIT_LOCK, EDO__OP_SEM, NULL, n, withdraw,
                            sem);
}

int edo_sem_try_acquire(edo_sem *sem, uint64_t n)
{
    if (!sem || n == 0 || n > EDO_SEM_MAX)
        return -EINVAL;
    return try_take(sem, n);
}

void edo_sem_release(edo_sem *sem, uint64_t n)
{
    if (!sem || n == 0)
        return;
    uint64_t s = atomic_load_explicit(&sem->state, memory_order_relaxed);
    while (!(s & WAITERS)) {
        if (atomic_compare_exchange_weak_explicit(&sem->state, &s, add_permits(s, n),
                                                  memory_order_release, memory_order_relaxed))
            return;
    }
    edo__wakeups wk = { 0 };
    edo__spin_lock(&sem->lock);
    s = atomic_load_explicit(&sem->state, memory_order_relaxed);
    if (s & WAITERS) {
        serve(sem, add_permits(s, n), &wk);
    } else {
        /* The waiters have given up since: the word is everybody's again. */
        while (!atomic_compare_exchange_weak_explicit(&sem->state, &s, add_permits(s, n),
                                                      memory_order_release, memory_order_relaxed)) {
        }
    }
    edo__spin_unlock(&sem->lock);
    edo__wakeups_run(&wk);
}

uint64_t edo_sem_available(edo_sem *sem)
{
    return sem ? permits_of(atomic_load_explicit(&sem->state, memory_order_relaxed)) : 0;
}

void edo_sem_close(edo_sem *sem)
{
    if (!sem)
        return;
    edo__wakeups wk = { 0 };
    edo__spin_lock(&sem->lock);
    edo__waiter *w;
    while ((w = edo__waitq_claim(&sem->q)))
        edo__complete(&wk, w, -EDO_ECLOSED);
    /* Set CLOSED before clearing WAITERS: a fast acquire must never see neither. */
    atomic_fetch_or_explicit(&sem->state, CLOSED, memory_order_relaxed);
    atomic_fetch_and_explicit(&sem->state, ~(uint64_t)WAITERS, memory_order_release);
    edo__spin_unlock(&sem->lock);
    edo__wakeups_run(&wk);
}

void edo_sem_free(edo_sem *sem)
{
    if (!sem)
        return;
    edo__res_remove(&sem->res);
    free(sem);
}

void edo__sem_set_holder(edo_sem *sem, uint64_t id)
{
    atomic_store_explicit(&sem->holder, id, memory_order_relaxed);
}

static void sem_describe(edo__res *r, edo_resource_info *info, uint64_t all)
{
    edo_sem *sem = edo__container_of(r, edo_sem, res);
    info->addr = sem;
    edo__spin_lock(&sem->lock);
    uint64_t s = atomic_load_explicit(&sem->state, memory_order_relaxed);
    info->len = permits_of(s);
    info->closed = s & CLOSED;
    if (all && info->len == 0)
        info->holder = atomic_load_explicit(&sem->holder, memory_order_relaxed);
    else if (all)
        info->readers = (uint32_t)(all - info->len);
    edo__res_waiters(&sem->q, info);
    edo__spin_unlock(&sem->lock);
}

void edo__sem_describe(edo__res *r, edo_resource_info *info)
{
    sem_describe(r, info, 0);
}

void edo__rwlock_describe(edo__res *r, edo_resource_info *info)
{
    sem_describe(r, info, EDO__RWLOCK_ALL);
}
