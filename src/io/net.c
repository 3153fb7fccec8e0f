/*
 * Descriptors and TCP: the calls a task makes on an edo_io.
 *
 * Every call follows io.h's readiness protocol: try the system call when the direction may
 * be ready, otherwise (or on EAGAIN) wait for the driver's next edge, with the call's
 * deadline. Calls count as "users" of the io while they run, so that edo_close can wake
 * them and wait for them to leave before it frees anything.
 */
#include "io/io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the io object ---------------------------------------------------------------------- */

int edo__io_new(edo_io **out, int fd, int flags)
{
    *out = NULL;
    edo__worker *w = edo__worker_current();
    if (!w || !w->current)
        return -EDO_ENOTASK;
    edo_io *io = calloc(1, sizeof *io);
    if (!io)
        return -ENOMEM;
    io->fd = fd;
    if (w->rt->backend == EDO_BACKEND_URING && !(flags & EDO__IO_READINESS))
        flags |= EDO__IO_OPS;
    io->flags = flags;
    io->rt = w->rt;
    /* "Not ready" at a counter value the driver has not reached: the first call tries. */
    atomic_init(&io->rd.idle, UINT32_MAX);
    atomic_init(&io->wr.idle, UINT32_MAX);
    *out = io;
    return 0;
}

/* Registers io with the driver, once, when a call first has to wait on it. A socket that
 * never waits (a connect or accept that completes at once, a request answered and closed)
 * costs no epoll_ctl, and its readiness never wakes a sleeping worker. Registering finds
 * readiness that came before it (epoll reports a ready descriptor at once), so nothing
 * is lost between a failed call and the registration. */
static int io_register(edo_io *io)
{
    if (atomic_load_explicit(&io->registered, memory_order_acquire) ||
        atomic_exchange(&io->registered, true))
        return 0;
    int rc = edo__epoll_add(io->rt, io);
    if (rc < 0)
        atomic_store(&io->registered, false);
    return rc;
}

