/* The fixed worker pool behind lt_parallel_for.
 *
 * One pool per process: width-1 worker threads plus the calling thread (worker 0). A call publishes a job
 * (fn, ctx, ntasks) and opens it, the workers and the caller claim task indices from an atomic counter, and
 * when every task is claimed the caller closes the job and waits only for the workers that joined it.
 * Joining: a worker raises `active`, then looks at `job_open`; if the job is closed it leaves again without
 * touching it. So a worker that is descheduled (another process holds the core) when a job is published
 * never makes the caller wait: the caller runs the tasks itself. (Before, every worker was counted in at
 * publish time and the caller waited for each to wake up, which cost milliseconds per small kernel on a busy
 * machine.) With `job_open` and `active` sequentially consistent, a worker that joins after the caller
 * closed the job sees it closed, and a worker that joined before is waited for.
 * Concurrency: the pool runs one job at a time. A caller that finds it busy, or a call made from inside a
 * task, runs its tasks inline on its own thread: no oversubscription, no deadlock, and because kernels
 * split work into tasks independent of who runs them, the same bits either way.
 * Workers spin briefly on the job generation before sleeping, so back-to-back small kernels (a training
 * step issues thousands) do not pay a futex wake-up each.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "lt_internal.h"

#define LT_MAX_THREADS 256
#define SPIN_ROUNDS 20000

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;   /* guards the fields below except atomics */
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;   /* workers wait for a new generation */
static pthread_cond_t idle = PTHREAD_COND_INITIALIZER;   /* the caller waits for workers to leave */
static pthread_t threads[LT_MAX_THREADS];
static _Atomic int width = 0;      /* pool size including the caller; 0 = not started */
static _Atomic int stopping = 0;
static atomic_flag busy = ATOMIC_FLAG_INIT;  /* held by the caller that owns the pool for one job */
static pthread_mutex_t resize_mu = PTHREAD_MUTEX_INITIALIZER;

/* The current job. */
static lt_task_fn job_fn;
static void *job_ctx;
static int64_t job_ntasks;
static _Atomic int64_t job_next;
static _Atomic uint64_t generation;
static _Atomic int active;        /* workers that joined the job and have not left */
static _Atomic int job_open;      /* 1 from publish until the caller has seen every task claimed */
static int job_cap;               /* workers with an index >= job_cap stay out of the job */
static uint64_t start_generation; /* written before workers are created, read by them at start */

static _Thread_local int in_task = 0;
/* The width lt_pool_width() last returned on this thread (0: never called). A kernel sizes per-worker scratch
 * by it; another thread may grow the pool before the kernel's lt_parallel_for, so the job then keeps workers
 * at or beyond this index out (they would index past the scratch: the heap corruption once seen in
 * ConcurrencyTest). Which workers run never changes the bits. */
static _Thread_local int width_cap = 0;

static void run_tasks(int worker) {
    int64_t t;
    while ((t = atomic_fetch_add_explicit(&job_next, 1, memory_order_relaxed)) < job_ntasks)
        job_fn(job_ctx, t, worker);
}

static void *worker_main(void *arg) {
    int id = (int)(intptr_t)arg;
    /* The generation current when this worker was created (under `busy`), not when it first runs: a job
     * published between pthread_create and now counts this worker in `active` and must be run. */
    uint64_t seen = start_generation;
    in_task = 1;
    for (;;) {
        uint64_t g;
        int spins = 0;
        while ((g = atomic_load_explicit(&generation, memory_order_acquire)) == seen && spins < SPIN_ROUNDS) {
            __builtin_ia32_pause();
            spins++;
        }
        if (g == seen) {
            pthread_mutex_lock(&mu);
            while ((g = atomic_load(&generation)) == seen && !stopping) pthread_cond_wait(&wake, &mu);
            int stop = stopping && g == seen;
            pthread_mutex_unlock(&mu);
            if (stop) return NULL;
        }
        seen = g;
        if (stopping) return NULL;
        /* Join; run tasks only if the job is still open (then the caller waits for us to leave). */
        atomic_fetch_add(&active, 1);
        if (atomic_load(&job_open) && id < job_cap) run_tasks(id);
        if (atomic_fetch_sub(&active, 1) == 1) {
            pthread_mutex_lock(&mu);
            pthread_cond_signal(&idle);
            pthread_mutex_unlock(&mu);
        }
    }
}

