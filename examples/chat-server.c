/*
 * chat-server - a chat room over TCP: every line a client sends goes to every other client.
 *
 *   build/examples/chat-server [-p PORT] [-w WORKERS] [-b BACKEND] [-h]
 *
 *   -p PORT     port on 127.0.0.1 (default 7070; 0 picks a free one and prints it)
 *   -w WORKERS  worker threads of the runtime (default: EDO_WORKERS, else one per CPU;
 *               1: the current-thread flavour)
 *   -b BACKEND  epoll, uring (io_uring) or auto: io_uring where this build and the
 *               kernel have it, else epoll (default: EDO_BACKEND, else auto)
 *   -h          this help
 *
 * Try it:  build/examples/chat-server -p 7070 &  nc 127.0.0.1 7070   (or telnet, or
 * build/examples/chat-client). The server asks for a name; after that every line is sent to
 * everyone else as "<name> line", and these commands work: /who (who is here), /nick NAME
 * (a new name), /quit. Joins, leaves and new names are announced to the room. Lines from
 * the server start with "***" and end with CR LF, as telnet wants them.
 *
 * How it is built
 *
 *  - One task per connection. It waits with edo_select for whichever comes first: bytes
 *    from its socket (a read case, followed by edo_try_read), a message of the room (a
 *    broadcast case), room in its socket for output it has queued (a write case, followed
 *    by edo_try_write), the end of a pause of its flood limit (a timer case), or the
 *    server stopping (a cancellation token's case). A case that does not apply this time
 *    round is edo_case_off().
 *  - The room is a broadcast channel (edo_bcast) that keeps the last ROOM_KEEP messages.
 *    A connection subscribes when its client has taken a name, and gets what is said
 *    from then on. Sending never waits, and every connection reads the ring at its own
 *    pace, so a client that does not read its messages cannot slow the others down.
 *  - A connection never waits to write: what it has for its client is queued, and sent as
 *    the socket takes it. While more than half of OUT_BUDGET is queued, the connection
 *    takes nothing more from the room, whose ring keeps the last ROOM_KEEP messages for
 *    it: a client that is slow for a moment catches up from there. One that falls more
 *    than ROOM_KEEP messages behind has lost some for good; it is told (if its socket
 *    still takes the notice) and disconnected. So each connection costs at most
 *    OUT_BUDGET bytes of queued output, however slow its client, the ring is shared, and a
 *    fixed SO_SNDBUF bounds what the kernel holds for it as well.
 *  - Names are owned by one registry task, which the connections ask over a channel. Each
 *    request carries a oneshot channel for its answer. Only that task ever touches the
 *    list of names, so it needs no lock.
 *  - Lines are at most LINE_LEN bytes, ended by LF or CR LF (a last line that ends with
 *    the stream counts too); a longer one disconnects that client, and only it. A client
 *    may send at most RATE_BURST lines at once and RATE_PER_SEC a second after that: the
 *    server reads a client that sends faster only as fast as that (TCP then slows the
 *    client down), so one client cannot flood the room. Text is passed through as UTF-8;
 *    every byte that is not part of valid UTF-8, and every control character but tab
 *    (NUL, ESC, a lone CR, C1 controls), is replaced by '?', so that nobody can send
 *    escape sequences to the others' terminals and every line reaches them as valid UTF-8
 *    of the same length.
 *  - The accept loop and the stop are edo_tcp_serve's. SIGINT or SIGTERM stops the server
 *    gracefully (exit status 0): it stops accepting and cancels its stop token (an
 *    edo_token) that every connection selects on; each says goodbye, sends what it has
 *    queued and closes (within GRACE_MS), and what is left after SHUTDOWN_MS, the server's
 *    grace period, is aborted.
 */
