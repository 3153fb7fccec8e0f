/*
 * Tasks: spawn, the park/wake protocol, join, abort, counters, and the stack-overflow
 * report. A task's struct lives at the top of its own stack mapping, so a task costs one
 * mapping (usually reused from the worker's pool) and no other allocation.
 */
#include "core/runtime.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef EDO_ASAN
#include <sanitizer/asan_interface.h>
#endif

static _Atomic uint64_t next_task_id = 1;

#define TASK_SLOT ((sizeof(edo_task) + 63) & ~(size_t)63)

/* ---- memory ---------------------------------------------------------------------------- */

static edo_task *task_alloc(edo__worker *w, size_t usable, int *err)
{
    edo__stack st;
    bool pooled;
    int rc = edo__stack_get(w ? &w->stacks : NULL, usable + TASK_SLOT, &st, &pooled);
    if (rc < 0) {
        *err = rc;
        return NULL;
    }
    edo_task *t = (edo_task *)(st.map + st.map_len - TASK_SLOT);
#ifdef EDO_ASAN
    /* A reused stack may carry poisoned shadow from frames that never returned. */
    if (pooled)
        ASAN_UNPOISON_MEMORY_REGION(st.map + edo__page_size(), st.map_len - edo__page_size());
#endif
    memset(t, 0, sizeof *t);
    t->stack = st;
    return t;
}

static void task_free(edo_task *t)
{
    if (t->blocking) {
        free(t);
        return;
    }
    edo__stack st = t->stack;
    edo__worker *w = edo__worker_current();
    /* To this worker's cache if it is one of the task's runtime (only then is rt alive
     * for sure), else to the shared one. */
    if (w && w->rt == t->rt)
        edo__stack_put(&w->stacks, w->rt->stack_cache, &st);
    else
        edo__stack_put(NULL, 0, &st);
}

void edo__task_ref(edo_task *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
}

void edo__task_unref(edo_task *t)
{
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
        task_free(t);
}

void edo__task_init(edo_task *t, edo_runtime *rt, edo_task_fn fn, void *arg, const char *site,
                    uint64_t id, bool joinable)
{
    t->rt = rt;
    t->fn = fn;
    t->arg = arg;
    t->site = site;
    t->deadline = EDO_NEVER;
    t->id = id;
    t->spawned_cycles = edo__cycles();
    atomic_init(&t->ready_cycles, t->spawned_cycles);
    atomic_init(&t->worker, -1);
    edo_task *parent = edo__task_current();
    t->parent = parent ? parent->id : 0;
    atomic_init(&t->refs, joinable ? 2 : 1);
    atomic_init(&t->state, EDO__QUEUED);
}

/* ---- the task list ---------------------------------------------------------------------- */

void edo__task_list_add(edo_runtime *rt, edo_task *t)
{
    edo__shard *sh = &rt->shards[t->shard];
    edo__spin_lock(&sh->lock);
    t->listed = true;
    edo__list_push_front(&sh->all, &t->all_link);
    sh->live++;
    sh->added++;
    edo__spin_unlock(&sh->lock);
}

void edo__task_list_remove(edo_task *t)
{
    edo__shard *sh = &t->rt->shards[t->shard];
    edo__spin_lock(&sh->lock);
    if (t->listed) {
        t->listed = false;
        edo__list_remove(&sh->all, &t->all_link);
        sh->live--;
    }
    edo__spin_unlock(&sh->lock);
}

uint64_t edo__live(edo_runtime *rt)
{
    uint64_t n = 0;
    for (int i = 0; i < rt->nworkers; i++) {
        edo__shard *sh = &rt->shards[i];
        edo__spin_lock(&sh->lock);
        n += sh->live;
        edo__spin_unlock(&sh->lock);
    }
    return n;
}

