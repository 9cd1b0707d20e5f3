/* elementwise.cu in the CUDA emulation against elementwise_ref.c (through lt_* at ISA ref): every SIMD-tail
 * length, NaN-prefilled outputs, b == 0 write-only, aliasing. Tolerance: one fp32 rounding (nvcc may fuse a*x + b*y
 * into one fma), as elementwise_test.c. Run: build/elementwise_cuda_test */
#include <cstring>
#include <vector>

#include "../elementwise/elementwise.cu"
#include "lt_cuda_test.h"

int main() {
    lt_set_isa(LT_ISA_REF);
    const double U = 1.0 / (1 << 23);
    uint64_t s = 11;
    for (int64_t n : {1, 3, 7, 8, 9, 15, 16, 37, 1000, 5000}) {
        std::vector<float> x(n), y(n), y0(n), want(n), got(n), z(n);
        lt_t_fill(x.data(), n, &s);
        lt_t_fill(y0.data(), n, &s);
        lt_t_fill(z.data(), n, &s);
        for (float b : {0.0f, 0.7f}) {
            want = y0;
            if (b == 0.0f) lt_t_nan(want.data(), n);
            got = want;
            lt_axpby(n, 1.3f, x.data(), b, want.data());
            LAUNCH(ltk_axpby, dim3(lt_cu_blocks(n, 256)), dim3(256), 0, n, 1.3f, (const float *)x.data(), b, got.data());
            CHECK(lt_cu_close("axpby", got.data(), want.data(), n, 0, U), "axpby n=%lld b=%g", (long long)n, b);
        }
        lt_t_nan(got.data(), n);
        lt_mul(n, x.data(), z.data(), want.data());
        LAUNCH(ltk_mul, dim3(lt_cu_blocks(n, 256)), dim3(256), 0, n, (const float *)x.data(), (const float *)z.data(),
               got.data());
        CHECK(lt_cu_close("mul", got.data(), want.data(), n, 0, 0), "mul n=%lld", (long long)n);
        got = x; /* in place: y = x */
        LAUNCH(ltk_mul, dim3(lt_cu_blocks(n, 256)), dim3(256), 0, n, (const float *)got.data(), (const float *)z.data(),
               got.data());
        CHECK(lt_cu_close("mul in place", got.data(), want.data(), n, 0, 0), "mul in place n=%lld", (long long)n);
    }
    struct { int64_t n, c, period; } rs[] = {{1, 1, 1}, {7, 9, 3}, {16, 37, 16}, {37, 15, 1}, {300, 8, 5}, {64, 70, 64}};
    for (auto r : rs) {
        const int64_t nc = r.n * r.c, pc = r.period * r.c;
        std::vector<float> x(nc), rows(pc), want(nc), got(nc), out0(pc), wsum(pc), gsum(pc);
        lt_t_fill(x.data(), nc, &s);
        lt_t_fill(rows.data(), pc, &s);
        lt_t_fill(out0.data(), pc, &s);
        lt_t_nan(want.data(), nc);
        lt_t_nan(got.data(), nc);
        lt_add_rows(r.n, r.c, r.period, x.data(), rows.data(), want.data());
        LAUNCH(ltk_add_rows, dim3(lt_cu_blocks(nc, 128)), dim3(128), 0, r.n, r.c, r.period, (const float *)x.data(),
               (const float *)rows.data(), got.data());
        CHECK(lt_cu_close("add_rows", got.data(), want.data(), nc, 0, 0), "add_rows %lld x %lld / %lld", (long long)r.n,
              (long long)r.c, (long long)r.period);
        wsum = out0;
        gsum = out0;
        lt_sum_rows(r.n, r.c, r.period, x.data(), wsum.data());
        LAUNCH(ltk_sum_rows, dim3(lt_cu_blocks(pc, 64)), dim3(64), 0, r.n, r.c, r.period, (const float *)x.data(),
               gsum.data());
        /* both sum in row order, the CPU in fixed chunks: a few roundings of the running sum apart */
        CHECK(lt_cu_close("sum_rows", gsum.data(), wsum.data(), pc, 4 * U * (double)(r.n / r.period + 1), 0),
              "sum_rows %lld x %lld / %lld", (long long)r.n, (long long)r.c, (long long)r.period);
    }
    /* strided copy against lt_copy_strided, exactly (a copy): GPT's head split (B, T, 3, NH, HS) -> (3, B, NH, T, HS),
     * its inverse, a transpose, a column slice into a contiguous buffer and into a strided one, rank 1; the bf16 variant's
     * dst16 exactly lt_t_ref_bf16 of each element of dst (the padding keeps its 7) */
    struct { int rank; int64_t shape[6]; } ps[] = {{5, {3, 2, 4, 7, 5}}, {2, {9, 37}}, {1, {37}}, {6, {2, 3, 1, 4, 2, 3}}};
    for (auto &p : ps) {
        int64_t n = 1;
        for (int k = 0; k < p.rank; k++) n *= p.shape[k];
        /* source: a permuted view of a contiguous buffer (reverse the axes); destination: contiguous, then a
         * slice of a wider buffer (every row padded by 3) */
        lt_copy_desc d = {};
        d.rank = p.rank;
        int64_t st = 1;
        for (int k = 0; k < p.rank; k++) { d.shape[k] = p.shape[k]; d.src_stride[k] = st; st *= p.shape[k]; }
        for (int pad = 0; pad < 2; pad++) {
            int64_t ds = 1;
            for (int k = p.rank - 1; k >= 0; k--) { d.dst_stride[k] = ds; ds *= p.shape[k] + (k == p.rank - 1 ? 3 * pad : 0); }
            std::vector<float> src(n), want(ds, 7.0f), got(ds, 7.0f); /* the padding must stay 7 */
            lt_t_fill(src.data(), n, &s);
            CHECK(lt_copy_strided(&d, src.data(), want.data()) == LT_OK, "lt_copy_strided");
            LAUNCH(ltk_copy_strided, dim3(lt_cu_blocks(n, 256)), dim3(256), 0, d, (const float *)src.data(), got.data());
            CHECK(lt_cu_close("copy_strided", got.data(), want.data(), ds, 0, 0), "copy_strided rank %d pad %d", p.rank, pad);
            /* the bf16 variant: the same dst, and dst16 the bf16 rounding (to nearest even) of dst at dst's offsets */
            std::vector<float> got2(ds, 7.0f);
            std::vector<__nv_bfloat16> g16(ds, __float2bfloat16_rn(7.0f));
            LAUNCH(ltk_copy_strided_bf16, dim3(lt_cu_blocks(n, 256)), dim3(256), 0, d, (const float *)src.data(), got2.data(), g16.data());
            int64_t bad16 = 0;
            for (int64_t i = 0; i < ds; i++) bad16 += g16[i].__x != lt_t_ref_bf16(want[i]);
            CHECK(lt_cu_close("copy_strided_bf16", got2.data(), want.data(), ds, 0, 0) && bad16 == 0,
                  "copy_strided_bf16 rank %d pad %d: %lld of dst16 not bf16(dst)", p.rank, pad, (long long)bad16);
        }
    }
    for (int64_t n : {1, 7, 37, 5000}) { /* conversions: bit-exact against the host's casts, a grid smaller than n */
        std::vector<double> d(n), dback(n, NAN);
        std::vector<float> f(n), want(n), got(n, NAN);
        lt_t_fill(f.data(), n, &s);
        for (int64_t i = 0; i < n; i++) { d[i] = (double)f[i] * (1.0 + 1e-9 * (double)i); want[i] = (float)d[i]; }
        if (n > 3) { d[1] = 3.4028235e38; want[1] = (float)d[1]; d[2] = -1e-300; want[2] = (float)d[2]; } /* FLT_MAX, -0 */
        LAUNCH(ltk_f64_to_f32, dim3(2), dim3(256), 0, n, (const double *)d.data(), got.data());
        CHECK(memcmp(got.data(), want.data(), n * sizeof(float)) == 0, "f64_to_f32 n=%lld", (long long)n);
        LAUNCH(ltk_f32_to_f64, dim3(2), dim3(256), 0, n, (const float *)f.data(), dback.data());
        bool same = true;
        for (int64_t i = 0; i < n; i++) same &= dback[i] == (double)f[i];
        CHECK(same, "f32_to_f64 n=%lld", (long long)n);
    }
    return lt_test_summary();
}
