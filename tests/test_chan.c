/*
 * Channels (bounded, unbounded, rendezvous, oneshot), broadcast, watch and notify: order,
 * close semantics, waits cut short by deadlines and aborts racing sends (nothing lost,
 * nothing left behind), threads outside the runtime on either side, lagging broadcast
 * receivers, coalesced watch changes, no lost notifications.
 *
 * edo-test: timeout=300
 */
#include "harness.h"

#include <pthread.h>

/* ---- channels ------------------------------------------------------------------------ */

/* Spawns n tasks fn(arg), each parked on why before the next is spawned, so that they
 * wait in the order of ts. */
static void spawn_queued(edo_task **ts, int n, void *(*fn)(void *), void *arg, edo_wait_reason why)
{
    for (int i = 0; i < n; i++) {
        CHECK_OK(edo_spawn(&ts[i], fn, arg));
        test_wait_parked(ts[i], why);
    }
}

/* Joins t, which must have returned want. */
static void join_expect(edo_task *t, intptr_t want)
{
    void *res;
    CHECK_OK(edo_join(t, &res));
    CHECK_EQ(INT(res), want);
}

/* Joins t, aborted in its wait: the join says so, and the wait returned -ECANCELED. */
static void join_cancelled(edo_task *t)
{
    void *res;
    CHECK_ERR(edo_join(t, &res), -EDO_EABORTED);
    CHECK_EQ(INT(res), -ECANCELED);
}

static void *basic_root(void *unused)
{
    edo_chan *ch;
    CHECK_ERR(edo_chan_new(&ch, 0, 4), -EINVAL);
    CHECK_ERR(edo_chan_new(&ch, 65537, 4), -EINVAL);
    CHECK_OK(edo_chan_new(&ch, sizeof(int), 4));
    for (int i = 0; i < 4; i++)
        CHECK_OK(edo_chan_try_send(ch, &i));
    int x = 99;
    CHECK_ERR(edo_chan_try_send(ch, &x), -EAGAIN);
    CHECK_EQ(edo_chan_len(ch), 4);
    for (int i = 0; i < 4; i++) {
        CHECK_OK(edo_chan_try_recv(ch, &x));
        CHECK_EQ(x, i);
    }
    CHECK_ERR(edo_chan_try_recv(ch, &x), -EAGAIN);
    /* Wrap around the ring many times. */
    for (int i = 0; i < 1000; i++) {
        CHECK_OK(edo_chan_send(ch, &i));
        if (i % 3 == 2)
            for (int k = i - 2; k <= i; k++) {
                CHECK_OK(edo_chan_recv(ch, &x));
                CHECK_EQ(x, k);
            }
    }
    CHECK_OK(edo_chan_recv(ch, &x));
    CHECK_EQ(x, 999);
    CHECK(!edo_chan_closed(ch));
    edo_chan_free(ch);
    return NULL;
}

static const test_root case_chan_basic = { .fn = basic_root };

static void *close_root(void *unused)
{
    edo_chan *ch;
    CHECK_OK(edo_chan_new(&ch, sizeof(int), 8));
    for (int i = 0; i < 3; i++)
        CHECK_OK(edo_chan_send(ch, &i));
    edo_chan_close(ch);
    edo_chan_close(ch);
    CHECK(edo_chan_closed(ch));
    int x = 7;
    CHECK_ERR(edo_chan_send(ch, &x), -EDO_ECLOSED);
    CHECK_ERR(edo_chan_try_send(ch, &x), -EDO_ECLOSED);
    for (int i = 0; i < 3; i++) {
        CHECK_OK(edo_chan_recv(ch, &x));
        CHECK_EQ(x, i);
    }
    CHECK_ERR(edo_chan_recv(ch, &x), -EDO_ECLOSED);
    CHECK_ERR(edo_chan_try_recv(ch, &x), -EDO_ECLOSED);
    edo_chan_free(ch);
    return NULL;
}

