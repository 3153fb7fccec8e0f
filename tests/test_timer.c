/*
 * Timers. Where time is the subject, on a paused clock (edo_time_pause), so that the
 * checks are exact and no machine is too slow for them: many sleepers woken exactly at
 * their deadlines and in deadline order, sleep_until, zero and negative sleeps, timers on
 * every level of the wheel and far beyond, task deadlines, cancelled timers that must not
 * fire into later waits, edo_time_advance, pause and resume. On the real clock, with
 * bounds measured from the moment each wait began: sleepers across workers never woken
 * early, timers under load, two runtimes at once (one of them paused), a sleep beyond the
 * wheel's span alone on its wheel.
 *
 * edo-test: timeout=300
 */
#include "harness.h"

#include <pthread.h>

/* How late a timer on the real clock may fire, from the moment its sleep began, before we
 * call it broken: generous, the machine is shared. */
#define LATE_MS TEST_SCALE(1000, 1000, 2000)

static void check_woke(int64_t start, int64_t ms, int64_t woke)
{
    CHECK_MSG(woke - start >= ms, "a %" PRId64 " ms sleep woke after %" PRId64 " ms", ms,
              woke - start);
    CHECK_MSG(woke - start <= ms + LATE_MS, "a %" PRId64 " ms sleep woke after %" PRId64 " ms", ms,
              woke - start);
}

/* ---------------------------------------------------------------------------------------- */

typedef struct sleeper {
    int64_t ms, start, woke;
    int seq;
    atomic_int *next_seq; /* shared by every sleeper, which may run on different workers */
} sleeper;

static void *sleeper_task(void *arg)
{
    sleeper *s = arg;
    s->start = edo_now();
    CHECK_EQ(edo_sleep(s->ms), 0);
    s->woke = edo_now();
    s->seq = atomic_fetch_add(s->next_seq, 1);
    return NULL;
}

/* Spawns n sleepers of 1 to max_ms (from the seed) and joins them. */
static sleeper *run_sleepers(int n, int64_t max_ms, uint64_t stream)
{
    sleeper *s = calloc((size_t)n, sizeof *s);
    edo_task **ts = calloc((size_t)n, sizeof *ts);
    atomic_int *next_seq = calloc(1, sizeof *next_seq);
    test_rng r = test_rng_new(stream);
    for (int i = 0; i < n; i++) {
        s[i].ms = (int64_t)test_rng_range(&r, 1, (uint64_t)max_ms);
        s[i].next_seq = next_seq;
        CHECK_OK(edo_spawn(&ts[i], sleeper_task, &s[i]));
    }
    for (int i = 0; i < n; i++)
        CHECK_EQ(edo_join(ts[i], NULL), 0);
    CHECK_EQ(atomic_load(next_seq), n);
    free(next_seq);
    free(ts);
    return s;
}

/* On the paused clock every sleeper wakes exactly at its deadline, and the sleepers wake in
 * deadline order: the clock moves on only once every task woken at the last deadline has
 * run, on however many workers. */
static void *many_sleepers_root(void *unused)
{
    enum { N = TEST_SCALE(10000, 5000, 300) };
    sleeper *s = run_sleepers(N, TEST_SCALE(500, 500, 100), 1);
    int64_t *by_seq = malloc(N * sizeof *by_seq);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(s[i].start, s[0].start); /* the clock did not move while they started */
        CHECK_MSG(s[i].woke - s[i].start == s[i].ms,
                  "a %" PRId64 " ms sleep woke after %" PRId64 " ms", s[i].ms,
                  s[i].woke - s[i].start);
        by_seq[s[i].seq] = s[i].start + s[i].ms;
    }
    for (int k = 1; k < N; k++)
        CHECK_MSG(by_seq[k] >= by_seq[k - 1],
                  "woken #%d has deadline %" PRId64 ", after #%d with deadline %" PRId64, k,
                  by_seq[k], k - 1, by_seq[k - 1]);
    free(by_seq);
    free(s);
    return NULL;
}

static const test_root case_many_sleepers = { .fn = many_sleepers_root, .paused = true };

/* On the real clock, across workers' wheels: never early, and not far late, measured from
 * each sleeper's own start. (The order is the paused clock's to check: on a machine that
 * stalls a worker, any two deadlines can come out of two wheels in either order.) */
