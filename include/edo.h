/*
 * edo - an asynchronous I/O runtime for C.
 *
 * Tasks are stackful coroutines: a task calls edo_read(), edo_sleep() or edo_join() as if
 * they blocked, and the runtime suspends it and runs another task until the call can
 * complete. This header is the whole public API; every function is documented where it is
 * declared.
 *
 * The rules every function here keeps (a new one keeps them too)
 *  - Errors are values. A call that can fail returns an int or ssize_t: >= 0 on success, a
 *    negative error code on failure: a negated errno value (-ECONNRESET, -ETIMEDOUT, ...) or
 *    one of edo's own below (-EDO_ECLOSED, ...), which lie above every errno value.
 *    edo_strerror() turns either into text that is true for edo's calls. errno is never the
 *    channel for an error. Calls that cannot fail return void.
 *  - One outcome, one code. The codes every suspending call shares: -ECANCELED means the
 *    calling task was aborted, -ETIMEDOUT that its deadline or the call's timeout passed.
 *    A different outcome never reuses them: a joined task that was aborted is
 *    -EDO_EABORTED, a closed channel -EDO_ECLOSED, an empty join set -EDO_EEMPTY, a call
 *    made outside a task that needs one -EDO_ENOTASK, -ESHUTDOWN a runtime that is
 *    shutting down.
 *  - Out-pointer first. A function that makes an object or hands out a new handle stores
 *    it through its first argument and returns 0 or -errno: edo_spawn(&task, ...),
 *    edo_tcp_accept(&conn, lis), edo_chan_new(&ch, ...). On failure *out is NULL. Extra
 *    results of other calls (a task's result, a count done, an id) come last and may be
 *    NULL when not wanted.
 *  - NULL handles. Passing NULL where an object is expected returns -EINVAL (or false, 0,
 *    or NULL from a call that returns those); the functions that free or close (edo_close,
 *    edo_chan_free, edo_detach, ...) and edo_abort accept NULL and do nothing.
 *  - One task-function type, edo_task_fn: void *fn(void *arg), for edo_spawn,
 *    edo_runtime_spawn, edo_block_on, edo_main and join sets; edo_int_result(n) carries an
 *    int through the void * it returns.
 *  - Time is in milliseconds. Deadlines are absolute, on the clock of edo_now()
 *    (monotonic); EDO_NEVER means none. There is one timeout story: every call that
 *    suspends ends with -ETIMEDOUT at the earliest of the task's deadline scope
 *    (edo_deadline_begin, edo_timeout_begin), the call's own timeout (edo_tcp_connect's
 *    argument, edo_io_set_timeout for an io's reads and writes, edo_select's
 *    edo_case_timeout/deadline case), whichever comes first; and what arrived in time
 *    wins: a call whose event came before the deadline succeeds, even if the task resumes
 *    only after it.
 *  - Calls marked "suspends" may only be made from a task (elsewhere: -EDO_ENOTASK).
 *  - A task may resume on a different thread than the one it suspended on. Do not keep a
 *    pointer to thread-local data (including &errno) across a call that suspends.
 *  - Names: edo_ for what is public, EDO_ for constants; edo_THING_new / _free pairs own
 *    memory, edo_THING_close ends use and wakes waiters.
 */
#ifndef EDO_H
#define EDO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden visibility; what this header declares is its ABI. */
#pragma GCC visibility push(default)

#include "edo/version.h"

/* ---------------------------------------------------------------------------------------- */
/* Errors                                                                                   */

/* edo's own error codes, returned negated (-EDO_ECLOSED). Above every errno value. */
#define EDO_EABORTED 10001 /* the task waited for (edo_join, a join set) was aborted */
#define EDO_ECLOSED 10002  /* the channel, broadcast, watch, semaphore or tracker is closed */
#define EDO_EEMPTY 10003   /* nothing to wait for: the join set is empty */
#define EDO_ENOTASK 10004  /* the call needs a task and was made outside one */
#define EDO_EINTASK 10005  /* the call must not be made from a task (edo_block_on, ...) */

/* Text for a negative error code (or a positive one): edo's own codes, and errno values
 * with the meaning they have in edo's calls where the C library's text would mislead
 * (-ETIMEDOUT is "Timed out", not "Connection timed out"; -ECANCELED says the task was
 * aborted; -ESHUTDOWN that the runtime is shutting down). Never NULL; thread-safe. */
const char *edo_strerror(int err);

/* True for errors after which the same call may simply be made again: a listener's
 * -EMFILE/-ENFILE/-ENOBUFS/-ENOMEM (edo_tcp_accept has already backed off before
 * returning them), -ECONNABORTED, -EINTR, -EAGAIN. */
