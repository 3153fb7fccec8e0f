/*
 * Task trackers and edo_tcp_serve. Trackers (on the paused clock): a wait bounded by a
 * deadline scope times out while tasks run, abort_all then lets every one unwind through
 * its cleanup; a closed tracker refuses spawns; shutdown with a grace period, with none,
 * and from an aborted caller; free waits for the cleanup; many tasks across workers.
 * Servers (real sockets on 127.0.0.1, port 0): exchanges in flight at SIGTERM, or at the
 * cancel of the stop token, finish while new connections are refused; a connection that
 * stalls past the grace period is aborted and its handler's cleanup runs; a second signal
 * ends the grace period; an abort of the serving task stops it at once; the connection
 * limit holds (the next connection is served when one closes, not dropped); a listener out
 * of descriptors (EMFILE) notes it at most once a second and serves again once some are
 * free; a listen that fails says why.
 *
 * edo-test: timeout=180
 */
#include "harness.h"

#include <pthread.h>
#include <sys/resource.h>

/* ---------------------------------------------------------------------------------------- */
/* Trackers                                                                                 */

typedef struct track_env {
    edo_token *never; /* never cancelled: what a stuck task waits for */
    atomic_int finished;
    atomic_int cleaned; /* stuck tasks whose wait failed with -ECANCELED */
} track_env;

static void *quick_task(void *arg)
{
    track_env *env = arg;
    CHECK_EQ(edo_sleep(10), 0);
    atomic_fetch_add(&env->finished, 1);
    return NULL;
}

/* Waits for ever; once aborted, its cleanup counts. */
static void *stuck_task(void *arg)
{
    track_env *env = arg;
    CHECK_ERR(edo_token_wait(env->never), -ECANCELED);
    atomic_fetch_add(&env->cleaned, 1);
    return NULL;
}

static void track_env_init(track_env *env)
{
    memset(env, 0, sizeof *env);
    CHECK_OK(edo_token_new(&env->never, NULL));
}

static void spawn_some(edo_tracker *tr, track_env *env, int quick, int stuck)
{
    for (int i = 0; i < quick; i++)
        CHECK_OK(edo_tracker_spawn(NULL, tr, quick_task, env));
    for (int i = 0; i < stuck; i++)
        CHECK_OK(edo_tracker_spawn(NULL, tr, stuck_task, env));
}

static void *tracker_wait_root(void *unused)
{
    track_env env;
    track_env_init(&env);
    edo_tracker *tr;
    CHECK_OK(edo_tracker_new(&tr));
    spawn_some(tr, &env, 5, 3);
    CHECK_GE(edo_tracker_len(tr), 3);
    edo_tracker_close(tr);
    CHECK(edo_tracker_closed(tr));

    /* A wait with a deadline gives up while the stuck ones run, and leaves them be. */
    int64_t t0 = edo_now();
    int64_t scope = edo_timeout_begin(1000);
    CHECK_ERR(edo_tracker_wait(tr), -ETIMEDOUT);
    edo_deadline_end(scope);
    CHECK_GE(edo_now() - t0, 1000);
    CHECK_EQ(atomic_load(&env.finished), 5);
    CHECK_EQ(edo_tracker_len(tr), 3);
    CHECK_EQ(atomic_load(&env.cleaned), 0);

    /* Aborted, they unwind; the wait then sees them all gone. */
    edo_tracker_abort_all(tr);
    CHECK_EQ(edo_tracker_wait(tr), 0);
    CHECK_EQ(atomic_load(&env.cleaned), 3);
    CHECK_EQ(edo_tracker_len(tr), 0);
    edo_tracker_abort_all(tr); /* nothing left: does nothing */
    edo_tracker_free(tr);
    edo_token_free(env.never);
    return NULL;
}

static void case_tracker_wait_deadline_abort(void)
{
    run_paused(tracker_wait_root, NULL);
}

static void *echo_arg_task(void *arg)
{
    return arg;
}

