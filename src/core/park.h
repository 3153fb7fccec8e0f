/*
 * Park and wake (task.c): the one protocol by which every resource lets a task wait, and
 * the cooperative budget that makes a task that never waits let others run.
 *
 * A resource that lets a task wait stores the task in a waiter slot (edo__slot_arm) with a
 * reference, and whoever takes it out (edo__slot_fire, or the task itself in
 * edo__slot_disarm) drops that reference after the wake, so the task's memory outlives
 * every wake that can still reach it. Park may return because of a wake that was not the
 * one awaited (an earlier slot fired late, an abort): every caller re-checks its condition
 * in a loop. (The waiter queues of src/sync/wait.h are built on the same park and wake.)
 *
 * Who calls what: edo__park, edo__suspend, edo__yield_polling, edo__budget_spend and
 * edo__slot_arm / disarm only the task itself, on whatever worker runs it at the time,
 * holding no spin lock. edo__wake and edo__slot_fire any thread (a worker, the driver's
 * poll, the monitor, a pool thread, a thread outside the runtime), while it holds a
 * reference to the task. A deadline arms the task's timer on the wheel of the worker it
 * parks on, under that wheel's lock; the timer's firing is a wake like any other.
 */
#ifndef EDO_CORE_PARK_H
#define EDO_CORE_PARK_H

#include "edo.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct edo__worker edo__worker;

/* Suspends the calling task until it is woken, `deadline` or the task's deadline passes,
 * or it is aborted. Returns 0 when woken (re-check the condition), -ETIMEDOUT once a
 * deadline has passed (checked before suspending too), -ECANCELED once aborted. */
int edo__park(edo_wait_reason why, int64_t deadline);

/* The core of edo__park: suspends the calling task t until it is woken (at once if a wake
 * came first), with no deadline and no abort check. For waits that must not be cut short
 * (edo_close waiting for the other users of an io to leave). */
void edo__suspend(edo__worker *w, edo_task *t);

/* Makes t runnable if it is parked, or makes its next park return at once if it runs.
 * Safe from any thread while the caller holds a reference to t. The condition the task
 * waits for must be published before, by a sequentially consistent store or a
 * read-modify-write: a release store alone may pass the look at t's state. */
void edo__wake(edo_task *t);

/* The checks edo__park makes before it suspends, for a call that starts something it
 * cannot take back (a ring operation, a pool call) before it parks: -ECANCELED if self
 * is aborted, -ETIMEDOUT if `deadline` or the task's own deadline has passed, else 0. */
int edo__may_start(edo_task *self, int64_t deadline);

/* Waiter slots: at most one task waits in a slot. */
typedef _Atomic(edo_task *) edo__slot;
/* Stores the calling task (with a reference). Returns false if another task is there. */
bool edo__slot_arm(edo__slot *s, edo_task *self);
/* Takes the calling task out again if nothing has fired it. */
void edo__slot_disarm(edo__slot *s, edo_task *self);
/* Wakes the waiting task, if any. */
void edo__slot_fire(edo__slot *s);

/* Operations that completed without suspending before a task must let others run. */
#define EDO__BUDGET 128

/* Counts one operation that completed without suspending; yields when the budget is
 * spent, so that a task whose descriptors are always ready cannot starve others. */
void edo__budget_spend(void);

/* edo_yield after a look at the driver and the timers: for a task that does a long piece
 * of work on its worker between yields (a cached file read in pieces), so that what came
 * due meanwhile runs before its next piece, not EVENT_INTERVAL pieces later. */
int edo__yield_polling(void);

#endif
