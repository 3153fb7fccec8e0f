/*
 * The spin lock of the runtime's short critical sections: a few pointer moves on a list,
 * a timer wheel, a waiter slot or a ring. Any thread may take one (a worker, the monitor,
 * a pool thread, a thread outside the runtime), and several may nest where the code that
 * takes them says in which order. A holder must never suspend (edo__park, edo__suspend,
 * a yield) or sleep: the next taker may be the same worker. The slow path (sched.c)
 * spins a little, then yields the thread, for a holder that was preempted.
 */
#ifndef EDO_CORE_SPIN_H
#define EDO_CORE_SPIN_H

#include <stdatomic.h>

typedef _Atomic int edo__spin;

void edo__spin_lock_slow(edo__spin *l);

static inline void edo__spin_lock(edo__spin *l)
{
    if (__builtin_expect(atomic_exchange_explicit(l, 1, memory_order_acquire), 0))
        edo__spin_lock_slow(l);
}

static inline void edo__spin_unlock(edo__spin *l)
{
    atomic_store_explicit(l, 0, memory_order_release);
}

#endif
