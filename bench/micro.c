/*
 * micro - edo's own runtime micro-benchmarks: task switches, spawns, sleeps. (The ports of
 * Tokio's runtime benchmarks are in rtbench.c.)
 *
 *   build/bench/micro [-w WORKERS] [-r REPS] [--only NAME[,NAME...]] [--stack-cache N]
 *                     [--list] [-h]
 *
 * Every bench gets a fresh runtime, one untimed warm-up rep, then R timed reps (default 11)
 * of a fixed amount of work; the figure is the median rep, printed in the BENCH format of
 * ../shared/anchors/run-rt.sh (the harness is bench.c's, see bench.h). -w defaults to the
 * runtime's default (EDO_WORKERS, else the number of CPUs).
 *
 *   yield_switch    2 tasks yield to each other 500 000 times each: ns per switch (a yield
 *                   that hands the worker to the other ready task)
 *   spawn_join      edo_spawn + edo_join of an empty task, one at a time (stacks pooled)
 *   spawn_detached  detached spawns of an empty task, 100 in flight, then a yield until
 *                   they have run: ns per task (spawn, run, reclaim)
 *   sleep0          edo_sleep(0) in a task that is alone: the cost of a yield to nobody
 *   mutex_uncontended  edo_mutex_lock + edo_mutex_unlock by a task that is alone with the
 *                   mutex: ns per pair (the fast path, which takes no spinlock)
 */
#include "bench.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>

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
    return bench_block_on(rt, yield_switch_root, NULL, ns);
}

#define SPAWN_JOIN_N 100000L

static void *spawn_join_root(void *arg)
{
    (void)arg;
    for (long i = 0; i < SPAWN_JOIN_N; i++) {
        edo_task *t;
        int rc = edo_spawn(&t, bench_empty_task, NULL);
        if (rc < 0)
            return PTR(rc);
        if ((rc = edo_join(t, NULL)) < 0)
            return PTR(rc);
    }
    return NULL;
}

static int spawn_join(edo_runtime *rt, int64_t *ns)
{
    return bench_block_on(rt, spawn_join_root, NULL, ns);
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
    return bench_block_on(rt, spawn_detached_root, NULL, ns);
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
    return bench_block_on(rt, sleep0_root, NULL, ns);
}

#define MUTEX_N 10000000L

static void *mutex_uncontended_root(void *arg)
{
    edo_mutex *m;
    int rc = edo_mutex_new(&m);
    (void)arg;
    if (rc < 0)
        return PTR(rc);
    for (long i = 0; i < MUTEX_N && rc == 0; i++) {
        rc = edo_mutex_lock(m);
        if (rc == 0)
            edo_mutex_unlock(m);
    }
    edo_mutex_free(m);
    return PTR(rc);
}

static int mutex_uncontended(edo_runtime *rt, int64_t *ns)
{
    return bench_block_on(rt, mutex_uncontended_root, NULL, ns);
}

/* ---- the benches ---------------------------------------------------------------------- */

static const struct bench benches[] = {
    { "yield_switch", SWITCH_ITERS, 11, 0, yield_switch, NULL },
    { "spawn_join", SPAWN_JOIN_N, 11, 0, spawn_join, NULL },
    { "spawn_detached", DETACHED_N, 11, 0, spawn_detached, NULL },
    { "sleep0", SLEEP0_N, 11, 0, sleep0, NULL },
    { "mutex_uncontended", MUTEX_N, 11, 0, mutex_uncontended, NULL },
};

int main(int argc, char **argv)
{
    static const struct bench_program prog = {
        .name = "micro",
        .about = "edo's runtime micro-benchmarks (median of reps)",
        .default_workers = 0,
        .benches = benches,
        .count = sizeof benches / sizeof benches[0],
    };
    return bench_main(&prog, argc, argv);
}
