/*
 * micro - runtime micro-benchmarks: task switches, spawns, sleeps, and ports of Tokio's
 * runtime benchmarks (tokio-rtbench, see ../shared/anchors/tokio/README.md).
 *
 *   build/bench/micro [-w WORKERS] [--only NAME[,NAME...]] [--reps R] [--stack-cache N]
 *                     [--list] [-h]
 *
 * Every bench gets a fresh runtime, runs one untimed warm-up rep, then R timed reps of a
 * fixed amount of work, and reports the median rep, like tokio-rtbench. One line per bench
 * on stdout, in the format ../shared/anchors/run-rt.sh reads:
 *
 *   BENCH name=<name> iters=<ops per rep> ns_per_op=<median rep ns / iters> total_ms=<..>
 *
 * and "#   <name> reps=R min_ms=.. median_ms=.. max_ms=.." on stderr. A rep is timed
 * with CLOCK_MONOTONIC on the main thread around all of it, edo_block_on included.
 *
 * edo's own benches:
 *   yield_switch    2 tasks yield to each other 500 000 times each: ns per switch (a yield
 *                   that hands the worker to the other ready task)
 *   spawn_join      edo_spawn + edo_join of an empty task, one at a time (stacks pooled)
 *   spawn_detached  detached spawns of an empty task, 100 in flight, then a yield until
 *                   they have run: ns per task (spawn, run, reclaim)
 *   sleep0          edo_sleep(0) in a task that is alone: the cost of a yield to nobody
 *
 * Ports of tokio-rtbench (same shape, same counts, same default reps):
 *   spawn_many_local, spawn_many_local_blockon, spawn_many_remote_idle, yield_many,
 *   chained_spawn, timers, timer_churn, tcp_connect_accept.
 * Not ported, because the public API has no channels yet: ping_pong (oneshot channels),
 * mpsc_bounded_uncontended and mpsc_contended. Nor timer_insert_cancel: it arms a timer
 * and drops it without ever waiting on it, and in edo a timer is only armed by a call
 * that suspends, which then either waits for it or is woken by something else (an abort,
 * a socket), costs that Tokio's bench does not include.
 *
 * Tokio's benches signal "all done" with a Notify; edo has no such primitive yet, so a
 * latch stands in: a task that sleeps until it is aborted, aborted by the last task to
 * finish, and joined by whoever waits.
 */
#include <edo.h>

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#define RC(p) ((int)(intptr_t)(p))
#define PTR(rc) ((void *)(intptr_t)(rc))

/* ---- helpers ------------------------------------------------------------------------- */

/* Completion latch (see the top comment). Create it before the tasks that hit it. */
struct latch {
    atomic_long left;
    edo_task *waiter;
};

static void *latch_park(void *arg)
{
    (void)arg;
    while (edo_sleep(3600 * 1000) == 0)
        ;
    return NULL;
}

/* From a task or from outside the runtime. */
static int latch_init(struct latch *l, edo_runtime *rt, long n)
{
    atomic_init(&l->left, n);
    return edo_runtime_spawn(rt, &l->waiter, latch_park, NULL);
}

static void latch_hit_n(struct latch *l, long n)
{
    if (atomic_fetch_sub_explicit(&l->left, n, memory_order_acq_rel) == n)
        edo_abort(l->waiter);
}

static void latch_hit(struct latch *l)
{
    latch_hit_n(l, 1);
}

/* A spawn failed, so n tasks will never hit the latch: take them off it, and remember the
 * error for the rep to return. */
static atomic_int spawn_error;

static void spawn_failed(struct latch *l, long n, int err)
{
    int none = 0;
    atomic_compare_exchange_strong(&spawn_error, &none, err);
    latch_hit_n(l, n);
}

/* Returns rc, or the first spawn error since the last call. */
static int take_spawn_error(int rc)
{
    int err = atomic_exchange(&spawn_error, 0);
    return rc < 0 ? rc : err;
}

