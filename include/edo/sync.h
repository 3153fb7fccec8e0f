/*
 * edo/sync.h - channels, locks, notification, cancellation tokens, join sets and select.
 * Included by edo.h; do not include it alone.
 *
 * Conventions of this part (on top of edo.h's)
 *  - Every call that waits suspends the calling task, never its worker thread. Like every
 *    call that suspends it fails with -ETIMEDOUT once the task's deadline has passed (see
 *    edo_deadline_begin: any of these calls can be bounded that way) and with -ECANCELED
 *    once the task is aborted. A wait given up like that leaves nothing behind in the
 *    object. A call that returns 0 did all it says, even if the deadline passed or an
 *    abort came while it finished: nothing is ever half done, no message is lost.
 *  - Calls marked "any thread" may also be made from a thread outside the runtime; a
 *    waiting call made there blocks that thread (and knows no deadline).
 *  - Objects are created by a _new call (0 or -ENOMEM/-EINVAL) and freed by their _free
 *    call once no task uses or waits on them any more. A NULL object is -EINVAL for
 *    calls that return an int, and does nothing for the others.
 *  - Messages are copied: a channel is created for elements of elem_size bytes, a send
 *    copies elem_size bytes from its argument into the channel and a receive copies them
 *    out. To pass larger or shared data, send pointers (elem_size = sizeof(void *)); who
 *    owns the pointed-to memory is then the program's convention.
 *  - "Closed" is -EDO_ECLOSED throughout: a send to a closed channel fails with it, and a receive
 *    fails with it once the channel is closed and everything sent before has been received.
 */
#ifndef EDO_SYNC_H
#define EDO_SYNC_H

#ifndef EDO_H
#error "include <edo.h>, which includes this header"
#endif

/* ---------------------------------------------------------------------------------------- */
/* Channels: many senders, many receivers, each message received once, in order           */

typedef struct edo_chan edo_chan;

#define EDO_UNBOUNDED SIZE_MAX

/* Creates a channel for messages of elem_size bytes (1 to 65536) holding at most capacity
 * messages: a send waits while it is full. capacity EDO_UNBOUNDED: never full (a send can
 * then fail only with -ENOMEM or -EDO_ECLOSED). capacity 0: a rendezvous, where a send waits
 * until a receiver takes its message. Any thread. */
int edo_chan_new(edo_chan **ch, size_t elem_size, size_t capacity);

/* A channel for exactly one message: the first send succeeds without waiting and closes
 * the channel, so later sends fail with -EDO_ECLOSED and a receive gets the message, then
 * -EDO_ECLOSED. A receive also gets -EDO_ECLOSED if it is closed unsent (edo_chan_close). For a
 * reply whose asker may give up (deadline, abort) while the answerer still holds the
 * channel, the last of the two to be done with it frees it: a count of two, decremented
 * atomically by each, is enough. */
int edo_oneshot_new(edo_chan **ch, size_t elem_size);

/* Sends a copy of *msg: hands it to a waiting receiver, or queues it, or waits while the
 * channel is full (suspends). Returns 0 (the message will be received unless the
 * channel is freed first), -EDO_ECLOSED if the channel is closed (also while waiting: the message
 * is then not sent), -ENOMEM (unbounded), or the wait's -ETIMEDOUT/-ECANCELED (not sent).
 * Any thread. */
int edo_chan_send(edo_chan *ch, const void *msg);

/* edo_chan_send without waiting: -EAGAIN if it is full (a rendezvous: if no receiver
 * waits). Any thread. */
int edo_chan_try_send(edo_chan *ch, const void *msg);

/* Receives the oldest message into *msg (suspends while there is none). Returns 0, -EDO_ECLOSED
 * once the channel is closed and empty, or the wait's -ETIMEDOUT/-ECANCELED (nothing was
 * taken). Any thread. */
int edo_chan_recv(edo_chan *ch, void *msg);

/* edo_chan_recv without waiting: -EAGAIN if there is no message. Any thread. */
int edo_chan_try_recv(edo_chan *ch, void *msg);

/* Closes the channel: sends fail with -EDO_ECLOSED from now on (waiting senders too, their
 * messages unsent); receivers still get every message sent before, then -EDO_ECLOSED. Any
 * thread; closing twice does nothing. */
void edo_chan_close(edo_chan *ch);

/* Messages queued now. */
size_t edo_chan_len(edo_chan *ch);

/* Whether edo_chan_close has been called. */
bool edo_chan_closed(edo_chan *ch);

