/* conv1d.cu in the CUDA emulation against lt_conv1d_* at ISA ref (conv1d_ref.c): T at block and warp tails, odd
 * channel counts, K 1..5, dilations 1..8 (taps that never reach a sample included), bias or not, dw accumulated
 * or overwritten, NaN-prefilled outputs. Tolerance: the GPU's float sums run in another order than the reference's, so
 * per element (8 sqrt(terms) + 3) u (sum |terms| + |bias or old value|), u = 2^-24, as conv1d_test.c.
 * Also: two runs give the same bits. Run: build/conv1d_cuda_test */
#include <vector>

#include "../conv1d/conv1d.cu"
#include "lt_cuda_test.h"

static double tol(double mag, int64_t terms) { return (8.0 * sqrt((double)terms) + 3.0) * mag / 16777216.0 + 1e-30; }

int main() {
    lt_set_isa(LT_ISA_REF);
    uint64_t s = 31;
    struct { int64_t n, ci, t, co, k, d; } cases[] = {{1, 1, 1, 1, 1, 1}, {2, 3, 7, 5, 2, 1}, {1, 4, 33, 3, 3, 8},
                                                       {3, 5, 70, 6, 5, 4}, {2, 7, 257, 9, 2, 16}, {1, 2, 5, 3, 5, 8},
                                                       {2, 9, 130, 4, 4, 3}};
    for (auto c : cases) {
        const int64_t nx = c.n * c.ci * c.t, nw = c.co * c.ci * c.k, ny = c.n * c.co * c.t;
        std::vector<float> x(nx), w(nw), b(c.co), dy(ny), y(ny, NAN), yr(ny), dx(nx, NAN), dxr(nx), dw(nw), dwr(nw),
            db(c.co), dbr(c.co), dw0(nw), db0(c.co);
        lt_t_fill(x.data(), nx, &s); lt_t_fill(w.data(), nw, &s); lt_t_fill(b.data(), c.co, &s);
        lt_t_fill(dy.data(), ny, &s); lt_t_fill(dw0.data(), nw, &s); lt_t_fill(db0.data(), c.co, &s);
        /* magnitudes for the tolerances: the same sums over |terms| */
        std::vector<double> my(ny), mx(nx, 0.0), mw(nw), mb(c.co);
        for (int64_t bb = 0; bb < c.n; bb++)
            for (int64_t o = 0; o < c.co; o++)
                for (int64_t t = 0; t < c.t; t++) {
                    double m = fabs(b[o]);
                    for (int64_t i = 0; i < c.ci; i++)
                        for (int64_t j = 0; j < c.k; j++) {
                            int64_t ts = t - (c.k - 1 - j) * c.d;
                            if (ts < 0) continue;
                            double v = fabs((double)w[(o * c.ci + i) * c.k + j] * x[(bb * c.ci + i) * c.t + ts]);
                            m += v;
                            mx[(bb * c.ci + i) * c.t + ts] += fabs((double)w[(o * c.ci + i) * c.k + j] * dy[(bb * c.co + o) * c.t + t]);
                            mw[(o * c.ci + i) * c.k + j] += fabs((double)dy[(bb * c.co + o) * c.t + t] * x[(bb * c.ci + i) * c.t + ts]);
                        }
                    my[(bb * c.co + o) * c.t + t] = m;
                    mb[o] += fabs(dy[(bb * c.co + o) * c.t + t]);
                }
        for (int withb = 0; withb < 2; withb++) {
            std::fill(y.begin(), y.end(), NAN);
            lt_conv1d_fwd(c.n, c.ci, c.t, c.co, c.k, c.d, x.data(), w.data(), withb ? b.data() : nullptr, yr.data());
            LAUNCH(ltk_conv1d_fwd, dim3(lt_cu_blocks(ny, C1_THREADS)), dim3(C1_THREADS), 0, c.n, c.ci, c.t, c.co, c.k, c.d,
                   (const float *)x.data(), (const float *)w.data(), (const float *)(withb ? b.data() : nullptr), y.data());
            int64_t bad = 0;
            for (int64_t e = 0; e < ny; e++) bad += !lt_t_agree(y[e], yr[e], 2 * tol(my[e], c.ci * c.k + 1));
            CHECK(bad == 0, "fwd bias=%d n=%lld ci=%lld t=%lld co=%lld k=%lld d=%lld: %lld outside tolerance", withb,
                  (long long)c.n, (long long)c.ci, (long long)c.t, (long long)c.co, (long long)c.k, (long long)c.d, (long long)bad);
        }
        lt_conv1d_bwd_data(c.n, c.ci, c.t, c.co, c.k, c.d, dy.data(), w.data(), dxr.data());
        LAUNCH(ltk_conv1d_bwd_data, dim3(lt_cu_blocks(nx, C1_THREADS)), dim3(C1_THREADS), 0, c.n, c.ci, c.t, c.co, c.k, c.d,
               (const float *)dy.data(), (const float *)w.data(), dx.data());
        int64_t bad = 0;
        for (int64_t e = 0; e < nx; e++) bad += !lt_t_agree(dx[e], dxr[e], 2 * tol(mx[e], c.co * c.k));
        CHECK(bad == 0, "bwd_data t=%lld k=%lld d=%lld: %lld outside tolerance", (long long)c.t, (long long)c.k, (long long)c.d, (long long)bad);
        for (int acc = 0; acc < 2; acc++) {
            std::vector<float> first;
            for (int rep = 0; rep < 2; rep++) {
                if (acc) { dw = dw0; dwr = dw0; db = db0; dbr = db0; }
                else { std::fill(dw.begin(), dw.end(), NAN); std::fill(db.begin(), db.end(), NAN); }
                lt_conv1d_bwd_weight(c.n, c.ci, c.t, c.co, c.k, c.d, x.data(), dy.data(), dwr.data(), dbr.data(), acc);
                LAUNCH(ltk_conv1d_bwd_weight, dim3((unsigned)nw), dim3(C1_THREADS), 0, c.n, c.ci, c.t, c.co, c.k, c.d,
                       (const float *)x.data(), (const float *)dy.data(), dw.data(), acc);
                LAUNCH(ltk_conv1d_bwd_bias, dim3((unsigned)c.co), dim3(C1_THREADS), 0, c.n, c.t, c.co, (const float *)dy.data(),
                       db.data(), acc);
                bad = 0;
                for (int64_t e = 0; e < nw; e++) bad += !lt_t_agree(dw[e], dwr[e], 2 * tol(mw[e] + (acc ? fabs(dw0[e]) : 0), c.n * c.t + 1));
                for (int64_t o = 0; o < c.co; o++) bad += !lt_t_agree(db[o], dbr[o], 2 * tol(mb[o] + (acc ? fabs(db0[o]) : 0), c.n * c.t + 1));
                CHECK(bad == 0, "bwd_weight acc=%d t=%lld k=%lld d=%lld: %lld outside tolerance", acc, (long long)c.t, (long long)c.k,
                      (long long)c.d, (long long)bad);
                if (rep == 0) first = dw;
                else CHECK(!memcmp(first.data(), dw.data(), nw * 4), "bwd_weight acc=%d: two runs differ in bits", acc);
            }
        }
    }
    printf("largest error / tolerance: %.3f\n", lt_t_worst_ratio);
    return lt_test_summary();
}
