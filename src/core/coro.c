/*
 * Context switch and the sanitizer annotations of every switch.
 *
 * The switch is a plain function in assembly: it saves only what the ABI says a callee
 * must preserve (the compiler has already saved the caller-saved registers around the
 * call) and the floating-point control words, which are per-context state a task may set.
 */
#include "core/coro.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>

#ifdef EDO_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef EDO_TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* ---- the switch itself ---------------------------------------------------------------- */

#if defined(__x86_64__)
/* void edo__ctx_switch(void **from_sp, void *to_sp) */
__asm__(".text\n"
        ".globl edo__ctx_switch\n"
        ".hidden edo__ctx_switch\n"
        ".type edo__ctx_switch,@function\n"
        "edo__ctx_switch:\n"
        "    .cfi_startproc\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    subq $8, %rsp\n"
        "    stmxcsr (%rsp)\n"
        "    fnstcw 4(%rsp)\n"
        "    movq %rsp, (%rdi)\n"
        "    movq %rsi, %rsp\n"
        "    ldmxcsr (%rsp)\n"
        "    fldcw 4(%rsp)\n"
        "    addq $8, %rsp\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        "    .cfi_endproc\n"
        ".size edo__ctx_switch,.-edo__ctx_switch\n"
        /* First return of a new context lands here: r12 = arg, r13 = entry. The stack is
         * 16-byte aligned, as a call requires; entry never returns. */
        ".globl edo__ctx_start\n"
        ".hidden edo__ctx_start\n"
        ".type edo__ctx_start,@function\n"
        "edo__ctx_start:\n"
        "    .cfi_startproc\n"
        "    .cfi_undefined rip\n"
        "    movq %r12, %rdi\n"
        "    callq *%r13\n"
        "    ud2\n"
        "    .cfi_endproc\n"
        ".size edo__ctx_start,.-edo__ctx_start\n");
#define EDO_CTX_WORDS 8 /* fp words, r15, r14, r13, r12, rbx, rbp, return address */
#elif defined(__aarch64__)
__asm__(".text\n"
        ".globl edo__ctx_switch\n"
        ".hidden edo__ctx_switch\n"
        ".type edo__ctx_switch,%function\n"
        "edo__ctx_switch:\n"
        "    sub sp, sp, #176\n"
        "    stp x19, x20, [sp, #0]\n"
        "    stp x21, x22, [sp, #16]\n"
        "    stp x23, x24, [sp, #32]\n"
        "    stp x25, x26, [sp, #48]\n"
        "    stp x27, x28, [sp, #64]\n"
        "    stp x29, x30, [sp, #80]\n"
        "    stp d8, d9, [sp, #96]\n"
        "    stp d10, d11, [sp, #112]\n"
        "    stp d12, d13, [sp, #128]\n"
        "    stp d14, d15, [sp, #144]\n"
        "    mrs x9, fpcr\n"
        "    str x9, [sp, #160]\n"
        "    mov x9, sp\n"
        "    str x9, [x0]\n"
        "    mov sp, x1\n"
        "    ldr x9, [sp, #160]\n"
        "    msr fpcr, x9\n"
        "    ldp x19, x20, [sp, #0]\n"
        "    ldp x21, x22, [sp, #16]\n"
        "    ldp x23, x24, [sp, #32]\n"
        "    ldp x25, x26, [sp, #48]\n"
        "    ldp x27, x28, [sp, #64]\n"
        "    ldp x29, x30, [sp, #80]\n"
        "    ldp d8, d9, [sp, #96]\n"
        "    ldp d10, d11, [sp, #112]\n"
        "    ldp d12, d13, [sp, #128]\n"
        "    ldp d14, d15, [sp, #144]\n"
        "    add sp, sp, #176\n"
        "    ret\n"
        ".size edo__ctx_switch,.-edo__ctx_switch\n"
        /* x19 = arg, x20 = entry (loaded from the initial frame). */
        ".globl edo__ctx_start\n"
        ".hidden edo__ctx_start\n"
        ".type edo__ctx_start,%function\n"
        "edo__ctx_start:\n"
        "    mov x29, #0\n"
        "    mov x0, x19\n"
        "    blr x20\n"
        "    brk #0\n"
        ".size edo__ctx_start,.-edo__ctx_start\n");
#endif

#ifndef EDO_CORO_UCONTEXT
void edo__ctx_switch(void **from_sp, void *to_sp);
void edo__ctx_start(void);
#else
static void ucontext_start(unsigned hi, unsigned lo)
{
    edo__ctx *ctx = (edo__ctx *)(((uintptr_t)hi << 16 << 16) | lo);
    ctx->entry(ctx->arg);
}
#endif

#ifdef EDO_TSAN
/* Fibers of ended tasks, for later ones: TSan costs some 380 page faults for each fiber it
 * creates (some 4 ms on a cold machine), which made every spawn under TSan that dear. At
 * most FIBERS_KEPT; beyond, they are destroyed. */
#define FIBERS_KEPT 4096
static pthread_mutex_t fibers_lock = PTHREAD_MUTEX_INITIALIZER;
static void *fibers[FIBERS_KEPT];
static size_t nfibers;