int edo_io_wrap(edo_io **out, int fd)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!edo__task_current())
        return -EDO_ENOTASK;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    int flags = EDO__IO_POLLABLE | (S_ISSOCK(st.st_mode) ? EDO__IO_SOCKET : 0);
    bool pollable = !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode);
    if (!pollable)
        flags &= ~EDO__IO_POLLABLE;
    if (pollable && !(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    int rc = edo__io_new(out, fd, flags);
    if (rc == 0 && pollable) {
        /* Registered now, to learn whether epoll takes it. */
        rc = io_register(*out);
        if (rc == -EPERM) {
            /* epoll refuses it (some character devices): serve it with plain blocking
             * calls. */
            fcntl(fd, F_SETFL, fl);
            (*out)->flags &= ~EDO__IO_POLLABLE;
            rc = 0;
        } else if (rc < 0) {
            free(*out);
            *out = NULL;
        }
    }
    if (rc < 0 && pollable && !(fl & O_NONBLOCK))
        fcntl(fd, F_SETFL, fl);
    if (rc == 0)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    return rc;
}

int edo_io_fd(const edo_io *io)
{
    return io ? io->fd : -1;
}

int edo_io_set_timeout(edo_io *io, int64_t read_ms, int64_t write_ms)
{
    if (!io)
        return -EINVAL;
    io->rd.timeout_ms = read_ms > 0 ? read_ms : 0;
    io->wr.timeout_ms = write_ms > 0 ? write_ms : 0;
    return 0;
}

static void io_leave(edo_io *io);

static int io_enter(edo_io *io)
{
    if (!io)
        return -EINVAL;
    if (atomic_fetch_add(&io->state, 1) & EDO__IO_CLOSING) {
        io_leave(io); /* may be the last to leave a closing io */
        return -EBADF;
    }
    return 0;
}

/* A write to a pipe whose reader is gone raised SIGPIPE on this thread, which blocks it
 * (edo__thread_create): take it, so that it is never delivered later. */
static void take_sigpipe(void)
{
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    sigtimedwait(&pipe, NULL, &(struct timespec){ 0, 0 });
}

/* ---- io_uring operations ---------------------------------------------------------------- */

#ifdef EDO_HAVE_URING
typedef struct op_args {
    int fd;
    bool socket;
    void *buf;
    size_t len;
    const struct iovec *iov;
    int iovcnt;
    struct msghdr mh;
    const struct sockaddr *sa;
    socklen_t salen;
} op_args;

static void prep_read(struct io_uring_sqe *sqe, void *arg)
{
    op_args *a = arg;
    if (a->socket)
        io_uring_prep_recv(sqe, a->fd, a->buf, a->len, 0);
    else
        io_uring_prep_read(sqe, a->fd, a->buf, (unsigned)a->len, (uint64_t)-1);
}

static void prep_write(struct io_uring_sqe *sqe, void *arg)
{
    op_args *a = arg;
    if (a->socket && a->iov) {
        a->mh =
            (struct msghdr){ .msg_iov = (struct iovec *)a->iov, .msg_iovlen = (size_t)a->iovcnt };
        io_uring_prep_sendmsg(sqe, a->fd, &a->mh, MSG_NOSIGNAL);
    } else if (a->socket) {
        io_uring_prep_send(sqe, a->fd, a->buf, a->len, MSG_NOSIGNAL);
    } else if (a->iov) {
        io_uring_prep_writev(sqe, a->fd, a->iov, (unsigned)a->iovcnt, (uint64_t)-1);
    } else {
        io_uring_prep_write(sqe, a->fd, a->buf, (unsigned)a->len, (uint64_t)-1);
    }
}

static void prep_accept(struct io_uring_sqe *sqe, void *arg)
{
    op_args *a = arg;
    io_uring_prep_accept(sqe, a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

static void prep_connect(struct io_uring_sqe *sqe, void *arg)
{
    op_args *a = arg;
    io_uring_prep_connect(sqe, a->fd, a->sa, a->salen);
}

static void prep_shutdown(struct io_uring_sqe *sqe, void *arg)
{
    op_args *a = arg;
    io_uring_prep_shutdown(sqe, a->fd, SHUT_WR);
}

static void prep_close(struct io_uring_sqe *sqe, void *arg)
{
    op_args *a = arg;
    io_uring_prep_close(sqe, a->fd);
}

/* What an operation's result on io means for the call: the operation's own -ECANCELED
 * (the task is not aborted) is edo_close cancelling it; -EINTR is tried again unless io
 * is closing. Returns false to try again, else true with *rc the call's result. */
static bool op_done(edo_io *io, int *rc)
{
    if (*rc == -ECANCELED && !edo_aborted())
        *rc = -EBADF;
    else if (*rc == -EINTR && !atomic_load(&io->closing))
        return false;
    else if (*rc == -EINTR)
        *rc = -EBADF;
    return true;
}

/* One operation in a direction of io. */
static int op_run(edo_io *io, edo__dir *d, edo__uring_prep_fn prep, op_args *a, edo_wait_reason why,
                  int64_t deadline)
{
    int rc;
    edo_task *self = edo__task_current();
    if (self)
        edo__wait_note(self, io, io->fd, EDO__OP_IO);
    do
        rc = edo__uring_op_in(&d->op, prep, a, why, deadline);
    while (!op_done(io, &rc));
    return rc;
}

static ssize_t op_read(edo_io *io, void *buf, size_t len, edo_wait_reason why, int64_t deadline)
{
    op_args a = { .fd = io->fd, .socket = io->flags & EDO__IO_SOCKET, .buf = buf, .len = len };
    if (len > UINT32_MAX)
        a.len = UINT32_MAX; /* an operation's length is 32 bits: a short read */
    return op_run(io, &io->rd, prep_read, &a, why, deadline);
}

static ssize_t op_write(edo_io *io, const void *buf, size_t len, const struct iovec *iov,
                        int iovcnt, int64_t deadline)
{
    op_args a = { .fd = io->fd,
                  .socket = io->flags & EDO__IO_SOCKET,
                  .buf = (void *)buf,
                  .len = len > UINT32_MAX ? UINT32_MAX : len,
                  .iov = iov,
                  .iovcnt = iovcnt };
    int rc = op_run(io, &io->wr, prep_write, &a, EDO_WAIT_WRITE, deadline);
    if (rc == -EPIPE && !a.socket)
        take_sigpipe();
    return rc;
}
#endif

static int close_fd(edo_io *io)
{
#ifdef EDO_HAVE_URING
    if (io->flags & EDO__IO_OPS) {
        edo__worker *w = edo__worker_current();
        /* Not from outside the runtime, and not from a task of another runtime. */
        if (w && w->current && w->rt == io->rt) {
            op_args a = { .fd = io->fd };
            int rc = edo__uring_op_final(prep_close, &a);
            return rc == -EINTR ? 0 : rc;
        }
    }
#endif
    return close(io->fd) < 0 && errno != EINTR ? -errno : 0;
}

/* Deregisters, closes and frees io, once: by edo_close, or by the last task to leave it
 * when edo_close could not wait (called from outside the runtime). */
static int io_finalize(edo_io *io)
{
    if (atomic_exchange(&io->finalized, true))
        return 0;
    edo_runtime *rt = io->rt;
    bool registered = atomic_load(&io->registered);
    if (registered)
        edo__epoll_del(rt, io);
    int rc = close_fd(io);
    if (registered)
        edo__io_retire(rt, io); /* a poll on another thread may still hold it */
    else
        free(io);
    return rc;
}

/* Leaves a call. The decrement is the last touch of io unless it returns the last call
 * of a closing io: then this call finalizes io for a closer outside the runtime, or hands
 * it to the waiting closer task (taking that task out is its final touch; the task was
 * referenced for this). */
static void io_leave(edo_io *io)
{
    uint32_t s = atomic_fetch_sub(&io->state, 1);
    if (!(s & EDO__IO_CLOSING) || EDO__IO_USERS(s) != 1)
        return;
    if (s & EDO__IO_ORPHANED) {
        io_finalize(io);
        return;
    }
    edo_task *t = atomic_exchange(&io->closer, NULL);
    if (t && t != EDO__IO_FOREIGN_CLOSER) {
        edo__wake(t);
        edo__task_unref(t);
    }
}

/* Wakes what waits on io (they see `closing` and return -EBADF) and cancels operations
 * in flight; the caller keeps io alive meanwhile. */
static void close_wake_all(edo_io *io)
{
    edo__slot_fire(&io->rd.waiter);
    edo__slot_fire(&io->wr.waiter);
#ifdef EDO_HAVE_URING
    if (io->flags & EDO__IO_OPS) {
        edo__uring_slot_close(&io->rd.op);
        edo__uring_slot_close(&io->wr.op);
    }
#endif
}

int edo_close(edo_io *io)
{
    if (!io)
        return 0;
    edo_task *self = edo__task_current();
    edo_task *who = self ? self : EDO__IO_FOREIGN_CLOSER;
    edo_task *none = NULL;
    /* The closer is published before CLOSING: a call that leaves a closing io finds it. */
    if (!atomic_compare_exchange_strong(&io->closer, &none, who))
        return -EBADF; /* closed already, or being closed */
    if (self)
        edo__task_ref(self); /* for the last call's wake, which may come after we look */
    atomic_store(&io->closing, true);
    if (!self) {
        /* Outside the runtime nothing can wait: the last call to leave io frees it. This
         * thread counts as a call while it wakes the others, so io stays until then. */
        atomic_fetch_add(&io->state, EDO__IO_CLOSING + 1);
        close_wake_all(io);
        uint32_t s = atomic_fetch_add(&io->state, EDO__IO_ORPHANED - 1);
        return EDO__IO_USERS(s) == 1 ? io_finalize(io) : 0;
    }
    uint32_t s = atomic_fetch_or(&io->state, EDO__IO_CLOSING);
    close_wake_all(io);
    if (EDO__IO_USERS(s) == 0) {
        /* Nothing was inside. A call that tried to enter since and left again may have
         * taken this task out already (and drops the reference itself). */
        if (atomic_exchange(&io->closer, NULL) == self)
            edo__task_unref(self);
        return io_finalize(io);
    }
    /* The last call to leave takes this task out of `closer` and wakes it. */
    while (atomic_load(&io->closer) == self)
        edo__suspend(edo__worker_current(), self); /* not cut short by an abort */
    return io_finalize(io);
}

static int64_t op_deadline(const edo__dir *d)
{
    return d->timeout_ms > 0 ? edo_now() + d->timeout_ms : EDO_NEVER;
}

/* May the direction be ready? Stores the edge counter to wait on if it is not. */
static inline bool maybe_ready(edo__dir *d, uint32_t *seen)
{
    *seen = atomic_load_explicit(&d->events, memory_order_acquire);
    return *seen != atomic_load_explicit(&d->idle, memory_order_relaxed) ||
           atomic_load_explicit(&d->hup, memory_order_relaxed);
}

/* Waits until the driver reports an edge after `seen`. */
static int dir_wait(edo_io *io, edo__dir *d, uint32_t seen, edo_wait_reason why, int64_t deadline)
{
    edo_task *self = edo__task_current();
    if (!self)
        return -EDO_ENOTASK;
    if (!(io->flags & EDO__IO_POLLABLE))
        return -EAGAIN;
    int rc = io_register(io);
    if (rc < 0)
        return rc;
    if (!edo__slot_arm(&d->waiter, self))
        return -EBUSY; /* another task already waits in this direction */
    /* Armed first, then checked: the driver bumps `events` before firing the slot. */
    if (atomic_load(&d->events) == seen && !atomic_load(&io->closing)) {
        edo__wait_note(self, io, io->fd, EDO__OP_IO);
        rc = edo__park(why, deadline);
    }
    edo__slot_disarm(&d->waiter, self);
    /* What arrived in time wins: an edge that came before the deadline, with the task
     * resuming only after it, is still tried (the caller's next wait, if the call would
     * block after all, fails at once). */
    if (rc == -ETIMEDOUT && atomic_load(&d->events) != seen)
        rc = 0;
    if (rc == 0 && atomic_load(&io->closing))
        rc = -EBADF;
    return rc;
}

/* ---- reading and writing ---------------------------------------------------------------- */

/* The deadline of edo_try_read and edo_try_write: one attempt, whatever the counters say
 * (a descriptor that never waited is not registered, so no edge would move them). */
#define NO_WAIT INT64_MIN

static ssize_t do_read(edo_io *io, void *buf, size_t len, edo_wait_reason why, int64_t deadline)
{
#ifdef EDO_HAVE_URING
    if ((io->flags & EDO__IO_OPS) && deadline != NO_WAIT)
        return op_read(io, buf, len, why, deadline);
#endif
    for (;;) {
        uint32_t seen;
        if (maybe_ready(&io->rd, &seen) || deadline == NO_WAIT) {
            ssize_t n = read(io->fd, buf, len);
            if (n >= 0) {
                /* A short read drained the socket: the next one waits for an edge. */
                if (n > 0 && (size_t)n < len && (io->flags & EDO__IO_POLLABLE))
                    atomic_store_explicit(&io->rd.idle, seen, memory_order_relaxed);
                edo__budget_spend();
                return n;
            }
            int e = edo__errno(); /* this thread's: the loop may have moved threads */
            if (e == EINTR)
                continue;
            if (e != EAGAIN)
                return -e;
            atomic_store_explicit(&io->rd.idle, seen, memory_order_relaxed);
        }
        if (deadline == NO_WAIT)
            return -EAGAIN;
        int rc = dir_wait(io, &io->rd, seen, why, deadline);
        if (rc < 0)
            return rc;
    }
}

/* One write or sendmsg; iov/iovcnt, or buf/len when iov is NULL. */
static ssize_t do_write(edo_io *io, const void *buf, size_t len, const struct iovec *iov,
                        int iovcnt, int64_t deadline)
{
#ifdef EDO_HAVE_URING
    if ((io->flags & EDO__IO_OPS) && deadline != NO_WAIT)
        return op_write(io, buf, len, iov, iovcnt, deadline);
#endif
    size_t want = len;
    if (iov) {
        want = 0;
        for (int i = 0; i < iovcnt; i++)
            want += iov[i].iov_len;
    }
    for (;;) {
        uint32_t seen;
        if (maybe_ready(&io->wr, &seen) || deadline == NO_WAIT) {
            ssize_t n;
            if (io->flags & EDO__IO_SOCKET) {
                /* MSG_NOSIGNAL: a peer that is gone is an error value, not a SIGPIPE. */
                if (iov) {
                    struct msghdr mh = { .msg_iov = (struct iovec *)iov,
                                         .msg_iovlen = (size_t)iovcnt };
                    n = sendmsg(io->fd, &mh, MSG_NOSIGNAL);
                } else {
                    n = send(io->fd, buf, len, MSG_NOSIGNAL);
                }
            } else {
                n = iov ? writev(io->fd, iov, iovcnt) : write(io->fd, buf, len);
            }
            if (n >= 0) {
                if ((size_t)n < want && (io->flags & EDO__IO_POLLABLE))
                    atomic_store_explicit(&io->wr.idle, seen, memory_order_relaxed);
                edo__budget_spend();
                return n;
            }
            int e = edo__errno(); /* this thread's: the loop may have moved threads */
            if (e == EINTR)
                continue;
            if (e == EPIPE && !(io->flags & EDO__IO_SOCKET))
                take_sigpipe();
            if (e != EAGAIN)
                return -e;
            atomic_store_explicit(&io->wr.idle, seen, memory_order_relaxed);
        }
        if (deadline == NO_WAIT)
            return -EAGAIN;
        int rc = dir_wait(io, &io->wr, seen, EDO_WAIT_WRITE, deadline);
        if (rc < 0)
            return rc;
    }
}

/* One read or write as a call of its own: inside io, with the direction's timeout
 * (wait) or a single attempt (!wait). */
static ssize_t read_call(edo_io *io, void *buf, size_t len, edo_wait_reason why, bool wait)
{
    int rc = io_enter(io);
    if (rc < 0)
        return rc;
    ssize_t n = do_read(io, buf, len, why, wait ? op_deadline(&io->rd) : NO_WAIT);
    io_leave(io);
    return n;
}

static ssize_t write_call(edo_io *io, const void *buf, size_t len, const struct iovec *iov,
                          int iovcnt, bool wait)
{
    int rc = io_enter(io);
    if (rc < 0)
        return rc;
    ssize_t n = do_write(io, buf, len, iov, iovcnt, wait ? op_deadline(&io->wr) : NO_WAIT);
    io_leave(io);
    return n;
}

ssize_t edo__read_for(edo_io *io, void *buf, size_t len, edo_wait_reason why)
{
    return read_call(io, buf, len, why, true);
}

ssize_t edo_try_read(edo_io *io, void *buf, size_t len)
{
    return read_call(io, buf, len, EDO_WAIT_READ, false);
}

ssize_t edo_try_write(edo_io *io, const void *buf, size_t len)
{
    return write_call(io, buf, len, NULL, 0, false);
}

ssize_t edo_read(edo_io *io, void *buf, size_t len)
{
    return edo__read_for(io, buf, len, EDO_WAIT_READ);
}

ssize_t edo_read_lent(edo_io *io, edo_buf *buf)
{
    if (!buf)
        return -EINVAL;
    memset(buf, 0, sizeof *buf);
    int rc = io_enter(io);
    if (rc < 0)
        return rc;
    int64_t deadline = op_deadline(&io->rd);
    ssize_t n;
#ifdef EDO_HAVE_URING
    if (io->flags & EDO__IO_OPS) {
        edo_task *self = edo__task_current();
        if (self)
            edo__wait_note(self, io, io->fd, EDO__OP_IO);
        do
            rc = (int)edo__uring_read_lent(&io->rd.op, io->fd, io->flags & EDO__IO_SOCKET, buf,
                                           EDO_WAIT_READ, deadline);
        while (!op_done(io, &rc));
        io_leave(io);
        return rc;
    }
#endif
    /* Readiness: wait with no buffer, take one only for the read itself. */
    for (;;) {
        uint32_t seen;
        if (maybe_ready(&io->rd, &seen)) {
            char *b = edo__lent_get(io->rt);
            if (!b) {
                n = -ENOMEM;
                break;
            }
            n = read(io->fd, b, io->rt->read_buf_size);
            if (n > 0) {
                if ((size_t)n < io->rt->read_buf_size && (io->flags & EDO__IO_POLLABLE))
                    atomic_store_explicit(&io->rd.idle, seen, memory_order_relaxed);
                *buf = (edo_buf){
                    .data = b, .len = (size_t)n, .owner_ = io->rt, .id_ = EDO__LENT_HEAP
                };
                edo__budget_spend();
                break;
            }
            int e = n < 0 ? edo__errno() : 0;
            edo__lent_put(io->rt, b);
            if (n == 0 || (e != EAGAIN && e != EINTR)) {
                n = n == 0 ? 0 : -e;
                break;
            }
            if (e == EAGAIN)
                atomic_store_explicit(&io->rd.idle, seen, memory_order_relaxed);
            else
                continue;
        }
        int wrc = dir_wait(io, &io->rd, seen, EDO_WAIT_READ, deadline);
        if (wrc < 0) {
            n = wrc;
            break;
        }
    }
    io_leave(io);
    return n;
}

int edo_read_exact(edo_io *io, void *buf, size_t len, size_t *done)
{
    size_t got = 0;
    int rc = io_enter(io);
    if (rc == 0) {
        int64_t deadline = op_deadline(&io->rd);
        while (got < len) {
            ssize_t n = do_read(io, (char *)buf + got, len - got, EDO_WAIT_READ, deadline);
            if (n <= 0) {
                rc = n == 0 ? -ENODATA : (int)n;
                break;
            }
            got += (size_t)n;
        }
        io_leave(io);
    }
    if (done)
        *done = got;
    return rc;
}

ssize_t edo_write(edo_io *io, const void *buf, size_t len)
{
    return write_call(io, buf, len, NULL, 0, true);
}

int edo_write_all(edo_io *io, const void *buf, size_t len, size_t *done)
{
    size_t sent = 0;
    int rc = io_enter(io);
    if (rc == 0) {
        int64_t deadline = op_deadline(&io->wr);
        while (sent < len) {
            ssize_t n = do_write(io, (const char *)buf + sent, len - sent, NULL, 0, deadline);
            if (n < 0) {
                rc = (int)n;
                break;
            }
            sent += (size_t)n;
        }
        io_leave(io);
    }
    if (done)
        *done = sent;
    return rc;
}

ssize_t edo_writev(edo_io *io, const struct iovec *iov, int iovcnt)
{
    if (iovcnt < 0 || (iovcnt && !iov))
        return -EINVAL;
    return write_call(io, NULL, 0, iov, iovcnt, true);
}

int edo_io_wait(edo_io *io, int what)
{
    if (what != EDO_READ && what != EDO_WRITE)
        return -EINVAL;
    int rc = io_enter(io);
    if (rc < 0)
        return rc;
    edo__dir *d = what == EDO_READ ? &io->rd : &io->wr;
    int64_t deadline = op_deadline(d);
    for (;;) {
        /* The counter first, then a level check: an edge after the check moves the counter,
         * so waiting on the value read before it can lose nothing. */
        uint32_t seen = atomic_load(&d->events);
        struct pollfd p = { .fd = io->fd, .events = what == EDO_READ ? POLLIN : POLLOUT };
        if (!(io->flags & EDO__IO_POLLABLE) || poll(&p, 1, 0) != 0)
            break;
        rc = dir_wait(io, d, seen, what == EDO_READ ? EDO_WAIT_READ : EDO_WAIT_WRITE, deadline);
        if (rc < 0)
            break;
    }
    io_leave(io);
    return rc;
}

/* ---- edo_select's read and write cases ------------------------------------------------ */

static edo__dir *sel_dir(edo_io *io, int what)
{
    return what == EDO_READ ? &io->rd : &io->wr;
}

/* Whether the direction is ready now: a level check, as edo_io_wait's, so that a case never
 * fires for a stale edge. Closing: -EBADF. */
int edo__io_sel_ready(edo_io *io, int what, edo_task *self)
{
    if (atomic_load(&io->closing))
        return -EBADF;
    edo__dir *d = sel_dir(io, what);
    if (!(io->flags & EDO__IO_POLLABLE) || atomic_load(&d->hup))
        return 1;
    /* An edge fired the slot (and emptied it): arm it again before looking. */
    if (self && atomic_load(&d->waiter) != self && !edo__slot_arm(&d->waiter, self))
        return -EBUSY;
    /* Registered and no edge since a call found it not ready: still not ready, and no
     * system call needed to say so. */
    uint32_t seen;
    if (atomic_load(&io->registered) && !maybe_ready(d, &seen))
        return 0;
    struct pollfd p = { .fd = io->fd, .events = what == EDO_READ ? POLLIN : POLLOUT };
    return poll(&p, 1, 0) != 0;
}

int edo__io_sel_arm(edo_io *io, int what, edo_task *self)
{
    int rc = io_enter(io);
    if (rc < 0)
        return rc;
    if (io->flags & EDO__IO_POLLABLE) {
        rc = io_register(io);
        if (rc == 0 && !edo__slot_arm(&sel_dir(io, what)->waiter, self))
            rc = -EBUSY; /* another task already waits in this direction */
        if (rc < 0) {
            io_leave(io);
            return rc;
        }
    }
    /* Armed first, then checked: an edge after the check fires the slot. */
    rc = edo__io_sel_ready(io, what, NULL);
    if (rc < 0)
        edo__io_sel_disarm(io, what, self);
    return rc;
}

void edo__io_sel_disarm(edo_io *io, int what, edo_task *self)
{
    if (io->flags & EDO__IO_POLLABLE)
        edo__slot_disarm(&sel_dir(io, what)->waiter, self);
    io_leave(io);
}

int edo_shutdown(edo_io *io)
{
    if (!io)
        return -EINVAL;
#ifdef EDO_HAVE_URING
    if ((io->flags & EDO__IO_OPS) && edo__task_current()) {
        op_args a = { .fd = io->fd };
        return edo__uring_op_final(prep_shutdown, &a);
    }
#endif
    return shutdown(io->fd, SHUT_WR) < 0 ? -errno : 0;
}

int edo_tcp_nodelay(edo_io *io, bool on)
{
    int v = on;
    if (!io)
        return -EINVAL;
    return setsockopt(io->fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) < 0 ? -errno : 0;
}

/* ---- addresses -------------------------------------------------------------------------- */

int edo_parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *sslen)
{
    if (!addr || !ss || !sslen)
        return -EINVAL;
    memset(ss, 0, sizeof *ss);
    char host[64];
    const char *port;
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (!end || end[1] != ':' || (size_t)(end - addr - 1) >= sizeof host)
            return -EINVAL;
        memcpy(host, addr + 1, (size_t)(end - addr - 1));
        host[end - addr - 1] = 0;
        port = end + 2;
    } else {
        const char *colon = strrchr(addr, ':');
        if (!colon || (size_t)(colon - addr) >= sizeof host)
            return -EINVAL;
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = 0;
        port = colon + 1;
    }
    long p = 0;
    if (!*port || strlen(port) > 5)
        return -EINVAL;
    for (const char *c = port; *c; c++) {
        if (*c < '0' || *c > '9')
            return -EINVAL;
        p = p * 10 + (*c - '0');
    }
    if (p > 65535)
        return -EINVAL;
    if (addr[0] == '[') {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)p);
        if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
            return -EINVAL;
        *sslen = sizeof *s6;
        return 0;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)p);
    if (!host[0] || !strcmp(host, "*"))
        s4->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (!strcmp(host, "localhost"))
        s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
        return -EINVAL; /* names need a resolver, which runs on the blocking pool */
    *sslen = sizeof *s4;
    return 0;
}

