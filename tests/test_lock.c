/*
 * Mutex, read-write lock, semaphore and barrier (edo/sync.h).
 *
 *  - mutex: mutual exclusion of many tasks on several workers, with yields inside the
 *    critical section; waiters served in the order they queued, a hand-off that keeps the
 *    mutex locked, and an unlocker that relocks queueing behind them; try_lock; timeouts
 *    (edo_timeout_begin scopes) of the first, a middle and a racing waiter; abort of a
 *    parked locker, and aborts racing unlocks; threads outside the runtime locking
 *    alongside tasks.
 *  - read-write lock: readers share, writers are alone, a waiting writer holds back the
 *    readers after it, waiters served in order (a run of readers together), a writer
 *    that times out or is aborted lets the readers behind it in.
 *  - semaphore: a large request at the head holds back smaller ones (and try_acquire keeps
 *    their turn), its withdrawal (timeout, abort) serves them, close (-EDO_ECLOSED), available(),
 *    bad arguments.
 *  - barrier: rounds reused many times by N tasks with exactly one leader each, a waiter
 *    that times out or is aborted does not count.
 *  - threads outside the runtime on the semaphore, read-write lock and barrier.
 *  - stress: tasks with random timeouts and aborts, and threads, on a mutex, a semaphore
 *    and a read-write lock at once, checking that there are never two holders (or more
 *    permits out than exist), that every task finishes (no hand-off lost) and that
 *    nothing is left held.
 *
 * edo-test: timeout=300
 */
#include "harness.h"

#include <pthread.h>
#include <sched.h>

static edo_task *spawn(void *(*fn)(void *), void *arg)
{
    edo_task *t = NULL;
    CHECK_OK(edo_spawn(&t, fn, arg));
    return t;
}

/* Joins t, failing if it takes over 30 s (a lost hand-off leaves a task waiting). */
static int bounded_join(edo_task *t, void **res)
{
    int64_t scope = edo_timeout_begin(30000);
    int rc = edo_join(t, res);
    edo_deadline_end(scope);
    return rc;
}

static intptr_t join(edo_task *t)
{
    void *res = NULL;
    CHECK_OK(bounded_join(t, &res));
    return INT(res);
}

/* A task that was aborted: its join reports it, and its result is what it returned. */
static intptr_t join_aborted(edo_task *t)
{
    void *res = NULL;
    CHECK_ERR(bounded_join(t, &res), -EDO_EABORTED);
    return INT(res);
}

static bool parked_on_lock(edo_task *t)
{
    edo_task_info info;
    edo_task_stats(t, &info);
    return info.state == EDO_TASK_PARKED && info.waiting_on == EDO_WAIT_LOCK;
}

/* Spawns fn(arg) and waits until it is parked on a lock, so that tasks queue in the order
 * they are spawned in. Yields at first (a new task usually parks within a few), then
 * sleeps. */
static edo_task *spawn_parked(void *(*fn)(void *), void *arg)
{
    edo_task *t = spawn(fn, arg);
    for (int i = 0; i < 100; i++) {
        if (parked_on_lock(t))
            return t;
        CHECK_OK(edo_yield());
    }
    test_wait_parked(t, EDO_WAIT_LOCK);
    return t;
}

/* spawn_parked for a task with a timeout, which may be over before we look: waits until it
 * is parked on a lock or has returned. */
static edo_task *spawn_queued(void *(*fn)(void *), void *arg)
{
    edo_task *t = spawn(fn, arg);
    edo_task_info info;
    WAIT_UNTIL((edo_task_stats(t, &info), info.state == EDO_TASK_DONE) || parked_on_lock(t), 5000);
    return t;
}

/* Timeouts of the waiters that must time out while others queue behind them: each
 * scenario starts with the shortest and, if the machine was so slow that the waiter gave
 * up before the others had queued, starts over with a longer one. */
#define FIRST_TIMEOUT 40
#define LAST_TIMEOUT (FIRST_TIMEOUT << 10)

/* Sleeps a little and checks that t is still parked on a lock (it was not served). */
static void check_still_parked(edo_task *t)
{
    edo_sleep(20);
    edo_task_info info;
    edo_task_stats(t, &info);
    CHECK_MSG(info.state == EDO_TASK_PARKED && info.waiting_on == EDO_WAIT_LOCK,
              "state %s, waiting_on %d", test_state_name(info.state), (int)info.waiting_on);
}

/* The order in which tasks got a lock. */
typedef struct order_log {
    atomic_int n;
    int who[64];
} order_log;

static void log_add(order_log *log, int who)
{
    int i = atomic_fetch_add(&log->n, 1);
    CHECK_LT(i, 64);
    log->who[i] = who;
}

/* m is left unlocked (a waiter would have been handed it): a try_lock gets it at once. */
static void check_mutex_free(edo_mutex *m)
{
    CHECK_OK(edo_mutex_try_lock(m));
    edo_mutex_unlock(m);
}

/* l is left unlocked, by readers and writers alike. */
static void check_rwlock_free(edo_rwlock *l)
{
    CHECK_OK(edo_rwlock_try_wrlock(l));
    edo_rwlock_wrunlock(l);
}

/* A holder of a read-write lock counts itself in (readers, writers): a writer finds
 * nobody else inside, a reader no writer. */
static void rw_count_in(atomic_int *readers, atomic_int *writers, bool writer)
{
    if (writer) {
        CHECK_EQ(atomic_fetch_add(writers, 1), 0);
        CHECK_EQ(atomic_load(readers), 0);
    } else {
        atomic_fetch_add(readers, 1);
        CHECK_EQ(atomic_load(writers), 0);
    }
}

