/*
 * Sleeping on a 32-bit word (idle.c): how a thread that is not running tasks waits for
 * another to change something, without a lock: a worker on its wake_word, the monitor on
 * rt->monitor_word, a thread outside the runtime on a task's state (edo_join),
 * rt->bo_word (edo_block_on) or a waiter's `done`. The writer changes the word, then
 * wakes. Any thread.
 */
#ifndef EDO_CORE_FUTEX_H
#define EDO_CORE_FUTEX_H

#include "core/sanitize.h"

#include <stdatomic.h>
#include <stdint.h>

/* Sleeps while *word == val, at most timeout_ms (-1: no limit); may return early, so every
 * caller loops on its condition. */
void edo__futex_wait(_Atomic uint32_t *word, uint32_t val, int timeout_ms);
void edo__futex_wake(_Atomic uint32_t *word, int n);

/* Under TSan a signal's handler runs only once the thread the signal landed on passes one
 * of TSan's interceptors, which a futex or io_uring wait made with syscall() is not, and
 * such a wait restarts after the signal as if nothing had come: a signal edo took over
 * would never be handled. So, in TSan builds only, those waits last at most
 * EDO__TSAN_SLICE_MS and pass an interceptor after (edo__tsan_signal_point). */
#ifdef EDO_TSAN
#define EDO__TSAN_SLICE_MS 50
void edo__tsan_signal_point(void);
#endif

#endif
