/*
 * edo-console - watch a running edo program: its tasks, resources, workers and what looks
 * wrong, live from its console endpoint (docs/console.md) or from a recording.
 *
 *   edo-console [ADDRESS]                 the terminal UI (ADDRESS: $EDO_CONSOLE)
 *   edo-console --record FILE [ADDRESS]   the same, saving the stream to FILE
 *   edo-console --replay FILE             a recording in the same UI
 *   edo-console --once --json [ADDRESS]   one snapshot as JSON on stdout, then exit
 *   edo-console --replay FILE --once --json   the same from a recording's first snapshot
 *   edo-console --replay FILE --dump      every snapshot of a recording as text
 *
 * ADDRESS is a path (a Unix socket) or HOST:PORT, :PORT, PORT (TCP; the last two on
 * 127.0.0.1). Live, the console reconnects when the program goes away. This file is the
 * command line and the two loops (live, replay); the rest is in the files it includes.
 */
#include "model.h"
#include "record.h"
#include "report.h"
#include "stream.h"
#include "text.h"
#include "ui.h"

#include <curses.h>
#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RETRY_MS 1000
#define REDRAW_MS 500
/* Read at most this much between two looks at the keyboard, so that a flood of data
 * cannot make the UI deaf. */
#define READ_BUDGET (8u << 20)
/* A replay waits at most this long between two snapshots, whatever the recording's gap. */
#define REPLAY_MAX_GAP_MS 10000
#define ONCE_TIMEOUT_MS 10000

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
    stop_signal = sig;
}

static void usage(FILE *f)
{
    fputs("usage: edo-console [--record FILE] [ADDRESS]\n"
          "       edo-console --replay FILE [--once --json | --dump]\n"
          "       edo-console --once --json [--timeout MS] [ADDRESS]\n"
          "\n"
          "Watches an edo program through its console endpoint (EDO_CONSOLE=ADDRESS in the\n"
          "program's environment). ADDRESS: a Unix socket's path, or HOST:PORT, :PORT or PORT\n"
          "for TCP; default $EDO_CONSOLE.\n"
          "\n"
          "  --once --json   print the hello and the first snapshot as one JSON object, with\n"
          "                  the console's warnings, and exit (no terminal needed)\n"
          "  --timeout MS    with --once: how long to wait for each line (default 10000)\n"
          "  --record FILE   save the stream to FILE while watching it\n"
          "  --replay FILE   show a recording: space pauses, . and , step, + and - change speed\n"
          "  --dump          with --replay: print every snapshot as text (no terminal needed)\n"
          "  -h, --help      this help\n"
          "\n"
          "In the UI, ? lists the keys and q quits.\n",
          f);
}

/* ---- live ------------------------------------------------------------------------------ */

struct live {
    const char *addr;
    int fd;
    cs_lines lines;
    rc_writer rec;
    bool recording;
    cm_model *m;
    ui *u;
    ui_source *src;
    int64_t next_try;
    char lost[128]; /* why the last connection ended, "" if there was none */
    char *scratch;
    size_t scap;
};

static int live_send(void *ctx, const char *cmd)
{
    struct live *lv = ctx;
    if (lv->fd < 0)
        return -ENOTCONN;
    return cs_send(lv->fd, cmd);
}

static void disconnect(struct live *lv, const char *why)
{
    if (lv->fd >= 0)
        close(lv->fd);
    lv->fd = -1;
    cs_lines_free(&lv->lines);
    lv->src->connected = false;
    snprintf(lv->lost, sizeof lv->lost, "%s", why);
    snprintf(lv->src->conn_msg, sizeof lv->src->conn_msg,
             "lost %s: %s; reconnecting every %d s (showing what was last seen)", lv->addr, why,
             RETRY_MS / 1000);
    lv->next_try = cs_now_ms() + RETRY_MS;
}

