/*
 * taskcols.c - the task table's columns (taskcols.h). At 80 columns every column but the
 * name and the site has its fixed width and the site keeps room for "file.c:1234"; what a
 * wider terminal adds goes to the name first (up to its 31 characters), then the site,
 * which is shown without its directories (the task view has all of it).
 */
#include "taskcols.h"

#include "text.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct col {
    const char *title, *name;
    int width; /* 0: stretches */
    bool right;
};

static const struct col COLS[TC_COUNT] = {
    [TC_ID] = { "ID", "id", 5, true },
    [TC_NAME] = { "NAME", "name", 0, false },
    [TC_STATE] = { "STATE", "state", 7, false },
    [TC_WAIT] = { "WAIT", "wait", 6, false },
    [TC_BUSY] = { "BUSY", "busy", 6, true },
    [TC_IDLE] = { "IDLE", "idle", 6, true },
    [TC_RESUMES] = { "RESUMES", "resumes", 7, true },
    [TC_WORKER] = { "W", "worker", 2, true },
    [TC_SITE] = { "SITE", "site", 0, false },
};

#define NAME_MIN 12
#define NAME_MAX 31
#define SITE_MIN 12

const char *tc_title(int col)
{
    return COLS[col].title;
}

const char *tc_name(int col)
{
    return COLS[col].name;
}

static int num_cmp(uint64_t a, uint64_t b)
{
    return a < b ? -1 : a > b;
}

int tc_compare(const cm_task *a, const cm_task *b, int col, bool rev)
{
    int c = 0;
    switch (col) {
    case TC_NAME:
        c = strcmp(a->name, b->name);
        break;
    case TC_STATE:
        c = strcmp(a->state, b->state);
        break;
    case TC_WAIT:
        c = strcmp(a->wait, b->wait);
        break;
    case TC_BUSY:
        c = num_cmp(a->busy_ns, b->busy_ns);
        break;
    case TC_IDLE:
        c = num_cmp(a->idle_ns, b->idle_ns);
        break;
    case TC_RESUMES:
        c = num_cmp(a->resumes, b->resumes);
        break;
    case TC_WORKER:
        c = a->worker < b->worker ? -1 : a->worker > b->worker;
        break;
    case TC_SITE:
        c = strcmp(a->site, b->site);
        break;
    default:
        break;
    }
    if (c == 0)
        c = num_cmp(a->id, b->id);
    return rev ? -c : c;
}

/* The widths of the stretching columns for a line of `cols` columns. */
static void widths(int cols, int *name, int *site)
{
    int fixed = 0;
    for (int i = 0; i < TC_COUNT; i++)
        fixed += COLS[i].width + 1;
    int rest = cols - fixed;
    if (rest < NAME_MIN + SITE_MIN)
        rest = NAME_MIN + SITE_MIN;
    *name = rest - SITE_MIN - 9 < NAME_MIN ? NAME_MIN : rest - SITE_MIN - 9;
    if (*name > NAME_MAX)
        *name = NAME_MAX;
    *site = rest - *name;
}

void tc_row(char *buf, size_t n, const cm_task *t, int cols, int sort_col, bool rev)
{
    int wname, wsite;
    widths(cols, &wname, &wsite);
    buf[0] = '\0';
    for (int i = 0; i < TC_COUNT; i++) {
        int w = COLS[i].width ? COLS[i].width : i == TC_NAME ? wname : wsite;
        char cell[160];
        if (!t) {
            snprintf(cell, sizeof cell, "%s%s", COLS[i].title,
                     i == sort_col ? (rev ? "v" : "^") : "");
        } else {
            switch (i) {
            case TC_ID:
                snprintf(cell, sizeof cell, "%" PRIu64, t->id);
                break;
            case TC_NAME:
                snprintf(cell, sizeof cell, "%s", t->name);
                break;
            case TC_STATE:
                /* '*': left out of the newest snapshot (its size limit), shown as last seen */
                snprintf(cell, sizeof cell, "%s%s", t->state, t->origin == CM_STALE ? "*" : "");
                break;
            case TC_WAIT:
                snprintf(cell, sizeof cell, "%s", strcmp(t->wait, "none") ? t->wait : "");
                break;
            case TC_BUSY:
                tx_dur(cell, sizeof cell, t->busy_ns);
                break;
            case TC_IDLE:
                if (t->origin == CM_DONE)
                    snprintf(cell, sizeof cell, "-");
                else
                    tx_dur(cell, sizeof cell, t->idle_ns);
                break;
            case TC_RESUMES:
                tx_count(cell, sizeof cell, t->resumes);
                break;
            case TC_WORKER:
                if (t->worker < 0)
                    snprintf(cell, sizeof cell, "-");
                else
                    snprintf(cell, sizeof cell, "%" PRId64, t->worker);
                break;
            default: {
                /* The file's name and line: compilers give __FILE__ with the path the
                 * build used, which says little and takes the room. */
                const char *slash = strrchr(t->site, '/');
                snprintf(cell, sizeof cell, "%s", slash ? slash + 1 : t->site);
                break;
            }
            }
        }
        tx_cell(buf, n, cell, w, i != TC_SITE, COLS[i].right);
        if (i != TC_SITE)
            tx_cell(buf, n, " ", 1, false, false);
    }
}

bool tc_match(const cm_task *t, const char *f)
{
    if (!f || !*f)
        return true;
    return strcasestr(t->name, f) || strcasestr(t->state, f) || strcasestr(t->site, f);
}