#include <edo.h>

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define NAME_LEN 16                       /* longest name */
#define LINE_LEN 512                      /* longest line a client may send, without its end */
#define MSG_LEN (NAME_LEN + LINE_LEN + 8) /* "<name> line\r\n" and every notice fit */
#define ROOM_KEEP 1024                    /* messages the room keeps for slow readers */
#define OUT_BUDGET (64 * 1024)            /* most output queued for one client */
#define SOCK_SNDBUF (32 * 1024)           /* SO_SNDBUF of a connection (the kernel doubles it) */
#define OUT_KEEP 4096                     /* an emptied queue larger than this is freed */
#define OUT_RESUME (OUT_BUDGET / 2)       /* takes from the room while at most this is queued */
#define LAG_CHECK_MS 100                  /* a connection held back looks at its lag so often */
#define RATE_PER_SEC 50                   /* lines a client may send per second ... */
#define RATE_BURST 100                    /* ... after a burst of this many */
#define GRACE_MS 2000                     /* to send the last output and close */
#define SHUTDOWN_MS (GRACE_MS + 1000)     /* for every connection to close at a stop */
#define WHO_LEN 4096                      /* longest answer to /who */
/* Room messages are queued up to here, which leaves room for the client's own answers. */
#define OUT_ROOM_MAX (OUT_BUDGET - WHO_LEN - MSG_LEN)
#define COMMANDS "Commands: /who, /nick NAME, /quit"

/* A message of the room: a line, ready to be written to a client. */
struct chat_msg {
    uint64_t from; /* the id of the connection that sent it, which skips it */
    uint32_t len;
    char text[MSG_LEN];
};

struct server {
    struct cli_server cli;    /* the address and the runtime's options */
    edo_bcast *room;          /* struct chat_msg */
    edo_token *stop;          /* edo_tcp_serve's: cancelled when the server stops */
    edo_chan *registry;       /* struct reg_req, to the registry task */
    _Atomic uint64_t last_id; /* the last connection's id */
};

/* ---------------------------------------------------------------------------------------- */
/* The registry: one task owns the names; connections ask it over a channel                 */

enum reg_op { REG_JOIN, REG_NICK, REG_WHO, REG_LEAVE };

/* Where an answer goes: a oneshot channel shared by the connection that asks and the
 * registry that answers. Either may be gone first (a connection is aborted while it
 * waits for the answer when the server stops), so each holds a reference and the last
 * one to let go frees it, together with an answer nobody took. */
struct reply_box {
    atomic_int refs;
    edo_chan *ch; /* a oneshot of struct reg_reply */
};

struct reg_req {
    enum reg_op op;
    char name[NAME_LEN + 1]; /* JOIN, LEAVE: the name; NICK: the new one */
    char old[NAME_LEN + 1];  /* NICK: the name it replaces */
    struct reply_box *box;   /* NULL for LEAVE, which needs no answer */
};

struct reg_reply {
    int rc;     /* 0, -EEXIST (the name is taken) or -ENOMEM */
    size_t n;   /* JOIN: how many names there are now */
    char *text; /* WHO: the answer's line (malloc'd; the receiver frees it) */
};

static void box_release(struct reply_box *box)
{
    if (atomic_fetch_sub_explicit(&box->refs, 1, memory_order_acq_rel) != 1)
        return;
    struct reg_reply rep;
    if (edo_chan_try_recv(box->ch, &rep) == 0)
        free(rep.text);
    edo_chan_free(box->ch);
    free(box);
}

/* Sends req to the registry and waits for its answer. Returns the answer's rc, or -errno
 * if there was none (-ECANCELED: the server is stopping). */
static int registry_call(struct server *srv, struct reg_req *req, struct reg_reply *rep)
{
    struct reply_box *box = malloc(sizeof *box);
    if (!box)
        return -ENOMEM;
    int rc = edo_oneshot_new(&box->ch, sizeof *rep);
    if (rc < 0) {
        free(box);
        return rc;
    }
    atomic_init(&box->refs, 2);
    req->box = box;
    rc = edo_chan_send(srv->registry, req); /* unbounded: never waits */
    if (rc < 0)
        box_release(box); /* the registry never got its reference */
    else
        rc = edo_chan_recv(box->ch, rep);
    box_release(box);
    return rc < 0 ? rc : rep->rc;
}

/* The names, sorted (ignoring ASCII case, so that "Bob" and "bob" are the same name) for
 * a binary search and an ordered /who. */
