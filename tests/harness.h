/*
 * Shared helpers of the edo test programs: checks that abort with the expression and its
 * values, a case runner, a fresh runtime per case, a loopback listener, a reproducible PRNG
 * and a few raw-socket tools. Everything is static inline so that each test is one file.
 */
#ifndef EDO_TEST_HARNESS_H
#define EDO_TEST_HARNESS_H

#include <edo.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------- */
/* Which build we are in: loops are scaled down under the sanitizers.                       */

#if defined(__SANITIZE_THREAD__)
#define TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifndef TEST_TSAN
#define TEST_TSAN 0
#endif
#ifndef TEST_ASAN
#define TEST_ASAN 0
#endif

/* One of three values by build: release, ASan, TSan. */
#define TEST_SCALE(release, asan, tsan) (TEST_TSAN ? (tsan) : TEST_ASAN ? (asan) : (release))

/* ---------------------------------------------------------------------------------------- */
/* Checks. Each failure names file:line, the expression and its values, then aborts, so a  */
/* core dump or the sanitizer's stack trace shows where.                                    */

/* Called once by the first failure, before the abort: a test program may set it to show
 * what else explains the failure (a child process's error output, say). */
static void (*test_on_failure)(void);

_Noreturn static inline void test_failed_(void)
{
    static atomic_flag once = ATOMIC_FLAG_INIT;
    if (test_on_failure && !atomic_flag_test_and_set(&once))
        test_on_failure();
    fflush(stderr);
    abort();
}

#define TEST_FAIL(...)                                                                             \
    do {                                                                                           \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                            \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        test_failed_();                                                                            \
    } while (0)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            TEST_FAIL("CHECK(%s) failed", #cond);                                                  \
    } while (0)

/* CHECK with a printf-style explanation. */
#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);               \
            TEST_FAIL(__VA_ARGS__);                                                                \
        }                                                                                          \
    } while (0)

