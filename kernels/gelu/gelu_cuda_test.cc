/* gelu.cu in the CUDA emulation against a double-precision GELU (as gelu_ref.c computes it): tails, +-inf, NaN,
 * the deep negative tail. Tolerance: (8 + 2 x^2) ulp of each term of the float formula. 8: erfcf and expf are within a
 * few ulp on a GPU and in glibc, plus one rounding per product. x^2: the arguments -x/sqrt2 and -x^2/2 are rounded
 * to float first, and erfc / exp amplify a relative argument error e by 2 z^2 e and |arg| e: at x = -8 the float
 * kernel is ~70 ulp from the exact value (the CPU reference computes in double and is within 1 ulp; a GPU variant in
 * double would be too, at FP64 throughput). ltk_gelu_fwd_bf16 (GPT's MLP GELU at --precision bf16, writing the
 * projection's bf16 A operand too): y bit-identical to ltk_gelu_fwd's, y16 exactly the bf16 rounding to nearest even of y
 * (lt_t_ref_bf16, the bit-level definition; NaN a quiet NaN). Run: build/gelu_cuda_test */
#include <cstring>
#include <vector>

#include "../gelu/gelu.cu"
#include "lt_cuda_test.h"

int main() {
    const double U = 1.0 / (1 << 24);
    uint64_t s = 5;
    std::vector<float> x;
    for (int i = 0; i < 4000; i++) x.push_back(lt_t_uniform(&s) * 9.0f);
    for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 1.0f, -1.0f, 39.9f, 40.0f, 41.0f, -12.0f, -13.5f, -39.0f, -41.0f, 1e30f,
                    -1e30f, INFINITY, -INFINITY, NAN})
        x.push_back(v);
    const int64_t n = (int64_t)x.size();
    std::vector<float> y(n, NAN), dy(n), dx(n, NAN);
    lt_t_fill(dy.data(), n, &s);
    LAUNCH(ltk_gelu_fwd, dim3(lt_cu_blocks(n, 256)), dim3(256), 0, n, (const float *)x.data(), y.data());
    LAUNCH(ltk_gelu_bwd, dim3(lt_cu_blocks(n, 256)), dim3(256), 0, n, (const float *)x.data(), (const float *)dy.data(),
           dx.data());
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        const double xi = x[i], c = xi < -40 ? -40 : xi > 40 ? 40 : xi;
        const double cdf = 0.5 * erfc(-xi * M_SQRT1_2), pdf = exp(-0.5 * c * c) * 0.39894228040143267794;
        const double fy = c == 40 ? xi : c * cdf, fdx = dy[i] * (cdf + c * pdf);
        const double k = (8 + 2 * c * c) * U, tf = k * fabs(fy) + 1e-37, tb = k * fabs(dy[i]) * (cdf + fabs(c * pdf)) + 1e-37;
        int ok = lt_t_agree(y[i], fy, tf) && lt_t_agree(dx[i], fdx, tb);
        if (!ok && bad++ < 5)
            fprintf(stderr, "  x=%g: y %.9g want %.9g, dx %.9g want %.9g\n", xi, y[i], fy, dx[i], fdx);
    }
    CHECK(bad == 0, "gelu: %lld of %lld outside tolerance", (long long)bad, (long long)n);
    std::vector<float> yb(n, NAN);
    std::vector<__nv_bfloat16> y16(n);
    LAUNCH(ltk_gelu_fwd_bf16, dim3(lt_cu_blocks(n, 256)), dim3(256), 0, n, (const float *)x.data(), yb.data(), y16.data());
    int64_t same = 0, rounded = 0;
    for (int64_t i = 0; i < n; i++) {
        same += std::memcmp(&yb[i], &y[i], 4) == 0;
        rounded += y16[i].__x == lt_t_ref_bf16(yb[i]);
    }
    CHECK(same == n, "gelu bf16: %lld of %lld y differ from ltk_gelu_fwd's", (long long)(n - same), (long long)n);
    CHECK(rounded == n, "gelu bf16: %lld of %lld y16 not bf16(y) to nearest even", (long long)(n - rounded), (long long)n);
    printf("largest error / tolerance: %.3f\n", lt_t_worst_ratio);
    return lt_test_summary();
}