struct names {
    char (*v)[NAME_LEN + 1];
    size_t n, cap;
};

static int name_cmp(const char *a, const char *b)
{
    for (;; a++, b++) {
        int x = *a >= 'A' && *a <= 'Z' ? *a + 32 : *a;
        int y = *b >= 'A' && *b <= 'Z' ? *b + 32 : *b;
        if (x != y || !x)
            return x - y;
    }
}

/* Where name is or would go; *found says which. */
static size_t names_find(const struct names *t, const char *name, bool *found)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (name_cmp(t->v[mid], name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < t->n && name_cmp(t->v[lo], name) == 0;
    return lo;
}

static int names_add(struct names *t, const char *name)
{
    bool found;
    size_t i = names_find(t, name, &found);
    if (found)
        return -EEXIST;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        void *v = realloc(t->v, cap * sizeof *t->v);
        if (!v)
            return -ENOMEM;
        t->v = v;
        t->cap = cap;
    }
    memmove(t->v + i + 1, t->v + i, (t->n - i) * sizeof *t->v);
    snprintf(t->v[i], sizeof t->v[i], "%s", name);
    t->n++;
    return 0;
}

static void names_remove(struct names *t, const char *name)
{
    bool found;
    size_t i = names_find(t, name, &found);
    if (!found)
        return;
    memmove(t->v + i, t->v + i + 1, (t->n - i - 1) * sizeof *t->v);
    t->n--;
}

/* The answer to /who: "*** 3 users online: ann, bob, cy", cut short to fit WHO_LEN. */
static char *names_list(const struct names *t)
{
    char *s = malloc(WHO_LEN);
    if (!s)
        return NULL;
    size_t len = (size_t)snprintf(s, WHO_LEN, "*** %zu user%s online:", t->n, t->n == 1 ? "" : "s");
    for (size_t i = 0; i < t->n; i++) {
        /* Leave room for the longest tail: ", and 18446744073709551615 more\r\n". */
        if (len + NAME_LEN + 2 + 40 > WHO_LEN) {
            len += (size_t)snprintf(s + len, WHO_LEN - len, " and %zu more", t->n - i);
            break;
        }
        len += (size_t)snprintf(s + len, WHO_LEN - len, "%s%s", i ? ", " : " ", t->v[i]);
    }
    snprintf(s + len, WHO_LEN - len, "\r\n");
    return s;
}