/* Stops and joins workers 1..n-1. Caller holds `busy` (no job in flight) and resize_mu. */
static void stop_workers(int n) {
    pthread_mutex_lock(&mu);
    stopping = 1;
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&mu);
    for (int i = 1; i < n; i++) pthread_join(threads[i], NULL);
    stopping = 0;
    width = 0;
}

/* Starts n-1 workers; `width` is published only once all exist, so a job never counts a worker that is
 * not there. Caller holds `busy` and resize_mu. On failure the pool runs with the caller alone. */
static lt_status start_workers(int n) {
    start_generation = atomic_load(&generation);
    for (int i = 1; i < n; i++) {
        if (pthread_create(&threads[i], NULL, worker_main, (void *)(intptr_t)i) != 0) {
            stop_workers(i);
            width = 1;
            return lt_fail(LT_ERR_INTERNAL, "thread pool: pthread_create failed for worker %d; running on 1 thread", i);
        }
    }
    width = n;
    return LT_OK;
}

static int default_width(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > LT_MAX_THREADS ? LT_MAX_THREADS : (int)n;
}

static void acquire_busy(void) {
    while (atomic_flag_test_and_set_explicit(&busy, memory_order_acquire)) sched_yield();
}

/* Starts the pool on first use; returns its width, never 0 (during a resize, the width once it is done). */
static int ensure_started(void) {
    int w = atomic_load(&width);
    if (__builtin_expect(w > 0, 1)) return w;
    pthread_mutex_lock(&resize_mu);   /* a resize holds it until the new width is set */
    if (width == 0) {
        acquire_busy();
        start_workers(default_width());
        atomic_flag_clear_explicit(&busy, memory_order_release);
    }
    w = width;
    pthread_mutex_unlock(&resize_mu);
    return w;
}

lt_status lt_set_num_threads(int32_t n) {
    if (n < 1 || n > LT_MAX_THREADS)
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_set_num_threads: n=%d outside [1, %d]", n, LT_MAX_THREADS);
    if (in_task) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_set_num_threads: called from inside a kernel task");
    pthread_mutex_lock(&resize_mu);
    acquire_busy(); /* waits for the job in flight, if any */
    if (width > 0) stop_workers(width);
    lt_status st = start_workers(n);
    atomic_flag_clear_explicit(&busy, memory_order_release);
    pthread_mutex_unlock(&resize_mu);
    return st;
}

int32_t lt_num_threads(void) {
    return ensure_started();
}

int lt_pool_width(void) {
    width_cap = ensure_started();
    return width_cap;
}

void lt_parallel_for(int64_t ntasks, lt_task_fn fn, void *ctx) {
    if (ntasks <= 0) return;
    ensure_started();
    if (ntasks == 1 || in_task || width == 1 ||
        atomic_flag_test_and_set_explicit(&busy, memory_order_acquire)) {
        int saved = in_task;
        in_task = 1;
        for (int64_t t = 0; t < ntasks; t++) fn(ctx, t, 0);
        in_task = saved;
        return;
    }
    /* Publish. Every worker wakes on a new generation; the ones beyond `ntasks` find no task at once. */
    pthread_mutex_lock(&mu);
    job_fn = fn;
    job_ctx = ctx;
    job_ntasks = ntasks;
    job_cap = width_cap > 0 ? width_cap : LT_MAX_THREADS;
    atomic_store(&job_next, 0);
    atomic_store(&job_open, 1);
    atomic_fetch_add_explicit(&generation, 1, memory_order_release);
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&mu);

    in_task = 1;
    run_tasks(0);
    in_task = 0;
    /* Every task is claimed: close the job, then wait for the workers that joined it to leave (spin first,
     * then sleep). Workers joining from now on see it closed. */
    atomic_store(&job_open, 0);
    for (int spins = 0; atomic_load_explicit(&active, memory_order_acquire) > 0 && spins < SPIN_ROUNDS; spins++)
        __builtin_ia32_pause();
    if (atomic_load(&active) > 0) {
        pthread_mutex_lock(&mu);
        while (atomic_load(&active) > 0) pthread_cond_wait(&idle, &mu);
        pthread_mutex_unlock(&mu);
    }
    atomic_flag_clear_explicit(&busy, memory_order_release);
}
