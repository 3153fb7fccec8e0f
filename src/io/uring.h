/*
 * The io_uring driver (src/io/uring.c), for the calls that submit operations instead of
 * waiting for readiness.
 *
 * Every worker has its own ring, created on its own thread (so the kernel can take the
 * ring as single-issuer and run completions only when the worker asks: DEFER_TASKRUN). A
 * task that makes a call fills a submission entry on the ring of the worker running it
 * and parks; the worker submits what its tasks queued once per scheduler turn, together
 * with its wait for completions, and a completion wakes its task. The operation's state
 * lives on the task's stack: the task does not return before the kernel is done with it.
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
#endif

#endif
