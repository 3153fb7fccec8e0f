/*
 * Backtraces (backtrace.c): walking a task's stack and naming its frames.
 *
 * Two ways to take a stack, both with libunwind: edo__bt_of_ctx walks the stack of a
 * suspended context from the registers its switch saved (the caller keeps the task from
 * resuming meanwhile: edo__task_peek); edo__bt_here walks the calling thread's own stack,
 * async-signal-safely, from inside a signal handler (probe.c: the stack of a task caught
 * running). edo__bt_format then names the frames, outside any handler: with libdw (function
 * names, static ones included, and file:line), else with libunwind's names alone.
 *
 * What it owns: the process's symbol tables (libdw's view of the loaded modules) and a
 * stack to read them on, behind one lock of its own. edo__bt_of_ctx and edo__bt_format
 * run only inside edo__bt_call, which holds that lock and, when the caller is a task,
 * moves to that stack: libdw needs more than a task's stack has (its line tables are
 * read with large frames). Any thread may call edo__bt_call; edo__bt_here any thread or
 * a signal handler, on the stack it is to walk (never inside edo__bt_call, whose stack
 * is not the caller's).
 */
#ifndef EDO_CORE_BACKTRACE_H
#define EDO_CORE_BACKTRACE_H

#include "core/coro.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EDO__BT_MAX 48

/* A taken stack: instruction addresses, innermost first. */
typedef struct edo__bt {
    int n;       /* frames in pc */
    bool exact0; /* pc[0] is the interrupted instruction itself, not a return address */
    uintptr_t pc[EDO__BT_MAX];
} edo__bt;

/* Whether this build can take stacks (it has libunwind). */
bool edo__bt_available(void);

/* The symbol tables, once read, are kept while some runtime is alive (each holds them,
 * from edo__runtime_new to its end): they hold a descriptor for each module, which a
 * program that has freed its runtimes would not expect to find open. */
void edo__bt_retain(void);
void edo__bt_release(void);

/* Runs fn(arg) with the lock of the symbol tables held, on a stack of 1 MiB or more (a
 * stack of backtrace.c's own when the caller is a task). */
void edo__bt_call(void (*fn)(void *arg), void *arg);

/* Inside edo__bt_call: walks the stack of ctx, which is suspended and must stay so until
 * this returns. Returns 0, or -ENOSYS where it cannot be done (no libunwind; a CPU whose saved
 * context it cannot read). */
int edo__bt_of_ctx(const edo__ctx *ctx, edo__bt *bt);

/* Walks the calling thread's stack: from a signal handler, pc is the interrupted
 * instruction (its context's), and the frames kept are the interrupted code's, from pc
 * on; with pc 0, or where no frame stands at pc (a sanitizer that runs handlers late, from
 * its own code), those below the caller of this function. Async-signal-safe. Returns 0 or
 * -ENOSYS. */
int edo__bt_here(edo__bt *bt, uintptr_t pc);

/* Inside edo__bt_call: writes bt as text into buf, one frame a line: "  #0 fn (file.c:12)"
 * (file:line where debug information has it; "  #3 0x4011d6" where nothing names the
 * address). Left out at the top: the frames of the context switch itself
 * (edo__coro_switch, edo__switch_out) of a suspended task, and a sanitizer's own that ran
 * a delayed handler. Returns the length of the whole text, as snprintf. */
size_t edo__bt_format(const edo__bt *bt, char *buf, size_t len);

/* Why a build has no backtraces, for reports: "edo was built without libunwind". */
#define EDO__BT_NONE "edo was built without libunwind"

#endif
