/*
 * The I/O backends: how a runtime chooses one (the option, EDO_BACKEND, the automatic
 * choice, EDO_LOG's start-up line), and the behaviour that io_uring changes under the
 * calls and that must stay the same on both. A call that gives up (deadline, abort,
 * edo_close) must leave nothing behind in the kernel: no byte of a later message read into
 * a buffer the caller has freed or lost with it, no byte written that the call did not
 * report, no descriptor, no task that never wakes. Then more operations at once than a
 * ring's submission queue holds, cancels that come from another worker than the one whose
 * ring holds the operation, a large write to a slow reader, and pipes and regular files
 * through edo_io_wrap.
 *
 * Each case runs on the backend the environment gives (CTest runs the program once per
 * backend); the choice cases set EDO_BACKEND themselves and restore it.
 *
 * edo-test: timeout=240
 */
#include "harness.h"

#include <pthread.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/wait.h>

/* Whether this build has io_uring (tests/CMakeLists.txt says). */
#ifdef EDO_TEST_HAVE_URING
#define HAVE_URING true
#else
#define HAVE_URING false
#endif

/* A generous bound for "promptly": a call that gives up must not wait for anything else
 * (a timer of the kernel, a connection that never comes). Loaded sanitizer builds on two
 * cores can stall for a second; nothing here should take five. */
enum { PROMPT_MS = 5000 };

/* A SIGPIPE that reaches the process is fatal, as with the default disposition, but says
 * so first (the default would end the program without a word). */
static void fatal_sigpipe(int sig)
{
    static const char msg[] = "test_backend: a SIGPIPE was delivered to the process\n";
    ssize_t n = write(2, msg, sizeof msg - 1);
    (void)n;
    abort();
}

/* test_run_fds_closed(root) with a SIGPIPE delivered to the process made fatal; then, if
 * check_pending, a check that none is left pending on this thread either (it would be
 * delivered once the old action is back). */
static void run_sigpipe_fatal(void *(*root)(void *), bool check_pending)
{
    struct sigaction dfl = { .sa_handler = fatal_sigpipe }, old;
    sigemptyset(&dfl.sa_mask);
    CHECK_SYS(sigaction(SIGPIPE, &dfl, &old));
    test_run_fds_closed(root, NULL);
    if (check_pending) {
        sigset_t pending;
        CHECK_SYS(sigpending(&pending));
        CHECK_MSG(!sigismember(&pending, SIGPIPE), "a SIGPIPE is pending");
    }
    CHECK_SYS(sigaction(SIGPIPE, &old, NULL));
}

/* ---------------------------------------------------------------------------------------- */
/* The environment                                                                          */

typedef struct saved_env {
    char *val; /* NULL: it was not set */
} saved_env;

static saved_env env_save(const char *name)
{
    const char *v = getenv(name);
    saved_env s = { v ? strdup(v) : NULL };
    return s;
}

static void env_restore(const char *name, saved_env s)
{
    if (s.val)
        CHECK_SYS(setenv(name, s.val, 1));
    else
        CHECK_SYS(unsetenv(name));
    free(s.val);
}

static void env_put(const char *name, const char *val)
{
    if (val)
        CHECK_SYS(setenv(name, val, 1));
    else
        CHECK_SYS(unsetenv(name));
}

/* The backend of this program's runtimes (EDO_BACKEND from the environment). */
static edo_backend current_backend(void)
{
    edo_runtime *rt;
    CHECK_OK(edo_runtime_new(&rt, &(edo_runtime_opts){ .workers = 1 }));
    edo_backend b = edo_runtime_backend(rt);
    edo_runtime_free(rt);
    return b;
}

/* ---------------------------------------------------------------------------------------- */
/* (a) The choice                                                                           */

/* A few bytes through a loopback connection: the runtime does work on what it chose. */
static void *smoke_root(void *unused)
{
    edo_io *c, *s;
    test_tcp_pair(&c, &s);
    CHECK_EQ(edo_write(c, "ping", 4), 4);
    char buf[8];
    CHECK_OK(edo_read_exact(s, buf, 4, NULL));
    CHECK(memcmp(buf, "ping", 4) == 0);
    CHECK_OK(edo_close(c));
    CHECK_OK(edo_close(s));
    return NULL;
}

/* A runtime with these options: its backend in *got, or edo_runtime_new's error. Every
 * runtime made here also runs a task that moves a few bytes. */
static int try_runtime(edo_backend opt, int workers, edo_backend *got)
{
    edo_runtime *rt = NULL;
    int rc = edo_runtime_new(&rt, &(edo_runtime_opts){ .workers = workers, .backend = opt });
    if (rc < 0)
        return rc;
    *got = edo_runtime_backend(rt);
    CHECK_MSG(*got == EDO_BACKEND_EPOLL || *got == EDO_BACKEND_URING,
              "edo_runtime_backend says %d (%s)", (int)*got, edo_backend_name(*got));
    CHECK_OK(edo_block_on(rt, smoke_root, NULL, NULL));
    edo_runtime_free(rt);
    return 0;
}

/* What asking for io_uring gives here: 0, or why not. A build without it must say
 * -ENOSYS; a build with it may meet a kernel that refuses (seccomp, io_uring_disabled,
 * too old), which is no failure of edo's but is printed. */
static int uring_available(int workers)
{
    edo_backend got = EDO_BACKEND_AUTO;
    int rc = try_runtime(EDO_BACKEND_URING, workers, &got);
    if (!HAVE_URING) {
        CHECK_ERR(rc, -ENOSYS);
        return rc;
    }
    if (rc < 0) {
        printf("    io_uring asked for with %d worker%s: refused here (%s)\n", workers,
               workers == 1 ? "" : "s", edo_strerror(rc));
        CHECK_MSG(rc != -EINVAL, "io_uring refused with -EINVAL");
        return rc;
    }
    CHECK_EQ(got, EDO_BACKEND_URING);
    return 0;
}

static void case_choice(void)
{
    saved_env be = env_save("EDO_BACKEND");
    env_put("EDO_BACKEND", NULL); /* AUTO: the automatic choice */
    int fds = test_count_fds();
    for (int workers = 1; workers <= 2; workers++) {
        edo_backend got = EDO_BACKEND_AUTO;
        CHECK_OK(try_runtime(EDO_BACKEND_EPOLL, workers, &got));
        CHECK_EQ(got, EDO_BACKEND_EPOLL);

        int urc = uring_available(workers);

        got = EDO_BACKEND_AUTO;
        CHECK_OK(try_runtime(EDO_BACKEND_AUTO, workers, &got));
        /* Automatic: io_uring wherever asking for it works, else epoll. */
        CHECK_EQ(got, urc == 0 ? EDO_BACKEND_URING : EDO_BACKEND_EPOLL);
        printf("    %d worker%s: automatic choice %s\n", workers, workers == 1 ? "" : "s",
               edo_backend_name(got));
    }
    /* Rings, eventfds and probes are all given back. */
    CHECK_EQ(test_count_fds(), fds);
    env_restore("EDO_BACKEND", be);
}

static void case_env(void)
{
    saved_env be = env_save("EDO_BACKEND");
    env_put("EDO_BACKEND", NULL);
    int urc = uring_available(2);
    edo_backend autob = urc == 0 ? EDO_BACKEND_URING : EDO_BACKEND_EPOLL;

    /* What EDO_BACKEND says when the option is AUTO. */
    static const struct {
        const char *env;
        int want; /* an edo_backend, or -1: the runtime is refused with -EINVAL */
    } envs[] = {
        { "epoll", EDO_BACKEND_EPOLL },
        { "uring", EDO_BACKEND_URING },
        { "io_uring", EDO_BACKEND_URING },
        { "auto", EDO_BACKEND_AUTO },
        { "garbage", -1 },
        { "epol", -1 },
        { "uring2", -1 },
        { "epoll ", -1 },
    };
    for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++) {
        env_put("EDO_BACKEND", envs[i].env);
        for (int workers = 1; workers <= 2; workers++) {
            edo_backend got = EDO_BACKEND_AUTO;
            int rc = try_runtime(EDO_BACKEND_AUTO, workers, &got);
            if (envs[i].want < 0) {
                CHECK_MSG(rc == -EINVAL, "EDO_BACKEND=\"%s\": edo_runtime_new returned %d",
                          envs[i].env, rc);
                continue;
            }
            edo_backend want = (edo_backend)envs[i].want;
            if (want == EDO_BACKEND_AUTO) {
                want = autob;
            } else if (want == EDO_BACKEND_URING && urc < 0) {
                /* Asked for and not to be had: the same refusal as the option's. */
                CHECK_MSG(rc == urc, "EDO_BACKEND=%s: %d, the option gave %d", envs[i].env, rc,
                          urc);
                continue;
            }
            CHECK_MSG(rc == 0, "EDO_BACKEND=\"%s\": %s", envs[i].env, edo_strerror(rc));
            CHECK_MSG(got == want, "EDO_BACKEND=\"%s\": runs on %s, not %s", envs[i].env,
                      edo_backend_name(got), edo_backend_name(want));
        }
    }

    /* The option, when not AUTO, is what counts: edo.h says EDO_BACKEND is read only for
     * AUTO, so even a value it would refuse does not matter then. */
    static const char *others[] = { "garbage", "epoll", "uring", "auto" };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        env_put("EDO_BACKEND", others[i]);
        edo_backend got = EDO_BACKEND_AUTO;
        int rc = try_runtime(EDO_BACKEND_EPOLL, 2, &got);
        CHECK_MSG(rc == 0, "option epoll, EDO_BACKEND=%s: %s", others[i], edo_strerror(rc));
        CHECK_EQ(got, EDO_BACKEND_EPOLL);
        got = EDO_BACKEND_AUTO;
        rc = try_runtime(EDO_BACKEND_URING, 2, &got);
        CHECK_MSG(rc == urc, "option io_uring, EDO_BACKEND=%s: %d, without it %d", others[i], rc,
                  urc);
        if (rc == 0)
            CHECK_EQ(got, EDO_BACKEND_URING);
    }

    /* An empty EDO_BACKEND is no choice at all. */
    env_put("EDO_BACKEND", "");
    edo_backend got = EDO_BACKEND_AUTO;
    CHECK_OK(try_runtime(EDO_BACKEND_AUTO, 1, &got));
    CHECK_EQ(got, autob);
    env_restore("EDO_BACKEND", be);
}

