/*
 * ui.c - the frame around the views (ui.h): title, tabs, status and key lines, the help,
 * keys that mean the same everywhere, and curses itself. Only ASCII is drawn by the frame
 * and no colour is needed, so it reads the same on any terminal, over ssh, at 80x24.
 */
#include "ui.h"

#include "stream.h"
#include "taskcols.h"
#include "text.h"

#include <curses.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_ESC 27
#define KEY_TAB '\t'
#define MSG_MS 4000
#define MIN_ROWS 10
#define MIN_COLS 40

static const char *const VIEW_NAMES[UI_NVIEWS] = { "tasks", "task", "resources", "workers",
                                                   "warnings" };

void ui_init(ui *u, cm_model *m, ui_source *src)
{
    memset(u, 0, sizeof *u);
    u->m = m;
    u->src = src;
    u->sort_col = TC_ID;
}

void ui_free(ui *u)
{
    free(u->warn);
    free(u->list);
    u->warn = NULL;
    u->list = NULL;
}

int ui_begin(void)
{
    if (!newterm(NULL, stdout, stdin)) {
        fprintf(stderr, "edo-console: cannot start the terminal UI (is TERM set?); "
                        "--once --json needs no terminal\n");
        return -1;
    }
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    /* Esc alone is a key here (back, clear the filter): do not wait long for a sequence. */
    set_escdelay(25);
    curs_set(0);
    return 0;
}

void ui_end(void)
{
    endwin();
}

int ui_getkey(void)
{
    return getch();
}

int ui_rows(void)
{
    return LINES;
}

int ui_cols(void)
{
    return COLS;
}

void ui_put(int y, int x, int attr, const char *text)
{
    if (y < 0 || y >= LINES || x >= COLS)
        return;
    int room = COLS - x;
    /* The bottom-right cell would scroll some terminals: leave it empty. */
    if (y == LINES - 1)
        room--;
    if (room <= 0)
        return;
    attrset(attr);
    mvaddnstr(y, x, text, (int)strlen(text) < room ? -1 : room);
    attrset(A_NORMAL);
}

/* Like ui_put, but the whole row in attr (a bar). */
static void put_bar(int y, int attr, const char *text)
{
    char line[1024] = "";
    tx_cell(line, sizeof line, text, COLS < (int)sizeof line - 1 ? COLS : (int)sizeof line - 1,
            true, false);
    ui_put(y, 0, attr, line);
}

void ui_message(ui *u, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(u->msg, sizeof u->msg, fmt, ap);
    va_end(ap);
    u->msg_until = cs_now_ms() + MSG_MS;
}

bool ui_move(int key, size_t *sel, size_t n, int page)
{
    size_t p = page > 1 ? (size_t)page - 1 : 1;
    switch (key) {
    case KEY_UP:
    case 'k':
        if (*sel > 0)
            (*sel)--;
        break;
    case KEY_DOWN:
    case 'j':
        if (*sel + 1 < n)
            (*sel)++;
        break;
    case KEY_PPAGE:
        *sel = *sel > p ? *sel - p : 0;
        break;
    case KEY_NPAGE:
        *sel = n && *sel + p < n ? *sel + p : (n ? n - 1 : 0);
        break;
    case KEY_HOME:
    case 'g':
        *sel = 0;
        break;
    case KEY_END:
    case 'G':
        *sel = n ? n - 1 : 0;
        break;
    default:
        return false;
    }
    return true;
}

void ui_scroll(size_t *top, size_t sel, size_t n, int rows)
{
    size_t r = rows > 0 ? (size_t)rows : 1;
    if (sel < *top)
        *top = sel;
    if (sel >= *top + r)
        *top = sel + 1 - r;
    if (n <= r)
        *top = 0;
    else if (*top > n - r)
        *top = n - r;
}

static int cmp_col;
static bool cmp_rev;

static int list_cmp(const void *a, const void *b)
{
    return tc_compare(*(const cm_task *const *)a, *(const cm_task *const *)b, cmp_col, cmp_rev);
}

