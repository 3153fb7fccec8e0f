/*
 * Channels: a ring of messages behind a spinlock, with a queue of waiting receivers and
 * one of waiting senders. A message goes straight from a sender to a waiting receiver (or
 * from a waiting sender to a receiver), copied into the waiter's buffer under the lock, so
 * a receiver that gave up can never have taken one: it either got the message entirely or
 * the message is still in the channel.
 */
#include "sync/resource.h"
#include "sync/sync.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#define ELEM_MAX 65536
#define UNBOUNDED_FIRST 64 /* slots of an unbounded channel's first ring */

/* A task that finds the lock taken looks again after LOCK_BACKOFF_FIRST pause
 * instructions, then after twice as many each time up to LOCK_BACKOFF_MAX; after
 * LOCK_YIELD_AFTER looks at that length it also gives up its thread's time slice at each
 * look (the holder may have been preempted). See chan_lock_slow. */
#define LOCK_BACKOFF_FIRST 16
#define LOCK_BACKOFF_MAX 64
#define LOCK_YIELD_AFTER 8

#define CACHE_LINE 64

struct edo_chan {
    /* Besides the lock, its cache line holds only what an operation reads and does not
     * write (an unbounded channel's ring and size change, rarely): a task spinning on the
     * lock, which takes the line into its cache at every look, then takes away nothing
     * that the holder is writing, and the holder's writes do not wait for it. */
    union {
        struct {
            edo__spin lock;
            bool oneshot;
            size_t elem;
            size_t cap;  /* messages it may hold: EDO_UNBOUNDED, or 0 for a rendezvous */
            size_t size; /* slots of ring */
            unsigned char *ring;
        };
        unsigned char lock_line[CACHE_LINE];
    };
    _Atomic bool closed;
    size_t head; /* slot of the oldest message */
    _Atomic size_t len;
    edo__waitq recvq, sendq;
    edo__res res;
    /* A bounded channel's ring follows, in the same allocation. */
};

static inline unsigned char *inline_ring(edo_chan *ch)
{
    return (unsigned char *)(ch + 1);
}

static int chan_new(edo_chan **out, size_t elem, size_t cap, bool oneshot)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (elem == 0 || elem > ELEM_MAX)
        return -EINVAL;
    bool unbounded = cap == EDO_UNBOUNDED;
    size_t size = unbounded ? UNBOUNDED_FIRST : cap;
    if (size > (SIZE_MAX - sizeof(edo_chan)) / elem)
        return -ENOMEM;
    /* One allocation for a channel and its bounded ring; an unbounded ring is replaced as
     * it grows, so it has its own. */
    edo_chan *ch = malloc(sizeof *ch + (unbounded ? 0 : size * elem));
    if (!ch)
        return -ENOMEM;
    memset(ch, 0, sizeof *ch);
    ch->elem = elem;
    ch->cap = cap;
    ch->oneshot = oneshot;
    ch->size = size;
    ch->ring = unbounded ? malloc(size * elem) : inline_ring(ch);
    if (!ch->ring) {
        free(ch);
        return -ENOMEM;
    }
    edo__res_add(&ch->res, EDO_RES_CHAN);
    *out = ch;
    return 0;
}

int edo_chan_new(edo_chan **ch, size_t elem_size, size_t capacity)
{
    return chan_new(ch, elem_size, capacity, false);
}

