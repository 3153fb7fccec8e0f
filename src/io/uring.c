/*
 * The io_uring driver: see uring.h.
 */
#include "io/uring.h"
#include "io/io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool edo__uring_on(void)
{
    edo__worker *w = edo__worker_current();
    return w && w->rt->backend == EDO_BACKEND_URING;
}

#ifdef EDO_HAVE_URING

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

/* Submission entries per ring. A task queues one per call, so a worker with more tasks
 * making calls in one turn fills it: the ring is then submitted at once to make room. */
#define SQ_ENTRIES 256
/* Completion entries: many more, since every idle connection has a read in flight. The
 * kernel keeps what overflows (IORING_FEAT_NODROP) until there is room. */
#define CQ_ENTRIES 4096

/* user_data values that are not operations (which are addresses). */
enum { TAG_IGNORE = 0, TAG_WAKE = 1, TAG_EPOLL = 2 };

struct edo__uop {
    edo_task *task; /* holds a reference while the operation is in flight */
    edo__worker *w; /* whose ring it is on */
    int32_t res;
    uint32_t cflags; /* the completion's flags (the provided buffer's id) */
    _Atomic bool done;
    /* A cancel asked of the owning worker from another thread: the task does not leave
     * before that worker has taken the request, or it could cancel a later operation
     * at the same address. */
    _Atomic bool cancel_asked, cancel_taken;
    edo__slink cancel_link; /* in the ring's cancels */
};

typedef struct edo__ring {
    struct io_uring ring;
    edo__worker *w;
    /* The right to touch the ring: its worker holds it while it fills entries, submits,
     * sleeps in the ring and reaps; the monitor takes it only when free, to do the same
     * for a worker stuck in one task. */
    edo__spin lock;
    bool wake_armed;  /* a read of wake_fd is in flight */
    bool epoll_armed; /* worker 0: a poll of the runtime's epoll is in flight */
    int wake_fd;      /* eventfd that wakes the worker sleeping in the ring */
    uint64_t wake_buf;
    _Atomic bool queued; /* entries filled and not submitted (read without the lock) */
    /* cancels asked for by other threads */
    edo__spin cancel_lock;
    _Atomic bool cancel_pending;
    edo__fifo cancels; /* edo__uop.cancel_link; under cancel_lock */
    /* Provided buffers for edo_read_lent (group 0): nbufs of bufsize bytes in bufmem, the
     * free ones listed in br. Only the ring's own worker adds to br; buffers given back
     * on other threads wait in `returns`. */
    struct io_uring_buf_ring *br;
    char *bufmem;
    uint32_t nbufs;
    size_t bufsize, brsize, memsize;
    edo__spin return_lock;
    _Atomic bool return_pending;
    uint32_t *returns;
    uint32_t nreturns, return_cap;
} edo__ring;

/* The opcodes the backend uses: a kernel without one of them gets epoll. */
static const int needed_ops[] = {
    IORING_OP_READ,     IORING_OP_WRITE,    IORING_OP_RECV,     IORING_OP_SEND,
    IORING_OP_ACCEPT,   IORING_OP_CONNECT,  IORING_OP_SENDMSG,  IORING_OP_RECVMSG,
    IORING_OP_CLOSE,    IORING_OP_SHUTDOWN, IORING_OP_POLL_ADD, IORING_OP_ASYNC_CANCEL,
    IORING_OP_OPENAT,   IORING_OP_STATX,    IORING_OP_FSYNC,    IORING_OP_RENAMEAT,
    IORING_OP_UNLINKAT, IORING_OP_MKDIRAT,
};

static int ring_setup(struct io_uring *ring, unsigned flags)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = flags | IORING_SETUP_CQSIZE;
    p.cq_entries = CQ_ENTRIES;
    return io_uring_queue_init_params(SQ_ENTRIES, ring, &p);
}