/* ... and counts itself out again, checking the same, and unlocks. */
static void rw_count_out(edo_rwlock *l, atomic_int *readers, atomic_int *writers, bool writer)
{
    if (writer) {
        CHECK_EQ(atomic_load(readers), 0);
        atomic_fetch_sub(writers, 1);
        edo_rwlock_wrunlock(l);
    } else {
        CHECK_EQ(atomic_load(writers), 0);
        atomic_fetch_sub(readers, 1);
        edo_rwlock_rdunlock(l);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Mutex                                                                                    */

typedef struct excl {
    edo_mutex *m;
    atomic_int inside;
    long counter; /* plain: the mutex is what protects it (TSan checks) */
    int iters;
    atomic_long entries; /* times the lock was held, for a watcher outside it */
    atomic_int done;     /* lockers that finished */
} excl;

typedef struct excl_arg {
    excl *x;
    int id;
} excl_arg;

static void excl_body(excl *x, test_rng *r, bool task)
{
    CHECK_EQ(atomic_fetch_add(&x->inside, 1), 0);
    long c = x->counter;
    uint64_t what = test_rng_next(r) % 8;
    if (what == 0 && task)
        CHECK_OK(edo_yield());
    else if (what == 1 && !task)
        sched_yield();
    else if (what < 4)
        test_spin(r, 200);
    x->counter = c + 1;
    atomic_fetch_add_explicit(&x->entries, 1, memory_order_relaxed);
    CHECK_EQ(atomic_fetch_sub(&x->inside, 1), 1);
}

/* A locker's iterations, as a task (which also yields between them, at random) or as a
 * thread outside the runtime. */
static void excl_loop(excl_arg *a, bool task)
{
    test_rng r = test_rng_new((task ? 1000 : 2000) + (uint64_t)a->id);
    for (int i = 0; i < a->x->iters; i++) {
        CHECK_OK(edo_mutex_lock(a->x->m));
        excl_body(a->x, &r, task);
        edo_mutex_unlock(a->x->m);
        if (task && test_rng_next(&r) % 4 == 0)
            CHECK_OK(edo_yield());
    }
    atomic_fetch_add(&a->x->done, 1);
}

static void *excl_task(void *arg)
{
    excl_loop(arg, true);
    return NULL;
}

static void *excl_thread(void *arg)
{
    excl_loop(arg, false);
    return NULL;
}

/* Waits until `lockers` have finished with x. Liveness, not speed: it fails only when
 * nobody has held the lock for 30 s (a lost hand-off). A holder whose thread the machine
 * preempts keeps every other locker waiting, so on a loaded machine the run may be long. */
static void wait_lockers(excl *x, int lockers)
{
    long seen = -1;
    int64_t since = test_clock_ms();
    while (atomic_load(&x->done) < lockers) {
        long now = atomic_load_explicit(&x->entries, memory_order_relaxed);
        if (now != seen) {
            seen = now;
            since = test_clock_ms();
        }
        CHECK_MSG(test_clock_ms() - since < 30000,
                  "nobody got the mutex for 30 s (%ld times in all)", now);
        CHECK_OK(edo_sleep(20));
    }
}

#define EXCL_TASKS 8

static void *mutex_exclusion_root(void *unused)
{
    excl x = { .iters = TEST_SCALE(20000, 5000, 2000) };
    CHECK_OK(edo_mutex_new(&x.m));
    excl_arg args[EXCL_TASKS];
    edo_task *ts[EXCL_TASKS];
    for (int i = 0; i < EXCL_TASKS; i++) {
        args[i] = (excl_arg){ &x, i };
        ts[i] = spawn(excl_task, &args[i]);
    }
    wait_lockers(&x, EXCL_TASKS);
    for (int i = 0; i < EXCL_TASKS; i++)
        join(ts[i]);
    CHECK_OK(edo_mutex_lock(x.m));
    CHECK_EQ(x.counter, (long)EXCL_TASKS * x.iters);
    edo_mutex_unlock(x.m);
    edo_mutex_free(x.m);
    return NULL;
}

static const test_root case_mutex_exclusion = { .fn = mutex_exclusion_root };

typedef struct fifo {
    edo_mutex *m;
    order_log log;
    atomic_bool release; /* the first locker holds the mutex until this is set */
} fifo;

typedef struct fifo_arg {
    fifo *f;
    int id;
} fifo_arg;

static void *fifo_locker(void *arg)
{
    fifo_arg *a = arg;
    int rc = edo_mutex_lock(a->f->m);
    if (rc < 0)
        return VAL(rc);
    log_add(&a->f->log, a->id);
    edo_mutex_unlock(a->f->m);
    return NULL;
}

static void *holder_until_released(void *arg)
{
    fifo *f = arg;
    CHECK_OK(edo_mutex_lock(f->m));
    while (!atomic_load(&f->release))
        edo_sleep(1);
    edo_mutex_unlock(f->m);
    return NULL;
}

#define FIFO_N 12

static void *mutex_fifo_root(void *unused)
{
    fifo f = { 0 };
    CHECK_OK(edo_mutex_new(&f.m));

    /* Waiters get the mutex in the order they queued; the unlocker that locks again at
     * once queues behind all of them. */
    CHECK_OK(edo_mutex_lock(f.m));
    fifo_arg args[FIFO_N];
    edo_task *ts[FIFO_N];
    for (int i = 0; i < FIFO_N; i++) {
        args[i] = (fifo_arg){ &f, i };
        ts[i] = spawn_parked(fifo_locker, &args[i]);
    }
    CHECK_ERR(edo_mutex_try_lock(f.m), -EBUSY);
    edo_mutex_unlock(f.m);
    CHECK_OK(edo_mutex_lock(f.m));
    CHECK_EQ(atomic_load(&f.log.n), FIFO_N);
    for (int i = 0; i < FIFO_N; i++)
        CHECK_EQ(f.log.who[i], i);
    edo_mutex_unlock(f.m);
    for (int i = 0; i < FIFO_N; i++)
        CHECK_EQ(join(ts[i]), 0);

    /* A hand-off leaves the mutex locked, for the waiter, even before it runs. */
    CHECK_OK(edo_mutex_lock(f.m));
    edo_task *h = spawn_parked(holder_until_released, &f);
    edo_mutex_unlock(f.m);
    CHECK_ERR(edo_mutex_try_lock(f.m), -EBUSY);
    edo_sleep(5);
    CHECK_ERR(edo_mutex_try_lock(f.m), -EBUSY);
    atomic_store(&f.release, true);
    join(h);
    check_mutex_free(f.m);
    edo_mutex_free(f.m);
    return NULL;
}

static const test_root case_mutex_fifo = { .fn = mutex_fifo_root };

static void *try_lock_thread(void *arg)
{
    return VAL(edo_mutex_try_lock(arg));
}

static void *mutex_try_lock_root(void *unused)
{
    edo_mutex *m;
    CHECK_OK(edo_mutex_new(&m));
    CHECK_OK(edo_mutex_try_lock(m));
    CHECK_ERR(edo_mutex_try_lock(m), -EBUSY);
    /* Not recursive, and a thread outside the runtime sees it held too. */
    pthread_t th;
    void *res;
    CHECK_EQ(pthread_create(&th, NULL, try_lock_thread, m), 0);
    CHECK_EQ(pthread_join(th, &res), 0);
    CHECK_EQ(INT(res), -EBUSY);
    edo_mutex_unlock(m);
    /* Unlocked by whoever: that thread locks it now, and this task unlocks it. */
    CHECK_EQ(pthread_create(&th, NULL, try_lock_thread, m), 0);
    CHECK_EQ(pthread_join(th, &res), 0);
    CHECK_EQ(INT(res), 0);
    CHECK_ERR(edo_mutex_try_lock(m), -EBUSY);
    edo_mutex_unlock(m);
    check_mutex_free(m);
    edo_mutex_free(m);
    CHECK_ERR(edo_mutex_new(NULL), -EINVAL);
    return NULL;
}

static const test_root case_mutex_try_lock = { .fn = mutex_try_lock_root };

typedef struct timed_arg {
    edo_mutex *m;
    order_log *log;
    int id;
    int64_t ms; /* timeout of the lock; < 0: none */
} timed_arg;

/* Locks with a timeout scope; logs and unlocks when it gets the mutex. Returns the
 * lock's result. */
static void *timed_locker(void *arg)
{
    timed_arg *a = arg;
    int64_t scope = a->ms >= 0 ? edo_timeout_begin(a->ms) : edo_deadline(); /* no change */
    int rc = edo_mutex_lock(a->m);
    edo_deadline_end(scope);
    if (rc == 0) {
        if (a->log)
            log_add(a->log, a->id);
        edo_mutex_unlock(a->m);
    }
    return VAL(rc);
}

static void *mutex_timeout_root(void *unused)
{
    edo_mutex *m;
    CHECK_OK(edo_mutex_new(&m));
    order_log log = { 0 };

    /* Alone in the queue: times out, and leaves nothing behind. */
    CHECK_OK(edo_mutex_lock(m));
    timed_arg a = { m, &log, 0, 30 };
    int64_t t0 = edo_now();
    CHECK_ERR(join(spawn(timed_locker, &a)), -ETIMEDOUT);
    CHECK_GE(edo_now() - t0, 25);
    edo_mutex_unlock(m);
    check_mutex_free(m);
    /* Not recursive: locking it again waits, here until the scope's deadline. */
    CHECK_OK(edo_mutex_lock(m));
    int64_t scope = edo_timeout_begin(20);
    CHECK_ERR(edo_mutex_lock(m), -ETIMEDOUT);
    edo_deadline_end(scope);
    edo_mutex_unlock(m);
    check_mutex_free(m);

    /* The first waiter and a middle one time out: the others keep their order. */
    CHECK_OK(edo_mutex_lock(m));
    timed_arg w[5] = {
        { m, &log, 0, FIRST_TIMEOUT },
        { m, &log, 1, -1 },
        { m, &log, 2, 2 * FIRST_TIMEOUT },
        { m, &log, 3, -1 },
        { m, &log, 4, -1 },
    };
    edo_task *ts[5];
    for (;; w[0].ms *= 4, w[2].ms *= 4) {
        CHECK_LE(w[0].ms, LAST_TIMEOUT);
        atomic_store(&log.n, 0);
        for (int i = 0; i < 5; i++)
            ts[i] = spawn_queued(timed_locker, &w[i]);
        if (parked_on_lock(ts[0]) && parked_on_lock(ts[2]))
            break; /* each timed waiter had others queued behind it */
        edo_mutex_unlock(m);
        for (int i = 0; i < 5; i++)
            join(ts[i]);
        CHECK_OK(edo_mutex_lock(m));
    }
    CHECK_ERR(join(ts[0]), -ETIMEDOUT);
    CHECK_ERR(join(ts[2]), -ETIMEDOUT);
    CHECK_EQ(atomic_load(&log.n), 0);
    edo_mutex_unlock(m);
    CHECK_EQ(join(ts[1]), 0);
    CHECK_EQ(join(ts[3]), 0);
    CHECK_EQ(join(ts[4]), 0);
    CHECK_EQ(atomic_load(&log.n), 3);
    CHECK_EQ(log.who[0], 1);
    CHECK_EQ(log.who[1], 3);
    CHECK_EQ(log.who[2], 4);
    check_mutex_free(m);
    edo_mutex_free(m);
    return NULL;
}

static const test_root case_mutex_timeout = { .fn = mutex_timeout_root };

/* A waiter whose deadline comes at about the moment the holder unlocks: either it got the
 * mutex (0: it holds it, even though its deadline passed) or not (-ETIMEDOUT: it holds
 * nothing and left nothing behind). */
typedef struct race {
    edo_mutex *m;
    int64_t deadline;
    atomic_int held;
} race;

static void *racing_locker(void *arg)
{
    race *r = arg;
    int64_t scope = edo_deadline_begin(r->deadline);
    int rc = edo_mutex_lock(r->m);
    edo_deadline_end(scope);
    if (rc == 0) {
        CHECK_EQ(atomic_fetch_add(&r->held, 1), 0);
        CHECK_ERR(edo_mutex_try_lock(r->m), -EBUSY);
        atomic_fetch_sub(&r->held, 1);
        edo_mutex_unlock(r->m);
    } else {
        CHECK_ERR(rc, -ETIMEDOUT);
    }
    return VAL(rc);
}

static void *mutex_timeout_race_root(void *unused)
{
    race r = { 0 };
    CHECK_OK(edo_mutex_new(&r.m));
    test_rng rng = test_rng_new(7);
    int rounds = TEST_SCALE(400, 300, 200), got = 0, timed_out = 0;
    for (int i = 0; i < rounds; i++) {
        CHECK_OK(edo_mutex_lock(r.m));
        r.deadline = edo_now() + 2;
        edo_task *t = spawn(racing_locker, &r);
        /* Unlock around the deadline: a little before, at, or after it. */
        edo_sleep_until(r.deadline - 1 + (int64_t)test_rng_range(&rng, 0, 1));
        test_spin(&rng, 20000);
        edo_mutex_unlock(r.m);
        if (join(t) == 0)
            got++;
        else
            timed_out++;
        check_mutex_free(r.m);
    }
    printf("  timeout racing unlock: %d got the mutex, %d timed out\n", got, timed_out);
    edo_mutex_free(r.m);
    return NULL;
}

static const test_root case_mutex_timeout_race = { .fn = mutex_timeout_race_root };

static void *mutex_abort_root(void *unused)
{
    edo_mutex *m;
    CHECK_OK(edo_mutex_new(&m));
    order_log log = { 0 };

    /* The aborted waiter's entry goes; the next waiter gets the mutex, not the dead one. */
    CHECK_OK(edo_mutex_lock(m));
    timed_arg w[3] = { { m, &log, 0, -1 }, { m, &log, 1, -1 }, { m, &log, 2, -1 } };
    edo_task *ts[3];
    for (int i = 0; i < 3; i++)
        ts[i] = spawn_parked(timed_locker, &w[i]);
    edo_abort(ts[0]);
    CHECK_ERR(join_aborted(ts[0]), -ECANCELED);
    edo_abort(ts[2]);
    CHECK_ERR(join_aborted(ts[2]), -ECANCELED);
    edo_mutex_unlock(m);
    CHECK_EQ(join(ts[1]), 0);
    CHECK_EQ(atomic_load(&log.n), 1);
    CHECK_EQ(log.who[0], 1);
    check_mutex_free(m);

    /* Aborts racing the unlock: the first waiter got the mutex (and gave it on) or was
     * cancelled, the second always gets it. */
    test_rng rng = test_rng_new(11);
    int rounds = TEST_SCALE(500, 300, 200);
    for (int i = 0; i < rounds; i++) {
        atomic_store(&log.n, 0);
        CHECK_OK(edo_mutex_lock(m));
        edo_task *a = spawn_parked(timed_locker, &w[0]);
        edo_task *b = spawn_parked(timed_locker, &w[1]);
        if (test_rng_next(&rng) & 1) {
            edo_abort(a);
            test_spin(&rng, 5000);
            edo_mutex_unlock(m);
        } else {
            edo_mutex_unlock(m);
            test_spin(&rng, 5000);
            edo_abort(a);
        }
        void *res;
        int jrc = bounded_join(a, &res);
        CHECK(jrc == 0 || jrc == -EDO_EABORTED);
        CHECK(INT(res) == 0 || INT(res) == -ECANCELED);
        CHECK_EQ(join(b), 0);
        int n = atomic_load(&log.n);
        CHECK_EQ(n, INT(res) == 0 ? 2 : 1);
        CHECK_EQ(log.who[n - 1], 1);
        check_mutex_free(m);
    }
    edo_mutex_free(m);
    return NULL;
}

static const test_root case_mutex_abort = { .fn = mutex_abort_root };

#define MIX_TASKS 4
#define MIX_THREADS 3

static void *mutex_threads_root(void *unused)
{
    excl x = { .iters = TEST_SCALE(20000, 5000, 2000) };
    CHECK_OK(edo_mutex_new(&x.m));
    excl_arg targs[MIX_THREADS];
    pthread_t ths[MIX_THREADS];
    for (int i = 0; i < MIX_THREADS; i++) {
        targs[i] = (excl_arg){ &x, i };
        CHECK_EQ(pthread_create(&ths[i], NULL, excl_thread, &targs[i]), 0);
    }
    excl_arg args[MIX_TASKS];
    edo_task *ts[MIX_TASKS];
    for (int i = 0; i < MIX_TASKS; i++) {
        args[i] = (excl_arg){ &x, i };
        ts[i] = spawn(excl_task, &args[i]);
    }
    wait_lockers(&x, MIX_TASKS + MIX_THREADS);
    for (int i = 0; i < MIX_TASKS; i++)
        join(ts[i]);
    for (int i = 0; i < MIX_THREADS; i++)
        CHECK_EQ(pthread_join(ths[i], NULL), 0);
    CHECK_OK(edo_mutex_lock(x.m));
    CHECK_EQ(x.counter, (long)(MIX_TASKS + MIX_THREADS) * x.iters);
    edo_mutex_unlock(x.m);
    edo_mutex_free(x.m);
    return NULL;
}

static const test_root case_mutex_threads = { .fn = mutex_threads_root };

/* ---------------------------------------------------------------------------------------- */
/* Read-write lock                                                                          */

typedef struct rw {
    edo_rwlock *l;
    atomic_int readers, writers;
    order_log log;
    int nreaders;        /* rw_shared: readers that must hold the lock at once */
    atomic_bool release; /* rw_shared: they may go */
    atomic_int entered;  /* rw_order: readers that got in so far */
} rw;

static void *shared_reader(void *arg)
{
    rw *s = arg;
    CHECK_OK(edo_rwlock_rdlock(s->l));
    atomic_fetch_add(&s->readers, 1);
    /* Held until the root has seen every reader inside at once. */
    WAIT_UNTIL(atomic_load(&s->release), 10000);
    CHECK_EQ(atomic_load(&s->writers), 0);
    edo_rwlock_rdunlock(s->l);
    return NULL;
}

static void *rw_shared_root(void *unused)
{
    rw s = { .nreaders = 6 };
    CHECK_OK(edo_rwlock_new(&s.l));
    edo_task *ts[6];
    for (int i = 0; i < s.nreaders; i++)
        ts[i] = spawn(shared_reader, &s);
    WAIT_UNTIL(atomic_load(&s.readers) == s.nreaders, 10000);
    CHECK_ERR(edo_rwlock_try_wrlock(s.l), -EBUSY);
    CHECK_OK(edo_rwlock_try_rdlock(s.l));
    edo_rwlock_rdunlock(s.l);
    atomic_store(&s.release, true);
    for (int i = 0; i < s.nreaders; i++)
        join(ts[i]);
    CHECK_OK(edo_rwlock_try_wrlock(s.l));
    CHECK_ERR(edo_rwlock_try_rdlock(s.l), -EBUSY);
    CHECK_ERR(edo_rwlock_try_wrlock(s.l), -EBUSY);
    edo_rwlock_wrunlock(s.l);
    CHECK_OK(edo_rwlock_try_rdlock(s.l));
    edo_rwlock_rdunlock(s.l);
    edo_rwlock_free(s.l);
    return NULL;
}

static const test_root case_rw_shared = { .fn = rw_shared_root };

typedef struct rw_arg {
    rw *s;
    int id;
    bool writer;
    int iters;
    int64_t hold_ms; /* rw_order: how long to hold it */
    int64_t ms;      /* rw_order: timeout, < 0 none */
    int together;    /* rw_order: hold it until this many readers have got in */
} rw_arg;

static void *rw_mixed(void *arg)
{
    rw_arg *a = arg;
    rw *s = a->s;
    test_rng r = test_rng_new(3000 + (uint64_t)a->id);
    for (int i = 0; i < a->iters; i++) {
        bool writer = test_rng_next(&r) % 4 == 0;
        CHECK_OK(writer ? edo_rwlock_wrlock(s->l) : edo_rwlock_rdlock(s->l));
        rw_count_in(&s->readers, &s->writers, writer);
        if (test_rng_next(&r) % 4 == 0)
            CHECK_OK(edo_yield());
        else
            test_spin(&r, 300);
        rw_count_out(s->l, &s->readers, &s->writers, writer);
    }
    return NULL;
}

static void *rw_exclusive_root(void *unused)
{
    rw s = { 0 };
    CHECK_OK(edo_rwlock_new(&s.l));
    rw_arg args[8];
    edo_task *ts[8];
    for (int i = 0; i < 8; i++) {
        args[i] = (rw_arg){ .s = &s, .id = i, .iters = TEST_SCALE(10000, 3000, 1000) };
        ts[i] = spawn(rw_mixed, &args[i]);
    }
    for (int i = 0; i < 8; i++)
        join(ts[i]);
    check_rwlock_free(s.l);
    edo_rwlock_free(s.l);
    return NULL;
}

static const test_root case_rw_exclusive = { .fn = rw_exclusive_root };

/* Takes the lock as a reader or a writer (timeout a->ms), logs its id with the number of
 * readers and writers inside (id * 100 + readers * 10 + writers, itself included), holds
 * it hold_ms and until `together` readers have got in, and releases it. */
static void *rw_ordered(void *arg)
{
    rw_arg *a = arg;
    rw *s = a->s;
    int64_t scope = a->ms >= 0 ? edo_timeout_begin(a->ms) : edo_deadline();
    int rc = a->writer ? edo_rwlock_wrlock(s->l) : edo_rwlock_rdlock(s->l);
    edo_deadline_end(scope);
    if (rc < 0)
        return VAL(rc);
    int rd = atomic_fetch_add(&s->readers, a->writer ? 0 : 1) + !a->writer;
    int wr = atomic_fetch_add(&s->writers, a->writer ? 1 : 0) + a->writer;
    log_add(&s->log, a->id * 100 + rd * 10 + wr);
    atomic_fetch_add(&s->entered, !a->writer);
    edo_sleep(a->hold_ms);
    WAIT_UNTIL(atomic_load(&s->entered) >= a->together, 10000);
    atomic_fetch_sub(&s->readers, a->writer ? 0 : 1);
    atomic_fetch_sub(&s->writers, a->writer ? 1 : 0);
    if (a->writer)
        edo_rwlock_wrunlock(s->l);
    else
        edo_rwlock_rdunlock(s->l);
    return NULL;
}

static void *rw_order_root(void *unused)
{
    rw s = { 0 };
    CHECK_OK(edo_rwlock_new(&s.l));
    /* The root reads; then queue: writer 1, readers 2 and 3, writer 4, reader 5. */
    CHECK_OK(edo_rwlock_rdlock(s.l));
    rw_arg args[6] = {
        { 0 },
        { &s, 1, true, 0, 10, -1, 0 },
        { &s, 2, false, 0, 10, -1, 2 },
        { &s, 3, false, 0, 10, -1, 2 },
        { &s, 4, true, 0, 10, -1, 0 },
        { &s, 5, false, 0, 10, -1, 0 },
    };
    edo_task *ts[6];
    ts[1] = spawn_parked(rw_ordered, &args[1]);
    /* The waiting writer holds back readers that come after it, though a reader holds
     * the lock. */
    CHECK_ERR(edo_rwlock_try_rdlock(s.l), -EBUSY);
    for (int i = 2; i <= 5; i++)
        ts[i] = spawn_parked(rw_ordered, &args[i]);
    edo_rwlock_rdunlock(s.l);
    for (int i = 1; i <= 5; i++)
        CHECK_EQ(join(ts[i]), 0);
    /* Writer 1 alone, readers 2 and 3 together (the second of them in sees 2 readers; they
     * leave only once both are in), writer 4 alone, reader 5. */
    CHECK_EQ(atomic_load(&s.log.n), 5);
    CHECK_EQ(s.log.who[0], 101);
    int a = s.log.who[1], b = s.log.who[2];
    if (a > b) {
        int t = a;
        a = b;
        b = t;
    }
    CHECK_MSG((a == 210 && b == 320) || (a == 220 && b == 310), "readers logged %d, %d", a, b);
    CHECK_EQ(s.log.who[3], 401);
    CHECK_EQ(s.log.who[4], 510);

    /* A writer that times out in front of readers lets them in with the reader that holds
     * the lock. */
    CHECK_OK(edo_rwlock_rdlock(s.l));
    rw_arg w = { &s, 1, true, 0, 0, FIRST_TIMEOUT, 0 }, r = { &s, 2, false, 0, 0, -1, 0 };
    edo_task *tw, *tr;
    for (;; w.ms *= 4) {
        CHECK_LE(w.ms, LAST_TIMEOUT);
        atomic_store(&s.log.n, 0);
        tw = spawn_queued(rw_ordered, &w);
        tr = spawn_queued(rw_ordered, &r);
        if (parked_on_lock(tw))
            break; /* the reader queued behind it */
        CHECK_ERR(join(tw), -ETIMEDOUT);
        CHECK_EQ(join(tr), 0);
    }
    CHECK_ERR(join(tw), -ETIMEDOUT);
    CHECK_EQ(join(tr), 0);
    CHECK_EQ(atomic_load(&s.log.n), 1);
    CHECK_EQ(s.log.who[0], 210);
    edo_rwlock_rdunlock(s.l);
    check_rwlock_free(s.l);
    edo_rwlock_free(s.l);
    return NULL;
}

static const test_root case_rw_order = { .fn = rw_order_root };

/* ---------------------------------------------------------------------------------------- */
/* Semaphore                                                                                */

typedef struct sem_arg {
    edo_sem *s;
    uint64_t n;
    int64_t ms; /* timeout, < 0: none */
    order_log *log;
    int id;
    bool keep; /* keep the permits (the root gives them back) */
} sem_arg;

static void *sem_taker(void *arg)
{
    sem_arg *a = arg;
    int64_t scope = a->ms >= 0 ? edo_timeout_begin(a->ms) : edo_deadline();
    int rc = edo_sem_acquire(a->s, a->n);
    edo_deadline_end(scope);
    if (rc < 0)
        return VAL(rc);
    if (a->log)
        log_add(a->log, a->id);
    if (!a->keep)
        edo_sem_release(a->s, a->n);
    return NULL;
}

static void *sem_fair_root(void *unused)
{
    edo_sem *s;
    order_log log = { 0 };
    CHECK_OK(edo_sem_new(&s, 2));
    CHECK_EQ(edo_sem_available(s), 2);
    CHECK_OK(edo_sem_acquire(s, 2));
    CHECK_EQ(edo_sem_available(s), 0);

    /* The big request first: the small one behind it waits though a permit is free, and
     * a newcomer cannot take that permit either. */
    sem_arg big = { s, 5, -1, &log, 1, true }, small = { s, 1, -1, &log, 2, true };
    edo_task *tb = spawn_parked(sem_taker, &big);
    edo_task *ts = spawn_parked(sem_taker, &small);
    edo_sem_release(s, 1);
    CHECK_EQ(edo_sem_available(s), 1);
    check_still_parked(ts);
    CHECK_ERR(edo_sem_try_acquire(s, 1), -EAGAIN);
    edo_sem_release(s, 3);
    check_still_parked(tb);
    CHECK_EQ(edo_sem_available(s), 4);
    /* One more: the big one gets its 5 and the small one still waits. */
    edo_sem_release(s, 1);
    CHECK_EQ(join(tb), 0);
    CHECK_EQ(edo_sem_available(s), 0);
    check_still_parked(ts);
    edo_sem_release(s, 5);
    CHECK_EQ(join(ts), 0);
    CHECK_EQ(edo_sem_available(s), 4);
    CHECK_EQ(atomic_load(&log.n), 2);
    CHECK_EQ(log.who[0], 1);
    CHECK_EQ(log.who[1], 2);
    CHECK_OK(edo_sem_try_acquire(s, 4));
    CHECK_ERR(edo_sem_try_acquire(s, 1), -EAGAIN);

    /* The big request gives up: the permits free now serve the ones behind it, in
     * order, as far as they go. */
    sem_arg big2 = { s, 5, FIRST_TIMEOUT, &log, 1, true };
    sem_arg smalls[3] = { { s, 1, -1, &log, 2, true },
                          { s, 1, -1, &log, 3, true },
                          { s, 1, -1, &log, 4, true } };
    edo_task *tss[3];
    for (;; big2.ms *= 4) {
        CHECK_LE(big2.ms, LAST_TIMEOUT);
        atomic_store(&log.n, 0);
        edo_sem_release(s, 2);
        tb = spawn_queued(sem_taker, &big2);
        for (int i = 0; i < 3; i++)
            tss[i] = spawn_queued(sem_taker, &smalls[i]);
        if (parked_on_lock(tb))
            break; /* all three queued behind it */
        CHECK_ERR(join(tb), -ETIMEDOUT);
        edo_sem_release(s, 1);
        for (int i = 0; i < 3; i++)
            CHECK_EQ(join(tss[i]), 0);
        CHECK_EQ(edo_sem_available(s), 0);
    }
    CHECK_ERR(join(tb), -ETIMEDOUT);
    CHECK_EQ(join(tss[0]), 0);
    CHECK_EQ(join(tss[1]), 0);
    check_still_parked(tss[2]);
    CHECK_EQ(edo_sem_available(s), 0);
    edo_sem_release(s, 1);
    CHECK_EQ(join(tss[2]), 0);
    CHECK_EQ(atomic_load(&log.n), 3);
    /* 2 and 3 were served together and may have logged in either order. */
    CHECK_EQ(log.who[0] + log.who[1], 2 + 3);
    CHECK_EQ(log.who[2], 4);
    CHECK_EQ(edo_sem_available(s), 0);

    /* An abort works the same way. */
    sem_arg big3 = { s, 2, -1, NULL, 0, false }, one = { s, 1, -1, NULL, 0, true };
    tb = spawn_parked(sem_taker, &big3);
    ts = spawn_parked(sem_taker, &one);
    edo_sem_release(s, 1);
    check_still_parked(ts);
    edo_abort(tb);
    CHECK_ERR(join_aborted(tb), -ECANCELED);
    CHECK_EQ(join(ts), 0);
    CHECK_EQ(edo_sem_available(s), 0);
    edo_sem_free(s);
    return NULL;
}

static const test_root case_sem_fair = { .fn = sem_fair_root };

static void *sem_close_root(void *unused)
{
    edo_sem *s;
    CHECK_ERR(edo_sem_new(&s, EDO_SEM_MAX + 1), -EINVAL);
    CHECK_OK(edo_sem_new(&s, EDO_SEM_MAX));
    CHECK_EQ(edo_sem_available(s), EDO_SEM_MAX);
    CHECK_OK(edo_sem_acquire(s, EDO_SEM_MAX));
    edo_sem_release(s, EDO_SEM_MAX);
    edo_sem_free(s);

    CHECK_OK(edo_sem_new(&s, 1));
    CHECK_ERR(edo_sem_acquire(s, 0), -EINVAL);
    CHECK_ERR(edo_sem_acquire(s, EDO_SEM_MAX + 1), -EINVAL);
    CHECK_ERR(edo_sem_try_acquire(s, 0), -EINVAL);
    sem_arg two = { s, 2, -1, NULL, 0, false }, one = { s, 1, -1, NULL, 0, false };
    edo_task *a = spawn_parked(sem_taker, &two);
    edo_task *b = spawn_parked(sem_taker, &one);
    edo_sem_close(s);
    CHECK_ERR(join(a), -EDO_ECLOSED);
    CHECK_ERR(join(b), -EDO_ECLOSED);
    /* Closed: acquires fail even with permits free; releases still count. */
    CHECK_EQ(edo_sem_available(s), 1);
    CHECK_ERR(edo_sem_acquire(s, 1), -EDO_ECLOSED);
    CHECK_ERR(edo_sem_try_acquire(s, 1), -EDO_ECLOSED);
    edo_sem_release(s, 2);
    CHECK_EQ(edo_sem_available(s), 3);
    edo_sem_close(s);
    CHECK_EQ(edo_sem_available(s), 3);
    edo_sem_free(s);
    return NULL;
}

static const test_root case_sem_close = { .fn = sem_close_root };

/* ---------------------------------------------------------------------------------------- */
/* Barrier                                                                                  */

#define BAR_TASKS 6

typedef struct bar {
    edo_barrier *b;
    int rounds;
    atomic_int *arrived; /* per round */
    atomic_int *leaders; /* per round */
} bar;

static void *bar_task(void *arg)
{
    bar *s = arg;
    for (int r = 0; r < s->rounds; r++) {
        atomic_fetch_add(&s->arrived[r], 1);
        int rc = edo_barrier_wait(s->b);
        CHECK(rc == 0 || rc == 1);
        /* Nobody leaves a round before everybody has come. */
        CHECK_EQ(atomic_load(&s->arrived[r]), BAR_TASKS);
        if (rc == 1)
            atomic_fetch_add(&s->leaders[r], 1);
    }
    return NULL;
}

static void *bar_rounds_root(void *unused)
{
    bar s = { .rounds = TEST_SCALE(3000, 2000, 1000) };
    s.arrived = calloc((size_t)s.rounds, sizeof *s.arrived);
    s.leaders = calloc((size_t)s.rounds, sizeof *s.leaders);
    CHECK(s.arrived && s.leaders);
    CHECK_OK(edo_barrier_new(&s.b, BAR_TASKS));
    edo_task *ts[BAR_TASKS];
    for (int i = 0; i < BAR_TASKS; i++)
        ts[i] = spawn(bar_task, &s);
    for (int i = 0; i < BAR_TASKS; i++)
        join(ts[i]);
    for (int r = 0; r < s.rounds; r++)
        CHECK_MSG(atomic_load(&s.leaders[r]) == 1, "round %d had %d leaders", r,
                  atomic_load(&s.leaders[r]));
    edo_barrier_free(s.b);
    free(s.arrived);
    free(s.leaders);

    /* A barrier of one: every call leads its own round. */
    edo_barrier *one;
    CHECK_ERR(edo_barrier_new(&one, 0), -EINVAL);
    CHECK_OK(edo_barrier_new(&one, 1));
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(edo_barrier_wait(one), 1);
    edo_barrier_free(one);
    return NULL;
}

static const test_root case_bar_rounds = { .fn = bar_rounds_root };

typedef struct bar_arg {
    edo_barrier *b;
    int64_t ms; /* timeout, < 0: none */
} bar_arg;

static void *bar_waiter(void *arg)
{
    bar_arg *a = arg;
    int64_t scope = a->ms >= 0 ? edo_timeout_begin(a->ms) : edo_deadline();
    int rc = edo_barrier_wait(a->b);
    edo_deadline_end(scope);
    return VAL(rc);
}

static void *bar_leave_root(void *unused)
{
    edo_barrier *b;
    CHECK_OK(edo_barrier_new(&b, 3));
    bar_arg with_timeout = { b, FIRST_TIMEOUT }, plain = { b, -1 };

    /* One times out, one is aborted: neither counts, so two more must come. */
    edo_task *t1 = spawn_queued(bar_waiter, &with_timeout);
    edo_task *t2 = spawn_parked(bar_waiter, &plain);
    CHECK_ERR(join(t1), -ETIMEDOUT);
    edo_task *t3 = spawn_parked(bar_waiter, &plain);
    edo_abort(t2);
    CHECK_ERR(join_aborted(t2), -ECANCELED);
    edo_task *t4 = spawn_parked(bar_waiter, &plain);
    check_still_parked(t3);
    int rc = edo_barrier_wait(b); /* the third: leads */
    CHECK_EQ(rc, 1);
    CHECK_EQ(join(t3), 0);
    CHECK_EQ(join(t4), 0);

    /* The next round starts empty. */
    t1 = spawn_parked(bar_waiter, &plain);
    t2 = spawn_parked(bar_waiter, &plain);
    CHECK_EQ(edo_barrier_wait(b), 1);
    CHECK_EQ(join(t1), 0);
    CHECK_EQ(join(t2), 0);
    edo_barrier_free(b);
    return NULL;
}

static const test_root case_bar_leave = { .fn = bar_leave_root };

/* ---------------------------------------------------------------------------------------- */
/* Threads outside the runtime                                                              */

typedef struct foreign {
    edo_sem *s;
    edo_rwlock *l;
    edo_barrier *b;
    atomic_int step;
    int rounds;
    atomic_int in_write;
} foreign;

/* f->rounds rounds of the barrier; returns how many this caller led. */
static int foreign_bar_rounds(foreign *f)
{
    int leads = 0;
    for (int i = 0; i < f->rounds; i++) {
        int rc = edo_barrier_wait(f->b);
        CHECK(rc == 0 || rc == 1);
        leads += rc;
    }
    return leads;
}

static void *foreign_thread(void *arg)
{
    foreign *f = arg;
    /* Waits on the semaphore until the task releases. */
    CHECK_OK(edo_sem_acquire(f->s, 3));
    atomic_store(&f->step, 1);
    /* The read-write lock: this thread writes while the task reads, taking turns. */
    for (int i = 0; i < f->rounds; i++) {
        CHECK_OK(edo_rwlock_wrlock(f->l));
        CHECK_EQ(atomic_fetch_add(&f->in_write, 1), 0);
        atomic_fetch_sub(&f->in_write, 1);
        edo_rwlock_wrunlock(f->l);
    }
    /* Rounds of a barrier with tasks. */
    return VAL(foreign_bar_rounds(f));
}

static void *foreign_bar_task(void *arg)
{
    return VAL(foreign_bar_rounds(arg));
}

static void *foreign_root(void *unused)
{
    foreign f = { .rounds = TEST_SCALE(2000, 500, 200) };
    CHECK_OK(edo_sem_new(&f.s, 1));
    CHECK_OK(edo_rwlock_new(&f.l));
    CHECK_OK(edo_barrier_new(&f.b, 3));
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, foreign_thread, &f), 0);
    edo_sleep(20); /* most likely it waits by now; if not, it takes the permits at once */
    CHECK_EQ(atomic_load(&f.step), 0);
    edo_sem_release(f.s, 2);
    WAIT_UNTIL(atomic_load(&f.step) == 1, 10000);
    CHECK_EQ(edo_sem_available(f.s), 0);
    edo_task *bt = spawn(foreign_bar_task, &f);
    for (int i = 0; i < f.rounds; i++) {
        CHECK_OK(edo_rwlock_rdlock(f.l));
        CHECK_EQ(atomic_load(&f.in_write), 0);
        edo_rwlock_rdunlock(f.l);
    }
    intptr_t leads = 0;
    for (int i = 0; i < f.rounds; i++)
        leads += CHECK_OK(edo_barrier_wait(f.b));
    leads += join(bt);
    void *res;
    CHECK_EQ(pthread_join(th, &res), 0); /* it has passed the last round with us */
    leads += INT(res);
    CHECK_EQ(leads, f.rounds);
    edo_sem_free(f.s);
    edo_rwlock_free(f.l);
    edo_barrier_free(f.b);
    return NULL;
}

