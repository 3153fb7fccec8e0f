/*
 * Task trackers. Each task of a tracker runs a small body around the user's function
 * (member_main) with a member record on one of the tracker's lists: the body takes its
 * member off when the function returns and frees it, so a tracker holds only the tasks
 * still running, and needs no handle of them.
 *
 * A member is on one of two lists: running, or aborted (running, already sent an abort,
 * so that a second abort_all does not walk it again). As in join sets, the body fills in
 * its task itself when it starts, so a member spawned a moment ago may not have one yet;
 * an abort then leaves a flag that the body acts on when it starts.
 *
 * Waiting. Every wait is for the same condition, closed and empty, so the waiters of
 * edo_tracker_wait and the uncut waits of shutdown and free share one queue, and whoever
 * makes the condition true (the last body to return, or a close of an empty tracker)
 * completes them all, under the lock. A body that has done so touches neither the tracker
 * nor its member afterwards: from then on a waiter may free the tracker.
 */
#include "sync/sync.h"

#include <errno.h>
#include <stdlib.h>

typedef struct member member;
struct member {
    edo__onode node; /* on running or aborted */
    edo_tracker *tr;
    edo_task_fn fn;
    void *arg;
    edo_task *task;     /* set by the body when it starts; NULL before */
    bool abort_pending; /* aborted before its body started */
};

struct edo_tracker {
    edo__spin lock;
    _Atomic size_t len;  /* members on either list; changed under lock */
    _Atomic bool closed; /* changed under lock */
    edo__list running, aborted;
    edo__waitq waiters; /* for closed and empty */
};

/* Members aborted per round of abort_all: their tasks are aborted after the lock is
 * released, a batch at a time, so a large tracker never holds the lock for long. */
#define ABORT_BATCH 32

int edo_tracker_new(edo_tracker **out)
{
    if (!out)
        return -EINVAL;
    *out = calloc(1, sizeof **out);
    return *out ? 0 : -ENOMEM;
}

size_t edo_tracker_len(edo_tracker *tr)
{
    return tr ? atomic_load_explicit(&tr->len, memory_order_acquire) : 0;
}

bool edo_tracker_closed(edo_tracker *tr)
{
    return tr && atomic_load_explicit(&tr->closed, memory_order_acquire);
}

/* Under the lock: whether the waiters' condition holds. */
static bool done_locked(edo_tracker *tr)
{
    return atomic_load_explicit(&tr->closed, memory_order_relaxed) &&
           atomic_load_explicit(&tr->len, memory_order_relaxed) == 0;
}

/* Under the lock: a member has left. */
static void take_one(edo_tracker *tr, member *m, edo__wakeups *wk)
{
    edo__onode_remove(&m->node);
    atomic_store_explicit(&tr->len, atomic_load_explicit(&tr->len, memory_order_relaxed) - 1,
                          memory_order_release);
    if (done_locked(tr))
        edo__complete_all(wk, &tr->waiters);
}

static void *member_main(void *arg)
{
    member *m = arg;
    edo_tracker *tr = m->tr;
    edo__spin_lock(&tr->lock);
    m->task = edo_self();
    bool abort = m->abort_pending;
    edo__spin_unlock(&tr->lock);
    if (abort)
        edo_abort(m->task);

    void *result = m->fn(m->arg);

    edo__wakeups wk = { NULL };
    edo__spin_lock(&tr->lock);
    take_one(tr, m, &wk);
    edo__spin_unlock(&tr->lock);
    free(m);
    /* From here on the tracker may be gone (freed by a waiter this wakes). */
    edo__wakeups_run(&wk);
    return result;
}

int edo_tracker_spawn_at(edo_task **task, edo_tracker *tr, const edo_spawn_opts *opts,
                         edo_task_fn fn, void *arg, const char *site)
{
    if (task)
        *task = NULL;
    if (!tr || !fn)
        return -EINVAL;
    member *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    m->tr = tr;
    m->fn = fn;
    m->arg = arg;
    /* In the tracker before the task exists, so that a wait racing this spawn waits for it,
     * and a close racing it either comes first (refused) or finds it counted. */
    edo__spin_lock(&tr->lock);
    if (atomic_load_explicit(&tr->closed, memory_order_relaxed)) {
        edo__spin_unlock(&tr->lock);
        free(m);
        return -EDO_ECLOSED;
    }
    edo__onode_push(&tr->running, &m->node);
    atomic_store_explicit(&tr->len, atomic_load_explicit(&tr->len, memory_order_relaxed) + 1,
                          memory_order_release);
    edo__spin_unlock(&tr->lock);
    int rc = edo_spawn_at(task, opts, member_main, m, site);
    if (rc < 0) {
        edo__wakeups wk = { NULL };
        edo__spin_lock(&tr->lock);
        take_one(tr, m, &wk);
        edo__spin_unlock(&tr->lock);
        edo__wakeups_run(&wk);
        free(m);
    }
    return rc;
}

