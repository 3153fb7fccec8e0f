/*
 * Model tests: many random configurations of a channel (producers, consumers, capacity,
 * and how each side waits: plain calls, deadline scopes, select with a timer, try-and-
 * yield) with consumers aborted at random moments, and of Notify guarding a counter. Each
 * run checks the model's promises: every message reported sent is received exactly once,
 * each consumer sees each producer's messages in the order sent, nothing waits for ever
 * (a lost wake-up would hang the run and the test's timeout would report it).
 * EDO_TEST_SEED picks other configurations.
 *
 * edo-test: timeout=600
 */
#include "harness.h"

#define MAXP 6
#define MAXC 4
#define MAXM 400

enum { WAIT_PLAIN, WAIT_SCOPE, WAIT_SELECT, WAIT_TRY, WAIT_MODES };

typedef struct model {
    edo_chan *ch;
    int np, nc, m;
    size_t cap;
    int mode[MAXP + MAXC];
    _Atomic int got[MAXP][MAXM];
    _Atomic long received;
    uint64_t seed;
} model;

typedef struct msg {
    int producer, seq;
} msg;

typedef struct actor {
    model *md;
    int id;
} actor;

/* One send (send) or receive of m, waiting as mode says. A send fails by a timeout or a
 * full channel; a receive also by an abort (consumers are aborted, producers never), and
 * its timeout may be 0. */
static int xfer_once(model *md, int mode, test_rng *r, msg *m, bool send)
{
    int64_t ms = (int64_t)test_rng_range(r, send ? 1 : 0, 3);
    switch (mode) {
    case WAIT_SCOPE: {
        int64_t scope = edo_timeout_begin(ms);
        int rc = send ? edo_chan_send(md->ch, m) : edo_chan_recv(md->ch, m);
        edo_deadline_end(scope);
        return rc;
    }
    case WAIT_SELECT: {
        edo_case cs[] = { send ? edo_case_send(md->ch, m) : edo_case_recv(md->ch, m),
                          edo_case_timeout(ms) };
        int k = edo_select(cs, 2);
        return k == 0 ? cs[0].rc : k == 1 || send ? -ETIMEDOUT : k;
    }
    case WAIT_TRY: {
        int rc = send ? edo_chan_try_send(md->ch, m) : edo_chan_try_recv(md->ch, m);
        if (rc == -EAGAIN && edo_yield() == -ECANCELED && !send)
            return -ECANCELED;
        return rc;
    }
    default:
        return send ? edo_chan_send(md->ch, m) : edo_chan_recv(md->ch, m);
    }
}

static void *producer(void *arg)
{
    actor *a = arg;
    model *md = a->md;
    test_rng r = test_rng_new(md->seed * 131 + (uint64_t)a->id);
    for (int i = 0; i < md->m; i++) {
        msg m = { a->id, i };
        int rc;
        /* Retried until sent: a failed send (timeout, full) sent nothing. */
        while ((rc = xfer_once(md, md->mode[a->id], &r, &m, true)) != 0)
            CHECK_MSG(rc == -ETIMEDOUT || rc == -EAGAIN, "send: %s", edo_strerror(rc));
        if (test_rng_range(&r, 0, 7) == 0)
            edo_yield();
    }
    return NULL;
}

static void record(model *md, int *last, const msg *m)
{
    CHECK(m->producer >= 0 && m->producer < md->np && m->seq >= 0 && m->seq < md->m);
    CHECK_MSG(last[m->producer] < m->seq, "producer %d: %d after %d", m->producer, m->seq,
              last[m->producer]);
    last[m->producer] = m->seq;
    CHECK_MSG(atomic_fetch_add(&md->got[m->producer][m->seq], 1) == 0, "message %d/%d twice",
              m->producer, m->seq);
    atomic_fetch_add(&md->received, 1);
}