static void *tracker_closed_root(void *unused)
{
    track_env env;
    track_env_init(&env);
    edo_task *t = (edo_task *)&env; /* not NULL: a failed spawn must clear it */

    CHECK_ERR(edo_tracker_new(NULL), -EINVAL);
    CHECK_ERR(edo_tracker_spawn(&t, NULL, quick_task, &env), -EINVAL);
    CHECK(t == NULL);
    CHECK_ERR(edo_tracker_wait(NULL), -EINVAL);
    CHECK_ERR(edo_tracker_shutdown(NULL, 0), -EINVAL);
    CHECK_EQ(edo_tracker_len(NULL), 0);
    CHECK(!edo_tracker_closed(NULL));
    edo_tracker_close(NULL);
    edo_tracker_abort_all(NULL);
    edo_tracker_free(NULL);

    edo_tracker *tr;
    CHECK_OK(edo_tracker_new(&tr));
    CHECK(!edo_tracker_closed(tr));
    CHECK_ERR(edo_tracker_spawn(NULL, tr, NULL, NULL), -EINVAL);
    /* Open and empty: a wait waits for the close, since more may come. */
    int64_t scope = edo_timeout_begin(50);
    CHECK_ERR(edo_tracker_wait(tr), -ETIMEDOUT);
    edo_deadline_end(scope);

    /* A handle joins as edo_spawn's does, with the function's result. */
    CHECK_OK(edo_tracker_spawn(&t, tr, echo_arg_task, VAL(7)));
    void *res = NULL;
    CHECK_EQ(edo_join(t, &res), 0);
    CHECK_EQ(INT(res), 7);

    edo_tracker_close(tr);
    edo_tracker_close(tr); /* twice: nothing */
    CHECK(edo_tracker_closed(tr));
    t = (edo_task *)&env;
    CHECK_ERR(edo_tracker_spawn(&t, tr, quick_task, &env), -EDO_ECLOSED);
    CHECK(t == NULL);
    CHECK_ERR(edo_tracker_spawn(NULL, tr, quick_task, &env), -EDO_ECLOSED);
    CHECK_EQ(edo_tracker_len(tr), 0);
    CHECK_EQ(edo_tracker_wait(tr), 0);
    CHECK_EQ(edo_yield(), 0);
    CHECK_EQ(atomic_load(&env.finished), 0); /* nothing was spawned */
    edo_tracker_free(tr);
    edo_token_free(env.never);
    return NULL;
}

static void case_tracker_closed_refuses(void)
{
    run_paused(tracker_closed_root, NULL);
}

/* Spawns stuck tasks into its tracker, waits to be aborted, then shuts the tracker down. */
typedef struct shut_caller {
    track_env *env;
    edo_tracker *tr;
    atomic_int ready;
} shut_caller;

static void *shut_caller_task(void *arg)
{
    shut_caller *sc = arg;
    spawn_some(sc->tr, sc->env, 0, 2);
    atomic_store(&sc->ready, 1);
    CHECK_ERR(edo_token_wait(sc->env->never), -ECANCELED);
    /* Aborted: no grace period, and the wait for the cleanup is not cut short. */
    int n = edo_tracker_shutdown(sc->tr, EDO_NEVER);
    CHECK_EQ(atomic_load(&sc->env->cleaned), 2);
    return VAL(n);
}

static void *tracker_shutdown_root(void *unused)
{
    track_env env;
    track_env_init(&env);
    edo_tracker *tr;

    /* Some finish within the grace period, the stuck ones are aborted at its end. */
    CHECK_OK(edo_tracker_new(&tr));
    spawn_some(tr, &env, 4, 2);
    int64_t t0 = edo_now();
    CHECK_EQ(edo_tracker_shutdown(tr, 500), 2);
    CHECK_GE(edo_now() - t0, 500);
    CHECK_EQ(atomic_load(&env.finished), 4);
    CHECK_EQ(atomic_load(&env.cleaned), 2);
    CHECK_EQ(edo_tracker_len(tr), 0);
    CHECK(edo_tracker_closed(tr));
    CHECK_ERR(edo_tracker_spawn(NULL, tr, quick_task, &env), -EDO_ECLOSED);
    edo_tracker_free(tr);

    /* All finish in time: nothing aborted, and no waiting for the whole grace period. */
    CHECK_OK(edo_tracker_new(&tr));
    spawn_some(tr, &env, 3, 0);
    t0 = edo_now();
    CHECK_EQ(edo_tracker_shutdown(tr, 60000), 0);
    CHECK_LT(edo_now() - t0, 60000);
    CHECK_EQ(atomic_load(&env.finished), 7);
    edo_tracker_free(tr);

    /* No grace period: aborted at once. */
    CHECK_OK(edo_tracker_new(&tr));
    spawn_some(tr, &env, 0, 3);
    CHECK_EQ(edo_tracker_shutdown(tr, -1), 3);
    CHECK_EQ(atomic_load(&env.cleaned), 5);
    edo_tracker_free(tr);

    /* From a caller that has been aborted. */
    shut_caller sc = { .env = &env };
    CHECK_OK(edo_tracker_new(&sc.tr));
    edo_task *t;
    CHECK_OK(edo_spawn(&t, shut_caller_task, &sc));
    WAIT_UNTIL(atomic_load(&sc.ready), 5000);
    test_wait_parked(t, EDO_WAIT_NOTIFY);
    atomic_store(&env.cleaned, 0);
    edo_abort(t);
    void *res = NULL;
    CHECK_ERR(edo_join(t, &res), -EDO_EABORTED);
    CHECK_EQ(INT(res), 2);
    CHECK_EQ(edo_tracker_len(sc.tr), 0);
    edo_tracker_free(sc.tr);
    edo_token_free(env.never);
    return NULL;
}

