/*
 * The io_uring driver (src/io/uring.c), for the calls that submit operations instead of
 * waiting for readiness.
 *
 * Every worker has its own ring. A task that makes a call fills a submission entry on the
 * ring of the worker running it and parks; the worker submits what its tasks queued once
 * per scheduler turn, together with its wait for completions, and a completion wakes its
 * task. The operation's state lives on the task's stack: the task does not return before
 * the kernel is done with it. (Why the rings are not single-issuer: uring.c's probe.)
 */
#ifndef EDO_IO_URING_H
#define EDO_IO_URING_H

#include "core/runtime.h"

/* Whether the calling task's runtime uses io_uring. Always false in a build without
 * liburing. */
bool edo__uring_on(void);

#ifdef EDO_HAVE_URING
#include <liburing.h>

/* Fills sqe for one operation (liburing's io_uring_prep_* and sqe flags; never
 * user_data, which the driver owns). */
typedef void (*edo__uring_prep_fn)(struct io_uring_sqe *sqe, void *arg);

/* Runs one operation on the ring of the worker running the calling task and returns the
 * completion's res (>= 0, or -errno). Past deadline (EDO_NEVER: none; the task's deadline
 * scope also applies) or when the task is aborted, the operation is cancelled and the
 * call still waits until the kernel has finished with it, so the buffers prep named stay
 * the caller's concern only until this returns; it then returns -ETIMEDOUT or
 * -ECANCELED if the cancel won, else the operation's own result (data read or written is
 * never reported lost). Only from a task of a runtime where edo__uring_on() is true. */
int edo__uring_op(edo__uring_prep_fn prep, void *arg, edo_wait_reason why, int64_t deadline);

/* edo__uring_op for an operation that must run to its end whatever happens (closing a
 * descriptor): no deadline, and an abort does not cut it short. */
int edo__uring_op_final(edo__uring_prep_fn prep, void *arg);

/* An operation in flight (on its task's stack). */
typedef struct edo__uop edo__uop;

/* Where an object shows its operation in flight in one direction, so that closing the
 * object can cancel it from any thread (a ring's operations can only be cancelled
 * through that ring: the request goes to the worker that owns it). */
typedef struct edo__uring_slot {
    edo__spin lock;
    bool closed; /* the object is closing: no operation starts any more */
    edo__uop *op;
} edo__uring_slot;

/* edo__uring_op with the operation shown in slot while it is in flight: -EBUSY if slot
 * shows another one, -EBADF if it is closed. -ECANCELED while the task is not aborted:
 * edo__uring_slot_close cancelled it (the object is closing). */
int edo__uring_op_in(edo__uring_slot *slot, edo__uring_prep_fn prep, void *arg, edo_wait_reason why,
                     int64_t deadline);

/* edo__uring_op_in for a read into a buffer the runtime lends: one of the calling
 * worker's provided buffers, picked by the kernel when data arrives, or an allocated one
 * when they are all lent out. Fills *out when it returns > 0. */
ssize_t edo__uring_read_lent(edo__uring_slot *slot, int fd, bool socket, edo_buf *out,
                             edo_wait_reason why, int64_t deadline);

/* Gives provided buffer id back to its ring (ring: edo_buf.owner_); any thread. */
void edo__ring_buf_return(void *ring, uint32_t id);

/* Closes slot: cancels the operation it shows, if any (its task sees -ECANCELED), and
 * refuses later ones. Any thread. */
void edo__uring_slot_close(edo__uring_slot *slot);
#endif

#endif