void ui_tasks_rebuild(ui *u)
{
    free(u->list);
    u->list = malloc((u->m->nrows ? u->m->nrows : 1) * sizeof *u->list);
    u->nlist = 0;
    if (!u->list)
        return;
    for (size_t i = 0; i < u->m->nrows; i++) {
        const cm_task *t = &u->m->rows[i];
        if (t->origin == CM_DONE && !u->show_done)
            continue;
        if (tc_match(t, u->filter))
            u->list[u->nlist++] = t;
    }
    cmp_col = u->sort_col;
    cmp_rev = u->sort_rev;
    qsort(u->list, u->nlist, sizeof *u->list, list_cmp);
    /* Keep the selection on the same task when it is still listed. */
    for (size_t i = 0; i < u->nlist; i++)
        if (u->list[i]->id == u->sel_id) {
            u->sel = i;
            return;
        }
    if (u->sel >= u->nlist)
        u->sel = u->nlist ? u->nlist - 1 : 0;
    u->sel_id = u->nlist ? u->list[u->sel]->id : 0;
}

void ui_update(ui *u)
{
    free(u->warn);
    u->warn = NULL;
    u->nwarn = cl_lint(u->m, &u->warn, &u->warn_more);
    ui_tasks_rebuild(u);
    const cm_task *t = u->detail_id ? cm_row(u->m, u->detail_id) : NULL;
    if (t) {
        u->detail_last = *t;
        u->detail_seen = true;
    }
}

void ui_open_task(ui *u, uint64_t id)
{
    if (id != u->detail_id) {
        u->pane = UI_PANE_HIST;
        u->bt_top = 0;
    }
    u->detail_id = id;
    u->detail_seen = false;
    const cm_task *t = cm_row(u->m, id);
    if (t) {
        u->detail_last = *t;
        u->detail_seen = true;
    }
    u->view = UI_TASK;
}

/* ---- the frame ---------------------------------------------------------------------------- */

static void draw_title(ui *u)
{
    const cm_hello *h = &u->m->hello;
    const cm_snap *s = cm_snap_at(u->m, 0);
    char line[512], up[16];
    int n;
    if (h->seen) {
        char prog[80] = "";
        tx_cell(prog, sizeof prog, h->program[0] ? h->program : "?", 40, false, false);
        char backend[24] = "";
        tx_cell(backend, sizeof backend, h->backend, 12, false, false);
        n = snprintf(line, sizeof line,
                     " edo-console  %s  pid %" PRId64 "  %s, %" PRId64 " worker%s", prog, h->pid,
                     backend, h->workers, h->workers == 1 ? "" : "s");
    } else {
        n = snprintf(line, sizeof line, " edo-console");
    }
    if (s && n > 0 && (size_t)n < sizeof line) {
        tx_dur(up, sizeof up, s->uptime_ms > 0 ? (uint64_t)s->uptime_ms * 1000000 : 0);
        snprintf(line + n, sizeof line - (size_t)n, "  up %s  seq %" PRId64 "%s", up, s->seq,
                 s->clock_paused ? "  clock paused" : "");
    }
    put_bar(0, A_REVERSE, line);
}

static void draw_tabs(ui *u)
{
    int x = 0;
    for (int v = 0; v < UI_NVIEWS; v++) {
        char tab[48];
        if (v == UI_WARNINGS && u->nwarn + u->warn_more)
            snprintf(tab, sizeof tab, " %d %s (%zu) ", v + 1, VIEW_NAMES[v],
                     u->nwarn + u->warn_more);
        else
            snprintf(tab, sizeof tab, " %d %s ", v + 1, VIEW_NAMES[v]);
        ui_put(1, x, v == u->view ? A_REVERSE : A_NORMAL, tab);
        x += (int)strlen(tab);
    }
}

