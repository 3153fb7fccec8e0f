/*
 * The rules at the top of edo.h, checked across the API: a NULL handle is -EINVAL (or a
 * no-op for what frees or closes), each outcome has its own code with a true text, calls
 * that need a task say so, and what arrived in time wins over a deadline that passed
 * while the task waited for a worker.
 */
#include "harness.h"

#include <pthread.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */

static void *null_root(void *unused)
{
    char buf[8] = { 0 };
    size_t done = 7;
    edo_buf lent;
    struct iovec iov = { buf, sizeof buf };
    int64_t v64 = 0;
    uint64_t u64 = 0;

    /* Descriptors */
    CHECK_ERR(edo_io_set_timeout(NULL, 10, 10), -EINVAL);
    CHECK_EQ(edo_io_fd(NULL), -1);
    CHECK_ERR(edo_read(NULL, buf, sizeof buf), -EINVAL);
    CHECK_ERR(edo_read_lent(NULL, &lent), -EINVAL);
    CHECK_ERR(edo_read_exact(NULL, buf, sizeof buf, &done), -EINVAL);
    CHECK_EQ(done, 0);
    CHECK_ERR(edo_write(NULL, buf, sizeof buf), -EINVAL);
    done = 7;
    CHECK_ERR(edo_write_all(NULL, buf, sizeof buf, &done), -EINVAL);
    CHECK_EQ(done, 0);
    CHECK_ERR(edo_writev(NULL, &iov, 1), -EINVAL);
    CHECK_ERR(edo_io_wait(NULL, EDO_READ), -EINVAL);
    CHECK_ERR(edo_try_read(NULL, buf, sizeof buf), -EINVAL);
    CHECK_ERR(edo_try_write(NULL, buf, sizeof buf), -EINVAL);
    CHECK_ERR(edo_shutdown(NULL), -EINVAL);
    CHECK_ERR(edo_tcp_nodelay(NULL, true), -EINVAL);
    CHECK_ERR(edo_local_addr(NULL, buf, sizeof buf), -EINVAL);
    CHECK_ERR(edo_peer_addr(NULL, buf, sizeof buf), -EINVAL);
    edo_io *io = (edo_io *)&v64;
    CHECK_ERR(edo_tcp_accept(&io, NULL), -EINVAL);
    CHECK(io == NULL);
    CHECK_ERR(edo_tcp_accept(NULL, NULL), -EINVAL);
    CHECK_ERR(edo_tcp_listen(&io, NULL, 0), -EINVAL);
    CHECK_ERR(edo_tcp_listen(NULL, "127.0.0.1:0", 0), -EINVAL);
    CHECK_ERR(edo_tcp_connect(&io, NULL, 100), -EINVAL);
    CHECK_ERR(edo_tcp_connect(NULL, "127.0.0.1:1", 100), -EINVAL);
    CHECK_ERR(edo_io_wrap(NULL, 0), -EINVAL);
    CHECK_ERR(edo_parse_addr(NULL, NULL, NULL), -EINVAL);
    CHECK_OK(edo_close(NULL));
    edo_buf_release(NULL);

    /* Tasks */
    CHECK_ERR(edo_join(NULL, NULL), -EINVAL);
    edo_detach(NULL);
    edo_abort(NULL);
    CHECK_ERR(edo_spawn(NULL, NULL, NULL), -EINVAL);
    CHECK_EQ(edo_task_list(NULL, NULL, NULL), 0);
    CHECK_ERR(edo_signal_take(NULL, 1), -EINVAL);
    CHECK_ERR(edo_signal_wait(NULL, 1), -EINVAL);

    /* Synchronisation: every call on a NULL object */
    CHECK_ERR(edo_chan_new(NULL, 4, 1), -EINVAL);
    CHECK_ERR(edo_chan_send(NULL, buf), -EINVAL);
    CHECK_ERR(edo_chan_try_send(NULL, buf), -EINVAL);
    CHECK_ERR(edo_chan_recv(NULL, buf), -EINVAL);
    CHECK_ERR(edo_chan_try_recv(NULL, buf), -EINVAL);
    CHECK_EQ(edo_chan_len(NULL), 0);
    CHECK(!edo_chan_closed(NULL));
    edo_chan_close(NULL);
    edo_chan_free(NULL);
    CHECK_ERR(edo_bcast_new(NULL, 4, 1), -EINVAL);
    edo_bcast_rx *rx = (edo_bcast_rx *)&v64;
    CHECK_ERR(edo_bcast_subscribe(&rx, NULL), -EINVAL);
    CHECK(rx == NULL);
    CHECK_ERR(edo_bcast_send(NULL, buf), -EINVAL);
    CHECK_ERR(edo_bcast_recv(NULL, buf, &u64), -EINVAL);
    CHECK_ERR(edo_bcast_try_recv(NULL, buf, &u64), -EINVAL);
    CHECK_EQ(edo_bcast_lag(NULL), 0);
    edo_bcast_unsubscribe(NULL);
    edo_bcast_close(NULL);
    edo_bcast_free(NULL);
    CHECK_ERR(edo_watch_new(NULL, 4, buf), -EINVAL);
    CHECK_ERR(edo_watch_send(NULL, buf), -EINVAL);
    CHECK_EQ(edo_watch_get(NULL, buf), 0);
    CHECK_ERR(edo_watch_recv(NULL, buf, &u64), -EINVAL);
    edo_watch_close(NULL);
    edo_watch_free(NULL);
    CHECK_ERR(edo_mutex_new(NULL), -EINVAL);
    CHECK_ERR(edo_mutex_lock(NULL), -EINVAL);
    CHECK_ERR(edo_mutex_try_lock(NULL), -EINVAL);
    edo_mutex_unlock(NULL);
    edo_mutex_free(NULL);
    CHECK_ERR(edo_rwlock_new(NULL), -EINVAL);
    CHECK_ERR(edo_rwlock_rdlock(NULL), -EINVAL);
    CHECK_ERR(edo_rwlock_wrlock(NULL), -EINVAL);
    CHECK_ERR(edo_rwlock_try_rdlock(NULL), -EINVAL);
    CHECK_ERR(edo_rwlock_try_wrlock(NULL), -EINVAL);
    edo_rwlock_rdunlock(NULL);
    edo_rwlock_wrunlock(NULL);
    edo_rwlock_free(NULL);
    CHECK_ERR(edo_sem_new(NULL, 1), -EINVAL);
    CHECK_ERR(edo_sem_acquire(NULL, 1), -EINVAL);
    CHECK_ERR(edo_sem_try_acquire(NULL, 1), -EINVAL);
    edo_sem_release(NULL, 1);
    CHECK_EQ(edo_sem_available(NULL), 0);
    edo_sem_close(NULL);
    edo_sem_free(NULL);
    CHECK_ERR(edo_notify_new(NULL), -EINVAL);
    CHECK_ERR(edo_notify_wait(NULL), -EINVAL);
    CHECK_EQ(edo_notify_epoch(NULL), 0);
    CHECK_ERR(edo_notify_wait_since(NULL, 0), -EINVAL);
    edo_notify_one(NULL);
    edo_notify_all(NULL);
    edo_notify_free(NULL);
    CHECK_ERR(edo_barrier_new(NULL, 2), -EINVAL);
    CHECK_ERR(edo_barrier_wait(NULL), -EINVAL);
    edo_barrier_free(NULL);
    CHECK_ERR(edo_token_new(NULL, NULL), -EINVAL);
    edo_token_cancel(NULL);
    CHECK(!edo_token_cancelled(NULL));
    CHECK_ERR(edo_token_wait(NULL), -EINVAL);
    edo_token_free(NULL);
    CHECK_ERR(edo_joinset_new(NULL), -EINVAL);
    CHECK_ERR(edo_joinset_spawn(NULL, null_root, NULL, NULL), -EINVAL);
    CHECK_ERR(edo_joinset_next(NULL, NULL, NULL), -EINVAL);
    CHECK_EQ(edo_joinset_len(NULL), 0);
    edo_joinset_abort_all(NULL);
    edo_joinset_free(NULL);
    CHECK_ERR(edo_select(NULL, 1), -EINVAL);

    /* Files */
    CHECK_ERR(edo_fs_open(NULL, O_RDONLY, 0), -EINVAL);
    CHECK_ERR(edo_fs_stat(NULL, NULL), -EINVAL);
    CHECK_ERR(edo_fs_read_file(NULL, NULL, NULL, 0), -EINVAL);
    CHECK_ERR(edo_fs_list(NULL, NULL, NULL), -EINVAL);
    edo_fs_list_free(NULL);
    return unused;
}

