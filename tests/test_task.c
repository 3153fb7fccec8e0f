/*
 * Tasks: spawn and join, detached tasks, start order, yield, identity and names, task
 * lists and counters, abort at every kind of suspension point, foreign threads, shutdown
 * with parked tasks, edo_block_on and edo_main.
 */
#include "harness.h"

#include <pthread.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

static void *ret_arg(void *arg)
{
    return arg;
}

static void *ret_after_yields(void *arg)
{
    for (int i = 0; i < 5; i++)
        CHECK_EQ(edo_yield(), 0);
    return arg;
}

static void *sleep_long(void *arg)
{
    int rc = edo_sleep(1000000);
    return arg ? arg : VAL(rc);
}

static void yield_n(int n)
{
    for (int i = 0; i < n; i++)
        CHECK_EQ(edo_yield(), 0);
}

/* ---------------------------------------------------------------------------------------- */

static void *spawn_join_root(void *unused)
{
    edo_task *t = NULL;
    void *res = NULL;
    CHECK_OK(edo_spawn(&t, ret_arg, VAL(42)));
    CHECK(t != NULL);
    CHECK_EQ(edo_join(t, &res), 0);
    CHECK_EQ(INT(res), 42);

    /* Joining a task that has already returned hands over the value it left behind. */
    CHECK_OK(edo_spawn(&t, ret_arg, VAL(7)));
    test_wait_done(t);
    res = NULL;
    CHECK_EQ(edo_join(t, &res), 0);
    CHECK_EQ(INT(res), 7);

    CHECK_OK(edo_spawn(&t, ret_after_yields, VAL(8)));
    CHECK_EQ(edo_join(t, NULL), 0);

    /* Joined in the reverse of the order they finish in. */
    edo_task *ts[16];
    for (int i = 0; i < 16; i++)
        CHECK_OK(edo_spawn(&ts[i], ret_after_yields, VAL(100 + i)));
    for (int i = 15; i >= 0; i--) {
        CHECK_EQ(edo_join(ts[i], &res), 0);
        CHECK_EQ(INT(res), 100 + i);
    }
    return VAL(99);
}

static void case_spawn_join(void)
{
    CHECK_EQ(INT(test_run(spawn_join_root, NULL)), 99);
}

/* ---------------------------------------------------------------------------------------- */

static void *count_up(void *arg)
{
    atomic_int *count = arg;
    CHECK_EQ(edo_yield(), 0);
    CHECK_EQ(edo_sleep(1), 0);
    atomic_fetch_add(count, 1);
    return NULL;
}

static int count_visit(const edo_task_info *info, void *arg)
{
    return 0;
}

/* Run order is a promise of one worker: with more, another worker may start a task at
 * once. Cases that check the order run with one. */
static const edo_runtime_opts one_worker = { .workers = 1 };

static size_t live_tasks(void)
{
    return edo_task_list(edo_runtime_current(), count_visit, NULL);
}

static void *detached_root(void *unused)
{
    atomic_int count = 0;
    for (int i = 0; i < 100; i++)
        CHECK_OK(edo_spawn(NULL, count_up, &count));
    WAIT_UNTIL(count == 100, 5000);

    /* A detached handle: the task runs on. */
    edo_task *t;
    CHECK_OK(edo_spawn(&t, count_up, &count));
    edo_detach(t);
    WAIT_UNTIL(count == 101, 5000);

    /* Detached after it returned: reclaimed at once (ASan's leak check would see it). */
    CHECK_OK(edo_spawn(&t, ret_arg, NULL));
    test_wait_done(t);
    edo_detach(t);

    /* Only the root is left once the detached tasks are reclaimed. */
    WAIT_UNTIL(live_tasks() == 1, 2000);
    return NULL;
}

static const test_root case_detached = { .fn = detached_root };

/* ---------------------------------------------------------------------------------------- */

static void *set_flag(void *arg)
{
    *(int *)arg = 1;
    return NULL;
}

static void *start_order_root(void *unused)
{
    int flag = 0;
    edo_task *t;
    CHECK_OK(edo_spawn(&t, set_flag, &flag));
    /* Calls that do not suspend do not let the new task in. */
    (void)edo_now();
    (void)edo_task_id(t);
    for (volatile int i = 0; i < 100000; i++) {
    }
    CHECK_EQ(flag, 0);
    edo_task_info info;
    edo_task_stats(t, &info);
    CHECK_EQ(info.state, EDO_TASK_READY);
    CHECK_EQ(info.resumes, 0);
    CHECK_EQ(edo_yield(), 0);
    CHECK_EQ(flag, 1);
    CHECK_EQ(edo_join(t, NULL), 0);

    /* Every task that was ready runs before a yielding task continues. */
    int flags[5] = { 0 };
    edo_task *ts[5];
    for (int i = 0; i < 5; i++)
        CHECK_OK(edo_spawn(&ts[i], set_flag, &flags[i]));
    CHECK_EQ(edo_yield(), 0);
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(flags[i], 1);
        CHECK_EQ(edo_join(ts[i], NULL), 0);
    }

    /* Suspending in a sleep lets it in too. */
    flag = 0;
    CHECK_OK(edo_spawn(&t, set_flag, &flag));
    CHECK_EQ(edo_sleep(0), 0);
    CHECK_EQ(flag, 1);
    CHECK_EQ(edo_join(t, NULL), 0);
    return NULL;
}

static const test_root case_start_order = { .fn = start_order_root, .opts = &one_worker };

/* ---------------------------------------------------------------------------------------- */

enum { RR_ROUNDS = 200 };

typedef struct rr_log {
    char *log;
    int n;
} rr_log;

typedef struct rr_arg {
    rr_log *log;
    char who;
} rr_arg;

static void *rr_task(void *arg)
{
    rr_arg *a = arg;
    for (int i = 0; i < RR_ROUNDS; i++) {
        a->log->log[a->log->n++] = a->who;
        CHECK_EQ(edo_yield(), 0);
    }
    return NULL;
}

static void rr_check(int ntasks)
{
    rr_log log = { malloc(RR_ROUNDS * 3 + 1), 0 };
    rr_arg args[3];
    edo_task *ts[3];
    for (int i = 0; i < ntasks; i++) {
        args[i] = (rr_arg){ &log, (char)('A' + i) };
        CHECK_OK(edo_spawn(&ts[i], rr_task, &args[i]));
    }
    for (int i = 0; i < ntasks; i++)
        CHECK_EQ(edo_join(ts[i], NULL), 0);
    CHECK_EQ(log.n, RR_ROUNDS * ntasks);
    log.log[log.n] = 0;
    /* Strict rotation: each task runs once per round, always in the same order. */
    for (int i = 0; i < log.n; i++) {
        if (i > 0)
            CHECK_MSG(log.log[i] != log.log[i - 1], "at %d: %.40s", i,
                      log.log + (i > 20 ? i - 20 : 0));
        if (i >= ntasks)
            CHECK_MSG(log.log[i] == log.log[i - ntasks], "at %d: %.40s", i,
                      log.log + (i > 20 ? i - 20 : 0));
    }
    free(log.log);
}

static void *round_robin_root(void *unused)
{
    rr_check(2);
    rr_check(3);
    return NULL;
}

static const test_root case_yield_round_robin = { .fn = round_robin_root, .opts = &one_worker };

/* ---------------------------------------------------------------------------------------- */

typedef struct ident {
    uint64_t id;
    edo_task *self;
    char name[40];
    edo_runtime *rt;
} ident;

static void *ident_task(void *arg)
{
    ident *d = arg;
    d->id = edo_task_id(NULL);
    d->self = edo_self();
    snprintf(d->name, sizeof d->name, "%s", edo_task_name(NULL));
    d->rt = edo_runtime_current();
    CHECK(!edo_aborted());
    return NULL;
}

