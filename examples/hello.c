/*
 * hello - the smallest edo program: three tasks that nap, and a task that waits for them.
 *
 *   build/examples/hello
 *
 * edo_main() creates a runtime and runs greet() as its first task. greet() spawns three
 * tasks; each sleeps for a while and prints. While one task sleeps, the others run: the
 * three naps overlap, so the whole program takes about as long as the longest nap, not
 * the sum. greet() then joins each task (waits for it and collects what it returned).
 */
#include <edo.h>

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>

struct nap {
    const char *who;
    int64_t ms;
};

/* A task: takes one pointer, returns one pointer. Here the pointer carries an integer. */
static void *take_a_nap(void *arg)
{
    const struct nap *nap = arg;
    int64_t start = edo_now();

    int rc = edo_sleep(nap->ms); /* suspends this task only; the others run meanwhile */
    if (rc < 0)
        return edo_int_result(rc);

    printf("%-8s woke up after %" PRId64 " ms\n", nap->who, edo_now() - start);
    return edo_int_result(edo_now() - start);
}

static void *greet(void *arg)
{
    (void)arg;
    /* The tasks borrow these structs; they outlive the tasks because we join them all. */
    struct nap naps[] = { { "tortoise", 300 }, { "hare", 100 }, { "owl", 200 } };
    enum { N = sizeof naps / sizeof naps[0] };
    edo_task *tasks[N];
    int spawned = 0, status = 0;
    int64_t start = edo_now();

    for (int i = 0; i < N; i++) {
        edo_spawn_opts opts = { .name = naps[i].who };
        int rc = edo_spawn_with(&tasks[i], &opts, take_a_nap, &naps[i]);
        if (rc < 0) {
            status = edo_fail(rc, "spawn");
            break; /* still join the ones already running */
        }
        spawned++;
    }
    printf("spawned %d tasks; they start when this one waits\n", spawned);

    /* Every handle is given back exactly once: here, to edo_join. */
    for (int i = 0; i < spawned; i++) {
        void *result;
        int rc = edo_join(tasks[i], &result);
        if (rc < 0) {
            status = edo_fail(rc, "join");
            continue;
        }
        intptr_t slept = (intptr_t)result;
        if (slept < 0)
            status = edo_fail((int)slept, naps[i].who);
        else
            printf("joined %-8s: it slept %" PRIdPTR " ms\n", naps[i].who, slept);
    }
    printf("all done in %" PRId64 " ms (the naps overlapped)\n", edo_now() - start);
    return edo_int_result(status);
}

int main(void)
{
    return edo_main(greet, NULL);
}
