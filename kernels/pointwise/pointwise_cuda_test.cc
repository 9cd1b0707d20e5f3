/* pointwise.cu in the CUDA emulation against the formulas of F.pointwise (autograd/F.java) evaluated here in double
 * and rounded once: bit-exact (the same double operations; glibc's exp / log serve both sides here, on a GPU CUDA's
 * are within 1 ulp in double, which the Java tests' tolerances cover). Every tail length, NaN-prefilled outputs, the
 * backward in place (dx aliasing dy), the edge values (0, -0, negative, huge), and diag's forward / backward.
 * Run: build/pointwise_cuda_test */
#include <cmath>
#include <cstring>
#include <vector>

#include "../pointwise/pointwise.cu"
#include "lt_cuda_test.h"

static double f(int k, double v) {
    switch (k) {
    case 0: return std::sqrt(v);
    case 1: return 1 / std::sqrt(v);
    case 2: return v * v;
    case 3: return std::exp(v);
    default: return std::log(v);
    }
}

static double df(int k, double v) {
    switch (k) {
    case 0: return 0.5 / std::sqrt(v);
    case 1: return -0.5 / (v * std::sqrt(v));
    case 2: return 2 * v;
    case 3: return std::exp(v);
    default: return 1 / v;
    }
}

/* bitwise equal, NaN equal to NaN */
static bool same(const std::vector<float> &a, const std::vector<float> &b) {
    for (size_t i = 0; i < a.size(); i++)
        if (!(std::memcmp(&a[i], &b[i], 4) == 0 || (std::isnan(a[i]) && std::isnan(b[i])))) return false;
    return true;
}

int main() {
    uint64_t s = 5;
    for (int k = 0; k < 5; k++) {
        for (int64_t n : {1, 3, 7, 8, 9, 15, 16, 37, 1000, 5000}) {
            std::vector<float> x(n), dy(n), want(n), got(n, NAN), dwant(n), dgot(n);
            lt_t_fill(x.data(), n, &s);
            lt_t_fill(dy.data(), n, &s);
            for (int64_t i = 0; i < n; i++) {
                if (k != 2 && k != 3) x[i] = std::fabs(x[i]) * 3 + 1e-3f;   /* sqrt, rsqrt, log: the domain */
                if (k == 3) x[i] *= 40;                                        /* exp: over/underflow in float */
            }
            if (n >= 8) { x[0] = 0.0f; x[1] = -0.0f; x[2] = k == 3 ? 89.0f : 1e30f; x[3] = k == 3 ? -104.0f : 1e-30f; }
            if (n >= 8 && k != 2 && k != 3) x[4] = -1.0f;                       /* NaN both sides */
            for (int64_t i = 0; i < n; i++) {
                want[i] = (float)f(k, (double)x[i]);
                dwant[i] = (float)((double)dy[i] * df(k, (double)x[i]));
            }
            LAUNCH(ltk_pointwise_fwd, dim3(lt_cu_blocks(n, 256)), dim3(256), 0, (int32_t)k, n, (const float *)x.data(), got.data());
            CHECK(same(got, want), "pointwise_fwd kind %d n=%lld", k, (long long)n);
            dgot = dy;   /* in place: dx aliases dy */
            LAUNCH(ltk_pointwise_bwd, dim3(lt_cu_blocks(n, 256)), dim3(256), 0, (int32_t)k, n, (const float *)x.data(),
                   (const float *)dgot.data(), dgot.data());
            CHECK(same(dgot, dwant), "pointwise_bwd kind %d n=%lld", k, (long long)n);
        }
    }
    for (int64_t c : {1, 3, 7, 16, 37}) {
        std::vector<float> v(c), m(c * c, NAN), want(c * c, 0.0f), g(c * c), d(c, NAN), dwant(c);
        lt_t_fill(v.data(), c, &s);
        lt_t_fill(g.data(), c * c, &s);
        for (int64_t i = 0; i < c; i++) { want[i * c + i] = v[i]; dwant[i] = g[i * c + i]; }
        LAUNCH(ltk_diag_fwd, dim3(lt_cu_blocks(c * c, 256)), dim3(256), 0, c, (const float *)v.data(), m.data());
        CHECK(same(m, want), "diag_fwd c=%lld", (long long)c);
        LAUNCH(ltk_diag_bwd, dim3(1), dim3(256), 0, c, (const float *)g.data(), d.data());
        CHECK(same(d, dwant), "diag_bwd c=%lld", (long long)c);
    }
    return lt_test_summary();
}
