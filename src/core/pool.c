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
 *
 * The runtime's own calls (file operations the driver does not make) take a lighter way in,
 * edo__pool_run: the call is a small record on the waiting task's stack, queued beside
 * the tasks, and the task waits for it without a handle to join. The record holds a
 * reference to the task, so the stack it lives on stays mapped until the pool thread is
 * done with it, even if shutdown abandons the task meanwhile.
 */
#include "core/runtime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A call of edo__pool_run, on the waiting task's stack. */
enum { CALL_QUEUED, CALL_RUNNING, CALL_DONE };
typedef struct pool_call pool_call;
struct pool_call {
    edo__link link; /* in the pool's queue of calls not yet started */
    void (*fn)(void *arg);
    void *arg;
    edo_task *task;    /* referenced until the call is DONE */
    int rc;            /* 0: fn ran; -ECANCELED: shutdown dropped it unstarted */
    _Atomic int state; /* CALL_*: QUEUED -> RUNNING under the pool's lock */
};

struct edo__pool {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    edo__fifo tasks;   /* calls not yet started (t->pool_link) */
    edo__list calls;   /* edo__pool_run calls not yet started (pool_call.link) */
    bool calls_turn;   /* the next thread free takes a pool_call first (fairness) */
    edo__list running; /* calls started (t->running_link) */
    int nrunning;
    int nthreads, nidle, nnotified;
    int nspinning, nspin_claimed; /* like nidle and nnotified, for spin_for_call */
    _Atomic int queued;           /* calls of both kinds not yet started; read unlocked */
    int max_threads;
    int64_t keep_alive_ms;
    sigset_t base_sigmask; /* the runtime's: the pool may outlive it */
    edo_runtime *rt;       /* until edo__pool_free (under lock): told when the pool idles */
    bool closed;
    int refs; /* the runtime's and one per thread; under lock */
};

/* Calls of either kind wait for a thread. Under the pool's lock. */
static bool calls_waiting(const edo__pool *p)
{
    return !edo__fifo_empty(&p->tasks) || !edo__list_empty(&p->calls);
}

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

/* Marks a pool_call done and wakes its task. The record may be gone as soon as `state`
 * says DONE (the task returns), so the task is read before and woken through the
 * reference the record held. */
static void call_end(pool_call *c, int rc)
{
    edo_task *t = c->task;
    c->rc = rc;
    atomic_store(&c->state, CALL_DONE); /* sequentially consistent: see edo__wake */
    edo__wake(t);
    edo__task_unref(t);
}

/* Runs one pool_call taken off the queue (with the lock held; returns with it held). */
static void run_call(edo__pool *p, pool_call *c)
{
    atomic_store_explicit(&c->state, CALL_RUNNING, memory_order_relaxed);
    p->nrunning++;
    pthread_mutex_unlock(&p->lock);
    c->fn(c->arg);
    pthread_mutex_lock(&p->lock);
    p->nrunning--;
    /* The waiting task stays parked until this, whatever happened to it meanwhile: its
     * buffers were in use until fn returned. */
    call_end(c, 0);
}

