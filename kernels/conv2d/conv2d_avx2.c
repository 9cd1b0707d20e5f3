/* AVX2+FMA 2-D convolution: direct, register-blocked, on the worker pool. NCHW at the API, no im2col matrix.
 * (conv2d.c sends two shape classes elsewhere: fully connected convs to the GEMM, conv2d_fc_avx2.c, and 3x3 stride-1
 * convs with >= 16 channels to Winograd, conv2d_wino_avx2.c; bwd_weight's direct kernel is conv2d_wgrad_avx2.c.)
 *
 *   x: (N, C, H, W)   w: (K, C, R, S)   y, dy: (N, K, OH, OW)   (conv2d_ref.c has the math of the three passes)
 *
 * One micro-kernel serves all three passes: acc[i][0..16) = sum_p broadcast(row_i[tab[p]]) * B[p][0..16) for i < 6
 * rows, 12 ymm accumulators (6 rows x 2 vectors), 2 vector loads of B, 6 broadcasts and one offset load per
 * step: the 6 x 16 tile of the GEMM kernel (kernels/gemm), but A is read in place through pointers + a shared
 * offset table instead of being packed, so "im2col" costs nothing.
 *   fwd:        rows = 6 output pixels (pointers into a zero-padded copy of the input rows a task needs),
 *               tab[p] = offset of reduction index p = (c, r, s) in that copy, B = weights packed (K/16, CRS, 16).
 *               Output tile = 6 pixels x 16 channels, bias fused into the store.
 *   bwd_data:   conv^T in gather form, split into stride_h x stride_w phases (output rows h = a + stride_h i):
 *               each phase is a stride-1 correlation of dy with the flipped taps r = r0 + stride_h t that reach
 *               it, so it runs through the same code as fwd (in = dy, out = dx at a stride); the transposed
 *               conv's bias is fused likewise. No col2im, no scatter-add.
 *   bwd_weight (conv2d_wgrad_avx2.c): rows = 6 reduction indices (c, r, s) (pointers into padded copies of x rows), tab[p] = offset of
 *               pixel p, B = dy transposed to (K/16, pixels, 16); tile = 6 (c,r,s) x 16 k of dW^T. Pixels are cut
 *               into NCHUNK = 8 chunks (fewer, a power of two, below ~768 pixels per chunk; by shape only, never by
 *               the thread count); each chunk sums its steps (~STEP_PIX pixels) in
 *               order into its own partial dW, and the partials are added in chunk order at the end: a fixed
 *               reduction order, no atomics, bit-identical for any thread count.
 * fwd and bwd_data sum each output element over its reduction in blocks of whole input channels (about KCB = 256
 * reduction rows, so a block of B and the input lines a panel reads stay in L1), blocks added in order; the blocking
 * depends only on the shape, so the task split never changes the bits. Tasks are (image group, block of output
 * rows): large images are cut into row blocks of ~TASK_PIX pixels, small ones (7x7) are taken several whole per task
 * so the 6-pixel panels run across image boundaries. A task copies the input rows it reads into a zero-padded buffer
 * once (shared by all stride phases of conv^T), prefetches the next task's rows while it computes, and writes its
 * tiles through 8x8 transposes: straight into NCHW for unit-stride rows, through a private copy of its whole images
 * (vector blends, then one memcpy) for the stride-2 rows of conv^T on small images.
 *
 * Why direct and not im2col + GEMM: the micro-kernel is the GEMM's (and runs at ~99% of lt_peak_fma from L1 in
 * isolation), but reading A in place through an offset table removes the im2col copy and the col2im scatter-add
 * entirely; what is left around it is the padded copy (~3%), the transposed stores (~4-7%) and the bwd_weight
 * reduction of partials (~3%). Same shapes, same minute, the im2col + GEMM kernels on main (0e54a84) ran 1.3-1.8x
 * slower than this file (W3a fwd 47.5 vs 80-88 GFLOP/s on 1 thread).
 *
 * Checked by conv2d_test.c against conv2d_ref.c and a double-precision reference (tolerance there), 1 / 2 / 3
 * threads bit-identical, the adjoint identity, concurrent callers, ASan+UBSan and TSan clean.
 *   build/conv2d_test             the checks (ctest runs them at LATENT_MAX_ISA=avx2 and =ref)
 *   build/conv2d_test --bench     W3a/W3b/W3c, each pass, 1 and 2 threads, % of lt_peak_fma measured then
 *   OneDnnConvMain (bench module) the same beside oneDNN 3.11 (AVX2 cap, format any, reorders untimed)
 * Measured 2026-11-24, shared 2-core Zen 5 with other jobs running (load average 3.5-5), best of 6 runs x 10 reps,
 * ours and oneDNN alternating in blocks within each run (OneDnnConvMain), 1 thread; % of the best lt_peak_fma seen
 * (95.7 GFLOP/s):
 *   shape  pass        oneDNN ms  GFLOP/s  %peak | Latent ms  GFLOP/s  %peak | Latent/oneDNN
 *   W3a    fwd           27.85     86.7     91%  |   30.12     80.2     84%  |  0.92x
 *   W3a    bwd_data      26.58     90.9     95%  |   29.51     81.9     86%  |  0.90x
 *   W3a    bwd_weight    37.08     65.1     68%  |   29.52     81.9     86%  |  1.26x
 *   W3b    fwd           11.14     73.8     77%  |   10.89     75.5     79%  |  1.02x
 *   W3b    bwd_data      11.75     70.0     73%  |   11.42     72.0     75%  |  1.03x
 *   W3b    bwd_weight    11.64     70.6     74%  |   10.62     77.4     81%  |  1.10x
 *   W3c    fwd (our bwd_data)      11.70 / 11.59 ms  1.01x;  bwd_data (our fwd) 11.29 / 10.74 ms  1.05x;
 *          bwd_weight   11.84 / 10.54 ms  1.12x
 * In quieter minutes the same day W3a reached 88-89 GFLOP/s (fwd, bwd_data, bwd_weight) and oneDNN 93-97.
 * 2 threads: lt_peak_fma(2) measured 90-107 GFLOP/s (one core's worth: the other core was busy all session), so no
 * 2-thread scaling could be measured; side by side in that state the ratios were 0.91-1.20x (W3a fwd 0.95x,
 * bwd_data 0.91x, the rest 0.98-1.20x). To re-measure on a quiet machine.
 * Tried: KCB 512 instead of 256, TASK_PIX 384 / 512: within noise. Software prefetch (for write) of the output lines:
 * no gain. Where it is weaker: W3a fwd / bwd_data (oneDNN's nChw8c jit kernel reads its pre-reordered input in
 * place; we pay the padded copy and the NCHW transposes inside the timed call). Outputs with fewer than 8 channels
 * (a generator's last layer) take the pixel-vector tile ukr_pv where the input is read at unit stride (every conv^T,
 * stride-1 fwd): DCGAN's conv^T 64 -> 1, 16x16 -> 32x32, N = 64 went from 8.3 to 1.7 ms (4 -> 20 GFLOP/s, 1 thread);
 * still far from peak (unaligned vector loads, stride-2 scalar stores). A strided fwd into few channels (rare) and
 * 1x1 convs (~50 GFLOP/s: the copy and the transposes weigh more against 2 C flops per element) are the next
 * candidates. */
