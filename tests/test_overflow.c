/*
 * A task that overflows its stack hits the guard page (or, on a stack without one, its
 * canary), and the process dies with a report that names the task and where it was
 * spawned. Each overflow happens in a forked child whose stderr comes back through a pipe.
 *
 * edo-test: timeout=60
 */
#include "harness.h"

#include <limits.h>
#include <sys/wait.h>

/* Far beyond any stack; volatile so that the compiler cannot prove the recursion endless. */
static volatile int depth_limit = INT_MAX;

__attribute__((noinline)) static int recurse(int n)
{
    volatile char pad[256];
    pad[0] = (char)n;
    pad[255] = (char)(n >> 8);
    if (n >= depth_limit)
        return pad[0];
    /* Not a tail call: the frame is needed after the call returns. */
    return recurse(n + 1) + pad[n & 255];
}

static void *recurse_task(void *arg)
{
    return (void *)(intptr_t)recurse(0);
}

static void *bystander_task(void *arg)
{
    edo_sleep(1000000);
    return NULL;
}

typedef struct overflow_plan {
    const char *name; /* NULL: unnamed */
    size_t stack_size;
    int bystanders;
} overflow_plan;

static void *overflow_root(void *arg)
{
    const overflow_plan *p = arg;
    for (int i = 0; i < p->bystanders; i++) {
        char name[32];
        snprintf(name, sizeof name, "bystander-%d", i);
        edo_spawn_opts bo = { .name = name };
        CHECK_OK(edo_spawn_with(NULL, &bo, bystander_task, NULL));
    }
    edo_task *t;
    edo_spawn_opts o = { .name = p->name, .stack_size = p->stack_size };
    CHECK_OK(edo_spawn_with(&t, &o, recurse_task, NULL));
    edo_join(t, NULL);
    return NULL;
}

typedef struct child_result {
    int status;
    char out[16384];
} child_result;

/* Runs root(arg) in a runtime of a child process, whose standard error goes to res with
 * its exit status; if root returns, the child says `returned` and exits 0. */
static void run_in_child(void *(*root)(void *), void *arg, const char *returned, child_result *res)
{
    int pfd[2];
    CHECK_SYS(pipe2(pfd, O_CLOEXEC));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = (pid_t)CHECK_SYS(fork());
    if (pid == 0) {
        dup2(pfd[1], 2);
        close(pfd[0]);
        alarm(30); /* a hang shows as SIGALRM rather than a stuck test */
        edo_runtime *rt;
        if (edo_runtime_new(&rt, NULL) < 0)
            _exit(3);
        edo_block_on(rt, root, arg, NULL);
        fprintf(stderr, "test_overflow: %s\n", returned);
        _exit(0);
    }
    close(pfd[1]);
    size_t have = 0;
    int64_t t0 = test_clock_ms();
    for (;;) {
        struct pollfd pf = { .fd = pfd[0], .events = POLLIN };
        int rc = poll(&pf, 1, 1000);
        CHECK_MSG(test_clock_ms() - t0 < 45000, "the child never finished");
        if (rc <= 0)
            continue;
        char buf[4096];
        ssize_t n = read(pfd[0], buf, sizeof buf);
        if (n <= 0)
            break;
        size_t keep =
            (size_t)n < sizeof res->out - 1 - have ? (size_t)n : sizeof res->out - 1 - have;
        memcpy(res->out + have, buf, keep);
        have += keep;
    }
    res->out[have] = 0;
    close(pfd[0]);
    CHECK_SYS(waitpid(pid, &res->status, 0));
}

static void describe(const child_result *r)
{
    if (WIFSIGNALED(r->status))
        printf("    child killed by signal %d (%s)\n", WTERMSIG(r->status),
               strsignal(WTERMSIG(r->status)));
    else
        printf("    child exited with %d\n", WEXITSTATUS(r->status));
    /* The first lines of its report, for the log. */
    const char *p = r->out;
    for (int line = 0; line < 6 && *p; line++) {
        int len = (int)strcspn(p, "\n");
        printf("    | %.*s\n", len, p);
        p += len + (p[len] == '\n');
    }
}

static void check_overflow_report(const overflow_plan *p, const char *want_name)
{
    child_result *r = calloc(1, sizeof *r);
    run_in_child(overflow_root, (void *)p, "the recursion returned", r);
    describe(r);
    bool died = (WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGABRT) ||
                (WIFEXITED(r->status) && WEXITSTATUS(r->status) != 0);
    CHECK_MSG(died, "the child did not abort (status 0x%x); its stderr:\n%s", r->status, r->out);
    bool ours = strstr(r->out, want_name) != NULL && strstr(r->out, "test_overflow.c:") != NULL;
    /* ASan may catch the overflow before edo's guard-page handler sees it. */
    bool asan = TEST_ASAN && strstr(r->out, "stack-overflow") != NULL;
    CHECK_MSG(ours || asan,
              "the report lacks the task name \"%s\" or the spawn site \"test_overflow.c:\":\n%s",
              want_name, r->out);
    free(r);
}

