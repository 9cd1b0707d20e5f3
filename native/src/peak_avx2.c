/* Machine ceilings measured in the same run as the kernels they grade (the peak moves between runs).
 *
 * FMA peak: 12 independent ymm accumulators per thread (FMA latency 4 x 2 ports = 8 in flight at least,
 * 12 leaves slack), 8 lanes x 2 flops per vfmadd. Triad: STREAM's a[i] = b[i] + s*c[i], 3 arrays counted.
 * Threads here are plain pthreads started for the measurement, one per requested thread, so the figure
 * does not depend on the kernel pool's size. The AVX-512 ceilings (lt_peak_fma_isa at avx512, lt_peak_bf16)
 * run their loops from peak_avx512.c / peak_avx512_bf16.c through the same thread harness (peak.h). */
#include <immintrin.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "peak.h"

double peak_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
#define now_s peak_now_s

void peak_barrier_wait(peak_arg *a) { pthread_barrier_wait((pthread_barrier_t *)a->bar); }

static void *fma_worker(void *p) {
    peak_arg *a = p;
    __m256 acc[12];
    __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) acc[i] = _mm256_set1_ps((float)i);
    peak_barrier_wait(a);
    a->t0 = now_s();
    for (int64_t it = 0; it < a->iters; it++) {
        /* Unrolled by hand so the compiler keeps 12 chains in registers. */
        acc[0] = _mm256_fmadd_ps(acc[0], x, y); acc[1] = _mm256_fmadd_ps(acc[1], x, y);
        acc[2] = _mm256_fmadd_ps(acc[2], x, y); acc[3] = _mm256_fmadd_ps(acc[3], x, y);
        acc[4] = _mm256_fmadd_ps(acc[4], x, y); acc[5] = _mm256_fmadd_ps(acc[5], x, y);
        acc[6] = _mm256_fmadd_ps(acc[6], x, y); acc[7] = _mm256_fmadd_ps(acc[7], x, y);
        acc[8] = _mm256_fmadd_ps(acc[8], x, y); acc[9] = _mm256_fmadd_ps(acc[9], x, y);
        acc[10] = _mm256_fmadd_ps(acc[10], x, y); acc[11] = _mm256_fmadd_ps(acc[11], x, y);
    }
    a->t1 = now_s();
    __m256 s = acc[0];
    for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, acc[i]);
    float out[8];
    _mm256_storeu_ps(out, s);
    a->sink = out[0];
    return NULL;
}

/* Threads wait at a gate until all of them exist, so a failed pthread_create never strands the others
 * at a barrier sized for the full count. */
static _Atomic int gate;
typedef struct { peak_thread_fn fn; peak_arg *arg; } gated;
static void *gated_main(void *p) {
    gated *g = p;
    int v;
    while ((v = __atomic_load_n(&gate, __ATOMIC_ACQUIRE)) == 0) _mm_pause();
    return v < 0 ? NULL : g->fn(g->arg);
}

static pthread_mutex_t peak_mu = PTHREAD_MUTEX_INITIALIZER; /* one measurement at a time: shared gate */

lt_status peak_run_threads(int32_t threads, peak_thread_fn fn, peak_arg *args) {
    pthread_mutex_lock(&peak_mu);
    pthread_t tid[64];
    gated g[64];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)threads);
    __atomic_store_n(&gate, 0, __ATOMIC_RELEASE);
    int started = 0;
    for (int i = 0; i < threads; i++) {
        args[i].bar = &bar;
        g[i].fn = fn;
        g[i].arg = &args[i];
        if (pthread_create(&tid[i], NULL, gated_main, &g[i]) != 0) break;
        started++;
    }
    __atomic_store_n(&gate, started == threads ? 1 : -1, __ATOMIC_RELEASE);
    for (int i = 0; i < started; i++) pthread_join(tid[i], NULL);
    pthread_barrier_destroy(&bar);
    pthread_mutex_unlock(&peak_mu);
    if (started < threads) return lt_fail(LT_ERR_INTERNAL, "peak: could not start %d threads", threads);
    return LT_OK;
}

/* Runs `fn` (a chain loop of `flops_per_iter` flops per round) on `threads` threads for `iters` rounds and
 * writes GFLOP/s over the span from the first thread's start to the last one's end. */
lt_status peak_chains(int32_t threads, int64_t iters, peak_thread_fn fn, double flops_per_iter, double *gflops) {
    peak_arg args[64];
    memset(args, 0, sizeof args);
    for (int i = 0; i < threads; i++) args[i].iters = iters;
    lt_status st = peak_run_threads(threads, fn, args);
    if (st) return st;
    double t0 = args[0].t0, t1 = args[0].t1;
    for (int i = 1; i < threads; i++) {
        if (args[i].t0 < t0) t0 = args[i].t0;
        if (args[i].t1 > t1) t1 = args[i].t1;
    }
    *gflops = (double)threads * iters * flops_per_iter / (t1 - t0) / 1e9;
    return LT_OK;
}

