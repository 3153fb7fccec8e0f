/*
 * chat-client - a line client for chat-server: what you type goes to the server, what the
 * server sends is printed.
 *
 *   build/examples/chat-client [-p PORT] [-t TIMEOUT_MS] [HOST | HOST:PORT]
 *
 *   -p PORT        server port (default 7070)
 *   -t TIMEOUT_MS  limit for connecting, and for the server to close after the end of the
 *                  input (default 5000)
 *   HOST           an IPv4 address, [IPv6] or localhost (default 127.0.0.1; names are not
 *                  looked up); HOST:PORT gives the port too
 *
 * One task does everything with edo_select: it waits for the socket to be readable (print
 * what came), for standard input to be readable (queue what was typed) and, while typed
 * bytes are queued, for the socket to be writable. Standard input may be a terminal, a pipe
 * or a file: edo_io_wrap(0) takes it as it is. At the end of the input it sends what is
 * left, shuts down its sending side (the server sees the end of the stream, says goodbye
 * and closes) and prints the rest until the server closes. When the server closes first
 * (after /quit, or when it stops), the client ends too. CR LF line ends from the server
 * are printed as LF.
 *
 * Exit status: 0 when the server closed the connection (after the end of the input or on
 * its own); 1 on an error (cannot connect, connection lost, no close within TIMEOUT_MS
 * after the end of the input); 2 on a usage error; 128 + the signal's number after
 * SIGINT or SIGTERM.
 *
 * Try it:  build/examples/chat-server &  build/examples/chat-client
 */
#include <edo.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define BUF_SIZE 4096

struct client {
    char addr[80];
    int64_t timeout_ms;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: chat-client [-p PORT] [-t TIMEOUT_MS] [HOST | HOST:PORT]\n"
                 "  -p PORT        server port (default 7070)\n"
                 "  -t TIMEOUT_MS  limit for connecting and for the server to close after the "
                 "end of input (default 5000)\n"
                 "  HOST           IPv4 address, [IPv6] or localhost (default 127.0.0.1)\n"
                 "Sends what you type to chat-server and prints what it sends. End the input "
                 "(Ctrl-D) or type /quit to leave.\n");
}

static const int stop_sigs[] = { SIGINT, SIGTERM };

/* Waits for SIGINT or SIGTERM and hands it to the root task over a channel. */
static void *watch_signals(void *arg)
{
    edo_chan *caught = arg;
    int sig = edo_signal_wait(stop_sigs, 2);
    if (sig > 0)
        edo_chan_send(caught, &sig); /* room for one: never waits */
    return NULL;
}

/* Writes what the server sent to out without the CRs of its CR LF line ends. Waits while
 * the terminal or pipe is full: the client then stops reading the socket, which is the
 * right back-pressure (the server disconnects a client that stays behind for too long). */
static int print_received(edo_io *out, const char *buf, size_t len)
{
    char text[BUF_SIZE];
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (buf[i] != '\r')
            text[n++] = buf[i];
    return edo_write_all(out, text, n, NULL);
}

/* The conversation: connected, until the server closes or something fails. Returns the exit
 * status. */
static int converse(struct client *cl, edo_io *sock, edo_io *in, edo_io *out)
{
    char up[BUF_SIZE], down[BUF_SIZE];
    size_t up_len = 0; /* typed, not yet sent */
    bool in_eof = false, shut = false;
    int64_t close_by = EDO_NEVER; /* after the end of the input: when to give up */
    ssize_t n;

    for (;;) {
        edo_case cs[] = {
            edo_case_read(sock),
            in_eof || up_len == sizeof up ? edo_case_off() : edo_case_read(in),
            up_len ? edo_case_write(sock) : edo_case_off(),
            edo_case_deadline(close_by),
        };
        int k = edo_select(cs, 4);
        switch (k) {
        case 0: /* the server sent something, or closed */
            n = edo_try_read(sock, down, sizeof down);
            if (n == 0)
                return 0;
            if (n == -EAGAIN)
                break;
            if (n < 0) {
                fprintf(stderr, "chat-client: connection lost: %s\n", edo_strerror((int)n));
                return 1;
            }
            n = print_received(out, down, (size_t)n);
            if (n < 0) {
                fprintf(stderr, "chat-client: cannot write to standard output: %s\n",
                        edo_strerror((int)n));
                return 1;
            }
            break;
        case 1: /* typed input, or its end */
            n = edo_try_read(in, up + up_len, sizeof up - up_len);
            if (n > 0) {
                up_len += (size_t)n;
            } else if (n != -EAGAIN) { /* 0: the end of the input; or an error, taken as one */
                if (n < 0)
                    fprintf(stderr, "chat-client: standard input: %s\n", edo_strerror((int)n));
                in_eof = true;
                close_by = edo_now() + cl->timeout_ms;
            }
            break;
        case 2: /* room to send what was typed */
            n = edo_try_write(sock, up, up_len);
            if (n < 0 && n != -EAGAIN) {
                fprintf(stderr, "chat-client: connection lost: %s\n", edo_strerror((int)n));
                return 1;
            }
            if (n > 0) {
                up_len -= (size_t)n;
                memmove(up, up + n, up_len);
            }
            break;
        case 3:
            fprintf(stderr, "chat-client: the server did not close within %lld ms\n",
                    (long long)cl->timeout_ms);
            return 1;
        default: /* -ECANCELED: a signal (the root task decides the status) */
            return 1;
        }
        /* Everything typed is sent: tell the server there is no more. */
        if (in_eof && !up_len && !shut) {
            int rc = edo_shutdown(sock);
            if (rc < 0) {
                fprintf(stderr, "chat-client: shutdown: %s\n", edo_strerror(rc));
                return 1;
            }
            shut = true;
        }
    }
}

