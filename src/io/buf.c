/*
 * Buffers that edo_read_lent lends: a per-worker cache of free ones for the epoll backend
 * (and for io_uring when its provided buffers run out), and edo_buf_release for both.
 *
 * A lent buffer is either one of a ring's provided buffers (owner_ is the ring, id_ its
 * buffer id) or an allocated one (id_ is EDO__LENT_HEAP, owner_ the runtime whose size it
 * has, so that it goes back only to a cache of that runtime).
 */
#include "io/io.h"

#include <stdlib.h>
#include <string.h>

char *edo__lent_get(edo_runtime *rt)
{
    edo__worker *w = edo__worker_current();
    if (w && w->rt == rt && w->nlent_cache)
        return w->lent_cache[--w->nlent_cache];
    return malloc(rt->read_buf_size);
}

void edo__lent_put(edo_runtime *rt, char *buf)
{
    edo__worker *w = edo__worker_current();
    if (w && w->rt == rt) {
        if (!w->lent_cache)
            w->lent_cache = calloc(rt->read_bufs, sizeof *w->lent_cache);
        if (w->lent_cache && w->nlent_cache < rt->read_bufs) {
            w->lent_cache[w->nlent_cache++] = buf;
            return;
        }
    }
    free(buf);
}

void edo__lent_cache_free(edo__worker *w)
{
    for (uint32_t i = 0; i < w->nlent_cache; i++)
        free(w->lent_cache[i]);
    free(w->lent_cache);
    w->lent_cache = NULL;
    w->nlent_cache = 0;
}

void edo_buf_release(edo_buf *buf)
{
    if (!buf || !buf->data)
        return;
    if (buf->id_ == EDO__LENT_HEAP)
        edo__lent_put(buf->owner_, buf->data);
#ifdef EDO_HAVE_URING
    else
        edo__ring_buf_return(buf->owner_, buf->id_);
#endif
    memset(buf, 0, sizeof *buf);
}
