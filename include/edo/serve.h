/*
 * edo/serve.h - task trackers.
 * Included by edo.h; do not include it alone.
 *
 * A tracker keeps count of a group of tasks so that their owner can stop them together:
 * close it, give them a while to finish, abort the rest, and wait until every one has
 * returned. The conventions are edo.h's and edo/sync.h's.
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
 * until fn returns. Returns -EPIPE if tr is closed (nothing is spawned), -EINVAL if tr or
 * fn is NULL. From a task. */
#define edo_tracker_spawn(task, tr, fn, arg)                                                       \
    edo_tracker_spawn_at((task), (tr), NULL, (fn), (arg), EDO__HERE)

/* edo_tracker_spawn with a name and stack size (edo_spawn_opts; NULL: the defaults). */
#define edo_tracker_spawn_with(task, tr, opts, fn, arg)                                            \
    edo_tracker_spawn_at((task), (tr), (opts), (fn), (arg), EDO__HERE)

/* Closes tr: spawns into it fail with -EPIPE from now on, and edo_tracker_wait can return
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

#endif /* EDO_SERVE_H */
