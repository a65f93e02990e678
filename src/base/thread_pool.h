/* thread_pool.h: a fixed team of threads, created once, that runs one task at
 * a time on all its members.
 *
 * g3_thread_pool_run(pool, fn, arg) calls fn(arg, i, n) on every member i of
 * the n (the caller is member 0) and returns when all are done. A decode step
 * runs over a hundred such tasks, so dispatch must cost microseconds: idle
 * workers spin on an atomic generation counter for a short while (about
 * 0.2 ms) before they sleep on a condition variable, and the caller spins for
 * the last member to finish. Tasks split their own work (static ranges or an
 * atomic work counter); the pool knows nothing about it. A member's share
 * may run on another thread: a worker that has not started its share when
 * the caller has finished its own (its core went to another process) finds
 * the share done by the caller, so one busy core does not stall every task
 * for a scheduler slice. Shares must therefore not wait for each other.
 *
 * A pool is used by one thread at a time (the one that owns the context).
 * Nothing is allocated per task. */
#ifndef G3_BASE_THREAD_POOL_H
#define G3_BASE_THREAD_POOL_H

#include <stdint.h>

#include "base/error.h"

typedef struct g3_thread_pool g3_thread_pool;

typedef void (*g3_task_fn)(void *arg, uint32_t ith, uint32_t nth);

/* n_threads >= 1 (1 = no worker threads: tasks run on the caller). */
int g3_thread_pool_new(uint32_t n_threads, g3_thread_pool **out, g3_error *err);
void g3_thread_pool_free(g3_thread_pool *pool);
uint32_t g3_thread_pool_size(const g3_thread_pool *pool);

/* Runs fn(arg, i, n) once for each i = 0..n-1 (i = 0 on the calling thread,
 * the others on their worker or, when it is late, on the calling thread). */
void g3_thread_pool_run(g3_thread_pool *pool, g3_task_fn fn, void *arg);
/* Shares the caller has run for late workers so far (a sign of busy cores). */
uint64_t g3_thread_pool_taken_over(const g3_thread_pool *pool);

/* Splits [0, n) into nth nearly equal parts; part ith is [*lo, *hi), with
 * boundaries rounded to multiples of `align` (the last part takes the rest). */
static inline void g3_split_range(uint64_t n, uint64_t align, uint32_t ith, uint32_t nth, uint64_t *lo,
                                  uint64_t *hi) {
    uint64_t units = (n + align - 1) / align;
    uint64_t a = units * ith / nth * align, b = units * (ith + 1) / nth * align;
    *lo = a < n ? a : n;
    *hi = b < n ? b : n;
}

#endif
