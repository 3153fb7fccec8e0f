/*
 * lint.h - what looks wrong in the program the console watches, from the model's
 * snapshots: blocking tasks, lost wakes (a deadlock of the whole program, a wait on a
 * resource or a task that is gone), self-waking busy loops, a task idle far longer than
 * its peers, a worker falling behind, a wait queue that keeps growing. Each warning is a
 * kind, a subject and a one-line reason. Computed by the warnings view and report.c; the
 * model is only read.
 */
#ifndef EDO_CONSOLE_LINT_H
#define EDO_CONSOLE_LINT_H

#include "model.h"

typedef struct cl_warning {
    const char *kind;  /* "deadlock", "lost-wake", "blocking", "long-run", "busy-loop",
                        * "worker-behind", "waitq-growing", "idle-outlier" */
    uint64_t task;     /* the task it is about, 0: none */
    int64_t worker;    /* the worker, -1: none */
    char resource[24]; /* the resource's address, "": none */
    char subject[96];  /* "task 6 (hash)", "worker 1", "mutex 0x55d0c300", "7 tasks" */
    char reason[192];
    const char *stack; /* a blocking report's stack (the model's; valid until its next
                        * snapshot), NULL: none */
} cl_warning;

/* At most this many warnings are listed (the rest are counted in *more). */
#define CL_MAX 1000

/* Fills *out (malloc'd, free it) with the warnings for m's newest snapshot, worst kinds
 * first. Returns how many, or 0 (and *out NULL) when there are none or no memory; *more
 * gets how many were left out for CL_MAX. */
size_t cl_lint(const cm_model *m, cl_warning **out, size_t *more);

#endif
