/*
 * Cancellation tokens, join sets and deadline scopes. Tokens: a cancel reaches every
 * descendant and nothing above or beside; children of a cancelled token are born
 * cancelled; every waiter wakes, also when a foreign thread cancels; cancels race waits,
 * timeouts and frees at random moments; a token freed with live children keeps them
 * working; trees deep and wide enough that a recursive cancel or free would overflow a
 * task's stack; waiters that gave up leave nothing behind. Join sets: results in the order
 * tasks finish, -EDO_EEMPTY when empty, abort_all, free with tasks still running (also from an
 * aborted caller), many tasks through one set across workers, and a next cut short by a
 * deadline or an abort that leaves the set as it was. Deadline scopes: nested ones, an
 * inner one that cannot extend the outer, around sleeps, reads, joins and receives.
 *
 * edo-test: timeout=300
 */
#include "harness.h"

#include <pthread.h>
#include <sched.h>

/* Waits on the token it is given and returns the result. */
static void *token_waiter(void *arg)
{
    edo_token *tok = arg;
    int rc = edo_token_wait(tok);
    if (rc == 0)
        CHECK(edo_token_cancelled(tok));
    return VAL(rc);
}

static void join_expect(edo_task *t, intptr_t want)
{
    void *res = VAL(-12345);
    CHECK_EQ(edo_join(t, &res), 0);
    CHECK_EQ(INT(res), want);
}

/* Joins a task aborted in its wait: the join says so, and the wait returned -ECANCELED. */
static void join_cancelled(edo_task *t)
{
    void *res = VAL(-12345);
    CHECK_ERR(edo_join(t, &res), -EDO_EABORTED);
    CHECK_EQ(INT(res), -ECANCELED);
}

/* Aborts the odd ones of ts[0..n) once each is parked on why, then joins them all: the
 * odd ones were cancelled, the even ones (which gave up by themselves) returned even_rc. */
static void abort_odd_join_all(edo_task **ts, int n, edo_wait_reason why, intptr_t even_rc)
{
    for (int i = 1; i < n; i += 2) {
        test_wait_parked(ts[i], why);
        edo_abort(ts[i]);
    }
    for (int i = 0; i < n; i++) {
        if (i & 1)
            join_cancelled(ts[i]);
        else
            join_expect(ts[i], even_rc);
    }
}

/* A chain of three tokens: root, its child mid, and mid's child leaf. */
static void token_chain(edo_token **root, edo_token **mid, edo_token **leaf)
{
    CHECK_OK(edo_token_new(root, NULL));
    CHECK_OK(edo_token_new(mid, *root));
    CHECK_OK(edo_token_new(leaf, *mid));
}

/* Whether a task with this id is still alive (listed). A task of a join set leaves the
 * list only after it has reported to its set. */
static int match_id(const edo_task_info *info, void *arg)
{
    uint64_t *id = arg;
    if (info->id != *id)
        return 0;
    *id = 0;
    return 1;
}

static bool task_alive(uint64_t id)
{
    uint64_t x = id;
    edo_task_list(edo_runtime_current(), match_id, &x);
    return x == 0;
}

/* Spins until *v >= want, yielding the CPU; fails after 20 s. For foreign threads. */
static void spin_until(atomic_int *v, int want)
{
    int64_t t0 = test_clock_ms();
    while (atomic_load_explicit(v, memory_order_acquire) < want) {
        sched_yield();
        CHECK_MSG(test_clock_ms() - t0 < 20000, "stuck at %d, waiting for %d", atomic_load(v),
                  want);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Token tree semantics                                                                     */

static void *tree_root(void *unused)
{
    edo_token *root, *a, *b, *a1, *a2, *a1x, *b1;
    CHECK_OK(edo_token_new(&root, NULL));
    CHECK_OK(edo_token_new(&a, root));
    CHECK_OK(edo_token_new(&b, root));
    CHECK_OK(edo_token_new(&a1, a));
    CHECK_OK(edo_token_new(&a2, a));
    CHECK_OK(edo_token_new(&a1x, a1));
    CHECK_OK(edo_token_new(&b1, b));
    edo_token *all[] = { root, a, b, a1, a2, a1x, b1 };
    for (int i = 0; i < 7; i++)
        CHECK(!edo_token_cancelled(all[i]));

    /* A subtree: a and everything below it; not its parent, not its sibling's line. */
    edo_token_cancel(a);
    CHECK(edo_token_cancelled(a) && edo_token_cancelled(a1) && edo_token_cancelled(a2));
    CHECK(edo_token_cancelled(a1x));
    CHECK(!edo_token_cancelled(root) && !edo_token_cancelled(b) && !edo_token_cancelled(b1));

    /* A wait on a cancelled token returns at once, even past the deadline; one on a live
     * token does not. */
    CHECK_EQ(edo_token_wait(a1x), 0);
    int64_t scope = edo_deadline_begin(edo_now() - 1);
    CHECK_EQ(edo_token_wait(a2), 0);
    CHECK_ERR(edo_token_wait(b1), -ETIMEDOUT);
    edo_deadline_end(scope);

    /* Children and grandchildren of a cancelled token are born cancelled. */
    edo_token *late, *later;
    CHECK_OK(edo_token_new(&late, a1x));
    CHECK_OK(edo_token_new(&later, late));
    CHECK(edo_token_cancelled(late) && edo_token_cancelled(later));
    CHECK_EQ(edo_token_wait(later), 0);

    /* Again: nothing, and still nothing above. */
    edo_token_cancel(a);
    edo_token_cancel(a1);
    edo_token_cancel(later);
    CHECK(!edo_token_cancelled(root) && !edo_token_cancelled(b));

    /* A leaf: its parent and grandparent stay live. */
    edo_token_cancel(b1);
    CHECK(edo_token_cancelled(b1));
    CHECK(!edo_token_cancelled(b) && !edo_token_cancelled(root));
    edo_token *b2;
    CHECK_OK(edo_token_new(&b2, b));
    CHECK(!edo_token_cancelled(b2));

    edo_token_cancel(root);
    for (int i = 0; i < 7; i++)
        CHECK(edo_token_cancelled(all[i]));
    CHECK(edo_token_cancelled(b2));
    edo_token *after;
    CHECK_OK(edo_token_new(&after, root));
    CHECK(edo_token_cancelled(after));

    /* Freed parents first: the children keep them as long as they need them. */
    for (int i = 0; i < 7; i++)
        edo_token_free(all[i]);
    edo_token_free(after);
    edo_token_free(b2);
    edo_token_free(later);
    edo_token_free(late);

    /* Bad arguments. */
    CHECK_ERR(edo_token_new(NULL, NULL), -EINVAL);
    CHECK_ERR(edo_token_wait(NULL), -EINVAL);
    CHECK(!edo_token_cancelled(NULL));
    edo_token_cancel(NULL);
    edo_token_free(NULL);
    return NULL;
}

static const test_root case_token_tree = { .fn = tree_root };

/* ---------------------------------------------------------------------------------------- */
/* Many waiters on one token, on a chain of tokens                                          */

static void *many_waiters_root(void *unused)
{
    int n = TEST_SCALE(2000, 1000, 150);
    edo_token *tok[3];
    CHECK_OK(edo_token_new(&tok[0], NULL));
    CHECK_OK(edo_token_new(&tok[1], tok[0]));
    CHECK_OK(edo_token_new(&tok[2], tok[1]));
    edo_task **ts = calloc((size_t)n, sizeof *ts);
    CHECK(ts != NULL);
    for (int i = 0; i < n; i++)
        CHECK_OK(edo_spawn(&ts[i], token_waiter, tok[i % 3]));
    for (int i = 0; i < n; i++)
        test_wait_parked(ts[i], EDO_WAIT_NOTIFY);

    /* The middle one: its waiters and those below wake, the root's sleep on. */
    edo_token_cancel(tok[1]);
    for (int i = 0; i < n; i++)
        if (i % 3 != 0)
            join_expect(ts[i], 0);
    for (int i = 0; i < n; i += 3) {
        edo_task_info info;
        edo_task_stats(ts[i], &info);
        CHECK_EQ(info.state, EDO_TASK_PARKED);
        CHECK_EQ(info.waiting_on, EDO_WAIT_NOTIFY);
    }
    edo_token_cancel(tok[0]);
    for (int i = 0; i < n; i += 3)
        join_expect(ts[i], 0);
    free(ts);
    for (int i = 0; i < 3; i++)
        edo_token_free(tok[i]);
    return NULL;
}

static const test_root case_token_many_waiters = { .fn = many_waiters_root };

/* ---------------------------------------------------------------------------------------- */
/* Cancel from a thread outside the runtime                                                 */

typedef struct foreign_cancel {
    edo_token *tok;
    atomic_int go, done;
    unsigned spin;
    uint64_t seed;
} foreign_cancel;

static void *foreign_canceller(void *arg)
{
    foreign_cancel *fc = arg;
    spin_until(&fc->go, 1);
    test_rng r = test_rng_new(fc->seed);
    if (fc->spin)
        test_spin(&r, fc->spin);
    edo_token_cancel(fc->tok);
    edo_token_cancel(fc->tok); /* again: nothing */
    atomic_store(&fc->done, 1);
    return NULL;
}

static void *foreign_root(void *unused)
{
    /* Waiters parked on every level, then the thread cancels the root. */
    edo_token *root, *mid, *leaf;
    token_chain(&root, &mid, &leaf);
    edo_token *toks[3] = { root, mid, leaf };
    enum { N = 30 };
    edo_task *ts[N];
    for (int i = 0; i < N; i++)
        CHECK_OK(edo_spawn(&ts[i], token_waiter, toks[i % 3]));
    for (int i = 0; i < N; i++)
        test_wait_parked(ts[i], EDO_WAIT_NOTIFY);
    foreign_cancel fc = { .tok = root };
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, foreign_canceller, &fc), 0);
    atomic_store(&fc.go, 1);
    for (int i = 0; i < N; i++)
        join_expect(ts[i], 0);
    WAIT_UNTIL(atomic_load(&fc.done), 10000);
    CHECK_EQ(pthread_join(th, NULL), 0);
    for (int i = 0; i < 3; i++)
        edo_token_free(toks[i]);

    /* Rounds where the thread cancels while the waiters are still arriving. */
    int rounds = TEST_SCALE(200, 100, 30);
    for (int r = 0; r < rounds; r++) {
        CHECK_OK(edo_token_new(&root, NULL));
        CHECK_OK(edo_token_new(&leaf, root));
        foreign_cancel f2 = { .tok = root, .spin = 20000, .seed = (uint64_t)r };
        CHECK_EQ(pthread_create(&th, NULL, foreign_canceller, &f2), 0);
        atomic_store(&f2.go, 1);
        edo_task *w[4];
        for (int i = 0; i < 4; i++)
            CHECK_OK(edo_spawn(&w[i], token_waiter, i & 1 ? leaf : root));
        for (int i = 0; i < 4; i++)
            join_expect(w[i], 0);
        WAIT_UNTIL(atomic_load(&f2.done), 10000);
        CHECK_EQ(pthread_join(th, NULL), 0);
        edo_token_free(leaf);
        edo_token_free(root);
    }
    return NULL;
}