static void *real_sleepers_root(void *unused)
{
    enum { N = TEST_SCALE(2000, 2000, 300) };
    sleeper *s = run_sleepers(N, 200, 2);
    for (int i = 0; i < N; i++)
        check_woke(s[i].start, s[i].ms, s[i].woke);
    free(s);
    return NULL;
}

static const test_root case_many_sleepers_real = { .fn = real_sleepers_root };

/* ---------------------------------------------------------------------------------------- */

typedef struct until_arg {
    int64_t deadline, woke;
} until_arg;

static void *until_task(void *arg)
{
    until_arg *u = arg;
    CHECK_EQ(edo_sleep_until(u->deadline), 0);
    u->woke = edo_now();
    return NULL;
}

static void *sleep_until_root(void *unused)
{
    int64_t t0 = edo_now();
    int64_t dl = t0 + 30;
    CHECK_EQ(edo_sleep_until(dl), 0);
    CHECK_EQ(edo_now(), dl);

    /* Already past: returns at once. */
    t0 = edo_now();
    CHECK_EQ(edo_sleep_until(t0 - 100), 0);
    CHECK_EQ(edo_sleep_until(t0), 0);
    CHECK_EQ(edo_sleep_until(0), 0);
    CHECK_EQ(edo_sleep_until(INT64_MIN), 0);
    CHECK_EQ(edo_now(), t0);

    /* Many tasks on one deadline, which the clock does not pass while they are spawned. */
    enum { N = TEST_SCALE(1000, 1000, 200) };
    until_arg *u = calloc(N, sizeof *u);
    edo_task **ts = calloc(N, sizeof *ts);
    dl = edo_now() + 40;
    for (int i = 0; i < N; i++) {
        u[i].deadline = dl;
        CHECK_OK(edo_spawn(&ts[i], until_task, &u[i]));
    }
    for (int i = 0; i < N; i++) {
        CHECK_EQ(edo_join(ts[i], NULL), 0);
        CHECK_EQ(u[i].woke, dl);
    }
    CHECK_EQ(edo_now(), dl);
    free(u);
    free(ts);
    return NULL;
}

static const test_root case_sleep_until = { .fn = sleep_until_root, .paused = true };

/* ---------------------------------------------------------------------------------------- */

static void *set_flag(void *arg)
{
    atomic_store((atomic_int *)arg, 1);
    return NULL;
}

static void *sleep_zero_root(void *unused)
{
    /* With one worker the yield is what lets the new task run; with several another worker
     * may run it at any time, before, during or after the yield, and only the join says it
     * has. No timer is armed: the paused clock stays where it is. */
    bool one_worker = edo_runtime_workers(edo_runtime_current()) == 1;
    const int64_t ms[] = { 0, -1, -5, INT64_MIN };
    int64_t t0 = edo_now();
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        atomic_int flag = 0;
        edo_task *t;
        CHECK_OK(edo_spawn(&t, set_flag, &flag));
        /* Just a yield: the ready task gets to run, and we come back at once. */
        CHECK_EQ(edo_sleep(ms[i]), 0);
        if (one_worker)
            CHECK_EQ(atomic_load(&flag), 1);
        CHECK_EQ(edo_join(t, NULL), 0);
        CHECK_EQ(atomic_load(&flag), 1);
    }
    /* Alone: nothing else to run, still returns. */
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(edo_sleep(0), 0);
    CHECK_EQ(edo_now(), t0);
    return NULL;
}

static const test_root case_sleep_zero_negative = { .fn = sleep_zero_root, .paused = true };

/* ---------------------------------------------------------------------------------------- */

typedef struct level_arg {
    int64_t ms;
    int64_t elapsed;
} level_arg;

static void *level_task(void *arg)
{
    level_arg *l = arg;
    int64_t t0 = edo_now();
    int rc = edo_sleep(l->ms);
    l->elapsed = edo_now() - t0;
    return VAL(rc);
}

/* Joins the level_task t: its sleep succeeded and lasted exactly as long as asked. */
static void join_level(edo_task *t, const level_arg *l)
{
    void *res;
    CHECK_EQ(edo_join(t, &res), 0);
    CHECK_EQ(INT(res), 0);
    CHECK_MSG(l->elapsed == l->ms, "a %" PRId64 " ms sleep took %" PRId64 " ms", l->ms, l->elapsed);
}

