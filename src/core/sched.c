/*
 * The worker: run queues, the switch between tasks, and the scheduler loop.
 *
 * A task that yields, parks or exits switches straight to the next ready task when there
 * is one, and to the worker's own stack (the scheduler loop, which polls the driver and the
 * timers) only when there is none or when it is time to poll. Whatever the task that
 * switched away still needs (requeueing, PARKED, freeing) is done by finish_switch on the
 * other side of the switch, once its stack is no longer in use.
 *
 * With several workers, a worker whose own queue and LIFO slot are empty takes work from
 * the inject queue, then steals half of another worker's queue, and sleeps (idle.c) when
 * there is none.
 */
#include "core/runtime.h"

#include <errno.h>
#include <sched.h>
#include <time.h>

/* Poll the driver and the inject queue after this many task runs, even when tasks are
 * always ready, so that I/O and foreign wakes are never starved by busy tasks. While such
 * polls keep finding nothing, the interval doubles up to EVENT_INTERVAL_MAX: a system call
 * every 61 switches would otherwise be a third of the cost of a yield. */
#define EVENT_INTERVAL 61
#define EVENT_INTERVAL_MAX (EVENT_INTERVAL * 8)
/* Runs in a row from the LIFO slot before the queue's head gets its turn. */
#define LIFO_MAX 3

static __thread edo__worker *tls_worker __attribute__((tls_model("initial-exec")));

/* Not inlined and behind a compiler barrier: a task may resume on another thread, and the
 * compiler must not reuse a thread-local address computed before a switch. */
__attribute__((noinline)) edo__worker *edo__worker_current(void)
{
    edo__worker *w = tls_worker;
    __asm__ volatile("" ::: "memory");
    return w;
}

__attribute__((noinline)) edo_task *edo__task_current(void)
{
    edo__worker *w = tls_worker;
    __asm__ volatile("" ::: "memory");
    return w ? w->current : NULL;
}

__attribute__((noinline)) int edo__errno(void)
{
    __asm__ volatile("" ::: "memory");
    return errno;
}

int edo_worker_index(void)
{
    edo__worker *w = edo__worker_current();
    return w && w->current ? w->index : -1;
}

void edo__spin_lock_slow(edo__spin *l)
{
    for (unsigned spins = 0;; spins++) {
        if (!atomic_load_explicit(l, memory_order_relaxed) &&
            !atomic_exchange_explicit(l, 1, memory_order_acquire))
            return;
        if (spins < 64) {
#if defined(__x86_64__)
            __builtin_ia32_pause();
#elif defined(__aarch64__)
            __asm__ volatile("yield");
#endif
        } else {
            sched_yield(); /* the holder may have been preempted: more workers than cores */
        }
    }
}

void edo__worker_enter(edo__worker *w)
{
    tls_worker = w;
}

void edo__worker_leave(void)
{
    tls_worker = NULL;
}

#if defined(__x86_64__)
/* A clock read and the counter at that moment: the clock read between two counter reads,
 * taken at their midpoint, the tightest of a few tries (a thread preempted between the
 * reads would skew the pair by as long as it was away). */
static void clock_pair(uint64_t *cyc, uint64_t *ns)
{
    uint64_t best = UINT64_MAX;
    *cyc = *ns = 0;
    for (int i = 0; i < 5; i++) {
        uint64_t a = edo__cycles(), n = (uint64_t)edo__now_ns(), b = edo__cycles();
        if (b - a < best) {
            best = b - a;
            *cyc = a + (b - a) / 2;
            *ns = n;
        }
    }
}
#endif

/* The tick rate of edo__cycles(), measured against CLOCK_MONOTONIC from the first call
 * on: the longer the span, the better the estimate. */
