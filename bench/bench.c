/*
 * bench.c - the harness the benchmark programs share (see bench.h).
 */
#include "bench.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void *bench_empty_task(void *arg)
{
    return arg;
}

int bench_block_on(edo_runtime *rt, void *(*root)(void *), void *arg, int64_t *ns)
{
    void *result = NULL;
    int64_t t0 = bench_now_ns();
    int rc = edo_block_on(rt, root, arg, &result);
    *ns = bench_now_ns() - t0;
    return rc < 0 ? rc : RC(result);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Runs one bench on a fresh runtime: a warm-up rep, then reps timed ones (0: the bench's
 * own count). Prints its lines and returns 0, or returns -errno. */
static int run_bench(const struct bench *b, const edo_runtime_opts *opts, int reps)
{
    edo_runtime *rt;
    int64_t warm, *t;
    int rc;

    if (b->not_ported) {
        fprintf(stderr, "# %s: not ported: %s\n", b->name, b->not_ported);
        return 0;
    }
    if (reps <= 0)
        reps = b->reps;
    t = calloc((size_t)reps, sizeof *t);
    if (!t)
        return -ENOMEM;
    rc = edo_runtime_new(&rt, opts);
    if (rc < 0) {
        free(t);
        return rc;
    }
    rc = b->rep(rt, &warm);
    for (int i = 0; rc >= 0 && i < reps; i++)
        rc = b->rep(rt, &t[i]);
    edo_runtime_free(rt);
    if (rc < 0) {
        free(t);
        return rc;
    }

    qsort(t, (size_t)reps, sizeof *t, cmp_i64);
    int64_t med = reps % 2 ? t[reps / 2] : (t[reps / 2 - 1] + t[reps / 2]) / 2;
    int64_t net = med > b->floor_ns ? med - b->floor_ns : 0;
    printf("BENCH name=%s iters=%ld ns_per_op=%.2f total_ms=%.3f\n", b->name, b->iters,
           (double)net / (double)b->iters, (double)med / 1e6);
    fflush(stdout);
    fprintf(stderr, "#   %s reps=%d min_ms=%.3f median_ms=%.3f max_ms=%.3f", b->name, reps,
            (double)t[0] / 1e6, (double)med / 1e6, (double)t[reps - 1] / 1e6);
    if (b->floor_ns)
        fprintf(stderr, " floor_ms=%lld", (long long)(b->floor_ns / 1000000));
    fputc('\n', stderr);
    free(t);
    return 0;
}

static void usage(const struct bench_program *p, FILE *out)
{
    fprintf(out, "%s - %s\n\n", p->name, p->about);
    fprintf(out, "usage: %s [-w WORKERS] [-r REPS] [--only NAME[,NAME...]] [--stack-cache N]\n",
            p->name);
    fprintf(out, "       %*s [--list] [-h]\n", (int)strlen(p->name), "");
    fprintf(out,
            "  -w, --workers N   runtime workers: 1 = the current-thread flavour, N >= 2 = N\n"
            "                    worker threads, 0 = the runtime's default (EDO_WORKERS, else\n"
            "                    the number of CPUs); default %d\n",
            p->default_workers);
    fprintf(out, "  -r, --reps R      timed reps per bench; 0 = each bench's own count (default)\n"
                 "  --only NAMES      run only these benches (comma-separated; see --list)\n"
                 "  --stack-cache N   free stacks each worker keeps (default: the runtime's)\n"
                 "  --list            print the bench names and exit\n"
                 "  -h, --help        this text\n"
                 "Prints one line per bench on stdout:\n"
                 "  BENCH name=<name> iters=<n> ns_per_op=<median rep / n> total_ms=<median rep>\n"
                 "and the min, median and max rep on stderr.\n");
}

static bool parse_num(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* The bench called name[0..len), or NULL. */
static const struct bench *find(const struct bench_program *p, const char *name, size_t len)
{
    for (size_t i = 0; i < p->count; i++)
        if (strlen(p->benches[i].name) == len && !strncmp(p->benches[i].name, name, len))
            return &p->benches[i];
    return NULL;
}

/* Marks in chosen[] the benches named in the comma-separated list (empty names are
 * skipped) and returns how many names there were, or -1 (after saying which) for an
 * unknown name. */
static int choose(const struct bench_program *p, const char *list, bool *chosen)
{
    int n = 0;
    for (const char *s = list; *s;) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len) {
            const struct bench *b = find(p, s, len);
            if (!b) {
                fprintf(stderr, "%s: unknown bench '%.*s' (try --list)\n", p->name, (int)len, s);
                return -1;
            }
            chosen[b - p->benches] = true;
            n++;
        }
        s += len + (e != NULL);
    }
    return n;
}