static void *fiber_get(void)
{
    void *f = NULL;
    pthread_mutex_lock(&fibers_lock);
    if (nfibers)
        f = fibers[--nfibers];
    pthread_mutex_unlock(&fibers_lock);
    return f ? f : __tsan_create_fiber(0);
}

static void fiber_put(void *f)
{
    pthread_mutex_lock(&fibers_lock);
    bool kept = nfibers < FIBERS_KEPT;
    if (kept)
        fibers[nfibers++] = f;
    pthread_mutex_unlock(&fibers_lock);
    if (!kept)
        __tsan_destroy_fiber(f);
}
#endif

void edo__ctx_make(edo__ctx *ctx, void *lo, size_t len, void (*entry)(void *), void *arg)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->stack_lo = lo;
    ctx->stack_len = len;
#ifdef EDO_CORO_UCONTEXT
    getcontext(&ctx->uc);
    ctx->uc.uc_stack.ss_sp = lo;
    ctx->uc.uc_stack.ss_size = len;
    ctx->uc.uc_link = NULL;
    /* makecontext passes int arguments: hand over the two pointers in halves. */
    ctx->entry = entry;
    ctx->arg = arg;
    uintptr_t p = (uintptr_t)ctx;
    makecontext(&ctx->uc, (void (*)(void))ucontext_start, 2, (unsigned)(p >> 16 >> 16),
                (unsigned)p);
#elif defined(__x86_64__)
    uintptr_t top = ((uintptr_t)lo + len) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)top - EDO_CTX_WORDS;
    uint32_t mxcsr;
    uint16_t fpucw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    memset(sp, 0, EDO_CTX_WORDS * sizeof *sp);
    sp[0] = (uint64_t)mxcsr | ((uint64_t)fpucw << 32);
    sp[3] = (uint64_t)(uintptr_t)entry; /* r13 */
    sp[4] = (uint64_t)(uintptr_t)arg;   /* r12 */
    sp[7] = (uint64_t)(uintptr_t)edo__ctx_start;
    ctx->sp = sp;
#elif defined(__aarch64__)
    uintptr_t top = ((uintptr_t)lo + len) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)(top - 176);
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    memset(sp, 0, 176);
    sp[0] = (uint64_t)(uintptr_t)arg;             /* x19 */
    sp[1] = (uint64_t)(uintptr_t)entry;           /* x20 */
    sp[11] = (uint64_t)(uintptr_t)edo__ctx_start; /* x30 */
    sp[20] = fpcr;
    ctx->sp = sp;
#endif
#ifdef EDO_TSAN
    ctx->tsan_fiber = fiber_get();
#endif
}

void edo__ctx_init_thread(edo__ctx *ctx)
{
    memset(ctx, 0, sizeof *ctx);
#ifdef EDO_TSAN
    ctx->tsan_fiber = __tsan_get_current_fiber();
#endif
}

void edo__ctx_release(edo__ctx *ctx, bool ended)
{
#ifdef EDO_TSAN
    if (ended)
        fiber_put(ctx->tsan_fiber);
    else
        __tsan_destroy_fiber(ctx->tsan_fiber);
    ctx->tsan_fiber = NULL;
#endif
    (void)ctx;
    (void)ended;
}

#ifdef EDO_ASAN
/* The context that switched to this thread's current one: its stack bounds are learnt from
 * ASan when they were unknown (a worker thread's own stack). Read on the same thread right
 * after the switch, so a thread-local is safe here. */
static __thread edo__ctx *asan_switched_from;

static void asan_finish(edo__ctx *self)
{
    const void *old_lo;
    size_t old_len;
    __sanitizer_finish_switch_fiber(self ? self->fake_stack : NULL, &old_lo, &old_len);
    edo__ctx *from = asan_switched_from;
    if (from && !from->stack_lo) {
        from->stack_lo = (void *)old_lo;
        from->stack_len = old_len;
    }
}
#endif

void edo__coro_started(edo__ctx *self)
{
#ifdef EDO_ASAN
    self->fake_stack = NULL;
    asan_finish(NULL);
#endif
    (void)self;
}

EDO__NO_TSAN void edo__coro_switch(edo__ctx *from, edo__ctx *to, int from_exiting)
{
#ifdef EDO_ASAN
    asan_switched_from = from;
    __sanitizer_start_switch_fiber(from_exiting ? NULL : &from->fake_stack, to->stack_lo,
                                   to->stack_len);
#endif
#ifdef EDO_TSAN
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
    (void)from_exiting;
#ifdef EDO_CORO_UCONTEXT
    /* swapcontext also switches the signal mask, to the one `to` had when it last ran:
     * carry the thread's current one over instead, as the assembly switch does. */
    pthread_sigmask(SIG_SETMASK, NULL, &to->uc.uc_sigmask);
    swapcontext(&from->uc, &to->uc);
#else
    edo__ctx_switch(&from->sp, to->sp);
#endif
#ifdef EDO_ASAN
    asan_finish(from);
#endif
}
