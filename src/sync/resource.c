/*
 * The registry of live synchronisation objects and edo_resource_list (resource.h has the
 * locking rules).
 */
#include "sync/resource.h"

#include "core/runtime.h"
#include "core/spin.h"

#include <stdint.h>
#include <string.h>

#define SHARDS 16

static struct shard {
    edo__spin lock;
    edo__list all; /* edo__res.link */
} __attribute__((aligned(64))) shards[SHARDS];

static struct shard *shard_of(const edo__res *r)
{
    uintptr_t a = (uintptr_t)r;
    return &shards[(a >> 6 ^ a >> 12) % SHARDS];
}

void edo__res_add(edo__res *r, edo_resource_kind kind)
{
    struct shard *sh = shard_of(r);
    r->kind = kind;
    edo__spin_lock(&sh->lock);
    edo__list_push_front(&sh->all, &r->link);
    edo__spin_unlock(&sh->lock);
}

void edo__res_remove(edo__res *r)
{
    struct shard *sh = shard_of(r);
    edo__spin_lock(&sh->lock);
    edo__list_remove(&sh->all, &r->link);
    edo__spin_unlock(&sh->lock);
}

uint64_t edo__holder_self(void)
{
    edo_task *t = edo__task_current();
    return t ? t->id : EDO_HOLDER_THREAD;
}

void edo__res_waiters(const edo__waitq *q, edo_resource_info *info)
{
    uint32_t n = 0;
    for (edo__waiter *w = edo__waitq_first(q); w; w = edo__waitq_next(w), n++)
        if (n < EDO_RESOURCE_WAITERS)
            info->waiter_ids[n] = w->task ? w->task->id : 0;
    info->waiters = n;
}

static void describe(edo__res *r, edo_resource_info *info)
{
    memset(info, 0, sizeof *info);
    info->kind = r->kind;
    switch (r->kind) {
    case EDO_RES_CHAN:
        edo__chan_describe(r, info);
        break;
    case EDO_RES_BCAST:
        edo__bcast_describe(r, info);
        break;
    case EDO_RES_WATCH:
        edo__watch_describe(r, info);
        break;
    case EDO_RES_MUTEX:
        edo__mutex_describe(r, info);
        break;
    case EDO_RES_RWLOCK:
        edo__rwlock_describe(r, info);
        break;
    case EDO_RES_SEM:
        edo__sem_describe(r, info);
        break;
    case EDO_RES_NOTIFY:
        edo__notify_describe(r, info);
        break;
    case EDO_RES_BARRIER:
        edo__barrier_describe(r, info);
        break;
    case EDO_RES_TOKEN:
        edo__token_describe(r, info);
        break;
    case EDO_RES_TIMERS:
        break;
    }
}

const char *edo_resource_kind_name(edo_resource_kind k)
{
    static const char *const names[] = { "chan", "bcast",  "watch",   "mutex", "rwlock",
                                         "sem",  "notify", "barrier", "token", "timers" };
    return (unsigned)k < sizeof names / sizeof *names ? names[k] : "unknown";
}

size_t edo_resource_list(edo_runtime *rt, int (*fn)(const edo_resource_info *, void *), void *arg)
{
    if (!fn)
        return 0;
    size_t n = 0;
    edo_resource_info info;
    for (int i = 0; i < SHARDS; i++) {
        struct shard *sh = &shards[i];
        int stop = 0;
        edo__spin_lock(&sh->lock);
        edo__list_each (l, &sh->all) {
            describe(edo__container_of(l, edo__res, link), &info);
            n++;
            if ((stop = fn(&info, arg)))
                break;
        }
        edo__spin_unlock(&sh->lock);
        if (stop)
            return n;
    }
    for (int i = 0; rt && i < rt->nworkers; i++) {
        edo__worker *w = &rt->workers[i];
        memset(&info, 0, sizeof info);
        info.kind = EDO_RES_TIMERS;
        info.addr = (const void *)(uintptr_t)i;
        edo__spin_lock(&w->wheel_lock);
        info.len = w->wheel.count;
        edo__spin_unlock(&w->wheel_lock);
        n++;
        if (fn(&info, arg))
            break;
    }
    return n;
}
