/*
 * edo_select: the first ready case wins and only it takes anything; every kind of case
 * (channel send and receive, broadcast, watch, notify, cancellation token, task
 * completion, socket readiness, timer, off); random choice among ready cases; selects
 * racing senders, timeouts and each other on the same channels with no message lost or
 * duplicated; abort and task deadlines leaving no waiter behind.
 *
 * edo-test: timeout=300
 */
#include "harness.h"

#include <pthread.h>

static void *foreign_select(void *arg)
{
    edo_case c = edo_case_timeout(0);
    return VAL(edo_select(&c, 1));
}

static void *basic_root(void *unused)
{
    edo_chan *a, *b;
    CHECK_OK(edo_chan_new(&a, sizeof(int), 4));
    CHECK_OK(edo_chan_new(&b, sizeof(int), 4));
    int v = 5, x = 0, y = 0;
    CHECK_OK(edo_chan_send(b, &v));
    edo_case cs[] = { edo_case_recv(a, &x), edo_case_recv(b, &y), edo_case_off() };
    CHECK_EQ(edo_select(cs, 3), 1);
    CHECK_EQ(cs[1].rc, 0);
    CHECK_EQ(y, 5);
    CHECK_EQ(x, 0);

    /* Nothing ready: the timer fires, nothing is taken. */
    edo_case ct[] = { edo_case_recv(a, &x), edo_case_recv(b, &y), edo_case_timeout(20),
                      edo_case_off() };
    int64_t t0 = edo_now();
    CHECK_EQ(edo_select(ct, 4), 2);
    CHECK_GE(edo_now() - t0, 20);
    CHECK_EQ(edo_chan_len(a) + edo_chan_len(b), 0);

    /* A closed channel's receive fires with -EDO_ECLOSED. */
    edo_chan_close(a);
    edo_case cc[] = { edo_case_recv(a, &x), edo_case_timeout(1000) };
    CHECK_EQ(edo_select(cc, 2), 0);
    CHECK_EQ(cc[0].rc, -EDO_ECLOSED);

    /* Send cases: room wins; a full channel loses to the timer and sends nothing. */
    v = 9;
    edo_case cs2[] = { edo_case_send(b, &v), edo_case_timeout(1000) };
    CHECK_EQ(edo_select(cs2, 2), 0);
    CHECK_EQ(edo_chan_len(b), 1);
    for (int i = 0; i < 3; i++)
        CHECK_OK(edo_chan_send(b, &i));
    v = 10;
    edo_case cs3[] = { edo_case_send(b, &v), edo_case_timeout(10) };
    CHECK_EQ(edo_select(cs3, 2), 1);
    CHECK_EQ(edo_chan_len(b), 4);

    /* Bad arguments; a thread outside the runtime. */
    CHECK_ERR(edo_select(cs, 0), -EINVAL);
    CHECK_ERR(edo_select(cs, 65), -EINVAL);
    edo_case bad = edo_case_recv(NULL, &x);
    CHECK_ERR(edo_select(&bad, 1), -EINVAL);
    pthread_t th;
    void *r;
    CHECK_EQ(pthread_create(&th, NULL, foreign_select, NULL), 0);
    CHECK_EQ(pthread_join(th, &r), 0);
    CHECK_EQ(INT(r), -EDO_ENOTASK);

    /* Only off cases: waits until the task's deadline. */
    edo_case off = edo_case_off();
    int64_t scope = edo_timeout_begin(10);
    CHECK_ERR(edo_select(&off, 1), -ETIMEDOUT);
    edo_deadline_end(scope);
    edo_chan_free(a);
    edo_chan_free(b);
    return NULL;
}

static const test_root case_select_basic = { .fn = basic_root };

/* Two channels always ready: both are picked, none starves. */
static void *fair_root(void *unused)
{
    edo_chan *ch[2];
    for (int i = 0; i < 2; i++)
        CHECK_OK(edo_chan_new(&ch[i], sizeof(int), 4));
    int picked[2] = { 0, 0 };
    for (int round = 0; round < 1000; round++) {
        for (int i = 0; i < 2; i++)
            while (edo_chan_try_send(ch[i], &i) == 0) {
            }
        int x = -1, y = -1;
        edo_case cs[] = { edo_case_recv(ch[0], &x), edo_case_recv(ch[1], &y) };
        int k = edo_select(cs, 2);
        CHECK(k == 0 || k == 1);
        CHECK_EQ(k == 0 ? x : y, k);
        picked[k]++;
    }
    CHECK_MSG(picked[0] > 300 && picked[1] > 300, "picked %d and %d times", picked[0], picked[1]);
    for (int i = 0; i < 2; i++)
        edo_chan_free(ch[i]);
    return NULL;
}

