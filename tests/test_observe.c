/*
 * The always-on counters and the snapshot API (edo/observe.h): counts that match a
 * scripted workload exactly, what a parked task says it waits on, who holds and who waits
 * for a resource, and the runtime's and workers' figures.
 */
#include "harness.h"

#include <edo/observe.h>
#include <edo/sync.h>

static edo_task_info info_of(edo_task *t)
{
    edo_task_info info;
    edo_task_stats(t, &info);
    return info;
}

/* ---- exact counts ------------------------------------------------------------------------ */

#define SLEEPS 3
#define SLEEPERS 10

static void *three_sleeps(void *arg)
{
    (void)arg;
    for (int i = 0; i < SLEEPS; i++)
        CHECK_OK(edo_sleep(5));
    edo_case c[] = { edo_case_timeout(5) };
    CHECK_EQ(edo_select(c, 1), 0); /* one more park and wake */
    return NULL;
}

/* Each sleeper resumes once at its start and once per wake; every wake is another's (the
 * timer's); every run ends in a switch, so its histogram holds one entry per resume. */
static void *counts_root(void *arg)
{
    (void)arg;
    edo_runtime_info before, after;
    CHECK_OK(edo_runtime_stats(NULL, &before));
    edo_task *t[SLEEPERS];
    for (int i = 0; i < SLEEPERS; i++)
        CHECK_OK(edo_spawn(&t[i], three_sleeps, NULL));
    for (int i = 0; i < SLEEPERS; i++) {
        test_wait_done(t[i]);
        edo_task_info info = info_of(t[i]);
        CHECK_EQ(info.resumes, 1 + SLEEPS + 1);
        CHECK_EQ(info.wakes_other, SLEEPS + 1);
        CHECK_EQ(info.wakes_self, 0);
        uint64_t runs = 0;
        for (int b = 0; b < EDO_RUN_HIST; b++)
            runs += info.run_hist[b];
        CHECK_EQ(runs, info.resumes);
        CHECK_EQ(info.parent, edo_task_id(NULL));
        CHECK_GE(info.worker, 0);
        CHECK_GT(info.stack_used, 0);
        CHECK_LT(info.stack_used, info.stack_size);
        CHECK_OK(edo_join(t[i], NULL));
    }
    CHECK_OK(edo_runtime_stats(NULL, &after));
    CHECK_EQ(after.tasks_spawned - before.tasks_spawned, SLEEPERS);
    CHECK_EQ(after.tasks_live, before.tasks_live);
    CHECK_EQ(after.tasks_done - before.tasks_done, SLEEPERS);
    CHECK_GT(after.uptime_ns, before.uptime_ns);
    return NULL;
}

static const test_root case_counts_exact = { .fn = counts_root, .paused = true };

/* A yield is a wake the task gives itself. */
static void *yielder(void *arg)
{
    (void)arg;
    for (int i = 0; i < 5; i++)
        CHECK_OK(edo_yield());
    return NULL;
}

static void *busy_peer(void *arg)
{
    _Atomic bool *stop = arg;
    while (!atomic_load(stop))
        edo_yield();
    return NULL;
}

static void *self_wakes_root(void *arg)
{
    (void)arg;
    /* A peer that is always ready, so that every yield switches away. */
    _Atomic bool stop = false;
    edo_task *peer, *t;
    CHECK_OK(edo_spawn(&peer, busy_peer, &stop));
    CHECK_OK(edo_spawn(&t, yielder, NULL));
    test_wait_done(t);
    edo_task_info info = info_of(t);
    atomic_store(&stop, true);
    CHECK_OK(edo_join(peer, NULL));
    /* With one worker every yield finds the peer ready; with more, a yield that finds
     * nothing else ready goes on at once and is no wake. */
    CHECK_LE(info.wakes_self, 5);
    CHECK_EQ(info.resumes, 1 + info.wakes_self + info.wakes_other);
    edo_runtime_info ri;
    CHECK_OK(edo_runtime_stats(NULL, &ri));
    if (ri.workers == 1)
        CHECK_EQ(info.wakes_self, 5);
    CHECK_OK(edo_join(t, NULL));
    return NULL;
}

static const test_root case_self_wakes = { .fn = self_wakes_root };

/* ---- what a task waits on ---------------------------------------------------------------- */

