/*
 * http-server - HTTP/1.1 "plaintext" server: one task per connection, pipelining included.
 *
 *   build/examples/http-server [-p PORT] [-w WORKERS] [-b BACKEND] [-h]
 *
 *   -p PORT     port on 127.0.0.1 (default 8080; 0 picks a free one and prints it)
 *   -w WORKERS  worker threads of the runtime (0 or absent: EDO_WORKERS, else one per CPU;
 *               1: the current-thread flavour)
 *   -b BACKEND  epoll, uring (io_uring) or auto: io_uring where this build and the
 *               kernel have it, else epoll (default: EDO_BACKEND, else auto)
 *   -h          this help
 *
 * Every request gets the same 126-byte answer, TechEmpower's "plaintext" test:
 *
 *   HTTP/1.1 200 OK\r\nServer: e\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n
 *   Date: Thu, 26 Nov 2026 19:50:08 GMT\r\n\r\nHello, World!
 *
 * A request is everything up to and including the blank line that ends its head; the
 * method, path and headers are not looked at and bodies are not supported. Each
 * connection's task reads into a 4 KiB buffer, answers every complete request in it with
 * one edo_write_all of all the answers (so a pipelined batch costs one read and one write),
 * and keeps an incomplete last request for the next read. A head that does not fit doubles
 * the buffer, up to 64 KiB; a longer one closes the connection. Connections stay open
 * until the client closes them.
 *
 * SIGINT or SIGTERM stops the server cleanly (exit status 0), as in echo-server.c: the main
 * task aborts the accept loop, and shutting the runtime down aborts the connection tasks,
 * each of which frees its buffers and closes its socket.
 *
 * Try it:  build/examples/http-server -p 8080 &  curl -i http://127.0.0.1:8080/
 *
 * This is the server that bench/run-net.sh measures against the raw epoll, Go and Tokio
 * versions of the same program in ../shared/anchors, so it does the same work they do.
 */
#define _GNU_SOURCE /* memmem */
#include <edo.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define READ_BUF 4096      /* first read buffer of a connection, on its task's stack */
#define MAX_READ_BUF 65536 /* largest request head accepted */
#define OUT_ON_STACK 32    /* answers that fit in the write buffer on the stack */
#define MAX_WORKERS 1024   /* edo_runtime_opts.workers' limit */

#define RESP_HEAD                                                                                  \
    "HTTP/1.1 200 OK\r\nServer: e\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nDate: "
#define DATE_LEN 29 /* "Thu, 01 Jan 1970 00:00:00 GMT" */
#define RESP_TAIL "\r\n\r\nHello, World!"
#define RESP_LEN (sizeof RESP_HEAD - 1 + DATE_LEN + sizeof RESP_TAIL - 1)

struct server {
    char addr[32];  /* "127.0.0.1:PORT" */
    edo_io *lis;    /* the listening socket, owned by the accept loop */
    edo_task *main; /* the root task, which waits for a signal (borrowed) */
    int accept_rc;  /* why the accept loop stopped on its own */
};

/* The answer with the Date of second `sec`, one copy per worker thread: each worker
 * formats the date at most once a second and no thread ever reads another's copy, so there
 * is neither a lock nor a race on the hot path. */
struct response {
    time_t sec;
    char bytes[RESP_LEN + 1];
};
static _Thread_local struct response response = {
    .sec = -1,
    .bytes = RESP_HEAD "Thu, 01 Jan 1970 00:00:00 GMT" RESP_TAIL,
};

/* Writes count answers with the current Date to out. It must not suspend, and it is kept
 * out of line on purpose: a task can move to another worker at any call that suspends,
 * and a compiler may keep the address of a thread-local variable in a register across a
 * call, so the thread-local copy is only touched inside a function that never suspends. */
static __attribute__((noinline)) void put_responses(char *out, size_t count)
{
    struct response *r = &response;
    time_t now = time(NULL);

    if (now != r->sec) {
        struct tm tm;
        char date[DATE_LEN + 1];
        gmtime_r(&now, &tm);
        strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm); /* IMF-fixdate */
        memcpy(r->bytes + sizeof RESP_HEAD - 1, date, DATE_LEN);
        r->sec = now;
    }
    for (size_t i = 0; i < count; i++)
        memcpy(out + i * RESP_LEN, r->bytes, RESP_LEN);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: http-server [-p PORT] [-w WORKERS] [-b BACKEND] [-h]\n"
                 "  -p PORT     listen on 127.0.0.1:PORT (default 8080; 0: any free port)\n"
                 "  -w WORKERS  worker threads (0 or absent: EDO_WORKERS from the environment, "
                 "else one per CPU)\n"
                 "  -b BACKEND  epoll, uring or auto (default: EDO_BACKEND from the "
                 "environment, else auto)\n"
                 "  -h          show this help\n"
                 "Answers every HTTP request with \"Hello, World!\". SIGINT/SIGTERM stop it "
                 "(exit status 0).\n");
}

