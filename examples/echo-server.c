/*
 * echo-server - TCP echo server: one task per connection, written as plain sequential C.
 *
 *   build/examples/echo-server [-p PORT] [-w WORKERS] [-b BACKEND] [-h]
 *
 *   -p PORT     port on 127.0.0.1 (default 7000; 0 picks a free one and prints it)
 *   -w WORKERS  worker threads of the runtime (default: EDO_WORKERS, else one per CPU;
 *               1: the current-thread flavour)
 *   -b BACKEND  epoll, uring (io_uring) or auto: io_uring where this build and the
 *               kernel have it, else epoll (default: EDO_BACKEND, else auto)
 *   -h          this help
 *
 * Every connection gets its own task: read what arrived, write all of it back, until the
 * peer closes or an error. The reads are edo_read_lent: the runtime lends a buffer only
 * once data is there, so a connection that waits holds no buffer (an idle one costs
 * about 4.3 KB: its task, its edo_io, its entry in the server's tracker and one stack
 * page). edo_tcp_serve does the rest: the accept loop, and a graceful stop on SIGINT or
 * SIGTERM (exit status 0): it stops accepting, gives the open connections 5 s to end (a
 * second signal: none), then aborts them, whose pending read or write fails with
 * -ECANCELED, and closes their sockets.
 *
 * Try it:  build/examples/echo-server -p 7000 &  build/examples/echo-client hi there
 *
 * This is also the server that bench/run-net.sh measures against raw epoll, Tokio and Go,
 * so the per-message path is exactly one edo_read_lent and one edo_write_all.
 */
#include <edo.h>

#include "cli.h"

/* One connection, until the peer closes or an error; edo_tcp_serve closes conn. */
static void echo_conn(edo_io *conn, void *arg)
{
    edo_buf b;

    while (edo_read_lent(conn, &b) > 0) {
        int rc = edo_write_all(conn, b.data, b.len, NULL);
        edo_buf_release(&b);
        if (rc < 0)
            break;
    }
}

static void *serve(void *arg)
{
    struct cli_server *cli = arg;
    edo_serve_opts o = { .name = cli_prog, .on_listen = cli_listening };
    return edo_int_result(edo_tcp_serve(cli->addr, echo_conn, NULL, &o));
}

int main(int argc, char **argv)
{
    struct cli_server cli;
    int rc = cli_server_args(argc, argv, "echo-server", 7000, "Echoes every byte back.", &cli);
    return rc >= 0 ? rc : cli_run(&cli.rt, serve, &cli);
}
