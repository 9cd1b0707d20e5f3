/* lt_conv2d_fwd / lt_conv2d_bwd_data / lt_conv2d_bwd_weight: 2-D cross-correlation, NCHW (latent.h has the
 * contract and the transposed-convolution reading).
 *
 * This file is the front door shared by every implementation: it validates the descriptor (each check names the
 * field and its value in lt_last_error()), then dispatches by ISA, fastest first: at avx512, convs with >= 16
 * channels on each side go to conv2d_*_avx512 / conv2d_wino_*_avx512 (use_avx512 below says why not the others;
 * fully connected shapes still to conv2d_fc_*_avx2: the GEMM picks its own ISA); conv2d_*_avx2 (conv2d_avx2.c)
 * when the level in use is avx2 (conv2d_fc_*_avx2, the GEMM, for fully connected shapes; conv2d_wino_*_avx2,
 * Winograd, for 3x3 stride-1 convs with >= 16 channels), else conv2d_*_ref
 * (conv2d_ref.c). Neither declines a valid shape.
 * Test and benchmark: conv2d_test.c (ctest runs it at LATENT_MAX_ISA=ref, =avx2 and =avx512; `conv2d_test --bench`). */
#include <stdatomic.h>

#include "conv2d.h"

/* The AVX-512 direct kernels take convolutions with at least 16 channels on each side; fewer channels on one side
 * (an image's 1 or 3 input channels, a coupling net's 2 outputs) keep the AVX2 ones at avx512: there the reduction
 * per output is a few taps and the 8 x 32 tile's fixed costs (16 zmm accumulators, tap classes) outweigh it
 * (conv2d_test --bench, 2 threads: E3 / E4 / DCGAN's 1- and 2-channel convs 0.5-0.8x of AVX2 on the AVX-512 tile,
 * the 64..256-channel ones 1.1-1.4x). conv2d_test forces the AVX-512 kernels for every shape through
 * conv2d_force_avx512 so their tails stay tested. */
static _Atomic int force_avx512;
void conv2d_force_avx512(int on) { atomic_store(&force_avx512, on); }
static int use_avx512(const lt_conv2d_desc *d) {
    return lt_isa_level() >= LT_ISA_AVX512 && ((d->c >= 16 && d->k >= 16) || atomic_load(&force_avx512));
}

/* a * b * c * d with overflow check; -1 on overflow. */
static int64_t prod4(int64_t a, int64_t b, int64_t c, int64_t d) {
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r) || __builtin_mul_overflow(r, c, &r) || __builtin_mul_overflow(r, d, &r))
        return -1;
    return r;
}

/* Do the float ranges [a, a + na) and [b, b + nb) overlap? */
static int overlap(const void *a, int64_t na, const void *b, int64_t nb) {
    const char *pa = a, *pb = b;
    return pa < pb + 4 * nb && pb < pa + 4 * na;
}

/* Validate the descriptor for `op`; the three pointers are the pass's two inputs and its output, `sizes` their
 * element counts as ids (0: x, 1: w, 2: y). */