static void draw_status(ui *u)
{
    ui_source *src = u->src;
    char line[512];
    int y = LINES - 2;
    if (u->filtering) {
        char f[80] = "";
        tx_cell(f, sizeof f, u->filter, 60, false, false);
        snprintf(line, sizeof line, "filter: /%s_   (Enter: keep, Esc: clear)", f);
    } else if (u->msg[0] && cs_now_ms() < u->msg_until) {
        snprintf(line, sizeof line, "%s", u->msg);
    } else if (src->live && !src->connected) {
        snprintf(line, sizeof line, "%s", src->conn_msg);
    } else if (!src->live) {
        snprintf(line, sizeof line, "replay %zu/%zu  x%g%s   space pause  , . step  - + speed",
                 src->count ? src->pos + 1 : 0, src->count, src->speed,
                 src->paused ? "  paused" : "");
    } else {
        char name[160] = "";
        tx_cell(name, sizeof name, src->name, 100, false, false);
        snprintf(line, sizeof line, "live: %s%s%s%s", name,
                 src->record_path ? "  recording to " : "",
                 src->record_path ? src->record_path : "",
                 src->record_failed ? " (a write failed)" : "");
    }
    char safe[1024] = "";
    tx_cell(safe, sizeof safe, line, COLS, false, false);
    ui_put(y, 0, A_NORMAL, safe);
    if (u->m->bad_lines) {
        char bad[64];
        snprintf(bad, sizeof bad, " malformed lines: %" PRIu64 " ", u->m->bad_lines);
        int x = COLS - (int)strlen(bad);
        if (x > (int)strlen(safe))
            ui_put(y, x, A_BOLD, bad);
    }
}

static const char *const HELP[] = {
    "edo-console keys",
    "",
    "  q            quit",
    "  ?            this help (any key closes it)",
    "  Tab, 1-5     switch view: tasks, task, resources, workers, warnings",
    "  Up Down j k  move; PgUp PgDn Home End",
    "",
    "tasks     Enter: open the task   / filter (name, state, site)   Esc: clear",
    "          < >: sort column   r: reverse the sort   d: show done tasks",
    "task      b: ask for its backtrace   h: its run-time histogram",
    "          n p: next, previous task   Esc: back to the tasks",
    "resources Enter: open the holder (or the first waiter)",
    "warnings  Enter: open the task of the warning at the top",
    "replay    space: pause   . or Right: step forward   , or Left: back",
    "          + -: faster, slower",
};

static void draw_help(void)
{
    int n = (int)(sizeof HELP / sizeof HELP[0]);
    int w = 0;
    for (int i = 0; i < n; i++)
        if ((int)strlen(HELP[i]) > w)
            w = (int)strlen(HELP[i]);
    w += 4;
    if (w > COLS)
        w = COLS;
    int h = n + 2 > LINES ? LINES : n + 2;
    int y0 = (LINES - h) / 2, x0 = (COLS - w) / 2;
    char line[256];
    for (int r = 0; r < h; r++) {
        const char *text = r == 0 || r == h - 1 ? NULL : HELP[r - 1];
        if (!text) {
            memset(line, '-', (size_t)w);
            line[0] = line[w - 1] = '+';
        } else {
            snprintf(line, sizeof line, "| %-*s |", w - 4, text);
        }
        line[w] = '\0';
        ui_put(y0 + r, x0, A_NORMAL, line);
    }
}

void ui_draw(ui *u)
{
    erase();
    if (LINES < MIN_ROWS || COLS < MIN_COLS) {
        ui_put(0, 0, A_NORMAL, "edo-console: the terminal is too small");
        refresh();
        return;
    }
    draw_title(u);
    draw_tabs(u);
    int top = 2, rows = LINES - 4;
    if (!cm_snap_at(u->m, 0)) {
        ui_put(top, 1, A_NORMAL,
               u->src->live
                   ? (u->src->connected ? "waiting for the first snapshot..." : "not connected")
                   : "no snapshot");
    } else {
        switch (u->view) {
        case UI_TASKS:
            view_tasks_draw(u, top, rows);
            break;
        case UI_TASK:
            view_task_draw(u, top, rows);
            break;
        case UI_RESOURCES:
            view_resources_draw(u, top, rows);
            break;
        case UI_WORKERS:
            view_workers_draw(u, top, rows);
            break;
        default:
            view_warnings_draw(u, top, rows);
            break;
        }
    }
    draw_status(u);
    put_bar(LINES - 1, A_REVERSE, view_keys(u));
    if (u->help)
        draw_help();
    refresh();
}

