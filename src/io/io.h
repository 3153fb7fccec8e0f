/*
 * A descriptor driven by the runtime, and the readiness protocol between the driver and
 * the tasks that read and write it.
 *
 * Each direction has an event counter that the driver bumps on every readiness edge and a
 * waiter slot. A task tries the system call first; on EAGAIN it remembers the counter value
 * it saw before the call and waits until the counter moves. Because the waiter checks the
 * counter again after arming its slot (and the driver bumps the counter before firing the
 * slot), an edge can never fall between the failed call and the wait. A short read or write
 * also counts as "not ready" (the kernel had no more), which saves the EAGAIN round trip.
 */
#ifndef EDO_IO_IO_H
#define EDO_IO_IO_H

#include "core/runtime.h"
#include "io/uring.h"

enum {
    EDO__IO_POLLABLE = 1,  /* registered with the driver; otherwise calls block directly */
    EDO__IO_SOCKET = 2,    /* use send/recv flags (MSG_NOSIGNAL) */
    EDO__IO_READINESS = 4, /* io_uring backend too: wait for readiness, never submit reads
                            * (a signalfd, whose reads must come from a worker thread) */
    EDO__IO_OPS = 8,       /* io_uring backend: reads and writes are operations */
};

typedef struct edo__dir {
    _Atomic uint32_t events; /* readiness edges seen by the driver */
    _Atomic uint32_t idle;   /* `events` value at which the descriptor was found not ready */
    _Atomic bool hup;        /* hang-up or error seen: calls no longer wait, they fail */
    edo__slot waiter;
    int64_t timeout_ms; /* per-call timeout, 0: none */
#ifdef EDO_HAVE_URING
    edo__uring_slot op; /* io_uring backend: the operation in flight in this direction */
#endif
} edo__dir;

struct edo_io {
    int fd;
    int flags;
    edo_runtime *rt;
    edo__dir rd, wr;
    _Atomic bool registered; /* with the driver: at the first wait (net.c's io_register) */
    _Atomic bool closing;    /* edo_close has begun: calls fail with -EBADF */
    _Atomic bool finalized;  /* descriptor closed and memory freed (or about to be) */
    /* Calls inside (low bits) and EDO__IO_CLOSING / EDO__IO_ORPHANED, in one word so that
     * whoever leaves last knows it from the value its own decrement returned (net.c). */
    _Atomic uint32_t state;
    /* Who closes it: a task waiting for the calls inside to leave (the last one to leave
     * takes it out, its final touch of io, and wakes it), or EDO__IO_FOREIGN_CLOSER. */
    _Atomic(edo_task *) closer;
    int64_t accept_backoff; /* ms, for a listener short of descriptors */
    edo_io *retire_next;    /* on the runtime's retired list (epoll.c) */
};

#define EDO__IO_CLOSING 0x80000000u
#define EDO__IO_ORPHANED 0x40000000u /* closed from outside the runtime: the last call frees */
#define EDO__IO_USERS(s) ((s)&0x3fffffffu)
#define EDO__IO_FOREIGN_CLOSER ((edo_task *)1)

/* edo_buf.id_ of an allocated lent buffer (not one of a ring's provided buffers). */
#define EDO__LENT_HEAP UINT32_MAX

/* Wraps fd (already non-blocking) for the calling task's runtime; registers it with the
 * driver when flags has EDO__IO_POLLABLE. On failure fd is left open. */
int edo__io_new(edo_io **out, int fd, int flags);

/* edo_read, with what the task is shown waiting for. */
ssize_t edo__read_for(edo_io *io, void *buf, size_t len, edo_wait_reason why);

/* edo_select's read and write cases (what: EDO_READ or EDO_WRITE). Arm enters io as a
 * user and arms the direction's waiter slot for self: returns 1 if ready now, 0 if not
 * (the slot fires at the next edge), or -errno (-EBADF closing, -EBUSY: another task waits
 * there; nothing is left armed then). Ready is the level check (self: re-arms the slot
 * first if an edge emptied it; NULL: just looks). Disarm undoes arm. */
