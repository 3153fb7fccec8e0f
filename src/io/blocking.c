/*
 * The blocking pool: threads for work that would block a worker.
 *
 * A call is a task without a stack (edo_task.blocking), so that edo_join, edo_detach and
 * edo_abort work on it unchanged: a pool thread runs fn and then ends the task the way a
 * worker ends a coroutine (DONE, joiners woken). Threads start when a call finds none
 * idle, up to the runtime's limit, and end after keep_alive ms without work.
 *
 * The pool is a separate allocation with a reference per thread and one for the runtime:
 * a thread still inside a call that shutdown gave up on finishes on its own after the
 * runtime is gone, touching only the pool and its own task.
 */
#include "core/runtime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct edo__pool {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    edo_task *head, *tail; /* calls not yet started */
    edo_task *running;     /* started, linked by all_next/all_prev */
    int nrunning;
    int nthreads, nidle, nnotified;
    int max_threads;
    int64_t keep_alive_ms;
    bool closed;
    int refs; /* the runtime's and one per thread; under lock */
};

static void pool_unref_locked(edo__pool *p)
{
    bool last = --p->refs == 0;
    pthread_mutex_unlock(&p->lock);
    if (last) {
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->cond);
        free(p);
    }
}

/* Ends the call t with its result (or cancelled), under the pool's lock: shutdown, which
 * takes the lock too, either sees it ended or abandons it, never both. */
static void end_call(edo_task *t, bool cancelled)
{
    t->cancelled = cancelled;
    edo__task_publish_end(t);
}

static void *pool_thread(void *arg)
{
    edo__pool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->closed) {
            p->nidle++;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += (time_t)(p->keep_alive_ms / 1000);
            ts.tv_nsec += (long)(p->keep_alive_ms % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            int rc = pthread_cond_timedwait(&p->cond, &p->lock, &ts);
            if (p->nnotified) {
                p->nnotified--; /* the notifier took one off nidle: count it as ours */
                continue;
            }
            p->nidle--;
            if (rc == ETIMEDOUT && !p->head)
                goto out;
        }
        if (!p->head)
            break; /* closed */
        edo_task *t = p->head;
        p->head = t->qnext;
        if (!p->head)
            p->tail = NULL;
        t->qnext = NULL;
        if (atomic_load(&t->aborted)) {
            end_call(t, true); /* aborted before it started: it never starts */
            pthread_mutex_unlock(&p->lock);
            edo__task_unref(t);
            pthread_mutex_lock(&p->lock);
            continue;
        }
        t->all_prev = NULL;
        t->all_next = p->running;
        if (p->running)
            p->running->all_prev = t;
        p->running = t;
        p->nrunning++;
        atomic_store_explicit(&t->state, EDO__RUNNING, memory_order_relaxed);
        pthread_mutex_unlock(&p->lock);

        void *result = t->fn(t->arg);

        pthread_mutex_lock(&p->lock);
        if (t->all_prev)
            t->all_prev->all_next = t->all_next;
        else
            p->running = t->all_next;
        if (t->all_next)
            t->all_next->all_prev = t->all_prev;
        p->nrunning--;
        if (!t->abandoned) {
            t->result = result;
            end_call(t, false);
        }
        pthread_mutex_unlock(&p->lock);
        edo__task_unref(t);
        pthread_mutex_lock(&p->lock);
    }
out:
    p->nthreads--;
    pool_unref_locked(p);
    return NULL;
}

static edo__pool *pool_get(edo_runtime *rt, int *err)
{
    pthread_mutex_lock(&rt->pool_lock);
    edo__pool *p = rt->pool;
    if (!p && !atomic_load(&rt->closing)) {
        p = calloc(1, sizeof *p);
        if (p) {
            pthread_mutex_init(&p->lock, NULL);
            pthread_cond_init(&p->cond, NULL);
            p->max_threads = rt->blocking_threads;
            p->keep_alive_ms = rt->blocking_keep_alive_ms;
            p->refs = 1;
            rt->pool = p;
        }
    }
    pthread_mutex_unlock(&rt->pool_lock);
    if (!p)
        *err = atomic_load(&rt->closing) ? -ESHUTDOWN : -ENOMEM;
    return p;
}