/* Takes fd over for the runtime. On failure, says so and returns NULL. */
static edo_io *wrap_std(int fd, const char *what)
{
    edo_io *io;
    int rc = edo_io_wrap(&io, fd);
    if (rc < 0) {
        fprintf(stderr, "chat-client: cannot use standard %s: %s\n", what, edo_strerror(rc));
        return NULL;
    }
    return io;
}

/* Gives fd its file status flags back and closes it. */
static void unwrap_std(edo_io *io, int flags)
{
    if (!io)
        return;
    if (flags >= 0)
        fcntl(edo_io_fd(io), F_SETFL, flags);
    edo_close(io);
}

/* The client's task: connects, then talks until the server closes or something fails.
 * Returns the exit status. */
static void *client_task(void *arg)
{
    struct client *cl = arg;
    edo_io *sock = NULL, *in = NULL, *out = NULL;
    int in_flags = -1, out_flags = -1, status = 1;

    int rc = edo_tcp_connect(&sock, cl->addr, cl->timeout_ms);
    if (rc < 0) {
        if (rc == -ETIMEDOUT)
            fprintf(stderr, "chat-client: cannot connect to %s: no answer within %lld ms\n",
                    cl->addr, (long long)cl->timeout_ms);
        else if (rc != -ECANCELED)
            fprintf(stderr, "chat-client: cannot connect to %s: %s\n", cl->addr, edo_strerror(rc));
        goto out;
    }
    /* edo_io_wrap makes a descriptor non-blocking, and O_NONBLOCK belongs to the open file
     * description, which a terminal shares with the shell that started the client (and
     * standard input and output may be one and the same): both flags are saved before
     * either is changed, and given back at the end. */
    in_flags = fcntl(0, F_GETFL);
    out_flags = fcntl(1, F_GETFL);
    in = wrap_std(0, "input");
    out = wrap_std(1, "output");
    if (in && out)
        status = converse(cl, sock, in, out);

out:
    unwrap_std(in, in_flags);
    unwrap_std(out, out_flags);
    if (sock)
        edo_close(sock);
    return (void *)(intptr_t)status;
}

/* The root task: runs the client's task, and stops it on SIGINT or SIGTERM. Stopping is an
 * abort: every wait of the task then fails with -ECANCELED, so it still ends through its
 * own code and gives standard input and output their flags back (a Ctrl-C that killed the
 * process would leave a terminal non-blocking for the shell). A select waits for
 * whichever comes first, the task's end or a signal. */
static void *run(void *arg)
{
    edo_task *client, *watcher;
    edo_chan *caught;
    void *result = (void *)1;
    int sig = 0;

    /* Taken over here, before the client starts: the watcher may not have run yet when
     * a Ctrl-C comes, and what its wait needs (a signalfd) is in place before anything
     * else is done. */
    int rc = edo_signal_take(stop_sigs, 2);
    if (rc < 0)
        return edo_int_result(edo_fail(rc, "take over SIGINT and SIGTERM"));
    rc = edo_chan_new(&caught, sizeof sig, 1);
    if (rc < 0)
        return edo_int_result(edo_fail(rc, "channel"));
    rc = edo_spawn(&watcher, watch_signals, caught);
    if (rc == 0) {
        rc = edo_spawn(&client, client_task, arg);
        if (rc < 0) {
            edo_abort(watcher);
            edo_join(watcher, NULL);
        }
    }
    if (rc < 0) {
        edo_chan_free(caught);
        return edo_int_result(edo_fail(rc, "spawn"));
    }

    edo_case cs[] = { edo_case_join(client), edo_case_recv(caught, &sig) };
    if (edo_select(cs, 2) == 1)
        edo_abort(client);
    edo_join(client, &result); /* after an abort: -ECANCELED, and what it returned */
    edo_abort(watcher);
    edo_join(watcher, NULL);
    edo_chan_free(caught);
    return edo_int_result(sig ? 128 + sig : edo_result_int(result));
}

int main(int argc, char **argv)
{
    static struct client cl = { .timeout_ms = 5000 };
    const char *port = NULL, *host = "127.0.0.1";
    long v;
    int c;

    cli_prog = "chat-client";
    while ((c = getopt(argc, argv, "p:t:h")) != -1) {
        switch (c) {
        case 'p':
            if (!cli_num(optarg, 0, 65535, &v)) {
                fprintf(stderr, "chat-client: bad port '%s'\n", optarg);
                return 2;
            }
            port = optarg;
            break;
        case 't':
            if (!cli_timeout(optarg, &cl.timeout_ms))
                return 2;
            break;
        default: /* -h, or an unknown option */
            return cli_usage(c, usage);
        }
    }
    if (optind < argc)
        host = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "chat-client: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    /* HOST:PORT or [V6]:PORT carries its own port; a bare host takes -p's (or 7070). */
    const char *bracket = strrchr(host, ']');
    bool has_port = strchr(bracket ? bracket : host, ':') != NULL;
    if (has_port && port) {
        fprintf(stderr, "chat-client: give the port once: '%s' and -p %s\n", host, port);
        return 2;
    }
    snprintf(cl.addr, sizeof cl.addr, "%s%s%s", host, has_port ? "" : ":",
             has_port ? ""
             : port   ? port
                      : "7070");
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (edo_parse_addr(cl.addr, &ss, &sslen) < 0) {
        fprintf(stderr,
                "chat-client: bad address '%s' (an IPv4 address, [IPv6] or localhost, with an "
                "optional :PORT; names are not looked up)\n",
                host);
        return 2;
    }

    return edo_main(run, &cl);
}