static int format_addr(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN];
    int n;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
        n = snprintf(buf, len, "%s:%u", host, ntohs(s4->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
        n = snprintf(buf, len, "[%s]:%u", host, ntohs(s6->sin6_port));
    } else {
        return -EAFNOSUPPORT;
    }
    return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

/* edo_local_addr and edo_peer_addr: getsockname or getpeername, formatted. */
static int sock_addr(const edo_io *io, char *buf, size_t len,
                     int (*get)(int, struct sockaddr *, socklen_t *))
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (!io)
        return -EINVAL;
    if (get(io->fd, (struct sockaddr *)&ss, &sl) < 0)
        return -errno;
    return format_addr(&ss, buf, len);
}

int edo_local_addr(const edo_io *io, char *buf, size_t len)
{
    return sock_addr(io, buf, len, getsockname);
}

int edo_peer_addr(const edo_io *io, char *buf, size_t len)
{
    return sock_addr(io, buf, len, getpeername);
}

/* ---- TCP -------------------------------------------------------------------------------- */

/* The start of edo_tcp_listen and edo_tcp_connect: *out cleared, addr parsed into ss, and
 * a non-blocking TCP socket of its family, from a task. The socket, or -errno. */
static int tcp_socket(edo_io **out, const char *addr, struct sockaddr_storage *ss, socklen_t *sl)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    int rc = edo_parse_addr(addr, ss, sl);
    if (rc < 0)
        return rc;
    if (!edo__task_current())
        return -EDO_ENOTASK;
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    return fd >= 0 ? fd : -errno;
}

