/*
 * Sleeping. Every other call that suspends takes its deadline through edo__park.
 */
#include "core/runtime.h"

#include <errno.h>

int edo_sleep_until(int64_t deadline)
{
    edo_task *t = edo__task_current();
    if (!t)
        return -EDO_ENOTASK;
    edo__wait_note(t, NULL, 0, EDO__OP_NONE);
    for (;;) {
        int rc = edo__park(EDO_WAIT_SLEEP, deadline);
        if (rc == -ETIMEDOUT)
            /* Our own wake-up time, unless the task's deadline came first. */
            return t->deadline <= edo_now() && t->deadline < EDO_NEVER ? -ETIMEDOUT : 0;
        if (rc < 0)
            return rc;
        /* Woken early (a stale wake-up): sleep on. */
    }
}

int edo_sleep(int64_t ms)
{
    if (ms <= 0)
        return edo_yield();
    /* Round the start up to the next millisecond, so the sleep lasts at least ms. */
    edo_task *t = edo__task_current();
    int64_t start = (edo__clock_ns(t ? t->rt : NULL) + 999999) / 1000000;
    return edo_sleep_until(ms >= EDO_NEVER - start ? EDO_NEVER : start + ms);
}