/* Every call with a NULL handle is refused with -EINVAL, or does nothing for the ones
 * that free, close or release: none of them crashes. */
static void case_null_handles(void)
{
    test_run(null_root, NULL);
    edo_runtime_free(NULL);
    CHECK_ERR(edo_block_on(NULL, null_root, NULL, NULL), -EINVAL);
    CHECK_EQ(edo_main(NULL, NULL), 1);
}

/* ---------------------------------------------------------------------------------------- */

static void *aborted_child(void *arg)
{
    int rc = edo_sleep(1000000);
    return VAL(rc);
}

static void *joiner_of_sleeper(void *arg)
{
    edo_task *t;
    CHECK_OK(edo_spawn(&t, aborted_child, NULL));
    return VAL(edo_join(t, NULL)); /* we are aborted: -ECANCELED, the child detached */
}

static void *codes_root(void *unused)
{
    /* A joined task that was aborted: -EDO_EABORTED, its result what it returned. */
    edo_task *t;
    CHECK_OK(edo_spawn(&t, aborted_child, NULL));
    test_wait_parked(t, EDO_WAIT_SLEEP);
    edo_abort(t);
    void *res = NULL;
    CHECK_ERR(edo_join(t, &res), -EDO_EABORTED);
    CHECK_EQ(INT(res), -ECANCELED);

    /* The joiner itself aborted: -ECANCELED, a different outcome. */
    CHECK_OK(edo_spawn(&t, joiner_of_sleeper, NULL));
    test_wait_parked(t, EDO_WAIT_JOIN);
    edo_abort(t);
    CHECK_ERR(edo_join(t, &res), -EDO_EABORTED);
    CHECK_EQ(INT(res), -ECANCELED);

    /* An empty join set: nothing to wait for. */
    edo_joinset *js;
    CHECK_OK(edo_joinset_new(&js));
    CHECK_ERR(edo_joinset_next(js, NULL, NULL), -EDO_EEMPTY);
    edo_joinset_free(js);

    /* Closed channels and semaphores: -EDO_ECLOSED, not a broken pipe. */
    edo_chan *ch;
    int x = 1;
    CHECK_OK(edo_chan_new(&ch, sizeof x, 1));
    edo_chan_close(ch);
    CHECK_ERR(edo_chan_send(ch, &x), -EDO_ECLOSED);
    CHECK_ERR(edo_chan_recv(ch, &x), -EDO_ECLOSED);
    edo_chan_free(ch);
    edo_sem *s;
    CHECK_OK(edo_sem_new(&s, 0));
    edo_sem_close(s);
    CHECK_ERR(edo_sem_acquire(s, 1), -EDO_ECLOSED);
    edo_sem_free(s);

    /* A deadline is "timed out", whatever the call. */
    int64_t scope = edo_timeout_begin(0);
    CHECK_ERR(edo_sleep(10), -ETIMEDOUT);
    edo_deadline_end(scope);

    /* From a task, a call that must not be made from one. */
    CHECK_ERR(edo_block_on(edo_runtime_current(), aborted_child, NULL, NULL), -EDO_EINTASK);
    return unused;
}

