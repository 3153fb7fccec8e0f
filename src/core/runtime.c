/*
 * Runtime creation, edo_block_on, shutdown and edo_main.
 */
#include "core/runtime.h"
#include "io/io.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_STACK (64 * 1024)
#define DEFAULT_STACK_CACHE 256
#define DEFAULT_SHUTDOWN_TIMEOUT_MS 5000

static int env_workers(void)
{
    const char *s = getenv("EDO_WORKERS");
    if (!s || !*s)
        return 0;
    char *end;
    long n = strtol(s, &end, 10);
    if (*end || n < 0 || n > 1024)
        return -EINVAL;
    return (int)n;
}

int edo_runtime_new(edo_runtime **out, const edo_runtime_opts *opts)
{
    *out = NULL;
    int workers = opts ? opts->workers : 0;
    if (workers < 0)
        return -EINVAL;
    if (workers == 0) {
        workers = env_workers();
        if (workers < 0)
            return workers;
    }
    if (workers > 1)
        return -ENOTSUP; /* the multi-threaded scheduler is not there yet */

    edo_runtime *rt = calloc(1, sizeof *rt);
    if (!rt)
        return -ENOMEM;
    edo__cycles_to_ns(0); /* start calibrating the busy-time clock */
    size_t page = edo__page_size();
    size_t stack = opts && opts->stack_size ? opts->stack_size : DEFAULT_STACK;
    rt->stack_size = (stack + page - 1) & ~(page - 1);
    rt->stack_cache = opts && opts->stack_cache ? opts->stack_cache : DEFAULT_STACK_CACHE;
    rt->shutdown_timeout_ms = opts && opts->shutdown_timeout_ms > 0 ? opts->shutdown_timeout_ms
                                                                    : DEFAULT_SHUTDOWN_TIMEOUT_MS;
    pthread_mutex_init(&rt->inject_lock, NULL);
    sigemptyset(&rt->sigmask);

    edo__worker *w = &rt->worker;
    w->rt = rt;
    w->epfd = w->evfd = -1;
    edo__wheel_init(&w->wheel, edo_now());
    int rc = edo__driver_init(w);
    if (rc < 0) {
        pthread_mutex_destroy(&rt->inject_lock);
        free(rt);
        return rc;
    }
    *out = rt;
    return 0;
}

edo_runtime *edo_runtime_current(void)
{
    edo__worker *w = edo__worker_current();
    return w && w->current ? w->rt : NULL;
}

/* Makes the calling thread rt's worker for a while. */
static int drive_begin(edo_runtime *rt)
{
    if (edo__worker_current())
        return -EPERM; /* from a task, or inside another runtime */
    if (atomic_exchange(&rt->driving, true))
        return -EBUSY;
    edo__worker *w = &rt->worker;
    edo__ctx_init_thread(&w->sched);
    int rc = edo__overflow_init_thread(w);
    if (rc < 0) {
        atomic_store(&rt->driving, false);
        return rc;
    }
    /* Writing to a closed pipe must be an error value, never a signal, whatever the
     * program's SIGPIPE disposition: the worker thread blocks it (sockets use
     * MSG_NOSIGNAL; a write to a pipe takes the pending signal back). */
    sigset_t block = rt->sigmask; /* and the signals edo_signal_wait took over */
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, &w->saved_sigmask);
    edo__worker_enter(w);
    return 0;
}

static void drive_end(edo_runtime *rt)
{
    edo__worker *w = &rt->worker;
    edo__worker_leave();
    pthread_sigmask(SIG_SETMASK, &w->saved_sigmask, NULL);
    edo__overflow_fini_thread(w);
    edo__ctx_release(&w->sched);
    atomic_store(&rt->driving, false);
}

int edo_block_on(edo_runtime *rt, void *(*fn)(void *), void *arg, void **result)
{
    if (result)
        *result = NULL;
    if (!rt || !fn)
        return -EINVAL;
    int rc = drive_begin(rt);
    if (rc < 0)
        return rc;
    edo_task *root;
    rc = edo_runtime_spawn_at(rt, &root, &(edo_spawn_opts){ .name = "main" }, fn, arg,
                              "edo_block_on");
    if (rc == 0) {
        edo__sched_loop(&rt->worker, root, EDO_NEVER);
        rc = edo_join(root, result);
    }
    drive_end(rt);
    return rc;
}

void edo_runtime_free(edo_runtime *rt)
{
    if (!rt)
        return;
    edo__worker *w = &rt->worker;
    if (drive_begin(rt) < 0) {
        fprintf(stderr, "edo: edo_runtime_free called from a task or while the runtime "
                        "runs; not freed\n");
        return;
    }
    atomic_store(&rt->closing, true);
    /* Tasks spawned from outside that never ran join the list first. */
    pthread_mutex_lock(&rt->inject_lock);
    for (edo_task *t = rt->inject_head; t; t = t->qnext)
        if (!t->listed)
            edo__task_list_add(rt, t);
    pthread_mutex_unlock(&rt->inject_lock);
    for (edo_task *t = rt->all; t; t = t->all_next)
        edo_abort(t);
    edo__sched_loop(w, NULL, edo_now() + rt->shutdown_timeout_ms);
    /* Spawned from another thread while the shutdown began: never ran, never listed. */
    pthread_mutex_lock(&rt->inject_lock);
    for (edo_task *t = rt->inject_head; t; t = t->qnext)
        if (!t->listed)
            edo__task_list_add(rt, t);
    rt->inject_head = rt->inject_tail = NULL;
    pthread_mutex_unlock(&rt->inject_lock);
    if (rt->live) {
        fprintf(stderr,
                "edo: %llu task(s) did not finish within %d ms of shutdown; they are "
                "abandoned where they are (joins report -ECANCELED):\n",
                (unsigned long long)rt->live, (int)rt->shutdown_timeout_ms);
        while (rt->all) {
            edo_task *t = rt->all;
            fprintf(stderr, "edo:   task %llu '%s' spawned at %s\n", (unsigned long long)t->id,
                    t->name[0] ? t->name : "task", t->site);
            edo__task_abandon(t);
        }
    }
    edo__signal_fini(rt);
    drive_end(rt);
    edo__driver_fini(w);
    edo__stack_cache_release(&w->stacks);
    edo__stack_trim();
    pthread_mutex_destroy(&rt->inject_lock);
    free(rt);
}

struct main_call {
    int (*fn)(void *);
    void *arg;
};

static void *main_task(void *arg)
{
    struct main_call *mc = arg;
    return (void *)(intptr_t)mc->fn(mc->arg);
}

int edo_main(int (*fn)(void *), void *arg)
{
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
    int status = (int)(intptr_t)res;
    return status < 0 ? 1 : status;
}