static void *rename_task(void *arg)
{
    edo_set_name(arg);
    CHECK_EQ(edo_sleep(1000000), -ECANCELED);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void *identity_root(void *arg)
{
    edo_runtime *rt = arg;
    CHECK(edo_runtime_current() == rt);
    CHECK(edo_self() != NULL);
    CHECK_NE(edo_task_id(NULL), 0);
    CHECK_EQ(edo_task_id(NULL), edo_task_id(edo_self()));

    enum { N = 100, SEQ = 1000 };
    ident *ids = calloc(N, sizeof *ids);
    edo_task *ts[N];
    for (int i = 0; i < N; i++)
        CHECK_OK(edo_spawn(&ts[i], ident_task, &ids[i]));
    uint64_t *all = malloc((N + SEQ + 1) * sizeof *all);
    int n = 0;
    uint64_t handle_id[N];
    for (int i = 0; i < N; i++) {
        handle_id[i] = edo_task_id(ts[i]);
        CHECK_STR_EQ(edo_task_name(ts[i]), "task");
        CHECK_EQ(edo_join(ts[i], NULL), 0); /* then its writes are seen, on any worker */
    }
    for (int i = 0; i < N; i++) {
        CHECK_NE(ids[i].id, 0);
        CHECK_EQ(handle_id[i], ids[i].id);
        CHECK(ids[i].self != NULL);
        CHECK_STR_EQ(ids[i].name, "task");
        CHECK(ids[i].rt == rt);
        all[n++] = ids[i].id;
    }
    /* Never reused, not even by tasks that get the memory of finished ones. */
    for (int i = 0; i < SEQ; i++) {
        ident d;
        edo_task *t;
        CHECK_OK(edo_spawn(&t, ident_task, &d));
        CHECK_EQ(edo_join(t, NULL), 0);
        all[n++] = d.id;
    }
    all[n++] = edo_task_id(NULL);
    qsort(all, (size_t)n, sizeof *all, cmp_u64);
    for (int i = 1; i < n; i++)
        CHECK_MSG(all[i] != all[i - 1], "task id %" PRIu64 " seen twice", all[i]);
    free(all);
    free(ids);

    /* Names: given at spawn (copied), renamed from inside, truncated to 31 bytes. */
    char name[32] = "worker-7";
    edo_spawn_opts opts = { .name = name };
    ident d;
    edo_task *t;
    CHECK_OK(edo_spawn_with(&t, &opts, ident_task, &d));
    strcpy(name, "clobbered");
    CHECK_STR_EQ(edo_task_name(t), "worker-7");
    CHECK_EQ(edo_join(t, NULL), 0);
    CHECK_STR_EQ(d.name, "worker-7");

    opts.name = NULL;
    CHECK_OK(edo_spawn_with(&t, &opts, ident_task, &d));
    CHECK_EQ(edo_join(t, NULL), 0);
    CHECK_STR_EQ(d.name, "task");

    CHECK_OK(edo_spawn(&t, rename_task, "renamed"));
    test_wait_parked(t, EDO_WAIT_SLEEP); /* renamed before it parked */
    CHECK_STR_EQ(edo_task_name(t), "renamed");
    edo_abort(t);
    CHECK_EQ(edo_join(t, NULL), -EDO_EABORTED);

    const char *longname = "0123456789abcdefghijklmnopqrstuvwxyzABCD";
    CHECK_OK(edo_spawn(&t, rename_task, (void *)longname));
    test_wait_parked(t, EDO_WAIT_SLEEP);
    CHECK_EQ(strlen(edo_task_name(t)), 31);
    CHECK(strncmp(edo_task_name(t), longname, 31) == 0);
    edo_abort(t);
    CHECK_EQ(edo_join(t, NULL), -EDO_EABORTED);

    opts.name = longname;
    CHECK_OK(edo_spawn_with(&t, &opts, ident_task, &d));
    CHECK_EQ(strlen(edo_task_name(t)), 31);
    CHECK_EQ(edo_join(t, NULL), 0);

    edo_set_name("root-renamed");
    CHECK_STR_EQ(edo_task_name(NULL), "root-renamed");
    CHECK_STR_EQ(edo_task_name(edo_self()), "root-renamed");
    return NULL;
}

static void case_identity(void)
{
    /* Outside any task. */
    CHECK(edo_self() == NULL);
    CHECK_EQ(edo_task_id(NULL), 0);
    CHECK(edo_runtime_current() == NULL);
    CHECK_EQ(edo_set_deadline(12345), EDO_NEVER);
    CHECK_ERR(edo_spawn(NULL, ret_arg, NULL), -EDO_ENOTASK);

    edo_runtime *rt;
    CHECK_OK(edo_runtime_new(&rt, NULL));
    CHECK_OK(edo_block_on(rt, identity_root, rt, NULL));
    edo_runtime_free(rt);
    CHECK(edo_runtime_current() == NULL);
    CHECK(edo_self() == NULL);
}

/* ---------------------------------------------------------------------------------------- */

enum { MAX_INFOS = 64 };

typedef struct info_list {
    edo_task_info info[MAX_INFOS];
    int n;
    int stop_after; /* 0: never */
} info_list;

static int collect(const edo_task_info *info, void *arg)
{
    info_list *l = arg;
    CHECK_LT(l->n, MAX_INFOS);
    l->info[l->n++] = *info;
    return l->stop_after && l->n >= l->stop_after;
}

static const edo_task_info *find_info(const info_list *l, const char *name)
{
    const edo_task_info *found = NULL;
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->info[i].name, name) == 0) {
            CHECK_MSG(found == NULL, "two tasks named %s", name);
            found = &l->info[i];
        }
    CHECK_MSG(found != NULL, "task %s is not in the list", name);
    return found;
}

static void check_common(const edo_task_info *i, int64_t t0, int64_t t1)
{
    CHECK_NE(i->id, 0);
    CHECK(i->spawn_site != NULL);
    CHECK_MSG(strstr(i->spawn_site, "test_task.c:") != NULL, "spawn site \"%s\"", i->spawn_site);
    CHECK_GE(i->stack_size, 64 * 1024);
    /* Derived from the cycle counter (edo.h): right to a few ms, not to the tick. */
    CHECK_GE(i->spawned_at, t0 - 50);
    CHECK_LE(i->spawned_at, t1 + 50);
}

static void *sleep_a_second(void *arg)
{
    return VAL(edo_sleep(1000));
}

static edo_task *_Atomic sleeper_c;

static void *joiner_task(void *arg)
{
    edo_spawn_opts o = { .name = "sleeper-c" };
    edo_task *child;
    CHECK_OK(edo_spawn_with(&child, &o, sleep_a_second, NULL));
    atomic_store(&sleeper_c, child);
    /* Aborted ourselves: the child is detached and ends on its own. */
    CHECK_EQ(edo_join(child, NULL), -ECANCELED);
    return NULL;
}