static void *outside_thread(void *arg)
{
    int *rcs = arg;
    rcs[0] = edo_sleep(1);
    rcs[1] = edo_spawn(NULL, aborted_child, NULL);
    edo_chan *ch;
    CHECK_OK(edo_chan_new(&ch, sizeof(int), 0));
    int x;
    rcs[2] = edo_chan_try_recv(ch, &x); /* never waits: fine outside a task */
    edo_chan_free(ch);
    return NULL;
}

/* Distinct outcomes have distinct codes, and each code's text is true in edo's context. */
static void case_distinct_codes(void)
{
    test_run(codes_root, NULL);

    int rcs[3];
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, outside_thread, rcs), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_ERR(rcs[0], -EDO_ENOTASK);
    CHECK_ERR(rcs[1], -EDO_ENOTASK);
    CHECK_ERR(rcs[2], -EAGAIN);

    /* edo's codes lie above errno's and never share a text with one another. */
    const int own[] = { EDO_EABORTED, EDO_ECLOSED, EDO_EEMPTY, EDO_ENOTASK, EDO_EINTASK };
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
        CHECK_GT(own[i], 4095);
        CHECK(strstr(edo_strerror(-own[i]), "Unknown") == NULL);
        CHECK_STR_EQ(edo_strerror(own[i]), edo_strerror(-own[i]));
        CHECK(!edo_retryable(-own[i]));
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(edo_strerror(-own[i]), edo_strerror(-own[j])) != 0);
    }
    CHECK_STR_EQ(edo_strerror(-ETIMEDOUT), "Timed out");
    CHECK(strstr(edo_strerror(-ECANCELED), "aborted") != NULL);
    CHECK(strstr(edo_strerror(-ESHUTDOWN), "shutting down") != NULL);
    CHECK(strstr(edo_strerror(-EDO_ECLOSED), "Closed") != NULL);
    CHECK(strstr(edo_strerror(-EDO_ENOTASK), "task") != NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* What arrived in time wins                                                                */

/* Burns the worker (never suspends) for ms of real time. */
static void hog_worker(int64_t ms)
{
    int64_t t0 = test_clock_ms();
    while (test_clock_ms() - t0 < ms)
        ;
}

struct late {
    edo_io *rd, *wr;
    edo_task *reader;
};

static void *late_reader(void *arg)
{
    struct late *l = arg;
    char c = 0;
    CHECK_OK(edo_io_set_timeout(l->rd, 500, 0));
    ssize_t n = edo_read(l->rd, &c, 1);
    return VAL(n == 1 && c == 'x' ? 1 : n);
}

static void *late_returner(void *arg)
{
    hog_worker(150); /* returns well after the joiner's deadline, having started before it */
    return arg;
}

static void *late_joiner(void *arg)
{
    edo_task *t;
    CHECK_OK(edo_spawn(&t, late_returner, VAL(9)));
    int64_t scope = edo_timeout_begin(50);
    void *res = NULL;
    int rc = edo_join(t, &res);
    edo_deadline_end(scope);
    if (rc == -ETIMEDOUT)
        CHECK_OK(edo_join(t, &res));
    CHECK_EQ(INT(res), 9);
    return VAL(rc);
}

static void *in_time_root(void *unused)
{
    /* Data sent before the reader's 500 ms timeout, while the one worker is busy past it:
     * when the reader runs at last, the data is there and the read gets it. (500 ms: the
     * reader's timer must not fire while this task still waits to see it parked, however
     * slow the machine; the join below has no such window.) */
    struct late l;
    test_tcp_pair(&l.rd, &l.wr);
    CHECK_OK(edo_spawn(&l.reader, late_reader, &l));
    test_wait_parked(l.reader, EDO_WAIT_READ);
    CHECK_EQ(edo_write(l.wr, "x", 1), 1);
    hog_worker(700);
    void *res;
    CHECK_OK(edo_join(l.reader, &res));
    CHECK_EQ(INT(res), 1);
    edo_close(l.rd);
    edo_close(l.wr);

    /* A joined task that returned in time: the join succeeds though it resumes late. */
    edo_task *j;
    CHECK_OK(edo_spawn(&j, late_joiner, NULL));
    CHECK_OK(edo_join(j, &res));
    CHECK_OK(INT(res));
    return unused;
}

/* With one worker, a task whose event came before its deadline but who could only run
 * after it (the worker was busy) gets the event, not -ETIMEDOUT. */
static void case_arrived_in_time_wins(void)
{
    edo_runtime_opts o = { .workers = 1 };
    test_run_opts(&o, in_time_root, NULL);
}

/* ---------------------------------------------------------------------------------------- */

static void *io_timeout_root(void *unused)
{
    edo_io *a, *b;
    test_tcp_pair(&a, &b);
    CHECK_OK(edo_io_set_timeout(a, 250, 0));
    int64_t t0 = edo_now();
    edo_case cs[] = { edo_case_timeout(10000), edo_case_read(a) };
    CHECK_EQ(edo_select(cs, 2), 1);
    CHECK_ERR(cs[1].rc, -ETIMEDOUT);
    CHECK_EQ(edo_now() - t0, 250); /* the paused clock: exactly the io's timeout */

    /* Data in time: the read case wins with 0, and the read gets it. */
    CHECK_EQ(edo_write(b, "y", 1), 1);
    edo_case again[] = { edo_case_read(a), edo_case_timeout(10000) };
    CHECK_EQ(edo_select(again, 2), 0);
    CHECK_OK(again[0].rc);
    char c;
    CHECK_EQ(edo_try_read(a, &c, 1), 1);
    edo_close(a);
    edo_close(b);
    return unused;
}

/* An io's own read timeout bounds edo_select's read case on it, as it bounds a read. */
static void case_select_honours_io_timeout(void)
{
    run_paused(io_timeout_root, NULL);
}

static const test_case cases[] = {
    TEST_CASE(case_null_handles),
    TEST_CASE(case_distinct_codes),
    TEST_CASE_BACKENDS(case_arrived_in_time_wins),
    TEST_CASE(case_select_honours_io_timeout),
};

TEST_MAIN(cases)