uint64_t edo__cycles_to_ns(uint64_t cycles)
{
#if defined(__aarch64__)
    uint64_t freq;
    __asm__ volatile("mrs %0, cntfrq_el0" : "=r"(freq));
    return (uint64_t)((unsigned __int128)cycles * 1000000000 / freq);
#elif defined(__x86_64__)
    /* The first call measures the rate over 100 us, once; later calls refine it over the
     * whole span since then. */
    static _Atomic uint64_t base_cyc, base_ns, first_ratio_ppm;
    uint64_t c0 = atomic_load_explicit(&base_cyc, memory_order_acquire);
    if (!c0) {
        uint64_t cs = 0, n0 = 0, ce = 0, n = 0;
        clock_pair(&cs, &n0);
        do
            clock_pair(&ce, &n);
        while (n - n0 < 100000);
        uint64_t ppm = ce > cs ? (n - n0) * 1000000 / (ce - cs) : 333333;
        atomic_store(&first_ratio_ppm, ppm ? ppm : 1);
        atomic_store(&base_ns, n0);
        atomic_store_explicit(&base_cyc, cs, memory_order_release);
        return (uint64_t)((unsigned __int128)cycles * ppm / 1000000);
    }
    uint64_t n0 = atomic_load(&base_ns);
    uint64_t c = 0, n = 0;
    clock_pair(&c, &n);
    if (c - c0 < 1000000000 || n <= n0) /* under a few tenths of a second */
        return (uint64_t)((unsigned __int128)cycles * atomic_load(&first_ratio_ppm) / 1000000);
    return (uint64_t)((unsigned __int128)cycles * (n - n0) / (c - c0));
#else
    return cycles;
#endif
}

/* ---- the local queue ------------------------------------------------------------------- */

static bool queue_push(edo__queue *q, edo_task *t)
{
    uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    uint32_t head = atomic_load_explicit(&q->head, memory_order_acquire);
    if (tail - head >= EDO__LOCAL_QUEUE)
        return false;
    atomic_store_explicit(&q->slot[tail % EDO__LOCAL_QUEUE], t, memory_order_relaxed);
    atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
    return true;
}

static edo_task *queue_pop(edo__queue *q)
{
    uint32_t head = atomic_load_explicit(&q->head, memory_order_acquire);
    if (!q->stealable) {
        /* No other worker can take from this queue: no CAS needed. */
        if (head == atomic_load_explicit(&q->tail, memory_order_relaxed))
            return NULL;
        edo_task *t = atomic_load_explicit(&q->slot[head % EDO__LOCAL_QUEUE], memory_order_relaxed);
        atomic_store_explicit(&q->head, head + 1, memory_order_relaxed);
        return t;
    }
    for (;;) {
        uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
        if (head == tail)
            return NULL;
        edo_task *t = atomic_load_explicit(&q->slot[head % EDO__LOCAL_QUEUE], memory_order_relaxed);
        /* The head moves by CAS: a stealing worker may take from it too. */
        if (atomic_compare_exchange_weak_explicit(&q->head, &head, head + 1, memory_order_acq_rel,
                                                  memory_order_acquire))
            return t;
    }
}

uint32_t edo__queue_len(const edo__queue *q)
{
    uint32_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);
    uint32_t head = atomic_load_explicit(&q->head, memory_order_acquire);
    return tail - head;
}

/* Moves half of `from`'s tasks (rounded up) into `to`, which belongs to the caller and is
 * empty, and returns one of them to run now; NULL if `from` is empty. */
static edo_task *queue_steal(edo__queue *from, edo__queue *to)
{
    uint32_t to_tail = atomic_load_explicit(&to->tail, memory_order_relaxed);
    for (;;) {
        uint32_t head = atomic_load_explicit(&from->head, memory_order_acquire);
        uint32_t tail = atomic_load_explicit(&from->tail, memory_order_acquire);
        uint32_t n = tail - head;
        if (n == 0 || n > EDO__LOCAL_QUEUE)
            return NULL; /* empty, or head and tail read at different moments */
        n -= n / 2;
        /* Copy first, then claim by moving the head: if the CAS fails, another thread took
         * some of these and the copies are simply overwritten on the next try. The owner
         * cannot rewrite slots [head, tail) while the head stays where it is. */
        for (uint32_t i = 0; i < n; i++) {
            edo_task *t = atomic_load_explicit(&from->slot[(head + i) % EDO__LOCAL_QUEUE],
                                               memory_order_relaxed);
            atomic_store_explicit(&to->slot[(to_tail + i) % EDO__LOCAL_QUEUE], t,
                                  memory_order_relaxed);
        }
        if (atomic_compare_exchange_strong_explicit(&from->head, &head, head + n,
                                                    memory_order_acq_rel, memory_order_acquire)) {
            /* Run the last one now; the rest become the caller's queue. */
            n--;
            edo_task *t = atomic_load_explicit(&to->slot[(to_tail + n) % EDO__LOCAL_QUEUE],
                                               memory_order_relaxed);
            if (n)
                atomic_store_explicit(&to->tail, to_tail + n, memory_order_release);
            return t;
        }
    }
}

