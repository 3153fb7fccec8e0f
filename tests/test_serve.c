/*
 * Task trackers (on the paused clock): a wait bounded by a deadline scope times out while
 * tasks run, abort_all then lets every one unwind through its cleanup; a closed tracker
 * refuses spawns; shutdown with a grace period, with none, and from an aborted caller;
 * free waits for the cleanup; many tasks across workers.
 *
 * edo-test: timeout=180
 */
#include "harness.h"

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
    CHECK_ERR(edo_tracker_spawn(&t, tr, quick_task, &env), -EPIPE);
    CHECK(t == NULL);
    CHECK_ERR(edo_tracker_spawn(NULL, tr, quick_task, &env), -EPIPE);
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
    CHECK_ERR(edo_tracker_spawn(NULL, tr, quick_task, &env), -EPIPE);
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
    CHECK_ERR(edo_join(t, &res), -ECANCELED);
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

static const test_case cases[] = {
    TEST_CASE(case_tracker_wait_deadline_abort),
    TEST_CASE(case_tracker_closed_refuses),
    TEST_CASE(case_tracker_shutdown),
    TEST_CASE(case_tracker_free_waits),
    TEST_CASE(case_tracker_many),
};

TEST_MAIN(cases)
