/*
 * The observer thread: one per runtime that asked for an endpoint, serving the console
 * (docs/console.md) and the metrics endpoint (Prometheus's text over HTTP) with poll(2)
 * on non-blocking sockets. It is a plain thread, not a task, so that it answers while
 * every worker is stuck; it reads the runtime only through the snapshot functions of
 * edo/observe.h. Everything in an edo__observer belongs to that thread once it runs;
 * before (edo__observe_open) and after it (observe_stop, after the join) to the thread
 * that makes or frees the runtime. The addresses are written before the thread starts
 * and read-only after, for edo_console_address and edo_metrics_address.
 *
 * What a peer sends is never trusted: a console client that sends anything but the
 * protocol's commands, or does not read what it is sent, is closed, alone; an HTTP request
 * gets 8 KiB and 5 s to arrive. Memory stays bounded: 16 console clients, each with at most
 * OUT_LIMIT queued plus one snapshot (snapshots are shared, not copied, between clients),
 * and 16 scrapers.
 */
#include "core/runtime.h"
#include "observe/observe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 16
#define MAX_SCRAPERS 16
#define LINE_MAX_BYTES 256          /* a command, its newline included */
#define OUT_LIMIT ((size_t)4 << 20) /* queued for a client, besides the snapshot in hand */
#define ITEM_COST 64                /* what a queued line costs besides its bytes */
#define READS_PER_TURN 16           /* reads of one client per turn of the loop */
#define HEAD_MAX 8192               /* an HTTP request's head */
#define HEAD_MS 5000                /* for the head to arrive */
#define SEND_MS 10000               /* for the response to be taken and the scraper to close */
#define INTERVAL_MS 1000            /* between snapshots, until a client asks otherwise */
#define INTERVAL_MIN 100
#define INTERVAL_MAX 60000
#define SHARE_MS 20         /* clients due this close together share a snapshot */
#define ACCEPT_PAUSE_MS 100 /* after accept failed for want of descriptors */

/* ---- shared pieces of output ---------------------------------------------------------------- */

/* A line (or a response) queued for one or more peers; freed by its last one. */
typedef struct blob {
    size_t refs;
    size_t len;
    char *data;
} blob;

/* Takes t's text (t is left empty); NULL when out of memory. */
static blob *blob_take(edo__text *t)
{
    blob *b = malloc(sizeof *b);
    if (!b || t->failed) {
        free(b);
        edo__text_free(t);
        return NULL;
    }
    b->refs = 1;
    b->len = t->len;
    b->data = t->buf;
    t->buf = NULL;
    t->len = t->cap = 0;
    return b;
}

static blob *blob_of(const char *s, size_t n)
{
    edo__text t = { 0 };
    edo__text_put(&t, s, n);
    return blob_take(&t);
}

static void blob_unref(blob *b)
{
    if (b && --b->refs == 0) {
        free(b->data);
        free(b);
    }
}

typedef struct out_item {
    struct out_item *next;
    blob *b;
    size_t off; /* bytes of it already sent */
} out_item;

/* ---- peers ------------------------------------------------------------------------------- */

typedef struct client {
    int fd;
    bool eof; /* it will send nothing more; it may still read */
    char line[LINE_MAX_BYTES];
    size_t linelen;
    out_item *head, **tail;
    size_t pending; /* bytes queued and not sent, plus ITEM_COST a line */
    int interval_ms;
    int64_t due; /* when its next snapshot is, on the monotonic clock */
    uint64_t seq;
} client;

typedef struct scraper {
    int fd;
    char head[HEAD_MAX];
    size_t len;
    int64_t deadline;
    blob *resp; /* the response, once the request is in */
    size_t off;
    bool sent; /* all of it sent and the sending side shut: waiting for the scraper to close */
} scraper;

