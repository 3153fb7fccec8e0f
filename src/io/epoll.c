/*
 * The epoll driver: one epoll per runtime with one edge-triggered registration per
 * descriptor for both directions, and an eventfd to wake the thread that sleeps in
 * epoll_wait.
 *
 * One thread at a time polls (driver_busy). That makes freeing an io simple: edo_close
 * deregisters it and hands it to the retired list; an epoll_wait that starts after the
 * deregistration can no longer name it, and one that started before has finished its
 * batch by the time another thread takes the right to poll. So the next thread that takes
 * it frees what was retired before it took it.
 */
#include "io/io.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MAX_EVENTS 256
/* Retired io kept before the sleeping poller is woken to let them go. */
#define RETIRED_MAX 1024

/* The eventfd's registration carries this address instead of an edo_io. */
static char wake_tag;

int edo__epoll_init(edo_runtime *rt)
{
    edo__signal_init();
    edo__reactor *re = calloc(1, sizeof *re);
    if (!re)
        return -ENOMEM;
    re->epfd = re->evfd = -1;
    rt->driver_data = re;
    re->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (re->epfd < 0)
        return -errno;
    re->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (re->evfd < 0)
        return -errno;
    struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.ptr = &wake_tag };
    if (epoll_ctl(re->epfd, EPOLL_CTL_ADD, re->evfd, &ev) < 0)
        return -errno;
    return 0;
}

static void reclaim(edo__reactor *re);

void edo__epoll_fini(edo_runtime *rt)
{
    edo__reactor *re = rt->driver_data;
    if (!re)
        return;
    reclaim(re);
    if (re->evfd >= 0)
        close(re->evfd);
    if (re->epfd >= 0)
        close(re->epfd);
    free(re);
    rt->driver_data = NULL;
}

int edo__epoll_add(edo_runtime *rt, edo_io *io)
{
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
        .data.ptr = io,
    };
    if (epoll_ctl(edo__reactor_of(rt)->epfd, EPOLL_CTL_ADD, io->fd, &ev) < 0)
        return -errno;
    return 0;
}

void edo__epoll_del(edo_runtime *rt, edo_io *io)
{
    /* Explicitly, not by close(2): a duplicate of the descriptor elsewhere would keep the
     * registration, and its events would name freed memory. */
    epoll_ctl(edo__reactor_of(rt)->epfd, EPOLL_CTL_DEL, io->fd, NULL);
}

void edo__io_retire(edo_runtime *rt, edo_io *io)
{
    edo__reactor *re = edo__reactor_of(rt);
    edo_io *head = atomic_load_explicit(&re->retired, memory_order_relaxed);
    do
        io->retire_next = head;
    while (!atomic_compare_exchange_weak_explicit(&re->retired, &head, io, memory_order_release,
                                                  memory_order_relaxed));
    /* A poller asleep in epoll_wait holds the right to poll: past a bound, wake it so
     * that the next poll frees these. */
    if (atomic_fetch_add_explicit(&re->nretired, 1, memory_order_relaxed) == RETIRED_MAX)
        edo__epoll_unpark(rt);
}

static void reclaim(edo__reactor *re)
{
    if (!atomic_load_explicit(&re->retired, memory_order_relaxed))
        return;
    edo_io *io = atomic_exchange_explicit(&re->retired, NULL, memory_order_acquire);
    uint32_t n = 0;
    while (io) {
        edo_io *next = io->retire_next;
        free(io);
        io = next;
        n++;
    }
    atomic_fetch_sub_explicit(&re->nretired, n, memory_order_relaxed);
}

bool edo__epoll_acquire(edo_runtime *rt)
{
    edo__reactor *re = edo__reactor_of(rt);
    if (atomic_load_explicit(&re->busy, memory_order_relaxed) ||
        atomic_exchange_explicit(&re->busy, 1, memory_order_acquire))
        return false;
    /* Everything retired so far was deregistered before this poll, and every earlier
     * batch is done: free it now. */
    reclaim(re);
    return true;
}

void edo__epoll_release(edo_runtime *rt)
{
    atomic_store_explicit(&edo__reactor_of(rt)->busy, 0, memory_order_release);
}