bool edo_retryable(int err);

/* Prints "edo: WHAT: <edo_strerror(err)>" to stderr and returns err, so that a task can
 * end with `return edo_fail(rc, "listen")`. */
int edo_fail(int err, const char *what);

/* ---------------------------------------------------------------------------------------- */
/* Time                                                                                     */

#define EDO_NEVER INT64_MAX

/* Milliseconds on the runtime's clock: in a task, its runtime's (CLOCK_MONOTONIC, unless
 * the clock was paused: see edo_time_pause); outside a task, CLOCK_MONOTONIC, and so in a
 * function that edo_spawn_blocking runs on the pool too. The base of every deadline. */
int64_t edo_now(void);

/* Suspends the task for at least ms milliseconds (ms <= 0: just yields). Returns 0, or
 * -ECANCELED if the task was aborted, -ETIMEDOUT if the task's deadline comes first. */
int edo_sleep(int64_t ms);

/* Suspends the task until edo_now() >= deadline. Same returns as edo_sleep. */
int edo_sleep_until(int64_t deadline);

/* Sets the deadline of the calling task: every call that suspends after this point fails
 * with -ETIMEDOUT once edo_now() >= deadline. Returns the previous deadline, so that a
 * scope can restore it. EDO_NEVER clears it. Outside a task it does nothing and returns
 * EDO_NEVER. */
int64_t edo_set_deadline(int64_t deadline);

/* The calling task's deadline, EDO_NEVER if it has none. */
int64_t edo_deadline(void);

/* A deadline for a scope of code: narrows the calling task's deadline to `deadline` (an
 * earlier deadline already in force stays) and returns the deadline to give back to
 * edo_deadline_end when the scope ends. Every call that suspends inside the scope fails
 * with -ETIMEDOUT once the deadline has passed, so any call can be bounded:
 *     int64_t scope = edo_timeout_begin(500);
 *     int rc = edo_chan_recv(jobs, &job);   -ETIMEDOUT after 500 ms
 *     edo_deadline_end(scope);
 * Scopes nest; end them in reverse order. Outside a task they do nothing. */
int64_t edo_deadline_begin(int64_t deadline);

/* edo_deadline_begin(edo_now() + ms). */
int64_t edo_timeout_begin(int64_t ms);

/* Ends a scope: restores the deadline edo_deadline_begin or edo_timeout_begin returned. */
void edo_deadline_end(int64_t saved);

/* ---------------------------------------------------------------------------------------- */
/* A paused clock, for tests                                                                */

/* Pauses the clock of the calling task's runtime. From then on edo_now() in its tasks
 * stands still, and so does everything that waits on that clock: every sleep, timer,
 * timeout and deadline of the runtime. The clock moves only
 *  - by edo_time_advance(ms), which fires every timer that falls due on the way, or
 *  - by itself, when the runtime has nothing to do (auto-advance, on by default): no task
 *    is ready, no blocking call (edo_spawn_blocking, a file call) is in flight, and no
 *    event that a task caused is waiting in the driver. It then jumps straight to the
 *    earliest deadline of any timer, which fires at exactly that time.
 * So a test of a one-hour timeout runs in microseconds, and every sleep ends exactly when it
 * should: after `edo_sleep(250)`, edo_now() has moved by exactly 250. The clock is paused
 * at a whole millisecond (at most 1 ms ahead of the real one). Events from outside the
 * runtime (a TCP peer elsewhere, a child process, a thread of the program) are not waited
 * for before the clock jumps: in a test that waits for those with a timeout, turn
 * auto-advance off or keep the clock running. Works with any number of workers. Also at
 * start: edo_runtime_opts.start_paused. Returns 0 (also if already paused), or -EDO_ENOTASK
 * outside a task. */
int edo_time_pause(void);

/* Lets the calling task's runtime's clock run again, from where it stands (it never goes
 * back, so it stays behind or ahead of CLOCK_MONOTONIC by what the pause changed). 0 or
 * -EDO_ENOTASK outside a task. */
int edo_time_resume(void);

/* Moves the paused clock of the calling task's runtime forward by ms, fires every timer
 * that is then due, and yields, so that (with one worker) the tasks those timers woke have
 * run when it returns. The clock stops some 146 years after its start: a step past that
 * goes only that far. Returns 0, -EINVAL if the clock is not paused or ms < 0, -EDO_ENOTASK
 * outside a task, -ECANCELED if the caller was aborted (the clock has moved even then). */
int edo_time_advance(int64_t ms);

