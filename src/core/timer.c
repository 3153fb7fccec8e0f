/*
 * The timing wheel of timer.h.
 *
 * Invariant: an entry on level L > 0 was placed when `elapsed` and its deadline agreed in
 * every bit above level L and differed within level L's six bits, so its slot lies ahead of
 * elapsed's slot on that level. When elapsed reaches the start of that slot, the entries are
 * re-placed against the new elapsed and drop to a lower level or fire. Level-0 slots are one
 * millisecond wide, so a timer fires exactly at its deadline's millisecond.
 */
#include "core/timer.h"

#include <string.h>

#define SLOT_BITS 6
#define SLOT_MASK (EDO__WHEEL_SLOTS - 1)
#define WHEEL_SPAN ((int64_t)1 << (SLOT_BITS * EDO__WHEEL_LEVELS))
#define TOP_SLOT ((int64_t)1 << (SLOT_BITS * (EDO__WHEEL_LEVELS - 1))) /* its width */
/* The level of an entry on the due list: past its deadline, not yet popped. */
#define DUE_LEVEL 0xff

static int level_for(int64_t elapsed, int64_t when)
{
    uint64_t masked = ((uint64_t)elapsed ^ (uint64_t)when) | SLOT_MASK;
    int significant = 63 - __builtin_clzll(masked);
    int level = significant / SLOT_BITS;
    return level < EDO__WHEEL_LEVELS ? level : EDO__WHEEL_LEVELS - 1;
}

void edo__wheel_init(edo__wheel *w, int64_t now)
{
    memset(w, 0, sizeof *w);
    w->elapsed = now;
}

static void place(edo__wheel *w, edo__timer *t)
{
    /* Beyond the wheel's span: park one top-level slot short of a full turn (the slot just
     * behind elapsed's, whose start is then a turn ahead) and re-place from there. Parked
     * a whole span ahead it would land in elapsed's own top-level slot, whose start is
     * not ahead: found due at once and put back there, for ever. */
    int64_t when = t->when;
    if (when - w->elapsed >= WHEEL_SPAN - TOP_SLOT)
        when = w->elapsed + WHEEL_SPAN - TOP_SLOT;
    int level = level_for(w->elapsed, when);
    int slot = (int)((uint64_t)when >> (level * SLOT_BITS)) & SLOT_MASK;
    t->level = (uint8_t)level;
    t->slot = (uint8_t)slot;
    edo__list_push_front(&w->slots[level][slot], &t->link);
    w->occupied[level] |= (uint64_t)1 << slot;
}

void edo__wheel_insert(edo__wheel *w, edo__timer *t, int64_t when)
{
    t->when = when < w->elapsed ? w->elapsed : when;
    t->armed = true;
    w->count++;
    place(w, t);
}

void edo__wheel_cancel(edo__wheel *w, edo__timer *t)
{
    if (!t->armed)
        return;
    t->armed = false;
    w->count--;
    edo__list *l = t->level == DUE_LEVEL ? &w->due : &w->slots[t->level][t->slot];
    edo__list_remove(l, &t->link);
    if (t->level != DUE_LEVEL && edo__list_empty(l))
        w->occupied[t->level] &= ~((uint64_t)1 << t->slot);
}

/* The start of the first occupied slot at or after elapsed's position on `level`. */
static int64_t level_next(const edo__wheel *w, int level, int *slot_out)
{
    uint64_t occ = w->occupied[level];
    int shift = level * SLOT_BITS;
    int now_slot = (int)((uint64_t)w->elapsed >> shift) & SLOT_MASK;
    uint64_t rotated = (occ >> now_slot) | (now_slot ? occ << (64 - now_slot) : 0);
    int slot = (now_slot + __builtin_ctzll(rotated)) & SLOT_MASK;
    int64_t slot_range = (int64_t)1 << shift;
    int64_t level_range = slot_range << SLOT_BITS;
    int64_t level_start = w->elapsed & ~(level_range - 1);
    int64_t deadline = level_start + slot * slot_range;
    if (slot < now_slot) /* only reachable for entries parked beyond the span */
        deadline += level_range;
    *slot_out = slot;
    return deadline;
}

int64_t edo__wheel_next(const edo__wheel *w)
{
    if (!w->count)
        return INT64_MAX;
    if (!edo__list_empty(&w->due))
        return w->elapsed;
    for (int level = 0; level < EDO__WHEEL_LEVELS; level++) {
        if (w->occupied[level]) {
            int slot;
            int64_t d = level_next(w, level, &slot);
            /* A level-0 deadline is exact; an upper one is when its slot must be split. */
            return d < w->elapsed ? w->elapsed : d;
        }
    }
    return INT64_MAX;
}

edo__timer *edo__wheel_pop(edo__wheel *w, int64_t now)
{
    for (;;) {
        edo__link *n = edo__list_pop_front(&w->due);
        if (n) {
            edo__timer *t = edo__container_of(n, edo__timer, link);
            t->armed = false;
            w->count--;
            return t;
        }
        int level, slot = 0;
        int64_t deadline = INT64_MAX;
        for (level = 0; level < EDO__WHEEL_LEVELS && w->count; level++) {
            if (w->occupied[level]) {
                deadline = level_next(w, level, &slot);
                break;
            }
        }
        if (deadline > now) {
            if (now > w->elapsed)
                w->elapsed = now;
            return NULL;
        }
        if (deadline > w->elapsed)
            w->elapsed = deadline;
        /* Empty the slot: what is due moves to the due list, the rest drops a level. */
        edo__list list = w->slots[level][slot];
        w->slots[level][slot] = (edo__list){ NULL, NULL };
        w->occupied[level] &= ~((uint64_t)1 << slot);
        while ((n = edo__list_pop_front(&list))) {
            edo__timer *t = edo__container_of(n, edo__timer, link);
            if (t->when <= w->elapsed) {
                t->level = DUE_LEVEL;
                edo__list_push_front(&w->due, &t->link);
            } else {
                place(w, t);
            }
        }
    }
}