struct edo__observer {
    edo_runtime *rt;
    pthread_t thread;
    int wake;     /* eventfd: time to stop */
    int con, met; /* the listeners; -1: none */
    bool con_unix;
    dev_t con_dev; /* the socket file made, to remove only that one at the end */
    ino_t con_ino;
    char con_addr[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char met_addr[64];
    int64_t con_pause, met_pause; /* accept paused until then (out of descriptors) */
    client *clients[MAX_CLIENTS];
    int nclients;
    scraper *scrapers[MAX_SCRAPERS];
    int nscrapers;
    edo__history *hist;
};

/* ---- console clients --------------------------------------------------------------------- */

static void client_free(client *c)
{
    while (c->head) {
        out_item *it = c->head;
        c->head = it->next;
        blob_unref(it->b);
        free(it);
    }
    close(c->fd);
    free(c);
}

/* Queues n blobs (one line) for c. False if it does not fit: the client has let its
 * buffer fill and is to be closed (never a part of a line: the stream stays parseable up
 * to where it ends). */
static bool client_queue(client *c, blob **bs, int n)
{
    if (c->pending >= OUT_LIMIT)
        return false;
    out_item *items[2];
    for (int i = 0; i < n; i++) {
        if (!bs[i] || !(items[i] = malloc(sizeof **items))) {
            while (i-- > 0)
                free(items[i]);
            return false;
        }
    }
    for (int i = 0; i < n; i++) {
        items[i]->b = bs[i];
        items[i]->off = 0;
        items[i]->next = NULL;
        bs[i]->refs++;
        *c->tail = items[i];
        c->tail = &items[i]->next;
        c->pending += bs[i]->len + ITEM_COST;
    }
    return true;
}

/* Sends what it can without waiting. Returns 0, or -1 when the client is gone. */
static int client_flush(client *c)
{
    while (c->head) {
        struct iovec iov[16];
        int n = 0;
        for (out_item *it = c->head; it && n < 16; it = it->next)
            iov[n++] = (struct iovec){ it->b->data + it->off, it->b->len - it->off };
        struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)n };
        ssize_t w = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        }
        c->pending -= (size_t)w;
        while (w > 0) {
            out_item *it = c->head;
            size_t left = it->b->len - it->off;
            if ((size_t)w < left) {
                it->off += (size_t)w;
                break;
            }
            w -= (ssize_t)left;
            c->head = it->next;
            if (!c->head)
                c->tail = &c->head;
            c->pending -= ITEM_COST;
            blob_unref(it->b);
            free(it);
        }
    }
    return 0;
}

/* Queues one line t for c and sends what it can. Returns 0, or -1 to close the client. */
static int client_send(client *c, edo__text *t)
{
    blob *b = blob_take(t);
    bool ok = b && client_queue(c, &b, 1);
    blob_unref(b);
    return ok ? client_flush(c) : -1;
}

/* A decimal number of 1 to 20 digits that fits in 64 bits, and nothing else. */
static bool parse_u64(const char *s, uint64_t *v)
{
    uint64_t n = 0;
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (n > (UINT64_MAX - d) / 10)
            return false;
        n = n * 10 + d;
    }
    *v = n;
    return true;
}

/* One command line (without its newline). Returns 0, or -1 to close the client. */
static int command(edo__observer *o, client *c, int64_t now)
{
    char *s = c->line;
    size_t n = c->linelen;
    if (n && s[n - 1] == '\r')
        n--;
    s[n] = 0; /* the line has room: it holds at most LINE_MAX_BYTES - 1 */
    uint64_t v;
    edo__text t = { 0 };
    if (strcmp(s, "ping") == 0) {
        edo__text_puts(&t, "{\"type\":\"pong\"}\n");
        return client_send(c, &t);
    }
    if (strncmp(s, "backtrace ", 10) == 0 && parse_u64(s + 10, &v) && v > 0) {
        edo__json_backtrace(&t, o->rt, v);
        return client_send(c, &t);
    }
    if (strncmp(s, "interval ", 9) == 0 && parse_u64(s + 9, &v) && v >= INTERVAL_MIN &&
        v <= INTERVAL_MAX) {
        c->interval_ms = (int)v;
        c->due = now + (int64_t)v;
        return 0;
    }
    return -1;
}

