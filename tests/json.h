/*
 * A strict JSON reader for the tests (RFC 8259): it refuses anything that is not valid
 * JSON in valid UTF-8, and gives back a tree to look values up in. Small and slow on
 * purpose; the console's lines are what it checks.
 */
#ifndef EDO_TEST_JSON_H
#define EDO_TEST_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jval {
    jtype type;
    bool b;
    bool integer; /* a number without fraction or exponent, held in i */
    int64_t i;
    double num;
    char *s; /* J_STR: decoded (UTF-8), NUL-terminated; slen bytes */
    size_t slen;
    size_t n;          /* J_ARR, J_OBJ: members */
    struct jval *item; /* their values */
    char **key;        /* J_OBJ: their names */
} jval;

typedef struct jparser {
    const unsigned char *p, *end;
    int depth;
} jparser;

static inline void json_free_val(jval *v)
{
    if (v->type == J_STR)
        free(v->s);
    for (size_t i = 0; i < v->n; i++) {
        json_free_val(&v->item[i]);
        if (v->key)
            free(v->key[i]);
    }
    free(v->item);
    free(v->key);
}

static inline void json_free(jval *v)
{
    if (v) {
        json_free_val(v);
        free(v);
    }
}

static inline void jp_ws(jparser *jp)
{
    while (jp->p < jp->end && (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r'))
        jp->p++;
}

static inline bool jp_lit(jparser *jp, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(jp->end - jp->p) < n || memcmp(jp->p, lit, n) != 0)
        return false;
    jp->p += n;
    return true;
}

static inline int jp_hex4(jparser *jp)
{
    if (jp->end - jp->p < 4)
        return -1;
    int v = 0;
    for (int k = 0; k < 4; k++) {
        int c = jp->p[k], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    jp->p += 4;
    return v;
}

static inline void jp_put_utf8(char *out, size_t *n, uint32_t cp)
{
    if (cp < 0x80) {
        out[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*n)++] = (char)(0xc0 | cp >> 6);
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out[(*n)++] = (char)(0xe0 | cp >> 12);
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        out[(*n)++] = (char)(0xf0 | cp >> 18);
        out[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    }
}

/* Length of a well-formed UTF-8 sequence at p, 0 if none. */
static inline size_t jp_utf8(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    else
        return 0;
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return n;
}

static inline bool jp_string(jparser *jp, char **out, size_t *outlen)
{
    if (jp->p >= jp->end || *jp->p != '"')
        return false;
    jp->p++;
    /* The decoded text is no longer than the raw one, which ends at an unescaped quote. */
    const unsigned char *q = jp->p;
    while (q < jp->end && *q != '"')
        q += *q == '\\' && q + 1 < jp->end ? 2 : 1;
    char *s = malloc((size_t)(q - jp->p) + 1);
    size_t n = 0;
    if (!s)
        return false;
    while (jp->p < jp->end && *jp->p != '"') {
        unsigned c = *jp->p;
        if (c < 0x20)
            goto bad;
        if (c == '\\') {
            if (++jp->p >= jp->end)
                goto bad;
            c = *jp->p++;
            const char *esc = strchr("\"\\/bfnrt", (int)c);
            if (c && esc) {
                static const char dec[] = "\"\\/\b\f\n\r\t";
                s[n++] = dec[esc - "\"\\/bfnrt"];
            } else if (c == 'u') {
                int u = jp_hex4(jp);
                if (u < 0)
                    goto bad;
                uint32_t cp = (uint32_t)u;
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    if (!jp_lit(jp, "\\u"))
                        goto bad;
                    int lo = jp_hex4(jp);
                    if (lo < 0xdc00 || lo > 0xdfff)
                        goto bad;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + ((uint32_t)lo - 0xdc00);
                } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                    goto bad;
                }
                jp_put_utf8(s, &n, cp);
            } else {
                goto bad;
            }
            continue;
        }
        size_t len = c < 0x80 ? 1 : jp_utf8(jp->p, jp->end);
        if (!len)
            goto bad;
        memcpy(s + n, jp->p, len);
        n += len;
        jp->p += len;
    }
    if (jp->p >= jp->end)
        goto bad;
    jp->p++;
    s[n] = 0;
    *out = s;
    *outlen = n;
    return true;
bad:
    free(s);
    return false;
}

static inline bool jp_value(jparser *jp, jval *v);

static inline bool jp_push(jval *v, size_t *cap, const jval *item, char *key)
{
    if (v->n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        jval *items = realloc(v->item, *cap * sizeof *items);
        if (!items)
            return false;
        v->item = items;
        if (v->type == J_OBJ) {
            char **keys = realloc(v->key, *cap * sizeof *keys);
            if (!keys)
                return false;
            v->key = keys;
        }
    }
    v->item[v->n] = *item;
    if (v->type == J_OBJ)
        v->key[v->n] = key;
    v->n++;
    return true;
}