/* Every sleep lasts exactly as long as asked, on every level of the wheel; far ones wait
 * while the near ones fire, and then fire too (a test of a three-day sleep takes
 * microseconds); one beyond the wheel's span and one for ever wait on. */
static void *wheel_levels_root(void *unused)
{
    /* Around every power-of-two boundary a wheel is likely to use, up to 5 s. */
    const int64_t ms[] = { 1,    2,    15,   16,   17,   63,   64,   65,   70,   127,
                           128,  129,  255,  256,  257,  300,  511,  512,  513,  1000,
                           1023, 1024, 1025, 2047, 2048, 2049, 4095, 4096, 4097, 5000 };
    enum { N = sizeof ms / sizeof ms[0] };
    const int64_t far[] = { 100000, 3 * 24 * 3600 * 1000LL, INT64_MAX / 2, INT64_MAX };
    enum { F = sizeof far / sizeof far[0], FIRE = 2 };
    level_arg la[N], lf[F];
    edo_task *ts[N], *tf[F];
    int64_t t0 = edo_now();
    for (int i = 0; i < F; i++) {
        lf[i].ms = far[i];
        CHECK_OK(edo_spawn(&tf[i], level_task, &lf[i]));
    }
    for (int i = 0; i < N; i++) {
        la[i].ms = ms[i];
        CHECK_OK(edo_spawn(&ts[i], level_task, &la[i]));
    }
    for (int i = 0; i < N; i++)
        join_level(ts[i], &la[i]);
    CHECK_EQ(edo_now() - t0, 5000);
    for (int i = 0; i < F; i++) {
        edo_task_info info;
        edo_task_stats(tf[i], &info);
        CHECK_MSG(info.state == EDO_TASK_PARKED && info.waiting_on == EDO_WAIT_SLEEP,
                  "a %" PRId64 " ms sleep is %s after 5 s", far[i], test_state_name(info.state));
    }
    for (int i = 0; i < FIRE; i++)
        join_level(tf[i], &lf[i]);
    CHECK_EQ(edo_now() - t0, far[FIRE - 1]);
    for (int i = FIRE; i < F; i++) {
        edo_task_info info;
        edo_task_stats(tf[i], &info);
        CHECK_MSG(info.state == EDO_TASK_PARKED && info.waiting_on == EDO_WAIT_SLEEP,
                  "a %" PRId64 " ms sleep is %s after 3 days", far[i], test_state_name(info.state));
        edo_abort(tf[i]);
        void *res;
        CHECK_ERR(edo_join(tf[i], &res), -EDO_EABORTED);
        CHECK_EQ(INT(res), -ECANCELED);
    }
    return NULL;
}

static const test_root case_wheel_levels = { .fn = wheel_levels_root, .paused = true };

/* ---------------------------------------------------------------------------------------- */

typedef struct delayed_write {
    int fd;
    int64_t ms;
} delayed_write;

static void *delayed_write_task(void *arg)
{
    delayed_write *d = arg;
    CHECK_EQ(edo_sleep(d->ms), 0);
    CHECK_EQ(write(d->fd, "d", 1), 1);
    return NULL;
}

static void *short_sleep(void *arg)
{
    return VAL(edo_sleep((int64_t)INT(arg)));
}

static void *own_deadline_task(void *arg)
{
    edo_set_deadline(edo_now() + 10);
    return VAL(edo_sleep(200));
}

