/*
 * Misbehaving peers: resets in the middle of a transfer, half-closes, silence, binary
 * garbage, a peer that trickles one byte at a time, a peer that floods without reading,
 * and running out of descriptors under an accept loop.
 *
 * edo-test: timeout=180
 */
#include "harness.h"

#include <pthread.h>
#include <sys/resource.h>

/* A plain blocking client socket for a peer thread. */
static int blocking_connect(const char *addr)
{
    bool ok;
    int fd = test_raw_connect(addr, 5000, &ok);
    CHECK(ok);
    CHECK_SYS(fcntl(fd, F_SETFL, 0));
    return fd;
}

static void reset_close(int fd)
{
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    CHECK_SYS(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    close(fd);
}

static void send_all_raw(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        CHECK_MSG(n > 0, "send: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

static void recv_all_raw(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = recv(fd, p, len, 0);
        CHECK_MSG(n > 0, "recv: %s", n == 0 ? "end of stream" : strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Echo service and well-behaved clients, to see that the other connections are unaffected. */
/* Handlers and clients may run on any worker, so what they report is atomic.               */

typedef struct echo_stats {
    atomic_int handlers_ok;
    atomic_int handlers_err;
    atomic_int last_err;
} echo_stats;

typedef struct echo_conn {
    edo_io *io;
    echo_stats *st;
} echo_conn;

static void *echo_handler(void *arg)
{
    echo_conn *ec = arg;
    char *buf = malloc(8192);
    ssize_t n;
    int rc = 0;
    while ((n = edo_read(ec->io, buf, 8192)) > 0)
        if ((rc = edo_write_all(ec->io, buf, (size_t)n, NULL)) < 0)
            break;
    if (n < 0)
        rc = (int)n;
    if (rc < 0) {
        atomic_store(&ec->st->last_err, rc);
        atomic_fetch_add(&ec->st->handlers_err, 1);
    } else {
        atomic_fetch_add(&ec->st->handlers_ok, 1);
    }
    edo_close(ec->io);
    free(buf);
    free(ec);
    return NULL;
}

typedef struct server {
    edo_io *lis;
    char addr[48];
    echo_stats st;
    edo_task *acceptor;
} server;

static void *acceptor_task(void *arg)
{
    server *s = arg;
    for (;;) {
        edo_io *conn;
        int rc = edo_tcp_accept(&conn, s->lis);
        if (rc == -ECANCELED)
            return NULL;
        CHECK_MSG(rc >= 0 || edo_retryable(rc), "accept: %s", edo_strerror(rc));
        if (rc < 0)
            continue;
        echo_conn *ec = malloc(sizeof *ec);
        *ec = (echo_conn){ conn, &s->st };
        CHECK_OK(edo_spawn(NULL, echo_handler, ec));
    }
}

static void server_start(server *s)
{
    memset(s, 0, sizeof *s);
    s->lis = test_listen(s->addr, sizeof s->addr, 0);
    CHECK_OK(edo_spawn(&s->acceptor, acceptor_task, s));
}

static void server_stop(server *s)
{
    edo_abort(s->acceptor);
    CHECK_ERR(edo_join(s->acceptor, NULL), -EDO_EABORTED);
    CHECK_OK(edo_close(s->lis));
}

typedef struct client {
    const char *addr;
    int id;
    int rounds;              /* at least this many round trips */
    const atomic_int *until; /* then on until *until is set (if not NULL) */
    atomic_int done_rounds;  /* watched by the root while the client runs */
    bool finished;           /* these two are read after the join */
    int64_t finished_at;
} client;

static void *client_task(void *arg)
{
    client *c = arg;
    edo_io *io;
    CHECK_OK(edo_tcp_connect(&io, c->addr, 5000));
    edo_io_set_timeout(io, 10000, 10000);
    test_rng r = test_rng_new(900 + (uint64_t)c->id);
    unsigned char out[1024], in[1024];
    for (int i = 0; i < c->rounds || (c->until && !atomic_load(c->until)); i++) {
        size_t len = (size_t)test_rng_range(&r, 1, sizeof out);
        test_rng_fill(&r, out, len);
        CHECK_OK(edo_write_all(io, out, len, NULL));
        CHECK_OK(edo_read_exact(io, in, len, NULL));
        CHECK(memcmp(in, out, len) == 0);
        atomic_fetch_add(&c->done_rounds, 1);
    }
    CHECK_OK(edo_close(io));
    c->finished = true;
    c->finished_at = edo_now();
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */

enum { BIG = 8 * 1024 * 1024 };

typedef struct resetter {
    char addr[48];
    atomic_int go;
    atomic_int done;
} resetter;

static void *resetter_thread(void *arg)
{
    resetter *rs = arg;
    int fd = blocking_connect(rs->addr);
    while (!atomic_load(&rs->go))
        test_sleep_us(500);
    /* Take some of the stream so that the writer is well under way, then vanish. */
    char *buf = malloc(65536);
    recv_all_raw(fd, buf, 65536);
    free(buf);
    reset_close(fd);
    atomic_store(&rs->done, 1);
    return NULL;
}

typedef struct big_write {
    edo_io *io;
    size_t done;
    int rc;
} big_write;

static void *big_writer(void *arg)
{
    big_write *b = arg;
    char *data = calloc(1, BIG);
    b->rc = edo_write_all(b->io, data, BIG, &b->done);
    /* Later writes fail the same way, at once. */
    ssize_t again = edo_write(b->io, data, 1);
    CHECK_MSG(again == -EPIPE || again == -ECONNRESET, "write after the reset: %zd", again);
    free(data);
    return NULL;
}

static void *reset_root(void *unused)
{
    char addr[48];
    edo_io *lis = test_listen(addr, sizeof addr, 0);
    resetter rs = { 0 };
    memcpy(rs.addr, addr, sizeof addr);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, resetter_thread, &rs), 0);
    big_write b = { 0 };
    CHECK_OK(edo_tcp_accept(&b.io, lis));
    edo_task *bw;
    CHECK_OK(edo_spawn(&bw, big_writer, &b));

    /* Four others keep echoing across the reset. */
    server s;
    server_start(&s);
    enum { N = 4 };
    atomic_int reset_seen = 0;
    client cs[N];
    edo_task *ct[N];
    for (int i = 0; i < N; i++) {
        cs[i] = (client){ .addr = s.addr, .id = i, .rounds = 20, .until = &reset_seen };
        CHECK_OK(edo_spawn(&ct[i], client_task, &cs[i]));
    }
    for (int i = 0; i < N; i++)
        WAIT_UNTIL(atomic_load(&cs[i].done_rounds) >= 10, 5000);
    atomic_store(&rs.go, 1);
    CHECK_EQ(edo_join(bw, NULL), 0);
    CHECK_MSG(b.rc == -ECONNRESET || b.rc == -EPIPE, "write_all to a peer that reset: %d (%s)",
              b.rc, edo_strerror(b.rc));
    CHECK_GE(b.done, 65536);
    CHECK_LT(b.done, BIG);
    int before[N];
    for (int i = 0; i < N; i++)
        before[i] = atomic_load(&cs[i].done_rounds);
    /* Still going after it. */
    for (int i = 0; i < N; i++)
        WAIT_UNTIL(atomic_load(&cs[i].done_rounds) >= before[i] + 20, 5000);
    atomic_store(&reset_seen, 1);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(edo_join(ct[i], NULL), 0);
        CHECK(cs[i].finished);
    }
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_OK(edo_close(b.io));

    /* A reset with nothing in flight: the reader learns it from edo_read. */
    bool ok;
    int raw = test_raw_connect(addr, 1000, &ok);
    CHECK(ok);
    edo_io *conn;
    CHECK_OK(edo_tcp_accept(&conn, lis));
    reset_close(raw);
    char c;
    edo_io_set_timeout(conn, 5000, 0);
    CHECK_ERR(edo_read(conn, &c, 1), -ECONNRESET);
    CHECK_OK(edo_close(conn));

    WAIT_UNTIL(atomic_load(&s.st.handlers_ok) == N, 5000);
    CHECK_EQ(atomic_load(&s.st.handlers_err), 0);
    server_stop(&s);
    CHECK_OK(edo_close(lis));
    return NULL;
}

static const test_root case_reset_mid_write = { .fn = reset_root, .fds_closed = true };

/* ---------------------------------------------------------------------------------------- */

enum { REQ_LEN = 100000 };

typedef struct half_closer {
    char addr[48];
    unsigned char *req;
} half_closer;

static void *half_close_thread(void *arg)
{
    half_closer *h = arg;
    int fd = blocking_connect(h->addr);
    send_all_raw(fd, h->req, REQ_LEN);
    CHECK_SYS(shutdown(fd, SHUT_WR));
    /* The reply is the request reversed, then "END". */
    unsigned char *reply = malloc(REQ_LEN + 3);
    recv_all_raw(fd, reply, REQ_LEN + 3);
    for (size_t i = 0; i < REQ_LEN; i++)
        CHECK_EQ(reply[i], h->req[REQ_LEN - 1 - i]);
    CHECK(memcmp(reply + REQ_LEN, "END", 3) == 0);
    char extra;
    CHECK_EQ(recv(fd, &extra, 1, 0), 0);
    free(reply);
    close(fd);
    return NULL;
}

static void *half_close_root(void *unused)
{
    half_closer h;
    edo_io *lis = test_listen(h.addr, sizeof h.addr, 4);
    h.req = malloc(REQ_LEN);
    test_rng r = test_rng_new(3);
    test_rng_fill(&r, h.req, REQ_LEN);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, half_close_thread, &h), 0);
    edo_io *conn;
    CHECK_OK(edo_tcp_accept(&conn, lis));
    edo_io_set_timeout(conn, 10000, 10000);
    unsigned char *got = malloc(REQ_LEN + 3);
    size_t have = 0;
    ssize_t n;
    while ((n = edo_read(conn, got + have, REQ_LEN + 1 - have)) > 0)
        have += (size_t)n;
    CHECK_EQ(n, 0);
    CHECK_EQ(have, REQ_LEN);
    CHECK(memcmp(got, h.req, REQ_LEN) == 0);
    CHECK_EQ(edo_read(conn, got, 1), 0);
    for (size_t i = 0; i < REQ_LEN / 2; i++) {
        unsigned char t = got[i];
        got[i] = got[REQ_LEN - 1 - i];
        got[REQ_LEN - 1 - i] = t;
    }
    memcpy(got + REQ_LEN, "END", 3);
    CHECK_OK(edo_write_all(conn, got, REQ_LEN + 3, NULL));
    CHECK_OK(edo_close(conn));
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_OK(edo_close(lis));
    free(got);
    free(h.req);
    return NULL;
}

static const test_root case_half_close = { .fn = half_close_root };

/* ---------------------------------------------------------------------------------------- */

static void *silent_root(void *unused)
{
    char addr[48];
    edo_io *lis = test_listen(addr, sizeof addr, 4), *conn;

    /* Nobody connects. */
    edo_io_set_timeout(lis, 100, 0);
    int64_t t0 = edo_now();
    CHECK_ERR(edo_tcp_accept(&conn, lis), -ETIMEDOUT);
    CHECK_GE(edo_now() - t0, 100);
    CHECK_LT(edo_now() - t0, 5000);

    /* A client that connects and says nothing. */
    bool ok;
    int raw = test_raw_connect(addr, 1000, &ok);
    CHECK(ok);
    CHECK_OK(edo_tcp_accept(&conn, lis));
    edo_io_set_timeout(conn, 100, 0);
    char buf[16];
    t0 = edo_now();
    CHECK_ERR(edo_read(conn, buf, sizeof buf), -ETIMEDOUT);
    CHECK_GE(edo_now() - t0, 100);
    CHECK_LT(edo_now() - t0, 5000);
    /* The connection survives its timeout. */
    CHECK_EQ(send(raw, "x", 1, 0), 1);
    CHECK_EQ(edo_read(conn, buf, sizeof buf), 1);
    CHECK_EQ(buf[0], 'x');

    /* Says a little, then nothing: read_exact reports what it got. */
    CHECK_EQ(send(raw, "abc", 3, 0), 3);
    size_t done = 0;
    CHECK_ERR(edo_read_exact(conn, buf, 10, &done), -ETIMEDOUT);
    CHECK_EQ(done, 3);
    CHECK(memcmp(buf, "abc", 3) == 0);

    /* Never reads: writes time out, having sent what fit. */
    int small = 16384;
    CHECK_SYS(setsockopt(edo_io_fd(conn), SOL_SOCKET, SO_SNDBUF, &small, sizeof small));
    edo_io_set_timeout(conn, 0, 100);
    size_t big = 16 * 1024 * 1024;
    char *data = calloc(1, big);
    t0 = edo_now();
    CHECK_ERR(edo_write_all(conn, data, big, &done), -ETIMEDOUT);
    CHECK_GE(edo_now() - t0, 100);
    CHECK_GT(done, 0);
    CHECK_LT(done, big);
    /* The kernel may still move queued bytes to the peer's receive buffer, so a write
     * can take a few more bytes before the timeout is all that is left. */
    ssize_t w;
    while ((w = edo_write(conn, data, big)) > 0)
        CHECK_LT((size_t)w, big);
    CHECK_ERR(w, -ETIMEDOUT);
    struct iovec iov = { data, big };
    while ((w = edo_writev(conn, &iov, 1)) > 0)
        CHECK_LT((size_t)w, big);
    CHECK_ERR(w, -ETIMEDOUT);
    free(data);

    CHECK_OK(edo_close(conn));
    close(raw);
    CHECK_OK(edo_close(lis));
    return NULL;
}

static const test_root case_silent_peer = { .fn = silent_root };

/* ---------------------------------------------------------------------------------------- */

typedef struct blob {
    edo_io *io;
    unsigned char *data;
    size_t len;
} blob;

static void *blob_writer(void *arg)
{
    blob *b = arg;
    edo_io *io = b->io;
    test_rng r = test_rng_new(8);
    for (size_t at = 0; at < b->len;) {
        size_t n = (size_t)test_rng_range(&r, 1, 9000);
        if (n > b->len - at)
            n = b->len - at;
        CHECK_OK(edo_write_all(io, b->data + at, n, NULL));
        at += n;
    }
    CHECK_OK(edo_shutdown(io));
    return NULL;
}

static void *garbage_root(void *unused)
{
    server s;
    server_start(&s);
    /* Every byte value, the bytes that mean something to text protocols, then noise. */
    size_t len = 4 * 256 + 1024 * 1024;
    unsigned char *data = malloc(len);
    for (size_t i = 0; i < 4 * 256; i++)
        data[i] = i % 4 == 0 ? (unsigned char)(i / 4) : (unsigned char)"\0\r\n\xff"[i % 4];
    test_rng r = test_rng_new(7);
    test_rng_fill(&r, data + 4 * 256, len - 4 * 256);

    edo_io *io;
    CHECK_OK(edo_tcp_connect(&io, s.addr, 5000));
    edo_io_set_timeout(io, 10000, 10000);
    blob b = { io, data, len };
    edo_task *w;
    CHECK_OK(edo_spawn(&w, blob_writer, &b));
    unsigned char *got = malloc(len + 1); /* one more: room to notice an extra byte */
    size_t have = 0;
    ssize_t n;
    while ((n = edo_read(io, got + have, len + 1 - have > 4096 ? 4096 : len + 1 - have)) > 0)
        have += (size_t)n;
    CHECK_EQ(n, 0);
    CHECK_EQ(have, len);
    CHECK(memcmp(got, data, len) == 0);
    CHECK_EQ(edo_join(w, NULL), 0);
    CHECK_OK(edo_close(io));
    WAIT_UNTIL(atomic_load(&s.st.handlers_ok) == 1, 5000);
    server_stop(&s);
    free(got);
    free(data);
    return NULL;
}

static const test_root case_garbage_bytes = { .fn = garbage_root };

/* ---------------------------------------------------------------------------------------- */

enum { SLOW_GAP_US = 5000 };

/* A peer that echoes one byte every 5 ms until it is told to stop, so that it is still
 * connected however long the fast clients take on a loaded machine. */
typedef struct slow {
    char addr[48];
    atomic_int rounds, stop, done;
} slow;

static void *slow_thread(void *arg)
{
    slow *s = arg;
    int fd = blocking_connect(s->addr);
    for (int i = 0; !atomic_load(&s->stop); i++) {
        unsigned char c = (unsigned char)i, e;
        send_all_raw(fd, &c, 1);
        recv_all_raw(fd, &e, 1);
        CHECK_EQ(e, c);
        atomic_fetch_add(&s->rounds, 1);
        test_sleep_us(SLOW_GAP_US);
    }
    close(fd);
    atomic_store(&s->done, 1);
    return NULL;
}

static void *slow_root(void *unused)
{
    server s;
    server_start(&s);
    slow sl = { .rounds = 0, .stop = 0, .done = 0 };
    memcpy(sl.addr, s.addr, sizeof sl.addr);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, slow_thread, &sl), 0);
    WAIT_UNTIL(atomic_load(&sl.rounds) > 0, 5000); /* the trickle is under way */

    enum { N = 20 };
    client cs[N];
    edo_task *ts[N];
    int64_t t0 = edo_now();
    for (int i = 0; i < N; i++) {
        cs[i] = (client){ .addr = s.addr, .id = 100 + i, .rounds = 300 };
        CHECK_OK(edo_spawn(&ts[i], client_task, &cs[i]));
    }
    for (int i = 0; i < N; i++)
        CHECK_EQ(edo_join(ts[i], NULL), 0);
    /* All of it happened while the slow peer was trickling; it still is. */
    int before = atomic_load(&sl.rounds);
    printf("    %d fast clients x 300 round trips in %" PRId64 " ms beside the slow peer "
           "(%d bytes echoed to it meanwhile)\n",
           N, edo_now() - t0, before);
    WAIT_UNTIL(atomic_load(&sl.rounds) > before, 5000);
    atomic_store(&sl.stop, 1);
    WAIT_UNTIL(atomic_load(&sl.done), 20000);
    CHECK_EQ(pthread_join(th, NULL), 0);
    WAIT_UNTIL(atomic_load(&s.st.handlers_ok) == N + 1, 5000);
    CHECK_EQ(atomic_load(&s.st.handlers_err), 0);
    server_stop(&s);
    return NULL;
}