int edo_tcp_listen_with(edo_io **out, const char *addr, const edo_listen_opts *opts)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int rc, fd = tcp_socket(out, addr, &ss, &sl);
    if (fd < 0)
        return fd;
    int one = 1;
    int backlog = opts && opts->backlog > 0 ? opts->backlog : SOMAXCONN;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        goto fail;
    if (opts && opts->reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        goto fail;
    if (ss.ss_family == AF_INET6 && opts && opts->v6only &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
        goto fail;
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, backlog) < 0)
        goto fail;
    rc = edo__io_new(out, fd, EDO__IO_POLLABLE | EDO__IO_SOCKET);
    if (rc < 0)
        close(fd);
    return rc;
fail:
    rc = -errno;
    close(fd);
    return rc;
}

int edo_tcp_listen(edo_io **out, const char *addr, int backlog)
{
    edo_listen_opts o = { .backlog = backlog };
    return edo_tcp_listen_with(out, addr, &o);
}

#define BACKOFF_MIN_MS 10
#define BACKOFF_MAX_MS 1000

/* One accept: a new descriptor or -errno (-EAGAIN: none waiting, readiness backend). The
 * io_uring backend waits for a connection as an operation, with the deadline. */
static int accept_one(edo_io *lis, int64_t deadline)
{
#ifdef EDO_HAVE_URING
    if (lis->flags & EDO__IO_OPS) {
        op_args a = { .fd = lis->fd };
        return op_run(lis, &lis->rd, prep_accept, &a, EDO_WAIT_READ, deadline);
    }
#endif
    int fd = accept4(lis->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    return fd >= 0 ? fd : -edo__errno();
}

int edo_tcp_accept(edo_io **out, edo_io *lis)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    int rc = io_enter(lis);
    if (rc < 0)
        return rc;
    int64_t deadline = op_deadline(&lis->rd);
    bool ops = lis->flags & EDO__IO_OPS;
    for (;;) {
        uint32_t seen = 0;
        if (ops || maybe_ready(&lis->rd, &seen)) {
            int fd = accept_one(lis, deadline);
            if (fd >= 0) {
                lis->accept_backoff = 0;
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                rc = edo__io_new(out, fd, EDO__IO_POLLABLE | EDO__IO_SOCKET);
                if (rc < 0)
                    close(fd);
                edo__budget_spend();
                break;
            }
            int err = -fd;
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
                /* The connection waits in the backlog and the listener stays readable:
                 * sleep before reporting, so that a loop that retries cannot spin. */
                int64_t b = lis->accept_backoff;
                b = b ? (b * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b * 2) : BACKOFF_MIN_MS;
                lis->accept_backoff = b;
                rc = edo_sleep(b);
                if (rc == 0)
                    rc = -err;
                break;
            }
            if (err == EAGAIN && !ops) {
                atomic_store_explicit(&lis->rd.idle, seen, memory_order_relaxed);
            } else if (err != EINTR && err != ECONNABORTED && err != EPROTO && err != ENETDOWN &&
                       err != ENOPROTOOPT && err != EHOSTDOWN && err != ENONET &&
                       err != EHOSTUNREACH && err != ENETUNREACH) {
                /* Those are the new connection's problems (accept(2)); the rest are ours. */
                rc = -err;
                break;
            } else {
                continue;
            }
        }
        rc = dir_wait(lis, &lis->rd, seen, EDO_WAIT_READ, deadline);
        if (rc < 0)
            break;
    }
    io_leave(lis);
    return rc;
}

