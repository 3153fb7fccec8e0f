/*
 * The chat examples, driven over real loopback sockets. examples/chat-server runs as a
 * child process (its path is given by tests/CMakeLists.txt), so that what is tested is the
 * program a user runs, its options, signals and exit status included; the test's own
 * tasks are its clients. Names, /nick, /who, /quit and the announcements; broadcast to
 * every other client and never back to the sender; 50 clients chatting while one never
 * reads (it is cut off, the others get every line promptly, the server's memory stays
 * bounded); garbage bytes, line ends and over-long lines; resets and half-closes mid-line;
 * a flood that is paced, not dropped; 1,000 clients at once; EMFILE on accept; and
 * examples/chat-client driven through pipes. Every case ends by stopping the server with
 * SIGTERM and checking that it exits with status 0 and says nothing unexpected (so a
 * sanitizer's report in the server, a leak included, fails the case).
 *
 * edo-test: timeout=240
 */
#include "harness.h"

#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#ifdef EDO_CHAT_SERVER

extern char **environ;

#define WAIT_MS TEST_SCALE(10000, 20000, 30000) /* for anything that should come at once */

/* What the server's source says; the test checks the behaviour these limits imply. */
#define LINE_LEN 512
#define RATE_PER_SEC 50
#define RATE_BURST 100

/* ---------------------------------------------------------------------------------------- */
/* Child processes                                                                          */

typedef struct proc {
    pid_t pid;
    int out;       /* where we read its standard output */
    int in;        /* where we write its standard input, -1 if none */
    int in_peer;   /* our copy of the descriptor that is its standard input, for its flags */
    char err[256]; /* file its standard error goes to, "" for the test's own */
} proc;

enum proc_stdin {
    NO_STDIN,   /* the test's own; standard output is a pipe */
    PIPES,      /* standard input and output are two pipes */
    ONE_SOCKET, /* both are one socket (one open file description, as a terminal is) */
};

/* Starts argv[0] with its standard input and output as `how` says, and its standard error
 * into a temporary file if capture_err. Call it from the main thread, outside the
 * runtime: the child is killed when the thread that started it ends, so that no server is
 * left behind by a test that is killed (a CTest timeout) or fails. */
static void proc_start(proc *p, char *const argv[], enum proc_stdin how, bool capture_err)
{
    int outp[2], inp[2] = { -1, -1 }, errfd = -1;
    memset(p, 0, sizeof *p);
    p->in = p->in_peer = -1;
    if (how == ONE_SOCKET) {
        /* Ours is outp[0] (and inp[1], a duplicate); the child's is outp[1] (and inp[0]). */
        CHECK_SYS(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, outp));
        inp[1] = (int)CHECK_SYS(fcntl(outp[0], F_DUPFD_CLOEXEC, 0));
        inp[0] = (int)CHECK_SYS(fcntl(outp[1], F_DUPFD_CLOEXEC, 0));
    } else {
        CHECK_SYS(pipe2(outp, O_CLOEXEC));
        if (how == PIPES)
            CHECK_SYS(pipe2(inp, O_CLOEXEC));
    }
    if (capture_err) {
        const char *dir = getenv("TMPDIR");
        int len =
            snprintf(p->err, sizeof p->err, "%s/edo-test-chat-XXXXXX", dir && *dir ? dir : "/tmp");
        CHECK_MSG(len > 0 && (size_t)len < sizeof p->err, "TMPDIR too long");
        errfd = (int)CHECK_SYS(mkostemp(p->err, O_CLOEXEC));
    }
    pid_t parent = getpid();
    p->pid = (pid_t)CHECK_SYS(fork());
    if (p->pid == 0) {
        /* Only async-signal-safe calls between fork and exec. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
            _exit(127);
        if (dup2(outp[1], 1) < 0 || (inp[0] >= 0 && dup2(inp[0], 0) < 0) ||
            (errfd >= 0 && dup2(errfd, 2) < 0))
            _exit(127);
        execve(argv[0], argv, environ);
        _exit(127);
    }
    close(outp[1]);
    if (errfd >= 0)
        close(errfd);
    p->out = outp[0];
    p->in = inp[1];
    p->in_peer = inp[0];
}

/* Waits for the process to exit, at most ms, and returns its wait status. In a task it
 * sleeps between looks, elsewhere it blocks the thread. */
static int proc_wait(proc *p, int ms)
{
    int64_t t0 = test_clock_ms();
    int status;
    for (;;) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        CHECK_SYS(r);
        if (r == p->pid)
            break;
        if (test_clock_ms() - t0 > ms) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &status, 0);
            TEST_FAIL("process %d still running after %d ms", (int)p->pid, ms);
        }
        if (edo_self())
            edo_sleep(5);
        else
            test_sleep_us(5000);
    }
    p->pid = 0;
    return status;
}

static void proc_free(proc *p)
{
    if (p->out >= 0)
        close(p->out);
    if (p->in >= 0)
        close(p->in);
    if (p->in_peer >= 0)
        close(p->in_peer);
    if (p->err[0])
        unlink(p->err);
    p->out = p->in = p->in_peer = -1;
}

/* The whole of a file (the captured standard error), NUL-terminated; free it. */
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL, "open %s", path);
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    size_t n;
    while ((n = fread(s + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap)
            s = realloc(s, cap *= 2);
    }
    s[len] = 0;
    fclose(f);
    return s;
}

typedef struct server {
    proc p;
    char addr[48];
} server;

/* The servers running now: a failed check shows what they said and whether they live, since
 * a client's error (a reset, an early end) is often the server's crash seen from outside. */
static server *live_servers[4];

static void show_servers(void)
{
    for (size_t i = 0; i < sizeof live_servers / sizeof live_servers[0]; i++) {
        server *s = live_servers[i];
        if (!s)
            continue;
        int status;
        pid_t r = waitpid(s->p.pid, &status, WNOHANG);
        fprintf(stderr, "chat-server %d: %s", (int)s->p.pid, r == 0 ? "running" : "ended");
        if (r > 0)
            fprintf(stderr, " with status %#x", status);
        char *err = s->p.err[0] ? read_file(s->p.err) : NULL;
        fprintf(stderr, "; its standard error:\n%s\n", err ? err : "(not captured)");
        free(err);
    }
}

static void server_track(server *s, bool live)
{
    test_on_failure = show_servers;
    for (size_t i = 0; i < sizeof live_servers / sizeof live_servers[0]; i++)
        if (live ? !live_servers[i] : live_servers[i] == s) {
            live_servers[i] = live ? s : NULL;
            return;
        }
    CHECK_MSG(!live, "more than %zu servers at once", sizeof live_servers / sizeof live_servers[0]);
}