static const test_root case_chan_close_drains = { .fn = close_root };

typedef struct prod {
    edo_chan *ch;
    int id, count;
    bool yield;
} prod;

typedef struct msg {
    int producer, seq;
} msg;

static void *producer(void *arg)
{
    prod *p = arg;
    for (int i = 0; i < p->count; i++) {
        msg m = { p->id, i };
        CHECK_OK(edo_chan_send(p->ch, &m));
        if (p->yield && i % 7 == 0)
            edo_yield();
    }
    return NULL;
}

/* Many producers, one consumer: every message once, each producer's in order. */
static void mpsc_run(size_t cap, int nprod, int count)
{
    edo_chan *ch;
    CHECK_OK(edo_chan_new(&ch, sizeof(msg), cap));
    prod *ps = calloc((size_t)nprod, sizeof *ps);
    edo_task **ts = calloc((size_t)nprod, sizeof *ts);
    for (int p = 0; p < nprod; p++) {
        ps[p] = (prod){ ch, p, count, p % 2 == 0 };
        CHECK_OK(edo_spawn(&ts[p], producer, &ps[p]));
    }
    int *next = calloc((size_t)nprod, sizeof *next);
    for (long i = 0; i < (long)nprod * count; i++) {
        msg m;
        CHECK_OK(edo_chan_recv(ch, &m));
        CHECK(m.producer >= 0 && m.producer < nprod);
        CHECK_EQ(m.seq, next[m.producer]);
        next[m.producer]++;
        if (i % 13 == 0)
            edo_yield();
    }
    for (int p = 0; p < nprod; p++)
        CHECK_OK(edo_join(ts[p], NULL));
    msg m;
    CHECK_ERR(edo_chan_try_recv(ch, &m), -EAGAIN);
    edo_chan_free(ch);
    free(next);
    free(ts);
    free(ps);
}

static void *mpsc_root(void *unused)
{
    int count = TEST_SCALE(20000, 5000, 1000);
    mpsc_run(1, 1, count);
    mpsc_run(1, 8, count / 4);
    mpsc_run(16, 8, count / 4);
    mpsc_run(0, 4, count / 4); /* rendezvous */
    mpsc_run(EDO_UNBOUNDED, 8, count / 4);
    return NULL;
}

static const test_root case_chan_mpsc_order = { .fn = mpsc_root };

/* Several receivers too: each message goes to exactly one. */
typedef struct mpmc {
    edo_chan *ch;
    _Atomic int *seen;
    _Atomic long received;
} mpmc;

static void *mpmc_consumer(void *arg)
{
    mpmc *m = arg;
    msg x;
    int rc;
    int last[8];
    for (int i = 0; i < 8; i++)
        last[i] = -1;
    while ((rc = edo_chan_recv(m->ch, &x)) == 0) {
        CHECK_LT(last[x.producer], x.seq); /* in order per producer, for each receiver */
        last[x.producer] = x.seq;
        CHECK_EQ(atomic_fetch_add(&m->seen[x.producer * 100000 + x.seq], 1), 0);
        atomic_fetch_add(&m->received, 1);
    }
    CHECK_EQ(rc, -EDO_ECLOSED);
    return NULL;
}

static void *mpmc_root(void *arg)
{
    size_t cap = (size_t)INT(arg);
    int count = TEST_SCALE(10000, 3000, 1000);
    mpmc m = { 0 };
    m.seen = calloc(8 * 100000, sizeof *m.seen);
    CHECK_OK(edo_chan_new(&m.ch, sizeof(msg), cap));
    edo_task *cons[4], *prods[8];
    prod ps[8];
    for (int i = 0; i < 4; i++)
        CHECK_OK(edo_spawn(&cons[i], mpmc_consumer, &m));
    for (int p = 0; p < 8; p++) {
        ps[p] = (prod){ m.ch, p, count, p % 3 == 0 };
        CHECK_OK(edo_spawn(&prods[p], producer, &ps[p]));
    }
    for (int p = 0; p < 8; p++)
        CHECK_OK(edo_join(prods[p], NULL));
    edo_chan_close(m.ch);
    for (int i = 0; i < 4; i++)
        CHECK_OK(edo_join(cons[i], NULL));
    CHECK_EQ(atomic_load(&m.received), 8L * count);
    edo_chan_free(m.ch);
    free(m.seen);
    return NULL;
}

