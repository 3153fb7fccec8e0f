/*
 * Task backtraces and task dumps (edo/observe.h): edo_task_backtrace and edo_dump_tasks.
 *
 * A parked task's stack is read while it is kept from resuming (edo__task_peek: a wake
 * that comes meanwhile waits until the walk is over), and named after it has been let go
 * (backtrace.h). A running task has no stack anyone else may read: what it has is the one
 * its blocking report caught (blocking.h). From any thread; nothing here suspends.
 */
#include "core/runtime.h"
#include "edo/observe.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The text of one task's stack, at most, in a dump (the frames beyond are left out). */
#define DUMP_STACK 4096

typedef struct stack_job {
    edo_task *t;
    const edo__bt *bt; /* taken already (the caller's own stack), or NULL */
    char *buf;
    size_t len;
    ssize_t rc;
    uint64_t parked_ns;
} stack_job;

/* Inside edo__bt_call: reads and names the job's stack. */
static void stack_job_run(void *arg)
{
    stack_job *j = arg;
    edo__bt bt;
    if (j->bt) {
        j->rc = (ssize_t)edo__bt_format(j->bt, j->buf, j->len);
        return;
    }
    int rc = edo__task_peek(j->t);
    if (rc < 0) {
        j->rc = rc;
        return;
    }
    uint64_t out = j->t->out_cycles; /* written before it parked: stable while peeked */
    rc = edo__bt_available() ? edo__bt_of_ctx(&j->t->ctx, &bt) : -ENOSYS;
    edo__task_unpeek(j->t);
    uint64_t now = edo__cycles();
    j->parked_ns = now > out ? edo__cycles_to_ns(now - out) : 0;
    j->rc = rc < 0 ? rc : (ssize_t)edo__bt_format(&bt, j->buf, j->len);
}

/* The stack of t (held by the caller) as text into buf, as snprintf; *parked_ns (if not
 * NULL) how long it has been parked. -EBUSY: running or queued, and not caught blocking;
 * -ESRCH: it has returned; -ENOSYS: no unwinder. */
static ssize_t task_stack(edo_runtime *rt, edo_task *t, char *buf, size_t len, uint64_t *parked_ns)
{
    stack_job j = { t, NULL, buf, len, -EBUSY, 0 };
    edo__bt_call(stack_job_run, &j);
    if (parked_ns)
        *parked_ns = j.parked_ns;
    if (j.rc == -EBUSY) {
        ssize_t n = edo__blocking_stack(rt, t->id, true, buf, len);
        if (n >= 0)
            return n;
    }
    return j.rc;
}

int edo_task_backtrace(edo_runtime *rt, uint64_t id, char *buf, size_t len)
{
    if (!rt)
        rt = edo_runtime_current();
    if (!rt || (!buf && len))
        return -EINVAL;
    if (len)
        buf[0] = 0;
    edo_task *t = edo__task_find(rt, id);
    if (!t)
        return -ESRCH;
    ssize_t n = task_stack(rt, t, buf, len, NULL);
    edo__task_unref(t);
    return n > INT_MAX ? INT_MAX : (int)n;
}

/* ---- dumps ----------------------------------------------------------------------------- */

struct dump {
    edo_runtime *rt;
    FILE *f;
    char *stack; /* DUMP_STACK bytes */
    int n;
};

/* Cuts a stack text that did not fit after its last whole frame. */
static void cut_text(char *buf, size_t len, ssize_t n)
{
    if (n < 0 || (size_t)n < len)
        return;
    char *nl = memrchr(buf, '\n', len - 1);
    if (nl)
        nl[1] = 0;
}

/* How long the worker running task `id` has been in its run, in ns; 0 if none is. */
static uint64_t running_for(edo_runtime *rt, uint64_t id, int *worker)
{
    for (int i = 0; i < rt->nworkers; i++) {
        edo__worker *w = &rt->workers[i];
        uint64_t start = atomic_load_explicit(&w->run_started, memory_order_acquire);
        if (start && atomic_load_explicit(&w->running_id, memory_order_relaxed) == id) {
            uint64_t now = edo__cycles();
            *worker = i;
            return now > start ? edo__cycles_to_ns(now - start) : 0;
        }
    }
    return 0;
}