static void *deadline_root(void *unused)
{
    int raw;
    edo_io *io = test_socketpair(&raw);
    char c;

    CHECK_EQ(edo_deadline(), EDO_NEVER);
    int64_t t0 = edo_now();
    int64_t dl = t0 + 50;
    CHECK_EQ(edo_set_deadline(dl), EDO_NEVER);
    CHECK_EQ(edo_deadline(), dl);
    CHECK_ERR(edo_sleep(10000), -ETIMEDOUT);
    CHECK_EQ(edo_now(), dl);
    /* Still in force: the next call that would suspend fails at once. */
    CHECK_ERR(edo_read(io, &c, 1), -ETIMEDOUT);
    CHECK_ERR(edo_sleep(1), -ETIMEDOUT);
    CHECK_EQ(edo_now(), dl);
    CHECK_EQ(edo_set_deadline(EDO_NEVER), dl);
    CHECK_EQ(edo_deadline(), EDO_NEVER);
    CHECK_EQ(edo_sleep(10), 0);

    /* A read parked when the deadline passes. */
    dl = edo_now() + 40;
    CHECK_EQ(edo_set_deadline(dl), EDO_NEVER);
    CHECK_ERR(edo_read(io, &c, 1), -ETIMEDOUT);
    CHECK_EQ(edo_now(), dl);
    CHECK_EQ(edo_set_deadline(EDO_NEVER), dl);

    /* Nested scopes restore the outer deadline. */
    t0 = edo_now();
    int64_t outer = t0 + 1000, inner = t0 + 30;
    CHECK_EQ(edo_set_deadline(outer), EDO_NEVER);
    CHECK_EQ(edo_set_deadline(inner), outer);
    CHECK_ERR(edo_sleep(10000), -ETIMEDOUT);
    CHECK_EQ(edo_now(), inner);
    CHECK_EQ(edo_set_deadline(outer), inner);
    delayed_write dw = { raw, 50 };
    edo_task *w;
    CHECK_OK(edo_spawn(&w, delayed_write_task, &dw));
    CHECK_EQ(edo_read(io, &c, 1), 1);
    CHECK_EQ(edo_now(), inner + 50);
    CHECK_EQ(edo_join(w, NULL), 0);
    CHECK_ERR(edo_sleep(10000), -ETIMEDOUT);
    CHECK_EQ(edo_now(), outer);
    CHECK_EQ(edo_set_deadline(EDO_NEVER), outer);

    /* Whichever comes first, the call's own timeout or the task's deadline. */
    dl = edo_now() + 2000;
    edo_set_deadline(dl);
    edo_io_set_timeout(io, 20, 0);
    t0 = edo_now();
    CHECK_ERR(edo_read(io, &c, 1), -ETIMEDOUT);
    CHECK_EQ(edo_now() - t0, 20);
    edo_io_set_timeout(io, 2000, 0);
    dl = edo_now() + 20;
    edo_set_deadline(dl);
    CHECK_ERR(edo_read(io, &c, 1), -ETIMEDOUT);
    CHECK_EQ(edo_now(), dl);
    edo_io_set_timeout(io, 0, 0);

    /* Far-off arguments do not overflow into the past. */
    dl = edo_now() + 20;
    edo_set_deadline(dl);
    CHECK_ERR(edo_sleep(INT64_MAX), -ETIMEDOUT);
    CHECK_EQ(edo_now(), dl);
    dl = edo_now() + 20;
    edo_set_deadline(dl);
    CHECK_ERR(edo_sleep_until(EDO_NEVER), -ETIMEDOUT);
    CHECK_EQ(edo_now(), dl);

    /* A deadline in the past fails every suspension at once. */
    edo_set_deadline(edo_now() - 1);
    t0 = edo_now();
    CHECK_ERR(edo_sleep(10000), -ETIMEDOUT);
    CHECK_ERR(edo_read(io, &c, 1), -ETIMEDOUT);
    CHECK_ERR(edo_sleep_until(EDO_NEVER), -ETIMEDOUT);
    char addr[48];
    edo_io *lis = test_listen(addr, sizeof addr, 4), *conn;
    CHECK_ERR(edo_tcp_accept(&conn, lis), -ETIMEDOUT);
    edo_task *t;
    CHECK_OK(edo_spawn(&t, short_sleep, VAL(300)));
    /* The join fails for us; the handle stays valid. */
    CHECK_ERR(edo_join(t, NULL), -ETIMEDOUT);
    CHECK_EQ(edo_now(), t0);
    edo_set_deadline(EDO_NEVER);
    void *res;
    CHECK_EQ(edo_join(t, &res), 0);
    CHECK_EQ(INT(res), 0);
    CHECK_EQ(edo_now(), t0 + 300);

    /* One task's deadline is its own. */
    edo_task *a, *b;
    CHECK_OK(edo_spawn(&a, own_deadline_task, NULL));
    CHECK_OK(edo_spawn(&b, short_sleep, VAL(50)));
    CHECK_EQ(edo_join(a, &res), 0);
    CHECK_EQ(INT(res), -ETIMEDOUT);
    CHECK_EQ(edo_join(b, &res), 0);
    CHECK_EQ(INT(res), 0);
    CHECK_EQ(edo_deadline(), EDO_NEVER);

    CHECK_OK(edo_close(lis));
    CHECK_OK(edo_close(io));
    close(raw);
    return NULL;
}

