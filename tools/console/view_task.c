/*
 * view_task.c - one task in detail: its counters, what it waits for, a histogram of its
 * run times (the snapshot's run_hist as bars), and on `b` its backtrace, asked of the
 * program with the protocol's `backtrace ID` command. A task that ends stays on screen as
 * it was last seen.
 */
#include "text.h"
#include "ui.h"

#include <curses.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Upper bounds of the run histogram's buckets (EDO_RUN_HIST in edo.h): 1 us doubling to
 * 16.4 ms; the last bucket holds the longer runs. */
static const char *const BUCKETS[CM_RUN_HIST] = {
    "<1us",   "<2us",   "<4us",   "<8us",   "<16us",  "<32us",  "<64us",   "<128us",
    "<256us", "<512us", "<1.0ms", "<2.0ms", "<4.1ms", "<8.2ms", "<16.4ms", ">=16.4ms",
};

/* Appends "label: value" (value made safe) to the row at y, x. */
static void field(int y, int x, int w, const char *label, const char *value)
{
    char line[512] = "";
    tx_cell(line, sizeof line, label, 10, true, false);
    /* One column short of the room: a gap before the field to its right. */
    tx_cell(line, sizeof line, value, w - 11, false, false);
    ui_put(y, x, A_NORMAL, line);
}

static void draw_hist(const cm_task *t, int y, int rows, int cols)
{
    uint32_t max = 0;
    uint64_t total = 0;
    for (int i = 0; i < CM_RUN_HIST; i++) {
        if (t->run_hist[i] > max)
            max = t->run_hist[i];
        total += t->run_hist[i];
    }
    char line[512];
    snprintf(line, sizeof line, "run times (resume to suspension), %" PRIu64 " runs:", total);
    ui_put(y, 1, A_BOLD, line);
    if (rows < 2)
        return;
    /* Two columns of 8 buckets when the screen is short, one of 16 when it is tall. */
    int per_col = rows - 1 >= CM_RUN_HIST ? CM_RUN_HIST : (CM_RUN_HIST + 1) / 2;
    int ncols = (CM_RUN_HIST + per_col - 1) / per_col;
    int cw = (cols - 2) / ncols;
    int barw = cw - 18;
    if (barw < 1)
        barw = 1;
    for (int i = 0; i < CM_RUN_HIST; i++) {
        int r = i % per_col, c = i / per_col;
        if (r + 1 >= rows)
            continue;
        int len = max ? (int)((uint64_t)t->run_hist[i] * (uint64_t)barw / max) : 0;
        if (t->run_hist[i] && len == 0)
            len = 1;
        char bar[256];
        memset(bar, '#', (size_t)len);
        bar[len] = '\0';
        snprintf(line, sizeof line, "%8s %7" PRIu32 " %s", BUCKETS[i], t->run_hist[i], bar);
        ui_put(y + 1 + r, 1 + c * cw, A_NORMAL, line);
    }
}

static void draw_backtrace(ui *u, int y, int rows)
{
    cm_model *m = u->m;
    char line[512];
    if (u->bt_asked_id != u->detail_id) {
        ui_put(y, 1, A_NORMAL, "b: ask the program for this task's backtrace");
        return;
    }
    if (!m->bt_have || m->bt_count == u->bt_count_asked || m->bt_task != u->detail_id) {
        snprintf(line, sizeof line, "asking the program for task %" PRIu64 "'s backtrace...",
                 u->detail_id);
        ui_put(y, 1, A_NORMAL, line);
        return;
    }
    if (!m->bt_ok) {
        char why[256] = "";
        tx_cell(why, sizeof why, m->bt_text, 200, false, false);
        snprintf(line, sizeof line, "no backtrace: %s", why);
        ui_put(y, 1, A_NORMAL, line);
        return;
    }
    ui_put(y, 1, A_BOLD, "backtrace:");
    /* One frame a line; Up and Down scroll a long one. */
    const char *p = m->bt_text;
    size_t skip = u->bt_top;
    int r = 1;
    while (*p && r < rows) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (skip) {
            skip--;
        } else {
            char raw[512];
            snprintf(raw, sizeof raw, "%.*s", (int)(n < sizeof raw - 1 ? n : sizeof raw - 1), p);
            line[0] = '\0';
            tx_cell(line, sizeof line, raw, ui_cols() - 2, false, false);
            ui_put(y + r++, 1, A_NORMAL, line);
        }
        p += n + (nl ? 1 : 0);
    }
}

