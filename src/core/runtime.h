/*
 * The runtime's internal structures: tasks, workers and the runtime itself, and the one
 * park/wake protocol every resource uses.
 *
 * Task states (edo_task.state):
 *   QUEUED   in a run queue, or handed to one (spawned, or woken from PARKED)
 *   RUNNING  on a worker; may also sit in a run queue after a yield, still RUNNING: a
 *            yield changes no state, so it costs no atomic operation
 *   PARKED   suspended; only edo__wake moves it on (to QUEUED)
 *   DONE     returned; the stack is no longer in use
 * NOTIFIED is a flag on RUNNING: a wake arrived while the task ran, so its next park
 * returns at once instead of sleeping. A wake of a QUEUED, NOTIFIED or DONE task does
 * nothing. The move RUNNING -> PARKED is made by the worker *after* it has switched off
 * the task's stack, so a waker on another thread can never resume a task whose stack is
 * still in use.
 *
 * A resource that lets a task wait stores the task in a waiter slot (edo__slot_arm) with a
 * reference, and whoever takes it out (edo__slot_fire, or the task itself in
 * edo__slot_disarm) drops that reference after the wake, so the task's memory outlives
 * every wake that can still reach it. Park may return because of a wake that was not the
 * one awaited (an earlier slot fired late, an abort): every caller re-checks its condition
 * in a loop.
 */
#ifndef EDO_CORE_RUNTIME_H
#define EDO_CORE_RUNTIME_H

#include "core/clock.h"
#include "core/coro.h"
#include "core/driver.h"
#include "core/list.h"
#include "core/timer.h"
#include "edo.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>

enum {
    EDO__QUEUED = 0,
    EDO__RUNNING = 1,
    EDO__PARKED = 2,
    EDO__DONE = 3,
    EDO__NOTIFIED = 4,
};

/* Operations that completed without suspending before a task must let others run. */
#define EDO__BUDGET 128

typedef struct edo__worker edo__worker;

struct edo_task {
    edo__ctx ctx;
    _Atomic uint32_t state;
    _Atomic uint32_t refs;
    _Atomic bool aborted;
    _Atomic bool foreign_joiner; /* a thread outside the runtime waits in edo_join */
    _Atomic(edo_task *) joiner;  /* a task waiting in edo_join */
    edo__link all_link;          /* in its shard of the task list (under the shard's lock) */
    edo__slink inject_link;      /* in the inject queue (under rt->inject_lock) */
    edo__slink spill_link;       /* in its lone worker's spill list (that worker only) */
    /* blocking: in the pool's queue, then in its list of started calls (under its lock) */
    edo__slink pool_link;
    edo__link running_link;
    edo_runtime *rt;
    edo_task_fn fn;
    void *arg;
    void *result;
    int64_t deadline;
    edo__timer timer;
    bool timer_fired;           /* written under the wheel's lock (edo__park) */
    bool listed;                /* in the runtime's task list (shard `shard`) */
    bool cancelled;             /* aborted before it returned (read by join after DONE) */
    bool blocking;              /* a call on the blocking pool: no stack, never scheduled */
    bool abandoned;             /* blocking: given up by shutdown (under the pool's lock) */
    bool wakes_block_on;        /* the root task of an edo_block_on: its end bumps bo_word */
    _Atomic uint8_t waiting_on; /* edo_wait_reason */
    uint16_t shard;
    uint32_t budget;
    edo__stack stack;
    size_t stack_size;
    /* counters: written by the worker running the task, read by edo_task_stats */
    uint64_t id;
    _Atomic uint64_t resumes;
    _Atomic uint64_t busy_cycles; /* edo__cycles() ticks spent running */
    uint64_t run_start;           /* edo__cycles() at the last resume */
    uint64_t spawned_cycles;      /* edo__cycles() at spawn */
    const char *site;
    char name[32];
};

/* A bounded ring run queue: the owner pushes at the tail and pops at the head; other
 * workers take half of it from the head (stealing), so the head moves by CAS. Slots are
 * atomics so that a stealer's read of a slot the owner is rewriting is not a data race;
 * the stealer's CAS then fails and it retries. */
