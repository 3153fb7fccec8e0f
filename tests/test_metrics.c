/*
 * Metrics in Prometheus's text format: promtool (a real Prometheus tool, run as a child
 * process) accepts what edo_metrics_format writes for a runtime with ready, running and
 * parked tasks, and what curl fetches from the metrics endpoint; the values match a
 * scripted workload; edo_metrics_format behaves as snprintf; the endpoint answers HEAD,
 * 404, 405, 400, 431 and 408 as HTTP says, several scrapers at once, while no worker runs;
 * an address that cannot be had fails edo_runtime_new and leaves nothing behind.
 *
 * edo-test: timeout=180
 */
#include "console_client.h"

#include <spawn.h>
#include <sys/wait.h>

extern char **environ;

/* ---- tools ------------------------------------------------------------------------------- */

/* The path of program `name` on PATH, or NULL. */
static const char *find_tool(const char *name, char *buf, size_t len)
{
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        snprintf(buf, len, "%.*s/%s", (int)n, path, name);
        if (n && access(buf, X_OK) == 0)
            return buf;
        path += n + (path[n] == ':');
    }
    return NULL;
}

/* Runs argv with standard input from in_path (NULL: /dev/null) and its output (both
 * streams) to out_path; returns its exit status. */
static int run_tool(char *const argv[], const char *in_path, const char *out_path)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, in_path ? in_path : "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    CHECK_MSG(rc == 0, "posix_spawn %s: %s", argv[0], strerror(rc));
    posix_spawn_file_actions_destroy(&fa);
    int status;
    CHECK_SYS(waitpid(pid, &status, 0));
    CHECK_MSG(WIFEXITED(status), "%s: status %#x", argv[0], status);
    return WEXITSTATUS(status);
}

static char *read_file(const char *path, size_t *lenp)
{
    FILE *f = fopen(path, "rb");
    CHECK_MSG(f != NULL, "open %s", path);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2)
            buf = realloc(buf, cap *= 2);
    }
    CHECK(buf != NULL);
    buf[len] = 0;
    fclose(f);
    if (lenp)
        *lenp = len;
    return buf;
}

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    CHECK_MSG(f != NULL, "create %s", path);
    CHECK_EQ(fwrite(text, 1, len, f), len);
    CHECK_EQ(fclose(f), 0);
}

typedef struct tmp {
    char dir[100];
    char file[3][128];
} tmp;

static void tmp_make(tmp *t)
{
    test_make_tmpdir(t->dir, sizeof t->dir, "edo-test-metrics");
    for (int i = 0; i < 3; i++)
        snprintf(t->file[i], sizeof t->file[i], "%s/f%d", t->dir, i);
}

static void tmp_remove(tmp *t)
{
    for (int i = 0; i < 3; i++)
        unlink(t->file[i]);
    CHECK_SYS(rmdir(t->dir));
}

/* promtool check metrics on text: true if it accepts it; skips (false, with a message)
 * when promtool is not installed. */
static bool promtool_accepts(const char *text, size_t len, bool *skipped)
{
    char tool[512];
    *skipped = false;
    if (!find_tool("promtool", tool, sizeof tool)) {
        printf("promtool not found (Debian: prometheus): its check is skipped\n");
        *skipped = true;
        return false;
    }
    tmp t;
    tmp_make(&t);
    write_file(t.file[0], text, len);
    char *argv[] = { tool, "check", "metrics", NULL };
    int rc = run_tool(argv, t.file[0], t.file[1]);
    char *out = read_file(t.file[1], NULL);
    if (rc != 0 || out[0])
        fprintf(stderr, "promtool check metrics (exit %d):\n%s\n", rc, out);
    bool ok = rc == 0 && !out[0];
    free(out);
    tmp_remove(&t);
    return ok;
}

/* ---- reading the text back --------------------------------------------------------------- */

/* The value of the series written exactly as `series` (name and labels); fails if it is
 * not there. */
static double metric(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    TEST_FAIL("no series %s in the metrics", series);
}