void view_task_draw(ui *u, int top, int rows)
{
    const cm_snap *s = cm_snap_at(u->m, 0);
    const cm_task *t = u->detail_id ? cm_row(u->m, u->detail_id) : NULL;
    if (!t && u->detail_seen)
        t = &u->detail_last;
    if (!t) {
        ui_put(top, 1, A_NORMAL, "no task chosen: pick one in the task list (1) with Enter");
        return;
    }
    bool gone = !cm_row(u->m, t->id);
    int cols = ui_cols(), half = cols / 2;
    char a[256], b[64], c[64];
    char name[128] = "";
    tx_cell(name, sizeof name, t->name, 60, false, false);
    snprintf(a, sizeof a, "task %" PRIu64 "  %s%s", t->id, name,
             gone ? "  (gone: as last seen)" : "");
    ui_put(top, 1, A_BOLD, a);
    int y = top + 1;
    snprintf(a, sizeof a, "%s%s", t->state,
             t->origin == CM_STALE ? " (not in the newest snapshot)" : "");
    field(y, 1, half - 1, "state", a);
    snprintf(a, sizeof a, "%" PRIu64, t->parent);
    field(y++, half, cols - half, "parent", t->parent ? a : "-");
    if (t->worker >= 0)
        snprintf(a, sizeof a, "%" PRId64, t->worker);
    else
        snprintf(a, sizeof a, "-");
    field(y, 1, half - 1, "worker", a);
    snprintf(a, sizeof a, "%" PRIu64 " of %" PRIu64 " bytes used", t->stack_used, t->stack_size);
    field(y++, half, cols - half, "stack", a);
    field(y++, 1, cols - 2, "site", t->site);
    field(y, 1, half - 1, "wait", t->wait);
    if (t->wait_until_ms != CM_NONE && s) {
        int64_t d = t->wait_until_ms - s->now_ms;
        tx_dur(b, sizeof b, d > 0 ? (uint64_t)d * 1000000 : 0);
        snprintf(a, sizeof a, "in %s", b);
    } else {
        snprintf(a, sizeof a, "none");
    }
    field(y++, half, cols - half, "deadline", a);
    field(y++, 1, cols - 2, "waits for", t->wait_text[0] ? t->wait_text : "-");
    field(y, 1, half - 1, "object", t->wait_obj[0] ? t->wait_obj : "-");
    if (t->wait_fd >= 0)
        snprintf(a, sizeof a, "%" PRId64, t->wait_fd);
    else
        snprintf(a, sizeof a, "-");
    field(y++, half, cols - half, "fd", a);
    tx_count(b, sizeof b, t->resumes);
    field(y, 1, half - 1, "resumes", b);
    tx_dur(b, sizeof b, t->busy_ns);
    tx_dur(c, sizeof c, t->idle_ns);
    snprintf(a, sizeof a, "%s busy, %s idle", b, c);
    field(y++, half, cols - half, "time", a);
    tx_dur(b, sizeof b, t->scheduled_ns);
    field(y, 1, half - 1, "scheduled", b);
    snprintf(a, sizeof a, "%" PRIu64 " by itself, %" PRIu64 " by others", t->wakes_self,
             t->wakes_other);
    field(y++, half, cols - half, "wakes", a);
    tx_ago(b, sizeof b, s ? s->now_ms : CM_NONE, t->last_wake_ms);
    snprintf(a, sizeof a, "%s ago", b);
    field(y, 1, half - 1, "last wake", t->last_wake_ms == CM_NONE ? "never" : a);
    if (t->origin == CM_DONE) {
        tx_ago(b, sizeof b, s ? s->now_ms : CM_NONE, t->ended_ms);
        snprintf(a, sizeof a, "%s ago", b);
        field(y++, half, cols - half, "ended", t->ended_ms == CM_NONE ? "-" : a);
    } else {
        tx_ago(b, sizeof b, s ? s->now_ms : CM_NONE, t->spawned_ms);
        snprintf(a, sizeof a, "%s ago", b);
        field(y++, half, cols - half, "spawned", t->spawned_ms == CM_NONE ? "-" : a);
    }
    y++;
    int left = top + rows - y;
    if (u->pane == UI_PANE_BACKTRACE)
        draw_backtrace(u, y, left);
    else
        draw_hist(t, y, left, cols);
}

/* The task after (dir 1) or before (-1) the open one in the task list's order. */
static void step(ui *u, int dir)
{
    for (size_t i = 0; i < u->nlist; i++) {
        if (u->list[i]->id != u->detail_id)
            continue;
        if ((dir < 0 && i == 0) || (dir > 0 && i + 1 >= u->nlist))
            return;
        size_t j = dir < 0 ? i - 1 : i + 1;
        u->sel = j;
        u->sel_id = u->list[j]->id;
        ui_open_task(u, u->list[j]->id);
        return;
    }
}

bool view_task_key(ui *u, int key)
{
    switch (key) {
    case 27:
    case KEY_BACKSPACE:
    case KEY_LEFT: /* in a replay, Left steps back: ui.c takes it first */
        u->view = UI_TASKS;
        return true;
    case 'n':
        step(u, 1);
        return true;
    case 'p':
        step(u, -1);
        return true;
    case 'h':
        u->pane = UI_PANE_HIST;
        return true;
    case 'b': {
        if (!u->detail_id)
            return true;
        u->pane = UI_PANE_BACKTRACE;
        u->bt_top = 0;
        if (!u->src->live) {
            ui_message(u, "a recording cannot be asked for a backtrace");
            u->bt_asked_id = 0;
            return true;
        }
        if (!u->src->connected) {
            ui_message(u, "not connected: no backtrace to be had");
            u->bt_asked_id = 0;
            return true;
        }
        char cmd[64];
        snprintf(cmd, sizeof cmd, "backtrace %" PRIu64, u->detail_id);
        int rc = u->src->send(u->src->ctx, cmd);
        if (rc < 0) {
            ui_message(u, "could not send the backtrace request: %s", strerror(-rc));
            u->bt_asked_id = 0;
            return true;
        }
        u->bt_asked_id = u->detail_id;
        u->bt_count_asked = u->m->bt_count;
        return true;
    }
    case KEY_UP:
    case 'k':
        if (u->pane == UI_PANE_BACKTRACE && u->bt_top > 0)
            u->bt_top--;
        return true;
    case KEY_DOWN:
    case 'j':
        if (u->pane == UI_PANE_BACKTRACE)
            u->bt_top++;
        return true;
    default:
        return false;
    }
}
