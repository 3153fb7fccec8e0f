/*
 * view_tasks.c - the task list: one row per task of the newest snapshot (and those it left
 * out for its size limit, marked '*'; done ones with `d`), sorted by any column, filtered as
 * the user types. Its state lives in struct ui; the columns are taskcols.c's.
 */
#include "taskcols.h"
#include "text.h"
#include "ui.h"

#include <curses.h>
#include <stdio.h>
#include <string.h>

void view_tasks_draw(ui *u, int top, int rows)
{
    const cm_snap *s = cm_snap_at(u->m, 0);
    char line[1024], info[160];
    int cols = ui_cols();
    int n = snprintf(info, sizeof info, "%zu of %zu tasks", u->nlist, u->m->nrows);
    if (s && s->tasks_omitted > 0 && n > 0)
        snprintf(info + n, sizeof info - (size_t)n, " (%lld left out of the snapshot)",
                 (long long)s->tasks_omitted);
    char f[80] = "";
    if (u->filter[0] && !u->filtering) {
        strcpy(f, "   filter: ");
        tx_cell(f, sizeof f, u->filter, 40, false, false);
    }
    snprintf(line, sizeof line, "%s   sorted by %s%s%s", info, tc_name(u->sort_col),
             u->sort_rev ? ", reversed" : "", f);
    ui_put(top, 1, A_NORMAL, line);
    tc_row(line, sizeof line, NULL, cols, u->sort_col, u->sort_rev);
    ui_put(top + 1, 0, A_BOLD, line);
    int body = rows - 2;
    ui_scroll(&u->top, u->sel, u->nlist, body);
    for (int r = 0; r < body && u->top + (size_t)r < u->nlist; r++) {
        size_t i = u->top + (size_t)r;
        tc_row(line, sizeof line, u->list[i], cols, -1, false);
        if (i == u->sel)
            tx_cell(line, sizeof line, "", cols, true, false); /* the bar across the row */
        ui_put(top + 2 + r, 0, i == u->sel ? A_REVERSE : A_NORMAL, line);
    }
    if (!u->nlist)
        ui_put(top + 2, 1, A_NORMAL, u->filter[0] ? "no task matches the filter" : "no tasks");
}

bool view_tasks_key(ui *u, int key)
{
    if (ui_move(key, &u->sel, u->nlist, ui_rows() - 6)) {
        if (u->nlist)
            u->sel_id = u->list[u->sel]->id;
        return true;
    }
    switch (key) {
    case '\n':
    case '\r':
    case KEY_ENTER:
        if (u->nlist)
            ui_open_task(u, u->list[u->sel]->id);
        return true;
    case '<':
        u->sort_col = (u->sort_col + TC_COUNT - 1) % TC_COUNT;
        break;
    case '>':
        u->sort_col = (u->sort_col + 1) % TC_COUNT;
        break;
    case 'r':
        u->sort_rev = !u->sort_rev;
        break;
    case 'd':
        u->show_done = !u->show_done;
        ui_message(u, u->show_done ? "showing done tasks" : "done tasks hidden");
        break;
    case 27:
        u->filter[0] = '\0';
        break;
    default:
        return false;
    }
    ui_tasks_rebuild(u);
    return true;
}
