/*
 * The dump signal (dumpsig.c): a signal (SIGQUIT unless the runtime was told otherwise)
 * that prints a dump of the runtime's tasks to stderr (edo_dump_tasks).
 *
 * A runtime takes its signal when it is made, only if the signal's disposition is the
 * default then (or already edo's, taken by another runtime: every runtime that has it
 * dumps), and gives it back when it is freed (the last one restores the old disposition,
 * if the signal is still edo's). The handler only sets rt->dump_asked and wakes whoever
 * prints: the monitor of a threaded runtime (a bit of rt->monitor_word), the worker of a
 * current-thread one (at its next pass through the scheduler loop's poll). A child of
 * fork gets the old dispositions back; one that arrives where no runtime has it (taken
 * back meanwhile) gets the default action.
 *
 * edo__dumpsig_choose and _take: edo__runtime_new; edo__dumpsig_fini: edo_runtime_free,
 * after the driver's shutdown has given back the signals tasks took (edo_signal_take
 * saved edo's handler if it took the dump signal: it must be back before edo gives it up);
 * edo__dump_if_asked: the monitor, or the lone worker in its scheduler loop.
 */
#ifndef EDO_CORE_DUMPSIG_H
#define EDO_CORE_DUMPSIG_H

#include "edo.h"

/* The signal opts or EDO_DUMP_SIGNAL name, into *sig (0: none). Returns 0, or -EINVAL for
 * a signal that cannot be one (a bad name, SIGKILL, the signals of faults, SIGPIPE, SIGURG,
 * which edo's probes use). */
int edo__dumpsig_choose(const edo_runtime_opts *opts, int *sig);
/* Takes sig for rt if its disposition allows (sets rt->dump_signal then), once rt is
 * ready to be woken. */
void edo__dumpsig_take(edo_runtime *rt, int sig);
void edo__dumpsig_fini(edo_runtime *rt);

/* Prints the dump to stderr if the signal came since the last call. */
void edo__dump_if_asked(edo_runtime *rt);

#endif