/* Frees the channel and the messages still in it (receive them first if they own memory).
 * No task may use or wait on it any more. */
void edo_chan_free(edo_chan *ch);

/* ---------------------------------------------------------------------------------------- */
/* Broadcast: every receiver gets every message                                             */

typedef struct edo_bcast edo_bcast;
typedef struct edo_bcast_rx edo_bcast_rx;

/* Creates a broadcast channel for messages of elem_size bytes (1 to 65536) that keeps
 * the last capacity (>= 1) messages. A send never waits: when a receiver is capacity
 * messages behind, the oldest message is overwritten and that receiver lags. Any thread. */
int edo_bcast_new(edo_bcast **b, size_t elem_size, size_t capacity);

/* A new receiver, which gets every message sent from now on. Any thread. */
int edo_bcast_subscribe(edo_bcast_rx **rx, edo_bcast *b);

/* Sends a copy of *msg to every receiver. Returns the number of receivers subscribed (0
 * is no error: nobody listened), or -EDO_ECLOSED once closed. Never waits. Any thread. */
int edo_bcast_send(edo_bcast *b, const void *msg);

/* Receives the receiver's next message (suspends while there is none). Returns 0;
 * -EOVERFLOW if messages were overwritten before this receiver got them: *missed (if not
 * NULL) says how many, and the next call returns the oldest message still kept; -EDO_ECLOSED
 * once the channel is closed and the receiver has had everything; or the wait's
 * -ETIMEDOUT/-ECANCELED. One task at a time per receiver. */
int edo_bcast_recv(edo_bcast_rx *rx, void *msg, uint64_t *missed);

/* edo_bcast_recv without waiting: -EAGAIN if there is nothing new. */
int edo_bcast_try_recv(edo_bcast_rx *rx, void *msg, uint64_t *missed);

/* How many messages were sent that the receiver has not received yet; more than the
 * channel's capacity once it lags (its next receive then returns -EOVERFLOW). 0 for a
 * NULL receiver. Any thread. */
uint64_t edo_bcast_lag(const edo_bcast_rx *rx);

/* Frees a receiver. Any thread, but not while a task waits on it. */
void edo_bcast_unsubscribe(edo_bcast_rx *rx);

/* Closes the channel: sends fail with -EDO_ECLOSED; receivers get what is kept, then -EDO_ECLOSED.
 */
void edo_bcast_close(edo_bcast *b);

/* Frees the channel; every receiver must have been unsubscribed. */
void edo_bcast_free(edo_bcast *b);

/* ---------------------------------------------------------------------------------------- */
/* Watch: the latest value, and a wait for the next change                                  */

typedef struct edo_watch edo_watch;

/* Creates a watch holding a copy of *initial (elem_size bytes, 1 to 65536), at version 1.
 * Any thread. */
int edo_watch_new(edo_watch **w, size_t elem_size, const void *initial);

/* Replaces the value with a copy of *val and wakes every task waiting for a change.
 * Returns 0 or -EDO_ECLOSED once closed. Any thread. */
int edo_watch_send(edo_watch *w, const void *val);

/* Copies the current value into *val (if not NULL) and returns its version (>= 1). Any
 * thread. */
uint64_t edo_watch_get(edo_watch *w, void *val);

/* Waits until the version is newer than *seen (suspends), then copies the value into *val
 * (if not NULL) and stores its version in *seen. Start with *seen = 0 to get the current
 * value at once, or with what edo_watch_get returned. Changes between two calls are
 * coalesced: only the latest value is seen. Returns 0, -EDO_ECLOSED once closed with no newer
 * value, or the wait's -ETIMEDOUT/-ECANCELED. Any thread. */
int edo_watch_recv(edo_watch *w, void *val, uint64_t *seen);

/* Closes the watch: sends fail with -EDO_ECLOSED, waiting receivers return -EDO_ECLOSED. */
void edo_watch_close(edo_watch *w);

void edo_watch_free(edo_watch *w);

/* ---------------------------------------------------------------------------------------- */
/* Mutex, read-write lock, semaphore                                                        */

/* All three are fair: waiters are served in the order they came (first in, first out),
 * and a release hands the lock or the permits straight to the first waiter, so a task
 * that keeps locking can never overtake one that waits. A lock or acquire that finds the
 * object free counts as an operation for the task's budget (edo.h), so a task that locks
 * in a tight loop still lets the others run now and then: before it takes the lock,
 * never while it holds it. */

typedef struct edo_mutex edo_mutex;

int edo_mutex_new(edo_mutex **m);