static const test_root case_foreign = { .fn = foreign_root };

/* ---------------------------------------------------------------------------------------- */
/* Stress: timeouts and aborts racing unlocks and releases, threads outside the runtime too */

#define STRESS_TASKS 12
#define STRESS_THREADS 2
#define STRESS_PERMITS 5

typedef struct stress {
    edo_mutex *m;
    edo_sem *s;
    edo_rwlock *l;
    atomic_int holders;   /* of the mutex */
    atomic_long permits;  /* out of the semaphore */
    atomic_int readers;   /* of the rwlock */
    atomic_int writers;   /* of the rwlock */
    atomic_long acquired; /* successful locks of any kind */
    atomic_long gave_up;  /* -ETIMEDOUT or -ECANCELED */
    atomic_long by_threads;
    atomic_bool stop; /* the threads return */
    int iters;
} stress;

typedef struct stress_arg {
    stress *s;
    int id;
} stress_arg;

/* The critical section: a random short stay, maybe with a yield (which an aborted task
 * is refused: it fails at once, the lock still held). */
static void stress_hold(test_rng *r, bool task)
{
    switch (test_rng_next(r) % 4) {
    case 0:
        if (task)
            edo_yield();
        else
            sched_yield();
        break;
    case 1:
        test_spin(r, 2000);
        break;
    default:
        break;
    }
}