void edo__task_counts(edo_runtime *rt, uint64_t *spawned, uint64_t *live)
{
    *spawned = *live = 0;
    for (int i = 0; i < rt->nworkers; i++) {
        edo__shard *sh = &rt->shards[i];
        edo__spin_lock(&sh->lock);
        *live += sh->live;
        *spawned += sh->added;
        edo__spin_unlock(&sh->lock);
    }
}

edo_task *edo__task_find(edo_runtime *rt, uint64_t id)
{
    for (int i = 0; i < rt->nworkers; i++) {
        edo__shard *sh = &rt->shards[i];
        edo__spin_lock(&sh->lock);
        edo__list_each (l, &sh->all) {
            edo_task *t = edo__container_of(l, edo_task, all_link);
            if (t->id == id) {
                edo__task_ref(t);
                edo__spin_unlock(&sh->lock);
                return t;
            }
        }
        edo__spin_unlock(&sh->lock);
    }
    return NULL;
}

void edo__task_each(edo_runtime *rt, void (*fn)(edo_task *t, void *arg), void *arg)
{
    /* A listed task is alive (it leaves the list before its memory can go): take a
     * reference to each under the lock, then call fn without holding it. */
    for (int i = 0; i < rt->nworkers; i++) {
        edo__shard *sh = &rt->shards[i];
        for (;;) {
            edo__spin_lock(&sh->lock);
            uint64_t n = sh->live;
            edo__spin_unlock(&sh->lock);
            edo_task **ts = n ? malloc(n * sizeof *ts) : NULL;
            if (n && !ts)
                return;
            edo__spin_lock(&sh->lock);
            if (sh->live > n) { /* grew meanwhile: size the array again */
                edo__spin_unlock(&sh->lock);
                free(ts);
                continue;
            }
            n = 0;
            edo__list_each (l, &sh->all) {
                edo_task *t = edo__container_of(l, edo_task, all_link);
                edo__task_ref(t);
                ts[n++] = t;
            }
            edo__spin_unlock(&sh->lock);
            for (uint64_t k = 0; k < n; k++) {
                fn(ts[k], arg);
                edo__task_unref(ts[k]);
            }
            free(ts);
            break;
        }
    }
}

/* ---- lifecycle ------------------------------------------------------------------------- */

/* Marks t DONE and wakes whoever joins it: a task, or a thread outside the runtime. */
void edo__task_publish_end(edo_task *t)
{
    edo_runtime *rt = t->rt;
    bool root = t->wakes_block_on;
    if (t->listed)
        edo__task_list_remove(t);
    atomic_store(&t->state, EDO__DONE);
    if (atomic_load(&t->foreign_joiner))
        edo__futex_wake(&t->state, INT_MAX);
    edo__slot_fire(&t->joiner);
    if (root) {
        /* The thread in edo_block_on waits on bo_word (the runtime outlives its call). */
        atomic_fetch_add(&rt->bo_word, 1);
        edo__futex_wake(&rt->bo_word, INT_MAX);
    }
}

/* Never returns, nor does the switch it ends with: uninstrumented (EDO__NO_TSAN), so that
 * the fiber the next task on this stack reuses has an empty shadow stack. */
EDO__NO_TSAN static void task_entry(void *arg)
{
    edo_task *t = arg;
    edo__task_run(t);
    edo__switch_exit(edo__worker_current(), t);
}

void edo__task_run(edo_task *t)
{
    edo__task_started(t);
    t->result = t->fn(t->arg);
    t->cancelled = atomic_load(&t->aborted); /* an abort after this point changes nothing */
    /* Publish the end while still on this stack, so that a waiting joiner lands in the
     * LIFO slot and the switch after this goes straight to it. The runtime's reference
     * keeps the stack mapped until edo__task_finish runs on the other side of that switch. */
    edo__task_publish_end(t);
}