int edo_oneshot_new(edo_chan **ch, size_t elem_size)
{
    return chan_new(ch, elem_size, 1, true);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* Takes the lock when it was found taken. When tasks on two workers use one channel hard
 * (ten senders and a receiver, say), the worker that holds the lock could take it again
 * and again from its own cache; each time the other worker gets it in between, the lock's
 * and the channel's cache lines move to the other core and later back, at some fifty to a
 * hundred nanoseconds a move, more than a whole send costs. A waiter that looks again
 * after every pause, as edo__spin_lock's does, gets in at nearly every gap, so the lines
 * move every few operations. Backing off from the first look, from LOCK_BACKOFF_FIRST
 * pauses (under a microsecond), lets the holder's worker run many operations in a row.
 * With rtbench's mpsc_contended on two workers (bench/rtbench.c): 135 ns a message with
 * edo__spin_lock, about 40 ns with this. The price: a waiter for a lock held briefly
 * waits longer than it had to, which only happens when the channel is that busy. */
__attribute__((noinline)) static void chan_lock_slow(edo__spin *l)
{
    unsigned backoff = LOCK_BACKOFF_FIRST, at_max = 0;
    for (;;) {
        for (unsigned i = 0; i < backoff; i++)
            cpu_relax();
        if (!atomic_load_explicit(l, memory_order_relaxed) &&
            !atomic_exchange_explicit(l, 1, memory_order_acquire))
            return;
        if (backoff < LOCK_BACKOFF_MAX)
            backoff *= 2;
        else if (++at_max > LOCK_YIELD_AFTER)
            sched_yield();
    }
}

static inline void chan_lock(edo_chan *ch)
{
    if (__builtin_expect(atomic_exchange_explicit(&ch->lock, 1, memory_order_acquire), 0))
        chan_lock_slow(&ch->lock);
}

static inline void chan_unlock(edo_chan *ch)
{
    edo__spin_unlock(&ch->lock);
}

static inline unsigned char *slot(edo_chan *ch, size_t i)
{
    size_t s = ch->head + i;
    if (s >= ch->size)
        s -= ch->size;
    return ch->ring + s * ch->elem;
}

/* Room for one more message: grows an unbounded ring when full. */
static int make_room(edo_chan *ch, size_t len)
{
    if (len < ch->size)
        return 0;
    if (ch->cap != EDO_UNBOUNDED)
        return -EAGAIN;
    size_t size = ch->size * 2;
    if (size < ch->size || size > SIZE_MAX / ch->elem)
        return -ENOMEM;
    unsigned char *ring = malloc(size * ch->elem);
    if (!ring)
        return -ENOMEM;
    /* Unwrap: the oldest message first. */
    size_t first = ch->size - ch->head < len ? ch->size - ch->head : len;
    memcpy(ring, ch->ring + ch->head * ch->elem, first * ch->elem);
    memcpy(ring + first * ch->elem, ch->ring, (len - first) * ch->elem);
    free(ch->ring); /* never the inline one: that is a bounded channel's */
    ch->ring = ring;
    ch->size = size;
    ch->head = 0;
    return 0;
}

/* Completes every waiter of q that can be claimed with rc (closing). */
static void fail_all(edo__waitq *q, int rc, edo__wakeups *wk)
{
    edo__waiter *w;
    while ((w = edo__waitq_claim(q)))
        edo__complete(wk, w, rc);
}

static void close_locked(edo_chan *ch, edo__wakeups *wk)
{
    atomic_store_explicit(&ch->closed, true, memory_order_relaxed);
    fail_all(&ch->sendq, -EDO_ECLOSED, wk);
    /* Receivers wait only while the channel is empty: all of them get "closed". */
    fail_all(&ch->recvq, -EDO_ECLOSED, wk);
}

/* Under the lock: sends msg, or -EAGAIN if that needs a wait. */
static int send_locked(edo_chan *ch, const void *msg, edo__wakeups *wk)
{
    if (atomic_load_explicit(&ch->closed, memory_order_relaxed))
        return -EDO_ECLOSED;
    edo__waiter *r = edo__waitq_claim(&ch->recvq);
    if (r) {
        memcpy(r->buf, msg, ch->elem);
        edo__complete(wk, r, 0);
    } else {
        size_t len = atomic_load_explicit(&ch->len, memory_order_relaxed);
        int rc = make_room(ch, len);
        if (rc < 0)
            return rc;
        memcpy(slot(ch, len), msg, ch->elem);
        atomic_store_explicit(&ch->len, len + 1, memory_order_relaxed);
    }
    if (ch->oneshot)
        close_locked(ch, wk);
    return 0;
}

/* Under the lock: receives into out, or -EAGAIN if that needs a wait. */
static int recv_locked(edo_chan *ch, void *out, edo__wakeups *wk)
{
    size_t len = atomic_load_explicit(&ch->len, memory_order_relaxed);
    if (len) {
        memcpy(out, slot(ch, 0), ch->elem);
        if (++ch->head == ch->size)
            ch->head = 0;
        len--;
        /* A slot is free: the first waiting sender's message takes it. */
        edo__waiter *s = edo__waitq_claim(&ch->sendq);
        if (s) {
            memcpy(slot(ch, len), s->buf, ch->elem);
            len++;
            edo__complete(wk, s, 0);
        }
        atomic_store_explicit(&ch->len, len, memory_order_relaxed);
        return 0;
    }
    /* Empty: a rendezvous takes from a waiting sender directly. */
    edo__waiter *s = edo__waitq_claim(&ch->sendq);
    if (s) {
        memcpy(out, s->buf, ch->elem);
        edo__complete(wk, s, 0);
        return 0;
    }
    return atomic_load_explicit(&ch->closed, memory_order_relaxed) ? -EDO_ECLOSED : -EAGAIN;
}

static void withdraw_send(void *obj, edo__waiter *w, edo__wakeups *wk)
{
    edo__waitq_remove(&((edo_chan *)obj)->sendq, w);
}

static void withdraw_recv(void *obj, edo__waiter *w, edo__wakeups *wk)
{
    edo__waitq_remove(&((edo_chan *)obj)->recvq, w);
}

static int chan_send(edo_chan *ch, const void *msg, bool wait)
{
    if (!ch || !msg)
        return -EINVAL;
    edo__wakeups wk = { 0 };
    chan_lock(ch);
    int rc = send_locked(ch, msg, &wk);
    if (rc != -EAGAIN || !wait) {
        chan_unlock(ch);
        edo__wakeups_run(&wk);
        return rc;
    }
    return edo__wait_queued(&ch->sendq, &ch->lock, EDO_WAIT_CHAN, EDO__OP_SEND, (void *)msg, 0,
                            withdraw_send, ch);
}

static int chan_recv(edo_chan *ch, void *msg, bool wait)
{
    if (!ch || !msg)
        return -EINVAL;
    edo__wakeups wk = { 0 };
    chan_lock(ch);
    int rc = recv_locked(ch, msg, &wk);
    if (rc != -EAGAIN || !wait) {
        chan_unlock(ch);
        edo__wakeups_run(&wk);
        if (rc == 0)
            edo__budget_spend();
        return rc;
    }
    return edo__wait_queued(&ch->recvq, &ch->lock, EDO_WAIT_CHAN, EDO__OP_RECV, msg, 0,
                            withdraw_recv, ch);
}

int edo_chan_send(edo_chan *ch, const void *msg)
{
    int rc = chan_send(ch, msg, true);
    if (rc == 0)
        edo__budget_spend(); /* a sender that never waits must still let others run */
    return rc;
}

int edo_chan_try_send(edo_chan *ch, const void *msg)
{
    return chan_send(ch, msg, false);
}

int edo_chan_recv(edo_chan *ch, void *msg)
{
    return chan_recv(ch, msg, true);
}

int edo_chan_try_recv(edo_chan *ch, void *msg)
{
    return chan_recv(ch, msg, false);
}

void edo_chan_close(edo_chan *ch)
{
    if (!ch)
        return;
    edo__wakeups wk = { 0 };
    chan_lock(ch);
    close_locked(ch, &wk);
    chan_unlock(ch);
    edo__wakeups_run(&wk);
}

size_t edo_chan_len(edo_chan *ch)
{
    return ch ? atomic_load_explicit(&ch->len, memory_order_relaxed) : 0;
}

bool edo_chan_closed(edo_chan *ch)
{
    return ch && atomic_load_explicit(&ch->closed, memory_order_relaxed);
}

void edo_chan_free(edo_chan *ch)
{
    if (!ch)
        return;
    edo__res_remove(&ch->res);
    if (ch->ring != inline_ring(ch))
        free(ch->ring);
    free(ch);
}

void edo__chan_describe(edo__res *r, edo_resource_info *info)
{
    edo_chan *ch = edo__container_of(r, edo_chan, res);
    info->addr = ch;
    edo__spin_lock(&ch->lock);
    info->len = atomic_load_explicit(&ch->len, memory_order_relaxed);
    info->cap = ch->cap == EDO_UNBOUNDED ? UINT64_MAX : ch->cap;
    info->closed = atomic_load_explicit(&ch->closed, memory_order_relaxed);
    /* Senders wait for room, receivers for a message: never both at once. */
    edo__res_waiters(edo__waitq_empty(&ch->recvq) ? &ch->sendq : &ch->recvq, info);
    edo__spin_unlock(&ch->lock);
}

/* ---- edo_select ------------------------------------------------------------------------ */

/* Whether q holds a waiter of another select or task than sel's: our own select's other
 * case on the same channel can never be the partner. */
static bool other_waiter(const edo__waitq *q, const edo__sel *sel)
{
    for (const edo__waiter *w = edo__waitq_first(q); w; w = edo__waitq_next(w))
        if (w->sel != sel)
            return true;
    return false;
}

/* Whether the operation can complete without waiting (perhaps with a waiter of the other
 * side, which may turn out to belong to a select that has lost). */
static bool can_complete(edo_chan *ch, bool send, const edo__sel *sel)
{
    if (atomic_load_explicit(&ch->closed, memory_order_relaxed))
        return true; /* a send fails, a receive drains or fails */
    size_t len = atomic_load_explicit(&ch->len, memory_order_relaxed);
    if (send)
        return len < ch->size || ch->cap == EDO_UNBOUNDED || other_waiter(&ch->recvq, sel);
    return len || other_waiter(&ch->sendq, sel);
}

int edo__chan_sel_arm(edo_chan *ch, edo__waiter *w, bool send, edo__wakeups *wk)
{
    chan_lock(ch);
    int res = EDO__SEL_QUEUED;
    if (!can_complete(ch, send, w->sel)) {
        edo__waitq_push(send ? &ch->sendq : &ch->recvq, w);
    } else if (!edo__claim(w)) {
        res = EDO__SEL_LOST;
    } else {
        int rc = send ? send_locked(ch, w->buf, wk) : recv_locked(ch, w->buf, wk);
        if (rc != -EAGAIN) {
            w->rc = rc;
            res = EDO__SEL_DONE;
        } else {
            /* Every waiter of the other side belonged to a select that had lost: give the
             * claim back. A completer may have skipped one of our other waiters meanwhile,
             * so the select starts over rather than waits. */
            atomic_store_explicit(&w->sel->winner, -1, memory_order_release);
            res = EDO__SEL_RETRY;
        }
    }
    chan_unlock(ch);
    return res;
}

void edo__chan_sel_disarm(edo_chan *ch, edo__waiter *w, bool send)
{
    chan_lock(ch);
    if (w->queued)
        edo__waitq_remove(send ? &ch->sendq : &ch->recvq, w);
    chan_unlock(ch);
}