static inline bool jp_number(jparser *jp, jval *v)
{
    const unsigned char *s = jp->p;
    bool integer = true;
    if (jp->p < jp->end && *jp->p == '-')
        jp->p++;
    if (jp->p >= jp->end)
        return false;
    if (*jp->p == '0')
        jp->p++;
    else if (*jp->p >= '1' && *jp->p <= '9')
        while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9')
            jp->p++;
    else
        return false;
    if (jp->p < jp->end && *jp->p == '.') {
        integer = false;
        jp->p++;
        if (jp->p >= jp->end || *jp->p < '0' || *jp->p > '9')
            return false;
        while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9')
            jp->p++;
    }
    if (jp->p < jp->end && (*jp->p == 'e' || *jp->p == 'E')) {
        integer = false;
        jp->p++;
        if (jp->p < jp->end && (*jp->p == '+' || *jp->p == '-'))
            jp->p++;
        if (jp->p >= jp->end || *jp->p < '0' || *jp->p > '9')
            return false;
        while (jp->p < jp->end && *jp->p >= '0' && *jp->p <= '9')
            jp->p++;
    }
    char buf[64];
    size_t len = (size_t)(jp->p - s);
    if (len >= sizeof buf)
        return false;
    memcpy(buf, s, len);
    buf[len] = 0;
    v->type = J_NUM;
    v->integer = integer;
    v->num = strtod(buf, NULL);
    v->i = integer ? strtoll(buf, NULL, 10) : (int64_t)v->num;
    return true;
}

static inline bool jp_value(jparser *jp, jval *v)
{
    memset(v, 0, sizeof *v);
    jp_ws(jp);
    if (jp->p >= jp->end || ++jp->depth > 64)
        return false;
    bool ok = false;
    unsigned c = *jp->p;
    size_t cap = 0;
    if (c == '{' || c == '[') {
        v->type = c == '{' ? J_OBJ : J_ARR;
        jp->p++;
        jp_ws(jp);
        if (jp->p < jp->end && *jp->p == (c == '{' ? '}' : ']')) {
            jp->p++;
            ok = true;
        } else {
            for (;;) {
                char *key = NULL;
                size_t klen;
                jval item;
                jp_ws(jp);
                if (c == '{') {
                    if (!jp_string(jp, &key, &klen))
                        break;
                    jp_ws(jp);
                    if (!jp_lit(jp, ":")) {
                        free(key);
                        break;
                    }
                }
                if (!jp_value(jp, &item)) {
                    json_free_val(&item);
                    free(key);
                    break;
                }
                if (!jp_push(v, &cap, &item, key)) {
                    json_free_val(&item);
                    free(key);
                    break;
                }
                jp_ws(jp);
                if (jp_lit(jp, ","))
                    continue;
                ok = jp_lit(jp, c == '{' ? "}" : "]");
                break;
            }
        }
    } else if (c == '"') {
        v->type = J_STR;
        ok = jp_string(jp, &v->s, &v->slen);
    } else if (jp_lit(jp, "true")) {
        v->type = J_BOOL;
        v->b = ok = true;
    } else if (jp_lit(jp, "false")) {
        v->type = J_BOOL;
        ok = true;
    } else if (jp_lit(jp, "null")) {
        ok = true;
    } else {
        ok = jp_number(jp, v);
    }
    jp->depth--;
    return ok;
}

/* Parses exactly one JSON value (surrounding whitespace allowed) from s; NULL if it is
 * not valid JSON. */
static inline jval *json_parse(const char *s, size_t len)
{
    jparser jp = { (const unsigned char *)s, (const unsigned char *)s + len, 0 };
    jval *v = malloc(sizeof *v);
    if (!v)
        return NULL;
    bool ok = jp_value(&jp, v);
    jp_ws(&jp);
    if (!ok || jp.p != jp.end) {
        json_free(v);
        return NULL;
    }
    return v;
}

/* The member `key` of an object, NULL if none (or v is not an object). */
static inline const jval *json_get(const jval *v, const char *key)
{
    if (!v || v->type != J_OBJ)
        return NULL;
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->key[i], key) == 0)
            return &v->item[i];
    return NULL;
}

/* A string member's text, NULL if it is missing or not a string. */
static inline const char *json_str(const jval *v, const char *key)
{
    const jval *m = json_get(v, key);
    return m && m->type == J_STR ? m->s : NULL;
}

/* An integer member's value; fallback if it is missing or not an integer. */
static inline int64_t json_int(const jval *v, const char *key, int64_t fallback)
{
    const jval *m = json_get(v, key);
    return m && m->type == J_NUM && m->integer ? m->i : fallback;
}

#endif
