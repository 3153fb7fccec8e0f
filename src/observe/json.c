/*
 * The console protocol's lines (docs/console.md) as JSON text: `hello`, the body of a
 * `snapshot`, the answer to `backtrace`, and the history that gives a snapshot its "done"
 * list. Built only from the public snapshot functions (edo/observe.h), on the observer
 * thread (endpoint.c), which owns each edo__history.
 *
 * Everything a program names (tasks, spawn sites, wait texts, backtraces) goes through
 * edo__json_string, so a line stays valid JSON whatever bytes those hold.
 */
#include "observe/observe.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TASKS_MAX 10000     /* tasks listed in one snapshot (the most recently woken) */
#define RESOURCES_MAX 10000 /* resources listed in one snapshot */
#define DONE_MAX 256        /* tasks kept in the "done" list */
#define DONE_AGE_MS 60000   /* and for how long, on the runtime's clock */
#define BACKTRACE_MAX (1 << 20)

/* ---- strings ------------------------------------------------------------------------------ */

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), 0 if there is none. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    unsigned lo = 0x80, hi = 0xbf; /* the range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return n;
}

void edo__json_string(edo__text *t, const char *s, size_t n)
{
    if (!s) {
        edo__text_puts(t, "null");
        return;
    }
    const unsigned char *p = (const unsigned char *)s, *end = p + n, *run = p;
    edo__text_put(t, "\"", 1);
    while (p < end) {
        unsigned c = *p;
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            p++;
            continue;
        }
        size_t len = c >= 0x80 ? utf8_len(p, end) : 0;
        if (len) {
            p += len;
            continue;
        }
        edo__text_put(t, (const char *)run, (size_t)(p - run));
        if (c == '"')
            edo__text_puts(t, "\\\"");
        else if (c == '\\')
            edo__text_puts(t, "\\\\");
        else if (c == '\n')
            edo__text_puts(t, "\\n");
        else if (c == '\t')
            edo__text_puts(t, "\\t");
        else if (c >= 0x80)
            edo__text_puts(t, "\\ufffd"); /* not UTF-8 */
        else
            edo__text_printf(t, "\\u%04x", c);
        run = ++p;
    }
    edo__text_put(t, (const char *)run, (size_t)(p - run));
    edo__text_put(t, "\"", 1);
}

static void json_cstr(edo__text *t, const char *s)
{
    edo__json_string(t, s, s ? strlen(s) : 0);
}

/* A pointer as a string, "0x55d0c2a0"; NULL: null. */
static void json_ptr(edo__text *t, const void *p)
{
    if (p)
        edo__text_printf(t, "\"0x%" PRIxPTR "\"", (uintptr_t)p);
    else
        edo__text_puts(t, "null");
}

/* A time on the runtime's clock in ms; EDO_NEVER: null. */
static void json_ms(edo__text *t, int64_t ms)
{
    if (ms == EDO_NEVER)
        edo__text_puts(t, "null");
    else
        edo__text_printf(t, "%" PRId64, ms);
}

/* ---- hello, backtrace ------------------------------------------------------------------- */

void edo__json_hello(edo__text *t, edo_runtime *rt, int interval_ms)
{
    edo_runtime_info ri;
    edo_runtime_stats(rt, &ri);
    edo__text_printf(t,
                     "{\"type\":\"hello\",\"version\":1,\"pid\":%ld,\"program\":", (long)getpid());
    json_cstr(t, program_invocation_short_name);
    edo__text_puts(t, ",\"backend\":");
    json_cstr(t, edo_backend_name(ri.backend));
    edo__text_printf(t,
                     ",\"workers\":%d,\"interval_ms\":%d,\"blocking_threshold_ms\":%" PRId64 "}\n",
                     ri.workers, interval_ms, ri.blocking_threshold_ms);
}

