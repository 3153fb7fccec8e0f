/*
 * The worker: run queues, the switch between tasks, and the scheduler loop.
 *
 * A task that yields, parks or exits switches straight to the next ready task when there
 * is one, and to the worker's own stack (the scheduler loop, which polls the driver and the
 * timers) only when there is none or when it is time to poll. Whatever the task that
 * switched away still needs (requeueing, PARKED, freeing) is done by finish_switch on the
 * other side of the switch, once its stack is no longer in use.
 */
#include "core/runtime.h"

#include <errno.h>
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

void edo__worker_enter(edo__worker *w)
{
    tls_worker = w;
}

void edo__worker_leave(void)
{
    tls_worker = NULL;
}

int64_t edo__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

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
        /* Each end is a clock read between two counter reads, taken at their midpoint. */
        uint64_t a = edo__cycles(), n0 = (uint64_t)edo__now_ns(), b = edo__cycles(), n;
        uint64_t cs = a + (b - a) / 2;
        while ((n = (uint64_t)edo__now_ns()) - n0 < 100000)
            a = edo__cycles();
        b = edo__cycles();
        uint64_t ce = a + (b - a) / 2;
        uint64_t ppm = ce > cs ? (n - n0) * 1000000 / (ce - cs) : 333333;
        atomic_store(&first_ratio_ppm, ppm ? ppm : 1);
        atomic_store(&base_ns, n0);
        atomic_store_explicit(&base_cyc, cs, memory_order_release);
        return (uint64_t)((unsigned __int128)cycles * ppm / 1000000);
    }
    uint64_t n0 = atomic_load(&base_ns);
    uint64_t c = edo__cycles(), n = (uint64_t)edo__now_ns();
    if (c - c0 < 1000000000 || n <= n0) /* under a few tenths of a second */
        return (uint64_t)((unsigned __int128)cycles * atomic_load(&first_ratio_ppm) / 1000000);
    return (uint64_t)((unsigned __int128)cycles * (n - n0) / (c - c0));
#else
    return cycles;
#endif
}

