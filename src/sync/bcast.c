/*
 * Broadcast: a ring of the last `cap` messages, numbered from 0 as they are sent. Each
 * receiver holds the number of the next message it wants; one that fell more than `cap`
 * behind is told how many it missed and moved to the oldest message still kept. A send
 * copies once and tells every waiting receiver to look again; a receiver copies its
 * message out under the lock, so a sender can never overwrite a slot while it is read.
 */
#include "sync/resource.h"
#include "sync/sync.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ELEM_MAX 65536

struct edo_bcast {
    edo__spin lock;
    bool closed;
    size_t elem, cap;
    uint64_t tail; /* number of the next message */
    int receivers;
    unsigned char *ring;
    edo__waitq q;
    edo__res res;
};

struct edo_bcast_rx {
    edo_bcast *b;
    uint64_t next;
};

int edo_bcast_new(edo_bcast **out, size_t elem_size, size_t capacity)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (elem_size == 0 || elem_size > ELEM_MAX || capacity == 0 || capacity > SIZE_MAX / elem_size)
        return -EINVAL;
    edo_bcast *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    b->ring = malloc(capacity * elem_size);
    if (!b->ring) {
        free(b);
        return -ENOMEM;
    }
    b->elem = elem_size;
    b->cap = capacity;
    edo__res_add(&b->res, EDO_RES_BCAST);
    *out = b;
    return 0;
}

void edo_bcast_free(edo_bcast *b)
{
    if (!b)
        return;
    edo__res_remove(&b->res);
    free(b->ring);
    free(b);
}

void edo__bcast_describe(edo__res *r, edo_resource_info *info)
{
    edo_bcast *b = edo__container_of(r, edo_bcast, res);
    info->addr = b;
    edo__spin_lock(&b->lock);
    info->len = b->tail < b->cap ? b->tail : b->cap;
    info->cap = b->cap;
    info->closed = b->closed;
    edo__res_waiters(&b->q, info);
    edo__spin_unlock(&b->lock);
}

int edo_bcast_subscribe(edo_bcast_rx **out, edo_bcast *b)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!b)
        return -EINVAL;
    edo_bcast_rx *rx = malloc(sizeof *rx);
    *out = rx;
    if (!rx)
        return -ENOMEM;
    rx->b = b;
    edo__spin_lock(&b->lock);
    rx->next = b->tail;
    b->receivers++;
    edo__spin_unlock(&b->lock);
    return 0;
}

void edo_bcast_unsubscribe(edo_bcast_rx *rx)
{
    if (!rx)
        return;
    edo__spin_lock(&rx->b->lock);
    rx->b->receivers--;
    edo__spin_unlock(&rx->b->lock);
    free(rx);
}

int edo_bcast_send(edo_bcast *b, const void *msg)
{
    if (!b || !msg)
        return -EINVAL;
    edo__wakeups wk = { 0 };
    edo__spin_lock(&b->lock);
    if (b->closed) {
        edo__spin_unlock(&b->lock);
        return -EDO_ECLOSED;
    }
    memcpy(b->ring + (b->tail % b->cap) * b->elem, msg, b->elem);
    b->tail++;
    int n = b->receivers;
    edo__complete_all(&wk, &b->q);
    edo__spin_unlock(&b->lock);
    edo__wakeups_run(&wk);
    return n;
}

void edo_bcast_close(edo_bcast *b)
{
    if (!b)
        return;
    edo__wakeups wk = { 0 };
    edo__spin_lock(&b->lock);
    b->closed = true;
    edo__complete_all(&wk, &b->q);
    edo__spin_unlock(&b->lock);
    edo__wakeups_run(&wk);
}

/* Under the lock: what a receive gets now, -EAGAIN if it must wait. */
static int recv_locked(edo_bcast_rx *rx, void *msg, uint64_t *missed)
{
    edo_bcast *b = rx->b;
    uint64_t oldest = b->tail > b->cap ? b->tail - b->cap : 0;
    if (rx->next < oldest) {
        if (missed)
            *missed = oldest - rx->next;
        rx->next = oldest;
        return -EOVERFLOW;
    }
    if (rx->next < b->tail) {
        memcpy(msg, b->ring + (rx->next % b->cap) * b->elem, b->elem);
        rx->next++;
        return 0;
    }
    return b->closed ? -EDO_ECLOSED : -EAGAIN;
}

static void withdraw(void *obj, edo__waiter *w, edo__wakeups *wk)
{
    edo__waitq_remove(&((edo_bcast *)obj)->q, w);
}

int edo_bcast_try_recv(edo_bcast_rx *rx, void *msg, uint64_t *missed)
{
    if (!rx || !msg)
        return -EINVAL;
    edo__spin_lock(&rx->b->lock);
    int rc = recv_locked(rx, msg, missed);
    edo__spin_unlock(&rx->b->lock);
    return rc;
}

uint64_t edo_bcast_lag(const edo_bcast_rx *rx)
{
    if (!rx)
        return 0;
    edo__spin_lock(&rx->b->lock);
    uint64_t lag = rx->b->tail - rx->next;
    edo__spin_unlock(&rx->b->lock);
    return lag;
}

int edo_bcast_recv(edo_bcast_rx *rx, void *msg, uint64_t *missed)
{
    if (!rx || !msg)
        return -EINVAL;
    edo_bcast *b = rx->b;
    for (;;) {
        edo__spin_lock(&b->lock);
        int rc = recv_locked(rx, msg, missed);
        if (rc != -EAGAIN) {
            edo__spin_unlock(&b->lock);
            if (rc == 0)
                edo__budget_spend();
            return rc;
        }
        rc = edo__wait_queued(&b->q, &b->lock, EDO_WAIT_CHAN, EDO__OP_RECV, NULL, 0, withdraw, b);
        if (rc < 0)
            return rc;
    }
}

/* ---- edo_select ------------------------------------------------------------------------ */

int edo__bcast_sel_arm(edo_bcast_rx *rx, edo__waiter *w)
{
    edo_bcast *b = rx->b;
    edo__spin_lock(&b->lock);
    bool ready = rx->next < b->tail || b->closed;
    if (!ready)
        edo__waitq_push(&b->q, w);
    edo__spin_unlock(&b->lock);
    return ready ? EDO__SEL_DONE : EDO__SEL_QUEUED;
}

void edo__bcast_sel_disarm(edo_bcast_rx *rx, edo__waiter *w)
{
    edo__waitq_withdraw(&rx->b->q, &rx->b->lock, w);
}
