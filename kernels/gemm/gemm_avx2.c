/* AVX2+FMA GEMM: C = alpha * op(A) * op(B) + beta * C, row-major, strided batch (BLIS-style, Goto's algorithm).
 *
 *   A: (M, K) row stride lda, or (K, M) when trans_a     C[i][j] = alpha * sum_p op(A)[i][p] op(B)[p][j]
 *   B: (K, N) row stride ldb, or (N, K) when trans_b                + beta * C[i][j]   (beta == 0: C not read)
 *   C: (M, N) row stride ldc; batch entry t of X starts at X + t * stride_x. gemm.c validated all of it and
 *   handled k == 0 and alpha == 0.
 *
 * Blocking. K is cut into ceil(K / KC) near-equal k blocks, N into column blocks of at most NC, M into row
 * blocks of at most MC. Per k block, op(B) is packed into slivers of KC x NR (NR = 16 columns, one row of a
 * sliver = 64 contiguous bytes) and op(A) into micro-panels of MR x KC (MR = 6 rows), zero-padded at the
 * edges; packing reads either transpose (8x8 in-register transposes where rows are strided), so the
 * micro-kernel sees one layout. The micro-kernel keeps a 6 x 16 tile of C in 12 ymm accumulators and per k
 * step loads 2 vectors of B, broadcasts 6 values of A and issues 12 FMAs: 12 independent chains cover the 2
 * FMA pipes x ~4 cycles of latency, 15 of the 16 ymm registers are used (AVX2 has 16; AVX-512's 32 are off
 * limits), and 8 loads per 12 FMAs stay far below the load ports. Sizes for Zen 5 (48 KB L1D, 1 MB L2,
 * 32 MB L3): KC = 384 keeps a B sliver (24 KB) plus an A micro-panel (9 KB) in L1 and makes K = 384 one
 * block; MC = 192 keeps the A block (288 KB) in L2 while the slivers stream past; NC = 3072 and
 * PANEL_FLOATS (16 MB) bound the packed B kept for a group of k blocks. alpha and beta are applied when the
 * tile is stored (the first k block scales C by beta, later ones add); edge tiles go through a buffer.
 *
 * Threads. Tasks are (row block, range of slivers), a multiple of the pool size, and each task owns its C
 * block through all k blocks of the group: no barrier between k blocks, one lt_parallel_for per product for
 * the target shapes. B slivers are packed on first use by whichever task gets there (a compare-and-swap per
 * sliver; the others wait or find it done), A blocks by each task into its worker's slot. An element's sum
 * is always: the same k blocks in order, each by the same micro-kernel, so the bits do not depend on the
 * thread count, the task split or the path (small products and batches of them run whole on one thread).
 *
 * Checked by gemm_test.c against a double-precision product with the tolerance u * (8 sqrt(K) + 3) *
 * sum|alpha a b| + |beta c| (reasons there), 1 and 2 threads bit-identical, ASan/UBSan and TSan clean.
 *   build/gemm_test                 the checks (ctest runs them at LATENT_MAX_ISA=avx2 and =ref)
 *   build/gemm_test --bench         the two target shapes on 1 and 2 threads, % of lt_peak_fma measured then
 * Measured (2026-11-24, shared 2-core Zen 5, ~3.2-3.4 GHz; best / median of 15 calls, % of the lt_peak_fma
 * measured just before; other jobs share the machine, so medians move by ~5% between runs):
 *   1024 x 1024 x 1024        1 thread   101.4 / 100.3 GFLOP/s = 95.5 / 94.5% of 106.1
 *                             2 threads  187.0 / 182.7 GFLOP/s = 89.1 / 87.1% of 209.9
 *   (4096x384) x (384x1536)   1 thread   103.0 / 102.1 GFLOP/s = 97.4 / 96.5% of 105.8
 *                             2 threads  205.6 / 194.0 GFLOP/s = 96.4 / 90.9% of 213.3
 * Same minute, medians: oneDNN 3.12 matmul (PyTorch 2.13, ONEDNN_MAX_CPU_ISA=AVX2) 94.9 / 178.4 (1024^3,
 * 1 / 2 threads) and 91.9 / 170.6 (the other shape); MKL sgemm (torch.mm) 87.2 / 153.2 and 83.9 / 163.5.
 * (oneDNN left to pick AVX-512 here reaches ~180 / ~340: another ISA, outside this project's target.)
 * Tried: a 4x24 micro-kernel (12 accumulators, 3 B vectors): same speed within noise; 3x32 (17 live
 * vectors) spills: 48 GFLOP/s. KC 256 / 320 / 512: KC 256 lost ~10% on 2 threads when k blocks were
 * separated by barriers, the others within noise. MC 96 / 144 instead of 192 on 2 threads at 1024^3:
 * 5-8% slower (likely because a task's C block, revisited once per k block, then no longer fits in L2
 * beside its A block). Unroll 1 / 4 / 8 of the k loop: no difference. A barrier per k block (B packed in a parallel
 * phase, then the multiply): same on a quiet machine, slower when another job holds a core (every barrier
 * waits for the slowest thread). More tasks per thread (8, 12): no gain. Where it is weaker: small M with
 * large K and N (64 x 4096 x 4096: ~70% on 1 thread, ~60-70% on 2), where packing B reads 64 MB from DRAM
 * for only 128 flops per element; a software prefetch of the next sliver's rows did not help. Non-temporal
 * stores of C when it is written once (one k block, beta 0, C >= 16 MB: 4096x1536x384) to skip the read for
 * ownership (2026-12-04): gemm_test --bench 1 thread 2.7% slower, 2 threads 4% faster, and beside oneDNN in
 * `bench gemm` 0.97-1.00x either way, i.e. within noise; not kept. */