static int task_create(edo_runtime *rt, edo__worker *w, edo_task **out, bool joinable,
                       const edo_spawn_opts *opts, edo_task_fn fn, void *arg, const char *site)
{
    if (!fn)
        return -EINVAL;
    if (atomic_load_explicit(&rt->closing, memory_order_relaxed))
        return -ESHUTDOWN;
    size_t usable = opts && opts->stack_size ? opts->stack_size : rt->stack_size;
    if (usable < 8192)
        usable = 8192;
    size_t page = edo__page_size();
    usable = (usable + page - 1) & ~(page - 1);
    int err = 0;
    uint64_t id = atomic_fetch_add_explicit(&next_task_id, 1, memory_order_relaxed);
    edo_task *t = task_alloc(w, usable, &err);
    if (!t)
        return err == -ENOMEM ? -EAGAIN : err;
    edo__task_init(t, rt, fn, arg, site, id, joinable);
    t->stack_size = usable;
    t->shard = (uint16_t)(w ? w->index : 0);
    if (opts && opts->name)
        snprintf(t->name, sizeof t->name, "%s", opts->name);
    char *lo = t->stack.map + page;
    edo__ctx_make(&t->ctx, lo, (size_t)((char *)t - lo), task_entry, t);
    *out = t;
    return 0;
}

const edo_spawn_opts edo__root_opts = { .name = "main" };

int edo_runtime_spawn_at(edo_task **out, edo_runtime *rt, const edo_spawn_opts *opts,
                         edo_task_fn fn, void *arg, const char *site)
{
    if (out)
        *out = NULL;
    if (!rt)
        return -EINVAL;
    edo__worker *w = edo__worker_current();
    if (w && w->rt != rt)
        w = NULL; /* a worker of another runtime: this is a foreign spawn */
    edo_task *t;
    int rc = task_create(rt, w, &t, out != NULL, opts, fn, arg, site);
    if (rc < 0)
        return rc;
    if (out)
        *out = t;
    t->wakes_block_on = opts == &edo__root_opts;
    if (w) {
        edo__task_list_add(rt, t);
        /* At the tail, not in the LIFO slot: the spawner goes on first. */
        edo__schedule_tail(w, t);
    } else {
        /* Listed by the worker that takes it from the inject queue, on its own part of
         * the list (the one it will most likely remove it from). */
        edo__schedule(t);
    }
    return 0;
}

int edo_spawn_at(edo_task **out, const edo_spawn_opts *opts, edo_task_fn fn, void *arg,
                 const char *site)
{
    if (out)
        *out = NULL;
    edo__worker *w = edo__worker_current();
    if (!w || !w->current)
        return -EDO_ENOTASK;
    return edo_runtime_spawn_at(out, w->rt, opts, fn, arg, site);
}

void edo__task_abandon(edo_task *t)
{
    t->cancelled = true;
    t->result = NULL;
    edo__task_publish_end(t);
    if (!t->blocking)
        edo__ctx_release(&t->ctx, false);
    edo__task_unref(t);
}

/* Runs on the worker after the task's last switch: its stack is free now. */
void edo__task_finish(edo__worker *w, edo_task *t)
{
    edo__ctx_release(&t->ctx, true);
    edo__task_unref(t);
    (void)w;
}

/* ---- park and wake --------------------------------------------------------------------- */

void edo__wake(edo_task *t)
{
    /* Sequentially consistent: see edo__suspend. */
    uint32_t s = atomic_load(&t->state);
    for (;;) {
        if (s == EDO__PARKED) {
            if (atomic_compare_exchange_weak_explicit(&t->state, &s, EDO__QUEUED,
                                                      memory_order_acq_rel, memory_order_acquire)) {
                /* The one waker that won the exchange writes these; a parked task cannot
                 * wake itself. */
                if (EDO__COUNTERS)
                    atomic_store_explicit(&t->ready_cycles, edo__cycles(), memory_order_relaxed);
                edo__counter_add(&t->wakes_other, 1);
                edo__schedule(t);
                return;
            }
        } else if (s == EDO__RUNNING) {
            if (atomic_compare_exchange_weak_explicit(&t->state, &s, EDO__RUNNING | EDO__NOTIFIED,
                                                      memory_order_acq_rel, memory_order_acquire)) {
                if (EDO__COUNTERS)
                    atomic_fetch_add_explicit(edo__task_current() == t ? &t->wakes_self
                                                                       : &t->wakes_other,
                                              1, memory_order_relaxed);
                return;
            }
        } else if (s == EDO__PEEKED) {
            /* Its stack is being read: the reader queues it when done (edo__task_unpeek).
             * Tested only here, where the common states have failed, so that a wake
             * costs nothing more when nobody reads stacks. */
            if (atomic_compare_exchange_weak_explicit(&t->state, &s, EDO__PEEKED | EDO__NOTIFIED,
                                                      memory_order_acq_rel, memory_order_acquire))
                return;
        } else {
            return; /* already queued or notified, or done */
        }
    }
}