static const test_root case_token_foreign_cancel = { .fn = foreign_root };

/* ---------------------------------------------------------------------------------------- */
/* Cancels racing waits, timeouts and each other                                            */

typedef struct race_waiter {
    edo_token *tok;
    int64_t timeout; /* ms; < 0: none */
    int yields;
} race_waiter;

static void *race_wait_task(void *arg)
{
    race_waiter *rw = arg;
    for (int i = 0; i < rw->yields; i++)
        edo_yield();
    /* Without a timeout of its own the wait is still bounded, so a lost wake-up shows as
     * -ETIMEDOUT rather than as a hang. */
    int64_t scope = edo_timeout_begin(rw->timeout >= 0 ? rw->timeout : 20000);
    int rc = edo_token_wait(rw->tok);
    edo_deadline_end(scope);
    if (rc == 0)
        CHECK(edo_token_cancelled(rw->tok));
    else
        CHECK_MSG(rc == -ETIMEDOUT && rw->timeout >= 0, "wait returned %d (%s)", rc,
                  edo_strerror(rc));
    return VAL(rc);
}

typedef struct race_cancel {
    edo_token *first, *then; /* cancelled in this order */
    edo_token *below;        /* a descendant of first: cancelled once first's cancel returns */
    unsigned spin;
    uint64_t seed;
    atomic_int go, done;
} race_cancel;

static void race_cancel_body(race_cancel *rc)
{
    test_rng r = test_rng_new(rc->seed);
    test_spin(&r, rc->spin);
    edo_token_cancel(rc->first);
    /* Whoever else is cancelling the same tree, this cancel returns only once the whole
     * subtree is cancelled. */
    CHECK(edo_token_cancelled(rc->below));
    if (rc->then)
        edo_token_cancel(rc->then);
    atomic_store(&rc->done, 1);
}

static void *race_cancel_task(void *arg)
{
    race_cancel_body(arg);
    return NULL;
}

static void *race_cancel_thread(void *arg)
{
    race_cancel *rc = arg;
    spin_until(&rc->go, 1);
    race_cancel_body(rc);
    return NULL;
}