/* Grows a buffer that starts as an array on the task's stack (`stack`) to at least `need`
 * bytes by doubling, keeping its first `keep` bytes. Returns false, leaving *buf as it
 * was, if memory runs out. */
static bool grow(char **buf, size_t *cap, size_t need, size_t keep, char *stack)
{
    size_t n = *cap;
    while (n < need)
        n *= 2;
    char *p = malloc(n);
    if (!p)
        return false;
    memcpy(p, *buf, keep);
    if (*buf != stack)
        free(*buf);
    *buf = p;
    *cap = n;
    return true;
}

/* One connection. Owns conn: whatever ends the loop (the client closing, an error, a head
 * over MAX_READ_BUF, -ECANCELED at shutdown), the buffers are freed and the socket closed
 * here. Both buffers start on the task's stack, so a connection whose requests fit in
 * READ_BUF never calls malloc. */
static void *http_conn(void *arg)
{
    edo_io *conn = arg;
    char in_stack[READ_BUF], out_stack[OUT_ON_STACK * RESP_LEN];
    char *in = in_stack, *out = out_stack;
    size_t in_cap = sizeof in_stack, out_cap = sizeof out_stack;
    size_t len = 0; /* bytes in `in`: the start of a request not yet complete */
    ssize_t n;
    int rc = 0;

    for (;;) {
        if (len == in_cap) {
            /* The buffer holds one incomplete head and nothing else: make room for more of
             * it, up to the limit. */
            if (in_cap >= MAX_READ_BUF) {
                rc = -EMSGSIZE;
                break;
            }
            if (!grow(&in, &in_cap, in_cap * 2, len, in_stack)) {
                rc = -ENOMEM;
                break;
            }
        }
        n = edo_read(conn, in + len, in_cap - len);
        if (n <= 0) {
            rc = (int)n; /* 0: the client closed */
            break;
        }

        /* Find every complete request. The bytes before `len` hold no "\r\n\r\n" (or it
         * would have been answered), but one may straddle the old end. */
        size_t scan = len >= 3 ? len - 3 : 0, start = 0, count = 0;
        char *end;
        len += (size_t)n;
        while ((end = memmem(in + scan, len - scan, "\r\n\r\n", 4)) != NULL) {
            start = scan = (size_t)(end - in) + 4;
            count++;
        }
        if (count == 0)
            continue;

        /* At most one answer per 4 bytes read, so `out` stays within 32 times `in`. */
        if (count * RESP_LEN > out_cap && !grow(&out, &out_cap, count * RESP_LEN, 0, out_stack)) {
            rc = -ENOMEM;
            break;
        }
        put_responses(out, count);
        rc = edo_write_all(conn, out, count * RESP_LEN, NULL);
        if (rc < 0)
            break;
        memmove(in, in + start, len - start);
        len -= start;
    }

    /* What the client does (closing, resetting, sending a head that is too long) and the
     * shutdown's -ECANCELED end a connection quietly; only a failure of the server's own is
     * worth a line. */
    if (rc == -ENOMEM)
        fprintf(stderr, "http-server: closing a connection: %s\n", edo_strerror(rc));
    if (in != in_stack)
        free(in);
    if (out != out_stack)
        free(out);
    edo_close(conn);
    return NULL;
}

/* Accepts until aborted (by serve, on a signal) or until accepting fails for good; then
 * it aborts serve's wait for a signal, so that serve joins it either way. */
static void *accept_loop(void *arg)
{
    struct server *srv = arg;
    int64_t quiet_until = 0; /* no warning before this time */
    edo_io *conn;
    int rc;

    for (;;) {
        rc = edo_tcp_accept(&conn, srv->lis);
        if (rc < 0) {
            if (rc == -ECANCELED) { /* aborted by serve: a clean stop */
                rc = 0;
                break;
            }
            if (!edo_retryable(rc))
                break;
            /* Out of descriptors or memory: accept has already waited a little before
             * returning, so retrying cannot spin. Say so at most once a second. */
            if (rc != -ECONNABORTED && rc != -EINTR && rc != -EAGAIN && edo_now() >= quiet_until) {
                quiet_until = edo_now() + 1000;
                fprintf(stderr, "http-server: accept: %s (retrying)\n", edo_strerror(rc));
            }
            continue;
        }
        rc = edo_spawn(NULL, http_conn, conn); /* detached: it closes conn itself */
        if (rc < 0) {
            edo_close(conn);
            fprintf(stderr, "http-server: dropping a connection: spawn: %s\n", edo_strerror(rc));
        }
    }
    edo_close(srv->lis);
    if (rc < 0) {
        edo_fail(rc, "accept");
        srv->accept_rc = rc;
        edo_abort(srv->main); /* ends serve's wait for a signal */
    }
    return (void *)(intptr_t)rc;
}

