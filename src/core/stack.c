/*
 * Task stacks: mapping them, and the caches that let a new task reuse the stack of a
 * finished one. Mapping a stack costs system calls and a page fault on its first use;
 * reusing one costs a few loads.
 *
 * Each worker keeps up to its runtime's stack_cache free stacks without a lock. Beyond
 * that, and for tasks spawned or finished outside a worker, free stacks go to one cache
 * shared by the process (a mutex, taken once per batch), so that a burst of tasks and the
 * next runtime of the process can reuse them too. The shared cache holds at most
 * SHARED_MAX stacks; whatever stays above SHARED_KEEP for more than a second is unmapped
 * the next time a worker goes idle or a runtime is freed, so memory goes back to the
 * kernel once a burst is over.
 */
#include "core/coro.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifdef EDO_HAVE_VALGRIND_H
#include <valgrind/valgrind.h>
#endif
#ifdef EDO_ASAN
#include <sanitizer/asan_interface.h>
#endif

size_t edo__page_size(void)
{
    static _Atomic size_t page;
    size_t p = atomic_load_explicit(&page, memory_order_relaxed);
    if (!p) {
        p = (size_t)sysconf(_SC_PAGESIZE);
        atomic_store_explicit(&page, p, memory_order_relaxed);
    }
    return p;
}

/* Stacks mapped with a guard page now, and how many may be: a quarter of
 * vm.max_map_count, as each takes two maps, and unmapping unguarded stacks (which the
 * kernel merges into one map) splits maps too: the rest of the program needs headroom. */
static _Atomic long guarded_stacks;
static _Atomic long guard_limit;

static long guard_limit_get(void)
{
    long lim = atomic_load_explicit(&guard_limit, memory_order_relaxed);
    if (lim)
        return lim;
    long max = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
    if (f) {
        if (fscanf(f, "%ld", &max) != 1)
            max = 65530;
        fclose(f);
    }
    lim = max / 4;
    atomic_store_explicit(&guard_limit, lim, memory_order_relaxed);
    return lim;
}