/* From a task: waits until the count reaches 0. */
static int latch_wait(struct latch *l)
{
    int rc = edo_join(l->waiter, NULL);
    return rc == -ECANCELED ? 0 : rc; /* -ECANCELED: it was aborted, as it should be */
}

/* splitmix64, as in tokio-rtbench: deterministic sleep lengths for `timers`. */
static uint64_t mix(uint64_t i)
{
    uint64_t z = i + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void *empty_task(void *arg)
{
    return arg;
}

static void *hit_task(void *arg)
{
    latch_hit(arg);
    return NULL;
}

/* Times one edo_block_on(rt, root, arg); stores the wall time in *ns. */
static int timed_block_on(edo_runtime *rt, void *(*root)(void *), void *arg, int64_t *ns)
{
    void *result = NULL;
    int64_t t0 = now_ns();
    int rc = edo_block_on(rt, root, arg, &result);
    *ns = now_ns() - t0;
    return rc < 0 ? rc : RC(result);
}

/* ---- edo's own benches ---------------------------------------------------------------- */

#define SWITCH_TASKS 2
#define SWITCH_YIELDS 500000L /* per task */
#define SWITCH_ITERS (SWITCH_TASKS * SWITCH_YIELDS)

static void *yielder(void *arg)
{
    (void)arg;
    for (long i = 0; i < SWITCH_YIELDS; i++)
        if (edo_yield() < 0)
            return PTR(-ECANCELED);
    return NULL;
}

static void *yield_switch_root(void *arg)
{
    edo_task *t[SWITCH_TASKS];
    int n = 0, rc = 0;
    (void)arg;
    for (; n < SWITCH_TASKS; n++)
        if ((rc = edo_spawn(&t[n], yielder, NULL)) < 0)
            break;
    for (int i = 0; i < n; i++) {
        void *res;
        int jrc = edo_join(t[i], &res);
        if (jrc < 0 || RC(res) < 0)
            rc = jrc < 0 ? jrc : RC(res);
    }
    return PTR(rc);
}

static int yield_switch(edo_runtime *rt, int64_t *ns)
{
    return timed_block_on(rt, yield_switch_root, NULL, ns);
}

#define SPAWN_JOIN_N 100000L

static void *spawn_join_root(void *arg)
{
    (void)arg;
    for (long i = 0; i < SPAWN_JOIN_N; i++) {
        edo_task *t;
        int rc = edo_spawn(&t, empty_task, NULL);
        if (rc < 0)
            return PTR(rc);
        if ((rc = edo_join(t, NULL)) < 0)
            return PTR(rc);
    }
    return NULL;
}

static int spawn_join(edo_runtime *rt, int64_t *ns)
{
    return timed_block_on(rt, spawn_join_root, NULL, ns);
}

#define DETACHED_N 100000L
#define DETACHED_BATCH 100

static void *count_task(void *arg)
{
    atomic_fetch_add_explicit((atomic_long *)arg, 1, memory_order_release);
    return NULL;
}

static void *spawn_detached_root(void *arg)
{
    atomic_long ran;
    (void)arg;
    atomic_init(&ran, 0);
    for (long i = 0; i < DETACHED_N; i += DETACHED_BATCH) {
        for (int j = 0; j < DETACHED_BATCH; j++) {
            int rc = edo_spawn(NULL, count_task, &ran);
            if (rc < 0)
                return PTR(rc);
        }
        while (atomic_load_explicit(&ran, memory_order_acquire) < i + DETACHED_BATCH)
            if (edo_yield() < 0)
                return PTR(-ECANCELED);
    }
    return NULL;
}

static int spawn_detached(edo_runtime *rt, int64_t *ns)
{
    return timed_block_on(rt, spawn_detached_root, NULL, ns);
}

#define SLEEP0_N 1000000L

static void *sleep0_root(void *arg)
{
    (void)arg;
    for (long i = 0; i < SLEEP0_N; i++) {
        int rc = edo_sleep(0);
        if (rc < 0)
            return PTR(rc);
    }
    return NULL;
}

static int sleep0(edo_runtime *rt, int64_t *ns)
{
    return timed_block_on(rt, sleep0_root, NULL, ns);
}

/* ---- ports of tokio-rtbench ----------------------------------------------------------- */

#define NUM_SPAWN 10000L

/* The root task spawns one task; that one spawns 10 000 tasks that each hit the latch. */
static void *spawn_many_spawner(void *arg)
{
    for (long i = 0; i < NUM_SPAWN; i++) {
        int rc = edo_spawn(NULL, hit_task, arg);
        if (rc < 0) {
            spawn_failed(arg, NUM_SPAWN - i, rc);
            break;
        }
    }
    return NULL;
}

static void *spawn_many_local_root(void *arg)
{
    struct latch l;
    int rc = latch_init(&l, edo_runtime_current(), NUM_SPAWN);
    (void)arg;
    if (rc < 0)
        return PTR(rc);
    if ((rc = edo_spawn(NULL, spawn_many_spawner, &l)) < 0)
        spawn_failed(&l, NUM_SPAWN, rc);
    return PTR(take_spawn_error(latch_wait(&l)));
}

static int spawn_many_local(edo_runtime *rt, int64_t *ns)
{
    return timed_block_on(rt, spawn_many_local_root, NULL, ns);
}

/* Tokio's exact shape: the 10 000 spawns come from the block_on future, here the root task
 * (which, unlike Tokio's block_on thread, is a task on a worker). */
static void *spawn_many_blockon_root(void *arg)
{
    struct latch l;
    int rc = latch_init(&l, edo_runtime_current(), NUM_SPAWN);
    (void)arg;
    if (rc < 0)
        return PTR(rc);
    spawn_many_spawner(&l);
    return PTR(take_spawn_error(latch_wait(&l)));
}

static int spawn_many_local_blockon(edo_runtime *rt, int64_t *ns)
{
    return timed_block_on(rt, spawn_many_blockon_root, NULL, ns);
}

/* From the main thread, outside the runtime: 10 000 edo_runtime_spawn of an empty task,
 * then edo_block_on a task that joins every handle in order. */
static edo_task *remote_handles[NUM_SPAWN];

static void *join_all_root(void *arg)
{
    long n = (long)(intptr_t)arg;
    int rc = 0;
    for (long i = 0; i < n; i++) {
        int jrc = edo_join(remote_handles[i], NULL);
        if (jrc < 0)
            rc = jrc;
    }
    return PTR(rc);
}

static int spawn_many_remote_idle(edo_runtime *rt, int64_t *ns)
{
    void *result = NULL;
    long n = 0;
    int rc = 0;
    int64_t t0 = now_ns();
    for (; n < NUM_SPAWN; n++)
        if ((rc = edo_runtime_spawn(rt, &remote_handles[n], empty_task, NULL)) < 0)
            break;
    int brc = edo_block_on(rt, join_all_root, PTR(n), &result);
    *ns = now_ns() - t0;
    if (rc < 0)
        return rc;
    return brc < 0 ? brc : RC(result);
}

/* From the main thread: 1 000 tasks, each yielding 1 000 times, then hitting the latch;
 * the main thread waits in edo_block_on. */
#define YIELD_TASKS 1000L
#define NUM_YIELD 1000L
#define YIELD_ITERS (YIELD_TASKS * NUM_YIELD)

static void *yield_many_task(void *arg)
{
    for (long i = 0; i < NUM_YIELD; i++)
        if (edo_yield() < 0)
            break;
    latch_hit(arg);
    return NULL;
}

static void *latch_wait_root(void *arg)
{
    return PTR(latch_wait(arg));
}

static int yield_many(edo_runtime *rt, int64_t *ns)
{
    struct latch l;
    int64_t t0 = now_ns();
    int rc = latch_init(&l, rt, YIELD_TASKS);
    if (rc < 0)
        return rc;
    for (long i = 0; i < YIELD_TASKS; i++) {
        if ((rc = edo_runtime_spawn(rt, NULL, yield_many_task, &l)) < 0) {
            spawn_failed(&l, YIELD_TASKS - i, rc);
            break;
        }
    }
    void *result = NULL;
    rc = edo_block_on(rt, latch_wait_root, &l, &result);
    *ns = now_ns() - t0;
    return take_spawn_error(rc < 0 ? rc : RC(result));
}

/* The root task spawns a task that spawns a task ... 1 000 deep; the last one hits the
 * latch. Only one link is alive at a time, so a plain counter is enough. */
#define CHAIN 1000L

struct chain {
    long left;
    struct latch latch;
};

static void *chain_link(void *arg)
{
    struct chain *c = arg;
    if (c->left == 0) {
        latch_hit(&c->latch);
        return NULL;
    }
    c->left--;
    int rc = edo_spawn(NULL, chain_link, c);
    if (rc < 0)
        spawn_failed(&c->latch, 1, rc);
    return NULL;
}

static void *chained_spawn_root(void *arg)
{
    struct chain c = { .left = CHAIN };
    int rc = latch_init(&c.latch, edo_runtime_current(), 1);
    (void)arg;
    if (rc < 0)
        return PTR(rc);
    if ((rc = edo_spawn(NULL, chain_link, &c)) < 0)
        spawn_failed(&c.latch, 1, rc);
    return PTR(take_spawn_error(latch_wait(&c.latch)));
}

static int chained_spawn(edo_runtime *rt, int64_t *ns)
{
    return timed_block_on(rt, chained_spawn_root, NULL, ns);
}

/* Inside one task, 100 000 tasks; task i sleeps 1 + mix(i) % 50 ms, then hits the latch.
 * Reported: (wall - 50 ms) / 100 000. (Tokio runs the body in a task spawned from
 * block_on; here the root task is already a task on the worker.) */
#define NUM_TIMERS 100000L
#define TIMER_MAX_MS 50

static struct latch timers_latch;

static void *timer_task(void *arg)
{
    edo_sleep((int64_t)(intptr_t)arg);
    latch_hit(&timers_latch);
    return NULL;
}

static void *timers_root(void *arg)
{
    int rc = latch_init(&timers_latch, edo_runtime_current(), NUM_TIMERS);
    (void)arg;
    if (rc < 0)
        return PTR(rc);
    for (long i = 0; i < NUM_TIMERS; i++) {
        int64_t ms = 1 + (int64_t)(mix((uint64_t)i) % TIMER_MAX_MS);
        if ((rc = edo_spawn(NULL, timer_task, PTR(ms))) < 0) {
            spawn_failed(&timers_latch, NUM_TIMERS - i, rc);
            break;
        }
    }
    return PTR(take_spawn_error(latch_wait(&timers_latch)));
}

static int timers(edo_runtime *rt, int64_t *ns)
{
    return timed_block_on(rt, timers_root, NULL, ns);
}

/* Inside one task, 1 000 000 times: a 10 s timeout around an operation that is already
 * complete. Tokio: timeout(10 s, ready(i)).await, which reads the clock and creates and
 * drops a timer entry without inserting it. edo: a deadline scope around the same
 * non-suspending work: read the clock, set the deadline, restore the previous one. */
#define CHURN 1000000L

static volatile uint64_t churn_sink;

static void *timer_churn_root(void *arg)
{
    uint64_t acc = 0;
    (void)arg;
    for (long i = 0; i < CHURN; i++) {
        int64_t prev = edo_set_deadline(edo_now() + 10000);
        acc += (uint64_t)i;
        edo_set_deadline(prev);
    }
    churn_sink = acc;
    return NULL;
}

static int timer_churn(edo_runtime *rt, int64_t *ns)
{
    return timed_block_on(rt, timer_churn_root, NULL, ns);
}

/* Inside one task, 10 000 times over loopback: connect, accept, close the accepted socket,
 * close the client socket. The listener (127.0.0.1:0, backlog 1024) is made before the
 * clock starts and closed at the end of the timed task. */
#define NUM_CONNS 10000L

struct tcp_bench {
    edo_io *lis;
    char addr[48];
};

static void *tcp_listen_root(void *arg)
{
    struct tcp_bench *tb = arg;
    int rc = edo_tcp_listen(&tb->lis, "127.0.0.1:0", 1024);
    if (rc < 0)
        return PTR(rc);
    if ((rc = edo_local_addr(tb->lis, tb->addr, sizeof tb->addr)) < 0)
        edo_close(tb->lis);
    return PTR(rc);
}

static void *tcp_connect_accept_root(void *arg)
{
    struct tcp_bench *tb = arg;
    int rc = 0;
    for (long i = 0; i < NUM_CONNS; i++) {
        edo_io *c, *s;
        if ((rc = edo_tcp_connect(&c, tb->addr, 5000)) < 0) {
            edo_fail(rc, "connect");
            break;
        }
        if ((rc = edo_tcp_accept(tb->lis, &s)) < 0) {
            edo_fail(rc, "accept");
            edo_close(c);
            break;
        }
        edo_close(s);
        edo_close(c);
    }
    edo_close(tb->lis);
    return PTR(rc);
}

static int tcp_connect_accept(edo_runtime *rt, int64_t *ns)
{
    struct tcp_bench tb;
    int rc = edo_block_on(rt, tcp_listen_root, &tb, NULL);
    if (rc < 0)
        return rc;
    return timed_block_on(rt, tcp_connect_accept_root, &tb, ns);
}

/* ---- harness -------------------------------------------------------------------------- */

struct bench {
    const char *name;
    long iters;
    int reps;         /* default timed reps */
    int64_t floor_ns; /* subtracted from the median before dividing (timers) */
    int (*rep)(edo_runtime *rt, int64_t *ns);
};

static const struct bench benches[] = {
    { "yield_switch", SWITCH_ITERS, 11, 0, yield_switch },
    { "spawn_join", SPAWN_JOIN_N, 11, 0, spawn_join },
    { "spawn_detached", DETACHED_N, 11, 0, spawn_detached },
    { "sleep0", SLEEP0_N, 11, 0, sleep0 },
    { "spawn_many_local", NUM_SPAWN, 101, 0, spawn_many_local },
    { "spawn_many_local_blockon", NUM_SPAWN, 101, 0, spawn_many_local_blockon },
    { "spawn_many_remote_idle", NUM_SPAWN, 101, 0, spawn_many_remote_idle },
    { "yield_many", YIELD_ITERS, 5, 0, yield_many },
    { "chained_spawn", CHAIN, 1001, 0, chained_spawn },
    { "timers", NUM_TIMERS, 5, TIMER_MAX_MS * 1000000L, timers },
    { "timer_churn", CHURN, 5, 0, timer_churn },
    { "tcp_connect_accept", NUM_CONNS, 5, 0, tcp_connect_accept },
};
#define NBENCH (sizeof benches / sizeof benches[0])

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Runs one bench on a fresh runtime; returns 0 or -errno. */
static int run_bench(const struct bench *b, const edo_runtime_opts *opts, int reps)
{
    edo_runtime *rt;
    int64_t warm, *t;
    int rc;

    if (reps <= 0)
        reps = b->reps;
    t = calloc((size_t)reps, sizeof *t);
    if (!t)
        return -ENOMEM;
    rc = edo_runtime_new(&rt, opts);
    if (rc < 0) {
        free(t);
        return rc;
    }
    rc = b->rep(rt, &warm);
    for (int i = 0; rc >= 0 && i < reps; i++)
        rc = b->rep(rt, &t[i]);
    edo_runtime_free(rt);
    if (rc < 0) {
        free(t);
        return rc;
    }

    qsort(t, (size_t)reps, sizeof *t, cmp_i64);
    int64_t med = reps % 2 ? t[reps / 2] : (t[reps / 2 - 1] + t[reps / 2]) / 2;
    int64_t net = med > b->floor_ns ? med - b->floor_ns : 0;
    printf("BENCH name=%s iters=%ld ns_per_op=%.2f total_ms=%.3f\n", b->name, b->iters,
           (double)net / (double)b->iters, (double)med / 1e6);
    fflush(stdout);
    fprintf(stderr, "#   %s reps=%d min_ms=%.3f median_ms=%.3f max_ms=%.3f", b->name, reps,
            (double)t[0] / 1e6, (double)med / 1e6, (double)t[reps - 1] / 1e6);
    if (b->floor_ns)
        fprintf(stderr, " floor_ms=%lld", (long long)(b->floor_ns / 1000000));
    fputc('\n', stderr);
    free(t);
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: micro [-w WORKERS] [--only NAME[,NAME...]] [--reps R] [--stack-cache N]\n"
                 "             [--list] [-h]\n"
                 "  -w WORKERS       runtime worker threads (default: EDO_WORKERS, else 1)\n"
                 "  --only NAMES     run only these benches (comma-separated; see --list)\n"
                 "  --reps R         timed reps per bench (default: per bench, as tokio-rtbench)\n"
                 "  --stack-cache N  free stacks the runtime keeps (default: the runtime's)\n"
                 "  --list           print the bench names and exit\n"
                 "Prints: BENCH name=<name> iters=<n> ns_per_op=<median> total_ms=<median rep>\n");
}

