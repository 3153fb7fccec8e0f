/*
 * Hierarchical timing wheel: six levels of 64 slots, one millisecond per level-0 slot, so
 * it spans 64^6 ms (about 2.2 years; later deadlines wait at the top level and are
 * re-placed as time passes). Entries are intrusive and embedded in whatever owns them (a
 * task's timer lives in the task), so arming a timeout never allocates. Insert and cancel
 * are O(1); finding the next deadline scans one 64-bit occupancy word per level.
 *
 * A wheel belongs to one worker and is only touched by that worker's thread.
 */
#ifndef EDO_CORE_TIMER_H
#define EDO_CORE_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#define EDO__WHEEL_LEVELS 6
#define EDO__WHEEL_SLOTS 64

typedef struct edo__timer edo__timer;
struct edo__timer {
    edo__timer *next, *prev;
    int64_t when; /* ms, on the edo_now() clock */
    void (*fire)(edo__timer *t);
    uint8_t level, slot;
    bool armed;
};

typedef struct edo__wheel {
    int64_t elapsed; /* every deadline <= elapsed has fired */
    uint64_t occupied[EDO__WHEEL_LEVELS];
    edo__timer *slots[EDO__WHEEL_LEVELS][EDO__WHEEL_SLOTS];
    uint64_t count;
} edo__wheel;

void edo__wheel_init(edo__wheel *w, int64_t now);

/* Arms t to call t->fire(t) once the wheel has advanced to t->when. A deadline that has
 * already passed fires at the next edo__wheel_advance. t must not be armed. */
void edo__wheel_insert(edo__wheel *w, edo__timer *t, int64_t when);

/* Disarms t if it is armed; it will not fire. */
void edo__wheel_cancel(edo__wheel *w, edo__timer *t);

/* The earliest deadline of an armed timer, INT64_MAX if none. May be earlier than the
 * exact deadline for timers on upper levels (they are then moved down, not fired). */
int64_t edo__wheel_next(const edo__wheel *w);

/* Fires every timer whose deadline is <= now. Returns how many fired. */
uint64_t edo__wheel_advance(edo__wheel *w, int64_t now);

#endif
