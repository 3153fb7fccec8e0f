/*
 * Task backtraces and task dumps (edo/observe.h): the backtrace of a parked task names the
 * function it is parked in, whatever it waits for (a sleep, a channel, a read, a mutex);
 * a running task is -EBUSY and an unknown one -ESRCH; a dump of 1,000 parked tasks lists
 * every one with its stack; stacks read while other threads wake the tasks lose no wake
 * and never run a task twice at once; the dump signal (SIGQUIT, a child process's stderr
 * is checked) prints a dump, is taken only from its default disposition and given back.
 *
 * A build without libunwind says so (-ENOSYS) and the checks of stack contents are left
 * out.
 */
#include "harness.h"

#include <edo/observe.h>
#include <edo/sync.h>

#include <fcntl.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/wait.h>

/* Where the tasks park: functions of their own, not inlined, whose call is not a tail
 * call (the barrier after it), so that each is a frame of the parked stack. */
#define PARK_FN __attribute__((noinline))

typedef struct parkers {
    edo_chan *ch;
    edo_mutex *mu;
    edo_io *rd[128];
    _Atomic int next_rd;
} parkers;

PARK_FN static int parked_in_sleep(void)
{
    int rc = edo_sleep(600000);
    __asm__ volatile("" ::: "memory");
    return rc;
}

PARK_FN static int parked_in_recv(edo_chan *ch)
{
    int v;
    int rc = edo_chan_recv(ch, &v);
    __asm__ volatile("" ::: "memory");
    return rc;
}

PARK_FN static int parked_in_read(edo_io *io)
{
    char c;
    int rc = (int)edo_read(io, &c, 1);
    __asm__ volatile("" ::: "memory");
    return rc;
}

PARK_FN static int parked_in_lock(edo_mutex *mu)
{
    int rc = edo_mutex_lock(mu);
    __asm__ volatile("" ::: "memory");
    if (rc == 0)
        edo_mutex_unlock(mu);
    return rc;
}

enum { K_SLEEP, K_RECV, K_READ, K_LOCK, KINDS };
static const char *const kind_fn[KINDS] = { "parked_in_sleep", "parked_in_recv", "parked_in_read",
                                            "parked_in_lock" };

typedef struct parker_arg {
    parkers *p;
    int kind;
    edo_io *io;
} parker_arg;

static void *parker(void *arg)
{
    parker_arg *a = arg;
    switch (a->kind) {
    case K_SLEEP:
        CHECK_ERR(parked_in_sleep(), -ECANCELED);
        break;
    case K_RECV:
        CHECK_ERR(parked_in_recv(a->p->ch), -ECANCELED);
        break;
    case K_READ:
        CHECK_ERR(parked_in_read(a->io), -ECANCELED);
        break;
    case K_LOCK: {
        int rc = parked_in_lock(a->p->mu);
        CHECK_MSG(rc == -ECANCELED || rc == 0, "lock: %d", rc);
        break;
    }
    }
    return NULL;
}

/* A socketpair's reading end as an edo_io (the writing end is kept open so no EOF comes). */
static edo_io *quiet_reader(int *other)
{
    int fd[2];
    CHECK_SYS(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd));
    edo_io *io;
    CHECK_OK(edo_io_wrap(&io, fd[0]));
    *other = fd[1];
    return io;
}

typedef struct crowd {
    parkers p;
    int n;
    edo_task **tasks;
    parker_arg *args;
    int *other_fds;
    int nreaders;
} crowd;

/* Spawns n tasks parked in the four functions, `readers` of them in reads (each on its
 * own socketpair), the rest in turn; returns once every one is parked. */
