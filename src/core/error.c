/*
 * Errors are negative errno values; these turn them into text and classify them.
 */
#include "edo.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

const char *edo_strerror(int err)
{
    if (err < 0)
        err = -err;
    switch (err) {
    case 0:
        return "Success";
    case EDO_EABORTED:
        return "Task was aborted";
    case EDO_ECLOSED:
        return "Closed";
    case EDO_EEMPTY:
        return "Nothing to wait for";
    case EDO_ENOTASK:
        return "Not called from an edo task";
    case EDO_EINTASK:
        return "Not allowed from an edo task";
    /* errno values whose C library text says something else than edo means by them */
    case ETIMEDOUT:
        return "Timed out";
    case ECANCELED:
        return "Canceled: the task was aborted";
    case ESHUTDOWN:
        return "Runtime is shutting down";
    }
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
    /* Unlike strerror, returns a constant string: safe from any thread. */
    const char *s = strerrordesc_np(err);
    if (s)
        return s;
#else
    switch (err) {
    case ECONNRESET:
        return "Connection reset by peer";
    case ECONNREFUSED:
        return "Connection refused";
    case EPIPE:
        return "Broken pipe";
    case EMFILE:
        return "Too many open files";
    case ENOMEM:
        return "Cannot allocate memory";
    case EINVAL:
        return "Invalid argument";
    }
#endif
    return "Unknown error";
}

bool edo_retryable(int err)
{
    switch (err < 0 ? -err : err) {
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM:
    case ECONNABORTED:
    case EINTR:
    case EAGAIN:
        return true;
    default:
        return false;
    }
}

int edo_fail(int err, const char *what)
{
    fprintf(stderr, "edo: %s: %s\n", what ? what : "error", edo_strerror(err));
    return err;
}
