/* Internals shared by the AVX2 convolution files: conv2d_avx2.c (fwd, bwd_data: the micro-kernel, scratch, and the
 * correlation engine of conv2d_simd.h), conv2d_wgrad_avx2.c (bwd_weight) and conv2d_wino_avx2.c. Not exported. The design is in conv2d_avx2.c's
 * header comment. */
#ifndef LT_CONV2D_AVX2_H
#define LT_CONV2D_AVX2_H

#include <immintrin.h>
#include <stdatomic.h>

#include "conv2d.h"
#include "../common/transpose_avx2.h"

#define MR 6   /* tile rows (broadcast side) */
#define NR 16  /* tile columns: 2 ymm vectors */
#ifndef TASK_PIX
/* target output pixels per fwd/bwd_data task; 256 until 2026-12-04: 768 is ~10% faster on W3b/W3c's conv^T (7x7
 * images) and on the few-channel shapes, the same elsewhere (conv2d_test --bench, quiet machine) */
#define TASK_PIX 768
#endif
#ifndef KCB
#define KCB 256       /* reduction rows per block in fwd/bwd_data (B block = KCB * 64 bytes) */
#endif
#ifndef PV_COUT
#define PV_COUT 8     /* fwd/bwd_data with fewer output channels than this use the pixel-vector tile (ukr_pv) */
#endif
#ifndef STEP_PIX
#define STEP_PIX 512  /* pixels per bwd_weight reduction step (B = dy^T of a step: STEP_PIX * 64 bytes per sliver) */
#endif
#ifndef NCHUNK
#define NCHUNK 8      /* fixed pixel chunks of bwd_weight, each with its own partial dW */
#endif

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
static inline int64_t rup(int64_t a, int64_t b) { return cdiv(a, b) * b; }

/* c[i][0..16) (=, or += when add) sum_{p < kc} rows[i][tab[p]] * b[p][0..16), i < mr <= MR (the 6 x 16 tile). */
LT_HIDDEN void conv2d_ukr(int mr, int64_t kc, const float *const *rows, const int64_t *tab, const float *b, float *c,
                          int64_t ldc, int add);

/* Per-worker slots of `slot` floats; a worker index past what was sized at entry (pool resized meanwhile by
 * another thread) gets a private allocation, freed by the caller through *own. */
typedef struct {
    float *base;
    int64_t slot;
    int nw;
    _Atomic int oom;
} slots;
LT_HIDDEN float *conv2d_slot_of(slots *s, int worker, float **own);

/* Copy rows [ih0, ih0 + nrows) x columns [iw0, iw0 + wb) of the (chans, hin, win) planes at src into dst
 * (chans, hb, wb), zero outside the input: the padded input a task reads in place. */
LT_HIDDEN void conv2d_copy_padded(const float *src, int64_t chans, int64_t hin, int64_t win, int64_t ih0,
                                  int64_t nrows, int64_t iw0, float *dst, int64_t hb, int64_t wb);

/* Call scratch parked between calls (conv2d_avx2.c says why); NULL when out of memory. */
LT_HIDDEN float *conv2d_scratch_get(size_t bytes);
LT_HIDDEN void conv2d_scratch_put(float *s);

#endif
