/*
 * The wake/park protocol under stress: wakes that arrive just before a task parks, aborts
 * from other threads at random moments, spawn storms from foreign threads while the
 * runtime sleeps and wakes, and timers racing wakes. A lost wake-up shows as a read that
 * times out (each is bounded) or, failing that, as CTest's timeout.
 *
 * edo-test: timeout=180
 */
#include "harness.h"

#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>

/* Spins until *v >= want, politely; fails after 20 s (a lost wake-up on the other side).
 * A short spin catches the other side at once on an idle machine; past it the thread
 * sleeps in small steps, so that on a busy one it does not take the CPU the other side
 * needs. */
static void spin_until(atomic_int *v, int want, const char *what)
{
    int64_t t0 = test_clock_ms();
    for (unsigned n = 0; atomic_load_explicit(v, memory_order_acquire) < want; n++) {
        if (n < 2000)
            continue;
        if (n < 2100)
            sched_yield();
        else
            test_sleep_us(20);
        if ((n & 63) == 63)
            CHECK_MSG(test_clock_ms() - t0 < 20000, "%s: stuck at %d, waiting for %d", what,
                      atomic_load(v), want);
    }
}

/* A thread's random pause before its next move, so that the move lands at varying points
 * of the task's progress: none, a spin of up to short_spin or long_spin iterations, or a
 * sleep of up to max_sleep_us. */