/* ---- the inject queue ------------------------------------------------------------------ */

/* Moves the n tasks of batch (linked by inject_link) to the inject queue's tail. */
static void inject_push_batch(edo_runtime *rt, edo__fifo *batch, uint32_t n)
{
    pthread_mutex_lock(&rt->inject_lock);
    edo__fifo_append(&rt->inject, batch);
    atomic_fetch_add(&rt->inject_len, n);
    pthread_mutex_unlock(&rt->inject_lock);
}

static void inject_push(edo_runtime *rt, edo_task *t)
{
    pthread_mutex_lock(&rt->inject_lock);
    edo__fifo_push(&rt->inject, &t->inject_link);
    atomic_fetch_add(&rt->inject_len, 1);
    pthread_mutex_unlock(&rt->inject_lock);
}

/* Takes the inject queue's head for w to run, and with `batch`, a share of the rest into
 * w's own queue (empty then), so that one lock serves many tasks. A task spawned from
 * outside the workers joins the task list here, on w's part of it, before inject_len stops
 * counting it: shutdown waits until both are zero, so no task is between the two unseen. */
static edo_task *inject_pop(edo__worker *w, bool batch)
{
    edo_runtime *rt = w->rt;
    if (!atomic_load_explicit(&rt->inject_len, memory_order_relaxed))
        return NULL;
    uint32_t max = 1;
    pthread_mutex_lock(&rt->inject_lock);
    /* One lock for many tasks when workers contend for it; a lone worker takes one at a
     * time, which keeps each task warm until it runs. */
    if (batch && rt->threaded) {
        uint32_t queued = atomic_load_explicit(&rt->inject_len, memory_order_relaxed);
        max = queued / (uint32_t)rt->nworkers + 1;
        uint32_t len = edo__queue_len(&w->queue);
        uint32_t room = len < EDO__LOCAL_QUEUE / 2 ? EDO__LOCAL_QUEUE / 2 - len : 1;
        if (max > room)
            max = room;
    }
    edo__fifo taken = { NULL, NULL };
    uint32_t n = (uint32_t)edo__fifo_take(&rt->inject, &taken, max);
    pthread_mutex_unlock(&rt->inject_lock);
    edo__slink *l;
    bool closing = false;
    edo_task *first = NULL;
    while ((l = edo__fifo_pop(&taken))) {
        /* Off `taken` before it is queued: another worker may run it at once. */
        edo_task *t = edo__container_of(l, edo_task, inject_link);
        if (!t->listed) {
            t->shard = (uint16_t)w->index;
            edo__task_list_add(rt, t);
            /* Listed after shutdown's walk of the list: it was not aborted there. */
            if (closing || (closing = atomic_load(&rt->closing)))
                atomic_store(&t->aborted, true);
        }
        if (!first)
            first = t;
        else if (!queue_push(&w->queue, t))
            inject_push(rt, t); /* no room after all: back it goes */
    }
    if (n)
        atomic_fetch_sub(&rt->inject_len, n);
    return first;
}

static void spill_push(edo__worker *w, edo_task *t)
{
    edo__fifo_push(&w->spill, &t->spill_link);
}

static edo_task *spill_pop(edo__worker *w)
{
    /* The look first: then the pop is known to find a node, and no test is left twice. */
    if (edo__fifo_empty(&w->spill))
        return NULL;
    return edo__container_of(edo__fifo_pop(&w->spill), edo_task, spill_link);
}

/* The local queue is full. With one worker, t goes to the spill list, and so does every
 * task queued after it until the list is empty again (push_local), so run order stays
 * FIFO. When other workers may steal, half the queue moves to the inject queue with t, in
 * one lock, where idle workers can pick it up. Out of line: inlined, its registers were
 * saved and restored on every push_local, the hot path of every yield and wake. */
__attribute__((noinline)) static void push_overflow(edo__worker *w, edo_task *t)
{
    if (!w->queue.stealable) {
        spill_push(w, t);
        return;
    }
    edo__fifo batch = { NULL, NULL };
    uint32_t n = 0;
    for (; n < EDO__LOCAL_QUEUE / 2; n++) {
        edo_task *o = queue_pop(&w->queue);
        if (!o)
            break;
        edo__fifo_push(&batch, &o->inject_link);
    }
    edo__fifo_push(&batch, &t->inject_link);
    inject_push_batch(w->rt, &batch, n + 1);
}