static const test_root case_select_fair = { .fn = fair_root };

/* Producers feed K channels; consumers select over all K and a short timer, so their
 * waiters are withdrawn again and again while messages arrive. Every message is received
 * exactly once, in order per producer and channel. */
enum { K = 3, PRODUCERS = 6 };

typedef struct flow {
    edo_chan *ch[K];
    int count; /* per producer */
    _Atomic int *got;
    _Atomic long received;
    _Atomic bool stop;
} flow;

typedef struct fp {
    flow *f;
    int id;
} fp;

static void *flow_producer(void *arg)
{
    fp *p = arg;
    test_rng rng = test_rng_new((uint64_t)p->id + 100);
    for (int i = 0; i < p->f->count; i++) {
        int v = p->id * p->f->count + i;
        edo_chan *ch = p->f->ch[test_rng_range(&rng, 0, K - 1)];
        /* Half the sends through a select with a timer, which may give up. */
        if (i % 2) {
            for (;;) {
                edo_case cs[] = { edo_case_send(ch, &v), edo_case_timeout(1) };
                int k = edo_select(cs, 2);
                if (k == 0) {
                    CHECK_OK(cs[0].rc);
                    break;
                }
            }
        } else {
            CHECK_OK(edo_chan_send(ch, &v));
        }
        if (test_rng_range(&rng, 0, 15) == 0)
            edo_yield();
    }
    return NULL;
}

static void *flow_consumer(void *arg)
{
    flow *f = arg;
    int total = PRODUCERS * f->count;
    while (atomic_load(&f->received) < total) {
        int v[K];
        edo_case cs[K + 1];
        for (int i = 0; i < K; i++)
            cs[i] = edo_case_recv(f->ch[i], &v[i]);
        cs[K] = edo_case_timeout(1);
        int k = edo_select(cs, K + 1);
        CHECK(k >= 0 && k <= K);
        if (k == K)
            continue;
        CHECK_OK(cs[k].rc);
        CHECK(v[k] >= 0 && v[k] < total);
        CHECK_MSG(atomic_fetch_add(&f->got[v[k]], 1) == 0, "message %d twice", v[k]);
        atomic_fetch_add(&f->received, 1);
    }
    return NULL;
}

static void *flow_root(void *arg)
{
    flow f = { .count = TEST_SCALE(5000, 1500, 500) };
    f.got = calloc((size_t)(PRODUCERS * f.count), sizeof *f.got);
    for (int i = 0; i < K; i++)
        CHECK_OK(edo_chan_new(&f.ch[i], sizeof(int), (size_t)INT(arg)));
    edo_task *ts[PRODUCERS + 3];
    fp ps[PRODUCERS];
    for (int i = 0; i < 3; i++)
        CHECK_OK(edo_spawn(&ts[i], flow_consumer, &f));
    for (int p = 0; p < PRODUCERS; p++) {
        ps[p] = (fp){ &f, p };
        CHECK_OK(edo_spawn(&ts[3 + p], flow_producer, &ps[p]));
    }
    for (int i = 0; i < PRODUCERS + 3; i++)
        CHECK_OK(edo_join(ts[i], NULL));
    for (int i = 0; i < PRODUCERS * f.count; i++)
        CHECK_EQ(atomic_load(&f.got[i]), 1);
    for (int i = 0; i < K; i++) {
        CHECK_EQ(edo_chan_len(f.ch[i]), 0);
        edo_chan_free(f.ch[i]);
    }
    free(f.got);
    return NULL;
}

static void case_select_no_loss(void)
{
    test_run(flow_root, VAL(4));
    test_run(flow_root, VAL(1));
    test_run(flow_root, VAL(0)); /* rendezvous: selects meet selects */
}

/* Socket readiness and task completion. */
static void *sleeper(void *arg)
{
    edo_sleep(INT(arg));
    return VAL(77);
}