/* The root task: listens, runs the accept loop, and waits for SIGINT/SIGTERM. Returns 0
 * for a clean stop, -errno if the server could not run. */
static void *serve(void *arg)
{
    static const int sigs[] = { SIGINT, SIGTERM };
    struct server *srv = arg;
    edo_task *acceptor;
    void *result = NULL;
    char where[48];
    int rc;

    srv->main = edo_self();
    /* Signals first: what a clean stop needs (a signalfd) is in place before the port is
     * open, and a Ctrl-C that comes before the wait below waits for it. */
    rc = edo_signal_take(sigs, 2);
    if (rc < 0)
        return (void *)(intptr_t)edo_fail(rc, "take over SIGINT and SIGTERM");
    rc = edo_tcp_listen(&srv->lis, srv->addr, 0);
    if (rc < 0) {
        fprintf(stderr, "http-server: cannot listen on %s: %s\n", srv->addr, edo_strerror(rc));
        return (void *)(intptr_t)rc;
    }
    if (edo_local_addr(srv->lis, where, sizeof where) < 0)
        snprintf(where, sizeof where, "%s", srv->addr);
    rc = edo_spawn(&acceptor, accept_loop, srv);
    if (rc < 0) {
        edo_close(srv->lis);
        return (void *)(intptr_t)edo_fail(rc, "spawn the accept loop");
    }
    /* Which backend the runtime chose: with -b auto (or none) it depends on the kernel. */
    edo_runtime *rt = edo_runtime_current();
    int nw = edo_runtime_workers(rt);
    printf("http-server: listening on %s (%s, %d worker%s)\n", where,
           edo_backend_name(edo_runtime_backend(rt)), nw, nw == 1 ? "" : "s");
    fflush(stdout);

    /* A Ctrl-C is a clean stop. */
    int sig = edo_signal_wait(sigs, 2);
    if (sig == -ECANCELED) {
        /* The accept loop failed and aborted this wait; it is returning. An aborted task
         * cannot wait for it, so let it go: the runtime's shutdown reclaims it. */
        edo_detach(acceptor);
        return (void *)(intptr_t)srv->accept_rc;
    }
    if (sig < 0)
        edo_fail(sig, "wait for SIGINT/SIGTERM");
    else
        fprintf(stderr, "http-server: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    edo_abort(acceptor); /* its accept returns -ECANCELED */
    edo_join(acceptor, &result);
    return result;
}

/* Parses a whole decimal number in [lo, hi]; returns false if s is anything else. */
static bool parse_num(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    static struct server srv;
    edo_runtime_opts opts = { 0 };
    edo_runtime *rt;
    long port = 8080, workers = 0;
    void *result = NULL;
    int c, rc;

    while ((c = getopt(argc, argv, "p:w:b:h")) != -1) {
        switch (c) {
        case 'p':
            if (!parse_num(optarg, 0, 65535, &port)) {
                fprintf(stderr, "http-server: bad port '%s'\n", optarg);
                return 2;
            }
            break;
        case 'w':
            if (!parse_num(optarg, 0, MAX_WORKERS, &workers)) {
                fprintf(stderr, "http-server: bad worker count '%s' (0-%d)\n", optarg, MAX_WORKERS);
                return 2;
            }
            break;
        case 'b':
            if (edo_backend_parse(optarg, &opts.backend) < 0) {
                fprintf(stderr, "http-server: bad backend '%s' (epoll, uring or auto)\n", optarg);
                return 2;
            }
            /* An explicit auto is the automatic choice, whatever EDO_BACKEND says. */
            if (opts.backend == EDO_BACKEND_AUTO)
                unsetenv("EDO_BACKEND");
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "http-server: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    snprintf(srv.addr, sizeof srv.addr, "127.0.0.1:%ld", port);

    opts.workers = (int)workers; /* 0: EDO_WORKERS, else one per CPU */
    rc = edo_runtime_new(&rt, &opts);
    if (rc < 0) {
        const char *env_w = getenv("EDO_WORKERS"), *env_b = getenv("EDO_BACKEND");
        fprintf(stderr, "http-server: cannot start a runtime");
        if (workers > 0)
            fprintf(stderr, " with %ld workers", workers);
        else if (env_w)
            fprintf(stderr, " with EDO_WORKERS=%s", env_w);
        if (opts.backend != EDO_BACKEND_AUTO)
            fprintf(stderr, " on %s", edo_backend_name(opts.backend));
        else if (env_b && *env_b)
            fprintf(stderr, " with EDO_BACKEND=%s", env_b);
        fprintf(stderr, ": %s\n", edo_strerror(rc));
        return 1;
    }
    rc = edo_block_on(rt, serve, &srv, &result);
    edo_runtime_free(rt); /* aborts the connection tasks; each frees and closes its own */
    if (rc < 0) {
        fprintf(stderr, "http-server: %s\n", edo_strerror(rc));
        return 1;
    }
    return (intptr_t)result < 0 ? 1 : 0;
}
