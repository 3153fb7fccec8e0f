/*
 * Snapshots of a runtime, its workers and its tasks (edo/observe.h, edo_task_stats and
 * edo_task_list of edo.h): read from the counters the scheduler keeps (task.h, runtime.h),
 * from any thread, without stopping anything. Each value is loaded on its own, so a
 * snapshot of a running task is a little smeared in time, never torn within a value.
 */
#include "core/runtime.h"
#include "edo/observe.h"
#include "edo/sync.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

const char *edo_task_state_name(edo_task_state s)
{
    static const char *const names[] = { "ready", "running", "parked", "done" };
    return (unsigned)s < sizeof names / sizeof *names ? names[s] : "unknown";
}

const char *edo_wait_reason_name(edo_wait_reason r)
{
    static const char *const names[] = { "none",  "sleep", "read", "write", "join",   "signal",
                                         "yield", "other", "chan", "lock",  "notify", "select" };
    return (unsigned)r < sizeof names / sizeof *names ? names[r] : "unknown";
}

/* ---- what a task waits on, in words ---------------------------------------------------- */

/* "127.0.0.1:5123", "[::1]:80", "/run/x.sock"; "" when it has none. */
static void sockaddr_text(const struct sockaddr_storage *ss, socklen_t len, char *buf, size_t n)
{
    char host[INET6_ADDRSTRLEN] = "";
    buf[0] = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        snprintf(buf, n, "%s:%u", host, ntohs(a->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        snprintf(buf, n, "[%s]:%u", host, ntohs(a->sin6_port));
    } else if (ss->ss_family == AF_UNIX && len > offsetof(struct sockaddr_un, sun_path)) {
        const struct sockaddr_un *a = (const struct sockaddr_un *)ss;
        size_t plen = len - offsetof(struct sockaddr_un, sun_path);
        if (a->sun_path[0])
            snprintf(buf, n, "%.*s", (int)strnlen(a->sun_path, plen), a->sun_path);
        else if (plen > 1)
            snprintf(buf, n, "@%.*s", (int)(plen - 1), a->sun_path + 1);
    }
}

/* The descriptor's part: "fd 7 (127.0.0.1:5123)" with the peer, or the local address of a
 * listening socket. The descriptor may have been closed and reused since the task looked:
 * this is a snapshot, and says what the descriptor is now. */
static void fd_text(int fd, bool *listening, char *buf, size_t n)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char addr[64] = "";
    int acc = 0;
    socklen_t alen = sizeof acc;
    *listening = getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &alen) == 0 && acc;
    memset(&ss, 0, sizeof ss);
    if (*listening ? getsockname(fd, (struct sockaddr *)&ss, &len) == 0
                   : getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
        sockaddr_text(&ss, len, addr, sizeof addr);
    if (addr[0])
        snprintf(buf, n, "fd %d (%s)", fd, addr);
    else
        snprintf(buf, n, "fd %d", fd);
}

static const char *case_name(int kind)
{
    switch (kind) {
    case EDO__CASE_RECV:
        return "recv";
    case EDO__CASE_SEND:
        return "send";
    case EDO__CASE_BCAST:
        return "bcast";
    case EDO__CASE_WATCH:
        return "watch";
    case EDO__CASE_NOTIFY:
        return "notify";
    case EDO__CASE_CANCEL:
        return "cancel";
    case EDO__CASE_JOIN:
        return "join";
    case EDO__CASE_READ:
        return "read";
    case EDO__CASE_WRITE:
        return "write";
    case EDO__CASE_TIMER:
        return "timer";
    default:
        return "off";
    }
}

static void select_text(int64_t packed, char *buf, size_t n)
{
    int cases = (int)(packed & 0xff);
    int at = snprintf(buf, n, "select: %d case%s", cases, cases == 1 ? "" : "s");
    for (int i = 0; i < cases && i < 6 && at > 0 && (size_t)at < n; i++)
        at += snprintf(buf + at, n - (size_t)at, "%s%s", i ? ", " : " (",
                       case_name((int)(packed >> (8 * (i + 1)) & 0xff)));
    if (cases > 6 && at > 0 && (size_t)at < n)
        at += snprintf(buf + at, n - (size_t)at, ", ...");
    if (cases && at > 0 && (size_t)at < n)
        snprintf(buf + at, n - (size_t)at, ")");
}