static void case_names(void)
{
    static const edo_backend all[] = { EDO_BACKEND_AUTO, EDO_BACKEND_EPOLL, EDO_BACKEND_URING };
    static const char *names[] = { "auto", "epoll", "io_uring" };
    for (size_t i = 0; i < 3; i++) {
        CHECK_STR_EQ(edo_backend_name(all[i]), names[i]);
        edo_backend b = (edo_backend)-1;
        CHECK_OK(edo_backend_parse(edo_backend_name(all[i]), &b));
        CHECK_EQ(b, all[i]);
    }
    edo_backend b = EDO_BACKEND_AUTO;
    CHECK_OK(edo_backend_parse("uring", &b));
    CHECK_EQ(b, EDO_BACKEND_URING);
    static const char *bad[] = { "", "Epoll", "URING", "uring ", "io-uring", "e", "autox" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(edo_backend_parse(bad[i], &b) == -EINVAL, "\"%s\" parsed", bad[i]);
    CHECK_ERR(edo_backend_parse(NULL, &b), -EINVAL);
}

/* Runs hello with EDO_LOG and EDO_BACKEND as given (NULL: unset) and two workers, and returns
 * its exit status; its standard error goes to err. */
static int run_hello(const char *hello, const char *log, const char *backend, char *err,
                     size_t errlen)
{
    /* The child's environment is made here: after fork, a process that had threads may
     * only make async-signal-safe calls, which setenv is not. */
    extern char **environ;
    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    char **envp = calloc(nenv + 4, sizeof *envp), logv[64], backendv[64];
    size_t k = 0;
    for (size_t i = 0; i < nenv; i++)
        if (strncmp(environ[i], "EDO_LOG=", 8) && strncmp(environ[i], "EDO_BACKEND=", 12) &&
            strncmp(environ[i], "EDO_WORKERS=", 12))
            envp[k++] = environ[i];
    envp[k++] = "EDO_WORKERS=2";
    if (log) {
        snprintf(logv, sizeof logv, "EDO_LOG=%s", log);
        envp[k++] = logv;
    }
    if (backend) {
        snprintf(backendv, sizeof backendv, "EDO_BACKEND=%s", backend);
        envp[k++] = backendv;
    }
    envp[k] = NULL;

    int p[2];
    CHECK_SYS(pipe2(p, O_CLOEXEC));
    fflush(stdout);
    pid_t pid = (pid_t)CHECK_SYS(fork());
    if (pid == 0) {
        dup2(p[1], 2);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, 1);
        execve(hello, (char *[]){ (char *)hello, NULL }, envp);
        _exit(127);
    }
    free(envp);
    close(p[1]);
    size_t got = 0;
    for (;;) {
        ssize_t n = read(p[0], err + got, errlen - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got == errlen - 1)
            break;
    }
    err[got] = '\0';
    close(p[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        CHECK_MSG(errno == EINTR, "waitpid: %s", strerror(errno));
    CHECK_MSG(WIFEXITED(status), "hello did not exit (status %#x); stderr: %s", status, err);
    CHECK_MSG(WEXITSTATUS(status) != 127, "cannot run %s", hello);
    return WEXITSTATUS(status);
}

/* The line of text that starts with "edo:" and names the backend. */
static bool says_backend(const char *err, const char *name)
{
    for (const char *l = err; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        size_t len = strcspn(l, "\n");
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)len, l);
        if (strncmp(line, "edo:", 4) != 0)
            continue;
        /* "epoll" must not match inside a longer word. */
        for (const char *m = strstr(line, name); m; m = strstr(m + 1, name)) {
            char after = m[strlen(name)];
            char before = m == line ? ' ' : m[-1];
            if (before != '_' && (after == '\0' || after == ' ' || after == ',' || after == ')'))
                return true;
        }
    }
    return false;
}

static void case_log(void)
{
#ifndef EDO_HELLO
    printf("    skipped: the examples are not built (EDO_BUILD_EXAMPLES=OFF)\n");
#else
    saved_env be = env_save("EDO_BACKEND");
    env_put("EDO_BACKEND", NULL);
    int urc = uring_available(2);
    env_restore("EDO_BACKEND", be);
    const char *autoname = urc == 0 ? "io_uring" : "epoll";
    char err[4096];

    CHECK_EQ(run_hello(EDO_HELLO, "1", "epoll", err, sizeof err), 0);
    CHECK_MSG(says_backend(err, "epoll"), "EDO_LOG=1 EDO_BACKEND=epoll: stderr \"%s\"", err);
    CHECK_MSG(!says_backend(err, "io_uring"), "epoll run names io_uring: \"%s\"", err);

    CHECK_EQ(run_hello(EDO_HELLO, "1", NULL, err, sizeof err), 0);
    CHECK_MSG(says_backend(err, autoname), "EDO_LOG=1, automatic: stderr \"%s\", expected %s", err,
              autoname);
    printf("    automatic: %s", err);

    int rc = run_hello(EDO_HELLO, "1", "uring", err, sizeof err);
    if (urc == 0) {
        CHECK_EQ(rc, 0);
        CHECK_MSG(says_backend(err, "io_uring"), "EDO_LOG=1 EDO_BACKEND=uring: stderr \"%s\"", err);
    } else {
        /* Refused: the program cannot start, and says why. */
        CHECK_NE(rc, 0);
        CHECK_MSG(strlen(err) > 0, "a refused io_uring says nothing");
        printf("    EDO_BACKEND=uring refused: %s", err);
    }

    /* Without EDO_LOG a runtime is silent. */
    CHECK_EQ(run_hello(EDO_HELLO, NULL, "epoll", err, sizeof err), 0);
    CHECK_MSG(!says_backend(err, "epoll"), "without EDO_LOG: stderr \"%s\"", err);
#endif
}

/* ---------------------------------------------------------------------------------------- */
/* (b) A read that gives up leaves nothing in flight                                        */

/* A size malloc serves from the thread's cache of small blocks (glibc's tcache), so that
 * a block freed is what the next malloc of that size returns: a read still running in the
 * kernel would write into memory the caller has handed on. (ASan delays reuse, and sees
 * such a write as a use after free itself.) */
enum { RBUF = 1000, PATTERN = 0xa5 };

static unsigned char *patterned(void)
{
    unsigned char *p = malloc(RBUF);
    CHECK(p != NULL);
    memset(p, PATTERN, RBUF);
    return p;
}

static void check_pattern(const unsigned char *p, const char *what)
{
    for (size_t i = 0; i < RBUF; i++)
        CHECK_MSG(p[i] == PATTERN,
                  "%s: byte %zu of the reused memory is %#x: a read that gave up "
                  "wrote into it",
                  what, i, p[i]);
}

/* The reader must get exactly len bytes, equal to msg, and no more. */
static void read_all_of(edo_io *s, const unsigned char *msg, size_t len, const char *what)
{
    unsigned char got[4096];
    size_t done = 0;
    int64_t scope = edo_timeout_begin(PROMPT_MS);
    int rc = edo_read_exact(s, got, len, &done);
    edo_deadline_end(scope);
    CHECK_MSG(rc == 0,
              "%s: the next read got %zu of the %zu bytes sent (%s): bytes went to the "
              "read that gave up",
              what, done, len, edo_strerror(rc));
    CHECK_MSG(memcmp(got, msg, len) == 0, "%s: the bytes read are not the bytes sent", what);
    CHECK_ERR(edo_try_read(s, got, sizeof got), -EAGAIN);
}

/* The kinds of byte stream a call can be made on: each takes another path in the kernel
 * (recv and send on sockets, read and write on pipes). */
enum { STREAM_TCP, STREAM_UNIX, STREAM_PIPE, STREAM_KINDS };
static const char *const stream_names[] = { "tcp", "unix socket", "pipe" };

/* Inside a task: a stream from *w to *r, both ends edo_io. */
static void make_stream(int kind, edo_io **w, edo_io **r)
{
    int fd[2];
    switch (kind) {
    case STREAM_TCP:
        test_tcp_pair(w, r);
        return;
    case STREAM_UNIX:
        CHECK_SYS(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd));
        break;
    default:
        CHECK_SYS(pipe2(fd, O_CLOEXEC));
        CHECK_OK(edo_io_wrap(r, fd[0]));
        CHECK_OK(edo_io_wrap(w, fd[1]));
        return;
    }
    CHECK_OK(edo_io_wrap(w, fd[0]));
    CHECK_OK(edo_io_wrap(r, fd[1]));
}

