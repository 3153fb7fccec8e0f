/*
 * echo-client - sends messages to an echo server and checks that each comes back intact.
 *
 *   build/examples/echo-client [-a HOST:PORT] [-n COUNT] [-t TIMEOUT_MS] [message...]
 *
 *   -a HOST:PORT   server address (default 127.0.0.1:7000; "[::1]:7000" for IPv6)
 *   -n COUNT       send the whole list of messages COUNT times (default 1)
 *   -t TIMEOUT_MS  limit for connecting and for each send and each echo (default 5000)
 *   message...     what to send (default: "hello"); each echo is printed on a line
 *
 * After the last echo it closes its sending side and expects the server to close too, with
 * nothing extra. Exit status: 0 if every echo matched; 1 on any error (connection refused,
 * timeout, connection lost, mismatch); 2 on a usage error.
 */
#include <edo.h>

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

struct client {
    const char *addr;
    long count;
    int64_t timeout_ms;
    char **msgs;
    int nmsgs;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: echo-client [-a HOST:PORT] [-n COUNT] [-t TIMEOUT_MS] [message...]\n"
                 "  -a HOST:PORT   echo server (default 127.0.0.1:7000)\n"
                 "  -n COUNT       send the messages COUNT times (default 1)\n"
                 "  -t TIMEOUT_MS  timeout for connect and for each send/echo (default 5000)\n"
                 "  message...     what to send (default: hello)\n");
}

/* Why an I/O call failed, in words that name the likely cause. */
static int io_error(const struct client *cl, const char *what, int err)
{
    if (err == -ETIMEDOUT)
        fprintf(stderr, "echo-client: %s: no progress within %lld ms (timed out)\n", what,
                (long long)cl->timeout_ms);
    else
        fprintf(stderr, "echo-client: %s: %s\n", what, edo_strerror(err));
    return 1;
}

/* Sends msg, reads back exactly as many bytes into echo, and compares them. */
static int echo_one(const struct client *cl, edo_io *conn, const char *msg, char *echo)
{
    size_t len = strlen(msg), got = 0;
    int rc;

    rc = edo_write_all(conn, msg, len, NULL);
    if (rc < 0)
        return io_error(cl, "send", rc);
    rc = edo_read_exact(conn, echo, len, &got);
    if (rc == -ENODATA) {
        fprintf(stderr,
                "echo-client: the server closed the connection after echoing %zu of "
                "%zu bytes\n",
                got, len);
        return 1;
    }
    if (rc < 0)
        return io_error(cl, "receive the echo", rc);
    if (memcmp(echo, msg, len) != 0) {
        size_t i = 0;
        while (echo[i] == msg[i])
            i++;
        fprintf(stderr, "echo-client: mismatch at byte %zu of %zu: sent \"%s\", got \"%.*s\"\n", i,
                len, msg, (int)len, echo);
        return 1;
    }
    printf("%.*s\n", (int)len, echo);
    return 0;
}

static void *run(void *arg)
{
    const struct client *cl = arg;
    size_t maxlen = 1;
    char *echo = NULL, extra;
    edo_io *conn;
    ssize_t n;
    int rc, status = 1;

    rc = edo_tcp_connect(&conn, cl->addr, cl->timeout_ms);
    if (rc < 0) {
        if (rc == -ETIMEDOUT)
            fprintf(stderr, "echo-client: cannot connect to %s: no answer within %lld ms\n",
                    cl->addr, (long long)cl->timeout_ms);
        else
            fprintf(stderr, "echo-client: cannot connect to %s: %s\n", cl->addr, edo_strerror(rc));
        return edo_int_result(1);
    }
    edo_io_set_timeout(conn, cl->timeout_ms, cl->timeout_ms);

    /* One buffer for the echoes, on the heap: messages may be longer than a task's stack. */
    for (int i = 0; i < cl->nmsgs; i++)
        if (strlen(cl->msgs[i]) > maxlen)
            maxlen = strlen(cl->msgs[i]);
    echo = malloc(maxlen);
    if (!echo) {
        fprintf(stderr, "echo-client: out of memory\n");
        goto out;
    }

    for (long round = 0; round < cl->count; round++)
        for (int i = 0; i < cl->nmsgs; i++)
            if (echo_one(cl, conn, cl->msgs[i], echo) != 0)
                goto out;

    /* Done sending: the server should see end of stream and close without sending more. */
    rc = edo_shutdown(conn);
    if (rc < 0) {
        io_error(cl, "shutdown", rc);
        goto out;
    }
    n = edo_read(conn, &extra, 1);
    if (n > 0)
        fprintf(stderr, "echo-client: the server sent bytes that were never sent to it\n");
    else if (n < 0 && n != -ECONNRESET)
        io_error(cl, "wait for the server to close", (int)n);
    else
        status = 0;

out:
    free(echo);
    edo_close(conn);
    return edo_int_result(status);
}

int main(int argc, char **argv)
{
    static char *default_msgs[] = { "hello" };
    struct client cl = { .addr = "127.0.0.1:7000", .count = 1, .timeout_ms = 5000 };
    int c;

    cli_prog = "echo-client";
    while ((c = getopt(argc, argv, "a:n:t:h")) != -1) {
        switch (c) {
        case 'a':
            cl.addr = optarg;
            break;
        case 'n':
            if (!cli_num(optarg, 0, LONG_MAX, &cl.count)) {
                fprintf(stderr, "echo-client: bad count '%s'\n", optarg);
                return 2;
            }
            break;
        case 't':
            if (!cli_timeout(optarg, &cl.timeout_ms))
                return 2;
            break;
        default: /* -h, or an unknown option */
            return cli_usage(c, usage);
        }
    }
    if (optind < argc) {
        cl.msgs = argv + optind;
        cl.nmsgs = argc - optind;
    } else {
        cl.msgs = default_msgs;
        cl.nmsgs = 1;
    }

    struct sockaddr_storage ss;
    socklen_t sslen;
    if (edo_parse_addr(cl.addr, &ss, &sslen) < 0) {
        fprintf(stderr, "echo-client: bad address '%s' (want HOST:PORT, e.g. 127.0.0.1:7000)\n",
                cl.addr);
        return 2;
    }
    return edo_main(run, &cl);
}