#include <immintrin.h>
#include <stdatomic.h>
#include <string.h>

#include "gemm.h"
#include "../common/transpose_avx2.h"

#ifndef GEMM_KC
#define GEMM_KC 384
#endif
#ifndef GEMM_MC
#define GEMM_MC 192
#endif
#ifndef GEMM_NC
#define GEMM_NC 3072
#endif
#ifndef GEMM_MR
#define GEMM_MR 6
#define GEMM_NR 16
#endif
#ifndef UNROLL
#define UNROLL 4
#endif
#define STR_(x) #x
#define PRAGMA_UNROLL(n) _Pragma(STR_(GCC unroll n))
#define MR GEMM_MR
#define NR GEMM_NR
#define KC GEMM_KC
#define MC GEMM_MC
#define NC GEMM_NC
#define SLACK 16 /* floats past a packed A block: pack_a's overlapping 8-wide stores spill up to 2 */
_Static_assert(MR <= 8 && NR % 8 == 0 && MC % MR == 0 && NC % NR == 0, "pack_a transposes 8 rows; NR in whole vectors");

#ifndef SERIAL_FLOPS
#define SERIAL_FLOPS (1 << 20)  /* below this (~80^3) one product runs on the calling thread: the pool costs more */
#endif
#define BATCH_FLOPS (1 << 23)   /* below this a batch is split by entries, each entry serial */
#ifndef TASKS_PER_THREAD
#define TASKS_PER_THREAD 4      /* fewer row blocks than this per thread: split the slivers too */
#endif
#ifndef PANEL_FLOATS
#define PANEL_FLOATS (4 << 20)  /* packed B kept for a group of k blocks: 16 MB */
#endif