/* Out of line: inlined into next_task, which calls it only when a LIFO streak ends, it
 * would cost every next_task a register's save and restore. */
__attribute__((noinline)) static void push_local(edo__worker *w, edo_task *t)
{
    /* A lone worker with tasks on its spill list queues behind them. Were t to go ahead,
     * a worker whose tasks keep one another busy (a wake, a yield) would run the local
     * queue for ever and leave the spilled ones waiting. */
    if (!edo__fifo_empty(&w->spill)) {
        spill_push(w, t);
        return;
    }
    if (!queue_push(&w->queue, t))
        push_overflow(w, t);
}

/* Queues t on w and, with several workers, wakes a sleeping one if w now has more work
 * than the one task it will run next: a single queued task (a spawned child, a task the
 * driver just woke) runs here without a cross-thread wake-up, the second one is worth
 * sharing. (If the running task then runs long, the monitor offers the queue around.) */
void edo__schedule_tail(edo__worker *w, edo_task *t)
{
    push_local(w, t);
    if (w->rt->threaded && edo__queue_len(&w->queue) > 1)
        edo__notify_parked(w->rt);
}

/* In a section of its own: a signal handler that interrupts a worker must know whether it
 * stands between this function's look at the LIFO slot and its store there, and this is
 * the only code that changes the slot while a task runs (edo__lifo_take). Out of line so
 * that no copy of it lies elsewhere. */
__attribute__((noinline, section("edo_lifo_text"))) void edo__schedule(edo_task *t)
{
    edo__worker *w = edo__worker_current();
    edo_runtime *rt = t->rt;
    if (w && w->rt == rt) {
        if (w->current) {
            /* Woken by the running task: run it next, for message-passing latency. */
            edo_task *old = w->lifo;
            w->lifo = t;
            if (!old)
                return; /* runs here soon: no other worker needs waking */
            t = old;
        }
        edo__schedule_tail(w, t);
        return;
    }
    inject_push(rt, t);
    if (rt->threaded)
        edo__notify_parked(rt);
    else
        edo__wake_lone_worker(rt);
}

void edo__wake_lone_worker(edo_runtime *rt)
{
    edo__worker *rw = &rt->workers[0];
    /* Pairs with the worker's store of `parked` before it looks again at why it would
     * not sleep (the inject queue, a paused clock's stall). */
    if (atomic_exchange(&rw->parked, 0))
        rt->driver->unpark(rw);
}

static edo_task *next_task(edo__worker *w)
{
    edo_task *t;
    uint32_t tick = atomic_load_explicit(&w->tick, memory_order_relaxed) + 1;
    atomic_store_explicit(&w->tick, tick, memory_order_relaxed);
    if ((int32_t)(tick - w->next_poll_tick) >= 0) {
        w->poll_due = true;
        if ((t = inject_pop(w, false)))
            return t;
    }
    if (w->lifo) {
        t = w->lifo;
        w->lifo = NULL;
        if (w->lifo_streak < LIFO_MAX) {
            w->lifo_streak++;
            return t;
        }
        push_local(w, t);
    }
    w->lifo_streak = 0;
    if ((t = queue_pop(&w->queue)) || (t = spill_pop(w)))
        return t;
    return inject_pop(w, true);
}

/* Steals from the other workers, starting at a random one. */
static edo_task *steal(edo__worker *w)
{
    edo_runtime *rt = w->rt;
    int n = rt->nworkers;
    w->rand = w->rand * 1103515245u + 12345u;
    int start = (int)((w->rand >> 16) % (uint32_t)n);
    for (int i = 0; i < n; i++) {
        edo__worker *v = &rt->workers[(start + i) % n];
        if (v == w)
            continue;
        edo_task *t = queue_steal(&v->queue, &w->queue);
        if (t) {
            /* w's queue was empty: what is in it now came with t */
            edo__counter_add(&w->n_steals, 1 + edo__queue_len(&w->queue));
            return t;
        }
    }
    return inject_pop(w, true);
}

bool edo__work_exists(edo_runtime *rt)
{
    if (atomic_load(&rt->inject_len))
        return true;
    for (int i = 0; i < rt->nworkers; i++)
        if (edo__queue_len(&rt->workers[i].queue))
            return true;
    return false;
}

