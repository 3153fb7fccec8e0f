/*
 * The runtime and its workers: struct edo_runtime and struct edo__worker, the runtime's
 * creation with a driver, and its threads. Each concept the structs hold has its own
 * header, which says who may touch that part:
 *
 *   list.h     intrusive lists          spin.h    the spin lock
 *   task.h     tasks, the task list     park.h    park, wake, waiter slots, budget
 *   sched.h    run queues, switching    idle.h    idle workers, the monitor
 *   timer.h    the timing wheel         clock.h   the runtime's clock
 *   pool.h     the blocking pool        driver.h  the seam to the I/O driver
 *   coro.h     contexts and stacks      futex.h   sleeping on a word
 *   stats.h    counter primitives       sanitize.h  which sanitizer runs
 *   blocking.h the blocking-task watch   probe.h   the monitor's signal to a worker
 *   backtrace.h  taking and naming stacks  dumpsig.h  the dump signal
 *
 * Both structs are set up by edo__runtime_new on the thread that makes the runtime,
 * before any of its threads start, and the fields without a comment naming a lock, an
 * owner or an atomic are read-only after that. A worker's fields belong to the thread
 * that runs it (in the current-thread flavour, the thread inside edo_block_on) unless
 * their comment or their concept's header says otherwise.
 */
#ifndef EDO_CORE_RUNTIME_H
#define EDO_CORE_RUNTIME_H

#include "core/backtrace.h"
#include "core/blocking.h"
#include "core/clock.h"
#include "core/coro.h"
#include "core/driver.h"
#include "core/dumpsig.h"
#include "core/futex.h"
#include "core/idle.h"
#include "core/list.h"
#include "core/park.h"
#include "core/pool.h"
#include "core/probe.h"
#include "core/sched.h"
#include "core/spin.h"
#include "core/stats.h"
#include "core/task.h"
#include "core/timer.h"
#include "edo.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

struct edo__worker {
    edo_runtime *rt;
    int index;
    edo__ctx sched;         /* the worker thread's own stack: the scheduler loop */
    edo_task *current;      /* running task, NULL in the scheduler loop */
    edo_task *prev;         /* the task just switched away from, finished by the next side */
    int prev_why;           /* what prev wants: EDO__SW_* */
    edo_task *lifo;         /* the task most recently woken by the running task */
    uint32_t lifo_streak;   /* consecutive runs from the LIFO slot */
    _Atomic uint32_t tick;  /* task runs; the monitor reads it to find a stuck worker */
    bool poll_due;          /* time to poll the driver (sched.c's EVENT_INTERVAL) */
    uint32_t poll_interval; /* task runs between polls while busy */
    uint32_t next_poll_tick;
    uint32_t rand; /* picks the first victim to steal from */
    edo__queue queue;
    /* One worker only: what its full queue could not take, in FIFO order (t->spill_link).
     * No other thread ever touches it, so it needs no lock. */
    edo__fifo spill;
    edo__spin wheel_lock;
    edo__wheel wheel;
    /* parking (src/core/idle.c) */
    bool searching;             /* counted in the runtime's searching workers */
    bool sleeper;               /* on the sleepers list (under idle_lock) */
    _Atomic int parked;         /* current-thread: in the driver's poll, or about to be; threaded:
                                 * in the idle loop (read by the monitor) */
    _Atomic int sleep_mode;     /* EDO__AWAKE, or where it sleeps */
    _Atomic uint32_t wake_word; /* set by whoever wakes it; futex word */
    uint32_t monitor_tick;      /* the monitor's last look at `tick` */
    int64_t monitor_tick_at;    /* edo__real_ms() when the monitor last saw `tick` move */
    pthread_t thread;
    bool started;
    edo__stack_cache stacks; /* free stacks, reused before mapping new ones */
    sigset_t saved_sigmask;  /* the driving thread's mask before it became the worker */
    edo_task *overflowed;    /* a task whose stack overflowed, to report from this stack */
    const char *overflow_how;
    void *altstack; /* signal stack for the stack-overflow report */
    size_t altstack_len;
    bool clock_idle;   /* counted idle by a paused clock's auto-advance (clock.c) */
    void *driver_data; /* the driver's state for this worker (driver.h) */
    char **lent_cache; /* free buffers for edo_read_lent (src/io/buf.c) */
    uint32_t nlent_cache;
    /* Counters for edo_worker_stats (edo/observe.h), each written by one thread: the
     * worker, except blocking_reports and handoffs (the monitor). */
    _Atomic uint64_t run_started; /* edo__cycles() at the running task's resume; 0: none */
    _Atomic uint64_t running_id;  /* that task's id */
    _Atomic uint64_t n_runs, n_steals, n_parks, n_polls, n_events, n_timers, n_forced;
    _Atomic uint64_t n_blocking, n_handoffs;
    _Atomic uint64_t busy_cycles;
} __attribute__((aligned(64)));

