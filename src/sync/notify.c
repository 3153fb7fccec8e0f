/*
 * Notify: a queue of waiting tasks, at most one stored permit, and an epoch that counts
 * edo_notify_all calls so that a waiter can tell whether one came since it last looked.
 */
#include "sync/resource.h"
#include "sync/sync.h"

#include <errno.h>
#include <stdlib.h>

struct edo_notify {
    edo__spin lock;
    bool permit;
    _Atomic uint64_t epoch;
    edo__waitq q;
    edo__res res;
};

int edo_notify_new(edo_notify **out)
{
    if (!out)
        return -EINVAL;
    *out = calloc(1, sizeof **out);
    if (!*out)
        return -ENOMEM;
    edo__res_add(&(*out)->res, EDO_RES_NOTIFY);
    return 0;
}

void edo_notify_free(edo_notify *n)
{
    if (!n)
        return;
    edo__res_remove(&n->res);
    free(n);
}

void edo__notify_describe(edo__res *r, edo_resource_info *info)
{
    edo_notify *n = edo__container_of(r, edo_notify, res);
    info->addr = n;
    edo__spin_lock(&n->lock);
    info->len = n->permit;
    edo__res_waiters(&n->q, info);
    edo__spin_unlock(&n->lock);
}

uint64_t edo_notify_epoch(edo_notify *n)
{
    if (!n)
        return 0;
    return atomic_load_explicit(&n->epoch, memory_order_acquire);
}

static void withdraw(void *obj, edo__waiter *w, edo__wakeups *wk)
{
    edo__waitq_remove(&((edo_notify *)obj)->q, w);
}

/* since: the epoch to compare with, or NULL for a plain wait. */
static int notify_wait(edo_notify *n, const uint64_t *since)
{
    if (!n)
        return -EINVAL;
    edo__spin_lock(&n->lock);
    if (since && *since != atomic_load_explicit(&n->epoch, memory_order_relaxed)) {
        edo__spin_unlock(&n->lock); /* a notify_all came since the caller looked */
        return 0;
    }
    if (n->permit) {
        n->permit = false;
        edo__spin_unlock(&n->lock);
        return 0;
    }
    return edo__wait_queued(&n->q, &n->lock, EDO_WAIT_NOTIFY, EDO__OP_NOTIFY, NULL, 0, withdraw, n);
}

int edo_notify_wait(edo_notify *n)
{
    return notify_wait(n, NULL);
}

int edo_notify_wait_since(edo_notify *n, uint64_t epoch)
{
    return notify_wait(n, &epoch);
}

void edo_notify_one(edo_notify *n)
{
    if (!n)
        return;
    edo__wakeups wk = { 0 };
    edo__spin_lock(&n->lock);
    edo__waiter *w = edo__waitq_claim(&n->q);
    if (w)
        edo__complete(&wk, w, 0);
    else
        n->permit = true;
    edo__spin_unlock(&n->lock);
    edo__wakeups_run(&wk);
}

void edo_notify_all(edo_notify *n)
{
    if (!n)
        return;
    edo__wakeups wk = { 0 };
    edo__spin_lock(&n->lock);
    atomic_fetch_add_explicit(&n->epoch, 1, memory_order_release);
    edo__waiter *w;
    while ((w = edo__waitq_claim(&n->q)))
        edo__complete(&wk, w, 0);
    edo__spin_unlock(&n->lock);
    edo__wakeups_run(&wk);
}

/* ---- edo_select ------------------------------------------------------------------------ */

int edo__notify_try(edo_notify *n)
{
    edo__spin_lock(&n->lock);
    bool had = n->permit;
    n->permit = false;
    edo__spin_unlock(&n->lock);
    return had ? 0 : -EAGAIN;
}

int edo__notify_sel_arm(edo_notify *n, edo__waiter *w)
{
    int res = EDO__SEL_QUEUED;
    edo__spin_lock(&n->lock);
    if (!n->permit) {
        edo__waitq_push(&n->q, w);
    } else if (!edo__claim(w)) {
        res = EDO__SEL_LOST;
    } else {
        n->permit = false;
        w->rc = 0;
        res = EDO__SEL_DONE;
    }
    edo__spin_unlock(&n->lock);
    return res;
}

void edo__notify_sel_disarm(edo_notify *n, edo__waiter *w)
{
    edo__waitq_withdraw(&n->q, &n->lock, w);
}
