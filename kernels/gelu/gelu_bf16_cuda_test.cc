/* gelu.cu's bf16-output variant in the CUDA emulation: ltk_gelu_fwd_bf16 (GPT's MLP GELU at --precision bf16 writing the
 * projection's bf16 A operand). On n = 4018 (a grid-stride loop with a capped grid: several elements per thread, a
 * tail) over the tails, +-inf and NaN of gelu_cuda_test: y bit-identical to ltk_gelu_fwd's (unchanged), y within
 * gelu_cuda_test's tolerance of the C reference lt_gelu_fwd (double inside, at ISA ref), and y16 exactly the bf16
 * rounding to nearest even of y (lt_t_ref_bf16; NaN: a quiet NaN). Run: build/gelu_bf16_cuda_test */
#include <cstring>
#include <vector>

#include "../gelu/gelu.cu"
#include "lt_cuda_test.h"

int main() {
    lt_set_isa(LT_ISA_REF);
    const double U = 1.0 / (1 << 24);
    uint64_t s = 7;
    std::vector<float> x;
    for (int i = 0; i < 4000; i++) x.push_back(lt_t_uniform(&s) * 9.0f);
    for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 1.0f, -1.0f, 39.9f, 40.0f, 41.0f, -12.0f, -13.5f, -39.0f, -41.0f, 1e30f,
                    -1e30f, INFINITY, -INFINITY, NAN})
        x.push_back(v);
    const int64_t n = (int64_t)x.size();
    std::vector<float> y0(n, NAN), y(n, NAN), yr(n, NAN);
    std::vector<__nv_bfloat16> y16(n);
    LAUNCH(ltk_gelu_fwd, dim3(lt_cu_blocks(n, 256)), dim3(256), 0, n, (const float *)x.data(), y0.data());
    LAUNCH(ltk_gelu_fwd_bf16, dim3(lt_cu_blocks(n, 256)), dim3(256), 0, n, (const float *)x.data(), y.data(), y16.data());
    lt_gelu_fwd(n, x.data(), yr.data());
    int64_t bad = 0, same = 0, rounded = 0;
    for (int64_t i = 0; i < n; i++) {
        same += std::memcmp(&y[i], &y0[i], 4) == 0;
        rounded += y16[i].__x == lt_t_ref_bf16(y[i]);
        const double c = x[i] < -40 ? -40 : x[i] > 40 ? 40 : x[i], k = (8 + 2 * c * c) * U;
        if (!lt_t_agree(y[i], yr[i], k * fabs(yr[i]) + 1e-37) && bad++ < 5) fprintf(stderr, "  x=%g: y %.9g, reference %.9g\n", x[i], y[i], yr[i]);
    }
    CHECK(same == n, "gelu bf16: %lld of %lld y differ from ltk_gelu_fwd's", (long long)(n - same), (long long)n);
    CHECK(bad == 0, "gelu bf16: %lld of %lld y outside tolerance of lt_gelu_fwd", (long long)bad, (long long)n);
    CHECK(rounded == n, "gelu bf16: %lld of %lld y16 not bf16(y) to nearest even", (long long)(n - rounded), (long long)n);
    printf("largest error / tolerance: %.3f\n", lt_t_worst_ratio);
    return lt_test_summary();
}
