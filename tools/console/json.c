/*
 * json.c - the console's JSON reader (json.h): a recursive-descent parser over one line,
 * with nesting bounded by CJ_MAX_DEPTH so that a hostile line cannot exhaust the stack,
 * and strings decoded where they lie. Only json.h's functions touch the arena.
 */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Nodes come in blocks of this many, so that a snapshot of 10,000 tasks costs a few
 * hundred allocations, not half a million. */
#define BLOCK_NODES 4096

/* At most this many values a line: a snapshot of 10,000 tasks has about half a million,
 * and a line of nothing but "[0,0,0,..." must not make us hold gigabytes. */
#define MAX_NODES (2u << 20)

struct cj_block {
    struct cj_block *next;
    cj_val nodes[BLOCK_NODES];
};

struct parser {
    cj_arena *a;
    char *p, *end;
    const char *err;
};

static cj_val *node_new(struct parser *ps)
{
    cj_arena *a = ps->a;
    if (a->nodes == MAX_NODES) {
        ps->err = "too many values in the line";
        return NULL;
    }
    a->nodes++;
    if (!a->blocks || a->used == BLOCK_NODES) {
        struct cj_block *b = malloc(sizeof *b);
        if (!b) {
            ps->err = "out of memory";
            return NULL;
        }
        b->next = a->blocks;
        a->blocks = b;
        a->used = 0;
    }
    cj_val *v = &a->blocks->nodes[a->used++];
    memset(v, 0, sizeof *v);
    return v;
}

void cj_arena_reset(cj_arena *a)
{
    /* Keep one block: most lines fit in it, and a snapshot a second should not cost a
     * mapping and an unmapping each time. */
    struct cj_block *b = a->blocks;
    while (b && b->next) {
        struct cj_block *next = b->next;
        free(b);
        b = next;
    }
    a->blocks = b;
    a->used = 0;
    a->nodes = 0;
}

void cj_arena_free(cj_arena *a)
{
    cj_arena_reset(a);
    free(a->blocks);
    a->blocks = NULL;
}

