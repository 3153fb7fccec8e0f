/*
 * Read-write lock: a semaphore (sem.c) of ALL permits, of which a reader takes one and a
 * writer takes all. The semaphore serves its waiters strictly in order, the first one
 * holding back those behind it, so the lock's fairness is the semaphore's: a writer that
 * waits for the readers to leave blocks every reader that comes after it, and a writer's
 * unlock lets in the run of readers at the head of the queue together.
 */
#include "sync/resource.h"
#include "sync/sync.h"

#include <errno.h>
#include <stdlib.h>

/* Readers at once: more than there can be tasks or threads. */
#define ALL EDO__RWLOCK_ALL

struct edo_rwlock {
    edo_sem *sem;
};

int edo_rwlock_new(edo_rwlock **l)
{
    if (!l)
        return -EINVAL;
    *l = NULL;
    edo_rwlock *rw = malloc(sizeof *rw);
    if (!rw)
        return -ENOMEM;
    int rc = edo__sem_make(&rw->sem, ALL, EDO_RES_RWLOCK);
    if (rc < 0) {
        free(rw);
        return rc;
    }
    *l = rw;
    return 0;
}

int edo_rwlock_rdlock(edo_rwlock *l)
{
    if (!l)
        return -EINVAL;
    return edo_sem_acquire(l->sem, 1);
}

int edo_rwlock_wrlock(edo_rwlock *l)
{
    if (!l)
        return -EINVAL;
    int rc = edo_sem_acquire(l->sem, ALL);
    if (rc == 0)
        edo__sem_set_holder(l->sem, edo__holder_self());
    return rc;
}

int edo_rwlock_try_rdlock(edo_rwlock *l)
{
    if (!l)
        return -EINVAL;
    return edo_sem_try_acquire(l->sem, 1) == 0 ? 0 : -EBUSY;
}

int edo_rwlock_try_wrlock(edo_rwlock *l)
{
    if (!l)
        return -EINVAL;
    if (edo_sem_try_acquire(l->sem, ALL) < 0)
        return -EBUSY;
    edo__sem_set_holder(l->sem, edo__holder_self());
    return 0;
}

void edo_rwlock_rdunlock(edo_rwlock *l)
{
    if (!l)
        return;
    edo_sem_release(l->sem, 1);
}

void edo_rwlock_wrunlock(edo_rwlock *l)
{
    if (!l)
        return;
    edo__sem_set_holder(l->sem, 0);
    edo_sem_release(l->sem, ALL);
}

void edo_rwlock_free(edo_rwlock *l)
{
    if (!l)
        return;
    edo_sem_free(l->sem);
    free(l);
}