static void case_chan_mpmc(void)
{
    test_run(mpmc_root, VAL(3));
    test_run(mpmc_root, VAL(0));
    test_run(mpmc_root, VAL(EDO_UNBOUNDED));
}

static void *unbounded_root(void *unused)
{
    edo_chan *ch;
    CHECK_OK(edo_chan_new(&ch, sizeof(long), EDO_UNBOUNDED));
    long n = TEST_SCALE(200000, 50000, 20000);
    /* Grows while wrapped: take some out first so the ring's head is not at 0. */
    for (long i = 0; i < 10; i++)
        CHECK_OK(edo_chan_send(ch, &i));
    long x;
    for (long i = 0; i < 5; i++) {
        CHECK_OK(edo_chan_recv(ch, &x));
        CHECK_EQ(x, i);
    }
    for (long i = 10; i < n; i++)
        CHECK_OK(edo_chan_try_send(ch, &i));
    CHECK_EQ(edo_chan_len(ch), (size_t)(n - 5));
    for (long i = 5; i < n; i++) {
        CHECK_OK(edo_chan_try_recv(ch, &x));
        CHECK_EQ(x, i);
    }
    edo_chan_free(ch);
    return NULL;
}

static const test_root case_chan_unbounded = { .fn = unbounded_root };

static void *rendezvous_sender(void *arg)
{
    int v = 42;
    return VAL(edo_chan_send(arg, &v));
}

static void *rendezvous_root(void *unused)
{
    edo_chan *ch;
    CHECK_OK(edo_chan_new(&ch, sizeof(int), 0));
    int v = 1;
    CHECK_ERR(edo_chan_try_send(ch, &v), -EAGAIN); /* nobody receives */
    edo_task *t;
    CHECK_OK(edo_spawn(&t, rendezvous_sender, ch));
    test_wait_parked(t, EDO_WAIT_CHAN); /* a send waits for its receiver */
    CHECK_EQ(edo_chan_len(ch), 0);
    CHECK_OK(edo_chan_recv(ch, &v));
    CHECK_EQ(v, 42);
    join_expect(t, 0);
    edo_chan_free(ch);
    return NULL;
}

static const test_root case_chan_rendezvous = { .fn = rendezvous_root };

static void *oneshot_recv(void *arg)
{
    int v = 0;
    int rc = edo_chan_recv(arg, &v);
    return VAL(rc < 0 ? rc : v);
}

static void *oneshot_root(void *unused)
{
    edo_chan *o;
    CHECK_OK(edo_oneshot_new(&o, sizeof(int)));
    edo_task *t;
    CHECK_OK(edo_spawn(&t, oneshot_recv, o));
    test_wait_parked(t, EDO_WAIT_CHAN);
    int v = 5;
    CHECK_OK(edo_chan_send(o, &v));
    CHECK_ERR(edo_chan_send(o, &v), -EDO_ECLOSED);
    join_expect(t, 5);
    CHECK_ERR(edo_chan_recv(o, &v), -EDO_ECLOSED);
    edo_chan_free(o);

    /* Sent before anyone receives: kept; then closed. */
    CHECK_OK(edo_oneshot_new(&o, sizeof(int)));
    v = 6;
    CHECK_OK(edo_chan_try_send(o, &v));
    CHECK(edo_chan_closed(o));
    v = 0;
    CHECK_OK(edo_chan_recv(o, &v));
    CHECK_EQ(v, 6);
    CHECK_ERR(edo_chan_recv(o, &v), -EDO_ECLOSED);
    edo_chan_free(o);

    /* Closed unsent: the receiver is told. */
    CHECK_OK(edo_oneshot_new(&o, sizeof(int)));
    CHECK_OK(edo_spawn(&t, oneshot_recv, o));
    test_wait_parked(t, EDO_WAIT_CHAN);
    edo_chan_close(o);
    join_expect(t, -EDO_ECLOSED);
    edo_chan_free(o);
    return NULL;
}

