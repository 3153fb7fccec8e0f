/*
 * Runtime creation, edo_block_on, shutdown and edo_main.
 */
#include "core/runtime.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_STACK (64 * 1024)
#define DEFAULT_STACK_CACHE 256
#define DEFAULT_BLOCKING_MS 10
#define DEFAULT_SHUTDOWN_TIMEOUT_MS 5000

#define DEFAULT_BLOCKING_THREADS 512
#define DEFAULT_BLOCKING_KEEP_ALIVE_MS 10000
#define MAX_WORKERS 1024
#define DEFAULT_READ_BUF (16 * 1024)
#define DEFAULT_READ_BUFS 256
#define MAX_READ_BUFS 32768

static int env_workers(void)
{
    const char *s = getenv("EDO_WORKERS");
    if (!s || !*s)
        return 0;
    char *end;
    long n = strtol(s, &end, 10);
    if (*end || n < 0 || n > MAX_WORKERS)
        return -EINVAL;
    return (int)n;
}

/* The CPUs this process may run on (taskset and cgroups' cpusets included). */
static int cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void runtime_destroy(edo_runtime *rt)
{
    if (rt->workers) {
        for (int i = 0; i < rt->nworkers; i++) {
            if (rt->driver)
                rt->driver->worker_fini(&rt->workers[i]);
            edo__stack_cache_release(&rt->workers[i].stacks);
        }
        free(rt->workers);
    }
    if (rt->driver)
        rt->driver->fini(rt);
    free(rt->shards);
    free(rt->sleepers);
    pthread_mutex_destroy(&rt->inject_lock);
    pthread_mutex_destroy(&rt->idle_lock);
    pthread_mutex_destroy(&rt->pool_lock);
    edo__clock_fini(&rt->clock);
    edo__blocking_free(rt);
    edo__bt_release();
    free(rt);
}

static void *worker_main(void *arg);
static void stop_threads(edo_runtime *rt);

bool edo__reports_on(void)
{
    const char *s = getenv("EDO_LOG");
    return !s || strcmp(s, "0") != 0;
}

bool edo__log_chatty(void)
{
    const char *s = getenv("EDO_LOG");
    return s && *s && strcmp(s, "0") != 0;
}

/* The blocking threshold: the option, else EDO_BLOCKING_MS (a number, or "off"), else
 * 10 ms; -1 for none. */
static int64_t blocking_threshold(const edo_runtime_opts *opts)
{
    if (opts && opts->blocking_ms)
        return opts->blocking_ms < 0 ? -1 : opts->blocking_ms;
    const char *env = getenv("EDO_BLOCKING_MS");
    if (env && *env) {
        char *end;
        long long v = strtoll(env, &end, 10);
        if (!strcmp(env, "off") || (*end == 0 && v <= 0))
            return -1;
        if (*end == 0)
            return v;
        fprintf(stderr, "edo: EDO_BLOCKING_MS=%s is not a number of ms or \"off\"; using 10\n",
                env);
    }
    return DEFAULT_BLOCKING_MS;
}

