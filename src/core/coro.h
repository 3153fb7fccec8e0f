/*
 * Coroutine contexts and task stacks.
 *
 * A context is a saved stack pointer: edo__ctx_switch pushes the callee-saved registers and
 * the floating-point control words onto the current stack, stores the stack pointer in
 * *from and loads `to`. Everything a switch must tell the sanitizers happens in
 * edo__coro_switch, so that no switch can forget it.
 */
#ifndef EDO_CORE_CORO_H
#define EDO_CORE_CORO_H

#include "core/sanitize.h"

#include <stdbool.h>
#include <stddef.h>

#if defined(EDO_FORCE_UCONTEXT) || (!defined(__x86_64__) && !defined(__aarch64__))
#define EDO_CORO_UCONTEXT 1
#include <ucontext.h>
#endif

/* One execution context: a task's, or a worker thread's own stack. */
typedef struct edo__ctx {
#ifdef EDO_CORO_UCONTEXT
    ucontext_t uc;
    void (*entry)(void *);
    void *arg;
#else
    void *sp;
#endif
    void *stack_lo;   /* lowest usable byte, for ASan (NULL: not known yet) */
    size_t stack_len; /* usable bytes */
#ifdef EDO_ASAN
    void *fake_stack;
#endif
#ifdef EDO_TSAN
    void *tsan_fiber; /* a task's from coro.c's pool, a thread's its own */
#endif
} edo__ctx;

/* For the functions that are on a task's stack when it switches away for the last time
 * (they never return): TSan keeps a shadow call stack per fiber, and a fiber is reused by
 * a later task, so a function entered there and never left would stay on it for good.
 * They call instrumented functions only when those return. */
#if defined(EDO_TSAN) && defined(__clang__)
#define EDO__NO_TSAN __attribute__((disable_sanitizer_instrumentation))
#elif defined(EDO_TSAN)
#define EDO__NO_TSAN __attribute__((no_sanitize_thread))
#else
#define EDO__NO_TSAN
#endif

/* A mapped stack: [map, map + page) is the guard page, the rest is usable.
 *
 * Each guard page splits the mapping in two, and the kernel caps a process's mappings
 * (vm.max_map_count, 65530 by default), so beyond a quarter that many stacks new ones get
 * no guard page: their first page (still reserved, so the layout is the same) holds a
 * canary word instead, checked each time the task switches away. Such an overflow is
 * reported late, but it is reported. */
typedef struct edo__stack {
    char *map;
    size_t map_len;
    unsigned valgrind_id;
    bool guarded;
} edo__stack;

#define EDO__STACK_CANARY 0x6564f0c0a57ac4edULL

size_t edo__page_size(void);

/* Maps a stack of at least `usable` bytes plus a guard page. Returns 0 or -errno. */
int edo__stack_map(edo__stack *st, size_t usable);

/* A worker's own cache of free stacks (stack.c), used without a lock. */
typedef struct edo__stack_cache {
    edo__stack *v;
    size_t len, cap;
} edo__stack_cache;

/* A free stack of `usable` bytes: from local (may be NULL), the shared cache, or a new
 * mapping. *reused tells which; a reused stack keeps its old contents. */
int edo__stack_get(edo__stack_cache *local, size_t usable, edo__stack *st, bool *reused);
/* Gives a stack back: to local while it holds fewer than local_max, else shared. */
void edo__stack_put(edo__stack_cache *local, size_t local_max, edo__stack *st);
/* Moves all but `keep` of local's stacks to the shared cache. */
void edo__stack_cache_spill(edo__stack_cache *local, size_t keep);
/* Moves local's stacks to the shared cache and frees local's array. */
void edo__stack_cache_release(edo__stack_cache *local);
/* Unmaps part of what the shared cache has held beyond its floor for over a second. */
void edo__stack_trim(void);
/* False if an unguarded stack's canaries were overwritten: the word just below the usable
 * stack, where an overflow writes first, and the first word of the page. */
static inline bool edo__stack_intact(const edo__stack *st)
{
    if (st->guarded)
        return true;
    const unsigned long long *first = (const unsigned long long *)st->map;
    const unsigned long long *top = (const unsigned long long *)(st->map + edo__page_size() - 8);
    return *first == EDO__STACK_CANARY && *top == EDO__STACK_CANARY;
}
void edo__stack_unmap(edo__stack *st);

/* Prepares ctx to run entry(arg) on [lo, lo + len) at its first switch. */
void edo__ctx_make(edo__ctx *ctx, void *lo, size_t len, void (*entry)(void *), void *arg);

/* Sets up ctx for the calling thread's own stack (the worker's scheduler context). */
void edo__ctx_init_thread(edo__ctx *ctx);

/* A context made by edo__ctx_make will never run again, and it is not running: ended
 * (its last switch was its task's end) or abandoned mid-way. Under TSan an ended one's
 * fiber serves a later task; an abandoned one's is destroyed (its shadow stack still holds
 * the task's calls). */
void edo__ctx_release(edo__ctx *ctx, bool ended);

/* Switches from `from` (the running context) to `to`. Returns when something switches
 * back to `from`. With from_exiting set, `from` never runs again (ASan frees its fake
 * stack). */
void edo__coro_switch(edo__ctx *from, edo__ctx *to, int from_exiting);

/* Called first thing in a new context's entry function (sanitizer bookkeeping). */
void edo__coro_started(edo__ctx *self);

#endif
