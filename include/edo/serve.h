/*
 * edo/serve.h - task trackers, and TCP servers with a graceful stop.
 * Included by edo.h; do not include it alone.
 *
 * A tracker keeps count of a group of tasks so that their owner can stop them together:
 * close it, give them a while to finish, abort the rest, and wait until every one has
 * returned. edo_tcp_serve is a whole server built on one: an accept loop that runs a
 * handler task per connection, holds a connection limit, rides out EMFILE, and on SIGINT,
 * SIGTERM or a cancelled token stops accepting and lets the connections finish within a
 * grace period before it aborts the rest. The conventions are edo.h's and edo/sync.h's.
 */
#ifndef EDO_SERVE_H
#define EDO_SERVE_H

#ifndef EDO_H
#error "include <edo.h>, which includes this header"
#endif

/* ---------------------------------------------------------------------------------------- */
/* Task trackers                                                                            */

/* A tracker counts the tasks spawned into it until each returns, and keeps nothing of
 * them afterwards (no results: for those, see edo_joinset). The typical life:
 *     edo_tracker_spawn(NULL, tr, fn, arg);      any number of times
 *     edo_tracker_close(tr);                     no more tasks from now on
 *     int64_t scope = edo_timeout_begin(5000);
 *     int rc = edo_tracker_wait(tr);             0: all returned; -ETIMEDOUT: some did not
 *     edo_deadline_end(scope);
 *     edo_tracker_free(tr);                      aborts the rest, waits for their cleanup
 * or, the same in one call, edo_tracker_shutdown(tr, 5000). */
typedef struct edo_tracker edo_tracker;

/* Creates an open tracker with no tasks. Returns 0, -EINVAL (tr NULL) or -ENOMEM. Any
 * thread. */
int edo_tracker_new(edo_tracker **tr);

/* Spawns fn(arg) as a task of tr, as edo_spawn does (the handle rules, the returns and
 * the spawn site are edo_spawn's; task NULL: detached, the usual case). The task counts
 * until fn returns. Returns -EDO_ECLOSED if tr is closed (nothing is spawned), -EINVAL if tr or
 * fn is NULL. From a task. */
#define edo_tracker_spawn(task, tr, fn, arg)                                                       \
    edo_tracker_spawn_at((task), (tr), NULL, (fn), (arg), EDO__HERE)

/* edo_tracker_spawn with a name and stack size (edo_spawn_opts; NULL: the defaults). */
#define edo_tracker_spawn_with(task, tr, opts, fn, arg)                                            \
    edo_tracker_spawn_at((task), (tr), (opts), (fn), (arg), EDO__HERE)

/* Closes tr: spawns into it fail with -EDO_ECLOSED from now on, and edo_tracker_wait can return
 * once its tasks are gone. The tasks already in it run on. Any thread; closing twice does
 * nothing; NULL does nothing. */
void edo_tracker_close(edo_tracker *tr);

/* Whether tr is closed (false for NULL). Any thread. */
bool edo_tracker_closed(edo_tracker *tr);

/* Tasks of tr that have not returned yet (0 for NULL). Any thread. */
size_t edo_tracker_len(edo_tracker *tr);

/* Waits until tr is closed and every one of its tasks has returned (suspends). An open
 * tracker is waited for until it is closed, even when it has no task now: a task that is
 * about to be spawned into it is not missed. Bound it with a deadline scope
 * (edo_timeout_begin) to wait at most so long. Returns 0, -EINVAL for NULL, or the wait's
 * -ETIMEDOUT/-ECANCELED (the tasks run on). Any thread. */
int edo_tracker_wait(edo_tracker *tr);

/* Aborts every task of tr that has not returned: their calls that suspend fail with
 * -ECANCELED, so each unwinds through its own cleanup (edo_abort). They count until they
 * have returned. Tasks spawned later (into a tracker still open) are not aborted. Does not
 * wait. Any thread; NULL does nothing. */
void edo_tracker_abort_all(edo_tracker *tr);

/* The graceful end of tr's tasks in one call: closes tr, waits up to grace_ms for its
 * tasks to return (< 0: not at all; EDO_NEVER: as long as they take), then aborts the ones
 * still running and waits until they have returned too. The caller's deadline, if it comes
 * first, ends the grace period, and an aborted caller gets none; the last wait is not cut
 * short by either: when it returns, no task of tr runs any more, so what they borrowed
 * from the caller may go.
 * Returns how many tasks had to be aborted (0: all returned in time), or -EINVAL for NULL.
 * From a task, or a thread outside the runtime. */
int edo_tracker_shutdown(edo_tracker *tr, int64_t grace_ms);

/* Closes tr, aborts its tasks that are still running, waits until all have returned (not
 * cut short by the caller's deadline or abort) and frees it. NULL does nothing. From a
 * task, or a thread outside the runtime, but not after the runtime's shutdown has
 * abandoned tasks of tr: those never return. */
void edo_tracker_free(edo_tracker *tr);

int edo_tracker_spawn_at(edo_task **task, edo_tracker *tr, const edo_spawn_opts *opts,
                         edo_task_fn fn, void *arg, const char *site);

/* ---------------------------------------------------------------------------------------- */
/* TCP servers                                                                              */

/* What edo_tcp_serve runs for each connection, in a task of its own: conn is the accepted
 * connection, arg the one given to edo_tcp_serve. The server owns conn: it closes it when
 * the handler returns, however the handler ends, so the handler must not close it
 * (edo_shutdown, to end the sending side, is fine). At a stop the handler is given the
 * grace period to finish, then aborted: its calls that suspend fail with -ECANCELED, and it
 * should return soon after. */