int edo__task_peek(edo_task *t)
{
    uint32_t s = EDO__PARKED;
    while (!atomic_compare_exchange_weak_explicit(&t->state, &s, EDO__PEEKED, memory_order_acq_rel,
                                                  memory_order_acquire)) {
        if (s == EDO__DONE)
            return -ESRCH;
        if (s & EDO__PEEKED)
            sched_yield(); /* another reader: its walk is short */
        else if (s != EDO__PARKED)
            return -EBUSY;
        s = EDO__PARKED;
    }
    return 0;
}

void edo__task_unpeek(edo_task *t)
{
    uint32_t s = EDO__PEEKED;
    if (atomic_compare_exchange_strong_explicit(&t->state, &s, EDO__PARKED, memory_order_acq_rel,
                                                memory_order_acquire))
        return;
    /* PEEKED | NOTIFIED: a wake came while the stack was read, and did nothing else (a
     * waker leaves a notified task alone), so the wake is this reader's to deliver, as
     * edo__wake would have (its counters too): the task is queued once. */
    atomic_store_explicit(&t->state, EDO__QUEUED, memory_order_release);
    if (EDO__COUNTERS)
        atomic_store_explicit(&t->ready_cycles, edo__cycles(), memory_order_relaxed);
    edo__counter_add(&t->wakes_other, 1);
    edo__schedule(t);
}

void edo__suspend(edo__worker *w, edo_task *t)
{
    uint32_t s = atomic_load_explicit(&t->state, memory_order_acquire);
    if (s & EDO__NOTIFIED)
        /* Woken before parking: consume it. Wakers leave a NOTIFIED task alone, so the
         * flag may be an old one, and the caller's next look at its condition must not
         * pass this write: an exchange, a full barrier. A plain store here and a waker
         * that stores the condition and then finds the flag still set (also reordered)
         * would both see the old values, and the wake-up would be lost. */
        atomic_exchange(&t->state, EDO__RUNNING);
    else
        edo__switch_out(w, t, EDO__SW_PARK);
}

