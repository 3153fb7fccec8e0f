/*
 * Signals as something a task waits for: the signals are blocked and read from a
 * signalfd, so no user code ever runs inside a signal handler.
 */
#include "io/io.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

/* Takes sigs over for the runtime (see edo.h) and fills *want with them. */
static int take(const int *sigs, int nsig, sigset_t *want)
{
    edo__worker *w = edo__worker_current();
    if (!w || !w->current)
        return -EPERM;
    if (!sigs || nsig <= 0)
        return -EINVAL;
    edo_runtime *rt = w->rt;
    sigemptyset(want);
    for (int i = 0; i < nsig; i++) {
        if (sigs[i] <= 0 || sigs[i] >= NSIG || sigs[i] == SIGKILL || sigs[i] == SIGSTOP)
            return -EINVAL;
        sigaddset(want, sigs[i]);
    }
    pthread_mutex_lock(&rt->sig_lock);
    sigset_t grown = rt->sigmask;
    bool added = false;
    for (int i = 0; i < nsig; i++) {
        if (!sigismember(&grown, sigs[i])) {
            sigaddset(&grown, sigs[i]);
            added = true;
        }
    }
    int rc = 0;
    if (added) {
        /* The signalfd first: if there is no descriptor for it (EMFILE), nothing has
         * changed and the call can be made again later. Blocked in this thread now;
         * worker threads of a threaded runtime block them from the start, and the threads
         * in edo_block_on are told below. */
        int fd =
            signalfd(rt->sigio ? edo_io_fd(rt->sigio) : -1, &grown, SFD_NONBLOCK | SFD_CLOEXEC);
        if (fd < 0)
            rc = -errno;
        else if (!rt->sigio &&
                 (rc = edo__io_new(&rt->sigio, fd, EDO__IO_POLLABLE | EDO__IO_READINESS)) < 0)
            close(fd);
        if (rc == 0) {
            rt->sigmask = grown;
            pthread_sigmask(SIG_BLOCK, &grown, NULL);
            rt->sig_gen++;
            atomic_store(&rt->sig_unacked, (uint32_t)rt->bo_threads);
        } else {
            added = false;
        }
    }
    pthread_mutex_unlock(&rt->sig_lock);
    if (added) {
        /* The threads in edo_block_on block the grown mask, and this call returns only
         * once they all have: a signal sent as soon as it returns (or its caller waits)
         * must find every runtime thread blocking it. They answer within a wake-up, so the
         * worker is held only that long, once per signal taken over. */
        atomic_fetch_add(&rt->bo_word, 1);
        edo__futex_wake(&rt->bo_word, INT_MAX);
        for (uint32_t n; (n = atomic_load(&rt->sig_unacked)) != 0;)
            edo__futex_wait(&rt->sig_unacked, n, -1);
    }
    return rc;
}

int edo_signal_take(const int *sigs, int nsig)
{
    sigset_t want;
    return take(sigs, nsig, &want);
}

int edo_signal_wait(const int *sigs, int nsig)
{
    sigset_t want;
    int rc = take(sigs, nsig, &want);
    if (rc < 0)
        return rc;
    edo_runtime *rt = edo__worker_current()->rt;
    for (;;) {
        struct signalfd_siginfo si;
        ssize_t n = edo__read_for(rt->sigio, &si, sizeof si, EDO_WAIT_SIGNAL);
        if (n < 0)
            return (int)n;
        if (n == (ssize_t)sizeof si && sigismember(&want, (int)si.ssi_signo))
            return (int)si.ssi_signo;
        /* A signal another edo_signal_wait asked for once, which nobody waits for now. */
    }
}

void edo__signal_fini(edo_runtime *rt)
{
    if (!rt->sigio)
        return;
    /* Take what is pending first, so that unblocking does not deliver it. */
    struct signalfd_siginfo si;
    while (read(edo_io_fd(rt->sigio), &si, sizeof si) == (ssize_t)sizeof si)
        ;
    edo_close(rt->sigio);
    rt->sigio = NULL;
    /* The driving thread's own mask comes back when it stops driving (runtime.c). */
}