void edo__json_backtrace(edo__text *t, edo_runtime *rt, uint64_t id)
{
    size_t len = 16384;
    char *buf = NULL;
    int rc;
    for (;;) {
        char *p = realloc(buf, len);
        if (!p) {
            rc = -ENOMEM;
            break;
        }
        buf = p;
        rc = edo_task_backtrace(rt, id, buf, len);
        if (rc < 0 || (size_t)rc < len || len >= BACKTRACE_MAX)
            break;
        len = (size_t)rc + 1 < BACKTRACE_MAX ? (size_t)rc + 1 : BACKTRACE_MAX;
    }
    edo__text_printf(t, "{\"type\":\"backtrace\",\"task\":%" PRIu64 ",\"ok\":", id);
    if (rc >= 0) {
        edo__text_puts(t, "true,\"text\":");
        edo__json_string(t, buf, strnlen(buf, len));
    } else {
        edo__text_puts(t, "false,\"error\":");
        json_cstr(t, rc == -ESRCH    ? "no such task"
                     : rc == -EBUSY  ? "running"
                     : rc == -ENOSYS ? "no unwinder in this build"
                                     : edo_strerror(rc));
    }
    edo__text_puts(t, "}\n");
    free(buf);
}

/* ---- the history: which tasks returned --------------------------------------------------- */

typedef struct seen {
    uint64_t id;
    const char *site; /* a spawn site is a string literal of the program's */
    uint64_t resumes;
    uint64_t busy_ns;
    char name[32];
} seen;

typedef struct done_rec {
    seen s;
    int64_t ended_ms; /* when a snapshot found it gone */
} done_rec;

struct edo__history {
    seen *prev; /* the tasks of the last snapshot, by id */
    size_t nprev;
    done_rec done[DONE_MAX]; /* a ring, oldest at `first` */
    size_t first, ndone;
};

edo__history *edo__history_new(void)
{
    return calloc(1, sizeof(edo__history));
}

void edo__history_free(edo__history *h)
{
    if (!h)
        return;
    free(h->prev);
    free(h);
}

static int seen_cmp(const void *a, const void *b)
{
    uint64_t x = ((const seen *)a)->id, y = ((const seen *)b)->id;
    return x < y ? -1 : x > y;
}

static void done_add(edo__history *h, const seen *s, int64_t now)
{
    if (h->ndone == DONE_MAX) {
        h->first = (h->first + 1) % DONE_MAX;
        h->ndone--;
    }
    done_rec *d = &h->done[(h->first + h->ndone) % DONE_MAX];
    d->s = *s;
    d->ended_ms = now;
    h->ndone++;
}

/* cur (sorted by id) replaces the last snapshot's tasks; those not in it have returned. */
static void history_update(edo__history *h, seen *cur, size_t ncur, int64_t now)
{
    size_t j = 0;
    for (size_t i = 0; i < h->nprev; i++) {
        while (j < ncur && cur[j].id < h->prev[i].id)
            j++;
        if (j == ncur || cur[j].id != h->prev[i].id)
            done_add(h, &h->prev[i], now);
    }
    free(h->prev);
    h->prev = cur;
    h->nprev = ncur;
    /* A clock that jumped back cannot happen (edo_now never goes back), so only age. */
    while (h->ndone && now - h->done[h->first].ended_ms > DONE_AGE_MS) {
        h->first = (h->first + 1) % DONE_MAX;
        h->ndone--;
    }
}

/* ---- collecting the tasks ------------------------------------------------------------------ */

typedef struct heap_ent {
    int64_t key; /* when it was last woken (or spawned) */
    size_t slot; /* in infos */
} heap_ent;

typedef struct task_walk {
    seen *seen;
    size_t nseen, capseen;
    edo_task_info *infos; /* at most TASKS_MAX */
    size_t ninfos, capinfos;
    heap_ent *heap; /* a min-heap over infos once TASKS_MAX are held */
    uint64_t omitted;
    bool failed;
} task_walk;

static int64_t wake_key(const edo_task_info *i)
{
    return i->last_wake != EDO_NEVER ? i->last_wake : i->spawned_at;
}

static void heap_down(heap_ent *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && h[l].key < h[m].key)
            m = l;
        if (r < n && h[r].key < h[m].key)
            m = r;
        if (m == i)
            return;
        heap_ent tmp = h[i];
        h[i] = h[m];
        h[m] = tmp;
        i = m;
    }
}

static bool grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return true;
    size_t c = *cap ? *cap * 2 : 256;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * size);
    if (!q)
        return false;
    *p = q;
    *cap = c;
    return true;
}