static void *task_list_root(void *arg)
{
    edo_runtime *rt = arg;
    int64_t t0 = edo_now();
    edo_task *a, *b, *j, *fin, *fresh;
    edo_spawn_opts o = { .name = "sleeper-a" };
    CHECK_OK(edo_spawn_with(&a, &o, sleep_long, NULL));
    o.name = "sleeper-b";
    CHECK_OK(edo_spawn_with(&b, &o, sleep_long, NULL));
    o.name = "joiner";
    CHECK_OK(edo_spawn_with(&j, &o, joiner_task, NULL));
    o.name = "finished";
    CHECK_OK(edo_spawn_with(&fin, &o, ret_arg, VAL(3)));
    test_wait_parked(a, EDO_WAIT_SLEEP);
    test_wait_parked(b, EDO_WAIT_SLEEP);
    test_wait_parked(j, EDO_WAIT_JOIN);
    /* The joiner parks as soon as it has spawned sleeper-c, which may not have run yet. */
    test_wait_parked(atomic_load(&sleeper_c), EDO_WAIT_SLEEP);
    o.name = "fresh";
    CHECK_OK(edo_spawn_with(&fresh, &o, ret_arg, NULL));
    edo_set_name("root");

    info_list *l = calloc(1, sizeof *l);
    size_t n = edo_task_list(rt, collect, l);
    int64_t t1 = edo_now();
    CHECK_EQ(n, (size_t)l->n);
    /* "finished" has returned: the list holds only tasks that have not. */
    if (n != 6)
        for (int k = 0; k < l->n; k++)
            fprintf(stderr, "listed: %s (%s)\n", l->info[k].name,
                    test_state_name(l->info[k].state));
    CHECK_EQ(n, 6);
    for (int i = 0; i < l->n; i++)
        for (int k = 0; k < i; k++)
            CHECK_NE(l->info[i].id, l->info[k].id);

    const edo_task_info *i;
    i = find_info(l, "sleeper-a");
    check_common(i, t0, t1);
    CHECK_EQ(i->id, edo_task_id(a));
    CHECK_EQ(i->state, EDO_TASK_PARKED);
    CHECK_EQ(i->waiting_on, EDO_WAIT_SLEEP);
    CHECK_GE(i->resumes, 1);
    i = find_info(l, "sleeper-b");
    check_common(i, t0, t1);
    CHECK_EQ(i->state, EDO_TASK_PARKED);
    CHECK_EQ(i->waiting_on, EDO_WAIT_SLEEP);
    i = find_info(l, "sleeper-c");
    check_common(i, t0, t1);
    CHECK_EQ(i->state, EDO_TASK_PARKED);
    CHECK_EQ(i->waiting_on, EDO_WAIT_SLEEP);
    i = find_info(l, "joiner");
    check_common(i, t0, t1);
    CHECK_EQ(i->state, EDO_TASK_PARKED);
    CHECK_EQ(i->waiting_on, EDO_WAIT_JOIN);
    CHECK_GE(i->resumes, 1);
    for (int k = 0; k < l->n; k++)
        CHECK_MSG(strcmp(l->info[k].name, "finished") != 0, "a returned task is listed");
    edo_task_info fi;
    edo_task_stats(fin, &fi);
    CHECK_EQ(fi.state, EDO_TASK_DONE);
    CHECK_GE(fi.resumes, 1);
    i = find_info(l, "fresh");
    check_common(i, t0, t1);
    CHECK_EQ(i->state, EDO_TASK_READY);
    CHECK_EQ(i->resumes, 0);
    i = find_info(l, "root");
    CHECK_EQ(i->id, edo_task_id(NULL));
    CHECK_EQ(i->state, EDO_TASK_RUNNING);
    CHECK_GE(i->resumes, 1);

    /* fn returning non-zero stops the walk. */
    memset(l, 0, sizeof *l);
    l->stop_after = 2;
    CHECK_EQ(edo_task_list(rt, collect, l), 2);
    CHECK_EQ(l->n, 2);
    free(l);

    edo_abort(a);
    edo_abort(b);
    edo_abort(j);
    CHECK_EQ(edo_join(a, NULL), -EDO_EABORTED);
    CHECK_EQ(edo_join(b, NULL), -EDO_EABORTED);
    CHECK_EQ(edo_join(j, NULL), -EDO_EABORTED);
    CHECK_EQ(edo_join(fin, NULL), 0);
    CHECK_EQ(edo_join(fresh, NULL), 0);
    WAIT_UNTIL(live_tasks() == 1, 5000); /* sleeper-c, detached, ends after 1 s */

    /* Left behind for the listing from outside the runtime. */
    o.name = "leftover";
    CHECK_OK(edo_spawn_with(NULL, &o, sleep_long, NULL));
    CHECK_EQ(edo_yield(), 0);
    return NULL;
}

static void case_task_list(void)
{
    edo_runtime *rt;
    CHECK_OK(edo_runtime_new(&rt, &one_worker)); /* states below need one worker's order */
    CHECK_OK(edo_block_on(rt, task_list_root, rt, NULL));
    /* While no thread drives the runtime. */
    info_list *l = calloc(1, sizeof *l);
    edo_task_list(rt, collect, l);
    const edo_task_info *i = find_info(l, "leftover");
    CHECK_EQ(i->state, EDO_TASK_PARKED);
    CHECK_EQ(i->waiting_on, EDO_WAIT_SLEEP);
    free(l);
    edo_runtime_free(rt);
}

/* ---------------------------------------------------------------------------------------- */

static void *busy_task(void *arg)
{
    int64_t t0 = edo_now();
    while (edo_now() - t0 < 20) {
    }
    CHECK_EQ(edo_yield(), 0);
    return NULL;
}

static void *yield_ten(void *arg)
{
    yield_n(10);
    return NULL;
}

static void *self_stats_task(void *arg)
{
    edo_task_info info;
    memset(&info, 0, sizeof info);
    edo_task_stats(NULL, &info);
    CHECK_EQ(info.id, edo_task_id(NULL));
    CHECK_EQ(info.state, EDO_TASK_RUNNING);
    CHECK_GE(info.resumes, 1);
    CHECK_STR_EQ(info.name, "stats");
    CHECK(info.spawn_site && strstr(info.spawn_site, "test_task.c:"));
    CHECK_GE(info.stack_size, 256 * 1024);
    return NULL;
}

static void *task_stats_root(void *unused)
{
    edo_task_info info;
    edo_task *t;
    edo_spawn_opts o = { .name = "stats", .stack_size = 256 * 1024 };
    int64_t before = edo_now();
    CHECK_OK(edo_spawn_with(&t, &o, self_stats_task, NULL));
    int64_t after = edo_now();
    edo_task_stats(t, &info);
    CHECK_GE(info.spawned_at, before - 50); /* derived from the cycle counter, as above */
    CHECK_LE(info.spawned_at, after + 50);
    CHECK_STR_EQ(info.name, "stats");
    CHECK_EQ(edo_join(t, NULL), 0);

    /* Every switch to the task counts. Two of them, so that each yield has somewhere to
     * go (a yield with nothing else ready need not switch at all). */
    edo_task *t2;
    CHECK_OK(edo_spawn(&t, yield_ten, NULL));
    CHECK_OK(edo_spawn(&t2, yield_ten, NULL));
    WAIT_UNTIL((edo_task_stats(t2, &info), info.state == EDO_TASK_DONE), 2000);
    CHECK_GE(info.resumes, 10);
    edo_task_stats(t, &info);
    CHECK_EQ(info.state, EDO_TASK_DONE);
    CHECK_GE(info.resumes, 10);
    CHECK_EQ(edo_join(t, NULL), 0);
    CHECK_EQ(edo_join(t2, NULL), 0);

    /* busy_ns: the task ran ~20 ms without suspending. */
    CHECK_OK(edo_spawn(&t, busy_task, NULL));
    WAIT_UNTIL((edo_task_stats(t, &info), info.state == EDO_TASK_DONE), 2000);
    CHECK_GE(info.busy_ns, 10 * 1000000ull);
    CHECK_LT(info.busy_ns, 5000 * 1000000ull);
    CHECK_EQ(edo_join(t, NULL), 0);

    /* idle_ns: it waited ~30 ms to be run while the spawner kept the thread. */
    CHECK_OK(edo_spawn(&t, ret_arg, NULL));
    int64_t t0 = edo_now();
    while (edo_now() - t0 < 30) {
    }
    WAIT_UNTIL((edo_task_stats(t, &info), info.state == EDO_TASK_DONE), 2000);
    CHECK_GE(info.idle_ns, 15 * 1000000ull);
    CHECK_LT(info.idle_ns, 5000 * 1000000ull);
    CHECK_EQ(edo_join(t, NULL), 0);
    return NULL;
}

/* One worker: the counts below assume the tasks take turns on one thread. */
static const test_root case_task_stats = { .fn = task_stats_root, .opts = &one_worker };

/* ---------------------------------------------------------------------------------------- */

static uintptr_t many_value(uintptr_t i)
{
    return (i * 2654435761u) ^ 0x5a5a5a5au;
}

static void *many_task(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    /* All of them are alive at once: each yields before it returns. */
    CHECK_EQ(edo_yield(), 0);
    return (void *)many_value(i);
}

static void *many_root(void *unused)
{
    enum { N = TEST_SCALE(10000, 5000, 300) }; /* TSan: a fiber each, and they are dear */
    edo_task **ts = malloc(N * sizeof *ts);
    /* Twice: the second round runs on stacks from the cache. */
    for (int round = 0; round < 2; round++) {
        for (uintptr_t i = 0; i < N; i++)
            CHECK_OK(edo_spawn(&ts[i], many_task, (void *)i));
        /* With worker threads, some have run and returned already. */
        if (edo_runtime_workers(edo_runtime_current()) == 1)
            CHECK_EQ(live_tasks(), N + 1);
        else
            CHECK_LE(live_tasks(), N + 1);
        for (uintptr_t i = 0; i < N; i++) {
            void *res = NULL;
            CHECK_EQ(edo_join(ts[i], &res), 0);
            CHECK_EQ((uintptr_t)res, many_value(i));
        }
    }
    free(ts);
    return NULL;
}

static const test_root case_many_tasks = { .fn = many_root };

/* ---------------------------------------------------------------------------------------- */
/* A spawn in steady state reuses a finished task's stack, and under TSan a finished task's */
/* fiber too (a new fiber costs TSan some 380 page faults, which made the TSan suite crawl). */
/* Steady state: after two rounds, in which TSan also warms up buffers of its own.          */

