/*
 * echo-server - TCP echo server: one task per connection, written as plain sequential C.
 *
 *   build/examples/echo-server [-p PORT] [-w WORKERS] [-b BACKEND] [-h]
 *
 *   -p PORT     port on 127.0.0.1 (default 7000; 0 picks a free one and prints it)
 *   -w WORKERS  worker threads of the runtime (default: EDO_WORKERS, else one per CPU;
 *               1: the current-thread flavour)
 *   -b BACKEND  epoll, uring (io_uring) or auto: io_uring where this build and the
 *               kernel have it, else epoll (default: EDO_BACKEND, else auto)
 *   -h          this help
 *
 * Every connection gets its own task: read what arrived, write all of it back, until the
 * peer closes or an error. The reads are edo_read_lent: the runtime lends a buffer only
 * once data is there, so a connection that waits holds no buffer (an idle one costs
 * about 4.2 KB: its task, its edo_io and one stack page). SIGINT or SIGTERM
 * stops the server cleanly (exit status 0): the main task receives the signal and aborts
 * the accept loop; shutting the runtime down then aborts the connection tasks, whose
 * pending read or write fails with -ECANCELED, so each one closes its own socket.
 *
 * Try it:  build/examples/echo-server -p 7000 &  build/examples/echo-client hi there
 *
 * This is also the server that bench/run-net.sh measures against raw epoll, Tokio and Go,
 * so the per-message path is exactly one edo_read_lent and one edo_write_all.
 */
#include <edo.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct server {
    char addr[32];  /* "127.0.0.1:PORT" */
    edo_io *lis;    /* the listening socket, owned by the accept loop */
    edo_task *main; /* the root task, which waits for a signal (borrowed) */
    int accept_rc;  /* why the accept loop stopped on its own */
};

static void usage(FILE *out)
{
    fprintf(out, "usage: echo-server [-p PORT] [-w WORKERS] [-b BACKEND] [-h]\n"
                 "  -p PORT     listen on 127.0.0.1:PORT (default 7000; 0: any free port)\n"
                 "  -w WORKERS  worker threads (default: EDO_WORKERS from the environment, "
                 "else one per CPU)\n"
                 "  -b BACKEND  epoll, uring or auto (default: EDO_BACKEND from the "
                 "environment, else auto)\n"
                 "  -h          show this help\n"
                 "Echoes every byte back. SIGINT/SIGTERM stop it (exit status 0).\n");
}

/* One connection. Owns conn: whatever ends the loop (EOF, an error, -ECANCELED at
 * shutdown), the socket is closed here. */
static void *echo_conn(void *arg)
{
    edo_io *conn = arg;
    edo_buf b;

    while (edo_read_lent(conn, &b) > 0) {
        int rc = edo_write_all(conn, b.data, b.len, NULL);
        edo_buf_release(&b);
        if (rc < 0)
            break;
    }
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
                fprintf(stderr, "echo-server: accept: %s (retrying)\n", edo_strerror(rc));
            }
            continue;
        }
        rc = edo_spawn(NULL, echo_conn, conn); /* detached: it closes conn itself */
        if (rc < 0) {
            edo_close(conn);
            fprintf(stderr, "echo-server: dropping a connection: spawn: %s\n", edo_strerror(rc));
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
        fprintf(stderr, "echo-server: cannot listen on %s: %s\n", srv->addr, edo_strerror(rc));
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
    printf("echo-server: listening on %s (%s, %d worker%s)\n", where,
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
        fprintf(stderr, "echo-server: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
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
    long port = 7000, workers = 0;
    void *result = NULL;
    int c, rc;

    while ((c = getopt(argc, argv, "p:w:b:h")) != -1) {
        switch (c) {
        case 'p':
            if (!parse_num(optarg, 0, 65535, &port)) {
                fprintf(stderr, "echo-server: bad port '%s'\n", optarg);
                return 2;
            }
            break;
        case 'w':
            if (!parse_num(optarg, 1, INT_MAX, &workers)) {
                fprintf(stderr, "echo-server: bad worker count '%s'\n", optarg);
                return 2;
            }
            break;
        case 'b':
            if (edo_backend_parse(optarg, &opts.backend) < 0) {
                fprintf(stderr, "echo-server: bad backend '%s' (epoll, uring or auto)\n", optarg);
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
        fprintf(stderr, "echo-server: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    snprintf(srv.addr, sizeof srv.addr, "127.0.0.1:%ld", port);

    opts.workers = (int)workers; /* 0: EDO_WORKERS, else one per CPU */
    rc = edo_runtime_new(&rt, &opts);
    if (rc < 0) {
        const char *env_w = getenv("EDO_WORKERS"), *env_b = getenv("EDO_BACKEND");
        fprintf(stderr, "echo-server: cannot start a runtime");
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
    edo_runtime_free(rt); /* aborts the connection tasks; each closes its socket */
    if (rc < 0) {
        fprintf(stderr, "echo-server: %s\n", edo_strerror(rc));
        return 1;
    }
    return (intptr_t)result < 0 ? 1 : 0;
}
