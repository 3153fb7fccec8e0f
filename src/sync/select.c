/*
 * edo_select.
 *
 * First pass: each case is tried with its object's non-waiting call, from a random case
 * on; the first that completes is the result. Nothing is queued, so nothing can race.
 * Second pass: a waiter per case is queued (or a slot armed); from the first one queued,
 * a completer on that object may claim the select (wait.h), so an arm that finds its
 * case ready claims first too. Then the task parks until a case is claimed: by a completer
 * (channel, notify: the operation is already done for the waiter), or by the task itself
 * when it finds a case ready after a wake (broadcast, watch, token, task, descriptor,
 * timer: it then does the operation, which only it can do for that case). Last, every
 * other case is withdrawn; a waiter a completer has taken out is waited for, so that no
 * completer touches it after the select returns.
 */
#include "io/io.h"
#include "sync/sync.h"

#include <errno.h>
#include <stdlib.h>

#define SEL_MAX 64
#define SEL_STACK 8 /* cases whose waiters fit on the stack */

typedef struct sel {
    edo__sel group;
    edo_case *c;
    edo__waiter *w;
    bool *armed;
    int n;
    edo_task *self;
} sel;

static bool uses_waiter(int kind)
{
    switch (kind) {
    case EDO__CASE_RECV:
    case EDO__CASE_SEND:
    case EDO__CASE_NOTIFY:
    case EDO__CASE_BCAST:
    case EDO__CASE_WATCH:
    case EDO__CASE_CANCEL:
        return true;
    default:
        return false;
    }
}

static bool valid(const edo_case *c)
{
    switch (c->kind) {
    case EDO__CASE_OFF:
    case EDO__CASE_TIMER:
        return true;
    case EDO__CASE_RECV:
    case EDO__CASE_SEND:
    case EDO__CASE_BCAST:
        return c->obj && c->buf;
    case EDO__CASE_WATCH:
        return c->obj && c->u64;
    case EDO__CASE_NOTIFY:
    case EDO__CASE_CANCEL:
    case EDO__CASE_JOIN:
    case EDO__CASE_READ:
    case EDO__CASE_WRITE:
        return c->obj;
    default:
        return false;
    }
}

/* The first pass: the case's outcome, or -EAGAIN if it would have to wait. */
static int try_case(edo_case *c, edo_task *self)
{
    switch (c->kind) {
    case EDO__CASE_RECV:
        return edo_chan_try_recv(c->obj, c->buf);
    case EDO__CASE_SEND:
        return edo_chan_try_send(c->obj, c->buf);
    case EDO__CASE_BCAST:
        return edo_bcast_try_recv(c->obj, c->buf, c->u64);
    case EDO__CASE_WATCH:
        return edo__watch_try_recv(c->obj, c->buf, c->u64);
    case EDO__CASE_NOTIFY:
        return edo__notify_try(c->obj);
    case EDO__CASE_CANCEL:
        return edo_token_cancelled(c->obj) ? 0 : -EAGAIN;
    case EDO__CASE_JOIN: {
        edo_task *t = c->obj;
        if (t == self)
            return -EDEADLK;
        return atomic_load_explicit(&t->state, memory_order_acquire) == EDO__DONE ? 0 : -EAGAIN;
    }
    case EDO__CASE_READ:
    case EDO__CASE_WRITE: {
        int r = edo__io_sel_ready(c->obj, c->kind == EDO__CASE_READ ? EDO_READ : EDO_WRITE, NULL);
        return r < 0 ? r : r ? 0 : -EAGAIN;
    }
    case EDO__CASE_TIMER:
        return edo_now() >= c->deadline ? 0 : -EAGAIN;
    default:
        return -EAGAIN;
    }
}

/* The select's own claim, for a case it found ready. */
static bool claim_self(sel *s, int i)
{
    int none = -1;
    return atomic_compare_exchange_strong_explicit(&s->group.winner, &none, i, memory_order_acq_rel,
                                                   memory_order_acquire);
}

static int io_what(const edo_case *c)
{
    return c->kind == EDO__CASE_READ ? EDO_READ : EDO_WRITE;
}

/* When a read or write case gives up: its io's timeout for that direction
 * (edo_io_set_timeout), counted from the start of the select, as for a call. */
static int64_t io_case_deadline(const edo_case *c, int64_t started)
{
    if (c->kind != EDO__CASE_READ && c->kind != EDO__CASE_WRITE)
        return EDO_NEVER;
    const edo_io *io = c->obj;
    int64_t ms = (c->kind == EDO__CASE_READ ? io->rd : io->wr).timeout_ms;
    return ms > 0 ? started + ms : EDO_NEVER;
}