/* Reads what the client sent. Returns 0, or -1 to close it. */
static int client_read(edo__observer *o, client *c, int64_t now)
{
    char buf[512];
    for (int turn = 0; turn < READS_PER_TURN && !c->eof; turn++) {
        ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0) {
            c->eof = true; /* a client may shut its side and go on reading */
            if (c->linelen)
                return -1; /* a command cut off */
            break;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        }
        for (ssize_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)buf[i];
            if (ch == '\n') {
                if (command(o, c, now) < 0)
                    return -1;
                c->linelen = 0;
                continue;
            }
            /* Commands are printable ASCII (a \r before the newline is forgiven). */
            if ((ch < 0x20 && ch != '\r') || ch >= 0x7f || c->linelen >= LINE_MAX_BYTES - 1)
                return -1;
            c->line[c->linelen++] = (char)ch;
        }
    }
    return 0;
}

static void client_accept(edo__observer *o, int64_t now)
{
    for (;;) {
        int fd = accept4(o->con, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                o->con_pause = now + ACCEPT_PAUSE_MS; /* EMFILE and the like: not a spin */
            return;
        }
        client *c = o->nclients < MAX_CLIENTS ? calloc(1, sizeof *c) : NULL;
        if (!c) {
            /* One too many: accepted and closed at once. Back to poll after each, so that
             * a client that left meanwhile is seen gone before the next is refused. */
            close(fd);
            return;
        }
        c->fd = fd;
        c->tail = &c->head;
        c->interval_ms = INTERVAL_MS;
        c->due = now; /* the first snapshot goes right after hello */
        edo__text t = { 0 };
        edo__json_hello(&t, o->rt, c->interval_ms);
        if (client_send(c, &t) < 0) {
            client_free(c);
            continue;
        }
        o->clients[o->nclients++] = c;
    }
}

/* Sends a snapshot to every client that is due, one snapshot shared by them all. */
static void snapshots(edo__observer *o, int64_t now)
{
    bool due = false;
    for (int i = 0; i < o->nclients; i++)
        due |= o->clients[i] && o->clients[i]->due <= now + SHARE_MS;
    if (!due)
        return;
    edo__text t = { 0 };
    edo__json_snapshot(&t, o->rt, o->hist);
    blob *body = blob_take(&t);
    for (int i = 0; i < o->nclients; i++) {
        client *c = o->clients[i];
        if (!c || c->due > now + SHARE_MS)
            continue;
        c->due += c->interval_ms;
        if (c->due <= now)
            c->due = now + c->interval_ms;
        if (!body)
            continue; /* out of memory: skip this one */
        char pre[64];
        int n = snprintf(pre, sizeof pre, "{\"type\":\"snapshot\",\"seq\":%" PRIu64 ",", c->seq++);
        blob *parts[2] = { blob_of(pre, (size_t)n), body };
        bool ok = parts[0] && client_queue(c, parts, 2);
        blob_unref(parts[0]);
        if (!ok || client_flush(c) < 0) {
            client_free(c);
            o->clients[i] = NULL;
        }
    }
    blob_unref(body);
}

/* ---- the metrics endpoint ----------------------------------------------------------------- */

static void scraper_free(scraper *s)
{
    blob_unref(s->resp);
    close(s->fd);
    free(s);
}

static bool tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* The response to the request head h (len bytes, its end included), or with status
 * `forced` when that is not 0 (no head in time, too long a head). */
