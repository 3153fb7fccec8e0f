/*
 * model.c - the console's picture of the program (model.h): protocol lines in, the
 * snapshot ring and the merged task list out. A line that is not what docs/console.md
 * says is counted and otherwise ignored; a snapshot missing a field has that field zero.
 */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cm_init(cm_model *m)
{
    memset(m, 0, sizeof *m);
}

static void snap_free(cm_snap *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nblocking; i++)
        free(s->blocking[i].stack);
    free(s->workers);
    free(s->tasks);
    free(s->done);
    free(s->res);
    free(s->blocking);
    free(s);
}

static void drop_history(cm_model *m)
{
    for (size_t i = 0; i < CM_HISTORY; i++) {
        snap_free(m->hist[i]);
        m->hist[i] = NULL;
    }
    m->nhist = 0;
    free(m->rows);
    m->rows = NULL;
    m->nrows = 0;
}

void cm_reset(cm_model *m)
{
    drop_history(m);
    memset(&m->hello, 0, sizeof m->hello);
    m->snapshots = 0;
    m->bt_have = false;
    free(m->bt_text);
    m->bt_text = NULL;
}

void cm_free(cm_model *m)
{
    cm_reset(m);
    cj_arena_free(&m->arena);
}

const cm_snap *cm_snap_at(const cm_model *m, size_t back)
{
    return back < m->nhist ? m->hist[back] : NULL;
}

/* Copies string member `key` of o into dst (cut to fit; "" when missing). */
static void copy_str(char *dst, size_t n, const cj_val *o, const char *key)
{
    const cj_val *v = cj_get(o, key);
    if (!v || v->type != CJ_STR) {
        dst[0] = '\0';
        return;
    }
    size_t len = v->str.len < n - 1 ? v->str.len : n - 1;
    memcpy(dst, v->str.s, len);
    dst[len] = '\0';
}

static uint64_t u64(const cj_val *o, const char *key)
{
    int64_t v = cj_int(o, key, 0);
    return v < 0 ? 0 : (uint64_t)v;
}

/* A time that may be null: CM_NONE then. */
static int64_t opt_ms(const cj_val *o, const char *key)
{
    return cj_int(o, key, CM_NONE);
}

static void parse_hello(cm_model *m, const cj_val *o)
{
    cm_hello h = { .seen = true };
    h.version = cj_int(o, "version", 0);
    h.pid = cj_int(o, "pid", 0);
    h.workers = cj_int(o, "workers", 0);
    h.interval_ms = cj_int(o, "interval_ms", 0);
    h.blocking_threshold_ms = cj_int(o, "blocking_threshold_ms", -1);
    copy_str(h.program, sizeof h.program, o, "program");
    copy_str(h.backend, sizeof h.backend, o, "backend");
    /* Another program on the same address: what we saw of the old one means nothing. */
    if (m->hello.seen && m->hello.pid != h.pid)
        cm_reset(m);
    m->hello = h;
}

static void parse_task(cm_task *t, const cj_val *o)
{
    memset(t, 0, sizeof *t);
    t->id = u64(o, "id");
    t->parent = u64(o, "parent");
    copy_str(t->name, sizeof t->name, o, "name");
    copy_str(t->site, sizeof t->site, o, "site");
    copy_str(t->state, sizeof t->state, o, "state");
    copy_str(t->wait, sizeof t->wait, o, "wait");
    copy_str(t->wait_text, sizeof t->wait_text, o, "wait_text");
    copy_str(t->wait_obj, sizeof t->wait_obj, o, "wait_obj");
    t->wait_fd = cj_int(o, "wait_fd", -1);
    t->wait_until_ms = opt_ms(o, "wait_until_ms");
    t->worker = cj_int(o, "worker", -1);
    t->resumes = u64(o, "resumes");
    t->busy_ns = u64(o, "busy_ns");
    t->idle_ns = u64(o, "idle_ns");
    t->scheduled_ns = u64(o, "scheduled_ns");
    t->wakes_self = u64(o, "wakes_self");
    t->wakes_other = u64(o, "wakes_other");
    t->last_wake_ms = opt_ms(o, "last_wake_ms");
    t->spawned_ms = opt_ms(o, "spawned_ms");
    t->ended_ms = CM_NONE;
    t->stack_size = u64(o, "stack_size");
    t->stack_used = u64(o, "stack_used");
    const cj_val *h = cj_arr(o, "run_hist");
    size_t i = 0;
    for (const cj_val *b = h ? h->kids.first : NULL; b && i < CM_RUN_HIST; b = b->next, i++) {
        int64_t n = cj_as_int(b, 0);
        t->run_hist[i] = n < 0 ? 0 : n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    }
    t->origin = CM_LIVE;
}

/* A done entry is what was last seen of the task alive, and when it was found gone; a
 * program that sends less leaves the rest zero. */