static void *sleep_long(void *arg)
{
    (void)arg;
    edo_sleep(3600 * 1000);
    return NULL;
}

static void *read_one(void *arg)
{
    char c;
    edo_read(arg, &c, 1);
    return NULL;
}

static void *recv_one(void *arg)
{
    int v;
    edo_chan_recv(arg, &v);
    return NULL;
}

static void *lock_once(void *arg)
{
    if (edo_mutex_lock(arg) == 0)
        edo_mutex_unlock(arg);
    return NULL;
}

static void *join_it(void *arg)
{
    edo_join(arg, NULL);
    return NULL;
}

static void *select_two(void *arg)
{
    /* The case switched off is not counted. */
    edo_case c[] = { edo_case_recv(arg, &(int){ 0 }), edo_case_off(),
                     edo_case_timeout(3600 * 1000) };
    edo_select(c, 3);
    return NULL;
}

static void check_wait(edo_task *t, edo_wait_reason why, const char *prefix)
{
    test_wait_parked(t, why);
    edo_task_info info = info_of(t);
    CHECK_MSG(strncmp(info.wait, prefix, strlen(prefix)) == 0,
              "task %s waits on \"%s\", not \"%s...\"", info.name, info.wait, prefix);
    CHECK_STR_EQ(edo_wait_reason_name(info.waiting_on), edo_wait_reason_name(why));
    CHECK_STR_EQ(edo_task_state_name(info.state), "parked");
}

struct found {
    const void *m, *ch;
    edo_resource_info mi, ci;
    bool timers;
};

static int find_resources(const edo_resource_info *r, void *arg)
{
    struct found *f = arg;
    if (r->addr == f->m)
        f->mi = *r;
    if (r->addr == f->ch)
        f->ci = *r;
    if (r->kind == EDO_RES_TIMERS)
        f->timers = true;
    return 0;
}

static void *wait_texts_root(void *arg)
{
    (void)arg;
    edo_io *client, *server;
    test_tcp_pair(&client, &server);
    char peer[64];
    CHECK_OK(edo_peer_addr(server, peer, sizeof peer));
    edo_chan *ch;
    CHECK_OK(edo_chan_new(&ch, sizeof(int), 4));
    edo_chan *ch2;
    CHECK_OK(edo_chan_new(&ch2, sizeof(int), 4));
    edo_mutex *m;
    CHECK_OK(edo_mutex_new(&m));
    CHECK_OK(edo_mutex_lock(m));

    edo_task *sl, *rd, *rc, *lk, *jn, *se;
    CHECK_OK(edo_spawn(&sl, sleep_long, NULL));
    CHECK_OK(edo_spawn(&rd, read_one, server));
    CHECK_OK(edo_spawn(&rc, recv_one, ch));
    CHECK_OK(edo_spawn(&lk, lock_once, m));
    CHECK_OK(edo_spawn(&jn, join_it, sl));
    CHECK_OK(edo_spawn(&se, select_two, ch2));

    check_wait(sl, EDO_WAIT_SLEEP, "sleep until +");
    edo_task_info si = info_of(sl);
    CHECK_GT(si.wait_until - edo_now(), 3500 * 1000);

    char want[128];
    snprintf(want, sizeof want, "read fd %d (%s)", edo_io_fd(server), peer);
    check_wait(rd, EDO_WAIT_READ, want);
    CHECK_EQ(info_of(rd).wait_fd, edo_io_fd(server));
    CHECK(info_of(rd).wait_obj == server);

    snprintf(want, sizeof want, "chan recv %p", (void *)ch);
    check_wait(rc, EDO_WAIT_CHAN, want);
    snprintf(want, sizeof want, "mutex lock %p", (void *)m);
    check_wait(lk, EDO_WAIT_LOCK, want);
    snprintf(want, sizeof want, "join task %llu", (unsigned long long)edo_task_id(sl));
    check_wait(jn, EDO_WAIT_JOIN, want);
    check_wait(se, EDO_WAIT_SELECT, "select: 2 cases (recv, timer)");

    /* The resources: the mutex held by us with lk waiting; ch with rc waiting. */
    struct found f = { m, ch, { 0 }, { 0 }, false };
    size_t n = edo_resource_list(edo_runtime_current(), find_resources, &f);
    CHECK_GE(n, 3);
    CHECK(f.timers);
    CHECK_EQ(f.mi.kind, EDO_RES_MUTEX);
    CHECK_EQ(f.mi.holder, edo_task_id(NULL));
    CHECK_EQ(f.mi.waiters, 1);
    CHECK_EQ(f.mi.waiter_ids[0], edo_task_id(lk));
    CHECK_EQ(f.ci.kind, EDO_RES_CHAN);
    CHECK_EQ(f.ci.cap, 4);
    CHECK_EQ(f.ci.waiters, 1);
    CHECK_EQ(f.ci.waiter_ids[0], edo_task_id(rc));
    CHECK_STR_EQ(edo_resource_kind_name(f.mi.kind), "mutex");

    /* Let them all go. */
    edo_mutex_unlock(m);
    CHECK_OK(edo_chan_send(ch, &(int){ 1 }));
    CHECK_OK(edo_chan_send(ch2, &(int){ 1 }));
    CHECK_EQ(edo_write(client, "x", 1), 1);
    edo_abort(sl);
    CHECK_OK(edo_join(rd, NULL));
    CHECK_OK(edo_join(rc, NULL));
    CHECK_OK(edo_join(lk, NULL));
    CHECK_OK(edo_join(jn, NULL));
    CHECK_OK(edo_join(se, NULL));
    edo_close(client);
    edo_close(server);
    edo_chan_free(ch);
    edo_chan_free(ch2);
    edo_mutex_free(m);
    return NULL;
}