static void random_delay(test_rng *r, unsigned short_spin, unsigned long_spin, int max_sleep_us)
{
    switch (test_rng_next(r) % 4) {
    case 0:
        break;
    case 1:
        test_spin(r, short_spin);
        break;
    case 2:
        test_spin(r, long_spin);
        break;
    case 3:
        test_sleep_us((int64_t)(test_rng_next(r) % (uint64_t)max_sleep_us));
        break;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Wake before park: the byte lands while the reader is between two edo_read calls.        */

enum { PAIR_SOCKET, PAIR_PIPE, PAIR_TCP, PAIR_COUNT };

typedef struct lockstep {
    int kind;
    int wfd; /* the writer thread's plain descriptor */
    edo_io *rio;
    int rounds;
    atomic_int consumed; /* bytes the task has read and checked */
    pthread_t thread;
} lockstep;

static void *lockstep_writer(void *arg)
{
    lockstep *ls = arg;
    test_rng r = test_rng_new(100 + (uint64_t)ls->kind);
    for (int i = 0; i < ls->rounds; i++) {
        spin_until(&ls->consumed, i, "writer");
        random_delay(&r, 300, 5000, 50);
        unsigned char c = (unsigned char)i;
        CHECK_EQ(write(ls->wfd, &c, 1), 1);
    }
    return NULL;
}

static void *lockstep_reader(void *arg)
{
    lockstep *ls = arg;
    test_rng r = test_rng_new(200 + (uint64_t)ls->kind);
    edo_io_set_timeout(ls->rio, 5000, 0);
    for (int i = 0; i < ls->rounds; i++) {
        if (test_rng_next(&r) & 1)
            test_spin(&r, 3000);
        unsigned char c;
        ssize_t n = edo_read(ls->rio, &c, 1);
        CHECK_MSG(n == 1, "pair %d, round %d: edo_read returned %zd (%s): lost wake-up?", ls->kind,
                  i, n, n < 0 ? edo_strerror((int)n) : "");
        CHECK_EQ(c, (unsigned char)i);
        atomic_store_explicit(&ls->consumed, i + 1, memory_order_release);
    }
    return NULL;
}

static void *wake_before_park_root(void *unused)
{
    lockstep ls[PAIR_COUNT];
    edo_task *ts[PAIR_COUNT];
    for (int k = 0; k < PAIR_COUNT; k++) {
        lockstep *l = &ls[k];
        memset(l, 0, sizeof *l);
        l->kind = k;
        l->rounds = TEST_SCALE(4000, 2000, 2000);
        if (k == PAIR_SOCKET) {
            l->rio = test_socketpair(&l->wfd);
        } else if (k == PAIR_PIPE) {
            int p[2];
            CHECK_SYS(pipe2(p, O_CLOEXEC));
            CHECK_OK(edo_io_wrap(&l->rio, p[0]));
            l->wfd = p[1];
        } else {
            char addr[48];
            edo_io *lis = test_listen(addr, sizeof addr, 4);
            bool established;
            l->wfd = test_raw_connect(addr, 1000, &established);
            CHECK(established);
            CHECK_OK(edo_tcp_accept(&l->rio, lis));
            CHECK_OK(edo_close(lis));
            /* The writer thread blocks in write(); a non-blocking socket would not. */
            CHECK_SYS(fcntl(l->wfd, F_SETFL, 0));
        }
        CHECK_OK(edo_spawn(&ts[k], lockstep_reader, l));
        CHECK_EQ(pthread_create(&l->thread, NULL, lockstep_writer, l), 0);
    }
    for (int k = 0; k < PAIR_COUNT; k++) {
        CHECK_EQ(edo_join(ts[k], NULL), 0);
        CHECK_EQ(pthread_join(ls[k].thread, NULL), 0);
        CHECK_EQ(atomic_load(&ls[k].consumed), ls[k].rounds);
        CHECK_OK(edo_close(ls[k].rio));
        close(ls[k].wfd);
    }
    return NULL;
}

static const test_root case_wake_before_park = { .fn = wake_before_park_root };

/* ---------------------------------------------------------------------------------------- */
/* Wake during park: a foreign thread aborts the task at a random moment of a tight loop of */
/* parks and unparks.                                                                       */

typedef struct abort_race {
    _Atomic(edo_task *) target;
    atomic_int round;  /* the root published the victim of this round */
    atomic_int issued; /* the thread is about to abort the victim of this round */
    atomic_int acked;  /* edo_abort of this round has returned */
    edo_io *ack_io;    /* an eventfd the thread writes once it has acked */
    int ack_fd;
    int rounds;
    edo_io *io; /* read by the victims; the thread writes into wfd */
    int wfd;
    int peer; /* the victims' own write end of a second pair */
    edo_io *self_io;
    long ops[8];
} abort_race;

typedef struct victim_arg {
    abort_race *ar;
    int round;
} victim_arg;

static void *child_yields(void *arg)
{
    for (int i = 0; i < 3; i++)
        if (edo_yield() < 0)
            break;
    return NULL;
}

static void *race_victim(void *arg)
{
    victim_arg *va = arg;
    abort_race *ar = va->ar;
    test_rng r = test_rng_new(1000 + (uint64_t)va->round);
    char buf[16];
    for (;;) {
        int op = (int)(test_rng_next(&r) % 8);
        long rc;
        ar->ops[op]++;
        switch (op) {
        case 0:
            rc = edo_sleep(0);
            CHECK(rc == 0 || rc == -ECANCELED);
            break;
        case 1:
            rc = edo_yield();
            CHECK(rc == 0 || rc == -ECANCELED);
            break;
        case 2:
            rc = edo_sleep(1);
            CHECK(rc == 0 || rc == -ECANCELED);
            break;
        case 3: /* data is there before the call */
            CHECK_EQ(write(ar->peer, "x", 1), 1);
            rc = edo_read(ar->self_io, buf, sizeof buf);
            CHECK(rc >= 1 || rc == -ECANCELED);
            break;
        case 4: /* parks on a timer */
            edo_io_set_timeout(ar->self_io, 1, 0);
            rc = edo_read(ar->self_io, buf, sizeof buf);
            edo_io_set_timeout(ar->self_io, 0, 0);
            /* Bytes left by a read that was canceled come first. */
            CHECK(rc >= 1 || rc == -ETIMEDOUT || rc == -ECANCELED);
            break;
        case 5: /* parks until the thread's byte, its timeout or the abort */
            edo_io_set_timeout(ar->io, 20, 0);
            rc = edo_read(ar->io, buf, sizeof buf);
            CHECK(rc >= 1 || rc == -ETIMEDOUT || rc == -ECANCELED);
            break;
        case 6: {
            /* A child's wake-up of its joiner racing the abort. (What a join cut short
             * does to the handle is test_task's business; here the child has always
             * returned by the time the join is made or given up.) */
            edo_task *child;
            edo_task_info info;
            CHECK_OK(edo_spawn(&child, child_yields, NULL));
            do {
                rc = edo_yield();
                edo_task_stats(child, &info);
            } while (rc == 0 && info.state != EDO_TASK_DONE);
            if (rc == 0)
                CHECK_EQ(edo_join(child, NULL), 0);
            else
                edo_detach(child);
            CHECK(rc == 0 || rc == -ECANCELED);
            break;
        }
        default:
            rc = edo_aborted() ? -ECANCELED : 0;
            break;
        }
        if (rc == -ECANCELED) {
            CHECK_MSG(atomic_load(&ar->issued) >= va->round,
                      "round %d: op %d canceled before any abort", va->round, op);
            break;
        }
    }
    CHECK(edo_aborted());
    CHECK_ERR(edo_yield(), -ECANCELED);
    CHECK_ERR(edo_sleep(0), -ECANCELED);
    CHECK_ERR(edo_sleep(1000), -ECANCELED);
    return VAL(va->round);
}

static void *aborter_thread(void *arg)
{
    abort_race *ar = arg;
    test_rng r = test_rng_new(300);
    for (int i = 1; i <= ar->rounds; i++) {
        spin_until(&ar->round, i, "aborter");
        edo_task *t = atomic_load(&ar->target);
        random_delay(&r, 2000, 30000, 300);
        if (test_rng_next(&r) & 1)
            CHECK_EQ(write(ar->wfd, "y", 1), 1);
        atomic_store(&ar->issued, i);
        edo_abort(t);
        if (test_rng_next(&r) % 4 == 0)
            edo_abort(t);
        atomic_store(&ar->acked, i);
        uint64_t one = 1;
        CHECK_EQ(write(ar->ack_fd, &one, sizeof one), (ssize_t)sizeof one);
    }
    return NULL;
}

static void *abort_race_root(void *unused)
{
    abort_race *ar = calloc(1, sizeof *ar);
    ar->rounds = TEST_SCALE(2000, 1000, 800);
    ar->io = test_socketpair(&ar->wfd);
    ar->self_io = test_socketpair(&ar->peer);
    ar->ack_fd = (int)CHECK_SYS(eventfd(0, EFD_CLOEXEC));
    int ack_dup = (int)CHECK_SYS(dup(ar->ack_fd));
    CHECK_OK(edo_io_wrap(&ar->ack_io, ack_dup));
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, aborter_thread, ar), 0);
    for (int i = 1; i <= ar->rounds; i++) {
        victim_arg va = { ar, i };
        edo_task *t;
        CHECK_OK(edo_spawn(&t, race_victim, &va));
        atomic_store(&ar->target, t);
        atomic_store(&ar->round, i);
        /* The handle must outlive the other thread's edo_abort: wait for its word,
         * without spinning (a spin takes the CPU the thread needs on a busy machine). */
        while (atomic_load(&ar->acked) < i) {
            uint64_t v;
            edo_io_set_timeout(ar->ack_io, 10000, 0);
            CHECK_MSG(edo_read(ar->ack_io, &v, sizeof v) == (ssize_t)sizeof v,
                      "round %d: the abort never returned", i);
        }
        void *res = NULL;
        CHECK_ERR(edo_join(t, &res), -EDO_EABORTED);
        CHECK_EQ(INT(res), i);
    }
    CHECK_EQ(pthread_join(th, NULL), 0);
    printf("    ops: sleep0 %ld, yield %ld, sleep1 %ld, read %ld, read-timeout %ld, "
           "read-wait %ld, join %ld\n",
           ar->ops[0], ar->ops[1], ar->ops[2], ar->ops[3], ar->ops[4], ar->ops[5], ar->ops[6]);
    CHECK_OK(edo_close(ar->io));
    CHECK_OK(edo_close(ar->self_io));
    CHECK_OK(edo_close(ar->ack_io));
    close(ar->ack_fd);
    close(ar->wfd);
    close(ar->peer);
    free(ar);
    return NULL;
}