#define EDO__LOCAL_QUEUE 256
typedef struct edo__queue {
    bool stealable; /* false with one worker: the owner pops without a CAS */
    _Atomic uint32_t head;
    _Atomic uint32_t tail;
    _Atomic(edo_task *) slot[EDO__LOCAL_QUEUE];
} edo__queue;

/* A lock for short critical sections (a few pointer moves). */
typedef _Atomic int edo__spin;
void edo__spin_lock_slow(edo__spin *l);
static inline void edo__spin_lock(edo__spin *l)
{
    if (__builtin_expect(atomic_exchange_explicit(l, 1, memory_order_acquire), 0))
        edo__spin_lock_slow(l);
}
static inline void edo__spin_unlock(edo__spin *l)
{
    atomic_store_explicit(l, 0, memory_order_release);
}

/* A counter written by one thread at a time and read by others: no locked instruction. */
static inline void edo__counter_add(_Atomic uint64_t *c, uint64_t v)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

/* Where a parked worker sleeps (edo__worker.sleep_mode). */
enum { EDO__AWAKE = 0, EDO__SLEEP_FUTEX, EDO__SLEEP_DRIVER };

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
} __attribute__((aligned(64)));

enum { EDO__SW_YIELD = 1, EDO__SW_PARK, EDO__SW_EXIT };

/* One part of the task list, with its own lock: a worker adds the tasks it spawns to its
 * own part, so spawning on different workers does not contend. */
typedef struct edo__shard {
    edo__spin lock;
    edo__list all; /* t->all_link */
    uint64_t live;
} __attribute__((aligned(64))) edo__shard;

typedef struct edo__pool edo__pool;

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
};

/* ---- accessors that survive migration (DESIGN.md section 3) ---------------------------- */
edo__worker *edo__worker_current(void);
edo_task *edo__task_current(void);
/* errno of the calling thread, read afresh: after a call that may have suspended, a task
 * may be on another thread, and the compiler may have kept the old thread's errno
 * address (__errno_location is a const function). */
int edo__errno(void);

/* ---- park and wake ---------------------------------------------------------------------- */

/* Suspends the calling task until it is woken, `deadline` or the task's deadline passes,
 * or it is aborted. Returns 0 when woken (re-check the condition), -ETIMEDOUT once a
 * deadline has passed (checked before suspending too), -ECANCELED once aborted. */
int edo__park(edo_wait_reason why, int64_t deadline);

/* edo_yield after a look at the driver and the timers: for a task that does a long piece
 * of work on its worker between yields (a cached file read in pieces), so that what came
 * due meanwhile runs before its next piece, not EVENT_INTERVAL pieces later. */
int edo__yield_polling(void);

/* The core of edo__park: suspends the calling task t until it is woken (at once if a wake
 * came first), with no deadline and no abort check. For waits that must not be cut short
 * (edo_close waiting for the other users of an io to leave). */
void edo__suspend(edo__worker *w, edo_task *t);

/* Makes t runnable if it is parked, or makes its next park return at once if it runs.
 * Safe from any thread while the caller holds a reference to t. The condition the task
 * waits for must be published before, by a sequentially consistent store or a
 * read-modify-write: a release store alone may pass the look at t's state. */
void edo__wake(edo_task *t);

void edo__task_ref(edo_task *t);
void edo__task_unref(edo_task *t);

/* Waiter slots: at most one task waits in a slot. */
typedef _Atomic(edo_task *) edo__slot;
/* Stores the calling task (with a reference). Returns false if another task is there. */
bool edo__slot_arm(edo__slot *s, edo_task *self);
/* Takes the calling task out again if nothing has fired it. */
void edo__slot_disarm(edo__slot *s, edo_task *self);
/* Wakes the waiting task, if any. */
void edo__slot_fire(edo__slot *s);

/* edo_select's join case: arms t's joiner slot for self. 1: t is done, 0: armed (the end
 * of t fires it), -EBUSY: another task joins it, -EDEADLK: t is self (nothing armed). */
int edo__task_sel_arm(edo_task *t, edo_task *self);
void edo__task_sel_disarm(edo_task *t, edo_task *self);

/* Counts one operation that completed without suspending; yields when the budget is
 * spent, so that a task whose descriptors are always ready cannot starve others. */
void edo__budget_spend(void);