static long page_faults(void)
{
    struct rusage ru;
    CHECK_SYS(getrusage(RUSAGE_SELF, &ru));
    return ru.ru_minflt + ru.ru_majflt;
}

static void *noop_task(void *arg)
{
    return arg;
}

static void *reuse_root(void *unused)
{
    enum { N = 1000, ROUNDS = 6, WARM = 2 };
    edo_task **ts = calloc(N, sizeof *ts);
    long steady = 0;
    for (int r = 0; r < ROUNDS; r++) {
        long f0 = page_faults();
        for (int i = 0; i < N; i++)
            CHECK_OK(edo_spawn(&ts[i], noop_task, VAL(i)));
        for (int i = 0; i < N; i++) {
            void *res;
            CHECK_OK(edo_join(ts[i], &res));
            CHECK_EQ(INT(res), i);
        }
        if (r >= WARM)
            steady += page_faults() - f0;
    }
    double per_spawn = (double)steady / ((ROUNDS - WARM) * N);
    printf("    %.2f page faults per spawn after the first %d rounds\n", per_spawn, WARM);
    CHECK_MSG(per_spawn <= 10, "%.2f page faults per spawn", per_spawn);
    free(ts);
    return NULL;
}

static const test_root case_spawn_reuses_stacks = { .fn = reuse_root };

/* ---------------------------------------------------------------------------------------- */
/* Abort at every kind of suspension point.                                                 */

enum { AT_SLEEP, AT_YIELD, AT_JOIN, AT_READ, AT_WRITE, AT_ACCEPT, AT_CONNECT, AT_SIGNAL, AT_COUNT };

static const char *const at_names[] = { "sleep", "yield",  "join",    "read",
                                        "write", "accept", "connect", "signal" };

typedef struct victim {
    int kind;
    edo_io *io;
    char addr[48];
    int rc;       /* what the suspension point returned */
    int rc_after; /* what a later suspension returned */
    bool aborted; /* edo_aborted() afterwards */
    int writes;
} victim;

static void *victim_task(void *arg)
{
    victim *v = arg;
    char *buf = calloc(1, 4096);
    edo_task *child;
    edo_io *conn = NULL;
    switch (v->kind) {
    case AT_SLEEP:
        v->rc = edo_sleep(1000000);
        break;
    case AT_YIELD:
        while ((v->rc = edo_yield()) == 0) {
        }
        break;
    case AT_JOIN:
        CHECK_OK(edo_spawn(&child, sleep_long, NULL));
        /* A join cut short by our own abort detaches the child (edo.h): the handle is
         * gone, and the child is left to the runtime's shutdown. */
        v->rc = edo_join(child, NULL);
        break;
    case AT_READ:
        v->rc = (int)edo_read(v->io, buf, 4096);
        break;
    case AT_WRITE:
        for (;;) {
            ssize_t n = edo_write(v->io, buf, 4096);
            if (n < 0) {
                v->rc = (int)n;
                break;
            }
            v->writes++;
        }
        break;
    case AT_ACCEPT:
        v->rc = edo_tcp_accept(&conn, v->io);
        break;
    case AT_CONNECT:
        v->rc = edo_tcp_connect(&conn, v->addr, 0);
        break;
    case AT_SIGNAL: {
        int sig = SIGUSR1;
        v->rc = edo_signal_wait(&sig, 1);
        break;
    }
    }
    if (v->rc >= 0 && conn)
        edo_close(conn);
    v->aborted = edo_aborted();
    v->rc_after = edo_sleep(10);
    free(buf);
    return VAL(0xab00 + v->kind);
}

static const edo_wait_reason at_reason[] = {
    [AT_SLEEP] = EDO_WAIT_SLEEP,   [AT_JOIN] = EDO_WAIT_JOIN,   [AT_READ] = EDO_WAIT_READ,
    [AT_WRITE] = EDO_WAIT_WRITE,   [AT_ACCEPT] = EDO_WAIT_READ, [AT_CONNECT] = EDO_WAIT_WRITE,
    [AT_SIGNAL] = EDO_WAIT_SIGNAL,
};

static void *abort_points_root(void *unused)
{
    for (int kind = 0; kind < AT_COUNT; kind++) {
        printf("    abort at %s\n", at_names[kind]);
        victim v = { .kind = kind };
        int raw = -1, fill[64], nfill = 0, lfd = -1;
        if (kind == AT_READ || kind == AT_WRITE) {
            v.io = test_socketpair(&raw);
            if (kind == AT_WRITE) {
                int small = 4096;
                CHECK_SYS(setsockopt(edo_io_fd(v.io), SOL_SOCKET, SO_SNDBUF, &small, sizeof small));
            }
        } else if (kind == AT_ACCEPT) {
            v.io = test_listen(v.addr, sizeof v.addr, 4);
        } else if (kind == AT_CONNECT) {
            lfd = test_full_backlog(v.addr, sizeof v.addr, fill, 64, &nfill);
        }
        edo_task *t;
        edo_spawn_opts o = { .name = at_names[kind] };
        CHECK_OK(edo_spawn_with(&t, &o, victim_task, &v));
        if (kind == AT_YIELD) {
            yield_n(20);
            edo_task_info info;
            edo_task_stats(t, &info);
            CHECK_NE(info.state, EDO_TASK_DONE);
        } else {
            test_wait_parked(t, at_reason[kind]);
        }
        edo_abort(t);
        edo_abort(t); /* more than once is fine */
        void *res = NULL;
        CHECK_ERR(edo_join(t, &res), -EDO_EABORTED);
        CHECK_EQ(INT(res), 0xab00 + kind);
        CHECK_ERR(v.rc, -ECANCELED);
        CHECK_ERR(v.rc_after, -ECANCELED);
        CHECK(v.aborted);
        if (kind == AT_WRITE)
            CHECK_GT(v.writes, 0);
        if (v.io)
            CHECK_OK(edo_close(v.io));
        if (raw >= 0)
            close(raw);
        if (lfd >= 0)
            close(lfd);
        test_close_all(fill, nfill);
    }
    return NULL;
}

static const test_root case_abort_points = { .fn = abort_points_root };

/* ---------------------------------------------------------------------------------------- */

typedef struct early {
    bool ran, aborted_at_start;
    int rc_sleep, rc_yield, rc_read, rc_join;
} early;

static void *early_task(void *arg)
{
    early *e = arg;
    e->ran = true;
    e->aborted_at_start = edo_aborted();
    e->rc_sleep = edo_sleep(10);
    e->rc_yield = edo_yield();
    int raw;
    edo_io *io = test_socketpair(&raw);
    char c;
    e->rc_read = (int)edo_read(io, &c, 1);
    edo_close(io);
    close(raw);
    edo_task *child;
    CHECK_OK(edo_spawn(&child, ret_arg, NULL));
    e->rc_join = edo_join(child, NULL);
    if (e->rc_join == -ETIMEDOUT) /* the only return that leaves the handle valid */
        edo_detach(child);
    return VAL(77);
}

static void *no_suspend_task(void *arg)
{
    return VAL(9);
}

static void *abort_early_root(void *unused)
{
    /* Aborted before it first runs: it still runs, and every suspension fails. */
    early e = { 0 };
    edo_task *t;
    CHECK_OK(edo_spawn(&t, early_task, &e));
    edo_abort(t);
    CHECK(!e.ran);
    void *res = NULL;
    CHECK_ERR(edo_join(t, &res), -EDO_EABORTED);
    CHECK_EQ(INT(res), 77);
    CHECK(e.ran);
    CHECK(e.aborted_at_start);
    CHECK_ERR(e.rc_sleep, -ECANCELED);
    CHECK_ERR(e.rc_yield, -ECANCELED);
    CHECK_ERR(e.rc_read, -ECANCELED);
    CHECK_ERR(e.rc_join, -ECANCELED);

    /* Aborted before it runs, returns without ever suspending: still reported. */
    CHECK_OK(edo_spawn(&t, no_suspend_task, NULL));
    edo_abort(t);
    CHECK_ERR(edo_join(t, &res), -EDO_EABORTED);
    CHECK_EQ(INT(res), 9);

    /* Aborted after it returned: harmless, and the join reports a normal return. */
    CHECK_OK(edo_spawn(&t, ret_arg, VAL(5)));
    WAIT_UNTIL(({
                   edo_task_info i;
                   edo_task_stats(t, &i);
                   i.state == EDO_TASK_DONE;
               }),
               2000);
    edo_abort(t);
    edo_abort(t);
    CHECK_EQ(edo_join(t, &res), 0);
    CHECK_EQ(INT(res), 5);
    return NULL;
}