/* The histogram bucket of a run of `ticks` edo__cycles(): < 1 us, < 2 us, ... (task.h). */
_Atomic uint64_t edo__hist_mul; /* microseconds in 2^32 ticks (set by edo__runtime_new) */

static inline unsigned run_bucket(uint64_t ticks)
{
    if (ticks >> 42)
        return EDO_RUN_HIST - 1;
    uint64_t us = (ticks * atomic_load_explicit(&edo__hist_mul, memory_order_relaxed)) >> 32;
    unsigned b = us ? 64 - (unsigned)__builtin_clzll(us) : 0;
    return b < EDO_RUN_HIST ? b : EDO_RUN_HIST - 1;
}

/* The task t begins a run at `now` on w, as the monitor sees it: the id first, then the
 * start, both release stores (plain moves on x86-64), so that the monitor's reading of the
 * pair (blocking.c) can tell when it got the two of one run. */
static inline void run_announce(edo__worker *w, uint64_t id, uint64_t now)
{
    atomic_store_explicit(&w->running_id, id, memory_order_release);
    atomic_store_explicit(&w->run_started, now, memory_order_release);
}

static void run_prepare(edo__worker *w, edo_task *t, uint64_t now)
{
    /* Acquire: pairs with the release of whoever queued it, on another thread perhaps. */
    if (atomic_load_explicit(&t->state, memory_order_acquire) == EDO__QUEUED)
        atomic_store_explicit(&t->state, EDO__RUNNING, memory_order_relaxed);
    edo__counter_add(&t->resumes, 1);
    if (EDO__COUNTERS) {
        uint64_t ready = atomic_load_explicit(&t->ready_cycles, memory_order_relaxed);
        if (now > ready)
            edo__counter_add(&t->sched_cycles, now - ready);
    }
    atomic_store_explicit(&t->worker, w->index, memory_order_relaxed);
    run_announce(w, t->id, now);
    edo__counter_add(&w->n_runs, 1);
    t->run_start = now;
    t->budget = EDO__BUDGET;
    w->current = t;
}

/* Completes what the task that switched away asked for, now that its stack is free. */
static void finish_switch(edo__worker *w)
{
    edo_task *p = w->prev;
    if (!p)
        return;
    w->prev = NULL;
    switch (w->prev_why) {
    case EDO__SW_YIELD:
        edo__schedule_tail(w, p);
        break;
    case EDO__SW_PARK: {
        uint32_t s = EDO__RUNNING;
        if (!atomic_compare_exchange_strong_explicit(&p->state, &s, EDO__PARKED,
                                                     memory_order_acq_rel, memory_order_acquire)) {
            /* Woken while switching away: the wake is consumed by running it again. A
             * waker does nothing to a NOTIFIED task, so a plain store cannot lose one. */
            atomic_store_explicit(&p->state, EDO__QUEUED, memory_order_release);
            push_local(w, p);
        }
        break;
    }
    case EDO__SW_EXIT:
        edo__task_finish(w, p);
        break;
    }
}

void edo__task_started(edo_task *t)
{
    edo__coro_started(&t->ctx);
    finish_switch(edo__worker_current());
}

/* Where the running task `self` switches to: the next ready task (made current), or the
 * scheduler loop; NULL for a yield with nothing else ready, which goes on at once. */
