/*
 * bench.h - the harness the benchmark programs (micro, rtbench) share.
 *
 * A program is a table of benches and a call to bench_main(), which parses the common
 * options, gives every bench a fresh runtime, runs one untimed warm-up rep and then R timed
 * reps of a fixed amount of work, and reports the median rep, as tokio-rtbench does. One
 * line per bench on stdout, in the format ../shared/anchors/run-rt.sh reads:
 *
 *   BENCH name=<name> iters=<ops per rep> ns_per_op=<median rep ns / iters> total_ms=<..>
 *
 * and "#   <name> reps=R min_ms=.. median_ms=.. max_ms=.." on stderr. A rep times itself
 * with bench_now_ns() (CLOCK_MONOTONIC) on the main thread, around all of its work,
 * edo_block_on included.
 */
#ifndef EDO_BENCH_H
#define EDO_BENCH_H

#include <edo.h>

#include <stddef.h>
#include <stdint.h>

/* A task's int result carried in its void * return value, and back. */
#define RC(p) ((int)(intptr_t)(p))
#define PTR(rc) ((void *)(intptr_t)(rc))

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t bench_now_ns(void);

/* A task that returns its argument at once. */
void *bench_empty_task(void *arg);

/* Times one edo_block_on(rt, root, arg) and stores the wall time in *ns. Returns
 * edo_block_on's error, else the root task's result read with RC(). */
int bench_block_on(edo_runtime *rt, void *(*root)(void *), void *arg, int64_t *ns);

struct bench {
    const char *name;
    long iters;       /* operations per rep: ns_per_op = (median - floor_ns) / iters */
    int reps;         /* timed reps when -r is 0 (the default) */
    int64_t floor_ns; /* subtracted from the median before dividing (sleeps that are work) */
    /* One rep on rt: stores its wall time in *ns, returns 0 or -errno. */
    int (*rep)(edo_runtime *rt, int64_t *ns);
    /* Set when there is no rep yet: why. The bench is listed, and running it says this on
     * stderr and prints no BENCH line. */
    const char *not_ported;
};

struct bench_program {
    const char *name;    /* in messages and the usage text */
    const char *about;   /* one line for -h */
    int default_workers; /* edo_runtime_opts.workers without -w (0: the runtime's default) */
    const struct bench *benches;
    size_t count;
};

/* Parses the options (see -h), runs the chosen benches in table order and returns the exit
 * status: 0, 1 if the runtime cannot be created or a bench failed, 2 for a usage error. */
int bench_main(const struct bench_program *prog, int argc, char **argv);

#endif
