/*
 * report.c - `--once --json` and `--dump` (report.h). The JSON is the snapshot's own text
 * with two members added at its end, so every field the program sent, also ones this
 * console does not know, reaches the script that reads it.
 */
#include "report.h"

#include "json.h"
#include "lint.h"
#include "model.h"
#include "record.h"
#include "stream.h"
#include "taskcols.h"
#include "text.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* s[0..*len) without the white space at its end. */
static void trim_end(const char *s, size_t *len)
{
    while (*len && (s[*len - 1] == ' ' || s[*len - 1] == '\t' || s[*len - 1] == '\r' ||
                    s[*len - 1] == '\n'))
        (*len)--;
}

static void put_opt_str(FILE *out, const char *s)
{
    if (s && *s)
        cj_put_str(out, s, strlen(s));
    else
        fputs("null", out);
}

static void print_warnings(FILE *out, const cm_model *m)
{
    cl_warning *w;
    size_t more, n = cl_lint(m, &w, &more);
    fputc('[', out);
    for (size_t i = 0; i < n; i++) {
        fprintf(out, "%s{\"kind\":\"%s\",\"subject\":", i ? "," : "", w[i].kind);
        cj_put_str(out, w[i].subject, strlen(w[i].subject));
        if (w[i].task)
            fprintf(out, ",\"task\":%" PRIu64, w[i].task);
        else
            fputs(",\"task\":null", out);
        if (w[i].worker >= 0)
            fprintf(out, ",\"worker\":%" PRId64, w[i].worker);
        else
            fputs(",\"worker\":null", out);
        fputs(",\"resource\":", out);
        put_opt_str(out, w[i].resource);
        fputs(",\"reason\":", out);
        cj_put_str(out, w[i].reason, strlen(w[i].reason));
        if (w[i].stack) {
            fputs(",\"stack\":", out);
            cj_put_str(out, w[i].stack, strlen(w[i].stack));
        }
        fputc('}', out);
    }
    fputc(']', out);
    free(w);
}

/* The snapshot's text (a JSON object, already checked) with "hello" and "warnings" added. */
static int print_once(FILE *out, const char *snap, size_t slen, const char *hello, size_t hlen,
                      const cm_model *m)
{
    trim_end(snap, &slen);
    trim_end(hello, &hlen);
    if (!slen || snap[slen - 1] != '}')
        return -EINVAL;
    slen--;
    size_t k = slen;
    trim_end(snap, &k);
    bool empty = k && snap[k - 1] == '{';
    fwrite(snap, 1, slen, out);
    fputs(empty ? "\"hello\":" : ",\"hello\":", out);
    fwrite(hello, 1, hlen, out);
    fputs(",\"warnings\":", out);
    print_warnings(out, m);
    fputs("}\n", out);
    return fflush(out) == 0 ? 0 : -EIO;
}