/* Turns auto-advance of the calling task's runtime's paused clock on (the default) or
 * off. Off, a paused clock moves only by edo_time_advance. 0 or -EDO_ENOTASK outside a task. */
int edo_time_auto_advance(bool on);

/* Whether the calling task's runtime's clock is paused (false outside a task). */
bool edo_time_paused(void);

/* ---------------------------------------------------------------------------------------- */
/* Runtime                                                                                  */

typedef struct edo_runtime edo_runtime;

/* What every task runs: the root task of edo_block_on and edo_main, and every spawned one.
 * Its result is the task's, for edo_join (edo_int_result carries an int). */
typedef void *(*edo_task_fn)(void *arg);

/* Where a runtime learns that descriptors are ready or operations are done. */
typedef enum edo_backend {
    /* Choose: io_uring when this build has it (liburing) and the kernel allows it
     * (not too old, not disabled by io_uring_disabled or a seccomp filter), else epoll. */
    EDO_BACKEND_AUTO = 0,
    /* epoll: a call tries the system call and waits for readiness when it would block;
     * file calls run on the blocking pool. */
    EDO_BACKEND_EPOLL = 1,
    /* io_uring: calls are submitted as operations to a ring per worker, submitted together
     * once per scheduler turn; file calls are asynchronous too. */
    EDO_BACKEND_URING = 2,
} edo_backend;

typedef struct edo_runtime_opts {
    /* Worker threads. 0: EDO_WORKERS from the environment, else the number of CPUs this
     * process may run on. One worker is the current-thread flavour: every task runs on
     * the thread inside edo_block_on and no thread is started. Two or more start that
     * many worker threads, which share the tasks (work stealing) and run them whether or
     * not a thread is inside edo_block_on. At most 1024. */
    int workers;
    /* Default usable stack size of a task in bytes (rounded up to pages; a guard page
     * is added). 0: 64 KiB. */
    size_t stack_size;
    /* How many free stacks each worker keeps for reuse. 0: 256. Beyond that they go to a
     * cache the process shares (at most 131072 stacks; what it holds above 256 for over a
     * second is unmapped when a worker idles or a runtime is freed, all of it at exit). */
    size_t stack_cache;
    /* How long edo_runtime_free lets aborted tasks unwind (and blocking calls finish)
     * before it abandons the ones still running, in ms. 0: 5000. */
    int64_t shutdown_timeout_ms;
    /* Most threads of the blocking pool (edo_spawn_blocking). 0: 512. */
    int blocking_threads;
    /* How long an idle thread of the blocking pool waits for work before it exits, in
     * ms. 0: 10000. */
    int64_t blocking_keep_alive_ms;
    /* The I/O backend. EDO_BACKEND_AUTO: EDO_BACKEND from the environment ("auto", "epoll"
     * or "uring"), else the automatic choice. Asking for io_uring where it cannot be had
     * makes edo_runtime_new fail (-ENOSYS without liburing in this build, else the
     * kernel's refusal) rather than run on something else than asked. */
    edo_backend backend;
    /* Size of the buffers edo_read_lent lends, in bytes. 0: 16 KiB. */
    size_t read_buf_size;
    /* Buffers each worker lends on io_uring (the kernel's provided-buffer ring; rounded
     * up to a power of two, at most 32768). 0: 256. When they are all lent out, reads
     * fall back to allocated buffers. On epoll: free buffers each worker keeps. */
    unsigned read_bufs;
    /* Start with the clock paused, as if the root task's first call were edo_time_pause(),
     * for a test whose every timer is to run on the paused clock. */
    bool start_paused;
    /* Observation (edo/observe.h). The console endpoint's address: a Unix socket path, or
     * HOST:PORT for TCP. NULL: EDO_CONSOLE from the environment; "" or "off": none. */
    const char *console;
    /* The Prometheus endpoint's HOST:PORT. NULL: EDO_METRICS; "" or "off": none. */
    const char *metrics;
    /* Report a task that runs this many ms without suspending, and move the tasks queued
     * behind it to other workers (edo/observe.h). 0: EDO_BLOCKING_MS, else 10. Negative: do
     * not watch (nor signal a stuck worker; its queue still moves). */
    int64_t blocking_ms;
    /* The signal that prints a task dump to stderr (edo/observe.h). 0: EDO_DUMP_SIGNAL (a
     * name or number, "off"), else SIGQUIT. Negative: none. Taken only while its
     * disposition is the default one. SIGKILL, SIGSTOP, the signals of faults (SIGSEGV,
     * SIGBUS, SIGFPE, SIGILL), SIGPIPE and SIGURG (the blocking watch's) make
     * edo_runtime_new fail with -EINVAL. */
    int dump_signal;
} edo_runtime_opts;

