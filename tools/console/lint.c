/*
 * lint.c - the console's warnings (lint.h). Each check reads the model's snapshot ring
 * and adds to one list; a check that needs more snapshots than the ring holds yet says
 * nothing. The thresholds are here, named, and chosen to be quiet on a healthy program:
 * a warning should be worth reading.
 */
#include "lint.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A task running this long without suspending, when the program's hello names no
 * blocking threshold of its own. */
#define LONG_RUN_DEFAULT_MS 10
/* Self-wakes per second, and their share of all wakes, that make a busy loop. */
#define BUSY_WAKES_PER_S 1000
#define BUSY_SELF_PERCENT 80
/* Idle this much longer than the median of its peers of the same spawn site, and this
 * long at all, and with at least this many peers. */
#define IDLE_FACTOR 10
#define IDLE_MIN_MS 10000
#define IDLE_MIN_PEERS 2
/* A worker queue this deep and growing over this many snapshots, or at least this deep
 * in all of them, while another worker idles. */
#define QUEUE_GROWING_MIN 4
#define QUEUE_HIGH 64
#define QUEUE_SNAPSHOTS 3
/* A resource's waiters grown by this many, never shrinking, over up to this many
 * snapshots (at least 3). */
#define WAITQ_SNAPSHOTS 4
#define WAITQ_GROWTH 2

struct list {
    cl_warning *w;
    size_t n, cap, more;
};

static cl_warning *add(struct list *l, const char *kind)
{
    if (l->n == CL_MAX) {
        l->more++;
        return NULL;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        cl_warning *w = realloc(l->w, cap * sizeof *w);
        if (!w)
            return NULL;
        l->w = w;
        l->cap = cap;
    }
    cl_warning *w = &l->w[l->n++];
    memset(w, 0, sizeof *w);
    w->kind = kind;
    w->worker = -1;
    return w;
}

static void task_subject(cl_warning *w, uint64_t id, const char *name)
{
    w->task = id;
    if (name && *name)
        snprintf(w->subject, sizeof w->subject, "task %" PRIu64 " (%s)", id, name);
    else
        snprintf(w->subject, sizeof w->subject, "task %" PRIu64, id);
}

__attribute__((format(printf, 2, 3))) static void reason(cl_warning *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->reason, sizeof w->reason, fmt, ap);
    va_end(ap);
}

static double ms_of(uint64_t ns)
{
    return (double)ns / 1e6;
}

/* ---- blocking --------------------------------------------------------------------------- */

static void check_blocking(const cm_model *m, struct list *l)
{
    const cm_snap *s = m->hist[0];
    for (size_t i = 0; i < s->nblocking; i++) {
        const cm_blocking *b = &s->blocking[i];
        cl_warning *w = add(l, "blocking");
        if (!w)
            return;
        task_subject(w, b->task, b->name);
        w->worker = b->worker;
        w->stack = b->stack[0] ? b->stack : NULL;
        if (b->total_ns)
            reason(w,
                   "ran %.1f ms without suspending on worker %" PRId64
                   " (%.1f ms in all), spawned at %s",
                   ms_of(b->ran_ns), b->worker, ms_of(b->total_ns), b->site);
        else
            reason(w,
                   "ran %.1f ms without suspending on worker %" PRId64
                   ", still running, spawned at %s",
                   ms_of(b->ran_ns), b->worker, b->site);
    }
    int64_t thr =
        m->hello.blocking_threshold_ms > 0 ? m->hello.blocking_threshold_ms : LONG_RUN_DEFAULT_MS;
    for (size_t i = 0; i < s->nworkers; i++) {
        const cm_worker *wk = &s->workers[i];
        if (!wk->task || wk->task_run_ns < (uint64_t)thr * 1000000)
            continue;
        bool reported = false;
        for (size_t j = 0; j < s->nblocking && !reported; j++)
            reported = s->blocking[j].task == wk->task && s->blocking[j].total_ns == 0;
        if (reported)
            continue;
        const cm_task *t = cm_snap_task(s, wk->task);
        cl_warning *w = add(l, "long-run");
        if (!w)
            return;
        task_subject(w, wk->task, t ? t->name : NULL);
        w->worker = wk->index;
        reason(w, "running for %.1f ms without suspending on worker %d (threshold %" PRId64 " ms)",
               ms_of(wk->task_run_ns), wk->index, thr);
    }
}