int edo__runtime_new(edo_runtime **out, const edo_runtime_opts *opts, edo__driver_choice choose)
{
    *out = NULL;
    int workers = opts ? opts->workers : 0;
    if (workers < 0 || workers > MAX_WORKERS)
        return -EINVAL;
    if (workers == 0) {
        workers = env_workers();
        if (workers < 0)
            return workers;
        if (workers == 0)
            workers = cpu_count();
    }
    if (workers > MAX_WORKERS)
        workers = MAX_WORKERS;

    edo_runtime *rt = calloc(1, sizeof *rt);
    if (!rt)
        return -ENOMEM;
    edo__bt_retain();     /* released by runtime_destroy, on every path */
    edo__cycles_to_ns(0); /* start calibrating the busy-time clock */
    rt->born_cycles = edo__cycles();
    rt->blocking_ms = blocking_threshold(opts);
    atomic_store(&edo__hist_mul, edo__cycles_to_ns(1ULL << 32) / 1000);
    size_t page = edo__page_size();
    size_t stack = opts && opts->stack_size ? opts->stack_size : DEFAULT_STACK;
    rt->stack_size = (stack + page - 1) & ~(page - 1);
    rt->stack_cache = opts && opts->stack_cache ? opts->stack_cache : DEFAULT_STACK_CACHE;
    rt->shutdown_timeout_ms = opts && opts->shutdown_timeout_ms > 0 ? opts->shutdown_timeout_ms
                                                                    : DEFAULT_SHUTDOWN_TIMEOUT_MS;
    rt->blocking_threads =
        opts && opts->blocking_threads > 0 ? opts->blocking_threads : DEFAULT_BLOCKING_THREADS;
    rt->blocking_keep_alive_ms = opts && opts->blocking_keep_alive_ms > 0
                                     ? opts->blocking_keep_alive_ms
                                     : DEFAULT_BLOCKING_KEEP_ALIVE_MS;
    rt->read_buf_size = opts && opts->read_buf_size ? opts->read_buf_size : DEFAULT_READ_BUF;
    rt->read_bufs = opts && opts->read_bufs ? opts->read_bufs : DEFAULT_READ_BUFS;
    if (rt->read_bufs > MAX_READ_BUFS)
        rt->read_bufs = MAX_READ_BUFS;
    rt->nworkers = workers;
    rt->threaded = workers > 1;
    pthread_mutex_init(&rt->inject_lock, NULL);
    pthread_mutex_init(&rt->idle_lock, NULL);
    pthread_mutex_init(&rt->pool_lock, NULL);
    edo__clock_init(&rt->clock, opts && opts->start_paused);
    sigemptyset(&rt->sigmask);
    pthread_sigmask(SIG_BLOCK, NULL, &rt->base_sigmask);
    int rc = -ENOMEM;
    rt->workers = aligned_alloc(64, sizeof(edo__worker) * (size_t)workers);
    rt->shards = aligned_alloc(64, sizeof(edo__shard) * (size_t)workers);
    rt->sleepers = calloc((size_t)workers, sizeof(int));
    if (!rt->workers || !rt->shards || !rt->sleepers)
        goto fail;
    memset(rt->workers, 0, sizeof(edo__worker) * (size_t)workers);
    memset(rt->shards, 0, sizeof(edo__shard) * (size_t)workers);
    int64_t now = edo__clock_ms(rt);
    for (int i = 0; i < workers; i++) {
        edo__worker *w = &rt->workers[i];
        w->rt = rt;
        w->index = i;
        w->rand = (uint32_t)i * 2654435761u + 1;
        w->queue.stealable = rt->threaded;
        edo__wheel_init(&w->wheel, now);
    }
    int dump_sig;
    if ((rc = edo__dumpsig_choose(opts, &dump_sig)) < 0 || (rc = edo__blocking_new(rt)) < 0)
        goto fail;
    atomic_store(&rt->idle_state, (uint32_t)workers << 16); /* every worker unparked */
    atomic_store(&rt->last_poll, edo__real_ms());
    if ((rc = choose(rt, opts ? opts->backend : EDO_BACKEND_AUTO)) < 0)
        goto fail;
    if ((rc = rt->driver->init(rt)) < 0)
        goto fail;
    for (int i = 0; i < workers; i++)
        if ((rc = rt->driver->worker_init(&rt->workers[i])) < 0)
            goto fail;
    if (rt->threaded) {
        for (int i = 0; i < workers; i++) {
            edo__worker *w = &rt->workers[i];
            if ((rc = -edo__thread_create(&w->thread, NULL, &rt->base_sigmask, worker_main, w)) <
                0) {
                stop_threads(rt);
                goto fail;
            }
            w->started = true;
        }
        if ((rc = -edo__thread_create(&rt->monitor, NULL, &rt->base_sigmask, edo__monitor_main,
                                      rt)) < 0) {
            stop_threads(rt);
            goto fail;
        }
        rt->monitor_started = true;
    }
    edo__dumpsig_take(rt, dump_sig);
    *out = rt;
    return 0;
fail:
    runtime_destroy(rt);
    return rc;
}

int edo_runtime_workers(const edo_runtime *rt)
{
    return rt ? rt->nworkers : 0;
}

edo_runtime *edo_runtime_current(void)
{
    edo__worker *w = edo__worker_current();
    return w && w->current ? w->rt : NULL;
}

/* Sets up the calling thread as worker w. */
static int worker_begin(edo__worker *w)
{
    edo__ctx_init_thread(&w->sched);
    int rc = edo__overflow_init_thread(w);
    if (rc < 0)
        return rc;
    edo__worker_enter(w);
    return 0;
}

static void worker_end(edo__worker *w)
{
    edo__worker_leave();
    edo__overflow_fini_thread(w);
}

/* The mask the calling thread had before it became one of a runtime's (NULL: it is not). */
static __thread const sigset_t *tls_base_mask;

const sigset_t *edo__thread_base_mask(void)
{
    return tls_base_mask;
}

void edo__thread_set_base_mask(const sigset_t *base)
{
    tls_base_mask = base;
}