static const test_root case_slow_peer = { .fn = slow_root };

/* ---------------------------------------------------------------------------------------- */

typedef struct flooder {
    char addr[48];
    atomic_int stuck;
    atomic_int go_reset;
} flooder;

static void *flood_thread(void *arg)
{
    flooder *f = arg;
    bool ok;
    int fd = test_raw_connect(f->addr, 5000, &ok);
    CHECK(ok);
    char *buf = calloc(1, 65536);
    /* Send without ever reading, until nothing moves for 200 ms. */
    size_t sent = 0;
    for (;;) {
        ssize_t n = send(fd, buf, 65536, MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
            continue;
        }
        CHECK_MSG(errno == EAGAIN, "send: %s", strerror(errno));
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        if (poll(&p, 1, 200) == 0)
            break;
    }
    CHECK_GT(sent, 0);
    atomic_store(&f->stuck, 1);
    while (!atomic_load(&f->go_reset))
        test_sleep_us(1000);
    reset_close(fd);
    free(buf);
    return NULL;
}

static void *flood_root(void *unused)
{
    server s;
    server_start(&s);
    flooder f = { .stuck = 0 };
    memcpy(f.addr, s.addr, sizeof f.addr);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, flood_thread, &f), 0);
    WAIT_UNTIL(atomic_load(&f.stuck), 10000);

    /* Its handler is stuck writing to it; the others do not notice. */
    enum { N = 8 };
    client cs[N];
    edo_task *ts[N];
    for (int i = 0; i < N; i++) {
        cs[i] = (client){ .addr = s.addr, .id = 200 + i, .rounds = 100 };
        CHECK_OK(edo_spawn(&ts[i], client_task, &cs[i]));
    }
    for (int i = 0; i < N; i++)
        CHECK_EQ(edo_join(ts[i], NULL), 0);
    WAIT_UNTIL(atomic_load(&s.st.handlers_ok) == N, 5000);
    CHECK_EQ(atomic_load(&s.st.handlers_err), 0);

    atomic_store(&f.go_reset, 1);
    CHECK_EQ(pthread_join(th, NULL), 0);
    WAIT_UNTIL(atomic_load(&s.st.handlers_err) == 1, 5000);
    int last_err = atomic_load(&s.st.last_err);
    CHECK_MSG(last_err == -ECONNRESET || last_err == -EPIPE,
              "the flooder's handler failed with %d (%s)", last_err, edo_strerror(last_err));
    server_stop(&s);
    return NULL;
}