/* One worker: "before it first runs" needs the spawner to keep the only thread. */
static const test_root case_abort_early_and_late = { .fn = abort_early_root, .opts = &one_worker };

/* ---------------------------------------------------------------------------------------- */

static atomic_int leftover_flag;

static void *leftover_task(void *arg)
{
    CHECK_EQ(edo_sleep(20), 0);
    atomic_store(&leftover_flag, 1);
    return NULL;
}

static void *leave_leftover_root(void *arg)
{
    CHECK_OK(edo_spawn(NULL, leftover_task, NULL));
    return VAL(11);
}

static void *wait_leftover_root(void *arg)
{
    WAIT_UNTIL(leftover_flag == 1, 2000);
    return VAL(12);
}

static void *self_abort_root(void *arg)
{
    edo_abort(edo_self());
    CHECK(edo_aborted());
    CHECK_ERR(edo_sleep(1), -ECANCELED);
    return VAL(13);
}

static void case_block_on(void)
{
    edo_runtime *rt;
    CHECK_OK(edo_runtime_new(&rt, NULL));
    void *res = NULL;
    CHECK_EQ(edo_block_on(rt, leave_leftover_root, NULL, &res), 0);
    CHECK_EQ(INT(res), 11);
    /* The task left behind goes on at the next edo_block_on (with worker threads, at once). */
    if (edo_runtime_workers(rt) == 1)
        CHECK_EQ(atomic_load(&leftover_flag), 0);
    CHECK_EQ(edo_block_on(rt, wait_leftover_root, NULL, NULL), 0);
    CHECK_EQ(atomic_load(&leftover_flag), 1);
    CHECK_ERR(edo_block_on(rt, self_abort_root, NULL, &res), -EDO_EABORTED);
    CHECK_EQ(INT(res), 13);
    edo_runtime_free(rt);

    edo_runtime_opts opts = { .workers = 1, .stack_size = 128 * 1024, .stack_cache = 1 };
    CHECK_OK(edo_runtime_new(&rt, &opts));
    CHECK_EQ(edo_runtime_workers(rt), 1);
    edo_runtime_free(rt);
    opts.workers = 3;
    CHECK_OK(edo_runtime_new(&rt, &opts));
    CHECK_EQ(edo_runtime_workers(rt), 3);
    atomic_store(&leftover_flag, 0);
    CHECK_EQ(edo_block_on(rt, leave_leftover_root, NULL, NULL), 0);
    CHECK_EQ(edo_block_on(rt, wait_leftover_root, NULL, &res), 0);
    CHECK_EQ(INT(res), 12);
    edo_runtime_free(rt);
    opts.workers = -1;
    CHECK_ERR(edo_runtime_new(&rt, &opts), -EINVAL);
    opts.workers = 1025;
    CHECK_ERR(edo_runtime_new(&rt, &opts), -EINVAL);
}

/* ---------------------------------------------------------------------------------------- */

static void *stack_size_task(void *arg)
{
    edo_task_info info;
    edo_task_stats(NULL, &info);
    CHECK_GE(info.stack_size, 128 * 1024);
    CHECK_EQ(edo_yield(), 0);
    return NULL;
}

static void *opts_root(void *arg)
{
    /* stack_cache = 1: most stacks are unmapped on return and mapped afresh. */
    edo_task *ts[50];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 50; i++)
            CHECK_OK(edo_spawn(&ts[i], stack_size_task, NULL));
        for (int i = 0; i < 50; i++)
            CHECK_EQ(edo_join(ts[i], NULL), 0);
    }
    return NULL;
}

static void case_runtime_opts(void)
{
    edo_runtime_opts opts = { .stack_size = 128 * 1024, .stack_cache = 1 };
    test_run_opts(&opts, opts_root, NULL);
}

/* ---------------------------------------------------------------------------------------- */

typedef struct drive {
    edo_runtime *rt;
    atomic_int stop;
    atomic_int running;
    atomic_int detached_done;
} drive;

static void *drive_root(void *arg)
{
    drive *d = arg;
    atomic_store(&d->running, 1);
    while (!atomic_load(&d->stop))
        CHECK_EQ(edo_sleep(1), 0);
    return NULL;
}

static void *drive_thread(void *arg)
{
    drive *d = arg;
    CHECK_EQ(edo_block_on(d->rt, drive_root, d, NULL), 0);
    return NULL;
}

typedef struct remote {
    drive *d;
    uintptr_t i;
    edo_runtime *rt_seen;
} remote;

static void *remote_task(void *arg)
{
    remote *r = arg;
    r->rt_seen = edo_runtime_current();
    if (r->i % 3 == 0)
        CHECK_EQ(edo_sleep(1), 0);
    else
        CHECK_EQ(edo_yield(), 0);
    return (void *)many_value(r->i);
}

static void *remote_detached(void *arg)
{
    drive *d = arg;
    CHECK_EQ(edo_yield(), 0);
    atomic_fetch_add(&d->detached_done, 1);
    return NULL;
}

static void case_foreign_thread(void)
{
    enum { N = TEST_SCALE(500, 500, 200), M = 100 };
    drive d = { 0 };
    CHECK_OK(edo_runtime_new(&d.rt, NULL));
    remote *rs = calloc(N, sizeof *rs);
    edo_task **ts = calloc(N, sizeof *ts);

    /* Spawned while no thread drives the runtime: runs once one does. */
    edo_task *early_t;
    remote early_r = { &d, 3, NULL };
    CHECK_OK(edo_runtime_spawn(&early_t, d.rt, remote_task, &early_r));
    CHECK_NE(edo_task_id(early_t), 0);

    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, drive_thread, &d), 0);
    while (!atomic_load(&d.running))
        test_sleep_us(100);

    for (uintptr_t i = 0; i < N; i++) {
        rs[i] = (remote){ &d, i, NULL };
        CHECK_OK(edo_runtime_spawn(&ts[i], d.rt, remote_task, &rs[i]));
    }
    for (int i = 0; i < M; i++)
        CHECK_OK(edo_runtime_spawn(NULL, d.rt, remote_detached, &d));
    void *res;
    for (uintptr_t i = 0; i < N; i++) {
        res = NULL;
        CHECK_EQ(edo_join(ts[i], &res), 0);
        CHECK_EQ((uintptr_t)res, many_value(i));
        CHECK(rs[i].rt_seen == d.rt);
    }
    CHECK_EQ(edo_join(early_t, &res), 0);
    CHECK_EQ((uintptr_t)res, many_value(3));

    /* A foreign thread aborts and joins. */
    edo_task *t;
    CHECK_OK(edo_runtime_spawn(&t, d.rt, sleep_long, VAL(21)));
    test_sleep_us(2000);
    edo_abort(t);
    CHECK_ERR(edo_join(t, &res), -EDO_EABORTED);
    CHECK_EQ(INT(res), 21);

    int64_t t0 = test_clock_ms();
    while (atomic_load(&d.detached_done) < M) {
        CHECK_MSG(test_clock_ms() - t0 < 5000, "%d of %d detached tasks ran",
                  atomic_load(&d.detached_done), M);
        test_sleep_us(200);
    }
    atomic_store(&d.stop, 1);
    CHECK_EQ(pthread_join(th, NULL), 0);
    edo_runtime_free(d.rt);
    free(rs);
    free(ts);
}

/* ---------------------------------------------------------------------------------------- */
/* edo_runtime_free with tasks parked in every kind of call.                                */

typedef struct parked {
    int kind;
    atomic_int *unwound;
    edo_io *io;
    char addr[48];
} parked;

