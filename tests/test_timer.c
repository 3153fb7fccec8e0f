/*
 * Timers: many sleepers woken in deadline order and never early, sleep_until, zero and
 * negative sleeps, timers on every level of the wheel, task deadlines, cancelled timers
 * that must not fire into later waits, timers under load and in two runtimes at once, a
 * sleep beyond the wheel's span.
 *
 * edo-test: timeout=300
 */
#include "harness.h"

#include <pthread.h>

/* How late a timer may fire before we call it broken: generous, the machine is shared. */
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

static sleeper *order_by_seq;

static int cmp_seq(const void *a, const void *b)
{
    return order_by_seq[*(const int *)a].seq - order_by_seq[*(const int *)b].seq;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Whether one of the n sorted wake times lies strictly between from and to: some sleeper
 * ran then, so the runtime was not stalled. */
static bool woke_between(const int64_t *sorted, int n, int64_t from, int64_t to)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (sorted[mid] <= from)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && sorted[lo] < to;
}

static void *many_sleepers_root(void *unused)
{
    enum { N = TEST_SCALE(10000, 10000, 2000) };
    sleeper *s = calloc(N, sizeof *s);
    edo_task **ts = calloc(N, sizeof *ts);
    atomic_int next_seq = 0;
    test_rng r = test_rng_new(1);
    for (int i = 0; i < N; i++) {
        s[i].ms = (int64_t)test_rng_range(&r, 1, 500);
        s[i].next_seq = &next_seq;
        CHECK_OK(edo_spawn(&ts[i], sleeper_task, &s[i]));
    }
    for (int i = 0; i < N; i++)
        CHECK_EQ(edo_join(ts[i], NULL), 0);
    CHECK_EQ(atomic_load(&next_seq), N);

    int64_t worst = 0;
    for (int i = 0; i < N; i++) {
        check_woke(s[i].start, s[i].ms, s[i].woke);
        if (s[i].woke - s[i].start - s[i].ms > worst)
            worst = s[i].woke - s[i].start - s[i].ms;
    }
    /* In wake order, no deadline may come more than `slack` ms before one already woken,
     * unless the runtime was stalled meanwhile. One worker pops its wheel in deadline
     * order, so 2 ms (a wheel slot and a clock tick) is all the slack it needs. Several
     * workers each have a wheel of their own and take their sequence numbers in parallel:
     * a sleeper popped on one worker can be overtaken by a later deadline on another while
     * its worker is preempted (4 workers on 2 cores are), so the order then holds only to
     * within a scheduling delay.
     * A stall of the whole process (the machine is shared) makes every timer that fell due
     * meanwhile fire in one batch, in no deadline order; that is no error. An overtaken
     * sleeper is one only if the runtime ran other sleepers while it was overdue: some
     * sleeper woke after its deadline (plus the slack) and before the later deadline that
     * overtook it.
     * Until every sleeper has started, the worker is behind: sleepers woken then queue
     * among tasks not yet started, and a queue that overflows moves its older half to the
     * inject queue, behind the rest. Order is promised only for deadlines after that. */
    int64_t first_start = INT64_MAX, last_start = 0;
    for (int i = 0; i < N; i++) {
        first_start = s[i].start < first_start ? s[i].start : first_start;
        last_start = s[i].start > last_start ? s[i].start : last_start;
    }
    int nw = edo_runtime_workers(edo_runtime_current());
    /* Under TSan one worker is slow enough to fall behind a burst of deadlines. The
     * timers that fell due meanwhile come out of the wheel together, ordered only to the
     * wheel's slot, and a slot of an upper level spans up to 64 ms. */
    const int64_t slack = nw == 1 ? TEST_SCALE(2, 2, 100) : 250;
    int64_t *wokes = malloc(N * sizeof *wokes);
    for (int i = 0; i < N; i++)
        wokes[i] = s[i].woke;
    qsort(wokes, N, sizeof *wokes, cmp_i64);
    int *idx = malloc(N * sizeof *idx);
    for (int i = 0; i < N; i++)
        idx[i] = i;
    order_by_seq = s;
    qsort(idx, N, sizeof *idx, cmp_seq);
    int64_t max_dl = s[idx[0]].start + s[idx[0]].ms;
    int max_at = 0;
    int64_t inversion = 0, stalled = 0;
    for (int k = 1; k < N; k++) {
        sleeper *x = &s[idx[k]];
        int64_t dl = x->start + x->ms;
        if (dl < max_dl - slack && dl > last_start + slack) {
            if (!woke_between(wokes, N, dl + slack, max_dl - slack)) {
                /* Nothing ran from its deadline to the other's: a stall. */
                if (max_dl - dl > stalled)
                    stalled = max_dl - dl;
            } else {
                sleeper *m = &s[idx[max_at]];
                fprintf(stderr,
                        "woken #%d: start %" PRId64 " + %" PRId64 " ms, woke %" PRId64 "\n"
                        "woken #%d: start %" PRId64 " + %" PRId64 " ms, woke %" PRId64 "\n",
                        max_at, m->start, m->ms, m->woke, k, x->start, x->ms, x->woke);
                TEST_FAIL("woken #%d has deadline %" PRId64 " but #%d with deadline %" PRId64
                          " woke before it, and others ran meanwhile (%d workers)",
                          k, dl, max_at, max_dl, nw);
            }
        } else if (max_dl - dl > inversion) {
            inversion = max_dl - dl;
        }
        if (dl > max_dl) {
            max_dl = dl;
            max_at = k;
        }
    }
    printf("    %d sleepers on %d workers started within %" PRId64 " ms, latest wake %" PRId64
           " ms after its deadline, worst order inversion %" PRId64 " ms (%" PRId64
           " ms across a stall)\n",
           N, nw, last_start - first_start, worst, inversion, stalled);
    free(wokes);
    free(idx);
    free(ts);
    free(s);
    return NULL;
}

