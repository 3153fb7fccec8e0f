/*
 * Probes (probe.c): the monitor's question to a worker that has run one task for long, and
 * the answer, given on the worker's own thread by a signal handler (SIGURG, as Go's
 * preemption uses: its default action is to do nothing, so a stray one is harmless).
 *
 * The handler takes the stack of the interrupted task (backtrace.h) and the task in the
 * worker's LIFO slot (sched.h's edo__lifo_take), which no other thread may touch, so that
 * the monitor can give it to the other workers. It does that only for the run the monitor
 * asked about: if the worker has moved on, the answer says so and carries nothing.
 *
 * Protocol, on probe->state: the monitor fills in the question and stores ASKED, then
 * signals the thread; the handler moves ASKED -> BUSY by CAS, answers, stores DONE
 * (release) and wakes the futex; the monitor reads the answer after it sees DONE
 * (acquire) and stores IDLE. A monitor that stops waiting takes the question back by CAS
 * ASKED -> IDLE, so that a handler that runs late (a sanitizer delays handlers) finds
 * nothing to answer; if the handler already has it (BUSY), the monitor waits for DONE,
 * which comes at once. So the answer is never written while it is read.
 *
 * SIGURG is taken only if nobody has it (its disposition is the default or ignore when
 * the first probe needs it), is checked to be still edo's before every probe (a program
 * that installs a handler of its own later, or edo_signal_take(SIGURG), gets it: probes
 * then stop), and is given back when the last runtime that took it is freed.
 *
 * edo__probe_* are the monitor's (one thread per runtime); the handler runs on workers.
 */
#ifndef EDO_CORE_PROBE_H
#define EDO_CORE_PROBE_H

#include "core/backtrace.h"
#include "edo.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct edo__worker edo__worker;

enum { EDO__PROBE_IDLE, EDO__PROBE_ASKED, EDO__PROBE_BUSY, EDO__PROBE_DONE };

typedef struct edo__probe {
    _Atomic uint32_t state;
    /* the question (written by the monitor before ASKED) */
    uint64_t run;    /* w->run_started of the run asked about */
    bool want_stack; /* take the stack too (else only the LIFO slot) */
    /* the answer (written by the handler while BUSY) */
    bool same_run; /* the worker was still in that run */
    int bt_rc;     /* 0: bt holds the stack; -ENOSYS: no unwinder */
    edo__bt bt;
    edo_task *handed; /* what the LIFO slot held, taken out of it (or NULL) */
} edo__probe;

/* Why probes cannot be made, or NULL if they can: makes SIGURG edo's at the first call of
 * a runtime (*taken is then set; give it back with edo__probe_release). */
const char *edo__probe_ready(bool *taken);
void edo__probe_release(void);

/* Asks worker w (a thread of a threaded runtime, now running the run `run`) and waits
 * at most wait_ms for the answer. Returns 0 with the answer in p (p->handed may be set),
 * or -ETIMEDOUT (no answer: the question is taken back), -ESRCH (the signal could not be
 * sent). */
int edo__probe_ask(edo__worker *w, edo__probe *p, uint64_t run, bool want_stack, int wait_ms);

/* The monitor is stopping: a question still out is taken back. Returns the task an answer
 * that came meanwhile took from the LIFO slot (the caller schedules it), or NULL. */
edo_task *edo__probe_cancel(edo__probe *p);

#endif