/* Starts chat-server on a free port and waits until it listens. Its standard error goes
 * to a file that server_stop looks at. */
static void server_start(server *s)
{
    char *argv[] = { EDO_CHAT_SERVER, "-p", "0", NULL };
    proc_start(&s->p, argv, NO_STDIN, true);
    char buf[256];
    size_t len = 0;
    int64_t t0 = test_clock_ms();
    while (!memchr(buf, '\n', len)) {
        struct pollfd pfd = { .fd = s->p.out, .events = POLLIN };
        CHECK_MSG(test_clock_ms() - t0 < WAIT_MS, "chat-server did not start");
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t n = read(s->p.out, buf + len, sizeof buf - 1 - len);
        CHECK_MSG(n > 0, "chat-server's output ended: %zd", n);
        len += (size_t)n;
    }
    buf[len] = 0;
    const char *at = strstr(buf, "listening on ");
    CHECK_MSG(at != NULL, "chat-server said \"%s\"", buf);
    CHECK_EQ(sscanf(at, "listening on %47s", s->addr), 1);
    server_track(s, true);
}

/* SIGTERM, and a clean stop: exit status 0, and nothing on standard error but the lines
 * that start with one of `allowed` (a NULL-terminated list, may be NULL), the notice of
 * the stop, and the runtime's blocking-task reports (edo/observe.h: a line sent to a
 * thousand clients keeps one task busy that long). So a sanitizer's report, a leak
 * included, fails the case. */
static void server_stop_allowing(server *s, const char *const *allowed)
{
    server_track(s, false);
    CHECK_SYS(kill(s->p.pid, SIGTERM));
    int status = proc_wait(&s->p, WAIT_MS);
    char *err = read_file(s->p.err);
    static const char stop_notice[] = "chat-server: SIGTERM: stopping"; /* and what is open */
    bool clean = true;
    for (char *line = err; *line;) {
        size_t len = strcspn(line, "\n");
        static const char *const reports[] = { "edo: task ", "edo: (", "(blocking threshold", "  #",
                                               NULL };
        bool ok = strncmp(line, stop_notice, sizeof stop_notice - 1) == 0;
        for (int i = 0; reports[i] && !ok; i++)
            ok = strncmp(line, reports[i], strlen(reports[i])) == 0;
        for (int i = 0; allowed && allowed[i] && !ok; i++)
            ok = strncmp(line, allowed[i], strlen(allowed[i])) == 0;
        clean = clean && ok;
        line += len + (line[len] == '\n');
    }
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0 && clean,
              "chat-server ended with status %#x, and said:\n%s", status, err);
    free(err);
    proc_free(&s->p);
}

static void server_stop(server *s)
{
    server_stop_allowing(s, NULL);
}

/* Starts a server, runs root in a fresh runtime and stops the server (cleanly: see
 * server_stop). root's argument is the server, or env if there is one, whose *env_server
 * then points at the server. */
static void run_with_server(void *(*root)(void *), void *env, server **env_server)
{
    server s;
    if (env_server)
        *env_server = &s;
    server_start(&s);
    test_run(root, env ? env : &s);
    server_stop(&s);
}

/* The server's resident memory in KiB (VmRSS of /proc/PID/status). */
static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL, "open %s", path);
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    CHECK_GT(kib, 0);
    return kib;
}

/* Raises the soft limit of descriptors to need (children inherit it). */
static void need_fds(rlim_t need)
{
    struct rlimit rl;
    CHECK_SYS(getrlimit(RLIMIT_NOFILE, &rl));
    if (rl.rlim_cur < need && rl.rlim_max > rl.rlim_cur) {
        rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
        CHECK_SYS(setrlimit(RLIMIT_NOFILE, &rl));
    }
    CHECK_MSG(rl.rlim_cur >= need, "RLIMIT_NOFILE %lu is too low: this case needs %lu",
              (unsigned long)rl.rlim_cur, (unsigned long)need);
}

/* ---------------------------------------------------------------------------------------- */
/* Clients: the test's tasks, reading the server's lines                                    */

typedef struct peer {
    edo_io *io;
    char name[24];
    bool lf_only;     /* lines must end with LF alone (chat-client's output) */
    size_t head, len; /* buf[head, len) is received and not yet taken as lines */
    char buf[8192];
} peer;

/* The next line without its end (at most cap - 1 bytes) into line; returns its length,
 * -ENODATA at the end of the stream, or -errno (-ETIMEDOUT after ms). */
static int peer_line_within(peer *p, char *line, size_t cap, int64_t ms)
{
    int64_t scope = edo_timeout_begin(ms);
    int rc;
    for (;;) {
        char *start = p->buf + p->head;
        char *nl = memchr(start, '\n', p->len - p->head);
        if (nl) {
            size_t n = (size_t)(nl - start);
            CHECK_MSG(!p->lf_only || !memchr(start, '\r', n), "%s: a CR in \"%.*s\"", p->name,
                      (int)n, start);
            p->head += n + 1;
            if (n && start[n - 1] == '\r')
                n--;
            CHECK_MSG(n < cap, "a line of %zu bytes", n);
            memcpy(line, start, n);
            line[n] = 0;
            rc = (int)n;
            break;
        }
        /* Room at the end: move the rest of a line to the front only when needed. */
        if (p->len == sizeof p->buf) {
            CHECK_MSG(p->head > 0, "%s: no line end in %zu bytes", p->name, p->len);
            memmove(p->buf, start, p->len - p->head);
            p->len -= p->head;
            p->head = 0;
        }
        ssize_t r = edo_read(p->io, p->buf + p->len, sizeof p->buf - p->len);
        if (r <= 0) {
            rc = r == 0 ? -ENODATA : (int)r;
            break;
        }
        p->len += (size_t)r;
    }
    edo_deadline_end(scope);
    return rc;
}

static int peer_line(peer *p, char *line, size_t cap)
{
    int rc = peer_line_within(p, line, cap, WAIT_MS);
    CHECK_MSG(rc >= 0, "%s: no line: %s", p->name, edo_strerror(rc));
    return rc;
}

static void expect_line(peer *p, const char *want)
{
    char got[8192];
    peer_line(p, got, sizeof got);
    CHECK_MSG(strcmp(got, want) == 0, "%s: got \"%s\", expected \"%s\"", p->name, got, want);
}

static void expect_prefix(peer *p, const char *want)
{
    char got[8192];
    peer_line(p, got, sizeof got);
    CHECK_MSG(strncmp(got, want, strlen(want)) == 0, "%s: got \"%s\", expected \"%s...\"", p->name,
              got, want);
}