static void *parked_task(void *arg)
{
    parked *p = arg;
    /* Owned memory that only the task's own cleanup frees. */
    char *buf = calloc(1, 4096); /* written to a socket: no uninitialised bytes */
    edo_io *conn = NULL;
    edo_task *child;
    int rc = 0;
    switch (p->kind) {
    case AT_SLEEP:
        rc = edo_sleep(1000000);
        break;
    case AT_READ:
        rc = (int)edo_read(p->io, buf, 4096);
        break;
    case AT_WRITE:
        while ((rc = (int)edo_write(p->io, buf, 4096)) > 0) {
        }
        break;
    case AT_ACCEPT:
        rc = edo_tcp_accept(&conn, p->io);
        break;
    case AT_CONNECT:
        rc = edo_tcp_connect(&conn, p->addr, 0);
        break;
    case AT_JOIN:
        CHECK_OK(edo_spawn(&child, sleep_long, NULL));
        rc = edo_join(child, NULL); /* aborted: the child is detached, shutdown ends it */
        if (rc == -EDO_EABORTED)
            rc = -ECANCELED; /* or the child, aborted too, ended first: its outcome */
        break;
    case AT_YIELD: /* never ran before the shutdown */
        rc = edo_sleep(1000000);
        break;
    default:
        abort();
    }
    CHECK_ERR(rc, -ECANCELED);
    /* Cleanup that suspends again fails at once rather than hanging the shutdown. */
    CHECK_ERR(edo_sleep(1000000), -ECANCELED);
    CHECK_ERR(edo_spawn(NULL, ret_arg, NULL), -ESHUTDOWN);
    if (p->io)
        CHECK_OK(edo_close(p->io));
    free(buf);
    atomic_fetch_add(p->unwound, 1);
    return NULL;
}

static const int parked_kinds[] = { AT_SLEEP, AT_READ, AT_WRITE, AT_ACCEPT, AT_CONNECT, AT_JOIN };
enum { NPARKED = sizeof parked_kinds / sizeof parked_kinds[0] };

typedef struct shutdown_env {
    parked p[NPARKED + 1];
    int raws[NPARKED];
    int nraw;
    atomic_int unwound;
} shutdown_env;

static void *shutdown_root(void *arg)
{
    shutdown_env *env = arg;
    edo_task *ts[NPARKED];
    for (int i = 0; i < NPARKED; i++) {
        parked *p = &env->p[i];
        p->kind = parked_kinds[i];
        p->unwound = &env->unwound;
        if (p->kind == AT_READ || p->kind == AT_WRITE)
            p->io = test_socketpair(&env->raws[env->nraw++]);
        else if (p->kind == AT_ACCEPT)
            p->io = test_listen(p->addr, sizeof p->addr, 4);
        CHECK_OK(edo_spawn(&ts[i], parked_task, p));
    }
    for (int i = 0; i < NPARKED; i++) {
        test_wait_parked(ts[i], at_reason[parked_kinds[i]]);
        edo_detach(ts[i]);
    }
    /* One more that never gets to run before the shutdown. */
    env->p[NPARKED] = (parked){ .kind = AT_YIELD, .unwound = &env->unwound };
    CHECK_OK(edo_spawn(NULL, parked_task, &env->p[NPARKED]));
    return NULL;
}

static void case_free_with_parked_tasks(void)
{
    int fds_before = test_count_fds();
    shutdown_env *env = calloc(1, sizeof *env);
    CHECK_EQ(parked_kinds[4], AT_CONNECT);
    int fill[64], nfill, lfd = test_full_backlog(env->p[4].addr, 48, fill, 64, &nfill);

    edo_runtime *rt;
    CHECK_OK(edo_runtime_new(&rt, NULL));
    CHECK_EQ(edo_block_on(rt, shutdown_root, env, NULL), 0);
    CHECK_EQ(atomic_load(&env->unwound), 0);
    int64_t t0 = test_clock_ms();
    edo_runtime_free(rt);
    CHECK_LT(test_clock_ms() - t0, 4000);
    CHECK_EQ(atomic_load(&env->unwound), NPARKED + 1);
    test_close_all(env->raws, env->nraw);
    test_close_all(fill, nfill);
    close(lfd);
    free(env);
    CHECK_EQ(test_count_fds(), fds_before);

    /* Spawned from outside and never driven at all: it runs during the shutdown. */
    atomic_int unwound = 0;
    parked p = { .kind = AT_YIELD, .unwound = &unwound };
    CHECK_OK(edo_runtime_new(&rt, NULL));
    CHECK_OK(edo_runtime_spawn(NULL, rt, parked_task, &p));
    edo_runtime_free(rt);
    CHECK_EQ(atomic_load(&unwound), 1);
    CHECK_EQ(test_count_fds(), fds_before);
}

/* Ignores its abort: every call fails with -ECANCELED and it goes on regardless. */
static void *abort_ignoring_task(void *arg)
{
    _Atomic int *spins = arg;
    for (;;) {
        edo_sleep(1000);
        atomic_fetch_add(spins, 1);
    }
    return NULL;
}

typedef struct {
    edo_task *t;
    int rc;
    void *res;
} foreign_join;

static void *join_from_thread(void *arg)
{
    foreign_join *fj = arg;
    fj->rc = edo_join(fj->t, &fj->res);
    return NULL;
}

static void case_free_abandons_abort_ignoring_task(void)
{
    /* The grace period ends, the task is abandoned, and a thread joining it hears so. */
    _Atomic int spins = 0;
    edo_runtime_opts o = { .shutdown_timeout_ms = 200 };
    edo_runtime *rt;
    CHECK_OK(edo_runtime_new(&rt, &o));
    foreign_join fj = { NULL, 1, (void *)1 };
    CHECK_OK(edo_runtime_spawn(&fj.t, rt, abort_ignoring_task, &spins));
    CHECK_OK(edo_runtime_spawn(NULL, rt, sleep_long, NULL)); /* a well-behaved neighbour */
    CHECK_EQ(edo_block_on(rt, ret_arg, NULL, NULL), 0);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, join_from_thread, &fj), 0);
    int64_t t0 = test_clock_ms();
    edo_runtime_free(rt);
    int64_t took = test_clock_ms() - t0;
    CHECK_GE(took, 150);
    CHECK_LT(took, 4000);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_ERR(fj.rc, -EDO_EABORTED);
    CHECK(fj.res == NULL);
    /* It kept calling, and those calls let the scheduler run instead of spinning in place. */
    CHECK_GT(atomic_load(&spins), 1000);
}

/* ---------------------------------------------------------------------------------------- */

static void *main_fn(void *arg)
{
    CHECK(edo_runtime_current() != NULL);
    CHECK(edo_self() != NULL);
    /* Left running: edo_main's shutdown aborts it. */
    CHECK_OK(edo_spawn(NULL, sleep_long, NULL));
    CHECK_EQ(edo_sleep(1), 0);
    return edo_int_result(*(int *)arg);
}

/* Tasks that outlive edo_main's root: each holds a pointer into the root's frame. */
static atomic_int outlive_done, outlive_touched_late, outlive_root_gone;

static void *outlive_cleanup_child(void *arg)
{
    (void)arg;
    while (edo_yield() == 0)
        ;
    atomic_fetch_add(&outlive_done, 1);
    return NULL;
}

static void *outlive_sleeper(void *arg)
{
    int *root_local = arg;
    int rc = edo_sleep(1000000);
    if (rc == 0 || atomic_load(&outlive_root_gone) == 0)
        atomic_fetch_add(&outlive_touched_late, 1); /* woke normally: it would use root_local */
    else
        (void)root_local;
    /* Cleanup that spawns: edo_main must end that task too. */
    edo_spawn(NULL, outlive_cleanup_child, NULL);
    atomic_fetch_add(&outlive_done, 1);
    return NULL;
}

static void *outlive_spinner(void *arg)
{
    volatile int *root_local = arg;
    while (edo_yield() == 0)
        if (atomic_load(&outlive_root_gone) == 0)
            (*root_local)++;
    atomic_fetch_add(&outlive_done, 1);
    return NULL;
}

static void *outlive_root(void *arg)
{
    int local = 0;
    CHECK_OK(edo_spawn(NULL, outlive_sleeper, &local));
    CHECK_OK(edo_spawn(NULL, outlive_spinner, &local));
    CHECK_EQ(edo_sleep(5), 0);
    atomic_store(&outlive_root_gone, 1);
    return arg;
}

/* When the root returns, edo_main aborts every other task (a sleeping one, a busy one, and
 * one spawned by cleanup code) and returns only after each has run its cleanup. */
static void case_edo_main_ends_the_others(void)
{
    int64_t t0 = test_clock_ms();
    CHECK_EQ(edo_main(outlive_root, edo_int_result(3)), 3);
    CHECK_EQ(atomic_load(&outlive_done), 3);
    CHECK_EQ(atomic_load(&outlive_touched_late), 0);
    /* The sleeper's 1000 s sleep was cut short, not waited for (a generous bound). */
    CHECK(test_clock_ms() - t0 < 60000);
}

