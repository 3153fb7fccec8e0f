/*
 * report.h - the outputs that need no terminal: `--once --json` (one snapshot as a JSON
 * object with the hello and the warnings added) from a live program or a recording, and
 * `--replay FILE --dump` (every snapshot of a recording as text). Called by main.c.
 */
#ifndef EDO_CONSOLE_REPORT_H
#define EDO_CONSOLE_REPORT_H

#include <stdint.h>
#include <stdio.h>

/* Connects to addr, reads the hello and the first snapshot, prints the JSON object to
 * out. Waits at most timeout_ms for each line. Returns 0, or 1 after a message on stderr
 * (cannot connect, the stream is bad or ends first). */
int report_once_live(const char *addr, int64_t timeout_ms, FILE *out);

/* The same for the first snapshot of a recording. */
int report_once_file(const char *path, FILE *out);

/* Prints every snapshot of a recording as text, `cols` columns wide. */
int report_dump(const char *path, int cols, FILE *out);

#endif
