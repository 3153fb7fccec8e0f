/*
 * Intrusive lists: the runtime's one doubly-linked list (edo__list) and one singly-linked
 * FIFO queue (edo__fifo). Every list in src/ is one of these; none is linked by hand.
 *
 * A node (edo__link, edo__slink) is embedded in the object it links, one node per list the
 * object can be on: a node belongs to one list, never to two by turns. edo__container_of
 * finds the object from its node. Lists end in NULL (they are not circular), so an
 * all-zero list is empty and a list inside a zeroed object needs no initialisation.
 *
 * Nothing here locks or uses atomics: each list is guarded by whoever owns it, and the
 * header of that owner says by what. A node taken off a list has NULL links, but NULL
 * links do not mean "not on a list" (a sole node has them too): owners that must know
 * keep a flag.
 */
#ifndef EDO_CORE_LIST_H
#define EDO_CORE_LIST_H

#include <stdbool.h>
#include <stddef.h>

/* The object of type `type` whose member `member` is at ptr. */
#define edo__container_of(ptr, type, member)                                                       \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* ---- doubly-linked: O(1) removal of any node ------------------------------------------- */

typedef struct edo__link {
    struct edo__link *next, *prev;
} edo__link;

typedef struct edo__list {
    edo__link *head, *tail;
} edo__list;

static inline bool edo__list_empty(const edo__list *l)
{
    return l->head == NULL;
}

static inline edo__link *edo__list_first(const edo__list *l)
{
    return l->head;
}

static inline void edo__list_push_back(edo__list *l, edo__link *n)
{
    n->next = NULL;
    n->prev = l->tail;
    if (l->tail)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
}

static inline void edo__list_push_front(edo__list *l, edo__link *n)
{
    n->prev = NULL;
    n->next = l->head;
    if (l->head)
        l->head->prev = n;
    else
        l->tail = n;
    l->head = n;
}

/* n must be on l. */
static inline void edo__list_remove(edo__list *l, edo__link *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->next = n->prev = NULL;
}

static inline edo__link *edo__list_pop_front(edo__list *l)
{
    edo__link *n = l->head;
    if (n)
        edo__list_remove(l, n);
    return n;
}

/* Every node of l, first to last; the body must not remove n (pop instead). */
#define edo__list_each(n, l) for (edo__link *n = (l)->head; n; n = n->next)

/* The object of type `type` first on l through its node `member`, or NULL. */
#define edo__list_first_entry(l, type, member)                                                     \
    ((l)->head ? edo__container_of((l)->head, type, member) : (type *)NULL)

/* A node that knows which of its owner's lists it is on, for objects that move between
 * several (running, aborted, finished) and are removed without their owner saying which. */
typedef struct edo__onode {
    edo__link link;
    edo__list *on; /* NULL: on none */
} edo__onode;

static inline void edo__onode_push(edo__list *l, edo__onode *n)
{
    n->on = l;
    edo__list_push_back(l, &n->link);
}

static inline void edo__onode_remove(edo__onode *n)
{
    edo__list_remove(n->on, &n->link);
    n->on = NULL;
}

/* ---- singly-linked FIFO: push at either end, pop at the front -------------------------- */

typedef struct edo__slink {
    struct edo__slink *next;
} edo__slink;

typedef struct edo__fifo {
    edo__slink *head, *tail;
} edo__fifo;

static inline bool edo__fifo_empty(const edo__fifo *q)
{
    return q->head == NULL;
}

static inline void edo__fifo_push(edo__fifo *q, edo__slink *n)
{
    n->next = NULL;
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
}

static inline void edo__fifo_push_front(edo__fifo *q, edo__slink *n)
{
    n->next = q->head;
    if (!q->head)
        q->tail = n;
    q->head = n;
}

static inline edo__slink *edo__fifo_pop(edo__fifo *q)
{
    edo__slink *n = q->head;
    if (n) {
        q->head = n->next;
        if (!q->head)
            q->tail = NULL;
        n->next = NULL;
    }
    return n;
}

/* Moves every node of from to the back of q, in order; from is left empty. */
static inline void edo__fifo_append(edo__fifo *q, edo__fifo *from)
{
    if (!from->head)
        return;
    if (q->tail)
        q->tail->next = from->head;
    else
        q->head = from->head;
    q->tail = from->tail;
    from->head = from->tail = NULL;
}

/* Moves the first nodes of q, at most max of them, to the back of to, in order, in one
 * walk; returns how many. */
static inline size_t edo__fifo_take(edo__fifo *q, edo__fifo *to, size_t max)
{
    edo__fifo piece = { q->head, NULL };
    size_t k = 0;
    for (edo__slink *n = q->head; n && k < max; n = n->next, k++)
        piece.tail = n;
    if (!k)
        return 0;
    q->head = piece.tail->next;
    if (!q->head)
        q->tail = NULL;
    piece.tail->next = NULL;
    edo__fifo_append(to, &piece);
    return k;
}

/* Every node of q, first to last; the body must not unlink n. */
#define edo__fifo_each(n, q) for (edo__slink *n = (q)->head; n; n = n->next)

#endif
