/* coupling.cu in the CUDA emulation against lt_coupling_fwd / _inv / _bwd at ISA ref (coupling_ref.c). hw at warp /
 * block tails and above the block size, one image and several, a checkerboard and a random mask (including all-zero
 * and all-one stretches), logdet NULL, dlogdet NULL, dscale accumulating onto a non-zero value.
 * Tolerance: both sides evaluate the same double formulas and round once; CUDA's double tanh / exp may differ from
 * glibc's by ~2 ulp and the sums run in another order, so each float output is within one float ulp (2^-23 |want|)
 * plus 2^-40 of its terms' magnitude (O(10) here); logdet within 2^-53 (hw + 40) of sum |s|, dscale within
 * 2^-53 (hw + n + 40) of sum |ds tanh| (the CPU adds an image's terms one after another). ltk_coupling_fwd_ds / _bwd_ds
 * (the scale read from device memory) must give the by-value kernels' bits. Run: build/coupling_cuda_test */
#include <cstring>
#include <vector>

#include "../coupling/coupling.cu"
#include "lt_cuda_test.h"

int main() {
    lt_set_isa(LT_ISA_REF);
    uint64_t s = 5;
    struct { int64_t n, hw; int random_mask, with_ld; } cases[] = {{1, 1, 0, 1}, {3, 7, 1, 1}, {2, 255, 0, 0}, {4, 257, 1, 1},
                                                                  {2, 784, 0, 1}, {5, 33, 1, 0}};
    const float scale = 0.7f;
    for (auto cs : cases) {
        const int64_t N = cs.n, HW = cs.hw, n = N * HW;
        std::vector<float> b(HW), y(n), h(2 * n), dout(n);
        for (int64_t j = 0; j < HW; j++) b[j] = cs.random_mask ? (float)(lt_t_next(&s) & 1) : (float)(j & 1);
        lt_t_fill(y.data(), n, &s);
        lt_t_fill(h.data(), 2 * n, &s);
        for (float &v : h) v *= 3;
        lt_t_fill(dout.data(), n, &s);
        std::vector<double> dld(N);
        for (int64_t i = 0; i < N; i++) dld[i] = lt_t_uniform(&s);
        const double K = 0x1p-40 * 16, ULP = 0x1p-23;
        /* forward */
        std::vector<float> ow(n, NAN), o(n, NAN);
        std::vector<double> ldw(N, NAN), ld(N, NAN);
        lt_coupling_fwd(N, HW, b.data(), y.data(), h.data(), scale, ow.data(), ldw.data());
        LAUNCH(ltk_coupling_fwd, dim3((unsigned)N), dim3(CP_THREADS), 0, N, HW, (const float *)b.data(), (const float *)y.data(),
               (const float *)h.data(), scale, o.data(), cs.with_ld ? ld.data() : nullptr);
        int64_t bad = 0;
        for (int64_t e = 0; e < n; e++) bad += !lt_t_agree(o[e], ow[e], ULP * fabs((double)ow[e]) + K);
        if (cs.with_ld)
            for (int64_t i = 0; i < N; i++) {
                double mag = 0;
                for (int64_t j = 0; j < HW; j++) mag += fabs(tanh((double)h[2 * i * HW + j])) * scale * (1 - b[j]);
                double err = fabs(ld[i] - ldw[i]), tol = 0x1p-53 * (double)(HW + 40) * mag + 1e-300;
                if (err / tol > lt_t_worst_ratio) lt_t_worst_ratio = err / tol;
                bad += !(err <= tol);
            }
        CHECK(bad == 0, "coupling fwd %lld x %lld: %lld outside tolerance", (long long)N, (long long)HW, (long long)bad);
        /* inverse of the reference's forward output */
        std::vector<float> iw(n, NAN), iv(n, NAN);
        lt_coupling_inv(N, HW, b.data(), ow.data(), h.data(), scale, iw.data());
        LAUNCH(ltk_coupling_inv, dim3((unsigned)N), dim3(64), 0, N, HW, (const float *)b.data(), (const float *)ow.data(),
               (const float *)h.data(), scale, iv.data());
        bad = 0;
        for (int64_t e = 0; e < n; e++) bad += !lt_t_agree(iv[e], iw[e], ULP * fabs((double)iw[e]) + K);
        CHECK(bad == 0, "coupling inv %lld x %lld: %lld outside tolerance", (long long)N, (long long)HW, (long long)bad);
        /* backward */
        std::vector<float> dyw(n, NAN), dhw(2 * n, NAN), dy(n, NAN), dh(2 * n, NAN);
        std::vector<double> part(N, NAN);
        double dsw = 0.25, ds = 0.25;
        const double *dl = cs.with_ld ? dld.data() : nullptr;
        lt_coupling_bwd(N, HW, b.data(), y.data(), h.data(), scale, dout.data(), dl, dyw.data(), dhw.data(), &dsw);
        LAUNCH(ltk_coupling_bwd, dim3((unsigned)N), dim3(CP_THREADS), 0, N, HW, (const float *)b.data(), (const float *)y.data(),
               (const float *)h.data(), scale, (const float *)dout.data(), dl, dy.data(), dh.data(), part.data());
        LAUNCH(ltk_coupling_dscale, dim3(1), dim3(32), 0, N, (const double *)part.data(), &ds);
        bad = 0;
        for (int64_t e = 0; e < n; e++) bad += !lt_t_agree(dy[e], dyw[e], ULP * fabs((double)dyw[e]) + K);
        for (int64_t e = 0; e < 2 * n; e++) bad += !lt_t_agree(dh[e], dhw[e], ULP * fabs((double)dhw[e]) + K);
        double mag = 0.25;
        for (int64_t i = 0; i < N; i++)
            for (int64_t j = 0; j < HW; j++) {
                double th = tanh((double)h[2 * i * HW + j]), e = exp(th * scale * (1 - b[j]));
                mag += fabs(((double)dout[i * HW + j] * y[i * HW + j] * e + (dl ? dl[i] : 0)) * (1 - b[j]) * th);
            }
        double err = fabs(ds - dsw), tol = 0x1p-53 * (double)(HW + N + 40) * mag;
        if (err / tol > lt_t_worst_ratio) lt_t_worst_ratio = err / tol;
        bad += !(err <= tol);
        CHECK(bad == 0, "coupling bwd %lld x %lld: %lld outside tolerance (dscale %.17g vs %.17g)", (long long)N, (long long)HW,
              (long long)bad, ds, dsw);
        {   /* the device-scale kernels (*scale in memory) give the by-value kernels' bits */
            std::vector<float> o2(n, NAN), dy2(n, NAN), dh2(2 * n, NAN);
            std::vector<double> ld2(N, NAN), part2(N, NAN);
            LAUNCH(ltk_coupling_fwd_ds, dim3((unsigned)N), dim3(CP_THREADS), 0, N, HW, (const float *)b.data(), (const float *)y.data(),
                   (const float *)h.data(), &scale, o2.data(), cs.with_ld ? ld2.data() : nullptr);
            LAUNCH(ltk_coupling_bwd_ds, dim3((unsigned)N), dim3(CP_THREADS), 0, N, HW, (const float *)b.data(), (const float *)y.data(),
                   (const float *)h.data(), &scale, (const float *)dout.data(), dl, dy2.data(), dh2.data(), part2.data());
            CHECK(memcmp(o2.data(), o.data(), 4 * n) == 0 && (!cs.with_ld || memcmp(ld2.data(), ld.data(), 8 * N) == 0),
                  "coupling fwd_ds %lld x %lld differs from fwd", (long long)N, (long long)HW);
            CHECK(memcmp(dy2.data(), dy.data(), 4 * n) == 0 && memcmp(dh2.data(), dh.data(), 8 * n) == 0 && memcmp(part2.data(), part.data(), 8 * N) == 0,
                  "coupling bwd_ds %lld x %lld differs from bwd", (long long)N, (long long)HW);
        }
    }
    printf("largest error / tolerance: %.3f\n", lt_t_worst_ratio);
    return lt_test_summary();
}