static void case_many_sleepers(void)
{
    test_run(many_sleepers_root, NULL);
}

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
    CHECK_GE(edo_now(), dl);
    CHECK_LT(edo_now() - t0, 30 + LATE_MS);

    /* Already past: returns at once. */
    t0 = edo_now();
    CHECK_EQ(edo_sleep_until(t0 - 100), 0);
    CHECK_EQ(edo_sleep_until(0), 0);
    CHECK_EQ(edo_sleep_until(INT64_MIN), 0);
    CHECK_LT(edo_now() - t0, 1000);

    /* Many tasks on one deadline. */
    enum { N = 1000 };
    until_arg *u = calloc(N, sizeof *u);
    edo_task **ts = calloc(N, sizeof *ts);
    dl = edo_now() + 40;
    for (int i = 0; i < N; i++) {
        u[i].deadline = dl;
        CHECK_OK(edo_spawn(&ts[i], until_task, &u[i]));
    }
    for (int i = 0; i < N; i++) {
        CHECK_EQ(edo_join(ts[i], NULL), 0);
        CHECK_GE(u[i].woke, dl);
        CHECK_LE(u[i].woke, dl + LATE_MS);
    }
    free(u);
    free(ts);
    return NULL;
}

static void case_sleep_until(void)
{
    test_run(sleep_until_root, NULL);
}

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
     * has. */
    bool one_worker = edo_runtime_workers(edo_runtime_current()) == 1;
    const int64_t ms[] = { 0, -1, -5, INT64_MIN };
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        atomic_int flag = 0;
        edo_task *t;
        CHECK_OK(edo_spawn(&t, set_flag, &flag));
        int64_t t0 = edo_now();
        /* Just a yield: the ready task gets to run, and we come back at once. */
        CHECK_EQ(edo_sleep(ms[i]), 0);
        if (one_worker)
            CHECK_EQ(atomic_load(&flag), 1);
        CHECK_LT(edo_now() - t0, 1000);
        CHECK_EQ(edo_join(t, NULL), 0);
        CHECK_EQ(atomic_load(&flag), 1);
    }
    /* Alone: nothing else to run, still returns. */
    int64_t t0 = edo_now();
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(edo_sleep(0), 0);
    CHECK_LT(edo_now() - t0, 1000);
    return NULL;
}

static void case_sleep_zero_negative(void)
{
    test_run(sleep_zero_root, NULL);
}

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