static bool parse_num(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* Is name in the comma-separated list? */
static bool listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return true;
        p += len + (e != NULL);
    }
    return false;
}

int main(int argc, char **argv)
{
    edo_runtime_opts opts = { 0 };
    const char *only = NULL;
    long workers = 0, reps = 0, cache = 0;
    int failed = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--list")) {
            for (size_t b = 0; b < NBENCH; b++)
                puts(benches[b].name);
            return 0;
        } else if (!strcmp(a, "-w") || !strcmp(a, "--workers")) {
            if (!v || !parse_num(v, 1, INT_MAX, &workers))
                goto bad;
            i++;
        } else if (!strcmp(a, "--only")) {
            if (!v)
                goto bad;
            only = v;
            i++;
        } else if (!strcmp(a, "--reps")) {
            if (!v || !parse_num(v, 1, 1000000, &reps))
                goto bad;
            i++;
        } else if (!strcmp(a, "--stack-cache")) {
            if (!v || !parse_num(v, 0, LONG_MAX, &cache))
                goto bad;
            i++;
        } else {
            goto bad;
        }
    }
    if (only) {
        for (const char *p = only; *p;) {
            const char *e = strchr(p, ',');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            bool known = false;
            for (size_t b = 0; b < NBENCH; b++)
                known |= strlen(benches[b].name) == len && !strncmp(benches[b].name, p, len);
            if (!known) {
                fprintf(stderr, "micro: unknown bench '%.*s' (try --list)\n", (int)len, p);
                return 2;
            }
            p += len + (e != NULL);
        }
    }

    opts.workers = (int)workers;
    opts.stack_cache = (size_t)cache;
    /* A runtime that refuses these options would fail every bench: say so once. */
    edo_runtime *probe;
    int rc = edo_runtime_new(&probe, &opts);
    if (rc < 0) {
        fprintf(stderr, "micro: cannot start a runtime with %ld workers: %s\n",
                workers ? workers : 1, edo_strerror(rc));
        return 1;
    }
    edo_runtime_free(probe);
    if (workers)
        fprintf(stderr, "# micro workers=%ld statistic=median\n", workers);
    else
        fprintf(stderr, "# micro workers=default statistic=median\n");
    for (size_t b = 0; b < NBENCH; b++) {
        if (only && !listed(only, benches[b].name))
            continue;
        rc = run_bench(&benches[b], &opts, (int)reps);
        if (rc < 0) {
            fprintf(stderr, "micro: %s: %s\n", benches[b].name, edo_strerror(rc));
            failed = 1;
        }
    }
    return failed;

bad:
    usage(stderr);
    return 2;
}