static const test_root case_chan_oneshot = { .fn = oneshot_root };

static void *blocked_send(void *arg)
{
    int v = 777;
    return VAL(edo_chan_send(arg, &v));
}

static void *blocked_recv(void *arg)
{
    int v;
    return VAL(edo_chan_recv(arg, &v));
}

/* Close wakes every waiter: senders fail (their messages unsent), receivers of an empty
 * channel fail. */
static void *close_wakes_root(void *unused)
{
    edo_chan *ch;
    CHECK_OK(edo_chan_new(&ch, sizeof(int), 1));
    int v = 1;
    CHECK_OK(edo_chan_send(ch, &v));
    edo_task *s[3];
    spawn_queued(s, 3, blocked_send, ch, EDO_WAIT_CHAN);
    edo_chan_close(ch);
    for (int i = 0; i < 3; i++)
        join_expect(s[i], -EDO_ECLOSED);
    CHECK_OK(edo_chan_recv(ch, &v));
    CHECK_EQ(v, 1); /* only the message sent before */
    CHECK_ERR(edo_chan_recv(ch, &v), -EDO_ECLOSED);
    edo_chan_free(ch);

    CHECK_OK(edo_chan_new(&ch, sizeof(int), 4));
    edo_task *r[3];
    spawn_queued(r, 3, blocked_recv, ch, EDO_WAIT_CHAN);
    edo_chan_close(ch);
    for (int i = 0; i < 3; i++)
        join_expect(r[i], -EDO_ECLOSED);
    edo_chan_free(ch);
    return NULL;
}

static const test_root case_chan_close_wakes = { .fn = close_wakes_root };

/* A wait cut short leaves nothing behind: a later message lands in the channel, not in
 * the buffer of a receiver that has gone; a sender that gave up never delivers. */
static void *timed_recv(void *arg)
{
    int v;
    int64_t scope = edo_timeout_begin(30);
    int rc = edo_chan_recv(arg, &v);
    edo_deadline_end(scope);
    return VAL(rc);
}

static void *timed_send(void *arg)
{
    int v = 555;
    int64_t scope = edo_timeout_begin(30);
    int rc = edo_chan_send(arg, &v);
    edo_deadline_end(scope);
    return VAL(rc);
}

static void *withdraw_root(void *unused)
{
    edo_chan *ch;
    CHECK_OK(edo_chan_new(&ch, sizeof(int), 1));
    edo_task *t;
    /* Timeout. */
    CHECK_OK(edo_spawn(&t, timed_recv, ch));
    join_expect(t, -ETIMEDOUT);
    int v = 3;
    CHECK_OK(edo_chan_send(ch, &v));
    CHECK_EQ(edo_chan_len(ch), 1);
    CHECK_OK(edo_spawn(&t, timed_send, ch));
    join_expect(t, -ETIMEDOUT);
    CHECK_OK(edo_chan_recv(ch, &v));
    CHECK_EQ(v, 3);
    CHECK_ERR(edo_chan_try_recv(ch, &v), -EAGAIN); /* 555 was never sent */

    /* Abort. */
    CHECK_OK(edo_spawn(&t, blocked_recv, ch));
    test_wait_parked(t, EDO_WAIT_CHAN);
    edo_abort(t);
    join_cancelled(t);
    v = 4;
    CHECK_OK(edo_chan_send(ch, &v));
    CHECK_EQ(edo_chan_len(ch), 1);
    CHECK_OK(edo_spawn(&t, blocked_send, ch));
    test_wait_parked(t, EDO_WAIT_CHAN);
    edo_abort(t);
    join_cancelled(t);
    CHECK_OK(edo_chan_recv(ch, &v));
    CHECK_EQ(v, 4);
    CHECK_ERR(edo_chan_try_recv(ch, &v), -EAGAIN); /* 777 was never sent */
    edo_chan_free(ch);
    return NULL;
}