static void crowd_start(crowd *c, int n, int readers)
{
    memset(c, 0, sizeof *c);
    c->n = n;
    c->nreaders = readers;
    CHECK_OK(edo_chan_new(&c->p.ch, sizeof(int), 1));
    CHECK_OK(edo_mutex_new(&c->p.mu));
    CHECK_OK(edo_mutex_lock(c->p.mu));
    c->tasks = calloc((size_t)n, sizeof *c->tasks);
    c->args = calloc((size_t)n, sizeof *c->args);
    c->other_fds = calloc((size_t)readers + 1, sizeof *c->other_fds);
    CHECK(c->tasks && c->args && c->other_fds);
    int r = 0;
    for (int i = 0; i < n; i++) {
        parker_arg *a = &c->args[i];
        a->p = &c->p;
        if (r < readers) {
            a->kind = K_READ;
            a->io = quiet_reader(&c->other_fds[r++]);
        } else {
            a->kind = (i % 3 == 0) ? K_SLEEP : (i % 3 == 1) ? K_RECV : K_LOCK;
        }
        CHECK_OK(edo_spawn(&c->tasks[i], parker, a));
    }
    for (int i = 0; i < n; i++) {
        edo_task_info info;
        WAIT_UNTIL((edo_task_stats(c->tasks[i], &info),
                    info.state == EDO_TASK_PARKED && info.waiting_on != EDO_WAIT_NONE),
                   60000);
    }
}

static void crowd_end(crowd *c)
{
    for (int i = 0; i < c->n; i++)
        edo_abort(c->tasks[i]);
    for (int i = 0; i < c->n; i++)
        CHECK_ERR(edo_join(c->tasks[i], NULL), -EDO_EABORTED);
    for (int i = 0; i < c->n; i++)
        if (c->args[i].io)
            CHECK_OK(edo_close(c->args[i].io));
    for (int i = 0; i < c->nreaders; i++)
        close(c->other_fds[i]);
    edo_mutex_unlock(c->p.mu);
    edo_mutex_free(c->p.mu);
    edo_chan_free(c->p.ch);
    free(c->tasks);
    free(c->args);
    free(c->other_fds);
}

/* Whether this build takes stacks: a parked task's backtrace is not -ENOSYS. */
static bool have_backtraces(uint64_t parked)
{
    char b[8];
    return edo_task_backtrace(NULL, parked, b, sizeof b) != -ENOSYS;
}

/* ---- backtraces of single tasks ----------------------------------------------------------- */

static void *names_root(void *arg)
{
    (void)arg;
    crowd c;
    crowd_start(&c, 8, 2);
    char buf[4096];
    for (int i = 0; i < c.n; i++) {
        uint64_t id = edo_task_id(c.tasks[i]);
        int n = edo_task_backtrace(NULL, id, buf, sizeof buf);
        if (n == -ENOSYS) {
            printf("    no unwinder in this build: %s\n", edo_strerror(n));
            continue;
        }
        CHECK_OK(n);
        CHECK_LT(n, (int)sizeof buf);
        CHECK_EQ((size_t)n, strlen(buf));
        const char *want = kind_fn[c.args[i].kind];
        CHECK_MSG(strstr(buf, want) != NULL, "task %llu's backtrace lacks %s:\n%s",
                  (unsigned long long)id, want, buf);
        /* The frames are numbered from 0, one a line, and the task's function is there. */
        CHECK_MSG(strncmp(buf, "  #0 ", 5) == 0, "backtrace starts \"%.20s\"", buf);
        CHECK(strstr(buf, "parker") != NULL);
        if (i == 0)
            printf("    task %llu parked in %s:\n%s", (unsigned long long)id, want, buf);
        /* As snprintf: the length of the whole text, whatever fits. */
        char small[16];
        CHECK_EQ(edo_task_backtrace(NULL, id, small, sizeof small), n);
        CHECK_EQ(strlen(small), sizeof small - 1);
        CHECK_EQ(edo_task_backtrace(NULL, id, NULL, 0), n);
    }
    /* The caller runs; nobody may read its stack. (Just resumed: it cannot have been
     * reported blocking in this run, which would give the stack it was caught at.) */
    CHECK_OK(edo_yield());
    CHECK_ERR(edo_task_backtrace(NULL, edo_task_id(NULL), buf, sizeof buf), -EBUSY);
    CHECK_ERR(edo_task_backtrace(NULL, UINT64_MAX - 7, buf, sizeof buf), -ESRCH);
    CHECK_ERR(edo_task_backtrace(NULL, 0, buf, sizeof buf), -ESRCH);
    CHECK_ERR(edo_task_backtrace(NULL, edo_task_id(c.tasks[0]), NULL, 10), -EINVAL);
    uint64_t gone = edo_task_id(c.tasks[0]);
    crowd_end(&c);
    CHECK_ERR(edo_task_backtrace(NULL, gone, buf, sizeof buf), -ESRCH);
    return NULL;
}