static void case_tracker_shutdown(void)
{
    run_paused(tracker_shutdown_root, NULL);
}

/* A quick task that may be aborted in its sleep. */
static void *tolerant_quick(void *arg)
{
    track_env *env = arg;
    if (edo_sleep(10) == 0)
        atomic_fetch_add(&env->finished, 1);
    return NULL;
}

static void *tracker_free_root(void *unused)
{
    track_env env;
    track_env_init(&env);
    edo_tracker *tr;
    CHECK_OK(edo_tracker_new(&tr));
    for (int i = 0; i < 2; i++)
        CHECK_OK(edo_tracker_spawn(NULL, tr, tolerant_quick, &env));
    spawn_some(tr, &env, 0, 4);
    /* Open, tasks running: free closes, aborts and waits for every cleanup. */
    edo_tracker_free(tr);
    CHECK_EQ(atomic_load(&env.cleaned), 4);
    CHECK_EQ(atomic_load(&env.finished), 0); /* aborted in their sleep */
    edo_token_free(env.never);
    return NULL;
}

static void case_tracker_free_waits(void)
{
    run_paused(tracker_free_root, NULL);
}

/* Many short tasks through trackers across workers: spawns race the ends of others, some
 * rounds abort midway. */
enum { MANY_ROUNDS = TEST_SCALE(20, 10, 5), MANY_TASKS = TEST_SCALE(200, 100, 50) };

static void *yielder_task(void *arg)
{
    atomic_int *ends = arg;
    for (int i = 0; i < 3; i++)
        if (edo_yield() < 0)
            break;
    atomic_fetch_add(ends, 1);
    return NULL;
}

static void *tracker_many_root(void *unused)
{
    atomic_int ends = 0;
    int spawned = 0;
    for (int r = 0; r < MANY_ROUNDS; r++) {
        edo_tracker *tr;
        CHECK_OK(edo_tracker_new(&tr));
        for (int i = 0; i < MANY_TASKS; i++) {
            CHECK_OK(edo_tracker_spawn(NULL, tr, yielder_task, &ends));
            spawned++;
            if (r % 3 == 1 && i == MANY_TASKS / 2)
                edo_tracker_abort_all(tr);
        }
        edo_tracker_close(tr);
        CHECK_EQ(edo_tracker_wait(tr), 0);
        CHECK_EQ(edo_tracker_len(tr), 0);
        CHECK_EQ(atomic_load(&ends), spawned);
        edo_tracker_free(tr);
    }
    return NULL;
}

