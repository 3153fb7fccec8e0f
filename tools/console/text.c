/*
 * text.c - numbers and program strings as screen text (text.h).
 */
#include "text.h"

#include "json.h"
#include "model.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static bool utf8_ok;

void tx_set_utf8(bool on)
{
    utf8_ok = on;
}

int tx_cell(char *dst, size_t n, const char *src, int cols, bool pad, bool right)
{
    size_t off = strlen(dst);
    const unsigned char *s = (const unsigned char *)(src ? src : "");
    const unsigned char *end = s + strlen((const char *)s);
    char tmp[1024];
    size_t t = 0;
    int used = 0;
    while (s < end && used < cols && t + 5 < sizeof tmp) {
        if (*s >= 0x20 && *s < 0x7f) {
            tmp[t++] = (char)*s++;
        } else {
            size_t k = utf8_ok && *s >= 0x80 ? cj_utf8_len(s, end) : 0;
            if (k) {
                memcpy(tmp + t, s, k);
                t += k;
                s += k;
            } else {
                tmp[t++] = '?';
                s++;
            }
        }
        used++;
    }
    tmp[t] = '\0';
    int fill = pad && used < cols ? cols - used : 0;
    if (right)
        for (; fill > 0 && off + 1 < n; fill--)
            dst[off++] = ' ';
    size_t k = t < n - off - 1 ? t : n - off - 1;
    memcpy(dst + off, tmp, k);
    off += k;
    for (; fill > 0 && off + 1 < n; fill--)
        dst[off++] = ' ';
    dst[off] = '\0';
    return used + (pad && used < cols ? cols - used : 0);
}

void tx_dur(char *buf, size_t n, uint64_t ns)
{
    const uint64_t us = 1000, ms = 1000 * us, s = 1000 * ms, min = 60 * s, h = 60 * min;
    if (ns < us)
        snprintf(buf, n, "%" PRIu64 "ns", ns);
    else if (ns < ms)
        snprintf(buf, n, "%" PRIu64 "us", ns / us);
    else if (ns < 10 * ms)
        snprintf(buf, n, "%.1fms", (double)ns / 1e6);
    else if (ns < s)
        snprintf(buf, n, "%" PRIu64 "ms", ns / ms);
    else if (ns < 10 * s)
        snprintf(buf, n, "%.2fs", (double)ns / 1e9);
    else if (ns < min)
        snprintf(buf, n, "%.1fs", (double)ns / 1e9);
    else if (ns < h)
        snprintf(buf, n, "%" PRIu64 "m%02" PRIu64 "s", ns / min, ns / s % 60);
    else if (ns < 100 * h)
        snprintf(buf, n, "%" PRIu64 "h%02" PRIu64 "m", ns / h, ns / min % 60);
    else
        snprintf(buf, n, "%" PRIu64 "d", ns / (24 * h));
}

void tx_count(char *buf, size_t n, uint64_t v)
{
    if (v < 100000)
        snprintf(buf, n, "%" PRIu64, v);
    else if (v < 1000000)
        snprintf(buf, n, "%" PRIu64 "k", v / 1000);
    else if (v < 100000000)
        snprintf(buf, n, "%.1fM", (double)v / 1e6);
    else if (v < 1000000000)
        snprintf(buf, n, "%" PRIu64 "M", v / 1000000);
    else if (v < 100000000000ull)
        snprintf(buf, n, "%.1fG", (double)v / 1e9);
    else
        snprintf(buf, n, "%" PRIu64 "G", v / 1000000000);
}

void tx_ago(char *buf, size_t n, int64_t now_ms, int64_t then_ms)
{
    if (then_ms == CM_NONE || now_ms == CM_NONE) {
        snprintf(buf, n, "-");
        return;
    }
    int64_t d = now_ms - then_ms;
    tx_dur(buf, n, d > 0 ? (uint64_t)d * 1000000 : 0);
}
