/*
 * Reads into buffers the runtime lends (edo_read_lent, edo_buf_release): echo through lent
 * buffers on many connections, more buffers lent at once than a worker has, buffers given
 * back on other workers and on plain threads, the buffer size limit, end of stream,
 * errors, deadlines, aborts and closes of a waiting reader (no data lost to a read that
 * gave up), and pipes.
 *
 * edo-test: timeout=180
 */
#include "harness.h"

#include <pthread.h>

/* A byte that depends on its position in the stream: a byte lost, repeated or out of
 * place shows. */
static unsigned char stream_byte(uint64_t conn, uint64_t pos)
{
    return (unsigned char)((pos * 131 + conn * 7 + (pos >> 9)) & 0xff);
}

static void fill_stream(unsigned char *b, size_t len, uint64_t conn, uint64_t pos)
{
    for (size_t i = 0; i < len; i++)
        b[i] = stream_byte(conn, pos + i);
}

static void check_stream(const unsigned char *b, size_t len, uint64_t conn, uint64_t pos)
{
    for (size_t i = 0; i < len; i++)
        CHECK_MSG(b[i] == stream_byte(conn, pos + i),
                  "connection %" PRIu64 ": byte %" PRIu64 " is %u, not %u", conn, pos + i, b[i],
                  stream_byte(conn, pos + i));
}

/* ---------------------------------------------------------------------------------------- */
/* Echo through lent buffers                                                                */

enum {
    ECHO_CONNS = TEST_SCALE(200, 100, 50),
    ECHO_BYTES = TEST_SCALE(256 * 1024, 64 * 1024, 32 * 1024)
};

typedef struct echo_conn {
    edo_io *srv, *cli;
    uint64_t id;
    uint64_t reads, max_read;
} echo_conn;

/* The server side: echoes what it reads through lent buffers until end of stream. */
static void *echo_server(void *arg)
{
    echo_conn *c = arg;
    for (;;) {
        edo_buf b;
        ssize_t n = edo_read_lent(c->srv, &b);
        CHECK_MSG(n >= 0, "lent read: %s", edo_strerror((int)n));
        if (n == 0) {
            CHECK(b.data == NULL && b.len == 0);
            break;
        }
        CHECK_EQ(b.len, (size_t)n);
        c->reads++;
        if ((uint64_t)n > c->max_read)
            c->max_read = (uint64_t)n;
        CHECK_OK(edo_write_all(c->srv, b.data, b.len, NULL));
        edo_buf_release(&b);
        CHECK(b.data == NULL);
    }
    CHECK_OK(edo_shutdown(c->srv));
    return NULL;
}

static void *echo_writer(void *arg)
{
    echo_conn *c = arg;
    test_rng r = test_rng_new(c->id);
    unsigned char buf[9000];
    uint64_t pos = 0;
    while (pos < ECHO_BYTES) {
        size_t len = (size_t)test_rng_range(&r, 1, sizeof buf);
        if (len > ECHO_BYTES - pos)
            len = (size_t)(ECHO_BYTES - pos);
        fill_stream(buf, len, c->id, pos);
        CHECK_OK(edo_write_all(c->cli, buf, len, NULL));
        pos += len;
        if (test_rng_range(&r, 0, 8) == 0)
            CHECK_OK(edo_yield());
    }
    CHECK_OK(edo_shutdown(c->cli));
    return NULL;
}

static void *echo_client(void *arg)
{
    echo_conn *c = arg;
    edo_task *w;
    CHECK_OK(edo_spawn(&w, echo_writer, c));
    /* The echo comes back through lent buffers too. */
    uint64_t pos = 0;
    for (;;) {
        edo_buf b;
        ssize_t n = edo_read_lent(c->cli, &b);
        CHECK_MSG(n >= 0, "lent read: %s", edo_strerror((int)n));
        if (n == 0)
            break;
        check_stream((const unsigned char *)b.data, b.len, c->id, pos);
        pos += b.len;
        edo_buf_release(&b);
    }
    CHECK_EQ(pos, (uint64_t)ECHO_BYTES);
    CHECK_OK(edo_join(w, NULL));
    return NULL;
}

static void *echo_root(void *arg)
{
    size_t bufsize = *(size_t *)arg;
    echo_conn *c = calloc(ECHO_CONNS, sizeof *c);
    edo_task *t[2 * ECHO_CONNS];
    for (int i = 0; i < ECHO_CONNS; i++) {
        c[i].id = (uint64_t)i;
        test_tcp_pair(&c[i].cli, &c[i].srv);
        CHECK_OK(edo_spawn(&t[2 * i], echo_server, &c[i]));
        CHECK_OK(edo_spawn(&t[2 * i + 1], echo_client, &c[i]));
    }
    uint64_t reads = 0, max_read = 0;
    for (int i = 0; i < 2 * ECHO_CONNS; i++)
        CHECK_OK(edo_join(t[i], NULL));
    for (int i = 0; i < ECHO_CONNS; i++) {
        reads += c[i].reads;
        if (c[i].max_read > max_read)
            max_read = c[i].max_read;
        CHECK_OK(edo_close(c[i].cli));
        CHECK_OK(edo_close(c[i].srv));
    }
    CHECK_LE(max_read, (uint64_t)bufsize);
    printf("    %d connections x %d bytes echoed, %" PRIu64 " lent reads, largest %" PRIu64
           " (buffers of %zu)\n",
           ECHO_CONNS, ECHO_BYTES, reads, max_read, bufsize);
    free(c);
    return NULL;
}