#include <string.h>

#include "conv2d_avx2.h"

/* ---- micro-kernel ------------------------------------------------------------------------------------------ */

/* c[i][0..16) (=, or += when add) sum_{p < kc} rows[i][tab[p]] * b[p][0..16), i < mr. b: (kc, 16), 32-byte
 * aligned; c: row stride ldc. mr is a constant after inlining, so the i loops unroll and acc stays in registers. */
static inline __attribute__((always_inline)) void ukr_t(const int mr, int64_t kc, const float *const *rows,
                                                        const int64_t *tab, const float *b, float *c, int64_t ldc,
                                                        int add) {
    __m256 acc[MR][2];
    const float *rp[MR];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) rp[i] = rows[i < mr ? i : 0];
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++) {
        const int64_t o = tab[p];
        const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            const __m256 a = _mm256_broadcast_ss(rp[i] + o);
            acc[i][0] = _mm256_fmadd_ps(a, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(a, b1, acc[i][1]);
        }
        b += NR;
    }
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        float *ci = c + i * ldc;
        if (add) {
            acc[i][0] = _mm256_add_ps(_mm256_loadu_ps(ci), acc[i][0]);
            acc[i][1] = _mm256_add_ps(_mm256_loadu_ps(ci + 8), acc[i][1]);
        }
        _mm256_storeu_ps(ci, acc[i][0]);
        _mm256_storeu_ps(ci + 8, acc[i][1]);
    }
}

