/*
 * view_workers.c - the runtime's workers: what each does now, its queue, its counters
 * since the start, and its busy ratio (busy time over wall time between the last two
 * snapshots); below them, the runtime's own counters.
 */
#include "text.h"
#include "ui.h"

#include <curses.h>
#include <inttypes.h>
#include <stdio.h>

struct wcol {
    const char *title;
    int width;
};

static const struct wcol WCOLS[] = {
    { "W", 2 },      { "STATE", 10 }, { "TASK", 5 },   { "QUEUE", 5 },   { "RUN", 6 },
    { "STEALS", 6 }, { "PARKS", 6 },  { "POLLS", 6 },  { "EVENTS", 6 },  { "TIMERS", 6 },
    { "YIELDS", 6 }, { "BUSY", 4 },   { "BLOCKS", 6 }, { "HANDOFF", 7 },
};
#define NW (int)(sizeof WCOLS / sizeof WCOLS[0])
#define NARROW 12 /* the columns shown at 80: the last two need a wider terminal */

static int shown(int cols)
{
    int w = 0;
    for (int i = 0; i < NW; i++) {
        w += WCOLS[i].width + 1;
        if (i >= NARROW && w > cols)
            return i;
    }
    return NW;
}

static void worker_row(char *line, size_t n, const cm_worker *w, int ncols)
{
    char cell[64];
    uint64_t v[] = { 0,
                     0,
                     w->task,
                     w->queue_depth,
                     w->tasks_run,
                     w->steals,
                     w->parks,
                     w->polls,
                     w->events,
                     w->timers_fired,
                     w->forced_yields,
                     0,
                     w->blocking_reports,
                     w->handoffs };
    line[0] = '\0';
    for (int i = 0; i < ncols; i++) {
        if (i == 0)
            snprintf(cell, sizeof cell, "%d", w->index);
        else if (i == 1)
            snprintf(cell, sizeof cell, "%s", w->state);
        else if (i == 2 && !w->task)
            snprintf(cell, sizeof cell, "-");
        else if (i == 2)
            snprintf(cell, sizeof cell, "%" PRIu64, w->task);
        else if (i == 11 && w->busy_ratio < 0)
            snprintf(cell, sizeof cell, "-");
        else if (i == 11)
            snprintf(cell, sizeof cell, "%d%%", (int)(w->busy_ratio * 100 + 0.5));
        else
            tx_count(cell, sizeof cell, v[i]);
        tx_cell(line, n, cell, WCOLS[i].width, true, i != 1);
        tx_cell(line, n, " ", 1, false, false);
    }
}

void view_workers_draw(ui *u, int top, int rows)
{
    const cm_snap *s = cm_snap_at(u->m, 0);
    char line[512], cell[32];
    int ncols = shown(ui_cols());
    snprintf(line, sizeof line,
             "%zu workers   BUSY: time running tasks over wall time in the last interval",
             s->nworkers);
    ui_put(top, 1, A_NORMAL, line);
    line[0] = '\0';
    for (int i = 0; i < ncols; i++) {
        tx_cell(line, sizeof line, WCOLS[i].title, WCOLS[i].width, true, i != 1);
        tx_cell(line, sizeof line, " ", 1, false, false);
    }
    ui_put(top + 1, 0, A_BOLD, line);
    int y = top + 2, end = top + rows;
    size_t i = 0;
    /* The runtime's lines need 5 rows, the left-out columns one; the workers get the rest. */
    for (; i < s->nworkers && y < end - 6; i++) {
        worker_row(line, sizeof line, &s->workers[i], ncols);
        ui_put(y++, 0, A_NORMAL, line);
    }
    if (i < s->nworkers) {
        snprintf(line, sizeof line, "... and %zu more", s->nworkers - i);
        ui_put(y++, 1, A_NORMAL, line);
    }
    if (ncols < NW && y < end - 5) {
        /* The columns a narrow screen leaves out, in one line. */
        size_t off = (size_t)snprintf(line, sizeof line, "blocking reports/handoffs:");
        for (size_t k = 0; k < i && off < sizeof line - 32; k++)
            off += (size_t)snprintf(line + off, sizeof line - off, "  %d: %" PRIu64 "/%" PRIu64,
                                    s->workers[k].index, s->workers[k].blocking_reports,
                                    s->workers[k].handoffs);
        ui_put(y++, 1, A_NORMAL, line);
    }
    y++;
    ui_put(y++, 1, A_BOLD, "runtime");
    snprintf(line, sizeof line,
             "tasks: %" PRIu64 " spawned, %" PRIu64 " live, %" PRIu64
             " done;  inject queue %" PRIu64,
             s->tasks_spawned, s->tasks_live, s->tasks_done, s->inject_depth);
    ui_put(y++, 1, A_NORMAL, line);
    snprintf(line, sizeof line,
             "blocking pool: %" PRIu64 " threads, %" PRIu64 " busy, %" PRIu64
             " queued;  blocking reports %" PRIu64,
             s->blocking_threads, s->blocking_busy, s->blocking_queued, s->blocking_reports);
    ui_put(y++, 1, A_NORMAL, line);
    tx_dur(cell, sizeof cell, s->uptime_ms > 0 ? (uint64_t)s->uptime_ms * 1000000 : 0);
    snprintf(line, sizeof line, "up %s;  clock %s at %" PRId64 " ms", cell,
             s->clock_paused ? "paused" : "running", s->now_ms);
    if (y < end)
        ui_put(y++, 1, A_NORMAL, line);
}

bool view_workers_key(ui *u, int key)
{
    return false;
}