static void case_tracker_many(void)
{
    test_run(tracker_many_root, NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* Servers                                                                                  */

enum { MAX_NOTES = 64 };

/* What a server case shares between its root, its server task, the handlers and the
 * clients, which may each run on another worker. */
typedef struct srv_env {
    edo_serve_opts o;
    const char *listen_addr; /* for edo_tcp_serve; NULL: lis */
    edo_io *lis;             /* for edo_tcp_serve_listener */
    char addr[48];           /* where it listens, from on_listen */
    atomic_int listening;
    edo_token *gate;     /* cancelled when gated handlers may answer */
    edo_token *release;  /* cancelled when clients may close */
    atomic_int started;  /* handlers that have read their request */
    atomic_int answered; /* handlers that wrote their answer */
    atomic_int cleaned;  /* stalled handlers whose read failed with -ECANCELED */
    atomic_int active, max_active;
    atomic_int served[8]; /* conn-limit case: which clients a handler has seen */
    atomic_int clients_ok;
    pthread_mutex_t notes_lock;
    int nnotes;
    char notes[MAX_NOTES][256];
    int64_t note_at[MAX_NOTES]; /* edo_now() */
} srv_env;

static void on_listen_cb(const char *addr, void *arg)
{
    srv_env *env = arg;
    snprintf(env->addr, sizeof env->addr, "%s", addr);
    atomic_store(&env->listening, 1);
}

static void log_cb(const char *text, void *arg)
{
    srv_env *env = arg;
    printf("    note: %s\n", text);
    pthread_mutex_lock(&env->notes_lock);
    if (env->nnotes < MAX_NOTES) {
        snprintf(env->notes[env->nnotes], sizeof env->notes[0], "%s", text);
        env->note_at[env->nnotes++] = edo_now();
    }
    pthread_mutex_unlock(&env->notes_lock);
}

/* How many notes contain s. */
static int notes_with(srv_env *env, const char *s)
{
    int n = 0;
    pthread_mutex_lock(&env->notes_lock);
    for (int i = 0; i < env->nnotes; i++)
        n += strstr(env->notes[i], s) != NULL;
    pthread_mutex_unlock(&env->notes_lock);
    return n;
}

static srv_env *srv_env_new(void)
{
    srv_env *env = calloc(1, sizeof *env);
    pthread_mutex_init(&env->notes_lock, NULL);
    CHECK_OK(edo_token_new(&env->gate, NULL));
    CHECK_OK(edo_token_new(&env->release, NULL));
    env->listen_addr = "127.0.0.1:0";
    env->o.on_listen = on_listen_cb;
    env->o.log = log_cb;
    env->o.name = "test-serve";
    env->o.grace_ms = 60000; /* a grace period that ends is a case of its own */
    return env;
}

static void srv_env_free(srv_env *env)
{
    edo_token_free(env->gate);
    edo_token_free(env->release);
    edo_token_free(env->o.stop);
    pthread_mutex_destroy(&env->notes_lock);
    free(env);
}

/* Gives the server a stop token of the test's, and no signals. */
static void use_token(srv_env *env)
{
    CHECK_OK(edo_token_new(&env->o.stop, NULL));
    env->o.no_signals = true;
}

typedef struct srv_run {
    srv_env *env;
    edo_conn_fn handler;
} srv_run;

static void *server_task(void *arg)
{
    srv_run *sr = arg;
    srv_env *env = sr->env;
    int rc = env->listen_addr ? edo_tcp_serve(env->listen_addr, sr->handler, env, &env->o)
                              : edo_tcp_serve_listener(env->lis, sr->handler, env, &env->o);
    free(sr);
    return VAL(rc);
}

/* Starts the server task and waits until it listens. */
static edo_task *server_start(srv_env *env, edo_conn_fn handler)
{
    srv_run *sr = malloc(sizeof *sr);
    *sr = (srv_run){ env, handler };
    edo_task *t;
    CHECK_OK(edo_spawn(&t, server_task, sr));
    WAIT_UNTIL(atomic_load(&env->listening), 10000);
    CHECK_GT(test_port_of(env->addr), 0);
    return t;
}

/* Joins the server task, which must return want within 20 s (a generous bound on a stop
 * whose grace period is not what is waited for). */
static void server_join(edo_task *t, int want)
{
    void *res = VAL(-12345);
    int64_t scope = edo_timeout_begin(20000);
    int rc = edo_join(t, &res);
    edo_deadline_end(scope);
    CHECK_MSG(rc == 0, "the server did not return: %s", edo_strerror(rc));
    CHECK_EQ(INT(res), want);
}

/* The stop: SIGTERM to the process, or the cancel of the server's token. */
static void server_stop(srv_env *env)
{
    if (env->o.stop)
        edo_token_cancel(env->o.stop);
    else
        CHECK_SYS(kill(getpid(), SIGTERM));
}

/* Waits until the server has stopped accepting (its note comes after the listener is
 * closed), then checks that a new connection is refused. */
static void check_refused_after_stop(srv_env *env)
{
    WAIT_UNTIL(notes_with(env, "stopping, no new connections") == 1, 10000);
    edo_io *c = NULL;
    CHECK_ERR(edo_tcp_connect(&c, env->addr, 5000), -ECONNREFUSED);
}

/* Reads "ping", waits for the gate, answers "pong". */
static void gated_handler(edo_io *conn, void *arg)
{
    srv_env *env = arg;
    char buf[4];
    CHECK_OK(edo_read_exact(conn, buf, 4, NULL));
    CHECK(memcmp(buf, "ping", 4) == 0);
    atomic_fetch_add(&env->started, 1);
    CHECK_EQ(edo_token_wait(env->gate), 0); /* in the grace period, not aborted */
    CHECK_OK(edo_write_all(conn, "pong", 4, NULL));
    atomic_fetch_add(&env->answered, 1);
}

/* Sends "ping", expects "pong" and then the end of the stream: the server closed. */
static void *ping_client(void *arg)
{
    srv_env *env = arg;
    edo_io *c;
    CHECK_OK(edo_tcp_connect(&c, env->addr, 10000));
    edo_io_set_timeout(c, 30000, 30000);
    CHECK_OK(edo_write_all(c, "ping", 4, NULL));
    char buf[8];
    CHECK_OK(edo_read_exact(c, buf, 4, NULL));
    CHECK(memcmp(buf, "pong", 4) == 0);
    CHECK_EQ(edo_read(c, buf, sizeof buf), 0);
    CHECK_OK(edo_close(c));
    atomic_fetch_add(&env->clients_ok, 1);
    return NULL;
}

enum { INFLIGHT = 4 };

static void *inflight_root(void *arg)
{
    srv_env *env = arg;
    edo_task *srv = server_start(env, gated_handler);
    edo_task *cl[INFLIGHT];
    for (int i = 0; i < INFLIGHT; i++)
        CHECK_OK(edo_spawn(&cl[i], ping_client, env));
    WAIT_UNTIL(atomic_load(&env->started) == INFLIGHT, 10000);

    server_stop(env);
    check_refused_after_stop(env);
    CHECK_EQ(notes_with(env, "4 connections open"), 1);
    CHECK_EQ(atomic_load(&env->answered), 0);
    edo_token_cancel(env->gate); /* the exchanges in flight finish */
    for (int i = 0; i < INFLIGHT; i++)
        CHECK_EQ(edo_join(cl[i], NULL), 0);
    server_join(srv, 0);
    CHECK_EQ(atomic_load(&env->answered), INFLIGHT);
    CHECK_EQ(atomic_load(&env->clients_ok), INFLIGHT);
    CHECK_EQ(notes_with(env, "aborted"), 0);
    return NULL;
}

static void case_serve_sigterm_inflight_finish(void)
{
    srv_env *env = srv_env_new();
    test_run_fds_closed(inflight_root, env);
    srv_env_free(env);
}

static void case_serve_token_inflight_finish(void)
{
    srv_env *env = srv_env_new();
    use_token(env);
    test_run_fds_closed(inflight_root, env);
    CHECK(edo_token_cancelled(env->o.stop));
    srv_env_free(env);
}

/* Reads its request, then waits for more that never comes: only an abort ends it. */
static void stall_handler(edo_io *conn, void *arg)
{
    srv_env *env = arg;
    char buf[4];
    CHECK_OK(edo_read_exact(conn, buf, 4, NULL));
    atomic_fetch_add(&env->started, 1);
    CHECK_ERR(edo_read(conn, buf, sizeof buf), -ECANCELED);
    atomic_fetch_add(&env->cleaned, 1);
}

/* Sends its request, then waits for the server to end the connection. */
static void *stall_client(void *arg)
{
    srv_env *env = arg;
    edo_io *c;
    CHECK_OK(edo_tcp_connect(&c, env->addr, 10000));
    edo_io_set_timeout(c, 60000, 30000);
    CHECK_OK(edo_write_all(c, "wait", 4, NULL));
    char buf[8];
    ssize_t n = edo_read(c, buf, sizeof buf);
    CHECK_MSG(n == 0 || n == -ECONNRESET, "read: %s", edo_strerror((int)n));
    CHECK_OK(edo_close(c));
    atomic_fetch_add(&env->clients_ok, 1);
    return NULL;
}

enum { STALLERS = 2, STALL_GRACE_MS = 300 };

/* Spawns the stalling clients and waits until their handlers have their requests. */
static void start_stallers(srv_env *env, edo_task **cl)
{
    for (int i = 0; i < STALLERS; i++)
        CHECK_OK(edo_spawn(&cl[i], stall_client, env));
    WAIT_UNTIL(atomic_load(&env->started) == STALLERS, 10000);
}

static void join_stallers(srv_env *env, edo_task **cl)
{
    for (int i = 0; i < STALLERS; i++)
        CHECK_EQ(edo_join(cl[i], NULL), 0);
    CHECK_EQ(atomic_load(&env->cleaned), STALLERS);
    CHECK_EQ(atomic_load(&env->clients_ok), STALLERS);
}

static void *stall_root(void *arg)
{
    srv_env *env = arg;
    env->o.grace_ms = STALL_GRACE_MS;
    edo_task *srv = server_start(env, stall_handler), *cl[STALLERS];
    start_stallers(env, cl);

    int64_t stop_at = edo_now();
    server_stop(env);
    server_join(srv, 0);
    /* The grace period was given in full (a lower bound: it cannot depend on speed). */
    CHECK_GE(edo_now() - stop_at, STALL_GRACE_MS);
    CHECK_EQ(notes_with(env, "aborted 2 connections still open after the grace period"), 1);
    join_stallers(env, cl);
    return NULL;
}

static void case_serve_stall_aborted(void)
{
    srv_env *env = srv_env_new();
    use_token(env);
    test_run_fds_closed(stall_root, env);
    srv_env_free(env);
}

/* SIGTERM, then SIGTERM again while the grace period (a minute) runs: aborted at once. */
static void *second_signal_root(void *arg)
{
    srv_env *env = arg;
    edo_task *srv = server_start(env, stall_handler), *cl[STALLERS];
    start_stallers(env, cl);
    server_stop(env);
    WAIT_UNTIL(notes_with(env, "(SIGTERM again stops them now)") == 1, 10000);
    CHECK_SYS(kill(getpid(), SIGTERM));
    server_join(srv, 0);
    CHECK_EQ(notes_with(env, "SIGTERM again: aborting the connections"), 1);
    join_stallers(env, cl);
    return NULL;
}

static void case_serve_second_signal(void)
{
    srv_env *env = srv_env_new();
    test_run_fds_closed(second_signal_root, env);
    srv_env_free(env);
}

/* The serving task is aborted (as edo_main does when its root returns): no grace period,
 * the handlers are aborted, and it returns -ECANCELED once all have returned. */
static void *caller_aborted_root(void *arg)
{
    srv_env *env = arg;
    edo_task *srv = server_start(env, stall_handler), *cl[STALLERS];
    start_stallers(env, cl);
    edo_abort(srv);
    void *res = NULL;
    CHECK_ERR(edo_join(srv, &res), -EDO_EABORTED);
    CHECK_EQ(INT(res), -ECANCELED);
    CHECK_EQ(atomic_load(&env->cleaned), STALLERS); /* before edo_tcp_serve returned */
    CHECK_EQ(notes_with(env, "aborted 2 connections at once: the serving task was aborted"), 1);
    CHECK_EQ(notes_with(env, "stopping"), 0);
    join_stallers(env, cl);
    return NULL;
}

static void case_serve_caller_aborted(void)
{
    srv_env *env = srv_env_new();
    use_token(env);
    test_run_fds_closed(caller_aborted_root, env);
    srv_env_free(env);
}

/* The connection limit: MAX_CONNS handlers at once; the next connection waits in the
 * backlog until one closes, and is served then. */
enum { MAX_CONNS = 2, LIMIT_CLIENTS = 3 };

static void limit_handler(edo_io *conn, void *arg)
{
    srv_env *env = arg;
    unsigned char who;
    CHECK_OK(edo_read_exact(conn, &who, 1, NULL));
    CHECK_LT(who, LIMIT_CLIENTS);
    int now = atomic_fetch_add(&env->active, 1) + 1;
    int max = atomic_load(&env->max_active);
    while (now > max && !atomic_compare_exchange_weak(&env->max_active, &max, now)) {
    }
    atomic_store(&env->served[who], 1);
    atomic_fetch_add(&env->started, 1);
    char buf[16];
    CHECK_EQ(edo_read(conn, buf, sizeof buf), 0); /* until its client closes */
    atomic_fetch_sub(&env->active, 1);
}

typedef struct limit_client {
    srv_env *env;
    unsigned char who;
    edo_token *close; /* cancelled: close the connection */
} limit_client;

static void *limit_client_task(void *arg)
{
    limit_client *lc = arg;
    edo_io *c;
    CHECK_OK(edo_tcp_connect(&c, lc->env->addr, 10000));
    CHECK_OK(edo_write_all(c, &lc->who, 1, NULL));
    CHECK_EQ(edo_token_wait(lc->close), 0);
    CHECK_OK(edo_close(c));
    return NULL;
}

static void *limit_root(void *arg)
{
    srv_env *env = arg;
    env->o.max_conns = MAX_CONNS;
    edo_task *srv = server_start(env, limit_handler);
    limit_client lc[LIMIT_CLIENTS];
    edo_task *ct[LIMIT_CLIENTS];
    for (int i = 0; i < LIMIT_CLIENTS; i++) {
        lc[i] = (limit_client){ env, (unsigned char)i, NULL };
        CHECK_OK(edo_token_new(&lc[i].close, NULL));
        CHECK_OK(edo_spawn(&ct[i], limit_client_task, &lc[i]));
    }
    WAIT_UNTIL(atomic_load(&env->started) == MAX_CONNS, 10000);
    WAIT_UNTIL(notes_with(env, "the limit: accepting again when one closes") >= 1, 10000);
    /* The server waits for a slot now; whatever time passes, it takes no third one. */
    CHECK_EQ(edo_sleep(200), 0);
    CHECK_EQ(atomic_load(&env->started), MAX_CONNS);

    /* One closes: the waiting connection is served. */
    int first = atomic_load(&env->served[0]) ? 0 : 1;
    edo_token_cancel(lc[first].close);
    WAIT_UNTIL(atomic_load(&env->started) == LIMIT_CLIENTS, 10000);
    CHECK_LE(atomic_load(&env->max_active), MAX_CONNS);
    for (int i = 0; i < LIMIT_CLIENTS; i++)
        CHECK(atomic_load(&env->served[i]));

    for (int i = 0; i < LIMIT_CLIENTS; i++)
        edo_token_cancel(lc[i].close);
    for (int i = 0; i < LIMIT_CLIENTS; i++)
        CHECK_EQ(edo_join(ct[i], NULL), 0);
    WAIT_UNTIL(atomic_load(&env->active) == 0, 10000);
    server_stop(env);
    server_join(srv, 0);
    CHECK_LE(atomic_load(&env->max_active), MAX_CONNS);
    for (int i = 0; i < LIMIT_CLIENTS; i++)
        edo_token_free(lc[i].close);
    return NULL;
}

static void case_serve_conn_limit(void)
{
    srv_env *env = srv_env_new();
    use_token(env);
    test_run_fds_closed(limit_root, env);
    srv_env_free(env);
}

/* Out of descriptors: the server notes it (at most once a second), serves what it has, and
 * serves the rest once descriptors come free. */
enum { EMFILE_SPARE = 3, EMFILE_CLIENTS = 8 };

static void echo_handler(edo_io *conn, void *arg)
{
    char buf[64];
    ssize_t n;
    while ((n = edo_read(conn, buf, sizeof buf)) > 0)
        CHECK_OK(edo_write_all(conn, buf, (size_t)n, NULL));
}

typedef struct emfile_client {
    srv_env *env;
    edo_io *io; /* connected before the limit dropped: it waits in the backlog */
} emfile_client;

static void *emfile_client_task(void *arg)
{
    emfile_client *ec = arg;
    edo_io_set_timeout(ec->io, 30000, 30000);
    CHECK_OK(edo_write_all(ec->io, "ping", 4, NULL));
    char buf[4];
    CHECK_OK(edo_read_exact(ec->io, buf, 4, NULL));
    CHECK(memcmp(buf, "ping", 4) == 0);
    atomic_fetch_add(&ec->env->clients_ok, 1);
    /* Its descriptor and its connection's stay taken until the release. */
    CHECK_EQ(edo_token_wait(ec->env->release), 0);
    CHECK_OK(edo_close(ec->io));
    return NULL;
}

/* The descriptor limit under which exactly `spare` numbers are free now. */
static rlim_t limit_with_free(int spare)
{
    for (int fd = 0, seen = 0;; fd++)
        if (fcntl(fd, F_GETFD) < 0 && errno == EBADF && ++seen == spare)
            return (rlim_t)fd + 1;
}

static void *emfile_root(void *arg)
{
    srv_env *env = arg;
    env->listen_addr = NULL;
    env->lis = test_listen(env->addr, sizeof env->addr, 0);
    emfile_client ec[EMFILE_CLIENTS];
    for (int i = 0; i < EMFILE_CLIENTS; i++) {
        ec[i].env = env;
        CHECK_OK(edo_tcp_connect(&ec[i].io, env->addr, 10000));
    }
    struct rlimit old, low;
    CHECK_SYS(getrlimit(RLIMIT_NOFILE, &old));
    low = old;
    low.rlim_cur = limit_with_free(EMFILE_SPARE);
    CHECK_SYS(setrlimit(RLIMIT_NOFILE, &low));

    edo_task *srv = server_start(env, echo_handler), *ct[EMFILE_CLIENTS];
    for (int i = 0; i < EMFILE_CLIENTS; i++)
        CHECK_OK(edo_spawn(&ct[i], emfile_client_task, &ec[i]));
    WAIT_UNTIL(notes_with(env, "accept: Too many open files") >= 1 &&
                   atomic_load(&env->clients_ok) == EMFILE_SPARE,
               10000);
    CHECK_EQ(edo_sleep(100), 0);
    CHECK_EQ(atomic_load(&env->clients_ok), EMFILE_SPARE);

    /* Descriptors come free (the limit still low): the server serves everyone. */
    edo_token_cancel(env->release);
    WAIT_UNTIL(atomic_load(&env->clients_ok) == EMFILE_CLIENTS, 30000);
    CHECK_SYS(setrlimit(RLIMIT_NOFILE, &old));
    for (int i = 0; i < EMFILE_CLIENTS; i++)
        CHECK_EQ(edo_join(ct[i], NULL), 0);
    server_stop(env);
    server_join(srv, 0);

    /* At most one note a second, however often accept failed. */
    int n = 0;
    int64_t last = 0;
    pthread_mutex_lock(&env->notes_lock);
    for (int i = 0; i < env->nnotes; i++) {
        if (!strstr(env->notes[i], "accept: Too many open files"))
            continue;
        if (n++)
            CHECK_GE(env->note_at[i] - last, 1000);
        last = env->note_at[i];
    }
    pthread_mutex_unlock(&env->notes_lock);
    CHECK_GE(n, 1);
    return NULL;
}

static void case_serve_emfile(void)
{
    srv_env *env = srv_env_new();
    use_token(env);
    test_run_fds_closed(emfile_root, env);
    srv_env_free(env);
}

/* A server that cannot start says why and returns the error; on_listen is never called. */
static void *start_fails_root(void *arg)
{
    srv_env *env = arg;
    char addr[48];
    edo_io *taken = test_listen(addr, sizeof addr, 0);
    CHECK_ERR(edo_tcp_serve(addr, echo_handler, env, &env->o), -EADDRINUSE);
    char want[96];
    snprintf(want, sizeof want, "cannot listen on %s: %s", addr, edo_strerror(-EADDRINUSE));
    CHECK_EQ(notes_with(env, want), 1);
    CHECK_OK(edo_close(taken));

    CHECK_ERR(edo_tcp_serve("no such address", echo_handler, env, &env->o), -EINVAL);
    CHECK_EQ(notes_with(env, "cannot listen on no such address"), 1);
    CHECK_ERR(edo_tcp_serve(NULL, echo_handler, env, &env->o), -EINVAL);
    CHECK_ERR(edo_tcp_serve("127.0.0.1:0", NULL, env, &env->o), -EINVAL);
    CHECK_ERR(edo_tcp_serve_listener(NULL, echo_handler, env, &env->o), -EINVAL);
    env->o.max_conns = -1;
    CHECK_ERR(edo_tcp_serve("127.0.0.1:0", echo_handler, env, &env->o), -EINVAL);
    /* A listener given to a server that cannot start is closed all the same. */
    edo_io *lis = test_listen(addr, sizeof addr, 0);
    CHECK_ERR(edo_tcp_serve_listener(lis, echo_handler, env, &env->o), -EINVAL);
    CHECK_EQ(atomic_load(&env->listening), 0);
    return NULL;
}

static void case_serve_start_fails(void)
{
    srv_env *env = srv_env_new();
    use_token(env);
    CHECK_ERR(edo_tcp_serve("127.0.0.1:0", echo_handler, env, &env->o), -EDO_ENOTASK);
    CHECK_EQ(notes_with(env, "cannot start: not called from a task"), 1);
    test_run_fds_closed(start_fails_root, env);
    srv_env_free(env);
}

static const test_case cases[] = {
    TEST_CASE(case_tracker_wait_deadline_abort),
    TEST_CASE(case_tracker_closed_refuses),
    TEST_CASE(case_tracker_shutdown),
    TEST_CASE(case_tracker_free_waits),
    TEST_CASE(case_tracker_many),
    TEST_CASE(case_serve_sigterm_inflight_finish),
    TEST_CASE(case_serve_token_inflight_finish),
    TEST_CASE(case_serve_stall_aborted),
    TEST_CASE(case_serve_second_signal),
    TEST_CASE(case_serve_caller_aborted),
    TEST_CASE(case_serve_conn_limit),
    TEST_CASE(case_serve_emfile),
    TEST_CASE(case_serve_start_fails),
};

TEST_MAIN(cases)
