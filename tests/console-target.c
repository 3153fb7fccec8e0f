/*
 * console-target: a program with tasks in known states, for the tests of the console
 * endpoint and of the console tool. It makes its runtime with the defaults, so
 * EDO_CONSOLE, EDO_METRICS, EDO_WORKERS and EDO_BACKEND come from the environment; prints
 * "ready" on standard output once every task below is parked where it says; and runs
 * until SIGTERM or SIGINT, then ends every task and exits 0.
 *
 * The tasks (their names, what they wait in, and so the console's "wait"), a stable list
 * that tests rely on:
 *   sleeper   edo_sleep of an hour                               sleep
 *   reader    edo_read on one end of a socketpair nobody writes  read
 *   holder    holds an edo_mutex and sleeps an hour              sleep
 *   locker    edo_mutex_lock on the mutex holder holds           lock
 *   receiver  edo_chan_recv on a channel nobody sends on         chan
 *   joiner    edo_join of sleeper                                join
 *   selector  edo_select of 3 cases: a recv on a second empty
 *             channel, a notify nobody signals, an hour's timeout select
 * The root task (spawned by edo_main, site "edo_block_on") waits for the signal.
 */
#include <edo.h>
#include <edo/sync.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HOUR_MS (3600 * 1000)

typedef struct target {
    edo_mutex *mutex;
    edo_chan *chan, *chan2;
    edo_notify *notify;
    edo_io *rd; /* the reader's end; the other end stays open and silent */
    int other_end;
    edo_task *sleeper; /* joined by joiner */
} target;

static void *sleeper(void *arg)
{
    (void)arg;
    edo_sleep(HOUR_MS);
    return NULL;
}

static void *reader(void *arg)
{
    target *t = arg;
    char c;
    edo_read(t->rd, &c, 1);
    return NULL;
}

static void *holder(void *arg)
{
    target *t = arg;
    if (edo_mutex_lock(t->mutex) < 0)
        return NULL;
    edo_sleep(HOUR_MS);
    edo_mutex_unlock(t->mutex);
    return NULL;
}

static void *locker(void *arg)
{
    target *t = arg;
    if (edo_mutex_lock(t->mutex) == 0)
        edo_mutex_unlock(t->mutex);
    return NULL;
}

static void *receiver(void *arg)
{
    target *t = arg;
    int v;
    edo_chan_recv(t->chan, &v);
    return NULL;
}

static void *joiner(void *arg)
{
    target *t = arg;
    edo_join(t->sleeper, NULL);
    return NULL;
}

static void *selector(void *arg)
{
    target *t = arg;
    int v;
    edo_case cs[] = { edo_case_recv(t->chan2, &v), edo_case_notify(t->notify),
                      edo_case_timeout(HOUR_MS) };
    edo_select(cs, 3);
    return NULL;
}

static int fail(int rc, const char *what)
{
    fprintf(stderr, "console-target: %s: %s\n", what, edo_strerror(rc));
    return rc;
}

/* Waits until task is parked on why (each task parks right after it starts). */
static int wait_parked(edo_task *task, edo_wait_reason why)
{
    for (int i = 0; i < 60000; i++) {
        edo_task_info info;
        edo_task_stats(task, &info);
        if (info.state == EDO_TASK_PARKED && info.waiting_on == why)
            return 0;
        edo_sleep(1);
    }
    return -ETIMEDOUT;
}

static void *run(void *arg)
{
    (void)arg;
    static const int sigs[] = { SIGTERM, SIGINT };
    int rc = edo_signal_take(sigs, 2);
    if (rc < 0)
        return edo_int_result(fail(rc, "take SIGTERM and SIGINT"));
    target t;
    memset(&t, 0, sizeof t);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return edo_int_result(fail(-errno, "socketpair"));
    t.other_end = sv[1];
    if ((rc = edo_io_wrap(&t.rd, sv[0])) < 0 || (rc = edo_mutex_new(&t.mutex)) < 0 ||
        (rc = edo_chan_new(&t.chan, sizeof(int), 4)) < 0 ||
        (rc = edo_chan_new(&t.chan2, sizeof(int), 4)) < 0 || (rc = edo_notify_new(&t.notify)) < 0)
        return edo_int_result(fail(rc, "set up"));

    struct {
        const char *name;
        edo_task_fn fn;
        edo_wait_reason why;
        edo_task *task;
    } tasks[] = {
        { "sleeper", sleeper, EDO_WAIT_SLEEP, NULL },    { "reader", reader, EDO_WAIT_READ, NULL },
        { "holder", holder, EDO_WAIT_SLEEP, NULL },      { "locker", locker, EDO_WAIT_LOCK, NULL },
        { "receiver", receiver, EDO_WAIT_CHAN, NULL },   { "joiner", joiner, EDO_WAIT_JOIN, NULL },
        { "selector", selector, EDO_WAIT_SELECT, NULL },
    };
    size_t n = sizeof tasks / sizeof *tasks;
    for (size_t i = 0; i < n; i++) {
        edo_spawn_opts o = { .name = tasks[i].name };
        /* sleeper's handle is joiner's to join; the others are joined below. */
        if ((rc = edo_spawn_with(i == 0 ? &t.sleeper : &tasks[i].task, &o, tasks[i].fn, &t)) < 0)
            return edo_int_result(fail(rc, "spawn"));
        if (i == 0 && (rc = wait_parked(t.sleeper, EDO_WAIT_SLEEP)) < 0)
            return edo_int_result(fail(rc, "wait for sleeper"));
        if (i == 2 && (rc = wait_parked(tasks[2].task, EDO_WAIT_SLEEP)) < 0)
            return edo_int_result(fail(rc, "wait for holder")); /* it holds the mutex now */
    }
    for (size_t i = 1; i < n; i++)
        if ((rc = wait_parked(tasks[i].task, tasks[i].why)) < 0)
            return edo_int_result(fail(rc, tasks[i].name));
    printf("ready\n");
    fflush(stdout);

    rc = edo_signal_wait(sigs, 2);
    if (rc < 0)
        fail(rc, "wait for a signal");
    /* Sleeper first, while joiner still holds its handle (joiner's join releases it). */
    edo_abort(t.sleeper);
    for (size_t i = 1; i < n; i++)
        edo_abort(tasks[i].task);
    for (size_t i = 1; i < n; i++)
        edo_join(tasks[i].task, NULL);
    edo_close(t.rd);
    close(t.other_end);
    edo_mutex_free(t.mutex);
    edo_chan_free(t.chan);
    edo_chan_free(t.chan2);
    edo_notify_free(t.notify);
    return edo_int_result(rc < 0 ? rc : 0);
}

int main(void)
{
    return edo_main(run, NULL);
}