static inline int64_t min64(int64_t x, int64_t y) { return x < y ? x : y; }
static inline int64_t rup(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* ---- packing ----------------------------------------------------------------------------------------- */


/* Pack op(A)[i0 .. i0+mc)[p0 .. p0+kc) into micro-panels of MR rows: panel q holds, for p = 0 .. kc-1, the
 * MR values op(A)[i0 + q*MR + r][p0 + p] contiguously (rows past mc are zero).  ap: (ceil(mc/MR), kc, MR). */
static void pack_a(const lt_gemm_desc *d, const float *a, int64_t i0, int64_t mc, int64_t p0, int64_t kc,
                   float *ap) {
    const int64_t lda = d->lda;
    for (int64_t r0 = 0; r0 < mc; r0 += MR, ap += MR * kc) {
        int64_t mr = min64(MR, mc - r0);
        if (d->trans_a) { /* A is (K, M): the MR values for one p are contiguous */
            const float *src = a + p0 * lda + i0 + r0;
            if (mr == MR) {
                for (int64_t p = 0; p < kc; p++)
                    for (int r = 0; r < MR; r++) ap[p * MR + r] = src[p * lda + r];
            } else {
                for (int64_t p = 0; p < kc; p++)
                    for (int64_t r = 0; r < MR; r++) ap[p * MR + r] = r < mr ? src[p * lda + r] : 0.0f;
            }
        } else { /* A is (M, K): transpose 8 p at a time from MR row streams */
            const float *src = a + (i0 + r0) * lda + p0;
            int64_t p = 0;
            if (mr == MR) {
                for (; p + 8 <= kc; p += 8) {
                    __m256 r[8];
                    for (int i = 0; i < 8; i++) r[i] = i < MR ? _mm256_loadu_ps(src + i * lda + p) : _mm256_setzero_ps();
                    tr8x8(r);
                    /* r[j] = column p+j; each store writes 8 floats where 6 belong: the next overwrites the 2. */
                    for (int j = 0; j < 8; j++) _mm256_storeu_ps(ap + (p + j) * MR, r[j]);
                }
            }
            for (; p < kc; p++)
                for (int64_t r = 0; r < MR; r++) ap[p * MR + r] = r < mr ? src[r * lda + p] : 0.0f;
        }
    }
}

/* Pack op(B)[p0 .. p0+kc)[j0 .. j0+nc) into slivers of NR columns: sliver s holds, for p = 0 .. kc-1, the NR
 * values op(B)[p0 + p][j0 + s*NR + j] contiguously (columns past nc are zero).  bp: (ceil(nc/NR), kc, NR). */
static void pack_b(const lt_gemm_desc *d, const float *b, int64_t p0, int64_t kc, int64_t j0, int64_t nc,
                   float *bp) {
    const int64_t ldb = d->ldb;
    for (int64_t s0 = 0; s0 < nc; s0 += NR, bp += NR * kc) {
        int64_t nr = min64(NR, nc - s0);
        if (!d->trans_b) { /* B is (K, N): a sliver row is 16 contiguous floats */
            const float *src = b + p0 * ldb + j0 + s0;
            if (nr == NR) {
                for (int64_t p = 0; p < kc; p++)
                    for (int v = 0; v < NR / 8; v++) _mm256_store_ps(bp + p * NR + 8 * v, _mm256_loadu_ps(src + p * ldb + 8 * v));
            } else {
                for (int64_t p = 0; p < kc; p++)
                    for (int64_t j = 0; j < NR; j++) bp[p * NR + j] = j < nr ? src[p * ldb + j] : 0.0f;
            }
        } else { /* B is (N, K): transpose 8x8 blocks from 16 row streams */
            const float *src = b + (j0 + s0) * ldb + p0;
            int64_t p = 0;
            if (nr == NR) {
                for (; p + 8 <= kc; p += 8) {
                    for (int h = 0; h < NR / 8; h++) {
                        __m256 r[8];
                        for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + (h * 8 + i) * ldb + p);
                        tr8x8(r);
                        for (int j = 0; j < 8; j++) _mm256_store_ps(bp + (p + j) * NR + h * 8, r[j]);
                    }
                }
            }
            for (; p < kc; p++)
                for (int64_t j = 0; j < NR; j++) bp[p * NR + j] = j < nr ? src[j * ldb + p] : 0.0f;
        }
    }
}

/* ---- micro-kernel -------------------------------------------------------------------------------------- */