static const test_root case_chan_withdraw = { .fn = withdraw_root };

/* Receivers with tiny timeouts race a sender: every message reported sent is received
 * exactly once (by a receive that returned 0, or by the final drain). */
typedef struct race {
    edo_chan *ch;
    int count;
    _Atomic int *got;
    _Atomic bool done;
} race;

static void *race_receiver(void *arg)
{
    race *r = arg;
    test_rng rng = test_rng_new((uint64_t)edo_task_id(NULL));
    while (!atomic_load(&r->done)) {
        int v;
        int64_t scope = edo_timeout_begin((int64_t)test_rng_range(&rng, 0, 2));
        int rc = edo_chan_recv(r->ch, &v);
        edo_deadline_end(scope);
        if (rc == 0)
            CHECK_EQ(atomic_fetch_add(&r->got[v], 1), 0);
        else
            CHECK_EQ(rc, -ETIMEDOUT);
    }
    return NULL;
}

static void *race_root(void *arg)
{
    race r = { .count = TEST_SCALE(20000, 5000, 2000) };
    r.got = calloc((size_t)r.count, sizeof *r.got);
    CHECK_OK(edo_chan_new(&r.ch, sizeof(int), (size_t)INT(arg)));
    edo_task *rs[4];
    for (int i = 0; i < 4; i++)
        CHECK_OK(edo_spawn(&rs[i], race_receiver, &r));
    test_rng rng = test_rng_new(7);
    for (int i = 0; i < r.count; i++) {
        CHECK_OK(edo_chan_send(r.ch, &i));
        /* Now and then a pause, so that receivers time out while parked. */
        if (test_rng_range(&rng, 0, 63) == 0)
            edo_sleep(test_rng_range(&rng, 0, 2));
    }
    atomic_store(&r.done, true);
    for (int i = 0; i < 4; i++)
        CHECK_OK(edo_join(rs[i], NULL));
    int v;
    while (edo_chan_try_recv(r.ch, &v) == 0)
        CHECK_EQ(atomic_fetch_add(&r.got[v], 1), 0);
    for (int i = 0; i < r.count; i++)
        CHECK_MSG(atomic_load(&r.got[i]) == 1, "message %d received %d times", i,
                  atomic_load(&r.got[i]));
    edo_chan_free(r.ch);
    free(r.got);
    return NULL;
}

static void case_chan_timeout_race(void)
{
    test_run(race_root, VAL(0));
    test_run(race_root, VAL(2));
}

/* Threads outside the runtime on either side, blocking on full and empty channels. */
typedef struct foreign {
    edo_chan *to_task, *to_thread;
    int count;
} foreign;

static void *foreign_thread(void *arg)
{
    foreign *f = arg;
    for (int i = 0; i < f->count; i++)
        CHECK_OK(edo_chan_send(f->to_task, &i));
    for (int i = 0; i < f->count; i++) {
        int v;
        CHECK_OK(edo_chan_recv(f->to_thread, &v));
        CHECK_EQ(v, i * 2);
    }
    int v;
    CHECK_ERR(edo_chan_recv(f->to_thread, &v), -EDO_ECLOSED);
    return NULL;
}