static void queued_add(edo__pool *p, int n)
{
    atomic_store_explicit(&p->queued, atomic_load_explicit(&p->queued, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* A thread that has just finished a call watches the queue a little before it sleeps: a
 * task that makes calls one after the other (reads a file in pieces) makes the next one
 * a few microseconds after the last one returned, sooner than a sleeping thread would
 * wake. One thread at a time watches, and only right after work, so an idle pool costs
 * nothing. With the lock held at entry and exit. */
#ifndef EDO_POOL_SPIN_NS
#define EDO_POOL_SPIN_NS 30000
#endif

static void spin_for_call(edo__pool *p)
{
    if (EDO_POOL_SPIN_NS <= 0 || p->nspinning || p->nspin_claimed)
        return;
    p->nspinning++;
    pthread_mutex_unlock(&p->lock);
    int64_t until = edo__now_ns() + EDO_POOL_SPIN_NS;
    for (unsigned i = 1; !atomic_load_explicit(&p->queued, memory_order_relaxed); i++) {
#if defined(__x86_64__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        __asm__ volatile("yield");
#endif
        if (i % 64 == 0 && edo__now_ns() >= until)
            break;
    }
    pthread_mutex_lock(&p->lock);
    if (p->nspin_claimed)
        p->nspin_claimed--; /* a kick counted on this thread: it takes the call */
    else
        p->nspinning--;
}

static void *pool_thread(void *arg)
{
    edo__pool *p = arg;
    edo__thread_set_base_mask(&p->base_sigmask);
    bool hot = false; /* just finished a call */
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!calls_waiting(p) && !p->closed) {
            if (hot) {
                hot = false;
                spin_for_call(p);
                continue;
            }
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
            if (rc == ETIMEDOUT && !calls_waiting(p))
                goto out;
        }
        if (!edo__list_empty(&p->calls) && (p->calls_turn || edo__fifo_empty(&p->tasks))) {
            pool_call *c = edo__container_of(edo__list_pop_front(&p->calls), pool_call, link);
            queued_add(p, -1);
            p->calls_turn = false;
            run_call(p, c);
            hot = true;
            continue;
        }
        p->calls_turn = true;
        edo__slink *l = edo__fifo_pop(&p->tasks);
        if (!l)
            break; /* closed */
        edo_task *t = edo__container_of(l, edo_task, pool_link);
        queued_add(p, -1);
        if (atomic_load(&t->aborted)) {
            end_call(t, true); /* aborted before it started: it never starts */
            pthread_mutex_unlock(&p->lock);
            edo__task_unref(t);
            pthread_mutex_lock(&p->lock);
            continue;
        }
        edo__list_push_front(&p->running, &t->running_link);
        p->nrunning++;
        atomic_store_explicit(&t->state, EDO__RUNNING, memory_order_relaxed);
        pthread_mutex_unlock(&p->lock);

        void *result = t->fn(t->arg);

        pthread_mutex_lock(&p->lock);
        edo__list_remove(&p->running, &t->running_link);
        p->nrunning--;
        if (!t->abandoned) {
            t->result = result;
            end_call(t, false);
        }
        /* A paused clock's auto-advance waited for this call, which may wake nobody (a
         * detached call, or one that no task has joined yet). The runtime is alive while
         * p->rt is set, and edo__pool_free clears it under this lock. */
        if (p->rt && !p->nrunning && !calls_waiting(p))
            edo__clock_kick(p->rt);
        pthread_mutex_unlock(&p->lock);
        edo__task_unref(t);
        pthread_mutex_lock(&p->lock);
        hot = true;
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
            p->base_sigmask = rt->base_sigmask;
            p->rt = rt;
            p->refs = 1;
            rt->pool = p;
        }
    }
    pthread_mutex_unlock(&rt->pool_lock);
    if (!p)
        *err = atomic_load(&rt->closing) ? -ESHUTDOWN : -ENOMEM;
    return p;
}

/* Someone queued a call: wakes an idle thread, or starts one if the limit allows. Returns
 * -EAGAIN or -ENOMEM only when the pool has no thread at all to run it (with threads
 * there, it waits for one of them). Under the pool's lock. */
static int pool_kick_locked(edo__pool *p)
{
    queued_add(p, 1);
    if (p->nspinning > 0) {
        p->nspinning--; /* the spinning thread takes it (see spin_for_call) */
        p->nspin_claimed++;
        return 0;
    }
    if (p->nidle > 0) {
        p->nidle--; /* the thread that wakes takes the notification instead of this */
        p->nnotified++;
        pthread_cond_signal(&p->cond);
        return 0;
    }
    if (p->nthreads >= p->max_threads)
        return 0;
    pthread_t th;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    int rc = edo__thread_create(&th, &a, &p->base_sigmask, pool_thread, p);
    pthread_attr_destroy(&a);
    if (rc == 0) {
        p->nthreads++;
        p->refs++;
        return 0;
    }
    if (p->nthreads > 0)
        return 0;
    return rc == ENOMEM ? -ENOMEM : -EAGAIN;
}

int edo_spawn_blocking_at(edo_task **out, edo_task_fn fn, void *arg, const char *site)
{
    if (out)
        *out = NULL;
    edo__worker *w = edo__worker_current();
    if (!w || !w->current)
        return -EDO_ENOTASK;
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
    /* Ids apart from tasks' ids. */
    uint64_t id = UINT64_C(1) << 63 | atomic_fetch_add(&next_id, 1);
    edo__task_init(t, rt, fn, arg, site, id, out != NULL);
    t->blocking = true;
    snprintf(t->name, sizeof t->name, "blocking");

    pthread_mutex_lock(&p->lock);
    if (p->closed) {
        pthread_mutex_unlock(&p->lock);
        free(t);
        return -ESHUTDOWN;
    }
    edo__fifo_push(&p->tasks, &t->pool_link);
    int rc = pool_kick_locked(p);
    if (rc < 0) {
        p->tasks = (edo__fifo){ NULL, NULL }; /* no thread at all: it was the only one queued */
        queued_add(p, -1);
    }
    pthread_mutex_unlock(&p->lock);
    if (rc < 0) {
        free(t);
        return rc;
    }
    if (out)
        *out = t;
    return 0;
}