/* C[0..MR)[0..NR) = alpha * sum_p a[p][0..MR) (x) b[p][0..NR) + beta * C; beta == 0 does not read C.
 * a: (kc, MR) packed, b: (kc, NR) packed (64-byte aligned), c: (MR, NR) with row stride ldc.
 * The loops over i and v have constant bounds and are fully unrolled, so acc lives in MR*NV registers. */
#define NV (NR / 8)
static void ukr(int64_t kc, const float *restrict a, const float *restrict b, float *c, int64_t ldc,
                float alpha, float beta) {
    __m256 acc[MR][NV];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) acc[i][v] = _mm256_setzero_ps();
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + NR - 1), _MM_HINT_T0);
    }
    PRAGMA_UNROLL(UNROLL)
    for (int64_t p = 0; p < kc; p++) {
        __m256 bv[NV];
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) bv[v] = _mm256_load_ps(b + 8 * v);
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            __m256 av = _mm256_broadcast_ss(a + i);
#pragma GCC unroll 8
            for (int v = 0; v < NV; v++) acc[i][v] = _mm256_fmadd_ps(av, bv[v], acc[i][v]);
        }
        a += MR;
        b += NR;
    }
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) {
            float *ci = c + i * ldc + 8 * v;
            __m256 y = _mm256_mul_ps(va, acc[i][v]);
            if (beta != 0.0f) y = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), y);
            _mm256_storeu_ps(ci, y);
        }
}

/* ---- drivers ---------------------------------------------------------------------------------------------- */

/* The K split depends on k alone (ceil(k / KC) near-equal blocks), and every C element is summed over those
 * blocks in order by the same micro-kernel, so the bits never depend on the thread count or task split. */
static inline int64_t k_blocks(int64_t k) { return (k + KC - 1) / KC; }
static inline int64_t k_lo(int64_t k, int64_t nkb, int64_t q) { return k * q / nkb; }

/* The blocking of one product (one batch entry) at one moment: which column block and group of k blocks
 * is packed in the panel, and how that is cut into tasks. */
typedef struct {
    const lt_gemm_desc *d;
    const float *a, *b; /* this batch entry */
    float *c;
    float *bp;          /* packed B, k blocks q0 .. q1 of columns jc .. jc+nc: block q at (k_lo(q) - k_lo(q0)) * ncpad */
    _Atomic int *ready; /* per (k block, sliver): 0 not packed, 1 being packed, 2 packed */
    int64_t nkb, ncpad, group;
    int64_t jc, nc, nsl, q0, q1;
    int64_t mb, n_ic, n_jp; /* MR-row groups; task grid: row blocks x sliver ranges */
    int width;              /* threads that may run tasks at once */
} plan;

/* C[0..mc)[0..nr) (+)= alpha * (A block) (B sliver), one MR x NR tile at a time down the block. Full tiles go
 * straight to C; edge tiles through a buffer and a scalar copy with the same arithmetic (alpha * acc, then
 * fma with beta * C), so an element's bits do not depend on where its tile falls. */
static void sliver_times_block(int64_t mc, int64_t nr, int64_t kc, const float *ap, const float *bs, float *c,
                               int64_t ldc, float alpha, float beta_eff) {
    for (int64_t i = 0; i < mc; i += MR) {
        const float *as = ap + i * kc;
        int64_t mr = min64(MR, mc - i);
        float *ct = c + i * ldc;
        if (mr == MR && nr == NR) {
            ukr(kc, as, bs, ct, ldc, alpha, beta_eff);
        } else {
            float buf[MR * NR] __attribute__((aligned(64)));
            ukr(kc, as, bs, buf, NR, 1.0f, 0.0f);
            for (int64_t r = 0; r < mr; r++)
                for (int64_t q = 0; q < nr; q++) {
                    float y = alpha * buf[r * NR + q];
                    ct[r * ldc + q] = beta_eff != 0.0f ? __builtin_fmaf(beta_eff, ct[r * ldc + q], y) : y;
                }
        }
    }
}