static edo__ctx *switch_target(edo__worker *w, edo_task *self, int why)
{
    /* Read first: the counter's latency then overlaps the choice of the next task. */
    uint64_t c = edo__cycles();
    /* The run ends here, before anything below touches the LIFO slot: a signal handler
     * that finds run_started still as the monitor saw it knows this thread is in the task's
     * own code (edo__lifo_take). The fence keeps the compiler from moving the slot's
     * accesses above the store; it emits nothing. */
    atomic_store_explicit(&w->run_started, 0, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    if (__builtin_expect(!self->stack.guarded, 0))
        edo__stack_check(self);
    edo_task *next = NULL;
    if (!w->poll_due) {
        next = next_task(w);
        if (!next && why == EDO__SW_YIELD) {
            self->budget = EDO__BUDGET;
            atomic_signal_fence(memory_order_seq_cst);
            run_announce(w, self->id, c); /* it goes on: a new run */
            return NULL;
        }
    }
    uint64_t ran = c - self->run_start;
    self->out_cycles = c;
    edo__counter_add(&self->busy_cycles, ran);
    edo__counter_add(&w->busy_cycles, ran);
    if (EDO__COUNTERS) {
        edo__counter_inc32(&self->run_hist[run_bucket(ran)]);
        if (why == EDO__SW_YIELD) {
            atomic_store_explicit(&self->ready_cycles, c, memory_order_relaxed);
            edo__counter_add(&self->wakes_self, 1);
        }
    }
    w->prev = self;
    w->prev_why = why;
    if (next) {
        run_prepare(w, next, c);
        return &next->ctx;
    }
    w->current = NULL;
    return &w->sched;
}

/* Switches the running task `self` away: to the next ready task, or to the scheduler
 * loop. For a yield with nothing else ready it returns at once. */
void edo__switch_out(edo__worker *w, edo_task *self, int why)
{
    edo__ctx *to = switch_target(w, self, why);
    if (!to)
        return;
    edo__coro_switch(&self->ctx, to, 0);
    /* Back in `self`, maybe on another worker. */
    finish_switch(edo__worker_current());
}

EDO__NO_TSAN _Noreturn void edo__switch_exit(edo__worker *w, edo_task *self)
{
    edo__coro_switch(&self->ctx, switch_target(w, self, EDO__SW_EXIT), 1);
    __builtin_unreachable();
}

_Noreturn void edo__overflow_report_away(edo_task *t, const char *how)
{
    edo__worker *w = edo__worker_current();
    w->overflowed = t;
    w->overflow_how = how;
    edo__coro_switch(&t->ctx, &w->sched, 1); /* the scheduler loop reports it */
    __builtin_unreachable();
}

int edo__fire_timers(edo__worker *w, int64_t now)
{
    /* Popped under the wheel's lock, woken after it: a wake may take other locks. The
     * reference keeps each task alive from its pop to its wake. */
    int total = 0;
    for (;;) {
        edo_task *fired[64];
        int n = 0;
        edo__spin_lock(&w->wheel_lock);
        if (w->wheel.count) {
            edo__timer *tm;
            while (n < 64 && (tm = edo__wheel_pop(&w->wheel, now))) {
                edo_task *t = edo__container_of(tm, edo_task, timer);
                t->timer_fired = true;
                edo__task_ref(t);
                fired[n++] = t;
            }
        }
        edo__spin_unlock(&w->wheel_lock);
        for (int i = 0; i < n; i++) {
            edo__wake(fired[i]);
            edo__task_unref(fired[i]);
        }
        total += n;
        if (n < 64) {
            /* the monitor fires a stuck worker's timers too: two writers */
            if (EDO__COUNTERS && total)
                atomic_fetch_add_explicit(&w->n_timers, (uint64_t)total, memory_order_relaxed);
            return total;
        }
    }
}

static int64_t next_timer(edo__worker *w)
{
    edo__spin_lock(&w->wheel_lock);
    int64_t next = edo__wheel_next(&w->wheel);
    edo__spin_unlock(&w->wheel_lock);
    return next;
}

/* Milliseconds until w's next timer, capped at `limit` (-1: no cap). A paused clock moves
 * by itself only in edo__clock_idle, never while a worker sleeps. */
static int timer_timeout(edo__worker *w, int limit)
{
    if (edo__clock_paused(w->rt))
        return limit;
    int64_t next = next_timer(w);
    if (next == INT64_MAX)
        return limit;
    int64_t d = next - edo_now();
    d = d < 0 ? 0 : d > 1000000 ? 1000000 : d;
    return limit >= 0 && limit < d ? limit : (int)d;
}

static void poll_done(edo__worker *w, int events, bool waited)
{
    if (events > 0 || waited || !w->poll_interval)
        w->poll_interval = EVENT_INTERVAL;
    else if (w->poll_interval < EVENT_INTERVAL_MAX)
        w->poll_interval *= 2;
    w->next_poll_tick = atomic_load_explicit(&w->tick, memory_order_relaxed) + w->poll_interval;
}

/* One poll of the driver for w, unless another thread has the right to poll: the number
 * of events, 0 then. */
static int poll_driver(edo__worker *w, int timeout_ms)
{
    const edo__driver *drv = w->rt->driver;
    if (!drv->acquire(w))
        return 0;
    int n = drv->poll(w, timeout_ms);
    drv->release(w);
    edo__counter_add(&w->n_polls, 1);
    if (n > 0)
        edo__counter_add(&w->n_events, (uint64_t)n);
    return n;
}

/* Current-thread flavour: polls the driver (waiting at most max_wait ms, -1: until an
 * event or the next timer) and fires the timers that are due. */
static void poll_once(edo__worker *w, int max_wait)
{
    edo_runtime *rt = w->rt;
    if (max_wait < 0 && edo__clock_paused(rt)) {
        /* Announced first, so that a kick of a stalled auto-advance (clock.c) that comes
         * after the look is not lost: it sees `parked` and unparks. */
        atomic_store(&w->parked, 1);
        if (edo__clock_idle(w)) {
            atomic_store(&w->parked, 0);
            return; /* the clock moved to the next timer, or work came meanwhile */
        }
    }
    int timeout = max_wait;
    if (timeout != 0) {
        timeout = timer_timeout(w, max_wait);
        /* Announce the sleep, then look once more: a foreign wake either sees `parked`
         * and writes the eventfd, or its task is already in the inject queue here (and
         * the dump signal's handler, its flag set). */
        atomic_store(&w->parked, 1);
        edo__counter_add(&w->n_parks, 1);
        if (atomic_load(&rt->inject_len) || atomic_load(&rt->dump_asked))
            timeout = 0;
        else
            edo__stack_trim(); /* idle: a good moment to give memory back */
    }
    w->poll_due = false;
    poll_done(w, poll_driver(w, timeout), max_wait != 0);
    if (max_wait != 0)
        atomic_store(&w->parked, 0);
    edo__fire_timers(w, edo_now());
    /* The dump signal's handler woke the poll: no task runs now, none can be in the way. */
    edo__dump_if_asked(rt);
}

/* Threaded: a busy worker's look at the driver, unless another thread is polling it. */
static void poll_busy(edo__worker *w)
{
    w->poll_due = false;
    poll_done(w, poll_driver(w, 0), false);
    edo__fire_timers(w, edo_now());
}

/* Section bounds the linker provides for edo__schedule's section. */
extern const char __start_edo_lifo_text[] __attribute__((visibility("hidden")));
extern const char __stop_edo_lifo_text[] __attribute__((visibility("hidden")));

edo_task *edo__lifo_take(edo__worker *w, uintptr_t pc)
{
    /* Called on w's own thread from a handler that interrupted it while it ran the task of
     * the run the monitor asked about (so not switch_target or the scheduler loop, the
     * other users of the slot), at pc. Outside edo__schedule the slot holds what its last
     * store left: take it. Inside, a load of it may be in flight: leave it. */
    if (!pc || (pc >= (uintptr_t)__start_edo_lifo_text && pc < (uintptr_t)__stop_edo_lifo_text))
        return NULL;
    edo_task *t = w->lifo;
    w->lifo = NULL;
    return t;
}

uint32_t edo__handoff_queue(edo__worker *w)
{
    /* The head moves by CAS (the queue is stealable), so taking from it here is a steal
     * like any other, one task at a time: with acquire loads, as queue_steal's, since the
     * tasks were queued by another thread. They keep their order in the inject queue. */
    edo__queue *q = &w->queue;
    edo__fifo batch = { NULL, NULL };
    uint32_t n = 0;
    while (n < EDO__LOCAL_QUEUE) {
        uint32_t head = atomic_load_explicit(&q->head, memory_order_acquire);
        uint32_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);
        if (head == tail || tail - head > EDO__LOCAL_QUEUE)
            break;
        edo_task *t = atomic_load_explicit(&q->slot[head % EDO__LOCAL_QUEUE], memory_order_relaxed);
        if (atomic_compare_exchange_strong_explicit(&q->head, &head, head + 1, memory_order_acq_rel,
                                                    memory_order_acquire)) {
            edo__fifo_push(&batch, &t->inject_link);
            n++;
        }
    }
    if (n)
        inject_push_batch(w->rt, &batch, n);
    return n;
}

