/*
 * stream.c - connecting to a program's console endpoint and reading its lines (stream.h).
 * Everything here is plain POSIX sockets: the console does not link the runtime it
 * watches, so that it can attach to a program of any edo version that speaks protocol 1.
 */
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CONNECT_TIMEOUT_MS 5000

int64_t cs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* Splits a TCP address into host and port; false if addr is not one (then it is a path).
 * "HOST:PORT", "[V6]:PORT", ":PORT" and "PORT" (the last two on 127.0.0.1, as the
 * endpoint reads them). */
static bool tcp_parts(const char *addr, char *host, size_t hostlen, const char **port)
{
    if (strchr(addr, '/'))
        return false;
    if (all_digits(addr)) {
        snprintf(host, hostlen, "127.0.0.1");
        *port = addr;
        return true;
    }
    const char *colon = strrchr(addr, ':');
    if (!colon || !all_digits(colon + 1))
        return false;
    size_t n = (size_t)(colon - addr);
    const char *h = addr;
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    } else if (memchr(addr, ':', n)) {
        return false; /* a bare IPv6 address needs its brackets */
    }
    if (n == 0) {
        snprintf(host, hostlen, "127.0.0.1");
    } else {
        if (n >= hostlen)
            return false;
        memcpy(host, h, n);
        host[n] = '\0';
    }
    *port = colon + 1;
    return true;
}

/* connect(2) with a bound on how long it may take, so a black-holed address cannot hang
 * the console. */
static int connect_within(int fd, const struct sockaddr *sa, socklen_t salen)
{
    if (connect(fd, sa, salen) == 0)
        return 0;
    if (errno != EINPROGRESS)
        return -errno;
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    int n;
    do
        n = poll(&p, 1, CONNECT_TIMEOUT_MS);
    while (n < 0 && errno == EINTR);
    if (n == 0)
        return -ETIMEDOUT;
    if (n < 0)
        return -errno;
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
        return -errno;
    return soerr ? -soerr : 0;
}

int cs_connect(const char *addr, int *fdp, char *err, size_t errlen)
{
    char host[256];
    const char *port;
    int rc;

    *fdp = -1;
    if (!addr || !*addr) {
        snprintf(err, errlen, "no address (give one, or set EDO_CONSOLE)");
        return -EINVAL;
    }
    if (!tcp_parts(addr, host, sizeof host, &port)) {
        struct sockaddr_un sun = { .sun_family = AF_UNIX };
        if (strlen(addr) >= sizeof sun.sun_path) {
            snprintf(err, errlen, "%s: the path is too long for a Unix socket", addr);
            return -ENAMETOOLONG;
        }
        strcpy(sun.sun_path, addr);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            rc = -errno;
            snprintf(err, errlen, "socket: %s", strerror(-rc));
            return rc;
        }
        rc = connect_within(fd, (struct sockaddr *)&sun, sizeof sun);
        if (rc < 0) {
            close(fd);
            snprintf(err, errlen, "cannot connect to %s: %s", addr, strerror(-rc));
            return rc;
        }
        *fdp = fd;
        return 0;
    }

    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "%s: %s", addr, gai_strerror(gai));
        return -EHOSTUNREACH;
    }
    rc = -ECONNREFUSED;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        rc = connect_within(fd, ai->ai_addr, ai->ai_addrlen);
        if (rc == 0) {
            *fdp = fd;
            break;
        }
        close(fd);
    }
    freeaddrinfo(res);
    if (rc < 0)
        snprintf(err, errlen, "cannot connect to %s: %s", addr, strerror(-rc));
    return rc;
}

void cs_lines_init(cs_lines *l, int fd, size_t max_line)
{
    memset(l, 0, sizeof *l);
    l->fd = fd;
    l->max_line = max_line;
}

void cs_lines_free(cs_lines *l)
{
    free(l->buf);
    l->buf = NULL;
    l->start = l->len = l->cap = l->scanned = 0;
}

/* Makes room for at least `want` more bytes after len, moving the unread data to the
 * front first. Returns 0 or -ENOMEM. */
static int make_room(cs_lines *l, size_t want)
{
    if (l->start > 0 && (l->start == l->len || l->cap - l->len < want)) {
        memmove(l->buf, l->buf + l->start, l->len - l->start);
        l->base += l->start;
        l->len -= l->start;
        l->start = 0;
    }
    if (l->cap - l->len >= want)
        return 0;
    size_t cap = l->cap ? l->cap : 65536;
    while (cap - l->len < want)
        cap *= 2;
    char *b = realloc(l->buf, cap + 1); /* + 1: the NUL that ends a line handed out */
    if (!b)
        return -ENOMEM;
    l->buf = b;
    l->cap = cap;
    return 0;
}

long cs_lines_fill(cs_lines *l)
{
    /* Read in large pieces, but never let one line grow the buffer past its limit: an
     * over-long line is dropped as it goes (cs_lines_next), so the buffer is bounded. */
    if (make_room(l, 65536) < 0)
        return -ENOMEM;
    ssize_t n;
    do
        n = read(l->fd, l->buf + l->len, l->cap - l->len);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    l->len += (size_t)n;
    return n;
}

int cs_lines_next(cs_lines *l, char **line, size_t *len)
{
    for (;;) {
        char *from = l->buf + l->start + l->scanned;
        size_t avail = l->len - l->start - l->scanned;
        char *nl = avail ? memchr(from, '\n', avail) : NULL;
        if (!nl) {
            l->scanned += avail;
            if (l->scanned > l->max_line) {
                /* Too long: forget what we have of it, and the rest up to its newline. */
                if (!l->skipping)
                    l->too_long++;
                l->skipping = true;
                l->start = l->len;
                l->scanned = 0;
            }
            return 0;
        }
        size_t n = (size_t)(nl - (l->buf + l->start));
        char *s = l->buf + l->start;
        l->start += n + 1;
        l->scanned = 0;
        if (l->skipping || n > l->max_line) {
            if (!l->skipping)
                l->too_long++;
            l->skipping = false;
            continue;
        }
        s[n] = '\0';
        l->line_off = l->base + (uint64_t)(s - l->buf);
        *line = s;
        *len = n;
        return 1;
    }
}

int cs_lines_rest(cs_lines *l, char **line, size_t *len)
{
    size_t n = l->len - l->start;
    if (n == 0 || l->skipping)
        return 0;
    char *s = l->buf + l->start;
    s[n] = '\0'; /* make_room kept a byte for it */
    l->line_off = l->base + (uint64_t)(s - l->buf);
    l->start = l->len;
    l->scanned = 0;
    *line = s;
    *len = n;
    return 1;
}

int cs_send(int fd, const char *cmd)
{
    char buf[300];
    int n = snprintf(buf, sizeof buf, "%s\n", cmd);
    if (n < 0 || (size_t)n >= sizeof buf)
        return -EINVAL;
    /* A command is a few bytes on a socket that is otherwise only read: it goes out whole
     * at once unless the program stopped reading. Half a command would be taken for a bad
     * one and close us, so a partial write waits a little for the rest. */
    size_t off = 0;
    while (off < (size_t)n) {
        ssize_t w = send(fd, buf + off, (size_t)n - off, MSG_NOSIGNAL);
        if (w >= 0) {
            off += (size_t)w;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EWOULDBLOCK)
            return -errno;
        if (off == 0)
            return -EAGAIN;
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        if (poll(&p, 1, 1000) <= 0)
            return -ETIMEDOUT;
    }
    return 0;
}