static void *deadline_root(void *unused)
{
    edo_io *c, *s;
    test_tcp_pair(&c, &s);
    test_rng r = test_rng_new(1);
    int rounds = TEST_SCALE(300, 150, 60), reused = 0;
    unsigned char msg[4096];
    for (int i = 0; i < rounds; i++) {
        unsigned char *buf = malloc(RBUF);
        int64_t ms = (int64_t)test_rng_range(&r, 1, 5);
        int64_t t0 = edo_now();
        ssize_t n;
        size_t done = 99;
        switch (i % 3) {
        case 0: /* the io's read timeout */
            edo_io_set_timeout(s, ms, 0);
            n = edo_read(s, buf, RBUF);
            edo_io_set_timeout(s, 0, 0);
            break;
        case 1: { /* the task's deadline */
            int64_t scope = edo_timeout_begin(ms);
            n = edo_read(s, buf, RBUF);
            edo_deadline_end(scope);
            break;
        }
        default:
            edo_io_set_timeout(s, ms, 0);
            n = edo_read_exact(s, buf, RBUF, &done);
            edo_io_set_timeout(s, 0, 0);
            CHECK_EQ(done, 0);
            break;
        }
        CHECK_ERR(n, -ETIMEDOUT);
        CHECK_GE(edo_now() - t0, ms);
        CHECK_LT(edo_now() - t0, PROMPT_MS);
        uintptr_t old = (uintptr_t)buf;
        free(buf);
        unsigned char *reuse = patterned();
        reused += (uintptr_t)reuse == old;
        /* Now the peer speaks: everything goes to the next read, nothing to the one that
         * timed out, whose buffer is gone. */
        size_t len = (size_t)test_rng_range(&r, 1, sizeof msg);
        test_rng_fill(&r, msg, len);
        CHECK_OK(edo_write_all(c, msg, len, NULL));
        if (i % 2)
            CHECK_OK(edo_sleep(1)); /* let the kernel take the bytes somewhere first */
        read_all_of(s, msg, len, "deadline");
        check_pattern(reuse, "deadline");
        free(reuse);
    }
    printf("    the freed buffer came back as the next malloc in %d of %d rounds\n", reused,
           rounds);
    CHECK_OK(edo_close(c));
    CHECK_OK(edo_close(s));
    return NULL;
}

static const test_root case_read_deadline_then_data = { .fn = deadline_root, .fds_closed = true };

/* The same when the peer's bytes race with the deadline: each read returns data or
 * -ETIMEDOUT, and over the whole run the bytes read are exactly the bytes sent. */
typedef struct racer {
    edo_io *c;
    unsigned char *data;
    size_t len;
    uint64_t seed;
} racer;

static void *race_writer(void *arg)
{
    racer *w = arg;
    test_rng r = test_rng_new(w->seed);
    size_t off = 0;
    while (off < w->len) {
        size_t n = (size_t)test_rng_range(&r, 1, 700);
        if (n > w->len - off)
            n = w->len - off;
        CHECK_OK(edo_sleep((int64_t)test_rng_range(&r, 0, 3)));
        CHECK_OK(edo_write_all(w->c, w->data + off, n, NULL));
        off += n;
    }
    return NULL;
}

static void race_one(int kind)
{
    edo_io *c, *s;
    make_stream(kind, &c, &s);
    size_t len = TEST_SCALE(100000, 50000, 20000);
    racer w = { c, malloc(len), len, 7 };
    unsigned char *got = malloc(len);
    test_rng r = test_rng_new(8 + (uint64_t)kind);
    test_rng_fill(&r, w.data, len);
    edo_task *t;
    CHECK_OK(edo_spawn(&t, race_writer, &w));
    size_t have = 0;
    int timeouts = 0, reads = 0;
    while (have < len) {
        unsigned char *buf = malloc(RBUF);
        edo_io_set_timeout(s, (int64_t)test_rng_range(&r, 1, 3), 0);
        ssize_t n = edo_read(s, buf, RBUF);
        reads++;
        if (n > 0) {
            CHECK_LE(have + (size_t)n, len);
            memcpy(got + have, buf, (size_t)n);
            have += (size_t)n;
            free(buf);
            continue;
        }
        CHECK_ERR(n, -ETIMEDOUT);
        timeouts++;
        free(buf);
        unsigned char *reuse = patterned();
        CHECK_OK(edo_yield());
        check_pattern(reuse, "racing deadline");
        free(reuse);
    }
    edo_io_set_timeout(s, 0, 0);
    CHECK_EQ(edo_join(t, NULL), 0);
    CHECK_MSG(memcmp(got, w.data, len) == 0, "%s: the bytes read are not the bytes sent",
              stream_names[kind]);
    CHECK_ERR(edo_try_read(s, got, len), -EAGAIN);
    printf("    %s: %d reads, %d of them timed out\n", stream_names[kind], reads, timeouts);
    free(got);
    free(w.data);
    CHECK_OK(edo_close(c));
    CHECK_OK(edo_close(s));
}

static void *race_root(void *unused)
{
    for (int kind = 0; kind < STREAM_KINDS; kind++)
        race_one(kind);
    return NULL;
}

static const test_root case_read_deadline_racing_data = { .fn = race_root, .fds_closed = true };

/* Abort instead of a deadline: an aborted task calls nothing that suspends any more, so
 * it only frees its buffer and takes a new block; another task reads what comes next. */
typedef struct abort_reader {
    edo_io *io;
    atomic_int started;
    ssize_t rc;
    unsigned char got[RBUF]; /* what the read returned, if it won the race with the abort */
    unsigned char *reuse;
    bool reused;
} abort_reader;

static void *aborted_read(void *arg)
{
    abort_reader *a = arg;
    unsigned char *buf = malloc(RBUF);
    atomic_store(&a->started, 1);
    a->rc = edo_read(a->io, buf, RBUF);
    if (a->rc > 0)
        memcpy(a->got, buf, (size_t)a->rc);
    uintptr_t old = (uintptr_t)buf;
    free(buf);
    a->reuse = patterned();
    a->reused = (uintptr_t)a->reuse == old;
    return NULL;
}

typedef struct late_msg {
    edo_io *io;
    const unsigned char *msg;
    size_t len;
    int64_t delay_ms;
} late_msg;

static void *send_late(void *arg)
{
    late_msg *m = arg;
    CHECK_OK(edo_sleep(m->delay_ms));
    CHECK_OK(edo_write_all(m->io, m->msg, m->len, NULL));
    return NULL;
}

static void *abort_root(void *unused)
{
    edo_io *c, *s;
    test_tcp_pair(&c, &s);
    test_rng r = test_rng_new(2);
    int rounds = TEST_SCALE(200, 100, 50), reused = 0;
    unsigned char msg[4096];
    int raced = 0, won = 0;
    for (int i = 0; i < rounds; i++) {
        abort_reader a = { .io = s };
        size_t len = (size_t)test_rng_range(&r, 1, sizeof msg);
        test_rng_fill(&r, msg, len);
        edo_task *t, *sender = NULL;
        CHECK_OK(edo_spawn(&t, aborted_read, &a));
        if (i % 3 == 0) {
            test_wait_parked(t, EDO_WAIT_READ);
        } else {
            /* Somewhere in or before the read: the abort may find the task anywhere. */
            WAIT_UNTIL(atomic_load(&a.started), PROMPT_MS);
            if (test_rng_next(&r) % 2)
                CHECK_OK(edo_yield());
        }
        late_msg m = { c, msg, len, (int64_t)test_rng_range(&r, 0, 1) };
        if (i % 3 == 2) {
            /* The peer's bytes race with the abort: the read may complete with them. */
            CHECK_OK(edo_spawn(&sender, send_late, &m));
            CHECK_OK(edo_sleep((int64_t)test_rng_range(&r, 0, 1)));
            raced++;
        }
        int64_t t0 = edo_now();
        edo_abort(t);
        int jrc = edo_join(t, NULL);
        CHECK_LT(edo_now() - t0, PROMPT_MS);
        /* 0: the read had the data and the task returned before the abort came. */
        CHECK_MSG(jrc == -EDO_EABORTED || (sender && jrc == 0 && a.rc > 0), "join: %d, read: %zd", jrc,
                  a.rc);
        size_t first = 0;
        if (sender) {
            CHECK_MSG(a.rc == -ECANCELED || a.rc > 0, "aborted read: %zd", a.rc);
            if (a.rc > 0) {
                first = (size_t)a.rc;
                CHECK_LE(first, len);
                CHECK_MSG(memcmp(a.got, msg, first) == 0, "the aborted read's bytes are wrong");
                won++;
            }
            CHECK_EQ(edo_join(sender, NULL), 0);
        } else {
            CHECK_ERR(a.rc, -ECANCELED);
            CHECK_OK(edo_write_all(c, msg, len, NULL));
        }
        reused += a.reused;
        if (i % 4 < 2)
            CHECK_OK(edo_sleep(1));
        if (first < len)
            read_all_of(s, msg + first, len - first, "abort");
        else
            CHECK_ERR(edo_try_read(s, msg, 1), -EAGAIN);
        check_pattern(a.reuse, "abort");
        free(a.reuse);
    }
    printf("    the freed buffer came back as the next malloc in %d of %d rounds; in %d of the %d "
           "rounds where data raced the abort, the read had it first\n",
           reused, rounds, won, raced);
    CHECK_OK(edo_close(c));
    CHECK_OK(edo_close(s));
    return NULL;
}

static const test_root case_read_abort_then_data = { .fn = abort_root, .fds_closed = true };

/* ---------------------------------------------------------------------------------------- */
/* Abort of a task parked in accept, connect and write                                      */