/* The registry task: answers requests until the runtime's shutdown aborts its wait. */
static void *registry_task(void *arg)
{
    struct server *srv = arg;
    struct names names = { 0 };
    struct reg_req req;
    bool found;

    while (edo_chan_recv(srv->registry, &req) == 0) {
        struct reg_reply rep = { 0 };
        switch (req.op) {
        case REG_JOIN:
            rep.rc = names_add(&names, req.name);
            rep.n = names.n;
            break;
        case REG_NICK: {
            /* Taken, unless by the asker itself: "bob" may become "Bob". */
            size_t mine = names_find(&names, req.old, &found);
            size_t other = names_find(&names, req.name, &found);
            if (found && other != mine) {
                rep.rc = -EEXIST;
                break;
            }
            names_remove(&names, req.old);
            rep.rc = names_add(&names, req.name); /* cannot fail: one was just removed */
            break;
        }
        case REG_WHO:
            rep.text = names_list(&names);
            rep.rc = rep.text ? 0 : -ENOMEM;
            break;
        case REG_LEAVE:
            names_remove(&names, req.name);
            break;
        }
        if (req.box) {
            /* A oneshot's first send never waits, and never fails. */
            if (edo_chan_send(req.box->ch, &rep) < 0)
                free(rep.text);
            box_release(req.box);
        }
    }
    free(names.v);
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Text                                                                                     */

/* The length of the valid UTF-8 character at s (n > 0 bytes there) if it may be shown as
 * it is, else 0: control characters (C0 but tab, DEL, C1), stray continuation bytes,
 * overlong forms, surrogates and code points past U+10FFFF are not. */
static size_t printable_utf8(const unsigned char *s, size_t n)
{
    unsigned char b = s[0];
    if ((b >= 0x20 && b < 0x7f) || b == '\t')
        return 1;
    if (b < 0xc2 || b > 0xf4) /* controls, DEL, continuations, overlong 2-byte forms */
        return 0;
    size_t len = b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4;
    if (n < len)
        return 0;
    uint32_t cp = b & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((len == 2 && cp < 0xa0) ||                                      /* C1 controls */
        (len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || /* overlong, surrogate */
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

/* Replaces, in place, every byte that may not be shown with '?'. */
static void sanitize(char *line, size_t len)
{
    unsigned char *s = (unsigned char *)line;
    for (size_t i = 0; i < len;) {
        size_t k = printable_utf8(s + i, len - i);
        if (k) {
            i += k;
        } else {
            s[i++] = '?';
        }
    }
}

static bool valid_name(const char *s, size_t len)
{
    if (len == 0 || len > NAME_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_'))
            return false;
    }
    return true;
}

/* Spaces and tabs off both ends. */
static const char *trim(const char *s, size_t *len)
{
    while (*len && (*s == ' ' || *s == '\t')) {
        s++;
        (*len)--;
    }
    while (*len && (s[*len - 1] == ' ' || s[*len - 1] == '\t'))
        (*len)--;
    return s;
}

/* ---------------------------------------------------------------------------------------- */
/* A connection's queue of output                                                           */

struct outq {
    char *buf; /* malloc'd as it is needed, freed again when it is empty and large */
    size_t head, tail, cap;
    bool mid_line; /* the bytes written so far end inside a line */
};

static size_t out_len(const struct outq *q)
{
    return q->tail - q->head;
}

/* Queues len bytes; -ENOBUFS if that would make more than OUT_BUDGET. */
static int out_put(struct outq *q, const char *data, size_t len)
{
    size_t used = out_len(q);
    if (used + len > OUT_BUDGET)
        return -ENOBUFS;
    if (q->tail + len > q->cap) {
        if (used)
            memmove(q->buf, q->buf + q->head, used);
        q->head = 0;
        q->tail = used;
        if (used + len > q->cap) {
            size_t cap = q->cap ? q->cap : 1024;
            while (cap < used + len)
                cap *= 2;
            char *p = realloc(q->buf, cap);
            if (!p)
                return -ENOMEM;
            q->buf = p;
            q->cap = cap;
        }
    }
    memcpy(q->buf + q->tail, data, len);
    q->tail += len;
    return 0;
}

/* Writes what the socket takes now, without waiting. Returns 0 (output may be left: then
 * wait for the socket to be writable) or -errno: the connection is lost. */
static int out_flush(edo_io *io, struct outq *q)
{
    while (q->head < q->tail) {
        ssize_t n = edo_try_write(io, q->buf + q->head, out_len(q));
        if (n == -EAGAIN || n == 0)
            return 0;
        if (n < 0)
            return (int)n;
        q->head += (size_t)n;
        q->mid_line = q->buf[q->head - 1] != '\n';
    }
    q->head = q->tail = 0;
    if (q->cap > OUT_KEEP) {
        /* An idle connection should not hold on to the peak of a burst. */
        free(q->buf);
        q->buf = NULL;
        q->cap = 0;
    }
    return 0;
}

/* Drops the queued output but the rest of a line already partly written. */
static void out_drop(struct outq *q)
{
    size_t keep = 0;
    if (q->mid_line) {
        char *nl = memchr(q->buf + q->head, '\n', out_len(q));
        keep = nl ? (size_t)(nl - (q->buf + q->head)) + 1 : out_len(q);
    }
    q->tail = q->head + keep;
}

/* ---------------------------------------------------------------------------------------- */
/* A connection                                                                             */

/* Why a connection ends, once it does. */
enum why {
    STAYING,
    QUIT,     /* /quit or the end of its stream: goodbye, then close */
    BEHIND,   /* too far behind: told, then closed */
    TOO_LONG, /* a line over LINE_LEN: told, then closed */
    LOST,     /* reset, or a write failed: closed at once */
    STOPPING, /* the server is stopping: goodbye, then close */
    ABORTED,  /* aborted (the grace period of a stop is over): closed at once */
};

struct client {
    struct server *srv;
    edo_io *io;
    uint64_t id;             /* unique, never 0 */
    edo_bcast_rx *rx;        /* its place in the room, once it has a name */
    char name[NAME_LEN + 1]; /* "" until it has one */
    char in[LINE_LEN + 2];   /* received bytes not handled yet: at most a line and CR LF */
    size_t in_len;
    bool in_eof;          /* the client has sent all it will */
    int64_t tat;          /* flood limit: when the client's lines would be "paid off" */
    int64_t paused_until; /* flood limit: 0, or when the next line may be taken */
    int64_t lag_check_at; /* held back from the room: when to look at its lag next */
    struct outq out;
    enum why why;
};

/* Queues a line for this client only. */
static void say(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct client *c, const char *fmt, ...)
{
    char text[MSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (len < 0)
        return;
    if ((size_t)len >= sizeof text)
        len = sizeof text - 1;
    int rc = out_put(&c->out, text, (size_t)len);
    if (rc < 0 && c->why == STAYING)
        c->why = rc == -ENOBUFS ? BEHIND : LOST;
}

/* Sends a line to everyone else in the room. Never waits. */
static void announce(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void announce(struct client *c, const char *fmt, ...)
{
    struct chat_msg m = { .from = c->id };
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(m.text, sizeof m.text, fmt, ap);
    va_end(ap);
    if (len < 0)
        return;
    m.len = (size_t)len < sizeof m.text ? (uint32_t)len : sizeof m.text - 1;
    edo_bcast_send(c->srv->room, &m);
}

/* The client cannot keep up: what is queued for it is stale, so drop it and queue the
 * reason instead. Whether it arrives depends on the client reading again in time. */
static void fall_behind(struct client *c)
{
    static const char note[] = "*** You are too far behind; disconnecting\r\n";
    out_drop(&c->out);
    c->why = out_put(&c->out, note, sizeof note - 1) == 0 ? BEHIND : LOST;
}

static void pick_name(struct client *c, const char *line, size_t len)
{
    line = trim(line, &len);
    if (!valid_name(line, len)) {
        say(c, "*** A name is 1 to %d letters, digits, '-' or '_'. Your name?\r\n", NAME_LEN);
        return;
    }
    /* In the room first: whoever learns of the new name from the registry and says
     * something to it is heard. */
    int rc = edo_bcast_subscribe(&c->rx, c->srv->room);
    struct reg_req req = { .op = REG_JOIN };
    struct reg_reply rep = { 0 };
    memcpy(req.name, line, len);
    if (rc == 0)
        rc = registry_call(c->srv, &req, &rep);
    if (rc < 0) {
        edo_bcast_unsubscribe(c->rx);
        c->rx = NULL;
    }
    if (rc == -EEXIST) {
        say(c, "*** %s is taken. Your name?\r\n", req.name);
    } else if (rc == -ECANCELED) {
        c->why = ABORTED;
    } else if (rc < 0) {
        say(c, "*** Cannot take a name now (%s). Your name?\r\n", edo_strerror(rc));
    } else {
        memcpy(c->name, req.name, sizeof c->name);
        say(c, "*** You are %s; %zu user%s online. %s\r\n", c->name, rep.n, rep.n == 1 ? "" : "s",
            COMMANDS);
        announce(c, "*** %s has joined\r\n", c->name);
    }
}

static void new_name(struct client *c, const char *arg, size_t len)
{
    if (!valid_name(arg, len)) {
        say(c, "*** A name is 1 to %d letters, digits, '-' or '_'\r\n", NAME_LEN);
        return;
    }
    struct reg_req req = { .op = REG_NICK };
    struct reg_reply rep = { 0 };
    memcpy(req.name, arg, len);
    memcpy(req.old, c->name, sizeof req.old);
    int rc = registry_call(c->srv, &req, &rep);
    if (rc == -EEXIST) {
        say(c, "*** %s is taken\r\n", req.name);
    } else if (rc == -ECANCELED) {
        c->why = ABORTED;
    } else if (rc < 0) {
        say(c, "*** Cannot change names now (%s)\r\n", edo_strerror(rc));
    } else {
        memcpy(c->name, req.name, sizeof c->name);
        say(c, "*** You are now %s\r\n", c->name);
        announce(c, "*** %s is now known as %s\r\n", req.old, req.name);
    }
}

static void who(struct client *c)
{
    struct reg_req req = { .op = REG_WHO };
    struct reg_reply rep = { 0 };
    int rc = registry_call(c->srv, &req, &rep);
    if (rc == -ECANCELED) {
        c->why = ABORTED;
    } else if (rc < 0) {
        say(c, "*** Cannot list the users now (%s)\r\n", edo_strerror(rc));
    } else {
        rc = out_put(&c->out, rep.text, strlen(rep.text));
        if (rc < 0)
            c->why = rc == -ENOBUFS ? BEHIND : LOST;
        free(rep.text);
    }
}

static void command(struct client *c, const char *line, size_t len)
{
    size_t cmd_len = strcspn(line, " \t");
    if (cmd_len > len)
        cmd_len = len;
    size_t arg_len = len - cmd_len;
    const char *arg = trim(line + cmd_len, &arg_len);

    if (cmd_len == 4 && memcmp(line, "/who", 4) == 0 && arg_len == 0) {
        who(c);
    } else if (cmd_len == 5 && memcmp(line, "/nick", 5) == 0) {
        new_name(c, arg, arg_len);
    } else if (cmd_len == 5 && memcmp(line, "/quit", 5) == 0) {
        say(c, "*** Bye\r\n");
        if (c->why == STAYING)
            c->why = QUIT;
    } else {
        say(c, "*** Unknown command. %s\r\n", COMMANDS);
    }
}

/* One line from the client, its end taken off. */
static void handle_line(struct client *c, char *line, size_t len)
{
    sanitize(line, len);
    if (!c->name[0]) {
        pick_name(c, line, len);
    } else if (len > 0 && line[0] == '/') {
        command(c, line, len);
    } else if (len > 0) {
        announce(c, "<%s> %.*s\r\n", c->name, (int)len, line);
    }
}

/* The flood limit (a token bucket kept as one time, the "generic cell rate algorithm"):
 * each line moves `tat` on by one line's share of a second, and a line is taken only
 * while `tat` is at most a burst ahead of now. */
static bool flood_allows(struct client *c)
{
    const int64_t step = 1000 / RATE_PER_SEC;
    int64_t now = edo_now();
    int64_t t = c->tat > now ? c->tat : now;
    if (t - now > (RATE_BURST - 1) * step) {
        c->paused_until = t - (RATE_BURST - 1) * step;
        return false;
    }
    c->tat = t + step;
    return true;
}

/* Handles the complete lines received, as many as the flood limit allows now. */
static void take_lines(struct client *c)
{
    c->paused_until = 0;
    while (c->why == STAYING) {
        char *nl = memchr(c->in, '\n', c->in_len);
        size_t len, used;
        if (nl) {
            len = (size_t)(nl - c->in);
            used = len + 1;
        } else if (c->in_len == sizeof c->in) {
            len = used = c->in_len; /* no line end in a buffer full: too long */
        } else if (c->in_eof && c->in_len > 0) {
            len = used = c->in_len; /* the last line, without its end */
        } else {
            if (c->in_eof) {
                say(c, "*** Bye\r\n");
                if (c->why == STAYING)
                    c->why = QUIT;
            }
            return;
        }
        if (!flood_allows(c))
            return;
        if (len > 0 && c->in[len - 1] == '\r')
            len--;
        if (len > LINE_LEN) {
            say(c, "*** Line too long (the limit is %d bytes); disconnecting\r\n", LINE_LEN);
            if (c->why == STAYING)
                c->why = TOO_LONG;
            return;
        }
        handle_line(c, c->in, len);
        c->in_len -= used;
        memmove(c->in, c->in + used, c->in_len);
    }
}

static void on_readable(struct client *c)
{
    ssize_t n = edo_try_read(c->io, c->in + c->in_len, sizeof c->in - c->in_len);
    if (n == -EAGAIN)
        return; /* readable was true a moment ago; it will be again */
    if (n < 0) {
        c->why = LOST; /* a reset: whatever it sent last goes nowhere */
        return;
    }
    if (n == 0)
        c->in_eof = true;
    c->in_len += (size_t)n;
    take_lines(c);
}

/* A message of the room has arrived (rc is the broadcast case's result): queue it and the
 * ones after it, as long as the queue has room; the rest wait in the room. */
static void on_room(struct client *c, int rc, struct chat_msg *m)
{
    for (;;) {
        if (rc == -EOVERFLOW) {
            fall_behind(c); /* more than ROOM_KEEP messages behind */
            return;
        }
        if (rc < 0)
            return; /* -EAGAIN: all taken. (-EDO_ECLOSED, closed, cannot be: it never closes.) */
        if (m->from != c->id) { /* its own lines are not sent back */
            rc = out_put(&c->out, m->text, m->len);
            if (rc < 0) {
                c->why = LOST; /* out of memory (the queue's room was checked) */
                return;
            }
        }
        if (out_len(&c->out) > OUT_ROOM_MAX)
            return;
        rc = edo_bcast_try_recv(c->rx, m, NULL);
    }
}

/* Whether the connection takes from the room: not while its queue is more than half full.
 * Held back, it looks at how far behind it is every LAG_CHECK_MS. */
static bool room_open(struct client *c)
{
    if (!c->rx || out_len(&c->out) <= OUT_RESUME) {
        c->lag_check_at = 0;
        return c->rx != NULL;
    }
    if (!c->lag_check_at)
        c->lag_check_at = edo_now() + LAG_CHECK_MS;
    return false;
}

/* Held back from the room: more than ROOM_KEEP messages behind is too far (those are
 * gone for this client); until then it may yet catch up. */
static void check_lag(struct client *c)
{
    c->lag_check_at = 0;
    if (edo_bcast_lag(c->rx) > ROOM_KEEP)
        fall_behind(c);
}

/* The last output, then a gentle close: shutting down the sending side and reading until
 * the client closes too. Closing a socket that still has unread input makes the kernel
 * send a reset, which may make the client throw away the goodbye before reading it. All of
 * it within GRACE_MS: a deadline scope bounds every call inside. */
static void goodbye(struct client *c)
{
    int64_t scope = edo_timeout_begin(GRACE_MS);
    int rc = 0;
    if (out_len(&c->out))
        rc = edo_write_all(c->io, c->out.buf + c->out.head, out_len(&c->out), NULL);
    if (rc == 0 && edo_shutdown(c->io) == 0) {
        char sink[512];
        while (edo_read(c->io, sink, sizeof sink) > 0) {
        }
    }
    edo_deadline_end(scope);
}

static void leave(struct client *c)
{
    static const char *const why_text[] = {
        [QUIT] = "",
        [BEHIND] = " (too far behind)",
        [TOO_LONG] = " (line too long)",
        [LOST] = " (connection lost)",
    };
    if (c->name[0]) {
        /* Unbounded: the send never waits, so it gets through even from an aborted task. */
        struct reg_req req = { .op = REG_LEAVE };
        memcpy(req.name, c->name, sizeof req.name);
        edo_chan_send(c->srv->registry, &req);
        if (c->why != STOPPING && c->why != ABORTED) /* at a stop, everyone leaves */
            announce(c, "*** %s has left%s\r\n", c->name, why_text[c->why]);
    }
    if (c->why != LOST && c->why != ABORTED)
        goodbye(c);
}

/* One connection's task. Whatever ends it, what c holds is freed here, and edo_tcp_serve
 * closes the socket. */
static void client_run(struct client *c)
{
    struct server *srv = c->srv;
    struct chat_msg m;

    say(c, "*** Welcome to the edo chat. Your name? (1 to %d letters, digits, - or _)\r\n",
        NAME_LEN);
    while (c->why == STAYING) {
        if (out_flush(c->io, &c->out) < 0) {
            c->why = LOST;
            break;
        }
        bool room = room_open(c);
        edo_case cs[] = {
            c->in_eof || c->paused_until ? edo_case_off() : edo_case_read(c->io),
            c->paused_until ? edo_case_deadline(c->paused_until) : edo_case_off(),
            room ? edo_case_bcast(c->rx, &m, NULL) : edo_case_off(),
            out_len(&c->out) ? edo_case_write(c->io) : edo_case_off(),
            edo_case_cancel(srv->stop), /* also fires if the stop began before we came */
            c->lag_check_at ? edo_case_deadline(c->lag_check_at) : edo_case_off(),
        };
        switch (edo_select(cs, 6)) {
        case 0:
            on_readable(c);
            break;
        case 1:
            take_lines(c); /* the pause is over */
            break;
        case 2:
            on_room(c, cs[2].rc, &m);
            break;
        case 3:
            break; /* writable: flushed at the top */
        case 4:
            say(c, "*** The server is stopping. Bye!\r\n");
            c->why = STOPPING;
            break;
        case 5:
            check_lag(c);
            break;
        default:
            c->why = ABORTED; /* -ECANCELED: the grace period of a stop is over */
            break;
        }
    }
    leave(c);
    if (c->rx)
        edo_bcast_unsubscribe(c->rx);
    free(c->out.buf);
}

/* edo_tcp_serve's handler: a connection's client, on its task's stack. */
static void client_conn(edo_io *conn, void *arg)
{
    struct server *srv = arg;
    /* The kernel grows a socket's send buffer (up to tcp_wmem's maximum, 4 MiB by default)
     * for a peer that does not read. A fixed one (which also turns that growth off) bounds
     * what a slow client costs the kernel too; a chat needs little. */
    int sndbuf = SOCK_SNDBUF;
    setsockopt(edo_io_fd(conn), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    struct client c = { .srv = srv, .io = conn, .id = atomic_fetch_add(&srv->last_id, 1) + 1 };
    client_run(&c);
}

/* ---------------------------------------------------------------------------------------- */
/* The server's life                                                                        */

/* The root task: the registry, then the server until it stops. */
static void *serve(void *arg)
{
    struct server *srv = arg;
    /* The registry runs until the runtime's shutdown aborts it, after every connection. */
    int rc = edo_spawn(NULL, registry_task, srv);
    if (rc < 0)
        return edo_int_result(edo_fail(rc, "spawn the registry"));
    edo_serve_opts o = {
        .name = cli_prog,
        .on_listen = cli_listening,
        .stop = srv->stop,
        .grace_ms = SHUTDOWN_MS,
    };
    return edo_int_result(edo_tcp_serve(srv->cli.addr, client_conn, srv, &o));
}

int main(int argc, char **argv)
{
    static struct server srv;
    int rc = cli_server_args(argc, argv, "chat-server", 7070,
                             "A chat room: connect with nc, telnet or chat-client.", &srv.cli);
    if (rc >= 0)
        return rc;

    /* The room, the registry's channel and the token are made here, outside the runtime,
     * so that they are freed here too, after the runtime's shutdown has ended every task
     * that used them. The registry's channel is unbounded: each connection has at most one
     * request in it (and one goodbye), so it holds at most two per connection. */
    if (edo_bcast_new(&srv.room, sizeof(struct chat_msg), ROOM_KEEP) < 0 ||
        edo_chan_new(&srv.registry, sizeof(struct reg_req), EDO_UNBOUNDED) < 0 ||
        edo_token_new(&srv.stop, NULL) < 0) {
        fprintf(stderr, "chat-server: out of memory\n");
        return 1;
    }
    rc = cli_run(&srv.cli.rt, serve, &srv);

    /* Requests the registry never took hold a reference to their reply box. */
    struct reg_req req;
    while (edo_chan_try_recv(srv.registry, &req) == 0)
        if (req.box)
            box_release(req.box);
    edo_chan_free(srv.registry);
    edo_bcast_free(srv.room);
    edo_token_free(srv.stop);
    return rc;
}
