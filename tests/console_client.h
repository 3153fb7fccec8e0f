/*
 * What the console and metrics tests share: a plain blocking client of the console
 * (lines read with a deadline, parsed by json.h), a runtime whose root task keeps it
 * running while a client thread drives the test, and temporary directories.
 */
#ifndef EDO_TEST_CONSOLE_CLIENT_H
#define EDO_TEST_CONSOLE_CLIENT_H

#include "harness.h"
#include "json.h"

#include <edo/observe.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/un.h>

/* Long enough for a loaded machine under a sanitizer; a failure says what it waited for. */
#define CLIENT_WAIT_MS 60000

/* ---- a console client ------------------------------------------------------------------- */

typedef struct conn {
    int fd;
    char *buf;
    size_t len, cap;
    bool eof;
} conn;

/* A connected plain socket to "PATH" (Unix) or "HOST:PORT" (TCP, IPv4 or [v6]); -errno if
 * the connection fails. */
static inline int test_connect_addr(const char *addr)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int fd;
    if (addr[0] == '/') {
        struct sockaddr_un *sa = (struct sockaddr_un *)&ss;
        memset(sa, 0, sizeof *sa);
        sa->sun_family = AF_UNIX;
        snprintf(sa->sun_path, sizeof sa->sun_path, "%s", addr);
        sl = sizeof *sa;
    } else {
        CHECK_OK(edo_parse_addr(addr, &ss, &sl));
    }
    fd = (int)CHECK_SYS(socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

static inline conn *conn_open(const char *addr)
{
    int fd = test_connect_addr(addr);
    CHECK_MSG(fd >= 0, "connect to %s: %s", addr, strerror(-fd));
    conn *c = calloc(1, sizeof *c);
    CHECK(c != NULL);
    c->fd = fd;
    return c;
}

static inline void conn_close(conn *c)
{
    if (c) {
        close(c->fd);
        free(c->buf);
        free(c);
    }
}

static inline void conn_send(conn *c, const void *s, size_t n)
{
    const char *p = s;
    while (n) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) /* the program may close us first: what it answers is checked after */
            return;
        p += w;
        n -= (size_t)w;
    }
}

static inline void conn_sends(conn *c, const char *s)
{
    conn_send(c, s, strlen(s));
}

/* Reads more into c's buffer, waiting at most until deadline (test_clock_ms). Returns the
 * bytes read, 0 at end of stream (c->eof), -1 when the deadline passed. */
static inline ssize_t conn_fill(conn *c, int64_t deadline)
{
    if (c->cap - c->len < 65536) {
        c->cap = c->cap ? c->cap * 2 : 1 << 20;
        c->buf = realloc(c->buf, c->cap);
        CHECK(c->buf != NULL);
    }
    for (;;) {
        int64_t left = deadline - test_clock_ms();
        if (left <= 0)
            return -1;
        struct pollfd p = { .fd = c->fd, .events = POLLIN };
        int rc = poll(&p, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        CHECK_SYS(rc);
        if (rc == 0)
            return -1;
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == ECONNRESET)
            n = 0;
        CHECK_SYS(n);
        if (n == 0)
            c->eof = true;
        c->len += (size_t)n;
        return n;
    }
}

/* The next line (without its newline; malloc'd), or NULL at end of stream. Fails the test
 * if none comes within ms. */
static inline char *conn_line_within(conn *c, int ms, size_t *lenp)
{
    int64_t deadline = test_clock_ms() + ms;
    size_t scanned = 0;
    for (;;) {
        char *nl = c->buf ? memchr(c->buf + scanned, '\n', c->len - scanned) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - c->buf);
            char *line = malloc(n + 1);
            CHECK(line != NULL);
            memcpy(line, c->buf, n);
            line[n] = 0;
            memmove(c->buf, nl + 1, c->len - n - 1);
            c->len -= n + 1;
            if (lenp)
                *lenp = n;
            return line;
        }
        scanned = c->len;
        if (c->eof)
            return NULL;
        ssize_t r = conn_fill(c, deadline);
        if (r < 0)
            TEST_FAIL("no line from the console within %d ms", ms);
    }
}

/* The next line as JSON (which it must be), NULL at end of stream. */
static inline jval *conn_json(conn *c)
{
    size_t n;
    char *line = conn_line_within(c, CLIENT_WAIT_MS, &n);
    if (!line)
        return NULL;
    jval *v = json_parse(line, n);
    CHECK_MSG(v != NULL, "not valid JSON: %.300s%s", line, n > 300 ? "..." : "");
    CHECK_MSG(v->type == J_OBJ && json_str(v, "type"), "not an object with a type: %.300s", line);
    free(line);
    return v;
}

/* The next line of the given type (the others skipped); fails at end of stream. */
static inline jval *conn_expect(conn *c, const char *type)
{
    for (;;) {
        jval *v = conn_json(c);
        CHECK_MSG(v != NULL, "the console closed the connection while a %s was awaited", type);
        if (strcmp(json_str(v, "type"), type) == 0)
            return v;
        json_free(v);
    }
}

