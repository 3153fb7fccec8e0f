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

int edo__driver_init(edo_runtime *rt)
{
    rt->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (rt->epfd < 0)
        return -errno;
    rt->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (rt->evfd < 0)
        goto fail;
    struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.ptr = &wake_tag };
    if (epoll_ctl(rt->epfd, EPOLL_CTL_ADD, rt->evfd, &ev) < 0)
        goto fail;
    return 0;
fail:;
    int err = -errno;
    edo__driver_fini(rt);
    return err;
}

void edo__driver_fini(edo_runtime *rt)
{
    if (rt->evfd >= 0)
        close(rt->evfd);
    if (rt->epfd >= 0)
        close(rt->epfd);
    rt->evfd = rt->epfd = -1;
}

int edo__driver_add(edo_runtime *rt, edo_io *io)
{
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
        .data.ptr = io,
    };
    if (epoll_ctl(rt->epfd, EPOLL_CTL_ADD, io->fd, &ev) < 0)
        return -errno;
    return 0;
}

void edo__driver_del(edo_runtime *rt, edo_io *io)
{
    /* Explicitly, not by close(2): a duplicate of the descriptor elsewhere would keep the
     * registration, and its events would name freed memory. */
    epoll_ctl(rt->epfd, EPOLL_CTL_DEL, io->fd, NULL);
}

void edo__io_retire(edo_runtime *rt, edo_io *io)
{
    edo_io *head = atomic_load_explicit(&rt->retired, memory_order_relaxed);
    do
        io->retire_next = head;
    while (!atomic_compare_exchange_weak_explicit(&rt->retired, &head, io, memory_order_release,
                                                  memory_order_relaxed));
    /* A poller asleep in epoll_wait holds the right to poll: past a bound, wake it so
     * that the next poll frees these. */
    if (atomic_fetch_add_explicit(&rt->nretired, 1, memory_order_relaxed) == RETIRED_MAX)
        edo__driver_unpark(rt);
}

void edo__driver_reclaim(edo_runtime *rt)
{
    if (!atomic_load_explicit(&rt->retired, memory_order_relaxed))
        return;
    edo_io *io = atomic_exchange_explicit(&rt->retired, NULL, memory_order_acquire);
    uint32_t n = 0;
    while (io) {
        edo_io *next = io->retire_next;
        free(io);
        io = next;
        n++;
    }
    atomic_fetch_sub_explicit(&rt->nretired, n, memory_order_relaxed);
}

bool edo__driver_acquire(edo_runtime *rt)
{
    if (atomic_load_explicit(&rt->driver_busy, memory_order_relaxed) ||
        atomic_exchange_explicit(&rt->driver_busy, 1, memory_order_acquire))
        return false;
    /* Everything retired so far was deregistered before this poll, and every earlier
     * batch is done: free it now. */
    edo__driver_reclaim(rt);
    return true;
}

void edo__driver_release(edo_runtime *rt)
{
    atomic_store_explicit(&rt->driver_busy, 0, memory_order_release);
}

static void ready(edo__dir *d, bool hup)
{
    if (hup)
        atomic_store(&d->hup, true);
    atomic_fetch_add_explicit(&d->events, 1, memory_order_seq_cst);
    edo__slot_fire(&d->waiter);
}

int edo__driver_poll(edo_runtime *rt, int timeout_ms)
{
    struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(rt->epfd, evs, MAX_EVENTS, timeout_ms);
    for (int i = 0; i < n; i++) {
        uint32_t e = evs[i].events;
        if (evs[i].data.ptr == &wake_tag) {
            uint64_t v;
            ssize_t r = read(rt->evfd, &v, sizeof v);
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
bool edo__driver_drain(edo_runtime *rt)
{
    bool polled = false;
    atomic_store(&rt->driver_again, true);
    for (;;) {
        /* Store, then load the other side's: the flag then driver_busy here, driver_busy
         * then the flag in the holder. */
        atomic_thread_fence(memory_order_seq_cst);
        if (!atomic_load(&rt->driver_again) || !edo__driver_acquire(rt))
            return polled;
        atomic_store(&rt->driver_again, false);
        while (edo__driver_poll(rt, 0) == MAX_EVENTS) {
        }
        edo__driver_release(rt);
        polled = true;
    }
}

void edo__driver_unpark(edo_runtime *rt)
{
    uint64_t one = 1;
    ssize_t r = write(rt->evfd, &one, sizeof one);
    (void)r; /* EAGAIN: the counter is full, so a wake-up is pending anyway */
}