static void wait_text(const edo_task *t, edo_task_info *info, int64_t now)
{
    char *buf = info->wait;
    size_t n = sizeof info->wait;
    const void *obj = info->wait_obj;
    int64_t arg = atomic_load_explicit(&t->wait_arg, memory_order_relaxed);
    int op = atomic_load_explicit(&t->wait_op, memory_order_relaxed);
    char what[80];
    bool listening = false;
    buf[0] = 0;
    switch (info->waiting_on) {
    case EDO_WAIT_NONE:
        return;
    case EDO_WAIT_SLEEP:
        if (info->wait_until == EDO_NEVER)
            snprintf(buf, n, "sleep");
        else
            snprintf(buf, n, "sleep until %+lld ms", (long long)(info->wait_until - now));
        return;
    case EDO_WAIT_SIGNAL:
        snprintf(buf, n, "signal");
        return;
    case EDO_WAIT_READ:
    case EDO_WAIT_WRITE: {
        const char *verb = info->waiting_on == EDO_WAIT_WRITE ? "write" : "read";
        if (op == EDO__OP_BLOCKING) {
            snprintf(buf, n, "%s on the blocking pool", verb);
            return;
        }
        if (op == EDO__OP_FILE) {
            snprintf(buf, n, "file %s fd %lld", verb, (long long)arg);
            return;
        }
        if (op != EDO__OP_IO) {
            snprintf(buf, n, "%s", verb);
            return;
        }
        fd_text((int)arg, &listening, what, sizeof what);
        snprintf(buf, n, "%s %.80s", listening ? "accept" : verb, what);
        return;
    }
    case EDO_WAIT_JOIN:
        if (op == EDO__OP_TASK)
            snprintf(buf, n, "join task %llu", (unsigned long long)arg);
        else
            snprintf(buf, n, "%s %p", op == EDO__OP_TRACKER ? "tracker wait" : "join set next",
                     obj);
        return;
    case EDO_WAIT_YIELD:
        snprintf(buf, n, "yield");
        return;
    case EDO_WAIT_OTHER:
        snprintf(buf, n, op == EDO__OP_BLOCKING ? "blocking call" : "other");
        return;
    case EDO_WAIT_CHAN:
        snprintf(buf, n, "%s %p", op == EDO__OP_SEND ? "chan send" : "chan recv", obj);
        return;
    case EDO_WAIT_LOCK:
        if (op == EDO__OP_MUTEX)
            snprintf(buf, n, "mutex lock %p", obj);
        else if (op == EDO__OP_BARRIER)
            snprintf(buf, n, "barrier wait %p", obj);
        else
            snprintf(buf, n, "sem acquire %llu %p", (unsigned long long)arg, obj);
        return;
    case EDO_WAIT_NOTIFY:
        snprintf(buf, n, "%s %p",
                 op == EDO__OP_WATCH   ? "watch recv"
                 : op == EDO__OP_TOKEN ? "token wait"
                                       : "notify wait",
                 obj);
        return;
    case EDO_WAIT_SELECT:
        select_text(arg, buf, n);
        return;
    }
}

/* ---- tasks -------------------------------------------------------------------------------- */

void edo_task_stats(const edo_task *t, edo_task_info *info)
{
    edo_task *self = edo__task_current();
    if (!t)
        t = self;
    if (!info)
        return;
    memset(info, 0, sizeof *info);
    info->worker = -1;
    info->wait_fd = -1;
    info->wait_until = EDO_NEVER;
    info->last_wake = EDO_NEVER;
    if (!t)
        return;
    uint32_t s = atomic_load(&t->state);
    uint64_t now = edo__cycles();
    int64_t now_ns = edo__clock_ns(t->rt);
    info->id = t->id;
    info->parent = t->parent;
    edo__task_name(t, info->name);
    info->spawn_site = t->site;
    /* A yielded task waits in a run queue without leaving RUNNING (task.h). */
    uint8_t waiting = atomic_load_explicit(&t->waiting_on, memory_order_relaxed);
    info->state = s == EDO__DONE                           ? EDO_TASK_DONE
                  : s == EDO__PARKED || s & EDO__PEEKED    ? EDO_TASK_PARKED
                  : s == EDO__QUEUED                       ? EDO_TASK_READY
                  : t != self && waiting == EDO_WAIT_YIELD ? EDO_TASK_READY
                                                           : EDO_TASK_RUNNING;
    info->waiting_on = (edo_wait_reason)waiting;
    info->worker = atomic_load_explicit(&t->worker, memory_order_relaxed);
    info->resumes = atomic_load_explicit(&t->resumes, memory_order_relaxed);
    uint64_t busy = atomic_load_explicit(&t->busy_cycles, memory_order_relaxed) +
                    (t == self ? now - t->run_start : 0);
    uint64_t life = now - t->spawned_cycles;
    info->busy_ns = edo__cycles_to_ns(busy);
    info->idle_ns = life > busy ? edo__cycles_to_ns(life - busy) : 0;
    uint64_t sched = atomic_load_explicit(&t->sched_cycles, memory_order_relaxed);
    uint64_t ready = atomic_load_explicit(&t->ready_cycles, memory_order_relaxed);
    if (info->state == EDO_TASK_READY && now > ready)
        sched += now - ready; /* waiting for a worker right now */
    info->scheduled_ns = edo__cycles_to_ns(sched);
    info->wakes_self = atomic_load_explicit(&t->wakes_self, memory_order_relaxed);
    info->wakes_other = atomic_load_explicit(&t->wakes_other, memory_order_relaxed);
    if (info->wakes_self + info->wakes_other)
        info->last_wake =
            (now_ns - (int64_t)edo__cycles_to_ns(now > ready ? now - ready : 0)) / 1000000;
    info->spawned_at = (now_ns - (int64_t)edo__cycles_to_ns(life)) / 1000000;
    info->stack_size = t->stack_size;
    info->stack_used = (size_t)atomic_load_explicit(&t->stack_used, memory_order_relaxed);
    for (int i = 0; i < EDO_RUN_HIST; i++)
        info->run_hist[i] = atomic_load_explicit(&t->run_hist[i], memory_order_relaxed);
    if (waiting != EDO_WAIT_NONE) {
        info->wait_obj = atomic_load_explicit(&t->wait_obj, memory_order_relaxed);
        info->wait_until = atomic_load_explicit(&t->wait_until, memory_order_relaxed);
        if (waiting == EDO_WAIT_READ || waiting == EDO_WAIT_WRITE) {
            int op = atomic_load_explicit(&t->wait_op, memory_order_relaxed);
            if (op == EDO__OP_IO || op == EDO__OP_FILE)
                info->wait_fd = (int)atomic_load_explicit(&t->wait_arg, memory_order_relaxed);
        }
        wait_text(t, info, now_ns / 1000000);
    }
}