int edo__park(edo_wait_reason why, int64_t deadline)
{
    edo__worker *w = edo__worker_current();
    edo_task *t = w ? w->current : NULL;
    if (!t)
        return -EDO_ENOTASK;
    if (atomic_load_explicit(&t->aborted, memory_order_acquire)) {
        /* A task that loops on calls failing with -ECANCELED must still let the others
         * (and a shutdown's grace period) run. */
        edo__budget_spend();
        return -ECANCELED;
    }
    if (t->deadline < deadline)
        deadline = t->deadline;
    edo__worker *home = NULL;
    if (deadline != EDO_NEVER) {
        if (edo_now() >= deadline)
            return -ETIMEDOUT;
        /* On this worker's wheel; the task may resume on another worker and cancel it
         * from there, hence the lock. */
        home = w;
        edo__spin_lock(&home->wheel_lock);
        t->timer_fired = false;
        edo__wheel_insert(&home->wheel, &t->timer, deadline);
        edo__spin_unlock(&home->wheel_lock);
    }
    atomic_store_explicit(&t->wait_until, deadline, memory_order_relaxed);
    atomic_store_explicit(&t->waiting_on, (uint8_t)why, memory_order_relaxed);
    if (EDO__COUNTERS) {
        /* How deep the stack is here: the record sits at its top (a blocking call's task
         * has no stack, and never parks). */
        char here;
        uint64_t used = (uint64_t)((char *)t - &here);
        if (used > atomic_load_explicit(&t->stack_used, memory_order_relaxed))
            atomic_store_explicit(&t->stack_used, used, memory_order_relaxed);
    }
    edo__suspend(w, t);
    atomic_store_explicit(&t->waiting_on, EDO_WAIT_NONE, memory_order_relaxed);
    t->budget = EDO__BUDGET;
    bool fired = false;
    if (home) {
        edo__spin_lock(&home->wheel_lock);
        edo__wheel_cancel(&home->wheel, &t->timer);
        fired = t->timer_fired;
        edo__spin_unlock(&home->wheel_lock);
    }
    if (atomic_load_explicit(&t->aborted, memory_order_acquire))
        return -ECANCELED;
    if (home && (fired || edo_now() >= deadline))
        return -ETIMEDOUT;
    return 0;
}

int edo__may_start(edo_task *self, int64_t deadline)
{
    if (atomic_load_explicit(&self->aborted, memory_order_acquire))
        return -ECANCELED;
    if (self->deadline < deadline)
        deadline = self->deadline;
    if (deadline != EDO_NEVER && edo_now() >= deadline)
        return -ETIMEDOUT;
    return 0;
}

bool edo__slot_arm(edo__slot *s, edo_task *self)
{
    edo_task *expected = NULL;
    edo__task_ref(self);
    if (!atomic_compare_exchange_strong(s, &expected, self)) {
        edo__task_unref(self);
        return false;
    }
    return true;
}

void edo__slot_disarm(edo__slot *s, edo_task *self)
{
    edo_task *expected = self;
    /* If this fails, a waker took the task out and owns the reference: its wake may
     * arrive later as a spurious one, which every park loop tolerates. */
    if (atomic_load_explicit(s, memory_order_relaxed) == self &&
        atomic_compare_exchange_strong(s, &expected, NULL))
        edo__task_unref(self);
}

void edo__slot_fire(edo__slot *s)
{
    if (!atomic_load_explicit(s, memory_order_relaxed))
        return;
    edo_task *t = atomic_exchange(s, NULL);
    if (t) {
        edo__wake(t);
        edo__task_unref(t);
    }
}

void edo__budget_spend(void)
{
    edo__worker *w = edo__worker_current();
    edo_task *t = w ? w->current : NULL;
    if (t && --t->budget == 0) {
        t->budget = EDO__BUDGET;
        edo__counter_add(&w->n_forced, 1);
        edo__switch_out(w, t, EDO__SW_YIELD);
    }
}

/* ---- the task API ---------------------------------------------------------------------- */

int edo_yield(void)
{
    edo__worker *w = edo__worker_current();
    edo_task *t = w ? w->current : NULL;
    if (!t)
        return -EDO_ENOTASK;
    if (atomic_load_explicit(&t->aborted, memory_order_acquire)) {
        edo__budget_spend(); /* as in edo__park */
        return -ECANCELED;
    }
    atomic_store_explicit(&t->waiting_on, EDO_WAIT_YIELD, memory_order_relaxed);
    edo__switch_out(w, t, EDO__SW_YIELD);
    atomic_store_explicit(&t->waiting_on, EDO_WAIT_NONE, memory_order_relaxed);
    return atomic_load_explicit(&t->aborted, memory_order_acquire) ? -ECANCELED : 0;
}

int edo__yield_polling(void)
{
    edo__worker *w = edo__worker_current();
    if (w && w->current)
        w->poll_due = true; /* the switch goes by the scheduler loop, which polls */
    return edo_yield();
}