bool edo__has_local_work(const edo__worker *w)
{
    return w->lifo || edo__queue_len(&w->queue) || !edo__fifo_empty(&w->spill);
}

bool edo__poll_now(edo__worker *w)
{
    poll_driver(w, 0);
    edo__fire_timers(w, edo_now());
    return edo__has_local_work(w);
}

/* Threaded: sleeps in the driver if no other thread does, else on the futex, until woken
 * or w's next timer; then fires w's timers. */
void edo__worker_sleep(edo__worker *w)
{
    edo_runtime *rt = w->rt;
    if (edo__clock_paused(rt) && edo__clock_idle(w)) {
        atomic_store(&w->wake_word, 0); /* the park loop looks at why under its lock */
        return;
    }
    int timeout = timer_timeout(w, -1);
    const edo__driver *drv = rt->driver;
    edo__counter_add(&w->n_parks, 1);
    if (drv->acquire(w)) {
        /* Announce where it sleeps, then look at the wake word (the waker does the
         * mirror image): either it sees the word, or the waker sees DRIVER. */
        atomic_store(&w->sleep_mode, EDO__SLEEP_DRIVER);
        if (atomic_load(&w->wake_word) || atomic_load(&rt->stopping))
            timeout = 0;
        else
            edo__stack_trim();
        int n = drv->poll(w, timeout);
        atomic_store(&w->sleep_mode, EDO__AWAKE);
        drv->release(w);
        edo__counter_add(&w->n_polls, 1);
        if (n > 0)
            edo__counter_add(&w->n_events, (uint64_t)n);
        poll_done(w, n, true);
    } else {
        atomic_store(&w->sleep_mode, EDO__SLEEP_FUTEX);
        if (!atomic_load(&w->wake_word) && !atomic_load(&rt->stopping))
            edo__futex_wait(&w->wake_word, 0, timeout);
        atomic_store(&w->sleep_mode, EDO__AWAKE);
    }
    atomic_store(&w->wake_word, 0);
    edo__fire_timers(w, edo_now());
}

