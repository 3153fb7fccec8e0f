/*
 * Barrier: a count of arrivals and a queue of the waiting ones (wait.h), behind a
 * spinlock. The arrival that makes the count n completes every waiter of the round at
 * once, starts the next round with an empty count and queue, and is the round's leader: it
 * never waits, so exactly one call per round returns 1. A waiter that gives up (deadline,
 * abort) takes its arrival back when it withdraws; one completed first was counted, and
 * its call returns 0 like the others of its round.
 */
#include "sync/resource.h"
#include "sync/sync.h"

#include <errno.h>
#include <stdlib.h>

struct edo_barrier {
    edo__spin lock;
    unsigned n;
    unsigned arrived; /* this round, the waiters in q */
    edo__waitq q;
    edo__res res;
};

int edo_barrier_new(edo_barrier **b, unsigned n)
{
    if (!b)
        return -EINVAL;
    *b = NULL;
    if (n == 0)
        return -EINVAL;
    edo_barrier *bar = calloc(1, sizeof *bar);
    if (!bar)
        return -ENOMEM;
    bar->n = n;
    edo__res_add(&bar->res, EDO_RES_BARRIER);
    *b = bar;
    return 0;
}

static void withdraw(void *obj, edo__waiter *w, edo__wakeups *wk)
{
    edo_barrier *bar = obj;
    edo__waitq_remove(&bar->q, w);
    bar->arrived--;
}

int edo_barrier_wait(edo_barrier *b)
{
    if (!b)
        return -EINVAL;
    edo__budget_spend(); /* a round's leader never waits (with n = 1, no call does) */
    edo__wakeups wk = { 0 };
    edo__spin_lock(&b->lock);
    if (++b->arrived == b->n) {
        b->arrived = 0;
        edo__complete_all(&wk, &b->q);
        edo__spin_unlock(&b->lock);
        edo__wakeups_run(&wk);
        return 1;
    }
    return edo__wait_queued(&b->q, &b->lock, EDO_WAIT_LOCK, EDO__OP_BARRIER, NULL, 0, withdraw, b);
}

void edo_barrier_free(edo_barrier *b)
{
    if (!b)
        return;
    edo__res_remove(&b->res);
    free(b);
}

void edo__barrier_describe(edo__res *r, edo_resource_info *info)
{
    edo_barrier *b = edo__container_of(r, edo_barrier, res);
    info->addr = b;
    edo__spin_lock(&b->lock);
    info->len = b->arrived;
    info->cap = b->n;
    edo__res_waiters(&b->q, info);
    edo__spin_unlock(&b->lock);
}