static void *parked_accept(void *arg)
{
    edo_io *conn = NULL;
    int rc = edo_tcp_accept(&conn, arg);
    if (rc < 0)
        CHECK(conn == NULL);
    else
        edo_close(conn);
    return VAL(rc);
}

static void *parked_connect(void *arg)
{
    edo_io *conn = NULL;
    int rc = edo_tcp_connect(&conn, arg, 0); /* no timeout: only the abort ends it */
    if (rc < 0)
        CHECK(conn == NULL);
    else
        edo_close(conn);
    return VAL(rc);
}

/* Stream byte i is i % 251: a byte lost, doubled or out of place shows. */
enum { WCHUNK = 1 << 20, WMOD = 251 };

typedef struct writer {
    edo_io *io;
    unsigned char *buf; /* WCHUNK + WMOD bytes of the pattern */
    size_t sent;        /* as the calls report it */
} writer;

static void *parked_write(void *arg)
{
    writer *w = arg;
    for (int k = 0;; k++) {
        size_t done = 0;
        const unsigned char *p = w->buf + w->sent % WMOD;
        int rc;
        if (k % 2 == 0) {
            rc = edo_write_all(w->io, p, WCHUNK, &done);
        } else {
            ssize_t n = edo_write(w->io, p, WCHUNK);
            rc = n < 0 ? (int)n : 0;
            done = n < 0 ? 0 : (size_t)n;
        }
        w->sent += done;
        if (rc < 0)
            return VAL(rc);
    }
}

static void abort_and_join(edo_task *t, edo_wait_reason why, const char *what)
{
    test_wait_parked(t, why);
    int64_t t0 = edo_now();
    edo_abort(t);
    void *res;
    CHECK_ERR(edo_join(t, &res), -EDO_EABORTED);
    CHECK_MSG(INT(res) == -ECANCELED, "%s returned %d (%s), not -ECANCELED", what, (int)INT(res),
              edo_strerror((int)INT(res)));
    CHECK_MSG(edo_now() - t0 < PROMPT_MS, "%s took %d ms to end after its abort", what,
              (int)(edo_now() - t0));
}

static void *abort_accept_root(void *unused)
{
    char addr[48];
    edo_io *lis = test_listen(addr, sizeof addr, 16);
    for (int i = 0; i < 10; i++) {
        edo_task *t;
        CHECK_OK(edo_spawn(&t, parked_accept, lis));
        abort_and_join(t, EDO_WAIT_READ, "accept");
    }
    /* The listener still works: the aborted accepts left nothing that takes a connection
     * or holds the listener. */
    bool ok;
    int fd = test_raw_connect(addr, 5000, &ok);
    CHECK(ok);
    edo_io_set_timeout(lis, PROMPT_MS, 0);
    edo_io *conn;
    CHECK_OK(edo_tcp_accept(&conn, lis));
    CHECK_SYS(write(fd, "x", 1));
    char ch;
    CHECK_EQ(edo_read(conn, &ch, 1), 1);
    CHECK_OK(edo_close(conn));
    close(fd);
    CHECK_OK(edo_close(lis));
    return NULL;
}

static void *abort_connect_root(void *unused)
{
    char addr[48];
    int fill[64], nfill;
    int lfd = test_full_backlog(addr, sizeof addr, fill, 64, &nfill);
    for (int i = 0; i < 5; i++) {
        edo_task *t;
        CHECK_OK(edo_spawn(&t, parked_connect, addr));
        abort_and_join(t, EDO_WAIT_WRITE, "connect");
    }
    test_close_all(fill, nfill);
    close(lfd);
    return NULL;
}

static void *abort_write_root(void *unused)
{
    writer w = { .buf = malloc(WCHUNK + WMOD) };
    for (size_t i = 0; i < WCHUNK + WMOD; i++)
        w.buf[i] = (unsigned char)(i % WMOD);
    for (int round = 0; round < 3; round++) {
        edo_io *c, *s;
        test_tcp_pair(&c, &s);
        w.io = c;
        w.sent = 0;
        edo_task *t;
        CHECK_OK(edo_spawn(&t, parked_write, &w));
        abort_and_join(t, EDO_WAIT_WRITE, "write");
        CHECK_GT(w.sent, 0);
        /* What the calls said they sent is what arrives, in order, and nothing more. */
        CHECK_OK(edo_close(c));
        unsigned char *buf = malloc(65536);
        size_t got = 0;
        ssize_t n;
        edo_io_set_timeout(s, PROMPT_MS, 0);
        while ((n = edo_read(s, buf, 65536)) > 0) {
            for (ssize_t k = 0; k < n; k++)
                CHECK_MSG(buf[k] == (got + (size_t)k) % WMOD, "byte %zu of the stream",
                          got + (size_t)k);
            got += (size_t)n;
        }
        CHECK_EQ(n, 0);
        CHECK_MSG(got == w.sent, "the writes reported %zu bytes, the reader got %zu", w.sent, got);
        free(buf);
        CHECK_OK(edo_close(s));
    }
    free(w.buf);
    return NULL;
}

static const test_root case_abort_accept = { .fn = abort_accept_root, .fds_closed = true };

static const test_root case_abort_connect = { .fn = abort_connect_root, .fds_closed = true };

static const test_root case_abort_write = { .fn = abort_write_root, .fds_closed = true };

/* ---------------------------------------------------------------------------------------- */
/* Accepts that give up while clients arrive                                                */

/* Every connection is accepted exactly once: none goes to an accept that gave up, where its
 * descriptor would leak and its client would never be served. */
typedef struct arrivals {
    char addr[48];
    int n;
} arrivals;

static void *arriving_clients(void *arg)
{
    arrivals *ar = arg;
    test_rng r = test_rng_new(30);
    for (int i = 0; i < ar->n; i++) {
        CHECK_OK(edo_sleep((int64_t)test_rng_range(&r, 0, 2)));
        edo_io *c;
        CHECK_OK(edo_tcp_connect(&c, ar->addr, PROMPT_MS));
        uint32_t id = (uint32_t)i;
        CHECK_OK(edo_write_all(c, &id, sizeof id, NULL));
        CHECK_OK(edo_close(c)); /* the id waits in the accepted socket */
    }
    return NULL;
}

static void *accept_deadline_root(void *unused)
{
    arrivals ar = { .n = TEST_SCALE(300, 200, 100) };
    edo_io *lis = test_listen(ar.addr, sizeof ar.addr, 512);
    bool *seen = calloc((size_t)ar.n, sizeof *seen);
    test_rng r = test_rng_new(31);
    edo_task *t;
    CHECK_OK(edo_spawn(&t, arriving_clients, &ar));
    int accepted = 0, timeouts = 0;
    int64_t t0 = edo_now();
    while (accepted < ar.n) {
        CHECK_MSG(edo_now() - t0 < 6 * PROMPT_MS, "only %d of %d connections were accepted",
                  accepted, ar.n);
        int64_t ms = (int64_t)test_rng_range(&r, 0, 3);
        edo_io *conn = NULL;
        int rc;
        if (ms == 0 || test_rng_next(&r) % 2) {
            int64_t scope = edo_timeout_begin(ms);
            rc = edo_tcp_accept(&conn, lis);
            edo_deadline_end(scope);
        } else {
            edo_io_set_timeout(lis, ms, 0);
            rc = edo_tcp_accept(&conn, lis);
            edo_io_set_timeout(lis, 0, 0);
        }
        if (rc == -ETIMEDOUT) {
            CHECK(conn == NULL);
            timeouts++;
            continue;
        }
        CHECK_OK(rc);
        uint32_t id = UINT32_MAX;
        edo_io_set_timeout(conn, PROMPT_MS, 0);
        CHECK_OK(edo_read_exact(conn, &id, sizeof id, NULL));
        CHECK_LT(id, (uint32_t)ar.n);
        CHECK_MSG(!seen[id], "connection %u accepted twice", id);
        seen[id] = true;
        CHECK_OK(edo_close(conn));
        accepted++;
    }
    CHECK_EQ(edo_join(t, NULL), 0);
    /* And no connection more. */
    edo_io *extra = NULL;
    edo_io_set_timeout(lis, 50, 0);
    CHECK_ERR(edo_tcp_accept(&extra, lis), -ETIMEDOUT);
    printf("    %d connections, %d accepts timed out\n", ar.n, timeouts);
    free(seen);
    CHECK_OK(edo_close(lis));
    return NULL;
}

static const test_root case_accept_deadline = { .fn = accept_deadline_root, .fds_closed = true };

/* ---------------------------------------------------------------------------------------- */
/* Shutting a runtime down while its tasks wait in calls                                    */

enum { SHUT_TASKS = 60 };

typedef struct shut_env {
    atomic_int next;    /* the tasks number themselves */
    atomic_int waiting; /* tasks about to make their call */
} shut_env;