static void respond(edo__observer *o, scraper *s, const char *h, size_t len, int forced,
                    int64_t now)
{
    int status = forced ? forced : 200;
    bool head = false;
    size_t i = 0, m = 0, path = 0, plen = 0;
    for (size_t k = 0; k < len; k++) {
        unsigned char ch = (unsigned char)h[k];
        if ((ch < 0x20 && ch != '\r' && ch != '\n' && ch != '\t') || ch == 0x7f)
            status = 400;
    }
    /* request-line = method SP request-target SP HTTP-version */
    while (i < len && tchar((unsigned char)h[i]))
        i++;
    m = i;
    if (status == 200 && (m == 0 || i >= len || h[i] != ' '))
        status = 400;
    path = ++i;
    while (i < len && (unsigned char)h[i] > ' ' && h[i] != 0x7f)
        i++;
    plen = i - path;
    if (status == 200 &&
        (plen == 0 || len - i < 10 || h[i] != ' ' || memcmp(h + i + 1, "HTTP/1.", 7) != 0 ||
         h[i + 8] < '0' || h[i + 8] > '9' ||
         (h[i + 9] != '\n' && (h[i + 9] != '\r' || h[i + 10] != '\n'))))
        status = 400;
    if (status == 200) {
        head = m == 4 && memcmp(h, "HEAD", 4) == 0;
        if (!head && !(m == 3 && memcmp(h, "GET", 3) == 0))
            status = 405;
    }
    if (status == 200) {
        size_t q = 0;
        while (q < plen && h[path + q] != '?')
            q++;
        if (q != 8 || memcmp(h + path, "/metrics", 8) != 0)
            status = 404;
    }
    edo__text body = { 0 };
    if (status == 200) {
        edo__metrics_text(&body, o->rt);
        if (body.failed) {
            edo__text_free(&body);
            status = 500;
        }
    }
    const char *reason = status == 200   ? "OK"
                         : status == 400 ? "Bad Request"
                         : status == 404 ? "Not Found"
                         : status == 405 ? "Method Not Allowed"
                         : status == 408 ? "Request Timeout"
                         : status == 431 ? "Request Header Fields Too Large"
                                         : "Internal Server Error";
    if (status != 200)
        edo__text_printf(&body, "%d %s%s\n", status, reason,
                         status == 404 ? ": the metrics are at /metrics" : "");
    edo__text r = { 0 };
    edo__text_printf(&r,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                     "Connection: close\r\n\r\n",
                     status, reason,
                     status == 200 ? "text/plain; version=0.0.4; charset=utf-8"
                                   : "text/plain; charset=utf-8",
                     body.len, status == 405 ? "Allow: GET, HEAD\r\n" : "");
    if (!head && body.len)
        edo__text_put(&r, body.buf, body.len);
    edo__text_free(&body);
    s->resp = blob_take(&r);
    s->off = 0;
    s->deadline = now + SEND_MS;
}