/* Creates a runtime. opts may be NULL for the defaults. Returns 0 or -errno. */
int edo_runtime_new(edo_runtime **rt, const edo_runtime_opts *opts);

/* Runs fn(arg) as a task on rt and waits until it returns; its result is stored in
 * *result when result is not NULL. With one worker (the current-thread flavour) the
 * calling thread is the worker: it runs every task while it is in here, and other tasks
 * are left where they are when the root task returns (they go on at the next
 * edo_block_on, or are aborted by edo_runtime_free). With worker threads, the root task
 * runs on them like any other and the calling thread only waits; several threads may
 * call edo_block_on at once. Must not be called from a task (-EDO_EINTASK).
 * Returns 0, -EDO_EABORTED if the
 * root task was aborted, or -errno. */
int edo_block_on(edo_runtime *rt, edo_task_fn fn, void *arg, void **result);

/* Shuts rt down: aborts every task that is still alive, runs each until it has returned
 * (their calls that suspend fail with -ECANCELED, so they unwind through their own
 * cleanup), then frees the runtime; the stacks go to the process's stack cache. Tasks that
 * still have not finished after the grace period (shutdown_timeout_ms, 5 s by default) are
 * listed on stderr and abandoned: they never run again, a join of one returns -EDO_EABORTED,
 * and its memory goes with its last handle. Must not be called from a task. */
void edo_runtime_free(edo_runtime *rt);

/* The runtime of the calling task, NULL outside a task. */
edo_runtime *edo_runtime_current(void);

/* How many workers rt has (1 for the current-thread flavour). */
int edo_runtime_workers(const edo_runtime *rt);

/* The backend rt runs on (never EDO_BACKEND_AUTO). With EDO_LOG=1 in the environment, a
 * runtime also says which one on standard error when it starts, and why when io_uring
 * was wanted but refused. */
edo_backend edo_runtime_backend(const edo_runtime *rt);

/* "epoll", "io_uring" or "auto". */
const char *edo_backend_name(edo_backend b);

/* Parses "epoll", "uring" (or "io_uring") and "auto" into *b. Returns 0 or -EINVAL. For
 * a server's -b option. */
int edo_backend_parse(const char *name, edo_backend *b);

/* Which of its runtime's workers the calling task runs on, from 0; -1 outside a task. A
 * task may move to another worker at any call that suspends or yields, so the value
 * is only a hint by the time it is used. The same holds for everything thread-local:
 * do not keep the address of a thread-local variable (errno's included) across an edo
 * call that can suspend; read errno right after the call that set it. */
int edo_worker_index(void);

/* Everything for a program whose work starts in one task: creates a runtime with the
 * defaults (and EDO_WORKERS), runs fn(arg) in it as the root task, and returns fn's result
 * as an exit status: NULL is 0, edo_int_result(n) is n, and a negative n becomes 1. When fn
 * returns, every task still alive is aborted at once and edo_main waits until each has
 * returned (their calls that suspend fail with -ECANCELED, so they unwind through their own
 * cleanup) before it frees the runtime and returns: no task runs on after edo_main, and a
 * task that was lent the root's locals must stop using them once its calls fail with
 * -ECANCELED. fn has the type of every task, so it can move between edo_main, edo_block_on
 * and edo_spawn. Typical use:
 *     static void *serve(void *arg) { ...; return edo_int_result(edo_fail(rc, "listen")); }
 *     int main(void) { return edo_main(serve, NULL); }
 * If the runtime cannot be created it prints why and returns 1. */
int edo_main(edo_task_fn fn, void *arg);

/* A task returns a void *; these carry an integer (a count, a status, -errno) through it. */
static inline void *edo_int_result(intptr_t v)
{
    return (void *)v;
}
static inline int edo_result_int(const void *result)
{
    return (int)(intptr_t)result;
}

/* ---------------------------------------------------------------------------------------- */
/* Tasks                                                                                    */

typedef struct edo_task edo_task;

typedef struct edo_spawn_opts {
    const char *name;  /* shown in reports and task lists (copied, up to 31 bytes) */
    size_t stack_size; /* 0: the runtime's default */
} edo_spawn_opts;

/* Spawns fn(arg) as a new task and returns 0 or -errno (-ENOMEM, -EAGAIN when the system
 * is out of memory maps, -ESHUTDOWN when the runtime is shutting down, -EDO_ENOTASK outside a
 * task: use edo_runtime_spawn there).
 *
 * With task == NULL the task is detached: nobody joins it and its memory is reclaimed when
 * it returns. With task != NULL *task is a handle that must be given back exactly once,
 * to edo_join or edo_detach. With one worker the new task starts after the caller next
 * suspends or yields, after the tasks that were ready before it; with worker threads an
 * idle worker may start it at once. The spawn site (file:line) is recorded for reports. */
