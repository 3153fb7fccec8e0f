/*
 * Waiter queues: the one protocol every object of edo/sync.h uses to let tasks (and
 * threads outside the runtime) wait, and edo_select to wait on several at once.
 *
 * A waiter lives on the waiting task's stack. It joins an object's queue under the
 * object's lock, and leaves it in one of two ways:
 *  - completed: whoever makes the wait's condition true (a sender, an unlock, a cancel)
 *    takes it out of the queue under the lock, does the operation for it (copies the
 *    message into its buffer, hands it the lock) and sets its rc; after unlocking it sets
 *    `done` and wakes the task (edo__wakeups). Until `done` is set the waiter's memory
 *    must stay: a waiting task that finds its waiter taken out waits for `done`, never
 *    returns before it.
 *  - withdrawn: the task gave up (deadline, abort, another select case won) and takes its
 *    waiter out under the lock itself; nothing was done for it.
 * So an operation is either done entirely for a waiter, or not at all.
 *
 * A waiter of edo_select belongs to a group (edo__sel) whose `winner` is claimed once by
 * compare-and-swap: a completer that would do an operation for a select waiter claims the
 * group first and skips the waiter if another case has won (the select withdraws it). That
 * is what guarantees that a message is taken by one case only. Waiters that are merely
 * told to look again (edo__wakeups_all: a broadcast, a watch change, a cancellation) are
 * completed without a claim; the select then claims for itself.
 */
#ifndef EDO_SYNC_WAIT_H
#define EDO_SYNC_WAIT_H

#include "core/runtime.h"

typedef struct edo__sel {
    _Atomic int winner; /* index of the case that completed, -1 while none */
} edo__sel;

typedef struct edo__waiter edo__waiter;
struct edo__waiter {
    edo__link link;        /* in the object's queue (edo__waitq) */
    edo__slink wake_link;  /* on a completer's list of wake-ups (edo__wakeups) */
    edo_task *task;        /* the waiting task; NULL: a thread, which waits on `done` */
    edo__sel *sel;         /* the select it belongs to, or NULL */
    int index;             /* its case in sel */
    void *buf;             /* what the operation moves: the object's own use */
    uint64_t n;            /* permits wanted, or another object-specific number */
    int rc;                /* the outcome, set by the completer */
    bool queued;           /* in a queue: changed only under the object's lock */
    bool taken;            /* taken out by a completer (under the lock): `done` follows */
    _Atomic uint32_t done; /* completed; the last write a completer makes to it */
};

/* An object's waiters, first come first; under the object's lock. All zero: empty. */
typedef struct edo__waitq {
    edo__list waiters; /* edo__waiter.link */
} edo__waitq;

/* Waiters completed under a lock, woken after it is released (on the completer's stack). */
typedef struct edo__wakeups {
    edo__fifo done; /* edo__waiter.wake_link */
} edo__wakeups;

/* A waiter for the calling task (or thread), not in any queue. */
void edo__waiter_init(edo__waiter *w);

static inline bool edo__waitq_empty(const edo__waitq *q)
{
    return edo__list_empty(&q->waiters);
}

static inline edo__waiter *edo__waiter_of(edo__link *l)
{
    return l ? edo__container_of(l, edo__waiter, link) : NULL;
}

/* The first waiter of q, and the one after w: NULL at the end. */
static inline edo__waiter *edo__waitq_first(const edo__waitq *q)
{
    return edo__waiter_of(edo__list_first(&q->waiters));
}

static inline edo__waiter *edo__waitq_next(const edo__waiter *w)
{
    return edo__waiter_of(w->link.next);
}

/* At the tail. */
void edo__waitq_push(edo__waitq *q, edo__waiter *w);
void edo__waitq_remove(edo__waitq *q, edo__waiter *w);
/* Takes the lock, and w out of q if it is still queued (a completer may have taken it
 * meanwhile): what an edo_select case's disarm does. */
void edo__waitq_withdraw(edo__waitq *q, edo__spin *lock, edo__waiter *w);

/* May an operation be done for w? Always for a plain waiter; for a select waiter only if
 * this claims its select (its other cases are then withdrawn by the select). */
static inline bool edo__claim(edo__waiter *w)
{
    int none = -1;
    return !w->sel ||
           atomic_compare_exchange_strong_explicit(&w->sel->winner, &none, w->index,
                                                   memory_order_acq_rel, memory_order_acquire);
}

/* Takes the first waiter of q that edo__claim accepts out of q, or returns NULL. Select
 * waiters whose select another case has won are skipped and left for their task. */
edo__waiter *edo__waitq_claim(edo__waitq *q);

/* Under the lock: w is out of its queue and its operation done; rc is its outcome. */
void edo__complete(edo__wakeups *wk, edo__waiter *w, int rc);

/* Under the lock: completes every waiter of q with rc 0 (look again), without claims. */
void edo__complete_all(edo__wakeups *wk, edo__waitq *q);

/* After unlocking: marks each completed waiter done and wakes its task or thread. */
void edo__wakeups_run(edo__wakeups *wk);

/* Waits until w is completed, or until the task's deadline passes or it is aborted
 * (threads outside the runtime wait until completed). Returns 0 when completed (w->rc is
 * the outcome), else the wait's error; the caller then takes the lock and withdraws w if
 * w->queued, or else (a completer took it out meanwhile) calls edo__waiter_finish, whose
 * outcome stands. */
int edo__waiter_park(edo__waiter *w, edo_wait_reason why);

/* Waits, not to be cut short, until a completer that took w out has finished with it. */
void edo__waiter_finish(edo__waiter *w);

/* Called with lock held: queues a waiter for the calling task (or thread) at q's tail,
 * with buf and n for the completer, unlocks and waits as edo__wait. */
int edo__wait_queued(edo__waitq *q, edo__spin *lock, edo_wait_reason why, int op, void *buf,
                     uint64_t n, void (*withdraw)(void *obj, edo__waiter *w, edo__wakeups *wk),
                     void *obj);

/* The common case of the above: waits for w, queued under lock, and on a deadline or an
 * abort withdraws it, calling withdraw(obj, w, wk) under the lock (which must take w out
 * of its queue, and may complete others, e.g. the waiters behind it). Returns w->rc when
 * completed, else the wait's error. The lock is not held on entry or return. */
int edo__wait(edo__waiter *w, edo__spin *lock, edo_wait_reason why, int op,
              void (*withdraw)(void *obj, edo__waiter *w, edo__wakeups *wk), void *obj);

#endif