/* ---- scheduler internals ---------------------------------------------------------------- */
void edo__schedule(edo_task *t); /* t is QUEUED: put it on a run queue */
/* Current-thread flavour: wakes the worker if it sleeps (or is about to) in its driver. */
void edo__wake_lone_worker(edo_runtime *rt);
void edo__schedule_tail(edo__worker *w, edo_task *t); /* at the tail of w's own queue, and
                                                       * wake another worker if w has more */
/* Runs tasks until `until` is DONE (NULL: until no task is left) or give_up_at passes;
 * a worker thread of a threaded runtime: until the runtime stops. */
void edo__sched_loop(edo__worker *w, edo_task *until, int64_t give_up_at);
/* Fires w's timers that are due at `now` (ms on the runtime's clock); any thread (the
 * monitor fires a stuck worker's). Returns how many fired. */
int edo__fire_timers(edo__worker *w, int64_t now);
/* Polls w's driver without waiting and fires w's due timers; true if w has work then. */
bool edo__poll_now(edo__worker *w);
/* A task is in w's LIFO slot, its run queue or its spill list. */
bool edo__has_local_work(const edo__worker *w);
/* Tasks in the runtime's task list. */
uint64_t edo__live(edo_runtime *rt);
/* Calls fn on every listed task, each held by a reference while fn runs. */
void edo__task_each(edo_runtime *rt, void (*fn)(edo_task *t, void *arg), void *arg);
void edo__task_list_remove(edo_task *t);

/* ---- idle workers (src/core/idle.c) ------------------------------------------------- */
/* Wakes one sleeping worker to look for work, unless one is looking already or none
 * sleeps. Called whenever work is added that the adding worker will not run at once. */
void edo__notify_parked(edo_runtime *rt);
/* A worker that found no work: sleeps until notified, or until its own timers or the
 * driver give it some. On return w->searching says whether it was notified to search. */
void edo__park_worker(edo__worker *w);
/* One sleep of a parked worker (sched.c). */
void edo__worker_sleep(edo__worker *w);
/* A searching worker found work: if it was the last one searching, wake another. */
void edo__end_search(edo__worker *w);
/* May w start searching (steal)? At most half the workers search at once. */
bool edo__begin_search(edo__worker *w);
/* Wakes w wherever it sleeps. */
void edo__wake_worker(edo__worker *w);
/* Work exists somewhere: the inject queue or a worker's queue. */
bool edo__work_exists(edo_runtime *rt);
uint32_t edo__queue_len(const edo__queue *q);
/* pthread_create for a thread of the runtime's own: it starts with the signal mask base
 * and SIGPIPE, and should call edo__thread_set_base_mask(base) first thing (base must
 * outlive it). Returns 0 or a positive errno, as pthread_create. */
int edo__thread_create(pthread_t *th, const pthread_attr_t *attr, const sigset_t *base,
                       void *(*fn)(void *), void *arg);
/* The mask a runtime's thread is to give a child of fork (the one the program's thread had
 * before the runtime), NULL in a thread that is not a runtime's. */
const sigset_t *edo__thread_base_mask(void);
void edo__thread_set_base_mask(const sigset_t *base);
/* The monitor thread of a threaded runtime. */
void *edo__monitor_main(void *arg);

/* Picks rt's driver for `want`: sets rt->driver and rt->backend, or returns -errno. */
typedef int (*edo__driver_choice)(edo_runtime *rt, edo_backend want);
/* edo_runtime_new with the driver that `choose` picks (the I/O layer wires the two:
 * src/io/backend.c). */
int edo__runtime_new(edo_runtime **out, const edo_runtime_opts *opts, edo__driver_choice choose);

/* ---- blocking pool (src/core/pool.c) -------------------------------------------------- */
/* Runs fn(arg) on a thread of the pool and suspends the calling task until it has
 * returned; no task is allocated for it. Returns 0 once fn has run, whatever happened to
 * the task meanwhile: once fn has started the wait is not cut short by an abort or a
 * deadline (fn may be using the caller's buffers), and the abort shows at the task's next
 * suspension point. Before fn starts (at entry, or while it waits in line for a thread),
 * an abort or the task's deadline takes the call back: -ECANCELED or -ETIMEDOUT, and fn
 * never runs. always: it runs and is waited for even then (a close). Also -EPERM outside
 * a task, -ESHUTDOWN once the pool is closed, -ECANCELED if shutdown dropped it before it
 * started, -EAGAIN or -ENOMEM when the pool has no thread and cannot start one. `why` is
 * what the task shows as waiting on. */
