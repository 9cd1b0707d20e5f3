/* layernorm.cu in the CUDA emulation against lt_layernorm_fwd / _bwd at ISA ref (layernorm_ref.c, which sums in
 * double). C at SIMD and warp tails, rows that do not fill a block, rows > one dw/db chunk, in-place dx = dy,
 * offset-heavy rows (x ~ 100 + noise: the two-pass variance must not cancel).
 * Tolerances: the kernel sums C floats per row in float (error <= C u |terms| in the worst case, ~ sqrt(C) u in
 * practice): y, dx within (2 + log2 C) * 8 u of the magnitude of their terms; dw, db sum `rows` terms in fixed
 * chunks: rows * 4 u of the sum of |terms|. Run: build/layernorm_cuda_test */
#include <vector>

#include "../layernorm/layernorm.cu"
#include "lt_cuda_test.h"

int main() {
    lt_set_isa(LT_ISA_REF);
    const double U = 1.0 / (1 << 24);
    uint64_t s = 23;
    struct { int64_t rows, c; float offset; } cases[] = {{1, 1, 0}, {3, 7, 0}, {9, 33, 0}, {17, 64, 100}, {300, 45, 0},
                                                          {5, 768, 3}, {530, 16, 0}};
    for (auto cs : cases) {
        const int64_t R = cs.rows, C = cs.c, n = R * C;
        std::vector<float> x(n), w(C), b(C), dy(n), y(n, NAN), yw(n, NAN), mean(R, NAN), rstd(R, NAN), mw(R), rw(R);
        lt_t_fill(x.data(), n, &s);
        for (float &v : x) v += cs.offset;
        lt_t_fill(w.data(), C, &s);
        lt_t_fill(b.data(), C, &s);
        lt_t_fill(dy.data(), n, &s);
        lt_layernorm_fwd(R, C, 1e-5f, x.data(), w.data(), b.data(), yw.data(), mw.data(), rw.data());
        const unsigned rb = (unsigned)((R + 7) / 8);
        LAUNCH(ltk_layernorm_fwd, dim3(rb), dim3(256), 0, R, C, 1e-5f, (const float *)x.data(), (const float *)w.data(),
               (const float *)b.data(), y.data(), mean.data(), rstd.data());
        const double k = (2 + log2((double)C)) * 8 * U;
        std::vector<double> ty(n), tdx(n);
        for (int64_t i = 0; i < R; i++)
            for (int64_t j = 0; j < C; j++) {
                double xh = fabs(((double)x[i * C + j] - mw[i]) * rw[i]);
                ty[i * C + j] = k * (xh * fabs(w[j]) + fabs(b[j]) + fabs((double)x[i * C + j]) * rw[i] * fabs(w[j]));
            }
        int64_t bad = 0;
        for (int64_t e = 0; e < n; e++) bad += !lt_t_agree(y[e], yw[e], ty[e] + 1e-30);
        for (int64_t i = 0; i < R; i++)
            bad += !lt_t_agree(mean[i], mw[i], k * (fabs(mw[i]) + fabs((double)cs.offset) + 1)) +
                   !lt_t_agree(rstd[i], rw[i], k * rw[i] * (1 + fabs((double)cs.offset) * rw[i]));
        CHECK(bad == 0, "layernorm fwd %lld x %lld: %lld outside tolerance", (long long)R, (long long)C, (long long)bad);
        /* backward from the reference's saved statistics, so only the backward's own error is measured */
        std::vector<float> dx(n, NAN), dxw(n, NAN), dw(C), db(C), dww(C), dbw(C);
        lt_t_fill(dw.data(), C, &s);
        lt_t_fill(db.data(), C, &s);
        dww = dw;
        dbw = db;
        lt_layernorm_bwd(R, C, x.data(), w.data(), mw.data(), rw.data(), dy.data(), dxw.data(), dww.data(), dbw.data());
        dx = dy; /* in place: dx = dy */
        LAUNCH(ltk_layernorm_bwd_dx, dim3(rb), dim3(256), 0, R, C, (const float *)x.data(), (const float *)w.data(),
               (const float *)mw.data(), (const float *)rw.data(), (const float *)dx.data(), dx.data());
        const int64_t chunks = (R + LN_CHUNK - 1) / LN_CHUNK;
        std::vector<float> part(chunks * 2 * C, NAN);
        LAUNCH(ltk_layernorm_bwd_dwdb_part, dim3((unsigned)((C + 127) / 128), (unsigned)chunks), dim3(128), 0, R, C,
               (const float *)x.data(), (const float *)mw.data(), (const float *)rw.data(), (const float *)dy.data(),
               part.data());
        LAUNCH(ltk_layernorm_bwd_dwdb_sum, dim3((unsigned)((C + 127) / 128)), dim3(128), 0, chunks, C,
               (const float *)part.data(), dw.data(), db.data());
        bad = 0;
        for (int64_t i = 0; i < R; i++) {
            double sa = 0, sb = 0; /* magnitudes of the row sums */
            for (int64_t j = 0; j < C; j++) {
                double xh = fabs(((double)x[i * C + j] - mw[i]) * rw[i]), dn = fabs((double)dy[i * C + j] * w[j]);
                sa += dn / C;
                sb += dn * xh / C;
            }
            for (int64_t j = 0; j < C; j++) {
                double xh = fabs(((double)x[i * C + j] - mw[i]) * rw[i]);
                double t = k * rw[i] * (fabs((double)dy[i * C + j] * w[j]) + sa + xh * sb) * (1 + fabs((double)cs.offset) * rw[i]);
                bad += !lt_t_agree(dx[i * C + j], dxw[i * C + j], t + 1e-30);
            }
        }
        for (int64_t j = 0; j < C; j++) {
            double mw_ = 0, mb = 0;
            for (int64_t i = 0; i < R; i++) {
                mw_ += fabs((double)dy[i * C + j] * ((double)x[i * C + j] - mw[i]) * rw[i]);
                mb += fabs((double)dy[i * C + j]);
            }
            bad += !lt_t_agree(dw[j], dww[j], 4 * U * (R + 2) * (mw_ + fabs(dww[j])) + 1e-30);
            bad += !lt_t_agree(db[j], dbw[j], 4 * U * (R + 2) * (mb + fabs(dbw[j])) + 1e-30);
        }
        CHECK(bad == 0, "layernorm bwd %lld x %lld: %lld outside tolerance", (long long)R, (long long)C, (long long)bad);
    }
    printf("largest error / tolerance: %.3f\n", lt_t_worst_ratio);
    return lt_test_summary();
}