/* The sum of the family's series with the label worker="0".."workers-1", each required. */
static double worker_sum(const char *text, const char *name, int workers)
{
    double sum = 0;
    for (int i = 0; i < workers; i++) {
        char series[128];
        snprintf(series, sizeof series, "%s{worker=\"%d\"}", name, i);
        sum += metric(text, series);
    }
    char more[128];
    snprintf(more, sizeof more, "%s{worker=\"%d\"} ", name, workers);
    CHECK_MSG(strstr(text, more) == NULL, "%s has more workers than %d", name, workers);
    return sum;
}

static char *format_all(edo_runtime *rt, size_t *lenp)
{
    ssize_t n = CHECK_OK(edo_metrics_format(rt, NULL, 0));
    for (;;) {
        size_t cap = (size_t)n + 4096; /* the figures may have grown a digit since */
        char *buf = malloc(cap);
        CHECK(buf != NULL);
        n = CHECK_OK(edo_metrics_format(rt, buf, cap));
        if ((size_t)n < cap) {
            CHECK_EQ(strlen(buf), n);
            if (lenp)
                *lenp = (size_t)n;
            return buf;
        }
        free(buf);
    }
}

/* ---- promtool on every task state ---------------------------------------------------------- */

static void *sleep_for_ever(void *arg)
{
    (void)arg;
    edo_sleep(3600 * 1000);
    return NULL;
}

static void *just_return(void *arg)
{
    return arg;
}

static void *states_root(void *arg)
{
    (void)arg;
    edo_task *parked[3], *ready[2];
    for (int i = 0; i < 3; i++)
        CHECK_OK(edo_spawn(&parked[i], sleep_for_ever, NULL));
    for (int i = 0; i < 3; i++)
        test_wait_parked(parked[i], EDO_WAIT_SLEEP);
    /* One worker: these wait for it until this task suspends. */
    for (int i = 0; i < 2; i++)
        CHECK_OK(edo_spawn(&ready[i], just_return, NULL));
    size_t len;
    char *text = format_all(NULL, &len);
    CHECK_GE(metric(text, "edo_tasks{state=\"ready\"}"), 2);
    CHECK_GE(metric(text, "edo_tasks{state=\"running\"}"), 1);
    CHECK_GE(metric(text, "edo_tasks{state=\"parked\"}"), 3);
    CHECK_GE(metric(text, "edo_tasks_parked{reason=\"sleep\"}"), 3);
    CHECK(strncmp(text, "# HELP ", 7) == 0);
    CHECK(text[len - 1] == '\n');

    /* As snprintf: the whole length, and as much as fits, NUL-terminated. */
    char small[40];
    memset(small, 'x', sizeof small);
    ssize_t n = CHECK_OK(edo_metrics_format(NULL, small, sizeof small));
    CHECK_GE(n, (ssize_t)sizeof small);
    CHECK_EQ(small[sizeof small - 1], 0);
    CHECK_EQ(strncmp(small, text, sizeof small - 1), 0);
    CHECK_ERR(edo_metrics_format(NULL, NULL, 5), -EINVAL);

    bool skipped;
    bool ok = promtool_accepts(text, len, &skipped);
    CHECK_MSG(ok || skipped, "promtool refuses the metrics:\n%s", text);
    free(text);
    for (int i = 0; i < 3; i++)
        edo_abort(parked[i]);
    for (int i = 0; i < 3; i++)
        edo_join(parked[i], NULL);
    for (int i = 0; i < 2; i++)
        CHECK_OK(edo_join(ready[i], NULL));
    return NULL;
}

static void case_promtool(void)
{
    test_run_opts(&(edo_runtime_opts){ .workers = 1 }, states_root, NULL);
}

/* ---- values of a scripted workload --------------------------------------------------------- */

#define WORKLOAD 20

static void *sleep_once(void *arg)
{
    CHECK_OK(edo_sleep(1));
    return arg;
}