static const test_root case_flood_without_reading = { .fn = flood_root };

/* ---------------------------------------------------------------------------------------- */
/* Out of descriptors: the accept loop backs off instead of spinning, and recovers.         */

enum { EMFILE_SPARE = 4, EMFILE_CLIENTS = 12 };

/* The acceptor, the handlers, the clients and the root may each run on another worker:
 * what one of them writes and another reads while both run is atomic. */
typedef struct emfile_env {
    edo_io *lis;
    char addr[48];
    atomic_int release; /* held connections may close */
    atomic_int accept_returns;
    atomic_int accept_errors;
    atomic_int accepted;
    atomic_int served;
    atomic_int clients_ok;
    int64_t first_accept_after_release; /* the acceptor's; read after its join */
} emfile_env;

typedef struct emfile_conn {
    emfile_env *env;
    edo_io *io;
} emfile_conn;

static void *emfile_handler(void *arg)
{
    emfile_conn *ec = arg;
    char buf[4];
    edo_io_set_timeout(ec->io, 20000, 20000);
    CHECK_OK(edo_read_exact(ec->io, buf, 4, NULL));
    CHECK_OK(edo_write_all(ec->io, buf, 4, NULL));
    /* Holds its descriptor until told to let go. */
    while (!atomic_load(&ec->env->release))
        CHECK_EQ(edo_sleep(5), 0);
    CHECK_OK(edo_close(ec->io));
    atomic_fetch_add(&ec->env->served, 1);
    free(ec);
    return NULL;
}

