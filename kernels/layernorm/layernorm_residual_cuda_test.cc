/* layernorm.cu's fused residual kernels in the CUDA emulation:
 *   1. the SAME BITS as the unfused device sequence GPT ran before: ltk_axpby(1, a, 1, s = copy(x)) (F.add on CUDA),
 *      ltk_layernorm_fwd(s); backward ltk_layernorm_bwd_dwdb_part / _sum and ltk_layernorm_bwd_dx into a fresh dx,
 *      then ltk_axpby(1, dx, 1, copy(ds)) (the graph's gradient add). s, y, mean, rstd, dx, dw, db by memcmp.
 *   2. s against the CPU's lt_layernorm_residual_fwd exactly (one float add), y and dx against the CPU op at ISA ref
 *      (which sums in double) within layernorm_cuda_test's bounds ((2 + log2 C) * 8 u of the terms' magnitudes).
 * Shapes: C at warp tails (1, 3, 7, 33, 45, 768), rows that do not fill a block, rows over one dw/db chunk,
 * offset-heavy rows, in place s == x and dx == dy. Run: build/layernorm_residual_cuda_test */
#include <vector>

#include "../layernorm/layernorm.cu"
#include "../elementwise/elementwise.cu"
#include "lt_cuda_test.h"

int main() {
    lt_set_isa(LT_ISA_REF);
    const double U = 1.0 / (1 << 24);
    uint64_t rs = 29;
    struct { int64_t rows, c; float offset; int in_place; } cases[] = {{1, 1, 0, 0}, {3, 7, 0, 1}, {9, 33, 0, 0},
                                                                        {17, 64, 100, 1}, {300, 45, 0, 0}, {5, 768, 3, 0},
                                                                        {530, 16, 0, 1}, {11, 3, 0, 0}};
    for (auto cs : cases) {
        const int64_t R = cs.rows, C = cs.c, n = R * C;
        const unsigned rb = (unsigned)((R + 7) / 8), eb = lt_cu_blocks(n, 256);
        std::vector<float> x(n), a(n), w(C), b(C), dy(n), ds(n);
        lt_t_fill(x.data(), n, &rs);
        for (float &v : x) v += cs.offset;
        lt_t_fill(a.data(), n, &rs);
        lt_t_fill(w.data(), C, &rs);
        lt_t_fill(b.data(), C, &rs);
        lt_t_fill(dy.data(), n, &rs);
        lt_t_fill(ds.data(), n, &rs);
        std::vector<float> dw0(C), db0(C);
        lt_t_fill(dw0.data(), C, &rs);
        lt_t_fill(db0.data(), C, &rs);
        /* unfused, on the device */
        std::vector<float> su = x, yu(n, NAN), mu(R, NAN), ru(R, NAN);
        LAUNCH(ltk_axpby, dim3(eb), dim3(256), 0, n, 1.0f, (const float *)a.data(), 1.0f, su.data());
        LAUNCH(ltk_layernorm_fwd, dim3(rb), dim3(256), 0, R, C, 1e-5f, (const float *)su.data(), (const float *)w.data(),
               (const float *)b.data(), yu.data(), mu.data(), ru.data());
        const int64_t chunks = (R + LN_CHUNK - 1) / LN_CHUNK;
        std::vector<float> part(chunks * 2 * C, NAN), dxl(n, NAN), dwu = dw0, dbu = db0;
        LAUNCH(ltk_layernorm_bwd_dwdb_part, dim3((unsigned)((C + 127) / 128), (unsigned)chunks), dim3(128), 0, R, C,
               (const float *)su.data(), (const float *)mu.data(), (const float *)ru.data(), (const float *)dy.data(), part.data());
        LAUNCH(ltk_layernorm_bwd_dwdb_sum, dim3((unsigned)((C + 127) / 128)), dim3(128), 0, chunks, C,
               (const float *)part.data(), dwu.data(), dbu.data());
        LAUNCH(ltk_layernorm_bwd_dx, dim3(rb), dim3(256), 0, R, C, (const float *)su.data(), (const float *)w.data(),
               (const float *)mu.data(), (const float *)ru.data(), (const float *)dy.data(), dxl.data());
        std::vector<float> dxu = ds;
        LAUNCH(ltk_axpby, dim3(eb), dim3(256), 0, n, 1.0f, (const float *)dxl.data(), 1.0f, dxu.data());
        /* fused, on the device */
        std::vector<float> xin = x, sf(n, NAN), y(n, NAN), m(R, NAN), r(R, NAN);
        float *sp = cs.in_place ? xin.data() : sf.data();
        LAUNCH(ltk_layernorm_residual_fwd, dim3(rb), dim3(256), 0, R, C, 1e-5f, (const float *)xin.data(),
               (const float *)a.data(), (const float *)w.data(), (const float *)b.data(), sp, y.data(), m.data(), r.data());
        CHECK(!memcmp(sp, su.data(), n * 4) && !memcmp(y.data(), yu.data(), n * 4) && !memcmp(m.data(), mu.data(), R * 4) &&
              !memcmp(r.data(), ru.data(), R * 4), "residual fwd %lld x %lld: not the bits of axpby then layernorm",
              (long long)R, (long long)C);
        std::vector<float> part2(chunks * 2 * C, NAN), dx(n, NAN), dw = dw0, db = db0;
        if (cs.in_place) dx = dy; /* dx == dy */
        const float *dyp = cs.in_place ? dx.data() : dy.data();
        LAUNCH(ltk_layernorm_bwd_dwdb_part, dim3((unsigned)((C + 127) / 128), (unsigned)chunks), dim3(128), 0, R, C,
               (const float *)sp, (const float *)m.data(), (const float *)r.data(), dyp, part2.data());
        LAUNCH(ltk_layernorm_bwd_dwdb_sum, dim3((unsigned)((C + 127) / 128)), dim3(128), 0, chunks, C,
               (const float *)part2.data(), dw.data(), db.data());
        LAUNCH(ltk_layernorm_residual_bwd_dx, dim3(rb), dim3(256), 0, R, C, (const float *)sp, (const float *)w.data(),
               (const float *)m.data(), (const float *)r.data(), dyp, (const float *)ds.data(), dx.data());
        CHECK(!memcmp(dx.data(), dxu.data(), n * 4) && !memcmp(dw.data(), dwu.data(), C * 4) && !memcmp(db.data(), dbu.data(), C * 4),
              "residual bwd %lld x %lld: not the bits of layernorm's backward then axpby", (long long)R, (long long)C);
        /* against the CPU op at ISA ref */
        std::vector<float> sc(n), yc(n), mc(R), rc(R), dxc(n), dwc(C, 0.0f), dbc(C, 0.0f);
        CHECK(lt_layernorm_residual_fwd(R, C, 1e-5f, x.data(), a.data(), w.data(), b.data(), sc.data(), yc.data(),
                                        mc.data(), rc.data()) == LT_OK, "cpu fwd");
        CHECK(lt_layernorm_residual_bwd(R, C, sc.data(), w.data(), mc.data(), rc.data(), dy.data(), ds.data(), dxc.data(),
                                        dwc.data(), dbc.data()) == LT_OK, "cpu bwd");
        CHECK(!memcmp(sp, sc.data(), n * 4), "residual fwd %lld x %lld: s is not the CPU's x + a", (long long)R, (long long)C);
        const double k = (2 + log2((double)C)) * 8 * U;
        int64_t bad = 0;
        for (int64_t i = 0; i < R; i++) {
            double sa = 0, sb = 0;
            for (int64_t j = 0; j < C; j++) {
                double xh = fabs(((double)sc[i * C + j] - mc[i]) * rc[i]), dn = fabs((double)dy[i * C + j] * w[j]);
                sa += dn / C;
                sb += dn * xh / C;
            }
            const double cond = 1 + fabs((double)mc[i]) * rc[i];
            for (int64_t j = 0; j < C; j++) {
                const int64_t e = i * C + j;
                double xh = fabs(((double)sc[e] - mc[i]) * rc[i]);
                double ty = k * (xh * fabs(w[j]) + fabs(b[j]) + fabs((double)sc[e]) * rc[i] * fabs(w[j]));
                double tdx = k * rc[i] * (fabs((double)dy[e] * w[j]) + sa + xh * sb) * cond + 2 * U * fabs((double)dxc[e]);
                bad += !lt_t_agree(y[e], yc[e], ty + 1e-30) + !lt_t_agree(dx[e], dxc[e], tdx + 1e-30);
            }
        }
        CHECK(bad == 0, "residual %lld x %lld: %lld values outside tolerance of the CPU op", (long long)R, (long long)C, (long long)bad);
    }
    printf("largest error / tolerance: %.3f\n", lt_t_worst_ratio);
    return lt_test_summary();
}
