/*
 * The epoll driver: one edge-triggered registration per descriptor for both directions,
 * an eventfd to wake a worker that sleeps in epoll_wait.
 */
#include "io/io.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MAX_EVENTS 256

/* The eventfd's registration carries this address instead of an edo_io. */
static char wake_tag;

int edo__driver_init(edo__worker *w)
{
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->epfd < 0)
        return -errno;
    w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->evfd < 0)
        goto fail;
    struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.ptr = &wake_tag };
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &ev) < 0)
        goto fail;
    return 0;
fail:;
    int err = -errno;
    edo__driver_fini(w);
    return err;
}

void edo__driver_fini(edo__worker *w)
{
    if (w->evfd >= 0)
        close(w->evfd);
    if (w->epfd >= 0)
        close(w->epfd);
    w->evfd = w->epfd = -1;
}

int edo__driver_add(edo__worker *w, edo_io *io)
{
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
        .data.ptr = io,
    };
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, io->fd, &ev) < 0)
        return -errno;
    return 0;
}

void edo__driver_del(edo__worker *w, edo_io *io)
{
    /* Explicitly, not by close(2): a duplicate of the descriptor elsewhere would keep the
     * registration, and its events would name freed memory. */
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, io->fd, NULL);
}

static void ready(edo__dir *d, bool hup)
{
    if (hup)
        atomic_store(&d->hup, true);
    atomic_fetch_add_explicit(&d->events, 1, memory_order_seq_cst);
    edo__slot_fire(&d->waiter);
}

int edo__driver_poll(edo__worker *w, int timeout_ms)
{
    struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(w->epfd, evs, MAX_EVENTS, timeout_ms);
    for (int i = 0; i < n; i++) {
        uint32_t e = evs[i].events;
        if (evs[i].data.ptr == &wake_tag) {
            uint64_t v;
            ssize_t r = read(w->evfd, &v, sizeof v);
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
    return n;
}

void edo__driver_unpark(edo__worker *w)
{
    uint64_t one = 1;
    ssize_t r = write(w->evfd, &one, sizeof one);
    (void)r; /* EAGAIN: the counter is full, so a wake-up is pending anyway */
}