/* ---- lost wakes ------------------------------------------------------------------------- */

/* A wait that only another task of the program can end. */
static bool task_only_wait(const cm_task *t)
{
    return strcmp(t->wait, "join") == 0 || strcmp(t->wait, "chan") == 0 ||
           strcmp(t->wait, "lock") == 0 || strcmp(t->wait, "notify") == 0;
}

static bool parked(const cm_task *t)
{
    return strcmp(t->state, "parked") == 0;
}

/* Whether every task of s is parked with no deadline on something only a task can end. */
static bool all_stuck(const cm_snap *s)
{
    if (s->tasks_omitted > 0 || s->ntasks == 0 || s->blocking_busy || s->blocking_queued)
        return false;
    for (size_t i = 0; i < s->ntasks; i++) {
        const cm_task *t = &s->tasks[i];
        if (!parked(t) || t->wait_until_ms != CM_NONE || !task_only_wait(t))
            return false;
    }
    return true;
}

/* Whether t was parked the same way in snapshot o, and has not run since. */
static bool same_wait(const cm_snap *o, const cm_task *t)
{
    const cm_task *p = cm_snap_task(o, t->id);
    return p && parked(p) && p->resumes == t->resumes && strcmp(p->wait, t->wait) == 0 &&
           strcmp(p->wait_obj, t->wait_obj) == 0;
}

static void check_deadlock(const cm_model *m, struct list *l)
{
    const cm_snap *s = m->hist[0], *prev = cm_snap_at(m, 1);
    if (!all_stuck(s))
        return;
    /* With a second snapshot, it must have held there too with nothing run in between: the
     * tasks of one snapshot are each seen at their own moment. */
    if (prev) {
        if (!all_stuck(prev) || prev->ntasks != s->ntasks)
            return;
        for (size_t i = 0; i < s->ntasks; i++)
            if (!same_wait(prev, &s->tasks[i]))
                return;
    }
    cl_warning *w = add(l, "deadlock");
    if (!w)
        return;
    snprintf(w->subject, sizeof w->subject, "%zu task%s", s->ntasks, s->ntasks == 1 ? "" : "s");
    char ids[96] = "";
    size_t off = 0;
    for (size_t i = 0; i < s->ntasks && off < sizeof ids - 24; i++)
        off += (size_t)snprintf(ids + off, sizeof ids - off, "%s%" PRIu64, i ? " " : "",
                                s->tasks[i].id);
    if (off >= sizeof ids - 24 && s->ntasks > 1)
        snprintf(ids + off, sizeof ids - off, " ...");
    reason(w,
           "every task is parked with no deadline on a join, channel, lock or notify: "
           "nothing can wake them (%s)",
           ids);
}

/* The id in a join's wait text ("join task 12"), 0 if it has none. */
static uint64_t join_target(const cm_task *t)
{
    const char *p = strstr(t->wait_text, "task ");
    if (!p)
        return 0;
    return strtoull(p + 5, NULL, 10);
}

/* Whether addr was a resource in one of the older snapshots. */
static bool was_resource(const cm_model *m, const char *addr)
{
    for (size_t h = 1; h < m->nhist; h++)
        if (cm_snap_res(m->hist[h], addr))
            return true;
    return false;
}

static void check_gone(const cm_model *m, struct list *l)
{
    const cm_snap *s = m->hist[0], *prev = cm_snap_at(m, 1);
    if (!prev)
        return;
    for (size_t i = 0; i < s->ntasks; i++) {
        const cm_task *t = &s->tasks[i];
        if (!parked(t) || !same_wait(prev, t))
            continue;
        if (strcmp(t->wait, "join") == 0) {
            uint64_t target = join_target(t);
            if (!target || s->tasks_omitted > 0 || cm_snap_task(s, target) ||
                cm_snap_task(prev, target))
                continue;
            cl_warning *w = add(l, "lost-wake");
            if (!w)
                return;
            task_subject(w, t->id, t->name);
            reason(w, "joins task %" PRIu64 ", which no longer exists (%s)", target, t->wait_text);
        } else if (task_only_wait(t) && t->wait_obj[0] && !cm_snap_res(s, t->wait_obj) &&
                   !cm_snap_res(prev, t->wait_obj) && was_resource(m, t->wait_obj)) {
            cl_warning *w = add(l, "lost-wake");
            if (!w)
                return;
            task_subject(w, t->id, t->name);
            snprintf(w->resource, sizeof w->resource, "%s", t->wait_obj);
            reason(w, "parked on %s %s, which is no longer in the resource list", t->wait,
                   t->wait_obj);
        }
    }
}