int edo__io_sel_arm(edo_io *io, int what, edo_task *self);
int edo__io_sel_ready(edo_io *io, int what, edo_task *self);
void edo__io_sel_disarm(edo_io *io, int what, edo_task *self);

/* Closes the signal descriptor of a runtime that is shutting down (src/io/signal.c). */
void edo__signal_fini(edo_runtime *rt);

/* ---- the reactor (src/io/epoll.c) --------------------------------------------------- */

/* The runtime's I/O state (rt->driver_data) under either driver: one epoll for the
 * descriptors that wait for readiness (under io_uring, worker 0's ring watches it). Only the holder
 * of `busy` polls the epoll, so an io retired (deregistered) before a poll starts can be freed
 * then. */
typedef struct edo__reactor {
    int epfd;
    int evfd; /* wakes the thread sleeping in epoll_wait */
    _Atomic int busy;
    _Atomic bool again; /* edo__epoll_drain: the holder is to look once more */
    _Atomic(edo_io *) retired;
    _Atomic uint32_t nretired;
} edo__reactor;

static inline edo__reactor *edo__reactor_of(edo_runtime *rt)
{
    return rt->driver_data;
}

/* Sets up and closes rt's reactor; fini also frees every retired io (nothing polls any
 * more). */
int edo__epoll_init(edo_runtime *rt);
void edo__epoll_fini(edo_runtime *rt);
/* Takes the right to poll the epoll; false if another thread has it. */
bool edo__epoll_acquire(edo_runtime *rt);
void edo__epoll_release(edo_runtime *rt);
/* With the right to poll: waits for events at most timeout_ms (-1: no limit) and wakes
 * the tasks they concern. Returns the number of events. */
int edo__epoll_poll(edo_runtime *rt, int timeout_ms);
/* Takes every ready event, without waiting. If another thread has the right to poll and
 * is draining too, that thread drains once more after it lets go. Returns false if it
 * could not take the right to poll itself. */
bool edo__epoll_drain(edo_runtime *rt);
/* Wakes the thread sleeping in edo__epoll_poll; any thread. */
void edo__epoll_unpark(edo_runtime *rt);

/* Registers io with the runtime's epoll. Returns 0 or -errno; -EPERM: cannot be polled. */
int edo__epoll_add(edo_runtime *rt, edo_io *io);
void edo__epoll_del(edo_runtime *rt, edo_io *io);
/* Frees io's memory once no poll can still name it (io is deregistered). */
void edo__io_retire(edo_runtime *rt, edo_io *io);

/* What every driver does at a runtime's end: closes its signal descriptor. */
void edo__io_shutdown(edo_runtime *rt);
/* What every driver does at a worker's end: frees its lent buffer cache. */
void edo__io_worker_fini(edo__worker *w);

/* The drivers (driver.h): epoll alone, and io_uring with the epoll beside it. */
extern const edo__driver edo__epoll_driver;
#ifdef EDO_HAVE_URING
extern const edo__driver edo__uring_driver;
/* Finds io_uring setup flags the kernel takes for a runtime (threaded or not) and checks
 * the opcodes the driver uses. Returns 0, or -errno with *why saying what failed. */
int edo__uring_probe(bool threaded, unsigned *flags, const char **why);
#endif

/* ---- lent read buffers (src/io/buf.c) ----------------------------------------------------- */
/* A buffer of rt->read_buf_size bytes from the calling worker's cache, else allocated. */
char *edo__lent_get(edo_runtime *rt);
/* Back to the calling worker's cache if it is one of rt's and has room, else freed. */
void edo__lent_put(edo_runtime *rt, char *buf);
void edo__lent_cache_free(edo__worker *w);

/* Installs the child handler of fork that gives a child the program's signals back. */
void edo__signal_init(void);

#endif
