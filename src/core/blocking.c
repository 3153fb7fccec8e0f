/*
 * The blocking-task watch: episodes of one task running past the threshold without
 * suspending, their reports (stderr, the ring, edo_blocking_list), and the probes that
 * take a stuck worker's stack and LIFO slot. blocking.h says who touches what.
 */
#include "core/blocking.h"

#include "core/runtime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long the monitor waits for a probe's answer, ms: the worker's thread may have to
 * wait for a core first. */
#define PROBE_WAIT_MS 50
/* A worker stuck in one task is probed again after this long, then after twice as long,
 * and so on, for what its task has put in its LIFO slot since (a task that wakes others
 * without ever suspending). Not more often: a system call that the signal interrupts
 * and the program makes again with its whole timeout would never end. */
#define PROBE_AGAIN_MS 100
/* Probes for a report's stack that may go unanswered before it is made without one. */
#define REPORT_TRIES 6
#define PROBE_AGAIN_MAX_MS 60000
/* Reports printed, at most, in any second (the process's, all runtimes together). */
#define LOG_PER_SECOND 10

int edo__blocking_new(edo_runtime *rt)
{
    /* One worker: no thread to watch it, nobody to hand its tasks to. */
    if (!rt->threaded)
        return 0;
    edo__blocking *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    b->w = calloc((size_t)rt->nworkers, sizeof *b->w);
    if (!b->w) {
        free(b);
        return -ENOMEM;
    }
    b->threshold_ms = rt->blocking_ms < 0 ? -1 : rt->blocking_ms;
    b->log = edo__reports_on();
    pthread_mutex_init(&b->lock, NULL);
    rt->watch = b;
    return 0;
}

void edo__blocking_free(edo_runtime *rt)
{
    edo__blocking *b = rt->watch;
    if (!b)
        return;
    for (int i = 0; i < rt->nworkers; i++)
        if (b->w[i].task)
            edo__task_unref(b->w[i].task);
    if (b->urg_taken)
        edo__probe_release();
    pthread_mutex_destroy(&b->lock);
    free(b->w);
    free(b);
    rt->watch = NULL;
}

edo__probe *edo__blocking_probe(edo__worker *w)
{
    edo__blocking *b = w->rt->watch;
    return b ? &b->w[w->index].probe : NULL;
}

int edo__blocking_interval(const edo_runtime *rt, int busy_ms)
{
    const edo__blocking *b = rt->watch;
    if (!b || b->threshold_ms < 0)
        return busy_ms;
    int64_t half = b->threshold_ms / 2;
    return half < 1 ? 1 : half < busy_ms ? (int)half : busy_ms;
}

/* ---- printing -------------------------------------------------------------------------- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t log_stamps[LOG_PER_SECOND]; /* when the last reports were printed */
static int log_next;
static uint64_t log_dropped;

/* May a report be printed now? *dropped: how many were not, since the last one that was. */
static bool log_allowed(uint64_t *dropped)
{
    int64_t now = edo__real_ms();
    bool ok;
    pthread_mutex_lock(&log_lock);
    ok = !log_stamps[log_next] || now - log_stamps[log_next] >= 1000;
    if (ok) {
        log_stamps[log_next] = now;
        log_next = (log_next + 1) % LOG_PER_SECOND;
        *dropped = log_dropped;
        log_dropped = 0;
    } else {
        log_dropped++;
    }
    pthread_mutex_unlock(&log_lock);
    return ok;
}

static uint64_t ms_of(uint64_t ns)
{
    return ns / 1000000;
}

static void print_report(const edo__blocking *b, const edo_blocking_info *info, const char *why)
{
    uint64_t dropped = 0;
    if (!log_allowed(&dropped))
        return;
    char msg[2048];
    int n = 0;
    if (dropped)
        n = snprintf(msg, sizeof msg,
                     "edo: (%llu more blocking reports were not printed: at most %d a second)\n",
                     (unsigned long long)dropped, LOG_PER_SECOND);
    if (n < 0 || (size_t)n >= sizeof msg)
        n = 0;
    snprintf(msg + n, sizeof msg - (size_t)n,
             "edo: task %llu \"%s\" (spawned at %s) has run %llu ms on worker %d without "
             "suspending\n(blocking threshold %lld ms); the tasks queued behind it move to other "
             "workers%s%s%s\n%s",
             (unsigned long long)info->task, info->name, info->spawn_site ? info->spawn_site : "?",
             (unsigned long long)ms_of(info->ran_ns), info->worker, (long long)b->threshold_ms,
             info->stack[0] ? ". Caught at:" : " (stack not captured: ", info->stack[0] ? "" : why,
             info->stack[0] ? "" : ").", info->stack);
    fputs(msg, stderr);
}

/* ---- episodes ---------------------------------------------------------------------------- */

/* The run w is in now and its task's id, as one pair; run 0: none (or it changed while
 * read: the next look will tell). sched.c's run_announce is the writer. */