/* ---- busy loops ------------------------------------------------------------------------- */

static void check_busy_loop(const cm_model *m, struct list *l)
{
    const cm_snap *s = m->hist[0], *old = m->hist[m->nhist - 1];
    if (m->nhist < 2)
        return;
    int64_t dt_ms = s->uptime_ms - old->uptime_ms;
    if (dt_ms <= 0)
        dt_ms = s->recv_ms - old->recv_ms;
    if (dt_ms <= 0)
        return;
    for (size_t i = 0; i < s->ntasks; i++) {
        const cm_task *t = &s->tasks[i], *o = cm_snap_task(old, t->id);
        if (!o || t->wakes_self < o->wakes_self || t->wakes_other < o->wakes_other)
            continue;
        uint64_t self = t->wakes_self - o->wakes_self, other = t->wakes_other - o->wakes_other;
        if (self * 1000 < (uint64_t)BUSY_WAKES_PER_S * (uint64_t)dt_ms ||
            self * 100 < (self + other) * BUSY_SELF_PERCENT)
            continue;
        cl_warning *w = add(l, "busy-loop");
        if (!w)
            return;
        task_subject(w, t->id, t->name);
        reason(w,
               "woke itself %" PRIu64 " times in %.1f s (%" PRIu64
               "%% of its wakes), spawned at %s",
               self, (double)dt_ms / 1000, self * 100 / (self + other), t->site);
    }
}

/* ---- idle outliers ---------------------------------------------------------------------- */

/* How long t has been parked since it last woke (or since its spawn), -1 if unknown;
 * 0 for a task that is not parked. */
static int64_t idle_stretch(const cm_snap *s, const cm_task *t)
{
    if (!parked(t))
        return 0;
    int64_t since = t->last_wake_ms != CM_NONE ? t->last_wake_ms : t->spawned_ms;
    if (since == CM_NONE || since > s->now_ms)
        return since == CM_NONE ? -1 : 0;
    return s->now_ms - since;
}

struct idle_item {
    const cm_task *t;
    int64_t stretch;
};

static int by_site(const void *a, const void *b)
{
    const struct idle_item *x = a, *y = b;
    int c = strcmp(x->t->site, y->t->site);
    if (c)
        return c;
    return x->stretch < y->stretch ? -1 : x->stretch > y->stretch;
}

static void check_idle(const cm_model *m, struct list *l)
{
    const cm_snap *s = m->hist[0];
    struct idle_item *it = malloc((s->ntasks ? s->ntasks : 1) * sizeof *it);
    size_t n = 0;
    if (!it)
        return;
    for (size_t i = 0; i < s->ntasks; i++) {
        int64_t st = idle_stretch(s, &s->tasks[i]);
        if (st >= 0 && s->tasks[i].site[0])
            it[n++] = (struct idle_item){ &s->tasks[i], st };
    }
    qsort(it, n, sizeof *it, by_site);
    for (size_t g = 0; g < n;) {
        size_t e = g;
        while (e < n && strcmp(it[e].t->site, it[g].t->site) == 0)
            e++;
        size_t k = e - g; /* the group, sorted by stretch */
        if (k >= IDLE_MIN_PEERS + 1) {
            for (size_t j = 0; j < k; j++) {
                const struct idle_item *x = &it[g + j];
                if (x->stretch < IDLE_MIN_MS)
                    continue;
                /* The median of the others: the sorted group without element j. */
                size_t mid = (k - 2) / 2;
                int64_t med = it[g + (mid < j ? mid : mid + 1)].stretch;
                if (x->stretch <= med * IDLE_FACTOR)
                    continue;
                cl_warning *w = add(l, "idle-outlier");
                if (!w)
                    goto out;
                task_subject(w, x->t->id, x->t->name);
                reason(w,
                       "parked %.1f s since it last woke; the %zu other tasks of %s: a median of "
                       "%.1f s",
                       (double)x->stretch / 1000, k - 1, x->t->site, (double)med / 1000);
            }
        }
        g = e;
    }
out:
    free(it);
}