static int walk_one(const edo_task_info *info, void *arg)
{
    task_walk *w = arg;
    if (w->failed)
        return 1;
    if (!grow((void **)&w->seen, &w->capseen, w->nseen + 1, sizeof *w->seen)) {
        w->failed = true;
        return 1;
    }
    seen *s = &w->seen[w->nseen++];
    s->id = info->id;
    s->site = info->spawn_site;
    s->resumes = info->resumes;
    s->busy_ns = info->busy_ns;
    memcpy(s->name, info->name, sizeof s->name);
    if (w->ninfos < TASKS_MAX) {
        if (!grow((void **)&w->infos, &w->capinfos, w->ninfos + 1, sizeof *w->infos)) {
            w->failed = true;
            return 1;
        }
        w->infos[w->ninfos++] = *info;
        return 0;
    }
    /* Over the cap: keep the most recently woken. */
    w->omitted++;
    if (!w->heap) {
        w->heap = malloc(TASKS_MAX * sizeof *w->heap);
        if (!w->heap) {
            w->failed = true;
            return 1;
        }
        for (size_t i = 0; i < TASKS_MAX; i++)
            w->heap[i] = (heap_ent){ wake_key(&w->infos[i]), i };
        for (size_t i = TASKS_MAX / 2; i-- > 0;)
            heap_down(w->heap, TASKS_MAX, i);
    }
    int64_t key = wake_key(info);
    if (key > w->heap[0].key) {
        w->infos[w->heap[0].slot] = *info;
        w->heap[0].key = key;
        heap_down(w->heap, TASKS_MAX, 0);
    }
    return 0;
}

static int info_cmp(const void *a, const void *b)
{
    uint64_t x = ((const edo_task_info *)a)->id, y = ((const edo_task_info *)b)->id;
    return x < y ? -1 : x > y;
}

/* ---- the snapshot --------------------------------------------------------------------------- */

static const char *worker_state_name(edo_worker_state s)
{
    switch (s) {
    case EDO_WORKER_RUNNING:
        return "running";
    case EDO_WORKER_SCHEDULING:
        return "scheduling";
    case EDO_WORKER_IDLE:
        return "idle";
    case EDO_WORKER_BLOCKED:
        return "blocked";
    }
    return "unknown";
}

static void json_runtime(edo__text *t, const edo_runtime_info *ri)
{
    edo__text_printf(t,
                     "\"runtime\":{\"tasks_spawned\":%" PRIu64 ",\"tasks_live\":%" PRIu64
                     ",\"tasks_done\":%" PRIu64 ",\"inject_depth\":%" PRIu32
                     ",\"blocking_threads\":%" PRIu32 ",\"blocking_busy\":%" PRIu32
                     ",\"blocking_queued\":%" PRIu64 ",\"blocking_reports\":%" PRIu64
                     ",\"clock_paused\":%s}",
                     ri->tasks_spawned, ri->tasks_live, ri->tasks_done, ri->inject_depth,
                     ri->blocking_threads, ri->blocking_busy, ri->blocking_queued,
                     ri->blocking_reports, ri->clock_paused ? "true" : "false");
}

static void json_workers(edo__text *t, edo_runtime *rt, int n)
{
    edo__text_puts(t, ",\"workers\":[");
    for (int i = 0; i < n; i++) {
        edo_worker_info w;
        if (edo_worker_stats(rt, i, &w) < 0)
            continue;
        edo__text_printf(
            t,
            "%s{\"index\":%d,\"state\":\"%s\",\"task\":%" PRIu64 ",\"task_run_ns\":%" PRIu64
            ",\"queue_depth\":%" PRIu32 ",\"tasks_run\":%" PRIu64 ",\"steals\":%" PRIu64
            ",\"parks\":%" PRIu64 ",\"polls\":%" PRIu64 ",\"events\":%" PRIu64
            ",\"timers_fired\":%" PRIu64 ",\"forced_yields\":%" PRIu64
            ",\"blocking_reports\":%" PRIu64 ",\"handoffs\":%" PRIu64 ",\"busy_ns\":%" PRIu64 "}",
            i ? "," : "", w.index, worker_state_name(w.state), w.task, w.task_run_ns, w.queue_depth,
            w.tasks_run, w.steals, w.parks, w.polls, w.events, w.timers_fired, w.forced_yields,
            w.blocking_reports, w.handoffs, w.busy_ns);
    }
    edo__text_puts(t, "]");
}