struct edo_runtime {
    edo__worker *workers;
    int nworkers;
    bool threaded;     /* worker threads (nworkers >= 2), not the current-thread flavour */
    size_t stack_size; /* usable bytes of a default stack */
    size_t stack_cache;
    int64_t shutdown_timeout_ms;
    int blocking_threads;
    int64_t blocking_keep_alive_ms;
    /* inject queue: tasks spawned or woken from outside the workers, and overflow */
    pthread_mutex_t inject_lock;
    edo__fifo inject; /* t->inject_link */
    _Atomic uint32_t inject_len;
    /* every live task, for task lists and shutdown */
    edo__shard *shards;
    edo_backend backend;  /* EDO_BACKEND_EPOLL or EDO_BACKEND_URING */
    size_t read_buf_size; /* edo_read_lent's buffers */
    unsigned read_bufs;
    const edo__driver *driver; /* the I/O driver (driver.h), chosen when it was made */
    void *driver_data;         /* the driver's state for the runtime */
    unsigned driver_flags;     /* what the driver's probe chose (io_uring: setup flags) */
    _Atomic int64_t last_poll; /* edo__real_ms() of the last poll, for the monitor */
    edo__clock clock;          /* what its tasks see as time (clock.h) */
    /* idle workers (src/core/idle.c) */
    pthread_mutex_t idle_lock;
    _Atomic uint32_t idle_state; /* searching workers (low 16 bits), unparked (high 16) */
    int *sleepers;
    int nsleepers;
    /* the monitor thread (threaded runtimes) */
    pthread_t monitor;
    bool monitor_started;
    _Atomic uint32_t monitor_word;
    _Atomic bool stopping;    /* worker threads and the monitor return */
    _Atomic uint32_t bo_word; /* bumped when a block_on root ends */
    _Atomic bool driving;     /* a thread is inside edo_block_on (current-thread flavour) */
    _Atomic bool closing;     /* edo_runtime_free has begun: spawns fail with -ESHUTDOWN */
    edo__pool *pool;          /* the blocking pool, started at its first call */
    pthread_mutex_t pool_lock;
    /* signals (src/io/signal.c) */
    edo_io *sigio;         /* the eventfd its handler writes when a signal comes */
    int sig_slot;          /* where signal.c lists that eventfd */
    sigset_t sigmask;      /* the signals this runtime took over */
    sigset_t base_sigmask; /* the mask of the thread that made the runtime */
    /* observation (src/observe/): set up after the runtime is made, by the layer that made
     * it; observe_stop (if set) is edo_runtime_free's first step */
    void *observe;
    void (*observe_stop)(edo_runtime *rt);
    uint64_t born_cycles; /* edo__cycles() at edo_runtime_new, for uptime */
    /* A task running this many ms without suspending is reported (blocking); -1: not
     * watched */
    int64_t blocking_ms;
    /* blocking tasks (src/core/blocking.c) and task dumps (src/core/dumpsig.c) */
    struct edo__blocking *watch; /* the monitor's watch (threaded runtimes) */
    int dump_signal;             /* the signal that prints a task dump; 0: none */
    _Atomic bool dump_asked;     /* it came: the monitor (or the lone worker) prints */
    _Atomic bool monitor_idle;   /* it sleeps its long interval: the first worker up wakes it */
};

/* The threshold in effect: with one worker there is no monitor, and nothing is watched. */
static inline int64_t edo__blocking_threshold(const edo_runtime *rt)
{
    return rt->threaded ? rt->blocking_ms : -1;
}

/* ---- what goes to stderr (runtime.c) --------------------------------------------------- */

/* EDO_LOG: reports a program must hear of (a blocking task, an endpoint opened) are on
 * unless it is "0"; notes of the runtime's choices (which backend, why) only when it is set
 * to something else. */
bool edo__reports_on(void);
bool edo__log_chatty(void);

/* ---- making a runtime (runtime.c) ------------------------------------------------------ */

/* Picks rt's driver for `want`: sets rt->driver and rt->backend, or returns -errno. */
typedef int (*edo__driver_choice)(edo_runtime *rt, edo_backend want);
/* edo_runtime_new with the driver that `choose` picks (the I/O layer wires the two:
 * src/io/backend.c). */
int edo__runtime_new(edo_runtime **out, const edo_runtime_opts *opts, edo__driver_choice choose);

/* pthread_create for a thread of the runtime's own: it starts with the signal mask base
 * and SIGPIPE, and should call edo__thread_set_base_mask(base) first thing (base must
 * outlive it). Returns 0 or a positive errno, as pthread_create. */
int edo__thread_create(pthread_t *th, const pthread_attr_t *attr, const sigset_t *base,
                       void *(*fn)(void *), void *arg);
/* The mask a runtime's thread is to give a child of fork (the one the program's thread had
 * before the runtime), NULL in a thread that is not a runtime's. */
const sigset_t *edo__thread_base_mask(void);
void edo__thread_set_base_mask(const sigset_t *base);

#endif