#define edo_spawn(task, fn, arg) edo_spawn_at((task), NULL, (fn), (arg), EDO__HERE)

/* edo_spawn with a name and stack size. */
#define edo_spawn_with(task, opts, fn, arg) edo_spawn_at((task), (opts), (fn), (arg), EDO__HERE)

/* Spawns a task on rt from any thread, also from outside the runtime. Same returns and
 * handle rules as edo_spawn. With worker threads it runs at once; with one worker, when a
 * thread is in edo_block_on. */
#define edo_runtime_spawn(task, rt, fn, arg)                                                       \
    edo_runtime_spawn_at((task), (rt), NULL, (fn), (arg), EDO__HERE)

/* Waits until the task has returned, stores its return value in *result (if result is not
 * NULL) and releases the handle. Returns 0, or -EDO_EABORTED if the task was aborted
 * before it returned (*result is then what it returned while unwinding; a task abandoned
 * at shutdown gives NULL).
 * If the caller's deadline passes first, it returns -ETIMEDOUT and the handle stays
 * valid: join it again, or abort or detach it. If the caller itself is aborted while it
 * waits, the task is detached (it runs on and is reclaimed when it returns) and edo_join
 * returns -ECANCELED. So the handle is released by every return except -ETIMEDOUT and
 * the two below. -EDEADLK: a task joining itself; -EINVAL: another task is already
 * joining it (both leave the handle valid), or task is NULL. Suspends when called from a
 * task; from a thread outside the runtime it blocks that thread. */
int edo_join(edo_task *task, void **result);

/* Releases the handle without waiting: the task runs on and is reclaimed when it
 * returns. */
void edo_detach(edo_task *task);

/* Runs fn(arg) on a thread of the runtime's blocking pool, for work that would block a
 * worker: calls with no non-blocking form, long computations. *task is a handle with
 * the rules of edo_spawn's (NULL: detached); edo_join waits for fn to return and gives
 * its result. The pool starts threads as needed, up to the runtime's blocking_threads
 * (then calls wait in line), and stops the ones idle for blocking_keep_alive_ms.
 * edo_abort before fn has started means it never starts (a join reports -EDO_EABORTED); a
 * running fn cannot be interrupted and edo_aborted() is not defined inside it. Returns 0,
 * -EDO_ENOTASK outside a task, -ESHUTDOWN during shutdown, -EAGAIN when no thread can be
 * started, or -ENOMEM. At shutdown, calls still running after shutdown_timeout_ms are
 * abandoned: their joins report -EDO_EABORTED and their threads finish on their own. */
#define edo_spawn_blocking(task, fn, arg) edo_spawn_blocking_at((task), (fn), (arg), EDO__HERE)

/* Asks the task to stop: its current suspension and every later one returns -ECANCELED
 * until it returns. The task always runs to its end through its own code, so that it can
 * free what it owns (a task that ignores -ECANCELED and loops still lets the others run
 * now and then). Safe from any thread, on a finished task (then it does nothing), and
 * more than once. The handle stays valid. */
void edo_abort(edo_task *task);

/* True once the calling task has been aborted. */
bool edo_aborted(void);

/* Lets the other ready tasks run, then continues. Returns 0 or -ECANCELED if aborted. */
int edo_yield(void);

/* The calling task, NULL outside a task. Borrowed: do not join or detach it. */
edo_task *edo_self(void);

/* Unique id of a task (never 0, never reused within the process); edo_task_id(NULL) is
 * the id of the calling task, 0 outside a task. */
uint64_t edo_task_id(const edo_task *task);

/* Name of a task ("task" if none was given); NULL: the calling task. */
const char *edo_task_name(const edo_task *task);

/* Renames the calling task (copied, up to 31 bytes). */
void edo_set_name(const char *name);

/* What a task is doing, for task lists. */
typedef enum edo_task_state {
    EDO_TASK_READY,   /* waiting for a worker */
    EDO_TASK_RUNNING, /* on a worker now */
    EDO_TASK_PARKED,  /* suspended until something wakes it */
    EDO_TASK_DONE     /* returned, not yet joined */
} edo_task_state;