#define TEST_CMP_(a, op, b)                                                                        \
    do {                                                                                           \
        long long chk_a__ = (long long)(a);                                                        \
        long long chk_b__ = (long long)(b);                                                        \
        if (!(chk_a__ op chk_b__))                                                                 \
            TEST_FAIL("CHECK(%s %s %s) failed: %lld vs %lld", #a, #op, #b, chk_a__, chk_b__);      \
    } while (0)

#define CHECK_EQ(a, b) TEST_CMP_(a, ==, b)
#define CHECK_NE(a, b) TEST_CMP_(a, !=, b)
#define CHECK_LT(a, b) TEST_CMP_(a, <, b)
#define CHECK_LE(a, b) TEST_CMP_(a, <=, b)
#define CHECK_GT(a, b) TEST_CMP_(a, >, b)
#define CHECK_GE(a, b) TEST_CMP_(a, >=, b)

/* The call must succeed (>= 0); evaluates to its value. */
#define CHECK_OK(expr)                                                                             \
    ({                                                                                             \
        long long chk_rc__ = (long long)(expr);                                                    \
        if (chk_rc__ < 0)                                                                          \
            TEST_FAIL("%s failed: %lld (%s)", #expr, chk_rc__, edo_strerror((int)chk_rc__));       \
        chk_rc__;                                                                                  \
    })

/* The call must fail with exactly err (a negative errno value). */
#define CHECK_ERR(expr, err)                                                                       \
    do {                                                                                           \
        long long chk_rc__ = (long long)(expr);                                                    \
        long long chk_want__ = (long long)(err);                                                   \
        if (chk_rc__ != chk_want__)                                                                \
            TEST_FAIL("%s returned %lld (%s), expected %s = %lld (%s)", #expr, chk_rc__,           \
                      chk_rc__ < 0 ? edo_strerror((int)chk_rc__) : "not an error", #err,           \
                      chk_want__, edo_strerror((int)chk_want__));                                  \
    } while (0)

#define CHECK_STR_EQ(a, b)                                                                         \
    do {                                                                                           \
        const char *chk_a__ = (a), *chk_b__ = (b);                                                 \
        if (!chk_a__ || !chk_b__ || strcmp(chk_a__, chk_b__) != 0)                                 \
            TEST_FAIL("CHECK(%s == %s) failed: \"%s\" vs \"%s\"", #a, #b,                          \
                      chk_a__ ? chk_a__ : "(null)", chk_b__ ? chk_b__ : "(null)");                 \
    } while (0)

/* A system call outside edo must succeed (errno channel). */
#define CHECK_SYS(expr)                                                                            \
    ({                                                                                             \
        long long chk_rc__ = (long long)(expr);                                                    \
        if (chk_rc__ < 0)                                                                          \
            TEST_FAIL("%s failed: %s", #expr, strerror(errno));                                    \
        chk_rc__;                                                                                  \
    })

/* ---------------------------------------------------------------------------------------- */
/* Case runner                                                                              */

/* A case that is one root task in a fresh runtime: its table entry names a test_root
 * instead of a function,
 *     static const test_root case_mutex_fifo = { .fn = mutex_fifo_root };
 * and the runner makes the runtime and checks what the fields ask for. */
typedef struct test_root {
    void *(*fn)(void *);          /* the root task; its argument is NULL */
    const edo_runtime_opts *opts; /* NULL: the defaults (EDO_WORKERS, EDO_BACKEND) */
    bool paused;                  /* the clock paused from the start, as run_paused */
    bool fds_closed;              /* no descriptor left open, as test_run_fds_closed */
} test_root;

/* A case: a function that does all itself (and makes its own runtimes), or a root. */
typedef struct test_case {
    const char *name;
    void (*fn)(void);
    const test_root *root;
} test_case;

static inline void test_run_root(const test_root *root);

/* A void * that carries an integer (a task's argument or result), and back. */
#define VAL(x) ((void *)(intptr_t)(x))
#define INT(p) ((intptr_t)(p))

/* Milliseconds on CLOCK_MONOTONIC, usable outside a task and from any thread. */
static inline int64_t test_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t test_clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Blocks the calling thread; never call it from a task unless stalling the runtime is the
 * point. */
static inline void test_sleep_us(int64_t us)
{
    struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000 };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static uint64_t test_seed_value;

/* The seed of this run: EDO_TEST_SEED from the environment, else fixed, so that a failure
 * reproduces by default and other seeds can be tried on purpose. */
static inline uint64_t test_seed(void)
{
    return test_seed_value;
}

/* Whether case `name` is selected by the command line: an argument that is the name of a
 * case (with or without its "case_" prefix) selects that case alone, any other argument
 * every case whose name contains it; no argument selects them all. */
static inline bool test_selected(const char *name, const test_case *cases, size_t ncases, int argc,
                                 char **argv)
{
    if (argc < 2)
        return true;
    for (int a = 1; a < argc; a++) {
        bool exact = false;
        for (size_t i = 0; i < ncases && !exact; i++)
            exact =
                strcmp(cases[i].name, argv[a]) == 0 || (strncmp(cases[i].name, "case_", 5) == 0 &&
                                                        strcmp(cases[i].name + 5, argv[a]) == 0);
        if (exact ? strcmp(name, argv[a]) == 0 ||
                        (strncmp(name, "case_", 5) == 0 && strcmp(name + 5, argv[a]) == 0)
                  : strstr(name, argv[a]) != NULL)
            return true;
    }
    return false;
}

/* Runs the selected cases (test_selected), printing each name as it starts and a summary
 * line at the end. CTest runs each case as a test of its own (tests/CMakeLists.txt);
 * running the program by hand runs them one after the other. --list prints the names. */
static inline int test_main(const char *file, const test_case *cases, size_t ncases, int argc,
                            char **argv)
{
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    char prog[64];
    snprintf(prog, sizeof prog, "%.*s", (int)strcspn(base, "."), base);

    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < ncases; i++)
            printf("%s\n", cases[i].name);
        return 0;
    }
    const char *env = getenv("EDO_TEST_SEED");
    test_seed_value = env ? strtoull(env, NULL, 0) : 0x5eed0ed0u;
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* The backend every runtime of this run gets (EDO_BACKEND): a kernel that refuses
     * io_uring skips the run, with the reason, rather than failing every case. */
    edo_runtime *probe_rt = NULL;
    int probe_rc = edo_runtime_new(&probe_rt, &(edo_runtime_opts){ .workers = 1 });
    if (probe_rc < 0) {
        const char *want = getenv("EDO_BACKEND");
        printf("%s: skipped: no runtime with EDO_BACKEND=%s: %s\n", prog, want ? want : "",
               edo_strerror(probe_rc));
        return probe_rc == -ENOSYS || probe_rc == -EPERM || probe_rc == -EACCES ? 77 : 1;
    }
    const char *backend = edo_backend_name(edo_runtime_backend(probe_rt));
    edo_runtime_free(probe_rt);
    printf("%s: seed %" PRIu64 " (set EDO_TEST_SEED to change), %s%s%s\n", prog, test_seed_value,
           backend, TEST_ASAN ? ", ASan" : "", TEST_TSAN ? ", TSan" : "");

    int passed = 0;
    int64_t t_all = test_clock_ms();
    for (size_t i = 0; i < ncases; i++) {
        if (!test_selected(cases[i].name, cases, ncases, argc, argv))
            continue;
        printf("[ RUN  ] %s\n", cases[i].name);
        int64_t t0 = test_clock_ms();
        if (cases[i].root)
            test_run_root(cases[i].root);
        else if (cases[i].fn)
            cases[i].fn();
        else
            TEST_FAIL("case %s is neither a void (void) function nor a test_root", cases[i].name);
        printf("[  OK  ] %s (%" PRId64 " ms)\n", cases[i].name, test_clock_ms() - t0);
        passed++;
    }
    if (passed == 0) {
        fprintf(stderr, "%s: no case matches the arguments\n", prog);
        return 1;
    }
    printf("%s: %d cases passed (%" PRId64 " ms)\n", prog, passed, test_clock_ms() - t_all);
    return 0;
}

/* Entries of a program's case table, one per case. tests/CMakeLists.txt reads the table
 * and registers each case in the configurations its entry names: TEST_CASE in all of them
 * (1, 2 and 4 workers, each backend), TEST_CASE_BACKENDS with 1 worker on each backend
 * (for a case that makes its own runtimes, or whose subject is the backend alone), and
 * TEST_CASE_ONCE once (for a case that uses no runtime's threads or driver). An entry
 * names a case function or a test_root; the type tells which. */
/* clang-format off */
#define TEST_CASE_ENTRY_(c)                                                                        \
    {#c, _Generic(&(c), void (*)(void): &(c), default: NULL),                                      \
     _Generic(&(c), const test_root *: &(c), default: NULL)}
/* clang-format on */
#define TEST_CASE(c) TEST_CASE_ENTRY_(c)
#define TEST_CASE_BACKENDS(c) TEST_CASE_ENTRY_(c)
#define TEST_CASE_ONCE(c) TEST_CASE_ENTRY_(c)
#define TEST_MAIN(cases)                                                                           \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        return test_main(__FILE__, cases, sizeof(cases) / sizeof(cases[0]), argc, argv);           \
    }

