/*
 * ui.h - the terminal UI: its state (which view, sort, filter, selections), the frame every
 * view is drawn in (title, tabs, status and key lines), key dispatch, help, and the drawing
 * functions the views share. main.c owns the source of the data (a live program or a
 * recording) and tells the UI when the model changed; the UI asks the source for what
 * only it can do (send a command, step a replay) through ui_source. The views
 * (view_*.c) keep their state here and draw with ui_put.
 */
#ifndef EDO_CONSOLE_UI_H
#define EDO_CONSOLE_UI_H

#include "lint.h"
#include "model.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ui_view { UI_TASKS, UI_TASK, UI_RESOURCES, UI_WORKERS, UI_WARNINGS, UI_NVIEWS };

/* What a replay can be told to do. */
enum ui_replay_op { UI_RP_PAUSE, UI_RP_NEXT, UI_RP_PREV, UI_RP_FASTER, UI_RP_SLOWER };

typedef struct ui_source {
    bool live;        /* a program; else a recording */
    const char *name; /* its address, or the recording's path */
    /* live */
    bool connected;
    char conn_msg[256];      /* why it is not connected, what it is doing about it */
    const char *record_path; /* recording to it, NULL: not */
    bool record_failed;
    /* a recording */
    size_t pos, count; /* the snapshot shown (0-based), of how many */
    bool paused;
    double speed;
    void *ctx;
    int (*send)(void *ctx, const char *cmd); /* live: 0 or -errno */
    void (*replay)(void *ctx, enum ui_replay_op op);
} ui_source;

enum ui_pane { UI_PANE_HIST, UI_PANE_BACKTRACE };

typedef struct ui {
    cm_model *m;
    ui_source *src;
    int view;
    bool help;
    bool quit;
    char msg[256]; /* a passing message on the status line */
    int64_t msg_until;
    /* warnings, computed once per snapshot */
    cl_warning *warn;
    size_t nwarn, warn_more;
    /* tasks view */
    const cm_task **list; /* the rows shown: filtered and sorted */
    size_t nlist;
    int sort_col;
    bool sort_rev;
    bool show_done;
    char filter[64];
    bool filtering; /* typing the filter */
    uint64_t sel_id;
    size_t sel, top;
    /* task view */
    uint64_t detail_id;
    cm_task detail_last; /* what was last seen of it, for when it is gone */
    bool detail_seen;
    int pane;
    uint64_t bt_asked_id;    /* 0: none asked */
    uint64_t bt_count_asked; /* the model's bt_count when asked */
    size_t bt_top;
    /* resources, workers, warnings views */
    size_t res_sel, res_top;
    size_t warn_top;
} ui;

void ui_init(ui *u, cm_model *m, ui_source *src);
void ui_free(ui *u);

/* Starts and ends curses; ui_begin returns 0 or -1 (no terminal) after a message. */
int ui_begin(void);
void ui_end(void);

/* The model changed (a snapshot, a backtrace, a reset): recompute what depends on it. */
void ui_update(ui *u);
/* Redraws the whole screen. */
void ui_draw(ui *u);
/* One key (curses' code). */
void ui_key(ui *u, int key);
/* The next key, ERR when none is waiting. */
int ui_getkey(void);

/* Shows a passing message on the status line for a few seconds. */
void ui_message(ui *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- for the views ---------------------------------------------------------------------- */

/* Draws text (already made safe: text.h) at row y, column x, cut at the screen's edge. */
void ui_put(int y, int x, int attr, const char *text);
/* The screen's size. */
int ui_rows(void);
int ui_cols(void);
/* Rebuilds the tasks view's list (after new data, a filter or sort change). */
void ui_tasks_rebuild(ui *u);
/* Opens the task view on task id. */
void ui_open_task(ui *u, uint64_t id);

/* The views: each draws rows [top, top + rows) and takes the keys it knows (true: taken). */
void view_tasks_draw(ui *u, int top, int rows);
bool view_tasks_key(ui *u, int key);
void view_task_draw(ui *u, int top, int rows);
bool view_task_key(ui *u, int key);
void view_resources_draw(ui *u, int top, int rows);
bool view_resources_key(ui *u, int key);
void view_workers_draw(ui *u, int top, int rows);
bool view_workers_key(ui *u, int key);
void view_warnings_draw(ui *u, int top, int rows);
bool view_warnings_key(ui *u, int key);

/* The keys line of each view (the bottom line). */
const char *view_keys(const ui *u);

/* Moves a selection by a key (Up, Down, PgUp, PgDn, Home, End, j, k) within n rows, with
 * `page` rows to a page; true if the key was one of those. */
bool ui_move(int key, size_t *sel, size_t n, int page);
/* Scrolls top so that sel is one of the `rows` rows shown. */
void ui_scroll(size_t *top, size_t sel, size_t n, int rows);

#endif