int edo__stack_map(edo__stack *st, size_t usable)
{
    size_t page = edo__page_size();
    size_t len = ((usable + page - 1) & ~(page - 1)) + page;
    /* MAP_NORESERVE: an idle task costs only the pages it has touched. */
    char *map = mmap(NULL, len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (map == MAP_FAILED)
        return -errno;
    st->map = map;
    st->map_len = len;
    st->guarded = false;
    if (atomic_fetch_add(&guarded_stacks, 1) < guard_limit_get() &&
        mprotect(map, page, PROT_NONE) == 0) {
        st->guarded = true;
    } else {
        atomic_fetch_sub(&guarded_stacks, 1);
        /* One word where an overflow writes first, just below the usable stack, and one at
         * the far end of the page, for a frame that jumped the first. */
        *(unsigned long long *)(map + page - 8) = EDO__STACK_CANARY;
        *(unsigned long long *)map = EDO__STACK_CANARY;
    }
#ifdef EDO_HAVE_VALGRIND_H
    st->valgrind_id = VALGRIND_STACK_REGISTER(map + page, map + len);
#else
    st->valgrind_id = 0;
#endif
    return 0;
}

void edo__stack_unmap(edo__stack *st)
{
    if (!st->map)
        return;
#ifdef EDO_HAVE_VALGRIND_H
    VALGRIND_STACK_DEREGISTER(st->valgrind_id);
#endif
#ifdef EDO_ASAN
    /* Frames that never returned (a finished task's entry) leave poisoned shadow bytes. */
    ASAN_UNPOISON_MEMORY_REGION(st->map + edo__page_size(), st->map_len - edo__page_size());
#endif
    munmap(st->map, st->map_len);
    if (st->guarded)
        atomic_fetch_sub(&guarded_stacks, 1);
    st->map = NULL;
}

/* ---- caches ------------------------------------------------------------------------------ */

#define SHARED_MAX 131072
#define SHARED_KEEP 256
#define BATCH 32

static struct {
    pthread_mutex_t lock;
    edo__stack *v;
    size_t len, cap;
    int64_t above_keep_since; /* ms, 0: at or below SHARED_KEEP */
    _Atomic size_t hint;      /* len, for a look without the lock */
} shared = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void shared_unlock(void)
{
    atomic_store_explicit(&shared.hint, shared.len, memory_order_relaxed);
    pthread_mutex_unlock(&shared.lock);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool grow(edo__stack **v, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    edo__stack *p = realloc(*v, c * sizeof *p);
    if (!p)
        return false;
    *v = p;
    *cap = c;
    return true;
}

/* Call with the lock held. Unmaps what does not fit. */
static void shared_push(edo__stack *st)
{
    if (shared.len < SHARED_MAX && grow(&shared.v, &shared.cap, shared.len + 1)) {
        shared.v[shared.len++] = *st;
        if (shared.len > SHARED_KEEP && !shared.above_keep_since)
            shared.above_keep_since = now_ms();
    } else {
        edo__stack_unmap(st);
    }
}

int edo__stack_get(edo__stack_cache *local, size_t usable, edo__stack *st, bool *reused)
{
    size_t page = edo__page_size();
    size_t len = ((usable + page - 1) & ~(page - 1)) + page;
    *reused = true;
    if (local && local->len && local->v[local->len - 1].map_len == len) {
        *st = local->v[--local->len];
        return 0;
    }
    if (atomic_load_explicit(&shared.hint, memory_order_relaxed)) {
        bool got = false;
        pthread_mutex_lock(&shared.lock);
        /* Take one, and a batch for the local cache, so the lock is not taken per task. */
        while (shared.len && shared.v[shared.len - 1].map_len == len) {
            edo__stack s = shared.v[--shared.len];
            if (!got) {
                *st = s;
                got = true;
            } else if (local && local->len < BATCH &&
                       grow(&local->v, &local->cap, local->len + 1)) {
                local->v[local->len++] = s;
            } else {
                shared.v[shared.len++] = s;
                break;
            }
        }
        if (shared.len <= SHARED_KEEP)
            shared.above_keep_since = 0;
        shared_unlock();
        if (got)
            return 0;
    }
    *reused = false;
    return edo__stack_map(st, usable);
}

void edo__stack_put(edo__stack_cache *local, size_t local_max, edo__stack *st)
{
    if (local && local->len < local_max && grow(&local->v, &local->cap, local->len + 1)) {
        local->v[local->len++] = *st;
        return;
    }
    pthread_mutex_lock(&shared.lock);
    shared_push(st);
    /* A full local cache hands half of itself over with it, in the same lock. */
    while (local && local->len > local_max / 2)
        shared_push(&local->v[--local->len]);
    shared_unlock();
}

void edo__stack_cache_spill(edo__stack_cache *local, size_t keep)
{
    if (local->len <= keep)
        return;
    pthread_mutex_lock(&shared.lock);
    while (local->len > keep)
        shared_push(&local->v[--local->len]);
    shared_unlock();
}

void edo__stack_cache_release(edo__stack_cache *local)
{
    pthread_mutex_lock(&shared.lock);
    while (local->len)
        shared_push(&local->v[--local->len]);
    shared_unlock();
    free(local->v);
    local->v = NULL;
    local->cap = 0;
}

void edo__stack_trim(void)
{
    if (atomic_load_explicit(&shared.hint, memory_order_relaxed) <= SHARED_KEEP)
        return;
    pthread_mutex_lock(&shared.lock);
    int64_t now = now_ms();
    if (shared.above_keep_since && now - shared.above_keep_since >= 1000) {
        /* Half of the excess at a time: a program between two bursts keeps some. */
        size_t target = SHARED_KEEP + (shared.len - SHARED_KEEP) / 2;
        while (shared.len > target)
            edo__stack_unmap(&shared.v[--shared.len]);
        shared.above_keep_since = shared.len > SHARED_KEEP ? now : 0;
    }
    shared_unlock();
}

/* At exit the cache goes back too, so that leak checkers see nothing left behind. */
__attribute__((destructor)) static void stack_cache_exit(void)
{
    pthread_mutex_lock(&shared.lock);
    while (shared.len)
        edo__stack_unmap(&shared.v[--shared.len]);
    free(shared.v);
    shared.v = NULL;
    shared.cap = 0;
    shared_unlock();
}