static void stress_gave_up(stress *s, int rc)
{
    CHECK_MSG(rc == -ETIMEDOUT || rc == -ECANCELED, "rc %d", rc);
    atomic_fetch_add(&s->gave_up, 1);
}

/* One random operation: a lock (or permits) taken, checked, held a moment and given
 * back, or given up. A task carries a deadline (of 0 to 2 ms) on fewer than half of
 * them; a thread knows none. */
static void stress_op(stress *s, test_rng *r, bool task)
{
    uint64_t dice = test_rng_next(r);
    bool timed = task && dice % 5 < 2;
    int64_t scope = timed ? edo_timeout_begin((int64_t)(dice >> 8) % 3) : 0;
    int rc;
    switch ((dice >> 4) % 4) {
    case 0:
    case 1:
        rc = edo_mutex_lock(s->m);
        if (timed)
            edo_deadline_end(scope);
        if (rc < 0) {
            stress_gave_up(s, rc);
            return;
        }
        CHECK_EQ(atomic_fetch_add(&s->holders, 1), 0);
        stress_hold(r, task);
        CHECK_EQ(atomic_fetch_sub(&s->holders, 1), 1);
        edo_mutex_unlock(s->m);
        break;
    case 2: {
        uint64_t n = test_rng_range(r, 1, STRESS_PERMITS);
        rc = edo_sem_acquire(s->s, n);
        if (timed)
            edo_deadline_end(scope);
        if (rc < 0) {
            stress_gave_up(s, rc);
            return;
        }
        CHECK_LE(atomic_fetch_add(&s->permits, (long)n) + (long)n, STRESS_PERMITS);
        stress_hold(r, task);
        atomic_fetch_sub(&s->permits, (long)n);
        edo_sem_release(s->s, n);
        break;
    }
    default: {
        bool writer = (dice >> 7) & 1;
        rc = writer ? edo_rwlock_wrlock(s->l) : edo_rwlock_rdlock(s->l);
        if (timed)
            edo_deadline_end(scope);
        if (rc < 0) {
            stress_gave_up(s, rc);
            return;
        }
        rw_count_in(&s->readers, &s->writers, writer);
        stress_hold(r, task);
        rw_count_out(s->l, &s->readers, &s->writers, writer);
        break;
    }
    }
    atomic_fetch_add(&s->acquired, 1);
}