/* What a parked task waits for. */
typedef enum edo_wait_reason {
    EDO_WAIT_NONE,
    EDO_WAIT_SLEEP,
    EDO_WAIT_READ,   /* a descriptor to become readable (accept, read) */
    EDO_WAIT_WRITE,  /* a descriptor to become writable (connect, write) */
    EDO_WAIT_JOIN,   /* another task to finish */
    EDO_WAIT_SIGNAL, /* a signal */
    EDO_WAIT_YIELD,  /* ready again after a yield */
    EDO_WAIT_OTHER,
    EDO_WAIT_CHAN,   /* a channel's message or room (edo/sync.h) */
    EDO_WAIT_LOCK,   /* a mutex, read-write lock, semaphore or barrier */
    EDO_WAIT_NOTIFY, /* a notify, watch or cancellation token */
    EDO_WAIT_SELECT  /* edo_select */
} edo_wait_reason;

/* Buckets of a task's run histogram: runs (resume to suspension) shorter than 1 us,
 * 2 us, 4 us, ... 16.4 ms, and the last one those of 16.4 ms or more. */
#define EDO_RUN_HIST 16

/* A snapshot of one task's counters (edo/observe.h has the rest of the picture). */
typedef struct edo_task_info {
    uint64_t id;
    uint64_t parent; /* id of the task that spawned it; 0: spawned from outside a task */
    char name[32];
    const char *spawn_site; /* "file.c:123" */
    edo_task_state state;
    edo_wait_reason waiting_on;
    int worker;            /* the worker it runs on, or ran on last; -1: it never ran */
    uint64_t resumes;      /* times it was switched to */
    uint64_t busy_ns;      /* time spent running */
    uint64_t idle_ns;      /* time alive but not running: parked or waiting for a worker */
    uint64_t scheduled_ns; /* of idle_ns, the time it was ready and waited for a worker */
    uint64_t wakes_self;   /* wakes it gave itself (yields, its own channel sends, ...) */
    uint64_t wakes_other;  /* wakes from other tasks, threads, timers and the driver */
    int64_t last_wake;     /* edo_now() at its last wake; EDO_NEVER: never woken */
    int64_t spawned_at;    /* edo_now() at spawn, to a few ms (derived from busy_ns's clock) */
    size_t stack_size;
    size_t stack_used; /* deepest use of its stack seen when it parked, in bytes */
    /* While it waits (waiting_on != EDO_WAIT_NONE): */
    const void *wait_obj; /* what it waits on: the edo_io, channel, lock, task; NULL none */
    int wait_fd;          /* the descriptor of a read or write, else -1 */
    int64_t wait_until;   /* the wait's deadline (edo_now() ms), EDO_NEVER none */
    char wait[96];        /* in words: "read fd 7 (127.0.0.1:5123)", "sleep until +250 ms",
                           * "chan recv 0x55d0c2a0", "join task 12", "select: 3 cases" */
    uint32_t run_hist[EDO_RUN_HIST]; /* its runs by duration */
} edo_task_info;

/* Calls fn for every live task of rt (spawned and not yet returned), with a snapshot of
 * its counters; stops early when fn returns non-zero. From any thread; with worker threads
 * the tasks run on while they are visited, so each snapshot is of its own moment.
 * Returns the number of tasks visited. */
size_t edo_task_list(edo_runtime *rt, int (*fn)(const edo_task_info *info, void *arg), void *arg);

/* The counters of one task (NULL: the calling task). */
void edo_task_stats(const edo_task *task, edo_task_info *info);

/* ---------------------------------------------------------------------------------------- */
/* Descriptors and TCP                                                                      */

/* An open descriptor driven by the runtime: a socket, a pipe, a terminal. */
typedef struct edo_io edo_io;

/* Takes ownership of fd (made non-blocking and close-on-exec) and registers it with the
 * runtime. Descriptors that cannot be polled (regular files) are accepted and every call
 * on them runs directly. Call from a task. On failure fd is left open and untouched. */
int edo_io_wrap(edo_io **io, int fd);

/* The descriptor, for setsockopt and the like. Do not close it yourself. */
int edo_io_fd(const edo_io *io);

/* Per-call timeouts for reads (edo_read, edo_read_lent, edo_read_exact, edo_tcp_accept,
 * and edo_select's edo_case_read) and writes (edo_write, edo_write_all, edo_writev,
 * edo_case_write): each such call fails with -ETIMEDOUT if it cannot complete within that
 * many milliseconds of its start, or earlier at the task's deadline. 0 or a negative value:
 * none (the default). Bytes already transferred by a failing write_all/read_exact are
 * reported in its *done argument. Returns 0, or -EINVAL for a NULL io. */
int edo_io_set_timeout(edo_io *io, int64_t read_ms, int64_t write_ms);