static void *foreign_root(void *unused)
{
    foreign f = { .count = TEST_SCALE(20000, 5000, 2000) };
    CHECK_OK(edo_chan_new(&f.to_task, sizeof(int), 4));
    CHECK_OK(edo_chan_new(&f.to_thread, sizeof(int), 4));
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, foreign_thread, &f), 0);
    for (int i = 0; i < f.count; i++) {
        int v;
        CHECK_OK(edo_chan_recv(f.to_task, &v));
        CHECK_EQ(v, i);
        if (i % 100 == 0)
            edo_sleep(1); /* let the thread block on a full channel */
    }
    for (int i = 0; i < f.count; i++) {
        int v = i * 2;
        CHECK_OK(edo_chan_send(f.to_thread, &v));
    }
    edo_chan_close(f.to_thread);
    CHECK_EQ(pthread_join(th, NULL), 0);
    edo_chan_free(f.to_task);
    edo_chan_free(f.to_thread);
    return NULL;
}

static const test_root case_chan_foreign_threads = { .fn = foreign_root };

/* ---- broadcast ----------------------------------------------------------------------- */

typedef struct bc {
    edo_bcast *b;
    int count;
    edo_bcast_rx *rx;
    long received, missed;
} bc;

static void *bcast_reader(void *arg)
{
    bc *c = arg;
    long expect = 0; /* the next message, counting the missed ones as passed */
    for (;;) {
        long v;
        uint64_t missed = 0;
        int rc = edo_bcast_recv(c->rx, &v, &missed);
        if (rc == -EDO_ECLOSED)
            break;
        if (rc == -EOVERFLOW) {
            CHECK_GT(missed, 0);
            c->missed += (long)missed;
            expect += (long)missed;
            continue;
        }
        CHECK_OK(rc);
        CHECK_EQ(v, expect);
        expect = v + 1;
        c->received++;
        if (v % 17 == 0)
            edo_yield();
    }
    CHECK_EQ(c->received + c->missed, c->count);
    return NULL;
}

static void *bcast_root(void *unused)
{
    edo_bcast *b;
    CHECK_ERR(edo_bcast_new(&b, 8, 0), -EINVAL);
    CHECK_OK(edo_bcast_new(&b, sizeof(long), 4));
    long v = -1;
    CHECK_EQ(edo_bcast_send(b, &v), 0); /* nobody listens: no error */

    /* Lag: ten sent to a receiver that keeps four. */
    edo_bcast_rx *rx;
    CHECK_OK(edo_bcast_subscribe(&rx, b));
    for (long i = 0; i < 10; i++)
        CHECK_EQ(edo_bcast_send(b, &i), 1);
    uint64_t missed = 0;
    CHECK_ERR(edo_bcast_recv(rx, &v, &missed), -EOVERFLOW);
    CHECK_EQ(missed, 6);
    for (long i = 6; i < 10; i++) {
        CHECK_OK(edo_bcast_recv(rx, &v, &missed));
        CHECK_EQ(v, i);
    }
    CHECK_ERR(edo_bcast_try_recv(rx, &v, &missed), -EAGAIN);
    edo_bcast_unsubscribe(rx);
    edo_bcast_free(b);

    /* Many receivers on several workers; each gets every message or is told it missed
     * some, in order. */
    CHECK_OK(edo_bcast_new(&b, sizeof(long), 64));
    enum { R = 20 };
    bc cs[R];
    edo_task *ts[R];
    int count = TEST_SCALE(20000, 5000, 2000);
    for (int i = 0; i < R; i++) {
        cs[i] = (bc){ b, count, NULL, 0, 0 };
        CHECK_OK(edo_bcast_subscribe(&cs[i].rx, b));
        CHECK_OK(edo_spawn(&ts[i], bcast_reader, &cs[i]));
    }
    for (long i = 0; i < count; i++) {
        CHECK_EQ(edo_bcast_send(b, &i), R);
        if (i % 32 == 0)
            edo_yield();
    }
    edo_bcast_close(b);
    CHECK_ERR(edo_bcast_send(b, &v), -EDO_ECLOSED);
    long total = 0;
    for (int i = 0; i < R; i++) {
        CHECK_OK(edo_join(ts[i], NULL));
        total += cs[i].received;
        edo_bcast_unsubscribe(cs[i].rx);
    }
    printf("    %d receivers got %ld of %d messages each on average\n", R, total / R, count);
    edo_bcast_free(b);
    return NULL;
}

