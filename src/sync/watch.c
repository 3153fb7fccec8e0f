/*
 * Watch: one value with a version number; a change tells every waiting receiver to look
 * again. Receivers keep the version they have seen themselves, so a watch has no list of
 * receivers and any number can follow it.
 */
#include "sync/resource.h"
#include "sync/sync.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ELEM_MAX 65536

struct edo_watch {
    edo__spin lock;
    bool closed;
    size_t elem;
    uint64_t version;
    edo__waitq q;
    edo__res res;
    unsigned char val[];
};

int edo_watch_new(edo_watch **out, size_t elem_size, const void *initial)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (elem_size == 0 || elem_size > ELEM_MAX || !initial)
        return -EINVAL;
    edo_watch *w = calloc(1, sizeof *w + elem_size);
    if (!w)
        return -ENOMEM;
    w->elem = elem_size;
    w->version = 1;
    memcpy(w->val, initial, elem_size);
    edo__res_add(&w->res, EDO_RES_WATCH);
    *out = w;
    return 0;
}

void edo_watch_free(edo_watch *w)
{
    if (!w)
        return;
    edo__res_remove(&w->res);
    free(w);
}

void edo__watch_describe(edo__res *r, edo_resource_info *info)
{
    edo_watch *w = edo__container_of(r, edo_watch, res);
    info->addr = w;
    edo__spin_lock(&w->lock);
    info->len = w->version;
    info->closed = w->closed;
    edo__res_waiters(&w->q, info);
    edo__spin_unlock(&w->lock);
}

int edo_watch_send(edo_watch *w, const void *val)
{
    if (!w || !val)
        return -EINVAL;
    edo__wakeups wk = { 0 };
    edo__spin_lock(&w->lock);
    if (w->closed) {
        edo__spin_unlock(&w->lock);
        return -EDO_ECLOSED;
    }
    memcpy(w->val, val, w->elem);
    w->version++;
    edo__complete_all(&wk, &w->q);
    edo__spin_unlock(&w->lock);
    edo__wakeups_run(&wk);
    return 0;
}

void edo_watch_close(edo_watch *w)
{
    if (!w)
        return;
    edo__wakeups wk = { 0 };
    edo__spin_lock(&w->lock);
    w->closed = true;
    edo__complete_all(&wk, &w->q);
    edo__spin_unlock(&w->lock);
    edo__wakeups_run(&wk);
}

uint64_t edo_watch_get(edo_watch *w, void *val)
{
    if (!w)
        return 0;
    edo__spin_lock(&w->lock);
    if (val)
        memcpy(val, w->val, w->elem);
    uint64_t v = w->version;
    edo__spin_unlock(&w->lock);
    return v;
}

/* Under the lock. */
static int recv_locked(edo_watch *w, void *val, uint64_t *seen)
{
    if (w->version > *seen) {
        if (val)
            memcpy(val, w->val, w->elem);
        *seen = w->version;
        return 0;
    }
    return w->closed ? -EDO_ECLOSED : -EAGAIN;
}

int edo__watch_try_recv(edo_watch *w, void *val, uint64_t *seen)
{
    edo__spin_lock(&w->lock);
    int rc = recv_locked(w, val, seen);
    edo__spin_unlock(&w->lock);
    return rc;
}

static void withdraw(void *obj, edo__waiter *w, edo__wakeups *wk)
{
    edo__waitq_remove(&((edo_watch *)obj)->q, w);
}

int edo_watch_recv(edo_watch *w, void *val, uint64_t *seen)
{
    if (!w || !seen)
        return -EINVAL;
    for (;;) {
        edo__spin_lock(&w->lock);
        int rc = recv_locked(w, val, seen);
        if (rc != -EAGAIN) {
            edo__spin_unlock(&w->lock);
            return rc;
        }
        edo__waiter wt;
        edo__waiter_init(&wt);
        edo__waitq_push(&w->q, &wt);
        edo__spin_unlock(&w->lock);
        rc = edo__wait(&wt, &w->lock, EDO_WAIT_NOTIFY, EDO__OP_WATCH, withdraw, w);
        if (rc < 0)
            return rc;
    }
}

/* ---- edo_select ------------------------------------------------------------------------ */

int edo__watch_sel_arm(edo_watch *w, uint64_t seen, edo__waiter *wt)
{
    edo__spin_lock(&w->lock);
    bool ready = w->version > seen || w->closed;
    if (!ready)
        edo__waitq_push(&w->q, wt);
    edo__spin_unlock(&w->lock);
    return ready ? EDO__SEL_DONE : EDO__SEL_QUEUED;
}

void edo__watch_sel_disarm(edo_watch *w, edo__waiter *wt)
{
    edo__waitq_withdraw(&w->q, &w->lock, wt);
}