/* Locks m (suspends while another holds it). Returns 0 or the wait's
 * -ETIMEDOUT/-ECANCELED (not locked). Not recursive: locking a mutex the task already
 * holds waits for ever (until its deadline or abort). Any thread. */
int edo_mutex_lock(edo_mutex *m);

/* Locks m if it is free and nobody waits: 0, else -EBUSY. Any thread. */
int edo_mutex_try_lock(edo_mutex *m);

/* Unlocks m, handing it to the first waiter if there is one. The task (or thread) that
 * locked it need not be the one that unlocks it. Any thread. */
void edo_mutex_unlock(edo_mutex *m);

void edo_mutex_free(edo_mutex *m);

typedef struct edo_rwlock edo_rwlock;

int edo_rwlock_new(edo_rwlock **l);

/* Takes l for reading: many readers at once, no writer (suspends). A reader that comes
 * after a waiting writer waits behind it. Returns 0 or -ETIMEDOUT/-ECANCELED. Any
 * thread. */
int edo_rwlock_rdlock(edo_rwlock *l);

/* Takes l for writing: alone (suspends). Returns 0 or -ETIMEDOUT/-ECANCELED. Any thread. */
int edo_rwlock_wrlock(edo_rwlock *l);

/* Without waiting: 0 or -EBUSY. Any thread. */
int edo_rwlock_try_rdlock(edo_rwlock *l);
int edo_rwlock_try_wrlock(edo_rwlock *l);

/* Releases a read or a write lock. Any thread. */
void edo_rwlock_rdunlock(edo_rwlock *l);
void edo_rwlock_wrunlock(edo_rwlock *l);

void edo_rwlock_free(edo_rwlock *l);

typedef struct edo_sem edo_sem;

/* Creates a semaphore with `permits` permits (at most EDO_SEM_MAX). */
#define EDO_SEM_MAX ((uint64_t)1 << 60)
int edo_sem_new(edo_sem **s, uint64_t permits);

/* Takes n permits at once (suspends until n are free and every earlier waiter is
 * served). Returns 0; -EINVAL if n is 0 or more than EDO_SEM_MAX; -EDO_ECLOSED once the
 * semaphore is closed; or -ETIMEDOUT/-ECANCELED (no permit taken). Any thread. */
int edo_sem_acquire(edo_sem *s, uint64_t n);

/* Without waiting: 0 or -EAGAIN (also when others wait, to keep their turn), -EDO_ECLOSED once
 * closed, -EINVAL for a bad n. */
int edo_sem_try_acquire(edo_sem *s, uint64_t n);

/* Gives n permits back (or adds new ones; the count stops at EDO_SEM_MAX). Any thread. */
void edo_sem_release(edo_sem *s, uint64_t n);

/* Permits free now. */
uint64_t edo_sem_available(edo_sem *s);

/* Closes the semaphore: waiting and later acquires fail with -EDO_ECLOSED. Releases still
 * count. Any thread. */
void edo_sem_close(edo_sem *s);

void edo_sem_free(edo_sem *s);

/* ---------------------------------------------------------------------------------------- */
/* Notify and barrier                                                                       */

typedef struct edo_notify edo_notify;

int edo_notify_new(edo_notify **n);

/* Waits for a notification (suspends): returns at once if a permit is stored (and takes
 * it), else when edo_notify_one picks this task or edo_notify_all is called. Returns 0 or
 * -ETIMEDOUT/-ECANCELED. Any thread. */
int edo_notify_wait(edo_notify *n);

/* The number of edo_notify_all calls so far. Read it before checking the condition you
 * wait for, then wait with edo_notify_wait_since: a notify_all that comes between the check
 * and the wait is not missed. Any thread. */
uint64_t edo_notify_epoch(edo_notify *n);

/* edo_notify_wait that also returns at once if edo_notify_all has been called since
 * edo_notify_epoch returned `epoch`. */
int edo_notify_wait_since(edo_notify *n, uint64_t epoch);

/* Wakes the task that has waited longest; with none waiting, stores one permit for the
 * next wait (at most one is stored: notifications with nobody waiting coalesce). Any
 * thread. */
void edo_notify_one(edo_notify *n);

/* Wakes every task waiting now; stores no permit. Any thread. */
void edo_notify_all(edo_notify *n);

void edo_notify_free(edo_notify *n);

typedef struct edo_barrier edo_barrier;

/* A barrier for n (>= 1) tasks, reusable: each time n tasks have arrived, all go on. */
int edo_barrier_new(edo_barrier **b, unsigned n);

