/*
 * resolve - looks up host names concurrently, one task per name, with a time limit.
 *
 *   build/examples/resolve [-t TIMEOUT_MS] [-w WORKERS] name...
 *
 *   -t TIMEOUT_MS  give up on a name after this long (default 5000)
 *   -w WORKERS     worker threads (default: the runtime's, EDO_WORKERS or the CPUs)
 *
 * getaddrinfo has no non-blocking form: called from a task it would stop its whole worker
 * for as long as the resolver takes (seconds, for a name server that does not answer).
 * edo_spawn_blocking runs it on the blocking pool instead, and the task waits for it like
 * for any other task, with a deadline. A lookup that times out is abandoned to its pool
 * thread, which frees what it made when it returns.
 *
 * Prints one line per name, in the order given: the name and its addresses, or why not.
 * Exit status: 0 if every name resolved; 1 if one did not; 2 on a usage error.
 */
#define _GNU_SOURCE
#include <edo.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* One lookup. The pool thread and the waiting task share it; whoever finishes with it
 * last frees it (the task gives up on a lookup that outlives its deadline). */
struct lookup {
    char name[256];
    int rc; /* getaddrinfo's return */
    struct addrinfo *res;
    atomic_int owners;
};

static void lookup_release(struct lookup *lk)
{
    if (atomic_fetch_sub(&lk->owners, 1) == 1) {
        if (lk->res)
            freeaddrinfo(lk->res);
        free(lk);
    }
}

/* Runs on a pool thread: a plain blocking call. */
static void *do_lookup(void *arg)
{
    struct lookup *lk = arg;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    lk->rc = getaddrinfo(lk->name, NULL, &hints, &lk->res);
    lookup_release(lk);
    return NULL;
}

struct job {
    const char *name;
    int64_t timeout_ms;
    char line[1024]; /* the result, printed by main_task in order */
    int ok;
};

static void *resolve_task(void *arg)
{
    struct job *job = arg;
    struct lookup *lk = calloc(1, sizeof *lk);
    if (!lk) {
        snprintf(job->line, sizeof job->line, "%s: out of memory", job->name);
        return NULL;
    }
    snprintf(lk->name, sizeof lk->name, "%s", job->name);
    atomic_init(&lk->owners, 2);
    edo_task *call;
    int rc = edo_spawn_blocking(&call, do_lookup, lk);
    if (rc < 0) {
        snprintf(job->line, sizeof job->line, "%s: %s", job->name, edo_strerror(rc));
        free(lk);
        return NULL;
    }
    /* Every suspension of this task fails with -ETIMEDOUT past the deadline. */
    edo_set_deadline(edo_now() + job->timeout_ms);
    rc = edo_join(call, NULL);
    if (rc == -ETIMEDOUT) {
        edo_detach(call); /* the pool thread finishes it; the lookup frees itself */
        snprintf(job->line, sizeof job->line, "%s: no answer within %lld ms", job->name,
                 (long long)job->timeout_ms);
        lookup_release(lk);
        return NULL;
    }
    if (rc < 0) {
        snprintf(job->line, sizeof job->line, "%s: %s", job->name, edo_strerror(rc));
        lookup_release(lk);
        return NULL;
    }
    if (lk->rc != 0) {
        snprintf(job->line, sizeof job->line, "%s: %s", job->name, gai_strerror(lk->rc));
        lookup_release(lk);
        return NULL;
    }
    size_t used = (size_t)snprintf(job->line, sizeof job->line, "%s:", job->name);
    for (struct addrinfo *ai = lk->res; ai && used < sizeof job->line; ai = ai->ai_next) {
        char text[INET6_ADDRSTRLEN];
        const void *a = ai->ai_family == AF_INET
                            ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                            : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        if (inet_ntop(ai->ai_family, a, text, sizeof text))
            used += (size_t)snprintf(job->line + used, sizeof job->line - used, " %s", text);
    }
    job->ok = 1;
    lookup_release(lk);
    return NULL;
}

struct args {
    char **names;
    int nnames;
    int64_t timeout_ms;
};

static void *main_task(void *arg)
{
    struct args *a = arg;
    struct job *jobs = calloc((size_t)a->nnames, sizeof *jobs);
    edo_task **tasks = calloc((size_t)a->nnames, sizeof *tasks);
    if (!jobs || !tasks) {
        fprintf(stderr, "resolve: out of memory\n");
        free(jobs);
        free(tasks);
        return (void *)1;
    }
    int failed = 0, spawned = 0;
    for (int i = 0; i < a->nnames; i++) {
        jobs[i].name = a->names[i];
        jobs[i].timeout_ms = a->timeout_ms;
        int rc = edo_spawn(&tasks[i], resolve_task, &jobs[i]);
        if (rc < 0) {
            snprintf(jobs[i].line, sizeof jobs[i].line, "%s: %s", jobs[i].name, edo_strerror(rc));
            tasks[i] = NULL;
        } else {
            spawned++;
        }
    }
    for (int i = 0; i < a->nnames; i++) {
        if (tasks[i])
            edo_join(tasks[i], NULL); /* after which its job is safe to read here */
        printf("%s\n", jobs[i].line);
        failed |= !jobs[i].ok;
    }
    free(jobs);
    free(tasks);
    return (void *)(intptr_t)(failed || spawned < a->nnames);
}

int main(int argc, char **argv)
{
    struct args a = { .timeout_ms = 5000 };
    edo_runtime_opts opts = { 0 };
    long v;
    int opt;
    cli_prog = "resolve";
    while ((opt = getopt(argc, argv, "t:w:h")) != -1) {
        switch (opt) {
        case 't':
            if (!cli_num(optarg, 1, 3600000, &v))
                goto usage;
            a.timeout_ms = v;
            break;
        case 'w':
            if (cli_runtime_opt(opt, optarg, &opts) < 0)
                goto usage;
            break;
        case 'h':
            printf("usage: resolve [-t TIMEOUT_MS] [-w WORKERS] name...\n");
            return 0;
        default:
            goto usage;
        }
    }
    if (optind >= argc)
        goto usage;
    a.names = argv + optind;
    a.nnames = argc - optind;

    return cli_run(&opts, main_task, &a);
usage:
    fprintf(stderr, "usage: resolve [-t TIMEOUT_MS] [-w WORKERS] name...\n");
    return 2;
}