static void filter_key(ui *u, int key)
{
    size_t n = strlen(u->filter);
    if (key == KEY_ESC) {
        u->filter[0] = '\0';
        u->filtering = false;
    } else if (key == '\n' || key == '\r' || key == KEY_ENTER) {
        u->filtering = false;
    } else if (key == KEY_BACKSPACE || key == 127 || key == 8) {
        if (n)
            u->filter[n - 1] = '\0';
    } else if (key >= 0x20 && key < 0x7f && n + 1 < sizeof u->filter) {
        u->filter[n] = (char)key;
        u->filter[n + 1] = '\0';
    } else {
        return;
    }
    u->sel = 0;
    u->top = 0;
    u->sel_id = 0;
    ui_tasks_rebuild(u);
}

void ui_key(ui *u, int key)
{
    if (key == KEY_RESIZE)
        return; /* curses knows the new size; the redraw that follows uses it */
    if (u->help) {
        u->help = false;
        return;
    }
    if (u->filtering) {
        filter_key(u, key);
        return;
    }
    switch (key) {
    case 'q':
        u->quit = true;
        return;
    case '?':
        u->help = true;
        return;
    case KEY_TAB:
        u->view = (u->view + 1) % UI_NVIEWS;
        return;
    case KEY_BTAB:
        u->view = (u->view + UI_NVIEWS - 1) % UI_NVIEWS;
        return;
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
        u->view = key - '1';
        if (u->view == UI_TASK && !u->detail_id && u->nlist)
            ui_open_task(u, u->list[u->sel]->id);
        return;
    case '/':
        u->view = UI_TASKS;
        u->filtering = true;
        return;
    default:
        break;
    }
    if (!u->src->live) {
        switch (key) {
        case ' ':
            u->src->replay(u->src->ctx, UI_RP_PAUSE);
            return;
        case '.':
        case KEY_RIGHT:
            u->src->replay(u->src->ctx, UI_RP_NEXT);
            return;
        case ',':
        case KEY_LEFT:
            u->src->replay(u->src->ctx, UI_RP_PREV);
            return;
        case '+':
        case '=':
            u->src->replay(u->src->ctx, UI_RP_FASTER);
            return;
        case '-':
            u->src->replay(u->src->ctx, UI_RP_SLOWER);
            return;
        default:
            break;
        }
    }
    switch (u->view) {
    case UI_TASKS:
        view_tasks_key(u, key);
        break;
    case UI_TASK:
        view_task_key(u, key);
        break;
    case UI_RESOURCES:
        view_resources_key(u, key);
        break;
    case UI_WORKERS:
        view_workers_key(u, key);
        break;
    default:
        view_warnings_key(u, key);
        break;
    }
}

const char *view_keys(const ui *u)
{
    switch (u->view) {
    case UI_TASKS:
        return " q quit  ? help  Tab view  Enter open  / filter  < > sort  r reverse  d done";
    case UI_TASK:
        return " q quit  ? help  Tab view  Esc back  b backtrace  h histogram  n p next/prev";
    case UI_RESOURCES:
        return " q quit  ? help  Tab view  Up Down move  Enter open holder or waiter";
    case UI_WORKERS:
        return " q quit  ? help  Tab view  1 tasks  3 resources  5 warnings";
    default:
        return " q quit  ? help  Tab view  Up Down scroll  Enter open the top warning's task";
    }
}