static void *wheel_levels_root(void *unused)
{
    /* Around every power-of-two boundary a wheel is likely to use, up to 5 s. */
    const int64_t ms[] = { 1,    2,    15,   16,   17,   63,   64,   65,   70,   127,
                           128,  129,  255,  256,  257,  300,  511,  512,  513,  1000,
                           1023, 1024, 1025, 2047, 2048, 2049, 4095, 4096, 4097, 5000 };
    enum { N = sizeof ms / sizeof ms[0] };
    /* Far away: must still be parked when the rest are done. */
    const int64_t far[] = { 100000, 3 * 24 * 3600 * 1000LL, INT64_MAX / 2, INT64_MAX };
    enum { F = sizeof far / sizeof far[0] };
    level_arg la[N], lf[F];
    edo_task *ts[N], *tf[F];
    for (int i = 0; i < F; i++) {
        lf[i].ms = far[i];
        CHECK_OK(edo_spawn(&tf[i], level_task, &lf[i]));
    }
    for (int i = 0; i < N; i++) {
        la[i].ms = ms[i];
        CHECK_OK(edo_spawn(&ts[i], level_task, &la[i]));
    }
    for (int i = 0; i < N; i++) {
        void *res;
        CHECK_EQ(edo_join(ts[i], &res), 0);
        CHECK_EQ(INT(res), 0);
        CHECK_MSG(la[i].elapsed >= ms[i] && la[i].elapsed <= ms[i] + LATE_MS,
                  "a %" PRId64 " ms sleep took %" PRId64 " ms", ms[i], la[i].elapsed);
    }
    for (int i = 0; i < F; i++) {
        edo_task_info info;
        edo_task_stats(tf[i], &info);
        CHECK_MSG(info.state == EDO_TASK_PARKED && info.waiting_on == EDO_WAIT_SLEEP,
                  "a %" PRId64 " ms sleep is %s after 5 s", far[i], test_state_name(info.state));
        edo_abort(tf[i]);
        void *res;
        CHECK_ERR(edo_join(tf[i], &res), -ECANCELED);
        CHECK_EQ(INT(res), -ECANCELED);
    }
    return NULL;
}

