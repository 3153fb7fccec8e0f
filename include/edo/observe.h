/*
 * edo/observe.h - seeing inside a running program: counters, snapshots, metrics in
 * Prometheus's text format, the console endpoint, blocking-task reports and task dumps.
 *
 * The counters are always on and cost a few instructions per task switch; everything
 * else costs nothing until it is used. Every function here may be called from any thread,
 * also one outside the runtime (an observer must work while every worker is stuck), and
 * never suspends. What it returns is a snapshot of its own moment: with worker threads the
 * tasks run on while they are visited.
 *
 * Environment (read by edo_runtime_new; a runtime option set by the program wins):
 *   EDO_CONSOLE=PATH|HOST:PORT   open the console endpoint (docs/console.md): a Unix socket
 *                                at PATH (created 0600), or TCP (loopback unless a host is
 *                                named); tools/edo-console attaches to it
 *   EDO_METRICS=HOST:PORT        serve Prometheus's text format over HTTP at /metrics
 *   EDO_BLOCKING_MS=N|off        report a task that runs N ms without suspending (10)
 *   EDO_DUMP_SIGNAL=NAME|N|off   the signal that prints a task dump to stderr (SIGQUIT;
 *                                a name as "SIGUSR1" or "usr1", or a number)
 *   EDO_LOG=0                    no reports on stderr (blocking tasks, endpoints opened)
 */
#ifndef EDO_OBSERVE_H
#define EDO_OBSERVE_H

#include "edo.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

/* ---- the runtime ------------------------------------------------------------------------- */

typedef struct edo_runtime_info {
    edo_backend backend;
    int workers;
    bool clock_paused;
    int64_t now;                   /* edo_now() on the runtime's clock */
    uint64_t uptime_ns;            /* since edo_runtime_new */
    uint64_t tasks_spawned;        /* tasks ever spawned (blocking calls included) */
    uint64_t tasks_live;           /* spawned and not yet returned */
    uint64_t tasks_done;           /* returned */
    uint32_t inject_depth;         /* tasks queued for any worker (woken from outside, overflow) */
    uint32_t blocking_threads;     /* threads of the blocking pool */
    uint32_t blocking_busy;        /* of them running a call */
    uint64_t blocking_queued;      /* calls waiting for a thread of the pool */
    uint64_t blocking_reports;     /* tasks reported for running too long without suspending */
    int64_t blocking_threshold_ms; /* that threshold; -1: not watched */
} edo_runtime_info;

/* Fills *out for rt (NULL: the calling task's runtime). Returns 0, or -EINVAL. */
int edo_runtime_stats(edo_runtime *rt, edo_runtime_info *out);

/* ---- workers ----------------------------------------------------------------------------- */

typedef enum edo_worker_state {
    EDO_WORKER_RUNNING,    /* running a task */
    EDO_WORKER_SCHEDULING, /* between tasks: polling, stealing, firing timers */
    EDO_WORKER_IDLE,       /* asleep: nothing to do */
    EDO_WORKER_BLOCKED     /* running one task for longer than the blocking threshold */
} edo_worker_state;

typedef struct edo_worker_info {
    int index;
    edo_worker_state state;
    uint64_t task;        /* id of the task it runs now, 0: none */
    uint64_t task_run_ns; /* how long that task has run since it last resumed */
    uint32_t queue_depth; /* tasks in its local queue (and LIFO slot) */
    uint64_t tasks_run;   /* task resumes on it */
    uint64_t steals;      /* tasks it took from other workers' queues */
    uint64_t parks;       /* times it went to sleep for want of work */
    uint64_t polls;       /* driver polls */
    uint64_t events;      /* readiness events or completions those polls delivered */
    uint64_t timers_fired;
    uint64_t forced_yields;    /* tasks made to yield by the cooperative budget */
    uint64_t blocking_reports; /* tasks reported blocking on it */
    uint64_t handoffs;         /* tasks moved off it to other workers while it was stuck */
    uint64_t busy_ns;          /* time spent running tasks; busy ratio = busy_ns / uptime_ns */
} edo_worker_info;

/* Fills *out for worker `index` of rt (0 .. workers-1). Returns 0, or -EINVAL. */
int edo_worker_stats(edo_runtime *rt, int index, edo_worker_info *out);