static void *io_root(void *unused)
{
    int raw;
    edo_io *io = test_socketpair(&raw);
    edo_chan *ch;
    CHECK_OK(edo_chan_new(&ch, sizeof(int), 1));
    int v;
    edo_case cs[] = { edo_case_read(io), edo_case_recv(ch, &v), edo_case_timeout(20) };
    CHECK_EQ(edo_select(cs, 3), 2); /* nothing to read yet */
    char buf[16];
    CHECK_ERR(edo_try_read(io, buf, sizeof buf), -EAGAIN);
    CHECK_EQ(write(raw, "hi", 2), 2);
    edo_case cs2[] = { edo_case_read(io), edo_case_recv(ch, &v), edo_case_timeout(5000) };
    CHECK_EQ(edo_select(cs2, 3), 0);
    CHECK_EQ(edo_try_read(io, buf, sizeof buf), 2);
    CHECK_ERR(edo_try_read(io, buf, sizeof buf), -EAGAIN);
    /* Writable at once. */
    edo_case cw[] = { edo_case_write(io), edo_case_timeout(5000) };
    CHECK_EQ(edo_select(cw, 2), 0);
    CHECK_EQ(edo_try_write(io, "x", 1), 1);
    CHECK_EQ(read(raw, buf, 1), 1);
    /* A wake by the peer's close while parked: readable, end of stream. */
    edo_task *t;
    CHECK_OK(edo_spawn(&t, sleeper, VAL(10)));
    edo_case cj[] = { edo_case_join(t), edo_case_read(io), edo_case_timeout(5000) };
    CHECK_EQ(edo_select(cj, 3), 0); /* the task ends first */
    void *r;
    CHECK_OK(edo_join(t, &r));
    CHECK_EQ(INT(r), 77);
    close(raw);
    CHECK_EQ(edo_select(cs2, 3), 0);
    CHECK_EQ(edo_try_read(io, buf, sizeof buf), 0);
    /* Another task waits on the same direction: -EBUSY for the case. */
    CHECK_OK(edo_close(io));
    edo_chan_free(ch);
    return NULL;
}

static const test_root case_select_io_and_join = { .fn = io_root };

static void *notify_later(void *arg)
{
    edo_sleep(10);
    edo_notify_one(arg);
    return NULL;
}

static void *bcast_later(void *arg)
{
    edo_sleep(10);
    long v = 31;
    CHECK_EQ(edo_bcast_send(arg, &v), 1);
    return NULL;
}

static void *watch_later(void *arg)
{
    edo_sleep(10);
    int v = 8;
    CHECK_OK(edo_watch_send(arg, &v));
    return NULL;
}

static void *kinds_root(void *unused)
{
    edo_notify *n;
    edo_bcast *b;
    edo_bcast_rx *rx;
    edo_watch *w;
    CHECK_OK(edo_notify_new(&n));
    CHECK_OK(edo_bcast_new(&b, sizeof(long), 2));
    CHECK_OK(edo_bcast_subscribe(&rx, b));
    int v0 = 7;
    CHECK_OK(edo_watch_new(&w, sizeof(int), &v0));
    uint64_t seen = edo_watch_get(w, NULL);
    long bv = 0;
    uint64_t missed = 0;
    int wv = 0;
    edo_task *t;
    edo_case cs[] = { edo_case_notify(n), edo_case_bcast(rx, &bv, &missed),
                      edo_case_watch(w, &wv, &seen), edo_case_timeout(5000) };

    CHECK_OK(edo_spawn(&t, notify_later, n));
    CHECK_EQ(edo_select(cs, 4), 0);
    CHECK_OK(edo_join(t, NULL));
    edo_notify_one(n); /* stored: taken by the next select at once */
    CHECK_EQ(edo_select(cs, 4), 0);

    CHECK_OK(edo_spawn(&t, bcast_later, b));
    CHECK_EQ(edo_select(cs, 4), 1);
    CHECK_EQ(cs[1].rc, 0);
    CHECK_EQ(bv, 31);
    CHECK_OK(edo_join(t, NULL));

    CHECK_OK(edo_spawn(&t, watch_later, w));
    CHECK_EQ(edo_select(cs, 4), 2);
    CHECK_EQ(cs[2].rc, 0);
    CHECK_EQ(wv, 8);
    CHECK_EQ(seen, 2);
    CHECK_OK(edo_join(t, NULL));

    /* A lagging broadcast receiver: the case fires with -EOVERFLOW. */
    for (long i = 0; i < 5; i++)
        edo_bcast_send(b, &i);
    CHECK_EQ(edo_select(cs, 4), 1);
    CHECK_EQ(cs[1].rc, -EOVERFLOW);
    CHECK_EQ(missed, 3);

    edo_bcast_unsubscribe(rx);
    edo_bcast_free(b);
    edo_watch_free(w);
    edo_notify_free(n);
    return NULL;
}

static const test_root case_select_kinds = { .fn = kinds_root };

/* A select parked on a channel, a notify and a socket, then aborted or timed out: every
 * waiter is gone afterwards (a send is buffered, a notify stored, the socket free for
 * another waiter). */
typedef struct parked {
    edo_chan *ch;
    edo_notify *n;
    edo_io *io;
    int64_t timeout;
} parked;

