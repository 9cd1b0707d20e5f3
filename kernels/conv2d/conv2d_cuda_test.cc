/* conv2d.cu in the CUDA emulation (fwd, bwd_data, bwd_weight, bias gradient) against a double reference written
 * here (the CPU conv kernels land separately): strides 1, 2 and 3 (bwd_data runs one GEMM per stride phase: a
 * 2x1 filter at stride 3 on a 10x2 image leaves phases without taps or without columns), padding 0..2, fwd and
 * bwd_data through both tiles (64 x 64 and the 64 x 256 _wide kernels; N2 C5 19x17 K66 has 646 columns), 1x1 / 3x3 / 5x2 / 7x7 kernels, odd
 * sizes, bias and no bias, accumulate 0 / 1. Tolerance per element: gemm's u (8 sqrt(depth) + 3) sum |terms| (each
 * output is one float sum in depth order), plus 2 u for the bias add / accumulate. bwd_weight runs with the host's
 * depth split (conv2d_bwd_weight_chunk: one split when the depth is under CONV_SPLIT_MIN_DEPTH, as in most shapes
 * here; several with a ragged last chunk for the N3 19x21 and N2 12x11 K70 shapes) and again forced to chunks of
 * 48 (many splits, ragged) through both tiles (ltk_conv2d_bwd_weight and _wide): each split is a float sum over its chunk c in order, then the S partials are added in
 * split order, so the bound is u (8 sqrt(c) + 3 + 8 sqrt(S) + 3) sum |terms| (first order: the chunk bound on
 * each partial's terms plus the S-term bound on sum |partials| <= sum |terms|). Run: build/conv2d_cuda_test */
#include <vector>

#include "../conv2d/conv2d.cu"
#include "lt_cuda_test.h"

/* conv_fdiv (the gathers' division by a launch-fixed divisor) against `/`: every divisor up to 4100 and sampled
 * ones to 2^31 - 1, each on 0..3000, the multiples of d and their neighbours near 2^31, and random n < 2^31. */
static void check_fdiv() {
    uint64_t r = 7;
    auto rnd = [&r]() { r = r * 6364136223846793005ull + 1442695040888963407ull; return (uint32_t)(r >> 33); };
    int64_t bad = 0, checked = 0;
    auto one = [&](int d, int n) {
        const conv_fdiv f = conv_fdiv_make(d);
        checked++;
        if (f.div(n) != n / d && bad++ < 3) fprintf(stderr, "  fdiv %d / %d: got %d want %d\n", n, d, f.div(n), n / d);
    };
    std::vector<int> ds;
    for (int d = 1; d <= 4100; d++) ds.push_back(d);
    for (int i = 0; i < 2000; i++) ds.push_back((int)(rnd() & 0x7fffffff) | 1);
    ds.push_back(0x7fffffff);
    ds.push_back(0x40000000);
    ds.push_back(0x40000001);
    for (int d : ds) {
        const conv_fdiv f = conv_fdiv_make(d);
        for (int n = 0; n <= 3000; n++) {
            checked++;
            if (f.div(n) != n / d && bad++ < 3) fprintf(stderr, "  fdiv %d / %d: got %d\n", n, d, f.div(n));
        }
        const int64_t top = (int64_t)0x7fffffff / d * d;
        for (int64_t q = top; q > top - 4 * (int64_t)d && q >= 0; q -= d) {
            one(d, (int)q);
            if (q + d - 1 <= 0x7fffffff) one(d, (int)(q + d - 1));
            if (q > 0) one(d, (int)(q - 1));
        }
        for (int i = 0; i < 64; i++) one(d, (int)(rnd() & 0x7fffffff));
        one(d, 0x7fffffff);
    }
    CHECK(bad == 0, "conv_fdiv: %lld of %lld quotients wrong", (long long)bad, (long long)checked);
}

