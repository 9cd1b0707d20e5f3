/* layernorm.cu's bf16-output variants in the CUDA emulation: ltk_layernorm_fwd_bf16 and ltk_layernorm_residual_fwd_bf16
 * (GPT's LayerNorms at --precision bf16 writing the next linear's bf16 A operand). On odd shapes (C at warp tails, rows
 * that do not fill a block, offset-heavy rows): y, mean, rstd (and s) bit-identical to ltk_layernorm_fwd's /
 * ltk_layernorm_residual_fwd's (the fp32 kernels, unchanged); y within layernorm_cuda_test's tolerance of the C reference
 * lt_layernorm_fwd (at ISA ref, summing in double) on x, or on s = x + a; y16 exactly the bf16 rounding to nearest even
 * of y (lt_t_ref_bf16, the bit-level definition; a truncating y16 fails on about half the elements); the residual
 * variant in place (s = x) too. Run: build/layernorm_bf16_cuda_test */
#include <cstring>
#include <vector>

#include "../layernorm/layernorm.cu"
#include "lt_cuda_test.h"

static uint32_t bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

/* Elements where got differs from want bit for bit. */
static int64_t differ(const std::vector<float> &got, const std::vector<float> &want) {
    int64_t bad = 0;
    for (size_t i = 0; i < got.size(); i++) bad += bits(got[i]) != bits(want[i]);
    return bad;
}

/* Elements of y16 that are not the bf16 rounding (to nearest even) of y. */
static int64_t not_rounded(const std::vector<__nv_bfloat16> &y16, const std::vector<float> &y) {
    int64_t bad = 0;
    for (size_t i = 0; i < y.size(); i++) bad += y16[i].__x != lt_t_ref_bf16(y[i]);
    return bad;
}

/* Elements of y outside layernorm_cuda_test's tolerance of the C reference's LayerNorm of x (rows x C). */
static int64_t off_reference(const std::vector<float> &y, const std::vector<float> &x, const std::vector<float> &w,
                             const std::vector<float> &b, int64_t R, int64_t C, float offset) {
    const double U = 1.0 / (1 << 24), k = (2 + log2((double)C)) * 8 * U;
    std::vector<float> yw(R * C), mw(R), rw(R);
    lt_layernorm_fwd(R, C, 1e-5f, x.data(), w.data(), b.data(), yw.data(), mw.data(), rw.data());
    int64_t bad = 0;
    for (int64_t i = 0; i < R; i++)
        for (int64_t j = 0; j < C; j++) {
            const double xh = fabs(((double)x[i * C + j] - mw[i]) * rw[i]);
            const double t = k * (xh * fabs(w[j]) + fabs(b[j]) + (fabs((double)x[i * C + j]) + fabs(offset)) * rw[i] * fabs(w[j]));
            bad += !lt_t_agree(y[i * C + j], yw[i * C + j], t + 1e-30);
        }
    return bad;
}

