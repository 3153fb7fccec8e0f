/*
 * The dump signal: taking it, the handler, giving it back (dumpsig.h). This file owns the
 * dispositions of the dump signals while edo has them, and the list of runtimes that
 * dump on each, which the handler reads without a lock.
 */
#include "core/dumpsig.h"

#include "core/runtime.h"
#include "edo/observe.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Runtimes that can take a dump signal at once. */
#define DUMP_SLOTS 64

static pthread_mutex_t dump_lock = PTHREAD_MUTEX_INITIALIZER; /* taking and giving back */
static struct sigaction dump_prev[NSIG]; /* the disposition before edo took the signal */
static int dump_users[NSIG];             /* runtimes that have it */
/* Read by the handler, so lock-free: */
static _Atomic(edo_runtime *) dump_rt[DUMP_SLOTS];
static _Atomic int dump_in_handler;

static void dump_handler(int sig)
{
    int saved = errno;
    bool taken = false;
    atomic_fetch_add(&dump_in_handler, 1);
    for (int i = 0; i < DUMP_SLOTS; i++) {
        edo_runtime *rt = atomic_load(&dump_rt[i]);
        if (!rt || rt->dump_signal != sig)
            continue;
        taken = true;
        atomic_store(&rt->dump_asked, true);
        if (rt->threaded) {
            atomic_fetch_or(&rt->monitor_word, EDO__MONITOR_DUMP);
            edo__futex_wake(&rt->monitor_word, 1);
        } else {
            edo__wake_lone_worker(rt); /* an eventfd write at most */
        }
    }
    atomic_fetch_sub(&dump_in_handler, 1);
    if (!taken) {
        /* Nobody dumps on it any more (its handler came back from a disposition saved
         * while edo had it): what the signal would do without edo. */
        signal(sig, SIG_DFL);
        raise(sig);
    }
    errno = saved;
}

/* In a child of fork: the signals go back to what they were (its runtimes are the
 * parent's). Without locks: the child has only this thread. */
static void dump_fork_child(void)
{
    for (int i = 0; i < DUMP_SLOTS; i++)
        atomic_store(&dump_rt[i], NULL);
    for (int sig = 1; sig < NSIG; sig++) {
        if (!dump_users[sig])
            continue;
        struct sigaction cur;
        if (sigaction(sig, NULL, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO) &&
            cur.sa_handler == dump_handler)
            sigaction(sig, &dump_prev[sig], NULL);
        dump_users[sig] = 0;
    }
}

static void dump_once(void)
{
    pthread_atfork(NULL, NULL, dump_fork_child);
}

/* A signal that may print dumps: not one of the faults, not those that cannot be caught,
 * not SIGURG (the probes'), not the C library's own. */
static bool dump_allowed(int sig)
{
    sigset_t set;
    sigemptyset(&set);
    return sig > 0 && sig < NSIG && sig != SIGKILL && sig != SIGSTOP && sig != SIGSEGV &&
           sig != SIGBUS && sig != SIGFPE && sig != SIGILL && sig != SIGURG && sig != SIGPIPE &&
           sigaddset(&set, sig) == 0;
}

/* EDO_DUMP_SIGNAL: a name ("SIGQUIT", "QUIT", any case), a number, or "off". 0: unset;
 * -1: off. */
static int env_signal(int *sig)
{
    const char *s = getenv("EDO_DUMP_SIGNAL");
    *sig = 0;
    if (!s || !*s)
        return 0;
    if (!strcasecmp(s, "off")) {
        *sig = -1;
        return 0;
    }
    if (isdigit((unsigned char)*s)) {
        char *end;
        long n = strtol(s, &end, 10);
        if (*end || n <= 0 || n >= NSIG)
            return -EINVAL;
        *sig = (int)n;
        return 0;
    }
    const char *name = strncasecmp(s, "SIG", 3) == 0 ? s + 3 : s;
    for (int i = 1; i < NSIG; i++) {
        const char *abbrev = sigabbrev_np(i);
        if (abbrev && !strcasecmp(abbrev, name)) {
            *sig = i;
            return 0;
        }
    }
    return -EINVAL;
}

int edo__dumpsig_choose(const edo_runtime_opts *opts, int *out)
{
    int sig = opts ? opts->dump_signal : 0;
    *out = 0;
    if (sig == 0) {
        int rc = env_signal(&sig);
        if (rc < 0)
            return rc;
        if (sig == 0)
            sig = SIGQUIT;
    }
    if (sig < 0)
        return 0;
    if (!dump_allowed(sig))
        return -EINVAL;
    *out = sig;
    return 0;
}

void edo__dumpsig_take(edo_runtime *rt, int sig)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    rt->dump_signal = 0;
    if (sig <= 0)
        return;
    pthread_once(&once, dump_once);
    pthread_mutex_lock(&dump_lock);
    int slot = -1;
    for (int i = 0; i < DUMP_SLOTS && slot < 0; i++)
        if (!atomic_load(&dump_rt[i]))
            slot = i;
    struct sigaction cur;
    if (slot < 0 || sigaction(sig, NULL, &cur) < 0)
        goto out;
    bool ours = !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == dump_handler;
    if (!ours) {
        /* Only a signal nobody handles: a program's own handler, or one it ignores, stays. */
        if ((cur.sa_flags & SA_SIGINFO) || cur.sa_handler != SIG_DFL)
            goto out;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = dump_handler;
        sa.sa_flags = SA_RESTART | SA_ONSTACK;
        sigfillset(&sa.sa_mask);
        if (sigaction(sig, &sa, &dump_prev[sig]) < 0)
            goto out;
    }
    dump_users[sig]++;
    rt->dump_signal = sig; /* before the slot is published: the handler reads it */
    atomic_store(&dump_rt[slot], rt);
out:
    pthread_mutex_unlock(&dump_lock);
}

void edo__dumpsig_fini(edo_runtime *rt)
{
    int sig = rt->dump_signal;
    if (!sig)
        return;
    pthread_mutex_lock(&dump_lock);
    for (int i = 0; i < DUMP_SLOTS; i++)
        if (atomic_load(&dump_rt[i]) == rt)
            atomic_store(&dump_rt[i], NULL);
    /* A handler that read the slot before may still use rt: wait it out. */
    while (atomic_load(&dump_in_handler))
        sched_yield();
    if (--dump_users[sig] == 0) {
        struct sigaction cur;
        if (sigaction(sig, NULL, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO) &&
            cur.sa_handler == dump_handler)
            sigaction(sig, &dump_prev[sig], NULL);
    }
    pthread_mutex_unlock(&dump_lock);
    rt->dump_signal = 0;
}

void edo__dump_if_asked(edo_runtime *rt)
{
    if (!atomic_load_explicit(&rt->dump_asked, memory_order_relaxed) ||
        !atomic_exchange(&rt->dump_asked, false))
        return;
    edo_dump_tasks(rt, stderr);
}