/* ---- workers ---------------------------------------------------------------------------- */

static const cm_worker *worker_of(const cm_snap *s, int index)
{
    for (size_t i = 0; i < s->nworkers; i++)
        if (s->workers[i].index == index)
            return &s->workers[i];
    return NULL;
}

static void check_workers(const cm_model *m, struct list *l)
{
    const cm_snap *s = m->hist[0];
    if (m->nhist < QUEUE_SNAPSHOTS)
        return;
    for (size_t i = 0; i < s->nworkers; i++) {
        const cm_worker *wk = &s->workers[i];
        const cm_worker *idle = NULL;
        for (size_t j = 0; j < s->nworkers && !idle; j++)
            if (j != i && strcmp(s->workers[j].state, "idle") == 0)
                idle = &s->workers[j];
        if (!idle)
            continue;
        uint64_t q[QUEUE_SNAPSHOTS];
        bool have = true, rising = true, high = true;
        for (size_t h = 0; h < QUEUE_SNAPSHOTS && have; h++) {
            const cm_worker *o = worker_of(m->hist[QUEUE_SNAPSHOTS - 1 - h], wk->index);
            have = o != NULL;
            if (o)
                q[h] = o->queue_depth;
        }
        if (!have)
            continue;
        for (size_t h = 0; h < QUEUE_SNAPSHOTS; h++) {
            if (h && q[h] < q[h - 1])
                rising = false;
            if (q[h] < QUEUE_HIGH)
                high = false;
        }
        rising =
            rising && q[QUEUE_SNAPSHOTS - 1] > q[0] && q[QUEUE_SNAPSHOTS - 1] >= QUEUE_GROWING_MIN;
        if (!rising && !high)
            continue;
        cl_warning *w = add(l, "worker-behind");
        if (!w)
            return;
        w->worker = wk->index;
        snprintf(w->subject, sizeof w->subject, "worker %d", wk->index);
        reason(w,
               "queue depth %" PRIu64 " -> %" PRIu64 " -> %" PRIu64
               " over %d snapshots while worker %d idles",
               q[0], q[1], q[2], QUEUE_SNAPSHOTS, idle->index);
    }
}

/* ---- resources -------------------------------------------------------------------------- */

static void check_waitq(const cm_model *m, struct list *l)
{
    const cm_snap *s = m->hist[0];
    size_t span = m->nhist < WAITQ_SNAPSHOTS ? m->nhist : WAITQ_SNAPSHOTS;
    if (span < 3)
        return;
    for (size_t i = 0; i < s->nres; i++) {
        const cm_resource *r = &s->res[i];
        uint64_t q[WAITQ_SNAPSHOTS];
        bool ok = true;
        for (size_t h = 0; h < span && ok; h++) {
            const cm_resource *o = cm_snap_res(m->hist[span - 1 - h], r->addr);
            ok = o && strcmp(o->kind, r->kind) == 0 && (h == 0 || o->waiters >= q[h - 1]);
            if (ok)
                q[h] = o->waiters;
        }
        if (!ok || q[span - 1] < q[0] + WAITQ_GROWTH)
            continue;
        cl_warning *w = add(l, "waitq-growing");
        if (!w)
            return;
        snprintf(w->resource, sizeof w->resource, "%s", r->addr);
        snprintf(w->subject, sizeof w->subject, "%s %s", r->kind, r->addr);
        char seq[64] = "";
        size_t off = 0;
        for (size_t h = 0; h < span; h++)
            off +=
                (size_t)snprintf(seq + off, sizeof seq - off, "%s%" PRIu64, h ? " -> " : "", q[h]);
        reason(w, "waiters %s over the last %zu snapshots", seq, span);
    }
}

size_t cl_lint(const cm_model *m, cl_warning **out, size_t *more)
{
    struct list l = { 0 };
    *out = NULL;
    *more = 0;
    if (!m->nhist)
        return 0;
    check_deadlock(m, &l);
    check_gone(m, &l);
    check_blocking(m, &l);
    check_busy_loop(m, &l);
    check_workers(m, &l);
    check_waitq(m, &l);
    check_idle(m, &l);
    *out = l.w;
    *more = l.more;
    return l.n;
}
