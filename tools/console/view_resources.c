/*
 * view_resources.c - every channel, lock, semaphore, notify, barrier, token and timer
 * wheel of the program: its kind and address, who holds it, how full it is, who waits on
 * it (by id and name). Enter opens the holder, or the first waiter.
 */
#include "text.h"
#include "ui.h"

#include <curses.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* "12 name" for task id in snapshot s (just the id if it is not there). */
static void task_ref(char *buf, size_t n, const cm_snap *s, uint64_t id)
{
    const cm_task *t = cm_snap_task(s, id);
    if (!id)
        snprintf(buf, n, "thread");
    else if (t && t->name[0])
        snprintf(buf, n, "%" PRIu64 " %s", id, t->name);
    else
        snprintf(buf, n, "%" PRIu64, id);
}

static void row(char *line, size_t n, const cm_snap *s, const cm_resource *r, int cols)
{
    char cell[256];
    line[0] = '\0';
    if (!r) {
        const char *h[] = { "KIND", "ADDR", "HOLDER", "LEN/CAP", "STATE", "WAIT" };
        int w[] = { 7, 14, 14, 9, 7, 4 };
        for (int i = 0; i < 6; i++) {
            tx_cell(line, n, h[i], w[i], true, i == 5);
            tx_cell(line, n, " ", 1, false, false);
        }
        tx_cell(line, n, "WAITERS", cols, false, false);
        return;
    }
    tx_cell(line, n, r->kind, 7, true, false);
    tx_cell(line, n, " ", 1, false, false);
    tx_cell(line, n, r->addr, 14, true, false);
    tx_cell(line, n, " ", 1, false, false);
    if (r->holder > 0)
        task_ref(cell, sizeof cell, s, (uint64_t)r->holder);
    else if (r->holder < 0)
        snprintf(cell, sizeof cell, "a thread");
    else if (r->readers)
        snprintf(cell, sizeof cell, "%" PRIu64 " reader%s", r->readers, r->readers == 1 ? "" : "s");
    else
        snprintf(cell, sizeof cell, "-");
    tx_cell(line, n, cell, 14, true, false);
    tx_cell(line, n, " ", 1, false, false);
    if (r->cap)
        snprintf(cell, sizeof cell, "%" PRIu64 "/%" PRIu64, r->len, r->cap);
    else
        snprintf(cell, sizeof cell, "%" PRIu64, r->len);
    tx_cell(line, n, cell, 9, true, false);
    tx_cell(line, n, " ", 1, false, false);
    tx_cell(line, n, r->closed ? "closed" : "", 7, true, false);
    tx_cell(line, n, " ", 1, false, false);
    snprintf(cell, sizeof cell, "%" PRIu64, r->waiters);
    tx_cell(line, n, cell, 4, true, true);
    tx_cell(line, n, " ", 1, false, false);
    cell[0] = '\0';
    size_t off = 0;
    for (int i = 0; i < r->nwaiter_ids && off < sizeof cell - 1; i++) {
        char ref[96];
        task_ref(ref, sizeof ref, s, r->waiter_ids[i]);
        off += (size_t)snprintf(cell + off, sizeof cell - off, "%s%s", i ? ", " : "", ref);
    }
    if (off < sizeof cell - 1 && r->waiters > (uint64_t)r->nwaiter_ids)
        snprintf(cell + off, sizeof cell - off, "%s...", off ? ", " : "");
    tx_cell(line, n, cell, cols, false, false);
}

void view_resources_draw(ui *u, int top, int rows)
{
    const cm_snap *s = cm_snap_at(u->m, 0);
    char line[1024];
    int cols = ui_cols();
    if (s->resources_omitted > 0)
        snprintf(line, sizeof line, "%zu resources (%lld more left out of the snapshot)", s->nres,
                 (long long)s->resources_omitted);
    else
        snprintf(line, sizeof line, "%zu resources", s->nres);
    ui_put(top, 1, A_NORMAL, line);
    row(line, sizeof line, s, NULL, cols);
    ui_put(top + 1, 0, A_BOLD, line);
    int body = rows - 2;
    if (u->res_sel >= s->nres)
        u->res_sel = s->nres ? s->nres - 1 : 0;
    ui_scroll(&u->res_top, u->res_sel, s->nres, body);
    for (int r = 0; r < body && u->res_top + (size_t)r < s->nres; r++) {
        size_t i = u->res_top + (size_t)r;
        row(line, sizeof line, s, &s->res[i], cols);
        if (i == u->res_sel)
            tx_cell(line, sizeof line, "", cols, true, false);
        ui_put(top + 2 + r, 0, i == u->res_sel ? A_REVERSE : A_NORMAL, line);
    }
    if (!s->nres)
        ui_put(top + 2, 1, A_NORMAL, "no resources");
}

bool view_resources_key(ui *u, int key)
{
    const cm_snap *s = cm_snap_at(u->m, 0);
    size_t n = s ? s->nres : 0;
    if (ui_move(key, &u->res_sel, n, ui_rows() - 6))
        return true;
    if ((key == '\n' || key == '\r' || key == KEY_ENTER) && u->res_sel < n) {
        const cm_resource *r = &s->res[u->res_sel];
        uint64_t id = r->holder > 0 ? (uint64_t)r->holder : r->nwaiter_ids ? r->waiter_ids[0] : 0;
        if (id)
            ui_open_task(u, id);
        else
            ui_message(u, "nobody holds or waits on it");
        return true;
    }
    return false;
}