static void case_echo(void)
{
    size_t size = 0; /* the default, 16 KiB */
    edo_runtime_opts o = { 0 };
    size_t want = 16 * 1024;
    test_run_opts(&o, echo_root, &want);
    /* Small buffers, few of them: reads are cut at the size and many fall back to
     * allocated buffers. */
    size = 1000;
    o.read_buf_size = size;
    o.read_bufs = 4;
    test_run_opts(&o, echo_root, &size);
}

/* ---------------------------------------------------------------------------------------- */
/* More buffers lent at once than a worker has; given back elsewhere                        */

enum { HOLDERS = 24 };

typedef struct hold_env {
    edo_io *srv[HOLDERS], *cli[HOLDERS];
    edo_buf bufs[HOLDERS];
    atomic_int got;
} hold_env;

static void *holder(void *arg)
{
    hold_env *e = arg;
    static atomic_int next;
    int i = atomic_fetch_add(&next, 1) % HOLDERS;
    ssize_t n = edo_read_lent(e->srv[i], &e->bufs[i]);
    CHECK_EQ(n, 100);
    check_stream((const unsigned char *)e->bufs[i].data, 100, (uint64_t)i, 0);
    atomic_fetch_add(&e->got, 1);
    return NULL;
}

static void *release_thread(void *arg)
{
    edo_buf *b = arg;
    edo_buf_release(b);
    return NULL;
}

static void *hold_root(void *arg)
{
    hold_env *e = calloc(1, sizeof *e);
    edo_task *t[HOLDERS];
    for (int i = 0; i < HOLDERS; i++) {
        test_tcp_pair(&e->cli[i], &e->srv[i]);
        CHECK_OK(edo_spawn(&t[i], holder, e));
    }
    for (int i = 0; i < HOLDERS; i++) {
        unsigned char msg[100];
        fill_stream(msg, sizeof msg, (uint64_t)i, 0);
        CHECK_OK(edo_write_all(e->cli[i], msg, sizeof msg, NULL));
    }
    for (int i = 0; i < HOLDERS; i++)
        CHECK_OK(edo_join(t[i], NULL));
    CHECK_EQ(atomic_load(&e->got), HOLDERS);
    /* Every buffer is still lent and still holds its own bytes: none was handed out twice. */
    for (int i = 0; i < HOLDERS; i++)
        check_stream((const unsigned char *)e->bufs[i].data, 100, (uint64_t)i, 0);
    /* Give them back: a third from plain threads, the rest from this task. */
    for (int i = 0; i < HOLDERS; i++) {
        if (i % 3 == 0) {
            pthread_t th;
            CHECK_OK(-pthread_create(&th, NULL, release_thread, &e->bufs[i]));
            CHECK_OK(-pthread_join(th, NULL));
            CHECK(e->bufs[i].data == NULL);
        } else {
            edo_buf_release(&e->bufs[i]);
        }
    }
    /* And the buffers come round again: many reads, each buffer given back at once. */
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < HOLDERS; i++) {
            unsigned char msg[64];
            fill_stream(msg, sizeof msg, (uint64_t)round, (uint64_t)i);
            CHECK_OK(edo_write_all(e->cli[i], msg, sizeof msg, NULL));
            edo_buf b;
            CHECK_EQ(edo_read_lent(e->srv[i], &b), 64);
            check_stream((const unsigned char *)b.data, 64, (uint64_t)round, (uint64_t)i);
            edo_buf_release(&b);
        }
    }
    for (int i = 0; i < HOLDERS; i++) {
        CHECK_OK(edo_close(e->cli[i]));
        CHECK_OK(edo_close(e->srv[i]));
    }
    free(e);
    return NULL;
}

