/* bce.cu in the CUDA emulation against lt_bce_logits at ISA ref (activation_ref.c's bce_chunk, 4096-element chunks
 * added in order). Lengths at warp / block / chunk tails (1, 7, 255, 257, 4095, 4097, 3 chunks + 5), hard logits
 * (+-88, +-30, 0, tiny), targets in [0, 1] and a constant target (t = NULL), dlogits NULL, dlogits in place over
 * the logits. Tolerance: loss within 2^-53 (min(n, 4096) + 2 chunks + 32) of the sum of |l_i| (the CPU adds a
 * chunk's terms one after another, error <= len u; the kernel 16 in order then an 8-level tree; chunk sums in order
 * on both; CUDA's double exp / log1p within 2 ulp of glibc's); dlogits within one float ulp of the reference (2^-23 |want|)
 * plus 2^-50 |dscale| (both round the same double formula once). Run: build/bce_cuda_test */
#include <vector>

#include "../bce/bce.cu"
#include "lt_cuda_test.h"

int main() {
    lt_set_isa(LT_ISA_REF);
    uint64_t s = 77;
    const int64_t lens[] = {1, 7, 255, 257, 4095, 4097, 3 * 4096 + 5};
    for (int64_t n : lens)
        for (int mode = 0; mode < 4; mode++) { /* 0 targets, 1 constant target, 2 no dlogits, 3 dlogits in place */
            std::vector<float> x(n), t(n);
            lt_t_fill(x.data(), n, &s);
            for (int64_t i = 0; i < n; i++) {
                x[i] *= 8;
                t[i] = 0.5f * (lt_t_uniform(&s) + 1);
            }
            const float hard[] = {88, -88, 30, -30, 0, 1e-30f, -1e-30f};
            for (int64_t i = 0; i < n && i < 7; i++) x[(i * 131) % n] = hard[i];
            const float *tp = mode == 1 ? nullptr : t.data();
            const float tc = 0.9f, dscale = 1.0f / (float)n;
            std::vector<float> dxw(n, NAN), dx(n, NAN);
            double lw = NAN, l = NAN;
            lt_bce_logits(n, x.data(), tp, tc, &lw, mode == 2 ? nullptr : dxw.data(), dscale);
            const int64_t chunks = (n + BCE_CHUNK - 1) / BCE_CHUNK;
            std::vector<double> part(chunks, NAN);
            std::vector<float> xd = x; /* the logits the kernel reads (overwritten in mode 3) */
            float *dxp = mode == 2 ? nullptr : mode == 3 ? xd.data() : dx.data();
            LAUNCH(ltk_bce_part, dim3((unsigned)chunks), dim3(BCE_THREADS), 0, n, (const float *)xd.data(), tp, tc, dxp,
                   dscale, part.data());
            LAUNCH(ltk_bce_total, dim3(1), dim3(32), 0, chunks, (const double *)part.data(), &l);
            double mag = 0;
            for (int64_t i = 0; i < n; i++) {
                double v = x[i], tt = tp ? tp[i] : tc;
                mag += fabs((v > 0 ? v : 0) - v * tt) + log1p(exp(-fabs(v)));
            }
            const double tol = 0x1p-53 * (double)((n < BCE_CHUNK ? n : BCE_CHUNK) + 2 * chunks + 32) * mag + 1e-300, err = fabs(l - lw);
            if (err / tol > lt_t_worst_ratio) lt_t_worst_ratio = err / tol;
            CHECK(err <= tol, "bce n=%lld mode %d: loss %.17g vs %.17g", (long long)n, mode, l, lw);
            if (mode != 2) {
                const float *got = mode == 3 ? xd.data() : dx.data();
                int64_t bad = 0;
                for (int64_t i = 0; i < n; i++)
                    bad += !lt_t_agree(got[i], dxw[i], 0x1p-23 * fabs((double)dxw[i]) + 0x1p-50 * dscale + 1e-37);
                CHECK(bad == 0, "bce n=%lld mode %d: %lld dlogits outside tolerance", (long long)n, mode, (long long)bad);
            }
        }
    printf("largest error / tolerance: %.3f\n", lt_t_worst_ratio);
    return lt_test_summary();
}