int64_t edo_now(void)
{
    return edo__now_ns() / 1000000;
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

/* ---- the inject queue ------------------------------------------------------------------ */

static void inject_push_list(edo_runtime *rt, edo_task *first, edo_task *last, uint32_t n)
{
    pthread_mutex_lock(&rt->inject_lock);
    last->qnext = NULL;
    if (rt->inject_tail)
        rt->inject_tail->qnext = first;
    else
        rt->inject_head = first;
    rt->inject_tail = last;
    atomic_fetch_add(&rt->inject_len, n);
    pthread_mutex_unlock(&rt->inject_lock);
}

static edo_task *inject_pop(edo_runtime *rt)
{
    if (!atomic_load_explicit(&rt->inject_len, memory_order_relaxed))
        return NULL;
    pthread_mutex_lock(&rt->inject_lock);
    edo_task *t = rt->inject_head;
    if (t) {
        rt->inject_head = t->qnext;
        if (!rt->inject_head)
            rt->inject_tail = NULL;
        t->qnext = NULL;
        atomic_fetch_sub(&rt->inject_len, 1);
    }
    pthread_mutex_unlock(&rt->inject_lock);
    return t;
}

/* The local queue is full. With one worker, t goes to the inject queue, which is drained
 * after the local one, so run order stays FIFO. When other workers may steal, half the
 * queue moves there with it, in one lock, where idle workers can pick it up. */
static void push_overflow(edo__worker *w, edo_task *t)
{
    edo_task *first = NULL, *last = NULL;
    uint32_t n = 0;
    for (; w->queue.stealable && n < EDO__LOCAL_QUEUE / 2; n++) {
        edo_task *o = queue_pop(&w->queue);
        if (!o)
            break;
        if (last)
            last->qnext = o;
        else
            first = o;
        last = o;
    }
    if (last)
        last->qnext = t;
    else
        first = t;
    inject_push_list(w->rt, first, t, n + 1);
}

static void push_local(edo__worker *w, edo_task *t)
{
    if (!queue_push(&w->queue, t))
        push_overflow(w, t);
}

void edo__schedule_tail(edo__worker *w, edo_task *t)
{
    push_local(w, t);
}

void edo__schedule(edo_task *t)
{
    edo__worker *w = edo__worker_current();
    if (w && w->rt == t->rt) {
        if (w->current) {
            /* Woken by the running task: run it next, for message-passing latency. */
            edo_task *old = w->lifo;
            w->lifo = t;
            if (old)
                push_local(w, old);
        } else {
            push_local(w, t);
        }
        return;
    }
    edo_runtime *rt = t->rt;
    inject_push_list(rt, t, t, 1);
    edo__worker *rw = &rt->worker;
    /* Pairs with the worker's store of `parked` before it checks the inject queue. */
    if (atomic_exchange(&rw->parked, 0))
        edo__driver_unpark(rw);
}

static edo_task *next_task(edo__worker *w)
{
    edo_task *t;
    if ((int32_t)(++w->tick - w->next_poll_tick) >= 0) {
        w->poll_due = true;
        if ((t = inject_pop(w->rt)))
            goto found;
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
    if ((t = queue_pop(&w->queue)))
        return t;
    if (!(t = inject_pop(w->rt)))
        return NULL;
found:
    /* Tasks spawned from outside the runtime join the task list when they first run. */
    if (!t->listed)
        edo__task_list_add(w->rt, t);
    return t;
}

static void run_prepare(edo__worker *w, edo_task *t, uint64_t now)
{
    if (atomic_load_explicit(&t->state, memory_order_relaxed) == EDO__QUEUED)
        atomic_store_explicit(&t->state, EDO__RUNNING, memory_order_relaxed);
    t->resumes++;
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
        push_local(w, p);
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

/* Switches the running task `self` away: to the next ready task, or to the scheduler
 * loop. For a yield with nothing else ready it returns at once. */
void edo__switch_out(edo__worker *w, edo_task *self, int why)
{
    /* Read first: the counter's latency then overlaps the choice of the next task. */
    uint64_t c = edo__cycles();
    if (__builtin_expect(!self->stack.guarded, 0))
        edo__stack_check(self);
    edo_task *next = NULL;
    if (!w->poll_due) {
        next = next_task(w);
        if (!next && why == EDO__SW_YIELD) {
            self->budget = EDO__BUDGET;
            return;
        }
    }
    self->busy_cycles += c - self->run_start;
    w->prev = self;
    w->prev_why = why;
    if (next) {
        run_prepare(w, next, c);
        edo__coro_switch(&self->ctx, &next->ctx, why == EDO__SW_EXIT);
    } else {
        w->current = NULL;
        edo__coro_switch(&self->ctx, &w->sched, why == EDO__SW_EXIT);
    }
    /* Back in `self`, maybe on another worker. */
    finish_switch(edo__worker_current());
}

_Noreturn void edo__overflow_report_away(edo_task *t, const char *how)
{
    edo__worker *w = edo__worker_current();
    w->overflowed = t;
    w->overflow_how = how;
    edo__coro_switch(&t->ctx, &w->sched, 1); /* the scheduler loop reports it */
    __builtin_unreachable();
}

/* Polls the driver (waiting at most max_wait ms, -1: until an event or the next timer)
 * and fires the timers that are due. */
static void poll_once(edo__worker *w, int max_wait)
{
    int timeout = max_wait;
    if (timeout != 0) {
        int64_t next = edo__wheel_next(&w->wheel);
        if (next != INT64_MAX) {
            int64_t d = next - edo_now();
            d = d < 0 ? 0 : d > 1000000 ? 1000000 : d;
            if (timeout < 0 || d < timeout)
                timeout = (int)d;
        }
        /* Announce the sleep, then look once more: a foreign wake either sees `parked`
         * and writes the eventfd, or its task is already in the inject queue here. */
        atomic_store(&w->parked, 1);
        if (atomic_load(&w->rt->inject_len))
            timeout = 0;
        else
            edo__stack_trim(); /* idle: a good moment to give memory back */
    }
    w->poll_due = false;
    int n = edo__driver_poll(w, timeout);
    if (n > 0 || max_wait != 0 || !w->poll_interval)
        w->poll_interval = EVENT_INTERVAL;
    else if (w->poll_interval < EVENT_INTERVAL_MAX)
        w->poll_interval *= 2;
    w->next_poll_tick = w->tick + w->poll_interval;
    if (max_wait != 0)
        atomic_store(&w->parked, 0);
    if (w->wheel.count)
        edo__wheel_advance(&w->wheel, edo_now());
}

void edo__sched_loop(edo__worker *w, edo_task *until, int64_t give_up_at)
{
    for (;;) {
        if (until ? atomic_load_explicit(&until->state, memory_order_acquire) == EDO__DONE
                  : w->rt->live == 0)
            return;
        if (give_up_at != EDO_NEVER && edo_now() >= give_up_at)
            return;
        if (w->poll_due)
            poll_once(w, 0);
        edo_task *t = next_task(w);
        if (t) {
            run_prepare(w, t, edo__cycles());
            edo__coro_switch(&w->sched, &t->ctx, 0);
            if (__builtin_expect(w->overflowed != NULL, 0))
                edo__overflow_report(w->overflowed, w->overflow_how);
            w->current = NULL;
            finish_switch(w);
            continue;
        }
        /* Nothing ready: sleep in the driver (during shutdown, in short rounds so that
         * the grace period is noticed). */
        poll_once(w, give_up_at != EDO_NEVER ? 10 : -1);
    }
}
