/*
 * json.h - the console's JSON reader: one line of the console protocol parsed into a tree
 * of values that live in an arena, with lookups that forgive a missing or mistyped member.
 *
 * The protocol is the program's word, not ours: a line may be malformed, cut short, nested
 * too deep or simply huge. cj_parse refuses all of that with an error text and never reads
 * past the line; what it accepts is RFC 8259 JSON. Strings are decoded in place, in the
 * line's own buffer, so the line must stay alive (and unchanged) while its tree is used.
 * Used by the model (model.c) and the replay index (record.c).
 */
#ifndef EDO_CONSOLE_JSON_H
#define EDO_CONSOLE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum cj_type { CJ_NULL, CJ_FALSE, CJ_TRUE, CJ_NUM, CJ_STR, CJ_ARR, CJ_OBJ } cj_type;

typedef struct cj_val cj_val;
struct cj_val {
    cj_type type;
    const char *key; /* a member of an object: its key (decoded, NUL-terminated) */
    cj_val *next;    /* the next item or member of the same array or object */
    union {
        struct {
            int64_t i;   /* the value if it is a whole number in range, else 0 */
            double d;    /* the value as a double, always */
            bool is_int; /* written without fraction or exponent and fits int64_t */
        } num;
        struct {
            char *s; /* decoded, NUL-terminated (it may hold NULs of its own: see len) */
            size_t len;
        } str;
        struct {
            cj_val *first;
            size_t n;
        } kids; /* an array's items or an object's members, in order */
    };
};

/* The nodes of the trees parsed with it, allocated in blocks; freed all at once. */
typedef struct cj_arena {
    struct cj_block *blocks;
    size_t used;  /* of the newest block */
    size_t nodes; /* in all blocks: a line may have at most so many (json.c) */
} cj_arena;

/* How deep arrays and objects may nest: the protocol needs four levels. */
#define CJ_MAX_DEPTH 32

/* Parses text[0..len) (NUL bytes in it are an error; a trailing newline is allowed) into
 * *root, allocating from a. Returns 0, or -EINVAL with *err set to a static text saying
 * what was wrong, -ENOMEM. On failure the text may be partly decoded already. */
int cj_parse(cj_arena *a, char *text, size_t len, cj_val **root, const char **err);

/* Frees every node of a (the arena can be used again; it keeps one block for that). */
void cj_arena_reset(cj_arena *a);
/* Frees the arena's memory too. */
void cj_arena_free(cj_arena *a);

/* The member `key` of object o, NULL if o is not an object or has no such member. */
const cj_val *cj_get(const cj_val *o, const char *key);

/* o's member `key` as an integer (a whole number: a fraction is cut), as a string
 * (NULL if not a string), as a bool; `def` when it is missing or of another type. */
int64_t cj_int(const cj_val *o, const char *key, int64_t def);
const char *cj_str(const cj_val *o, const char *key);
bool cj_bool(const cj_val *o, const char *key, bool def);

/* o's member `key` if it is an array (else NULL): iterate with v->kids.first, ->next. */
const cj_val *cj_arr(const cj_val *o, const char *key);

/* v itself as an integer, `def` if it is not a number. */
int64_t cj_as_int(const cj_val *v, int64_t def);

/* The length of the valid UTF-8 character at s (end: where the text ends), 0 if there is
 * none there: overlong forms, surrogates, code points past U+10FFFF and C1 controls are not
 * valid. */
size_t cj_utf8_len(const unsigned char *s, const unsigned char *end);

/* Writes s[0..len) to f as a JSON string, quotes included: control characters as \u00XX,
 * a byte that is not valid UTF-8 as \ufffd, so that the output is valid JSON whatever the
 * program sent. */
void cj_put_str(FILE *f, const char *s, size_t len);

#endif