/* Arrives and waits until n tasks have (suspends). Returns 1 in exactly one task of each
 * round (the leader, to do a round's once-only work), 0 in the others, or
 * -ETIMEDOUT/-ECANCELED: the task left before the round was full and does not count. Any
 * thread. */
int edo_barrier_wait(edo_barrier *b);

void edo_barrier_free(edo_barrier *b);

/* ---------------------------------------------------------------------------------------- */
/* Cancellation tokens                                                                      */

/* A token is a flag that goes from "live" to "cancelled" once, with a wait for it. Tokens
 * form a tree: cancelling one cancels all its descendants (not its parent). Typical use:
 * a server's root token, a child per connection; shutting down cancels the root, a
 * misbehaving connection only its own. */
typedef struct edo_token edo_token;

/* Creates a token, a child of parent (NULL: a root). A child of a cancelled token is
 * cancelled from the start. Any thread. */
int edo_token_new(edo_token **tok, edo_token *parent);

/* Cancels tok and every descendant, waking their waiters. Any thread; again: nothing. */
void edo_token_cancel(edo_token *tok);

/* Whether tok is cancelled. Any thread. */
bool edo_token_cancelled(edo_token *tok);

/* Waits until tok is cancelled (suspends). Returns 0, or -ETIMEDOUT/-ECANCELED. Any
 * thread. */
int edo_token_wait(edo_token *tok);

/* Releases tok. Its children stay valid (and are still cancelled with tok's ancestors). */
void edo_token_free(edo_token *tok);

/* ---------------------------------------------------------------------------------------- */
/* Join sets                                                                                */

/* A group of tasks whose results are taken as they finish, in the order they finish. */
typedef struct edo_joinset edo_joinset;

int edo_joinset_new(edo_joinset **js);

/* Spawns fn(arg) as a task of the set (as edo_spawn, which may fail the same ways). Its
 * id is stored in *id if id is not NULL. */
#define edo_joinset_spawn(js, fn, arg, id) edo_joinset_spawn_at((js), (fn), (arg), (id), EDO__HERE)

/* Waits for the next task of the set to finish (suspends) and takes it out of the set:
 * its result in *result and its id in *id (each if not NULL). Returns 0, -ECANCELED if
 * that task was aborted (result: what it returned while unwinding), -EDO_EEMPTY if the set
 * is empty (also for every task still waiting here when the last one is taken), or
 * -ETIMEDOUT/-ECANCELED of the wait (then no task was taken out and *id is 0, which tells
 * this -ECANCELED from an aborted task's). */
int edo_joinset_next(edo_joinset *js, void **result, uint64_t *id);

/* Tasks in the set (running, or finished and not yet taken by edo_joinset_next). */
size_t edo_joinset_len(edo_joinset *js);

/* Aborts every task in the set; they stay in it until taken by edo_joinset_next. */
void edo_joinset_abort_all(edo_joinset *js);

/* Aborts every task still in the set, waits until all have returned (suspends, not cut
 * short by the caller's deadline or abort) and frees the set, with the results nobody
 * took (take them first if they own memory). Any thread, but not after the runtime's
 * shutdown has abandoned tasks of the set: those never return. */
void edo_joinset_free(edo_joinset *js);

int edo_joinset_spawn_at(edo_joinset *js, edo_task_fn fn, void *arg, uint64_t *id,
                         const char *site);

/* ---------------------------------------------------------------------------------------- */
/* Select: wait for the first of several operations                                        */

/* edo_select waits until one of its cases can complete, completes that one only and
 * returns its index; the others are withdrawn, untouched: a message is taken only by the
 * case that returns it. When several cases can complete at once, one of them is picked at
 * random, so that none starves.
 *
 *     edo_case cs[] = { edo_case_recv(msgs, &m), edo_case_read(sock),
 *                       edo_case_cancel(stop), edo_case_timeout(1000) };
 *     switch (edo_select(cs, 4)) {
 *     case 0: if (cs[0].rc == -EDO_ECLOSED) ...   the channel is closed ... break;
 *     case 1: ...   edo_try_read(sock, ...) ... break;
 *     ...
 *     }
 *
 * A case's own result is in its .rc: 0, or the error its operation completed with (a
 * receive on a closed channel: -EDO_ECLOSED; on a broadcast receiver that lagged: -EOVERFLOW; a
 * descriptor already closed: -EBADF; another task already waiting on the same descriptor
 * direction or task: -EBUSY). Build cases with the functions below; do not fill the
 * struct by hand. */
