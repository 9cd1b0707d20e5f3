/* activation.cu in the CUDA emulation against a double reference written here (the CPU activation kernels are
 * being written in parallel; compare with them once they land). Tolerance: relu / leaky exact (one product);
 * tanh and sigmoid 4 ulp of the value (tanhf / expf are within 2 ulp); backward: 4 ulp of dy * f'.
 * Run: build/activation_cuda_test */
#include <vector>

#include "../activation/activation.cu"
#include "lt_cuda_test.h"

static double f(int kind, double x, double a) {
    switch (kind) {
    case 0: return x > 0 ? x : (x == x ? 0 : x);
    case 1: return x > 0 ? x : a * x;
    case 2: return tanh(x);
    default: return 1 / (1 + exp(-x));
    }
}
static double df(int kind, double in, double a) {
    switch (kind) {
    case 0: return in > 0 ? 1 : 0;
    case 1: return in > 0 ? 1 : a;
    case 2: return 1 - in * in;
    default: return in * (1 - in);
    }
}

int main() {
    const double U = 1.0 / (1 << 24);
    uint64_t s = 3;
    for (int kind = 0; kind < 4; kind++)
        for (int64_t n : {1, 7, 9, 37, 3000}) {
            const float alpha = 0.2f;
            std::vector<float> x(n), y(n, NAN), dy(n), dx(n, NAN);
            for (int64_t i = 0; i < n; i++) x[i] = lt_t_uniform(&s) * 12.0f;
            if (n > 8) { x[0] = 88.0f; x[1] = -88.0f; x[2] = 0.0f; x[3] = -0.0f; }
            lt_t_fill(dy.data(), n, &s);
            LAUNCH(ltk_act_fwd, dim3(lt_cu_blocks(n, 256)), dim3(256), 0, kind, n, alpha, (const float *)x.data(), y.data());
            const std::vector<float> &in = kind >= 2 ? y : x;
            LAUNCH(ltk_act_bwd, dim3(lt_cu_blocks(n, 256)), dim3(256), 0, kind, n, alpha, (const float *)in.data(),
                   (const float *)dy.data(), dx.data());
            int64_t bad = 0;
            for (int64_t i = 0; i < n; i++) {
                double fy = f(kind, x[i], alpha), fdx = dy[i] * df(kind, in[i], alpha);
                double tf = kind < 2 ? U * fabs(fy) : 4 * U * fabs(fy) + 1e-37;
                double tb = 4 * U * (fabs(dy[i]) * (fabs(df(kind, in[i], alpha)) + fabs((double)in[i]))) + 1e-37;
                if (!(lt_t_agree(y[i], fy, tf + 1e-45) && lt_t_agree(dx[i], fdx, tb)) && bad++ < 3)
                    fprintf(stderr, "  kind %d x=%g: y %.9g want %.9g, dx %.9g want %.9g\n", kind, x[i], y[i], fy, dx[i], fdx);
            }
            CHECK(bad == 0, "activation kind %d n=%lld: %lld outside tolerance", kind, (long long)n, (long long)bad);
        }
    return lt_test_summary();
}
