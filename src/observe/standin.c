/*
 * Stand-ins for edo_task_backtrace and edo_blocking_list (edo/observe.h) until the
 * unwinder and the blocking-task watch are in the library: weak, so that the real
 * definitions replace them wherever both are linked. They say what a build without them
 * has: no unwinder, no reports. This file goes when those land.
 */
#include "edo/observe.h"

#include <errno.h>

__attribute__((weak)) int edo_task_backtrace(edo_runtime *rt, uint64_t id, char *buf, size_t len)
{
    (void)rt;
    (void)id;
    if (len)
        buf[0] = 0;
    return -ENOSYS;
}

__attribute__((weak)) size_t
edo_blocking_list(edo_runtime *rt, int (*fn)(const edo_blocking_info *, void *), void *arg)
{
    (void)rt;
    (void)fn;
    (void)arg;
    return 0;
}