static void *parked_select(void *arg)
{
    parked *p = arg;
    int v;
    edo_case cs[] = { edo_case_recv(p->ch, &v), edo_case_notify(p->n), edo_case_read(p->io) };
    int64_t scope = p->timeout ? edo_timeout_begin(p->timeout) : 0;
    int rc = edo_select(cs, 3);
    if (p->timeout)
        edo_deadline_end(scope);
    return VAL(rc);
}

static void *abort_root(void *unused)
{
    int raw;
    parked p = { .io = test_socketpair(&raw) };
    CHECK_OK(edo_chan_new(&p.ch, sizeof(int), 2));
    CHECK_OK(edo_notify_new(&p.n));
    for (int round = 0; round < 2; round++) {
        p.timeout = round ? 20 : 0;
        edo_task *t;
        CHECK_OK(edo_spawn(&t, parked_select, &p));
        if (round == 0)
            test_wait_parked(t, EDO_WAIT_SELECT);
        else
            test_wait_parked_or_done(t, EDO_WAIT_SELECT); /* its 20 ms may pass first */
        void *r;
        if (round == 0) {
            edo_abort(t);
            CHECK_ERR(edo_join(t, &r), -EDO_EABORTED);
            CHECK_EQ(INT(r), -ECANCELED);
        } else {
            CHECK_OK(edo_join(t, &r));
            CHECK_EQ(INT(r), -ETIMEDOUT);
        }
        int v = 1;
        CHECK_OK(edo_chan_send(p.ch, &v));
        CHECK_EQ(edo_chan_len(p.ch), 1);
        CHECK_OK(edo_chan_recv(p.ch, &v));
        edo_notify_one(p.n);
        CHECK_OK(edo_notify_wait(p.n)); /* the permit was stored */
        CHECK_EQ(write(raw, "z", 1), 1);
        CHECK_OK(edo_io_wait(p.io, EDO_READ)); /* not -EBUSY: the slot is free */
        char c;
        CHECK_EQ(edo_read(p.io, &c, 1), 1);
    }
    close(raw);
    CHECK_OK(edo_close(p.io));
    edo_chan_free(p.ch);
    edo_notify_free(p.n);
    return NULL;
}

static const test_root case_select_abort_and_deadline = { .fn = abort_root };

/* Send and receive on the same rendezvous channel in one select: a case is never the
 * partner of its own select's other case, so only the timer can fire, until another task
 * receives. */
static void *plain_recv(void *arg)
{
    int v = 0;
    int rc = edo_chan_recv(arg, &v);
    return (void *)(intptr_t)(rc < 0 ? rc : v);
}

static void *self_partner_root(void *unused)
{
    edo_chan *ch;
    CHECK_OK(edo_chan_new(&ch, sizeof(int), 0));
    int out = 5, in = 0;
    edo_case cs[] = { edo_case_send(ch, &out), edo_case_recv(ch, &in), edo_case_timeout(20) };
    CHECK_EQ(edo_select(cs, 3), 2);
    edo_task *t;
    CHECK_OK(edo_spawn(&t, plain_recv, ch));
    test_wait_parked(t, EDO_WAIT_CHAN);
    edo_case cs2[] = { edo_case_send(ch, &out), edo_case_recv(ch, &in), edo_case_timeout(5000) };
    CHECK_EQ(edo_select(cs2, 3), 0);
    void *r;
    CHECK_OK(edo_join(t, &r));
    CHECK_EQ(INT(r), 5);
    edo_chan_free(ch);
    return NULL;
}

static const test_root case_select_own_cases = { .fn = self_partner_root };

/* More cases than fit on the stack. */
static void *many_root(void *unused)
{
    enum { N = 40 };
    edo_chan *ch[N];
    int v[N];
    edo_case cs[N];
    for (int i = 0; i < N; i++) {
        CHECK_OK(edo_chan_new(&ch[i], sizeof(int), 1));
        cs[i] = edo_case_recv(ch[i], &v[i]);
    }
    for (int round = 0; round < 200; round++) {
        int which = (round * 7) % N;
        CHECK_OK(edo_chan_send(ch[which], &round));
        CHECK_EQ(edo_select(cs, N), which);
        CHECK_EQ(v[which], round);
    }
    for (int i = 0; i < N; i++)
        edo_chan_free(ch[i]);
    return NULL;
}

static const test_root case_select_many_cases = { .fn = many_root };

static const test_case cases[] = {
    TEST_CASE(case_select_basic),      TEST_CASE(case_select_fair),
    TEST_CASE(case_select_no_loss),    TEST_CASE(case_select_io_and_join),
    TEST_CASE(case_select_kinds),      TEST_CASE(case_select_abort_and_deadline),
    TEST_CASE(case_select_many_cases), TEST_CASE(case_select_own_cases),
};

TEST_MAIN(cases)
