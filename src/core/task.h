/*
 * Tasks (task.c): the task struct, its states and references, the runtime's task list, a
 * task's end, and the stack-overflow report.
 *
 * Task states (edo_task.state):
 *   QUEUED   in a run queue, or handed to one (spawned, or woken from PARKED)
 *   RUNNING  on a worker; may also sit in a run queue after a yield, still RUNNING: a
 *            yield changes no state, so it costs no atomic operation
 *   PARKED   suspended; only edo__wake moves it on (to QUEUED), or a reader of its stack
 *            (to PEEKED)
 *   PEEKED   suspended, and its stack is being read (a backtrace, edo__task_peek): it must
 *            not resume until the reader is done
 *   DONE     returned; the stack is no longer in use
 * NOTIFIED is a flag on RUNNING: a wake arrived while the task ran, so its next park
 * returns at once instead of sleeping. On PEEKED it means a wake arrived while the stack
 * was read: the reader, when done, queues the task instead of putting it back to PARKED.
 * A wake of a QUEUED, NOTIFIED or DONE task does nothing. The move RUNNING -> PARKED is
 * made by the worker *after* it has switched off the task's stack, so a waker on another
 * thread can never resume a task whose stack is still in use (park.h has the protocol).
 *
 * Who touches what. The atomics (state, refs, aborted, joiner, waiting_on, the counters)
 * any thread may read, and change as the functions that change them say. Each list link
 * is changed only under the lock of its list, named at the field. The rest belongs to
 * the task and to the worker running it. A task's memory (at the top of its stack
 * mapping; a blocking call's is allocated) goes with its last reference: whoever touches
 * a task that is not its own holds one.
 */
#ifndef EDO_CORE_TASK_H
#define EDO_CORE_TASK_H

#include "core/coro.h"
#include "core/list.h"
#include "core/spin.h"
#include "core/timer.h"
#include "edo.h"

#include <stdatomic.h>
#include <string.h>

enum {
    EDO__QUEUED = 0,
    EDO__RUNNING = 1,
    EDO__PARKED = 2,
    EDO__DONE = 3,
    EDO__NOTIFIED = 4,
    EDO__PEEKED = 8,
};

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
    uint64_t out_cycles;          /* edo__cycles() when it last switched away (read while PEEKED) */
    uint64_t spawned_cycles;      /* edo__cycles() at spawn */
    const char *site;
    char name[32];
    /* more counters, for edo_task_info (edo/observe.h) */
    uint64_t parent;               /* the spawning task's id, 0: none */
    _Atomic int32_t worker;        /* index of the worker it runs or ran on, -1 */
    _Atomic uint64_t ready_cycles; /* edo__cycles() when it last became ready */
    _Atomic uint64_t sched_cycles; /* ticks spent ready, waiting for a worker */
    _Atomic uint64_t wakes_self, wakes_other;
    _Atomic uint64_t stack_used; /* deepest stack use seen at a park */
    _Atomic uint32_t run_hist[EDO_RUN_HIST];
    /* what it waits on (edo__wait_note, before it parks): meaningful while waiting_on is
     * not EDO_WAIT_NONE; written by the task, read by anyone */
    _Atomic(const void *) wait_obj;
    _Atomic int64_t wait_arg;   /* descriptor, task id, permits, select's packed cases */
    _Atomic int64_t wait_until; /* the park's deadline, EDO_NEVER none */
    _Atomic uint8_t wait_op;    /* EDO__OP_*: which operation on wait_obj */
};

/* What a waiting task does with its wait_obj, for the text of edo_task_info.wait. */
enum {
    EDO__OP_NONE = 0,
    EDO__OP_RECV,  /* chan, bcast */
    EDO__OP_SEND,  /* chan */
    EDO__OP_MUTEX, /* lock a mutex */
    EDO__OP_SEM,   /* acquire wait_arg permits */
    EDO__OP_BARRIER,
    EDO__OP_NOTIFY,
    EDO__OP_WATCH,
    EDO__OP_TOKEN,
    EDO__OP_TASK, /* join: wait_arg is the task's id */
    EDO__OP_JOINSET,
    EDO__OP_TRACKER,
    EDO__OP_IO,       /* read/write: wait_obj the edo_io, wait_arg its descriptor */
    EDO__OP_FILE,     /* a file operation: wait_arg the descriptor */
    EDO__OP_BLOCKING, /* a call on the blocking pool */
    EDO__OP_SELECT,   /* wait_arg: cases not off | kind of the first six << 8 * (i + 1) */
};

/* Says what the calling task t is about to wait on: before edo__park, for its next park
 * (and the ones after, until another note). */