/* Closes the descriptor and frees io. Tasks parked on io elsewhere are woken and fail with
 * -EBADF; from a task, edo_close waits for them to leave io first. Called from outside the
 * runtime while tasks still use io, it returns 0 at once and the last of them to leave
 * closes and frees it. Returns 0 or -errno from close(2) (the descriptor is closed either
 * way). io must not be used after edo_close. NULL: nothing to do, 0. */
int edo_close(edo_io *io);

/* Creates a listening TCP socket on "host:port" (see edo_parse_addr) with SO_REUSEADDR.
 * backlog <= 0: SOMAXCONN. */
int edo_tcp_listen(edo_io **lis, const char *addr, int backlog);

typedef struct edo_listen_opts {
    int backlog;    /* <= 0: SOMAXCONN */
    bool reuseport; /* SO_REUSEPORT: several listeners share the port */
    bool v6only;    /* IPV6_V6ONLY for an IPv6 address */
} edo_listen_opts;

/* edo_tcp_listen with options. opts may be NULL. */
int edo_tcp_listen_with(edo_io **lis, const char *addr, const edo_listen_opts *opts);

/* Accepts one connection (suspends). The new socket has TCP_NODELAY set. If the process
 * is out of descriptors or memory, it waits (a back-off from 10 ms up to 1 s, so the
 * accept loop never spins) and returns -EMFILE/-ENFILE/-ENOBUFS/-ENOMEM, for which
 * edo_retryable() is true. */
int edo_tcp_accept(edo_io **conn, edo_io *lis);

/* Connects to "host:port" (IPv4 or "[v6]:port" literal), suspending at most timeout_ms
 * milliseconds (<= 0: until the task's deadline). The socket has TCP_NODELAY set. */
int edo_tcp_connect(edo_io **conn, const char *addr, int64_t timeout_ms);

/* Reads up to len bytes (suspends until at least one is there). Returns the count, 0 at
 * end of stream (or when len is 0), or -errno. */
ssize_t edo_read(edo_io *io, void *buf, size_t len);

/* A buffer the runtime lends to edo_read_lent: data holds len bytes read. Give it back
 * with edo_buf_release once done with them (from any task or thread, before the runtime
 * is freed). The fields after len are the runtime's. */
typedef struct edo_buf {
    char *data;
    size_t len;
    void *owner_;
    uint32_t id_;
} edo_buf;

/* Reads into a buffer the runtime lends, once data is there: a task waiting here holds
 * no buffer of its own, so ten thousand idle connections cost no read buffers at all. On
 * io_uring the kernel picks the buffer when data arrives (provided buffers, per worker);
 * on epoll the read takes one from a pool once the socket is readable. At most the
 * runtime's read_buf_size bytes per call. Returns the count (> 0; *buf is then lent), 0 at
 * end of stream, or -errno (nothing lent then). */
ssize_t edo_read_lent(edo_io *io, edo_buf *buf);

/* Gives back a buffer edo_read_lent lent; clears *buf. NULL or an empty edo_buf: no-op. */
void edo_buf_release(edo_buf *buf);

/* Reads exactly len bytes (suspends). Returns 0 when all arrived; -ENODATA if the stream
 * ended first; otherwise -errno. If done is not NULL, *done is the number of bytes stored
 * in buf either way. */
int edo_read_exact(edo_io *io, void *buf, size_t len, size_t *done);

/* Writes up to len bytes (suspends until at least one can be written). Returns the count
 * or -errno (-EPIPE, -ECONNRESET: the peer is gone). Never raises SIGPIPE. */
ssize_t edo_write(edo_io *io, const void *buf, size_t len);

/* Writes all len bytes. Returns 0 or -errno; *done (if not NULL) is how many were sent. */
int edo_write_all(edo_io *io, const void *buf, size_t len, size_t *done);

/* Writes from iovcnt buffers (one sendmsg/writev; suspends until some can be written).
 * Returns the count or -errno. */
ssize_t edo_writev(edo_io *io, const struct iovec *iov, int iovcnt);

/* Waits until io is readable (what = EDO_READ) or writable (EDO_WRITE), for calls edo does
 * not wrap. Returns 0 or -errno. */
#define EDO_READ 1
#define EDO_WRITE 2
int edo_io_wait(edo_io *io, int what);

/* One attempt at a read or a write that never waits: the count (0 at end of stream for a
 * read), -EAGAIN if the descriptor is not ready now, or -errno. For loops built on
 * edo_select's read and write cases. */
ssize_t edo_try_read(edo_io *io, void *buf, size_t len);
ssize_t edo_try_write(edo_io *io, const void *buf, size_t len);

/* Shuts down the sending side (the peer reads end of stream); reading goes on. */
int edo_shutdown(edo_io *io);