static int join_result(edo_task *t, void **result)
{
    if (result)
        *result = t->result;
    int rc = t->cancelled ? -EDO_EABORTED : 0;
    edo__task_unref(t);
    return rc;
}

int edo_join(edo_task *t, void **result)
{
    if (!t)
        return -EINVAL;
    edo_task *self = edo__task_current();
    if (result)
        *result = NULL;
    if (t == self)
        return -EDEADLK;
    if (!self) {
        /* A thread outside the runtime: sleep on the state word until DONE. */
        atomic_store(&t->foreign_joiner, true);
        uint32_t s;
        while ((s = atomic_load(&t->state)) != EDO__DONE)
            edo__futex_wait(&t->state, s, -1);
        return join_result(t, result);
    }
    edo__wait_note(self, t, (int64_t)t->id, EDO__OP_TASK);
    while (atomic_load_explicit(&t->state, memory_order_acquire) != EDO__DONE) {
        if (!edo__slot_arm(&t->joiner, self))
            return -EINVAL; /* another task joins it: the handle was given twice */
        int rc = 0;
        if (atomic_load_explicit(&t->state, memory_order_acquire) != EDO__DONE)
            rc = edo__park(EDO_WAIT_JOIN, EDO_NEVER);
        edo__slot_disarm(&t->joiner, self);
        if (rc == -ETIMEDOUT && atomic_load_explicit(&t->state, memory_order_acquire) == EDO__DONE)
            break; /* it returned in time; the joiner resumed late */
        if (rc == -ECANCELED)
            edo_detach(t); /* an aborted caller cannot wait: it lets the task go */
        if (rc < 0)
            return rc;
    }
    return join_result(t, result);
}

void edo_detach(edo_task *t)
{
    if (t)
        edo__task_unref(t);
}

void edo_abort(edo_task *t)
{
    if (!t)
        return;
    atomic_store(&t->aborted, true);
    edo__wake(t);
}

bool edo_aborted(void)
{
    edo_task *t = edo__task_current();
    return t && atomic_load_explicit(&t->aborted, memory_order_acquire);
}

edo_task *edo_self(void)
{
    return edo__task_current();
}

uint64_t edo_task_id(const edo_task *t)
{
    if (!t)
        t = edo__task_current();
    return t ? t->id : 0;
}

const char *edo_task_name(const edo_task *t)
{
    if (!t)
        t = edo__task_current();
    if (!t)
        return NULL;
    return t->name[0] ? t->name : "task";
}

void edo_set_name(const char *name)
{
    edo_task *t = edo__task_current();
    if (!t)
        return;
    /* Byte by byte, as observers read it (edo__task_name). */
    size_t n = name ? strnlen(name, sizeof t->name - 1) : 0;
    for (size_t i = 0; i < sizeof t->name; i++)
        __atomic_store_n(&t->name[i], i < n ? name[i] : 0, __ATOMIC_RELAXED);
}

int64_t edo_set_deadline(int64_t deadline)
{
    edo_task *t = edo__task_current();
    if (!t)
        return EDO_NEVER;
    int64_t old = t->deadline;
    t->deadline = deadline;
    return old;
}

int64_t edo_deadline_begin(int64_t deadline)
{
    edo_task *t = edo__task_current();
    if (!t)
        return EDO_NEVER;
    int64_t old = t->deadline;
    if (deadline < old)
        t->deadline = deadline;
    return old;
}

int64_t edo_timeout_begin(int64_t ms)
{
    int64_t now = edo_now();
    if (ms < 0)
        ms = 0;
    return edo_deadline_begin(ms >= EDO_NEVER - now ? EDO_NEVER : now + ms);
}

void edo_deadline_end(int64_t saved)
{
    edo_set_deadline(saved);
}

int64_t edo_deadline(void)
{
    edo_task *t = edo__task_current();
    return t ? t->deadline : EDO_NEVER;
}

/* ---- stack overflow report ------------------------------------------------------------- */