static void *values_root(void *arg)
{
    (void)arg;
    edo_runtime *rt = edo_runtime_current();
    int workers = edo_runtime_workers(rt);
    char *before = format_all(rt, NULL);
    double spawned0 = metric(before, "edo_tasks_spawned_total");
    double runs0 = worker_sum(before, "edo_worker_tasks_run_total", workers);
    double timers0 = worker_sum(before, "edo_worker_timers_fired_total", workers);

    edo_task *t[WORKLOAD];
    for (int i = 0; i < WORKLOAD; i++)
        CHECK_OK(edo_spawn(&t[i], sleep_once, NULL));
    for (int i = 0; i < WORKLOAD; i++)
        CHECK_OK(edo_join(t[i], NULL));

    /* With worker threads the joins may not have had to wait: one suspension at least,
     * for the histogram below. */
    CHECK_OK(edo_sleep(1));
    edo_runtime_info ri;
    char *after = format_all(rt, NULL);
    CHECK_OK(edo_runtime_stats(rt, &ri));
    CHECK_EQ(metric(after, "edo_tasks_spawned_total"), spawned0 + WORKLOAD);
    CHECK_EQ(metric(after, "edo_tasks_spawned_total"), ri.tasks_spawned);
    CHECK_EQ(metric(after, "edo_tasks_live"), ri.tasks_live);
    CHECK_EQ(metric(after, "edo_tasks_done_total"), ri.tasks_done);
    CHECK_EQ(metric(after, "edo_tasks_live") + metric(after, "edo_tasks_done_total"),
             metric(after, "edo_tasks_spawned_total"));
    /* Each task resumed at its start and after its sleep. (A sleep whose time has come by
     * the time it is armed fires no timer, so timers count no more than that they moved.) */
    CHECK_GE(worker_sum(after, "edo_worker_tasks_run_total", workers), runs0 + 2 * WORKLOAD);
    CHECK_GE(worker_sum(after, "edo_worker_timers_fired_total", workers), timers0);
    CHECK_GE(worker_sum(after, "edo_worker_busy_seconds_total", workers), 0);
    worker_sum(after, "edo_worker_queue_depth", workers);
    worker_sum(after, "edo_worker_polls_total", workers);
    CHECK_EQ(metric(after, "edo_tasks{state=\"running\"}"), 1); /* this one */
    CHECK(metric(after, "edo_uptime_seconds") > 0);
    char info[160];
    snprintf(info, sizeof info, "edo_info{version=\"%s\",backend=\"%s\",workers=\"%d\"}",
             EDO_VERSION_STRING, edo_backend_name(edo_runtime_backend(rt)), workers);
    CHECK_EQ(metric(after, info), 1);
    /* The histogram: cumulative buckets, +Inf as the count, this task's runs in it. */
    double prev = 0;
    static const char *const les[] = { "0.000001", "0.000002", "0.000004", "0.000008",
                                       "0.000016", "0.000032", "0.000064", "0.000128",
                                       "0.000256", "0.000512", "0.001024", "0.002048",
                                       "0.004096", "0.008192", "0.016384", "+Inf" };
    for (int b = 0; b < EDO_RUN_HIST; b++) {
        char series[96];
        snprintf(series, sizeof series, "edo_live_task_run_seconds_bucket{le=\"%s\"}", les[b]);
        double v = metric(after, series);
        CHECK_GE(v, prev);
        prev = v;
    }
    CHECK_EQ(metric(after, "edo_live_task_run_seconds_count"), prev);
    CHECK_GE(prev, 1); /* this task's own runs, at least */
    CHECK_GE(metric(after, "edo_live_task_run_seconds_sum"), 0);
    free(before);
    free(after);
    return NULL;
}

static void case_values(void)
{
    test_run(values_root, NULL);
}

/* ---- the endpoint ------------------------------------------------------------------------------
 */

/* One request on a new connection; the whole response (until the program closes). */
static char *http(const char *addr, const char *req, size_t reqlen)
{
    conn *c = conn_open(addr);
    conn_send(c, req, reqlen);
    int64_t deadline = test_clock_ms() + CLIENT_WAIT_MS;
    while (!c->eof)
        CHECK_MSG(conn_fill(c, deadline) >= 0, "no response to %.40s", req);
    char *r = malloc(c->len + 1);
    CHECK(r != NULL);
    memcpy(r, c->buf ? c->buf : "", c->len);
    r[c->len] = 0;
    conn_close(c);
    return r;
}