/* Skips lines until want. */
static void wait_line(peer *p, const char *want)
{
    char got[8192];
    do
        peer_line(p, got, sizeof got);
    while (strcmp(got, want) != 0);
}

/* Skips lines until one that starts with want. */
static void wait_prefix(peer *p, const char *want)
{
    char got[8192];
    do
        peer_line(p, got, sizeof got);
    while (strncmp(got, want, strlen(want)) != 0);
}

/* The server closes: the end of the stream (after a goodbye) or a reset. */
static void expect_end(peer *p)
{
    char got[8192];
    int rc = peer_line_within(p, got, sizeof got, WAIT_MS);
    CHECK_MSG(rc == -ENODATA || rc == -ECONNRESET, "%s: expected the end, got %d (%s) \"%s\"",
              p->name, rc, rc < 0 ? edo_strerror(rc) : "a line", rc >= 0 ? got : "");
}

static void peer_send_raw(peer *p, const void *data, size_t len)
{
    CHECK_OK(edo_write_all(p->io, data, len, NULL));
}

static void peer_send(peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void peer_send(peer *p, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    CHECK(n > 0 && (size_t)n < sizeof buf);
    peer_send_raw(p, buf, (size_t)n);
}

/* A connection that has seen the welcome and has no name yet. */
/* Connects; with a receive buffer of rcvbuf bytes (set before the connection, so that the
 * window it offers is that small from the start) unless rcvbuf is 0. */
static peer *peer_connect_with(const char *addr, const char *label, int rcvbuf)
{
    peer *p = calloc(1, sizeof *p);
    CHECK(p != NULL);
    snprintf(p->name, sizeof p->name, "%s", label);
    if (rcvbuf) {
        int fd = (int)CHECK_SYS(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        CHECK_SYS(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf));
        struct sockaddr_in sin = { .sin_family = AF_INET,
                                   .sin_port = htons((uint16_t)test_port_of(addr)),
                                   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        CHECK_SYS(connect(fd, (struct sockaddr *)&sin, sizeof sin));
        CHECK_OK(edo_io_wrap(&p->io, fd));
    } else {
        CHECK_OK(edo_tcp_connect(&p->io, addr, WAIT_MS));
    }
    expect_prefix(p, "*** Welcome to the edo chat. Your name?");
    return p;
}

static peer *peer_connect(const char *addr, const char *label)
{
    return peer_connect_with(addr, label, 0);
}

/* Connects and takes a name; online is the number of users the answer should give. */
static peer *peer_join_with(const char *addr, const char *name, int online, int rcvbuf)
{
    peer *p = peer_connect_with(addr, name, rcvbuf);
    char want[128];
    peer_send(p, "%s\n", name);
    snprintf(want, sizeof want,
             "*** You are %s; %d user%s online. Commands: /who, /nick NAME, /quit", name, online,
             online == 1 ? "" : "s");
    expect_line(p, want);
    return p;
}

static peer *peer_join(const char *addr, const char *name, int online)
{
    return peer_join_with(addr, name, online, 0);
}

static void peer_free(peer *p)
{
    if (p->io)
        edo_close(p->io);
    free(p);
}

/* Closes with a reset: SO_LINGER with a zero timeout. */
static void peer_reset(peer *p)
{
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    CHECK_SYS(setsockopt(edo_io_fd(p->io), SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    peer_free(p);
}

/* ---------------------------------------------------------------------------------------- */
/* Names, /nick, /who, /quit and the announcements                                          */

static void *names_root(void *arg)
{
    server *s = arg;
    peer *a = peer_connect(s->addr, "a");
    const char *bad = "*** A name is 1 to 16 letters, digits, '-' or '_'. Your name?";
    peer_send(a, "two words\n");
    expect_line(a, bad);
    peer_send(a, "\n");
    expect_line(a, bad);
    peer_send(a, "abcdefghijklmnopq\n"); /* 17 */
    expect_line(a, bad);
    peer_send(a, "caf\xc3\xa9\n"); /* letters, but not ASCII ones */
    expect_line(a, bad);
    peer_send(a, "  ann \r\n"); /* spaces around are fine */
    expect_line(a, "*** You are ann; 1 user online. Commands: /who, /nick NAME, /quit");
    snprintf(a->name, sizeof a->name, "ann");

    /* Unique without regard to case. */
    peer *b = peer_connect(s->addr, "b");
    peer_send(b, "ANN\n");
    expect_line(b, "*** ANN is taken. Your name?");
    peer_send(b, "bob\n");
    expect_line(b, "*** You are bob; 2 users online. Commands: /who, /nick NAME, /quit");
    expect_line(a, "*** bob has joined");

    peer_send(a, "/who\n");
    expect_line(a, "*** 2 users online: ann, bob");

    peer_send(b, "/nick Ann\n");
    expect_line(b, "*** Ann is taken");
    peer_send(b, "/nick no way\n");
    expect_line(b, "*** A name is 1 to 16 letters, digits, '-' or '_'");
    peer_send(b, "/nick Robert\n");
    expect_line(b, "*** You are now Robert");
    expect_line(a, "*** bob is now known as Robert");
    peer_send(b, "/nick robert\n"); /* its own name in other letters: not taken */
    expect_line(b, "*** You are now robert");
    expect_line(a, "*** Robert is now known as robert");
    peer_send(a, "/who\n");
    expect_line(a, "*** 2 users online: ann, robert");

    peer_send(a, "/frob\n");
    expect_line(a, "*** Unknown command. Commands: /who, /nick NAME, /quit");
    peer_send(a, "/who am i\n");
    expect_line(a, "*** Unknown command. Commands: /who, /nick NAME, /quit");

    peer_send(b, "/quit\n");
    expect_line(b, "*** Bye");
    expect_end(b);
    peer_free(b);
    expect_line(a, "*** robert has left");
    peer_send(a, "/who\n");
    expect_line(a, "*** 1 user online: ann");

    /* The name is free again. */
    peer *c = peer_join(s->addr, "robert", 2);
    expect_line(a, "*** robert has joined");
    peer_send(c, "hi ann\n");
    expect_line(a, "<robert> hi ann");

    /* A client that leaves before it has a name is not announced: the next thing ann
     * hears is robert. */
    peer *d = peer_connect(s->addr, "d");
    peer_send(d, "/quit\n"); /* a name attempt, not a command */
    expect_prefix(d, "*** A name is");
    peer_free(d);
    peer_send(c, "still here\n");
    expect_line(a, "<robert> still here");
    peer_free(c);
    expect_line(a, "*** robert has left");
    peer_free(a);
    return NULL;
}

static void case_names(void)
{
    run_with_server(names_root, NULL, NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* Broadcast: every other client gets every line, in order; the sender gets none back     */

enum { BC_PEERS = 6, BC_LINES = 20 };

static void *broadcast_root(void *arg)
{
    server *s = arg;
    peer *p[BC_PEERS];
    char name[16], got[8192];
    for (int i = 0; i < BC_PEERS; i++) {
        snprintf(name, sizeof name, "p%d", i);
        p[i] = peer_join(s->addr, name, i + 1);
    }
    for (int i = 0; i < BC_PEERS; i++)
        for (int j = i + 1; j < BC_PEERS; j++) {
            snprintf(got, sizeof got, "*** p%d has joined", j);
            expect_line(p[i], got);
        }

    /* Everyone talks at once, in one write each. */
    for (int i = 0; i < BC_PEERS; i++) {
        char lines[2048];
        size_t len = 0;
        for (int j = 0; j < BC_LINES; j++)
            len += (size_t)snprintf(lines + len, sizeof lines - len, "line %d of p%d\n", j, i);
        peer_send_raw(p[i], lines, len);
    }
    for (int i = 0; i < BC_PEERS; i++) {
        int next[BC_PEERS] = { 0 }, total = 0;
        while (total < (BC_PEERS - 1) * BC_LINES) {
            int j, from;
            peer_line(p[i], got, sizeof got);
            CHECK_MSG(sscanf(got, "<p%d> line %d of p%d", &from, &j, &from) == 3, "p%d got \"%s\"",
                      i, got);
            CHECK_MSG(from != i, "p%d got its own line back: \"%s\"", i, got);
            CHECK_MSG(j == next[from], "p%d: from p%d line %d, expected %d", i, from, j,
                      next[from]);
            next[from]++;
            total++;
        }
    }
    /* Anything sent back to its sender would have come before these (the room keeps one
     * order for everyone). */
    peer_send(p[0], "end\n");
    for (int i = 1; i < BC_PEERS; i++)
        expect_line(p[i], "<p0> end");
    peer_send(p[1], "end\n"); /* after p0's in the room, for everyone */
    for (int i = 0; i < BC_PEERS; i++)
        if (i != 1)
            expect_line(p[i], "<p1> end");
    for (int i = 0; i < BC_PEERS; i++)
        peer_free(p[i]);
    return NULL;
}

static void case_broadcast(void)
{
    run_with_server(broadcast_root, NULL, NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* 50 clients chat while one never reads                                                    */

/* Each chatter sends a line every SLOW_PACE_MS, so that the others' lines reach each of
 * them at about 750 KB/s (half that under ASan, a third under TSan). The server holds a
 * reader's connection back from the room while its queue is more than half full, and cuts
 * it off only once it is more than ROOM_KEEP (1,024) messages behind. The silent client
 * gets there: the room sees 2,000 lines. Chatter 1 reads nothing until PAUSE_LINES lines
 * have been sent, more than its buffers hold (the server's queue and the two kernels'
 * socket buffers, with its receive buffer set to PAUSER_RCVBUF: some 820 lines) but far
 * fewer than ROOM_KEEP more, and must get them all: a reader that is slow for a moment is
 * no reader to drop. (Its buffer is not as small as the silent client's, whose window is
 * below a loopback segment: a reader behind such a window crawls.) */
#define SLOW_CHATTERS 50
#define SLOW_LINES 40
#define SLOW_LINE_LEN 300
#define SLOW_PACE_MS TEST_SCALE(20, 40, 60) /* between two lines of a chatter */
#define SLOW_PAUSER 1
#define PAUSE_LINES 1200
#define SLOW_SLACK 300 /* lines the other readers may be behind the room, far below ROOM_KEEP */
#define PAUSER_RCVBUF 65536
#define SILENT_RCVBUF 4096

typedef struct slow_env {
    server *s;
    peer *p[SLOW_CHATTERS];
    atomic_int cut_off;       /* a chatter has seen the silent one leave */
    atomic_llong cut_off_at;  /* edo_now() then */
    atomic_llong max_latency; /* ms, over every line every chatter got */
    atomic_int writers_done;
    atomic_int sent;                   /* lines sent by all the chatters */
    atomic_int sent_by[SLOW_CHATTERS]; /* lines sent by each */
    atomic_int got[SLOW_CHATTERS];     /* lines each has read */
    peer *silent;
    size_t silent_bytes;   /* what it received in all */
    char silent_last[256]; /* the last line it received */
} slow_env;

typedef struct chatter {
    slow_env *env;
    int index;
} chatter;

/* The most lines any chatter but the pauser has yet to read. */
static int readers_behind(slow_env *env)
{
    int sent = atomic_load(&env->sent), worst = 0;
    for (int i = 0; i < SLOW_CHATTERS; i++) {
        int behind = sent - atomic_load(&env->sent_by[i]) - atomic_load(&env->got[i]);
        if (i != SLOW_PAUSER && behind > worst)
            worst = behind;
    }
    return worst;
}

static void *chatter_writer(void *arg)
{
    chatter *c = arg;
    slow_env *env = c->env;
    peer *p = env->p[c->index];
    char line[SLOW_LINE_LEN + 2];
    for (int j = 0; j < SLOW_LINES; j++) {
        /* The test's own readers keep up with the room whatever the machine: a busy one
         * holds the writers back (the server is under test, not this process's speed). */
        WAIT_UNTIL(readers_behind(env) < SLOW_SLACK, WAIT_MS);
        int n = snprintf(line, sizeof line, "%lld %d %d ", (long long)edo_now(), c->index, j);
        memset(line + n, 'a' + c->index % 26, SLOW_LINE_LEN - (size_t)n);
        line[SLOW_LINE_LEN] = '\n';
        peer_send_raw(p, line, SLOW_LINE_LEN + 1);
        atomic_fetch_add(&env->sent_by[c->index], 1);
        atomic_fetch_add(&env->sent, 1);
        edo_sleep(SLOW_PACE_MS);
    }
    atomic_fetch_add(&c->env->writers_done, 1);
    return NULL;
}

/* Reads until it has every line of every other chatter, in order. */
static void *chatter_reader(void *arg)
{
    chatter *c = arg;
    slow_env *env = c->env;
    peer *p = env->p[c->index];
    int next[SLOW_CHATTERS] = { 0 }, total = 0;
    char got[8192];
    if (c->index == SLOW_PAUSER) /* counted, not timed: it falls this far behind anywhere */
        WAIT_UNTIL(atomic_load(&env->sent) >= PAUSE_LINES, WAIT_MS);
    while (total < (SLOW_CHATTERS - 1) * SLOW_LINES) {
        peer_line(p, got, sizeof got);
        if (strncmp(got, "***", 3) == 0) {
            if (strcmp(got, "*** silent has left (too far behind)") == 0) {
                if (!atomic_exchange(&env->cut_off, 1))
                    atomic_store(&env->cut_off_at, edo_now());
                continue;
            }
            CHECK_MSG(strstr(got, "has joined") != NULL, "c%d got \"%s\"", c->index, got);
            continue;
        }
        long long t;
        int from, j;
        CHECK_MSG(sscanf(got, "<c%*d> %lld %d %d ", &t, &from, &j) == 3, "c%d got \"%.60s\"",
                  c->index, got);
        CHECK_EQ(strlen(got), SLOW_LINE_LEN + strlen("<cNN> ") - (from < 10)); /* untouched */
        CHECK_MSG(j == next[from], "c%d: from c%d line %d, expected %d", c->index, from, j,
                  next[from]);
        next[from]++;
        total++;
        atomic_fetch_add(&env->got[c->index], 1);
        long long lat = edo_now() - t, max = atomic_load(&env->max_latency);
        while (lat > max && !atomic_compare_exchange_weak(&env->max_latency, &max, lat)) {
        }
    }
    return NULL;
}

/* Once the silent client is past saving, reads what it was sent: the lines its buffers
 * held, the notice (the server gives it GRACE_MS to be read), then the end. Past saving
 * is counted, not timed: once the room has moved this far past where its buffers filled,
 * some of what it missed is overwritten, and it is cut off whether it reads now or not (a
 * chatter may hear that it left only later, being behind itself). */
#define SILENT_DRAIN_AT 1800
static void *silent_drain(void *arg)
{
    slow_env *env = arg;
    char got[8192];
    int rc;
    WAIT_UNTIL(atomic_load(&env->cut_off) || atomic_load(&env->sent) >= SILENT_DRAIN_AT, WAIT_MS);
    /* A window below a loopback segment lets the backlog through only a little at a time,
     * with the zero-window probes' growing pauses between: open it, so that the notice
     * arrives within the server's grace period for it. */
    int big = 1 << 20;
    CHECK_SYS(setsockopt(edo_io_fd(env->silent->io), SOL_SOCKET, SO_RCVBUF, &big, sizeof big));
    while ((rc = peer_line_within(env->silent, got, sizeof got, WAIT_MS)) >= 0) {
        env->silent_bytes += (size_t)rc + 2;
        snprintf(env->silent_last, sizeof env->silent_last, "%.200s", got);
    }
    CHECK_MSG(rc == -ENODATA || rc == -ECONNRESET, "silent: %s", edo_strerror(rc));
    return NULL;
}

static void *slow_root(void *arg)
{
    slow_env *env = arg;
    server *s = env->s;
    char name[16];

    /* The silent client, with a small receive buffer. */
    peer *silent = env->silent = peer_connect_with(s->addr, "silent", SILENT_RCVBUF);
    peer_send(silent, "silent\n");
    expect_prefix(silent, "*** You are silent;");
    /* From here on it reads nothing until it has been cut off. */
    edo_task *drain;
    CHECK_OK(edo_spawn(&drain, silent_drain, env));

    for (int i = 0; i < SLOW_CHATTERS; i++) {
        snprintf(name, sizeof name, "c%d", i);
        env->p[i] = peer_join_with(s->addr, name, i + 2, i == SLOW_PAUSER ? PAUSER_RCVBUF : 0);
    }
    long base = rss_kib(s->p.pid), peak = base;

    chatter cs[SLOW_CHATTERS];
    edo_task *w[SLOW_CHATTERS], *r[SLOW_CHATTERS];
    int64_t t0 = edo_now();
    for (int i = 0; i < SLOW_CHATTERS; i++) {
        cs[i] = (chatter){ env, i };
        CHECK_OK(edo_spawn(&r[i], chatter_reader, &cs[i]));
        CHECK_OK(edo_spawn(&w[i], chatter_writer, &cs[i]));
    }
    /* Sample the server's memory while they talk. */
    while (atomic_load(&env->writers_done) < SLOW_CHATTERS) {
        long kib = rss_kib(s->p.pid);
        if (kib > peak)
            peak = kib;
        edo_sleep(20);
    }
    for (int i = 0; i < SLOW_CHATTERS; i++) {
        CHECK_OK(edo_join(w[i], NULL));
        CHECK_OK(edo_join(r[i], NULL));
    }
    int64_t t_all = edo_now() - t0;
    /* The silent one must be gone by now or soon: chatter 0 listens on. */
    if (!atomic_load(&env->cut_off)) {
        wait_line(env->p[0], "*** silent has left (too far behind)");
        atomic_store(&env->cut_off_at, edo_now());
        atomic_store(&env->cut_off, 1);
    }
    CHECK_OK(edo_join(drain, NULL));
    long kib = rss_kib(s->p.pid);
    if (kib > peak)
        peak = kib;

    size_t sent = (size_t)SLOW_CHATTERS * SLOW_LINES * (SLOW_LINE_LEN + 6);
    printf("    50 chatters x %d lines: %lld ms, slowest line %lld ms; silent client cut off "
           "after %lld ms, having received %zu of %zu bytes; server VmRSS %ld KiB before, "
           "peak %ld KiB\n",
           SLOW_LINES, (long long)t_all, (long long)atomic_load(&env->max_latency),
           (long long)(atomic_load(&env->cut_off_at) - t0), env->silent_bytes, sent, base, peak);
    CHECK_STR_EQ(env->silent_last, "*** You are too far behind; disconnecting");
    /* Bounded: the server queued at most OUT_BUDGET (64 KiB) for it and the kernels'
     * socket buffers held some more (SO_SNDBUF 64 KiB on the server's side, a few KiB on
     * its own); the rest was dropped. */
    CHECK_GT(sent, 256 * 1024);
    CHECK_LT(env->silent_bytes, 256 * 1024);
    if (!TEST_ASAN && !TEST_TSAN)
        CHECK_LT(peak - base, 32 * 1024); /* 51 budgets of 64 KiB are 3.2 MiB */

    /* Nobody else was cut off: everyone is still there. */
    for (int i = 0; i < SLOW_CHATTERS; i++) {
        peer_send(env->p[i], "/who\n");
        wait_prefix(env->p[i], "*** 50 users online: c0, c1, c10, c11,");
    }
    for (int i = 0; i < SLOW_CHATTERS; i++)
        peer_free(env->p[i]);
    peer_free(silent);
    return NULL;
}

static void case_slow_reader(void)
{
    need_fds(4 * SLOW_CHATTERS + 64);
    static slow_env env;
    memset(&env, 0, sizeof env);
    run_with_server(slow_root, &env, &env.s);
}

/* ---------------------------------------------------------------------------------------- */
/* Garbage bytes, line ends and over-long lines                                             */

static void *garbage_root(void *arg)
{
    server *s = arg;
    peer *a = peer_join(s->addr, "a", 1);
    peer *b = peer_join(s->addr, "b", 2);
    expect_line(a, "*** b has joined");

#define SENT(text) text, sizeof text - 1 /* NULs included */
    static const struct {
        const char *sent;
        size_t len;
        const char *seen;
    } lines[] = {
        /* NUL, invalid bytes, ESC, a C1 control (U+009B): each byte becomes '?' */
        { SENT("x\0y\xff\xfe\x1b[31mred\xc2\x9b!\r\n"), "<a> x?y???[31mred?\?!" },
        /* valid UTF-8 of 2, 3 and 4 bytes passes, as does a tab */
        { SENT("h\xc3\xa9llo w\xc3\xb6rld\t\xe2\x9c\x93 \xf0\x9f\x98\x80\n"),
          "<a> h\xc3\xa9llo w\xc3\xb6rld\t\xe2\x9c\x93 \xf0\x9f\x98\x80" },
        { SENT("crlf\r\n"), "<a> crlf" },
        { SENT("lf\n"), "<a> lf" },
        { SENT("a\rb\n"), "<a> a?b" },                   /* a CR inside a line */
        { SENT("\xc0\xaf\xe0\x80\xaf\n"), "<a> ?????" }, /* overlong forms of '/' */
        { SENT("\xed\xa0\x80\n"), "<a> ???" },           /* a surrogate */
        { SENT("\xf4\x90\x80\x80\n"), "<a> ????" },      /* past U+10FFFF */
        { SENT("abc\xe2\x9c\n"), "<a> abc??" },          /* cut short */
        { SENT("\n\r\n"), NULL },                        /* empty lines go nowhere */
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        peer_send_raw(a, lines[i].sent, lines[i].len);
        if (lines[i].seen)
            expect_line(b, lines[i].seen);
    }
#undef SENT

    /* LINE_LEN bytes and a line end pass, with either ending. */
    char big[LINE_LEN + 100], want[LINE_LEN + 100];
    memset(big, 'L', LINE_LEN);
    snprintf(want, sizeof want, "<a> %.*s", LINE_LEN, big);
    memcpy(big + LINE_LEN, "\r\n", 2);
    peer_send_raw(a, big, LINE_LEN + 2);
    expect_line(b, want);
    big[LINE_LEN] = '\n';
    peer_send_raw(a, big, LINE_LEN + 1);
    expect_line(b, want);
    peer_send(b, "marker\n"); /* nothing came back to a before this */
    expect_line(a, "<b> marker");

    /* One more byte is too long: that client goes, nobody else. */
    memset(big, 'M', LINE_LEN + 1);
    big[LINE_LEN + 1] = '\n';
    peer_send_raw(a, big, LINE_LEN + 2);
    expect_line(a, "*** Line too long (the limit is 512 bytes); disconnecting");
    expect_end(a);
    expect_line(b, "*** a has left (line too long)");

    /* So is a stream of bytes with no line end at all, before a name too. */
    peer *c = peer_join(s->addr, "c", 2);
    expect_line(b, "*** c has joined");
    memset(big, 'N', sizeof big);
    peer_send_raw(c, big, sizeof big);
    expect_line(c, "*** Line too long (the limit is 512 bytes); disconnecting");
    expect_end(c);
    expect_line(b, "*** c has left (line too long)");
    peer *d = peer_connect(s->addr, "d");
    peer_send_raw(d, big, sizeof big);
    expect_line(d, "*** Line too long (the limit is 512 bytes); disconnecting");
    expect_end(d);

    /* The room goes on. */
    peer *e = peer_join(s->addr, "e", 2);
    expect_line(b, "*** e has joined");
    peer_send(e, "after the garbage\n");
    expect_line(b, "<e> after the garbage");
    peer_send(b, "/who\n");
    expect_line(b, "*** 2 users online: b, e");
    peer_free(a);
    peer_free(b);
    peer_free(c);
    peer_free(d);
    peer_free(e);
    return NULL;
}

static void case_garbage(void)
{
    run_with_server(garbage_root, NULL, NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* Resets and half-closes, mid-line                                                         */

static void *resets_root(void *arg)
{
    server *s = arg;
    peer *a = peer_join(s->addr, "a", 1);

    /* A reset after half a line: the half goes nowhere, the leave is announced. */
    peer *b = peer_join(s->addr, "b", 2);
    expect_line(a, "*** b has joined");
    peer_send(b, "half a li");
    edo_sleep(20); /* so that the server mostly has the half line before the reset */
    peer_reset(b);
    expect_line(a, "*** b has left (connection lost)");

    /* A reset before a name, mid-name: nothing to announce. */
    peer *c = peer_connect(s->addr, "c");
    peer_send(c, "ca");
    peer_reset(c);

    /* A reset with output it has not read: a client that stopped reading. */
    peer *d = peer_join(s->addr, "d", 2);
    expect_line(a, "*** d has joined");
    for (int i = 0; i < 40; i++)
        peer_send(a, "filling d's buffers, line %d .......................................\n", i);
    peer_reset(d);
    expect_line(a, "*** d has left (connection lost)");
    /* d's task may see the reset before a's task has read all of a's lines: a's answer to
     * a command says the server has read them all, so that e, who joins next, gets none. */
    peer_send(a, "/who\n");
    expect_line(a, "*** 1 user online: a");

    /* A half-close after half a line: the half is the last line, then a goodbye and the
     * end of the stream. */
    peer *e = peer_join(s->addr, "e", 2);
    expect_line(a, "*** e has joined");
    peer_send(e, "last words");
    CHECK_OK(edo_shutdown(e->io));
    expect_line(a, "<e> last words");
    expect_line(a, "*** e has left");
    expect_line(e, "*** Bye");
    expect_end(e);
    peer_free(e);

    /* A half-close before a name: a goodbye, and no announcement. */
    peer *f = peer_connect(s->addr, "f");
    CHECK_OK(edo_shutdown(f->io));
    expect_line(f, "*** Bye");
    expect_end(f);
    peer_free(f);

    /* The reader's side goes first: shut down reading and go on writing. */
    peer *g = peer_join(s->addr, "g", 2);
    expect_line(a, "*** g has joined");
    CHECK_SYS(shutdown(edo_io_fd(g->io), SHUT_RD));
    peer_send(g, "can still talk\n");
    expect_line(a, "<g> can still talk");
    peer_free(g);
    expect_prefix(a, "*** g has left");

    peer_send(a, "/who\n");
    expect_line(a, "*** 1 user online: a");
    peer_free(a);
    return NULL;
}

static void case_resets(void)
{
    run_with_server(resets_root, NULL, NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* A flood is paced, not dropped                                                            */

enum { FLOOD_LINES = 200 };

static void *flood_root(void *arg)
{
    server *s = arg;
    peer *a = peer_join(s->addr, "a", 1);
    peer *b = peer_join(s->addr, "b", 2);
    expect_line(a, "*** b has joined");

    char buf[FLOOD_LINES * 16];
    size_t len = 0;
    for (int i = 0; i < FLOOD_LINES; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "flood %d\n", i);
    int64_t t0 = edo_now();
    peer_send_raw(a, buf, len); /* in one write */
    char want[32];
    for (int i = 0; i < FLOOD_LINES; i++) {
        snprintf(want, sizeof want, "<a> flood %d", i);
        expect_line(b, want);
    }
    int64_t took = edo_now() - t0;
    /* The first RATE_BURST lines at once, the rest at RATE_PER_SEC: the server's own clock
     * makes this a lower bound. */
    int64_t least = (FLOOD_LINES - RATE_BURST) * 1000 / RATE_PER_SEC;
    printf("    %d lines in one write reached the room in %lld ms (the limit makes it %lld)\n",
           FLOOD_LINES, (long long)took, (long long)least);
    CHECK_GE(took, least * 3 / 4);
    peer_send(a, "/who\n"); /* paced too, but the flooder is still there */
    expect_line(a, "*** 2 users online: a, b");
    peer_free(a);
    peer_free(b);
    return NULL;
}

static void case_flood(void)
{
    run_with_server(flood_root, NULL, NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* Many clients at once                                                                     */

#define MANY TEST_SCALE(1000, 500, 100)
#define MANY_JOINERS 10

typedef struct many_env {
    server *s;
    peer *p[MANY];
} many_env;

typedef struct joiner {
    many_env *env;
    int from, to;
} joiner;

static void *many_joiner(void *arg)
{
    joiner *j = arg;
    char name[16], want[32];
    for (int i = j->from; i < j->to; i++) {
        snprintf(name, sizeof name, "u%04d", i);
        peer *p = j->env->p[i] = peer_connect(j->env->s->addr, name);
        peer_send(p, "%s\n", name);
        snprintf(want, sizeof want, "*** You are %s;", name);
        expect_prefix(p, want);
    }
    return NULL;
}

static void *many_root(void *arg)
{
    many_env *env = arg;
    long base = rss_kib(env->s->p.pid);
    int64_t t0 = edo_now();
    edo_task *t[MANY_JOINERS];
    joiner js[MANY_JOINERS];
    for (int k = 0; k < MANY_JOINERS; k++) {
        js[k] = (joiner){ env, k * MANY / MANY_JOINERS, (k + 1) * MANY / MANY_JOINERS };
        CHECK_OK(edo_spawn(&t[k], many_joiner, &js[k]));
    }
    for (int k = 0; k < MANY_JOINERS; k++)
        CHECK_OK(edo_join(t[k], NULL));
    int64_t joined = edo_now() - t0;
    edo_sleep(200); /* let the join announcements settle */
    long idle = rss_kib(env->s->p.pid);

    char want[64];
    snprintf(want, sizeof want, "*** %d users online: u0000, u0001, u0002,", MANY);
    peer_send(env->p[0], "/who\n");
    wait_prefix(env->p[0], want);
    t0 = edo_now();
    peer_send(env->p[MANY - 1], "hello, everyone\n");
    snprintf(want, sizeof want, "<u%04d> hello, everyone", MANY - 1);
    for (int i = 0; i < MANY - 1; i++)
        wait_line(env->p[i], want);
    int64_t spread = edo_now() - t0;
    printf("    %d clients joined in %lld ms; server VmRSS %ld KiB before, %ld KiB with all of "
           "them idle (%ld KiB each); one line reached the other %d in %lld ms\n",
           MANY, (long long)joined, base, idle, (idle - base) / MANY, MANY - 1, (long long)spread);
    if (!TEST_ASAN && !TEST_TSAN)
        CHECK_LT((idle - base) / MANY, 64); /* a task's stack is 64 KiB, of which few pages
                                               are ever touched */
    for (int i = 0; i < MANY; i++)
        peer_free(env->p[i]);
    return NULL;
}

static void case_many_clients(void)
{
    need_fds(2 * MANY + 200);
    static many_env env;
    memset(&env, 0, sizeof env);
    run_with_server(many_root, &env, &env.s);
}

/* ---------------------------------------------------------------------------------------- */
/* EMFILE on accept: the server waits and goes on                                           */

enum { EMFILE_SLOTS = 8, EMFILE_CLIENTS = 16 };

static void *emfile_root(void *arg)
{
    server *s = arg;
    peer *p[EMFILE_CLIENTS];
    bool served[EMFILE_CLIENTS];
    int nserved = 0;
    char line[256];
    for (int i = 0; i < EMFILE_CLIENTS; i++) {
        /* The kernel completes the connection in the listener's backlog: connect
         * succeeds whether or not the server can accept it. */
        p[i] = calloc(1, sizeof *p[i]);
        snprintf(p[i]->name, sizeof p[i]->name, "e%d", i);
        CHECK_OK(edo_tcp_connect(&p[i]->io, s->addr, WAIT_MS));
    }
    for (int i = 0; i < EMFILE_CLIENTS; i++) {
        /* The first is served unless something is wrong: it gets the full wait, which a
         * loaded machine may need. */
        int rc = peer_line_within(p[i], line, sizeof line, i == 0 ? WAIT_MS : 300);
        served[i] = rc >= 0;
        nserved += served[i];
        if (served[i])
            CHECK_MSG(strncmp(line, "*** Welcome", 11) == 0, "%s", line);
        else
            CHECK_ERR(rc, -ETIMEDOUT);
    }
    printf("    with room for %d more descriptors, the server took %d of %d connections\n",
           EMFILE_SLOTS, nserved, EMFILE_CLIENTS);
    /* About EMFILE_SLOTS: the limit is on descriptor numbers, and it may hold some
     * inherited ones, below the limit or above it. */
    CHECK_GE(nserved, 1);
    CHECK_LT(nserved, EMFILE_CLIENTS);

    /* Room again: closing the served clients frees as many descriptors as they held, and
     * that many of the rest are taken in turn once accept's back-off ends. (Not
     * EMFILE_SLOTS: a slot the server could not use before stays unusable.) */
    for (int i = 0; i < EMFILE_CLIENTS; i++)
        if (served[i]) {
            peer_free(p[i]);
            p[i] = NULL;
        }
    int waiting = EMFILE_CLIENTS - nserved;
    int room = waiting < nserved ? waiting : nserved;
    int later = 0;
    for (int i = 0; i < EMFILE_CLIENTS && later < room; i++) {
        if (!p[i])
            continue;
        expect_prefix(p[i], "*** Welcome");
        peer_send(p[i], "%s\n", p[i]->name);
        snprintf(line, sizeof line, "*** You are %s;", p[i]->name);
        expect_prefix(p[i], line);
        later++;
    }
    CHECK_EQ(later, room);
    for (int i = 0; i < EMFILE_CLIENTS; i++)
        if (p[i])
            peer_free(p[i]);
    return NULL;
}

static void case_emfile(void)
{
    server s;
    server_start(&s);
    /* Only EMFILE_SLOTS descriptors more than it has open now. */
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)s.p.pid);
    struct rlimit rl = { 0 };
    CHECK_SYS(prlimit(s.p.pid, RLIMIT_NOFILE, NULL, &rl));
    rl.rlim_cur = (rlim_t)test_count_entries(path) + EMFILE_SLOTS;
    CHECK_SYS(prlimit(s.p.pid, RLIMIT_NOFILE, &rl, NULL));
    test_run(emfile_root, &s);
    char *err = read_file(s.p.err);
    CHECK_MSG(strstr(err, "chat-server: accept: Too many open files (retrying)") != NULL,
              "chat-server said: %s", err);
    free(err);
    static const char *const allowed[] = { "chat-server: accept: Too many open files", NULL };
    server_stop_allowing(&s, allowed);
}

/* ---------------------------------------------------------------------------------------- */
/* chat-client, driven through pipes                                                        */

typedef struct pipe_env {
    server s;
    proc carol, dan, eve; /* chat-clients: one that ends its input, one the server ends,
                             one stopped by SIGINT */
} pipe_env;

/* A peer that reads a chat-client's standard output. */
static peer *client_output(proc *c, const char *label)
{
    peer *p = calloc(1, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s's output", label);
    p->lf_only = true;
    CHECK_OK(edo_io_wrap(&p->io, c->out));
    c->out = -1; /* the peer owns it now */
    return p;
}

static void proc_write(proc *c, const char *text)
{
    size_t len = strlen(text);
    CHECK_EQ(write(c->in, text, len), (ssize_t)len); /* a pipe takes this much at once */
}

/* The client gave standard input its flags back: O_NONBLOCK is not left on a file
 * description it shares with others (a terminal, with the shell). */
static void check_stdin_restored(proc *c)
{
    int fl = (int)CHECK_SYS(fcntl(c->in_peer, F_GETFL));
    CHECK_MSG(!(fl & O_NONBLOCK), "chat-client left its standard input non-blocking");
}

static void *pipe_root(void *arg)
{
    pipe_env *env = arg;
    peer *obs = peer_join(env->s.addr, "obs", 1);

    /* carol: lines in through the pipe, the room's lines out, then the end of its input. */
    peer *carol = client_output(&env->carol, "carol");
    expect_prefix(carol, "*** Welcome to the edo chat. Your name?");
    proc_write(&env->carol, "carol\nhello from the pipe\n");
    expect_line(carol, "*** You are carol; 2 users online. Commands: /who, /nick NAME, /quit");
    expect_line(obs, "*** carol has joined");
    expect_line(obs, "<carol> hello from the pipe");
    peer_send(obs, "hi carol\n");
    expect_line(carol, "<obs> hi carol");
    proc_write(&env->carol, "/who\nthe last line, without its end");
    expect_line(carol, "*** 2 users online: carol, obs");
    close(env->carol.in);
    env->carol.in = -1;
    expect_line(obs, "<carol> the last line, without its end");
    expect_line(obs, "*** carol has left");
    expect_line(carol, "*** Bye");
    expect_end(carol);
    int status = proc_wait(&env->carol, WAIT_MS);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "carol's client: status %#x", status);
    check_stdin_restored(&env->carol);

    /* eve, on one socket for input and output as on a terminal: Ctrl-C ends it, with the
     * usual status, and its terminal's flags given back. */
    peer *eve = client_output(&env->eve, "eve");
    expect_prefix(eve, "*** Welcome");
    proc_write(&env->eve, "eve\n");
    expect_prefix(eve, "*** You are eve;");
    expect_line(obs, "*** eve has joined");
    CHECK_SYS(kill(env->eve.pid, SIGINT));
    status = proc_wait(&env->eve, WAIT_MS);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGINT, "eve's client: status %#x",
              status);
    check_stdin_restored(&env->eve);
    expect_line(obs, "*** eve has left");

    /* dan: the server stops while its input is still open. */
    peer *dan = client_output(&env->dan, "dan");
    expect_prefix(dan, "*** Welcome");
    proc_write(&env->dan, "dan\n");
    expect_prefix(dan, "*** You are dan;");
    expect_line(obs, "*** dan has joined");
    peer_free(obs);
    expect_line(dan, "*** obs has left");
    server_stop(&env->s);
    expect_line(dan, "*** The server is stopping. Bye!");
    expect_end(dan);
    status = proc_wait(&env->dan, WAIT_MS);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "dan's client: status %#x", status);
    check_stdin_restored(&env->dan);

    peer_free(carol);
    peer_free(eve);
    peer_free(dan);
    return NULL;
}

static void case_client_program(void)
{
    static pipe_env env;
    memset(&env, 0, sizeof env);
    server_start(&env.s);
    /* Started here, on the main thread (see proc_start); each waits for its input. */
    char *argv[] = { EDO_CHAT_CLIENT, env.s.addr, NULL };
    proc_start(&env.carol, argv, PIPES, false);
    proc_start(&env.eve, argv, ONE_SOCKET, false);
    proc_start(&env.dan, argv, PIPES, false);
    test_run(pipe_root, &env);
    proc_free(&env.carol);
    proc_free(&env.eve);
    proc_free(&env.dan);
}

static const test_case cases[] = {
    TEST_CASE(case_names),        TEST_CASE(case_broadcast), TEST_CASE(case_slow_reader),
    TEST_CASE(case_garbage),      TEST_CASE(case_resets),    TEST_CASE(case_flood),
    TEST_CASE(case_many_clients), TEST_CASE(case_emfile),    TEST_CASE(case_client_program),
};

TEST_MAIN(cases)

#else /* !EDO_CHAT_SERVER */

int main(void)
{
    printf("test_chat: skipped: the examples are not built (EDO_BUILD_EXAMPLES=OFF)\n");
    return 77;
}

#endif
