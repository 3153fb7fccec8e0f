/*
 * rtbench - ports of Tokio's runtime micro-benchmarks (tokio-rtbench; the definitions are in
 * ../shared/anchors/tokio/README.md, section rtbench, and src/bin/rtbench.rs beside it):
 * the same names, the same work per rep, the same counts and default reps, the same output
 * lines, so that ../shared/anchors/run-rt.sh can put the two side by side.
 *
 *   build/bench/rtbench [-w WORKERS] [-r REPS] [--only NAME[,NAME...]] [--stack-cache N]
 *                       [--list] [-h]
 *
 * -w sets edo_runtime_opts.workers: 1 is the current-thread flavour (tokio-rtbench
 * --current-thread), N >= 2 starts N worker threads (tokio-rtbench --workers N); the default
 * is 2, tokio-rtbench's. -r 0 (the default) gives each bench Tokio's count of reps: 101 for
 * spawn_many_*, 301 for ping_pong, 1001 for chained_spawn, 5 for the others. Every bench
 * gets a fresh runtime, one untimed warm-up rep, then the timed reps; the figure is the
 * median rep (the harness is bench.c's, see bench.h).
 *
 * Not ported, but listed (running it says why on stderr and prints no BENCH line):
 * timer_insert_cancel arms a timer and drops it without ever waiting on it; in edo a timer
 * is only armed by a call that suspends, which then either waits for it or is woken by
 * something else (an abort, a socket), costs that Tokio's bench does not include.
 *
 * Tokio drops a channel's last Sender to close it, and a oneshot is freed by whichever end
 * drops last; here the last sender calls edo_chan_close, and the last of the two tasks of
 * a ping frees its channels (a count of two).
 *
 * Tokio's benches signal "all done" with a Notify. These were written before edo had one
 * (edo_notify), and a latch stands in, kept so that figures stay comparable with the ones
 * measured before: a task that sleeps until it is aborted, aborted by the last task to
 * finish, and joined by whoever waits.
 */
#include "bench.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

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
    return edo_runtime_spawn(&l->waiter, rt, latch_park, NULL);
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

/* The first error of a task that cannot return it to the rep: the rep returns it. */
static atomic_int spawn_error;

static void record_error(int err)
{
    int none = 0;
    atomic_compare_exchange_strong(&spawn_error, &none, err);
}

/* A spawn failed, so n tasks will never hit the latch: take them off it, and remember the
 * error for the rep to return. */
static void spawn_failed(struct latch *l, long n, int err)
{
    record_error(err);
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
    return rc == -EDO_EABORTED ? 0 : rc; /* it was aborted, as it should be */
}