/* Where the head ends (just after its empty line), 0 if not yet. */
static size_t head_end(const char *h, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (h[i] != '\n')
            continue;
        if (h[i + 1] == '\n')
            return i + 2;
        if (h[i + 1] == '\r' && i + 2 < len && h[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

static int scraper_write(scraper *s, int64_t now);

/* Reads the request, or (once answered) whatever comes until the scraper closes. Returns
 * 0, or -1 to close it. */
static int scraper_read(edo__observer *o, scraper *s, int64_t now)
{
    if (s->resp && !s->sent)
        return 0;
    char junk[512];
    char *at = s->sent ? junk : s->head + s->len;
    size_t room = s->sent ? sizeof junk : HEAD_MAX - s->len;
    ssize_t n = recv(s->fd, at, room, MSG_DONTWAIT);
    if (n == 0)
        return -1;
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    if (s->sent)
        return 0;
    s->len += (size_t)n;
    size_t end = head_end(s->head, s->len);
    if (end)
        respond(o, s, s->head, end, 0, now);
    else if (s->len == HEAD_MAX)
        respond(o, s, NULL, 0, 431, now);
    else
        return 0;
    return scraper_write(s, now);
}

/* Sends the response. Returns 0, or -1 to close the scraper. */
static int scraper_write(scraper *s, int64_t now)
{
    if (!s->resp)
        return -1; /* out of memory for it */
    while (s->off < s->resp->len) {
        ssize_t w =
            send(s->fd, s->resp->data + s->off, s->resp->len - s->off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        }
        s->off += (size_t)w;
    }
    /* All sent: shut our side and let the scraper close first, so that what it sent and we
     * did not read cannot turn our close into a reset that loses the response. */
    shutdown(s->fd, SHUT_WR);
    s->sent = true;
    s->deadline = now + SEND_MS;
    return 0;
}

static void scraper_accept(edo__observer *o, int64_t now)
{
    for (;;) {
        int fd = accept4(o->met, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                o->met_pause = now + ACCEPT_PAUSE_MS;
            return;
        }
        scraper *s = o->nscrapers < MAX_SCRAPERS ? calloc(1, sizeof *s) : NULL;
        if (!s) {
            close(fd);
            return;
        }
        s->fd = fd;
        s->deadline = now + HEAD_MS;
        o->scrapers[o->nscrapers++] = s;
    }
}

/* ---- the thread --------------------------------------------------------------------------- */

static int64_t earlier(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* Drops the peers closed during a turn (their slots are NULL). */
static void compact(edo__observer *o)
{
    int n = 0;
    for (int i = 0; i < o->nclients; i++)
        if (o->clients[i])
            o->clients[n++] = o->clients[i];
    o->nclients = n;
    n = 0;
    for (int i = 0; i < o->nscrapers; i++)
        if (o->scrapers[i])
            o->scrapers[n++] = o->scrapers[i];
    o->nscrapers = n;
}

static void *observer_main(void *arg)
{
    edo__observer *o = arg;
    edo__thread_set_base_mask(&o->rt->base_sigmask);
    struct pollfd p[3 + MAX_CLIENTS + MAX_SCRAPERS];
    for (;;) {
        int64_t now = edo__real_ms();
        int64_t next = INT64_MAX;
        int n = 0;
        p[n++] = (struct pollfd){ .fd = o->wake, .events = POLLIN };
        p[n++] = (struct pollfd){ .fd = o->con >= 0 && now >= o->con_pause ? o->con : -1,
                                  .events = POLLIN };
        p[n++] = (struct pollfd){ .fd = o->met >= 0 && now >= o->met_pause ? o->met : -1,
                                  .events = POLLIN };
        if (o->con >= 0 && now < o->con_pause)
            next = earlier(next, o->con_pause);
        if (o->met >= 0 && now < o->met_pause)
            next = earlier(next, o->met_pause);
        for (int i = 0; i < o->nclients; i++) {
            client *c = o->clients[i];
            short ev = (short)((c->eof ? 0 : POLLIN) | (c->head ? POLLOUT : 0));
            p[n++] = (struct pollfd){ .fd = c->fd, .events = ev };
            next = earlier(next, c->due);
        }
        for (int i = 0; i < o->nscrapers; i++) {
            scraper *s = o->scrapers[i];
            short ev = s->resp && !s->sent ? POLLOUT : POLLIN;
            p[n++] = (struct pollfd){ .fd = s->fd, .events = ev };
            next = earlier(next, s->deadline);
        }
        int timeout = next == INT64_MAX ? -1 : next <= now ? 0 : (int)earlier(next - now, 60000);
        if (poll(p, (nfds_t)n, timeout) < 0 && errno != EINTR)
            continue;
        if (p[0].revents)
            break;
        now = edo__real_ms();
        int k = 3;
        int nclients = o->nclients, nscrapers = o->nscrapers;
        for (int i = 0; i < nclients; i++, k++) {
            client *c = o->clients[i];
            short re = p[k].revents;
            /* POLLHUP: both directions are shut, the client is gone (one that only shut
             * its sending side reads end of stream, without it, and goes on reading). */
            bool bad = (re & POLLIN && client_read(o, c, now) < 0) ||
                       (re & POLLOUT && client_flush(c) < 0) || re & (POLLERR | POLLNVAL) ||
                       (re & POLLHUP && (c->eof || !(re & POLLIN)));
            if (bad) {
                client_free(c);
                o->clients[i] = NULL;
            }
        }
        for (int i = 0; i < nscrapers; i++, k++) {
            scraper *s = o->scrapers[i];
            short re = p[k].revents;
            bool bad = (re & (POLLIN | POLLHUP) && scraper_read(o, s, now) < 0) ||
                       (re & POLLOUT && scraper_write(s, now) < 0) || re & (POLLERR | POLLNVAL);
            if (!bad && now >= s->deadline) {
                bad = s->resp != NULL; /* not taken, or not closed, in time */
                if (!bad) {
                    respond(o, s, NULL, 0, 408, now);
                    bad = scraper_write(s, now) < 0;
                }
            }
            if (bad) {
                scraper_free(s);
                o->scrapers[i] = NULL;
            }
        }
        compact(o);
        if (p[1].revents)
            client_accept(o, now);
        if (p[2].revents)
            scraper_accept(o, now);
        snapshots(o, now);
        compact(o);
    }
    return NULL;
}

/* ---- opening the endpoints ----------------------------------------------------------------- */

static bool all_digits(const char *s)
{
    return *s && strspn(s, "0123456789") == strlen(s);
}

/* Whether an address names TCP: "PORT", ":PORT", "[v6]:PORT", "HOST:PORT" without a
 * slash. Anything else is a Unix socket's path. */
static bool is_tcp(const char *a)
{
    if (all_digits(a) || a[0] == ':' || a[0] == '[')
        return true;
    const char *colon = strrchr(a, ':');
    return colon && !strchr(a, '/') && all_digits(colon + 1);
}

static void addr_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        snprintf(buf, len, "[%s]:%u", host, ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        snprintf(buf, len, "%s:%u", host, ntohs(a->sin_port));
    }
}

/* A TCP listener on addr; its address (with the port chosen for port 0) goes to out. A
 * bare PORT or :PORT is loopback: another interface only when it is written out. */
static int open_tcp(const char *addr, char *out, size_t outlen)
{
    char full[96];
    int n = all_digits(addr) ? snprintf(full, sizeof full, "127.0.0.1:%s", addr)
            : addr[0] == ':' ? snprintf(full, sizeof full, "127.0.0.1%s", addr)
                             : snprintf(full, sizeof full, "%s", addr);
    if (n < 0 || (size_t)n >= sizeof full)
        return -EINVAL;
    struct sockaddr_storage ss;
    socklen_t sl;
    int rc = edo_parse_addr(full, &ss, &sl);
    if (rc < 0)
        return rc;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 64) < 0)
        goto fail;
    sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        goto fail;
    addr_text(&ss, out, outlen);
    return fd;
fail:
    rc = -errno;
    close(fd);
    return rc;
}

/* The console's Unix socket at path, mode 0600 (docs/console.md, "Who may attach"). A
 * file already there is replaced only if it is a socket of ours that nobody listens on;
 * *why says what was wrong with it. */
static int open_unix(edo__observer *o, const char *path, const char **why)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sa.sun_path) {
        *why = "the path is too long for a Unix socket";
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, path);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            *why = "a file that is not a socket is there (left as it is)";
            return -EEXIST;
        }
        if (st.st_uid != geteuid()) {
            *why = "a socket of another user is there (left as it is)";
            return -EPERM;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (probe < 0)
            return -errno;
        int rc = connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0 ? 0 : -errno;
        close(probe);
        if (rc != -ECONNREFUSED) {
            *why = "a program is listening on it";
            return rc == 0 || rc == -EAGAIN ? -EADDRINUSE : rc;
        }
        if (unlink(path) < 0 && errno != ENOENT) /* a stale socket of a run that is gone */
            return -errno;
    } else if (errno != ENOENT) {
        return -errno;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* The mode comes from the umask at bind; the check after it is what counts. */
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 ? 0 : -errno;
    umask(old);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 07777) != 0600) {
        *why = "the socket made is not ours alone (mode 0600)";
        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_uid == geteuid())
            unlink(path);
        close(fd);
        return -EPERM;
    }
    if (listen(fd, 64) < 0) {
        rc = -errno;
        unlink(path);
        close(fd);
        return rc;
    }
    o->con_unix = true;
    o->con_dev = st.st_dev;
    o->con_ino = st.st_ino;
    snprintf(o->con_addr, sizeof o->con_addr, "%s", path);
    return fd;
}