static void case_deadline(void)
{
    CHECK_EQ(edo_set_deadline(edo_now() + 5), EDO_NEVER);
    run_paused(deadline_root, NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* A timer that was cancelled must not fire into a later wait of the same task, nor into a  */
/* task that reuses the memory of the one it belonged to.                                    */

/* On the paused clock: a sleep lasts exactly ms (a ghost timer would end it early). */
static void check_full_sleep(int64_t ms)
{
    int64_t t0 = edo_now();
    CHECK_EQ(edo_sleep(ms), 0);
    CHECK_MSG(edo_now() - t0 == ms, "a %" PRId64 " ms sleep ended after %" PRId64 " ms", ms,
              edo_now() - t0);
}

static void *ghost_same_task_root(void *unused)
{
    int raw;
    edo_io *io = test_socketpair(&raw);
    char c;
    edo_task *w;

    /* A read timeout made moot by data. */
    delayed_write dw = { raw, 5 };
    int64_t t0 = edo_now();
    CHECK_OK(edo_spawn(&w, delayed_write_task, &dw));
    edo_io_set_timeout(io, 60, 0);
    CHECK_EQ(edo_read(io, &c, 1), 1);
    CHECK_EQ(edo_now() - t0, 5);
    CHECK_EQ(edo_join(w, NULL), 0);
    edo_io_set_timeout(io, 0, 0);
    check_full_sleep(200);

    /* A sleep cut short by the deadline. */
    edo_set_deadline(edo_now() + 10);
    CHECK_ERR(edo_sleep(100), -ETIMEDOUT);
    edo_set_deadline(EDO_NEVER);
    check_full_sleep(200);

    /* A read with no timeout must wait for its data, past the old sleep's moment. */
    edo_set_deadline(edo_now() + 10);
    CHECK_ERR(edo_sleep(80), -ETIMEDOUT);
    edo_set_deadline(EDO_NEVER);
    dw.ms = 150;
    t0 = edo_now();
    CHECK_OK(edo_spawn(&w, delayed_write_task, &dw));
    CHECK_EQ(edo_read(io, &c, 1), 1);
    CHECK_EQ(edo_now() - t0, 150);
    CHECK_EQ(edo_join(w, NULL), 0);

    /* A join whose deadline passed; the task's end then wakes no one. */
    CHECK_OK(edo_spawn(&w, short_sleep, VAL(60)));
    edo_set_deadline(edo_now() + 10);
    void *res = NULL;
    CHECK_ERR(edo_join(w, &res), -ETIMEDOUT);
    edo_set_deadline(EDO_NEVER);
    check_full_sleep(200);
    CHECK_EQ(edo_join(w, &res), 0);
    CHECK_EQ(INT(res), 0);

    CHECK_OK(edo_close(io));
    close(raw);
    return NULL;
}

static const test_root case_cancelled_timer_same_task = { .fn = ghost_same_task_root,
                                                          .paused = true };

enum { GHOST_MS = 150 };

static void *ghost_read_task(void *arg)
{
    char c;
    edo_io *io = arg;
    edo_io_set_timeout(io, GHOST_MS, 0);
    return VAL(edo_read(io, &c, 1));
}

static void *full_sleep_task(void *arg)
{
    check_full_sleep(INT(arg));
    return NULL;
}

static void *ghost_reuse_root(void *unused)
{
    enum { K = 20, ROUNDS = 5 };
    int raws[K];
    edo_io *ios[K];
    for (int i = 0; i < K; i++)
        ios[i] = test_socketpair(&raws[i]);
    for (int round = 0; round < ROUNDS; round++) {
        edo_task *ts[K];
        /* Aborted while their timers are pending (the paused clock moves meanwhile only by
         * the root's 1 ms steps while it waits for them to park, far less than GHOST_MS)... */
        for (int i = 0; i < K; i++) {
            if (i % 2)
                CHECK_OK(edo_spawn(&ts[i], short_sleep, VAL(GHOST_MS)));
            else
                CHECK_OK(edo_spawn(&ts[i], ghost_read_task, ios[i]));
        }
        for (int i = 0; i < K; i++)
            test_wait_parked(ts[i], i % 2 ? EDO_WAIT_SLEEP : EDO_WAIT_READ);
        for (int i = 0; i < K; i++)
            edo_abort(ts[i]);
        for (int i = 0; i < K; i++) {
            void *res;
            CHECK_ERR(edo_join(ts[i], &res), -EDO_EABORTED);
            CHECK_EQ(INT(res), -ECANCELED);
        }
        /* ...then their successors, on the same stacks, sleep through the moment those
         * timers were due. */
        for (int i = 0; i < K; i++)
            CHECK_OK(edo_spawn(&ts[i], full_sleep_task, VAL(GHOST_MS + 100)));
        for (int i = 0; i < K; i++)
            CHECK_EQ(edo_join(ts[i], NULL), 0);
    }
    for (int i = 0; i < K; i++) {
        CHECK_OK(edo_close(ios[i]));
        close(raws[i]);
    }
    return NULL;
}

static const test_root case_cancelled_timer_reused_task = { .fn = ghost_reuse_root,
                                                            .paused = true };

/* ---------------------------------------------------------------------------------------- */

static void case_now(void)
{
    int64_t prev = edo_now();
    for (int i = 0; i < 100000; i++) {
        int64_t n = edo_now();
        CHECK_GE(n, prev);
        prev = n;
    }
    /* The same clock as CLOCK_MONOTONIC, in milliseconds. */
    int64_t a = test_clock_ms(), n = edo_now(), b = test_clock_ms();
    CHECK_GE(n, a - 1);
    CHECK_LE(n, b + 1);
}

/* ---------------------------------------------------------------------------------------- */

typedef struct load {
    atomic_int stop;
    atomic_long spins; /* both spinners add to it, maybe on two workers at once */
} load;

static void *yield_spinner(void *arg)
{
    load *l = arg;
    while (!atomic_load(&l->stop)) {
        CHECK_EQ(edo_yield(), 0);
        atomic_fetch_add(&l->spins, 1);
    }
    return NULL;
}

static void *late_writer(void *arg)
{
    test_sleep_us(20000);
    CHECK_EQ(write(*(int *)arg, "w", 1), 1);
    return NULL;
}

static void *under_load_root(void *unused)
{
    /* Always a ready task: the runtime must still look at its timers and descriptors. */
    load l = { .stop = 0, .spins = 0 };
    edo_task *sp[2];
    CHECK_OK(edo_spawn(&sp[0], yield_spinner, &l));
    CHECK_OK(edo_spawn(&sp[1], yield_spinner, &l));
    int64_t t0 = edo_now();
    CHECK_EQ(edo_sleep(20), 0);
    CHECK_GE(edo_now() - t0, 20);
    CHECK_LT(edo_now() - t0, 20 + LATE_MS);

    int raw;
    edo_io *io = test_socketpair(&raw);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, late_writer, &raw), 0);
    edo_io_set_timeout(io, 5000, 0);
    char c;
    CHECK_EQ(edo_read(io, &c, 1), 1);
    CHECK_EQ(pthread_join(th, NULL), 0);
    atomic_store(&l.stop, 1);
    CHECK_EQ(edo_join(sp[0], NULL), 0);
    CHECK_EQ(edo_join(sp[1], NULL), 0);
    CHECK_GT(atomic_load(&l.spins), 10);
    CHECK_OK(edo_close(io));
    close(raw);
    return NULL;
}