static void *consumer(void *arg)
{
    actor *a = arg;
    model *md = a->md;
    test_rng r = test_rng_new(md->seed * 137 + (uint64_t)a->id);
    int last[MAXP];
    for (int i = 0; i < MAXP; i++)
        last[i] = -1;
    for (;;) {
        msg m;
        int rc = xfer_once(md, md->mode[MAXP + a->id], &r, &m, false);
        if (rc == 0) {
            record(md, last, &m);
        } else if (rc == -EDO_ECLOSED || rc == -ECANCELED) {
            break;
        } else {
            CHECK_MSG(rc == -ETIMEDOUT || rc == -EAGAIN, "recv: %s", edo_strerror(rc));
        }
        if (test_rng_range(&r, 0, 7) == 0 && edo_yield() == -ECANCELED)
            break;
    }
    return NULL;
}

static void *chan_model_root(void *arg)
{
    model *md = arg;
    static const size_t caps[] = { 0, 1, 2, 7, EDO_UNBOUNDED };
    test_rng r = test_rng_new(md->seed);
    md->np = (int)test_rng_range(&r, 1, MAXP);
    md->nc = (int)test_rng_range(&r, 1, MAXC);
    md->m = (int)test_rng_range(&r, 1, TEST_SCALE(MAXM, 150, 60));
    md->cap = caps[test_rng_range(&r, 0, 4)];
    for (int i = 0; i < MAXP + MAXC; i++)
        md->mode[i] = (int)test_rng_range(&r, 0, WAIT_MODES - 1);
    /* A rendezvous needs one side to wait: a try meets only a waiter of the other side. */
    if (md->cap == 0)
        for (int i = 0; i < MAXP; i++)
            if (md->mode[i] == WAIT_TRY)
                md->mode[i] = WAIT_PLAIN;
    CHECK_OK(edo_chan_new(&md->ch, sizeof(msg), md->cap));

    actor ps[MAXP], cs[MAXC];
    edo_task *pt[MAXP], *ct[MAXC];
    for (int i = 0; i < md->nc; i++) {
        cs[i] = (actor){ md, i };
        CHECK_OK(edo_spawn(&ct[i], consumer, &cs[i]));
    }
    for (int i = 0; i < md->np; i++) {
        ps[i] = (actor){ md, i };
        CHECK_OK(edo_spawn(&pt[i], producer, &ps[i]));
    }
    /* Abort some consumers at random moments; consumer 0 stays, so that the producers
     * of a bounded channel can always finish. */
    for (int i = 1; i < md->nc; i++) {
        if (test_rng_range(&r, 0, 1)) {
            edo_sleep((int64_t)test_rng_range(&r, 0, 3));
            edo_abort(ct[i]);
        }
    }
    for (int i = 0; i < md->np; i++)
        CHECK_OK(edo_join(pt[i], NULL));
    edo_chan_close(md->ch);
    for (int i = 0; i < md->nc; i++) {
        int rc = edo_join(ct[i], NULL);
        CHECK(rc == 0 || rc == -EDO_EABORTED);
    }
    /* What no consumer took is still in the channel, in order. */
    int last[MAXP];
    for (int i = 0; i < MAXP; i++)
        last[i] = -1;
    msg m;
    while (edo_chan_try_recv(md->ch, &m) == 0)
        record(md, last, &m);
    for (int p = 0; p < md->np; p++)
        for (int s = 0; s < md->m; s++)
            CHECK_MSG(atomic_load(&md->got[p][s]) == 1,
                      "seed %" PRIu64 ": message %d/%d received %d times", md->seed, p, s,
                      atomic_load(&md->got[p][s]));
    edo_chan_free(md->ch);
    return NULL;
}

static void case_chan_model(void)
{
    int runs = TEST_SCALE(400, 150, 40);
    long total = 0;
    for (int i = 0; i < runs; i++) {
        model *md = calloc(1, sizeof *md);
        md->seed = test_seed() * 1000003u + (uint64_t)i;
        test_run(chan_model_root, md);
        total += atomic_load(&md->received);
        free(md);
    }
    printf("    %d configurations, %ld messages\n", runs, total);
}

/* ---- Notify guarding a counter ------------------------------------------------------ */

typedef struct nmodel {
    edo_notify *n;
    int np, nc, m;
    _Atomic long avail, taken;
    long total;
    uint64_t seed;
} nmodel;

typedef struct nactor {
    nmodel *md;
    int id;
} nactor;

