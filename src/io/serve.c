/*
 * edo_tcp_serve: the accept loop, the connection limit, the stop and the grace period that
 * every server would otherwise write again. It is made of public parts only: a tracker for
 * the connections, a semaphore for the limit, a token for the stop, and two helper tasks.
 *
 * The calling task owns the server and waits on its token. The accept loop runs in a task
 * of its own, in a tracker of its own, so that stopping it is an abort of a task we never
 * need to join by hand: freeing that tracker aborts the loop and waits for it, which an
 * abort of the calling task cannot cut short (the loop uses the caller's stack). The
 * signal watcher lives the same way. Everything they share is on the caller's stack, and
 * every task that uses it has returned before edo_tcp_serve does.
 *
 * Why a token and not a flag: the stop has three sources (a signal, the user, a listener
 * that failed), and the user's handlers may want to hear of it; a token is the one thing
 * all of them can cancel and all of those can wait on.
 */
#include <edo.h>

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_GRACE_MS 5000
#define NOTE_EVERY_MS 1000 /* a recurring note (EMFILE, the limit) at most this often */

struct server {
    edo_io *lis;
    edo_conn_fn handler;
    void *arg;
    edo_serve_opts o;      /* a copy, defaults filled in */
    const int *sigs;       /* o.signals, or the default pair */
    int nsigs;             /* 0: no signals */
    edo_token *stop;       /* o.stop, or own_stop */
    edo_token *own_stop;   /* made here when the user gave none */
    edo_tracker *conns;    /* the handlers */
    edo_tracker *helpers;  /* the signal watcher */
    edo_tracker *acceptor; /* the accept loop, alone */
    edo_sem *slots;        /* o.max_conns permits, or NULL */
    char conn_name[32];    /* the handlers' task name */
    atomic_int signal;     /* the signal that stopped the server, 0 if none did */
    atomic_bool hurry;     /* a second signal: no grace period */
    int accept_rc;         /* why the accept loop ended on its own; the loop's, then ours */
};

/* One connection on its way to its handler's task. */
struct conn_start {
    struct server *srv;
    edo_io *io;
};

