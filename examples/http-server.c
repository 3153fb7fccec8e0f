/*
 * http-server - HTTP/1.1 "plaintext" server: one task per connection, pipelining included.
 *
 *   build/examples/http-server [-p PORT] [-w WORKERS] [-b BACKEND] [-h]
 *
 *   -p PORT     port on 127.0.0.1 (default 8080; 0 picks a free one and prints it)
 *   -w WORKERS  worker threads of the runtime (0 or absent: EDO_WORKERS, else one per CPU;
 *               1: the current-thread flavour)
 *   -b BACKEND  epoll, uring (io_uring) or auto: io_uring where this build and the
 *               kernel have it, else epoll (default: EDO_BACKEND, else auto)
 *   -h          this help
 *
 * Every request gets the same 126-byte answer, TechEmpower's "plaintext" test:
 *
 *   HTTP/1.1 200 OK\r\nServer: e\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n
 *   Date: Thu, 26 Nov 2026 19:50:08 GMT\r\n\r\nHello, World!
 *
 * A request is everything up to and including the blank line that ends its head; the
 * method, path and headers are not looked at and bodies are not supported. Each
 * connection's task reads into a 4 KiB buffer, answers every complete request in it with
 * one edo_write_all of all the answers (so a pipelined batch costs one read and one write),
 * and keeps an incomplete last request for the next read. A head that does not fit doubles
 * the buffer, up to 64 KiB; a longer one closes the connection. Connections stay open
 * until the client closes them.
 *
 * SIGINT or SIGTERM stops the server gracefully (exit status 0), as in echo-server.c:
 * edo_tcp_serve stops accepting, and a connection that is answering requests then closes
 * after the answers in progress (it looks at the server's stop token after each write).
 * One that waits for a request is aborted at the end of the grace period (5 s; a second
 * signal: at once) and frees its buffers as it unwinds.
 *
 * Try it:  build/examples/http-server -p 8080 &  curl -i http://127.0.0.1:8080/
 *
 * This is the server that bench/run-net.sh measures against the raw epoll, Go and Tokio
 * versions of the same program in ../shared/anchors, so it does the same work they do.
 */
#define _GNU_SOURCE /* memmem */
#include <edo.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#define READ_BUF 4096      /* first read buffer of a connection, on its task's stack */
#define MAX_READ_BUF 65536 /* largest request head accepted */
#define OUT_ON_STACK 32    /* answers that fit in the write buffer on the stack */

#define RESP_HEAD                                                                                  \
    "HTTP/1.1 200 OK\r\nServer: e\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nDate: "
#define DATE_LEN 29 /* "Thu, 01 Jan 1970 00:00:00 GMT" */
#define RESP_TAIL "\r\n\r\nHello, World!"
#define RESP_LEN (sizeof RESP_HEAD - 1 + DATE_LEN + sizeof RESP_TAIL - 1)

/* The answer with the Date of second `sec`, one copy per worker thread: each worker
 * formats the date at most once a second and no thread ever reads another's copy, so there
 * is neither a lock nor a race on the hot path. */
struct response {
    time_t sec;
    char bytes[RESP_LEN + 1];
};
static _Thread_local struct response response = {
    .sec = -1,
    .bytes = RESP_HEAD "Thu, 01 Jan 1970 00:00:00 GMT" RESP_TAIL,
};

/* Writes count answers with the current Date to out. It must not suspend, and it is kept
 * out of line on purpose: a task can move to another worker at any call that suspends,
 * and a compiler may keep the address of a thread-local variable in a register across a
 * call, so the thread-local copy is only touched inside a function that never suspends. */
static __attribute__((noinline)) void put_responses(char *out, size_t count)
{
    struct response *r = &response;
    time_t now = time(NULL);

    if (now != r->sec) {
        struct tm tm;
        char date[DATE_LEN + 1];
        gmtime_r(&now, &tm);
        strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm); /* IMF-fixdate */
        memcpy(r->bytes + sizeof RESP_HEAD - 1, date, DATE_LEN);
        r->sec = now;
    }
    for (size_t i = 0; i < count; i++)
        memcpy(out + i * RESP_LEN, r->bytes, RESP_LEN);
}