static lt_status check(const char *op, const lt_conv2d_desc *d, const void *in0, const char *in0_name,
                       const void *in1, const char *in1_name, const void *out, const char *out_name,
                       const int sizes[3]) {
#define BAD(fmt, ...) lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: " fmt, op, __VA_ARGS__)
    if (!d) return lt_fail(LT_ERR_INVALID_ARGUMENT, "%s: descriptor is NULL", op);
    if (d->n < 1 || d->c < 1 || d->h < 1 || d->w < 1)
        return BAD("n=%lld c=%lld h=%lld w=%lld must all be >= 1", (long long)d->n, (long long)d->c,
                   (long long)d->h, (long long)d->w);
    if (d->k < 1 || d->r < 1 || d->s < 1)
        return BAD("k=%lld r=%lld s=%lld must all be >= 1", (long long)d->k, (long long)d->r, (long long)d->s);
    if (d->stride_h < 1 || d->stride_w < 1)
        return BAD("stride_h=%d stride_w=%d must be >= 1", d->stride_h, d->stride_w);
    if (d->pad_h < 0 || d->pad_w < 0) return BAD("pad_h=%d pad_w=%d must be >= 0", d->pad_h, d->pad_w);
    /* h + 2 pad cannot overflow: h is checked below against INT64_MAX / 4 through the element counts and pad is
     * an int32, but check explicitly so the message is clear for an absurd h alone. */
    if (d->h > INT64_MAX / 4 || d->w > INT64_MAX / 4)
        return BAD("h=%lld w=%lld overflow int64", (long long)d->h, (long long)d->w);
    int64_t hp = d->h + 2 * (int64_t)d->pad_h, wp = d->w + 2 * (int64_t)d->pad_w;
    if (d->r > hp || d->s > wp)
        return BAD("kernel r=%lld s=%lld larger than the padded input %lld x %lld (h=%lld pad_h=%d, w=%lld pad_w=%d)",
                   (long long)d->r, (long long)d->s, (long long)hp, (long long)wp, (long long)d->h, d->pad_h,
                   (long long)d->w, d->pad_w);
    int64_t oh = (hp - d->r) / d->stride_h + 1, ow = (wp - d->s) / d->stride_w + 1;
    if (d->oh != oh || d->ow != ow)
        return BAD("oh=%lld ow=%lld but (h + 2 pad_h - r) / stride_h + 1 = %lld and (w + 2 pad_w - s) / stride_w + 1 "
                   "= %lld (h=%lld w=%lld r=%lld s=%lld stride %d,%d pad %d,%d)",
                   (long long)d->oh, (long long)d->ow, (long long)oh, (long long)ow, (long long)d->h,
                   (long long)d->w, (long long)d->r, (long long)d->s, d->stride_h, d->stride_w, d->pad_h, d->pad_w);
    /* Element counts of x, w, y and the flop count's factors must fit int64 as bytes (x4), so no index wraps. */
    int64_t nx = prod4(d->n, d->c, d->h, d->w), nw = prod4(d->k, d->c, d->r, d->s), ny = prod4(d->n, d->k, oh, ow);
    int64_t big = INT64_MAX / 4;
    if (nx < 0 || nx > big || nw < 0 || nw > big || ny < 0 || ny > big)
        return BAD("n=%lld c=%lld h=%lld w=%lld k=%lld r=%lld s=%lld: element counts overflow int64 bytes",
                   (long long)d->n, (long long)d->c, (long long)d->h, (long long)d->w, (long long)d->k,
                   (long long)d->r, (long long)d->s);
    if (!in0 || !in1 || !out)
        return BAD("%s is NULL", !in0 ? in0_name : !in1 ? in1_name : out_name);
    /* The output is written while the inputs are read, by several threads: no in-place convolution. */
    const int64_t cnt[3] = {nx, nw, ny};
    if (overlap(out, cnt[sizes[2]], in0, cnt[sizes[0]]) || overlap(out, cnt[sizes[2]], in1, cnt[sizes[1]]))
        return BAD("%s overlaps %s: the output must not share memory with the inputs", out_name,
                   overlap(out, cnt[sizes[2]], in0, cnt[sizes[0]]) ? in0_name : in1_name);
#undef BAD
    return LT_OK;
}

lt_status lt_conv2d_fwd(const lt_conv2d_desc *d, const float *x, const float *w, const float *bias, float *y) {
    static const int sz[3] = {0, 1, 2};
    lt_status st = check("lt_conv2d_fwd", d, x, "x", w, "w", y, "y", sz);
    if (st) return st;
    if (use_avx512(d))
        return conv2d_is_fc(d)     ? conv2d_fc_fwd_avx2(d, x, w, bias, y)
               : conv2d_wino_ok(d) ? conv2d_wino_fwd_avx512(d, x, w, bias, y)
                                   : conv2d_fwd_avx512(d, x, w, bias, y);
    if (lt_isa_level() >= LT_ISA_AVX2)
        return conv2d_is_fc(d)     ? conv2d_fc_fwd_avx2(d, x, w, bias, y)
               : conv2d_wino_ok(d) ? conv2d_wino_fwd_avx2(d, x, w, bias, y)
                                   : conv2d_fwd_avx2(d, x, w, bias, y);
    return conv2d_fwd_ref(d, x, w, bias, y);
}