typedef void (*edo_conn_fn)(edo_io *conn, void *arg);

typedef struct edo_serve_opts {
    /* Stops the server when cancelled (edo_token_cancel, from any task or thread). A stop
     * signal or a failing listener cancels it too, so handlers that watch it (an
     * edo_case_cancel(stop) in their edo_select, or edo_token_cancelled between requests)
     * learn of a stop whatever its cause, and can finish early: say goodbye, close after
     * the request in progress. The server does not free it. NULL: the server makes a
     * token of its own, which handlers cannot see. */
    edo_token *stop;
    /* The nsignals signals that stop the server (taken over with edo_signal_take before
     * the port opens). NULL: SIGINT and SIGTERM. The same signal again during the grace
     * period ends the grace period at once. Only one task at a time may wait for a
     * signal: two servers in one program share one token and let one of them (or a task
     * of the program's) watch the signals. The signals stay taken after the server
     * returns, until the runtime is freed. */
    const int *signals;
    int nsignals;
    /* Watch no signal at all: only the token, or an abort or the deadline of the calling
     * task, stops the server. */
    bool no_signals;
    /* How long the connections open at a stop may take to finish, in ms, before they are
     * aborted. 0: 5000. EDO_NEVER: as long as they take. < 0: none, they are aborted at
     * once. */
    int64_t grace_ms;
    /* Most connections served at once. At the limit the server accepts nothing until one
     * of them closes: new connections wait in the listener's backlog, none is accepted
     * and then dropped. 0: no limit (the descriptor limit is the limit). */
    int max_conns;
    /* Each read (write) of a connection waits at most this many ms for data (for room),
     * then fails with -ETIMEDOUT, so that a client that goes quiet is cut off
     * (edo_io_set_timeout; the handler may change it). 0: no limit. */
    int64_t read_timeout_ms;
    int64_t write_timeout_ms;
    /* edo_tcp_serve only: how to listen (backlog, SO_REUSEPORT, IPV6_V6ONLY). */
    edo_listen_opts listen;
    /* Called once, when the server listens and is about to accept, with the address it is
     * bound to ("127.0.0.1:40123", the port that port 0 got) and arg: the moment to say
     * where it listens. Runs in the calling task; it must not stop the server itself
     * other than through the token. NULL: nothing. */
    void (*on_listen)(const char *addr, void *arg);
    /* Where the server's notes go: a listen that failed, accept failing for want of
     * descriptors or memory (at most one note a second), the connection limit reached (at
     * most one a second), the stop, and connections aborted at its end. text is one line
     * without its newline; arg is the one given to edo_tcp_serve. Called from the server's
     * tasks, which may be on two threads at once. NULL: standard error, as "NAME: text". */
    void (*log)(const char *text, void *arg);
    /* The server's name: the prefix of its notes on standard error, and of its tasks'
     * names ("NAME-conn", "NAME-accept"). NULL: "edo". */
    const char *name;
} edo_serve_opts;

/* Serves TCP on addr ("host:port", see edo_parse_addr; "127.0.0.1:0" picks a free port):
 * listens, and runs handler(conn, arg) in a task of its own for every connection (the
 * handler type says who closes conn) until a stop. A stop is one of the opts' signals
 * (SIGINT, SIGTERM by default), the cancel of opts->stop, or a listener that fails for
 * good. Then the server stops accepting and closes the listener (new connections are
 * refused), gives the open connections the grace period to finish, aborts the ones still
 * open, waits until every handler has returned, and returns. An abort or the deadline of
 * the calling task stops it too, without a grace period. A listener out of descriptors or
 * memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) is waited out, not a stop: edo_tcp_accept backs
 * off, and the server goes on once there are some again. opts may be NULL for the
 * defaults. Suspends, for the life of the server.
 *
 * Returns 0 after a stop by a signal or the token; -errno if the server could not start
 * (-EINVAL: a bad address or a NULL argument; the listen's error, such as -EADDRINUSE; the
 * signals' edo_signal_take error; -ENOMEM; -EDO_ENOTASK outside a task), each also written as a
 * note ("cannot listen on 127.0.0.1:80: Permission denied"); the listener's error if it
 * failed for good; -ECANCELED or -ETIMEDOUT if the calling task's abort or deadline
 * stopped it. The ten-line server:
 *     static void echo(edo_io *conn, void *arg)
 *     {
 *         char buf[4096];
 *         ssize_t n;
 *         while ((n = edo_read(conn, buf, sizeof buf)) > 0 &&
 *                edo_write_all(conn, buf, (size_t)n, NULL) == 0) {
 *         }
 *     }
 *     static void *serve(void *arg)
 *     {
 *         return edo_int_result(edo_tcp_serve("127.0.0.1:7000", echo, NULL, NULL));
 *     }
 *     int main(void) { return edo_main(serve, NULL); } */
int edo_tcp_serve(const char *addr, edo_conn_fn handler, void *arg, const edo_serve_opts *opts);

/* edo_tcp_serve on a listener the caller opened (edo_tcp_listen_with, or edo_io_wrap of a
 * socket that systemd passed): the server owns lis from the call on and closes it before
 * it returns, also when it cannot start. opts->listen is not used. */
int edo_tcp_serve_listener(edo_io *lis, edo_conn_fn handler, void *arg, const edo_serve_opts *opts);

#endif /* EDO_SERVE_H */
