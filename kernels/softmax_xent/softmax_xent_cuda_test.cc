/* softmax_xent.cu in the CUDA emulation against lt_softmax_xent at ISA ref (softmax_xent_ref.c): V at every tail
 * and above the block size, ignored rows (target -1), all-negative logits, +-88, ties, in place (dlogits = logits).
 * Tolerances: loss within 8 u (|M| + |log S| + |x_t|) + V u (float sum of V exps instead of double: <= V u
 * relative in S); dlogits within (V + 8) u of |p_j| dscale + 2 u dscale at the target. Run: build/softmax_xent_cuda_test */
#include <vector>

#include "../softmax_xent/softmax_xent.cu"
#include "lt_cuda_test.h"

int main() {
    lt_set_isa(LT_ISA_REF);
    const double U = 1.0 / (1 << 24);
    uint64_t s = 29;
    struct { int64_t n, v; int kind; } cases[] = {{1, 1, 0}, {3, 7, 0}, {4, 37, 1}, {5, 256, 2}, {6, 1000, 3}, {2, 3001, 0}};
    for (auto cs : cases) {
        const int64_t N = cs.n, V = cs.v, nv = N * V;
        std::vector<float> x(nv);
        std::vector<int32_t> t(N);
        for (int64_t e = 0; e < nv; e++) {
            float u = lt_t_uniform(&s) * 4.0f;
            x[e] = cs.kind == 1 ? -fabsf(u) - 50.0f : cs.kind == 2 ? (lt_t_next(&s) & 1 ? 88.0f : -88.0f) * (u > 0 ? 1 : 0.5f)
                   : cs.kind == 3 ? roundf(u) : u; /* kind 3: many ties */
        }
        for (int64_t i = 0; i < N; i++) t[i] = (int32_t)(lt_t_next(&s) % V);
        if (N > 2) t[1] = -1;
        for (int inplace = 0; inplace < 2; inplace++) {
            std::vector<float> lw(N, NAN), dw(nv, NAN), lg(N, NAN), dg(nv, NAN);
            lt_softmax_xent(N, V, x.data(), t.data(), lw.data(), dw.data(), 0.5f);
            if (inplace) dg = x;
            LAUNCH(ltk_softmax_xent, dim3((unsigned)N), dim3(256), 0, N, V, (const float *)(inplace ? dg.data() : x.data()),
                   (const int32_t *)t.data(), lg.data(), dg.data(), 0.5f);
            int64_t bad = 0;
            for (int64_t i = 0; i < N; i++) {
                float m = -INFINITY;
                for (int64_t j = 0; j < V; j++) m = fmaxf(m, x[i * V + j]);
                double tl = t[i] < 0 ? 0 : 8 * U * (fabs(m) + fabs(lw[i] - m) + fabs(x[i * V + t[i]]) + 1) + V * U;
                bad += !lt_t_agree(lg[i], lw[i], tl + 1e-30);
                for (int64_t j = 0; j < V; j++) {
                    double p = fabs(dw[i * V + j] + (j == t[i] ? 0.5 : 0.0));
                    bad += !lt_t_agree(dg[i * V + j], dw[i * V + j], (V + 8) * U * p + 2 * U * 0.5 + 1e-30);
                }
            }
            CHECK(bad == 0, "softmax_xent %lld x %lld kind %d inplace %d: %lld outside tolerance", (long long)N,
                  (long long)V, cs.kind, inplace, (long long)bad);
        }
    }
    printf("largest error / tolerance: %.3f\n", lt_t_worst_ratio);
    return lt_test_summary();
}
