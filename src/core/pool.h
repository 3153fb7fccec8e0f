/*
 * The blocking pool's interface (pool.c): threads for calls that have no asynchronous
 * form (edo_spawn_blocking, and file operations the driver does not make), so that they
 * never block a worker.
 *
 * The pool is made at its first call (rt->pool, under rt->pool_lock) and is a separate
 * allocation guarded by its own lock; nothing outside pool.c looks inside it. It may
 * outlive the runtime: a thread still inside a call that shutdown gave up on finishes on
 * its own and touches only the pool and its own task.
 *
 * Who calls what: edo__pool_run, a task (it suspends until the call is done).
 * edo__pool_close and edo__pool_free, the thread that frees the runtime, in that order.
 * edo__pool_running and edo__pool_idle, any thread (they take the pool's lock).
 */
#ifndef EDO_CORE_POOL_H
#define EDO_CORE_POOL_H

#include "edo.h"

#include <stdbool.h>

typedef struct edo__pool edo__pool;

/* Runs fn(arg) on a thread of the pool and suspends the calling task until it has
 * returned; no task is allocated for it. Returns 0 once fn has run, whatever happened to
 * the task meanwhile: once fn has started the wait is not cut short by an abort or a
 * deadline (fn may be using the caller's buffers), and the abort shows at the task's next
 * suspension point. Before fn starts (at entry, or while it waits in line for a thread),
 * an abort or the task's deadline takes the call back: -ECANCELED or -ETIMEDOUT, and fn
 * never runs. always: it runs and is waited for even then (a close). Also -EDO_ENOTASK outside
 * a task, -ESHUTDOWN once the pool is closed, -ECANCELED if shutdown dropped it before it
 * started, -EAGAIN or -ENOMEM when the pool has no thread and cannot start one. `why` is
 * what the task shows as waiting on. */
int edo__pool_run(void (*fn)(void *arg), void *arg, edo_wait_reason why, bool always);
/* Refuses new calls and cancels the ones that have not started. */
void edo__pool_close(edo_runtime *rt);
/* Calls still running. */
int edo__pool_running(edo_runtime *rt);
/* Threads of the pool, those of them running a call, and calls waiting for a thread. */
void edo__pool_stats(edo_runtime *rt, uint32_t *threads, uint32_t *busy, uint64_t *queued);
/* No call of the pool is running or waiting for a thread. */
bool edo__pool_idle(edo_runtime *rt);
/* Abandons the calls still running (their joins report -EDO_EABORTED) and lets the pool's
 * threads end on their own. */
void edo__pool_free(edo_runtime *rt);

#endif