static void note(const struct server *srv, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void note(const struct server *srv, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (srv->o.log)
        srv->o.log(text, srv->arg);
    else
        fprintf(stderr, "%s: %s\n", srv->o.name, text);
}

/* "SIGTERM", or "signal 40" in buf. */
static const char *signal_name(int sig, char buf[16])
{
    switch (sig) {
    case SIGINT:
        return "SIGINT";
    case SIGTERM:
        return "SIGTERM";
    case SIGHUP:
        return "SIGHUP";
    case SIGQUIT:
        return "SIGQUIT";
    case SIGUSR1:
        return "SIGUSR1";
    case SIGUSR2:
        return "SIGUSR2";
    }
    snprintf(buf, 16, "signal %d", sig);
    return buf;
}

/* A connection's task: the handler, then the close it must not do itself. */
static void *conn_main(void *arg)
{
    struct conn_start cs = *(struct conn_start *)arg;
    struct server *srv = cs.srv;
    free(arg);
    if (srv->o.read_timeout_ms > 0 || srv->o.write_timeout_ms > 0)
        edo_io_set_timeout(cs.io, srv->o.read_timeout_ms, srv->o.write_timeout_ms);
    srv->handler(cs.io, srv->arg);
    edo_close(cs.io);
    /* Before the tracker hears of the end: once it is empty, the semaphore goes. */
    if (srv->slots)
        edo_sem_release(srv->slots, 1);
    return NULL;
}

/* Takes a connection slot, waiting for one at the limit. 0 or the wait's -ECANCELED. */
static int take_slot(struct server *srv, int64_t *quiet_until)
{
    if (!srv->slots || edo_sem_try_acquire(srv->slots, 1) == 0)
        return 0;
    if (edo_now() >= *quiet_until) {
        *quiet_until = edo_now() + NOTE_EVERY_MS;
        note(srv, "%d connections open, the limit: accepting again when one closes",
             srv->o.max_conns);
    }
    return edo_sem_acquire(srv->slots, 1);
}

/* Starts the handler of conn. 0, or -errno with conn closed (and a note). */
static int start_conn(struct server *srv, edo_io *conn)
{
    struct conn_start *cs = malloc(sizeof *cs);
    int rc = -ENOMEM;
    if (cs) {
        *cs = (struct conn_start){ srv, conn };
        edo_spawn_opts so = { .name = srv->conn_name };
        rc = edo_tracker_spawn_with(NULL, srv->conns, &so, conn_main, cs);
        if (rc < 0)
            free(cs);
    }
    if (rc < 0) {
        edo_close(conn);
        note(srv, "closing a new connection: cannot start its task: %s", edo_strerror(rc));
    }
    return rc;
}

/* The accept loop. Ends when aborted (the stop), or when the listener fails for good: then
 * it cancels the stop token itself, so that the server stops with the listener's error. */
static void *accept_main(void *arg)
{
    struct server *srv = arg;
    int64_t limit_quiet = 0, out_quiet = 0; /* no note of either kind before these times */
    edo_io *conn;
    int rc;

    for (;;) {
        rc = take_slot(srv, &limit_quiet);
        if (rc < 0)
            break;
        rc = edo_tcp_accept(&conn, srv->lis);
        if (rc == 0) {
            if (start_conn(srv, conn) == 0)
                continue;
        } else if (rc == -EMFILE || rc == -ENFILE || rc == -ENOBUFS || rc == -ENOMEM) {
            /* accept has already backed off before returning, so the loop cannot spin. */
            if (edo_now() >= out_quiet) {
                out_quiet = edo_now() + NOTE_EVERY_MS;
                note(srv, "accept: %s (retrying)", edo_strerror(rc));
            }
        } else if (rc != -ECANCELED && rc != -ETIMEDOUT && !edo_retryable(rc)) {
            /* The rest but -ETIMEDOUT (a read timeout set on a listener passed in: no
             * reason to stop) are the listener's own failures. */
            note(srv, "accept: %s: stopping", edo_strerror(rc));
            srv->accept_rc = rc;
            edo_token_cancel(srv->stop);
        }
        if (srv->slots)
            edo_sem_release(srv->slots, 1);
        if (rc == -ECANCELED || srv->accept_rc)
            break;
    }
    return NULL;
}

/* Waits for the stop signals: the first one stops the server, a second one (while the
 * connections have their grace period) aborts them. Ended by an abort. */
static void *watch_main(void *arg)
{
    struct server *srv = arg;
    int sig = edo_signal_wait(srv->sigs, srv->nsigs);
    if (sig < 0 && sig != -ECANCELED) /* another task waits for them (-EBUSY), say */
        note(srv, "cannot wait for the stop signals (%s): only the token stops the server",
             edo_strerror(sig));
    if (sig <= 0)
        return NULL;
    atomic_store(&srv->signal, sig);
    edo_token_cancel(srv->stop);
    sig = edo_signal_wait(srv->sigs, srv->nsigs);
    if (sig <= 0)
        return NULL;
    char buf[16];
    atomic_store(&srv->hurry, true);
    note(srv, "%s again: aborting the connections", signal_name(sig, buf));
    edo_tracker_abort_all(srv->conns);
    return NULL;
}

static int spawn_helper(struct server *srv, edo_tracker *tr, const char *what, edo_task_fn fn)
{
    char name[32];
    snprintf(name, sizeof name, "%s-%s", srv->o.name, what);
    edo_spawn_opts so = { .name = name };
    int rc = edo_tracker_spawn_with(NULL, tr, &so, fn, srv);
    if (rc < 0)
        note(srv, "cannot start: spawn the %s task: %s", what, edo_strerror(rc));
    return rc;
}

/* The options with their defaults; checks what can be checked before anything starts,
 * and takes the signals over. */
static int server_init(struct server *srv, const edo_serve_opts *opts, bool args_ok)
{
    static const int default_sigs[] = { SIGINT, SIGTERM };
    if (opts)
        srv->o = *opts;
    if (!srv->o.name)
        srv->o.name = "edo";
    if (srv->o.grace_ms == 0)
        srv->o.grace_ms = DEFAULT_GRACE_MS;
    if (!srv->o.no_signals) {
        srv->sigs = srv->o.signals ? srv->o.signals : default_sigs;
        srv->nsigs = srv->o.signals ? srv->o.nsignals : 2;
    }
    snprintf(srv->conn_name, sizeof srv->conn_name, "%s-conn", srv->o.name);
    const char *bad = !args_ok                       ? "no address, listener or handler"
                      : srv->o.max_conns < 0         ? "max_conns < 0"
                      : srv->sigs && srv->nsigs <= 0 ? "nsignals <= 0"
                                                     : NULL;
    if (bad) {
        note(srv, "cannot start: %s", bad);
        return -EINVAL;
    }
    if (!edo_self()) {
        note(srv, "cannot start: not called from a task");
        return -EDO_ENOTASK;
    }
    /* Signals first: what a stop needs is in place before the port is reachable, and a
     * signal that comes before the watcher waits is kept for it. */
    if (srv->nsigs) {
        int rc = edo_signal_take(srv->sigs, srv->nsigs);
        if (rc < 0) {
            note(srv, "cannot start: take over the stop signals: %s", edo_strerror(rc));
            return rc;
        }
    }
    return 0;
}

/* The note at a stop: why, and what happens to the connections still open. */
static void note_stop(struct server *srv, size_t open, int64_t grace)
{
    char buf[16], rest[96] = "";
    int sig = atomic_load(&srv->signal);
    const char *why = sig              ? signal_name(sig, buf)
                      : srv->accept_rc ? "the listener failed"
                                       : "stop token cancelled";
    if (open && grace >= 0) {
        char limit[32] = "as long as they take";
        if (grace != EDO_NEVER)
            snprintf(limit, sizeof limit, "up to %lld ms", (long long)grace);
        snprintf(rest, sizeof rest, "; %zu connection%s open, %s to finish%s%s%s", open,
                 open == 1 ? "" : "s", limit, sig ? " (" : "", sig ? why : "",
                 sig ? " again stops them now)" : "");
    }
    note(srv, "%s: stopping, no new connections%s", why, rest);
}

/* Everything after the listener: runs the server until a stop and takes it down. */
static int server_run(struct server *srv)
{
    int rc = 0;
    srv->stop = srv->o.stop;
    if (!srv->stop) {
        rc = edo_token_new(&srv->own_stop, NULL);
        srv->stop = srv->own_stop;
    }
    if (rc == 0)
        rc = edo_tracker_new(&srv->conns);
    if (rc == 0)
        rc = edo_tracker_new(&srv->helpers);
    if (rc == 0)
        rc = edo_tracker_new(&srv->acceptor);
    if (rc == 0 && srv->o.max_conns > 0)
        rc = edo_sem_new(&srv->slots, (uint64_t)srv->o.max_conns);
    if (rc < 0) {
        note(srv, "cannot start: %s", edo_strerror(rc));
        return rc;
    }
    if (srv->nsigs && (rc = spawn_helper(srv, srv->helpers, "signals", watch_main)) < 0)
        return rc;
    if ((rc = spawn_helper(srv, srv->acceptor, "accept", accept_main)) < 0)
        return rc;
    if (srv->o.on_listen) {
        char where[64];
        if (edo_local_addr(srv->lis, where, sizeof where) < 0)
            snprintf(where, sizeof where, "?");
        srv->o.on_listen(where, srv->arg);
    }

    /* Serving, until the token is cancelled, or the calling task is aborted or reaches its
     * deadline: then there is no time for a grace period. */
    int wait_rc = edo_token_wait(srv->stop);
    edo_tracker_free(srv->acceptor); /* stops accepting: aborts the loop, waits for it */
    srv->acceptor = NULL;
    edo_close(srv->lis); /* new connections are refused from here on */
    srv->lis = NULL;

    int64_t grace = wait_rc < 0 || atomic_load(&srv->hurry) ? -1 : srv->o.grace_ms;
    if (wait_rc == 0)
        note_stop(srv, edo_tracker_len(srv->conns), grace);
    int aborted = edo_tracker_shutdown(srv->conns, grace);
    if (aborted > 0)
        note(srv, "aborted %d connection%s %s", aborted, aborted == 1 ? "" : "s",
             wait_rc == -ECANCELED      ? "at once: the serving task was aborted"
             : wait_rc < 0              ? "at once: the serving task's deadline passed"
             : atomic_load(&srv->hurry) ? "at once"
             : grace < 0                ? "at once (no grace period)"
                                        : "still open after the grace period");
    return wait_rc < 0 ? wait_rc : srv->accept_rc;
}

static void server_fini(struct server *srv)
{
    edo_tracker_free(srv->acceptor);
    edo_tracker_free(srv->helpers); /* the watcher: aborted, waited for */
    edo_tracker_free(srv->conns);
    edo_sem_free(srv->slots);
    edo_token_free(srv->own_stop);
    if (srv->lis)
        edo_close(srv->lis);
}

int edo_tcp_serve_listener(edo_io *lis, edo_conn_fn handler, void *arg, const edo_serve_opts *opts)
{
    struct server srv = { .lis = lis, .handler = handler, .arg = arg };
    int rc = server_init(&srv, opts, lis && handler);
    if (rc == 0)
        rc = server_run(&srv);
    server_fini(&srv);
    return rc;
}

int edo_tcp_serve(const char *addr, edo_conn_fn handler, void *arg, const edo_serve_opts *opts)
{
    struct server srv = { .handler = handler, .arg = arg };
    int rc = server_init(&srv, opts, addr && handler);
    if (rc == 0) {
        rc = edo_tcp_listen_with(&srv.lis, addr, &srv.o.listen);
        if (rc < 0)
            note(&srv, "cannot listen on %s: %s", addr, edo_strerror(rc));
    }
    if (rc == 0)
        rc = server_run(&srv);
    server_fini(&srv);
    return rc;
}
