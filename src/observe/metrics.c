/*
 * rt's metrics in Prometheus's text exposition format, version 0.0.4: edo_metrics_write,
 * edo_metrics_format, and the text the metrics endpoint serves (endpoint.c). Built from
 * the public snapshot functions (edo/observe.h) on the calling thread, whichever it is.
 *
 * Names follow Prometheus's conventions: edo_ first, counters end in _total, units are
 * base units named in the name (_seconds). A worker's families carry worker="N".
 */
#include "observe/observe.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void family(edo__text *t, const char *name, const char *type, const char *help)
{
    edo__text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(edo__text *t, const char *name, const char *type, const char *help, uint64_t v)
{
    family(t, name, type, help);
    edo__text_printf(t, "%s %" PRIu64 "\n", name, v);
}

static void seconds(edo__text *t, const char *name, const char *type, const char *help, uint64_t ns)
{
    family(t, name, type, help);
    edo__text_printf(t, "%s %" PRIu64 ".%09" PRIu64 "\n", name, ns / 1000000000, ns % 1000000000);
}

/* ---- what the task list adds up to -------------------------------------------------------- */

typedef struct task_sums {
    uint64_t by_state[EDO_TASK_DONE + 1];
    uint64_t by_wait[EDO_WAIT_SELECT + 1];
    uint64_t hist[EDO_RUN_HIST];
    uint64_t busy_ns;
} task_sums;

static int sum_one(const edo_task_info *i, void *arg)
{
    task_sums *s = arg;
    if ((unsigned)i->state <= EDO_TASK_DONE)
        s->by_state[i->state]++;
    if (i->state == EDO_TASK_PARKED && (unsigned)i->waiting_on <= EDO_WAIT_SELECT)
        s->by_wait[i->waiting_on]++;
    for (int b = 0; b < EDO_RUN_HIST; b++)
        s->hist[b] += i->run_hist[b];
    s->busy_ns += i->busy_ns;
    return 0;
}

static void task_families(edo__text *t, edo_runtime *rt)
{
    task_sums s;
    memset(&s, 0, sizeof s);
    edo_task_list(rt, sum_one, &s);

    family(t, "edo_tasks", "gauge", "Live tasks by state.");
    static const edo_task_state states[] = { EDO_TASK_READY, EDO_TASK_RUNNING, EDO_TASK_PARKED };
    for (size_t k = 0; k < sizeof states / sizeof *states; k++)
        edo__text_printf(t, "edo_tasks{state=\"%s\"} %" PRIu64 "\n", edo_task_state_name(states[k]),
                         s.by_state[states[k]]);

    family(t, "edo_tasks_parked", "gauge", "Parked tasks by what they wait for.");
    for (int r = EDO_WAIT_NONE + 1; r <= EDO_WAIT_SELECT; r++)
        edo__text_printf(t, "edo_tasks_parked{reason=\"%s\"} %" PRIu64 "\n",
                         edo_wait_reason_name((edo_wait_reason)r), s.by_wait[r]);

    /* Each task's histogram counts its runs shorter than 1 us, 2 us, ... (edo.h): bucket b
     * ends below 2^b us, so the cumulative count up to it is the bucket le=2^b us. The sum
     * is honest: a task's busy time is the sum of its runs, counted at the same switch. */
    family(t, "edo_live_task_run_seconds", "histogram",
           "How long the runs (resume to suspension) of the tasks alive now lasted; it falls "
           "when tasks end.");
    uint64_t cum = 0;
    for (int b = 0; b < EDO_RUN_HIST - 1; b++) {
        uint64_t us = (uint64_t)1 << b; /* printed without %g, which would follow the locale */
        cum += s.hist[b];
        edo__text_printf(
            t, "edo_live_task_run_seconds_bucket{le=\"%" PRIu64 ".%06" PRIu64 "\"} %" PRIu64 "\n",
            us / 1000000, us % 1000000, cum);
    }
    cum += s.hist[EDO_RUN_HIST - 1];
    edo__text_printf(t, "edo_live_task_run_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    edo__text_printf(t, "edo_live_task_run_seconds_sum %" PRIu64 ".%09" PRIu64 "\n",
                     s.busy_ns / 1000000000, s.busy_ns % 1000000000);
    edo__text_printf(t, "edo_live_task_run_seconds_count %" PRIu64 "\n", cum);
}

/* ---- workers ------------------------------------------------------------------------------ */

typedef struct worker_family {
    const char *name;
    const char *type;
    const char *help;
    size_t offset; /* of a uint64_t in edo_worker_info; busy_ns is written in seconds */
} worker_family;

#define WF(name, type, field, help)                                                                \
    {                                                                                              \
        name, type, help, offsetof(edo_worker_info, field)                                         \
    }

static const worker_family worker_families[] = {
    WF("edo_worker_tasks_run_total", "counter", tasks_run, "Task resumes on the worker."),
    WF("edo_worker_steals_total", "counter", steals,
       "Tasks the worker took from other workers' queues."),
    WF("edo_worker_parks_total", "counter", parks, "Times the worker slept for want of work."),
    WF("edo_worker_polls_total", "counter", polls, "Polls of the I/O driver by the worker."),
    WF("edo_worker_events_total", "counter", events,
       "Readiness events or completions the worker's polls delivered."),
    WF("edo_worker_timers_fired_total", "counter", timers_fired, "Timers the worker fired."),
    WF("edo_worker_forced_yields_total", "counter", forced_yields,
       "Tasks made to yield by the cooperative budget on the worker."),
    WF("edo_worker_blocking_reports_total", "counter", blocking_reports,
       "Tasks reported for running too long without suspending on the worker."),
    WF("edo_worker_handoffs_total", "counter", handoffs,
       "Tasks moved off the worker to others while it was stuck."),
    WF("edo_worker_busy_seconds_total", "counter", busy_ns, "Time the worker spent running tasks."),
};

static void worker_families_text(edo__text *t, edo_runtime *rt, int n)
{
    edo_worker_info *w = calloc((size_t)n, sizeof *w);
    if (!w) {
        t->failed = true;
        return;
    }
    for (int i = 0; i < n; i++)
        edo_worker_stats(rt, i, &w[i]);
    for (size_t f = 0; f < sizeof worker_families / sizeof *worker_families; f++) {
        const worker_family *wf = &worker_families[f];
        family(t, wf->name, wf->type, wf->help);
        bool secs = wf->offset == offsetof(edo_worker_info, busy_ns);
        for (int i = 0; i < n; i++) {
            uint64_t v;
            memcpy(&v, (const char *)&w[i] + wf->offset, sizeof v);
            if (secs)
                edo__text_printf(t, "%s{worker=\"%d\"} %" PRIu64 ".%09" PRIu64 "\n", wf->name, i,
                                 v / 1000000000, v % 1000000000);
            else
                edo__text_printf(t, "%s{worker=\"%d\"} %" PRIu64 "\n", wf->name, i, v);
        }
    }
    family(t, "edo_worker_queue_depth", "gauge", "Tasks in the worker's local queue.");
    for (int i = 0; i < n; i++)
        edo__text_printf(t, "edo_worker_queue_depth{worker=\"%d\"} %" PRIu32 "\n", i,
                         w[i].queue_depth);
    static const char *const states[] = { "running", "scheduling", "idle", "blocked" };
    family(t, "edo_worker_state", "gauge",
           "1 for the state the worker is in (running a task, scheduling, idle, blocked).");
    for (int i = 0; i < n; i++)
        for (int s = 0; s < 4; s++)
            edo__text_printf(t, "edo_worker_state{worker=\"%d\",state=\"%s\"} %d\n", i, states[s],
                             (int)w[i].state == s);
    free(w);
}

/* ---- the whole page ------------------------------------------------------------------------- */

void edo__metrics_text(edo__text *t, edo_runtime *rt)
{
    edo_runtime_info ri;
    if (edo_runtime_stats(rt, &ri) < 0) {
        t->failed = true;
        return;
    }
    family(t, "edo_info", "gauge", "The runtime's version, backend and workers; always 1.");
    edo__text_printf(t, "edo_info{version=\"%s\",backend=\"%s\",workers=\"%d\"} 1\n",
                     EDO_VERSION_STRING, edo_backend_name(ri.backend), ri.workers);
    seconds(t, "edo_uptime_seconds", "gauge", "Time since the runtime was made.", ri.uptime_ns);
    one(t, "edo_clock_paused", "gauge", "1 while the runtime's clock is paused.", ri.clock_paused);
    one(t, "edo_tasks_spawned_total", "counter", "Tasks ever spawned (blocking calls included).",
        ri.tasks_spawned);
    one(t, "edo_tasks_done_total", "counter", "Tasks that returned.", ri.tasks_done);
    one(t, "edo_tasks_live", "gauge", "Tasks spawned and not yet returned.", ri.tasks_live);
    task_families(t, rt);
    one(t, "edo_inject_queue_depth", "gauge",
        "Tasks queued for any worker (woken from outside, overflow).", ri.inject_depth);
    one(t, "edo_blocking_pool_threads", "gauge", "Threads of the blocking pool.",
        ri.blocking_threads);
    one(t, "edo_blocking_pool_busy_threads", "gauge",
        "Threads of the blocking pool running a call.", ri.blocking_busy);
    one(t, "edo_blocking_pool_queued", "gauge", "Calls waiting for a thread of the blocking pool.",
        ri.blocking_queued);
    one(t, "edo_blocking_reports_total", "counter",
        "Tasks reported for running too long without suspending.", ri.blocking_reports);
    if (ri.blocking_threshold_ms >= 0)
        seconds(t, "edo_blocking_threshold_seconds", "gauge",
                "How long a task may run without suspending before it is reported.",
                (uint64_t)ri.blocking_threshold_ms * 1000000);
    worker_families_text(t, rt, ri.workers);
}

/* The page for rt (NULL: the calling task's runtime) into t: 0, -EINVAL for no runtime,
 * -ENOMEM. */
static int metrics_page(edo__text *t, edo_runtime *rt)
{
    edo_runtime_info ri;
    if (!rt)
        rt = edo_runtime_current();
    if (edo_runtime_stats(rt, &ri) < 0)
        return -EINVAL;
    edo__metrics_text(t, rt);
    if (t->failed) {
        edo__text_free(t);
        return -ENOMEM;
    }
    return 0;
}

ssize_t edo_metrics_format(edo_runtime *rt, char *buf, size_t len)
{
    if (!buf && len)
        return -EINVAL;
    edo__text t = { 0 };
    int rc = metrics_page(&t, rt);
    if (rc < 0)
        return rc;
    if (len) {
        size_t n = t.len < len ? t.len : len - 1;
        memcpy(buf, t.buf, n);
        buf[n] = 0;
    }
    ssize_t n = (ssize_t)t.len;
    edo__text_free(&t);
    return n;
}

int edo_metrics_write(edo_runtime *rt, FILE *f)
{
    if (!f)
        return -EINVAL;
    edo__text t = { 0 };
    int rc = metrics_page(&t, rt);
    if (rc < 0)
        return rc;
    errno = 0;
    if (fwrite(t.buf, 1, t.len, f) != t.len || fflush(f) != 0)
        rc = errno ? -errno : -EIO;
    edo__text_free(&t);
    return rc;
}
