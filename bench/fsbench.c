/*
 * fsbench - file reading through edo: sequential throughput, random 4 KiB reads at a
 * queue depth of 64, and the cost of one small read.
 *
 *   build/bench/fsbench [-b epoll|uring] [-w WORKERS] [-t SECONDS] [-n PASSES] [--only a,b] FILE
 *   build/bench/fsbench [-b epoll|uring] [-w WORKERS] --probe   (exit 0: this runtime can run)
 *
 * FILE must exist (bench/run-fs.sh makes a 1 GiB one). Benches, in this order:
 *
 *   seq_qd1    one task reads FILE from start to end in 1 MiB reads (edo_fs_pread);
 *              the page cache is warmed first by an untimed pass; PASSES timed passes
 *              (default 5), MiB/s of the median one (a 1 GiB pass from the cache takes
 *              a few tens of ms, short enough for one hiccup of the machine to show)
 *   seq_qd4    the same with four tasks taking the next 1 MiB chunk each: four reads in
 *              flight at once; MiB/s
 *   rand_qd64  64 tasks, each reading 4 KiB at random 4 KiB-aligned offsets of FILE for
 *              SECONDS (default 10), with O_DIRECT; IOPS. O_DIRECT, as fio's --direct=1,
 *              so that every read goes to the device whatever the page cache holds: with
 *              24 GiB of RAM a cached file would measure memory copies, and dropping the
 *              file from the cache (POSIX_FADV_DONTNEED) before the run would not stop the
 *              run from caching it again as it reads, so later seconds would be faster
 *              than the first
 *   pread_4k   one task, 200 000 reads of 4 KiB at random offsets of the (cached) first
 *              64 MiB of FILE: ns per edo_fs_pread, beside ns per plain pread(2) on the
 *              calling thread (what the call costs on top of the system call: under epoll
 *              the trip to a pool thread and back), and beside the same pread done with
 *              edo_spawn_blocking + edo_join (a task allocated per call)
 *
 * One line per bench on stdout:
 *   BENCH name=seq_qd1 backend=epoll bytes=... passes=... mib_per_s=... min=... max=...
 *   BENCH name=rand_qd64 backend=epoll ops=... secs=... iops=...
 *   BENCH name=pread_4k backend=epoll iters=... ns_per_op=... plain_ns_per_op=...
 *         spawn_blocking_ns_per_op=...
 * Exit status: 0, 1 on an error, 2 on a usage error.
 */
#define _GNU_SOURCE
#include <edo.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SEQ_CHUNK (1 << 20)
#define RAND_BLOCK 4096
#define RAND_DEPTH 64
#define PREAD_ITERS 200000
#define PREAD_SPAN ((uint64_t)64 << 20)