static void case_overflow_named(void)
{
    overflow_plan p = { "deep-recursion", 16 * 1024, 0 };
    check_overflow_report(&p, "deep-recursion");
}

static void case_overflow_default_stack(void)
{
    overflow_plan p = { NULL, 0, 0 };
    check_overflow_report(&p, "task");
}

static void case_overflow_among_others(void)
{
    overflow_plan p = { "culprit", 32 * 1024, 5 };
    check_overflow_report(&p, "culprit");
}

/* ---------------------------------------------------------------------------------------- */
/* Past a quarter of vm.max_map_count stacks, new ones get canaries instead of a guard page:
 * an overflow that stops short of a fault is reported at the task's next switch. */

static long guard_limit(void)
{
    long max = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
    if (f) {
        if (fscanf(f, "%ld", &max) != 1)
            max = 65530;
        fclose(f);
    }
    return max / 4;
}

static char *volatile frame_probe;

/* Recurses until its frame lies `below` bytes under `start`, then yields there. */
__attribute__((noinline)) static int sink(char *start, long below)
{
    volatile char pad[256];
    for (int i = 0; i < 256; i++) /* a frame in use: every byte written */
        pad[i] = 1;
    frame_probe = (char *)pad;
    if (start - (char *)pad < below)
        return sink(start, below) + pad[0];
    edo_yield(); /* the switch away is where the canary is checked */
    return pad[0];
}

static void *sink_task(void *arg)
{
    volatile char here = 0;
    /* Past the end of the 16 KiB stack (rounded up to pages with the task's own struct,
     * so up to a page more) but inside the canary page below it: no fault. */
    return (void *)(intptr_t)sink((char *)&here, 16 * 1024 + 4096 + 1024) + here;
}

static void *unguarded_root(void *arg)
{
    long n = (long)(intptr_t)arg;
    edo_spawn_opts small = { .name = "filler", .stack_size = 8192 };
    for (long i = 0; i < n; i++)
        CHECK_OK(edo_spawn_with(NULL, &small, bystander_task, NULL));
    edo_spawn_opts o = { .name = "no-guard", .stack_size = 16 * 1024 };
    edo_task *t;
    CHECK_OK(edo_spawn_with(&t, &o, sink_task, NULL));
    edo_join(t, NULL);
    return NULL;
}

static void case_overflow_without_guard(void)
{
    long lim = guard_limit();
    if (lim > 40000 || TEST_TSAN || TEST_ASAN) {
        /* Tens of thousands of tasks first; sanitizers also move frames around. */
        printf("    skipped: %s\n", lim > 40000 ? "vm.max_map_count is raised on this machine"
                                                : "not in sanitizer builds");
        return;
    }
    child_result *r = calloc(1, sizeof *r);
    run_in_child(unguarded_root, (void *)(intptr_t)(lim + 16), "no report", r);
    describe(r);
    CHECK_MSG(WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGABRT,
              "the child did not abort (status 0x%x):\n%s", r->status, r->out);
    CHECK_MSG(strstr(r->out, "stack overflow in task 'no-guard'") != NULL &&
                  strstr(r->out, "no guard page") != NULL,
              "no report from the stack check of an unguarded stack:\n%s", r->out);
    free(r);
}

/* ---------------------------------------------------------------------------------------- */

static void *bounded_task(void *arg)
{
    depth_limit = (int)(intptr_t)arg;
    int v = recurse(0);
    depth_limit = INT_MAX;
    return (void *)(intptr_t)v;
}

static void *fits_root(void *arg)
{
    /* ~64 KiB of frames in a 512 KiB stack: well clear of the guard, even with ASan's
     * larger frames. */
    edo_spawn_opts o = { .name = "fits", .stack_size = 512 * 1024 };
    edo_task *t;
    CHECK_OK(edo_spawn_with(&t, &o, bounded_task, (void *)(intptr_t)200));
    CHECK_EQ(edo_join(t, NULL), 0);
    return NULL;
}

static const test_root case_deep_but_bounded = { .fn = fits_root };

static const test_case cases[] = {
    TEST_CASE(case_deep_but_bounded),       TEST_CASE(case_overflow_named),
    TEST_CASE(case_overflow_default_stack), TEST_CASE(case_overflow_among_others),
    TEST_CASE(case_overflow_without_guard),
};

TEST_MAIN(cases)