static void json_task(edo__text *t, const edo_task_info *i)
{
    edo__text_printf(t, "{\"id\":%" PRIu64 ",\"parent\":%" PRIu64 ",\"name\":", i->id, i->parent);
    edo__json_string(t, i->name, strnlen(i->name, sizeof i->name));
    edo__text_puts(t, ",\"site\":");
    json_cstr(t, i->spawn_site);
    edo__text_printf(t, ",\"state\":\"%s\",\"wait\":\"%s\",\"wait_text\":",
                     edo_task_state_name(i->state), edo_wait_reason_name(i->waiting_on));
    edo__json_string(t, i->wait, strnlen(i->wait, sizeof i->wait));
    edo__text_puts(t, ",\"wait_obj\":");
    json_ptr(t, i->wait_obj);
    if (i->wait_fd >= 0)
        edo__text_printf(t, ",\"wait_fd\":%d", i->wait_fd);
    else
        edo__text_puts(t, ",\"wait_fd\":null");
    edo__text_puts(t, ",\"wait_until_ms\":");
    json_ms(t, i->wait_until);
    if (i->worker >= 0)
        edo__text_printf(t, ",\"worker\":%d", i->worker);
    else
        edo__text_puts(t, ",\"worker\":null");
    edo__text_printf(t,
                     ",\"resumes\":%" PRIu64 ",\"busy_ns\":%" PRIu64 ",\"idle_ns\":%" PRIu64
                     ",\"scheduled_ns\":%" PRIu64 ",\"wakes_self\":%" PRIu64
                     ",\"wakes_other\":%" PRIu64 ",\"last_wake_ms\":",
                     i->resumes, i->busy_ns, i->idle_ns, i->scheduled_ns, i->wakes_self,
                     i->wakes_other);
    json_ms(t, i->last_wake);
    edo__text_printf(
        t, ",\"spawned_ms\":%" PRId64 ",\"stack_size\":%zu,\"stack_used\":%zu,\"run_hist\":[",
        i->spawned_at, i->stack_size, i->stack_used);
    for (int b = 0; b < EDO_RUN_HIST; b++)
        edo__text_printf(t, "%s%" PRIu32, b ? "," : "", i->run_hist[b]);
    edo__text_puts(t, "]}");
}

/* Lists the tasks and updates the history with who is gone. */
static void json_tasks(edo__text *t, edo_runtime *rt, edo__history *h, int64_t now)
{
    task_walk w = { 0 };
    edo_task_list(rt, walk_one, &w);
    if (w.ninfos) /* qsort wants an array even for none */
        qsort(w.infos, w.ninfos, sizeof *w.infos, info_cmp);
    edo__text_puts(t, ",\"tasks\":[");
    for (size_t i = 0; i < w.ninfos; i++) {
        if (i)
            edo__text_puts(t, ",");
        json_task(t, &w.infos[i]);
    }
    edo__text_puts(t, "]");
    if (w.omitted)
        edo__text_printf(t, ",\"tasks_omitted\":%" PRIu64, w.omitted);
    if (w.failed) {
        /* Out of memory: the walk missed tasks, which must not be taken for returned. */
        free(w.seen);
    } else {
        if (w.nseen)
            qsort(w.seen, w.nseen, sizeof *w.seen, seen_cmp);
        history_update(h, w.seen, w.nseen, now);
    }
    free(w.infos);
    free(w.heap);
}

static void json_done(edo__text *t, const edo__history *h)
{
    edo__text_puts(t, ",\"done\":[");
    for (size_t k = 0; k < h->ndone; k++) {
        const done_rec *d = &h->done[(h->first + k) % DONE_MAX];
        edo__text_printf(t, "%s{\"id\":%" PRIu64 ",\"name\":", k ? "," : "", d->s.id);
        edo__json_string(t, d->s.name, strnlen(d->s.name, sizeof d->s.name));
        edo__text_puts(t, ",\"site\":");
        json_cstr(t, d->s.site);
        edo__text_printf(
            t, ",\"ended_ms\":%" PRId64 ",\"resumes\":%" PRIu64 ",\"busy_ns\":%" PRIu64 "}",
            d->ended_ms, d->s.resumes, d->s.busy_ns);
    }
    edo__text_puts(t, "]");
}