int edo__thread_create(pthread_t *th, const pthread_attr_t *attr, const sigset_t *base,
                       void *(*fn)(void *), void *arg)
{
    /* A runtime's threads block what the program's thread that made the runtime blocked,
     * and SIGPIPE: a write to a closed pipe must be an error value, never a signal,
     * whatever the program's disposition of SIGPIPE (the monitor submits a stuck worker's
     * operations, writes included; sockets use MSG_NOSIGNAL, and a write to a pipe takes
     * the pending signal back). Nothing more, so that a child started from one of them has
     * the program's mask (and fork's child handler, signal.c, gives even SIGPIPE back).
     * The new thread inherits the mask from its creator, from its first instruction on. */
    sigset_t mask = *base, saved;
    sigaddset(&mask, SIGPIPE);
    pthread_sigmask(SIG_SETMASK, &mask, &saved);
    int rc = pthread_create(th, attr, fn, arg);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    return rc;
}

/* A worker thread of a threaded runtime. */
static void *worker_main(void *arg)
{
    edo__worker *w = arg;
    edo__thread_set_base_mask(&w->rt->base_sigmask);
    if (worker_begin(w) < 0) {
        fprintf(stderr, "edo: worker %d cannot set up its signal stack\n", w->index);
        abort();
    }
    edo__sched_loop(w, NULL, EDO_NEVER);
    worker_end(w);
    return NULL;
}

/* Stops the worker threads and the monitor of a threaded runtime and waits for them. */
static void stop_threads(edo_runtime *rt)
{
    atomic_store(&rt->stopping, true);
    /* The monitor first: it signals worker threads (probe.c), which must still be there. */
    atomic_store(&rt->monitor_word, 1);
    edo__futex_wake(&rt->monitor_word, 1);
    if (rt->monitor_started)
        pthread_join(rt->monitor, NULL);
    rt->monitor_started = false;
    for (int i = 0; i < rt->nworkers; i++) {
        edo__wake_worker(&rt->workers[i]);
        rt->driver->unpark(&rt->workers[i]);
    }
    edo__clock_wake_all(rt);
    for (int i = 0; i < rt->nworkers; i++) {
        if (rt->workers[i].started)
            pthread_join(rt->workers[i].thread, NULL);
        rt->workers[i].started = false;
    }
}

/* Current-thread flavour: makes the calling thread rt's worker for a while. */
static int drive_begin(edo_runtime *rt)
{
    if (edo__worker_current())
        return -EDO_EINTASK; /* from a task, or inside another runtime */
    if (atomic_exchange(&rt->driving, true))
        return -EBUSY;
    edo__worker *w = &rt->workers[0];
    /* SIGPIPE, as in every thread of a runtime (edo__thread_create says why). */
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, &w->saved_sigmask);
    int rc = worker_begin(w);
    if (rc < 0) {
        pthread_sigmask(SIG_SETMASK, &w->saved_sigmask, NULL);
        atomic_store(&rt->driving, false);
        return rc;
    }
    edo__thread_set_base_mask(&w->saved_sigmask);
    return 0;
}

static void drive_end(edo_runtime *rt)
{
    edo__worker *w = &rt->workers[0];
    edo__thread_set_base_mask(NULL);
    worker_end(w);
    pthread_sigmask(SIG_SETMASK, &w->saved_sigmask, NULL);
    atomic_store(&rt->driving, false);
}

/* Threaded: the calling thread waits for the root task to end. */
static void wait_root(edo_runtime *rt, edo_task *root)
{
    for (;;) {
        uint32_t gen = atomic_load(&rt->bo_word);
        if (atomic_load_explicit(&root->state, memory_order_acquire) == EDO__DONE)
            return;
        edo__futex_wait(&rt->bo_word, gen, -1);
    }
}

int edo_block_on(edo_runtime *rt, edo_task_fn fn, void *arg, void **result)
{
    if (result)
        *result = NULL;
    if (!rt || !fn)
        return -EINVAL;
    edo_task *root;
    if (rt->threaded) {
        if (edo__worker_current())
            return -EDO_EINTASK;
        int rc = edo_runtime_spawn_at(&root, rt, &edo__root_opts, fn, arg, "edo_block_on");
        if (rc == 0)
            wait_root(rt, root);
        return rc < 0 ? rc : edo_join(root, result);
    }
    int rc = drive_begin(rt);
    if (rc < 0)
        return rc;
    rc = edo_runtime_spawn_at(&root, rt, &edo__root_opts, fn, arg, "edo_block_on");
    if (rc == 0) {
        edo__sched_loop(&rt->workers[0], root, EDO_NEVER);
        rc = edo_join(root, result);
    }
    drive_end(rt);
    return rc;
}

