/*
 * The scheduler (sched.c): run queues, the switch between tasks, and a worker's loop.
 *
 * A worker's run queues, and who may touch them:
 *  - the local queue (edo__queue): a bounded ring; its worker pushes at the tail and pops
 *    at the head, and in a threaded runtime other workers steal half of it from the head;
 *  - the LIFO slot (w->lifo: the task most recently woken by the running task) and the
 *    spill list (w->spill: a lone worker's overflow): its worker only, and a signal
 *    handler on its thread (edo__lifo_take, for the monitor's hand-off of a stuck worker's
 *    work; a threaded runtime never uses the spill list);
 *  - the runtime's inject queue (rt->inject), for tasks spawned or woken from outside the
 *    workers and for overflow: any thread, under rt->inject_lock.
 * edo__schedule may be called from any thread; a wake on a worker of the task's runtime
 * queues locally, any other goes through the inject queue. edo__fire_timers may be called
 * from any thread (the monitor fires a stuck worker's timers); edo__queue_len and
 * edo__work_exists only read. Everything else runs on the worker's own thread, for itself.
 */
#ifndef EDO_CORE_SCHED_H
#define EDO_CORE_SCHED_H

#include "edo.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct edo__worker edo__worker;

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

uint32_t edo__queue_len(const edo__queue *q);

/* ---- accessors that survive migration (DESIGN.md section 3) ---------------------------- */
edo__worker *edo__worker_current(void);
edo_task *edo__task_current(void);
/* errno of the calling thread, read afresh: after a call that may have suspended, a task
 * may be on another thread, and the compiler may have kept the old thread's errno
 * address (__errno_location is a const function). */
int edo__errno(void);
/* The calling thread becomes worker w, or stops being one. */
void edo__worker_enter(edo__worker *w);
void edo__worker_leave(void);

/* ---- queueing ----------------------------------------------------------------------------- */
void edo__schedule(edo_task *t); /* t is QUEUED: put it on a run queue */
/* Current-thread flavour: wakes the worker if it sleeps (or is about to) in its driver. */
void edo__wake_lone_worker(edo_runtime *rt);
void edo__schedule_tail(edo__worker *w, edo_task *t); /* at the tail of w's own queue, and
                                                       * wake another worker if w has more */
/* ---- hand-off (the monitor, for a worker stuck in one task) ------------------------------- */
/* Moves every task of w's local queue to the inject queue, for the other workers; from any
 * thread (threaded runtimes). Returns how many. */
uint32_t edo__handoff_queue(edo__worker *w);
/* From a signal handler on w's own thread that interrupted it at pc while it ran the task
 * whose run the monitor asked about (w->run_started unchanged): takes the task in w's LIFO
 * slot out of it, if it can be done safely there, and returns it (QUEUED, on no queue: the
 * caller hands it to edo__schedule from another thread). NULL: none, or not now. */
edo_task *edo__lifo_take(edo__worker *w, uintptr_t pc);

/* A task is in w's LIFO slot, its run queue or its spill list. */
bool edo__has_local_work(const edo__worker *w);
/* Work exists somewhere: the inject queue or a worker's queue. */
bool edo__work_exists(edo_runtime *rt);

/* ---- switching ---------------------------------------------------------------------------- */
enum { EDO__SW_YIELD = 1, EDO__SW_PARK, EDO__SW_EXIT };
/* Switches the running task self away (why: EDO__SW_*), to the next ready task or to the
 * scheduler loop; returns when self runs again, maybe on another worker (at once for a
 * yield with nothing else ready). */
void edo__switch_out(edo__worker *w, edo_task *self, int why);
/* The last switch of a task that has returned (its end published); never returns. */
_Noreturn void edo__switch_exit(edo__worker *w, edo_task *self);

/* ---- the loop ------------------------------------------------------------------------------ */
/* Runs tasks until `until` is DONE (NULL: until no task is left) or give_up_at passes;
 * a worker thread of a threaded runtime: until the runtime stops. */
void edo__sched_loop(edo__worker *w, edo_task *until, int64_t give_up_at);
/* Fires w's timers that are due at `now` (ms on the runtime's clock); any thread (the
 * monitor fires a stuck worker's). Returns how many fired. */
int edo__fire_timers(edo__worker *w, int64_t now);
/* Polls w's driver without waiting and fires w's due timers; true if w has work then. */
bool edo__poll_now(edo__worker *w);

#endif
