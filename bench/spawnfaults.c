/*
 * spawnfaults - page faults per spawn: spawns and joins -n tasks, -r rounds, and prints the
 * process's page faults (getrusage) per spawn for each round and for the rounds after the
 * first two (the first maps the stacks, and under TSan makes the fibers; TSan warms up
 * buffers of its own in the second).
 *
 *   build/bench/spawnfaults [-n TASKS] [-r ROUNDS] [-w WORKERS]
 *
 * Its point is a sanitizer build, where a task's fiber costs TSan some 380 page faults:
 *   cmake -S . -B build-tsan -DEDO_SANITIZE=thread -DEDO_BUILD_BENCH=ON
 *   cmake --build build-tsan --target spawnfaults
 *   perf stat -e page-faults build-tsan/bench/spawnfaults -w 1
 */
#include <edo.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#define WARM 2
static long tasks = 1000, rounds = 10;

static long page_faults(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt + ru.ru_majflt;
}

static void *noop(void *arg)
{
    return arg;
}

static void *root(void *unused)
{
    edo_task **ts = calloc((size_t)tasks, sizeof *ts);
    if (!ts)
        return (void *)1;
    long steady = 0;
    for (long r = 0; r < rounds; r++) {
        long f0 = page_faults();
        for (long i = 0; i < tasks; i++)
            if (edo_spawn(&ts[i], noop, NULL) < 0)
                return (void *)1;
        for (long i = 0; i < tasks; i++)
            edo_join(ts[i], NULL);
        long f = page_faults() - f0;
        if (r >= WARM)
            steady += f;
        printf("round %ld: %.2f page faults per spawn\n", r, (double)f / tasks);
    }
    if (rounds > WARM)
        printf("after the first %d rounds: %.2f page faults per spawn\n", WARM,
               (double)steady / ((rounds - WARM) * tasks));
    free(ts);
    (void)unused;
    return NULL;
}

int main(int argc, char **argv)
{
    edo_runtime_opts opts = { 0 };
    int c;
    while ((c = getopt(argc, argv, "n:r:w:h")) != -1) {
        switch (c) {
        case 'n':
            tasks = atol(optarg);
            break;
        case 'r':
            rounds = atol(optarg);
            break;
        case 'w':
            opts.workers = atoi(optarg);
            break;
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: spawnfaults [-n TASKS] [-r ROUNDS] [-w WORKERS]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (tasks < 1 || rounds < 1) {
        fprintf(stderr, "spawnfaults: -n and -r must be at least 1\n");
        return 2;
    }
    edo_runtime *rt;
    int rc = edo_runtime_new(&rt, &opts);
    if (rc < 0) {
        edo_fail(rc, "runtime");
        return 1;
    }
    void *res = NULL;
    rc = edo_block_on(rt, root, NULL, &res);
    edo_runtime_free(rt);
    return rc < 0 || res ? 1 : 0;
}
