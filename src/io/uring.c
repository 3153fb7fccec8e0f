/*
 * The io_uring driver: see uring.h. Also the choice of backend, which every build has.
 */
#include "io/uring.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *edo_backend_name(edo_backend b)
{
    switch (b) {
    case EDO_BACKEND_EPOLL:
        return "epoll";
    case EDO_BACKEND_URING:
        return "io_uring";
    default:
        return "auto";
    }
}

int edo_backend_parse(const char *name, edo_backend *b)
{
    if (!name || !b)
        return -EINVAL;
    if (!strcmp(name, "auto"))
        *b = EDO_BACKEND_AUTO;
    else if (!strcmp(name, "epoll"))
        *b = EDO_BACKEND_EPOLL;
    else if (!strcmp(name, "uring") || !strcmp(name, "io_uring"))
        *b = EDO_BACKEND_URING;
    else
        return -EINVAL;
    return 0;
}

edo_backend edo_runtime_backend(const edo_runtime *rt)
{
    return rt ? rt->backend : EDO_BACKEND_AUTO;
}

bool edo__uring_on(void)
{
    edo__worker *w = edo__worker_current();
    return w && w->rt->backend == EDO_BACKEND_URING;
}

static bool log_wanted(void)
{
    const char *s = getenv("EDO_LOG");
    return s && *s && strcmp(s, "0") != 0;
}

#ifndef EDO_HAVE_URING

int edo__backend_init(edo_runtime *rt, edo_backend want)
{
    if (want == EDO_BACKEND_AUTO) {
        const char *env = getenv("EDO_BACKEND");
        if (env && *env && edo_backend_parse(env, &want) < 0)
            return -EINVAL;
    }
    if (want == EDO_BACKEND_URING)
        return -ENOSYS;
    rt->backend = EDO_BACKEND_EPOLL;
    if (log_wanted())
        fprintf(stderr,
                "edo: backend epoll (this build has no io_uring: liburing was not found)\n");
    return 0;
}

int edo__ring_init(edo__worker *w)
{
    return -ENOSYS;
}

void edo__ring_fini(edo__worker *w)
{
}

int edo__ring_poll(edo__worker *w, int timeout_ms)
{
    return 0;
}

bool edo__ring_pending(const edo__worker *w)
{
    return false;
}

void edo__ring_unpark(edo__worker *w)
{
}

#else /* EDO_HAVE_URING */

int edo__backend_init(edo_runtime *rt, edo_backend want)
{
    if (want == EDO_BACKEND_AUTO) {
        const char *env = getenv("EDO_BACKEND");
        if (env && *env && edo_backend_parse(env, &want) < 0)
            return -EINVAL;
    }
    rt->backend = EDO_BACKEND_EPOLL; /* the io_uring driver is not there yet */
    if (want == EDO_BACKEND_URING)
        return -ENOSYS;
    if (log_wanted())
        fprintf(stderr, "edo: backend epoll\n");
    return 0;
}

int edo__ring_init(edo__worker *w)
{
    return -ENOSYS;
}

void edo__ring_fini(edo__worker *w)
{
}

int edo__ring_poll(edo__worker *w, int timeout_ms)
{
    return 0;
}

bool edo__ring_pending(const edo__worker *w)
{
    return false;
}

void edo__ring_unpark(edo__worker *w)
{
}

int edo__uring_op(edo__uring_prep_fn prep, void *arg, edo_wait_reason why, int64_t deadline)
{
    return -ENOSYS;
}

#endif