/* splitmix64, as in tokio-rtbench: deterministic sleep lengths for `timers`. */
static uint64_t mix(uint64_t i)
{
    uint64_t z = i + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void *hit_task(void *arg)
{
    latch_hit(arg);
    return NULL;
}

/* ---- ports ---------------------------------------------------------------------------- */

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
    return bench_block_on(rt, spawn_many_local_root, NULL, ns);
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
    return bench_block_on(rt, spawn_many_blockon_root, NULL, ns);
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
    int64_t t0 = bench_now_ns();
    for (; n < NUM_SPAWN; n++)
        if ((rc = edo_runtime_spawn(&remote_handles[n], rt, bench_empty_task, NULL)) < 0)
            break;
    int brc = edo_block_on(rt, join_all_root, PTR(n), &result);
    *ns = bench_now_ns() - t0;
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
    int64_t t0 = bench_now_ns();
    int rc = latch_init(&l, rt, YIELD_TASKS);
    if (rc < 0)
        return rc;
    for (long i = 0; i < YIELD_TASKS; i++) {
        if ((rc = edo_runtime_spawn(NULL, rt, yield_many_task, &l)) < 0) {
            spawn_failed(&l, YIELD_TASKS - i, rc);
            break;
        }
    }
    void *result = NULL;
    rc = edo_block_on(rt, latch_wait_root, &l, &result);
    *ns = bench_now_ns() - t0;
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
    return bench_block_on(rt, chained_spawn_root, NULL, ns);
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
    return bench_block_on(rt, timers_root, NULL, ns);
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
    return bench_block_on(rt, timer_churn_root, NULL, ns);
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
        if ((rc = edo_tcp_accept(&s, tb->lis)) < 0) {
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
    return bench_block_on(rt, tcp_connect_accept_root, &tb, ns);
}

/* ---- channels ------------------------------------------------------------------------- */

/* The root task spawns one task that spawns 1 000 tasks; each creates two oneshot
 * channels, spawns a partner that receives on the first and sends on the second, sends on
 * the first itself, receives on the second, and hits the latch. The message is Tokio's ()
 * as one byte (a channel's elements have at least one). */
#define NUM_PINGS 1000L

/* One round trip's channels, shared by the pinger and its partner: the last of the two to
 * be done with them frees them, as edo/sync.h advises for a reply whose asker may give up
 * (Tokio counts the references to each end of a oneshot the same way). */
struct ping_pair {
    edo_chan *ch[2];
    atomic_int users;
};

static void pair_release(struct ping_pair *p)
{
    if (atomic_fetch_sub_explicit(&p->users, 1, memory_order_acq_rel) == 1) {
        edo_chan_free(p->ch[0]);
        edo_chan_free(p->ch[1]);
        free(p);
    }
}

static void *pong_task(void *arg)
{
    struct ping_pair *p = arg;
    char m;
    int rc = edo_chan_recv(p->ch[0], &m);
    if (rc == 0)
        rc = edo_chan_send(p->ch[1], &m);
    if (rc < 0) {
        record_error(rc);
        edo_chan_close(p->ch[1]); /* the pinger gets -EDO_ECLOSED instead of waiting for ever */
    }
    pair_release(p);
    return NULL;
}

static int ping(struct ping_pair *p)
{
    char m = 0;
    int rc = edo_chan_send(p->ch[0], &m);
    if (rc < 0)
        edo_chan_close(p->ch[0]); /* the partner gets -EDO_ECLOSED, and closes ch[1] */
    int rrc = edo_chan_recv(p->ch[1], &m);
    return rc < 0 ? rc : rrc;
}

static void *ping_task(void *arg)
{
    struct ping_pair *p = calloc(1, sizeof *p);
    int rc = p ? 0 : -ENOMEM;
    if (p) {
        atomic_init(&p->users, 1);
        if ((rc = edo_oneshot_new(&p->ch[0], 1)) == 0 &&
            (rc = edo_oneshot_new(&p->ch[1], 1)) == 0) {
            atomic_store_explicit(&p->users, 2, memory_order_relaxed); /* before the spawn */
            if ((rc = edo_spawn(NULL, pong_task, p)) < 0)
                atomic_store_explicit(&p->users, 1, memory_order_relaxed);
            else
                rc = ping(p);
        }
        pair_release(p);
    }
    if (rc < 0)
        record_error(rc);
    latch_hit(arg);
    return NULL;
}

static void *ping_spawner(void *arg)
{
    for (long i = 0; i < NUM_PINGS; i++) {
        int rc = edo_spawn(NULL, ping_task, arg);
        if (rc < 0) {
            spawn_failed(arg, NUM_PINGS - i, rc);
            break;
        }
    }
    return NULL;
}

static void *ping_pong_root(void *arg)
{
    struct latch l;
    int rc = latch_init(&l, edo_runtime_current(), NUM_PINGS);
    (void)arg;
    if (rc < 0)
        return PTR(rc);
    if ((rc = edo_spawn(NULL, ping_spawner, &l)) < 0)
        spawn_failed(&l, NUM_PINGS, rc);
    return PTR(take_spawn_error(latch_wait(&l)));
}

static int ping_pong(edo_runtime *rt, int64_t *ns)
{
    return bench_block_on(rt, ping_pong_root, NULL, ns);
}

/* mpsc: u64 messages through a channel of capacity 1 024; the root task creates it, spawns
 * the tasks in Tokio's order, joins them and checks the sum. */
#define MPSC_CAP 1024
#define MPSC_MSGS 1000000L
#define CONTENDED_SENDERS 10L
#define CONTENDED_PER_SENDER 100000L
#define CONTENDED_ITERS (CONTENDED_SENDERS * CONTENDED_PER_SENDER)

struct mpsc_shape {
    long senders;
    uint64_t per_sender; /* each sends 0 .. per_sender - 1 */
    bool receiver_first; /* spawned before the senders, else after */
};

/* One task sends 0 .. 999 999, another receives until the channel is closed and sums. */
static const struct mpsc_shape uncontended = { 1, MPSC_MSGS, false };
/* 10 tasks each send 0 .. 99 999 to one receiver. */
static const struct mpsc_shape contended = { CONTENDED_SENDERS, CONTENDED_PER_SENDER, true };

struct mpsc {
    edo_chan *ch;
    uint64_t per_sender;
    atomic_long senders; /* still sending: the last one to finish closes */
    uint64_t sum;
};

static void senders_done(struct mpsc *m, long n)
{
    if (atomic_fetch_sub_explicit(&m->senders, n, memory_order_acq_rel) == n)
        edo_chan_close(m->ch);
}

static void *mpsc_sender(void *arg)
{
    struct mpsc *m = arg;
    int rc = 0;
    for (uint64_t i = 0; i < m->per_sender; i++)
        if ((rc = edo_chan_send(m->ch, &i)) < 0)
            break;
    senders_done(m, 1);
    return PTR(rc);
}

static void *mpsc_receiver(void *arg)
{
    struct mpsc *m = arg;
    uint64_t v, s = 0;
    int rc;
    while ((rc = edo_chan_recv(m->ch, &v)) == 0)
        s += v;
    m->sum = s;
    return PTR(rc == -EDO_ECLOSED ? 0 : rc);
}

/* Joins t if it was spawned; returns rc, or else t's error. */
static int join_rc(edo_task *t, int rc)
{
    void *result = NULL;
    if (!t)
        return rc;
    int jrc = edo_join(t, &result);
    if (rc < 0)
        return rc;
    return jrc < 0 ? jrc : RC(result);
}

static void *mpsc_root(void *arg)
{
    const struct mpsc_shape *shape = arg;
    struct mpsc m = { .per_sender = shape->per_sender };
    edo_task *recv = NULL, *send[CONTENDED_SENDERS] = { NULL };
    int rc = edo_chan_new(&m.ch, sizeof(uint64_t), MPSC_CAP);
    if (rc < 0)
        return PTR(rc);
    atomic_init(&m.senders, shape->senders);
    if (shape->receiver_first)
        rc = edo_spawn(&recv, mpsc_receiver, &m);
    for (long i = 0; rc == 0 && i < shape->senders; i++)
        if ((rc = edo_spawn(&send[i], mpsc_sender, &m)) < 0)
            senders_done(&m, shape->senders - i);
    if (rc == 0 && !shape->receiver_first)
        rc = edo_spawn(&recv, mpsc_receiver, &m);
    if (rc < 0)
        edo_chan_close(m.ch); /* whoever was spawned ends */
    for (long i = 0; i < shape->senders; i++)
        rc = join_rc(send[i], rc);
    rc = join_rc(recv, rc);
    edo_chan_free(m.ch);
    uint64_t want = (uint64_t)shape->senders * (shape->per_sender * (shape->per_sender - 1) / 2);
    if (rc == 0 && m.sum != want) {
        fprintf(stderr, "rtbench: mpsc: sum %llu, expected %llu\n", (unsigned long long)m.sum,
                (unsigned long long)want);
        rc = -EBADMSG;
    }
    return PTR(rc);
}

static int mpsc_bounded_uncontended(edo_runtime *rt, int64_t *ns)
{
    return bench_block_on(rt, mpsc_root, (void *)&uncontended, ns);
}

static int mpsc_contended(edo_runtime *rt, int64_t *ns)
{
    return bench_block_on(rt, mpsc_root, (void *)&contended, ns);
}

/* ---- the benches, in tokio-rtbench's order ------------------------------------------- */

static const struct bench benches[] = {
    { "spawn_many_local", NUM_SPAWN, 101, 0, spawn_many_local, NULL },
    { "spawn_many_local_blockon", NUM_SPAWN, 101, 0, spawn_many_local_blockon, NULL },
    { "spawn_many_remote_idle", NUM_SPAWN, 101, 0, spawn_many_remote_idle, NULL },
    { "yield_many", YIELD_ITERS, 5, 0, yield_many, NULL },
    { "ping_pong", NUM_PINGS, 301, 0, ping_pong, NULL },
    { "chained_spawn", CHAIN, 1001, 0, chained_spawn, NULL },
    { "mpsc_bounded_uncontended", MPSC_MSGS, 5, 0, mpsc_bounded_uncontended, NULL },
    { "mpsc_contended", CONTENDED_ITERS, 5, 0, mpsc_contended, NULL },
    { "timers", NUM_TIMERS, 5, TIMER_MAX_MS * 1000000L, timers, NULL },
    { "timer_churn", CHURN, 5, 0, timer_churn, NULL },
    { "timer_insert_cancel", CHURN, 5, 0, NULL,
      "edo arms a timer only inside a call that suspends; there is no timer object to insert "
      "and drop" },
    { "tcp_connect_accept", NUM_CONNS, 5, 0, tcp_connect_accept, NULL },
};

int main(int argc, char **argv)
{
    static const struct bench_program prog = {
        .name = "rtbench",
        .about = "ports of tokio-rtbench, Tokio's runtime micro-benchmarks (median of reps)",
        .default_workers = 2,
        .benches = benches,
        .count = sizeof benches / sizeof benches[0],
    };
    return bench_main(&prog, argc, argv);
}