struct bench_state {
    const char *path;
    const char *backend;
    int seconds;
    int passes;
    int fd;
    uint64_t size;
    _Atomic uint64_t next; /* seq: next chunk */
    _Atomic uint64_t ops;  /* rand: reads done */
    atomic_int err;
    int64_t stop_at; /* rand: edo_now() deadline */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static void set_err(struct bench_state *b, int rc)
{
    int zero = 0;
    atomic_compare_exchange_strong(&b->err, &zero, rc);
}

/* ---- sequential -------------------------------------------------------------------------- */

static void *seq_task(void *arg)
{
    struct bench_state *b = arg;
    char *buf = malloc(SEQ_CHUNK);
    if (!buf) {
        set_err(b, -ENOMEM);
        return NULL;
    }
    for (;;) {
        uint64_t off = atomic_fetch_add(&b->next, 1) * SEQ_CHUNK;
        if (off >= b->size || atomic_load(&b->err))
            break;
        size_t n = b->size - off < SEQ_CHUNK ? (size_t)(b->size - off) : SEQ_CHUNK;
        int rc = edo_fs_pread_exact(b->fd, buf, n, (off_t)off, NULL);
        if (rc < 0) {
            set_err(b, rc);
            break;
        }
    }
    free(buf);
    return NULL;
}

static int seq_pass(struct bench_state *b, int depth)
{
    edo_task *t[16];
    atomic_store(&b->next, 0);
    for (int i = 0; i < depth; i++)
        if (edo_spawn(&t[i], seq_task, b) < 0)
            return -EAGAIN;
    for (int i = 0; i < depth; i++)
        edo_join(t[i], NULL);
    return atomic_load(&b->err);
}

/* ---- random ------------------------------------------------------------------------------ */

static void *rand_task(void *arg)
{
    struct bench_state *b = arg;
    void *buf;
    if (posix_memalign(&buf, RAND_BLOCK, RAND_BLOCK) != 0) { /* O_DIRECT wants alignment */
        set_err(b, -ENOMEM);
        return NULL;
    }
    uint64_t seed = (uint64_t)(uintptr_t)buf ^ (uint64_t)edo_task_id(NULL) * 7919;
    uint64_t blocks = b->size / RAND_BLOCK, n = 0;
    while (edo_now() < b->stop_at && !atomic_load(&b->err)) {
        off_t off = (off_t)(rng_next(&seed) % blocks) * RAND_BLOCK;
        ssize_t r = edo_fs_pread(b->fd, buf, RAND_BLOCK, off);
        if (r != RAND_BLOCK) {
            set_err(b, r < 0 ? (int)r : -EIO);
            break;
        }
        n++;
    }
    atomic_fetch_add(&b->ops, n);
    free(buf);
    return NULL;
}

/* ---- one small read ---------------------------------------------------------------------- */

struct spawned_read {
    int fd;
    char *buf;
    off_t off;
    ssize_t rc;
};

static void *spawned_pread(void *arg) /* on a pool thread */
{
    struct spawned_read *r = arg;
    r->rc = pread(r->fd, r->buf, RAND_BLOCK, r->off);
    return NULL;
}

static int pread_cost(struct bench_state *b, double *edo_ns, double *plain_ns, double *spawn_ns)
{
    char buf[RAND_BLOCK];
    uint64_t span = b->size < PREAD_SPAN ? b->size : PREAD_SPAN;
    uint64_t blocks = span / RAND_BLOCK, seed = 1;
    for (uint64_t off = 0; off < span; off += SEQ_CHUNK) /* into the cache */
        for (uint64_t o = off; o < off + SEQ_CHUNK && o < span; o += RAND_BLOCK)
            if (pread(b->fd, buf, RAND_BLOCK, (off_t)o) < 0)
                return -errno;
    double t0 = now_s();
    for (int i = 0; i < PREAD_ITERS; i++)
        if (edo_fs_pread(b->fd, buf, RAND_BLOCK, (off_t)(rng_next(&seed) % blocks) * RAND_BLOCK) !=
            RAND_BLOCK)
            return -EIO;
    double t1 = now_s();
    for (int i = 0; i < PREAD_ITERS; i++)
        if (pread(b->fd, buf, RAND_BLOCK, (off_t)(rng_next(&seed) % blocks) * RAND_BLOCK) !=
            RAND_BLOCK)
            return -EIO;
    double t2 = now_s();
    /* What a program without edo/fs.h would write: a blocking call per read. */
    for (int i = 0; i < PREAD_ITERS; i++) {
        struct spawned_read r = { b->fd, buf, (off_t)(rng_next(&seed) % blocks) * RAND_BLOCK, 0 };
        edo_task *t;
        if (edo_spawn_blocking(&t, spawned_pread, &r) < 0 || edo_join(t, NULL) < 0 ||
            r.rc != RAND_BLOCK)
            return -EIO;
    }
    double t3 = now_s();
    *edo_ns = (t1 - t0) * 1e9 / PREAD_ITERS;
    *plain_ns = (t2 - t1) * 1e9 / PREAD_ITERS;
    *spawn_ns = (t3 - t2) * 1e9 / PREAD_ITERS;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- driver ------------------------------------------------------------------------------ */

static bool wanted(const char *only, const char *name)
{
    if (!only)
        return true;
    size_t len = strlen(name);
    for (const char *p = only; *p;) {
        size_t n = strcspn(p, ",");
        if (n == len && strncmp(p, name, n) == 0)
            return true;
        p += n + (p[n] == ',');
    }
    return false;
}

struct run_args {
    struct bench_state *b;
    const char *only;
};

static void *bench_root(void *arg)
{
    struct run_args *ra = arg;
    struct bench_state *b = ra->b;
    int rc = 0;
    b->fd = edo_fs_open(b->path, O_RDONLY, 0);
    if (b->fd < 0)
        return (void *)(intptr_t)edo_fail(b->fd, b->path);
    struct stat st;
    if ((rc = edo_fs_fstat(b->fd, &st)) < 0 || st.st_size < (off_t)SEQ_CHUNK) {
        edo_fs_close(b->fd);
        return (void *)(intptr_t)edo_fail(rc < 0 ? rc : -EINVAL, "the file (at least 1 MiB)");
    }
    b->size = (uint64_t)st.st_size;

    if (wanted(ra->only, "seq_qd1") || wanted(ra->only, "seq_qd4")) {
        if ((rc = seq_pass(b, 4)) < 0) /* warms the page cache */
            goto out;
        int depths[] = { 1, 4 };
        for (int i = 0; i < 2; i++) {
            char name[16];
            snprintf(name, sizeof name, "seq_qd%d", depths[i]);
            if (!wanted(ra->only, name))
                continue;
            double rate[64];
            for (int k = 0; k < b->passes; k++) {
                double t0 = now_s();
                if ((rc = seq_pass(b, depths[i])) < 0)
                    goto out;
                rate[k] = (double)b->size / 1048576.0 / (now_s() - t0);
            }
            qsort(rate, (size_t)b->passes, sizeof rate[0], cmp_double);
            printf("BENCH name=%s backend=%s bytes=%" PRIu64
                   " passes=%d mib_per_s=%.0f min=%.0f max=%.0f\n",
                   name, b->backend, b->size, b->passes, rate[b->passes / 2], rate[0],
                   rate[b->passes - 1]);
            fflush(stdout);
        }
    }
    if (wanted(ra->only, "rand_qd64")) {
        int dfd = edo_fs_open(b->path, O_RDONLY | O_DIRECT, 0);
        if (dfd < 0) {
            rc = edo_fail(dfd, "O_DIRECT open");
            goto out;
        }
        int keep = b->fd;
        b->fd = dfd;
        atomic_store(&b->ops, 0);
        edo_task *t[RAND_DEPTH];
        double t0 = now_s();
        b->stop_at = edo_now() + (int64_t)b->seconds * 1000;
        int n = 0;
        for (; n < RAND_DEPTH; n++)
            if (edo_spawn(&t[n], rand_task, b) < 0)
                break;
        for (int i = 0; i < n; i++)
            edo_join(t[i], NULL);
        double s = now_s() - t0;
        b->fd = keep;
        edo_fs_close(dfd);
        if ((rc = atomic_load(&b->err)) < 0)
            goto out;
        uint64_t ops = atomic_load(&b->ops);
        printf("BENCH name=rand_qd64 backend=%s ops=%" PRIu64 " secs=%.3f iops=%.0f\n", b->backend,
               ops, s, (double)ops / s);
        fflush(stdout);
    }
    if (wanted(ra->only, "pread_4k")) {
        double e = 0, p = 0, sp = 0;
        if ((rc = pread_cost(b, &e, &p, &sp)) < 0)
            goto out;
        printf("BENCH name=pread_4k backend=%s iters=%d ns_per_op=%.0f plain_ns_per_op=%.0f "
               "spawn_blocking_ns_per_op=%.0f\n",
               b->backend, PREAD_ITERS, e, p, sp);
        fflush(stdout);
    }
out:
    if (rc < 0)
        edo_fail(rc, "bench");
    edo_fs_close(b->fd);
    return (void *)(intptr_t)rc;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: fsbench [-b epoll|uring] [-w WORKERS] [-t SECONDS] [-n PASSES] [--only a,b] "
            "FILE\n"
            "       fsbench [-b epoll|uring] [-w WORKERS] --probe\n"
            "  benches: seq_qd1 seq_qd4 rand_qd64 pread_4k (see the top of bench/fsbench.c)\n"
            "  -t SECONDS  duration of rand_qd64 (default 10)\n"
            "  -n PASSES   timed passes of seq_qd1 and seq_qd4, the median reported (default 5)\n"
            "  --probe     only create the runtime: exit 0 if these options can run here\n");
}

int main(int argc, char **argv)
{
    edo_runtime_opts opts = { 0 };
    struct bench_state b = { .seconds = 10, .passes = 5 };
    struct run_args ra = { &b, NULL };
    bool probe = false;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(o, "-b") && v) {
            if (edo_backend_parse(v, &opts.backend) < 0) {
                fprintf(stderr, "fsbench: bad backend '%s'\n", v);
                return 2;
            }
            i++;
        } else if (!strcmp(o, "-w") && v) {
            opts.workers = atoi(v);
            i++;
        } else if (!strcmp(o, "-t") && v) {
            b.seconds = atoi(v);
            if (b.seconds < 1) {
                fprintf(stderr, "fsbench: bad duration '%s'\n", v);
                return 2;
            }
            i++;
        } else if (!strcmp(o, "-n") && v) {
            b.passes = atoi(v);
            if (b.passes < 1 || b.passes > 64) {
                fprintf(stderr, "fsbench: bad pass count '%s' (1-64)\n", v);
                return 2;
            }
            i++;
        } else if (!strcmp(o, "--probe")) {
            probe = true;
        } else if (!strcmp(o, "--only") && v) {
            ra.only = v;
            i++;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (i != argc - 1 && !probe) {
        usage(stderr);
        return 2;
    }
    b.path = argv[i];
    edo_runtime *rt;
    int rc = edo_runtime_new(&rt, &opts);
    if (rc < 0) {
        fprintf(stderr, "fsbench: cannot create the runtime: %s\n", edo_strerror(rc));
        return 1;
    }
    if (probe) { /* the runtime can be made with these options: that is all */
        edo_runtime_free(rt);
        return 0;
    }
    b.backend = edo_backend_name(edo_runtime_backend(rt));
    if (!strcmp(b.backend, "io_uring"))
        b.backend = "uring";
    void *res = NULL;
    rc = edo_block_on(rt, bench_root, &ra, &res);
    edo_runtime_free(rt);
    return rc < 0 || (intptr_t)res < 0 ? 1 : 0;
}
