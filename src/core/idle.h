/*
 * Idle workers of a threaded runtime (idle.c): searching for work, sleeping, being woken,
 * and the monitor thread that watches for stuck workers.
 *
 * What it owns, and who may touch it:
 *  - rt->idle_state (searching and unparked worker counts): atomics, changed together with
 *    the sleepers list under rt->idle_lock, except that a searcher stops searching with a
 *    plain atomic decrement;
 *  - rt->sleepers / nsleepers and w->sleeper: under rt->idle_lock;
 *  - w->searching: its worker only;
 *  - w->parked, w->sleep_mode, w->wake_word: atomics; the worker announces where it
 *    sleeps, and whoever wakes it sets wake_word and wakes it there (also the monitor,
 *    which reads `parked`; the current-thread flavour uses `parked` for its driver sleep).
 * edo__notify_parked and edo__wake_worker: any thread. edo__park_worker,
 * edo__worker_sleep (sched.c), edo__begin_search and edo__end_search: the worker itself.
 * edo__monitor_main: the monitor thread.
 */
#ifndef EDO_CORE_IDLE_H
#define EDO_CORE_IDLE_H

#include "edo.h"

#include <stdbool.h>

typedef struct edo__worker edo__worker;

/* Where a parked worker sleeps (edo__worker.sleep_mode). */
enum { EDO__AWAKE = 0, EDO__SLEEP_FUTEX, EDO__SLEEP_DRIVER };

/* Wakes one sleeping worker to look for work, unless one is looking already or none
 * sleeps. Called whenever work is added that the adding worker will not run at once. */
void edo__notify_parked(edo_runtime *rt);
/* A worker that found no work: sleeps until notified, or until its own timers or the
 * driver give it some. On return w->searching says whether it was notified to search. */
void edo__park_worker(edo__worker *w);
/* One sleep of a parked worker (sched.c). */
void edo__worker_sleep(edo__worker *w);
/* A searching worker found work: if it was the last one searching, wake another. */
void edo__end_search(edo__worker *w);
/* May w start searching (steal)? At most half the workers search at once. */
bool edo__begin_search(edo__worker *w);
/* Wakes w wherever it sleeps. */
void edo__wake_worker(edo__worker *w);
/* The monitor thread of a threaded runtime. */
void *edo__monitor_main(void *arg);
/* Bits of rt->monitor_word (the stop sets the word to 1): a dump was asked for; a worker
 * woke up while the monitor slept its long interval (rt->monitor_idle). */
#define EDO__MONITOR_DUMP 2u
#define EDO__MONITOR_LOOK 4u

#endif