int main() {
    lt_set_isa(LT_ISA_REF);
    uint64_t s = 31;
    struct { int64_t rows, c; float offset; } cases[] = {{1, 1, 0}, {3, 7, 0}, {9, 33, 0}, {17, 65, 100}, {301, 45, 0}, {5, 771, 3}};
    for (auto cs : cases) {
        const int64_t R = cs.rows, C = cs.c, n = R * C;
        const unsigned rb = (unsigned)((R + 7) / 8);
        std::vector<float> x(n), a(n), w(C), b(C);
        lt_t_fill(x.data(), n, &s);
        lt_t_fill(a.data(), n, &s);
        for (float &v : x) v += cs.offset;
        lt_t_fill(w.data(), C, &s);
        lt_t_fill(b.data(), C, &s);
        /* plain: the fp32 kernel, then the bf16 variant */
        std::vector<float> y0(n, NAN), m0(R, NAN), r0(R, NAN), y(n, NAN), m(R, NAN), r(R, NAN);
        std::vector<__nv_bfloat16> y16(n);
        LAUNCH(ltk_layernorm_fwd, dim3(rb), dim3(256), 0, R, C, 1e-5f, (const float *)x.data(), (const float *)w.data(),
               (const float *)b.data(), y0.data(), m0.data(), r0.data());
        LAUNCH(ltk_layernorm_fwd_bf16, dim3(rb), dim3(256), 0, R, C, 1e-5f, (const float *)x.data(), (const float *)w.data(),
               (const float *)b.data(), y.data(), m.data(), r.data(), y16.data());
        CHECK(differ(y, y0) + differ(m, m0) + differ(r, r0) == 0, "layernorm bf16 %lld x %lld: y / mean / rstd differ from ltk_layernorm_fwd",
              (long long)R, (long long)C);
        CHECK(off_reference(y, x, w, b, R, C, cs.offset) == 0, "layernorm bf16 %lld x %lld: y outside tolerance of lt_layernorm_fwd",
              (long long)R, (long long)C);
        int64_t nr = not_rounded(y16, y);
        CHECK(nr == 0, "layernorm bf16 %lld x %lld: %lld of y16 not bf16(y) to nearest even", (long long)R, (long long)C, (long long)nr);
        /* residual: s = x + a, y = LayerNorm(s); then in place (s over x) */
        std::vector<float> s0(n, NAN), ys0(n, NAN), sv(n, NAN), ys(n, NAN), su(n);
        std::vector<__nv_bfloat16> ys16(n);
        for (int64_t i = 0; i < n; i++) su[i] = x[i] + a[i];
        LAUNCH(ltk_layernorm_residual_fwd, dim3(rb), dim3(256), 0, R, C, 1e-5f, (const float *)x.data(), (const float *)a.data(),
               (const float *)w.data(), (const float *)b.data(), s0.data(), ys0.data(), m0.data(), r0.data());
        LAUNCH(ltk_layernorm_residual_fwd_bf16, dim3(rb), dim3(256), 0, R, C, 1e-5f, (const float *)x.data(), (const float *)a.data(),
               (const float *)w.data(), (const float *)b.data(), sv.data(), ys.data(), m.data(), r.data(), ys16.data());
        CHECK(differ(sv, s0) + differ(ys, ys0) + differ(m, m0) + differ(r, r0) == 0,
              "layernorm residual bf16 %lld x %lld: s / y / mean / rstd differ from ltk_layernorm_residual_fwd", (long long)R, (long long)C);
        CHECK(differ(sv, su) == 0, "layernorm residual bf16 %lld x %lld: s is not x + a", (long long)R, (long long)C);
        CHECK(off_reference(ys, su, w, b, R, C, cs.offset) == 0, "layernorm residual bf16 %lld x %lld: y outside tolerance of lt_layernorm_fwd(s)",
              (long long)R, (long long)C);
        nr = not_rounded(ys16, ys);
        CHECK(nr == 0, "layernorm residual bf16 %lld x %lld: %lld of y16 not bf16(y)", (long long)R, (long long)C, (long long)nr);
        std::vector<float> xi = x, yi(n, NAN);
        std::vector<__nv_bfloat16> yi16(n);
        LAUNCH(ltk_layernorm_residual_fwd_bf16, dim3(rb), dim3(256), 0, R, C, 1e-5f, (const float *)xi.data(), (const float *)a.data(),
               (const float *)w.data(), (const float *)b.data(), xi.data(), yi.data(), m.data(), r.data(), yi16.data());
        CHECK(differ(xi, s0) + differ(yi, ys0) == 0 && not_rounded(yi16, yi) == 0, "layernorm residual bf16 %lld x %lld in place (s = x)",
              (long long)R, (long long)C);
    }
    printf("largest error / tolerance: %.3f\n", lt_t_worst_ratio);
    return lt_test_summary();
}
