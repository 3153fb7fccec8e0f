/*
 * cli.h - the command line the example programs share: whole numbers as option values,
 * -w WORKERS and -b BACKEND for the runtime, a server's -p PORT and -h, and running the
 * root task on a runtime made from them. Only static functions, so that each example is
 * still built from its one .c file (cc prog.c $(pkg-config --cflags --libs edo)).
 *
 * A program of your own needs none of it: edo_main runs a root task on a runtime with the
 * defaults, and EDO_WORKERS and EDO_BACKEND in the environment choose workers and backend.
 */
#ifndef EDO_EXAMPLES_CLI_H
#define EDO_EXAMPLES_CLI_H

#include <edo.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define CLI_MAX_WORKERS 1024 /* edo_runtime_opts.workers' limit */

/* The program's name, for its messages. Set it first thing in main. */
static const char *cli_prog = "example";

/* Parses a whole decimal number in [lo, hi]; returns false if s is anything else. */
static inline bool cli_num(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* Takes the value of -t TIMEOUT_MS (1 to INT_MAX milliseconds) into *ms. Returns false
 * (after a message) if it is anything else. */
static inline bool cli_timeout(const char *val, int64_t *ms)
{
    long v;
    if (!cli_num(val, 1, INT_MAX, &v)) {
        fprintf(stderr, "%s: bad timeout '%s' (milliseconds, > 0)\n", cli_prog, val);
        return false;
    }
    *ms = v;
    return true;
}

/* Takes option c with value val if it is -w WORKERS or -b BACKEND, into *rt. Returns 1 if
 * it was one of them, 0 if not, -1 (after a message) if its value is bad. */
static inline int cli_runtime_opt(int c, const char *val, edo_runtime_opts *rt)
{
    long v;
    if (c == 'w') {
        if (!cli_num(val, 0, CLI_MAX_WORKERS, &v)) {
            fprintf(stderr, "%s: bad worker count '%s' (0-%d)\n", cli_prog, val, CLI_MAX_WORKERS);
            return -1;
        }
        rt->workers = (int)v; /* 0: EDO_WORKERS, else one per CPU */
        return 1;
    }
    if (c == 'b') {
        if (edo_backend_parse(val, &rt->backend) < 0) {
            fprintf(stderr, "%s: bad backend '%s' (epoll, uring or auto)\n", cli_prog, val);
            return -1;
        }
        /* An explicit auto is the automatic choice, whatever EDO_BACKEND says. */
        if (rt->backend == EDO_BACKEND_AUTO)
            unsetenv("EDO_BACKEND");
        return 1;
    }
    return 0;
}

/* The end of a program's option switch: -h prints the usage on standard output and is
 * exit status 0; any other option is a usage error (exit status 2, the usage on standard
 * error). */
static inline int cli_usage(int c, void (*usage)(FILE *out))
{
    usage(c == 'h' ? stdout : stderr);
    return c == 'h' ? 0 : 2;
}

/* Runs root(arg) as the root task of a runtime made with *opts and frees the runtime,
 * which aborts the tasks still alive and waits for them. Returns the exit status: what
 * root returned as edo_int_result (a negative value is 1), or 1 if the runtime could not
 * be made (saying why, and with which workers and backend). */
static inline int cli_run(const edo_runtime_opts *opts, edo_task_fn root, void *arg)
{
    edo_runtime *rt;
    int rc = edo_runtime_new(&rt, opts);
    if (rc < 0) {
        const char *env_w = getenv("EDO_WORKERS"), *env_b = getenv("EDO_BACKEND");
        fprintf(stderr, "%s: cannot start a runtime", cli_prog);
        if (opts->workers > 0)
            fprintf(stderr, " with %d workers", opts->workers);
        else if (env_w)
            fprintf(stderr, " with EDO_WORKERS=%s", env_w);
        if (opts->backend != EDO_BACKEND_AUTO)
            fprintf(stderr, " on %s", edo_backend_name(opts->backend));
        else if (env_b && *env_b)
            fprintf(stderr, " with EDO_BACKEND=%s", env_b);
        fprintf(stderr, ": %s\n", edo_strerror(rc));
        return 1;
    }
    void *result = NULL;
    rc = edo_block_on(rt, root, arg, &result);
    edo_runtime_free(rt);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", cli_prog, edo_strerror(rc));
        return 1;
    }
    return edo_result_int(result) < 0 ? 1 : edo_result_int(result);
}

/* What a server's command line says. */
struct cli_server {
    char addr[32]; /* "127.0.0.1:PORT" */
    edo_runtime_opts rt;
};

/* Parses a server's command line: -p PORT (default_port), -w WORKERS, -b BACKEND, -h;
 * `about` is the last line of the usage. Sets cli_prog to prog. Returns -1 to go on, or
 * the exit status to return at once: 0 after -h, 2 after a usage error. */
static inline int cli_server_args(int argc, char **argv, const char *prog, long default_port,
                                  const char *about, struct cli_server *out)
{
    long port = default_port;
    int c, r;

    cli_prog = prog;
    *out = (struct cli_server){ .rt = { 0 } };
    while ((c = getopt(argc, argv, "p:w:b:h")) != -1) {
        if ((r = cli_runtime_opt(c, optarg, &out->rt)) != 0) {
            if (r < 0)
                return 2;
        } else if (c == 'p') {
            if (!cli_num(optarg, 0, 65535, &port)) {
                fprintf(stderr, "%s: bad port '%s'\n", prog, optarg);
                return 2;
            }
        } else {
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: %s [-p PORT] [-w WORKERS] [-b BACKEND] [-h]\n"
                    "  -p PORT     listen on 127.0.0.1:PORT (default %ld; 0: any free port)\n"
                    "  -w WORKERS  worker threads (0 or absent: EDO_WORKERS from the "
                    "environment, else one per CPU)\n"
                    "  -b BACKEND  epoll, uring or auto (default: EDO_BACKEND from the "
                    "environment, else auto)\n"
                    "  -h          show this help\n"
                    "%s SIGINT/SIGTERM stop it gracefully (exit status 0).\n",
                    prog, default_port, about);
            return c == 'h' ? 0 : 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s' (-h: usage)\n", prog, argv[optind]);
        return 2;
    }
    snprintf(out->addr, sizeof out->addr, "127.0.0.1:%ld", port);
    return -1;
}

/* An on_listen for edo_tcp_serve: "PROG: listening on ADDR (BACKEND, N workers)" on
 * standard output, the line scripts wait for. The backend is worth saying: with -b auto
 * (or none) it depends on the kernel. */
static inline void cli_listening(const char *addr, void *arg)
{
    edo_runtime *rt = edo_runtime_current();
    int nw = edo_runtime_workers(rt);
    printf("%s: listening on %s (%s, %d worker%s)\n", cli_prog, addr,
           edo_backend_name(edo_runtime_backend(rt)), nw, nw == 1 ? "" : "s");
    fflush(stdout);
}

#endif /* EDO_EXAMPLES_CLI_H */