static void case_wheel_levels(void)
{
    test_run(wheel_levels_root, NULL);
}

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
    CHECK_GE(edo_now(), dl);
    CHECK_LT(edo_now() - t0, 50 + LATE_MS);
    /* Still in force: the next call that would suspend fails at once. */
    t0 = edo_now();
    CHECK_ERR(edo_read(io, &c, 1), -ETIMEDOUT);
    CHECK_ERR(edo_sleep(1), -ETIMEDOUT);
    CHECK_LT(edo_now() - t0, 1000);
    CHECK_EQ(edo_set_deadline(EDO_NEVER), dl);
    CHECK_EQ(edo_deadline(), EDO_NEVER);
    CHECK_EQ(edo_sleep(10), 0);

    /* A read parked when the deadline passes. */
    dl = edo_now() + 40;
    CHECK_EQ(edo_set_deadline(dl), EDO_NEVER);
    CHECK_ERR(edo_read(io, &c, 1), -ETIMEDOUT);
    CHECK_GE(edo_now(), dl);
    CHECK_EQ(edo_set_deadline(EDO_NEVER), dl);

    /* Nested scopes restore the outer deadline. */
    t0 = edo_now();
    int64_t outer = t0 + 1000, inner = t0 + 30;
    CHECK_EQ(edo_set_deadline(outer), EDO_NEVER);
    CHECK_EQ(edo_set_deadline(inner), outer);
    CHECK_ERR(edo_sleep(10000), -ETIMEDOUT);
    CHECK_GE(edo_now(), inner);
    CHECK_LT(edo_now(), outer);
    CHECK_EQ(edo_set_deadline(outer), inner);
    delayed_write dw = { raw, 50 };
    edo_task *w;
    CHECK_OK(edo_spawn(&w, delayed_write_task, &dw));
    CHECK_EQ(edo_read(io, &c, 1), 1);
    CHECK_EQ(edo_join(w, NULL), 0);
    CHECK_ERR(edo_sleep(10000), -ETIMEDOUT);
    CHECK_GE(edo_now(), outer);
    CHECK_EQ(edo_set_deadline(EDO_NEVER), outer);

    /* Whichever comes first, the call's own timeout or the task's deadline. */
    dl = edo_now() + 2000;
    edo_set_deadline(dl);
    edo_io_set_timeout(io, 20, 0);
    t0 = edo_now();
    CHECK_ERR(edo_read(io, &c, 1), -ETIMEDOUT);
    CHECK_GE(edo_now() - t0, 20);
    CHECK_LT(edo_now(), dl);
    edo_io_set_timeout(io, 2000, 0);
    dl = edo_now() + 20;
    edo_set_deadline(dl);
    CHECK_ERR(edo_read(io, &c, 1), -ETIMEDOUT);
    CHECK_GE(edo_now(), dl);
    CHECK_LT(edo_now() - dl, 1500);
    edo_io_set_timeout(io, 0, 0);

    /* Far-off arguments do not overflow into the past. */
    dl = edo_now() + 20;
    edo_set_deadline(dl);
    CHECK_ERR(edo_sleep(INT64_MAX), -ETIMEDOUT);
    CHECK_GE(edo_now(), dl);
    dl = edo_now() + 20;
    edo_set_deadline(dl);
    CHECK_ERR(edo_sleep_until(EDO_NEVER), -ETIMEDOUT);
    CHECK_GE(edo_now(), dl);

    /* A deadline in the past fails every suspension at once. */
    edo_set_deadline(edo_now() - 1);
    t0 = edo_now();
    CHECK_ERR(edo_sleep(10000), -ETIMEDOUT);
    CHECK_ERR(edo_read(io, &c, 1), -ETIMEDOUT);
    CHECK_ERR(edo_sleep_until(EDO_NEVER), -ETIMEDOUT);
    char addr[48];
    edo_io *lis = test_listen(addr, sizeof addr, 4), *conn;
    CHECK_ERR(edo_tcp_accept(lis, &conn), -ETIMEDOUT);
    edo_task *t;
    CHECK_OK(edo_spawn(&t, short_sleep, VAL(300)));
    /* The join fails for us; the handle stays valid. */
    CHECK_ERR(edo_join(t, NULL), -ETIMEDOUT);
    CHECK_LT(edo_now() - t0, 1000);
    edo_set_deadline(EDO_NEVER);
    void *res;
    CHECK_EQ(edo_join(t, &res), 0);
    CHECK_EQ(INT(res), 0);

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
    test_run(deadline_root, NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* A timer that was cancelled must not fire into a later wait of the same task, nor into a  */
/* task that reuses the memory of the one it belonged to.                                    */

static void check_full_sleep(int64_t ms)
{
    int64_t t0 = edo_now();
    CHECK_EQ(edo_sleep(ms), 0);
    CHECK_MSG(edo_now() - t0 >= ms, "a %" PRId64 " ms sleep ended after %" PRId64 " ms", ms,
              edo_now() - t0);
}

static void *ghost_same_task_root(void *unused)
{
    int raw;
    edo_io *io = test_socketpair(&raw);
    char c;
    edo_task *w;

    /* A read timeout made moot by data. A loaded machine may run the writer, or resume the
     * reader, only after the timeout: then the byte is drained and a longer one tried. */
    delayed_write dw = { raw, 5 };
    int64_t timeout = 60;
    for (;;) {
        CHECK_OK(edo_spawn(&w, delayed_write_task, &dw));
        edo_io_set_timeout(io, timeout, 0);
        int rc = edo_read(io, &c, 1);
        CHECK_EQ(edo_join(w, NULL), 0);
        if (rc == 1)
            break;
        CHECK_ERR(rc, -ETIMEDOUT);
        edo_io_set_timeout(io, 0, 0);
        CHECK_EQ(edo_read(io, &c, 1), 1);
        timeout *= 4;
        CHECK_LE(timeout, 60 * 4 * 4 * 4);
    }
    edo_io_set_timeout(io, 0, 0);
    check_full_sleep(timeout + 140);

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
    int64_t t0 = edo_now();
    CHECK_OK(edo_spawn(&w, delayed_write_task, &dw));
    CHECK_EQ(edo_read(io, &c, 1), 1);
    CHECK_GE(edo_now() - t0, 150);
    CHECK_EQ(edo_join(w, NULL), 0);

    /* A join whose deadline passed; the task's end then wakes no one. If the spawner was
     * held up long enough for the task to end before the join, it is tried again. */
    for (int64_t ms = 60;; ms *= 4) {
        CHECK_LE(ms, 60 * 4 * 4 * 4);
        CHECK_OK(edo_spawn(&w, short_sleep, VAL(ms)));
        edo_set_deadline(edo_now() + 10);
        void *res = NULL;
        int rc = edo_join(w, &res);
        edo_set_deadline(EDO_NEVER);
        if (rc == 0) {
            CHECK_EQ(INT(res), 0);
            continue;
        }
        CHECK_ERR(rc, -ETIMEDOUT);
        check_full_sleep(ms + 140);
        CHECK_EQ(edo_join(w, &res), 0);
        CHECK_EQ(INT(res), 0);
        break;
    }

    CHECK_OK(edo_close(io));
    close(raw);
    return NULL;
}

static void case_cancelled_timer_same_task(void)
{
    test_run(ghost_same_task_root, NULL);
}

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
    int ghosts = 0;
    for (int i = 0; i < K; i++)
        ios[i] = test_socketpair(&raws[i]);
    for (int round = 0; round < ROUNDS; round++) {
        edo_task *ts[K];
        /* Aborted while their timers are pending... */
        int64_t t0 = edo_now();
        for (int i = 0; i < K; i++) {
            if (i % 2)
                CHECK_OK(edo_spawn(&ts[i], short_sleep, VAL(GHOST_MS)));
            else
                CHECK_OK(edo_spawn(&ts[i], ghost_read_task, ios[i]));
        }
        for (int i = 0; i < K; i++)
            test_wait_parked_or_done(ts[i], i % 2 ? EDO_WAIT_SLEEP : EDO_WAIT_READ);
        for (int i = 0; i < K; i++)
            edo_abort(ts[i]);
        int64_t aborted_at = edo_now();
        for (int i = 0; i < K; i++) {
            void *res;
            int rc = edo_join(ts[i], &res);
            if (rc == 0) {
                /* A loaded machine may let a timer fire before the abort reached it: that
                 * task ended on its own, which is only right once its time was up. */
                CHECK_GE(aborted_at - t0, GHOST_MS);
                CHECK_EQ(INT(res), i % 2 ? 0 : -ETIMEDOUT);
                continue;
            }
            CHECK_ERR(rc, -ECANCELED);
            CHECK_EQ(INT(res), -ECANCELED);
            ghosts++;
        }
        /* ...then their successors sleep through the moment those timers were due. */
        for (int i = 0; i < K; i++)
            CHECK_OK(edo_spawn(&ts[i], full_sleep_task, VAL(GHOST_MS + 100)));
        for (int i = 0; i < K; i++)
            CHECK_EQ(edo_join(ts[i], NULL), 0);
    }
    /* The case means nothing unless some tasks really were aborted with a timer pending. */
    CHECK_GT(ghosts, 0);
    for (int i = 0; i < K; i++) {
        CHECK_OK(edo_close(ios[i]));
        close(raws[i]);
    }
    return NULL;
}