static void parse_done(cm_task *t, const cj_val *o)
{
    parse_task(t, o);
    strcpy(t->state, "done");
    strcpy(t->wait, "none");
    t->wait_text[0] = t->wait_obj[0] = '\0';
    t->wait_fd = -1;
    t->wait_until_ms = CM_NONE;
    t->ended_ms = opt_ms(o, "ended_ms");
    t->origin = CM_DONE;
}

static void parse_worker(cm_worker *w, const cj_val *o)
{
    memset(w, 0, sizeof *w);
    w->index = (int)cj_int(o, "index", -1);
    copy_str(w->state, sizeof w->state, o, "state");
    w->task = u64(o, "task");
    w->task_run_ns = u64(o, "task_run_ns");
    w->queue_depth = u64(o, "queue_depth");
    w->tasks_run = u64(o, "tasks_run");
    w->steals = u64(o, "steals");
    w->parks = u64(o, "parks");
    w->polls = u64(o, "polls");
    w->events = u64(o, "events");
    w->timers_fired = u64(o, "timers_fired");
    w->forced_yields = u64(o, "forced_yields");
    w->blocking_reports = u64(o, "blocking_reports");
    w->handoffs = u64(o, "handoffs");
    w->busy_ns = u64(o, "busy_ns");
    w->busy_ratio = -1;
}

static void parse_res(cm_resource *r, const cj_val *o)
{
    memset(r, 0, sizeof *r);
    copy_str(r->addr, sizeof r->addr, o, "addr");
    copy_str(r->kind, sizeof r->kind, o, "kind");
    r->holder = cj_int(o, "holder", 0);
    r->readers = u64(o, "readers");
    r->len = u64(o, "len");
    r->cap = u64(o, "cap");
    r->closed = cj_bool(o, "closed", false);
    r->waiters = u64(o, "waiters");
    const cj_val *ids = cj_arr(o, "waiter_ids");
    for (const cj_val *v = ids ? ids->kids.first : NULL; v && r->nwaiter_ids < CM_WAITER_IDS;
         v = v->next) {
        int64_t id = cj_as_int(v, 0);
        r->waiter_ids[r->nwaiter_ids++] = id < 0 ? 0 : (uint64_t)id;
    }
}

static int parse_blocking(cm_blocking *b, const cj_val *o)
{
    memset(b, 0, sizeof *b);
    b->task = u64(o, "task");
    copy_str(b->name, sizeof b->name, o, "name");
    copy_str(b->site, sizeof b->site, o, "site");
    b->worker = cj_int(o, "worker", -1);
    b->at_ms = opt_ms(o, "at_ms");
    b->ran_ns = u64(o, "ran_ns");
    b->total_ns = u64(o, "total_ns");
    const cj_val *st = cj_get(o, "stack");
    size_t n = st && st->type == CJ_STR ? st->str.len : 0;
    if (n > CM_STACK_MAX)
        n = CM_STACK_MAX;
    b->stack = malloc(n + 1);
    if (!b->stack)
        return -1;
    if (n)
        memcpy(b->stack, st->str.s, n);
    b->stack[n] = '\0';
    return 0;
}

static size_t count(const cj_val *arr)
{
    return arr ? arr->kids.n : 0;
}