static const test_root case_bcast = { .fn = bcast_root };

/* ---- watch --------------------------------------------------------------------------- */

typedef struct wr {
    edo_watch *w;
    int last;
    int changes;
} wr;

static void *watch_reader(void *arg)
{
    wr *r = arg;
    uint64_t seen = 0;
    int v, rc;
    while ((rc = edo_watch_recv(r->w, &v, &seen)) == 0) {
        CHECK_GE(v, r->last); /* never older */
        r->last = v;
        r->changes++;
    }
    CHECK_EQ(rc, -EDO_ECLOSED);
    return NULL;
}

static void *watch_root(void *unused)
{
    edo_watch *w;
    int v = 10;
    CHECK_OK(edo_watch_new(&w, sizeof v, &v));
    v = 0;
    CHECK_EQ(edo_watch_get(w, &v), 1);
    CHECK_EQ(v, 10);
    uint64_t seen = 0;
    CHECK_OK(edo_watch_recv(w, &v, &seen)); /* the current value at once */
    CHECK_EQ(seen, 1);
    /* Changes coalesce: two sends, one wake with the latest. */
    v = 11;
    CHECK_OK(edo_watch_send(w, &v));
    v = 12;
    CHECK_OK(edo_watch_send(w, &v));
    CHECK_OK(edo_watch_recv(w, &v, &seen));
    CHECK_EQ(v, 12);
    CHECK_EQ(seen, 3);
    /* A timed wait with no change. */
    int64_t scope = edo_timeout_begin(20);
    CHECK_ERR(edo_watch_recv(w, &v, &seen), -ETIMEDOUT);
    edo_deadline_end(scope);

    enum { R = 8 };
    wr rs[R];
    edo_task *ts[R];
    for (int i = 0; i < R; i++) {
        rs[i] = (wr){ w, 0, 0 };
        CHECK_OK(edo_spawn(&ts[i], watch_reader, &rs[i]));
    }
    int n = TEST_SCALE(5000, 2000, 500);
    for (v = 13; v < 13 + n; v++) {
        CHECK_OK(edo_watch_send(w, &v));
        if (v % 5 == 0)
            edo_yield();
    }
    edo_sleep(5);
    edo_watch_close(w);
    CHECK_ERR(edo_watch_send(w, &v), -EDO_ECLOSED);
    for (int i = 0; i < R; i++) {
        CHECK_OK(edo_join(ts[i], NULL));
        CHECK_EQ(rs[i].last, 12 + n); /* every reader ends on the latest value */
        CHECK_GT(rs[i].changes, 0);
    }
    edo_watch_free(w);
    return NULL;
}

static const test_root case_watch = { .fn = watch_root };

/* ---- notify -------------------------------------------------------------------------- */

static void *notify_waiter(void *arg)
{
    return VAL(edo_notify_wait(arg));
}