/* The second pass for case i: EDO__SEL_* (DONE: claimed, outcome in w[i].rc). */
static int arm_case(sel *s, int i, edo__wakeups *wk)
{
    edo_case *c = &s->c[i];
    edo__waiter *w = &s->w[i];
    if (uses_waiter(c->kind)) {
        edo__waiter_init(w);
        w->sel = &s->group;
        w->index = i;
        w->buf = c->buf;
    }
    int res, r;
    switch (c->kind) {
    case EDO__CASE_RECV:
    case EDO__CASE_SEND:
        res = edo__chan_sel_arm(c->obj, w, c->kind == EDO__CASE_SEND, wk);
        s->armed[i] = res == EDO__SEL_QUEUED;
        return res;
    case EDO__CASE_NOTIFY:
        res = edo__notify_sel_arm(c->obj, w);
        s->armed[i] = res == EDO__SEL_QUEUED;
        return res;
    case EDO__CASE_BCAST:
        res = edo__bcast_sel_arm(c->obj, w);
        break;
    case EDO__CASE_WATCH:
        res = edo__watch_sel_arm(c->obj, *c->u64, w);
        break;
    case EDO__CASE_CANCEL:
        res = edo__token_sel_arm(c->obj, w);
        break;
    case EDO__CASE_JOIN:
        r = edo__task_sel_arm(c->obj, s->self);
        s->armed[i] = r >= 0;
        w->rc = r < 0 ? r : 0;
        res = r != 0 ? EDO__SEL_DONE : EDO__SEL_QUEUED;
        break;
    case EDO__CASE_READ:
    case EDO__CASE_WRITE:
        r = edo__io_sel_arm(c->obj, io_what(c), s->self);
        s->armed[i] = r >= 0;
        w->rc = r < 0 ? r : 0;
        res = r != 0 ? EDO__SEL_DONE : EDO__SEL_QUEUED;
        break;
    case EDO__CASE_TIMER:
        w->rc = 0;
        res = edo_now() >= c->deadline ? EDO__SEL_DONE : EDO__SEL_QUEUED;
        break;
    default:
        return EDO__SEL_QUEUED;
    }
    if (uses_waiter(c->kind))
        s->armed[i] = res == EDO__SEL_QUEUED;
    /* Ready now: claim it ourselves. */
    if (res == EDO__SEL_DONE && !claim_self(s, i))
        res = EDO__SEL_LOST;
    return res;
}

/* After a wake: claims the first case found ready among those only the task can see. */
static void check_ready(sel *s, int64_t started)
{
    for (int i = 0; i < s->n && atomic_load(&s->group.winner) < 0; i++) {
        edo_case *c = &s->c[i];
        edo__waiter *w = &s->w[i];
        bool ready = false;
        switch (c->kind) {
        case EDO__CASE_BCAST:
        case EDO__CASE_WATCH:
        case EDO__CASE_CANCEL:
            /* Completed: told to look again, which for these means ready (a completer
             * may still be writing the waiter until `done`: only read it). */
            ready = s->armed[i] && atomic_load_explicit(&w->done, memory_order_acquire);
            break;
        case EDO__CASE_JOIN:
            ready = s->armed[i] && atomic_load_explicit(&((edo_task *)c->obj)->state,
                                                        memory_order_acquire) == EDO__DONE;
            w->rc = 0;
            break;
        case EDO__CASE_READ:
        case EDO__CASE_WRITE: {
            /* Re-arms the slot if the edge that woke us emptied it. */
            int r = s->armed[i] ? edo__io_sel_ready(c->obj, io_what(c), s->self) : 0;
            if (r == 0 && edo_now() >= io_case_deadline(c, started))
                r = -ETIMEDOUT; /* the io's own timeout: this case's outcome */
            ready = r != 0;
            w->rc = r < 0 ? r : 0;
            break;
        }
        case EDO__CASE_TIMER:
            ready = edo_now() >= c->deadline;
            w->rc = 0;
            break;
        default:
            break;
        }
        if (ready)
            claim_self(s, i);
    }
}

/* Withdraws every armed case; a waiter a completer took out is waited for. */
static void disarm_all(sel *s)
{
    for (int i = 0; i < s->n; i++) {
        if (!s->armed[i])
            continue;
        s->armed[i] = false;
        edo_case *c = &s->c[i];
        edo__waiter *w = &s->w[i];
        switch (c->kind) {
        case EDO__CASE_RECV:
        case EDO__CASE_SEND:
            edo__chan_sel_disarm(c->obj, w, c->kind == EDO__CASE_SEND);
            break;
        case EDO__CASE_NOTIFY:
            edo__notify_sel_disarm(c->obj, w);
            break;
        case EDO__CASE_BCAST:
            edo__bcast_sel_disarm(c->obj, w);
            break;
        case EDO__CASE_WATCH:
            edo__watch_sel_disarm(c->obj, w);
            break;
        case EDO__CASE_CANCEL:
            edo__token_sel_disarm(c->obj, w);
            break;
        case EDO__CASE_JOIN:
            edo__task_sel_disarm(c->obj, s->self);
            break;
        case EDO__CASE_READ:
        case EDO__CASE_WRITE:
            edo__io_sel_disarm(c->obj, io_what(c), s->self);
            break;
        default:
            break;
        }
        /* The disarm took the object's lock: a completer's `taken` is visible. */
        if (uses_waiter(c->kind) && w->taken)
            edo__waiter_finish(w);
    }
}