/* TCP_NODELAY on or off. */
int edo_tcp_nodelay(edo_io *io, bool on);

/* Local and peer address as text ("127.0.0.1:8080", "[::1]:8080") into buf; returns 0 or
 * -errno (-ENOSPC if buf is too small; 48 bytes always suffice). */
int edo_local_addr(const edo_io *io, char *buf, size_t len);
int edo_peer_addr(const edo_io *io, char *buf, size_t len);

/* Parses "host:port" into *ss: an IPv4 literal, "[v6]:port", ":port" or "*:port" (every
 * IPv4 address), or "localhost:port" (127.0.0.1). The port is 0-65535 in decimal digits.
 * Other names need a resolver and are refused with -EINVAL. */
int edo_parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *sslen);

/* ---------------------------------------------------------------------------------------- */
/* Signals                                                                                  */

/* Takes the nsig signals in sigs over for the whole process now, without waiting: edo
 * installs a handler of its own for them (sigaction; it only counts the signal and wakes
 * the runtime), so that one that arrives before any task waits for it is kept for
 * edo_signal_wait instead of taking its default action, whichever thread it lands on. No
 * thread needs to block anything for this, the program's own threads included. Call it
 * before the program announces that it is ready (a server: before it opens its port), so
 * that what it needs is in place: it fails with -EMFILE or -ENOMEM when the runtime's
 * descriptor for signals cannot be made, and then nothing has changed. Returns 0 or
 * -errno (-EINVAL for SIGKILL, SIGSTOP, the C library's own signals or a number out of
 * range, -EDO_ENOTASK outside a task, -EMFILE also when 64 runtimes have taken signals at once).
 * Signals already taken over are left as they are. They stay edo's until the last runtime
 * that took them is freed; then their old dispositions come back, and what arrived
 * meanwhile and was not waited for is dropped.
 *
 * The handler runs on whichever thread the kernel picks, edo's workers and blocking pool
 * included: a blocking system call there (in a function of edo_spawn_blocking) may fail
 * with EINTR or return early where SA_RESTART does not restart it (poll, nanosleep,
 * connect; see signal(7)). A program's own handlers can run on edo's threads too, and
 * there on a task's stack: give them SA_ONSTACK (edo's workers have a signal stack). */
int edo_signal_take(const int *sigs, int nsig);

/* Suspends until one of the nsig signals in sigs arrives and returns its number, or
 * -errno. The first call for a signal takes it over as edo_signal_take does, if nothing
 * has yet, so a Ctrl-C no longer kills the program but is delivered here. Call it from one
 * task at a time. Two arrivals of a signal before a wait may count once (as the kernel
 * merges a pending signal); one raised for a single thread (raise, pthread_kill) is
 * delivered like any other. */
int edo_signal_wait(const int *sigs, int nsig);

/* Child processes. A runtime's threads block SIGPIPE (so that a write to a closed pipe is
 * -EPIPE, never a signal) and otherwise the mask of the thread that made the runtime,
 * nothing more. A child made with fork (and exec) from any thread of edo starts with that
 * thread's mask, without SIGPIPE, and with the old dispositions of the signals edo took
 * over (a child handler of pthread_atfork puts them back). posix_spawn runs no fork
 * handlers: from a task, its child starts with SIGPIPE blocked too, unless the attributes
 * say otherwise, which is what a program should do anyway:
 *     sigset_t none, dfl;
 *     sigemptyset(&none);
 *     sigemptyset(&dfl);
 *     sigaddset(&dfl, SIGPIPE);
 *     posix_spawnattr_setsigmask(&attr, &none);
 *     posix_spawnattr_setsigdefault(&attr, &dfl);
 *     posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
 * exec resets the signals edo handles to their default action in every case. */

#include "edo/fs.h"
#include "edo/sync.h"
/* after sync.h, whose types it uses */
#include "edo/serve.h"

/* ---------------------------------------------------------------------------------------- */
/* Internals the macros above need                                                          */

#define EDO__STR2(x) #x
#define EDO__STR(x) EDO__STR2(x)
#define EDO__HERE __FILE__ ":" EDO__STR(__LINE__)

int edo_spawn_at(edo_task **task, const edo_spawn_opts *opts, edo_task_fn fn, void *arg,
                 const char *site);
int edo_runtime_spawn_at(edo_task **task, edo_runtime *rt, const edo_spawn_opts *opts,
                         edo_task_fn fn, void *arg, const char *site);
int edo_spawn_blocking_at(edo_task **task, edo_task_fn fn, void *arg, const char *site);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif /* EDO_H */