static uint64_t read_run(edo__worker *w, uint64_t *id)
{
    uint64_t r1 = atomic_load_explicit(&w->run_started, memory_order_acquire);
    if (!r1)
        return 0;
    *id = atomic_load_explicit(&w->running_id, memory_order_acquire);
    uint64_t r2 = atomic_load_explicit(&w->run_started, memory_order_relaxed);
    return r1 == r2 ? r1 : 0;
}

typedef struct stack_text_job {
    const edo__bt *bt;
    char *buf;
    size_t len;
} stack_text_job;

static void stack_text_run(void *arg)
{
    stack_text_job *j = arg;
    size_t n = edo__bt_format(j->bt, j->buf, j->len);
    if (n >= j->len) {
        char *nl = memrchr(j->buf, '\n', j->len - 1);
        if (nl)
            nl[1] = 0; /* cut after the last whole frame */
    }
}

/* A report's stack text. */
static void stack_text(const edo__bt *bt, char *buf, size_t len)
{
    stack_text_job j = { bt, buf, len };
    edo__bt_call(stack_text_run, &j);
}

static void episode_end(edo_runtime *rt, edo__worker *w, edo__blocking_worker *bw)
{
    edo__blocking *b = rt->watch;
    edo_task *t = bw->task;
    uint64_t now = edo__cycles();
    /* The run's length went into busy_cycles when it ended, a few instructions after
     * run_started was cleared: if that is not visible yet, the time since it began is
     * near enough (an interval of the monitor at most too long). */
    uint64_t busy = atomic_load_explicit(&t->busy_cycles, memory_order_relaxed) - bw->busy_at;
    uint64_t total = busy >= bw->ran_at ? busy : now - bw->run;
    if (total > now - bw->run)
        total = now - bw->run;
    uint64_t total_ns = edo__cycles_to_ns(total);
    if (!total_ns)
        total_ns = 1;
    bool done = atomic_load_explicit(&t->state, memory_order_acquire) == EDO__DONE;
    pthread_mutex_lock(&b->lock);
    if (b->nreports - bw->seq <= EDO__BLOCKING_RING) {
        edo_blocking_info *info = &b->ring[bw->seq % EDO__BLOCKING_RING];
        if (info->task == t->id)
            info->total_ns = total_ns;
    }
    pthread_mutex_unlock(&b->lock);
    char info_name[32];
    edo__task_name(t, info_name);
    if (bw->printed)
        fprintf(stderr, "edo: task %llu \"%s\" ran %llu ms on worker %d before it %s\n",
                (unsigned long long)t->id, info_name, (unsigned long long)ms_of(total_ns), w->index,
                done ? "returned" : "suspended");
    edo__task_unref(t);
    bw->task = NULL;
    bw->run = 0;
    bw->printed = false;
}

/* Reports task t (held: the episode keeps the reference) caught in run `run` of w. */
static void episode_begin(edo_runtime *rt, edo__worker *w, edo__blocking_worker *bw, uint64_t run,
                          edo_task *t, const edo__probe *p, const char *why)
{
    edo__blocking *b = rt->watch;
    uint64_t id = t->id;
    uint64_t now = edo__cycles();
    bw->run = run;
    bw->task = t;
    bw->busy_at = atomic_load_explicit(&t->busy_cycles, memory_order_relaxed);
    bw->ran_at = now - run;

    edo_blocking_info report = { 0 }, *info = &report; /* the monitor's stack is a thread's */
    info->task = id;
    edo__task_name(t, info->name);
    info->spawn_site = t->site;
    info->worker = w->index;
    info->at = edo__clock_ms(rt);
    info->ran_ns = edo__cycles_to_ns(bw->ran_at);
    if (!why && !p->same_run)
        why = "it suspended before its stack could be taken";
    else if (!why && p->bt_rc < 0)
        why = EDO__BT_NONE;
    else if (!why)
        stack_text(&p->bt, info->stack, sizeof info->stack);
    pthread_mutex_lock(&b->lock);
    bw->seq = b->nreports++;
    b->ring[bw->seq % EDO__BLOCKING_RING] = *info;
    b->ring_run[bw->seq % EDO__BLOCKING_RING] = run;
    pthread_mutex_unlock(&b->lock);
    edo__counter_add(&w->n_blocking, 1);
    bw->printed = false;
    if (b->log) {
        print_report(b, info, why ? why : "");
        bw->printed = true;
    }
}

void edo__blocking_idle(edo_runtime *rt, edo__worker *w)
{
    edo__blocking *b = rt->watch;
    if (b && b->w[w->index].run)
        episode_end(rt, w, &b->w[w->index]);
}

