/* The thread harness shared by the ceiling loops (peak_avx2.c runs it; the AVX-512 and AVX512_BF16 chain
 * loops live in peak_avx512.c and peak_avx512_bf16.c, the only files compiled with those flags). Not exported. */
#ifndef LT_PEAK_H
#define LT_PEAK_H

#include "lt_internal.h"

typedef struct {
    int64_t iters;
    void *bar;          /* pthread_barrier_t *, taken by peak_barrier_wait */
    double t0, t1;
    float sink;
    float *a, *b, *c;
    int64_t lo, hi;
    int reps;
    double best;
} peak_arg;

typedef void *(*peak_thread_fn)(void *);

LT_HIDDEN double peak_now_s(void);
LT_HIDDEN void peak_barrier_wait(peak_arg *a);
/* Starts `threads` threads running fn(&args[i]) together (args[i].bar set), joins them. */
LT_HIDDEN lt_status peak_run_threads(int32_t threads, peak_thread_fn fn, peak_arg *args);
/* fn times `iters` rounds of independent chains between peak_barrier_wait and t0 / t1; GFLOP/s over all. */
LT_HIDDEN lt_status peak_chains(int32_t threads, int64_t iters, peak_thread_fn fn, double flops_per_iter, double *gflops);

/* 12 independent zmm vfmadd231ps chains per round (as the ymm loop): 12 x 16 lanes x 2 flops (peak_avx512.c). */
#define PEAK_AVX512_FLOPS (12.0 * 16 * 2)
LT_HIDDEN void *peak_fma_avx512_worker(void *p);
/* 12 independent zmm vdpbf16ps chains per round: each does 16 lanes x 2 bf16 pairs x (mul + add) = 64 flops
 * (peak_avx512_bf16.c). */
#define PEAK_BF16_FLOPS (12.0 * 64)
LT_HIDDEN void *peak_bf16_worker(void *p);

#endif
