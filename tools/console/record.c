/*
 * record.c - writing and replaying recordings (record.h). A recording is the stream as it
 * arrived, line for line, with a first line that says what it is and a line before each
 * snapshot with its receive time: so a recording is itself a stream any client can read,
 * and a capture made with another tool (socat, nc) replays as well.
 */
#include "record.h"

#include "json.h"
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

int rc_open(rc_writer *w, const char *path, const char *source, char *err, size_t errlen)
{
    memset(w, 0, sizeof *w);
    w->f = fopen(path, "we");
    if (!w->f) {
        int rc = -errno;
        snprintf(err, errlen, "cannot record to %s: %s", path, strerror(errno));
        return rc;
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    w->t0 = cs_now_ms();
    fputs("{\"type\":\"recording\",\"version\":1,\"source\":", w->f);
    cj_put_str(w->f, source, strlen(source));
    fprintf(w->f, ",\"started_unix_ms\":%" PRId64 "}\n",
            (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000);
    fflush(w->f);
    return 0;
}

void rc_line(rc_writer *w, const char *line, size_t len, bool snapshot, int64_t recv_ms)
{
    if (!w->f)
        return;
    if (snapshot)
        fprintf(w->f, "{\"type\":\"received\",\"ms\":%" PRId64 "}\n", recv_ms - w->t0);
    fwrite(line, 1, len, w->f);
    putc('\n', w->f);
    /* A line at a time: what was recorded survives the console being killed. */
    if (fflush(w->f) != 0 || ferror(w->f))
        w->failed = true;
}

int rc_close(rc_writer *w)
{
    if (!w->f)
        return 0;
    int rc = fclose(w->f) != 0 || w->failed ? -EIO : 0;
    w->f = NULL;
    return rc;
}

/* ---- replay ------------------------------------------------------------------------------ */

int rp_open(rp_file *r, const char *path, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    r->cur = SIZE_MAX;
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        int rc = -errno;
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return rc;
    }
    cs_lines l;
    cs_lines_init(&l, r->fd, CS_MAX_LINE);
    cj_arena a = { 0 };
    size_t cap = 0;
    int64_t at = CM_NONE;
    uint64_t hello_off = 0;
    uint32_t hello_len = 0;
    bool have_hello = false, eof = false;
    int rc = 0;

    while (!eof) {
        long n = cs_lines_fill(&l);
        if (n < 0) {
            rc = (int)n;
            snprintf(err, errlen, "cannot read %s: %s", path, strerror((int)-n));
            goto out;
        }
        eof = n == 0;
        char *line;
        size_t len;
        for (;;) {
            int got = cs_lines_next(&l, &line, &len);
            if (!got && eof)
                got = cs_lines_rest(&l, &line, &len);
            if (!got)
                break;
            uint64_t off = l.line_off;
            cj_val *root;
            const char *why;
            cj_arena_reset(&a);
            const char *type = NULL;
            if (len > UINT32_MAX || cj_parse(&a, line, len, &root, &why) < 0 ||
                root->type != CJ_OBJ || !(type = cj_str(root, "type"))) {
                r->bad_lines++;
                continue;
            }
            if (strcmp(type, "received") == 0) {
                at = cj_int(root, "ms", CM_NONE);
            } else if (strcmp(type, "hello") == 0) {
                hello_off = off;
                hello_len = (uint32_t)len;
                have_hello = true;
            } else if (cm_is_snapshot(root) && have_hello) {
                if (r->nsnaps == cap) {
                    size_t nc = cap ? cap * 2 : 256;
                    rp_snap *s = realloc(r->snaps, nc * sizeof *s);
                    if (!s) {
                        rc = -ENOMEM;
                        snprintf(err, errlen, "%s: out of memory", path);
                        goto out;
                    }
                    r->snaps = s;
                    cap = nc;
                }
                /* Without a receive time, the program's uptime paces the replay. */
                int64_t when = at != CM_NONE ? at : cj_int(root, "uptime_ms", 0);
                r->snaps[r->nsnaps++] = (rp_snap){ .off = off,
                                                   .len = (uint32_t)len,
                                                   .at_ms = when,
                                                   .hello_off = hello_off,
                                                   .hello_len = hello_len };
                at = CM_NONE;
            } else if (strcmp(type, "snapshot") == 0) {
                r->bad_lines++; /* not whole, or with no hello before it */
            }
        }
    }
    r->bad_lines += l.too_long;
    if (r->nsnaps == 0) {
        rc = -ENODATA;
        snprintf(err, errlen, "%s: no snapshot of the console protocol in it", path);
    }
out:
    cj_arena_free(&a);
    cs_lines_free(&l);
    if (rc < 0)
        rp_close(r);
    return rc;
}

void rp_close(rp_file *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    free(r->snaps);
    free(r->buf);
    r->snaps = NULL;
    r->buf = NULL;
    r->nsnaps = 0;
}

char *rp_read(rp_file *r, uint64_t off, uint32_t len)
{
    if (r->cap < (size_t)len + 1) {
        char *b = realloc(r->buf, (size_t)len + 1);
        if (!b)
            return NULL;
        r->buf = b;
        r->cap = (size_t)len + 1;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(r->fd, r->buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return NULL;
        got += (size_t)n;
    }
    r->buf[len] = '\0';
    return r->buf;
}

static int feed(rp_file *r, cm_model *m, uint64_t off, uint32_t len, int64_t at)
{
    char *line = rp_read(r, off, len);
    if (!line)
        return -EIO;
    cm_feed(m, line, len, at);
    return 0;
}

int rp_seek(rp_file *r, cm_model *m, size_t i)
{
    if (i >= r->nsnaps)
        return -EINVAL;
    const rp_snap *s = &r->snaps[i];
    int rc;
    if (r->cur != SIZE_MAX && i == r->cur + 1 && s->hello_off == r->snaps[r->cur].hello_off) {
        rc = feed(r, m, s->off, s->len, s->at_ms);
    } else {
        /* Rebuild: the model's ring then holds what it held when snapshot i arrived. */
        size_t from = i + 1 >= CM_HISTORY ? i + 1 - CM_HISTORY : 0;
        cm_reset(m);
        uint64_t hello = UINT64_MAX;
        rc = 0;
        for (size_t k = from; k <= i && rc == 0; k++) {
            if (r->snaps[k].hello_off != hello) {
                hello = r->snaps[k].hello_off;
                rc = feed(r, m, hello, r->snaps[k].hello_len, r->snaps[k].at_ms);
            }
            if (rc == 0)
                rc = feed(r, m, r->snaps[k].off, r->snaps[k].len, r->snaps[k].at_ms);
        }
    }
    if (rc == 0)
        r->cur = i;
    /* The file's count, not how many lines the model happened to be fed. */
    m->bad_lines = r->bad_lines;
    return rc;
}