int bench_main(const struct bench_program *p, int argc, char **argv)
{
    edo_runtime_opts opts = { 0 };
    const char *only = NULL;
    long workers = p->default_workers, reps = 0, cache = 0;
    bool *chosen = NULL;
    int failed = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(p, stdout);
            return 0;
        } else if (!strcmp(a, "--list")) {
            for (size_t b = 0; b < p->count; b++)
                puts(p->benches[b].name);
            return 0;
        } else if (!strcmp(a, "-w") || !strcmp(a, "--workers")) {
            if (!v || !parse_num(v, 0, INT_MAX, &workers))
                goto bad;
            i++;
        } else if (!strcmp(a, "-r") || !strcmp(a, "--reps")) {
            if (!v || !parse_num(v, 0, 1000000, &reps))
                goto bad;
            i++;
        } else if (!strcmp(a, "--only")) {
            if (!v)
                goto bad;
            only = v;
            i++;
        } else if (!strcmp(a, "--stack-cache")) {
            if (!v || !parse_num(v, 0, LONG_MAX, &cache))
                goto bad;
            i++;
        } else {
            fprintf(stderr, "%s: unexpected argument '%s'\n", p->name, a);
            goto bad;
        }
    }

    if (only) {
        chosen = calloc(p->count, sizeof *chosen);
        if (!chosen) {
            fprintf(stderr, "%s: %s\n", p->name, edo_strerror(-ENOMEM));
            return 1;
        }
        int k = choose(p, only, chosen);
        if (k < 0) {
            free(chosen);
            return 2;
        }
        if (k == 0) { /* nothing named: all of them, as tokio-rtbench does */
            free(chosen);
            chosen = NULL;
        }
    }

    opts.workers = (int)workers;
    opts.stack_cache = (size_t)cache;
    /* A runtime that refuses these options would fail every bench: say so once. */
    edo_runtime *probe;
    int rc = edo_runtime_new(&probe, &opts);
    if (rc < 0) {
        if (workers)
            fprintf(stderr, "%s: cannot start a runtime with %ld workers: %s\n", p->name, workers,
                    edo_strerror(rc));
        else
            fprintf(stderr, "%s: cannot start a runtime: %s\n", p->name, edo_strerror(rc));
        free(chosen);
        return 1;
    }
    edo_runtime_free(probe);
    if (workers)
        fprintf(stderr, "# %s workers=%ld (%s) statistic=median\n", p->name, workers,
                workers == 1 ? "current-thread" : "worker threads");
    else
        fprintf(stderr, "# %s workers=default statistic=median\n", p->name);

    for (size_t b = 0; b < p->count; b++) {
        if (chosen && !chosen[b])
            continue;
        rc = run_bench(&p->benches[b], &opts, (int)reps);
        if (rc < 0) {
            fprintf(stderr, "%s: %s: %s\n", p->name, p->benches[b].name, edo_strerror(rc));
            failed = 1;
        }
    }
    free(chosen);
    return failed;

bad:
    usage(p, stderr);
    return 2;
}