static void case_edo_main(void)
{
    int v = 7;
    CHECK_EQ(edo_main(main_fn, &v), 7);
    v = 0;
    CHECK_EQ(edo_main(main_fn, &v), 0);
    v = -ECONNRESET;
    CHECK_EQ(edo_main(main_fn, &v), 1);
    v = -1;
    CHECK_EQ(edo_main(main_fn, &v), 1);
    CHECK(edo_runtime_current() == NULL);
}

/* ---------------------------------------------------------------------------------------- */

static void *signal_task(void *arg)
{
    int sigs[2] = { SIGUSR2, SIGWINCH };
    return VAL(edo_signal_wait(sigs, 2));
}

static void *signal_root(void *arg)
{
    edo_task *t;
    CHECK_OK(edo_spawn(&t, signal_task, NULL));
    test_wait_parked(t, EDO_WAIT_SIGNAL);
    /* The waiting thread has the signal blocked: raise() leaves it pending for the
     * signalfd rather than killing the process. With worker threads, raise() would make
     * it pending for this thread alone, which another worker's signalfd does not see: a
     * signal from outside is sent to the process. */
    if (edo_runtime_workers(edo_runtime_current()) == 1)
        CHECK_SYS(raise(SIGUSR2));
    else
        CHECK_SYS(kill(getpid(), SIGUSR2));
    void *res = NULL;
    CHECK_EQ(edo_join(t, &res), 0);
    CHECK_EQ(INT(res), SIGUSR2);
    return NULL;
}

static void case_signal_wait(void)
{
    /* As the guide tells programs with threads of their own: the signals are blocked in
     * main before the runtime starts, so that none reaches a thread that does not wait
     * for it (with worker threads, main sits in edo_block_on meanwhile). */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGWINCH);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    test_run(signal_root, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void *one_signal_task(void *arg)
{
    int sig = INT(arg);
    return VAL(edo_signal_wait(&sig, 1));
}

/* Joins a one_signal_task, which must have got sig. */
static void join_signal(edo_task *t, int sig)
{
    void *res = NULL;
    CHECK_EQ(edo_join(t, &res), 0);
    CHECK_EQ(INT(res), sig);
}

static void *signal_race_root(void *arg)
{
    /* Nothing blocked beforehand: each signal is sent the moment its first waiter parks,
     * when every runtime thread and the thread in edo_block_on must already block it
     * (else the process dies). */
    int last = SIGRTMIN + 12 < SIGRTMAX ? SIGRTMIN + 12 : SIGRTMAX;
    for (int sig = SIGRTMIN; sig <= last; sig++) {
        edo_task *t;
        CHECK_OK(edo_spawn(&t, one_signal_task, VAL(sig)));
        test_wait_parked(t, EDO_WAIT_SIGNAL);
        CHECK_SYS(kill(getpid(), sig));
        join_signal(t, sig);
    }
    return NULL;
}

static void case_signal_first_wait_race(void)
{
    sigset_t before, after;
    pthread_sigmask(SIG_BLOCK, NULL, &before);
    test_run(signal_race_root, NULL);
    /* The calling thread's mask is its own again. */
    pthread_sigmask(SIG_BLOCK, NULL, &after);
    CHECK_EQ(sigismember(&after, SIGRTMIN), sigismember(&before, SIGRTMIN));
}

static void *take_root(void *arg)
{
    int sig = SIGRTMIN + 14, bad[] = { SIGKILL }, zero[] = { 0 };
    CHECK_ERR(edo_signal_take(bad, 1), -EINVAL);
    CHECK_ERR(edo_signal_take(zero, 1), -EINVAL);
    CHECK_ERR(edo_signal_take(&sig, 0), -EINVAL);

    /* Taken over before anyone waits: a signal that comes then stays pending (the default
     * action would end the process) until a task asks for it. */
    CHECK_OK(edo_signal_take(&sig, 1));
    CHECK_OK(edo_signal_take(&sig, 1)); /* again: nothing changes */
    CHECK_SYS(kill(getpid(), sig));
    CHECK_OK(edo_sleep(20));
    edo_task *t;
    CHECK_OK(edo_spawn(&t, one_signal_task, VAL(sig)));
    join_signal(t, sig);
    return NULL;
}

static void *take_emfile_root(void *arg)
{
    /* No descriptor left for the signalfd: the call fails and changes nothing, and works
     * once there is room again. The first one in this runtime, since later ones reuse the
     * signalfd. */
    int sig = SIGRTMIN + 15;
    struct rlimit saved, low;
    CHECK_SYS(getrlimit(RLIMIT_NOFILE, &saved));
    int lowest = (int)CHECK_SYS(dup(0)); /* the lowest free descriptor */
    close(lowest);
    low = saved;
    low.rlim_cur = (rlim_t)lowest;
    CHECK_SYS(setrlimit(RLIMIT_NOFILE, &low));
    int rc = edo_signal_take(&sig, 1);
    CHECK_SYS(setrlimit(RLIMIT_NOFILE, &saved));
    CHECK_ERR(rc, -EMFILE);
    sigset_t now;
    pthread_sigmask(SIG_BLOCK, NULL, &now);
    if (edo_runtime_workers(edo_runtime_current()) == 1)
        CHECK(!sigismember(&now, sig)); /* the driving thread's mask is as it was */
    CHECK_OK(edo_signal_take(&sig, 1));
    CHECK_SYS(kill(getpid(), sig));
    edo_task *t;
    CHECK_OK(edo_spawn(&t, one_signal_task, VAL(sig)));
    join_signal(t, sig);
    return NULL;
}

static void case_signal_take(void)
{
    int sig = SIGRTMIN;
    CHECK_ERR(edo_signal_take(&sig, 1), -EDO_ENOTASK); /* outside a task */
    test_run(take_root, NULL);
    test_run(take_emfile_root, NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* Children start with the program's signal mask: edo's threads block SIGPIPE alone, fork's */
/* child handler gives that back too, and signals edo took over are neither blocked nor    */
/* handled in a child.                                                                      */

extern char **environ;

/* The mask of the thread that made the runtime, which a child must start with. */
static sigset_t program_mask;

/* "SigBlk:" and "SigIgn:" of a process's status, as 64-bit masks. */
typedef struct sig_lines {
    unsigned long long blk, ign;
} sig_lines;

static sig_lines parse_sig_lines(const char *text)
{
    sig_lines s = { ~0ULL, ~0ULL };
    const char *p = strstr(text, "SigBlk:");
    CHECK_MSG(p && sscanf(p + 7, "%llx", &s.blk) == 1, "no SigBlk in \"%s\"", text);
    p = strstr(text, "SigIgn:");
    CHECK_MSG(p && sscanf(p + 7, "%llx", &s.ign) == 1, "no SigIgn in \"%s\"", text);
    return s;
}

static unsigned long long mask_bits(const sigset_t *set)
{
    unsigned long long m = 0;
    for (int sig = 1; sig <= 64 && sig < NSIG; sig++)
        if (sigismember(set, sig))
            m |= 1ULL << (sig - 1);
    return m;
}

static char *const grep_argv[] = { "grep", "^Sig", "/proc/self/status", NULL };

/* Starts grep on its own status the way `how` says, with its output on a pipe whose read
 * end goes to *out; returns the child's pid. */
enum { BY_FORK, BY_SPAWN, BY_SPAWN_CLEAN };

static pid_t start_grep(int how, int *out)
{
    int p[2];
    CHECK_SYS(pipe2(p, O_CLOEXEC));
    pid_t pid;
    if (how == BY_FORK) {
        pid = (pid_t)CHECK_SYS(fork());
        if (pid == 0) {
            dup2(p[1], 1);
            execvp("grep", grep_argv);
            _exit(127);
        }
    } else {
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t at;
        CHECK_EQ(posix_spawn_file_actions_init(&fa), 0);
        CHECK_EQ(posix_spawn_file_actions_adddup2(&fa, p[1], 1), 0);
        CHECK_EQ(posix_spawnattr_init(&at), 0);
        if (how == BY_SPAWN_CLEAN) {
            /* What edo.h tells a program to do with a raw posix_spawn. */
            sigset_t def;
            sigemptyset(&def);
            sigaddset(&def, SIGPIPE);
            CHECK_EQ(posix_spawnattr_setsigmask(&at, &program_mask), 0);
            CHECK_EQ(posix_spawnattr_setsigdefault(&at, &def), 0);
            CHECK_EQ(posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF),
                     0);
        }
        CHECK_EQ(posix_spawnp(&pid, "grep", &fa, &at, grep_argv, environ), 0);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&at);
    }
    close(p[1]);
    *out = p[0];
    return pid;
}

static void *wait_pid(void *arg)
{
    int status = 0;
    CHECK_SYS(waitpid((pid_t)INT(arg), &status, 0));
    return VAL(status);
}

/* Reads a child's output to its end (in a task) and reaps it (on the pool). */
static sig_lines finish_grep(pid_t pid, int fd)
{
    edo_io *io;
    CHECK_OK(edo_io_wrap(&io, fd));
    char text[4096];
    size_t len = 0;
    ssize_t n;
    while ((n = edo_read(io, text + len, sizeof text - 1 - len)) > 0)
        len += (size_t)n;
    CHECK_OK(n);
    text[len] = 0;
    CHECK_OK(edo_close(io));
    edo_task *w;
    CHECK_OK(edo_spawn_blocking(&w, wait_pid, VAL(pid)));
    void *status;
    CHECK_OK(edo_join(w, &status));
    CHECK_MSG(WIFEXITED(INT(status)) && WEXITSTATUS(INT(status)) == 0, "grep: status %d",
              (int)INT(status));
    return parse_sig_lines(text);
}

static sig_lines child_lines(int how)
{
    int fd;
    pid_t pid = start_grep(how, &fd);
    return finish_grep(pid, fd);
}

typedef struct pool_start {
    pid_t pid;
    int fd;
} pool_start;

static void *start_on_pool(void *arg)
{
    pool_start *ps = arg;
    ps->pid = start_grep(BY_FORK, &ps->fd);
    return NULL;
}

static void *child_in_task(void *arg)
{
    sig_lines *out = arg;
    out[0] = child_lines(BY_FORK);
    out[1] = child_lines(BY_SPAWN);
    out[2] = child_lines(BY_SPAWN_CLEAN);
    return NULL;
}

/* A child of fork that does not exec: edo's handler is gone from the signals it took. */
static void *fork_only_task(void *arg)
{
    pid_t pid = (pid_t)CHECK_SYS(fork());
    if (pid == 0) {
        struct sigaction sa;
        sigset_t now;
        sigaction(SIGTERM, NULL, &sa);
        pthread_sigmask(SIG_BLOCK, NULL, &now);
        _exit(sa.sa_handler == SIG_DFL && mask_bits(&now) == mask_bits(&program_mask) ? 0 : 3);
    }
    edo_task *w;
    CHECK_OK(edo_spawn_blocking(&w, wait_pid, VAL(pid)));
    void *status;
    CHECK_OK(edo_join(w, &status));
    CHECK_MSG(WIFEXITED(INT(status)) && WEXITSTATUS(INT(status)) == 0,
              "a forked child kept edo's handler or mask: status %d", (int)INT(status));
    return NULL;
}

static void *child_mask_root(void *arg)
{
    sig_lines *want = arg;
    /* Taken over: a child must see them neither blocked nor ignored. */
    int taken[] = { SIGTERM, SIGINT, SIGRTMIN + 3 };
    CHECK_OK(edo_signal_take(taken, 3));

    sig_lines got[5];
    got[0] = child_lines(BY_FORK); /* from the root task */
    edo_task *t;
    CHECK_OK(edo_spawn(&t, child_in_task, &got[1]));
    CHECK_OK(edo_join(t, NULL));
    pool_start ps;
    CHECK_OK(edo_spawn_blocking(&t, start_on_pool, &ps));
    CHECK_OK(edo_join(t, NULL));
    got[4] = finish_grep(ps.pid, ps.fd);
    CHECK_OK(edo_spawn(&t, fork_only_task, NULL));
    CHECK_OK(edo_join(t, NULL));

    static const char *const ways[] = { "fork+exec in the root task", "fork+exec in a task",
                                        "posix_spawn in a task",
                                        "posix_spawn with SETSIGMASK in a task",
                                        "fork+exec on the blocking pool" };
    unsigned long long pipe_bit = 1ULL << (SIGPIPE - 1);
    /* glibc's posix_spawn leaves its own internal signals (32 up to SIGRTMIN) ignored in
     * the child, whoever calls it: not edo's doing, and no signal a program can use. */
    unsigned long long libc_internal = 0;
    for (int sig = 32; sig < SIGRTMIN; sig++)
        libc_internal |= 1ULL << (sig - 1);
    for (int i = 0; i < 5; i++) {
        /* A raw posix_spawn runs no fork handler: it leaks SIGPIPE, and only that. */
        unsigned long long blk = i == 2 ? want->blk | pipe_bit : want->blk;
        CHECK_MSG(got[i].blk == blk, "%s: SigBlk %016llx, expected %016llx", ways[i], got[i].blk,
                  blk);
        CHECK_MSG((got[i].ign & ~libc_internal) == want->ign,
                  "%s: SigIgn %016llx, expected %016llx", ways[i], got[i].ign, want->ign);
    }
    return NULL;
}

static void case_child_signal_mask(void)
{
    /* The program blocks one signal of its own before the runtime starts; children must
     * start with just that blocked. */
    sigset_t block, saved;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &block, &saved);
    pthread_sigmask(SIG_BLOCK, NULL, &program_mask);
    sig_lines want = { mask_bits(&program_mask), 0 };
    for (int sig = 1; sig <= 64 && sig < NSIG; sig++) {
        struct sigaction sa;
        if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
            want.ign |= 1ULL << (sig - 1);
    }
    test_run(child_mask_root, &want);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
}