static const test_root case_timers_under_load = { .fn = under_load_root };

/* ---------------------------------------------------------------------------------------- */

/* Two runtimes at once, one of them on a paused clock: each has its own clock. */
static void *two_rt_root(void *arg)
{
    bool paused = INT(arg) == 1;
    if (paused)
        CHECK_OK(edo_time_pause());
    enum { N = TEST_SCALE(500, 500, 100) };
    sleeper *s = run_sleepers(N, 100, 10 + (uint64_t)INT(arg));
    for (int i = 0; i < N; i++) {
        if (paused)
            CHECK_EQ(s[i].woke - s[i].start, s[i].ms);
        else
            check_woke(s[i].start, s[i].ms, s[i].woke);
    }
    if (!paused) {
        /* The other runtime's pause is not this one's. */
        int64_t a = test_clock_ms(), n = edo_now(), b = test_clock_ms();
        CHECK_GE(n, a - 1);
        CHECK_LE(n, b + 1);
    }
    free(s);
    return NULL;
}

static void *two_rt_thread(void *arg)
{
    test_run(two_rt_root, arg);
    return NULL;
}

/* A sleep beyond the wheel's span (about 2.2 years) alone on its wheel: the wheel must not
 * find it due at once and put it back for ever (which spun its worker and starved every
 * other timer of that worker). With one worker the root's own sleep shares the wheel. */