static void case_hold_many(void)
{
    edo_runtime_opts o = { .read_bufs = 4, .read_buf_size = 4096 };
    test_run_opts(&o, hold_root, NULL);
    test_run(hold_root, NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* End of stream, errors, deadlines, aborts, closes                                         */

static void *parked_reader(void *arg)
{
    edo_io *io = arg;
    edo_buf b;
    ssize_t n = edo_read_lent(io, &b);
    CHECK(b.data == NULL || n > 0);
    if (n > 0)
        edo_buf_release(&b);
    return (void *)(intptr_t)n;
}

static void *errors_root(void *arg)
{
    edo_io *c, *s;
    edo_buf b;
    test_tcp_pair(&c, &s);

    CHECK_EQ(edo_read_lent(s, NULL), -EINVAL);

    /* A deadline passes: nothing lent, nothing lost; the bytes sent later are all read. */
    edo_io_set_timeout(s, 30, 0);
    CHECK_EQ(edo_read_lent(s, &b), -ETIMEDOUT);
    CHECK(b.data == NULL);
    edo_io_set_timeout(s, 0, 0);
    unsigned char msg[3000];
    fill_stream(msg, sizeof msg, 1, 0);
    CHECK_OK(edo_write_all(c, msg, sizeof msg, NULL));
    size_t got = 0;
    while (got < sizeof msg) {
        ssize_t n = edo_read_lent(s, &b);
        CHECK_GT(n, 0);
        check_stream((const unsigned char *)b.data, b.len, 1, got);
        got += b.len;
        edo_buf_release(&b);
    }

    /* An abort of a waiting reader: -ECANCELED, and the next read gets what comes. */
    edo_task *t;
    CHECK_OK(edo_spawn(&t, parked_reader, s));
    test_wait_parked(t, EDO_WAIT_READ);
    edo_abort(t);
    void *res;
    CHECK_ERR(edo_join(t, &res), -EDO_EABORTED); /* an aborted task's join says so */
    fill_stream(msg, 100, 2, 0);
    CHECK_OK(edo_write_all(c, msg, 100, NULL));
    CHECK_EQ(edo_read_lent(s, &b), 100);
    check_stream((const unsigned char *)b.data, 100, 2, 0);
    edo_buf_release(&b);
    edo_buf_release(&b); /* a second release of a cleared edo_buf does nothing */
    edo_buf_release(NULL);

    /* End of stream. */
    CHECK_OK(edo_shutdown(c));
    CHECK_EQ(edo_read_lent(s, &b), 0);
    CHECK(b.data == NULL);
    CHECK_OK(edo_close(c));
    CHECK_OK(edo_close(s));

    /* A reset: a clean error for this connection. */
    test_tcp_pair(&c, &s);
    struct linger lg = { 1, 0 };
    CHECK_SYS(setsockopt(edo_io_fd(c), SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    CHECK_OK(edo_close(c));
    ssize_t n = edo_read_lent(s, &b);
    CHECK_MSG(n == 0 || n == -ECONNRESET, "after a reset: %zd", n);
    CHECK(b.data == NULL);
    CHECK_OK(edo_close(s));

    /* Closed while a reader waits: the reader gets -EBADF. */
    test_tcp_pair(&c, &s);
    CHECK_OK(edo_spawn(&t, parked_reader, s));
    test_wait_parked(t, EDO_WAIT_READ);
    CHECK_OK(edo_close(s));
    CHECK_OK(edo_join(t, &res));
    CHECK_EQ((intptr_t)res, -EBADF);
    CHECK_OK(edo_close(c));
    return NULL;
}

static const test_root case_errors = { .fn = errors_root, .fds_closed = true };

/* ---------------------------------------------------------------------------------------- */
/* Pipes                                                                                    */

enum { PIPE_BYTES = TEST_SCALE(4 << 20, 1 << 20, 1 << 20) };

static void *pipe_writer(void *arg)
{
    edo_io *w = arg;
    unsigned char buf[7000];
    for (uint64_t pos = 0; pos < PIPE_BYTES;) {
        size_t len = sizeof buf;
        if (len > PIPE_BYTES - pos)
            len = (size_t)(PIPE_BYTES - pos);
        fill_stream(buf, len, 9, pos);
        CHECK_OK(edo_write_all(w, buf, len, NULL));
        pos += len;
    }
    CHECK_OK(edo_close(w));
    return NULL;
}

static void *pipe_root(void *arg)
{
    int p[2];
    CHECK_SYS(pipe2(p, O_CLOEXEC));
    edo_io *r, *w;
    CHECK_OK(edo_io_wrap(&r, p[0]));
    CHECK_OK(edo_io_wrap(&w, p[1]));
    edo_task *t;
    CHECK_OK(edo_spawn(&t, pipe_writer, w));
    uint64_t pos = 0;
    for (;;) {
        edo_buf b;
        ssize_t n = edo_read_lent(r, &b);
        CHECK_MSG(n >= 0, "pipe: %s", edo_strerror((int)n));
        if (n == 0)
            break;
        check_stream((const unsigned char *)b.data, b.len, 9, pos);
        pos += b.len;
        edo_buf_release(&b);
    }
    CHECK_EQ(pos, (uint64_t)PIPE_BYTES);
    CHECK_OK(edo_join(t, NULL));
    CHECK_OK(edo_close(r));
    return NULL;
}

static const test_root case_pipe = { .fn = pipe_root };

static const test_case cases[] = {
    TEST_CASE(case_echo),
    TEST_CASE(case_hold_many),
    TEST_CASE(case_errors),
    TEST_CASE(case_pipe),
};

TEST_MAIN(cases)