static void add(char *buf, size_t len, size_t *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Appends to the text in buf (at *at), as far as it fits. */
static void add(char *buf, size_t len, size_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *at, len - *at, fmt, ap);
    va_end(ap);
    if (n > 0)
        *at = *at + (size_t)n < len ? *at + (size_t)n : len - 1;
}

static void dump_one(edo_task *t, void *arg)
{
    struct dump *d = arg;
    edo_task_info info;
    edo_task_stats(t, &info);
    if (info.state == EDO_TASK_DONE)
        return; /* returned while the list was walked */
    char head[512];
    size_t at = 0;
    const char *note = NULL;
    ssize_t got = -EBUSY;
    d->stack[0] = 0;
    add(head, sizeof head, &at, "task %llu \"%s\" ", (unsigned long long)info.id, info.name);
    if (info.state == EDO_TASK_PARKED) {
        uint64_t parked_ns = 0;
        got = task_stack(d->rt, t, d->stack, DUMP_STACK, &parked_ns);
        if (got == -EBUSY || got == -ESRCH) {
            /* Woken (or ended) between the snapshot and the look at its stack. */
            add(head, sizeof head, &at, "ready (woken just now)\n");
        } else {
            add(head, sizeof head, &at, "parked %llu ms: %s\n",
                (unsigned long long)(parked_ns / 1000000),
                info.wait[0] ? info.wait : edo_wait_reason_name(info.waiting_on));
        }
    } else if (info.state == EDO_TASK_RUNNING) {
        int worker = info.worker;
        uint64_t ran = running_for(d->rt, info.id, &worker);
        if (t == edo__task_current()) {
            /* Its own stack, taken here on it, named on the big one. */
            edo__bt bt;
            if (edo__bt_here(&bt, 0) == 0) {
                stack_job j = { t, &bt, d->stack, DUMP_STACK, -EBUSY, 0 };
                edo__bt_call(stack_job_run, &j);
                got = j.rc;
                note = "  (the task printing this dump)\n";
            }
        } else {
            got = edo__blocking_stack(d->rt, info.id, false, d->stack, DUMP_STACK);
            if (got >= 0)
                note = "  caught where it was reported blocking:\n";
        }
        add(head, sizeof head, &at, "running on worker %d for %llu ms\n", worker,
            (unsigned long long)(ran / 1000000));
    } else {
        add(head, sizeof head, &at, "ready (waiting for a worker)\n");
    }
    add(head, sizeof head, &at, "  spawned at %s", info.spawn_site ? info.spawn_site : "?");
    if (info.parent)
        add(head, sizeof head, &at, " by task %llu", (unsigned long long)info.parent);
    if (info.worker >= 0)
        add(head, sizeof head, &at, ", worker %d", info.worker);
    add(head, sizeof head, &at, ", resumes %llu, busy %.1f ms\n", (unsigned long long)info.resumes,
        (double)info.busy_ns / 1e6);
    cut_text(d->stack, DUMP_STACK, got);
    fputs(head, d->f);
    if (note)
        fputs(note, d->f);
    if (got >= 0)
        fputs(d->stack, d->f);
    else if (got == -ENOSYS && info.state == EDO_TASK_PARKED)
        fprintf(d->f, "  (no backtrace: %s)\n",
                edo__bt_available() ? "stacks of suspended tasks are not read on this CPU"
                                    : EDO__BT_NONE);
    fputc('\n', d->f);
    d->n++;
}

int edo_dump_tasks(edo_runtime *rt, FILE *f)
{
    if (!rt)
        rt = edo_runtime_current();
    if (!rt)
        return -EINVAL;
    if (!f)
        f = stderr;
    struct dump d = { rt, f, malloc(DUMP_STACK), 0 };
    if (!d.stack)
        return -ENOMEM;
    flockfile(f); /* one dump, not interleaved with another thread's lines */
    fprintf(f, "edo: task dump of pid %d (%d worker%s, %s), at %lld ms\n\n", (int)getpid(),
            rt->nworkers, rt->nworkers == 1 ? "" : "s", edo_backend_name(rt->backend),
            (long long)edo__clock_ms(rt));
    edo__task_each(rt, dump_one, &d);
    fprintf(f, "edo: %d task%s\n", d.n, d.n == 1 ? "" : "s");
    fflush(f);
    int err = ferror(f) ? -EIO : 0;
    funlockfile(f);
    free(d.stack);
    return err < 0 ? err : d.n;
}
