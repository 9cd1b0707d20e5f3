/* adamw.cu in the CUDA emulation against lt_adamw at ISA ref (adamw_ref.c), three steps, lengths at every tail.
 * The constants are computed here exactly as adamw.c computes them (in double, rounded to float); the Java backend
 * does the same; ltk_adamw_dscale (the scale read from device memory) must give ltk_adamw's bits. Tolerance per element: 8 u of each term of the update (nvcc fuses the moment updates into fmas;
 * adamw_test.c derives the same kind of bound from counting roundings). Run: build/adamw_cuda_test */
#include <cstring>
#include <vector>

#include "../adamw/adamw.cu"
#include "lt_cuda_test.h"

static ltk_adamw_consts consts(const lt_adamw_desc &d) {
    const double t = (double)d.step, b1 = d.beta1, b2 = d.beta2;
    return {d.grad_scale, (float)(1.0 - (double)d.lr * d.weight_decay), d.beta1, (float)(1.0 - b1), d.beta2,
            (float)(1.0 - b2), (float)(d.lr / (1.0 - pow(b1, t))), (float)sqrt(1.0 - pow(b2, t)), d.eps};
}

int main() {
    lt_set_isa(LT_ISA_REF);
    const double U = 1.0 / (1 << 24);
    uint64_t s = 17;
    for (int64_t n : {1, 3, 8, 9, 37, 1000, 4099}) {
        std::vector<float> p(n), g(n), m(n, 0.0f), v(n, 0.0f);
        lt_t_fill(p.data(), n, &s);
        std::vector<float> p2 = p, m2 = m, v2 = v;
        for (int step = 1; step <= 3; step++) {
            lt_t_fill(g.data(), n, &s);
            if (n > 4) { g[0] = 0.0f; g[1] = 1e-20f; g[2] = 1e4f; }
            lt_adamw_desc d = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 0.5f, step};
            std::vector<float> pw = p, mw = m, vw = v; /* reference step from the kernel's previous state */
            lt_adamw(&d, n, pw.data(), g.data(), mw.data(), vw.data());
            std::vector<float> p3 = p, m3 = m, v3 = v; /* the same state for ltk_adamw_dscale */
            std::vector<float> p4 = p, m4 = m, v4 = v, p5 = p, m5 = m, v5 = v; /* and for ltk_adamw_dconsts (scale null / in memory) */
            LAUNCH(ltk_adamw, dim3(lt_cu_blocks(n, 256)), dim3(256), 0, consts(d), n, p.data(), (const float *)g.data(),
                   m.data(), v.data());
            {   /* the device-scale kernel (*scale in memory) gives the by-value kernel's bits */
                ltk_adamw_consts k0 = consts(d);
                const float sc = k0.grad_scale;
                k0.grad_scale = 7.0f; /* ignored by ltk_adamw_dscale */
                LAUNCH(ltk_adamw_dscale, dim3(lt_cu_blocks(n, 256)), dim3(256), 0, k0, &sc, n, p3.data(), (const float *)g.data(), m3.data(), v3.data());
                CHECK(memcmp(p3.data(), p.data(), 4 * n) == 0 && memcmp(m3.data(), m.data(), 4 * n) == 0 && memcmp(v3.data(), v.data(), 4 * n) == 0,
                      "adamw_dscale n=%lld step %d differs from ltk_adamw", (long long)n, step);
                /* the constants in memory too (a CUDA graph's step): null scale takes k->grad_scale, else *scale */
                const ltk_adamw_consts k1 = consts(d);
                LAUNCH(ltk_adamw_dconsts, dim3(lt_cu_blocks(n, 256)), dim3(256), 0, &k1, (const float *)nullptr, n, p4.data(),
                       (const float *)g.data(), m4.data(), v4.data());
                CHECK(memcmp(p4.data(), p.data(), 4 * n) == 0 && memcmp(m4.data(), m.data(), 4 * n) == 0 && memcmp(v4.data(), v.data(), 4 * n) == 0,
                      "adamw_dconsts (k->grad_scale) n=%lld step %d differs from ltk_adamw", (long long)n, step);
                LAUNCH(ltk_adamw_dconsts, dim3(lt_cu_blocks(n, 256)), dim3(256), 0, (const ltk_adamw_consts *)&k0, &sc, n, p5.data(),
                       (const float *)g.data(), m5.data(), v5.data());
                CHECK(memcmp(p5.data(), p.data(), 4 * n) == 0 && memcmp(m5.data(), m.data(), 4 * n) == 0 && memcmp(v5.data(), v.data(), 4 * n) == 0,
                      "adamw_dconsts (*scale) n=%lld step %d differs from ltk_adamw", (long long)n, step);
            }
            CHECK(lt_cu_close("m", m.data(), mw.data(), n, 1e-30, 4 * U), "adamw m n=%lld step %d", (long long)n, step);
            CHECK(lt_cu_close("v", v.data(), vw.data(), n, 1e-30, 4 * U), "adamw v n=%lld step %d", (long long)n, step);
            /* p = p*decay - step_size * m / denom: 8 u of |p| plus 8 u of the update (<= ~lr / (1 - b1^t)) */
            CHECK(lt_cu_close("p", p.data(), pw.data(), n, 8 * U * 1e-3 / (1 - pow(0.9, step)) * 4, 8 * U),
                  "adamw p n=%lld step %d", (long long)n, step);
        }
    }
    return lt_test_summary();
}