static const test_root case_abort_race = { .fn = abort_race_root };

/* ---------------------------------------------------------------------------------------- */
/* Spawn storms from foreign threads while the runtime thread idles and wakes.              */

enum { STORM_THREADS = 6 };

typedef struct storm {
    edo_runtime *rt;
    int per_thread;
    atomic_int *ran; /* per task: how many times it ran */
    atomic_int total_ran;
    atomic_int threads_done;
    atomic_long joined;
} storm;

typedef struct storm_thread {
    storm *s;
    int k;
} storm_thread;

/* Counts itself once past its last suspension: the root stops waiting once every task has,
 * and the runtime's shutdown then aborts none of them in a yield. */
static void *storm_task(void *arg)
{
    atomic_int *slot = arg;
    if (((uintptr_t)arg >> 2) % 5 == 0)
        CHECK_EQ(edo_yield(), 0);
    atomic_fetch_add(slot, 1);
    return arg;
}

static void *storm_spawner(void *arg)
{
    storm_thread *st = arg;
    storm *s = st->s;
    test_rng r = test_rng_new(400 + (uint64_t)st->k);
    for (int j = 0; j < s->per_thread; j++) {
        int idx = st->k * s->per_thread + j;
        uint64_t x = test_rng_next(&r);
        if (x % 8 == 0) {
            edo_task *t;
            CHECK_OK(edo_runtime_spawn(&t, s->rt, storm_task, &s->ran[idx]));
            void *res = NULL;
            CHECK_EQ(edo_join(t, &res), 0);
            CHECK(res == &s->ran[idx]);
            atomic_fetch_add(&s->joined, 1);
        } else {
            CHECK_OK(edo_runtime_spawn(NULL, s->rt, storm_task, &s->ran[idx]));
        }
        x >>= 3;
        if (x % 32 == 0)
            test_sleep_us((int64_t)((x >> 5) % 500)); /* lets the runtime go idle */
        else if (x % 4 == 0)
            test_spin(&r, 2000);
    }
    atomic_fetch_add(&s->threads_done, 1);
    return NULL;
}

