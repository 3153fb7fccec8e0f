/*
 * Probes: the monitor asks a worker stuck in one task, by SIGURG, for the task's stack and
 * for the task in its LIFO slot. probe.h has the protocol; this file owns SIGURG's
 * disposition while edo has it.
 */
#include "core/probe.h"

#include "core/blocking.h"
#include "core/runtime.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <ucontext.h>

static pthread_mutex_t urg_lock = PTHREAD_MUTEX_INITIALIZER;
static int urg_users;             /* runtimes that took SIGURG */
static struct sigaction urg_prev; /* its disposition before */

/* The instruction the signal interrupted. */
static uintptr_t interrupted_pc(const void *uctx)
{
#if defined(__x86_64__)
    return (uintptr_t)((const ucontext_t *)uctx)->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (uintptr_t)((const ucontext_t *)uctx)->uc_mcontext.pc;
#else
    (void)uctx;
    return 0; /* unknown: the LIFO slot is never taken */
#endif
}

static void answer(edo__worker *w, edo__probe *p, void *uctx)
{
    /* The same thread as the task, so this is the worker's own view: if run_started is the
     * one asked about, the thread was inside that task's run when the signal came. */
    uint64_t run = atomic_load_explicit(&w->run_started, memory_order_relaxed);
    p->same_run = run != 0 && run == p->run;
    if (!p->same_run)
        return;
    uintptr_t pc = interrupted_pc(uctx);
    if (p->want_stack)
        p->bt_rc = edo__bt_here(&p->bt, pc);
    p->handed = edo__lifo_take(w, pc);
}

static void probe_handler(int sig, siginfo_t *si, void *uctx)
{
    int saved = errno;
    edo__worker *w = edo__worker_current();
    edo__probe *p = w ? edo__blocking_probe(w) : NULL;
    uint32_t s = EDO__PROBE_ASKED;
    if (p && atomic_compare_exchange_strong(&p->state, &s, EDO__PROBE_BUSY)) {
        answer(w, p, uctx);
        atomic_store_explicit(&p->state, EDO__PROBE_DONE, memory_order_release);
        edo__futex_wake(&p->state, 1);
    }
    errno = saved;
    (void)sig;
    (void)si;
}

static bool urg_is_ours(void)
{
    struct sigaction cur;
    return sigaction(SIGURG, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
           cur.sa_sigaction == probe_handler;
}

#define URG_TAKEN "SIGURG has a handler of the program's"

const char *edo__probe_ready(bool *taken)
{
    if (*taken)
        return urg_is_ours() ? NULL : URG_TAKEN;
    const char *why = NULL;
    pthread_mutex_lock(&urg_lock);
    struct sigaction cur;
    if (urg_is_ours()) {
        urg_users++;
        *taken = true;
    } else if (sigaction(SIGURG, NULL, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO) &&
               (cur.sa_handler == SIG_DFL || cur.sa_handler == SIG_IGN)) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = probe_handler;
        /* Restarted system calls, and the worker's signal stack: the task's own may be
         * nearly used up. */
        sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGURG, &sa, &urg_prev) == 0) {
            urg_users++;
            *taken = true;
        } else {
            why = "SIGURG cannot be taken";
        }
    } else {
        why = URG_TAKEN;
    }
    pthread_mutex_unlock(&urg_lock);
    return why;
}

void edo__probe_release(void)
{
    pthread_mutex_lock(&urg_lock);
    /* Given back only if it is still edo's: a handler the program installed since stays. */
    if (--urg_users == 0 && urg_is_ours())
        sigaction(SIGURG, &urg_prev, NULL);
    pthread_mutex_unlock(&urg_lock);
}

int edo__probe_ask(edo__worker *w, edo__probe *p, uint64_t run, bool want_stack, int wait_ms)
{
    p->run = run;
    p->want_stack = want_stack;
    p->same_run = false;
    p->bt_rc = -ENOSYS;
    p->bt.n = 0;
    p->handed = NULL;
    atomic_store_explicit(&p->state, EDO__PROBE_ASKED, memory_order_release);
    if (pthread_kill(w->thread, SIGURG) != 0) {
        atomic_store_explicit(&p->state, EDO__PROBE_IDLE, memory_order_relaxed);
        return -ESRCH; /* not sent: nobody can answer */
    }
    int64_t until = edo__real_ms() + wait_ms;
    for (;;) {
        uint32_t s = atomic_load_explicit(&p->state, memory_order_acquire);
        if (s == EDO__PROBE_DONE)
            break;
        if (s == EDO__PROBE_ASKED && edo__real_ms() >= until) {
            if (atomic_compare_exchange_strong(&p->state, &s, EDO__PROBE_IDLE))
                return -ETIMEDOUT;
            continue; /* the handler has it now: its answer comes at once */
        }
        edo__futex_wait(&p->state, s, 1);
    }
    atomic_store_explicit(&p->state, EDO__PROBE_IDLE, memory_order_relaxed);
    return 0;
}

edo_task *edo__probe_cancel(edo__probe *p)
{
    for (;;) {
        uint32_t s = atomic_load_explicit(&p->state, memory_order_acquire);
        if (s == EDO__PROBE_IDLE)
            return NULL;
        if (s == EDO__PROBE_ASKED && atomic_compare_exchange_strong(&p->state, &s, EDO__PROBE_IDLE))
            return NULL;
        if (s == EDO__PROBE_DONE) {
            edo_task *t = p->handed;
            p->handed = NULL;
            atomic_store_explicit(&p->state, EDO__PROBE_IDLE, memory_order_relaxed);
            return t;
        }
        edo__futex_wait(&p->state, s, 1);
    }
}
