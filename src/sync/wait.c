/*
 * Waiter queues (wait.h).
 */
#include "sync/wait.h"

#include <errno.h>

void edo__waiter_init(edo__waiter *w)
{
    *w = (edo__waiter){ .task = edo__task_current() };
    atomic_init(&w->done, 0);
}

void edo__waitq_push(edo__waitq *q, edo__waiter *w)
{
    edo__list_push_back(&q->waiters, &w->link);
    w->queued = true;
}

void edo__waitq_remove(edo__waitq *q, edo__waiter *w)
{
    edo__list_remove(&q->waiters, &w->link);
    w->queued = false;
}

void edo__waitq_withdraw(edo__waitq *q, edo__spin *lock, edo__waiter *w)
{
    edo__spin_lock(lock);
    if (w->queued)
        edo__waitq_remove(q, w);
    edo__spin_unlock(lock);
}

edo__waiter *edo__waitq_claim(edo__waitq *q)
{
    for (edo__waiter *w = edo__waitq_first(q); w; w = edo__waitq_next(w)) {
        if (edo__claim(w)) {
            edo__waitq_remove(q, w);
            return w;
        }
    }
    return NULL;
}

void edo__complete(edo__wakeups *wk, edo__waiter *w, int rc)
{
    w->rc = rc;
    w->taken = true;
    /* At the front: the first completed is woken last, and so is the one a waking task
     * leaves in its worker's LIFO slot (edo__schedule). */
    edo__fifo_push_front(&wk->done, &w->wake_link);
}

void edo__complete_all(edo__wakeups *wk, edo__waitq *q)
{
    edo__waiter *w;
    while ((w = edo__waitq_first(q))) {
        edo__waitq_remove(q, w);
        edo__complete(wk, w, 0);
    }
}

void edo__wakeups_run(edo__wakeups *wk)
{
    edo__slink *l;
    while ((l = edo__fifo_pop(&wk->done))) {
        /* Read everything before `done`: from then on the waiter may be gone. The
         * reference keeps the task itself alive until its wake is delivered. */
        edo__waiter *w = edo__container_of(l, edo__waiter, wake_link);
        edo_task *t = w->task;
        if (t) {
            edo__task_ref(t);
            /* Sequentially consistent, so that edo__wake's look at the task's state comes
             * after it: a task that has just consumed an old NOTIFIED flag then either
             * sees `done`, or is seen parked (see edo__suspend). */
            atomic_store(&w->done, 1);
            edo__wake(t);
            edo__task_unref(t);
        } else {
            /* A thread: the futex word may belong to a returned frame by the time of the
             * wake; a wake of a stale address is at worst a spurious one elsewhere. */
            atomic_store(&w->done, 1);
            edo__futex_wake(&w->done, 1);
        }
    }
}

int edo__waiter_park(edo__waiter *w, edo_wait_reason why)
{
    for (;;) {
        if (atomic_load(&w->done))
            return 0;
        if (!w->task) {
            edo__futex_wait(&w->done, 0, -1);
            continue;
        }
        int rc = edo__park(why, EDO_NEVER);
        if (rc < 0)
            return atomic_load(&w->done) ? 0 : rc;
    }
}

void edo__waiter_finish(edo__waiter *w)
{
    while (!atomic_load(&w->done)) {
        if (w->task)
            edo__suspend(edo__worker_current(), w->task);
        else
            edo__futex_wait(&w->done, 0, -1);
    }
}

int edo__wait(edo__waiter *w, edo__spin *lock, edo_wait_reason why, int op,
              void (*withdraw)(void *obj, edo__waiter *w, edo__wakeups *wk), void *obj)
{
    if (w->task)
        edo__wait_note(w->task, obj, (int64_t)w->n, op);
    int rc = edo__waiter_park(w, why);
    if (rc == 0)
        return w->rc;
    edo__wakeups wk = { 0 };
    edo__spin_lock(lock);
    bool queued = w->queued;
    if (queued)
        withdraw(obj, w, &wk);
    edo__spin_unlock(lock);
    edo__wakeups_run(&wk);
    if (queued)
        return rc;
    edo__waiter_finish(w);
    return w->rc;
}

int edo__wait_queued(edo__waitq *q, edo__spin *lock, edo_wait_reason why, int op, void *buf,
                     uint64_t n, void (*withdraw)(void *obj, edo__waiter *w, edo__wakeups *wk),
                     void *obj)
{
    edo__waiter w;
    edo__waiter_init(&w);
    w.buf = buf;
    w.n = n;
    edo__waitq_push(q, &w);
    edo__spin_unlock(lock);
    return edo__wait(&w, lock, why, op, withdraw, obj);
}