void edo_tracker_close(edo_tracker *tr)
{
    if (!tr)
        return;
    edo__wakeups wk = { NULL };
    edo__spin_lock(&tr->lock);
    atomic_store_explicit(&tr->closed, true, memory_order_release);
    if (done_locked(tr))
        edo__complete_all(&wk, &tr->waiters);
    edo__spin_unlock(&tr->lock);
    edo__wakeups_run(&wk);
}

static void withdraw(void *obj, edo__waiter *w, edo__wakeups *wk)
{
    edo__waitq_remove(&((edo_tracker *)obj)->waiters, w);
}

int edo_tracker_wait(edo_tracker *tr)
{
    if (!tr)
        return -EINVAL;
    edo__spin_lock(&tr->lock);
    if (done_locked(tr)) {
        edo__spin_unlock(&tr->lock);
        return 0;
    }
    edo__waiter w;
    edo__waiter_init(&w);
    edo__waitq_push(&tr->waiters, &w);
    edo__spin_unlock(&tr->lock);
    return edo__wait(&w, &tr->lock, EDO_WAIT_JOIN, EDO__OP_TRACKER, withdraw, tr);
}

/* Waits until tr is closed and empty, not cut short by the caller's deadline or abort:
 * the tasks may still use what the caller lent them. */
static void wait_uncut(edo_tracker *tr)
{
    edo__spin_lock(&tr->lock);
    if (done_locked(tr)) {
        edo__spin_unlock(&tr->lock);
        return;
    }
    edo__waiter w;
    edo__waiter_init(&w);
    edo__waitq_push(&tr->waiters, &w);
    edo__spin_unlock(&tr->lock);
    edo__waiter_finish(&w);
}

/* Aborts the members on the running list and moves them to the aborted one; returns how
 * many it moved. */
static int abort_running(edo_tracker *tr)
{
    int total = 0;
    for (;;) {
        edo_task *batch[ABORT_BATCH];
        int n = 0;
        edo__spin_lock(&tr->lock);
        member *m;
        while (n < ABORT_BATCH && (m = edo__list_first_entry(&tr->running, member, node.link))) {
            edo__onode_remove(&m->node);
            edo__onode_push(&tr->aborted, &m->node);
            total++;
            if (m->task) {
                /* Alive while its member is on a list; the reference keeps it for the
                 * abort after unlocking. */
                edo__task_ref(m->task);
                batch[n++] = m->task;
            } else {
                m->abort_pending = true;
            }
        }
        bool more = !edo__list_empty(&tr->running);
        edo__spin_unlock(&tr->lock);
        for (int i = 0; i < n; i++) {
            edo_abort(batch[i]);
            edo__task_unref(batch[i]);
        }
        if (!more)
            return total;
    }
}

void edo_tracker_abort_all(edo_tracker *tr)
{
    if (tr)
        abort_running(tr);
}

int edo_tracker_shutdown(edo_tracker *tr, int64_t grace_ms)
{
    if (!tr)
        return -EINVAL;
    edo_tracker_close(tr);
    int rc = grace_ms < 0 ? -ETIMEDOUT : 0;
    if (rc == 0) {
        int64_t scope = edo_timeout_begin(grace_ms);
        rc = edo_tracker_wait(tr);
        edo_deadline_end(scope);
    }
    /* Those still on the running list when the grace period ends; tasks that an earlier
     * abort_all reached are not counted again. */
    int aborted = rc < 0 ? abort_running(tr) : 0;
    wait_uncut(tr);
    return aborted;
}

void edo_tracker_free(edo_tracker *tr)
{
    if (!tr)
        return;
    edo_tracker_close(tr);
    edo_tracker_abort_all(tr);
    /* The last body let go of the lock before it completed this wait. */
    wait_uncut(tr);
    free(tr);
}
