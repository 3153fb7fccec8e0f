/*
 * The seam between the scheduler and an I/O driver: all that src/core knows of epoll,
 * io_uring, or any driver to come.
 *
 * A runtime has one driver, chosen when it is made (src/io/backend.c) and fixed for its
 * life. The driver keeps its state behind rt->driver_data (the runtime's) and
 * w->driver_data (each worker's); nothing in src/core looks inside either.
 *
 * Who calls what:
 *  - init, fini, worker_init, worker_fini, shutdown: the thread that makes or frees the
 *    runtime, before its workers start or after they stop.
 *  - acquire, release, poll, pending: a worker, for itself (w is the calling worker).
 *  - unpark: any thread, to wake w where it sleeps in poll.
 *  - rescue, drain: the monitor thread, for a worker stuck in one task and for a runtime
 *    whose workers have not polled for a while.
 */
#ifndef EDO_CORE_DRIVER_H
#define EDO_CORE_DRIVER_H

#include <stdbool.h>

typedef struct edo_runtime edo_runtime;
typedef struct edo__worker edo__worker;

typedef struct edo__driver {
    const char *name;
    /* Sets up rt->driver_data. Returns 0 or -errno; fini is called after a failure too, and
     * copes with what was not set up. */
    int (*init)(edo_runtime *rt);
    void (*fini)(edo_runtime *rt);
    /* Per worker, after init; worker_fini is called for every worker, set up or not. */
    int (*worker_init)(edo__worker *w);
    void (*worker_fini)(edo__worker *w);
    /* The runtime is being freed: its tasks are done and its workers stopped. Closes what
     * the driver opened on the runtime's behalf and frees what it kept for later. */
    void (*shutdown)(edo_runtime *rt);

    /* Takes the right for w to poll: false when another thread has it (w then sleeps on
     * its futex word, and the holder's poll serves it). release gives it back. */
    bool (*acquire)(edo__worker *w);
    void (*release)(edo__worker *w);
    /* With the right: submits what w's tasks queued, waits at most timeout_ms for events
     * (0: no wait, -1: no limit), and wakes the tasks they concern. Returns their count. */
    int (*poll)(edo__worker *w, int timeout_ms);
    /* Whether w's tasks queued work that only a poll submits: w polls before it looks
     * elsewhere for work or sleeps. */
    bool (*pending)(const edo__worker *w);
    /* Wakes w from poll; any thread. A wake-up for a w that is not in poll is kept for
     * its next one. */
    void (*unpark)(edo__worker *w);

    /* w has run one task for a whole monitor interval: submit and complete what its tasks
     * queued, unless w is at it itself. */
    void (*rescue)(edo__worker *w);
    /* Nobody has polled for a while: take every ready event without waiting. Returns
     * false when another thread had the right to poll (it then takes them). */
    bool (*drain)(edo_runtime *rt);
} edo__driver;

#endif