void edo__blocking_look(edo_runtime *rt, edo__worker *w, bool stuck)
{
    edo__blocking *b = rt->watch;
    if (!b || b->threshold_ms < 0)
        return;
    edo__blocking_worker *bw = &b->w[w->index];
    uint64_t id = 0;
    uint64_t run = read_run(w, &id);
    if (bw->run && run != bw->run)
        episode_end(rt, w, bw);
    if (!run)
        return;
    int64_t real = edo__real_ms();
    if (run != bw->probed_run) {
        bw->probed_run = run;
        bw->next_probe = 0;
        bw->probe_gap = PROBE_AGAIN_MS;
        bw->report_tries = 0;
    }
    bool report =
        !bw->run && edo__cycles_to_ns(edo__cycles() - run) >= (uint64_t)b->threshold_ms * 1000000;
    bool again = stuck && real >= bw->next_probe;
    if (!report && !again)
        return;
    /* Held before the probe: if it suspends or returns meanwhile, it is still reported,
     * and its name can still be read. */
    edo_task *t = report ? edo__task_find(rt, id) : NULL;
    if (report && !t) {
        report = false; /* it returned before this look */
        if (!again)
            return;
    }
    edo__probe *p = &bw->probe;
    const char *why = edo__probe_ready(&b->urg_taken);
    p->same_run = true;
    p->bt_rc = -ENOSYS;
    if (!why) {
        bw->next_probe = real + bw->probe_gap;
        if (bw->probe_gap < PROBE_AGAIN_MAX_MS)
            bw->probe_gap *= 2;
        int rc = edo__probe_ask(w, p, run, report, PROBE_WAIT_MS);
        if (rc == -ETIMEDOUT && report && ++bw->report_tries < REPORT_TRIES) {
            /* Its thread may have had no core to run the handler on: the next looks try
             * again before the report goes without a stack. */
            edo__task_unref(t);
            return;
        }
        if (rc == -ETIMEDOUT)
            why = "its worker did not answer the signal in time";
        else if (rc < 0)
            why = "its worker could not be signalled";
        else if (p->handed) {
            /* From this thread it goes to the inject queue, for whichever worker is free. */
            edo__schedule(p->handed);
            p->handed = NULL;
            edo__counter_add(&w->n_handoffs, 1);
        }
    }
    if (report)
        episode_begin(rt, w, bw, run, t, p, why);
}

void edo__blocking_stop(edo_runtime *rt)
{
    edo__blocking *b = rt->watch;
    if (!b)
        return;
    for (int i = 0; i < rt->nworkers; i++) {
        edo__worker *w = &rt->workers[i];
        edo__blocking_worker *bw = &b->w[i];
        edo_task *t = edo__probe_cancel(&bw->probe);
        if (t)
            edo__schedule(t);
        /* An episode that ended since the last look (the runtime is being freed: its
         * tasks have returned) still gets its end. */
        if (bw->run && atomic_load_explicit(&w->run_started, memory_order_relaxed) != bw->run)
            episode_end(rt, w, bw);
    }
}

ssize_t edo__blocking_stack(edo_runtime *rt, uint64_t id, bool current, char *buf, size_t len)
{
    edo__blocking *b = rt->watch;
    if (!b)
        return -ENOENT;
    ssize_t n = -ENOENT;
    pthread_mutex_lock(&b->lock);
    uint64_t first = b->nreports > EDO__BLOCKING_RING ? b->nreports - EDO__BLOCKING_RING : 0;
    for (uint64_t s = b->nreports; s-- > first;) {
        const edo_blocking_info *info = &b->ring[s % EDO__BLOCKING_RING];
        if (info->task != id)
            continue;
        /* Current: its worker is still in that run (the monitor may not have seen it end). */
        bool now =
            info->total_ns == 0 &&
            atomic_load_explicit(&rt->workers[info->worker].run_started, memory_order_relaxed) ==
                b->ring_run[s % EDO__BLOCKING_RING];
        if ((!current || now) && info->stack[0])
            n = snprintf(buf, len, "%s", info->stack);
        break;
    }
    pthread_mutex_unlock(&b->lock);
    return n;
}

size_t edo_blocking_list(edo_runtime *rt, int (*fn)(const edo_blocking_info *info, void *arg),
                         void *arg)
{
    if (!rt)
        rt = edo_runtime_current();
    if (!rt || !fn || !rt->watch)
        return 0;
    edo__blocking *b = rt->watch;
    /* Copied out under the lock, visited without it: fn may take as long as it likes. */
    edo_blocking_info *copy = malloc(sizeof(edo_blocking_info) * EDO__BLOCKING_RING);
    if (!copy)
        return 0;
    pthread_mutex_lock(&b->lock);
    uint64_t first = b->nreports > EDO__BLOCKING_RING ? b->nreports - EDO__BLOCKING_RING : 0;
    size_t n = 0;
    for (uint64_t s = first; s < b->nreports; s++)
        copy[n++] = b->ring[s % EDO__BLOCKING_RING];
    pthread_mutex_unlock(&b->lock);
    size_t visited = 0;
    for (size_t i = 0; i < n; i++) {
        visited++;
        if (fn(&copy[i], arg))
            break;
    }
    free(copy);
    return visited;
}
