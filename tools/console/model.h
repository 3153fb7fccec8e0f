/*
 * model.h - what the console knows about the program it watches: the hello, the last few
 * snapshots in a ring (for deltas, histograms and the lints), the task list merged from
 * them, and the answer to the last backtrace request. Fed one protocol line at a time by
 * main.c (live), record.c's replay, or report.c; read by the lints and the views. Every
 * string from the program is copied into a bounded field (cut if longer), every array is
 * as long as the snapshot's, so memory follows what the program sends and nothing else.
 */
#ifndef EDO_CONSOLE_MODEL_H
#define EDO_CONSOLE_MODEL_H

#include "json.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Snapshots kept: enough to see a queue or a wait list grow over several intervals. */
#define CM_HISTORY 6
#define CM_RUN_HIST 16
#define CM_WAITER_IDS 8
#define CM_NONE INT64_MIN /* a time the program sent as null (or not at all) */

typedef struct cm_hello {
    bool seen;
    int64_t version, pid, workers, interval_ms, blocking_threshold_ms;
    char program[64];
    char backend[16];
} cm_hello;

typedef struct cm_worker {
    int index;
    char state[16];
    uint64_t task, task_run_ns, queue_depth, tasks_run, steals, parks, polls, events;
    uint64_t timers_fired, forced_yields, blocking_reports, handoffs, busy_ns;
    double busy_ratio; /* busy_ns delta / wall-time delta since the previous snapshot; <0: none */
} cm_worker;

/* Where a row of the merged task list comes from. */
typedef enum cm_origin {
    CM_LIVE,  /* in the newest snapshot */
    CM_STALE, /* left out of the newest one (tasks_omitted) but not reported done */
    CM_DONE   /* in the newest snapshot's done list */
} cm_origin;

typedef struct cm_task {
    uint64_t id, parent;
    char name[48];
    char site[96];
    char state[12];
    char wait[12];
    char wait_text[128];
    char wait_obj[24];
    int64_t wait_fd;
    int64_t wait_until_ms; /* CM_NONE: no deadline */
    int64_t worker;
    uint64_t resumes, busy_ns, idle_ns, scheduled_ns, wakes_self, wakes_other;
    int64_t last_wake_ms, spawned_ms, ended_ms;
    uint64_t stack_size, stack_used;
    uint32_t run_hist[CM_RUN_HIST];
    cm_origin origin;
} cm_task;

typedef struct cm_resource {
    char addr[24];
    char kind[12];
    int64_t holder; /* a task's id, 0: none, -1: a thread outside the runtime */
    uint64_t readers, len, cap;
    bool closed;
    uint64_t waiters;
    int nwaiter_ids;
    uint64_t waiter_ids[CM_WAITER_IDS];
} cm_resource;

typedef struct cm_blocking {
    uint64_t task;
    char name[48];
    char site[96];
    int64_t worker, at_ms;
    uint64_t ran_ns, total_ns;
    char *stack; /* malloc'd, at most CM_STACK_MAX bytes; "" if none */
} cm_blocking;
#define CM_STACK_MAX 8192

typedef struct cm_snap {
    int64_t seq, now_ms, uptime_ms, recv_ms, tasks_omitted, resources_omitted;
    uint64_t tasks_spawned, tasks_live, tasks_done, inject_depth;
    uint64_t blocking_threads, blocking_busy, blocking_queued, blocking_reports;
    bool clock_paused;
    cm_worker *workers;
    size_t nworkers;
    cm_task *tasks; /* sorted by id */
    size_t ntasks;
    cm_task *done; /* ended tasks: as last seen alive, state "done", origin CM_DONE */
    size_t ndone;
    cm_resource *res; /* sorted by addr */
    size_t nres;
    cm_blocking *blocking;
    size_t nblocking;
} cm_snap;

typedef struct cm_model {
    cm_hello hello;
    cm_snap *hist[CM_HISTORY]; /* hist[0] newest; NULL where none yet */
    size_t nhist;
    uint64_t snapshots; /* taken in since the start (or the last reset) */
    uint64_t bad_lines; /* lines that were not JSON objects of the protocol */
    /* The merged task list: the newest snapshot's tasks, those it left out for its limit,
     * and the done ones; rebuilt by every snapshot. */
    cm_task *rows;
    size_t nrows;
    /* The last backtrace answer. */
    bool bt_have;
    uint64_t bt_count; /* answers taken in, so that a view can tell a new one */
    uint64_t bt_task;
    bool bt_ok;
    char *bt_text; /* the trace, or the error text when !bt_ok */
    cj_arena arena;
} cm_model;

/* What a line was. */
typedef enum cm_line {
    CM_BAD = -1,
    CM_HELLO,
    CM_SNAPSHOT,
    CM_BACKTRACE,
    CM_OTHER /* a well-formed line of a type this console does not know (pong, newer ones) */
} cm_line;

void cm_init(cm_model *m);
void cm_free(cm_model *m);

/* Forgets the snapshots and the hello (a new program on the address). */
void cm_reset(cm_model *m);

/* Takes in one line (modified: strings are decoded in place). recv_ms is when it arrived
 * (cs_now_ms, or the time a recording says). Returns what it was; a bad one is counted. */
cm_line cm_feed(cm_model *m, char *line, size_t len, int64_t recv_ms);

/* The newest snapshot (NULL: none yet) and the one `back` before it. */
const cm_snap *cm_snap_at(const cm_model *m, size_t back);

/* Whether a parsed line is a snapshot with the members every snapshot has. */
bool cm_is_snapshot(const cj_val *root);

/* A task of snapshot s by id, NULL if not there. */
const cm_task *cm_snap_task(const cm_snap *s, uint64_t id);
/* A resource of s by address, NULL if not there. */
const cm_resource *cm_snap_res(const cm_snap *s, const char *addr);
/* A row of the merged list by id. */
const cm_task *cm_row(const cm_model *m, uint64_t id);

#endif