static void *notify_root(void *unused)
{
    edo_notify *n;
    CHECK_OK(edo_notify_new(&n));
    /* A permit is stored, once. */
    edo_notify_one(n);
    edo_notify_one(n);
    CHECK_OK(edo_notify_wait(n));
    int64_t scope = edo_timeout_begin(20);
    CHECK_ERR(edo_notify_wait(n), -ETIMEDOUT);
    edo_deadline_end(scope);

    /* notify_all wakes the waiting, stores nothing. */
    edo_task *ts[5];
    spawn_queued(ts, 5, notify_waiter, n, EDO_WAIT_NOTIFY);
    edo_notify_all(n);
    for (int i = 0; i < 5; i++)
        join_expect(ts[i], 0);
    scope = edo_timeout_begin(20);
    CHECK_ERR(edo_notify_wait(n), -ETIMEDOUT);
    edo_deadline_end(scope);

    /* notify_one wakes one waiter at a time, in order. */
    spawn_queued(ts, 3, notify_waiter, n, EDO_WAIT_NOTIFY);
    for (int i = 0; i < 3; i++) {
        edo_notify_one(n);
        join_expect(ts[i], 0); /* the longest waiting first */
    }

    /* The epoch: a notify_all between looking and waiting is not missed. */
    uint64_t e = edo_notify_epoch(n);
    edo_notify_all(n);
    CHECK_OK(edo_notify_wait_since(n, e));

    /* An aborted waiter does not swallow a notify_one. */
    CHECK_OK(edo_spawn(&ts[0], notify_waiter, n));
    test_wait_parked(ts[0], EDO_WAIT_NOTIFY);
    edo_abort(ts[0]);
    join_cancelled(ts[0]);
    edo_notify_one(n);
    CHECK_OK(edo_notify_wait(n)); /* the permit was stored, not given to the dead */
    edo_notify_free(n);
    return NULL;
}

static const test_root case_notify = { .fn = notify_root };

/* A condition guarded by notify: producers bump a counter and notify_one, consumers take
 * from it; with wait_since no wake-up can be lost, or the consumers would hang. */
typedef struct nq {
    edo_notify *n;
    _Atomic long items;
    _Atomic long taken;
    long total;
} nq;

static void *nq_producer(void *arg)
{
    nq *q = arg;
    for (long i = 0; i < q->total / 4; i++) {
        atomic_fetch_add(&q->items, 1);
        if (i % 3 == 0)
            edo_notify_all(q->n);
        else
            edo_notify_one(q->n);
        if (i % 11 == 0)
            edo_yield();
    }
    return NULL;
}

static void *nq_consumer(void *arg)
{
    nq *q = arg;
    for (;;) {
        uint64_t e = edo_notify_epoch(q->n);
        long have = atomic_load(&q->items);
        if (have > 0 && atomic_compare_exchange_strong(&q->items, &have, have - 1)) {
            if (atomic_fetch_add(&q->taken, 1) + 1 >= q->total) {
                edo_notify_all(q->n); /* wake the others to see the end */
                return NULL;
            }
            continue;
        }
        if (atomic_load(&q->taken) >= q->total)
            return NULL;
        CHECK_OK(edo_notify_wait_since(q->n, e));
    }
}

static void *nq_root(void *unused)
{
    nq q = { .total = TEST_SCALE(40000, 10000, 4000) };
    CHECK_OK(edo_notify_new(&q.n));
    edo_task *ts[8];
    for (int i = 0; i < 4; i++)
        CHECK_OK(edo_spawn(&ts[i], nq_consumer, &q));
    for (int i = 4; i < 8; i++)
        CHECK_OK(edo_spawn(&ts[i], nq_producer, &q));
    for (int i = 0; i < 8; i++)
        CHECK_OK(edo_join(ts[i], NULL));
    CHECK_EQ(atomic_load(&q.taken), q.total);
    edo_notify_free(q.n);
    return NULL;
}

static const test_root case_notify_no_lost_wakeup = { .fn = nq_root };

static const test_case cases[] = {
    TEST_CASE(case_chan_basic),
    TEST_CASE(case_chan_close_drains),
    TEST_CASE(case_chan_mpsc_order),
    TEST_CASE(case_chan_mpmc),
    TEST_CASE(case_chan_unbounded),
    TEST_CASE(case_chan_rendezvous),
    TEST_CASE(case_chan_oneshot),
    TEST_CASE(case_chan_close_wakes),
    TEST_CASE(case_chan_withdraw),
    TEST_CASE(case_chan_timeout_race),
    TEST_CASE(case_chan_foreign_threads),
    TEST_CASE(case_bcast),
    TEST_CASE(case_watch),
    TEST_CASE(case_notify),
    TEST_CASE(case_notify_no_lost_wakeup),
};

TEST_MAIN(cases)