static void *storm_root(void *arg)
{
    storm *s = arg;
    test_rng r = test_rng_new(500);
    int total = STORM_THREADS * s->per_thread;
    int64_t t0 = edo_now();
    for (;;) {
        int ran = 0;
        for (int i = 0; i < total; i++)
            ran += atomic_load(&s->ran[i]) > 0;
        if (ran == total && atomic_load(&s->threads_done) == STORM_THREADS)
            break;
        CHECK_MSG(edo_now() - t0 < 30000, "only %d of %d spawned tasks ran", ran, total);
        CHECK_EQ(edo_sleep((int64_t)(test_rng_next(&r) % 3)), 0);
    }
    return NULL;
}

/* Drives the runtime only now and then: spawns also land while nobody drives it. */
static void *storm_blip_root(void *arg)
{
    CHECK_EQ(edo_sleep(2), 0);
    return NULL;
}

static void run_storm(bool intermittent)
{
    storm s = { 0 };
    s.per_thread = TEST_SCALE(2000, 1000, 250);
    int total = STORM_THREADS * s.per_thread;
    s.ran = calloc((size_t)total, sizeof *s.ran);
    CHECK_OK(edo_runtime_new(&s.rt, NULL));
    pthread_t th[STORM_THREADS];
    storm_thread st[STORM_THREADS];
    for (int k = 0; k < STORM_THREADS; k++) {
        st[k] = (storm_thread){ &s, k };
        CHECK_EQ(pthread_create(&th[k], NULL, storm_spawner, &st[k]), 0);
    }
    if (intermittent) {
        int64_t t0 = test_clock_ms();
        while (atomic_load(&s.threads_done) < STORM_THREADS) {
            CHECK_EQ(edo_block_on(s.rt, storm_blip_root, NULL, NULL), 0);
            test_sleep_us(1000);
            CHECK_MSG(test_clock_ms() - t0 < 30000, "spawner threads never finished");
        }
    }
    CHECK_EQ(edo_block_on(s.rt, storm_root, &s, NULL), 0);
    for (int k = 0; k < STORM_THREADS; k++)
        CHECK_EQ(pthread_join(th[k], NULL), 0);
    for (int i = 0; i < total; i++)
        CHECK_MSG(atomic_load(&s.ran[i]) == 1, "task %d ran %d times", i, atomic_load(&s.ran[i]));
    printf("    %d tasks, %ld joined from foreign threads\n", total, atomic_load(&s.joined));
    edo_runtime_free(s.rt);
    free(s.ran);
}

static void case_spawn_storm(void)
{
    run_storm(false);
}

static void case_spawn_storm_intermittent(void)
{
    run_storm(true);
}

/* ---------------------------------------------------------------------------------------- */
/* A read with a 1-2 ms timeout while a thread writes at about that moment.                 */

typedef struct tvw {
    int wfd;
    int rounds;
    atomic_int consumed;
} tvw;

static void *tvw_writer(void *arg)
{
    tvw *t = arg;
    test_rng r = test_rng_new(600);
    for (int i = 0; i < t->rounds; i++) {
        spin_until(&t->consumed, i, "timer writer");
        test_sleep_us((int64_t)(test_rng_next(&r) % 3000));
        unsigned char c = (unsigned char)i;
        CHECK_EQ(write(t->wfd, &c, 1), 1);
    }
    return NULL;
}

