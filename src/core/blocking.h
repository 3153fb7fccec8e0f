/*
 * The blocking-task watch (blocking.c): the monitor's look, at every one of its turns, at
 * how long each worker's task has run without suspending. A run past the threshold is a
 * blocking episode: reported once (on stderr unless EDO_LOG=0, at most 10 reports a second
 * in the whole process), with the stack where it was caught (a probe, probe.h), kept in a
 * ring of the most recent EDO__BLOCKING_RING reports for edo_blocking_list, and finished
 * with how long the run lasted when the worker moves on. A worker stuck in one task also
 * has the task in its LIFO slot handed to the others through the probe (idle.c moves its
 * queue, fires its timers and rescues its I/O).
 *
 * What it owns, and who may touch it: struct edo__blocking (rt->watch, made for threaded
 * runtimes by edo__blocking_new, freed by edo__blocking_free once the monitor has stopped);
 * its ring and report count under its lock, any thread; the per-worker part (episode,
 * probe) the monitor alone, except the probe's answer (probe.h). The threshold is read-only.
 */
#ifndef EDO_CORE_BLOCKING_H
#define EDO_CORE_BLOCKING_H

#include "core/probe.h"
#include "edo/observe.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define EDO__BLOCKING_RING 64
#define EDO__BLOCKING_DEFAULT_MS 10

typedef struct edo__blocking_worker {
    edo__probe probe;
    uint64_t probed_run; /* the run the next two are about */
    int64_t next_probe;  /* edo__real_ms() when it may be probed again */
    int64_t probe_gap;   /* ms from one probe of that run to the next: doubles each time */
    int report_tries;    /* probes for its report's stack that went unanswered */
    /* the episode: the run of one task past the threshold, reported */
    uint64_t run;     /* its w->run_started; 0: none */
    uint64_t seq;     /* its report's number (the ring holds seq % EDO__BLOCKING_RING) */
    edo_task *task;   /* held by a reference until it ends */
    uint64_t busy_at; /* the task's busy_cycles when it was caught */
    uint64_t ran_at;  /* how many cycles it had run then */
    bool printed;     /* the report went to stderr: so does its end */
} edo__blocking_worker;

typedef struct edo__blocking {
    int64_t threshold_ms; /* -1: not watched */
    bool log;             /* reports go to stderr */
    bool urg_taken;       /* this runtime took SIGURG for its probes (probe.c) */
    pthread_mutex_t lock; /* guards the ring and nreports */
    uint64_t nreports;    /* reports ever made */
    edo_blocking_info ring[EDO__BLOCKING_RING];
    uint64_t ring_run[EDO__BLOCKING_RING]; /* the run_started of each report's run */
    edo__blocking_worker *w;               /* one per worker */
} edo__blocking;

/* The watch of a threaded runtime (rt->watch), for the threshold in rt->blocking_ms; it
 * prints unless EDO_LOG=0. Returns 0 or -ENOMEM. */
int edo__blocking_new(edo_runtime *rt);
void edo__blocking_free(edo_runtime *rt);

/* The monitor's turn while some worker runs tasks, in ms: at most half the threshold, so
 * that a run is reported within twice the threshold. */
int edo__blocking_interval(const edo_runtime *rt, int busy_ms);

/* The monitor's look at worker w (not asleep); `stuck`: its tick has not moved for a
 * while, so it has been in one task all that time. */
void edo__blocking_look(edo_runtime *rt, edo__worker *w, bool stuck);
/* w sleeps: whatever episode it had is over. */
void edo__blocking_idle(edo_runtime *rt, edo__worker *w);
/* The monitor stops: questions still out are taken back. */
void edo__blocking_stop(edo_runtime *rt);

/* The probe of w, for the handler on w's thread; NULL if w's runtime has no watch. */
edo__probe *edo__blocking_probe(edo__worker *w);

/* The stack of the latest report about task `id` (only if its run has not ended, with
 * `current`) into buf, as snprintf. Returns the length, or -ENOENT. */
ssize_t edo__blocking_stack(edo_runtime *rt, uint64_t id, bool current, char *buf, size_t len);

#endif