int edo_tcp_connect(edo_io **out, const char *addr, int64_t timeout_ms)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int rc, fd = tcp_socket(out, addr, &ss, &sl);
    if (fd < 0)
        return fd;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int64_t deadline = timeout_ms > 0 ? edo_now() + timeout_ms : EDO_NEVER;
#ifdef EDO_HAVE_URING
    if (edo__uring_on()) {
        edo_io *uio;
        if ((rc = edo__io_new(&uio, fd, EDO__IO_POLLABLE | EDO__IO_SOCKET)) < 0) {
            close(fd);
            return rc;
        }
        op_args a = { .fd = fd, .sa = (const struct sockaddr *)&ss, .salen = sl };
        rc = op_run(uio, &uio->wr, prep_connect, &a, EDO_WAIT_WRITE, deadline);
        if (rc < 0) {
            edo_close(uio);
            return rc;
        }
        *out = uio;
        return 0;
    }
#endif
    /* Registered after connect(2): an unconnected socket polls as hung up. */
    bool pending = false;
    if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
        if (errno != EINPROGRESS) {
            rc = -errno;
            close(fd);
            return rc;
        }
        pending = true;
    }
    edo_io *io;
    rc = edo__io_new(&io, fd, EDO__IO_POLLABLE | EDO__IO_SOCKET);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    while (pending) {
        uint32_t seen = atomic_load(&io->wr.events);
        int err = 0;
        socklen_t el = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
            err = edo__errno();
        if (err) {
            rc = -err;
            break;
        }
        struct sockaddr_storage peer;
        socklen_t pl = sizeof peer;
        if (getpeername(fd, (struct sockaddr *)&peer, &pl) == 0)
            break; /* connected */
        if ((err = edo__errno()) != ENOTCONN) {
            rc = -err;
            break;
        }
        rc = dir_wait(io, &io->wr, seen, EDO_WAIT_WRITE, deadline);
        if (rc < 0)
            break;
    }
    if (rc < 0) {
        edo_close(io);
        return rc;
    }
    *out = io;
    return 0;
}