static void *race_root(void *unused)
{
    test_rng r = test_rng_new(7);
    int rounds = TEST_SCALE(300, 150, 40);
    enum { W = 8, DEPTH = 6 };
    for (int round = 0; round < rounds; round++) {
        edo_token *chain[DEPTH];
        CHECK_OK(edo_token_new(&chain[0], NULL));
        for (int d = 1; d < DEPTH; d++)
            CHECK_OK(edo_token_new(&chain[d], chain[d - 1]));
        race_waiter rw[W];
        edo_task *ts[W];
        for (int i = 0; i < W; i++) {
            rw[i].tok = chain[test_rng_range(&r, 0, DEPTH - 1)];
            rw[i].timeout = test_rng_next(&r) & 1 ? (int64_t)test_rng_range(&r, 0, 2) : -1;
            rw[i].yields = (int)test_rng_range(&r, 0, 3);
            CHECK_OK(edo_spawn(&ts[i], race_wait_task, &rw[i]));
        }
        /* Two cancels at once on the same chain: one from a task, one from a thread. One
         * cancels the root, the other a token in the middle and then the root. */
        int mid = (int)test_rng_range(&r, 1, DEPTH - 2);
        race_cancel c1 = { .first = chain[0],
                           .below = chain[DEPTH - 1],
                           .spin = 3000,
                           .seed = 1000 + (uint64_t)round };
        race_cancel c2 = { .first = chain[mid],
                           .then = chain[0],
                           .below = chain[DEPTH - 1],
                           .spin = 3000,
                           .seed = 2000 + (uint64_t)round };
        edo_task *ct;
        pthread_t th;
        CHECK_EQ(pthread_create(&th, NULL, race_cancel_thread, &c2), 0);
        atomic_store(&c2.go, 1);
        CHECK_OK(edo_spawn(&ct, race_cancel_task, &c1));
        for (int i = 0; i < W; i++) {
            void *res;
            CHECK_EQ(edo_join(ts[i], &res), 0);
            CHECK(INT(res) == 0 || INT(res) == -ETIMEDOUT);
        }
        CHECK_EQ(edo_join(ct, NULL), 0);
        WAIT_UNTIL(atomic_load(&c2.done), 10000);
        CHECK_EQ(pthread_join(th, NULL), 0);
        for (int d = 0; d < DEPTH; d++) {
            CHECK(edo_token_cancelled(chain[d]));
            CHECK_EQ(edo_token_wait(chain[d]), 0);
        }
        /* Freed in a random order. */
        for (int d = DEPTH - 1; d > 0; d--) {
            int k = (int)test_rng_range(&r, 0, (uint64_t)d);
            edo_token *t = chain[k];
            chain[k] = chain[d];
            chain[d] = t;
        }
        for (int d = 0; d < DEPTH; d++)
            edo_token_free(chain[d]);
    }
    return NULL;
}

static const test_root case_token_cancel_races_waits = { .fn = race_root };

/* ---------------------------------------------------------------------------------------- */
/* Freeing tokens that have live children                                                   */

typedef struct free_race {
    edo_token *root;
    edo_token **kids;  /* children of root */
    edo_token **grand; /* two per child */
    int nkids;
    bool *keep; /* grandchildren kept by the freeing thread */
    uint64_t seed;
    atomic_int ready, go;
} free_race;

static void *free_race_cancel(void *arg)
{
    free_race *fr = arg;
    atomic_fetch_add(&fr->ready, 1);
    spin_until(&fr->go, 1);
    test_rng r = test_rng_new(fr->seed);
    test_spin(&r, 2000);
    edo_token_cancel(fr->root);
    return NULL;
}

static void *free_race_free(void *arg)
{
    free_race *fr = arg;
    atomic_fetch_add(&fr->ready, 1);
    spin_until(&fr->go, 1);
    test_rng r = test_rng_new(fr->seed + 1);
    for (int i = 0; i < fr->nkids; i++) {
        edo_token_free(fr->kids[i]);
        for (int g = 0; g < 2; g++)
            if (!fr->keep[2 * i + g])
                edo_token_free(fr->grand[2 * i + g]);
        if (test_rng_next(&r) % 4 == 0)
            test_spin(&r, 500);
    }
    return NULL;
}

static void *free_children_root(void *unused)
{
    /* The middle of a chain freed: the leaf still hears the root's cancel, and a task
     * waiting on it wakes. */
    edo_token *root, *mid, *leaf;
    token_chain(&root, &mid, &leaf);
    edo_token_free(mid);
    edo_task *t;
    CHECK_OK(edo_spawn(&t, token_waiter, leaf));
    test_wait_parked(t, EDO_WAIT_NOTIFY);
    CHECK(!edo_token_cancelled(leaf));
    edo_token_cancel(root);
    join_expect(t, 0);
    CHECK(edo_token_cancelled(leaf));
    edo_token_free(root);
    /* A child of the freed-and-cancelled line is born cancelled. */
    edo_token *leaf2;
    CHECK_OK(edo_token_new(&leaf2, leaf));
    CHECK(edo_token_cancelled(leaf2));
    edo_token_free(leaf);
    edo_token_free(leaf2);

    /* The root freed first: the child lives on, live, and is cancelled on its own. */
    CHECK_OK(edo_token_new(&root, NULL));
    CHECK_OK(edo_token_new(&leaf, root));
    edo_token_free(root);
    CHECK(!edo_token_cancelled(leaf));
    CHECK_OK(edo_spawn(&t, token_waiter, leaf));
    test_wait_parked(t, EDO_WAIT_NOTIFY);
    edo_token_cancel(leaf);
    join_expect(t, 0);
    edo_token_free(leaf); /* the last one: takes the root with it */

    /* Children freed by one thread while another cancels their parent. */
    int rounds = TEST_SCALE(300, 150, 40);
    enum { K = 16 };
    edo_token *kids[K], *grand[2 * K];
    bool keep[2 * K];
    test_rng r = test_rng_new(11);
    for (int round = 0; round < rounds; round++) {
        CHECK_OK(edo_token_new(&root, NULL));
        for (int i = 0; i < K; i++) {
            CHECK_OK(edo_token_new(&kids[i], root));
            for (int g = 0; g < 2; g++) {
                CHECK_OK(edo_token_new(&grand[2 * i + g], kids[i]));
                keep[2 * i + g] = test_rng_next(&r) & 1;
            }
        }
        free_race fr = { .root = root,
                         .kids = kids,
                         .grand = grand,
                         .nkids = K,
                         .keep = keep,
                         .seed = 100 + (uint64_t)round };
        pthread_t a, b;
        CHECK_EQ(pthread_create(&a, NULL, free_race_cancel, &fr), 0);
        CHECK_EQ(pthread_create(&b, NULL, free_race_free, &fr), 0);
        WAIT_UNTIL(atomic_load(&fr.ready) == 2, 10000);
        atomic_store(&fr.go, 1);
        CHECK_EQ(pthread_join(a, NULL), 0);
        CHECK_EQ(pthread_join(b, NULL), 0);
        CHECK(edo_token_cancelled(root));
        for (int i = 0; i < 2 * K; i++) {
            if (keep[i]) {
                CHECK(edo_token_cancelled(grand[i]));
                edo_token_free(grand[i]);
            }
        }
        edo_token_free(root);
    }
    return NULL;
}

static const test_root case_token_free_with_children = { .fn = free_children_root };

/* ---------------------------------------------------------------------------------------- */
/* Deep and wide trees: cancel and free must not recurse                                    */

