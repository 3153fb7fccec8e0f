/*
 * The observation layer's internals: the observer thread that serves the console and the
 * metrics endpoint (endpoint.c), the JSON lines of the console protocol (json.c,
 * docs/console.md), the Prometheus text (metrics.c) and the growable text buffer they all
 * write into (text.c).
 *
 * Everything here runs on the thread that asks for it: the observer thread for the
 * endpoints, a program's thread for edo_metrics_format. None of it touches the runtime
 * except through the snapshot functions of edo/observe.h, which any thread may call, so
 * an observer keeps working while every worker is stuck. An edo__history belongs to one
 * observer thread.
 */
#ifndef EDO_OBSERVE_OBSERVE_H
#define EDO_OBSERVE_OBSERVE_H

#include "edo.h"
#include "edo/observe.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- text.c: a growable text buffer ------------------------------------------------------
 * Appends never fail on their own: a buffer that cannot grow (out of memory, or past its
 * limit) is marked failed and ignores what follows, so a writer checks once at the end. */

typedef struct edo__text {
    char *buf; /* NUL-terminated while len < cap */
    size_t len;
    size_t cap;
    size_t limit; /* most bytes it may hold; 0: no limit */
    bool failed;
} edo__text;

void edo__text_put(edo__text *t, const char *s, size_t n);
void edo__text_puts(edo__text *t, const char *s);
void edo__text_printf(edo__text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void edo__text_free(edo__text *t);

/* ---- json.c: the console protocol's lines ------------------------------------------------ */

/* s as a JSON string, quoted: control bytes escaped, bytes that are not UTF-8 replaced by
 * U+FFFD, so the line stays valid whatever a task was named. NULL: null. */
void edo__json_string(edo__text *t, const char *s, size_t n);

/* What successive snapshots remember: the tasks the last one saw (to find those that
 * returned since) and the ones found gone, for the "done" list. */
typedef struct edo__history edo__history;

edo__history *edo__history_new(void);
void edo__history_free(edo__history *h);

/* The `hello` line, with its newline. */
void edo__json_hello(edo__text *t, edo_runtime *rt, int interval_ms);

/* The body of a `snapshot` line: what follows `{"type":"snapshot","seq":N,` (a client's
 * own sequence number goes before it), up to and with the newline. Updates h. */
void edo__json_snapshot(edo__text *t, edo_runtime *rt, edo__history *h);

/* The answer to `backtrace ID`, with its newline. */
void edo__json_backtrace(edo__text *t, edo_runtime *rt, uint64_t id);

/* ---- metrics.c ----------------------------------------------------------------------------- */

/* rt's metrics in Prometheus's text format, appended to t. */
void edo__metrics_text(edo__text *t, edo_runtime *rt);

/* ---- endpoint.c ---------------------------------------------------------------------------- */

typedef struct edo__observer edo__observer;

/* Opens the endpoints opts or the environment ask for (the console, the metrics
 * endpoint): *out is NULL when none is asked for, and then nothing at all was made. An
 * endpoint that cannot be opened has been named on stderr with the reason. Returns 0 or
 * -errno. edo_runtime_new calls it before it makes the runtime, so that this failure
 * leaves nothing to undo. */
int edo__observe_open(edo__observer **out, const edo_runtime_opts *opts);

/* Starts the observer thread that serves o's endpoints for rt, and sets rt->observe and
 * rt->observe_stop (edo_runtime_free stops it, closes everything and removes the Unix
 * socket's file). Says on stderr (unless EDO_LOG=0) where each endpoint listens. On
 * failure o is closed. Returns 0 or -errno. */
int edo__observe_start(edo__observer *o, edo_runtime *rt);

/* Closes what edo__observe_open opened, for a runtime that could not be made. */
void edo__observe_close(edo__observer *o);

#endif
