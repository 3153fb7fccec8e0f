/*
 * record.h - recordings of a console stream (the format is in docs/console.md, under
 * "Recordings"): writing one while watching, and reading one back for --replay with an
 * index of its snapshots, so that a replay can step back as easily as forward. Used by
 * main.c and report.c.
 */
#ifndef EDO_CONSOLE_RECORD_H
#define EDO_CONSOLE_RECORD_H

#include "model.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct rc_writer {
    FILE *f;
    int64_t t0;  /* cs_now_ms() when the recording began */
    bool failed; /* a write failed: the recording is incomplete (the caller says so once) */
} rc_writer;

/* Creates (or truncates) path and writes the recording's first line. Returns 0, or -errno
 * with err set. */
int rc_open(rc_writer *w, const char *path, const char *source, char *err, size_t errlen);
/* Appends a line as it arrived; a snapshot is preceded by its receive time. */
void rc_line(rc_writer *w, const char *line, size_t len, bool snapshot, int64_t recv_ms);
/* Flushes and closes; returns 0 or -errno if any write failed. */
int rc_close(rc_writer *w);

typedef struct rp_snap {
    uint64_t off; /* the snapshot line's offset in the file */
    uint32_t len;
    int64_t at_ms;      /* when it arrived, in ms since the recording began */
    uint64_t hello_off; /* the hello that came before it */
    uint32_t hello_len;
} rp_snap;

typedef struct rp_file {
    int fd;
    rp_snap *snaps;
    size_t nsnaps;
    uint64_t bad_lines; /* lines that are not the protocol's (and over-long ones) */
    size_t cur;         /* the snapshot the model shows; SIZE_MAX: none yet */
    char *buf;
    size_t cap;
} rp_file;

/* Opens and indexes a recording (or a plain capture of the stream: without receive times
 * the snapshots' own uptimes pace the replay). Returns 0, or -errno with err set; a file
 * with no valid snapshot is -ENODATA. */
int rp_open(rp_file *r, const char *path, char *err, size_t errlen);
void rp_close(rp_file *r);

/* Makes m show snapshot i (with the ones before it in its history, so that deltas and
 * lints are as they were live). Returns 0 or -errno. */
int rp_seek(rp_file *r, cm_model *m, size_t i);

/* Reads line [off, off+len) of the file into r's buffer, NUL-terminated; NULL on error. */
char *rp_read(rp_file *r, uint64_t off, uint32_t len);

#endif