static void abort_one(edo_task *t, void *arg)
{
    (void)arg;
    edo_abort(t);
}

static void abandon_one(edo_task *t, void *arg)
{
    fprintf(stderr, "edo:   task %llu '%s' spawned at %s\n", (unsigned long long)t->id,
            t->name[0] ? t->name : "task", t->site);
    edo__task_abandon(t);
    (void)arg;
}

void edo_runtime_free(edo_runtime *rt)
{
    if (!rt)
        return;
    if (edo__worker_current()) {
        fprintf(stderr, "edo: edo_runtime_free called from a task; not freed\n");
        return;
    }
    if (!rt->threaded && drive_begin(rt) < 0) {
        fprintf(stderr, "edo: edo_runtime_free called while the runtime runs; not freed\n");
        return;
    }
    if (rt->observe_stop)
        rt->observe_stop(rt);
    atomic_store(&rt->closing, true);
    edo__pool_close(rt);
    /* Tasks spawned from outside that no worker has taken yet join the list first (a
     * worker that takes one after this sees `closing` and aborts it itself). */
    pthread_mutex_lock(&rt->inject_lock);
    edo__fifo_each (n, &rt->inject) {
        edo_task *t = edo__container_of(n, edo_task, inject_link);
        if (!t->listed)
            edo__task_list_add(rt, t);
    }
    pthread_mutex_unlock(&rt->inject_lock);
    edo__task_each(rt, abort_one, NULL);
    /* On the real clock: a paused one must not hold the grace period up. */
    int64_t give_up_at = edo__real_ms() + rt->shutdown_timeout_ms;
    if (rt->threaded) {
        /* The workers run the aborted tasks to their end. */
        while ((edo__live(rt) || atomic_load(&rt->inject_len) || edo__pool_running(rt)) &&
               edo__real_ms() < give_up_at)
            nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
        stop_threads(rt);
    } else {
        edo__sched_loop(&rt->workers[0], NULL, give_up_at);
        while (edo__pool_running(rt) && edo__real_ms() < give_up_at)
            nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
    }
    uint64_t left = edo__live(rt);
    if (left) {
        fprintf(stderr,
                "edo: %llu task(s) did not finish within %d ms of shutdown; they are "
                "abandoned where they are (joins report -EDO_EABORTED):\n",
                (unsigned long long)left, (int)rt->shutdown_timeout_ms);
        edo__task_each(rt, abandon_one, NULL);
    }
    edo__pool_free(rt);
    rt->driver->shutdown(rt);
    /* After the signals a task took (signal.c, in the driver's shutdown): if one of them
     * was the dump signal, its handler saved edo's, which is back now to be given back. */
    edo__dumpsig_fini(rt);
    if (!rt->threaded)
        drive_end(rt);
    edo__stack_trim();
    runtime_destroy(rt);
}

static void abort_other(edo_task *t, void *self)
{
    if (t != self)
        edo_abort(t);
}

/* The root of edo_main has returned: the others are aborted now, while the root's task
 * still stands, and waited for, so none runs on after edo_main. The aborts are repeated
 * for tasks spawned meanwhile (by cleanup code). After the grace period, or if the root
 * itself is aborted, edo_runtime_free does the rest (and reports the stragglers). */
static void end_the_others(edo_runtime *rt)
{
    int64_t give_up_at = edo__real_ms() + rt->shutdown_timeout_ms;
    while (edo__live(rt) > 1 && edo__real_ms() < give_up_at) {
        edo__task_each(rt, abort_other, edo_self());
        if (edo_sleep(1) < 0)
            return;
    }
}

struct main_call {
    edo_task_fn fn;
    void *arg;
};

static void *main_task(void *arg)
{
    struct main_call *mc = arg;
    void *res = mc->fn(mc->arg);
    end_the_others(edo_runtime_current());
    return res;
}

int edo_main(edo_task_fn fn, void *arg)
{
    if (!fn)
        return 1;
    edo_runtime *rt;
    int rc = edo_runtime_new(&rt, NULL);
    if (rc < 0) {
        fprintf(stderr, "edo: cannot create the runtime: %s\n", edo_strerror(rc));
        return 1;
    }
    struct main_call mc = { fn, arg };
    void *res = NULL;
    rc = edo_block_on(rt, main_task, &mc, &res);
    edo_runtime_free(rt);
    if (rc < 0) {
        fprintf(stderr, "edo: main task: %s\n", edo_strerror(rc));
        return 1;
    }
    int status = edo_result_int(res);
    return status < 0 ? 1 : status;
}