static void expect_status(const char *addr, const char *req, size_t len, const char *status)
{
    char *r = http(addr, req, len);
    CHECK_MSG(strncmp(r, status, strlen(status)) == 0, "%.60s: answered %.60s", req, r);
    CHECK(strstr(r, "\r\nConnection: close\r\n") != NULL);
    free(r);
}

static void case_endpoint(void)
{
    edo_runtime *rt;
    CHECK_OK(edo_runtime_new(
        &rt, &(edo_runtime_opts){ .workers = 1, .metrics = "127.0.0.1:0", .console = "off" }));
    const char *addr = edo_metrics_address(rt);
    CHECK_MSG(addr && strncmp(addr, "127.0.0.1:", 10) == 0 && test_port_of(addr) > 0, "%s",
              addr ? addr : "(null)");
    CHECK(edo_console_address(rt) == NULL);
    /* No thread of the runtime runs from here on (one worker, nobody in edo_block_on): the
     * observer answers on its own. A scraper that never sends opens the dance. */
    conn *idle = conn_open(addr);
    int64_t idle_since = test_clock_ms();

    tmp t;
    tmp_make(&t);
    char curl[512];
    if (find_tool("curl", curl, sizeof curl)) {
        char url[96];
        snprintf(url, sizeof url, "http://%s/metrics", addr);
        char *argv[] = { curl, "-sS", "--max-time", "60", "-D", t.file[2], url, NULL };
        int rc = run_tool(argv, NULL, t.file[0]);
        size_t len;
        char *body = read_file(t.file[0], &len);
        CHECK_MSG(rc == 0, "curl exit %d: %s", rc, body);
        char *head = read_file(t.file[2], NULL);
        CHECK_MSG(strncmp(head, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", head);
        CHECK(strstr(head, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        CHECK(strstr(body, "\nedo_info{") != NULL);
        bool skipped;
        bool ok = promtool_accepts(body, len, &skipped);
        CHECK_MSG(ok || skipped, "promtool refuses what the endpoint served");
        free(head);
        free(body);
    } else {
        printf("curl not found: the fetch with curl is skipped\n");
    }
    tmp_remove(&t);

    /* HEAD: the head of a GET, with its length, and no body. */
    static const char head_req[] = "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    char *r = http(addr, head_req, sizeof head_req - 1);
    CHECK_MSG(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", r);
    const char *cl = strstr(r, "\r\nContent-Length: ");
    CHECK(cl && atol(cl + 18) > 100);
    const char *end = strstr(r, "\r\n\r\n");
    CHECK(end && end[4] == 0);
    free(r);
    static const char get_query[] = "GET /metrics?x=1 HTTP/1.0\n\n";
    expect_status(addr, get_query, sizeof get_query - 1, "HTTP/1.1 200 OK\r\n");
    static const char post[] = "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
    r = http(addr, post, sizeof post - 1);
    CHECK_MSG(strncmp(r, "HTTP/1.1 405 ", 13) == 0, "%s", r);
    CHECK(strstr(r, "\r\nAllow: GET, HEAD\r\n") != NULL);
    free(r);
    static const char nope[] = "GET /nope HTTP/1.1\r\n\r\n";
    expect_status(addr, nope, sizeof nope - 1, "HTTP/1.1 404 ");
    static const char tls[] = "\x16\x03\x01\x02\x00\x01\r\n\r\n";
    expect_status(addr, tls, sizeof tls - 1, "HTTP/1.1 400 ");
    static const char h2[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    expect_status(addr, h2, sizeof h2 - 1, "HTTP/1.1 400 ");
    static const char nul[] = "GET /metrics HTTP/1.1\r\nX: \0\r\n\r\n";
    expect_status(addr, nul, sizeof nul - 1, "HTTP/1.1 400 ");
    char *big = malloc(9 * 1024);
    CHECK(big != NULL);
    memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
    memset(big + 26, 'a', 9 * 1024 - 26);
    expect_status(addr, big, 9 * 1024, "HTTP/1.1 431 ");
    free(big);

    /* Several scrapers at once. */
    conn *many[8];
    static const char get[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int i = 0; i < 8; i++)
        many[i] = conn_open(addr);
    for (int i = 0; i < 8; i++)
        conn_send(many[i], get, sizeof get - 1);
    for (int i = 0; i < 8; i++) {
        int64_t deadline = test_clock_ms() + CLIENT_WAIT_MS;
        while (!many[i]->eof)
            CHECK(conn_fill(many[i], deadline) >= 0);
        CHECK(many[i]->len > 17 && memcmp(many[i]->buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
        conn_close(many[i]);
    }

    /* The one that sent nothing: 408 once its 5 s are over, not before. */
    int64_t deadline = idle_since + CLIENT_WAIT_MS;
    while (!idle->eof)
        CHECK_MSG(conn_fill(idle, deadline) >= 0, "an idle scraper was never answered");
    CHECK_GE(test_clock_ms() - idle_since, 4900);
    CHECK(idle->len > 13 && memcmp(idle->buf, "HTTP/1.1 408 ", 13) == 0);
    conn_close(idle);
    edo_runtime_free(rt);
}

/* ---- what cannot be had ------------------------------------------------------------------------
 */

static void case_bind_fails(void)
{
    int threads = test_count_entries("/proc/self/task");
    int fds = test_count_fds();
    char busy[48];
    int lfd = test_raw_listener(busy, sizeof busy, 4);
    edo_runtime *rt = (edo_runtime *)1;
    CHECK_ERR(edo_runtime_new(&rt, &(edo_runtime_opts){ .workers = 1, .metrics = busy }),
              -EADDRINUSE);
    CHECK(rt == NULL);
    CHECK_ERR(edo_runtime_new(&rt, &(edo_runtime_opts){ .workers = 1, .metrics = "./m.sock" }),
              -EINVAL);
    CHECK_ERR(edo_runtime_new(&rt, &(edo_runtime_opts){ .workers = 1, .metrics = "nohost:80" }),
              -EINVAL);
    /* The console opened, the metrics could not: neither is left. */
    scene s = { 0 };
    scene_tmpdir(&s);
    CHECK_ERR(edo_runtime_new(
                  &rt, &(edo_runtime_opts){ .workers = 2, .console = s.path, .metrics = busy }),
              -EADDRINUSE);
    struct stat st;
    CHECK(lstat(s.path, &st) < 0 && errno == ENOENT);
    CHECK_SYS(rmdir(s.dir));
    close(lfd);
    CHECK_EQ(test_count_entries("/proc/self/task"), threads);
    CHECK_EQ(test_count_fds(), fds);
}

static void case_write(void)
{
    CHECK_ERR(edo_metrics_format(NULL, NULL, 0), -EINVAL); /* no task, no runtime */
    CHECK_ERR(edo_metrics_write(NULL, stdout), -EINVAL);
    edo_runtime *rt;
    CHECK_OK(edo_runtime_new(&rt, &(edo_runtime_opts){ .workers = 1 }));
    CHECK_ERR(edo_metrics_write(rt, NULL), -EINVAL);
    FILE *f = tmpfile();
    CHECK(f != NULL);
    CHECK_OK(edo_metrics_write(rt, f));
    long len = ftell(f);
    CHECK_GT(len, 100);
    rewind(f);
    char head[32] = { 0 };
    CHECK_EQ(fread(head, 1, 15, f), 15);
    CHECK_STR_EQ(head, "# HELP edo_info");
    fclose(f);
    edo_runtime_free(rt);
}

static const test_case cases[] = {
    TEST_CASE_BACKENDS(case_promtool), TEST_CASE(case_values),
    TEST_CASE_BACKENDS(case_endpoint), TEST_CASE_BACKENDS(case_bind_fails),
    TEST_CASE_BACKENDS(case_write),
};

TEST_MAIN(cases)