static const test_root case_backtrace_names = { .fn = names_root };

/* From a thread outside the runtime, with no runtime of its own: rt must be named. */
static void *outside_thread(void *arg)
{
    char buf[256];
    CHECK_ERR(edo_task_backtrace(NULL, 1, buf, sizeof buf), -EINVAL);
    CHECK_ERR(edo_dump_tasks(NULL, NULL), -EINVAL);
    int n = edo_task_backtrace(arg, edo_task_id(NULL), buf, sizeof buf);
    CHECK_ERR(n, -ESRCH); /* this thread is no task */
    return NULL;
}

static void *outside_root(void *arg)
{
    (void)arg;
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, outside_thread, edo_runtime_current()), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    return NULL;
}

static const test_root case_backtrace_outside = { .fn = outside_root };

/* ---- a dump of 1,000 tasks ------------------------------------------------------------------ */

/* A thousand; under TSan, where each spawn and each stack read cost milliseconds, fewer. */
#define CROWD TEST_SCALE(1000, 1000, 250)

static int cmp_id(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void *dump_root(void *arg)
{
    (void)arg;
    /* Two descriptors a reader, and the runtime's own: stay well under the limit. */
    struct rlimit rl;
    CHECK_SYS(getrlimit(RLIMIT_NOFILE, &rl));
    int readers = rl.rlim_cur >= 1024 ? 100 : 20;
    crowd c;
    crowd_start(&c, CROWD, readers);
    uint64_t *ids = malloc(sizeof *ids * CROWD);
    int *kinds = malloc(sizeof *kinds * CROWD);
    bool *seen = calloc(CROWD, sizeof *seen);
    CHECK(ids && kinds && seen);
    for (int i = 0; i < CROWD; i++)
        ids[i] = edo_task_id(c.tasks[i]);
    qsort(ids, CROWD, sizeof *ids, cmp_id);
    for (int i = 0; i < CROWD; i++) {
        uint64_t *at =
            bsearch(&(uint64_t){ edo_task_id(c.tasks[i]) }, ids, CROWD, sizeof *ids, cmp_id);
        kinds[at - ids] = c.args[i].kind;
    }

    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK(f != NULL);
    int64_t t0 = test_clock_ms();
    int n = edo_dump_tasks(NULL, f);
    int64_t took = test_clock_ms() - t0;
    CHECK_EQ(fclose(f), 0);
    CHECK_OK(n);
    CHECK_GE(n, CROWD + 1); /* and this task */
    printf("    dump of %d tasks: %zu bytes in %lld ms\n", n, len, (long long)took);

    /* The last line counts them. */
    char tail[64];
    snprintf(tail, sizeof tail, "edo: %d tasks\n", n);
    CHECK_MSG(len >= strlen(tail) && strcmp(text + len - strlen(tail), tail) == 0, "ends: %s",
              len > 40 ? text + len - 40 : text);

    /* Block by block: a head line "task ID ..." and what follows until the blank line. */
    bool stacks = have_backtraces(ids[0]);
    int listed = 0, named = 0;
    char *line = text;
    int cur = -1;
    bool cur_named = false;
    while (line && *line) {
        char *end = strchr(line, '\n');
        if (end)
            *end = 0;
        unsigned long long id;
        if (sscanf(line, "task %llu ", &id) == 1) {
            uint64_t *at = bsearch(&(uint64_t){ id }, ids, CROWD, sizeof *ids, cmp_id);
            cur = at ? (int)(at - ids) : -1;
            cur_named = false;
            if (cur >= 0) {
                CHECK_MSG(!seen[cur], "task %llu listed twice", id);
                seen[cur] = true;
                listed++;
                CHECK_MSG(strstr(line, " parked ") != NULL, "not parked: %s", line);
            }
        } else if (cur >= 0 && !cur_named && strstr(line, kind_fn[kinds[cur]])) {
            cur_named = true;
            named++;
        } else if (cur >= 0 && strstr(line, "(no backtrace:")) {
            CHECK(!stacks);
        }
        line = end ? end + 1 : NULL;
    }
    CHECK_EQ(listed, CROWD);
    if (stacks)
        CHECK_EQ(named, CROWD);
    free(text);
    free(ids);
    free(kinds);
    free(seen);
    crowd_end(&c);
    return NULL;
}

static const test_root case_dump_thousand = { .fn = dump_root };

/* ---- reading stacks while the tasks are woken --------------------------------------------- */

#define STRESS_TASKS TEST_SCALE(32, 16, 8)
#define STRESS_READS TEST_SCALE(3000, 1000, 300) /* stacks read while the wakes go on */

/* Receivers on channels of room for one, fed by a thread (even values) and a task (odd),
 * each in order; two threads read the stacks of receivers and of the feeding task all the
 * while. A wake lost to a read leaves a message in a channel with its receiver parked (or
 * the feeding task parked on a full one) for good; a task run twice at once is caught by
 * its `inside` count. */
typedef struct stress {
    edo_runtime *rt;
    edo_chan *ch[STRESS_TASKS];
    uint64_t ids[STRESS_TASKS + 1]; /* the receivers, and the feeding task */
    _Atomic int inside[STRESS_TASKS];
    _Atomic long received[STRESS_TASKS], sent[STRESS_TASKS];
    _Atomic bool stop, done;
    _Atomic long read_ok, read_busy;
} stress;

typedef struct stress_arg {
    stress *s;
    int i;
} stress_arg;

PARK_FN static int stress_recv(edo_chan *ch, int *v)
{
    int rc = edo_chan_recv(ch, v);
    __asm__ volatile("" ::: "memory");
    return rc;
}

static void *stress_task(void *arg)
{
    stress_arg *a = arg;
    stress *s = a->s;
    int next[2] = { 0, 0 };
    int v, rc;
    while ((rc = stress_recv(s->ch[a->i], &v)) == 0) {
        /* Two workers running this task at once would both be in here. */
        CHECK_EQ(atomic_fetch_add(&s->inside[a->i], 1), 0);
        CHECK_EQ(v >> 1, next[v & 1]);
        next[v & 1]++;
        atomic_fetch_add(&s->received[a->i], 1);
        if (next[0] % 7 == 0)
            CHECK_OK(edo_yield());
        atomic_fetch_sub(&s->inside[a->i], 1);
    }
    CHECK_ERR(rc, -EDO_ECLOSED);
    return NULL;
}

/* From outside the runtime, never waiting: a wake from a foreign thread each time. */
static void *stress_sender_thread(void *arg)
{
    stress *s = arg;
    int k[STRESS_TASKS] = { 0 };
    while (!atomic_load(&s->stop))
        for (int i = 0; i < STRESS_TASKS; i++)
            if (edo_chan_try_send(s->ch[i], &(int){ k[i] << 1 }) == 0) {
                k[i]++;
                atomic_fetch_add(&s->sent[i], 1);
            }
    return NULL;
}

/* From a task, parking on a full channel (and woken by its receiver). */
static void *stress_sender_task(void *arg)
{
    stress *s = arg;
    int k = 0;
    while (!atomic_load(&s->stop)) {
        for (int i = 0; i < STRESS_TASKS; i++) {
            int rc = edo_chan_send(s->ch[i], &(int){ (k << 1) | 1 });
            CHECK_MSG(rc == 0, "send: %s (a lost wake?)", edo_strerror(rc));
            atomic_fetch_add(&s->sent[i], 1);
        }
        k++;
    }
    return NULL;
}

static void *stress_reader(void *arg)
{
    stress *s = arg;
    test_rng r = test_rng_new((uint64_t)(uintptr_t)&r);
    char buf[4096];
    while (!atomic_load(&s->done)) {
        int i = (int)test_rng_range(&r, 0, STRESS_TASKS);
        int n = edo_task_backtrace(s->rt, s->ids[i], buf, sizeof buf);
        if (n == -ENOSYS) {
            atomic_fetch_add(&s->read_ok, 1); /* no unwinder, but it was held all the same */
        } else if (n >= 0) {
            const char *fn = i < STRESS_TASKS ? "stress_task" : "stress_sender_task";
            CHECK_MSG(strstr(buf, fn) != NULL, "backtrace:\n%s", buf);
            atomic_fetch_add(&s->read_ok, 1);
        } else {
            /* The feeding task returns once stopped; the receivers only after `done`. */
            bool gone = n == -ESRCH && i == STRESS_TASKS && atomic_load(&s->stop);
            CHECK_MSG(n == -EBUSY || gone, "backtrace of task %llu (%d of %d): %s",
                      (unsigned long long)s->ids[i], i, STRESS_TASKS, edo_strerror(n));
            atomic_fetch_add(&s->read_busy, 1);
        }
    }
    return NULL;
}

static void *stress_root(void *arg)
{
    (void)arg;
    stress *s = calloc(1, sizeof *s);
    stress_arg args[STRESS_TASKS];
    edo_task *t[STRESS_TASKS], *st;
    s->rt = edo_runtime_current();
    for (int i = 0; i < STRESS_TASKS; i++) {
        CHECK_OK(edo_chan_new(&s->ch[i], sizeof(int), 1));
        args[i] = (stress_arg){ s, i };
        CHECK_OK(edo_spawn(&t[i], stress_task, &args[i]));
        s->ids[i] = edo_task_id(t[i]);
    }
    /* The feeding task's deadline ends a send that waits for ever. */
    int64_t scope = edo_timeout_begin(120000);
    CHECK_OK(edo_spawn(&st, stress_sender_task, s));
    edo_deadline_end(scope);
    s->ids[STRESS_TASKS] = edo_task_id(st);
    pthread_t readers[2], sender;
    for (int k = 0; k < 2; k++)
        CHECK_EQ(pthread_create(&readers[k], NULL, stress_reader, s), 0);
    CHECK_EQ(pthread_create(&sender, NULL, stress_sender_thread, s), 0);
    WAIT_UNTIL(atomic_load(&s->read_ok) >= STRESS_READS, 60000);
    atomic_store(&s->stop, true);
    CHECK_EQ(pthread_join(sender, NULL), 0);
    CHECK_OK(edo_join(st, NULL));
    /* Every message sent is received: none waits in a channel behind a parked receiver. */
    for (int i = 0; i < STRESS_TASKS; i++)
        WAIT_UNTIL(atomic_load(&s->received[i]) == atomic_load(&s->sent[i]), 30000);
    atomic_store(&s->done, true);
    for (int k = 0; k < 2; k++)
        CHECK_EQ(pthread_join(readers[k], NULL), 0);
    long msgs = 0;
    for (int i = 0; i < STRESS_TASKS; i++) {
        edo_chan_close(s->ch[i]);
        CHECK_OK(edo_join(t[i], NULL));
        msgs += atomic_load(&s->received[i]);
        edo_chan_free(s->ch[i]);
    }
    printf("    %ld stacks read (%ld times not parked) while %ld messages passed\n",
           (long)atomic_load(&s->read_ok), (long)atomic_load(&s->read_busy), msgs);
    free(s);
    return NULL;
}

/* Not watched for blocking: a task caught running long would answer with the stack it was
 * caught at, which is not what this case reads. */
static const test_root case_peek_while_woken = { .fn = stress_root,
                                                 .opts = &(edo_runtime_opts){ .blocking_ms = -1 } };

/* ---- the dump signal ---------------------------------------------------------------------- */

static bool handler_is_default(int sig)
{
    struct sigaction cur;
    CHECK_SYS(sigaction(sig, NULL, &cur));
    return !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_DFL;
}

static void programs_handler(int sig)
{
    (void)sig;
}

static void case_dump_signal_taken(void)
{
    edo_runtime *a, *b;
    CHECK(handler_is_default(SIGQUIT));
    CHECK_OK(edo_runtime_new(&a, NULL));
    CHECK(!handler_is_default(SIGQUIT));
    CHECK_OK(edo_runtime_new(&b, NULL)); /* shares it */
    edo_runtime_free(a);
    CHECK(!handler_is_default(SIGQUIT));
    edo_runtime_free(b);
    CHECK(handler_is_default(SIGQUIT)); /* given back by the last */

    /* Not taken: asked not to; another signal asked for instead. */
    CHECK_OK(edo_runtime_new(&a, &(edo_runtime_opts){ .dump_signal = -1 }));
    CHECK(handler_is_default(SIGQUIT));
    edo_runtime_free(a);
    CHECK(handler_is_default(SIGUSR1));
    CHECK_OK(edo_runtime_new(&a, &(edo_runtime_opts){ .dump_signal = SIGUSR1 }));
    CHECK(handler_is_default(SIGQUIT));
    CHECK(!handler_is_default(SIGUSR1));
    edo_runtime_free(a);
    CHECK(handler_is_default(SIGUSR1));

    /* A signal that cannot be one. */
    CHECK_ERR(edo_runtime_new(&a, &(edo_runtime_opts){ .dump_signal = SIGKILL }), -EINVAL);
    CHECK_ERR(edo_runtime_new(&a, &(edo_runtime_opts){ .dump_signal = SIGSEGV }), -EINVAL);
    CHECK_ERR(edo_runtime_new(&a, &(edo_runtime_opts){ .dump_signal = NSIG + 3 }), -EINVAL);

    /* The program's own handler stays, and stays after. */
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = programs_handler;
    CHECK_SYS(sigaction(SIGQUIT, &sa, &old));
    CHECK_OK(edo_runtime_new(&a, NULL));
    struct sigaction cur;
    CHECK_SYS(sigaction(SIGQUIT, NULL, &cur));
    CHECK(cur.sa_handler == programs_handler);
    edo_runtime_free(a);
    CHECK_SYS(sigaction(SIGQUIT, NULL, &cur));
    CHECK(cur.sa_handler == programs_handler);
    CHECK_SYS(sigaction(SIGQUIT, &old, NULL));

    /* EDO_DUMP_SIGNAL: a name, a number, off; anything else is refused. (No thread of this
     * process runs now: setenv is safe.) */
    static const struct {
        const char *val;
        int sig; /* taken; 0: none; -1: edo_runtime_new refuses */
    } env[] = { { "SIGUSR2", SIGUSR2 }, { "usr2", SIGUSR2 }, { "10", SIGUSR1 }, { "off", 0 },
                { "SIGKILL", -1 },      { "nonsense", -1 },  { "0x3", -1 },     { "99", -1 } };
    for (size_t i = 0; i < sizeof env / sizeof env[0]; i++) {
        CHECK_SYS(setenv("EDO_DUMP_SIGNAL", env[i].val, 1));
        int rc = edo_runtime_new(&a, NULL);
        if (env[i].sig < 0) {
            CHECK_MSG(rc == -EINVAL, "EDO_DUMP_SIGNAL=%s: %d", env[i].val, rc);
            continue;
        }
        CHECK_OK(rc);
        CHECK_MSG(handler_is_default(SIGQUIT), "EDO_DUMP_SIGNAL=%s took SIGQUIT", env[i].val);
        if (env[i].sig)
            CHECK_MSG(!handler_is_default(env[i].sig), "EDO_DUMP_SIGNAL=%s", env[i].val);
        edo_runtime_free(a);
        if (env[i].sig)
            CHECK(handler_is_default(env[i].sig));
    }
    CHECK_SYS(unsetenv("EDO_DUMP_SIGNAL"));
}

/* A task that waits for the dump signal itself gets it (edo_signal_wait takes it over,
 * edo's own handler saved), and once the runtime is freed the signal is the system's
 * again: given back by signal.c to edo's dump, then by the dump to the default. */
static void *quit_waiter(void *arg)
{
    (void)arg;
    return VAL(edo_signal_wait((int[]){ SIGQUIT }, 1));
}

static void *quit_wait_root(void *arg)
{
    (void)arg;
    CHECK(!handler_is_default(SIGQUIT));
    edo_task *t;
    CHECK_OK(edo_spawn(&t, quit_waiter, NULL));
    test_wait_parked(t, EDO_WAIT_SIGNAL);
    CHECK_SYS(kill(getpid(), SIGQUIT));
    void *res;
    CHECK_OK(edo_join(t, &res));
    CHECK_EQ(INT(res), SIGQUIT);
    return NULL;
}

static void case_dump_signal_waited_for(void)
{
    CHECK(handler_is_default(SIGQUIT));
    test_run(quit_wait_root, NULL);
    CHECK(handler_is_default(SIGQUIT));
}

/* The child: a runtime (EDO_WORKERS, EDO_BACKEND as given) with tasks parked in
 * child_parked_here; says "ready" on stdout, and ends when its stdin is closed. (Its body
 * differs from the other parking functions': identical ones may be folded into one.) */
PARK_FN static int child_parked_here(edo_notify *n)
{
    int rc = edo_notify_wait(n);
    __asm__ volatile("" ::: "memory");
    return rc;
}

static void *child_waiter(void *arg)
{
    child_parked_here(arg);
    return NULL;
}

static void *child_root(void *arg)
{
    (void)arg;
    edo_notify *ch;
    CHECK_OK(edo_notify_new(&ch));
    edo_task *t[3];
    for (int i = 0; i < 3; i++)
        CHECK_OK(edo_spawn(&t[i], child_waiter, ch));
    for (int i = 0; i < 3; i++)
        test_wait_parked(t[i], EDO_WAIT_NOTIFY);
    edo_io *in;
    CHECK_OK(edo_io_wrap(&in, dup(0)));
    CHECK_EQ(write(1, "ready\n", 6), 6);
    char c;
    while (edo_read(in, &c, 1) > 0) {
    }
    edo_notify_all(ch);
    for (int i = 0; i < 3; i++)
        CHECK_OK(edo_join(t[i], NULL));
    edo_close(in);
    edo_notify_free(ch);
    return NULL;
}

static int child_main(void)
{
    test_run(child_root, NULL);
    return 0;
}

typedef struct child {
    pid_t pid;
    int in, out, err; /* its stdin (ours to write), stdout, stderr */
} child;

/* Starts this program as a child ("--child"), with EDO_DUMP_SIGNAL as given (NULL: unset). */
static void child_start(child *c, const char *dump_signal)
{
    extern char **environ;
    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    char **envp = calloc(nenv + 2, sizeof *envp), var[64];
    size_t k = 0;
    for (size_t i = 0; i < nenv; i++)
        if (strncmp(environ[i], "EDO_DUMP_SIGNAL=", 16) != 0)
            envp[k++] = environ[i];
    if (dump_signal) {
        snprintf(var, sizeof var, "EDO_DUMP_SIGNAL=%s", dump_signal);
        envp[k++] = var;
    }
    int in[2], out[2], err[2];
    CHECK_SYS(pipe2(in, O_CLOEXEC));
    CHECK_SYS(pipe2(out, O_CLOEXEC));
    CHECK_SYS(pipe2(err, O_CLOEXEC));
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    CHECK_SYS(n);
    self[n] = 0;
    fflush(stdout);
    fflush(stderr);
    c->pid = (pid_t)CHECK_SYS(fork());
    if (c->pid == 0) {
        /* Only async-signal-safe calls between fork and exec. */
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        struct rlimit no_core = { 0, 0 };
        setrlimit(RLIMIT_CORE, &no_core);
        execve(self, (char *[]){ self, "--child", NULL }, envp);
        _exit(127);
    }
    free(envp);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    c->in = in[1];
    c->out = out[0];
    c->err = err[0];
}

/* Reads fd into buf (appending) until `want` is in it, EOF, or ms pass. True if found. */
static bool read_until(int fd, char *buf, size_t len, size_t *have, const char *want, int ms)
{
    int64_t t0 = test_clock_ms();
    for (;;) {
        buf[*have] = 0;
        if (want && strstr(buf, want))
            return true;
        int64_t left = ms - (test_clock_ms() - t0);
        if (left <= 0)
            return false;
        struct pollfd pf = { .fd = fd, .events = POLLIN };
        if (poll(&pf, 1, (int)left) <= 0)
            continue;
        ssize_t n = read(fd, buf + *have, len - 1 - *have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return want == NULL;
        *have += (size_t)n;
    }
}

static int child_end(child *c)
{
    close(c->in);
    int status;
    while (waitpid(c->pid, &status, 0) < 0)
        CHECK_MSG(errno == EINTR, "waitpid: %s", strerror(errno));
    close(c->out);
    close(c->err);
    return status;
}

static void case_dump_on_sigquit(void)
{
    child c;
    child_start(&c, NULL);
    char out[64], *err = calloc(1, 65536);
    size_t have_out = 0, have_err = 0;
    CHECK_MSG(read_until(c.out, out, sizeof out, &have_out, "ready\n", 60000),
              "the child never got ready");
    CHECK_SYS(kill(c.pid, SIGQUIT));
    bool got = read_until(c.err, err, 65536, &have_err, "tasks\n", 60000);
    int status = child_end(&c);
    CHECK_MSG(got, "no dump on the child's stderr:\n%s", err);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the child did not end well (status %#x); its stderr:\n%s", status, err);
    printf("    the child's dump:\n%s", err);
    CHECK(strstr(err, "edo: task dump of pid ") != NULL);
    /* Its root (in a read), and the three waiters, parked in a notify's wait. */
    int parked = 0;
    for (const char *p = err; (p = strstr(p, "\" parked ")); p++)
        parked++;
    CHECK_GE(parked, 4);
    CHECK(strstr(err, "notify wait") != NULL);
    if (!strstr(err, "(no backtrace:")) {
        int named = 0;
        for (const char *p = err; (p = strstr(p, "child_parked_here")); p++)
            named++;
        CHECK_EQ(named, 3);
    }
    free(err);
}

/* Off: SIGQUIT keeps its default action, which ends the child. */
static void case_dump_signal_off(void)
{
    child c;
    child_start(&c, "off");
    char out[64], err[4096];
    size_t have_out = 0, have_err = 0;
    CHECK_MSG(read_until(c.out, out, sizeof out, &have_out, "ready\n", 60000),
              "the child never got ready");
    CHECK_SYS(kill(c.pid, SIGQUIT));
    read_until(c.err, err, sizeof err, &have_err, NULL, 60000);
    int status = child_end(&c);
    CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGQUIT, "status %#x; its stderr:\n%s",
              status, err);
    CHECK_MSG(!strstr(err, "task dump"), "a dump came:\n%s", err);
}

static const test_case cases[] = {
    TEST_CASE(case_backtrace_names),        TEST_CASE_BACKENDS(case_backtrace_outside),
    TEST_CASE(case_dump_thousand),          TEST_CASE(case_peek_while_woken),
    TEST_CASE_ONCE(case_dump_signal_taken), TEST_CASE_BACKENDS(case_dump_signal_waited_for),
    TEST_CASE(case_dump_on_sigquit),        TEST_CASE_BACKENDS(case_dump_signal_off),
};

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--child") == 0)
        return child_main();
    return test_main(__FILE__, cases, sizeof cases / sizeof cases[0], argc, argv);
}
