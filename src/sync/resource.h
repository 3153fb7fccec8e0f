/*
 * The registry of live synchronisation objects (resource.c), for edo_resource_list: each
 * channel, broadcast, watch, mutex, read-write lock, semaphore, notify, barrier and token
 * joins it when made and leaves it when freed.
 *
 * The registry is split in shards by address, each with its own lock, so that objects
 * made and freed on different workers rarely meet. A visit holds the shard's lock while it
 * describes an object, and a description takes the object's own lock: the order is always
 * shard, then object, and no object calls into the registry holding its lock. An object
 * leaves before its memory goes, so a visit never sees a freed one.
 */
#ifndef EDO_SYNC_RESOURCE_H
#define EDO_SYNC_RESOURCE_H

#include "core/list.h"
#include "edo/observe.h"
#include "edo/sync.h"
#include "sync/wait.h"

typedef struct edo__res {
    edo__link link;
    edo_resource_kind kind;
} edo__res;

void edo__res_add(edo__res *r, edo_resource_kind kind);
void edo__res_remove(edo__res *r);

/* Fills in info->waiters and waiter_ids from q (under the object's lock). */
void edo__res_waiters(const edo__waitq *q, edo_resource_info *info);

/* What each kind's file says about one of its objects, taking the object's lock. */
void edo__chan_describe(edo__res *r, edo_resource_info *info);
void edo__bcast_describe(edo__res *r, edo_resource_info *info);
void edo__watch_describe(edo__res *r, edo_resource_info *info);
void edo__mutex_describe(edo__res *r, edo_resource_info *info);
void edo__rwlock_describe(edo__res *r, edo_resource_info *info);
void edo__sem_describe(edo__res *r, edo_resource_info *info);
void edo__notify_describe(edo__res *r, edo_resource_info *info);
void edo__barrier_describe(edo__res *r, edo_resource_info *info);
void edo__token_describe(edo__res *r, edo_resource_info *info);

/* A semaphore registered as `kind` (a read-write lock's is EDO_RES_RWLOCK) (sem.c). */
int edo__sem_make(edo_sem **s, uint64_t permits, edo_resource_kind kind);
/* A read-write lock's writer, for its description. */
void edo__sem_set_holder(edo_sem *sem, uint64_t id);
/* A read-write lock's permits: a reader takes one, a writer all. */
#define EDO__RWLOCK_ALL EDO_SEM_MAX

/* The holder id a lock records: the task's, or EDO_HOLDER_THREAD for a thread. */
uint64_t edo__holder_self(void);

#endif
