/*
 * Join sets. Each task of a set runs a small body around the user's function (member_main)
 * with a member record that belongs to the set: the body reports to the set when the
 * function returns, so the set needs no join of its own and can hand out results in the
 * order tasks finish. A finishing member goes straight to the first task waiting in
 * edo_joinset_next if there is one (under the set's lock, so a waiter that gave up can
 * never have taken it), else to the tail of the finished list.
 *
 * A member is on one of three lists: running, aborted (running, already sent an abort),
 * finished. The set keeps no handle of its tasks: a member's task is alive as long as the
 * member is on a running list (its body has not returned), which is all abort needs. The
 * body fills in its task itself when it starts, so a member spawned a moment ago may not
 * have one yet; an abort then leaves a flag that the body acts on when it starts.
 */
#include "sync/sync.h"

#include <errno.h>
#include <stdlib.h>

typedef struct member member;
struct member {
    edo__onode node; /* on one of the set's lists */
    edo_joinset *js;
    edo_task_fn fn;
    void *arg;
    edo_task *task; /* set by the body when it starts; NULL before */
    void *result;
    uint64_t id;
    bool abort_pending; /* aborted before its body started */
    bool cancelled;     /* the task was aborted before fn returned */
};

struct edo_joinset {
    edo__spin lock;
    _Atomic size_t len;                   /* members on any list; changed under lock */
    edo__list running, aborted, finished; /* member.node */
    edo__waitq waiters;                   /* tasks in edo_joinset_next */
    edo__waiter *free_waiter; /* edo_joinset_free, waiting for the last body to return */
};

/* Members aborted per round of abort_all: their tasks are woken after the lock is
 * released, a batch at a time, so a large set never holds the lock for long. */
#define ABORT_BATCH 32

int edo_joinset_new(edo_joinset **out)
{
    if (!out)
        return -EINVAL;
    *out = calloc(1, sizeof **out);
    return *out ? 0 : -ENOMEM;
}

size_t edo_joinset_len(edo_joinset *js)
{
    return js ? atomic_load_explicit(&js->len, memory_order_relaxed) : 0;
}

/* Under the lock, after a member left the set: with none left, the tasks still waiting in
 * edo_joinset_next have nothing to wait for. */
static void take_one(edo_joinset *js, edo__wakeups *wk)
{
    size_t len = atomic_load_explicit(&js->len, memory_order_relaxed) - 1;
    atomic_store_explicit(&js->len, len, memory_order_relaxed);
    if (len)
        return;
    edo__waiter *w;
    while ((w = edo__waitq_claim(&js->waiters)))
        edo__complete(wk, w, -EDO_EEMPTY);
}

static void *member_main(void *arg)
{
    member *m = arg;
    edo_joinset *js = m->js;
    edo_task *self = edo_self();
    edo__spin_lock(&js->lock);
    m->task = self;
    m->id = edo_task_id(self);
    bool abort = m->abort_pending;
    edo__spin_unlock(&js->lock);
    if (abort)
        edo_abort(self);

    void *result = m->fn(m->arg);

    edo__wakeups wk = { 0 };
    edo__spin_lock(&js->lock);
    m->result = result;
    m->cancelled = edo_aborted(); /* as edo_join: an abort after fn returned changes nothing */
    m->task = NULL;
    edo__onode_remove(&m->node);
    edo__waiter *w = edo__waitq_claim(&js->waiters);
    if (w) {
        w->buf = m;
        edo__complete(&wk, w, 0);
        take_one(js, &wk);
    } else {
        edo__onode_push(&js->finished, &m->node);
    }
    if (edo__list_empty(&js->running) && edo__list_empty(&js->aborted) && js->free_waiter) {
        edo__complete(&wk, js->free_waiter, 0);
        js->free_waiter = NULL;
    }
    edo__spin_unlock(&js->lock);
    /* From here on the set and m may be gone (taken, or freed by edo_joinset_free). */
    edo__wakeups_run(&wk);
    return result;
}