int main() {
    const double U = 1.0 / (1 << 24);
    uint64_t s = 41;
    check_fdiv();
    struct { int64_t n, c, h, w, k, r, s; int sh, sw, ph, pw; } cs[] = {
        {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0}, {2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1}, {1, 5, 9, 8, 7, 3, 3, 2, 2, 1, 1},
        {2, 2, 6, 7, 3, 5, 2, 1, 2, 2, 0}, {1, 3, 8, 8, 2, 7, 7, 1, 1, 3, 3}, {3, 17, 5, 5, 65, 1, 1, 1, 1, 0, 0},
        {1, 4, 10, 9, 5, 4, 4, 2, 2, 1, 1}, {3, 3, 19, 21, 5, 3, 3, 1, 1, 1, 1}, {2, 9, 12, 11, 70, 3, 3, 1, 1, 1, 1},
        {2, 3, 10, 2, 4, 2, 1, 3, 3, 0, 0}, {1, 70, 9, 7, 3, 5, 3, 2, 3, 2, 1}, {2, 5, 19, 17, 66, 3, 3, 1, 1, 1, 1}};
    for (auto c : cs) {
        lt_conv2d_desc d = {c.n, c.c, c.h, c.w, c.k, c.r, c.s, (c.h + 2 * c.ph - c.r) / c.sh + 1,
                            (c.w + 2 * c.pw - c.s) / c.sw + 1, c.sh, c.sw, c.ph, c.pw};
        const int64_t nx = d.n * d.c * d.h * d.w, nw = d.k * d.c * d.r * d.s, ny = d.n * d.k * d.oh * d.ow;
        std::vector<float> x(nx), w(nw), dy(ny), bk(d.k), bc(d.c);
        lt_t_fill(x.data(), nx, &s);
        lt_t_fill(w.data(), nw, &s);
        lt_t_fill(dy.data(), ny, &s);
        lt_t_fill(bk.data(), d.k, &s);
        lt_t_fill(bc.data(), d.c, &s);
        std::vector<double> ry(ny, 0), ty(ny, 0), rdx(nx, 0), tdx(nx, 0), rdw(nw, 0), tdw(nw, 0), rdb(d.k, 0), tdb(d.k, 0);
        for (int64_t n = 0; n < d.n; n++)
            for (int64_t k = 0; k < d.k; k++)
                for (int64_t oh = 0; oh < d.oh; oh++)
                    for (int64_t ow = 0; ow < d.ow; ow++) {
                        const int64_t yi = ((n * d.k + k) * d.oh + oh) * d.ow + ow;
                        rdb[k] += dy[yi];
                        tdb[k] += fabs((double)dy[yi]);
                        for (int64_t ci = 0; ci < d.c; ci++)
                            for (int64_t r = 0; r < d.r; r++)
                                for (int64_t q = 0; q < d.s; q++) {
                                    const int64_t h = oh * d.stride_h - d.pad_h + r, ww = ow * d.stride_w - d.pad_w + q;
                                    if (h < 0 || h >= d.h || ww < 0 || ww >= d.w) continue;
                                    const int64_t xi = ((n * d.c + ci) * d.h + h) * d.w + ww;
                                    const int64_t wi = ((k * d.c + ci) * d.r + r) * d.s + q;
                                    ry[yi] += (double)x[xi] * w[wi];
                                    ty[yi] += fabs((double)x[xi] * w[wi]);
                                    rdx[xi] += (double)dy[yi] * w[wi];
                                    tdx[xi] += fabs((double)dy[yi] * w[wi]);
                                    rdw[wi] += (double)dy[yi] * x[xi];
                                    tdw[wi] += fabs((double)dy[yi] * x[xi]);
                                }
                    }
        auto cmp = [&](const char *what, const std::vector<float> &got, const std::vector<double> &want,
                       const std::vector<double> &mag, double coef, const float *bias, int64_t per, int64_t nb,
                       const std::vector<float> *acc0) {
            int64_t bad = 0;
            for (size_t e = 0; e < got.size(); e++) {
                double b = bias ? bias[(e / per) % nb] : 0.0, a0 = acc0 ? (*acc0)[e] : 0.0;
                double wv = want[e] + b + a0, tol = U * coef * mag[e] + 2 * U * (fabs(b) + fabs(a0) + fabs(wv)) + 1e-30;
                if (!lt_t_agree(got[e], wv, tol) && bad++ < 3)
                    fprintf(stderr, "  %s[%zu] got %.9g want %.9g tol %.3g\n", what, e, got[e], wv, tol);
            }
            return bad == 0;
        };
        auto coef = [](int64_t depth) { return 8 * sqrt((double)depth) + 3; };
        const unsigned bm_y = (unsigned)((d.k + 63) / 64), bm_x = (unsigned)((d.c + 63) / 64);
        for (int wide = 0; wide < 2; wide++) /* the 64 x 64 and the 64 x 256 (_wide) kernels on every shape */
            for (int withbias = 0; withbias < 2; withbias++) {
                std::vector<float> y(ny, NAN), dx(nx, NAN);
                const unsigned tn = wide ? 256 : 64;
                const float *bkp = withbias ? bk.data() : nullptr, *bcp = withbias ? bc.data() : nullptr;
                const dim3 gf((unsigned)((d.n * d.oh * d.ow + tn - 1) / tn), bm_y);
                if (wide) LAUNCH(ltk_conv2d_fwd_wide, gf, dim3(256), 0, d, (const float *)x.data(), (const float *)w.data(), bkp, y.data());
                else LAUNCH(ltk_conv2d_fwd, gf, dim3(256), 0, d, (const float *)x.data(), (const float *)w.data(), bkp, y.data());
                const int64_t phase0 = d.n * ((d.h + d.stride_h - 1) / d.stride_h) * ((d.w + d.stride_w - 1) / d.stride_w);
                const dim3 gd((unsigned)((phase0 + tn - 1) / tn), bm_x, (unsigned)(d.stride_h * d.stride_w));
                if (wide) LAUNCH(ltk_conv2d_bwd_data_wide, gd, dim3(256), 0, d, (const float *)dy.data(), (const float *)w.data(), bcp, dx.data());
                else LAUNCH(ltk_conv2d_bwd_data, gd, dim3(256), 0, d, (const float *)dy.data(), (const float *)w.data(), bcp, dx.data());
                CHECK(cmp("y", y, ry, ty, coef(d.c * d.r * d.s), bkp, d.oh * d.ow, d.k, nullptr) &&
                      cmp("dx", dx, rdx, tdx, coef(d.k * d.r * d.s), bcp, d.h * d.w, d.c, nullptr),
                      "conv fwd / bwd_data%s case N%lld C%lld H%lld W%lld K%lld R%lld S%lld bias %d", wide ? " (wide)" : "",
                      (long long)d.n, (long long)d.c, (long long)d.h, (long long)d.w, (long long)d.k, (long long)d.r,
                      (long long)d.s, withbias);
            }
        const int64_t depth = d.n * d.oh * d.ow, nsplit_policy = (depth + conv2d_bwd_weight_chunk(&d) - 1) / conv2d_bwd_weight_chunk(&d);
        /* mode 0: the host's choice of tile and split; 1 / 2: chunks of 48 through the 64 x 64 / the 64 x 256 tile */
        for (int mode = 0; mode < 3; mode++)
            for (int accumulate = 0; accumulate < 2; accumulate++) {
                const int forced = mode > 0, wide = mode == 0 ? conv2d_bwd_weight_wide(&d) : mode == 2;
                const int64_t chunk = forced ? 48 : conv2d_bwd_weight_chunk(&d), splits = (depth + chunk - 1) / chunk;
                std::vector<float> dw(nw), db(d.k), part(splits > 1 ? splits * nw : 0, NAN);
                if (accumulate) { lt_t_fill(dw.data(), nw, &s); lt_t_fill(db.data(), d.k, &s); }
                else { lt_t_nan(dw.data(), nw); lt_t_nan(db.data(), d.k); }
                const std::vector<float> dw0 = dw, db0 = db;
                const dim3 gw((unsigned)((d.c * d.r * d.s + (wide ? 255 : 63)) / (wide ? 256 : 64)), bm_y, (unsigned)splits);
                float *pp = splits > 1 ? part.data() : (float *)nullptr;
                if (wide) LAUNCH(ltk_conv2d_bwd_weight_wide, gw, dim3(256), 0, d, (const float *)x.data(), (const float *)dy.data(),
                                 dw.data(), (int32_t)accumulate, pp, chunk);
                else LAUNCH(ltk_conv2d_bwd_weight, gw, dim3(256), 0, d, (const float *)x.data(), (const float *)dy.data(),
                            dw.data(), (int32_t)accumulate, pp, chunk);
                if (splits > 1)
                    LAUNCH(ltk_conv2d_bwd_weight_sum, dim3((unsigned)((nw + 255) / 256 < 1024 ? (nw + 255) / 256 : 1024)), dim3(256), 0,
                           nw, (int32_t)splits, (const float *)part.data(), dw.data(), (int32_t)accumulate);
                LAUNCH(ltk_conv2d_bwd_bias, dim3((unsigned)d.k), dim3(256), 0, d, (const float *)dy.data(), db.data(),
                       (int32_t)accumulate);
                const double cw = splits > 1 ? 8 * sqrt((double)chunk) + 3 + 8 * sqrt((double)splits) + 3 : coef(depth);
                CHECK(cmp("dw", dw, rdw, tdw, cw, nullptr, 1, 1, accumulate ? &dw0 : nullptr) &&
                      cmp("db", db, rdb, tdb, coef(depth), nullptr, 1, 1, accumulate ? &db0 : nullptr),
                      "conv bwd_weight%s case N%lld K%lld C%lld R%lld S%lld accumulate %d: depth %lld in %lld splits of %lld%s",
                      wide ? " (wide)" : "",
                      (long long)d.n, (long long)d.k, (long long)d.c, (long long)d.r, (long long)d.s, accumulate,
                      (long long)depth, (long long)splits, (long long)chunk, forced ? " (forced)" : "");
            }
        if (nsplit_policy > 1) printf("bwd_weight N%lld C%lld %lldx%lld K%lld: host split %lld x %lld (depth %lld)\n",
                                      (long long)d.n, (long long)d.c, (long long)d.h, (long long)d.w, (long long)d.k,
                                      (long long)nsplit_policy, (long long)conv2d_bwd_weight_chunk(&d), (long long)depth);
    }
    printf("largest error / tolerance: %.3f\n", lt_t_worst_ratio);
    return lt_test_summary();
}