static void *deep_root(void *unused)
{
    int depth = TEST_SCALE(200000, 100000, 20000);
    edo_token **chain = malloc((size_t)depth * sizeof *chain);
    CHECK(chain != NULL);
    CHECK_OK(edo_token_new(&chain[0], NULL));
    for (int i = 1; i < depth; i++)
        CHECK_OK(edo_token_new(&chain[i], chain[i - 1]));
    edo_task *t;
    CHECK_OK(edo_spawn(&t, token_waiter, chain[depth - 1]));
    test_wait_parked(t, EDO_WAIT_NOTIFY);

    /* The middle: the half above stays live. */
    edo_token_cancel(chain[depth / 2]);
    CHECK(edo_token_cancelled(chain[depth - 1]));
    CHECK(edo_token_cancelled(chain[depth / 2 + 1]));
    CHECK(!edo_token_cancelled(chain[depth / 2 - 1]));
    CHECK(!edo_token_cancelled(chain[0]));
    join_expect(t, 0);
    edo_token_cancel(chain[0]);
    CHECK(edo_token_cancelled(chain[depth / 2 - 1]));

    /* Freed root first: every token stays until the leaf goes, which frees the whole
     * chain at once. */
    for (int i = 0; i < depth; i++)
        edo_token_free(chain[i]);

    /* Again with a live chain and one cancel from the root. */
    CHECK_OK(edo_token_new(&chain[0], NULL));
    for (int i = 1; i < depth; i++)
        CHECK_OK(edo_token_new(&chain[i], chain[i - 1]));
    edo_token_cancel(chain[0]);
    CHECK(edo_token_cancelled(chain[depth - 1]));
    for (int i = depth - 1; i >= 0; i--)
        edo_token_free(chain[i]);

    /* Wide: many children, each with a child. */
    int wide = TEST_SCALE(20000, 10000, 3000);
    edo_token *root;
    CHECK_OK(edo_token_new(&root, NULL));
    edo_token **kids = malloc((size_t)wide * 2 * sizeof *kids);
    CHECK(kids != NULL);
    for (int i = 0; i < wide; i++) {
        CHECK_OK(edo_token_new(&kids[2 * i], root));
        CHECK_OK(edo_token_new(&kids[2 * i + 1], kids[2 * i]));
    }
    edo_token_cancel(root);
    for (int i = 0; i < 2 * wide; i++)
        CHECK(edo_token_cancelled(kids[i]));
    edo_token_free(root);
    for (int i = 0; i < 2 * wide; i++)
        edo_token_free(kids[i]);
    free(kids);
    free(chain);
    return NULL;
}

static const test_root case_token_deep_tree = { .fn = deep_root };

/* ---------------------------------------------------------------------------------------- */
/* Waiters that gave up leave nothing behind                                                */

static void *timed_waiter(void *arg)
{
    edo_token *tok = arg;
    int64_t scope = edo_timeout_begin((int64_t)(edo_task_id(NULL) % 5));
    int rc = edo_token_wait(tok);
    edo_deadline_end(scope);
    return VAL(rc);
}

#define PATTERN_BYTES 16384

/* Fills its stack where the waiters before it had theirs, then waits: a waiter left in
 * the token's queue would be written to by the cancel, or lead it astray. */
static void *pattern_waiter(void *arg)
{
    edo_token *tok = arg;
    unsigned char buf[PATTERN_BYTES];
    memset(buf, 0xa5, sizeof buf);
    __asm__ volatile("" : : "r"(buf) : "memory");
    int rc = edo_token_wait(tok);
    for (size_t i = 0; i < sizeof buf; i++)
        CHECK_EQ(buf[i], 0xa5);
    return VAL(rc);
}

static void *leave_nothing_root(void *unused)
{
    edo_token *tok;
    CHECK_OK(edo_token_new(&tok, NULL));
    int n = TEST_SCALE(400, 200, 60);
    edo_task **ts = calloc((size_t)n, sizeof *ts);
    CHECK(ts != NULL);
    /* Half time out, half are aborted while they wait. */
    for (int i = 0; i < n; i++)
        CHECK_OK(edo_spawn(&ts[i], i & 1 ? token_waiter : timed_waiter, tok));
    abort_odd_join_all(ts, n, EDO_WAIT_NOTIFY, -ETIMEDOUT);
    /* An aborted task does not even start to wait. */
    CHECK_OK(edo_spawn(&ts[0], token_waiter, tok));
    edo_abort(ts[0]);
    join_cancelled(ts[0]);

    /* New waiters on the reused stacks: the cancel finds them and only them. */
    edo_spawn_opts big = { .stack_size = PATTERN_BYTES + 32768 };
    for (int i = 0; i < n; i++)
        CHECK_OK(edo_spawn_with(&ts[i], i & 1 ? &big : NULL, pattern_waiter, tok));
    for (int i = 0; i < n; i++)
        test_wait_parked(ts[i], EDO_WAIT_NOTIFY);
    CHECK(!edo_token_cancelled(tok));
    edo_token_cancel(tok);
    for (int i = 0; i < n; i++)
        join_expect(ts[i], 0);
    edo_token_free(tok);
    free(ts);
    return NULL;
}

static const test_root case_token_waiters_leave_nothing = { .fn = leave_nothing_root };

/* ---------------------------------------------------------------------------------------- */
/* Tokens in edo_select                                                                     */

typedef struct sel_job {
    edo_token *tok;
    edo_chan *ch;
    int64_t timeout; /* ms */
} sel_job;

/* Selects on the token, a channel and a timeout; returns the index that fired (checking
 * that a message is taken only by its own case), or -ECANCELED if aborted. */
static void *select_task(void *arg)
{
    sel_job *j = arg;
    int v = -1;
    edo_case cs[] = { edo_case_cancel(j->tok), edo_case_recv(j->ch, &v),
                      edo_case_timeout(j->timeout) };
    int k = edo_select(cs, 3);
    if (k == -ECANCELED) {
        CHECK_EQ(v, -1);
        return VAL(k);
    }
    CHECK(k >= 0 && k <= 2);
    CHECK_EQ(cs[k].rc, 0);
    if (k == 0)
        CHECK(edo_token_cancelled(j->tok));
    if (k == 1)
        CHECK_EQ(v, 7);
    else
        CHECK_EQ(v, -1);
    return VAL(k);
}

static void *select_root(void *unused)
{
    edo_token *root, *leaf;
    edo_chan *ch;
    CHECK_OK(edo_chan_new(&ch, sizeof(int), 64));
    CHECK_OK(edo_token_new(&root, NULL));
    CHECK_OK(edo_token_new(&leaf, root));

    /* A live token: the timer fires, and the token's case is withdrawn. */
    sel_job j = { leaf, ch, 20 };
    CHECK_EQ(INT(select_task(&j)), 2);

    /* Parked on the leaf: the root's cancel wakes the select, on that case. */
    j.timeout = 60000;
    edo_task *t;
    CHECK_OK(edo_spawn(&t, select_task, &j));
    test_wait_parked(t, EDO_WAIT_SELECT);
    edo_token_cancel(root);
    join_expect(t, 0);

    /* Already cancelled: at once, also with the channel ready; a message is never taken by
     * the token's case. */
    int seven = 7, got[2] = { 0, 0 };
    for (int i = 0; i < 40; i++) {
        CHECK_EQ(edo_chan_send(ch, &seven), 0);
        intptr_t k = INT(select_task(&j));
        CHECK(k == 0 || k == 1);
        got[k]++;
        if (k == 0) {
            int v;
            CHECK_EQ(edo_chan_try_recv(ch, &v), 0); /* the message stayed */
        }
        CHECK_EQ(edo_chan_len(ch), 0);
    }
    CHECK_GT(got[0], 0); /* picked at random: 40 coin tosses never all the same */
    CHECK_GT(got[1], 0);
    edo_token_free(leaf);
    edo_token_free(root);

    /* Selects that give up on the token (timer, abort) leave nothing in its queue: later
     * waiters on the same stacks are woken cleanly by the cancel. */
    int n = TEST_SCALE(200, 100, 40);
    edo_task **ts = calloc((size_t)n, sizeof *ts);
    sel_job *js = calloc((size_t)n, sizeof *js);
    CHECK(ts && js);
    edo_token *tok;
    CHECK_OK(edo_token_new(&tok, NULL));
    for (int i = 0; i < n; i++) {
        js[i] = (sel_job){ tok, ch, i & 1 ? 60000 : (int64_t)(i % 5) };
        CHECK_OK(edo_spawn(&ts[i], select_task, &js[i]));
    }
    abort_odd_join_all(ts, n, EDO_WAIT_SELECT, 2);
    for (int i = 0; i < n; i++)
        CHECK_OK(edo_spawn(&ts[i], pattern_waiter, tok));
    for (int i = 0; i < n; i++)
        test_wait_parked(ts[i], EDO_WAIT_NOTIFY);
    edo_token_cancel(tok);
    for (int i = 0; i < n; i++)
        join_expect(ts[i], 0);
    edo_token_free(tok);

    /* Cancels racing selects, which also time out now and then. */
    test_rng r = test_rng_new(21);
    int rounds = TEST_SCALE(200, 100, 30);
    for (int round = 0; round < rounds; round++) {
        CHECK_OK(edo_token_new(&root, NULL));
        CHECK_OK(edo_token_new(&leaf, root));
        enum { W = 6 };
        edo_task *w[W];
        sel_job sj[W];
        for (int i = 0; i < W; i++) {
            sj[i] = (sel_job){ i & 1 ? leaf : root, ch,
                               test_rng_next(&r) & 1 ? 60000 : (int64_t)test_rng_range(&r, 0, 2) };
            CHECK_OK(edo_spawn(&w[i], select_task, &sj[i]));
        }
        race_cancel rc = {
            .first = root, .below = leaf, .spin = 5000, .seed = 3000 + (uint64_t)round
        };
        pthread_t th;
        CHECK_EQ(pthread_create(&th, NULL, race_cancel_thread, &rc), 0);
        atomic_store(&rc.go, 1);
        for (int i = 0; i < W; i++) {
            void *res;
            CHECK_EQ(edo_join(w[i], &res), 0);
            CHECK(INT(res) == 0 || (INT(res) == 2 && sj[i].timeout < 60000));
        }
        WAIT_UNTIL(atomic_load(&rc.done), 10000);
        CHECK_EQ(pthread_join(th, NULL), 0);
        edo_token_free(leaf);
        edo_token_free(root);
    }
    free(ts);
    free(js);
    edo_chan_free(ch);
    return NULL;
}