static void observer_free(edo__observer *o)
{
    for (int i = 0; i < o->nclients; i++)
        if (o->clients[i])
            client_free(o->clients[i]);
    for (int i = 0; i < o->nscrapers; i++)
        if (o->scrapers[i])
            scraper_free(o->scrapers[i]);
    if (o->con >= 0) {
        struct stat st;
        /* Only the file this runtime made: another may have taken the path since. */
        if (o->con_unix && lstat(o->con_addr, &st) == 0 && st.st_dev == o->con_dev &&
            st.st_ino == o->con_ino)
            unlink(o->con_addr);
        close(o->con);
    }
    if (o->met >= 0)
        close(o->met);
    if (o->wake >= 0)
        close(o->wake);
    edo__history_free(o->hist);
    free(o);
}

/* "" and "off" ask for no endpoint. */
static const char *wanted(const char *opt, const char *env)
{
    const char *a = opt ? opt : getenv(env);
    return a && *a && strcmp(a, "off") != 0 ? a : NULL;
}

int edo__observe_open(edo__observer **out, const edo_runtime_opts *opts)
{
    *out = NULL;
    const char *con = wanted(opts ? opts->console : NULL, "EDO_CONSOLE");
    const char *met = wanted(opts ? opts->metrics : NULL, "EDO_METRICS");
    if (!con && !met)
        return 0;
    edo__observer *o = calloc(1, sizeof *o);
    if (!o)
        return -ENOMEM;
    o->con = o->met = o->wake = -1;
    const char *what = "console", *addr = con, *why = NULL;
    int rc = -ENOMEM;
    if (!(o->hist = edo__history_new()))
        goto fail;
    if (con) {
        rc = is_tcp(con) ? open_tcp(con, o->con_addr, sizeof o->con_addr) : open_unix(o, con, &why);
        if (rc < 0)
            goto fail;
        o->con = rc;
    }
    if (met) {
        what = "metrics";
        addr = met;
        if (!is_tcp(met)) {
            why = "not HOST:PORT";
            rc = -EINVAL;
            goto fail;
        }
        if ((rc = open_tcp(met, o->met_addr, sizeof o->met_addr)) < 0)
            goto fail;
        o->met = rc;
    }
    if ((o->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        rc = -errno;
        goto fail;
    }
    *out = o;
    return 0;
fail:
    fprintf(stderr, "edo: cannot open the %s endpoint at %s: %s\n", what, addr,
            why ? why : edo_strerror(rc));
    observer_free(o);
    return rc;
}

void edo__observe_close(edo__observer *o)
{
    if (o)
        observer_free(o);
}

static void observe_stop(edo_runtime *rt)
{
    edo__observer *o = rt->observe;
    uint64_t one = 1;
    while (write(o->wake, &one, sizeof one) < 0 && errno == EINTR) {
    }
    pthread_join(o->thread, NULL);
    rt->observe = NULL;
    rt->observe_stop = NULL;
    observer_free(o);
}

int edo__observe_start(edo__observer *o, edo_runtime *rt)
{
    o->rt = rt;
    int rc = -edo__thread_create(&o->thread, NULL, &rt->base_sigmask, observer_main, o);
    if (rc < 0) {
        fprintf(stderr, "edo: cannot start the thread of the %s endpoint: %s\n",
                o->con >= 0 ? "console" : "metrics", edo_strerror(rc));
        observer_free(o);
        return rc;
    }
    rt->observe = o;
    rt->observe_stop = observe_stop;
    if (edo__reports_on()) {
        if (o->con >= 0)
            fprintf(stderr, "edo: console on %s (attach: edo-console %s)\n", o->con_addr,
                    o->con_addr);
        if (o->met >= 0)
            fprintf(stderr, "edo: metrics on http://%s/metrics\n", o->met_addr);
    }
    return 0;
}

const char *edo_console_address(const edo_runtime *rt)
{
    const edo__observer *o = rt ? rt->observe : NULL;
    return o && o->con >= 0 ? o->con_addr : NULL;
}

const char *edo_metrics_address(const edo_runtime *rt)
{
    const edo__observer *o = rt ? rt->observe : NULL;
    return o && o->met >= 0 ? o->met_addr : NULL;
}