static void try_connect(struct live *lv)
{
    char err[192];
    int fd;
    lv->next_try = cs_now_ms() + RETRY_MS;
    if (cs_connect(lv->addr, &fd, err, sizeof err) < 0) {
        /* Keep saying that the program went away: the screen still shows its last data. */
        if (lv->lost[0])
            snprintf(lv->src->conn_msg, sizeof lv->src->conn_msg,
                     "lost %s: %s; reconnecting every %d s (showing what was last seen)", lv->addr,
                     lv->lost, RETRY_MS / 1000);
        else
            snprintf(lv->src->conn_msg, sizeof lv->src->conn_msg, "%s; trying again every %d s",
                     err, RETRY_MS / 1000);
        return;
    }
    lv->lost[0] = '\0';
    lv->fd = fd;
    cs_lines_init(&lv->lines, fd, CS_MAX_LINE);
    lv->src->connected = true;
    lv->src->conn_msg[0] = '\0';
}

/* Takes in one line: into the recording (with a receive time before a snapshot), then the
 * model. Returns what it was. */
static cm_line live_line(struct live *lv, char *line, size_t len)
{
    int64_t now = cs_now_ms();
    if (!lv->recording)
        return cm_feed(lv->m, line, len, now);
    /* The model decodes the line in place; the recording wants it as it came. */
    if (lv->scap < len + 1) {
        char *s = realloc(lv->scratch, len + 1);
        if (!s)
            return cm_feed(lv->m, line, len, now);
        lv->scratch = s;
        lv->scap = len + 1;
    }
    memcpy(lv->scratch, line, len + 1);
    cm_line what = cm_feed(lv->m, lv->scratch, len, now);
    rc_line(&lv->rec, line, len, what == CM_SNAPSHOT, now);
    if (lv->rec.failed && !lv->src->record_failed) {
        lv->src->record_failed = true;
        ui_message(lv->u, "writing the recording failed: it is incomplete");
    }
    return what;
}

/* Reads what the program sent. Returns true if the model changed. */
static bool live_read(struct live *lv)
{
    bool changed = false;
    size_t budget = 0;
    while (lv->fd >= 0 && budget < READ_BUDGET) {
        long n = cs_lines_fill(&lv->lines);
        if (n == -EAGAIN)
            break;
        if (n > 0)
            budget += (size_t)n;
        char *line;
        size_t len;
        while (cs_lines_next(&lv->lines, &line, &len) ||
               (n == 0 && cs_lines_rest(&lv->lines, &line, &len))) {
            cm_line what = live_line(lv, line, len);
            if (what == CM_HELLO && lv->m->hello.version != 1)
                ui_message(lv->u, "the program speaks console protocol %lld; this console knows 1",
                           (long long)lv->m->hello.version);
            changed |= what != CM_OTHER;
        }
        lv->m->bad_lines += lv->lines.too_long;
        lv->lines.too_long = 0;
        if (n == 0) {
            disconnect(lv, "the program closed the connection");
            changed = true;
        } else if (n < 0) {
            disconnect(lv, strerror((int)-n));
            changed = true;
        }
    }
    return changed;
}