void conv2d_ukr(int mr, int64_t kc, const float *const *rows, const int64_t *tab, const float *b, float *c,
                int64_t ldc, int add) {
    switch (mr) {
    case 6: ukr_t(6, kc, rows, tab, b, c, ldc, add); break;
    case 5: ukr_t(5, kc, rows, tab, b, c, ldc, add); break;
    case 4: ukr_t(4, kc, rows, tab, b, c, ldc, add); break;
    case 3: ukr_t(3, kc, rows, tab, b, c, ldc, add); break;
    case 2: ukr_t(2, kc, rows, tab, b, c, ldc, add); break;
    default: ukr_t(1, kc, rows, tab, b, c, ldc, add); break;
    }
}

/* ---- scratch (shared with conv2d_wgrad_avx2.c; conv2d_avx2.h has the contracts) ------------------------------ */

float *conv2d_slot_of(slots *s, int worker, float **own) {
    *own = NULL;
    if (worker < s->nw) return s->base + (int64_t)worker * s->slot;
    *own = lt_alloc((size_t)s->slot * sizeof(float));
    if (!*own) atomic_store(&s->oom, 1);
    return *own;
}

/* no-tree-loop-distribute-patterns: gcc turned the plain loops below into memmove / memset calls anyway (4% and 1%
 * of a RealNVP step in libc, on 30-float rows); the middle part is an explicit vector copy. */
__attribute__((optimize("no-tree-loop-distribute-patterns")))
void conv2d_copy_padded(const float *src, int64_t chans, int64_t hin, int64_t win, int64_t ih0, int64_t nrows,
                        int64_t iw0, float *dst, int64_t hb, int64_t wb) {
    const int64_t lo = min64(wb, max64(0, -iw0)), hi = max64(lo, min64(wb, win - iw0));
    for (int64_t c = 0; c < chans; c++)
        for (int64_t hh = 0; hh < nrows; hh++) {
            float *o = dst + (c * hb + hh) * wb;
            const int64_t ih = ih0 + hh;
            if (ih < 0 || ih >= hin) {
                for (int64_t ww = 0; ww < wb; ww++) o[ww] = 0.0f;
                continue;
            }
            /* plain loops, not memset / memcpy: rows are often a few floats (7x7 images), where the calls cost more
             * than the copy (15% of a W3b bwd_data call) */
            const float *s = src + (c * hin + ih) * win + iw0;
            for (int64_t ww = 0; ww < lo; ww++) o[ww] = 0.0f;
            int64_t ww = lo;
            for (; ww + 8 <= hi; ww += 8) _mm256_storeu_ps(o + ww, _mm256_loadu_ps(s + ww));
            for (; ww < hi; ww++) o[ww] = s[ww];
            for (ww = hi; ww < wb; ww++) o[ww] = 0.0f;
        }
}

/* Call scratch kept between calls, as kernels/gemm does: fresh pages cost a fault each (the 4 MB of bwd_weight
 * partials for W3b took ~4% of the call in faults), so the last buffer is parked in a one-slot cache and the next
 * call takes it if it is large enough; calls from several threads at once simply allocate their own. Its size is
 * kept in its first 64 bytes. Under ASan every call gets an exact-size buffer, so an overrun is caught. */
static _Atomic(float *) parked;

float *conv2d_scratch_get(size_t bytes) {
    float *p = atomic_exchange(&parked, NULL);
#ifndef __SANITIZE_ADDRESS__
    if (p && *(size_t *)p >= bytes) return p + 16;
#endif
    lt_free(p);
    p = lt_alloc(bytes + 64);
    if (!p) return NULL;
    *(size_t *)p = bytes;
    return p + 16;
}

void conv2d_scratch_put(float *s) {
    if (!s) return;
    float *p = s - 16, *none = NULL;
    if (!atomic_compare_exchange_strong(&parked, &none, p)) lt_free(p);
}

#define SFX(name) name##_avx2
/* Every pixel reduces over every tap: skipping the zero-padding taps was built and measured on the AVX-512 tile only,
 * and here it would change the bits in edge cases (a non-finite weight times a padding zero is NaN; signed zeros). */
#define CONV_TAP_CLASSES 0
/* the 8x8-transpose stores take the whole 16-channel sliver (2 ymm) only */
#define STORE_VEC_CH(nch) ((nch) == NR)
#define STORE_GROUPS(nch) (NR / 8)
/* nsub is always 1 here (one 16-wide sliver per tile); the (void) keeps the unused count from warning */
#define CONV_UKR(mr, nsub, kc, rows, tab, b, c, ldc, add) ((void)(nsub), conv2d_ukr(mr, kc, rows, tab, b, c, ldc, add))

#include "conv2d_simd.h"