lt_status lt_conv2d_bwd_data(const lt_conv2d_desc *d, const float *dy, const float *w, const float *bias, float *dx) {
    static const int sz[3] = {2, 1, 0};
    lt_status st = check("lt_conv2d_bwd_data", d, dy, "dy", w, "w", dx, "dx", sz);
    if (st) return st;
    if (use_avx512(d))
        return conv2d_is_fc(d)     ? conv2d_fc_bwd_data_avx2(d, dy, w, bias, dx)
               : conv2d_wino_ok(d) ? conv2d_wino_bwd_data_avx512(d, dy, w, bias, dx)
                                   : conv2d_bwd_data_avx512(d, dy, w, bias, dx);
    if (lt_isa_level() >= LT_ISA_AVX2)
        return conv2d_is_fc(d)     ? conv2d_fc_bwd_data_avx2(d, dy, w, bias, dx)
               : conv2d_wino_ok(d) ? conv2d_wino_bwd_data_avx2(d, dy, w, bias, dx)
                                   : conv2d_bwd_data_avx2(d, dy, w, bias, dx);
    return conv2d_bwd_data_ref(d, dy, w, bias, dx);
}

lt_status lt_conv2d_bwd_weight(const lt_conv2d_desc *d, const float *x, const float *dy, float *dw, float *db,
                               int32_t accumulate) {
    static const int sz[3] = {0, 2, 1};
    lt_status st = check("lt_conv2d_bwd_weight", d, x, "x", dy, "dy", dw, "dw", sz);
    if (st) return st;
    if (accumulate != 0 && accumulate != 1)
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_conv2d_bwd_weight: accumulate=%d must be 0 or 1", accumulate);
    if (use_avx512(d))
        return conv2d_is_fc(d)     ? conv2d_fc_bwd_weight_avx2(d, x, dy, dw, db, accumulate)
               : conv2d_wino_wgrad_ok(d) ? conv2d_wino_bwd_weight_avx512(d, x, dy, dw, db, accumulate)
                                   : conv2d_bwd_weight_avx512(d, x, dy, dw, db, accumulate);
    if (lt_isa_level() >= LT_ISA_AVX2)
        return conv2d_is_fc(d)     ? conv2d_fc_bwd_weight_avx2(d, x, dy, dw, db, accumulate)
               : conv2d_wino_wgrad_ok(d) ? conv2d_wino_bwd_weight_avx2(d, x, dy, dw, db, accumulate)
                                   : conv2d_bwd_weight_avx2(d, x, dy, dw, db, accumulate);
    return conv2d_bwd_weight_ref(d, x, dy, dw, db, accumulate);
}

/* The bf16 passes: the same descriptor and checks, then conv2d_bf16.c (which refuses without AVX512_BF16). */
lt_status lt_conv2d_fwd_bf16(const lt_conv2d_desc *d, const float *x, const float *w, const float *bias, float *y) {
    static const int sz[3] = {0, 1, 2};
    lt_status st = check("lt_conv2d_fwd_bf16", d, x, "x", w, "w", y, "y", sz);
    return st ? st : conv2d_fwd_bf16(d, x, w, bias, y);
}

lt_status lt_conv2d_bwd_data_bf16(const lt_conv2d_desc *d, const float *dy, const float *w, const float *bias,
                                  float *dx) {
    static const int sz[3] = {2, 1, 0};
    lt_status st = check("lt_conv2d_bwd_data_bf16", d, dy, "dy", w, "w", dx, "dx", sz);
    return st ? st : conv2d_bwd_data_bf16(d, dy, w, bias, dx);
}

lt_status lt_conv2d_bwd_weight_bf16(const lt_conv2d_desc *d, const float *x, const float *dy, float *dw, float *db,
                                    int32_t accumulate) {
    static const int sz[3] = {0, 2, 1};
    lt_status st = check("lt_conv2d_bwd_weight_bf16", d, x, "x", dy, "dy", dw, "dw", sz);
    if (st) return st;
    if (accumulate != 0 && accumulate != 1)
        return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_conv2d_bwd_weight_bf16: accumulate=%d must be 0 or 1", accumulate);
    return conv2d_bwd_weight_bf16(d, x, dy, dw, db, accumulate);
}
