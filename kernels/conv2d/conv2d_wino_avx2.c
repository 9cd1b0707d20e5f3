/* AVX2+FMA Winograd F(2x2, 3x3) (fwd, bwd_data) and F(3x3, 2x2) (bwd_weight): the algorithm, layouts and order are
 * in conv2d_wino_simd.h (the body, shared with conv2d_wino_avx512.c); its 16 small GEMMs run here on the conv's
 * 6 x 16 ymm micro-kernel (conv2d_ukr), one 16-wide sliver per tile. The shape gates below serve both levels. */
#include <stdlib.h>

#include "conv2d_avx2.h"

/* LATENT_CONV_WINOGRAD=0 turns the path off (A/B timing against the direct engine); read once. */
static int wino_enabled(void) {
    static _Atomic int state; /* 0 unread, 1 on, 2 off */
    int s = atomic_load(&state);
    if (s == 0) {
        const char *e = getenv("LATENT_CONV_WINOGRAD");
        s = e && e[0] == '0' ? 2 : 1;
        atomic_store(&state, s);
    }
    return s == 1;
}

int conv2d_wino_ok(const lt_conv2d_desc *d) {
    return wino_enabled() && d->r == 3 && d->s == 3 && d->stride_h == 1 && d->stride_w == 1 && d->pad_h == d->pad_w && d->pad_h <= 2 &&
           d->c >= 16 && d->k >= 16 && d->oh >= 2 && d->ow >= 2 && d->h >= 2 && d->w >= 2;
}

/* bwd_weight's Winograd form rounds intermediate products that cancel in exact arithmetic, so an element of dw that
 * sums few terms (the corner taps of a 2x2 image) can be off by more than a bound on its own terms allows; from 4x4
 * outputs up every element sums enough of the tile's products that the error stays inside conv2d_test's bound. */
int conv2d_wino_wgrad_ok(const lt_conv2d_desc *d) { return conv2d_wino_ok(d) && d->oh >= 4 && d->ow >= 4; }


#define SFX(name) name##_avx2
#define WINO_SUB 1 /* the 6 x 16 tile is one sliver wide */
/* nsub is always 1 here (one sliver per tile); the (void) keeps the unused count from warning */
#define WINO_UKR(mr, nsub, kc, rows, tab, b, boff, c, ldc, add) ((void)(nsub), conv2d_ukr(mr, kc, rows, tab, b, c, ldc, add))

#include "conv2d_wino_simd.h"