static inline void edo__wait_note(edo_task *t, const void *obj, int64_t arg, int op)
{
    atomic_store_explicit(&t->wait_obj, obj, memory_order_relaxed);
    atomic_store_explicit(&t->wait_arg, arg, memory_order_relaxed);
    atomic_store_explicit(&t->wait_op, (uint8_t)op, memory_order_relaxed);
}

/* A task's name, for observers on other threads while the task may rename itself
 * (edo_set_name writes it byte by byte the same way): "task" if it has none. A rename
 * seen half done reads as a mix of the two names, never as a torn byte. */
static inline void edo__task_name(const edo_task *t, char out[32])
{
    for (int i = 0; i < 31; i++)
        out[i] = __atomic_load_n(&t->name[i], __ATOMIC_RELAXED);
    out[31] = 0;
    if (!out[0])
        memcpy(out, "task", 5);
}

void edo__task_ref(edo_task *t);
void edo__task_unref(edo_task *t);

/* Fills in a new task, whose memory is zeroed: QUEUED, with no deadline, holding the
 * runtime's reference (the pool's, for a blocking call) and, if joinable, the handle's. */
void edo__task_init(edo_task *t, edo_runtime *rt, edo_task_fn fn, void *arg, const char *site,
                    uint64_t id, bool joinable);

/* ---- the task list ---------------------------------------------------------------------- */

/* One part of the task list, with its own lock: a worker adds the tasks it spawns to its
 * own part, so spawning on different workers does not contend. */
typedef struct edo__shard {
    edo__spin lock;
    edo__list all; /* t->all_link */
    uint64_t live;
    uint64_t added; /* tasks ever listed here */
} __attribute__((aligned(64))) edo__shard;

void edo__task_list_add(edo_runtime *rt, edo_task *t);
void edo__task_list_remove(edo_task *t);
/* Tasks in the runtime's task list. */
uint64_t edo__live(edo_runtime *rt);
/* Tasks ever listed (spawned) and those listed now. */
void edo__task_counts(edo_runtime *rt, uint64_t *spawned, uint64_t *live);
/* Calls fn on every listed task, each held by a reference while fn runs. */
void edo__task_each(edo_runtime *rt, void (*fn)(edo_task *t, void *arg), void *arg);
/* The listed task with this id, with a reference for the caller (edo__task_unref it), or
 * NULL. Any thread; a walk of the list, for the rare look-up by id. */
edo_task *edo__task_find(edo_runtime *rt, uint64_t id);

/* ---- reading a suspended task's stack ---------------------------------------------------- */

/* Keeps t (the caller holds a reference) from resuming while its stack is read: PARKED ->
 * PEEKED. Returns 0 (then the caller must edo__task_unpeek it soon: its wakes wait), -EBUSY
 * if it is not parked (running, queued), -ESRCH if it has returned. Any thread; a second
 * reader waits for the first. */
int edo__task_peek(edo_task *t);
/* The reader is done: back to PARKED, or queued if a wake came meanwhile. */
void edo__task_unpeek(edo_task *t);

/* ---- a task's run and end ---------------------------------------------------------------- */

/* Runs a task's function and publishes its end (task.c), on the task's stack. */
void edo__task_run(edo_task *t);
void edo__task_started(edo_task *t);
void edo__task_finish(edo__worker *w, edo_task *t);
/* Marks t DONE and wakes its joiners (a task, or a thread outside the runtime); also how
 * the blocking pool ends a call's task. */
void edo__task_publish_end(edo_task *t);
/* Ends a task that will never run again (shutdown gave up on it): DONE and cancelled for
 * its joiners, and its memory goes with the last reference. */
void edo__task_abandon(edo_task *t);
/* The spawn options of an edo_block_on root task (recognised by address). */
extern const edo_spawn_opts edo__root_opts;

/* edo_select's join case: arms t's joiner slot for self. 1: t is done, 0: armed (the end
 * of t fires it), -EBUSY: another task joins it, -EDEADLK: t is self (nothing armed). */
int edo__task_sel_arm(edo_task *t, edo_task *self);
void edo__task_sel_disarm(edo_task *t, edo_task *self);

/* ---- stack overflow report (src/core/task.c) ----------------------------------------- */
int edo__overflow_init_thread(edo__worker *w);
void edo__overflow_fini_thread(edo__worker *w);
/* Prints which task overflowed its stack, and how that was found, and aborts. */
_Noreturn void edo__overflow_report(const edo_task *t, const char *how);

/* Leaves the overflowed task's stack for the worker's own and reports from there: printing
 * takes more stack than an overflowed task has left (sched.c). */
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

#endif