struct list_walk {
    int (*fn)(const edo_task_info *, void *);
    void *arg;
    size_t n;
    bool stop;
};

static void list_one(edo_task *t, void *arg)
{
    struct list_walk *lw = arg;
    if (lw->stop)
        return;
    edo_task_info info;
    edo_task_stats(t, &info);
    lw->n++;
    if (lw->fn(&info, lw->arg))
        lw->stop = true;
}

size_t edo_task_list(edo_runtime *rt, int (*fn)(const edo_task_info *, void *), void *arg)
{
    if (!rt || !fn)
        return 0;
    struct list_walk lw = { fn, arg, 0, false };
    edo__task_each(rt, list_one, &lw);
    return lw.n;
}

/* ---- the runtime and its workers ------------------------------------------------------- */

int edo_runtime_stats(edo_runtime *rt, edo_runtime_info *out)
{
    if (!rt)
        rt = edo_runtime_current();
    if (!rt || !out)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    out->backend = rt->backend;
    out->workers = rt->nworkers;
    out->clock_paused = edo__clock_paused(rt);
    out->now = edo__clock_ms(rt);
    out->uptime_ns = edo__cycles_to_ns(edo__cycles() - rt->born_cycles);
    edo__task_counts(rt, &out->tasks_spawned, &out->tasks_live);
    out->tasks_done = out->tasks_spawned - out->tasks_live;
    out->inject_depth = atomic_load_explicit(&rt->inject_len, memory_order_relaxed);
    edo__pool_stats(rt, &out->blocking_threads, &out->blocking_busy, &out->blocking_queued);
    for (int i = 0; i < rt->nworkers; i++)
        out->blocking_reports +=
            atomic_load_explicit(&rt->workers[i].n_blocking, memory_order_relaxed);
    out->blocking_threshold_ms = edo__blocking_threshold(rt);
    return 0;
}

int edo_worker_stats(edo_runtime *rt, int index, edo_worker_info *out)
{
    if (!rt)
        rt = edo_runtime_current();
    if (!rt || !out || index < 0 || index >= rt->nworkers)
        return -EINVAL;
    edo__worker *w = &rt->workers[index];
    memset(out, 0, sizeof *out);
    out->index = index;
    uint64_t started = atomic_load_explicit(&w->run_started, memory_order_relaxed);
    uint64_t now = edo__cycles();
    if (started) {
        out->task_run_ns = now > started ? edo__cycles_to_ns(now - started) : 0;
        int64_t limit = edo__blocking_threshold(rt);
        out->state = limit >= 0 && out->task_run_ns >= (uint64_t)limit * 1000000
                         ? EDO_WORKER_BLOCKED
                         : EDO_WORKER_RUNNING;
        out->task = atomic_load_explicit(&w->running_id, memory_order_relaxed);
    } else {
        out->state = atomic_load(&w->parked) || atomic_load(&w->sleep_mode) != EDO__AWAKE
                         ? EDO_WORKER_IDLE
                         : EDO_WORKER_SCHEDULING;
    }
    out->queue_depth = edo__queue_len(&w->queue);
    out->tasks_run = atomic_load_explicit(&w->n_runs, memory_order_relaxed);
    out->steals = atomic_load_explicit(&w->n_steals, memory_order_relaxed);
    out->parks = atomic_load_explicit(&w->n_parks, memory_order_relaxed);
    out->polls = atomic_load_explicit(&w->n_polls, memory_order_relaxed);
    out->events = atomic_load_explicit(&w->n_events, memory_order_relaxed);
    out->timers_fired = atomic_load_explicit(&w->n_timers, memory_order_relaxed);
    out->forced_yields = atomic_load_explicit(&w->n_forced, memory_order_relaxed);
    out->blocking_reports = atomic_load_explicit(&w->n_blocking, memory_order_relaxed);
    out->handoffs = atomic_load_explicit(&w->n_handoffs, memory_order_relaxed);
    uint64_t busy = atomic_load_explicit(&w->busy_cycles, memory_order_relaxed);
    if (started && now > started)
        busy += now - started;
    out->busy_ns = edo__cycles_to_ns(busy);
    return 0;
}
