/*
 * Cancellation tokens: a tree of flags. Each token has a spinlock that guards its waiters,
 * its list of children and the sibling links of those children, so a child is linked,
 * unlinked and visited under its parent's lock; where two locks are held, the parent's
 * is taken first.
 *
 * Memory. A token is counted: one reference for its owner until edo_token_free, one for
 * each child (a child keeps its parent alive, since it reaches it through `parent`), and
 * one for a cancel walking through it. The last reference unlinks the token from its
 * parent and drops the reference it held there, which may free the parent in turn: a
 * loop, not recursion, so a deep chain of freed tokens goes in constant stack.
 *
 * Cancelling walks the subtree depth-first without a stack of its own: it goes down to a
 * child, on to the next sibling, or up to the parent, holding a reference to the one token
 * it stands on (which keeps that token linked, so its sibling and parent links stay
 * valid). A token is flagged, under its lock and with its parent's held, before its
 * children are read; from then on a new child is born cancelled, so the children a walk
 * sees are all that need it. When a walk leaves a token upwards the whole subtree is
 * flagged, which `swept` records: later cancels skip it, and a second cancel racing the
 * first walks the part not yet swept too, so that every cancel returns with the whole
 * subtree cancelled, not only the one that came first. A child whose count has dropped to
 * zero is being freed: it has no owner and no children, and the walk passes it by.
 */
#include "sync/resource.h"
#include "sync/sync.h"

#include <errno.h>
#include <stdlib.h>

struct edo_token {
    edo__spin lock;
    _Atomic bool cancelled;
    _Atomic bool swept;    /* cancelled together with every descendant */
    _Atomic uint32_t refs; /* the owner's, one per child, one per walk standing here */
    edo_token *parent;     /* holds a reference on it */
    edo__list children;    /* newest first (sibling); under lock */
    edo__link sibling;     /* in the parent's children; under the parent's lock */
    edo__waitq waiters;
    edo__res res;
};

static void token_ref(edo_token *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
}