/* The packed B sliver (k block q, sliver s), packing it first if no task has. Whoever comes first packs (a
 * compare-and-swap claims it), a task that finds it being packed waits: packing is a copy, so the panel is
 * the same whoever makes it, B is packed once per column block without a barrier, and the task that packs
 * a sliver uses it at once, from L1. */
static const float *sliver(plan *pl, int64_t q, int64_t s, int64_t pc, int64_t kc) {
    float *bs = pl->bp + (pc - k_lo(pl->d->k, pl->nkb, pl->q0)) * pl->ncpad + s * NR * kc;
    _Atomic int *st = &pl->ready[(q - pl->q0) * pl->nsl + s];
    if (atomic_load_explicit(st, memory_order_acquire) != 2) {
        int expect = 0;
        if (atomic_compare_exchange_strong_explicit(st, &expect, 1, memory_order_acquire, memory_order_relaxed)) {
            pack_b(pl->d, pl->b, pc, kc, pl->jc + s * NR, min64(NR, pl->nc - s * NR), bs);
            atomic_store_explicit(st, 2, memory_order_release);
        } else {
            while (atomic_load_explicit(st, memory_order_acquire) != 2) _mm_pause();
        }
    }
    return bs;
}

/* Task t of the current column block and k group: a block of MR-row groups times a range of slivers. For each
 * k block it packs its A block into ap, then multiplies it into the slivers in order. The task owns its C
 * block for all the group's k blocks, so no barrier separates k blocks. */
static void run_task(plan *pl, int64_t t, float *ap) {
    const lt_gemm_desc *d = pl->d;
    int64_t ti = t / pl->n_jp, tj = t % pl->n_jp;
    int64_t i0 = pl->mb * ti / pl->n_ic * MR, i1 = min64(pl->mb * (ti + 1) / pl->n_ic * MR, d->m);
    int64_t s0 = pl->nsl * tj / pl->n_jp, s1 = pl->nsl * (tj + 1) / pl->n_jp;
    if (i1 <= i0 || s1 <= s0) return;
    /* Tasks run about in index order, so neighbouring row blocks are in flight together; each starts at a
     * different point of its slivers (the order does not change any sum), so they pack different slivers
     * instead of one waiting while the other packs the one both need (8% at 1024^3 on 2 threads). */
    int64_t off = (ti % pl->width) * (s1 - s0) / pl->width;
    for (int64_t q = pl->q0; q < pl->q1; q++) {
        int64_t pc = k_lo(d->k, pl->nkb, q), kc = k_lo(d->k, pl->nkb, q + 1) - pc;
        float beta_eff = q == 0 ? d->beta : 1.0f; /* later k blocks add to what the first wrote */
        pack_a(d, pl->a, i0, i1 - i0, pc, kc, ap);
        for (int64_t u = 0; u < s1 - s0; u++) {
            int64_t s = s0 + (off + u) % (s1 - s0);
            sliver_times_block(i1 - i0, min64(NR, pl->nc - s * NR), kc, ap, sliver(pl, q, s, pc, kc),
                               pl->c + i0 * d->ldc + pl->jc + s * NR, d->ldc, d->alpha, beta_eff);
        }
    }
}

/* Column block jc: its width and the task grid. Row blocks of at most MC rows, a multiple of the pool size so
 * equal tasks end together; if that gives too few tasks, the slivers are split too (each such task repacks
 * its A block: cheap when M is that small). Serial runs take row blocks only. */
static void plan_columns(plan *pl, int64_t jc, int width, int serial) {
    pl->jc = jc;
    pl->width = width;
    pl->nc = min64(pl->ncpad, pl->d->n - jc);
    pl->nsl = (pl->nc + NR - 1) / NR;
    pl->n_ic = (pl->mb + MC / MR - 1) / (MC / MR);
    pl->n_jp = 1;
    if (serial) return;
    if (pl->n_ic > width) pl->n_ic = rup(pl->n_ic, width);
    int64_t want = TASKS_PER_THREAD * (int64_t)width;
    if (pl->n_ic < want) pl->n_jp = min64((want + pl->n_ic - 1) / pl->n_ic, (pl->nsl + 3) / 4);
    if (pl->n_jp < 1) pl->n_jp = 1;
}

static void plan_group(plan *pl, int64_t q0) {
    pl->q0 = q0;
    pl->q1 = min64(q0 + pl->group, pl->nkb);
    for (int64_t i = 0; i < (pl->q1 - pl->q0) * pl->nsl; i++) atomic_init(&pl->ready[i], 0);
}

typedef struct {
    const lt_gemm_desc *d;
    float *scratch;  /* nw per-worker slots of `slot` floats (then the shared panel and flags in intra mode) */
    int64_t slot, ap_size, bp_size, group;
    int nw;
    _Atomic int oom;
    plan pl;         /* intra mode: the product being computed */
} gemm_ctx;

/* Per-worker scratch; a worker index past what was sized at entry (pool resized meanwhile by another
 * thread) gets a private allocation, freed by the caller through *own. */
static float *slot_of(gemm_ctx *x, int worker, float **own) {
    *own = NULL;
    if (worker < x->nw) return x->scratch + worker * x->slot;
    *own = lt_alloc((size_t)x->slot * sizeof(float));
    if (!*own) atomic_store(&x->oom, 1);
    return *own;
}

/* Batch mode (small products, batches of them, or a pool of one): task t = batch entry t, all of it on one
 * thread in the worker's slot [A block | B panel | flags]. */
static void batch_task(void *p, int64_t t, int worker) {
    gemm_ctx *x = p;
    float *own, *s = slot_of(x, worker, &own);
    if (!s) return;
    const lt_gemm_desc *d = x->d;
    plan pl = x->pl;
    pl.a += t * d->stride_a;
    pl.b += t * d->stride_b;
    pl.c += t * d->stride_c;
    pl.bp = s + x->ap_size;
    pl.ready = (_Atomic int *)(s + x->ap_size + x->bp_size);
    pl.group = x->group;
    pl.mb = (d->m + MR - 1) / MR;
    for (int64_t jc = 0; jc < d->n; jc += pl.ncpad) {
        plan_columns(&pl, jc, 1, 1);
        for (int64_t q0 = 0; q0 < pl.nkb; q0 += pl.group) {
            plan_group(&pl, q0);
            for (int64_t u = 0; u < pl.n_ic * pl.n_jp; u++) run_task(&pl, u, s);
        }
    }
    lt_free(own);
}

/* Intra mode: one product on the pool, task = run_task on the shared plan. */
static void intra_task(void *p, int64_t t, int worker) {
    gemm_ctx *x = p;
    float *own, *ap = slot_of(x, worker, &own);
    if (!ap) return;
    run_task(&x->pl, t, ap);
    lt_free(own);
}

/* Scratch kept between calls. Fresh pages cost a fault each (~10 us in this VM: a 1024^3 product on one
 * core took 25 ms instead of 21 while malloc kept handing back new pages), so the last buffer is parked in
 * a one-slot cache and the next call takes it if it is large enough. Calls from several threads at once
 * park up to PARKED_SLOTS buffers (conv tiles call GEMM from each worker). The block sizes bound each: at most PANEL_FLOATS + workers * MC * KC floats in
 * intra mode, workers * (MC * KC + KC * NC) in batch mode (~21 MB on 2 workers). Its size is kept in its
 * first 64 bytes. */
#define PARKED_SLOTS 4   /* several: convolutions call GEMM from every worker at once (one call per tile) */
static _Atomic(float *) parked[PARKED_SLOTS];

static float *scratch_get(size_t floats) {
#ifndef __SANITIZE_ADDRESS__ /* under ASan every call gets an exact-size buffer, so an overrun is caught */
    for (int i = 0; i < PARKED_SLOTS; i++) {
        float *p = atomic_exchange(&parked[i], NULL);
        if (!p) continue;
        if (*(size_t *)p >= floats) return p + 16;
        lt_free(p);   /* too small for this call: drop it, a large enough one replaces it below */
    }
#endif
    float *p = lt_alloc((floats + 16) * sizeof(float));
    if (!p) return NULL;
    *(size_t *)p = floats;
    return p + 16;
}

static void scratch_put(float *s) {
    if (!s) return;
    float *p = s - 16;
    for (int i = 0; i < PARKED_SLOTS; i++) {
        float *none = NULL;
        if (atomic_compare_exchange_strong(&parked[i], &none, p)) return;
    }
    lt_free(p);
}

lt_status gemm_avx2(const lt_gemm_desc *d, const float *a, const float *b, float *c) {
    gemm_ctx x;
    memset(&x, 0, sizeof x);
    x.d = d;
    x.pl.d = d; x.pl.a = a; x.pl.b = b; x.pl.c = c;
    double flops = 2.0 * (double)d->m * (double)d->n * (double)d->k;
    int width = lt_pool_width();
    int batch_mode = width == 1 || flops < SERIAL_FLOPS || (d->batch > 1 && flops < BATCH_FLOPS);
    int64_t nkb = k_blocks(d->k), kcmax = (d->k + nkb - 1) / nkb;
    /* Column blocks: ceil(n / NC) of them, equally wide (in slivers), so the last is not a sliver of work. */
    int64_t njc = (d->n + NC - 1) / NC, ncpad = rup((d->n + njc - 1) / njc, NR);
    /* k blocks per group: as many as keep the packed panel within PANEL_FLOATS. */
    int64_t group = PANEL_FLOATS / (kcmax * ncpad);
    group = group < 1 ? 1 : group > nkb ? nkb : group;
    x.pl.nkb = nkb; x.pl.ncpad = ncpad; x.pl.group = x.group = group;
    x.ap_size = rup(rup(min64(MC, d->m), MR) * kcmax + SLACK, 16); /* keeps what follows 64-byte aligned */
    x.bp_size = rup(group * kcmax * ncpad, 16);
    int64_t flags = rup(group * (ncpad / NR), 16);
    if (batch_mode) {
        /* One thread per product: nothing to gain from packing more than one k block ahead. Any worker may
         * claim a task, so every worker index gets a slot (one when the single task runs inline). */
        x.group = 1;
        x.bp_size = rup(kcmax * ncpad, 16);
        flags = rup(ncpad / NR, 16);
        x.nw = d->batch == 1 ? 1 : width;
        x.slot = x.ap_size + x.bp_size + flags;
        x.scratch = scratch_get((size_t)(x.nw * x.slot));
        if (!x.scratch) goto oom;
        lt_parallel_for(d->batch, batch_task, &x);
    } else {
        x.nw = width;
        x.slot = x.ap_size;
        x.scratch = scratch_get((size_t)(x.nw * x.slot + x.bp_size + flags));
        if (!x.scratch) goto oom;
        x.pl.bp = x.scratch + x.nw * x.slot;
        x.pl.ready = (_Atomic int *)(x.pl.bp + x.bp_size);
        x.pl.mb = (d->m + MR - 1) / MR;
        for (int64_t t = 0; t < d->batch; t++) {
            x.pl.a = a + t * d->stride_a; x.pl.b = b + t * d->stride_b; x.pl.c = c + t * d->stride_c;
            for (int64_t jc = 0; jc < d->n; jc += ncpad) {
                plan_columns(&x.pl, jc, width, 0);
                for (int64_t q0 = 0; q0 < nkb; q0 += group) {
                    plan_group(&x.pl, q0);
                    lt_parallel_for(x.pl.n_ic * x.pl.n_jp, intra_task, &x);
                }
            }
        }
    }
    scratch_put(x.scratch);
    if (atomic_load(&x.oom)) goto oom;
    return LT_OK;
oom:
    return lt_fail(LT_ERR_OUT_OF_MEMORY, "lt_gemm: scratch for m=%lld n=%lld k=%lld (KC=%d MC=%d NC=%d)",
                   (long long)d->m, (long long)d->n, (long long)d->k, KC, MC, NC);
}
