/*
 * view_warnings.c - the lints (lint.c) and the program's blocking reports with the stacks
 * they were caught at, as a text that scrolls. Enter opens the task of the warning at the
 * top of the screen.
 */
#include "text.h"
#include "ui.h"

#include <curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KIND_W 14

struct wline {
    char text[512];
    int attr;
    size_t warning; /* the warning it belongs to */
};

struct lines {
    struct wline *l;
    size_t n, cap;
};

static struct wline *add(struct lines *ls, size_t warning, int attr)
{
    if (ls->n == ls->cap) {
        size_t cap = ls->cap ? ls->cap * 2 : 64;
        struct wline *l = realloc(ls->l, cap * sizeof *l);
        if (!l)
            return NULL;
        ls->l = l;
        ls->cap = cap;
    }
    struct wline *w = &ls->l[ls->n++];
    w->text[0] = '\0';
    w->attr = attr;
    w->warning = warning;
    return w;
}

/* Adds text made safe and wrapped at `cols` columns, its later lines indented. */
static void add_wrapped(struct lines *ls, size_t warning, const char *prefix, const char *text,
                        int cols, int indent)
{
    char safe[1024] = "";
    tx_cell(safe, sizeof safe, text, (int)sizeof safe - 1, false, false);
    const char *p = safe;
    bool first = true;
    do {
        struct wline *w = add(ls, warning, A_NORMAL);
        if (!w)
            return;
        int room = cols - 1;
        if (first) {
            snprintf(w->text, sizeof w->text, "%s", prefix);
            room -= (int)strlen(prefix);
        } else {
            snprintf(w->text, sizeof w->text, "%*s", indent, "");
            room -= indent;
        }
        if (room < 10)
            room = 10;
        size_t n = strlen(p);
        if (n > (size_t)room) {
            /* Break at the last space that fits, if there is one not too far back. */
            size_t cut = (size_t)room;
            while (cut > (size_t)room / 2 && p[cut] != ' ')
                cut--;
            n = p[cut] == ' ' ? cut : (size_t)room;
        }
        size_t k = strlen(w->text);
        snprintf(w->text + k, sizeof w->text - k, "%.*s", (int)n, p);
        p += n;
        while (*p == ' ')
            p++;
        first = false;
    } while (*p);
}

static void build(const ui *u, struct lines *ls, int cols)
{
    for (size_t i = 0; i < u->nwarn; i++) {
        const cl_warning *w = &u->warn[i];
        char prefix[160] = "";
        tx_cell(prefix, sizeof prefix, w->kind, KIND_W, true, false);
        tx_cell(prefix, sizeof prefix, w->subject, 60, false, false);
        size_t k = strlen(prefix);
        snprintf(prefix + k, sizeof prefix - k, ": ");
        add_wrapped(ls, i, prefix, w->reason, cols, KIND_W + 2);
        if (!w->stack)
            continue;
        const char *p = w->stack;
        while (*p) {
            const char *nl = strchr(p, '\n');
            size_t n = nl ? (size_t)(nl - p) : strlen(p);
            char raw[400];
            snprintf(raw, sizeof raw, "%.*s", (int)(n < sizeof raw - 1 ? n : sizeof raw - 1), p);
            struct wline *l = add(ls, i, A_NORMAL);
            if (!l)
                return;
            snprintf(l->text, sizeof l->text, "%*s", KIND_W + 2, "");
            tx_cell(l->text, sizeof l->text, raw, cols - KIND_W - 3, false, false);
            p += n + (nl ? 1 : 0);
        }
    }
    if (u->warn_more) {
        struct wline *l = add(ls, SIZE_MAX, A_NORMAL);
        if (l)
            snprintf(l->text, sizeof l->text, "... and %zu more", u->warn_more);
    }
}

void view_warnings_draw(ui *u, int top, int rows)
{
    struct lines ls = { 0 };
    int cols = ui_cols();
    build(u, &ls, cols);
    char line[128];
    snprintf(line, sizeof line, "%zu warning%s", u->nwarn + u->warn_more,
             u->nwarn + u->warn_more == 1 ? "" : "s");
    ui_put(top, 1, A_NORMAL, line);
    int body = rows - 1;
    if (ls.n <= (size_t)body)
        u->warn_top = 0;
    else if (u->warn_top > ls.n - (size_t)body)
        u->warn_top = ls.n - (size_t)body;
    for (int r = 0; r < body && u->warn_top + (size_t)r < ls.n; r++) {
        const struct wline *l = &ls.l[u->warn_top + (size_t)r];
        ui_put(top + 1 + r, 0, l->attr, l->text);
    }
    if (!ls.n)
        ui_put(top + 1, 1, A_NORMAL, "nothing looks wrong");
    free(ls.l);
}

bool view_warnings_key(ui *u, int key)
{
    struct lines ls = { 0 };
    build(u, &ls, ui_cols());
    bool taken = true;
    size_t n = ls.n;
    if (!ui_move(key, &u->warn_top, n, ui_rows() - 5)) {
        if ((key == '\n' || key == '\r' || key == KEY_ENTER) && u->warn_top < n &&
            ls.l[u->warn_top].warning < u->nwarn && u->warn[ls.l[u->warn_top].warning].task)
            ui_open_task(u, u->warn[ls.l[u->warn_top].warning].task);
        else
            taken = false;
    }
    free(ls.l);
    return taken;
}