/* Owns everything it opens: the runtime's shutdown aborts its call, and it closes them. */
static void *wait_in_call(void *arg)
{
    shut_env *e = arg;
    static const char zeros[65536];
    char buf[64];
    int i = atomic_fetch_add(&e->next, 1);
    edo_io *a = NULL, *b = NULL;
    if (i % 10 == 0) {
        /* An accept on a listener of its own that nobody connects to. */
        char addr[48];
        edo_io *lis = test_listen(addr, sizeof addr, 4), *conn = NULL;
        atomic_fetch_add(&e->waiting, 1);
        int rc = edo_tcp_accept(&conn, lis);
        if (rc == 0)
            edo_close(conn);
        edo_close(lis);
        return VAL(rc);
    }
    int sv[2];
    CHECK_SYS(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    CHECK_OK(edo_io_wrap(&a, sv[0]));
    CHECK_OK(edo_io_wrap(&b, sv[1]));
    atomic_fetch_add(&e->waiting, 1);
    ssize_t rc;
    if (i % 2) {
        rc = edo_read(a, buf, sizeof buf);
    } else {
        while ((rc = edo_write(a, zeros, sizeof zeros)) > 0) {
        }
    }
    edo_close(a);
    edo_close(b);
    return VAL(rc);
}

static void *shutdown_root(void *arg)
{
    shut_env *e = arg;
    for (int i = 0; i < SHUT_TASKS; i++)
        CHECK_OK(edo_spawn(NULL, wait_in_call, e));
    WAIT_UNTIL(atomic_load(&e->waiting) == SHUT_TASKS, PROMPT_MS);
    CHECK_OK(edo_sleep(20)); /* into their calls */
    return NULL;             /* the runtime's shutdown aborts them all */
}

static void case_shutdown_with_calls_waiting(void)
{
    int fds = test_count_fds();
    shut_env *e = calloc(1, sizeof *e);
    edo_runtime *rt;
    CHECK_OK(edo_runtime_new(&rt, NULL));
    CHECK_OK(edo_block_on(rt, shutdown_root, e, NULL));
    int64_t t0 = test_clock_ms();
    edo_runtime_free(rt);
    int64_t took = test_clock_ms() - t0;
    /* Well within the 5 s of grace, after which tasks are abandoned and their descriptors
     * with them. */
    CHECK_MSG(took < 4000, "edo_runtime_free took %d ms", (int)took);
    printf("    %d tasks in calls: the runtime was down in %d ms\n", SHUT_TASKS, (int)took);
    free(e);
    CHECK_EQ(test_count_fds(), fds);
}

/* ---------------------------------------------------------------------------------------- */
/* Writes that give up: what they report sent is exactly what arrives                        */

typedef struct drain {
    edo_io *io;
    uint64_t seed;
    size_t got; /* bytes read until the end of the stream */
} drain;

/* A slow reader of the WMOD pattern, to the end of the stream. */
static void *slow_drain(void *arg)
{
    drain *d = arg;
    test_rng r = test_rng_new(d->seed);
    unsigned char *buf = malloc(65536);
    size_t next_pause = 32768;
    ssize_t n;
    while ((n = edo_read(d->io, buf, (size_t)test_rng_range(&r, 1, 65536))) > 0) {
        for (ssize_t k = 0; k < n; k++)
            CHECK_MSG(buf[k] == (d->got + (size_t)k) % WMOD,
                      "byte %zu of the stream is wrong: a write that gave up sent more than "
                      "it said, or less",
                      d->got + (size_t)k);
        d->got += (size_t)n;
        if (d->got >= next_pause) {
            CHECK_OK(edo_sleep(1));
            next_pause += 32768;
        }
    }
    CHECK_EQ(n, 0);
    free(buf);
    return NULL;
}

static void *write_deadline_root(void *unused)
{
    unsigned char *pat = malloc(WCHUNK + WMOD);
    for (size_t i = 0; i < WCHUNK + WMOD; i++)
        pat[i] = (unsigned char)(i % WMOD);
    test_rng r = test_rng_new(20);
    size_t target = TEST_SCALE(4 << 20, 2 << 20, 1 << 20);
    for (int kind = 0; kind < STREAM_KINDS; kind++) {
        edo_io *c, *s;
        make_stream(kind, &c, &s);
        drain d = { s, 21 + (uint64_t)kind, 0 };
        edo_task *t;
        CHECK_OK(edo_spawn(&t, slow_drain, &d));
        size_t sent = 0;
        int calls = 0, timeouts = 0;
        while (sent < target) {
            const unsigned char *p = pat + sent % WMOD;
            size_t len = (size_t)test_rng_range(&r, 1, 256 * 1024);
            int64_t ms = (int64_t)test_rng_range(&r, 1, 3);
            int how = (int)(test_rng_next(&r) % 3);
            int rc;
            size_t done = 0;
            if (how == 0) {
                edo_io_set_timeout(c, 0, ms);
                ssize_t n = edo_write(c, p, len);
                edo_io_set_timeout(c, 0, 0);
                rc = n < 0 ? (int)n : 0;
                done = n < 0 ? 0 : (size_t)n;
            } else if (how == 1) {
                edo_io_set_timeout(c, 0, ms);
                rc = edo_write_all(c, p, len, &done);
                edo_io_set_timeout(c, 0, 0);
            } else {
                int64_t scope = edo_timeout_begin(ms);
                struct iovec iov[2] = { { (void *)p, len / 2 },
                                        { (void *)(p + len / 2), len - len / 2 } };
                ssize_t n = edo_writev(c, iov, 2);
                edo_deadline_end(scope);
                rc = n < 0 ? (int)n : 0;
                done = n < 0 ? 0 : (size_t)n;
            }
            calls++;
            if (rc < 0) {
                CHECK_ERR(rc, -ETIMEDOUT);
                timeouts++;
            }
            sent += done;
        }
        CHECK_OK(edo_close(c)); /* the reader sees the end after the last byte */
        CHECK_EQ(edo_join(t, NULL), 0);
        CHECK_MSG(d.got == sent, "%s: the writes reported %zu bytes sent, %zu arrived",
                  stream_names[kind], sent, d.got);
        printf("    %s: %d writes, %d timed out\n", stream_names[kind], calls, timeouts);
        CHECK_OK(edo_close(s));
    }
    free(pat);
    return NULL;
}

static const test_root case_write_deadline = { .fn = write_deadline_root, .fds_closed = true };

/* ---------------------------------------------------------------------------------------- */
/* edo_close while a read is in flight                                                      */

typedef struct closed_reader {
    edo_io *io;
    bool write;        /* a write to a peer that never reads, instead of a read */
    atomic_int worker; /* where the read was made: that worker's ring holds it */
    atomic_llong rc;   /* 1 while the read has not returned */
    edo_io *peer;      /* the other end: an edo_io, or else */
    int raw;           /* a plain descriptor (else -1) */
} closed_reader;

/* Fills io's send path until a write would wait. Setting the buffer sizes turns off the
 * kernel's autotuning, so no room appears later. */
static void fill_socket(edo_io *io, int peer)
{
    int sz = 16384;
    CHECK_SYS(setsockopt(edo_io_fd(io), SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz));
    CHECK_SYS(setsockopt(peer, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz));
    static const char chunk[4096];
    while (edo_try_write(io, chunk, sizeof chunk) > 0)
        ;
}

static void *read_until_closed(void *arg)
{
    closed_reader *cr = arg;
    static const char zeros[65536];
    char buf[64];
    if (cr->write) {
        /* One call only: the io may be freed as soon as this call has left it, so a loop
         * of writes could race the close into freed memory. The root filled the socket
         * (with fixed buffer sizes), so this write waits. */
        atomic_store(&cr->worker, edo_worker_index());
        atomic_store(&cr->rc, edo_write(cr->io, zeros, sizeof zeros));
        return NULL;
    }
    atomic_store(&cr->worker, edo_worker_index());
    atomic_store(&cr->rc, edo_read(cr->io, buf, sizeof buf));
    return NULL;
}

/* Round i's stream and a task whose call on it waits: a TCP pair on odd rounds, else a
 * socketpair whose peer is a plain descriptor; on every fourth round from the third a
 * write into a full send path instead of a read. The caller closes cr->io while the call
 * waits, and then the peer (close_peer). */
static edo_task *spawn_closed_reader(closed_reader *cr, int i)
{
    cr->peer = NULL;
    cr->raw = -1;
    if (i % 2)
        test_tcp_pair(&cr->peer, &cr->io);
    else
        cr->io = test_socketpair(&cr->raw);
    cr->write = i % 4 == 2;
    atomic_init(&cr->worker, -1);
    atomic_init(&cr->rc, 1);
    if (cr->write)
        fill_socket(cr->io, cr->peer ? edo_io_fd(cr->peer) : cr->raw);
    edo_task *t;
    CHECK_OK(edo_spawn(&t, read_until_closed, cr));
    return t;
}

static void close_peer(closed_reader *cr)
{
    if (cr->peer)
        CHECK_OK(edo_close(cr->peer));
    if (cr->raw >= 0)
        close(cr->raw);
}

static void *close_by_task_root(void *unused)
{
    int rounds = TEST_SCALE(200, 100, 50), cross = 0;
    bool one_worker = edo_runtime_workers(edo_runtime_current()) == 1;
    int64_t worst = 0;
    for (int i = 0; i < rounds; i++) {
        closed_reader cr;
        edo_task *t = spawn_closed_reader(&cr, i);
        /* Closing from another worker than the reader's is the case where the cancel has
         * to travel to the ring that holds the read. The new task waits on this worker;
         * holding the worker for a while (as a stuck task would) lets another one take
         * it, most of the time. (With one worker nothing can take it.) */
        if (i % 4 != 0 && !one_worker) {
            int64_t t1 = test_clock_ms();
            while (atomic_load(&cr.worker) < 0 && test_clock_ms() - t1 < 20)
                test_sleep_us(200);
        }
        test_wait_parked(t, cr.write ? EDO_WAIT_WRITE : EDO_WAIT_READ);
        cross += edo_worker_index() != atomic_load(&cr.worker);
        int64_t t0 = edo_now();
        CHECK_OK(edo_close(cr.io));
        CHECK_EQ(edo_join(t, NULL), 0);
        int64_t took = edo_now() - t0;
        worst = took > worst ? took : worst;
        CHECK_ERR(atomic_load(&cr.rc), -EBADF);
        CHECK_LT(took, PROMPT_MS);
        close_peer(&cr);
    }
    printf("    %d of %d closes came from another worker than the call's; slowest %d ms\n", cross,
           rounds, (int)worst);
    return NULL;
}

static const test_root case_close_by_task = { .fn = close_by_task_root, .fds_closed = true };

typedef struct outside_closer {
    edo_io *io;
    atomic_int done;
    int rc;
} outside_closer;

static void *close_thread(void *arg)
{
    outside_closer *oc = arg;
    oc->rc = edo_close(oc->io);
    atomic_store(&oc->done, 1);
    return NULL;
}

static void *close_by_thread_root(void *unused)
{
    int rounds = TEST_SCALE(60, 30, 15);
    for (int i = 0; i < rounds; i++) {
        closed_reader cr;
        edo_task *t = spawn_closed_reader(&cr, i);
        test_wait_parked(t, cr.write ? EDO_WAIT_WRITE : EDO_WAIT_READ);
        outside_closer oc = { .io = cr.io };
        pthread_t th;
        int64_t t0 = edo_now();
        CHECK_EQ(pthread_create(&th, NULL, close_thread, &oc), 0);
        /* The reader, woken with -EBADF, is the one that frees the io. */
        CHECK_EQ(edo_join(t, NULL), 0);
        CHECK_LT(edo_now() - t0, PROMPT_MS);
        CHECK_ERR(atomic_load(&cr.rc), -EBADF);
        WAIT_UNTIL(atomic_load(&oc.done), PROMPT_MS);
        CHECK_EQ(pthread_join(th, NULL), 0);
        CHECK_EQ(oc.rc, 0);
        close_peer(&cr);
    }
    return NULL;
}

static const test_root case_close_by_thread = { .fn = close_by_thread_root, .fds_closed = true };

/* ---------------------------------------------------------------------------------------- */
/* A worker stuck in one task while a call of another task waits on it                     */

/* How long the stuck task holds its worker's thread. */
/* How long the holder holds its worker at most: until the call beside it is done, which
 * with other workers must come while it holds (the cap only ends a failing case); with
 * one, no other thread can serve the call, which then waits for the hold to end. */
#define STUCK_CAP_MS 30000
#define STUCK_ALONE_MS 100

typedef struct stuck {
    edo_io *io;
    bool write; /* to a pipe whose reader is gone; else a read */
    int worker_a, worker_b;
    atomic_bool call_done;
    bool capped; /* the holder let go because its time was up, not because the call was done */
    ssize_t rc;
} stuck;

/* Holds the thread of its worker without a suspension, as a long computation would, until
 * the call beside it is done (or its time is up). */
static void *hold_worker(void *arg)
{
    stuck *st = arg;
    st->worker_b = edo_worker_index();
    int64_t cap = edo_runtime_workers(edo_runtime_current()) == 1 ? STUCK_ALONE_MS : STUCK_CAP_MS;
    int64_t t0 = test_clock_ms();
    while (!atomic_load(&st->call_done) && test_clock_ms() - t0 < cap)
        test_sleep_us(200);
    st->capped = !atomic_load(&st->call_done);
    return NULL;
}

/* Spawns the holder, which usually runs on this worker next, then makes its call: the
 * operation is queued on this worker's ring, and the worker, held by the other task, can
 * neither submit it nor reap its completion. */
static void *call_beside_holder(void *arg)
{
    stuck *st = arg;
    static const char zeros[4096];
    char buf[8];
    edo_task *b;
    CHECK_OK(edo_spawn(&b, hold_worker, st));
    st->worker_a = edo_worker_index();
    st->rc = st->write ? edo_write(st->io, zeros, sizeof zeros) : edo_read(st->io, buf, sizeof buf);
    atomic_store(&st->call_done, true);
    CHECK_EQ(edo_join(b, NULL), 0);
    return NULL;
}

static void *stuck_root(void *unused)
{
    int workers = edo_runtime_workers(edo_runtime_current());
    /* A read whose worker is held: the data must reach it while the holder still runs
     * (the monitor submits and reaps for a stuck worker; with epoll, another worker polls). */
    if (workers == 1) {
        printf("    one worker: no other thread can serve a read while it is held (skipped)\n");
    } else {
        int same = 0;
        for (int i = 0; i < 3; i++) {
            edo_io *c, *s;
            test_tcp_pair(&c, &s);
            stuck st = { .io = s };
            edo_task *a;
            CHECK_OK(edo_spawn(&a, call_beside_holder, &st));
            test_wait_parked(a, EDO_WAIT_READ);
            CHECK_EQ(edo_write(c, "x", 1), 1);
            CHECK_EQ(edo_join(a, NULL), 0);
            CHECK_EQ(st.rc, 1);
            if (st.worker_a == st.worker_b) {
                same++;
                CHECK_MSG(!st.capped,
                          "the read on the held worker completed only after the holder let go "
                          "(held %d ms)",
                          STUCK_CAP_MS);
            }
            CHECK_OK(edo_close(c));
            CHECK_OK(edo_close(s));
        }
        printf("    %d of 3 reads waited on the held worker\n", same);
    }

    /* A write to a pipe without reader, submitted by whatever thread serves the held
     * worker: -EPIPE, and no SIGPIPE for the process (this case makes a delivered one
     * fatal). */
    for (int i = 0; i < 3; i++) {
        int p[2];
        CHECK_SYS(pipe2(p, O_CLOEXEC));
        close(p[0]);
        edo_io *w;
        CHECK_OK(edo_io_wrap(&w, p[1]));
        stuck st = { .io = w, .write = true };
        edo_task *a;
        CHECK_OK(edo_spawn(&a, call_beside_holder, &st));
        CHECK_EQ(edo_join(a, NULL), 0);
        CHECK_MSG(st.rc == -EPIPE, "write to a pipe without reader: %zd (%s)", st.rc,
                  edo_strerror((int)st.rc));
        CHECK_OK(edo_close(w));
    }
    return NULL;
}

static void case_stuck_worker(void)
{
    run_sigpipe_fatal(stuck_root, false);
}

/* ---------------------------------------------------------------------------------------- */
/* More operations at once than a submission queue holds                                    */

enum { MSG = 64 };

typedef struct crowd {
    char addr[48];
    edo_io *lis;
    int clients;
    atomic_int served, ok;
} crowd;

static void *crowd_echo(void *arg)
{
    edo_io *conn = arg;
    char buf[MSG];
    ssize_t n;
    while ((n = edo_read(conn, buf, sizeof buf)) > 0)
        if (edo_write_all(conn, buf, (size_t)n, NULL) < 0)
            break;
    edo_close(conn);
    return NULL;
}

static void *crowd_acceptor(void *arg)
{
    crowd *cw = arg;
    for (int i = 0; i < cw->clients; i++) {
        edo_io *conn;
        int rc = edo_tcp_accept(&conn, cw->lis);
        if (rc < 0)
            return VAL(rc);
        CHECK_OK(edo_spawn(NULL, crowd_echo, conn));
        atomic_fetch_add(&cw->served, 1);
    }
    return NULL;
}

static void *crowd_client(void *arg)
{
    crowd *cw = arg;
    int id = (int)(edo_task_id(NULL) & 0x7fffffff);
    unsigned char out[MSG], in[MSG];
    for (int k = 0; k < MSG; k++)
        out[k] = (unsigned char)(id * 31 + k);
    edo_io *conn;
    int rc = edo_tcp_connect(&conn, cw->addr, 0);
    CHECK_MSG(rc == 0, "connect: %s", edo_strerror(rc));
    CHECK_OK(edo_write_all(conn, out, MSG, NULL));
    CHECK_OK(edo_read_exact(conn, in, MSG, NULL));
    CHECK(memcmp(in, out, MSG) == 0);
    CHECK_OK(edo_close(conn));
    atomic_fetch_add(&cw->ok, 1);
    return NULL;
}

static void *crowd_root(void *arg)
{
    crowd *cw = arg;
    CHECK_EQ(edo_runtime_workers(edo_runtime_current()), 1);
    cw->lis = test_listen(cw->addr, sizeof cw->addr, 4096);
    edo_task *acc;
    CHECK_OK(edo_spawn(&acc, crowd_acceptor, cw));
    edo_task **t = malloc(sizeof *t * (size_t)cw->clients);
    /* Every client starts in the same turn of the one worker and queues its connect:
     * many more entries than a ring's submission queue has room for. */
    for (int i = 0; i < cw->clients; i++)
        CHECK_OK(edo_spawn(&t[i], crowd_client, cw));
    for (int i = 0; i < cw->clients; i++)
        CHECK_EQ(edo_join(t[i], NULL), 0);
    CHECK_EQ(edo_join(acc, NULL), 0);
    CHECK_EQ(atomic_load(&cw->ok), cw->clients);
    CHECK_EQ(atomic_load(&cw->served), cw->clients);
    free(t);
    CHECK_OK(edo_close(cw->lis));
    return NULL;
}

static void case_more_ops_than_queue(void)
{
    /* Two descriptors a client, and room to spare. Many more than a ring's 256 entries
     * (under TSan fewer: every task needs a fiber, and TSan's are dear). */
    crowd cw = { .clients = TEST_SCALE(2000, 2000, 400) };
    struct rlimit rl;
    CHECK_SYS(getrlimit(RLIMIT_NOFILE, &rl));
    rlim_t need = (rlim_t)cw.clients * 2 + 200;
    if (rl.rlim_cur < need) {
        struct rlimit more = { rl.rlim_max < need ? rl.rlim_max : need, rl.rlim_max };
        CHECK_SYS(setrlimit(RLIMIT_NOFILE, &more));
        if (more.rlim_cur < need) {
            cw.clients = (int)(more.rlim_cur - 200) / 2;
            printf("    only %d descriptors may be open: %d clients\n", (int)more.rlim_cur,
                   cw.clients);
        }
    }
    int fds = test_count_fds();
    int64_t t0 = test_clock_ms();
    test_run_opts(&(edo_runtime_opts){ .workers = 1 }, crowd_root, &cw);
    printf("    %d clients on one worker in %d ms\n", cw.clients, (int)(test_clock_ms() - t0));
    CHECK_EQ(test_count_fds(), fds);
    CHECK_SYS(setrlimit(RLIMIT_NOFILE, &rl));
}

/* ---------------------------------------------------------------------------------------- */
/* Short random timeouts on four workers                                                    */

enum { PAIRS = 32 };

typedef struct silent {
    struct quiet_env *env;
    edo_io *rd, *wr;     /* the reader's end, and the trickler's */
    atomic_llong sent;   /* bytes the trickler wrote: byte k is k & 0xff */
    long long received;  /* the reader's own */
    int reads, timeouts; /* the reader's own */
    int moved;           /* timed out on another worker than the read began on */
    int64_t slowest;     /* the reader's own */
    int index;
} silent;

typedef struct quiet_env {
    silent p[PAIRS];
    int reads_each;
    atomic_int readers_left;
} quiet_env;

static void *quiet_reader(void *arg)
{
    silent *p = arg;
    quiet_env *e = p->env;
    test_rng r = test_rng_new(100 + (uint64_t)p->index);
    unsigned char buf[64];
    for (int i = 0; i < e->reads_each; i++) {
        int64_t ms = (int64_t)test_rng_range(&r, 0, 3);
        int64_t t0 = edo_now();
        int w0 = edo_worker_index();
        ssize_t n;
        if (ms == 0 || test_rng_next(&r) % 2) {
            int64_t scope = edo_timeout_begin(ms); /* 0: already past */
            n = edo_read(p->rd, buf, sizeof buf);
            edo_deadline_end(scope);
        } else {
            edo_io_set_timeout(p->rd, ms, 0);
            n = edo_read(p->rd, buf, sizeof buf);
            edo_io_set_timeout(p->rd, 0, 0);
        }
        int64_t took = edo_now() - t0;
        p->slowest = took > p->slowest ? took : p->slowest;
        p->reads++;
        if (n < 0) {
            CHECK_ERR(n, -ETIMEDOUT);
            p->timeouts++;
            /* The call cancelled its operation from where it resumed: another worker's
             * ring held it if the task moved. */
            p->moved += edo_worker_index() != w0;
            continue;
        }
        CHECK_GT(n, 0);
        for (ssize_t k = 0; k < n; k++)
            CHECK_MSG(buf[k] == (unsigned char)(p->received + k),
                      "pair %d: byte %lld is %d: a byte was lost", p->index, p->received + k,
                      buf[k]);
        p->received += n;
    }
    atomic_fetch_sub(&e->readers_left, 1);
    return NULL;
}

/* Now and then a byte to some pair, so that data races the cancels too. */
static void *trickler(void *arg)
{
    quiet_env *e = arg;
    test_rng r = test_rng_new(99);
    while (atomic_load(&e->readers_left) > 0) {
        silent *p = &e->p[test_rng_next(&r) % PAIRS];
        unsigned char b = (unsigned char)atomic_load(&p->sent);
        CHECK_EQ(edo_write(p->wr, &b, 1), 1);
        atomic_fetch_add(&p->sent, 1);
        CHECK_OK(edo_sleep((int64_t)test_rng_range(&r, 0, 2)));
    }
    return NULL;
}

static void *quiet_root(void *arg)
{
    quiet_env *e = arg;
    CHECK_EQ(edo_runtime_workers(edo_runtime_current()), 4);
    for (int i = 0; i < PAIRS; i++) {
        silent *p = &e->p[i];
        p->index = i;
        p->env = e;
        if (i % 2) {
            test_tcp_pair(&p->wr, &p->rd);
        } else {
            int sv[2];
            CHECK_SYS(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
            CHECK_OK(edo_io_wrap(&p->rd, sv[0]));
            CHECK_OK(edo_io_wrap(&p->wr, sv[1]));
        }
    }
    atomic_store(&e->readers_left, PAIRS);
    edo_task *t[PAIRS], *tr;
    for (int i = 0; i < PAIRS; i++)
        CHECK_OK(edo_spawn(&t[i], quiet_reader, &e->p[i]));
    CHECK_OK(edo_spawn(&tr, trickler, e));
    for (int i = 0; i < PAIRS; i++)
        CHECK_EQ(edo_join(t[i], NULL), 0);
    CHECK_EQ(edo_join(tr, NULL), 0);
    int reads = 0, timeouts = 0, moved = 0;
    long long bytes = 0;
    int64_t slowest = 0;
    for (int i = 0; i < PAIRS; i++) {
        silent *p = &e->p[i];
        /* What the reader has not had yet is all still there, and nothing more. */
        long long left = atomic_load(&p->sent) - p->received;
        CHECK_GE(left, 0);
        unsigned char buf[4096];
        CHECK_LE(left, (long long)sizeof buf);
        size_t done = 0;
        edo_io_set_timeout(p->rd, PROMPT_MS, 0);
        int rc = edo_read_exact(p->rd, buf, (size_t)left, &done);
        CHECK_MSG(rc == 0, "pair %d: %lld bytes were sent and not read, only %zu came: %s", i, left,
                  done, edo_strerror(rc));
        for (long long k = 0; k < left; k++)
            CHECK_EQ(buf[k], (unsigned char)(p->received + k));
        CHECK_ERR(edo_try_read(p->rd, buf, sizeof buf), -EAGAIN);
        reads += p->reads;
        timeouts += p->timeouts;
        moved += p->moved;
        bytes += atomic_load(&p->sent);
        slowest = p->slowest > slowest ? p->slowest : slowest;
        CHECK_OK(edo_close(p->rd));
        CHECK_OK(edo_close(p->wr));
    }
    printf("    %d reads: %d timed out (%d of them ended on another worker than they began), "
           "%lld bytes trickled in; slowest read %d ms\n",
           reads, timeouts, moved, bytes, (int)slowest);
    CHECK_LT(slowest, PROMPT_MS);
    return NULL;
}

static void case_random_timeouts(void)
{
    int fds = test_count_fds();
    quiet_env *e = calloc(1, sizeof *e);
    e->reads_each = TEST_SCALE(150, 80, 40);
    test_run_opts(&(edo_runtime_opts){ .workers = 4 }, quiet_root, e);
    free(e);
    CHECK_EQ(test_count_fds(), fds);
}

/* ---------------------------------------------------------------------------------------- */
/* A large write to a slow reader                                                           */

enum { BIG = 8 << 20 };

typedef struct big_writer {
    edo_io *io;
    const unsigned char *data;
    size_t done;
} big_writer;

static void *write_big(void *arg)
{
    big_writer *w = arg;
    int rc = edo_write_all(w->io, w->data, BIG, &w->done);
    if (rc == 0)
        rc = edo_shutdown(w->io);
    return VAL(rc);
}

static void *big_root(void *unused)
{
    unsigned char *data = malloc(BIG), *got = malloc(BIG);
    test_rng r = test_rng_new(5);
    test_rng_fill(&r, data, BIG);
    for (int kind = 0; kind < 2; kind++) {
        edo_io *c, *s;
        int sv[2];
        if (kind == 0) {
            test_tcp_pair(&c, &s);
        } else {
            CHECK_SYS(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
            CHECK_OK(edo_io_wrap(&c, sv[0]));
            CHECK_OK(edo_io_wrap(&s, sv[1]));
        }
        memset(got, 0, BIG);
        big_writer w = { c, data, 0 };
        edo_task *t;
        CHECK_OK(edo_spawn(&t, write_big, &w));
        /* A slow reader: small reads, a pause every 64 KiB. */
        size_t have = 0, next_pause = 65536;
        ssize_t n;
        while ((n = edo_read(s, got + have, (size_t)test_rng_range(&r, 1, 16384))) > 0) {
            have += (size_t)n;
            CHECK_LE(have, BIG);
            if (have >= next_pause) {
                CHECK_OK(edo_sleep(1));
                next_pause += 65536;
            }
        }
        CHECK_EQ(n, 0);
        void *res;
        CHECK_EQ(edo_join(t, &res), 0);
        CHECK_EQ(INT(res), 0);
        CHECK_EQ(w.done, BIG);
        CHECK_EQ(have, BIG);
        CHECK_MSG(memcmp(got, data, BIG) == 0, "%s: the 8 MiB arrived changed",
                  kind ? "unix socket" : "tcp");
        CHECK_OK(edo_close(c));
        CHECK_OK(edo_close(s));
    }
    free(data);
    free(got);
    return NULL;
}

static const test_root case_write_all_slow_reader = { .fn = big_root, .fds_closed = true };

/* ---------------------------------------------------------------------------------------- */
/* Pipes and regular files through edo_io_wrap                                              */

enum { PIPE_BYTES = 1 << 20 };

typedef struct pipe_writer {
    edo_io *io;
    const unsigned char *data;
} pipe_writer;

static void *pipe_write(void *arg)
{
    pipe_writer *w = arg;
    test_rng r = test_rng_new(11);
    size_t off = 0;
    while (off < PIPE_BYTES) {
        size_t n = (size_t)test_rng_range(&r, 1, 100000);
        if (n > PIPE_BYTES - off)
            n = PIPE_BYTES - off;
        if (test_rng_next(&r) % 2) {
            CHECK_OK(edo_write_all(w->io, w->data + off, n, NULL));
        } else {
            struct iovec iov[2] = { { (void *)(w->data + off), n / 2 },
                                    { (void *)(w->data + off + n / 2), n - n / 2 } };
            ssize_t k = edo_writev(w->io, iov, 2);
            CHECK_GT(k, 0);
            n = (size_t)k;
        }
        off += n;
    }
    CHECK_OK(edo_close(w->io)); /* the reader sees the end */
    return NULL;
}

static void *write_until_epipe(void *arg)
{
    return VAL(test_write_until_error(arg, 1, 1000, NULL));
}

static void *pipes_root(void *unused)
{
    /* Data both ways through the kernel's 64 KiB pipe buffer, the writer parking often. */
    unsigned char *data = malloc(PIPE_BYTES), *got = malloc(PIPE_BYTES);
    test_rng r = test_rng_new(10);
    test_rng_fill(&r, data, PIPE_BYTES);
    int p[2];
    CHECK_SYS(pipe2(p, O_CLOEXEC));
    edo_io *rd, *wr;
    CHECK_OK(edo_io_wrap(&rd, p[0]));
    CHECK_OK(edo_io_wrap(&wr, p[1]));
    pipe_writer pw = { wr, data };
    edo_task *t;
    CHECK_OK(edo_spawn(&t, pipe_write, &pw));
    size_t have = 0;
    ssize_t n;
    while ((n = edo_read(rd, got + have, (size_t)test_rng_range(&r, 1, 70000))) > 0) {
        have += (size_t)n;
        CHECK_LE(have, PIPE_BYTES);
        if (test_rng_next(&r) % 8 == 0)
            CHECK_OK(edo_sleep(1));
    }
    CHECK_EQ(n, 0);
    CHECK_EQ(have, PIPE_BYTES);
    CHECK(memcmp(got, data, PIPE_BYTES) == 0);
    CHECK_EQ(edo_join(t, NULL), 0);
    CHECK_OK(edo_close(rd));

    /* A pipe whose reader is gone: -EPIPE for every kind of write, and the SIGPIPE the
     * kernel raises is never delivered (this case makes a delivered one fatal). */
    const char *how[] = { "edo_write", "edo_write_all", "edo_writev" };
    for (int k = 0; k < 3; k++) {
        CHECK_SYS(pipe2(p, O_CLOEXEC));
        close(p[0]);
        CHECK_OK(edo_io_wrap(&wr, p[1]));
        ssize_t rc = test_write_until_error(wr, k, 1000, NULL);
        CHECK_MSG(rc == -EPIPE, "%s to a pipe without reader: %zd", how[k], rc);
        CHECK_OK(edo_close(wr));
    }

    /* The reader goes while a write is parked on a full pipe. */
    for (int k = 0; k < 5; k++) {
        CHECK_SYS(pipe2(p, O_CLOEXEC));
        CHECK_OK(edo_io_wrap(&wr, p[1]));
        CHECK_OK(edo_spawn(&t, write_until_epipe, wr));
        test_wait_parked(t, EDO_WAIT_WRITE);
        close(p[0]);
        void *res;
        CHECK_EQ(edo_join(t, &res), 0);
        CHECK_MSG(INT(res) == -EPIPE, "parked write after the reader left: %d (%s)", (int)INT(res),
                  edo_strerror((int)INT(res)));
        CHECK_OK(edo_close(wr));
    }
    free(data);
    free(got);
    return NULL;
}

static void case_pipes(void)
{
    run_sigpipe_fatal(pipes_root, true);
}

enum { FILE_BYTES = 300000 };

static void *file_root(void *unused)
{
    const char *tmp = getenv("TMPDIR");
    char tpath[4096];
    snprintf(tpath, sizeof tpath, "%s/edo-test-backend-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = (int)CHECK_SYS(mkstemp(tpath));
    unsigned char *data = malloc(FILE_BYTES), *got = malloc(FILE_BYTES + 1);
    test_rng r = test_rng_new(12);
    test_rng_fill(&r, data, FILE_BYTES);
    for (size_t off = 0; off < FILE_BYTES;)
        off += (size_t)CHECK_SYS(write(fd, data + off, FILE_BYTES - off));
    close(fd);

    for (int round = 0; round < 2; round++) {
        fd = (int)CHECK_SYS(open(tpath, O_RDONLY | O_CLOEXEC));
        edo_io *io;
        CHECK_OK(edo_io_wrap(&io, fd));
        size_t have = 0;
        ssize_t n;
        if (round == 0) {
            /* Reads of every size, each going on from where the last stopped. */
            while ((n = edo_read(io, got + have, (size_t)test_rng_range(&r, 1, 65536))) > 0) {
                have += (size_t)n;
                CHECK_LE(have, FILE_BYTES);
            }
            CHECK_EQ(n, 0);
        } else {
            size_t done = 0;
            CHECK_ERR(edo_read_exact(io, got, FILE_BYTES + 1, &done), -ENODATA);
            have = done;
        }
        CHECK_EQ(have, FILE_BYTES);
        CHECK(memcmp(got, data, FILE_BYTES) == 0);
        CHECK_EQ(edo_read(io, got, 10), 0);
        CHECK_OK(edo_close(io));
    }
    unlink(tpath);
    free(data);
    free(got);
    return NULL;
}

static const test_root case_regular_file = { .fn = file_root, .fds_closed = true };

/* ---------------------------------------------------------------------------------------- */

static void case_backend_in_use(void)
{
    /* Which backend the cases below run on: EDO_BACKEND, as CTest sets it. */
    edo_backend b = current_backend();
    const char *env = getenv("EDO_BACKEND");
    printf("    EDO_BACKEND=%s: the cases run on %s\n", env ? env : "(unset)", edo_backend_name(b));
    /* No case is for io_uring alone: each checks what both backends must do alike. */
    if (b == EDO_BACKEND_EPOLL)
        printf("    (no call is an operation in a ring here: the cases below check that epoll "
               "does what io_uring must match)\n");
}

/* ---------------------------------------------------------------------------------------- */
/* More waits ready at once than one look at the epoll returns (256). Under io_uring the
 * runtime's epoll is watched by a multishot poll, which fires when the epoll is woken, not
 * while events remain in it: a look that takes only the first 256 would leave the rest
 * there until some unrelated event came, perhaps never. Nothing else happens here, so a
 * stranded wait is a task that never wakes. */

/* 600 descriptors: within the usual limit of 1024 (TSan: fewer tasks, each needs a fiber). */
enum { MR_WAITERS = TEST_SCALE(300, 300, 150) };

static void *mr_waiter(void *arg)
{
    CHECK_OK(edo_io_wait(arg, EDO_READ));
    return NULL;
}

static void *many_ready_root(void *unused)
{
    (void)unused;
    static edo_io *io[MR_WAITERS];
    static int raw[MR_WAITERS];
    static edo_task *ts[MR_WAITERS];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < MR_WAITERS; i++) {
            io[i] = test_socketpair(&raw[i]);
            CHECK_OK(edo_spawn(&ts[i], mr_waiter, io[i]));
        }
        for (int i = 0; i < MR_WAITERS; i++)
            test_wait_parked(ts[i], EDO_WAIT_READ);
        /* All ready before the runtime looks again: this task does not suspend meanwhile. */
        for (int i = 0; i < MR_WAITERS; i++)
            CHECK_EQ(write(raw[i], "x", 1), 1);
        int64_t scope = edo_timeout_begin(PROMPT_MS); /* a lost wake-up fails, not hangs */
        for (int i = 0; i < MR_WAITERS; i++)
            CHECK_MSG(edo_join(ts[i], NULL) == 0, "round %d: waiter %d of %d never woke", round, i,
                      MR_WAITERS);
        edo_deadline_end(scope);
        for (int i = 0; i < MR_WAITERS; i++) {
            CHECK_OK(edo_close(io[i]));
            close(raw[i]);
        }
    }
    return NULL;
}

static const test_root case_many_ready_waits = { .fn = many_ready_root, .fds_closed = true };

static const test_case cases[] = {
    TEST_CASE_ONCE(case_names),
    TEST_CASE_ONCE(case_choice),
    TEST_CASE_ONCE(case_env),
    TEST_CASE_ONCE(case_log),
    TEST_CASE(case_backend_in_use),
    TEST_CASE(case_read_deadline_then_data),
    TEST_CASE(case_read_deadline_racing_data),
    TEST_CASE(case_read_abort_then_data),
    TEST_CASE(case_abort_accept),
    TEST_CASE(case_abort_connect),
    TEST_CASE(case_abort_write),
    TEST_CASE(case_accept_deadline),
    TEST_CASE(case_shutdown_with_calls_waiting),
    TEST_CASE(case_write_deadline),
    TEST_CASE(case_close_by_task),
    TEST_CASE(case_close_by_thread),
    TEST_CASE_BACKENDS(case_more_ops_than_queue),
    TEST_CASE_BACKENDS(case_random_timeouts),
    TEST_CASE(case_write_all_slow_reader),
    TEST_CASE(case_pipes),
    TEST_CASE(case_many_ready_waits),
    TEST_CASE(case_regular_file),
    TEST_CASE(case_stuck_worker), /* last: a SIGPIPE it lets through ends the program */
};

TEST_MAIN(cases)