static char *dup_line(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

int report_once_live(const char *addr, int64_t timeout_ms, FILE *out)
{
    char err[512];
    int fd;
    if (cs_connect(addr, &fd, err, sizeof err) < 0) {
        fprintf(stderr, "edo-console: %s\n", err);
        return 1;
    }
    cs_lines l;
    cs_lines_init(&l, fd, CS_MAX_LINE);
    cm_model m;
    cm_init(&m);
    char *hello = NULL, *copy = NULL;
    size_t hlen = 0;
    int status = 1;
    bool eof = false;
    const char *why = NULL;

    while (!why) {
        char *line;
        size_t len;
        int got = cs_lines_next(&l, &line, &len);
        if (!got && eof)
            got = cs_lines_rest(&l, &line, &len);
        if (!got) {
            if (eof) {
                why = hello ? "the stream ended before a snapshot"
                            : "the stream ended before its hello";
                break;
            }
            struct pollfd p = { .fd = fd, .events = POLLIN };
            int n = poll(&p, 1, (int)timeout_ms);
            if (n == 0) {
                why = hello ? "no snapshot came in time" : "no hello came in time";
                break;
            }
            if (n < 0 && errno != EINTR) {
                why = strerror(errno);
                break;
            }
            long r = cs_lines_fill(&l);
            if (r == 0)
                eof = true;
            else if (r < 0 && r != -EAGAIN)
                why = strerror((int)-r);
            continue;
        }
        free(copy);
        copy = dup_line(line, len);
        if (!copy) {
            why = "out of memory";
            break;
        }
        cm_line what = cm_feed(&m, line, len, cs_now_ms());
        if (!hello) {
            /* The protocol's first line is its hello: anything else is not an endpoint. */
            if (what != CM_HELLO) {
                why = "the stream does not begin with a hello line (is it an edo console "
                      "endpoint?)";
                break;
            }
            hello = copy;
            hlen = len;
            copy = NULL;
        } else if (what == CM_SNAPSHOT) {
            if (print_once(out, copy, len, hello, hlen, &m) < 0)
                why = "cannot write the output";
            else
                status = 0;
            break;
        }
    }
    if (why)
        fprintf(stderr, "edo-console: %s: %s\n", addr, why);
    if (m.bad_lines)
        fprintf(stderr, "edo-console: %s: %" PRIu64 " malformed line%s skipped\n", addr,
                m.bad_lines, m.bad_lines == 1 ? "" : "s");
    free(copy);
    free(hello);
    cm_free(&m);
    cs_lines_free(&l);
    close(fd);
    return status;
}

int report_once_file(const char *path, FILE *out)
{
    char err[512];
    rp_file r;
    if (rp_open(&r, path, err, sizeof err) < 0) {
        fprintf(stderr, "edo-console: %s\n", err);
        return 1;
    }
    cm_model m;
    cm_init(&m);
    int status = 1;
    char *hello = NULL, *snap = NULL;
    const rp_snap *s = &r.snaps[0];
    if (rp_seek(&r, &m, 0) == 0) {
        char *h = rp_read(&r, s->hello_off, s->hello_len);
        hello = h ? dup_line(h, s->hello_len) : NULL;
        char *t = rp_read(&r, s->off, s->len);
        snap = t ? dup_line(t, s->len) : NULL;
    }
    if (!hello || !snap)
        fprintf(stderr, "edo-console: %s: cannot read it back\n", path);
    else if (print_once(out, snap, s->len, hello, s->hello_len, &m) < 0)
        fprintf(stderr, "edo-console: cannot write the output\n");
    else
        status = 0;
    free(hello);
    free(snap);
    cm_free(&m);
    rp_close(&r);
    return status;
}

int report_dump(const char *path, int cols, FILE *out)
{
    char err[512];
    rp_file r;
    if (rp_open(&r, path, err, sizeof err) < 0) {
        fprintf(stderr, "edo-console: %s\n", err);
        return 1;
    }
    cm_model m;
    cm_init(&m);
    int status = 0;
    char line[1024];
    for (size_t i = 0; i < r.nsnaps; i++) {
        if (rp_seek(&r, &m, i) < 0 || !m.nhist) {
            fprintf(stderr, "edo-console: %s: cannot read snapshot %zu back\n", path, i + 1);
            status = 1;
            break;
        }
        const cm_snap *s = m.hist[0];
        cl_warning *w;
        size_t more, nw = cl_lint(&m, &w, &more);
        size_t ndone = 0;
        for (size_t k = 0; k < m.nrows; k++)
            ndone += m.rows[k].origin == CM_DONE;
        fprintf(out,
                "snapshot %" PRId64 " at %.1f s: %zu tasks, %zu done, %zu workers, %zu warning%s\n",
                s->seq, (double)r.snaps[i].at_ms / 1000, m.nrows - ndone, ndone, s->nworkers,
                nw + more, nw + more == 1 ? "" : "s");
        tc_row(line, sizeof line, NULL, cols, -1, false);
        fprintf(out, "%s\n", line);
        for (size_t k = 0; k < m.nrows; k++) {
            if (m.rows[k].origin == CM_DONE)
                continue;
            tc_row(line, sizeof line, &m.rows[k], cols, -1, false);
            fprintf(out, "%s\n", line);
        }
        for (size_t k = 0; k < nw; k++) {
            line[0] = '\0';
            tx_cell(line, sizeof line, w[k].reason, (int)sizeof line - 1, false, false);
            fprintf(out, "warning %s %s: %s\n", w[k].kind, w[k].subject, line);
        }
        fputc('\n', out);
        free(w);
    }
    if (r.bad_lines)
        fprintf(out, "%" PRIu64 " malformed line%s skipped\n", r.bad_lines,
                r.bad_lines == 1 ? "" : "s");
    cm_free(&m);
    rp_close(&r);
    return status;
}
