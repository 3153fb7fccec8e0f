/*
 * text.h - turning the program's values into screen text: durations and counts in a few
 * columns, and strings made safe to print (a control character or a byte that is not
 * valid UTF-8 becomes '?', so a task name cannot move the cursor or switch the terminal's
 * character set) and cut or padded to a width in columns. Shared by the views and the
 * --dump output; no state but whether the terminal takes UTF-8.
 */
#ifndef EDO_CONSOLE_TEXT_H
#define EDO_CONSOLE_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Whether text may keep UTF-8 characters (else every non-ASCII one is '?'). */
void tx_set_utf8(bool on);

/* Appends src to dst (capacity n, NUL-terminated), made safe and cut to `cols` columns,
 * then pads with spaces to `cols` when pad is set (right-aligned when right is set).
 * Returns the columns written. Each character counts as one column. */
int tx_cell(char *dst, size_t n, const char *src, int cols, bool pad, bool right);

/* "850ns", "12us", "3.4ms", "1.20s", "12.0s", "4m05s", "3h12m" (at most 6 columns). */
void tx_dur(char *buf, size_t n, uint64_t ns);
/* "99999", "123k", "4.5M", "123M", "7.8G" (at most 6 columns). */
void tx_count(char *buf, size_t n, uint64_t v);
/* A time in milliseconds ago: tx_dur of it, "-" when unknown. */
void tx_ago(char *buf, size_t n, int64_t now_ms, int64_t then_ms);

#endif