int edo_joinset_spawn_at(edo_joinset *js, edo_task_fn fn, void *arg, uint64_t *id, const char *site)
{
    if (id)
        *id = 0;
    if (!js || !fn)
        return -EINVAL;
    member *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    m->js = js;
    m->fn = fn;
    m->arg = arg;
    /* In the set before the task exists, so that a next racing this spawn waits for it. */
    edo__spin_lock(&js->lock);
    edo__onode_push(&js->running, &m->node);
    atomic_store_explicit(&js->len, atomic_load_explicit(&js->len, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    edo__spin_unlock(&js->lock);
    /* The member belongs to the task from here on; the handle is only for its id. */
    edo_task *t;
    int rc = edo_spawn_at(&t, NULL, member_main, m, site);
    if (rc < 0) {
        edo__wakeups wk = { 0 };
        edo__spin_lock(&js->lock);
        edo__onode_remove(&m->node);
        take_one(js, &wk);
        edo__spin_unlock(&js->lock);
        edo__wakeups_run(&wk);
        free(m);
        return rc;
    }
    if (id)
        *id = edo_task_id(t);
    edo_detach(t);
    return 0;
}

/* Takes m out of the set (the caller has removed it from its list) and reports it. */
static int deliver(member *m, void **result, uint64_t *id)
{
    if (result)
        *result = m->result;
    if (id)
        *id = m->id;
    int rc = m->cancelled ? -EDO_EABORTED : 0;
    free(m);
    return rc;
}

static void withdraw(void *obj, edo__waiter *w, edo__wakeups *wk)
{
    edo__waitq_remove(&((edo_joinset *)obj)->waiters, w);
}

int edo_joinset_next(edo_joinset *js, void **result, uint64_t *id)
{
    if (result)
        *result = NULL;
    if (id)
        *id = 0;
    if (!js)
        return -EINVAL;
    edo__wakeups wk = { 0 };
    edo__spin_lock(&js->lock);
    member *m = edo__list_first_entry(&js->finished, member, node.link);
    if (m) {
        edo__onode_remove(&m->node);
        take_one(js, &wk);
        edo__spin_unlock(&js->lock);
        edo__wakeups_run(&wk);
        edo__budget_spend(); /* a loop over finished tasks must still let others run */
        return deliver(m, result, id);
    }
    if (!atomic_load_explicit(&js->len, memory_order_relaxed)) {
        edo__spin_unlock(&js->lock);
        return -EDO_EEMPTY;
    }
    edo__waiter w;
    edo__waiter_init(&w);
    edo__waitq_push(&js->waiters, &w);
    edo__spin_unlock(&js->lock);
    int rc = edo__wait(&w, &js->lock, EDO_WAIT_JOIN, EDO__OP_JOINSET, withdraw, js);
    if (rc < 0)
        return rc; /* the wait's own error, or -EDO_EEMPTY: the set emptied meanwhile */
    return deliver(w.buf, result, id);
}

void edo_joinset_abort_all(edo_joinset *js)
{
    if (!js)
        return;
    for (;;) {
        edo_task *batch[ABORT_BATCH];
        int n = 0;
        edo__spin_lock(&js->lock);
        member *m;
        while (n < ABORT_BATCH && (m = edo__list_first_entry(&js->running, member, node.link))) {
            edo__onode_remove(&m->node);
            edo__onode_push(&js->aborted, &m->node);
            if (m->task) {
                /* Alive while its member is on a running list; the reference keeps it for
                 * the abort after unlocking. */
                edo__task_ref(m->task);
                batch[n++] = m->task;
            } else {
                m->abort_pending = true;
            }
        }
        bool more = !edo__list_empty(&js->running);
        edo__spin_unlock(&js->lock);
        for (int i = 0; i < n; i++) {
            edo_abort(batch[i]);
            edo__task_unref(batch[i]);
        }
        if (!more)
            return;
    }
}

void edo_joinset_free(edo_joinset *js)
{
    if (!js)
        return;
    edo_joinset_abort_all(js);
    edo__waiter w;
    edo__waiter_init(&w);
    edo__spin_lock(&js->lock);
    bool wait = !edo__list_empty(&js->running) || !edo__list_empty(&js->aborted);
    if (wait)
        js->free_waiter = &w;
    edo__spin_unlock(&js->lock);
    /* Not cut short by a deadline or an abort of the caller: the bodies still hold the
     * set. */
    if (wait)
        edo__waiter_finish(&w);
    member *m;
    while ((m = edo__list_first_entry(&js->finished, member, node.link))) {
        edo__onode_remove(&m->node);
        free(m);
    }
    free(js);
}