static void *emfile_acceptor(void *arg)
{
    emfile_env *env = arg;
    while (atomic_load(&env->accepted) < EMFILE_CLIENTS) {
        edo_io *conn;
        int rc = edo_tcp_accept(&conn, env->lis);
        atomic_fetch_add(&env->accept_returns, 1);
        if (rc < 0) {
            CHECK_MSG(rc == -EMFILE || rc == -ENFILE, "accept: %s", edo_strerror(rc));
            CHECK(edo_retryable(rc));
            atomic_fetch_add(&env->accept_errors, 1);
            continue;
        }
        if (atomic_load(&env->release) && !env->first_accept_after_release)
            env->first_accept_after_release = edo_now();
        atomic_fetch_add(&env->accepted, 1);
        emfile_conn *ec = malloc(sizeof *ec);
        *ec = (emfile_conn){ env, conn };
        CHECK_OK(edo_spawn(NULL, emfile_handler, ec));
    }
    return NULL;
}

typedef struct emfile_client {
    emfile_env *env;
    edo_io *io;
} emfile_client;

static void *emfile_client_task(void *arg)
{
    emfile_client *c = arg;
    int fd = edo_io_fd(c->io);
    struct sockaddr_in sin = { .sin_family = AF_INET,
                               .sin_port = htons((uint16_t)test_port_of(c->env->addr)),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int rc = connect(fd, (struct sockaddr *)&sin, sizeof sin);
    CHECK_MSG(rc == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
    CHECK_EQ(edo_io_wait(c->io, EDO_WRITE), 0);
    int err = -1;
    socklen_t el = sizeof err;
    CHECK_SYS(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el));
    CHECK_MSG(err == 0, "connect: %s", strerror(err));
    edo_io_set_timeout(c->io, 20000, 20000);
    CHECK_OK(edo_write_all(c->io, "ping", 4, NULL));
    char buf[4];
    CHECK_OK(edo_read_exact(c->io, buf, 4, NULL));
    CHECK(memcmp(buf, "ping", 4) == 0);
    atomic_fetch_add(&c->env->clients_ok, 1);
    /* Clients live in this process too: their descriptors stay taken until the release. */
    while (!atomic_load(&c->env->release))
        CHECK_EQ(edo_sleep(5), 0);
    CHECK_OK(edo_close(c->io));
    return NULL;
}

/* The limit that leaves exactly `spare` descriptor numbers free below it. */
static rlim_t limit_leaving(int spare)
{
    static unsigned char used[65536];
    memset(used, 0, sizeof used);
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') {
            int fd = atoi(e->d_name);
            if (fd != dirfd(d) && fd < 65536)
                used[fd] = 1;
        }
    closedir(d);
    int free_seen = 0;
    for (int fd = 0; fd < 65536; fd++)
        if (!used[fd] && ++free_seen == spare)
            return (rlim_t)fd + 1;
    abort();
}