/* Finds setup flags the kernel takes, best first, and checks the opcodes.
 *
 * A threaded runtime must not let a worker stuck in a long task hold up the operations
 * on its ring (DESIGN.md, "one stuck task must not stall the runtime"): the monitor then
 * submits and reaps that ring itself. So no single issuer and no DEFER_TASKRUN (which
 * would run completions only when the stuck thread asks), and no COOP_TASKRUN either:
 * the kernel interrupts the stuck thread to post its completions. A current-thread
 * runtime has no monitor, and any thread that calls edo_block_on may drive it: it takes
 * COOP_TASKRUN (completions run when the driving thread enters the kernel, which it does
 * once per turn anyway). */
int edo__uring_probe(bool threaded, unsigned *flags, const char **why)
{
    static const unsigned threaded_flags[] = {
        IORING_SETUP_SUBMIT_ALL,
        0,
    };
    static const unsigned current_flags[] = {
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    const unsigned *f = threaded ? threaded_flags : current_flags;
    size_t n = threaded ? 2 : 3;
    struct io_uring ring;
    int rc = -ENOSYS;
    for (size_t i = 0; i < n; i++) {
        if ((rc = ring_setup(&ring, f[i])) == 0) {
            *flags = f[i];
            break;
        }
    }
    if (rc < 0) {
        *why = "the kernel refused io_uring_setup";
        return rc;
    }
    struct io_uring_probe *pr = io_uring_get_probe_ring(&ring);
    if (!pr) {
        rc = -ENOSYS;
        *why = "the kernel cannot say which io_uring operations it has";
    } else {
        for (size_t i = 0; i < sizeof needed_ops / sizeof needed_ops[0]; i++) {
            if (!io_uring_opcode_supported(pr, needed_ops[i])) {
                rc = -ENOSYS;
                *why = "the kernel lacks io_uring operations edo needs";
                break;
            }
        }
        io_uring_free_probe(pr);
    }
    io_uring_queue_exit(&ring);
    return rc;
}

/* The provided buffers of r; without them (a kernel that refuses the buffer ring, no
 * memory) edo_read_lent reads into allocated buffers. */
static void bufs_init(edo__ring *r, edo_runtime *rt)
{
    uint32_t n = 1;
    while (n < rt->read_bufs)
        n <<= 1;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    r->nbufs = n;
    r->bufsize = rt->read_buf_size;
    r->brsize = (n * sizeof(struct io_uring_buf) + page - 1) & ~(page - 1);
    r->memsize = n * r->bufsize;
    void *br = mmap(NULL, r->brsize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    /* Reserved, not touched: an idle runtime's buffers cost address space only. */
    void *mem = mmap(NULL, r->memsize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct io_uring_buf_reg reg = { .ring_addr = (uintptr_t)br, .ring_entries = n, .bgid = 0 };
    if (br == MAP_FAILED || mem == MAP_FAILED || r->bufsize > UINT32_MAX ||
        io_uring_register_buf_ring(&r->ring, &reg, 0) < 0) {
        if (br != MAP_FAILED)
            munmap(br, r->brsize);
        if (mem != MAP_FAILED)
            munmap(mem, r->memsize);
        return;
    }
    r->br = br;
    r->bufmem = mem;
    io_uring_buf_ring_init(r->br);
    int mask = io_uring_buf_ring_mask(n);
    for (uint32_t i = 0; i < n; i++)
        io_uring_buf_ring_add(r->br, r->bufmem + (size_t)i * r->bufsize, (unsigned)r->bufsize,
                              (unsigned short)i, mask, (int)i);
    io_uring_buf_ring_advance(r->br, (int)n);
}

static void buf_add(edo__ring *r, uint32_t id)
{
    io_uring_buf_ring_add(r->br, r->bufmem + (size_t)id * r->bufsize, (unsigned)r->bufsize,
                          (unsigned short)id, io_uring_buf_ring_mask(r->nbufs), 0);
    io_uring_buf_ring_advance(r->br, 1);
}

/* Adds the buffers given back on other threads. */
static void take_returns(edo__ring *r)
{
    if (!atomic_load_explicit(&r->return_pending, memory_order_acquire))
        return;
    edo__spin_lock(&r->return_lock);
    for (uint32_t i = 0; i < r->nreturns; i++)
        buf_add(r, r->returns[i]);
    r->nreturns = 0;
    atomic_store_explicit(&r->return_pending, false, memory_order_relaxed);
    edo__spin_unlock(&r->return_lock);
}

void edo__ring_buf_return(void *ring, uint32_t id)
{
    edo__ring *r = ring;
    if (edo__worker_current() == r->w) {
        buf_add(r, id);
        return;
    }
    edo__spin_lock(&r->return_lock);
    if (r->nreturns == r->return_cap) {
        /* At most nbufs can be out, so this grows once or twice and never fails for
         * long; without memory the buffer is simply not lent again. */
        uint32_t cap = r->return_cap ? 2 * r->return_cap : 64;
        uint32_t *g = realloc(r->returns, cap * sizeof *g);
        if (g) {
            r->returns = g;
            r->return_cap = cap;
        }
    }
    if (r->nreturns < r->return_cap) {
        r->returns[r->nreturns++] = id;
        atomic_store_explicit(&r->return_pending, true, memory_order_release);
    }
    edo__spin_unlock(&r->return_lock);
}

static int ring_init(edo__worker *w)
{
    edo__ring *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->w = w;
    r->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->wake_fd < 0) {
        int rc = -errno;
        free(r);
        return rc;
    }
    int rc = ring_setup(&r->ring, w->rt->driver_flags);
    if (rc < 0) {
        close(r->wake_fd);
        free(r);
        return rc;
    }
    bufs_init(r, w->rt);
    w->driver_data = r;
    return 0;
}

static void ring_fini(edo__worker *w)
{
    edo__ring *r = w->driver_data;
    if (!r)
        return;
    io_uring_queue_exit(&r->ring);
    close(r->wake_fd);
    if (r->br) {
        munmap(r->br, r->brsize);
        munmap(r->bufmem, r->memsize);
    }
    free(r->returns);
    free(r);
    w->driver_data = NULL;
}

/* An operation's completion: its result for the task, which is woken. */
static void op_complete(edo__ring *r, edo__uop *op, int32_t res, uint32_t cflags)
{
    edo_task *t = op->task;
    op->res = res;
    op->cflags = cflags;
    /* Sequentially consistent: edo__wake's look at t's state must not pass it. */
    atomic_store(&op->done, true);
    edo__wake(t);
    edo__task_unref(t);
}

static int reap(edo__ring *r)
{
    unsigned head, n = 0;
    struct io_uring_cqe *cqe;
    bool epoll_ready = false;
    io_uring_for_each_cqe(&r->ring, head, cqe)
    {
        n++;
        uint64_t ud = cqe->user_data;
        if (ud == TAG_IGNORE)
            continue;
        if (ud == TAG_WAKE) {
            r->wake_armed = false;
            continue;
        }
        if (ud == TAG_EPOLL) {
            if (!(cqe->flags & IORING_CQE_F_MORE))
                r->epoll_armed = false;
            epoll_ready = true;
            continue;
        }
        op_complete(r, (edo__uop *)(uintptr_t)ud, cqe->res, cqe->flags);
    }
    io_uring_cq_advance(&r->ring, n);
    if (epoll_ready)
        edo__epoll_drain(r->w->rt);
    return (int)n;
}

/* A free submission entry, submitting what is queued to make room if the queue is full.
 * NULL with *err set if the kernel takes nothing. */
static struct io_uring_sqe *get_sqe(edo__ring *r, int *err)
{
    struct io_uring_sqe *sqe;
    while (!(sqe = io_uring_get_sqe(&r->ring))) {
        int rc = io_uring_submit(&r->ring);
        if (rc < 0 && rc != -EBUSY && rc != -EAGAIN && rc != -EINTR) {
            *err = rc;
            return NULL;
        }
        /* -EBUSY: completions are overflowing; taking them lets the kernel go on. */
        if (io_uring_cq_ready(&r->ring) || rc < 0)
            reap(r);
        if (rc == -EAGAIN)
            sched_yield();
    }
    atomic_store_explicit(&r->queued, true, memory_order_relaxed);
    return sqe;
}

static void arm_wake(edo__ring *r)
{
    int err;
    struct io_uring_sqe *sqe = get_sqe(r, &err);
    if (!sqe)
        return;
    io_uring_prep_read(sqe, r->wake_fd, &r->wake_buf, sizeof r->wake_buf, 0);
    io_uring_sqe_set_data64(sqe, TAG_WAKE);
    r->wake_armed = true;
}

/* The runtime's epoll serves the calls that wait for readiness (edo_io_wait, edo_select's
 * socket cases, signals); the first worker's ring watches it. */
static void arm_epoll(edo__ring *r)
{
    int err;
    struct io_uring_sqe *sqe = get_sqe(r, &err);
    if (!sqe)
        return;
    io_uring_prep_poll_multishot(sqe, edo__reactor_of(r->w->rt)->epfd, POLLIN);
    io_uring_sqe_set_data64(sqe, TAG_EPOLL);
    r->epoll_armed = true;
}

static void prep_cancel(edo__ring *r, uint64_t key)
{
    int err;
    struct io_uring_sqe *sqe = get_sqe(r, &err);
    if (!sqe)
        return;
    io_uring_prep_cancel64(sqe, key, 0);
    io_uring_sqe_set_data64(sqe, TAG_IGNORE);
}

/* Queues the cancels other threads asked for, and tells each asker it is done. */
static void take_cancels(edo__ring *r)
{
    if (!atomic_load_explicit(&r->cancel_pending, memory_order_acquire))
        return;
    edo__spin_lock(&r->cancel_lock);
    edo__fifo asked = r->cancels;
    r->cancels = (edo__fifo){ NULL, NULL };
    atomic_store_explicit(&r->cancel_pending, false, memory_order_relaxed);
    edo__spin_unlock(&r->cancel_lock);
    edo__slink *l;
    while ((l = edo__fifo_pop(&asked))) {
        edo__uop *op = edo__container_of(l, edo__uop, cancel_link);
        edo_task *t = op->task;
        prep_cancel(r, (uint64_t)(uintptr_t)op);
        /* Sequentially consistent, as a completion: op may be gone once this is seen. */
        atomic_store(&op->cancel_taken, true);
        edo__wake(t);
        edo__task_unref(t);
    }
}

static void ring_unpark(edo__worker *w);

/* Asks the worker that owns op's ring to cancel it; from any thread, while op is in
 * flight (its task waits in run_op until the request is taken). */
static void request_cancel(edo__worker *owner, edo__uop *op)
{
    edo__ring *r = owner->driver_data;
    atomic_store(&op->cancel_asked, true);
    edo__task_ref(op->task); /* dropped by take_cancels, after its wake */
    edo__spin_lock(&r->cancel_lock);
    edo__fifo_push(&r->cancels, &op->cancel_link);
    atomic_store_explicit(&r->cancel_pending, true, memory_order_release);
    edo__spin_unlock(&r->cancel_lock);
    ring_unpark(owner);
}

static void op_cancel(edo__uop *op)
{
    edo__worker *w = edo__worker_current();
    if (w == op->w) {
        edo__ring *r = w->driver_data;
        edo__spin_lock(&r->lock);
        prep_cancel(r, (uint64_t)(uintptr_t)op);
        edo__spin_unlock(&r->lock);
    } else
        request_cancel(op->w, op);
}

static int ring_poll(edo__worker *w, int timeout_ms)
{
    edo__ring *r = w->driver_data;
    edo__spin_lock(&r->lock);
    if (!r->wake_armed)
        arm_wake(r);
    if (w->index == 0 && !r->epoll_armed)
        arm_epoll(r);
    take_cancels(r);
    take_returns(r);
    int rc;
#ifdef EDO_TSAN
    if (timeout_ms < 0 || timeout_ms > EDO__TSAN_SLICE_MS)
        timeout_ms = EDO__TSAN_SLICE_MS; /* futex.h says why */
#endif
    if (timeout_ms == 0 || io_uring_cq_ready(&r->ring)) {
        rc = io_uring_submit_and_get_events(&r->ring);
    } else {
        struct __kernel_timespec ts = { .tv_sec = timeout_ms / 1000,
                                        .tv_nsec = (long long)(timeout_ms % 1000) * 1000000 };
        struct io_uring_cqe *cqe;
        rc = io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, timeout_ms > 0 ? &ts : NULL, NULL);
    }
    (void)rc; /* -ETIME, -EINTR: nothing came; what was queued stays for the next turn */
    atomic_store_explicit(&r->queued, io_uring_sq_ready(&r->ring) != 0, memory_order_relaxed);
    int n = reap(r);
    edo__spin_unlock(&r->lock);
#ifdef EDO_TSAN
    edo__tsan_signal_point();
#endif
    return n;
}

static void ring_rescue(edo__worker *w)
{
    edo__ring *r = w->driver_data;
    if (!r || atomic_exchange_explicit(&r->lock, 1, memory_order_acquire))
        return; /* its worker is at it after all */
    take_cancels(r);
    io_uring_submit_and_get_events(&r->ring);
    atomic_store_explicit(&r->queued, io_uring_sq_ready(&r->ring) != 0, memory_order_relaxed);
    reap(r);
    edo__spin_unlock(&r->lock);
}

static bool ring_pending(const edo__worker *w)
{
    const edo__ring *r = w->driver_data;
    return r && (atomic_load_explicit(&r->queued, memory_order_relaxed) ||
                 atomic_load_explicit(&r->cancel_pending, memory_order_relaxed));
}

static void ring_unpark(edo__worker *w)
{
    uint64_t one = 1;
    ssize_t n = write(((edo__ring *)w->driver_data)->wake_fd, &one, sizeof one);
    (void)n; /* EAGAIN: the counter is full, so a wake-up is pending anyway */
}

/* ---- the io_uring driver (driver.h) ---------------------------------------------------- */

static void ring_worker_fini(edo__worker *w)
{
    ring_fini(w);
    edo__io_worker_fini(w);
}

/* Every worker sleeps in its own ring, where its operations complete. */
static bool ring_acquire(edo__worker *w)
{
    (void)w;
    return true;
}

static void ring_release(edo__worker *w)
{
    (void)w;
}

const edo__driver edo__uring_driver = {
    .name = "io_uring",
    .init = edo__epoll_init,
    .fini = edo__epoll_fini,
    .worker_init = ring_init,
    .worker_fini = ring_worker_fini,
    .shutdown = edo__io_shutdown,
    .acquire = ring_acquire,
    .release = ring_release,
    .poll = ring_poll,
    .pending = ring_pending,
    .unpark = ring_unpark,
    .rescue = ring_rescue,
    .drain = edo__epoll_drain,
};

static void slot_clear(edo__uring_slot *slot)
{
    edo__spin_lock(&slot->lock);
    slot->op = NULL;
    edo__spin_unlock(&slot->lock);
}

/* final: an operation that is never given up (close): no deadline, no abort. */
static int run_op(edo__uring_slot *slot, edo__uring_prep_fn prep, void *arg, edo_wait_reason why,
                  int64_t deadline, bool final, uint32_t *cflags)
{
    edo__worker *w = edo__worker_current();
    edo_task *self = w ? w->current : NULL;
    if (!self)
        return -EDO_ENOTASK;
    int rc = final ? 0 : edo__may_start(self, deadline);
    if (rc < 0)
        return rc;
    edo__uop op = { .task = self, .w = w };
    if (slot) {
        edo__spin_lock(&slot->lock);
        int busy = slot->closed ? -EBADF : slot->op ? -EBUSY : 0;
        if (!busy)
            slot->op = &op;
        edo__spin_unlock(&slot->lock);
        if (busy)
            return busy; /* -EBUSY: another task already waits in this direction */
    }
    edo__ring *r = w->driver_data;
    edo__spin_lock(&r->lock);
    struct io_uring_sqe *sqe = get_sqe(r, &rc);
    if (!sqe) {
        edo__spin_unlock(&r->lock);
        if (slot)
            slot_clear(slot);
        return rc;
    }
    prep(sqe, arg);
    io_uring_sqe_set_data(sqe, &op);
    edo__task_ref(self); /* dropped by the completion, after its wake */
    edo__spin_unlock(&r->lock);
    while (!final && !atomic_load(&op.done)) {
        rc = edo__park(why, deadline);
        if (rc < 0)
            break;
    }
    if (!atomic_load(&op.done)) {
        /* Past the deadline or aborted: the kernel may still write into the caller's
         * buffers until the operation completes, cancelled or not. Wait for it. */
        if (!final)
            op_cancel(&op);
        while (!atomic_load(&op.done))
            edo__suspend(edo__worker_current(), self);
    }
    if (slot)
        slot_clear(slot); /* from here on nobody asks for a cancel of op */
    while (atomic_load(&op.cancel_asked) && !atomic_load(&op.cancel_taken))
        edo__suspend(edo__worker_current(), self);
    if (cflags)
        *cflags = op.cflags;
    /* Aborted while the cancel for a deadline was under way: the abort is what the
     * caller must see, as edo__park would have said. */
    if (rc == -ETIMEDOUT && atomic_load_explicit(&self->aborted, memory_order_acquire))
        rc = -ECANCELED;
    /* The cancel won (-ECANCELED; -EINTR for some operations the kernel interrupted):
     * the call reports why it gave up. Otherwise the operation's result stands. */
    if (rc < 0 && (op.res == -ECANCELED || op.res == -EINTR))
        return rc;
    return op.res;
}

int edo__uring_op_in(edo__uring_slot *slot, edo__uring_prep_fn prep, void *arg, edo_wait_reason why,
                     int64_t deadline)
{
    return run_op(slot, prep, arg, why, deadline, false, NULL);
}

int edo__uring_op_final(edo__uring_prep_fn prep, void *arg)
{
    return run_op(NULL, prep, arg, EDO_WAIT_WRITE, EDO_NEVER, true, NULL);
}

int edo__uring_op(edo__uring_prep_fn prep, void *arg, edo_wait_reason why, int64_t deadline)
{
    return edo__uring_op_in(NULL, prep, arg, why, deadline);
}

typedef struct lent_args {
    int fd;
    bool socket;
    size_t len;
    char *buf; /* NULL: the kernel picks a provided buffer */
} lent_args;

static void prep_lent(struct io_uring_sqe *sqe, void *arg)
{
    lent_args *a = arg;
    if (a->socket)
        io_uring_prep_recv(sqe, a->fd, a->buf, a->len, 0);
    else
        io_uring_prep_read(sqe, a->fd, a->buf, (unsigned)a->len, (uint64_t)-1);
    if (!a->buf) {
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = 0;
    }
}

ssize_t edo__uring_read_lent(edo__uring_slot *slot, int fd, bool socket, edo_buf *out,
                             edo_wait_reason why, int64_t deadline)
{
    edo__worker *w = edo__worker_current();
    if (!w || !w->current)
        return -EDO_ENOTASK;
    edo__ring *r = w->driver_data; /* the ring the read goes to, and whose buffer it gets */
    edo_runtime *rt = w->rt;
    int rc = -ENOBUFS;
    if (r->br) {
        lent_args a = { .fd = fd, .socket = socket, .len = r->bufsize };
        uint32_t cf = 0;
        rc = run_op(slot, prep_lent, &a, why, deadline, false, &cf);
        if (cf & IORING_CQE_F_BUFFER) {
            uint32_t id = cf >> IORING_CQE_BUFFER_SHIFT;
            if (rc > 0) {
                *out = (edo_buf){ .data = r->bufmem + (size_t)id * r->bufsize,
                                  .len = (size_t)rc,
                                  .owner_ = r,
                                  .id_ = id };
                return rc;
            }
            edo__ring_buf_return(r, id);
        }
    }
    if (rc != -ENOBUFS)
        return rc;
    /* Every provided buffer is lent out: an allocated one, named in the operation. */
    lent_args a = { .fd = fd, .socket = socket, .len = rt->read_buf_size };
    if (!(a.buf = edo__lent_get(rt)))
        return -ENOMEM;
    rc = run_op(slot, prep_lent, &a, why, deadline, false, NULL);
    if (rc > 0)
        *out = (edo_buf){ .data = a.buf, .len = (size_t)rc, .owner_ = rt, .id_ = EDO__LENT_HEAP };
    else
        edo__lent_put(rt, a.buf);
    return rc;
}

void edo__uring_slot_close(edo__uring_slot *slot)
{
    edo__spin_lock(&slot->lock);
    slot->closed = true;
    if (slot->op)
        op_cancel(slot->op);
    edo__spin_unlock(&slot->lock);
}

#endif