static int task_cmp(const void *a, const void *b)
{
    const cm_task *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int res_cmp(const void *a, const void *b)
{
    const cm_resource *x = a, *y = b;
    return strcmp(x->addr, y->addr);
}

const cm_task *cm_snap_task(const cm_snap *s, uint64_t id)
{
    if (!s || !s->ntasks)
        return NULL;
    cm_task key = { .id = id };
    return bsearch(&key, s->tasks, s->ntasks, sizeof key, task_cmp);
}

const cm_resource *cm_snap_res(const cm_snap *s, const char *addr)
{
    if (!s || !s->nres)
        return NULL;
    cm_resource key;
    snprintf(key.addr, sizeof key.addr, "%s", addr);
    return bsearch(&key, s->res, s->nres, sizeof key, res_cmp);
}

const cm_task *cm_row(const cm_model *m, uint64_t id)
{
    if (!m->nrows)
        return NULL;
    cm_task key = { .id = id };
    return bsearch(&key, m->rows, m->nrows, sizeof key, task_cmp);
}

/* Allocates an array of n elements of size sz (n may be 0). */
static void *alloc_n(size_t n, size_t sz)
{
    return calloc(n ? n : 1, sz);
}

bool cm_is_snapshot(const cj_val *o)
{
    /* What every snapshot has: without it, it is not one (and the rest is not trusted). */
    const cj_val *seq = cj_get(o, "seq"), *rt = cj_get(o, "runtime");
    const char *type = cj_str(o, "type");
    return type && strcmp(type, "snapshot") == 0 && seq && seq->type == CJ_NUM && seq->num.is_int &&
           cj_arr(o, "tasks") && cj_arr(o, "workers") && rt && rt->type == CJ_OBJ;
}

static cm_snap *parse_snapshot(const cj_val *o, int64_t recv_ms)
{
    if (!cm_is_snapshot(o))
        return NULL;
    cm_snap *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->seq = cj_int(o, "seq", 0);
    s->now_ms = cj_int(o, "now_ms", 0);
    s->uptime_ms = cj_int(o, "uptime_ms", 0);
    s->tasks_omitted = cj_int(o, "tasks_omitted", 0);
    s->resources_omitted = cj_int(o, "resources_omitted", 0);
    s->recv_ms = recv_ms;
    const cj_val *rt = cj_get(o, "runtime");
    s->tasks_spawned = u64(rt, "tasks_spawned");
    s->tasks_live = u64(rt, "tasks_live");
    s->tasks_done = u64(rt, "tasks_done");
    s->inject_depth = u64(rt, "inject_depth");
    s->blocking_threads = u64(rt, "blocking_threads");
    s->blocking_busy = u64(rt, "blocking_busy");
    s->blocking_queued = u64(rt, "blocking_queued");
    s->blocking_reports = u64(rt, "blocking_reports");
    s->clock_paused = cj_bool(rt, "clock_paused", false);

    const cj_val *ws = cj_arr(o, "workers"), *ts = cj_arr(o, "tasks"), *ds = cj_arr(o, "done");
    const cj_val *rs = cj_arr(o, "resources"), *bs = cj_arr(o, "blocking");
    s->workers = alloc_n(count(ws), sizeof *s->workers);
    s->tasks = alloc_n(count(ts), sizeof *s->tasks);
    s->done = alloc_n(count(ds), sizeof *s->done);
    s->res = alloc_n(count(rs), sizeof *s->res);
    s->blocking = alloc_n(count(bs), sizeof *s->blocking);
    if (!s->workers || !s->tasks || !s->done || !s->res || !s->blocking)
        goto fail;
    for (const cj_val *v = ws ? ws->kids.first : NULL; v; v = v->next)
        if (v->type == CJ_OBJ)
            parse_worker(&s->workers[s->nworkers++], v);
    for (const cj_val *v = ts ? ts->kids.first : NULL; v; v = v->next)
        if (v->type == CJ_OBJ)
            parse_task(&s->tasks[s->ntasks++], v);
    for (const cj_val *v = ds ? ds->kids.first : NULL; v; v = v->next)
        if (v->type == CJ_OBJ)
            parse_done(&s->done[s->ndone++], v);
    for (const cj_val *v = rs ? rs->kids.first : NULL; v; v = v->next)
        if (v->type == CJ_OBJ)
            parse_res(&s->res[s->nres++], v);
    for (const cj_val *v = bs ? bs->kids.first : NULL; v; v = v->next)
        if (v->type == CJ_OBJ && parse_blocking(&s->blocking[s->nblocking++], v) < 0)
            goto fail;
    qsort(s->tasks, s->ntasks, sizeof *s->tasks, task_cmp);
    qsort(s->res, s->nres, sizeof *s->res, res_cmp);
    return s;
fail:
    snap_free(s);
    return NULL;
}

/* Busy ratios of s's workers against prev (NULL: since the start). */
static void busy_ratios(cm_snap *s, const cm_snap *prev)
{
    for (size_t i = 0; i < s->nworkers; i++) {
        cm_worker *w = &s->workers[i];
        const cm_worker *p = NULL;
        for (size_t j = 0; prev && j < prev->nworkers; j++)
            if (prev->workers[j].index == w->index)
                p = &prev->workers[j];
        double busy, wall;
        if (p && w->busy_ns >= p->busy_ns) {
            busy = (double)(w->busy_ns - p->busy_ns);
            /* The program's uptime is wall time even while its clock is paused; the
             * receive times are the fallback for a program that does not send it. */
            wall = (double)(s->uptime_ms - prev->uptime_ms) * 1e6;
            if (wall <= 0)
                wall = (double)(s->recv_ms - prev->recv_ms) * 1e6;
        } else {
            busy = (double)w->busy_ns;
            wall = (double)s->uptime_ms * 1e6;
        }
        if (wall <= 0)
            continue;
        w->busy_ratio = busy / wall;
        if (w->busy_ratio > 1)
            w->busy_ratio = 1;
    }
}

static int rebuild_rows(cm_model *m)
{
    const cm_snap *s = m->hist[0];
    size_t cap = s->ntasks + s->ndone;
    if (s->tasks_omitted > 0)
        for (size_t h = 1; h < m->nhist; h++)
            cap += m->hist[h]->ntasks;
    cm_task *rows = alloc_n(cap, sizeof *rows);
    if (!rows)
        return -1;
    size_t n = 0;
    memcpy(rows, s->tasks, s->ntasks * sizeof *rows);
    n = s->ntasks;
    for (size_t i = 0; i < s->ndone; i++) {
        const cm_task *d = &s->done[i];
        if (cm_snap_task(s, d->id))
            continue;
        /* A program that lists only the done entry's own fields: what we saw of the task
         * alive says more. */
        const cm_task *seen = NULL;
        for (size_t h = 1; h < m->nhist && !seen && !d->site[0]; h++)
            seen = cm_snap_task(m->hist[h], d->id);
        cm_task *r = &rows[n++];
        *r = seen ? *seen : *d;
        if (seen) {
            strcpy(r->state, "done");
            strcpy(r->wait, "none");
            r->wait_text[0] = r->wait_obj[0] = '\0';
            r->wait_fd = -1;
            r->wait_until_ms = CM_NONE;
            r->ended_ms = d->ended_ms;
            r->resumes = d->resumes;
            r->busy_ns = d->busy_ns;
            r->origin = CM_DONE;
        }
    }
    size_t before = n;
    if (s->tasks_omitted > 0) {
        /* Left out for the snapshot's size limit: still alive as far as we know. */
        for (size_t h = 1; h < m->nhist; h++) {
            const cm_snap *o = m->hist[h];
            for (size_t i = 0; i < o->ntasks; i++) {
                const cm_task *t = &o->tasks[i];
                if (cm_snap_task(s, t->id))
                    continue;
                bool ended = false;
                for (size_t j = 0; j < s->ndone && !ended; j++)
                    ended = s->done[j].id == t->id;
                if (ended)
                    continue;
                rows[n] = *t;
                rows[n++].origin = CM_STALE;
            }
        }
    }
    qsort(rows, n, sizeof *rows, task_cmp);
    /* Stale rows may repeat (seen in several older snapshots; the first of equal ids after
     * the sort is as good as any); live and done rows never do. */
    if (n > before) {
        size_t w = 0;
        for (size_t i = 0; i < n; i++)
            if (w == 0 || rows[w - 1].id != rows[i].id)
                rows[w++] = rows[i];
        n = w;
    }
    free(m->rows);
    m->rows = rows;
    m->nrows = n;
    return 0;
}

static void take_snapshot(cm_model *m, cm_snap *s)
{
    /* A sequence that goes back is a new stream (a reconnect): no deltas across it. */
    if (m->nhist && s->seq <= m->hist[0]->seq)
        drop_history(m);
    if (m->nhist == CM_HISTORY) {
        snap_free(m->hist[CM_HISTORY - 1]);
        m->nhist--;
    }
    memmove(&m->hist[1], &m->hist[0], m->nhist * sizeof m->hist[0]);
    m->hist[0] = s;
    m->nhist++;
    m->snapshots++;
    busy_ratios(s, m->nhist > 1 ? m->hist[1] : NULL);
    if (rebuild_rows(m) < 0) {
        free(m->rows);
        m->rows = NULL;
        m->nrows = 0;
    }
}

static void parse_backtrace(cm_model *m, const cj_val *o)
{
    const cj_val *text =
        cj_get(o, "ok") && cj_bool(o, "ok", false) ? cj_get(o, "text") : cj_get(o, "error");
    size_t n = text && text->type == CJ_STR ? text->str.len : 0;
    if (n > CM_STACK_MAX)
        n = CM_STACK_MAX;
    char *copy = malloc(n + 1);
    if (!copy)
        return;
    if (n)
        memcpy(copy, text->str.s, n);
    copy[n] = '\0';
    free(m->bt_text);
    m->bt_text = copy;
    m->bt_have = true;
    m->bt_count++;
    m->bt_task = u64(o, "task");
    m->bt_ok = cj_bool(o, "ok", false);
}

cm_line cm_feed(cm_model *m, char *line, size_t len, int64_t recv_ms)
{
    cj_val *root;
    const char *err;
    cm_line what = CM_BAD;

    cj_arena_reset(&m->arena);
    if (cj_parse(&m->arena, line, len, &root, &err) < 0 || root->type != CJ_OBJ)
        goto out;
    const char *type = cj_str(root, "type");
    if (!type)
        goto out;
    if (strcmp(type, "hello") == 0) {
        parse_hello(m, root);
        what = CM_HELLO;
    } else if (strcmp(type, "snapshot") == 0) {
        cm_snap *s = parse_snapshot(root, recv_ms);
        if (s) {
            take_snapshot(m, s);
            what = CM_SNAPSHOT;
        }
    } else if (strcmp(type, "backtrace") == 0) {
        parse_backtrace(m, root);
        what = CM_BACKTRACE;
    } else {
        what = CM_OTHER;
    }
out:
    cj_arena_reset(&m->arena);
    if (what == CM_BAD)
        m->bad_lines++;
    return what;
}