static struct sigaction old_segv, old_bus;
static pthread_once_t overflow_once = PTHREAD_ONCE_INIT;

/* Appends s to the report in buf (of len bytes, at *at), cut at its end. */
static void put(char *buf, size_t len, size_t *at, const char *s)
{
    while (*s && *at + 1 < len)
        buf[(*at)++] = *s++;
}

/* Async-signal-safe: called from the SIGSEGV handler. The report is written at once, in
 * one write, so that other threads' messages (a blocking-task report) cannot split it. */
_Noreturn void edo__overflow_report(const edo_task *t, const char *how)
{
    char buf[512], num[32];
    size_t at = 0, n = sizeof buf;
    put(buf, n, &at, "edo: stack overflow in task '");
    put(buf, n, &at, t->name[0] ? t->name : "task");
    put(buf, n, &at, "' spawned at ");
    put(buf, n, &at, t->site ? t->site : "?");
    put(buf, n, &at, " (stack ");
    size_t kib = t->stack_size / 1024, i = sizeof num - 1;
    num[i] = 0;
    do
        num[--i] = (char)('0' + kib % 10);
    while ((kib /= 10) && i);
    put(buf, n, &at, num + i);
    put(buf, n, &at, " KiB; give it more with edo_spawn_with's stack_size): ");
    put(buf, n, &at, how);
    put(buf, n, &at, "\n");
    ssize_t r = write(2, buf, at);
    (void)r;
    signal(SIGABRT, SIG_DFL);
    abort();
}

static void overflow_handler(int sig, siginfo_t *si, void *uctx)
{
    edo__worker *w = edo__worker_current();
    edo_task *t = w ? w->current : NULL;
    char *addr = si->si_addr;
    size_t page = edo__page_size();
    /* A hit in the guard page, or just below the stack (a frame that jumped it). */
    if (t && addr >= t->stack.map - 16 * page && addr < t->stack.map + page)
        edo__overflow_report(t, "it hit the guard page");
    /* Not ours: hand it to whoever was there before, or die the default way. */
    struct sigaction *old = sig == SIGSEGV ? &old_segv : &old_bus;
    if (old->sa_flags & SA_SIGINFO) {
        if (old->sa_sigaction) {
            old->sa_sigaction(sig, si, uctx);
            return;
        }
    } else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
        old->sa_handler(sig);
        return;
    }
    signal(sig, SIG_DFL); /* the faulting instruction runs again and kills the process */
}

static void overflow_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = overflow_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);
}

int edo__overflow_init_thread(edo__worker *w)
{
    /* The handler runs on an alternate stack: the task's own one is what overflowed. */
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE) && cur.ss_size >= 16384) {
        w->altstack = NULL;
    } else {
        size_t len = 65536;
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return -errno;
        stack_t ss = { .ss_sp = p, .ss_size = len, .ss_flags = 0 };
        if (sigaltstack(&ss, NULL) < 0) {
            int err = -errno;
            munmap(p, len);
            return err;
        }
        w->altstack = p;
        w->altstack_len = len;
    }
    pthread_once(&overflow_once, overflow_install);
    return 0;
}

void edo__overflow_fini_thread(edo__worker *w)
{
    if (!w->altstack)
        return;
    stack_t ss = { .ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE };
    sigaltstack(&ss, NULL);
    munmap(w->altstack, w->altstack_len);
    w->altstack = NULL;
}

/* ---- edo_select's join case -------------------------------------------------------------- */

int edo__task_sel_arm(edo_task *t, edo_task *self)
{
    if (t == self)
        return -EDEADLK;
    if (!edo__slot_arm(&t->joiner, self))
        return -EBUSY;
    /* Armed, then checked: the end publishes DONE before it fires the slot. */
    return atomic_load_explicit(&t->state, memory_order_acquire) == EDO__DONE;
}

void edo__task_sel_disarm(edo_task *t, edo_task *self)
{
    edo__slot_disarm(&t->joiner, self);
}