static const test_root case_token_select = { .fn = select_root };

/* ---------------------------------------------------------------------------------------- */
/* Join sets: finish order                                                                  */

typedef struct gate {
    edo_token *tok;
    intptr_t value;
} gate;

/* Returns its value once its token is cancelled. */
static void *gated(void *arg)
{
    gate *g = arg;
    CHECK_EQ(edo_token_wait(g->tok), 0);
    return VAL(g->value);
}

typedef struct opener {
    edo_task *waiter; /* opens once this task is parked in edo_joinset_next */
    edo_token *tok;
} opener;

static void *open_when_waiting(void *arg)
{
    opener *o = arg;
    test_wait_parked(o->waiter, EDO_WAIT_JOIN);
    edo_token_cancel(o->tok);
    return NULL;
}

static void shuffle(int *a, int n, test_rng *r)
{
    for (int i = n - 1; i > 0; i--) {
        int k = (int)test_rng_range(r, 0, (uint64_t)i);
        int t = a[k];
        a[k] = a[i];
        a[i] = t;
    }
}

static void *sleeper_value(void *arg)
{
    intptr_t i = INT(arg);
    CHECK_EQ(edo_sleep(20 + 10 * i), 0);
    return arg;
}

typedef struct stamped {
    int64_t ms;
    atomic_int *ticket;
} stamped;

/* Sleeps, then returns the next ticket. */
static void *stamped_sleeper(void *arg)
{
    stamped *s = arg;
    CHECK_EQ(edo_sleep(s->ms), 0);
    return VAL(atomic_fetch_add(s->ticket, 1));
}

static void *order_root(void *unused)
{
    enum { K = 8 };
    test_rng r = test_rng_new(3);
    gate g[K];
    uint64_t ids[K];
    int perm[K];
    edo_joinset *js;
    CHECK_OK(edo_joinset_new(&js));
    for (int k = 0; k < K; k++) {
        CHECK_OK(edo_token_new(&g[k].tok, NULL));
        g[k].value = 100 + k;
        CHECK_OK(edo_joinset_spawn(js, gated, &g[k], &ids[k]));
        CHECK_NE(ids[k], 0);
        perm[k] = k;
    }
    CHECK_EQ(edo_joinset_len(js), K);

    /* All finish before the first next, one after the other in a random order: they are
     * taken in that order. */
    shuffle(perm, K, &r);
    for (int k = 0; k < K; k++) {
        edo_token_cancel(g[perm[k]].tok);
        WAIT_UNTIL(!task_alive(ids[perm[k]]), 10000);
    }
    CHECK_EQ(edo_joinset_len(js), K);
    for (int k = 0; k < K; k++) {
        void *res;
        uint64_t id;
        CHECK_EQ(edo_joinset_next(js, &res, &id), 0);
        CHECK_EQ(INT(res), 100 + perm[k]);
        CHECK_EQ(id, ids[perm[k]]);
        CHECK_EQ(edo_joinset_len(js), K - k - 1);
    }
    CHECK_ERR(edo_joinset_next(js, NULL, NULL), -EDO_EEMPTY);

    /* One at a time while next waits: each goes to the waiting next. */
    for (int k = 0; k < K; k++) {
        edo_token_free(g[k].tok);
        CHECK_OK(edo_token_new(&g[k].tok, NULL));
        CHECK_OK(edo_joinset_spawn(js, gated, &g[k], &ids[k]));
    }
    shuffle(perm, K, &r);
    for (int k = 0; k < K; k++) {
        opener o = { edo_self(), g[perm[k]].tok };
        edo_task *ot;
        CHECK_OK(edo_spawn(&ot, open_when_waiting, &o));
        void *res;
        uint64_t id;
        CHECK_EQ(edo_joinset_next(js, &res, &id), 0);
        CHECK_EQ(INT(res), 100 + perm[k]);
        CHECK_EQ(id, ids[perm[k]]);
        CHECK_EQ(edo_join(ot, NULL), 0);
    }
    CHECK_EQ(edo_joinset_len(js), 0);

    /* Tasks that sleep different times, spawned in a random order, each taking a ticket
     * as it ends: the tickets come back in order. (On a loaded machine late timers may
     * end them in another order than their sleeps; the tickets still follow the ends.) */
    enum { S = 4 };
    stamped st[S];
    atomic_int ticket = 0;
    int order[S];
    for (int i = 0; i < S; i++)
        order[i] = i;
    shuffle(order, S, &r);
    for (int i = 0; i < S; i++) {
        st[i] = (stamped){ .ms = 20 + 250 * order[i], .ticket = &ticket };
        CHECK_OK(edo_joinset_spawn(js, stamped_sleeper, &st[i], NULL));
    }
    for (int i = 0; i < S; i++) {
        void *res;
        CHECK_EQ(edo_joinset_next(js, &res, NULL), 0);
        CHECK_EQ(INT(res), i);
    }
    CHECK_ERR(edo_joinset_next(js, NULL, NULL), -EDO_EEMPTY);
    edo_joinset_free(js);
    for (int k = 0; k < K; k++)
        edo_token_free(g[k].tok);
    return NULL;
}

static const test_root case_joinset_finish_order = { .fn = order_root };

/* ---------------------------------------------------------------------------------------- */
/* Join sets: empty, length, several tasks in next                                          */

typedef struct next_call {
    edo_joinset *js;
    void *res;
    uint64_t id;
} next_call;

