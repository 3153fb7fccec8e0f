/*
 * fcopy - copies a file with edo's file calls, several chunks in flight at once, showing
 * progress, and optionally reads both files back to check that they are the same.
 *
 *   build/examples/fcopy [-c] [-q] [-j JOBS] [-s KIB] [-w WORKERS] [-b epoll|uring] SRC DST
 *
 *   -c          check: after the copy, read SRC and DST again and compare them
 *   -q          quiet: no progress line, no summary
 *   -j JOBS     chunks in flight at once, one task each (default 4)
 *   -s KIB      chunk size in KiB (default 1024)
 *   -w WORKERS  worker threads (default: the runtime's, EDO_WORKERS or the CPUs)
 *   -b BACKEND  epoll or uring (default: the runtime's choice, EDO_BACKEND)
 *
 * DST is created with SRC's permissions, or truncated. Each task takes the next chunk
 * number, reads it with edo_fs_pread_exact and writes it at the same offset with
 * edo_fs_pwrite_all, so chunks land out of order and the file is whole only at the end.
 * Progress goes to stderr, a few times a second, when stderr is a terminal; the summary
 * (bytes, time, rate, and "identical" with -c) to stdout.
 * Exit status: 0 if the copy (and the check) succeeded; 1 on an error or if the check
 * found a difference; 2 on a usage error.
 */
#include <edo.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define MAX_JOBS 256

struct copy {
    const char *src, *dst;
    bool check, quiet;
    int jobs;
    size_t chunk;
    int in, out;
    uint64_t size;
    _Atomic uint64_t next;   /* next chunk number to take */
    _Atomic uint64_t done;   /* bytes finished */
    atomic_int err;          /* the first error, -errno; stops every task */
    _Atomic uint64_t differ; /* -c: offset + 1 of the first chunk found different */
    bool comparing;
};

static void fail(struct copy *c, int rc)
{
    int zero = 0;
    atomic_compare_exchange_strong(&c->err, &zero, rc);
}

/* One task: copies (or compares) chunks until none is left or something failed. */
static void *chunk_task(void *arg)
{
    struct copy *c = arg;
    char *a = malloc(c->chunk), *b = c->comparing ? malloc(c->chunk) : NULL;
    if (!a || (c->comparing && !b)) {
        fail(c, -ENOMEM);
        goto out;
    }
    while (!atomic_load(&c->err)) {
        uint64_t k = atomic_fetch_add(&c->next, 1);
        uint64_t off = k * c->chunk;
        if (off >= c->size)
            break;
        size_t n = c->size - off < c->chunk ? (size_t)(c->size - off) : c->chunk;
        int rc = edo_fs_pread_exact(c->in, a, n, (off_t)off, NULL);
        if (rc == 0 && c->comparing) {
            rc = edo_fs_pread_exact(c->out, b, n, (off_t)off, NULL);
            if (rc == 0 && memcmp(a, b, n) != 0) {
                uint64_t none = 0;
                atomic_compare_exchange_strong(&c->differ, &none, off + 1);
                rc = -EILSEQ;
            }
        } else if (rc == 0) {
            rc = edo_fs_pwrite_all(c->out, a, n, (off_t)off, NULL);
        }
        if (rc < 0) {
            /* -ENODATA: the source shrank while we copied it. */
            fail(c, rc);
            break;
        }
        atomic_fetch_add(&c->done, n);
    }
out:
    free(a);
    free(b);
    return NULL;
}

/* Prints the progress line until aborted. */
static void *progress_task(void *arg)
{
    struct copy *c = arg;
    int64_t t0 = edo_now();
    while (edo_sleep(250) == 0) {
        uint64_t d = atomic_load(&c->done);
        double s = (double)(edo_now() - t0) / 1000.0;
        fprintf(stderr, "\r%s %" PRIu64 " / %" PRIu64 " MiB (%3.0f%%) %.0f MiB/s   ",
                c->comparing ? "checked" : "copied", d >> 20, c->size >> 20,
                c->size ? 100.0 * (double)d / (double)c->size : 100.0,
                s > 0 ? (double)d / 1048576.0 / s : 0.0);
    }
    fputc('\n', stderr);
    return NULL;
}

/* Runs the chunk tasks over the whole file (and the progress line). Returns 0 or -errno. */
static int pass(struct copy *c, bool comparing)
{
    edo_task *t[MAX_JOBS], *prog = NULL;
    atomic_store(&c->next, 0);
    atomic_store(&c->done, 0);
    c->comparing = comparing;
    if (!c->quiet && isatty(STDERR_FILENO) && edo_spawn(&prog, progress_task, c) < 0)
        prog = NULL;
    int n = 0, rc = 0;
    for (; n < c->jobs; n++) {
        rc = edo_spawn(&t[n], chunk_task, c);
        if (rc < 0) {
            fail(c, rc);
            break;
        }
    }
    for (int i = 0; i < n; i++)
        edo_join(t[i], NULL);
    if (prog) {
        edo_abort(prog);
        edo_join(prog, NULL);
    }
    return atomic_load(&c->err);
}