static void skip_ws(struct parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static int fail(struct parser *ps, const char *why)
{
    if (!ps->err)
        ps->err = why;
    return -1;
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Writes code point cp as UTF-8 at *w. */
static void put_utf8(char **w, unsigned cp)
{
    char *o = *w;
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xc0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xe0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *o++ = (char)(0xf0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    }
    *w = o;
}

/* Decodes the string that starts at the opening quote ps->p. The decoded text is never
 * longer than the escaped one (a \uXXXX of 6 bytes becomes at most 3, a surrogate pair of
 * 12 bytes 4), so it is written over the text itself, and its NUL lands at or before the
 * closing quote, which has been read by then. */
static int parse_string(struct parser *ps, char **out, size_t *outlen)
{
    char *r = ps->p + 1, *w = r, *start = r;
    for (;;) {
        if (r >= ps->end)
            return fail(ps, "unterminated string");
        unsigned char c = (unsigned char)*r;
        if (c == '"')
            break;
        if (c < 0x20)
            return fail(ps, "control character in a string");
        if (c != '\\') {
            *w++ = *r++;
            continue;
        }
        if (r + 1 >= ps->end)
            return fail(ps, "unterminated string");
        char e = r[1];
        r += 2;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            *w++ = e;
            break;
        case 'b':
            *w++ = '\b';
            break;
        case 'f':
            *w++ = '\f';
            break;
        case 'n':
            *w++ = '\n';
            break;
        case 'r':
            *w++ = '\r';
            break;
        case 't':
            *w++ = '\t';
            break;
        case 'u': {
            unsigned cp, lo;
            if (ps->end - r < 4 || hex4(r, &cp) < 0)
                return fail(ps, "bad \\u escape");
            r += 4;
            if (cp >= 0xd800 && cp < 0xdc00) {
                /* A high surrogate must be followed by a low one; a lone one is an error
                 * rather than a guess. */
                if (ps->end - r < 6 || r[0] != '\\' || r[1] != 'u' || hex4(r + 2, &lo) < 0 ||
                    lo < 0xdc00 || lo >= 0xe000)
                    return fail(ps, "lone surrogate in a \\u escape");
                r += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp < 0xe000) {
                return fail(ps, "lone surrogate in a \\u escape");
            }
            put_utf8(&w, cp);
            break;
        }
        default:
            return fail(ps, "bad escape in a string");
        }
    }
    *outlen = (size_t)(w - start);
    *w = '\0';
    ps->p = r + 1;
    *out = start;
    return 0;
}

static int parse_number(struct parser *ps, cj_val *v)
{
    char *s = ps->p, *q = s;
    bool is_int = true;
    if (q < ps->end && *q == '-')
        q++;
    if (q >= ps->end || *q < '0' || *q > '9')
        return fail(ps, "bad number");
    if (*q == '0')
        q++;
    else
        while (q < ps->end && *q >= '0' && *q <= '9')
            q++;
    if (q < ps->end && *q == '.') {
        is_int = false;
        q++;
        if (q >= ps->end || *q < '0' || *q > '9')
            return fail(ps, "bad number");
        while (q < ps->end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < ps->end && (*q == 'e' || *q == 'E')) {
        is_int = false;
        q++;
        if (q < ps->end && (*q == '+' || *q == '-'))
            q++;
        if (q >= ps->end || *q < '0' || *q > '9')
            return fail(ps, "bad number");
        while (q < ps->end && *q >= '0' && *q <= '9')
            q++;
    }
    /* strtod and strtoll stop at the first character that is not theirs; copy the number
     * out so that they cannot run past the line (it need not be NUL-terminated). */
    char buf[64];
    size_t n = (size_t)(q - s);
    if (n >= sizeof buf) {
        /* Longer than any double needs: only its magnitude matters. */
        v->num.d = s[0] == '-' ? -HUGE_VAL : HUGE_VAL;
        v->num.is_int = false;
    } else {
        memcpy(buf, s, n);
        buf[n] = '\0';
        v->num.d = strtod(buf, NULL);
        if (is_int) {
            errno = 0;
            long long i = strtoll(buf, NULL, 10);
            if (errno == 0) {
                v->num.i = i;
                v->num.is_int = true;
            }
        }
    }
    v->type = CJ_NUM;
    ps->p = q;
    return 0;
}

static int parse_value(struct parser *ps, cj_val *v, int depth);

static int parse_container(struct parser *ps, cj_val *v, int depth, bool obj)
{
    char close = obj ? '}' : ']';
    cj_val **tail = &v->kids.first;
    if (depth >= CJ_MAX_DEPTH)
        return fail(ps, "nested too deep");
    v->type = obj ? CJ_OBJ : CJ_ARR;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return 0;
    }
    for (;;) {
        cj_val *kid = node_new(ps);
        if (!kid)
            return -1;
        if (obj) {
            char *key;
            size_t klen;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != '"')
                return fail(ps, "expected a member name");
            if (parse_string(ps, &key, &klen) < 0)
                return -1;
            kid->key = key;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':')
                return fail(ps, "expected ':'");
            ps->p++;
        }
        if (parse_value(ps, kid, depth + 1) < 0)
            return -1;
        *tail = kid;
        tail = &kid->next;
        v->kids.n++;
        skip_ws(ps);
        if (ps->p >= ps->end)
            return fail(ps, obj ? "unterminated object" : "unterminated array");
        if (*ps->p == ',') {
            ps->p++;
            continue;
        }
        if (*ps->p == close) {
            ps->p++;
            return 0;
        }
        return fail(ps, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int literal(struct parser *ps, const char *word, cj_val *v, cj_type t)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return fail(ps, "unexpected character");
    ps->p += n;
    v->type = t;
    return 0;
}

static int parse_value(struct parser *ps, cj_val *v, int depth)
{
    skip_ws(ps);
    if (ps->p >= ps->end)
        return fail(ps, "unexpected end of line");
    switch (*ps->p) {
    case '{':
        return parse_container(ps, v, depth, true);
    case '[':
        return parse_container(ps, v, depth, false);
    case '"':
        v->type = CJ_STR;
        return parse_string(ps, &v->str.s, &v->str.len);
    case 't':
        return literal(ps, "true", v, CJ_TRUE);
    case 'f':
        return literal(ps, "false", v, CJ_FALSE);
    case 'n':
        return literal(ps, "null", v, CJ_NULL);
    default:
        return parse_number(ps, v);
    }
}

int cj_parse(cj_arena *a, char *text, size_t len, cj_val **root, const char **err)
{
    struct parser ps = { .a = a, .p = text, .end = text + len };
    *root = NULL;
    if (memchr(text, '\0', len)) {
        *err = "NUL byte in the line";
        return -EINVAL;
    }
    cj_val *v = node_new(&ps);
    if (!v || parse_value(&ps, v, 0) < 0) {
        *err = ps.err ? ps.err : "out of memory";
        return strcmp(*err, "out of memory") == 0 ? -ENOMEM : -EINVAL;
    }
    skip_ws(&ps);
    if (ps.p != ps.end) {
        *err = "text after the value";
        return -EINVAL;
    }
    *root = v;
    return 0;
}

const cj_val *cj_get(const cj_val *o, const char *key)
{
    if (!o || o->type != CJ_OBJ)
        return NULL;
    for (const cj_val *m = o->kids.first; m; m = m->next)
        if (strcmp(m->key, key) == 0)
            return m;
    return NULL;
}

int64_t cj_as_int(const cj_val *v, int64_t def)
{
    if (!v || v->type != CJ_NUM)
        return def;
    if (v->num.is_int)
        return v->num.i;
    /* Clamp, since converting an out-of-range double is undefined. */
    if (v->num.d != v->num.d)
        return def;
    if (v->num.d >= 9.2e18)
        return INT64_MAX;
    if (v->num.d <= -9.2e18)
        return INT64_MIN;
    return (int64_t)v->num.d;
}

int64_t cj_int(const cj_val *o, const char *key, int64_t def)
{
    return cj_as_int(cj_get(o, key), def);
}

const char *cj_str(const cj_val *o, const char *key)
{
    const cj_val *v = cj_get(o, key);
    return v && v->type == CJ_STR ? v->str.s : NULL;
}

bool cj_bool(const cj_val *o, const char *key, bool def)
{
    const cj_val *v = cj_get(o, key);
    if (!v)
        return def;
    if (v->type == CJ_TRUE)
        return true;
    if (v->type == CJ_FALSE)
        return false;
    return def;
}

const cj_val *cj_arr(const cj_val *o, const char *key)
{
    const cj_val *v = cj_get(o, key);
    return v && v->type == CJ_ARR ? v : NULL;
}

size_t cj_utf8_len(const unsigned char *s, const unsigned char *end)
{
    unsigned c = s[0];
    size_t n;
    unsigned cp;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if ((size_t)(end - s) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (n == 2 && cp < 0xa0))
        return 0;
    return n;
}

void cj_put_str(FILE *f, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str, *end = s + len;
    putc('"', f);
    while (s < end) {
        unsigned char c = *s;
        if (c == '"' || c == '\\') {
            putc('\\', f);
            putc(c, f);
            s++;
        } else if (c == '\n') {
            fputs("\\n", f);
            s++;
        } else if (c == '\t') {
            fputs("\\t", f);
            s++;
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", c);
            s++;
        } else if (c < 0x80) {
            putc(c, f);
            s++;
        } else {
            size_t k = cj_utf8_len(s, end);
            if (k) {
                fwrite(s, 1, k, f);
                s += k;
            } else {
                fputs("\\ufffd", f);
                s++;
            }
        }
    }
    putc('"', f);
}