int edo__pool_run(void (*fn)(void *arg), void *arg, edo_wait_reason why, bool always);
/* Refuses new calls and cancels the ones that have not started. */
void edo__pool_close(edo_runtime *rt);
/* Calls still running. */
int edo__pool_running(edo_runtime *rt);
/* No call of the pool is running or waiting for a thread. */
bool edo__pool_idle(edo_runtime *rt);
/* Abandons the calls still running (their joins report -ECANCELED) and lets the pool's
 * threads end on their own. */
void edo__pool_free(edo_runtime *rt);
/* Ends a blocking call's task: DONE, joiners woken. */
void edo__task_publish_end(edo_task *t);
/* Sleeps while *word == val, at most timeout_ms (-1: no limit); may return early, so every
 * caller loops on its condition. */
void edo__futex_wait(_Atomic uint32_t *word, uint32_t val, int timeout_ms);
/* Under TSan a signal's handler runs only once the thread the signal landed on passes one
 * of TSan's interceptors, which a futex or io_uring wait made with syscall() is not, and
 * such a wait restarts after the signal as if nothing had come: a signal edo took over
 * would never be handled. So, in TSan builds only, those waits last at most
 * EDO__TSAN_SLICE_MS and pass an interceptor after (edo__tsan_signal_point). */
#ifdef EDO_TSAN
#define EDO__TSAN_SLICE_MS 50
void edo__tsan_signal_point(void);
#endif
void edo__futex_wake(_Atomic uint32_t *word, int n);
void edo__switch_out(edo__worker *w, edo_task *self, int why);
/* The last switch of a task that has returned (its end published); never returns. */
_Noreturn void edo__switch_exit(edo__worker *w, edo_task *self);
/* Runs a task's function and publishes its end (task.c), on the task's stack. */
void edo__task_run(edo_task *t);
void edo__task_started(edo_task *t);
void edo__task_finish(edo__worker *w, edo_task *t);
/* Ends a task that will never run again (shutdown gave up on it): DONE and cancelled for
 * its joiners, and its memory goes with the last reference. */
void edo__task_abandon(edo_task *t);
void edo__task_list_add(edo_runtime *rt, edo_task *t);
/* The spawn options of an edo_block_on root task (recognised by address). */
extern const edo_spawn_opts edo__root_opts;
void edo__worker_enter(edo__worker *w);
void edo__worker_leave(void);

/* A cheap monotonic tick counter for the busy-time counters: the TSC on x86-64 (no system
 * call, no vDSO), the virtual counter on aarch64, the coarse clock elsewhere. */
static inline uint64_t edo__cycles(void)
{
#if defined(__x86_64__)
    return __builtin_ia32_rdtsc();
#elif defined(__aarch64__)
    uint64_t v;
    __asm__ volatile("mrs %0, cntvct_el0" : "=r"(v));
    return v;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
#endif
}
/* Converts a span of edo__cycles() ticks to nanoseconds. */
uint64_t edo__cycles_to_ns(uint64_t cycles);

/* ---- stack overflow report (src/core/task.c) ----------------------------------------- */
int edo__overflow_init_thread(edo__worker *w);
/* Prints which task overflowed its stack, and how that was found, and aborts. */
_Noreturn void edo__overflow_report(const edo_task *t, const char *how);

/* Leaves the overflowed task's stack for the worker's own and reports from there: printing
 * takes more stack than an overflowed task has left. */
_Noreturn void edo__overflow_report_away(edo_task *t, const char *how);

/* For a stack without a guard page, at each switch away: reports an overflow if the task
 * is below its stack now, or was (a canary is overwritten). */
static inline void edo__stack_check(edo_task *t)
{
    char here;
    if ((char *)&here < (char *)t->ctx.stack_lo)
        edo__overflow_report_away(t, "it is below its stack (which has no guard page)");
    if (!edo__stack_intact(&t->stack))
        edo__overflow_report_away(t, "it wrote below its stack (which has no guard page)");
}
void edo__overflow_fini_thread(edo__worker *w);

#endif