static void *timer_vs_wake_root(void *unused)
{
    tvw t = { .rounds = TEST_SCALE(1000, 600, 300) };
    edo_io *io = test_socketpair(&t.wfd);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, tvw_writer, &t), 0);
    test_rng r = test_rng_new(700);
    long timeouts = 0, data = 0, by_deadline = 0;
    int64_t t0 = edo_now();
    for (int got = 0; got < t.rounds;) {
        int64_t ms = 1 + (int64_t)(test_rng_next(&r) % 2);
        bool use_deadline = test_rng_next(&r) & 1;
        unsigned char c[4];
        ssize_t n;
        if (use_deadline) {
            int64_t dl = edo_now() + ms;
            CHECK_EQ(edo_set_deadline(dl), EDO_NEVER);
            n = edo_read(io, c, sizeof c);
            CHECK_EQ(edo_set_deadline(EDO_NEVER), dl);
        } else {
            edo_io_set_timeout(io, ms, 0);
            n = edo_read(io, c, sizeof c);
        }
        if (n == -ETIMEDOUT) {
            timeouts++;
            by_deadline += use_deadline;
        } else {
            /* Exactly one byte is ever in flight. */
            CHECK_MSG(n == 1, "edo_read returned %zd (%s)", n, n < 0 ? edo_strerror((int)n) : "");
            CHECK_EQ(c[0], (unsigned char)got);
            data++;
            atomic_store_explicit(&t.consumed, ++got, memory_order_release);
        }
        CHECK_MSG(edo_now() - t0 < 60000, "stuck at byte %d", got);
    }
    CHECK_EQ(pthread_join(th, NULL), 0);
    /* Nothing extra arrives either. */
    edo_io_set_timeout(io, 20, 0);
    char extra;
    CHECK_ERR(edo_read(io, &extra, 1), -ETIMEDOUT);
    printf("    %ld reads got data, %ld timed out (%ld of them by deadline)\n", data, timeouts,
           by_deadline);
    CHECK_EQ(data, t.rounds);
    CHECK_GT(timeouts, 0);
    CHECK_GT(by_deadline, 0);
    CHECK_OK(edo_close(io));
    close(t.wfd);
    return NULL;
}

static const test_root case_timer_vs_wake = { .fn = timer_vs_wake_root };

/* ---------------------------------------------------------------------------------------- */
/* Two runtimes on two threads ping-pong over a socketpair: each wake crosses threads.      */

typedef struct pp {
    int fd;
    int rounds;
    bool starts;
} pp;

static void *pp_root(void *arg)
{
    pp *p = arg;
    edo_io *io;
    CHECK_OK(edo_io_wrap(&io, p->fd));
    edo_io_set_timeout(io, 10000, 10000);
    uint32_t v = 0;
    if (p->starts)
        CHECK_OK(edo_write_all(io, &v, sizeof v, NULL));
    for (int i = 0; i < p->rounds; i++) {
        uint32_t got;
        CHECK_OK(edo_read_exact(io, &got, sizeof got, NULL));
        CHECK_EQ(got, p->starts ? 2u * (uint32_t)i + 1 : 2u * (uint32_t)i);
        got++;
        if (!p->starts || i + 1 < p->rounds)
            CHECK_OK(edo_write_all(io, &got, sizeof got, NULL));
    }
    CHECK_OK(edo_close(io));
    return NULL;
}

static void *pp_thread(void *arg)
{
    test_run(pp_root, arg);
    return NULL;
}

static void case_ping_pong_two_runtimes(void)
{
    int sv[2];
    CHECK_SYS(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    int rounds = TEST_SCALE(20000, 10000, 3000);
    pp a = { sv[0], rounds, true }, b = { sv[1], rounds, false };
    pthread_t ta, tb;
    CHECK_EQ(pthread_create(&ta, NULL, pp_thread, &a), 0);
    CHECK_EQ(pthread_create(&tb, NULL, pp_thread, &b), 0);
    CHECK_EQ(pthread_join(ta, NULL), 0);
    CHECK_EQ(pthread_join(tb, NULL), 0);
}

static const test_case cases[] = {
    TEST_CASE(case_wake_before_park), TEST_CASE(case_abort_race),
    TEST_CASE(case_spawn_storm),      TEST_CASE(case_spawn_storm_intermittent),
    TEST_CASE(case_timer_vs_wake),    TEST_CASE(case_ping_pong_two_runtimes),
};

TEST_MAIN(cases)