static void *nproducer(void *arg)
{
    nactor *a = arg;
    test_rng r = test_rng_new(a->md->seed * 139 + (uint64_t)a->id);
    for (int i = 0; i < a->md->m; i++) {
        atomic_fetch_add(&a->md->avail, 1);
        if (test_rng_range(&r, 0, 3) == 0)
            edo_notify_all(a->md->n);
        else
            edo_notify_one(a->md->n);
        if (test_rng_range(&r, 0, 3) == 0)
            edo_yield();
    }
    return NULL;
}

static void *nconsumer(void *arg)
{
    nactor *a = arg;
    nmodel *md = a->md;
    test_rng r = test_rng_new(md->seed * 149 + (uint64_t)a->id);
    for (;;) {
        /* The epoch first, then the condition: a notify_all between them is seen. */
        uint64_t e = edo_notify_epoch(md->n);
        long have = atomic_load(&md->avail);
        if (have > 0) {
            if (atomic_compare_exchange_strong(&md->avail, &have, have - 1) &&
                atomic_fetch_add(&md->taken, 1) + 1 == md->total)
                edo_notify_all(md->n); /* the last one: let the others see the end */
            continue;
        }
        if (atomic_load(&md->taken) == md->total)
            return NULL;
        int rc;
        switch (test_rng_range(&r, 0, 2)) {
        case 0:
            rc = edo_notify_wait_since(md->n, e);
            break;
        case 1: {
            int64_t scope = edo_timeout_begin((int64_t)test_rng_range(&r, 0, 2));
            rc = edo_notify_wait_since(md->n, e);
            edo_deadline_end(scope);
            break;
        }
        default: {
            edo_case cs[] = { edo_case_notify(md->n),
                              edo_case_timeout((int64_t)test_rng_range(&r, 0, 2)) };
            /* A select knows no epoch: a notify_all before it is missed, so it waits
             * with a timer, as a program using it this way must. */
            rc = edo_select(cs, 2) == 0 ? 0 : -ETIMEDOUT;
            break;
        }
        }
        if (rc == -ECANCELED)
            return NULL;
        CHECK(rc == 0 || rc == -ETIMEDOUT);
    }
}

static void *notify_model_root(void *arg)
{
    nmodel *md = arg;
    test_rng r = test_rng_new(md->seed);
    md->np = (int)test_rng_range(&r, 1, 4);
    md->nc = (int)test_rng_range(&r, 1, 4);
    md->m = (int)test_rng_range(&r, 1, TEST_SCALE(500, 200, 60));
    md->total = (long)md->np * md->m;
    CHECK_OK(edo_notify_new(&md->n));
    nactor ps[4], cs[4];
    edo_task *pt[4], *ct[4];
    for (int i = 0; i < md->nc; i++) {
        cs[i] = (nactor){ md, i };
        CHECK_OK(edo_spawn(&ct[i], nconsumer, &cs[i]));
    }
    for (int i = 0; i < md->np; i++) {
        ps[i] = (nactor){ md, i };
        CHECK_OK(edo_spawn(&pt[i], nproducer, &ps[i]));
    }
    for (int i = 1; i < md->nc; i++) {
        if (test_rng_range(&r, 0, 2) == 0) {
            edo_sleep((int64_t)test_rng_range(&r, 0, 2));
            edo_abort(ct[i]);
        }
    }
    for (int i = 0; i < md->np; i++)
        CHECK_OK(edo_join(pt[i], NULL));
    for (int i = 0; i < md->nc; i++) {
        int rc = edo_join(ct[i], NULL);
        CHECK(rc == 0 || rc == -EDO_EABORTED);
    }
    CHECK_EQ(atomic_load(&md->taken) + atomic_load(&md->avail), md->total);
    CHECK_EQ(atomic_load(&md->taken), md->total); /* consumer 0 was never aborted */
    edo_notify_free(md->n);
    return NULL;
}

static void case_notify_model(void)
{
    int runs = TEST_SCALE(400, 150, 40);
    for (int i = 0; i < runs; i++) {
        nmodel *md = calloc(1, sizeof *md);
        md->seed = test_seed() * 1000033u + (uint64_t)i;
        test_run(notify_model_root, md);
        free(md);
    }
    printf("    %d configurations\n", runs);
}

static const test_case cases[] = {
    TEST_CASE(case_chan_model),
    TEST_CASE(case_notify_model),
};

TEST_MAIN(cases)
