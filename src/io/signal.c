/*
 * Signals as something a task waits for.
 *
 * A signal a runtime takes over gets a handler of edo's, for the whole process: wherever it
 * lands (any thread: edo's threads block nothing but SIGPIPE), the handler counts it in
 * `pending` and writes to the eventfd of every runtime that takes signals, whose waiting
 * task then wakes and takes the count. The handler does nothing else, so no user code ever
 * runs inside it, and no thread has to block anything for this to work: a child a program
 * starts gets the signal mask the program had (edo's own threads add SIGPIPE alone, and
 * fork_child below puts even that back), and the exec resets the handler.
 *
 * A signal stays with edo until the last runtime that took it is freed; then its old
 * disposition comes back and what was pending for it is dropped.
 */
#include "io/io.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Runtimes that can be told of signals at once (each has an eventfd). */
#define NOTIFY_SLOTS 64

static pthread_mutex_t sig_lock = PTHREAD_MUTEX_INITIALIZER; /* taking and giving back */
static struct sigaction sig_prev[NSIG]; /* the disposition before edo took the signal */
static int sig_users[NSIG];             /* runtimes that took it */
/* Read by the handler, so lock-free: */
static _Atomic uint32_t pending[NSIG];      /* arrived, not yet returned by a wait */
static _Atomic int notify_fd[NOTIFY_SLOTS]; /* a runtime's eventfd + 1; 0: a free slot */
static _Atomic int in_handler;              /* handlers running now */

static void handler(int sig)
{
    int saved = errno;
    atomic_fetch_add(&in_handler, 1);
    atomic_fetch_add(&pending[sig], 1);
    for (int i = 0; i < NOTIFY_SLOTS; i++) {
        int fd = atomic_load(&notify_fd[i]) - 1;
        if (fd >= 0) {
            uint64_t one = 1;
            ssize_t r = write(fd, &one, sizeof one);
            (void)r; /* EAGAIN: the counter is full, so a wake-up is pending anyway */
        }
    }
    atomic_fetch_sub(&in_handler, 1);
    errno = saved;
}

/* In a child of fork: the signals edo took get their old dispositions back, so that a child
 * that does not exec never counts signals for its parent's runtimes, and the calling
 * thread gets back the mask it had before the runtime (edo__thread_base_mask). Without
 * locks: the child has only this thread, and whoever held them in the parent is gone. */
static void fork_child(void)
{
    for (int sig = 1; sig < NSIG; sig++)
        if (sig_users[sig])
            sigaction(sig, &sig_prev[sig], NULL);
    for (int i = 0; i < NOTIFY_SLOTS; i++)
        atomic_store(&notify_fd[i], 0);
    const sigset_t *base = edo__thread_base_mask();
    if (base)
        pthread_sigmask(SIG_SETMASK, base, NULL);
}

static void fork_handler_install(void)
{
    pthread_atfork(NULL, NULL, fork_child);
}

void edo__signal_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, fork_handler_install);
}

/* Gives rt a way to be told of signals: an eventfd the handler writes, in a free slot.
 * With sig_lock held. */
static int notify_open(edo_runtime *rt)
{
    if (rt->sigio)
        return 0;
    int slot = -1;
    for (int i = 0; i < NOTIFY_SLOTS && slot < 0; i++)
        if (!atomic_load(&notify_fd[i]))
            slot = i;
    if (slot < 0)
        return -EMFILE; /* more runtimes waiting for signals than anyone needs */
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = edo__io_new(&rt->sigio, fd, EDO__IO_POLLABLE | EDO__IO_READINESS);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    rt->sig_slot = slot;
    atomic_store(&notify_fd[slot], fd + 1);
    return 0;
}

/* Takes sigs over for the calling task's runtime (see edo.h) and fills *want with them. */
static int take(const int *sigs, int nsig, sigset_t *want)
{
    edo__worker *w = edo__worker_current();
    if (!w || !w->current)
        return -EDO_ENOTASK;
    if (!sigs || nsig <= 0)
        return -EINVAL;
    edo_runtime *rt = w->rt;
    sigemptyset(want);
    for (int i = 0; i < nsig; i++) {
        /* sigaddset refuses the C library's own signals (glibc's 32 and 33) */
        if (sigs[i] <= 0 || sigs[i] >= NSIG || sigs[i] == SIGKILL || sigs[i] == SIGSTOP ||
            sigaddset(want, sigs[i]) < 0)
            return -EINVAL;
    }
    pthread_mutex_lock(&sig_lock);
    /* The descriptor first: if there is none for it (EMFILE), nothing has changed and the
     * call can be made again later. */
    int rc = notify_open(rt);
    for (int i = 0; i < nsig && rc == 0; i++) {
        int sig = sigs[i];
        if (sigismember(&rt->sigmask, sig))
            continue;
        if (sig_users[sig] == 0) {
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = handler;
            sa.sa_flags = SA_RESTART | SA_ONSTACK;
            sigfillset(&sa.sa_mask);
            if (sigaction(sig, &sa, &sig_prev[sig]) < 0) {
                rc = -errno;
                break;
            }
        }
        sig_users[sig]++;
        sigaddset(&rt->sigmask, sig);
    }
    pthread_mutex_unlock(&sig_lock);
    if (rc == 0) {
        /* A program that blocked these before it started the runtime (edo's threads then
         * block them too) would never see them delivered: this thread takes them now. */
        pthread_sigmask(SIG_UNBLOCK, want, NULL);
    }
    return rc;
}

int edo_signal_take(const int *sigs, int nsig)
{
    sigset_t want;
    return take(sigs, nsig, &want);
}

/* One arrival of a signal in want, taken from `pending`; 0 if none is there. */
static int take_pending(const int *sigs, int nsig)
{
    for (int i = 0; i < nsig; i++) {
        _Atomic uint32_t *p = &pending[sigs[i]];
        uint32_t n = atomic_load(p);
        while (n && !atomic_compare_exchange_weak(p, &n, n - 1)) {
        }
        if (n)
            return sigs[i];
    }
    return 0;
}

int edo_signal_wait(const int *sigs, int nsig)
{
    sigset_t want;
    int rc = take(sigs, nsig, &want);
    if (rc < 0)
        return rc;
    edo_runtime *rt = edo__worker_current()->rt;
    for (;;) {
        int sig = take_pending(sigs, nsig);
        if (sig)
            return sig;
        /* The handler counts before it writes: a signal that comes after the look above
         * makes this read return. */
        uint64_t v;
        ssize_t n = edo__read_for(rt->sigio, &v, sizeof v, EDO_WAIT_SIGNAL);
        if (n < 0)
            return (int)n;
    }
}

void edo__signal_fini(edo_runtime *rt)
{
    if (!rt->sigio)
        return;
    pthread_mutex_lock(&sig_lock);
    for (int sig = 1; sig < NSIG; sig++) {
        if (!sigismember(&rt->sigmask, sig))
            continue;
        if (--sig_users[sig] == 0) {
            sigaction(sig, &sig_prev[sig], NULL);
            atomic_store(&pending[sig], 0);
        }
    }
    sigemptyset(&rt->sigmask);
    /* No handler may write to the eventfd once it is closed (its number could be reused by
     * then): off the list first, then wait out any handler that read the slot before. */
    atomic_store(&notify_fd[rt->sig_slot], 0);
    while (atomic_load(&in_handler))
        sched_yield();
    pthread_mutex_unlock(&sig_lock);
    edo_close(rt->sigio);
    rt->sigio = NULL;
}