static int run(void *arg)
{
    struct copy *c = arg;
    struct stat st;
    int64_t t0 = edo_now();
    c->in = edo_fs_open(c->src, O_RDONLY, 0);
    if (c->in < 0) {
        edo_fail(c->in, c->src);
        return 1;
    }
    int rc = edo_fs_fstat(c->in, &st);
    if (rc == 0 && !S_ISREG(st.st_mode))
        rc = -EINVAL;
    if (rc < 0) {
        edo_fs_close(c->in);
        edo_fail(rc, rc == -EINVAL ? "the source is not a regular file" : c->src);
        return 1;
    }
    c->size = (uint64_t)st.st_size;
    c->out = edo_fs_open(c->dst, O_RDWR | O_CREAT | O_TRUNC, st.st_mode & 07777);
    if (c->out < 0) {
        edo_fs_close(c->in);
        edo_fail(c->out, c->dst);
        return 1;
    }
    rc = pass(c, false);
    if (rc < 0) {
        edo_fail(rc, rc == -ENODATA ? "the source shrank during the copy" : "copy");
        goto out;
    }
    double secs = (double)(edo_now() - t0) / 1000.0;
    if (!c->quiet)
        printf("copied %" PRIu64 " bytes in %.2f s (%.0f MiB/s)\n", c->size, secs,
               secs > 0 ? (double)c->size / 1048576.0 / secs : 0.0);
    if (c->check) {
        rc = pass(c, true);
        uint64_t at = atomic_load(&c->differ);
        if (at) {
            fprintf(stderr, "fcopy: %s and %s differ in the chunk at byte %" PRIu64 "\n", c->src,
                    c->dst, at - 1);
        } else if (rc < 0) {
            edo_fail(rc, "check");
        } else if (!c->quiet) {
            printf("identical\n");
        }
    }
out:
    edo_fs_close(c->in);
    int crc = edo_fs_close(c->out); /* where a file system reports a failed write */
    if (rc == 0 && crc < 0)
        rc = edo_fail(crc, c->dst);
    return rc < 0 ? 1 : 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: fcopy [-c] [-q] [-j JOBS] [-s KIB] [-w WORKERS] [-b epoll|uring] SRC DST\n"
            "  -c          read both files again after the copy and compare them\n"
            "  -q          no progress line and no summary\n"
            "  -j JOBS     chunks in flight at once (1-%d, default 4)\n"
            "  -s KIB      chunk size in KiB (default 1024)\n"
            "  -w WORKERS  worker threads (default: EDO_WORKERS or the CPUs)\n"
            "  -b BACKEND  epoll or uring (default: EDO_BACKEND, else automatic)\n",
            MAX_JOBS);
}

static void *root(void *arg)
{
    return (void *)(intptr_t)run(arg);
}

int main(int argc, char **argv)
{
    struct copy c = { .jobs = 4, .chunk = 1 << 20 };
    edo_runtime_opts opts = { 0 };
    long v;
    int ch, r;
    cli_prog = "fcopy";
    while ((ch = getopt(argc, argv, "cqj:s:w:b:h")) != -1) {
        if ((r = cli_runtime_opt(ch, optarg, &opts)) != 0) {
            if (r < 0)
                return 2;
            continue;
        }
        switch (ch) {
        case 'c':
            c.check = true;
            break;
        case 'q':
            c.quiet = true;
            break;
        case 'j':
            if (!cli_num(optarg, 1, MAX_JOBS, &v)) {
                fprintf(stderr, "fcopy: bad job count '%s' (1-%d)\n", optarg, MAX_JOBS);
                return 2;
            }
            c.jobs = (int)v;
            break;
        case 's':
            if (!cli_num(optarg, 1, 1 << 20, &v)) {
                fprintf(stderr, "fcopy: bad chunk size '%s' (KiB, 1 to 1048576)\n", optarg);
                return 2;
            }
            c.chunk = (size_t)v << 10;
            break;
        default: /* -h, or an unknown option */
            return cli_usage(ch, usage);
        }
    }
    if (argc - optind != 2) {
        usage(stderr);
        return 2;
    }
    c.src = argv[optind];
    c.dst = argv[optind + 1];

    return cli_run(&opts, root, &c);
}
