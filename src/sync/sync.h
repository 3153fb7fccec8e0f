/*
 * What edo_select (select.c) needs from the objects it can wait on.
 *
 * Arming a case either queues its waiter on the object or finds the case can complete now.
 * Before any waiter of the select is queued (the first pass), nobody else can claim the
 * select, so an arm may complete its case directly. Once some are queued (the second
 * pass), a completer on another object may claim the select at any moment, so an arm
 * that could complete must claim the select itself first (edo__claim on its own waiter).
 */
#ifndef EDO_SYNC_SYNC_H
#define EDO_SYNC_SYNC_H

#include "sync/wait.h"

/* Results of an arm. */
enum {
    EDO__SEL_QUEUED = 0, /* waiter queued; a completer or a wake will follow */
    EDO__SEL_DONE = 1,   /* the case completed now; its outcome is in w->rc */
    EDO__SEL_LOST = 2,   /* second pass: another case has won; nothing was queued or done */
    EDO__SEL_RETRY = 3,  /* second pass: could not complete after all; start over */
};

/* The first pass tries each case with the object's non-waiting call; these arm the second
 * pass's waiters. */

/* Channel cases (chan.c): w->buf is the message. */
int edo__chan_sel_arm(edo_chan *ch, edo__waiter *w, bool send, edo__wakeups *wk);
void edo__chan_sel_disarm(edo_chan *ch, edo__waiter *w, bool send);

/* Notify (notify.c): a stored permit completes the case; notify_one and notify_all claim. */
int edo__notify_sel_arm(edo_notify *n, edo__waiter *w);
int edo__notify_try(edo_notify *n); /* takes a stored permit: 0, or -EAGAIN */
void edo__notify_sel_disarm(edo_notify *n, edo__waiter *w);

/* Objects whose waiters are only told to look again (edo__complete_all): arm returns
 * EDO__SEL_DONE when the case can complete now (nothing queued), else queues w. Whether
 * it can complete is then asked again after every wake (arm again: a completed waiter is
 * no longer queued). The select claims for itself and then completes the case with the
 * object's non-waiting call. Disarm withdraws w if it is still queued. */
int edo__bcast_sel_arm(edo_bcast_rx *rx, edo__waiter *w);
void edo__bcast_sel_disarm(edo_bcast_rx *rx, edo__waiter *w);
int edo__watch_sel_arm(edo_watch *wt, uint64_t seen, edo__waiter *w);
void edo__watch_sel_disarm(edo_watch *wt, edo__waiter *w);
int edo__token_sel_arm(edo_token *tok, edo__waiter *w);
void edo__token_sel_disarm(edo_token *tok, edo__waiter *w);

/* The non-waiting completion of a watch case: copies the value if newer than *seen. */
int edo__watch_try_recv(edo_watch *wt, void *val, uint64_t *seen);

#endif
