#include "base/thread_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* How long an idle worker spins before it sleeps: long enough to span the
 * gaps between the tasks of one token (and between tokens), short enough
 * that an idle engine does not burn a core. */
#define SPIN_NS 300000

struct g3_thread_pool {
    uint32_t n;
    pthread_t *threads;
    /* the current task; written by the caller before the generation bump */
    g3_task_fn fn;
    void *arg;
    /* own cache lines: workers poll these. 64-bit generations never wrap
     * (a 32-bit one would, after some days of serving, and a share's stale
     * claim could then look current). */
    _Alignas(64) atomic_uint_fast64_t generation;
    _Alignas(64) atomic_uint n_done;
    _Alignas(64) atomic_uint n_sleeping;
    /* [n]: the generation share i was last claimed for, by its worker or by
     * the caller (slot 0 unused) */
    atomic_uint_fast64_t *claimed;
    uint64_t taken_over; /* shares the caller ran for a late worker (the caller's only) */
    atomic_bool stop;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

typedef struct worker_arg {
    g3_thread_pool *pool;
    uint32_t ith;
} worker_arg;

/* Waits until the generation differs from `seen`; returns the new one. */
static uint64_t wait_generation(g3_thread_pool *p, uint64_t seen) {
    uint64_t start = 0;
    for (uint32_t i = 1;; i++) {
        uint64_t g = atomic_load_explicit(&p->generation, memory_order_acquire);
        if (g != seen) return g;
        cpu_relax();
        if ((i & 63) == 0) { /* the clock is a vDSO call: look now and then */
            uint64_t t = now_ns();
            if (!start) start = t;
            else if (t - start > SPIN_NS) break;
        }
    }
    /* Dekker with the caller: we announce sleeping, then re-check the
     * generation; the caller bumps it, then checks for sleepers (both
     * seq_cst), so one of us sees the other. */
    pthread_mutex_lock(&p->mutex);
    atomic_fetch_add(&p->n_sleeping, 1);
    uint64_t g;
    while ((g = atomic_load(&p->generation)) == seen) pthread_cond_wait(&p->wake, &p->mutex);
    atomic_fetch_sub(&p->n_sleeping, 1);
    pthread_mutex_unlock(&p->mutex);
    return g;
}

static void *worker_main(void *varg) {
    worker_arg *wa = varg;
    g3_thread_pool *p = wa->pool;
    const uint32_t ith = wa->ith;
    free(wa);
    uint64_t seen = 0;
    for (;;) {
        seen = wait_generation(p, seen);
        if (atomic_load(&p->stop)) break;
        /* Claim this share of the task. If the caller has claimed it (we
         * were late) for this generation or a later one, it is not ours:
         * its arg may be gone. Claims only move forward: with a stale `seen`
         * (we slept through whole tasks) a claim would otherwise undo the
         * caller's for the current task and run its share twice. */
        uint_fast64_t cur = atomic_load(&p->claimed[ith]);
        if (cur >= seen || !atomic_compare_exchange_strong(&p->claimed[ith], &cur, seen)) continue;
        p->fn(p->arg, ith, p->n);
        atomic_fetch_add_explicit(&p->n_done, 1, memory_order_release);
    }
    return NULL;
}

int g3_thread_pool_new(uint32_t n_threads, g3_thread_pool **out, g3_error *err) {
    *out = NULL;
    if (n_threads == 0) return g3_fail(err, "a thread pool needs at least one thread");
    g3_thread_pool *p = calloc(1, sizeof *p);
    if (!p) return g3_fail(err, "out of memory for the thread pool");
    p->n = n_threads;
    atomic_init(&p->generation, 0);
    atomic_init(&p->n_done, 0);
    atomic_init(&p->n_sleeping, 0);
    atomic_init(&p->stop, false);
    pthread_mutex_init(&p->mutex, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->threads = calloc(n_threads, sizeof *p->threads);
    p->claimed = calloc(n_threads, sizeof *p->claimed);
    for (uint32_t i = 0; p->claimed && i < n_threads; i++) atomic_init(&p->claimed[i], 0);
    if (!p->threads || !p->claimed) {
        g3_thread_pool_free(p);
        return g3_fail(err, "out of memory for the thread pool");
    }
    for (uint32_t i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        int rc = wa ? 0 : -1;
        if (wa) {
            wa->pool = p;
            wa->ith = i;
            rc = pthread_create(&p->threads[i], NULL, worker_main, wa);
            if (rc) free(wa);
        }
        if (rc) {
            p->n = i; /* only these exist: free joins them */
            g3_thread_pool_free(p);
            return g3_fail(err, "cannot start worker thread %u of %u: %s", i, n_threads,
                           rc > 0 ? strerror(rc) : "out of memory");
        }
    }
    *out = p;
    return 0;
}

static void wake_sleepers(g3_thread_pool *p) {
    if (atomic_load(&p->n_sleeping) == 0) return;
    pthread_mutex_lock(&p->mutex);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mutex);
}

void g3_thread_pool_free(g3_thread_pool *p) {
    if (!p) return;
    if (p->threads) {
        atomic_store(&p->stop, true);
        atomic_fetch_add(&p->generation, 1);
        wake_sleepers(p);
        for (uint32_t i = 1; i < p->n; i++) pthread_join(p->threads[i], NULL);
    }
    pthread_mutex_destroy(&p->mutex);
    pthread_cond_destroy(&p->wake);
    free(p->threads);
    free(p->claimed);
    free(p);
}

uint32_t g3_thread_pool_size(const g3_thread_pool *p) { return p->n; }

uint64_t g3_thread_pool_taken_over(const g3_thread_pool *p) { return p->taken_over; }

void g3_thread_pool_run(g3_thread_pool *p, g3_task_fn fn, void *arg) {
    if (p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->n_done, 0, memory_order_relaxed);
    /* seq_cst: publishes fn/arg, pairs with wait_generation */
    const uint64_t g = atomic_fetch_add(&p->generation, 1) + 1;
    wake_sleepers(p);
    fn(arg, 0, p->n);
    /* A worker that has not claimed its share by now lost its core (another
     * process has it) or is still waking up: run the share here instead of
     * waiting a scheduler slice for it, a hundred times a token. Shares are
     * independent (tasks split their work by ith, or steal), so who runs
     * one does not matter. */
    unsigned by_workers = 0;
    for (uint32_t i = 1; i < p->n; i++) {
        uint_fast64_t cur = atomic_load(&p->claimed[i]);
        if (cur != g && atomic_compare_exchange_strong(&p->claimed[i], &cur, g)) {
            fn(arg, i, p->n);
            p->taken_over++;
        } else {
            by_workers++;
        }
    }
    for (unsigned spins = 0; atomic_load_explicit(&p->n_done, memory_order_acquire) != by_workers; spins++) {
        cpu_relax();
        /* a worker that lost its core mid-share: let it run */
        if ((spins & 0xfff) == 0xfff) sched_yield();
    }
}