static int run_live(const char *addr, const char *record)
{
    cm_model m;
    ui u;
    ui_source src = { .live = true, .name = addr, .record_path = record, .speed = 1 };
    struct live lv = { .addr = addr, .fd = -1, .m = &m, .u = &u, .src = &src };
    char err[512];

    cm_init(&m);
    ui_init(&u, &m, &src);
    src.ctx = &lv;
    src.send = live_send;
    if (record) {
        if (rc_open(&lv.rec, record, addr, err, sizeof err) < 0) {
            fprintf(stderr, "edo-console: %s\n", err);
            return 1;
        }
        lv.recording = true;
    }
    if (ui_begin() < 0) {
        rc_close(&lv.rec);
        return 1;
    }
    try_connect(&lv);
    int64_t last_draw = 0;
    bool dirty = true;
    while (!u.quit && !stop_signal) {
        int64_t now = cs_now_ms();
        if (lv.fd < 0 && now >= lv.next_try) {
            try_connect(&lv);
            dirty = true;
        }
        if (dirty || now - last_draw >= REDRAW_MS) {
            ui_draw(&u);
            last_draw = now;
            dirty = false;
        }
        struct pollfd p[2] = { { .fd = 0, .events = POLLIN }, { .fd = lv.fd, .events = POLLIN } };
        int wait = REDRAW_MS;
        if (lv.fd < 0 && lv.next_try - now < wait)
            wait = lv.next_try - now > 0 ? (int)(lv.next_try - now) : 0;
        int n = poll(p, lv.fd >= 0 ? 2 : 1, wait);
        if (n < 0 && errno != EINTR)
            break;
        /* EINTR: maybe SIGWINCH, which curses turns into KEY_RESIZE for getch. */
        int key;
        while ((key = ui_getkey()) != ERR) {
            ui_key(&u, key);
            dirty = true;
        }
        if (n > 0 && lv.fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)) &&
            live_read(&lv)) {
            ui_update(&u);
            dirty = true;
        }
    }
    ui_end();
    if (lv.fd >= 0)
        close(lv.fd);
    cs_lines_free(&lv.lines);
    int status = 0;
    if (lv.recording && rc_close(&lv.rec) < 0) {
        fprintf(stderr, "edo-console: writing %s failed: the recording is incomplete\n", record);
        status = 1;
    }
    free(lv.scratch);
    ui_free(&u);
    cm_free(&m);
    return status;
}

/* ---- replay ---------------------------------------------------------------------------- */

struct replay {
    rp_file r;
    cm_model *m;
    ui *u;
    ui_source *src;
    int64_t next_at; /* when to show the next snapshot (playing) */
};

static void replay_schedule(struct replay *rp)
{
    size_t i = rp->src->pos;
    if (i + 1 >= rp->r.nsnaps) {
        rp->next_at = INT64_MAX;
        return;
    }
    int64_t gap = rp->r.snaps[i + 1].at_ms - rp->r.snaps[i].at_ms;
    if (gap < 0)
        gap = 0;
    if (gap > REPLAY_MAX_GAP_MS)
        gap = REPLAY_MAX_GAP_MS;
    rp->next_at = cs_now_ms() + (int64_t)((double)gap / rp->src->speed);
}

static void replay_show(struct replay *rp, size_t i)
{
    if (rp_seek(&rp->r, rp->m, i) < 0) {
        ui_message(rp->u, "cannot read snapshot %zu of the recording back", i + 1);
        return;
    }
    rp->src->pos = i;
    ui_update(rp->u);
    replay_schedule(rp);
}

static void replay_op(void *ctx, enum ui_replay_op op)
{
    struct replay *rp = ctx;
    ui_source *src = rp->src;
    switch (op) {
    case UI_RP_PAUSE:
        src->paused = !src->paused;
        if (!src->paused && src->pos + 1 >= src->count)
            replay_show(rp, 0); /* played to the end: from the start again */
        else
            replay_schedule(rp);
        break;
    case UI_RP_NEXT:
        src->paused = true;
        if (src->pos + 1 < src->count)
            replay_show(rp, src->pos + 1);
        else
            ui_message(rp->u, "the end of the recording");
        break;
    case UI_RP_PREV:
        src->paused = true;
        if (src->pos > 0)
            replay_show(rp, src->pos - 1);
        else
            ui_message(rp->u, "the start of the recording");
        break;
    case UI_RP_FASTER:
        if (src->speed < 64)
            src->speed *= 2;
        replay_schedule(rp);
        break;
    case UI_RP_SLOWER:
        if (src->speed > 0.125)
            src->speed /= 2;
        replay_schedule(rp);
        break;
    }
}

