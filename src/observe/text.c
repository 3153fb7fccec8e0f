/*
 * The growable text buffer (observe.h) the observer's writers append to: a snapshot, a
 * metrics page. Used by one thread at a time, the one that owns the edo__text.
 */
#include "observe/observe.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Makes room for n more bytes and the NUL; false (and failed) if it cannot. */
static bool reserve(edo__text *t, size_t n)
{
    if (t->failed)
        return false;
    if (t->limit && t->len + n > t->limit) {
        t->failed = true;
        return false;
    }
    if (t->len + n + 1 <= t->cap)
        return true;
    size_t cap = t->cap ? t->cap : 4096;
    while (cap < t->len + n + 1)
        cap *= 2;
    char *p = realloc(t->buf, cap);
    if (!p) {
        t->failed = true;
        return false;
    }
    t->buf = p;
    t->cap = cap;
    return true;
}

void edo__text_put(edo__text *t, const char *s, size_t n)
{
    if (!reserve(t, n))
        return;
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = 0;
}

void edo__text_puts(edo__text *t, const char *s)
{
    edo__text_put(t, s, strlen(s));
}

void edo__text_printf(edo__text *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    /* Most pieces are short: try in the room there is, grow only when it did not fit. */
    char *at = t->cap > t->len ? t->buf + t->len : NULL;
    size_t room = t->cap > t->len ? t->cap - t->len : 0;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(at, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
        t->failed = true;
        return;
    }
    if ((size_t)n >= room) {
        if (!reserve(t, (size_t)n))
            return;
        va_start(ap, fmt);
        vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
    } else if (t->limit && t->len + (size_t)n > t->limit) {
        t->failed = true;
        t->buf[t->len] = 0;
        return;
    }
    t->len += (size_t)n;
}

void edo__text_free(edo__text *t)
{
    free(t->buf);
    t->buf = NULL;
    t->len = t->cap = 0;
    t->failed = false;
}