/* Completes the winning case when the select claimed it itself. */
static int finish_case(edo_case *c, edo__waiter *w)
{
    switch (c->kind) {
    case EDO__CASE_BCAST:
        return edo_bcast_try_recv(c->obj, c->buf, c->u64);
    case EDO__CASE_WATCH:
        return edo__watch_try_recv(c->obj, c->buf, c->u64);
    default:
        return w->rc;
    }
}

static uint32_t next_random(void)
{
    /* A different start per call is all that is needed: the cycle counter's low bits,
     * mixed. */
    uint64_t x = edo__cycles();
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (uint32_t)x;
}

int edo_select(edo_case *cases, int n)
{
    if (!cases || n < 1 || n > SEL_MAX)
        return -EINVAL;
    for (int i = 0; i < n; i++)
        if (!valid(&cases[i]))
            return -EINVAL;
    edo_task *self = edo__task_current();
    if (!self)
        return -EDO_ENOTASK;

    int start = (int)(next_random() % (uint32_t)n);
    int64_t started = edo_now();
    edo__waiter wbuf[SEL_STACK];
    bool abuf[SEL_STACK];
    sel s = { .c = cases, .n = n, .self = self, .w = wbuf, .armed = abuf };
    if (n > SEL_STACK) {
        s.w = malloc(n * sizeof *s.w);
        s.armed = malloc(n * sizeof *s.armed);
        if (!s.w || !s.armed) {
            free(s.w);
            free(s.armed);
            return -ENOMEM;
        }
    }
    int result;
    for (;;) {
        /* First pass. */
        result = -1;
        for (int k = 0; k < n && result < 0; k++) {
            int i = (start + k) % n;
            int rc = try_case(&cases[i], self);
            if (rc != -EAGAIN) {
                cases[i].rc = rc;
                result = i;
            }
        }
        if (result >= 0) {
            edo__budget_spend();
            break;
        }

        /* Second pass. */
        atomic_store_explicit(&s.group.winner, -1, memory_order_relaxed);
        for (int i = 0; i < n; i++)
            s.armed[i] = false;
        int64_t deadline = EDO_NEVER;
        bool retry = false;
        for (int k = 0; k < n; k++) {
            int i = (start + k) % n;
            if (cases[i].kind == EDO__CASE_TIMER && cases[i].deadline < deadline)
                deadline = cases[i].deadline;
            int64_t io_dl = io_case_deadline(&cases[i], started);
            if (io_dl < deadline)
                deadline = io_dl;
            edo__wakeups wk = { 0 };
            int res = arm_case(&s, i, &wk);
            edo__wakeups_run(&wk);
            if (res == EDO__SEL_RETRY)
                retry = true;
            if (res != EDO__SEL_QUEUED)
                break;
        }
        int err = 0;
        /* What it waits on, for observers: the cases that are not off, the first six by
         * kind (task.h's EDO__OP_SELECT). */
        int64_t kinds = 0, on = 0;
        for (int i = 0; i < n; i++) {
            if (cases[i].kind == EDO__CASE_OFF)
                continue;
            if (on < 6)
                kinds |= (int64_t)(cases[i].kind & 0xff) << (8 * (on + 1));
            on++;
        }
        kinds |= on > 255 ? 255 : on;
        edo__wait_note(self, cases, kinds, EDO__OP_SELECT);
        while (!retry && atomic_load_explicit(&s.group.winner, memory_order_acquire) < 0) {
            int rc = edo__park(EDO_WAIT_SELECT, deadline);
            check_ready(&s, started);
            if (rc < 0 && !claim_self(&s, n)) /* n: given up; fails if a case won */
                break;
            if (rc < 0)
                err = rc;
        }
        disarm_all(&s);
        /* After the withdrawals no completer can claim any more. */
        int winner = atomic_load_explicit(&s.group.winner, memory_order_acquire);
        if (retry && winner < 0) {
            /* An arm had to give its claim back: start over, after letting the select
             * that lost run and withdraw its waiters. */
            edo_yield();
            continue;
        }
        if (winner == n) {
            result = err;
        } else {
            /* A completer's work for the winner is over: disarm_all waited for it. */
            result = winner;
            cases[winner].rc = finish_case(&cases[winner], &s.w[winner]);
        }
        break;
    }
    if (s.w != wbuf) {
        free(s.w);
        free(s.armed);
    }
    return result;
}