static void case_cancelled_timer_reused_task(void)
{
    test_run(ghost_reuse_root, NULL);
}

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

static void case_timers_under_load(void)
{
    test_run(under_load_root, NULL);
}

/* ---------------------------------------------------------------------------------------- */

static void *two_rt_root(void *arg)
{
    enum { N = TEST_SCALE(500, 500, 200) };
    sleeper *s = calloc(N, sizeof *s);
    edo_task **ts = calloc(N, sizeof *ts);
    atomic_int next_seq = 0;
    test_rng r = test_rng_new(10 + (uint64_t)INT(arg));
    for (int i = 0; i < N; i++) {
        s[i].ms = (int64_t)test_rng_range(&r, 1, 100);
        s[i].next_seq = &next_seq;
        CHECK_OK(edo_spawn(&ts[i], sleeper_task, &s[i]));
    }
    for (int i = 0; i < N; i++) {
        CHECK_EQ(edo_join(ts[i], NULL), 0);
        check_woke(s[i].start, s[i].ms, s[i].woke);
    }
    free(s);
    free(ts);
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
    CHECK_ERR(edo_join(far, &res), -ECANCELED);
    CHECK_ERR(INT(res), -ECANCELED);
    return NULL;
}

static void case_far_sleeper_alone(void)
{
    for (int i = 0; i < 5; i++)
        test_run(far_alone_root, NULL);
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
    TEST_CASE(case_now),
    TEST_CASE(case_many_sleepers),
    TEST_CASE(case_sleep_until),
    TEST_CASE(case_sleep_zero_negative),
    TEST_CASE(case_wheel_levels),
    TEST_CASE(case_deadline),
    TEST_CASE(case_cancelled_timer_same_task),
    TEST_CASE(case_cancelled_timer_reused_task),
    TEST_CASE(case_timers_under_load),
    TEST_CASE(case_two_runtimes),
    TEST_CASE(case_far_sleeper_alone),
};

TEST_MAIN(cases)