int edo__pool_run(void (*fn)(void *arg), void *arg, edo_wait_reason why, bool always)
{
    edo__worker *w = edo__worker_current();
    edo_task *self = w ? w->current : NULL;
    if (!self)
        return -EDO_ENOTASK;
    int err = always ? 0 : edo__may_start(self, EDO_NEVER);
    if (err < 0)
        return err;
    edo__pool *p = pool_get(w->rt, &err);
    if (!p)
        return err;
    pool_call c = { .fn = fn, .arg = arg, .task = self };
    atomic_init(&c.state, CALL_QUEUED);
    edo__task_ref(self); /* the record's: see call_end */

    pthread_mutex_lock(&p->lock);
    if (p->closed) {
        pthread_mutex_unlock(&p->lock);
        edo__task_unref(self);
        return -ESHUTDOWN;
    }
    edo__list_push_back(&p->calls, &c.link);
    int rc = pool_kick_locked(p);
    if (rc < 0) {
        edo__list_remove(&p->calls, &c.link); /* no thread at all: nothing else is queued */
        queued_add(p, -1);
    }
    pthread_mutex_unlock(&p->lock);
    if (rc < 0) {
        edo__task_unref(self);
        return rc;
    }

    bool interruptible = !always;
    edo__wait_note(self, NULL, 0, EDO__OP_BLOCKING);
    while (atomic_load(&c.state) != CALL_DONE) {
        if (interruptible) {
            rc = edo__park(why, EDO_NEVER);
            if (rc == 0)
                continue;
            /* Aborted or past the deadline: a call that has not started is taken back
             * and never runs; one that has is waited for to the end below. */
            interruptible = false;
            pthread_mutex_lock(&p->lock);
            if (atomic_load_explicit(&c.state, memory_order_relaxed) == CALL_QUEUED) {
                edo__list_remove(&p->calls, &c.link);
                queued_add(p, -1);
                pthread_mutex_unlock(&p->lock);
                edo__task_unref(self);
                return rc;
            }
            pthread_mutex_unlock(&p->lock);
            continue;
        }
        /* Not cut short by an abort or a deadline: the pool thread may be using the
         * caller's buffers. The task may resume on another worker: ask again each time. */
        atomic_store_explicit(&self->waiting_on, (uint8_t)why, memory_order_relaxed);
        edo__suspend(edo__worker_current(), self);
        atomic_store_explicit(&self->waiting_on, EDO_WAIT_NONE, memory_order_relaxed);
    }
    return c.rc;
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
    atomic_store_explicit(&p->queued, 0, memory_order_relaxed);
    edo__slink *l;
    while ((l = edo__fifo_pop(&p->tasks))) {
        edo_task *t = edo__container_of(l, edo_task, pool_link);
        end_call(t, true); /* never started */
        edo__task_unref(t);
    }
    edo__link *n;
    while ((n = edo__list_pop_front(&p->calls))) /* off the list first: c may go once DONE */
        call_end(edo__container_of(n, pool_call, link), -ECANCELED);
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

void edo__pool_stats(edo_runtime *rt, uint32_t *threads, uint32_t *busy, uint64_t *queued)
{
    *threads = *busy = 0;
    *queued = 0;
    pthread_mutex_lock(&rt->pool_lock); /* an observer's thread: the pool may be new */
    edo__pool *p = rt->pool;
    pthread_mutex_unlock(&rt->pool_lock);
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    *threads = (uint32_t)p->nthreads;
    *busy = (uint32_t)p->nrunning;
    *queued = (uint64_t)atomic_load(&p->queued);
    pthread_mutex_unlock(&p->lock);
}

bool edo__pool_idle(edo_runtime *rt)
{
    edo__pool *p = rt->pool;
    if (!p)
        return true;
    pthread_mutex_lock(&p->lock);
    bool idle = !p->nrunning && !calls_waiting(p);
    pthread_mutex_unlock(&p->lock);
    return idle;
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
    p->rt = NULL;
    if (p->nrunning)
        fprintf(stderr,
                "edo: %d blocking call(s) still running at shutdown; they are abandoned "
                "(joins report -EDO_EABORTED) and their threads end when they return\n",
                p->nrunning);
    edo__list_each (l, &p->running) {
        edo_task *t = edo__container_of(l, edo_task, running_link);
        t->abandoned = true;
        end_call(t, true);
    }
    pool_unref_locked(p);
}
