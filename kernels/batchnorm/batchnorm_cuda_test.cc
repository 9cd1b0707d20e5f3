/* batchnorm.cu in the CUDA emulation against lt_batchnorm2d_* at ISA ref (batchnorm_ref.c). Shapes: single
 * element per channel (count 1: variance 0), HW = 1 with N below and above the block size, HW at tails and above
 * the block size, offset-heavy inputs (x ~ 100 + noise: the two-pass variance must not cancel), gamma / beta /
 * running statistics NULL, dgamma / dbeta accumulating onto non-zero values, in-place dx = dy.
 * Tolerance: both sides compute in double and round once; only the order of the double sums differs, so every float
 * output is within one float ulp of the reference (2^-23 |want|) plus 2^-40 of the magnitude of its terms for
 * results that cancel to near zero. Run: build/batchnorm_cuda_test */
#include <vector>

#include "../batchnorm/batchnorm.cu"
#include "lt_cuda_test.h"

static int64_t bn_bad;
static void bn_cmp(const float *got, const float *want, int64_t n, const double *terms) {
    const double ULP = 1.0 / (1 << 23);
    for (int64_t e = 0; e < n; e++) bn_bad += !lt_t_agree(got[e], want[e], ULP * fabs((double)want[e]) + 0x1p-40 * (terms ? terms[e] : 1.0) + 1e-37);
}

int main() {
    lt_set_isa(LT_ISA_REF);
    uint64_t s = 31;
    struct { int64_t n, c, hw; float offset; int affine, running; } cases[] = {
        {1, 1, 1, 0, 1, 1}, {2, 3, 1, 0, 1, 1}, {64, 2, 1, 0, 1, 1}, {300, 2, 1, 0, 0, 1}, {4, 3, 16, 0, 1, 0},
        {3, 5, 49, 100, 1, 1}, {2, 2, 300, 0, 1, 1}, {7, 3, 37, 3, 0, 0}, {5, 4, 256, 0, 1, 1}, {9, 2, 257, 0, 1, 1}};
    for (auto cs : cases) {
        const int64_t N = cs.n, C = cs.c, HW = cs.hw, n = N * C * HW;
        std::vector<float> x(n), g(C), b(C), dy(n), rm(C), rv(C);
        lt_t_fill(x.data(), n, &s);
        for (float &v : x) v = v * 2 + cs.offset;
        lt_t_fill(g.data(), C, &s);
        lt_t_fill(b.data(), C, &s);
        lt_t_fill(dy.data(), n, &s);
        lt_t_fill(rm.data(), C, &s);
        for (int64_t j = 0; j < C; j++) rv[j] = 0.5f + (float)j;
        const float *gp = cs.affine ? g.data() : nullptr, *bp = cs.affine ? b.data() : nullptr;
        std::vector<float> yw(n, NAN), mw(C, NAN), rw(C, NAN), rmw = rm, rvw = rv;
        std::vector<float> y(n, NAN), m(C, NAN), r(C, NAN), rmg = rm, rvg = rv;
        lt_batchnorm2d_fwd_train(N, C, HW, 1e-5f, 0.1f, x.data(), gp, bp, yw.data(), mw.data(), rw.data(),
                                 cs.running ? rmw.data() : nullptr, cs.running ? rvw.data() : nullptr);
        LAUNCH(ltk_bn_fwd_train, dim3((unsigned)C), dim3(BN_THREADS), 0, N, C, HW, 1e-5f, 0.1f, (const float *)x.data(), gp,
               bp, y.data(), m.data(), r.data(), cs.running ? rmg.data() : nullptr, cs.running ? rvg.data() : nullptr);
        std::vector<double> ty(n);
        for (int64_t e = 0; e < n; e++) {
            int64_t ch = (e / HW) % C;
            ty[e] = (fabs((double)x[e]) * rw[ch] + 1) * (gp ? fabs(gp[ch]) : 1) + (bp ? fabs(bp[ch]) : 0);
        }
        bn_bad = 0;
        bn_cmp(y.data(), yw.data(), n, ty.data());
        std::vector<double> tm(C, fabs((double)cs.offset) + 1);
        bn_cmp(m.data(), mw.data(), C, tm.data());
        bn_cmp(r.data(), rw.data(), C, nullptr);
        bn_cmp(rmg.data(), rmw.data(), C, tm.data());
        bn_cmp(rvg.data(), rvw.data(), C, nullptr);
        CHECK(bn_bad == 0, "bn fwd train %lld x %lld x %lld: %lld outside tolerance", (long long)N, (long long)C, (long long)HW, (long long)bn_bad);

        /* inference forward with the reference's running statistics */
        std::vector<float> yi(n, NAN), yiw(n, NAN);
        lt_batchnorm2d_fwd_infer(N, C, HW, 1e-5f, x.data(), gp, bp, rmw.data(), rvw.data(), yiw.data());
        const unsigned gy = (unsigned)(N < 3 ? N : 3); /* fewer y blocks than images: the image loop strides */
        LAUNCH(ltk_bn_fwd_infer, dim3((unsigned)C, gy), dim3(128), 0, N, C, HW, 1e-5f, (const float *)x.data(), gp, bp,
               (const float *)rmw.data(), (const float *)rvw.data(), yi.data());
        bn_bad = 0;
        for (int64_t e = 0; e < n; e++) bn_bad += !(yi[e] == yiw[e]); /* same double formula, same order: same bits
                                                                           unless the compiler contracts (g++ does not) */
        CHECK(bn_bad == 0, "bn fwd infer %lld x %lld x %lld: %lld differ", (long long)N, (long long)C, (long long)HW, (long long)bn_bad);

        /* backward from the reference's saved statistics; dgamma / dbeta accumulate onto random values */
        std::vector<float> dxw(n, NAN), dgw(C), dbw(C);
        lt_t_fill(dgw.data(), C, &s);
        lt_t_fill(dbw.data(), C, &s);
        std::vector<float> dx = dy, dg = dgw, db = dbw; /* in place: dx = dy */
        lt_batchnorm2d_bwd(N, C, HW, x.data(), gp, mw.data(), rw.data(), dy.data(), dxw.data(),
                           cs.affine ? dgw.data() : nullptr, cs.affine ? dbw.data() : nullptr);
        LAUNCH(ltk_bn_bwd, dim3((unsigned)C), dim3(BN_THREADS), 0, N, C, HW, (const float *)x.data(), gp,
               (const float *)mw.data(), (const float *)rw.data(), (const float *)dx.data(), dx.data(),
               cs.affine ? dg.data() : nullptr, cs.affine ? db.data() : nullptr);
        std::vector<double> tdx(n), tg(C);
        for (int64_t e = 0; e < n; e++) {
            int64_t ch = (e / HW) % C;
            tdx[e] = rw[ch] * (gp ? fabs(gp[ch]) : 1) * (fabs((double)dy[e]) + 4) * (1 + fabs((double)x[e]) * rw[ch]);
        }
        for (int64_t j = 0; j < C; j++) tg[j] = (double)N * HW * 4 * (1 + fabs((double)cs.offset) * rw[j]);
        bn_bad = 0;
        bn_cmp(dx.data(), dxw.data(), n, tdx.data());
        bn_cmp(dg.data(), dgw.data(), C, tg.data());
        bn_cmp(db.data(), dbw.data(), C, tg.data());
        CHECK(bn_bad == 0, "bn bwd %lld x %lld x %lld: %lld outside tolerance", (long long)N, (long long)C, (long long)HW, (long long)bn_bad);
    }
    printf("largest error / tolerance: %.3f\n", lt_t_worst_ratio);
    return lt_test_summary();
}