static void *far_sleeper(void *arg)
{
    return VAL(edo_sleep(INT64_MAX / 2));
}

static void *far_alone_root(void *arg)
{
    edo_task *far;
    CHECK_OK(edo_spawn(&far, far_sleeper, NULL));
    test_wait_parked(far, EDO_WAIT_SLEEP);
    int64_t t0 = edo_now();
    CHECK_EQ(edo_sleep(50), 0);
    CHECK_LT(edo_now() - t0, 2000);
    edo_abort(far);
    void *res = NULL;
    CHECK_ERR(edo_join(far, &res), -EDO_EABORTED);
    CHECK_ERR(INT(res), -ECANCELED);
    return NULL;
}

static void case_far_sleeper_alone(void)
{
    for (int i = 0; i < 5; i++)
        test_run(far_alone_root, NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* The paused clock's API                                                                   */

typedef struct clocked {
    int64_t ms, woke;
    atomic_bool *pool_done; /* when set: must be true by the time this sleeper wakes */
} clocked;

static void *clocked_sleeper(void *arg)
{
    clocked *c = arg;
    int rc = edo_sleep(c->ms);
    c->woke = edo_now();
    if (c->pool_done)
        CHECK(atomic_load(c->pool_done));
    return VAL(rc);
}

static void *real_nap(void *arg)
{
    test_sleep_us(30000); /* a blocking call, on the pool: 30 ms of the real clock */
    atomic_store((atomic_bool *)arg, true);
    return NULL;
}

/* Yields until t is in state `want` (and, parked, asleep), bounded on the real clock: no
 * sleep, since auto-advance is off. */
static void yield_until(edo_task *t, edo_task_state want)
{
    int64_t t0 = test_clock_ms();
    edo_task_info info;
    for (;;) {
        edo_task_stats(t, &info);
        if (info.state == want && (want != EDO_TASK_PARKED || info.waiting_on == EDO_WAIT_SLEEP))
            return;
        CHECK_MSG(test_clock_ms() - t0 < 10000, "task %s is %s", info.name,
                  test_state_name(info.state));
        CHECK_OK(edo_yield());
    }
}

typedef struct outside_now {
    int64_t before, now, after;
} outside_now;

static void *outside_now_thread(void *arg)
{
    outside_now *o = arg;
    o->before = test_clock_ms();
    o->now = edo_now();
    o->after = test_clock_ms();
    return NULL;
}

static void *clock_api_root(void *unused)
{
    CHECK(!edo_time_paused());
    CHECK_ERR(edo_time_advance(5), -EINVAL); /* not paused */
    CHECK_OK(edo_time_pause());
    CHECK_OK(edo_time_pause()); /* again: nothing changes */
    CHECK(edo_time_paused());
    CHECK_ERR(edo_time_advance(-1), -EINVAL);
    int64_t t0 = edo_now();

    /* Auto-advance off: only edo_time_advance moves the clock. */
    CHECK_OK(edo_time_auto_advance(false));
    clocked c = { .ms = 100 };
    edo_task *t;
    CHECK_OK(edo_spawn(&t, clocked_sleeper, &c));
    yield_until(t, EDO_TASK_PARKED); /* another worker may be slow to start it */
    CHECK_EQ(edo_now(), t0);
    CHECK_OK(edo_time_advance(99));
    CHECK_EQ(edo_now(), t0 + 99);
    edo_task_info info;
    edo_task_stats(t, &info);
    CHECK_MSG(info.state != EDO_TASK_DONE, "a 100 ms sleep ended after 99 ms");
    CHECK_OK(edo_time_advance(1));
    yield_until(t, EDO_TASK_DONE);
    CHECK_EQ(c.woke, t0 + 100);
    void *res;
    CHECK_OK(edo_join(t, &res));
    CHECK_EQ(INT(res), 0);

    /* On again: a long sleep ends at once, exactly. */
    CHECK_OK(edo_time_auto_advance(true));
    t0 = edo_now();
    CHECK_OK(edo_sleep(3600 * 1000));
    CHECK_EQ(edo_now() - t0, 3600 * 1000);

    /* A call on the blocking pool holds auto-advance back until it returns. */
    atomic_bool pool_done = false;
    clocked d = { .ms = 10, .pool_done = &pool_done };
    edo_task *nap;
    CHECK_OK(edo_spawn_blocking(&nap, real_nap, &pool_done));
    CHECK_OK(edo_spawn(&t, clocked_sleeper, &d));
    CHECK_OK(edo_join(t, &res));
    CHECK_EQ(INT(res), 0);
    CHECK_OK(edo_join(nap, NULL));

    /* Outside a task, edo_now() is CLOCK_MONOTONIC whatever the runtimes' clocks say. */
    outside_now o;
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, outside_now_thread, &o), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_GE(o.now, o.before - 1);
    CHECK_LE(o.now, o.after + 1);

    /* Running again, on from where it stood: never back. */
    int64_t at_resume = edo_now();
    CHECK_OK(edo_time_resume());
    CHECK(!edo_time_paused());
    CHECK_ERR(edo_time_advance(5), -EINVAL);
    CHECK_GE(edo_now(), at_resume);
    int64_t r0 = edo_now();
    CHECK_OK(edo_sleep(20));
    check_woke(r0, 20, edo_now());
    CHECK_OK(edo_time_pause());
    CHECK_GE(edo_now(), r0 + 20);

    /* Far on: the clock stops some 146 years ahead, and never goes back. */
    const int64_t far = 4000000000000; /* 126 years, in ms */
    t0 = edo_now();
    CHECK_OK(edo_sleep(far));
    CHECK_EQ(edo_now(), t0 + far);
    CHECK_OK(edo_time_advance(0));
    CHECK_EQ(edo_now(), t0 + far);
    CHECK_OK(edo_time_advance(INT64_MAX / 2));
    int64_t top = edo_now();
    CHECK_GT(top, t0 + far);
    CHECK_OK(edo_time_advance(1000));
    CHECK_EQ(edo_now(), top);
    return NULL;
}

static void case_paused_clock_api(void)
{
    CHECK_ERR(edo_time_pause(), -EDO_ENOTASK);
    CHECK_ERR(edo_time_resume(), -EDO_ENOTASK);
    CHECK_ERR(edo_time_advance(1), -EDO_ENOTASK);
    CHECK_ERR(edo_time_auto_advance(true), -EDO_ENOTASK);
    CHECK(!edo_time_paused());
    test_run(clock_api_root, NULL);
}

static void case_two_runtimes(void)
{
    pthread_t th[2];
    for (intptr_t i = 0; i < 2; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, two_rt_thread, VAL(i)), 0);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(pthread_join(th[i], NULL), 0);
}

static const test_case cases[] = {
    TEST_CASE_ONCE(case_now),
    TEST_CASE(case_many_sleepers),
    TEST_CASE(case_many_sleepers_real),
    TEST_CASE(case_sleep_until),
    TEST_CASE(case_sleep_zero_negative),
    TEST_CASE(case_wheel_levels),
    TEST_CASE(case_deadline),
    TEST_CASE(case_cancelled_timer_same_task),
    TEST_CASE(case_cancelled_timer_reused_task),
    TEST_CASE(case_timers_under_load),
    TEST_CASE(case_two_runtimes),
    TEST_CASE(case_paused_clock_api),
    TEST_CASE(case_far_sleeper_alone),
};

TEST_MAIN(cases)