/* A reference to a token that may be on its way out (found in its parent's list). */
static bool token_tryref(edo_token *t)
{
    uint32_t n = atomic_load_explicit(&t->refs, memory_order_relaxed);
    while (n) {
        if (atomic_compare_exchange_weak_explicit(&t->refs, &n, n + 1, memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    }
    return false;
}

static void token_unref(edo_token *t)
{
    while (t && atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1) {
        edo_token *p = t->parent;
        if (p) {
            edo__spin_lock(&p->lock);
            edo__list_remove(&p->children, &t->sibling);
            edo__spin_unlock(&p->lock);
        }
        edo__res_remove(&t->res);
        free(t);
        t = p; /* drop the reference t held on its parent */
    }
}

int edo_token_new(edo_token **out, edo_token *parent)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    edo_token *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    atomic_init(&t->refs, 1);
    edo__res_add(&t->res, EDO_RES_TOKEN);
    if (parent) {
        token_ref(parent);
        t->parent = parent;
        edo__spin_lock(&parent->lock);
        /* Under the parent's lock: a cancel either flagged it before (the child is born
         * cancelled, and has nothing below it yet) or will find the child in the list. */
        bool c = atomic_load_explicit(&parent->cancelled, memory_order_relaxed);
        atomic_store_explicit(&t->cancelled, c, memory_order_relaxed);
        atomic_store_explicit(&t->swept, c, memory_order_relaxed);
        edo__list_push_front(&parent->children, &t->sibling);
        edo__spin_unlock(&parent->lock);
    }
    *out = t;
    return 0;
}

/* Under t's lock. */
static void flag(edo_token *t, edo__wakeups *wk)
{
    if (atomic_load_explicit(&t->cancelled, memory_order_relaxed))
        return;
    atomic_store_explicit(&t->cancelled, true, memory_order_release);
    edo__complete_all(wk, &t->waiters);
}

/* Under the parent's lock: the first child at or after n (in the parent's children) the
 * walk still has to go through, flagged, with a reference for the walk; NULL if none is
 * left. */
static edo_token *visit_from(edo__link *n, edo__wakeups *wk)
{
    for (; n; n = n->next) {
        edo_token *c = edo__container_of(n, edo_token, sibling);
        if (atomic_load_explicit(&c->swept, memory_order_acquire) || !token_tryref(c))
            continue;
        edo__spin_lock(&c->lock);
        flag(c, wk);
        edo__spin_unlock(&c->lock);
        return c;
    }
    return NULL;
}

void edo_token_cancel(edo_token *tok)
{
    if (!tok || atomic_load_explicit(&tok->swept, memory_order_acquire))
        return;
    edo__wakeups wk = { 0 };
    token_ref(tok);
    edo__spin_lock(&tok->lock);
    flag(tok, &wk);
    edo__spin_unlock(&tok->lock);
    edo__wakeups_run(&wk);

    edo_token *cur = tok;
    bool down = true;
    for (;;) {
        if (down) {
            edo__spin_lock(&cur->lock);
            edo_token *c = visit_from(edo__list_first(&cur->children), &wk);
            edo__spin_unlock(&cur->lock);
            edo__wakeups_run(&wk);
            if (c) {
                token_unref(cur); /* c's own reference keeps cur */
                cur = c;
                continue;
            }
        }
        /* Everything below cur is flagged. */
        atomic_store_explicit(&cur->swept, true, memory_order_release);
        if (cur == tok)
            break;
        edo_token *p = cur->parent;
        edo__spin_lock(&p->lock);
        edo_token *n = visit_from(cur->sibling.next, &wk);
        if (!n)
            token_ref(p); /* the walk goes up */
        edo__spin_unlock(&p->lock);
        edo__wakeups_run(&wk);
        token_unref(cur);
        /* Children are linked at the head: the ones before cur were visited first, and
         * those added since are born cancelled. */
        cur = n ? n : p;
        down = n != NULL;
    }
    token_unref(tok);
}

bool edo_token_cancelled(edo_token *tok)
{
    return tok && atomic_load_explicit(&tok->cancelled, memory_order_acquire);
}

static void withdraw(void *obj, edo__waiter *w, edo__wakeups *wk)
{
    edo__waitq_remove(&((edo_token *)obj)->waiters, w);
}

int edo_token_wait(edo_token *tok)
{
    if (!tok)
        return -EINVAL;
    if (atomic_load_explicit(&tok->cancelled, memory_order_acquire))
        return 0;
    edo__spin_lock(&tok->lock);
    if (atomic_load_explicit(&tok->cancelled, memory_order_relaxed)) {
        edo__spin_unlock(&tok->lock);
        return 0;
    }
    return edo__wait_queued(&tok->waiters, &tok->lock, EDO_WAIT_NOTIFY, EDO__OP_TOKEN, NULL, 0,
                            withdraw, tok);
}

void edo_token_free(edo_token *tok)
{
    token_unref(tok);
}

void edo__token_describe(edo__res *r, edo_resource_info *info)
{
    edo_token *t = edo__container_of(r, edo_token, res);
    info->addr = t;
    edo__spin_lock(&t->lock);
    info->closed = atomic_load_explicit(&t->cancelled, memory_order_relaxed);
    edo__res_waiters(&t->waiters, info);
    edo__spin_unlock(&t->lock);
}

/* ---- edo_select ------------------------------------------------------------------------ */

int edo__token_sel_arm(edo_token *tok, edo__waiter *w)
{
    edo__spin_lock(&tok->lock);
    bool done = atomic_load_explicit(&tok->cancelled, memory_order_relaxed);
    if (!done)
        edo__waitq_push(&tok->waiters, w);
    edo__spin_unlock(&tok->lock);
    if (!done)
        return EDO__SEL_QUEUED;
    w->rc = 0;
    return EDO__SEL_DONE;
}

void edo__token_sel_disarm(edo_token *tok, edo__waiter *w)
{
    edo__waitq_withdraw(&tok->waiters, &tok->lock, w);
}