typedef struct res_walk {
    edo_resource_info *v;
    size_t n, cap;
    uint64_t omitted;
} res_walk;

/* Runs under the registry's lock: copy, nothing more. */
static int res_one(const edo_resource_info *info, void *arg)
{
    res_walk *w = arg;
    if (w->n == w->cap) {
        w->omitted++;
        return 0;
    }
    w->v[w->n++] = *info;
    return 0;
}

static void json_resources(edo__text *t, edo_runtime *rt)
{
    /* The list cannot grow while the registry's lock is held, so it gets room first: as
     * many as there were a moment ago and some, the rest counted as omitted. */
    res_walk w = { 0 };
    size_t guess = edo_resource_list(rt, res_one, &w);
    w.omitted = 0;
    w.cap = guess + guess / 4 + 16 < RESOURCES_MAX ? guess + guess / 4 + 16 : RESOURCES_MAX;
    w.v = malloc(w.cap * sizeof *w.v);
    if (!w.v)
        w.cap = 0;
    edo_resource_list(rt, res_one, &w);
    edo__text_puts(t, ",\"resources\":[");
    for (size_t k = 0; k < w.n; k++) {
        const edo_resource_info *r = &w.v[k];
        edo__text_puts(t, k ? ",{\"addr\":" : "{\"addr\":");
        edo__text_printf(t, "\"0x%" PRIxPTR "\"", (uintptr_t)r->addr);
        edo__text_printf(t, ",\"kind\":\"%s\",\"holder\":", edo_resource_kind_name(r->kind));
        if (r->holder == EDO_HOLDER_THREAD)
            edo__text_puts(t, "-1");
        else
            edo__text_printf(t, "%" PRIu64, r->holder);
        edo__text_printf(t,
                         ",\"readers\":%" PRIu32 ",\"len\":%" PRIu64 ",\"cap\":%" PRIu64
                         ",\"closed\":%s,\"waiters\":%" PRIu32 ",\"waiter_ids\":[",
                         r->readers, r->len, r->cap, r->closed ? "true" : "false", r->waiters);
        uint32_t shown = r->waiters < EDO_RESOURCE_WAITERS ? r->waiters : EDO_RESOURCE_WAITERS;
        for (uint32_t i = 0; i < shown; i++)
            edo__text_printf(t, "%s%" PRIu64, i ? "," : "", r->waiter_ids[i]);
        edo__text_puts(t, "]}");
    }
    edo__text_puts(t, "]");
    if (w.omitted)
        edo__text_printf(t, ",\"resources_omitted\":%" PRIu64, w.omitted);
    free(w.v);
}

static int blocking_one(const edo_blocking_info *b, void *arg)
{
    edo__text *t = arg;
    bool first = t->len && t->buf[t->len - 1] == '[';
    edo__text_printf(t, "%s{\"task\":%" PRIu64 ",\"name\":", first ? "" : ",", b->task);
    edo__json_string(t, b->name, strnlen(b->name, sizeof b->name));
    edo__text_puts(t, ",\"site\":");
    json_cstr(t, b->spawn_site);
    edo__text_printf(t,
                     ",\"worker\":%d,\"at_ms\":%" PRId64 ",\"ran_ns\":%" PRIu64
                     ",\"total_ns\":%" PRIu64 ",\"stack\":",
                     b->worker, b->at, b->ran_ns, b->total_ns);
    edo__json_string(t, b->stack, strnlen(b->stack, sizeof b->stack));
    edo__text_puts(t, "}");
    return 0;
}

void edo__json_snapshot(edo__text *t, edo_runtime *rt, edo__history *h)
{
    edo_runtime_info ri;
    edo_runtime_stats(rt, &ri);
    edo__text_printf(t, "\"now_ms\":%" PRId64 ",\"uptime_ms\":%" PRIu64 ",", ri.now,
                     ri.uptime_ns / 1000000);
    json_runtime(t, &ri);
    json_workers(t, rt, ri.workers);
    json_tasks(t, rt, h, ri.now);
    json_done(t, h);
    json_resources(t, rt);
    edo__text_puts(t, ",\"blocking\":[");
    edo_blocking_list(rt, blocking_one, t);
    edo__text_puts(t, "]}\n");
}