/* A searching worker that found nothing watches the queues a little before it sleeps:
 * going to sleep and being woken costs two system calls and microseconds, and work often
 * comes back sooner (a remote spawner, a message passed back). Only searchers spin, and
 * at most half the workers search. */
#define SPIN_ROUNDS 100

static bool spin_for_work(edo__worker *w)
{
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        if (edo__work_exists(w->rt) || atomic_load_explicit(&w->rt->stopping, memory_order_relaxed))
            return true;
        for (int k = 0; k < 8; k++) {
#if defined(__x86_64__)
            __builtin_ia32_pause();
#elif defined(__aarch64__)
            __asm__ volatile("yield");
#endif
        }
    }
    return false;
}

static bool loop_done(edo__worker *w, edo_task *until, int64_t give_up_at)
{
    edo_runtime *rt = w->rt;
    if (rt->threaded)
        return atomic_load_explicit(&rt->stopping, memory_order_relaxed);
    if (until ? atomic_load_explicit(&until->state, memory_order_acquire) == EDO__DONE
              : edo__live(rt) == 0 && !atomic_load(&rt->inject_len))
        return true;
    return give_up_at != EDO_NEVER && edo__real_ms() >= give_up_at;
}

void edo__sched_loop(edo__worker *w, edo_task *until, int64_t give_up_at)
{
    edo_runtime *rt = w->rt;
    for (;;) {
        if (loop_done(w, until, give_up_at))
            return;
        if (w->poll_due) {
            if (rt->threaded)
                poll_busy(w);
            else
                poll_once(w, 0);
        }
        edo_task *t = next_task(w);
        if (!t && rt->driver->pending(w)) {
            /* Operations queued by the tasks just run: submit them before looking
             * elsewhere for work or sleeping; their completions may be work. */
            if (rt->threaded)
                poll_busy(w);
            else
                poll_once(w, 0);
            continue;
        }
        if (!t && rt->threaded && edo__begin_search(w))
            t = steal(w);
        if (t) {
            if (w->searching)
                edo__end_search(w);
            if (__builtin_expect(w->clock_idle, 0))
                edo__clock_busy(w);
            run_prepare(w, t, edo__cycles());
            edo__coro_switch(&w->sched, &t->ctx, 0);
            if (__builtin_expect(w->overflowed != NULL, 0))
                edo__overflow_report(w->overflowed, w->overflow_how);
            w->current = NULL;
            finish_switch(w);
            continue;
        }
        if (rt->threaded) {
            if (w->searching && spin_for_work(w))
                continue;
            edo__park_worker(w);
        } else
            /* Nothing ready: sleep in the driver (during shutdown, in short rounds so
             * that the grace period is noticed). */
            poll_once(w, give_up_at != EDO_NEVER ? 10 : -1);
    }
}