static void *call_next(void *arg)
{
    next_call *nc = arg;
    return VAL(edo_joinset_next(nc->js, &nc->res, &nc->id));
}

static void *empty_root(void *unused)
{
    edo_joinset *js;
    CHECK_OK(edo_joinset_new(&js));
    CHECK_EQ(edo_joinset_len(js), 0);
    void *res = VAL(1);
    uint64_t id = 1;
    CHECK_ERR(edo_joinset_next(js, &res, &id), -EDO_EEMPTY);
    CHECK(res == NULL);
    CHECK_EQ(id, 0);
    edo_joinset_abort_all(js); /* on an empty set: nothing */

    for (int i = 0; i < 3; i++)
        CHECK_OK(edo_joinset_spawn(js, sleeper_value, VAL(0), NULL));
    CHECK_EQ(edo_joinset_len(js), 3);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(edo_joinset_next(js, NULL, NULL), 0);
    CHECK_EQ(edo_joinset_len(js), 0);
    CHECK_ERR(edo_joinset_next(js, NULL, NULL), -EDO_EEMPTY);

    /* Two tasks wait in next for one task: one gets it, the other hears the set is
     * empty. */
    gate g = { .value = 5 };
    CHECK_OK(edo_token_new(&g.tok, NULL));
    uint64_t gid;
    CHECK_OK(edo_joinset_spawn(js, gated, &g, &gid));
    next_call nc[2] = { { .js = js }, { .js = js } };
    edo_task *t[2];
    for (int i = 0; i < 2; i++)
        CHECK_OK(edo_spawn(&t[i], call_next, &nc[i]));
    for (int i = 0; i < 2; i++)
        test_wait_parked(t[i], EDO_WAIT_JOIN);
    edo_token_cancel(g.tok);
    void *r0, *r1;
    CHECK_EQ(edo_join(t[0], &r0), 0);
    CHECK_EQ(edo_join(t[1], &r1), 0);
    CHECK((INT(r0) == 0 && INT(r1) == -EDO_EEMPTY) || (INT(r0) == -EDO_EEMPTY && INT(r1) == 0));
    next_call *got = INT(r0) == 0 ? &nc[0] : &nc[1];
    CHECK_EQ(INT(got->res), 5);
    CHECK_EQ(got->id, gid);
    edo_token_free(g.tok);

    CHECK_ERR(edo_joinset_spawn(js, NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(edo_joinset_spawn(NULL, sleeper_value, NULL, NULL), -EINVAL);
    CHECK_ERR(edo_joinset_next(NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(edo_joinset_new(NULL), -EINVAL);
    CHECK_EQ(edo_joinset_len(js), 0);
    edo_joinset_free(js);
    edo_joinset_free(NULL);
    return NULL;
}

static const test_root case_joinset_empty = { .fn = empty_root };

/* ---------------------------------------------------------------------------------------- */
/* Join sets: abort_all                                                                     */

/* Sleeps until aborted; returns 1000 + its value while unwinding. */
static void *sleep_until_aborted(void *arg)
{
    int rc = edo_sleep(100000000);
    CHECK_ERR(rc, -ECANCELED);
    CHECK(edo_aborted());
    return VAL(1000 + INT(arg));
}

static void *abort_all_root(void *unused)
{
    enum { N = 50, Q = 3 };
    edo_joinset *js;
    CHECK_OK(edo_joinset_new(&js));
    uint64_t ids[N + Q];
    /* A few that finish before the abort: they report success. */
    for (int i = 0; i < Q; i++)
        CHECK_OK(edo_joinset_spawn(js, sleeper_value, VAL(0), &ids[N + i]));
    for (int i = 0; i < Q; i++)
        WAIT_UNTIL(!task_alive(ids[N + i]), 10000);
    /* Parked ones, and with one worker some that have not started yet. */
    for (int i = 0; i < N; i++) {
        CHECK_OK(edo_joinset_spawn(js, sleep_until_aborted, VAL(i), &ids[i]));
        if (i == N / 2)
            CHECK_EQ(edo_sleep(5), 0);
    }
    CHECK_EQ(edo_joinset_len(js), N + Q);
    edo_joinset_abort_all(js);
    edo_joinset_abort_all(js); /* again: nothing new */
    CHECK_EQ(edo_joinset_len(js), N + Q);
    bool seen[N] = { false }, qseen[Q] = { false };
    for (int k = 0; k < N + Q; k++) {
        void *res;
        uint64_t id;
        int rc = edo_joinset_next(js, &res, &id);
        if (k < Q) {
            /* They finished first, in any order among themselves. */
            CHECK_EQ(rc, 0);
            CHECK_EQ(INT(res), 0);
            int q = 0;
            while (q < Q && ids[N + q] != id)
                q++;
            CHECK(q < Q && !qseen[q]);
            qseen[q] = true;
            continue;
        }
        CHECK_ERR(rc, -EDO_EABORTED);
        intptr_t i = INT(res) - 1000;
        CHECK(i >= 0 && i < N);
        CHECK(!seen[i]);
        seen[i] = true;
        CHECK_EQ(id, ids[i]);
    }
    CHECK_ERR(edo_joinset_next(js, NULL, NULL), -EDO_EEMPTY);
    edo_joinset_free(js);
    return NULL;
}

static const test_root case_joinset_abort_all = { .fn = abort_all_root };

/* ---------------------------------------------------------------------------------------- */
/* Join sets: free with tasks still running                                                 */

typedef struct unwind_count {
    atomic_int started, unwound;
} unwind_count;

/* Parks until aborted, then takes a while to unwind. */
static void *slow_unwinder(void *arg)
{
    unwind_count *u = arg;
    atomic_fetch_add(&u->started, 1);
    CHECK_ERR(edo_sleep(100000000), -ECANCELED);
    int64_t t0 = edo_now();
    while (edo_now() - t0 < 3) {
    }
    atomic_fetch_add(&u->unwound, 1);
    return NULL;
}

typedef struct free_job {
    unwind_count *u;
    int n;
    bool abort_self;
    bool past_deadline;
} free_job;

static void *free_in_task(void *arg)
{
    free_job *fj = arg;
    edo_joinset *js;
    CHECK_OK(edo_joinset_new(&js));
    for (int i = 0; i < fj->n; i++)
        CHECK_OK(edo_joinset_spawn(js, slow_unwinder, fj->u, NULL));
    WAIT_UNTIL(atomic_load(&fj->u->started) == fj->n, 10000);
    /* Some finished and never taken, too (waited for: on a loaded machine a worker holding
     * one could be held up past any fixed sleep). */
    uint64_t fin[2];
    for (int i = 0; i < 2; i++)
        CHECK_OK(edo_joinset_spawn(js, sleeper_value, VAL(0), &fin[i]));
    for (int i = 0; i < 2; i++)
        WAIT_UNTIL(!task_alive(fin[i]), 10000);
    if (fj->abort_self)
        edo_abort(edo_self());
    if (fj->past_deadline)
        edo_deadline_begin(edo_now() - 1);
    edo_joinset_free(js);
    /* Every task has returned: none is left to touch the set. */
    CHECK_EQ(atomic_load(&fj->u->unwound), fj->n);
    return NULL;
}

static void *free_root(void *unused)
{
    for (int mode = 0; mode < 3; mode++) {
        unwind_count u = { 0 };
        free_job fj = { &u, 20, mode == 1, mode == 2 };
        edo_task *t;
        CHECK_OK(edo_spawn(&t, free_in_task, &fj));
        int rc = edo_join(t, NULL);
        CHECK_EQ(rc, mode == 1 ? -EDO_EABORTED : 0);
        CHECK_EQ(atomic_load(&u.unwound), 20);
    }

    /* Freed right after the spawns: with one worker none has started. */
    unwind_count u = { 0 };
    edo_joinset *js;
    CHECK_OK(edo_joinset_new(&js));
    for (int i = 0; i < 10; i++)
        CHECK_OK(edo_joinset_spawn(js, sleep_until_aborted, VAL(i), NULL));
    edo_joinset_free(js);

    /* abort_all before they start, then next: each reports its abort. */
    CHECK_OK(edo_joinset_new(&js));
    for (int i = 0; i < 10; i++)
        CHECK_OK(edo_joinset_spawn(js, slow_unwinder, &u, NULL));
    edo_joinset_abort_all(js);
    for (int i = 0; i < 10; i++)
        CHECK_ERR(edo_joinset_next(js, NULL, NULL), -EDO_EABORTED);
    CHECK_EQ(atomic_load(&u.unwound), 10);
    edo_joinset_free(js);
    return NULL;
}

static const test_root case_joinset_free_running = { .fn = free_root };

/* ---------------------------------------------------------------------------------------- */
/* Join sets: many tasks across workers                                                     */

typedef struct many {
    edo_joinset *js;
    int n;
    uint64_t *ids;    /* by index, stored by the spawner */
    uint64_t *got;    /* by index, the id next reported */
    atomic_int taken; /* results taken by both consumers */
} many;

static void *many_member(void *arg)
{
    intptr_t i = INT(arg);
    switch (i % 4) {
    case 0:
        break;
    case 1:
        edo_yield();
        break;
    case 2:
        edo_sleep(i % 3);
        break;
    case 3:
        for (int k = 0; k < 3; k++)
            edo_yield();
        break;
    }
    return arg;
}

static void *many_spawner(void *arg)
{
    many *m = arg;
    for (int i = 0; i < m->n; i++) {
        CHECK_OK(edo_joinset_spawn(m->js, many_member, VAL(i), &m->ids[i]));
        if (i % 64 == 0)
            edo_yield();
    }
    return NULL;
}

static void *many_consumer(void *arg)
{
    many *m = arg;
    int mine = 0;
    while (atomic_load(&m->taken) < m->n) {
        void *res;
        uint64_t id;
        int rc = edo_joinset_next(m->js, &res, &id);
        if (rc == -EDO_EEMPTY) {
            /* Caught up with the spawner, or the other consumer took the last one. */
            edo_sleep(1);
            continue;
        }
        CHECK_EQ(rc, 0);
        intptr_t i = INT(res);
        CHECK(i >= 0 && i < m->n);
        CHECK_MSG(m->got[i] == 0, "result %d seen twice", (int)i);
        m->got[i] = id;
        atomic_fetch_add(&m->taken, 1);
        mine++;
    }
    return VAL(mine);
}

static void *many_root(void *unused)
{
    many m = { .n = TEST_SCALE(10000, 10000, 2000) };
    CHECK_OK(edo_joinset_new(&m.js));
    m.ids = calloc((size_t)m.n, sizeof *m.ids);
    m.got = calloc((size_t)m.n, sizeof *m.got);
    CHECK(m.ids && m.got);
    edo_task *sp, *c2;
    CHECK_OK(edo_spawn(&sp, many_spawner, &m));
    CHECK_OK(edo_spawn(&c2, many_consumer, &m));
    intptr_t mine = INT(many_consumer(&m));
    void *theirs;
    CHECK_EQ(edo_join(c2, &theirs), 0);
    CHECK_EQ(edo_join(sp, NULL), 0);
    CHECK_EQ(mine + INT(theirs), m.n);
    CHECK_EQ(atomic_load(&m.taken), m.n);
    for (int i = 0; i < m.n; i++) {
        CHECK_NE(m.ids[i], 0);
        CHECK_MSG(m.got[i] == m.ids[i], "result %d: id %llu, spawned as %llu", i,
                  (unsigned long long)m.got[i], (unsigned long long)m.ids[i]);
    }
    CHECK_EQ(edo_joinset_len(m.js), 0);
    CHECK_ERR(edo_joinset_next(m.js, NULL, NULL), -EDO_EEMPTY);
    edo_joinset_free(m.js);
    free(m.ids);
    free(m.got);
    return NULL;
}

static const test_root case_joinset_many = { .fn = many_root };

/* ---------------------------------------------------------------------------------------- */
/* Join sets: next with a deadline, next aborted                                            */

static void *next_deadline_root(void *unused)
{
    edo_joinset *js;
    CHECK_OK(edo_joinset_new(&js));
    gate g = { .value = 9 };
    CHECK_OK(edo_token_new(&g.tok, NULL));
    uint64_t gid;
    CHECK_OK(edo_joinset_spawn(js, gated, &g, &gid));

    int64_t t0 = edo_now();
    int64_t scope = edo_timeout_begin(30);
    void *res = VAL(1);
    uint64_t id = 1;
    CHECK_ERR(edo_joinset_next(js, &res, &id), -ETIMEDOUT);
    CHECK(res == NULL);
    CHECK_EQ(id, 0);
    CHECK_EQ(edo_now() - t0, 30);
    /* Past the deadline: at once. */
    CHECK_ERR(edo_joinset_next(js, &res, &id), -ETIMEDOUT);
    edo_deadline_end(scope);
    CHECK_EQ(edo_joinset_len(js), 1);

    /* A task waiting in next aborted: -ECANCELED of the wait, id 0, set intact. */
    next_call nc = { .js = js, .id = 1 };
    edo_task *t;
    CHECK_OK(edo_spawn(&t, call_next, &nc));
    test_wait_parked(t, EDO_WAIT_JOIN);
    edo_abort(t);
    void *r;
    CHECK_ERR(edo_join(t, &r), -EDO_EABORTED);
    CHECK_EQ(INT(r), -ECANCELED);
    CHECK_EQ(nc.id, 0);
    CHECK_EQ(edo_joinset_len(js), 1);

    /* The task finishes: the next next gets it, even with the deadline passed. */
    edo_token_cancel(g.tok);
    WAIT_UNTIL(!task_alive(gid), 10000);
    scope = edo_deadline_begin(edo_now() - 1);
    CHECK_EQ(edo_joinset_next(js, &res, &id), 0);
    edo_deadline_end(scope);
    CHECK_EQ(INT(res), 9);
    CHECK_EQ(id, gid);
    CHECK_ERR(edo_joinset_next(js, NULL, NULL), -EDO_EEMPTY);
    edo_joinset_free(js);
    edo_token_free(g.tok);
    return NULL;
}

static const test_root case_joinset_next_deadline = { .fn = next_deadline_root, .paused = true };

/* ---------------------------------------------------------------------------------------- */
/* Deadline scopes                                                                          */

static void *nested_root(void *unused)
{
    CHECK_EQ(edo_deadline(), EDO_NEVER);
    int64_t t0 = edo_now();
    int64_t outer = edo_timeout_begin(60000);
    CHECK_EQ(outer, EDO_NEVER);
    int64_t od = edo_deadline();
    CHECK_EQ(od, t0 + 60000);

    /* The inner, shorter scope fires, long before the outer one could. */
    int64_t inner = edo_timeout_begin(30);
    CHECK_EQ(inner, od);
    CHECK_EQ(edo_deadline(), t0 + 30);
    CHECK_ERR(edo_sleep(100000), -ETIMEDOUT);
    CHECK_EQ(edo_now() - t0, 30);
    CHECK_ERR(edo_sleep(1), -ETIMEDOUT);

    /* Ended: the outer one holds again, and calls work. */
    edo_deadline_end(inner);
    CHECK_EQ(edo_deadline(), od);
    CHECK_EQ(edo_sleep(10), 0);
    edo_token *tok;
    CHECK_OK(edo_token_new(&tok, NULL));
    edo_token_cancel(tok);
    CHECK_EQ(edo_token_wait(tok), 0);
    edo_token_free(tok);

    /* A third level inside it. */
    int64_t third = edo_deadline_begin(od - 1);
    CHECK_EQ(third, od);
    CHECK_EQ(edo_deadline(), od - 1);
    edo_deadline_end(third);
    CHECK_EQ(edo_deadline(), od);
    edo_deadline_end(outer);
    CHECK_EQ(edo_deadline(), EDO_NEVER);

    /* After an inner scope has fired and ended, the outer one still bounds the calls:
     * they fail once it has passed, not before. */
    outer = edo_timeout_begin(300);
    od = edo_deadline();
    inner = edo_timeout_begin(20);
    CHECK_ERR(edo_sleep(100000), -ETIMEDOUT);
    CHECK_EQ(edo_now(), od - 280);
    edo_deadline_end(inner);
    CHECK_EQ(edo_deadline(), od);
    CHECK_ERR(edo_sleep(100000), -ETIMEDOUT);
    CHECK_EQ(edo_now(), od);
    CHECK_ERR(edo_sleep(1), -ETIMEDOUT);
    edo_deadline_end(outer);
    CHECK_EQ(edo_deadline(), EDO_NEVER);
    CHECK_EQ(edo_sleep(1), 0);
    return NULL;
}

static const test_root case_deadline_nested = { .fn = nested_root, .paused = true };

static void *inner_longer_root(void *unused)
{
    int64_t outer = edo_timeout_begin(50);
    int64_t od = edo_deadline();
    int64_t inner = edo_timeout_begin(10000);
    CHECK_EQ(inner, od);
    CHECK_EQ(edo_deadline(), od); /* not extended */
    int64_t never = edo_deadline_begin(EDO_NEVER);
    CHECK_EQ(edo_deadline(), od);
    /* A sleep of 5 s that fails: only the outer deadline can have cut it short. */
    CHECK_ERR(edo_sleep(5000), -ETIMEDOUT);
    CHECK_EQ(edo_now(), od);
    edo_deadline_end(never);
    edo_deadline_end(inner);
    CHECK_EQ(edo_deadline(), od);
    edo_deadline_end(outer);
    CHECK_EQ(edo_deadline(), EDO_NEVER);
    /* Negative timeouts are "now". */
    int64_t s = edo_timeout_begin(-5);
    CHECK_ERR(edo_sleep(1), -ETIMEDOUT);
    edo_deadline_end(s);
    CHECK_EQ(edo_sleep(1), 0);
    return NULL;
}

static void case_deadline_inner_longer(void)
{
    /* Outside a task, scopes do nothing. */
    CHECK_EQ(edo_timeout_begin(10), EDO_NEVER);
    CHECK_EQ(edo_deadline(), EDO_NEVER);
    edo_deadline_end(5);
    CHECK_EQ(edo_deadline(), EDO_NEVER);
    run_paused(inner_longer_root, NULL);
}

static void *sleep_forever(void *arg)
{
    return VAL(edo_sleep(100000000));
}

/* A call timed out by a scope of ms, on the paused clock: exactly then (the io's own
 * timeout is 60 s, the sleeps longer). */
static void check_timed_out(int64_t t0, int64_t ms)
{
    CHECK_EQ(edo_now() - t0, ms);
}

static void *scope_calls_root(void *unused)
{
    /* A read on a socket that never gets data; a per-call timeout longer than the scope
     * does not help it. */
    int raw;
    edo_io *io = test_socketpair(&raw);
    edo_io_set_timeout(io, 60000, 0);
    char c;
    int64_t t0 = edo_now();
    int64_t scope = edo_timeout_begin(40);
    CHECK_ERR(edo_read(io, &c, 1), -ETIMEDOUT);
    check_timed_out(t0, 40);
    edo_deadline_end(scope);
    /* After the scope the same descriptor works. */
    CHECK_EQ(write(raw, "x", 1), 1);
    CHECK_EQ(edo_read(io, &c, 1), 1);
    CHECK_EQ(c, 'x');
    CHECK_OK(edo_close(io));
    close(raw);

    /* A join of a sleeping task: the handle stays valid. */
    edo_task *t;
    CHECK_OK(edo_spawn(&t, sleep_forever, NULL));
    t0 = edo_now();
    scope = edo_timeout_begin(40);
    CHECK_ERR(edo_join(t, NULL), -ETIMEDOUT);
    check_timed_out(t0, 40);
    edo_deadline_end(scope);
    edo_abort(t);
    join_cancelled(t);

    /* A sleep, a token and a channel. */
    t0 = edo_now();
    scope = edo_timeout_begin(40);
    CHECK_ERR(edo_sleep(100000), -ETIMEDOUT);
    check_timed_out(t0, 40);
    edo_deadline_end(scope);

    edo_token *tok;
    CHECK_OK(edo_token_new(&tok, NULL));
    t0 = edo_now();
    scope = edo_timeout_begin(40);
    CHECK_ERR(edo_token_wait(tok), -ETIMEDOUT);
    check_timed_out(t0, 40);
    edo_deadline_end(scope);
    edo_token_free(tok);

    edo_chan *ch;
    CHECK_OK(edo_chan_new(&ch, sizeof(int), 4));
    int v = 0;
    t0 = edo_now();
    scope = edo_timeout_begin(40);
    CHECK_ERR(edo_chan_recv(ch, &v), -ETIMEDOUT);
    check_timed_out(t0, 40);
    edo_deadline_end(scope);
    int one = 1;
    CHECK_EQ(edo_chan_send(ch, &one), 0);
    CHECK_EQ(edo_chan_recv(ch, &v), 0);
    CHECK_EQ(v, 1);
    edo_chan_free(ch);
    return NULL;
}

static const test_root case_deadline_scope_calls = { .fn = scope_calls_root, .paused = true };

static const test_case cases[] = {
    TEST_CASE(case_token_tree),
    TEST_CASE(case_token_many_waiters),
    TEST_CASE(case_token_foreign_cancel),
    TEST_CASE(case_token_cancel_races_waits),
    TEST_CASE(case_token_free_with_children),
    TEST_CASE(case_token_deep_tree),
    TEST_CASE(case_token_waiters_leave_nothing),
    TEST_CASE(case_token_select),
    TEST_CASE(case_joinset_finish_order),
    TEST_CASE(case_joinset_empty),
    TEST_CASE(case_joinset_abort_all),
    TEST_CASE(case_joinset_free_running),
    TEST_CASE(case_joinset_many),
    TEST_CASE(case_joinset_next_deadline),
    TEST_CASE(case_deadline_nested),
    TEST_CASE(case_deadline_inner_longer),
    TEST_CASE(case_deadline_scope_calls),
};

TEST_MAIN(cases)