/* Reads (and drops) until the program closes the connection; true if it did within ms. */
static inline bool conn_closed_within(conn *c, int ms)
{
    int64_t deadline = test_clock_ms() + ms;
    while (!c->eof) {
        c->len = 0;
        if (conn_fill(c, deadline) < 0)
            return false;
    }
    return true;
}

/* The task object named `name` in a snapshot's "tasks", NULL if none. */
static inline const jval *snap_task(const jval *snap, const char *name)
{
    const jval *tasks = json_get(snap, "tasks");
    CHECK(tasks && tasks->type == J_ARR);
    for (size_t i = 0; i < tasks->n; i++) {
        const char *n = json_str(&tasks->item[i], "name");
        if (n && strcmp(n, name) == 0)
            return &tasks->item[i];
    }
    return NULL;
}

/* The entry of id in the array `list` of a snapshot ("tasks", "done"), NULL if none. */
static inline const jval *snap_find(const jval *snap, const char *list, int64_t id)
{
    const jval *a = json_get(snap, list);
    CHECK_MSG(a && a->type == J_ARR, "no array \"%s\" in the snapshot", list);
    for (size_t i = 0; i < a->n; i++)
        if (json_int(&a->item[i], "id", -1) == id)
            return &a->item[i];
    return NULL;
}

/* ---- a runtime driven from a client thread -------------------------------------------------
 * The main thread runs the root task, which sets up what the case wants (setup), then runs
 * the actions the client thread posts, until the client is done. */

typedef struct scene scene;
typedef void (*scene_fn)(scene *s);

struct scene {
    edo_runtime *rt;
    edo_runtime_opts opts;
    char dir[64];             /* a temporary directory, removed at the end */
    char path[128];           /* dir/c.sock */
    scene_fn setup, teardown; /* in the root task */
    void (*client)(scene *s); /* on the client thread */
    _Atomic(scene_fn) action;
    atomic_bool ready, done;
    bool paused; /* the root's loop must not move a paused clock: it yields, never sleeps */
    void *data;  /* the case's */
};

static inline void *scene_root(void *arg)
{
    scene *s = arg;
    if (s->paused)
        CHECK_OK(edo_time_auto_advance(false));
    if (s->setup)
        s->setup(s);
    atomic_store(&s->ready, true);
    while (!atomic_load(&s->done)) {
        scene_fn fn = atomic_load(&s->action);
        if (fn) {
            fn(s);
            atomic_store(&s->action, NULL);
        }
        if (s->paused) {
            edo_yield();
            nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
        } else {
            edo_sleep(2);
        }
    }
    if (s->teardown)
        s->teardown(s);
    return NULL;
}

static inline void *scene_client(void *arg)
{
    scene *s = arg;
    int64_t t0 = test_clock_ms();
    while (!atomic_load(&s->ready)) {
        CHECK_MSG(test_clock_ms() - t0 < CLIENT_WAIT_MS, "the root task never got ready");
        nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
    }
    s->client(s);
    atomic_store(&s->done, true);
    return NULL;
}

/* From the client thread: runs fn in the root task and waits until it has. */
static inline void scene_do(scene *s, scene_fn fn)
{
    atomic_store(&s->action, fn);
    int64_t t0 = test_clock_ms();
    while (atomic_load(&s->action)) {
        CHECK_MSG(test_clock_ms() - t0 < CLIENT_WAIT_MS, "the root task never ran an action");
        nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
    }
}

/* A fresh directory named prefix-XXXXXX in TMPDIR (or the system's temporary directory
 * when TMPDIR is unset or too long for a Unix socket's path inside it). */
static inline void test_make_tmpdir(char *buf, size_t len, const char *prefix)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base || strlen(base) + strlen(prefix) + 20 > 90)
        base = P_tmpdir;
    int n = snprintf(buf, len, "%s/%s-XXXXXX", base, prefix);
    CHECK(n > 0 && (size_t)n < len);
    CHECK_MSG(mkdtemp(buf) != NULL, "mkdtemp %s: %s", buf, strerror(errno));
}

static inline void scene_tmpdir(scene *s)
{
    test_make_tmpdir(s->dir, sizeof s->dir, "edo-test-console");
    snprintf(s->path, sizeof s->path, "%s/c.sock", s->dir);
}

/* Makes the runtime (opts.console defaults to a socket in a fresh directory), runs the
 * scene, frees the runtime; then the socket's file must be gone. */
static inline void scene_run(scene *s)
{
    scene_tmpdir(s);
    if (!s->opts.console && !s->opts.metrics)
        s->opts.console = s->path;
    s->opts.start_paused = s->paused;
    CHECK_OK(edo_runtime_new(&s->rt, &s->opts));
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, scene_client, s), 0);
    CHECK_OK(edo_block_on(s->rt, scene_root, s, NULL));
    CHECK_EQ(pthread_join(th, NULL), 0);
    edo_runtime_free(s->rt);
    struct stat st;
    CHECK_MSG(lstat(s->path, &st) < 0 && errno == ENOENT, "%s is still there", s->path);
    CHECK_SYS(rmdir(s->dir));
}

#endif