#define PEAK_ARGS_OK(name) \
    if (threads < 1 || threads > 64 || iters < 1 || !gflops) \
        return lt_fail(LT_ERR_INVALID_ARGUMENT, name ": threads=%d (1..64), iters=%lld (>0), gflops=%p", threads, \
                       (long long)iters, (void *)gflops)

lt_status lt_peak_fma(int32_t threads, int64_t iters, double *gflops) {
    PEAK_ARGS_OK("lt_peak_fma");
    if (lt_isa_level() < LT_ISA_AVX2) return lt_fail(LT_ERR_UNSUPPORTED, "lt_peak_fma: needs ISA avx2");
    return peak_chains(threads, iters, fma_worker, 12 * 16, gflops);
}

lt_status lt_peak_fma_isa(int32_t isa, int32_t threads, int64_t iters, double *gflops) {
    PEAK_ARGS_OK("lt_peak_fma_isa");
    if (isa == LT_ISA_AVX2) return lt_peak_fma(threads, iters, gflops);
    if (isa != LT_ISA_AVX512)
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_peak_fma_isa: isa=%d must be %d (avx2) or %d (avx512)", isa,
                       LT_ISA_AVX2, LT_ISA_AVX512);
    if (lt_isa_level() < LT_ISA_AVX512)
        return lt_fail(LT_ERR_UNSUPPORTED, "lt_peak_fma_isa: the AVX-512 FMA ceiling needs ISA avx512 (level in use: %s)",
                       lt_isa_level() == LT_ISA_AVX2 ? "avx2" : "ref");
    return peak_chains(threads, iters, peak_fma_avx512_worker, PEAK_AVX512_FLOPS, gflops);
}

lt_status lt_peak_bf16(int32_t threads, int64_t iters, double *gflops) {
    PEAK_ARGS_OK("lt_peak_bf16");
    if (lt_isa_level() < LT_ISA_AVX512 || !lt_cpu_bf16())
        return lt_fail(LT_ERR_UNSUPPORTED, "lt_peak_bf16: the bf16 dot-product ceiling needs AVX512_BF16 at ISA avx512 "
                       "(level in use: %s, AVX512_BF16 %s)", lt_isa_level() == LT_ISA_AVX512 ? "avx512" :
                       lt_isa_level() == LT_ISA_AVX2 ? "avx2" : "ref", lt_cpu_bf16() ? "present" : "absent");
    return peak_chains(threads, iters, peak_bf16_worker, PEAK_BF16_FLOPS, gflops);
}

static void *triad_worker(void *p) {
    peak_arg *a = p;
    float *x = a->a, *y = a->b, *z = a->c;
    const float s = 3.0f;
    for (int64_t i = a->lo; i < a->hi; i++) { x[i] = 0; y[i] = 1; z[i] = 2; } /* first touch */
    a->best = 1e30;
    for (int r = 0; r < a->reps; r++) {
        peak_barrier_wait(a);
        double t0 = now_s();
        __m256 vs = _mm256_set1_ps(s);
        int64_t i = a->lo;
        for (; i + 8 <= a->hi; i += 8)
            _mm256_stream_ps(x + i, _mm256_fmadd_ps(vs, _mm256_loadu_ps(z + i), _mm256_loadu_ps(y + i)));
        for (; i < a->hi; i++) x[i] = y[i] + s * z[i];
        _mm_sfence();
        peak_barrier_wait(a);
        double t = now_s() - t0;
        if (t < a->best) a->best = t;
    }
    return NULL;
}

lt_status lt_peak_triad(int32_t threads, int64_t n, int32_t reps, double *gbs) {
    if (threads < 1 || threads > 64 || n < 1024 || reps < 1 || !gbs)
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_peak_triad: threads=%d (1..64), n=%lld (>=1024), reps=%d",
                       threads, (long long)n, reps);
    if (lt_isa_level() < LT_ISA_AVX2) return lt_fail(LT_ERR_UNSUPPORTED, "lt_peak_triad: needs ISA avx2");
    float *a = lt_alloc(n * 4), *b = lt_alloc(n * 4), *c = lt_alloc(n * 4);
    if (!a || !b || !c) {
        lt_free(a); lt_free(b); lt_free(c);
        return lt_fail(LT_ERR_OUT_OF_MEMORY, "lt_peak_triad: 3 x %lld floats", (long long)n);
    }
    peak_arg args[64];
    memset(args, 0, sizeof args);
    int64_t chunk = (n / threads + 15) & ~(int64_t)15; /* 64-byte aligned slices */
    for (int i = 0; i < threads; i++) {
        args[i].a = a; args[i].b = b; args[i].c = c; args[i].reps = reps;
        args[i].lo = i * chunk < n ? i * chunk : n;
        args[i].hi = (i + 1) * chunk < n ? (i + 1) * chunk : n;
    }
    lt_status st = peak_run_threads(threads, triad_worker, args);
    lt_free(a); lt_free(b); lt_free(c);
    if (st) return st;
    double worst_best = 0; /* the slowest thread's best rep bounds the joint time */
    for (int i = 0; i < threads; i++) if (args[i].best > worst_best) worst_best = args[i].best;
    *gbs = 3.0 * 4.0 * (double)n / worst_best / 1e9;
    return LT_OK;
}
