/*
 * Hierarchical timing wheel: six levels of 64 slots, one millisecond per level-0 slot, so
 * it spans 64^6 ms (about 2.2 years; later deadlines wait at the top level and are
 * re-placed as time passes). Entries are intrusive and embedded in whatever owns them (a
 * task's timer lives in the task), so arming a timeout never allocates. Insert and cancel
 * are O(1); finding the next deadline scans one 64-bit occupancy word per level.
 *
 * A wheel belongs to one worker: only that worker inserts into it, but the task a timer
 * belongs to may cancel it from another worker, and the monitor may pop a stuck worker's
 * due timers, so every call is made under the wheel's lock (edo__worker.wheel_lock).
 */
#ifndef EDO_CORE_TIMER_H
#define EDO_CORE_TIMER_H

#include "core/list.h"

#include <stdbool.h>
#include <stdint.h>

#define EDO__WHEEL_LEVELS 6
#define EDO__WHEEL_SLOTS 64

typedef struct edo__timer {
    edo__link link; /* in its slot's list, or in the due list */
    int64_t when;   /* ms, on the edo_now() clock */
    uint8_t level, slot;
    bool armed;
} edo__timer;

typedef struct edo__wheel {
    int64_t elapsed; /* every deadline <= elapsed has been popped or sits on `due` */
    uint64_t occupied[EDO__WHEEL_LEVELS];
    edo__list slots[EDO__WHEEL_LEVELS][EDO__WHEEL_SLOTS];
    edo__list due; /* emptied from a slot, past their deadline, not yet popped */
    uint64_t count;
} edo__wheel;

void edo__wheel_init(edo__wheel *w, int64_t now);

/* Arms t to be popped once the wheel has advanced to `when`. A deadline that has already
 * passed is popped at the next edo__wheel_pop. t must not be armed. */
void edo__wheel_insert(edo__wheel *w, edo__timer *t, int64_t when);

/* Disarms t if it is armed; it will not fire. */
void edo__wheel_cancel(edo__wheel *w, edo__timer *t);

/* The earliest deadline of an armed timer, INT64_MAX if none. May be earlier than the
 * exact deadline for timers on upper levels (they are then moved down, not fired). */
int64_t edo__wheel_next(const edo__wheel *w);

/* Takes out and disarms one timer whose deadline is <= now; NULL when none is left. The
 * caller fires it (after releasing the wheel's lock). */
edo__timer *edo__wheel_pop(edo__wheel *w, int64_t now);

#endif