/* Grows a buffer that starts as an array on the task's stack (`stack`) to at least `need`
 * bytes by doubling, keeping its first `keep` bytes. Returns false, leaving *buf as it
 * was, if memory runs out. */
static bool grow(char **buf, size_t *cap, size_t need, size_t keep, char *stack)
{
    size_t n = *cap;
    while (n < need)
        n *= 2;
    char *p = malloc(n);
    if (!p)
        return false;
    memcpy(p, *buf, keep);
    if (*buf != stack)
        free(*buf);
    *buf = p;
    *cap = n;
    return true;
}

/* One connection; stop is the server's stop token. Whatever ends the loop (the client
 * closing, an error, a head over MAX_READ_BUF, the stop, -ECANCELED at its end), the
 * buffers are freed here, and edo_tcp_serve closes conn. Both buffers start on the task's
 * stack, so a connection whose requests fit in READ_BUF never calls malloc. */
static void http_conn(edo_io *conn, void *stop)
{
    char in_stack[READ_BUF], out_stack[OUT_ON_STACK * RESP_LEN];
    char *in = in_stack, *out = out_stack;
    size_t in_cap = sizeof in_stack, out_cap = sizeof out_stack;
    size_t len = 0; /* bytes in `in`: the start of a request not yet complete */
    ssize_t n;
    int rc = 0;

    for (;;) {
        if (len == in_cap) {
            /* The buffer holds one incomplete head and nothing else: make room for more of
             * it, up to the limit. */
            if (in_cap >= MAX_READ_BUF) {
                rc = -EMSGSIZE;
                break;
            }
            if (!grow(&in, &in_cap, in_cap * 2, len, in_stack)) {
                rc = -ENOMEM;
                break;
            }
        }
        n = edo_read(conn, in + len, in_cap - len);
        if (n <= 0) {
            rc = (int)n; /* 0: the client closed */
            break;
        }

        /* Find every complete request. The bytes before `len` hold no "\r\n\r\n" (or it
         * would have been answered), but one may straddle the old end. */
        size_t scan = len >= 3 ? len - 3 : 0, start = 0, count = 0;
        char *end;
        len += (size_t)n;
        while ((end = memmem(in + scan, len - scan, "\r\n\r\n", 4)) != NULL) {
            start = scan = (size_t)(end - in) + 4;
            count++;
        }
        if (count == 0)
            continue;

        /* At most one answer per 4 bytes read, so `out` stays within 32 times `in`. */
        if (count * RESP_LEN > out_cap && !grow(&out, &out_cap, count * RESP_LEN, 0, out_stack)) {
            rc = -ENOMEM;
            break;
        }
        put_responses(out, count);
        rc = edo_write_all(conn, out, count * RESP_LEN, NULL);
        if (rc < 0 || edo_token_cancelled(stop))
            break; /* stopping: the requests read so far are answered, no more are taken */
        memmove(in, in + start, len - start);
        len -= start;
    }

    /* What the client does (closing, resetting, sending a head that is too long) and the
     * shutdown's -ECANCELED end a connection quietly; only a failure of the server's own is
     * worth a line. */
    if (rc == -ENOMEM)
        fprintf(stderr, "http-server: closing a connection: %s\n", edo_strerror(rc));
    if (in != in_stack)
        free(in);
    if (out != out_stack)
        free(out);
}

static void *serve(void *arg)
{
    struct cli_server *cli = arg;
    edo_token *stop;
    int rc = edo_token_new(&stop, NULL);
    if (rc < 0)
        return edo_int_result(edo_fail(rc, "token"));
    edo_serve_opts o = { .name = cli_prog, .on_listen = cli_listening, .stop = stop };
    rc = edo_tcp_serve(cli->addr, http_conn, stop, &o);
    edo_token_free(stop);
    return edo_int_result(rc);
}

int main(int argc, char **argv)
{
    struct cli_server cli;
    int rc = cli_server_args(argc, argv, "http-server", 8080,
                             "Answers every HTTP request with \"Hello, World!\".", &cli);
    return rc >= 0 ? rc : cli_run(&cli.rt, serve, &cli);
}