/* ---- tasks --------------------------------------------------------------------------------
 * edo_task_list and edo_task_stats (edo.h) fill an edo_task_info: id, name, spawn site,
 * parent, state, what it waits for (in words too), its counters and its run histogram. */

/* The text of a state or wait reason, as the console and the metrics name them ("parked",
 * "read"). Never NULL. */
const char *edo_task_state_name(edo_task_state s);
const char *edo_wait_reason_name(edo_wait_reason r);

/* Writes a backtrace of task `id` of rt into buf as text, one frame per line ("  #0 fn
 * (file.c:12)", file:line where debug information exists): of its suspended stack while it
 * is parked (it cannot resume while it is read: a wake waits until the walk is over), or
 * the stack it was caught at when it was reported blocking. Returns the length of the text
 * (as snprintf: it may exceed len), -ESRCH for no such live task, -EBUSY while it is
 * running or queued (no stack to read), -ENOSYS in a build without an unwinder (libunwind
 * was not found, or a CPU whose suspended stacks it does not read: only x86-64's are),
 * -EINVAL for no runtime (rt NULL outside a task) or a NULL buf with len > 0. The frames of
 * the switch that suspended it are left out. */
int edo_task_backtrace(edo_runtime *rt, uint64_t id, char *buf, size_t len);

/* Prints every task of rt to f (NULL: stderr) like a Go program's goroutine dump: a head
 * line per task with id, name, state, what it waits for and for how long, spawn site and
 * parent, then its backtrace, and a blank line:
 *     task 12 "conn 127.0.0.1:5000" parked 1532 ms: read fd 7 (127.0.0.1:5000)
 *       spawned at echo.c:40 by task 3, worker 1, resumes 4, busy 0.3 ms
 *       #0 edo__park (task.c:351)
 *       ...
 * A running task has no stack to show but the one it was caught at if it was reported
 * blocking; the calling task shows its own. Naming the frames of many stacks takes a
 * while (a few ms for a thousand tasks, more the first time, when the symbol tables are
 * read), during which the calling thread does nothing else. rt NULL: the calling task's
 * runtime. Returns the number of tasks printed, or -errno (-EINVAL: no runtime).
 *
 * The runtime's dump signal (edo_runtime_opts.dump_signal, SIGQUIT by default) prints one
 * to stderr, as Go's SIGQUIT does, but the program goes on. It is taken when the runtime is
 * made, only if the program has left the signal's default disposition (several runtimes
 * share it, and each prints its dump), and given back when the runtime is freed. With
 * worker threads the monitor thread prints the dump at once; with one worker the worker
 * prints it when it next passes through its scheduler loop: a task that never suspends
 * delays it, and a runtime that nobody drives (no thread in edo_block_on) prints it when
 * one does. */
int edo_dump_tasks(edo_runtime *rt, FILE *f);

/* ---- blocking tasks ------------------------------------------------------------------------
 * The runtime watches for a task that runs longer than the threshold without suspending
 * (EDO_BLOCKING_MS, edo_runtime_opts.blocking_ms): it reports it on stderr (unless
 * EDO_LOG=0) with the stack where it was caught, keeps the report for the console, and
 * moves the tasks queued behind it to other workers, so one blocking task costs its worker
 * and nothing else (worker threads only: with one worker there is nobody to move them to,
 * and no thread to watch). A report comes within twice the threshold of the task's resume
 * (later on a machine too loaded to run the worker's thread, whose stack it waits for),
 * once per such run, and at most 10 a second are printed in the whole process; a line
 * follows when the run ends, with how long it lasted:
 *     edo: task 12 "hash" (spawned at x.c:9) has run 23 ms on worker 1 without suspending
 *     (blocking threshold 10 ms); the tasks queued behind it move to other workers. Caught at:
 *       #0 spin (x.c:12)
 *       ...
 *     edo: task 12 "hash" ran 2003 ms on worker 1 before it suspended
 *
 * A worker stuck in one task for 10 ms has its due timers fired and its I/O collected by
 * the monitor thread, and its queued tasks moved to the inject queue, for the others. The
 * stack and the task that the blocking task itself woke last (which waits in a slot only
 * the worker's own thread may touch) are had by a signal to that thread: SIGURG, as Go
 * uses for preemption, whose default action is to do nothing. It is sent when the task is
 * reported, then again after 100 ms, 200 ms, 400 ms and so on while the run lasts. Its
 * handler is installed the first time it is needed, only if the program has left SIGURG's
 * default (or ignored) disposition, and only SA_RESTART system calls go on as if nothing
 * came: a blocking poll, nanosleep or epoll_wait made inside the blocking task itself
 * returns EINTR (see signal(7)). A program that handles SIGURG itself (edo_signal_take
 * included) keeps it: reports then come without a stack, and the last-woken task waits
 * for the blocking one to suspend. */