typedef struct edo_case {
    int kind;         /* EDO__CASE_* */
    void *obj;        /* the channel, receiver, descriptor, task, token, ... */
    void *buf;        /* the message to send or the place to receive into */
    uint64_t *u64;    /* broadcast: missed; watch: seen */
    int64_t deadline; /* timer */
    int rc;           /* the result of the case that fired */
} edo_case;

enum {
    EDO__CASE_OFF,
    EDO__CASE_RECV,
    EDO__CASE_SEND,
    EDO__CASE_BCAST,
    EDO__CASE_WATCH,
    EDO__CASE_NOTIFY,
    EDO__CASE_CANCEL,
    EDO__CASE_JOIN,
    EDO__CASE_READ,
    EDO__CASE_WRITE,
    EDO__CASE_TIMER,
};

/* Receives from ch into *msg (edo_chan_recv). */
static inline edo_case edo_case_recv(edo_chan *ch, void *msg)
{
    return (edo_case){ .kind = EDO__CASE_RECV, .obj = ch, .buf = msg };
}

/* Sends *msg on ch (edo_chan_send). */
static inline edo_case edo_case_send(edo_chan *ch, const void *msg)
{
    return (edo_case){ .kind = EDO__CASE_SEND, .obj = ch, .buf = (void *)msg };
}

/* Receives from a broadcast receiver (edo_bcast_recv; missed may be NULL). */
static inline edo_case edo_case_bcast(edo_bcast_rx *rx, void *msg, uint64_t *missed)
{
    return (edo_case){ .kind = EDO__CASE_BCAST, .obj = rx, .buf = msg, .u64 = missed };
}

/* A change of w newer than *seen (edo_watch_recv; val may be NULL). */
static inline edo_case edo_case_watch(edo_watch *w, void *val, uint64_t *seen)
{
    return (edo_case){ .kind = EDO__CASE_WATCH, .obj = w, .buf = val, .u64 = seen };
}

/* A notification (edo_notify_wait: takes a stored permit, or is picked by notify_one,
 * or woken by notify_all). */
static inline edo_case edo_case_notify(edo_notify *n)
{
    return (edo_case){ .kind = EDO__CASE_NOTIFY, .obj = n };
}

/* tok is cancelled. */
static inline edo_case edo_case_cancel(edo_token *tok)
{
    return (edo_case){ .kind = EDO__CASE_CANCEL, .obj = tok };
}

/* Task t has returned; join it afterwards (edo_join then returns at once). The handle is
 * not consumed. */
static inline edo_case edo_case_join(edo_task *t)
{
    return (edo_case){ .kind = EDO__CASE_JOIN, .obj = t };
}

/* io is readable (EDO_READ) or writable: data or end of stream, or buffer space, or an
 * error, is there now. Follow with edo_try_read or edo_try_write, which never wait. An
 * io with a timeout for that direction (edo_io_set_timeout) bounds the case as it bounds a
 * call: once that long has passed since edo_select began, the case completes with
 * rc = -ETIMEDOUT. */
static inline edo_case edo_case_read(edo_io *io)
{
    return (edo_case){ .kind = EDO__CASE_READ, .obj = io };
}
static inline edo_case edo_case_write(edo_io *io)
{
    return (edo_case){ .kind = EDO__CASE_WRITE, .obj = io };
}

/* Fires when edo_now() >= deadline (EDO_NEVER: never). */
static inline edo_case edo_case_deadline(int64_t deadline)
{
    return (edo_case){ .kind = EDO__CASE_TIMER, .deadline = deadline };
}

/* Fires ms milliseconds from now. */
static inline edo_case edo_case_timeout(int64_t ms)
{
    int64_t now = edo_now();
    return edo_case_deadline(ms >= EDO_NEVER - now ? EDO_NEVER : now + (ms < 0 ? 0 : ms));
}

/* A case that never fires, for one that is off this time round (as a nil channel in Go). */
static inline edo_case edo_case_off(void)
{
    return (edo_case){ .kind = EDO__CASE_OFF };
}

/* Waits for the first of n (1 to 64) cases (suspends), completes it and returns its index;
 * its result is in cases[index].rc. What arrived in time wins: a case that became ready
 * before a deadline is chosen over the deadline, even when the task resumes after it. Returns
 * -EINVAL for a bad case or n, -EDO_ENOTASK outside a task, or -ETIMEDOUT/-ECANCELED of the task
 * (no case completed). */
int edo_select(edo_case *cases, int n);

#endif /* EDO_SYNC_H */
