/*
 * stream.h - the console's side of a connection to a program: what an address means
 * (a path is a Unix socket, HOST:PORT, :PORT or PORT is TCP, the last two on loopback),
 * connecting, splitting what arrives into lines, and sending a command. A program that
 * sends a line longer than the limit has that line skipped, not the client's memory
 * exhausted. Owned by main.c (live mode) and report.c; record.c reads files with it too.
 */
#ifndef EDO_CONSOLE_STREAM_H
#define EDO_CONSOLE_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest line kept: a snapshot of 10,000 tasks (the protocol's limit) with long
 * names is a few megabytes; this leaves room and still bounds what a peer can make us
 * hold. */
#define CS_MAX_LINE (32u << 20)

typedef struct cs_lines {
    int fd;
    char *buf;
    size_t start, len, cap; /* unread data is buf[start..len) */
    size_t scanned;         /* of it, bytes known to hold no newline */
    size_t max_line;
    bool skipping;     /* inside a line over max_line: dropped up to its newline */
    uint64_t base;     /* the stream offset of buf[0] */
    uint64_t line_off; /* the stream offset of the line cs_lines_next returned last */
    uint64_t too_long; /* lines dropped for their length */
} cs_lines;

/* Connects to addr; on success stores a non-blocking descriptor in *fd and returns 0.
 * On failure returns -errno and writes why into err (a whole sentence, no newline). */
int cs_connect(const char *addr, int *fd, char *err, size_t errlen);

/* Starts reading lines from fd (not taken over: the caller closes it). */
void cs_lines_init(cs_lines *l, int fd, size_t max_line);
void cs_lines_free(cs_lines *l);

/* Reads what fd has now. Returns the bytes read (> 0), 0 at the end of the stream,
 * -EAGAIN when nothing is there yet, or another -errno. */
long cs_lines_fill(cs_lines *l);

/* The next whole line, without its newline (a CR before it is kept: the parser takes it as
 * white space), NUL-terminated in the reader's buffer and valid until the next call. 1: a
 * line, 0: no whole line buffered. At the end of a stream, cs_lines_rest gives a last
 * line that had no newline. */
int cs_lines_next(cs_lines *l, char **line, size_t *len);
int cs_lines_rest(cs_lines *l, char **line, size_t *len);

/* Sends one command line ("backtrace 12"); a newline is added. Returns 0 or -errno
 * (-EAGAIN when the socket buffer is full: the command is dropped, the caller says so). */
int cs_send(int fd, const char *cmd);

/* A monotonic clock in milliseconds, for receive times and timeouts. */
int64_t cs_now_ms(void);

#endif