int edo_spawn_blocking_at(edo_task **out, edo_task_fn fn, void *arg, const char *site)
{
    edo__worker *w = edo__worker_current();
    if (!w || !w->current)
        return -EPERM;
    if (!fn)
        return -EINVAL;
    edo_runtime *rt = w->rt;
    int err = 0;
    edo__pool *p = pool_get(rt, &err);
    if (!p)
        return err;
    edo_task *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    static _Atomic uint64_t next_id = 1;
    t->blocking = true;
    t->rt = rt;
    t->fn = fn;
    t->arg = arg;
    t->site = site;
    t->deadline = EDO_NEVER;
    t->id = UINT64_C(1) << 63 | atomic_fetch_add(&next_id, 1); /* apart from tasks' ids */
    t->spawned_cycles = edo__cycles();
    snprintf(t->name, sizeof t->name, "blocking");
    /* The pool's reference, and the handle's. */
    atomic_init(&t->refs, out ? 2 : 1);
    atomic_init(&t->state, EDO__QUEUED);

    pthread_mutex_lock(&p->lock);
    if (p->closed) {
        pthread_mutex_unlock(&p->lock);
        free(t);
        return -ESHUTDOWN;
    }
    if (p->tail)
        p->tail->qnext = t;
    else
        p->head = t;
    p->tail = t;
    int rc = 0;
    if (p->nidle > 0) {
        p->nidle--; /* the thread that wakes takes the notification instead of this */
        p->nnotified++;
        pthread_cond_signal(&p->cond);
    } else if (p->nthreads < p->max_threads) {
        pthread_t th;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        rc = -pthread_create(&th, &a, pool_thread, p);
        pthread_attr_destroy(&a);
        if (rc == 0) {
            p->nthreads++;
            p->refs++;
        } else if (p->nthreads > 0) {
            rc = 0; /* it waits for one of the threads there are */
        } else {
            /* No thread at all: take the call back out (it is the only one queued). */
            p->head = p->tail = NULL;
        }
    }
    pthread_mutex_unlock(&p->lock);
    if (rc < 0) {
        free(t);
        return rc == -ENOMEM ? -ENOMEM : -EAGAIN;
    }
    if (out)
        *out = t;
    return 0;
}

void edo__pool_close(edo_runtime *rt)
{
    pthread_mutex_lock(&rt->pool_lock);
    edo__pool *p = rt->pool;
    pthread_mutex_unlock(&rt->pool_lock);
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->closed = true;
    edo_task *t = p->head;
    p->head = p->tail = NULL;
    while (t) {
        edo_task *next = t->qnext;
        t->qnext = NULL;
        end_call(t, true); /* never started */
        edo__task_unref(t);
        t = next;
    }
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

int edo__pool_running(edo_runtime *rt)
{
    edo__pool *p = rt->pool; /* set once, before closing; read after edo__pool_close */
    if (!p)
        return 0;
    pthread_mutex_lock(&p->lock);
    int n = p->nrunning;
    pthread_mutex_unlock(&p->lock);
    return n;
}

void edo__pool_free(edo_runtime *rt)
{
    edo__pool *p = rt->pool;
    if (!p)
        return;
    rt->pool = NULL;
    pthread_mutex_lock(&p->lock);
    if (p->nrunning)
        fprintf(stderr,
                "edo: %d blocking call(s) still running at shutdown; they are abandoned "
                "(joins report -ECANCELED) and their threads end when they return\n",
                p->nrunning);
    for (edo_task *t = p->running; t; t = t->all_next) {
        t->abandoned = true;
        end_call(t, true);
    }
    pool_unref_locked(p);
}