/* ---------------------------------------------------------------------------------------- */

static void case_errors(void)
{
    const int errs[] = { ETIMEDOUT, ECANCELED, ECONNRESET, EPIPE, EMFILE, EINVAL, 0, 99999 };
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        const char *neg = edo_strerror(-errs[i]), *pos = edo_strerror(errs[i]);
        CHECK(neg != NULL && pos != NULL);
        CHECK_STR_EQ(neg, pos);
        if (errs[i] != 0)
            CHECK(neg[0] != 0);
    }
    CHECK(strstr(edo_strerror(-ETIMEDOUT), "imed") != NULL);
    const int retry[] = { EMFILE, ENFILE, ENOBUFS, ENOMEM, ECONNABORTED, EINTR, EAGAIN };
    for (size_t i = 0; i < sizeof retry / sizeof retry[0]; i++)
        CHECK_MSG(edo_retryable(-retry[i]), "%s", edo_strerror(-retry[i]));
    const int final[] = { ECONNRESET, ETIMEDOUT, ECANCELED, EBADF, EINVAL, EPIPE };
    for (size_t i = 0; i < sizeof final / sizeof final[0]; i++)
        CHECK_MSG(!edo_retryable(-final[i]), "%s", edo_strerror(-final[i]));
    CHECK_EQ(edo_fail(-ENOENT, "test_task: this line is expected"), -ENOENT);
}

static const test_case cases[] = {
    TEST_CASE(case_spawn_join),
    TEST_CASE(case_detached),
    TEST_CASE_BACKENDS(case_start_order),
    TEST_CASE_BACKENDS(case_yield_round_robin),
    TEST_CASE(case_identity),
    TEST_CASE_BACKENDS(case_task_list),
    TEST_CASE_BACKENDS(case_task_stats),
    TEST_CASE(case_many_tasks),
    TEST_CASE(case_spawn_reuses_stacks),
    TEST_CASE(case_abort_points),
    TEST_CASE_BACKENDS(case_abort_early_and_late),
    TEST_CASE(case_block_on),
    TEST_CASE(case_runtime_opts),
    TEST_CASE(case_foreign_thread),
    TEST_CASE(case_free_with_parked_tasks),
    TEST_CASE(case_free_abandons_abort_ignoring_task),
    TEST_CASE(case_edo_main),
    TEST_CASE(case_edo_main_ends_the_others),
    TEST_CASE(case_signal_wait),
    TEST_CASE(case_signal_first_wait_race),
    TEST_CASE(case_signal_take),
    TEST_CASE(case_child_signal_mask),
    TEST_CASE_ONCE(case_errors),
};

TEST_MAIN(cases)