static void *emfile_root(void *unused)
{
    emfile_env *env = calloc(1, sizeof *env);
    env->lis = test_listen(env->addr, sizeof env->addr, 0);
    /* The clients' sockets exist before the limit drops: connecting needs no new one. */
    emfile_client cl[EMFILE_CLIENTS];
    for (int i = 0; i < EMFILE_CLIENTS; i++) {
        int fd = (int)CHECK_SYS(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        cl[i].env = env;
        CHECK_OK(edo_io_wrap(&cl[i].io, fd));
    }
    struct rlimit old, low;
    CHECK_SYS(getrlimit(RLIMIT_NOFILE, &old));
    low = old;
    low.rlim_cur = limit_leaving(EMFILE_SPARE);
    CHECK_SYS(setrlimit(RLIMIT_NOFILE, &low));

    edo_task *acc, *ct[EMFILE_CLIENTS];
    CHECK_OK(edo_spawn(&acc, emfile_acceptor, env));
    for (int i = 0; i < EMFILE_CLIENTS; i++)
        CHECK_OK(edo_spawn(&ct[i], emfile_client_task, &cl[i]));
    WAIT_UNTIL(atomic_load(&env->accept_errors) > 0, 5000);
    CHECK_EQ(atomic_load(&env->accepted), EMFILE_SPARE);

    /* Over a second of EMFILE, accept returns a handful of times, not thousands. */
    int r0 = atomic_load(&env->accept_returns);
    CHECK_EQ(edo_sleep(1000), 0);
    int returns = atomic_load(&env->accept_returns) - r0;
    printf("    accept returned %d times in 1 s of EMFILE (%d errors in all)\n", returns,
           atomic_load(&env->accept_errors));
    CHECK_LT(returns, 200);
    CHECK_GE(atomic_load(&env->accept_errors), 2);
    CHECK_EQ(atomic_load(&env->accepted), EMFILE_SPARE);
    /* The runtime went on meanwhile: the accepted ones were served. */
    CHECK_EQ(atomic_load(&env->clients_ok), EMFILE_SPARE);

    /* Descriptors come free (the limit still low): the listener serves everyone, a few
     * at a time. */
    int64_t release_at = edo_now();
    atomic_store(&env->release, 1);
    WAIT_UNTIL(atomic_load(&env->clients_ok) == EMFILE_CLIENTS &&
                   atomic_load(&env->served) == EMFILE_CLIENTS,
               15000);
    CHECK_SYS(setrlimit(RLIMIT_NOFILE, &old));

    CHECK_EQ(edo_join(acc, NULL), 0); /* then its first_accept_after_release is ours to read */
    printf("    first accept %" PRId64 " ms after descriptors were freed\n",
           env->first_accept_after_release - release_at);
    CHECK_LT(env->first_accept_after_release - release_at, 5000);
    for (int i = 0; i < EMFILE_CLIENTS; i++)
        CHECK_EQ(edo_join(ct[i], NULL), 0);
    CHECK_OK(edo_close(env->lis));
    free(env);
    return NULL;
}

static const test_root case_emfile = { .fn = emfile_root, .fds_closed = true };

static const test_case cases[] = {
    TEST_CASE(case_reset_mid_write), TEST_CASE(case_half_close),
    TEST_CASE(case_silent_peer),     TEST_CASE(case_garbage_bytes),
    TEST_CASE(case_slow_peer),       TEST_CASE(case_flood_without_reading),
    TEST_CASE(case_emfile),
};

TEST_MAIN(cases)