static void *stress_task(void *arg)
{
    stress_arg *a = arg;
    test_rng r = test_rng_new(5000 + (uint64_t)a->id);
    for (int i = 0; i < a->s->iters; i++) {
        stress_op(a->s, &r, true);
        if (edo_aborted())
            return VAL(i); /* an aborted task ends (its calls would fail from now on) */
    }
    return VAL(a->s->iters);
}

static void *stress_thread(void *arg)
{
    stress_arg *a = arg;
    test_rng r = test_rng_new(6000 + (uint64_t)a->id);
    while (!atomic_load(&a->s->stop)) {
        stress_op(a->s, &r, false);
        atomic_fetch_add(&a->s->by_threads, 1);
    }
    return NULL;
}

static void *stress_root(void *unused)
{
    stress s = { .iters = TEST_SCALE(3000, 1500, 600) };
    CHECK_OK(edo_mutex_new(&s.m));
    CHECK_OK(edo_sem_new(&s.s, STRESS_PERMITS));
    CHECK_OK(edo_rwlock_new(&s.l));
    test_rng r = test_rng_new(99);
    stress_arg targs[STRESS_THREADS];
    pthread_t ths[STRESS_THREADS];
    for (int i = 0; i < STRESS_THREADS; i++) {
        targs[i] = (stress_arg){ &s, i };
        CHECK_EQ(pthread_create(&ths[i], NULL, stress_thread, &targs[i]), 0);
    }
    stress_arg args[STRESS_TASKS];
    edo_task *ts[STRESS_TASKS];
    int generations = TEST_SCALE(30, 20, 15), aborted = 0;
    for (int g = 0; g < generations; g++) {
        for (int i = 0; i < STRESS_TASKS; i++) {
            args[i] = (stress_arg){ &s, g * STRESS_TASKS + i };
            ts[i] = spawn(stress_task, &args[i]);
        }
        /* Abort some of them at random moments while they run. */
        for (int i = 0; i < STRESS_TASKS; i += 1 + (int)(test_rng_next(&r) % 3)) {
            edo_sleep((int64_t)test_rng_range(&r, 0, 3));
            test_spin(&r, 10000);
            edo_abort(ts[i]);
        }
        /* Every task finishes: a lost hand-off would leave one waiting for ever. */
        for (int i = 0; i < STRESS_TASKS; i++) {
            void *res;
            int rc = bounded_join(ts[i], &res);
            CHECK_MSG(rc == 0 || rc == -EDO_EABORTED, "join of stress task %d: %s", i,
                      edo_strerror(rc));
            aborted += rc == -ECANCELED;
        }
    }
    /* The threads may be blocked in a lock: they stop at their next turn. */
    atomic_store(&s.stop, true);
    for (int i = 0; i < STRESS_THREADS; i++)
        CHECK_EQ(pthread_join(ths[i], NULL), 0);
    /* Nothing is left held or queued. */
    CHECK_EQ(atomic_load(&s.holders), 0);
    CHECK_EQ(atomic_load(&s.permits), 0);
    check_mutex_free(s.m);
    CHECK_EQ(edo_sem_available(s.s), STRESS_PERMITS);
    check_rwlock_free(s.l);
    printf("  %ld acquired (%ld by threads), %ld gave up, %d tasks aborted\n",
           atomic_load(&s.acquired), atomic_load(&s.by_threads), atomic_load(&s.gave_up), aborted);
    CHECK_GT(atomic_load(&s.acquired), 0);
    edo_mutex_free(s.m);
    edo_sem_free(s.s);
    edo_rwlock_free(s.l);
    return NULL;
}

static const test_root case_stress = { .fn = stress_root };

static const test_case cases[] = {
    TEST_CASE(case_mutex_exclusion),
    TEST_CASE(case_mutex_fifo),
    TEST_CASE(case_mutex_try_lock),
    TEST_CASE(case_mutex_timeout),
    TEST_CASE(case_mutex_timeout_race),
    TEST_CASE(case_mutex_abort),
    TEST_CASE(case_mutex_threads),
    TEST_CASE(case_rw_shared),
    TEST_CASE(case_rw_exclusive),
    TEST_CASE(case_rw_order),
    TEST_CASE(case_sem_fair),
    TEST_CASE(case_sem_close),
    TEST_CASE(case_bar_rounds),
    TEST_CASE(case_bar_leave),
    TEST_CASE(case_foreign),
    TEST_CASE(case_stress),
};

TEST_MAIN(cases)
