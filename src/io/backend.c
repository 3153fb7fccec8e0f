/*
 * The choice of a runtime's I/O driver, and edo_runtime_new, which wires the scheduler
 * (src/core) to it (src/core knows drivers only through driver.h) and the observation
 * layer's endpoints to the runtime.
 */
#include "io/io.h"
#include "observe/observe.h"

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

void edo__io_shutdown(edo_runtime *rt)
{
    edo__signal_fini(rt);
}

void edo__io_worker_fini(edo__worker *w)
{
    edo__lent_cache_free(w);
}

/* An AUTO choice defers to EDO_BACKEND. Returns 0 or -EINVAL (unknown name). */
static int backend_wanted(edo_backend *want)
{
    const char *env = getenv("EDO_BACKEND");
    if (*want != EDO_BACKEND_AUTO || !env || !*env)
        return 0;
    return edo_backend_parse(env, want);
}

static int use_epoll(edo_runtime *rt, bool log, const char *why, const char *detail)
{
    rt->backend = EDO_BACKEND_EPOLL;
    rt->driver = &edo__epoll_driver;
    if (log)
        fprintf(stderr, "edo: backend epoll, %d worker%s (%s%s%s)\n", rt->nworkers,
                rt->nworkers == 1 ? "" : "s", why, detail ? ": " : "", detail ? detail : "");
    return 0;
}

/* The edo__driver_choice of every runtime: `want`, else EDO_BACKEND, else io_uring where
 * the build and the kernel have it, else epoll. */
static int choose(edo_runtime *rt, edo_backend want)
{
    if (backend_wanted(&want) < 0)
        return -EINVAL;
    bool log = edo__log_chatty();
    if (want == EDO_BACKEND_EPOLL)
        return use_epoll(rt, log, "asked for", NULL);
#ifdef EDO_HAVE_URING
    const char *why = NULL;
    unsigned flags = 0;
    int rc = edo__uring_probe(rt->threaded, &flags, &why);
    if (rc < 0) {
        if (want == EDO_BACKEND_URING) {
            if (log)
                fprintf(stderr, "edo: io_uring asked for, but %s: %s\n", why, strerror(-rc));
            return rc;
        }
        return use_epoll(rt, log, why, strerror(-rc));
    }
    rt->backend = EDO_BACKEND_URING;
    rt->driver = &edo__uring_driver;
    rt->driver_flags = flags;
    if (log)
        fprintf(stderr, "edo: backend io_uring (%s), %d worker%s\n",
                flags & IORING_SETUP_COOP_TASKRUN ? "cooperative task work"
                                                  : "interrupting task work",
                rt->nworkers, rt->nworkers == 1 ? "" : "s");
    return 0;
#else
    if (want == EDO_BACKEND_URING)
        return -ENOSYS;
    return use_epoll(rt, log, "this build has no io_uring: liburing was not found", NULL);
#endif
}

int edo_runtime_new(edo_runtime **out, const edo_runtime_opts *opts)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    /* The endpoints first: one that cannot be opened fails the call before there is a
     * runtime to take apart. Their thread starts once the runtime is there. */
    edo__observer *obs;
    int rc = edo__observe_open(&obs, opts);
    if (rc < 0)
        return rc;
    if ((rc = edo__runtime_new(out, opts, choose)) < 0) {
        edo__observe_close(obs);
        return rc;
    }
    if (obs && (rc = edo__observe_start(obs, *out)) < 0) {
        edo_runtime_free(*out);
        *out = NULL;
    }
    return rc;
}