static const test_root case_wait_texts = { .fn = wait_texts_root };

/* ---- workers ------------------------------------------------------------------------------- */

static void *short_task(void *arg)
{
    (void)arg;
    return NULL;
}

/* The spawner keeps its worker busy, so with more workers the others must take (steal)
 * what it queued; with one worker, it runs them itself. Either way every run is counted
 * by exactly one worker. */
static void *workers_root(void *arg)
{
    (void)arg;
    edo_runtime_info ri;
    CHECK_OK(edo_runtime_stats(NULL, &ri));
    uint64_t runs0 = 0, steals0 = 0;
    for (int i = 0; i < ri.workers; i++) {
        edo_worker_info wi;
        CHECK_OK(edo_worker_stats(NULL, i, &wi));
        CHECK_EQ(wi.index, i);
        runs0 += wi.tasks_run;
        steals0 += wi.steals;
    }
    enum { N = 64 };
    edo_task *t[N];
    for (int i = 0; i < N; i++)
        CHECK_OK(edo_spawn(&t[i], short_task, NULL));
    if (ri.workers > 1) {
        /* Busy here until the others have run them all (not a suspension: a wait). */
        int64_t t0 = test_clock_ms();
        for (;;) {
            int done = 0;
            for (int i = 0; i < N; i++)
                done += info_of(t[i]).state == EDO_TASK_DONE;
            if (done == N)
                break;
            CHECK_MSG(test_clock_ms() - t0 < 30000, "%d of %d ran in 30 s", done, N);
        }
    }
    uint64_t ran = 0;
    for (int i = 0; i < N; i++) {
        test_wait_done(t[i]);
        ran += info_of(t[i]).resumes;
        CHECK_OK(edo_join(t[i], NULL));
    }
    CHECK_EQ(ran, N);
    uint64_t runs1 = 0, steals1 = 0, handoffs = 0, busy = 0;
    for (int i = 0; i < ri.workers; i++) {
        edo_worker_info wi;
        CHECK_OK(edo_worker_stats(NULL, i, &wi));
        runs1 += wi.tasks_run;
        steals1 += wi.steals;
        handoffs += wi.handoffs;
        busy += wi.busy_ns;
    }
    CHECK_GE(runs1 - runs0, N);
    if (ri.workers > 1)
        CHECK_GE(steals1 - steals0 + handoffs, 1);
    CHECK_GT(busy, 0);
    CHECK_ERR(edo_worker_stats(NULL, ri.workers, &(edo_worker_info){ 0 }), -EINVAL);
    CHECK_ERR(edo_worker_stats(NULL, -1, &(edo_worker_info){ 0 }), -EINVAL);
    return NULL;
}

static const test_root case_workers = { .fn = workers_root };

static const test_case cases[] = {
    TEST_CASE(case_counts_exact),
    TEST_CASE(case_self_wakes),
    TEST_CASE(case_wait_texts),
    TEST_CASE(case_workers),
};

TEST_MAIN(cases)