static int run_replay(const char *path)
{
    cm_model m;
    ui u;
    ui_source src = { .live = false, .name = path, .speed = 1 };
    struct replay rp = { .m = &m, .u = &u, .src = &src };
    char err[512];

    if (rp_open(&rp.r, path, err, sizeof err) < 0) {
        fprintf(stderr, "edo-console: %s\n", err);
        return 1;
    }
    cm_init(&m);
    ui_init(&u, &m, &src);
    src.ctx = &rp;
    src.replay = replay_op;
    src.count = rp.r.nsnaps;
    if (ui_begin() < 0) {
        rp_close(&rp.r);
        cm_free(&m);
        return 1;
    }
    replay_show(&rp, 0);
    int64_t last_draw = 0;
    bool dirty = true;
    while (!u.quit && !stop_signal) {
        int64_t now = cs_now_ms();
        if (!src.paused && now >= rp.next_at && src.pos + 1 < src.count) {
            replay_show(&rp, src.pos + 1);
            if (src.pos + 1 >= src.count)
                src.paused = true;
            dirty = true;
        }
        if (dirty || now - last_draw >= REDRAW_MS) {
            ui_draw(&u);
            last_draw = now;
            dirty = false;
        }
        int wait = REDRAW_MS;
        if (!src.paused && rp.next_at - now < wait)
            wait = rp.next_at - now > 0 ? (int)(rp.next_at - now) : 0;
        struct pollfd p = { .fd = 0, .events = POLLIN };
        if (poll(&p, 1, wait) < 0 && errno != EINTR)
            break;
        int key;
        while ((key = ui_getkey()) != ERR) {
            ui_key(&u, key);
            dirty = true;
        }
    }
    ui_end();
    ui_free(&u);
    cm_free(&m);
    rp_close(&rp.r);
    return 0;
}

/* ---- the command line ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    const char *addr = NULL, *record = NULL, *replay = NULL;
    bool once = false, json = false, dump = false;
    long timeout = ONCE_TIMEOUT_MS;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--once") == 0) {
            once = true;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--dump") == 0) {
            dump = true;
        } else if (strcmp(a, "--record") == 0 && has_val) {
            record = argv[++i];
        } else if (strcmp(a, "--replay") == 0 && has_val) {
            replay = argv[++i];
        } else if (strcmp(a, "--timeout") == 0 && has_val) {
            char *end;
            timeout = strtol(argv[++i], &end, 10);
            if (*end || timeout <= 0 || timeout > 3600000) {
                fprintf(stderr, "edo-console: --timeout takes milliseconds, 1 to 3600000\n");
                return 2;
            }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "edo-console: %s: unknown option, or its value is missing\n", a);
            usage(stderr);
            return 2;
        } else if (!addr) {
            addr = a;
        } else {
            fprintf(stderr, "edo-console: one address only\n");
            return 2;
        }
    }
    if (json && !once) {
        fprintf(stderr, "edo-console: --json goes with --once\n");
        return 2;
    }
    if (replay && (addr || record)) {
        fprintf(stderr,
                "edo-console: --replay shows a recording: no address or --record with it\n");
        return 2;
    }
    if (dump && (!replay || once)) {
        fprintf(stderr, "edo-console: --dump goes with --replay (and not with --once)\n");
        return 2;
    }
    if (once && record) {
        fprintf(stderr, "edo-console: --record goes with the UI, not --once\n");
        return 2;
    }
    if (!replay && !addr) {
        addr = getenv("EDO_CONSOLE");
        if (!addr || !*addr) {
            fprintf(stderr, "edo-console: no address: give one, or set EDO_CONSOLE\n");
            usage(stderr);
            return 2;
        }
    }

    signal(SIGPIPE, SIG_IGN);
    if (once)
        return replay ? report_once_file(replay, stdout) : report_once_live(addr, timeout, stdout);
    if (dump)
        return report_dump(replay, 80, stdout);

    if (!isatty(0) || !isatty(1)) {
        fprintf(stderr, "edo-console: the UI needs a terminal; --once --json and --replay FILE "
                        "--dump do not\n");
        return 2;
    }
    setlocale(LC_ALL, "");
#ifdef EDO_CONSOLE_WIDE
    tx_set_utf8(strcmp(nl_langinfo(CODESET), "UTF-8") == 0);
#endif
    /* No SA_RESTART: the signal must end the loop's poll. */
    struct sigaction sa = { .sa_handler = on_stop };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    int status = replay ? run_replay(replay) : run_live(addr, record);
    if (stop_signal && status == 0)
        status = 128 + stop_signal;
    return status;
}
