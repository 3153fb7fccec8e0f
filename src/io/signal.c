/*
 * Signals as something a task waits for: the signals are blocked and read from a
 * signalfd, so no user code ever runs inside a signal handler.
 */
#include "io/io.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

int edo_signal_wait(const int *sigs, int nsig)
{
    edo__worker *w = edo__worker_current();
    if (!w || !w->current)
        return -EPERM;
    if (!sigs || nsig <= 0)
        return -EINVAL;
    edo_runtime *rt = w->rt;
    sigset_t want;
    sigemptyset(&want);
    bool added = false;
    for (int i = 0; i < nsig; i++) {
        if (sigs[i] <= 0 || sigs[i] >= NSIG || sigs[i] == SIGKILL || sigs[i] == SIGSTOP)
            return -EINVAL;
        sigaddset(&want, sigs[i]);
        if (!sigismember(&rt->sigmask, sigs[i])) {
            sigaddset(&rt->sigmask, sigs[i]);
            added = true;
        }
    }
    if (added) {
        int rc = pthread_sigmask(SIG_BLOCK, &rt->sigmask, NULL);
        if (rc)
            return -rc;
        int fd = signalfd(rt->sigio ? edo_io_fd(rt->sigio) : -1, &rt->sigmask,
                          SFD_NONBLOCK | SFD_CLOEXEC);
        if (fd < 0)
            return -errno;
        if (!rt->sigio && (rc = edo__io_new(&rt->sigio, fd, EDO__IO_POLLABLE)) < 0) {
            close(fd);
            return rc;
        }
    }
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