typedef struct edo_blocking_info {
    uint64_t task;
    char name[32];
    const char *spawn_site;
    int worker;
    int64_t at;        /* edo_now() when it was caught */
    uint64_t ran_ns;   /* how long it had run without suspending when it was caught */
    uint64_t total_ns; /* how long it ran in the end (0: still running) */
    char stack[1024];  /* the backtrace where it was caught, "" if none could be taken */
} edo_blocking_info;

/* Calls fn for each of the most recent blocking reports of rt (at most 64, oldest first);
 * stops when fn returns non-zero. Returns the number visited. */
size_t edo_blocking_list(edo_runtime *rt, int (*fn)(const edo_blocking_info *info, void *arg),
                         void *arg);

/* ---- resources ---------------------------------------------------------------------------
 * Every channel, broadcast, watch, mutex, read-write lock, semaphore, notify, barrier and
 * cancellation token alive in the process, and each worker's timers. */

typedef enum edo_resource_kind {
    EDO_RES_CHAN,
    EDO_RES_BCAST,
    EDO_RES_WATCH,
    EDO_RES_MUTEX,
    EDO_RES_RWLOCK,
    EDO_RES_SEM,
    EDO_RES_NOTIFY,
    EDO_RES_BARRIER,
    EDO_RES_TOKEN,
    EDO_RES_TIMERS /* a worker's timer wheel: len is the number of timers armed on it */
} edo_resource_kind;

#define EDO_RESOURCE_WAITERS 8
#define EDO_HOLDER_THREAD UINT64_MAX

typedef struct edo_resource_info {
    const void *addr; /* the object (for a worker's timers: its index) */
    edo_resource_kind kind;
    uint64_t holder;  /* mutex, write-locked rwlock: the holding task's id; 0 none,
                       * EDO_HOLDER_THREAD a thread outside the runtime */
    uint32_t readers; /* rwlock: read holders */
    uint64_t len;     /* messages queued (chan, bcast), permits available (sem),
                       * timers armed (timers), tasks arrived (barrier) */
    uint64_t cap;     /* chan: capacity; barrier: parties */
    bool closed;      /* closed channel, semaphore; cancelled token */
    uint32_t waiters; /* tasks and threads waiting */
    uint64_t waiter_ids[EDO_RESOURCE_WAITERS]; /* the first of them; 0: a thread */
} edo_resource_info;

const char *edo_resource_kind_name(edo_resource_kind k);

/* Calls fn for every live resource of the process and each worker timer wheel of rt
 * (NULL: none). Stops when fn returns non-zero. Returns the number visited. fn runs with a
 * lock held that making and freeing these objects also takes: keep it short, and do not
 * make or free one in it. A read-write lock is listed (and waited on) at the address of
 * the semaphore inside it. */
size_t edo_resource_list(edo_runtime *rt, int (*fn)(const edo_resource_info *info, void *arg),
                         void *arg);

/* ---- metrics ------------------------------------------------------------------------------
 * Prometheus text exposition format (version 0.0.4): runtime, worker and task-state
 * families, all prefixed edo_. */

/* Writes rt's metrics to f. Returns 0 or -errno. */
int edo_metrics_write(edo_runtime *rt, FILE *f);

/* Writes them into buf (NUL-terminated when len > 0). Returns the length of the whole text
 * (as snprintf: if it is len or more, the text was cut; call again with more), or -errno. */
ssize_t edo_metrics_format(edo_runtime *rt, char *buf, size_t len);

/* ---- endpoints ----------------------------------------------------------------------------
 * Opened at edo_runtime_new when edo_runtime_opts or the environment ask for them, served
 * by one thread of their own (started only then), closed by edo_runtime_free. */

/* The address an endpoint of rt listens on ("/run/x.sock", "127.0.0.1:9100", with the port
 * the system chose for port 0), or NULL when it is not open. */
const char *edo_console_address(const edo_runtime *rt);
const char *edo_metrics_address(const edo_runtime *rt);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif
