/* AVX2+FMA GEMM: C = alpha * op(A) * op(B) + beta * C (row-major, strided batch; latent.h has the layouts).
 * HEADER TBD after tuning. */
#include <immintrin.h>
#include <stdatomic.h>
#include <string.h>

#include "gemm.h"

#ifndef GEMM_KC
#define GEMM_KC 384
#endif
#ifndef GEMM_MC
#define GEMM_MC 144
#endif
#ifndef GEMM_NC
#define GEMM_NC 3072
#endif
#define MR 6
#define NR 16
#define KC GEMM_KC
#define MC GEMM_MC
#define NC GEMM_NC
#define SLACK 16 /* floats past a packed A block: pack_a's overlapping 8-wide stores spill up to 2 */

#define SERIAL_FLOPS (1 << 21)  /* below this one product runs on the calling thread: the pool costs more */
#define BATCH_FLOPS (1 << 23)   /* below this a batch is split by entries, each entry serial */

static inline int64_t min64(int64_t x, int64_t y) { return x < y ? x : y; }
static inline int64_t rup(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* ---- packing ----------------------------------------------------------------------------------------- */

/* In-register 8x8 transpose: r[i][j] -> r[j][i]. */
static inline void tr8x8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20); r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20); r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31); r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31); r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

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
                for (int64_t p = 0; p < kc; p++) {
                    _mm_storeu_ps(ap + p * MR, _mm_loadu_ps(src + p * lda));
                    _mm_storel_pi((__m64 *)(ap + p * MR + 4), _mm_loadl_pi(_mm_setzero_ps(), (const __m64 *)(src + p * lda + 4)));
                }
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
                    for (int i = 0; i < MR; i++) r[i] = _mm256_loadu_ps(src + i * lda + p);
                    r[6] = r[7] = _mm256_setzero_ps();
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
                for (int64_t p = 0; p < kc; p++) {
                    _mm256_store_ps(bp + p * NR, _mm256_loadu_ps(src + p * ldb));
                    _mm256_store_ps(bp + p * NR + 8, _mm256_loadu_ps(src + p * ldb + 8));
                }
            } else {
                for (int64_t p = 0; p < kc; p++)
                    for (int64_t j = 0; j < NR; j++) bp[p * NR + j] = j < nr ? src[p * ldb + j] : 0.0f;
            }
        } else { /* B is (N, K): transpose 8x8 blocks from 16 row streams */
            const float *src = b + (j0 + s0) * ldb + p0;
            int64_t p = 0;
            if (nr == NR) {
                for (; p + 8 <= kc; p += 8) {
                    for (int h = 0; h < 2; h++) {
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

/* C[0..6)[0..16) = alpha * sum_p a[p][0..6) (x) b[p][0..16) + beta * C; beta == 0 does not read C.
 * a: (kc, MR) packed, b: (kc, NR) packed (64-byte aligned), c: (6, 16) with row stride ldc. */
static void ukr_6x16(int64_t kc, const float *restrict a, const float *restrict b, float *c, int64_t ldc,
                     float alpha, float beta) {
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(),
           c11 = _mm256_setzero_ps(), c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(),
           c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps(), c40 = _mm256_setzero_ps(),
           c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    for (int i = 0; i < MR; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 15), _MM_HINT_T0);
    }
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8), av;
        av = _mm256_broadcast_ss(a + 0); c00 = _mm256_fmadd_ps(av, b0, c00); c01 = _mm256_fmadd_ps(av, b1, c01);
        av = _mm256_broadcast_ss(a + 1); c10 = _mm256_fmadd_ps(av, b0, c10); c11 = _mm256_fmadd_ps(av, b1, c11);
        av = _mm256_broadcast_ss(a + 2); c20 = _mm256_fmadd_ps(av, b0, c20); c21 = _mm256_fmadd_ps(av, b1, c21);
        av = _mm256_broadcast_ss(a + 3); c30 = _mm256_fmadd_ps(av, b0, c30); c31 = _mm256_fmadd_ps(av, b1, c31);
        av = _mm256_broadcast_ss(a + 4); c40 = _mm256_fmadd_ps(av, b0, c40); c41 = _mm256_fmadd_ps(av, b1, c41);
        av = _mm256_broadcast_ss(a + 5); c50 = _mm256_fmadd_ps(av, b0, c50); c51 = _mm256_fmadd_ps(av, b1, c51);
        a += MR;
        b += NR;
    }
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#define ST(i, x0, x1)                                                                             \
    do {                                                                                          \
        float *ci = c + (i) * ldc;                                                                \
        __m256 y0 = _mm256_mul_ps(va, x0), y1 = _mm256_mul_ps(va, x1);                            \
        if (beta != 0.0f) {                                                                       \
            y0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), y0);                                    \
            y1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8), y1);                                \
        }                                                                                         \
        _mm256_storeu_ps(ci, y0);                                                                 \
        _mm256_storeu_ps(ci + 8, y1);                                                             \
    } while (0)
    ST(0, c00, c01); ST(1, c10, c11); ST(2, c20, c21); ST(3, c30, c31); ST(4, c40, c41); ST(5, c50, c51);
#undef ST
}

/* ---- macro-kernel: one packed A block against a range of packed B slivers ------------------------------ */

/* C[0..mc)[0..nc) (+)= alpha * Ap Bp, tiles of MR x NR. Full tiles go straight to C; edge tiles go through a
 * 6x16 buffer and a scalar copy with the same arithmetic (alpha * acc, then fma with beta * C), so an
 * element's bits do not depend on where its tile falls. beta_eff is beta for the first k block, 1 after. */
static void macro(int64_t mc, int64_t nc, int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc,
                  float alpha, float beta_eff) {
    for (int64_t j = 0; j < nc; j += NR) {
        const float *bs = bp + j * kc; /* sliver j / NR */
        int64_t nr = min64(NR, nc - j);
        for (int64_t i = 0; i < mc; i += MR) {
            const float *as = ap + i * kc;
            int64_t mr = min64(MR, mc - i);
            float *ct = c + i * ldc + j;
            if (mr == MR && nr == NR) {
                ukr_6x16(kc, as, bs, ct, ldc, alpha, beta_eff);
            } else {
                float buf[MR * NR] __attribute__((aligned(64)));
                ukr_6x16(kc, as, bs, buf, NR, 1.0f, 0.0f);
                for (int64_t r = 0; r < mr; r++)
                    for (int64_t q = 0; q < nr; q++) {
                        float y = alpha * buf[r * NR + q];
                        ct[r * ldc + q] = beta_eff != 0.0f ? __builtin_fmaf(beta_eff, ct[r * ldc + q], y) : y;
                    }
            }
        }
    }
}

/* ---- drivers ---------------------------------------------------------------------------------------------- */

/* The K split depends on k alone (ceil(k / KC) near-equal blocks), and every C element is summed over those
 * blocks in order by the same micro-kernel, so the bits never depend on the thread count or task split. */
static inline int64_t k_blocks(int64_t k) { return (k + KC - 1) / KC; }
static inline int64_t k_lo(int64_t k, int64_t nkb, int64_t q) { return k * q / nkb; }

typedef struct {
    const lt_gemm_desc *d;
    const float *a, *b; /* batch entry 0 */
    float *c;
    int64_t kcmax, ncmax, mcmax;  /* packed block sizes this call needs at most */
    int64_t bp_size, ap_size;     /* floats per packed B panel / per packed A block */
    float *scratch;               /* nw slots, each ap_size (+ bp_size in batch mode) floats */
    int64_t slot;                 /* floats per slot */
    int nw;
    _Atomic int oom;
    /* intra-product parallel phase: */
    const float *ea, *eb; /* this batch entry */
    float *ec;
    float *bp;            /* the shared packed B panel */
    int64_t jc, nc, pc, kc, nsl;
    float beta_eff;
    int64_t mb, n_ic, n_jp, pack_tasks;
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

/* One whole product on the calling thread: the usual five loops (jc, pc, ic around the macro-kernel). */
static void gemm_serial(gemm_ctx *x, const float *a, const float *b, float *c, float *ap, float *bp) {
    const lt_gemm_desc *d = x->d;
    int64_t nkb = k_blocks(d->k);
    for (int64_t jc = 0; jc < d->n; jc += NC) {
        int64_t nc = min64(NC, d->n - jc);
        for (int64_t q = 0; q < nkb; q++) {
            int64_t pc = k_lo(d->k, nkb, q), kc = k_lo(d->k, nkb, q + 1) - pc;
            pack_b(d, b, pc, kc, jc, nc, bp);
            float beta_eff = q == 0 ? d->beta : 1.0f;
            for (int64_t ic = 0; ic < d->m; ic += MC) {
                int64_t mc = min64(MC, d->m - ic);
                pack_a(d, a, ic, mc, pc, kc, ap);
                macro(mc, nc, kc, ap, bp, c + ic * d->ldc + jc, d->ldc, d->alpha, beta_eff);
            }
        }
    }
}

/* Batch mode: task t = batch entry t, computed serially in the worker's slot (A block, then B panel). */
static void batch_task(void *p, int64_t t, int worker) {
    gemm_ctx *x = p;
    float *own, *s = slot_of(x, worker, &own);
    if (!s) return;
    const lt_gemm_desc *d = x->d;
    gemm_serial(x, x->a + t * d->stride_a, x->b + t * d->stride_b, x->c + t * d->stride_c, s, s + x->ap_size);
    lt_free(own);
}

/* Intra mode, phase 1: pack slivers of the shared B panel. */
static void pack_task(void *p, int64_t t, int worker) {
    gemm_ctx *x = p;
    int64_t s0 = x->nsl * t / x->pack_tasks, s1 = x->nsl * (t + 1) / x->pack_tasks;
    int64_t j0 = s0 * NR, j1 = min64(s1 * NR, x->nc);
    if (j1 > j0) pack_b(x->d, x->eb, x->pc, x->kc, x->jc + j0, j1 - j0, x->bp + j0 * x->kc);
}

/* Intra mode, phase 2: task = (block of MR-row groups, range of slivers); packs its A block, then runs the
 * macro-kernel. Blocks split the row groups near-evenly so equal tasks keep both cores busy to the end. */
static void compute_task(void *p, int64_t t, int worker) {
    gemm_ctx *x = p;
    const lt_gemm_desc *d = x->d;
    int64_t ti = t / x->n_jp, tj = t % x->n_jp;
    int64_t i0 = x->mb * ti / x->n_ic * MR, i1 = min64(x->mb * (ti + 1) / x->n_ic * MR, d->m);
    int64_t j0 = x->nsl * tj / x->n_jp * NR, j1 = min64(x->nsl * (tj + 1) / x->n_jp * NR, x->nc);
    if (i1 <= i0 || j1 <= j0) return;
    float *own, *ap = slot_of(x, worker, &own);
    if (!ap) return;
    pack_a(d, x->ea, i0, i1 - i0, x->pc, x->kc, ap);
    macro(i1 - i0, j1 - j0, x->kc, ap, x->bp + j0 * x->kc, x->ec + i0 * d->ldc + x->jc + j0, d->ldc, d->alpha,
          x->beta_eff);
    lt_free(own);
}

static void gemm_parallel(gemm_ctx *x, const float *a, const float *b, float *c, int width) {
    const lt_gemm_desc *d = x->d;
    int64_t nkb = k_blocks(d->k);
    x->ea = a; x->eb = b; x->ec = c;
    x->mb = (d->m + MR - 1) / MR;
    for (int64_t jc = 0; jc < d->n; jc += NC) {
        x->jc = jc;
        x->nc = min64(NC, d->n - jc);
        x->nsl = (x->nc + NR - 1) / NR;
        /* Row blocks of at most MC rows; if that gives too few tasks for the pool, also split the slivers
         * (each such task repacks its A block: cheap next to the multiply when M is that small). */
        x->n_ic = (x->mb + MC / MR - 1) / (MC / MR);
        int64_t want = 4 * (int64_t)width;
        x->n_jp = x->n_ic >= want ? 1 : min64((want + x->n_ic - 1) / x->n_ic, (x->nsl + 3) / 4);
        if (x->n_jp < 1) x->n_jp = 1;
        x->pack_tasks = min64(x->nsl, 2 * (int64_t)width);
        for (int64_t q = 0; q < nkb; q++) {
            x->pc = k_lo(d->k, nkb, q);
            x->kc = k_lo(d->k, nkb, q + 1) - x->pc;
            x->beta_eff = q == 0 ? d->beta : 1.0f;
            lt_parallel_for(x->pack_tasks, pack_task, x);
            lt_parallel_for(x->n_ic * x->n_jp, compute_task, x);
        }
    }
}

lt_status gemm_avx2(const lt_gemm_desc *d, const float *a, const float *b, float *c) {
    gemm_ctx x;
    memset(&x, 0, sizeof x);
    x.d = d; x.a = a; x.b = b; x.c = c;
    double flops = 2.0 * (double)d->m * (double)d->n * (double)d->k;
    int width = lt_pool_width();
    int batch_mode = flops < SERIAL_FLOPS || (d->batch > 1 && flops < BATCH_FLOPS);
    int64_t nkb = k_blocks(d->k);
    x.kcmax = (d->k + nkb - 1) / nkb;
    x.ncmax = rup(min64(NC, d->n), NR);
    x.mcmax = rup(min64(MC, d->m), MR);
    x.bp_size = x.kcmax * x.ncmax;
    x.ap_size = rup(x.mcmax * x.kcmax + SLACK, 16); /* keeps a B panel after it 64-byte aligned */
    if (batch_mode) {
        int64_t tasks = d->batch;
        x.nw = (int)min64(width, tasks);
        x.slot = x.ap_size + x.bp_size;
        x.scratch = lt_alloc((size_t)(x.nw * x.slot) * sizeof(float));
        if (!x.scratch) goto oom;
        lt_parallel_for(tasks, batch_task, &x);
    } else {
        x.nw = width;
        x.slot = x.ap_size;
        x.scratch = lt_alloc((size_t)(x.nw * x.slot + x.bp_size) * sizeof(float));
        if (!x.scratch) goto oom;
        x.bp = x.scratch + x.nw * x.slot;
        for (int64_t t = 0; t < d->batch; t++)
            gemm_parallel(&x, a + t * d->stride_a, b + t * d->stride_b, c + t * d->stride_c, width);
    }
    lt_free(x.scratch);
    if (atomic_load(&x.oom)) goto oom;
    return LT_OK;
oom:
    return lt_fail(LT_ERR_OUT_OF_MEMORY, "lt_gemm: scratch for m=%lld n=%lld k=%lld (KC=%d MC=%d NC=%d)",
                   (long long)d->m, (long long)d->n, (long long)d->k, KC, MC, NC);
}