static void ready(edo__dir *d, bool hup)
{
    if (hup)
        atomic_store(&d->hup, true);
    atomic_fetch_add_explicit(&d->events, 1, memory_order_seq_cst);
    edo__slot_fire(&d->waiter);
}

int edo__epoll_poll(edo_runtime *rt, int timeout_ms)
{
    edo__reactor *re = edo__reactor_of(rt);
    struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(re->epfd, evs, MAX_EVENTS, timeout_ms);
    for (int i = 0; i < n; i++) {
        uint32_t e = evs[i].events;
        if (evs[i].data.ptr == &wake_tag) {
            uint64_t v;
            ssize_t r = read(re->evfd, &v, sizeof v);
            (void)r;
            continue;
        }
        edo_io *io = evs[i].data.ptr;
        /* Hang-ups are sticky: after one, reads return 0 or an error at once, and a read
         * that drained the last bytes must not then wait for an edge that never comes. */
        if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLPRI))
            ready(&io->rd, e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR));
        if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))
            ready(&io->wr, e & (EPOLLHUP | EPOLLERR));
    }
    atomic_store_explicit(&rt->last_poll, edo__real_ms(), memory_order_relaxed);
    return n;
}

/* One epoll_wait returns at most MAX_EVENTS; the rest stay ready in the epoll. A thread
 * that sleeps in epoll_wait gets them at its next call, but io_uring watches the epoll with
 * a multishot poll, which fires when the epoll is woken, not while events remain in it:
 * what one batch left behind would wait for some unrelated event, perhaps for ever. So
 * this takes batches until one comes back short. A caller that finds the right to poll
 * taken leaves a flag, which the holder checks after it lets go if it is draining too
 * (under io_uring every poll of the epoll is a drain): an event that woke the epoll
 * during the holder's poll is then not left behind. */
bool edo__epoll_drain(edo_runtime *rt)
{
    edo__reactor *re = edo__reactor_of(rt);
    bool polled = false;
    atomic_store(&re->again, true);
    for (;;) {
        /* Store, then load the other side's: the flag then `busy` here, `busy` then the
         * flag in the holder. */
        atomic_thread_fence(memory_order_seq_cst);
        if (!atomic_load(&re->again) || !edo__epoll_acquire(rt))
            return polled;
        atomic_store(&re->again, false);
        while (edo__epoll_poll(rt, 0) == MAX_EVENTS) {
        }
        edo__epoll_release(rt);
        polled = true;
    }
}

void edo__epoll_unpark(edo_runtime *rt)
{
    uint64_t one = 1;
    ssize_t r = write(edo__reactor_of(rt)->evfd, &one, sizeof one);
    (void)r; /* EAGAIN: the counter is full, so a wake-up is pending anyway */
}

/* ---- the epoll driver (driver.h) -------------------------------------------------------- */

static int ep_worker_init(edo__worker *w)
{
    (void)w;
    return 0;
}

static bool ep_acquire(edo__worker *w)
{
    return edo__epoll_acquire(w->rt);
}

static void ep_release(edo__worker *w)
{
    edo__epoll_release(w->rt);
}

static int ep_poll(edo__worker *w, int timeout_ms)
{
    return edo__epoll_poll(w->rt, timeout_ms);
}

static bool ep_pending(const edo__worker *w)
{
    (void)w;
    return false; /* nothing waits to be submitted: each call is made at once */
}

static void ep_unpark(edo__worker *w)
{
    edo__epoll_unpark(w->rt);
}

static void ep_rescue(edo__worker *w)
{
    (void)w; /* the epoll is the runtime's, not the stuck worker's: drain serves it */
}

const edo__driver edo__epoll_driver = {
    .name = "epoll",
    .init = edo__epoll_init,
    .fini = edo__epoll_fini,
    .worker_init = ep_worker_init,
    .worker_fini = edo__io_worker_fini,
    .shutdown = edo__io_shutdown,
    .acquire = ep_acquire,
    .release = ep_release,
    .poll = ep_poll,
    .pending = ep_pending,
    .unpark = ep_unpark,
    .rescue = ep_rescue,
    .drain = edo__epoll_drain,
};