/* ---------------------------------------------------------------------------------------- */
/* Runtimes and tasks                                                                       */

/* Runs fn(arg) as the root task of a fresh runtime, frees the runtime and returns what the
 * task returned. */
static inline void *test_run_opts(const edo_runtime_opts *opts, void *(*fn)(void *), void *arg)
{
    edo_runtime *rt = NULL;
    CHECK_OK(edo_runtime_new(&rt, opts));
    CHECK(rt != NULL);
    void *result = (void *)(intptr_t)-12345;
    CHECK_OK(edo_block_on(rt, fn, arg, &result));
    edo_runtime_free(rt);
    return result;
}

static inline void *test_run(void *(*fn)(void *), void *arg)
{
    return test_run_opts(NULL, fn, arg);
}

/* test_run with the runtime's clock paused from the start (edo_time_pause), for cases
 * that check exact times. */
static inline void *run_paused(void *(*fn)(void *), void *arg)
{
    edo_runtime_opts o = { .start_paused = true };
    return test_run_opts(&o, fn, arg);
}

/* Inside a task: sleeps in 1 ms steps until cond holds, failing after ms milliseconds of
 * real time (on a paused clock each step may move the clock by 1 ms when the runtime is
 * otherwise idle). */
#define WAIT_UNTIL(cond, ms)                                                                       \
    do {                                                                                           \
        int64_t wait_t0__ = test_clock_ms();                                                       \
        while (!(cond)) {                                                                          \
            if (test_clock_ms() - wait_t0__ > (ms))                                                \
                TEST_FAIL("timed out after %d ms waiting for %s", (int)(ms), #cond);               \
            edo_sleep(1);                                                                          \
        }                                                                                          \
    } while (0)

static inline const char *test_state_name(edo_task_state s)
{
    switch (s) {
    case EDO_TASK_READY:
        return "READY";
    case EDO_TASK_RUNNING:
        return "RUNNING";
    case EDO_TASK_PARKED:
        return "PARKED";
    case EDO_TASK_DONE:
        return "DONE";
    }
    return "?";
}

/* Inside a task: waits until task is parked on why, for a task whose own deadline may end
 * the wait before the caller sees it parked (the caller's thread can be descheduled for
 * longer than that deadline). Returns 1 if it was seen parked on why, 0 if it had already
 * returned. It sleeps in 1 ms steps, as WAIT_UNTIL, and gives up after 5 s of real time. */
static inline int test_wait_parked_or_done(edo_task *task, edo_wait_reason why)
{
    edo_task_info info;
    int64_t t0 = test_clock_ms();
    for (;;) {
        memset(&info, 0, sizeof info);
        edo_task_stats(task, &info);
        if (info.state == EDO_TASK_PARKED && info.waiting_on == why)
            return 1;
        if (info.state == EDO_TASK_DONE)
            return 0;
        if (test_clock_ms() - t0 > 5000)
            TEST_FAIL("task %s never parked on reason %d: state %s, waiting_on %d", info.name,
                      (int)why, test_state_name(info.state), (int)info.waiting_on);
        edo_sleep(1);
    }
}

/* Inside a task: waits until task is parked on why (the only way to be sure that a later
 * event hits it inside the call under test rather than before it). */
static inline void test_wait_parked(edo_task *task, edo_wait_reason why)
{
    if (!test_wait_parked_or_done(task, why))
        TEST_FAIL("task %s returned before it was seen parked on reason %d", edo_task_name(task),
                  (int)why);
}

/* Inside a task: waits until task has returned. With several workers a task just spawned
 * may run on another one, whose thread the kernel may not schedule for a while, so a few
 * yields of the spawner prove nothing. */
static inline void test_wait_done(edo_task *task)
{
    edo_task_info info;
    WAIT_UNTIL((edo_task_stats(task, &info), info.state == EDO_TASK_DONE), 5000);
}

/* ---------------------------------------------------------------------------------------- */
/* Sockets                                                                                  */

/* Inside a task: a listener on an ephemeral loopback port; its address goes to addr (48
 * bytes suffice). */
static inline edo_io *test_listen(char *addr, size_t len, int backlog)
{
    edo_io *lis = NULL;
    CHECK_OK(edo_tcp_listen(&lis, "127.0.0.1:0", backlog));
    CHECK(lis != NULL);
    CHECK_OK(edo_local_addr(lis, addr, len));
    CHECK_MSG(strncmp(addr, "127.0.0.1:", 10) == 0 && strcmp(addr, "127.0.0.1:0") != 0,
              "listener address \"%s\"", addr);
    return lis;
}

/* Inside a task: a connected loopback pair, both ends edo_io. */
static inline void test_tcp_pair(edo_io **client, edo_io **server)
{
    char addr[48];
    edo_io *lis = test_listen(addr, sizeof addr, 4);
    CHECK_OK(edo_tcp_connect(client, addr, 5000));
    CHECK_OK(edo_tcp_accept(server, lis));
    CHECK_OK(edo_close(lis));
}

/* Inside a task: a socketpair whose first end is wrapped; the second stays a plain
 * blocking descriptor owned by the caller. */
static inline edo_io *test_socketpair(int *raw)
{
    int sv[2];
    CHECK_SYS(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    edo_io *io = NULL;
    CHECK_OK(edo_io_wrap(&io, sv[0]));
    *raw = sv[1];
    return io;
}

/* Inside a task: writes 4 KiB at a time until a write fails, and returns that failure;
 * how picks the call (0 edo_write, 1 edo_write_all, 2 edo_writev with a short piece
 * first). It fails the test after max writes that all succeeded. each, if not NULL, runs
 * after every write that did. */
static inline ssize_t test_write_until_error(edo_io *io, int how, int max, void (*each)(void))
{
    static const char data[4096];
    for (int i = 0; i < max; i++) {
        ssize_t n;
        if (how == 0) {
            n = edo_write(io, data, sizeof data);
        } else if (how == 1) {
            n = edo_write_all(io, data, sizeof data, NULL);
        } else {
            struct iovec iov[2] = { { (void *)data, 100 }, { (void *)data, sizeof data } };
            n = edo_writev(io, iov, 2);
        }
        if (n < 0)
            return n;
        if (each)
            each();
    }
    TEST_FAIL("%d writes succeeded: the failure never came", max);
}

static inline int test_port_of(const char *addr)
{
    const char *colon = strrchr(addr, ':');
    CHECK_MSG(colon != NULL, "no port in \"%s\"", addr);
    return atoi(colon + 1);
}

/* A plain listening socket (not edo's) on an ephemeral loopback port. */
static inline int test_raw_listener(char *addr, size_t len, int backlog)
{
    int fd = (int)CHECK_SYS(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    CHECK_SYS(bind(fd, (struct sockaddr *)&sin, sizeof sin));
    if (backlog >= 0)
        CHECK_SYS(listen(fd, backlog));
    socklen_t sl = sizeof sin;
    CHECK_SYS(getsockname(fd, (struct sockaddr *)&sin, &sl));
    snprintf(addr, len, "127.0.0.1:%d", ntohs(sin.sin_port));
    return fd;
}

/* Non-blocking connect of a plain socket; returns the descriptor and whether the
 * connection was established within wait_ms. */
static inline int test_raw_connect(const char *addr, int wait_ms, bool *established)
{
    int fd = (int)CHECK_SYS(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    struct sockaddr_in sin = { .sin_family = AF_INET,
                               .sin_port = htons((uint16_t)test_port_of(addr)),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int rc = connect(fd, (struct sockaddr *)&sin, sizeof sin);
    CHECK_MSG(rc == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
    *established = rc == 0;
    if (!*established) {
        /* A signal (the runtime's SIGURG to a worker whose task runs long: this one, say)
         * cuts a poll short: wait out the rest. */
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        int64_t until = test_clock_ms() + wait_ms;
        int n;
        do {
            int64_t left = until - test_clock_ms();
            n = poll(&p, 1, left > 0 ? (int)left : 0);
        } while (n < 0 && errno == EINTR);
        if (n == 1) {
            int err = 0;
            socklen_t el = sizeof err;
            CHECK_SYS(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el));
            CHECK_MSG(err == 0, "connect: %s", strerror(err));
            *established = true;
        }
    }
    return fd;
}

/* A listener that will never accept, with its accept queue full: a further connect
 * hangs in SYN-SENT (Linux drops SYNs to a full queue). The filler descriptors go to
 * fds (up to max); returns the listener. Blocks the thread for a few hundred ms. */
static inline int test_full_backlog(char *addr, size_t len, int *fds, int max, int *nfds)
{
    int lfd = test_raw_listener(addr, len, 0);
    *nfds = 0;
    for (;;) {
        CHECK_MSG(*nfds < max, "backlog of %s never filled", addr);
        bool ok;
        fds[(*nfds)++] = test_raw_connect(addr, 200, &ok);
        if (!ok)
            return lfd;
    }
}

static inline void test_close_all(int *fds, int n)
{
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

/* Entries of a /proc directory, "." and ".." left out. */
static inline int test_count_entries(const char *path)
{
    DIR *d = opendir(path);
    CHECK_MSG(d != NULL, "opendir %s", path);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Open descriptors of the process (to see that runtimes and tasks leak none). */
static inline int test_count_fds(void)
{
    return test_count_entries("/proc/self/fd") - 1; /* the directory's own descriptor */
}

/* test_run, then a check that the process has as many descriptors open as before: the
 * runtime and the tasks closed all they opened. */
static inline void *test_run_fds_closed(void *(*fn)(void *), void *arg)
{
    int fds = test_count_fds();
    void *res = test_run(fn, arg);
    CHECK_EQ(test_count_fds(), fds);
    return res;
}

/* The runner of a test_root case. */
static inline void test_run_root(const test_root *root)
{
    edo_runtime_opts o = root->opts ? *root->opts : (edo_runtime_opts){ 0 };
    if (root->paused)
        o.start_paused = true;
    const edo_runtime_opts *opts = root->opts || root->paused ? &o : NULL;
    int fds = root->fds_closed ? test_count_fds() : 0;
    test_run_opts(opts, root->fn, NULL);
    if (root->fds_closed)
        CHECK_EQ(test_count_fds(), fds);
}

/* ---------------------------------------------------------------------------------------- */
/* Deterministic PRNG (splitmix64): every random choice of a test derives from the seed.    */

typedef struct test_rng {
    uint64_t s;
} test_rng;

static inline test_rng test_rng_new(uint64_t stream)
{
    test_rng r = { test_seed() ^ (stream * 0x9e3779b97f4a7c15u) };
    return r;
}

static inline uint64_t test_rng_next(test_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static inline uint64_t test_rng_range(test_rng *r, uint64_t lo, uint64_t hi)
{
    return lo + test_rng_next(r) % (hi - lo + 1);
}

static inline void test_rng_fill(test_rng *r, void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len >= 8) {
        uint64_t v = test_rng_next(r);
        memcpy(p, &v, 8);
        p += 8;
        len -= 8;
    }
    if (len) {
        uint64_t v = test_rng_next(r);
        memcpy(p, &v, len);
    }
}

/* Busy-waits a random number of loop iterations in [0, max): a tiny, varying delay that
 * neither sleeps nor enters the kernel. */
static inline void test_spin(test_rng *r, unsigned max)
{
    unsigned n = (unsigned)(test_rng_next(r) % max);
    for (volatile unsigned i = 0; i < n; i++) {
    }
}

#endif /* EDO_TEST_HARNESS_H */
