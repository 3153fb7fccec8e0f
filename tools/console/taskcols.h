/*
 * taskcols.h - the columns of the task table: their names, widths, how a task's cell reads
 * and how two tasks compare by it. The tasks view draws and sorts with them; the --dump
 * output prints the same rows, so a recording reads the same on paper as on screen.
 */
#ifndef EDO_CONSOLE_TASKCOLS_H
#define EDO_CONSOLE_TASKCOLS_H

#include "model.h"

#include <stddef.h>

enum {
    TC_ID,
    TC_NAME,
    TC_STATE,
    TC_WAIT,
    TC_BUSY,
    TC_IDLE,
    TC_RESUMES,
    TC_WORKER,
    TC_SITE,
    TC_COUNT
};

/* The column's header ("BUSY") and its lower-case name ("busy"). */
const char *tc_title(int col);
const char *tc_name(int col);

/* Compares a and b by column col (ties: by id), reversed when rev is set. */
int tc_compare(const cm_task *a, const cm_task *b, int col, bool rev);

/* Writes the header (t NULL) or t's row into buf, laid out for `cols` columns; the sort
 * column (-1: none) is marked in the header with '^' (ascending) or 'v'. */
void tc_row(char *buf, size_t n, const cm_task *t, int cols, int sort_col, bool rev);

/* Whether t matches filter text f (case-insensitive, in its name, state or spawn site). */
bool tc_match(const cm_task *t, const char *f);

#endif
