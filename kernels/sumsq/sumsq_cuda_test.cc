/* sumsq.cu in the CUDA emulation against lt_sumsq at ISA ref: lengths at chunk tails (1, 7, 255, 4095, 4096, 4097,
 * 3 chunks + 5), +-1e30 (squares far beyond float, fine in double), zeros. Both sum exact double squares; only the
 * order of the double additions differs (lt_sumsq: in order within a chunk; here 16 per thread, then a tree of 8
 * levels), so |got - want| <= 2^-53 (4096 + 16 + 8 + 2 chunks) sum (one factor per addition bound, generous).
 * The plain sum (ltk_sum_part / ltk_sum_total_f32) against an in-order long double sum: the double result within
 * 2^-53 (4096 + 16 + 8 + 2 chunks) sum |x_i| of it, then one rounding to float (so within that plus half an ulp).
 * The segmented pair (ltk_sumsq_seg_part / ltk_sumsq_seg_clip, AdamW's clip factor on the device) against one
 * ltk_sumsq_part + ltk_sumsq_total per segment and the host's in-order sum of the segment totals, bit for bit, and the
 * clip scale against AdamW.update's expression evaluated on the host (equal floats), for clips that bite and not.
 * Run: build/sumsq_cuda_test */
#include <cstring>
#include <utility>
#include <vector>

#include "../sumsq/sumsq.cu"
#include "lt_cuda_test.h"

int main() {
    lt_set_isa(LT_ISA_REF);
    uint64_t s = 47;
    for (int64_t n : {1, 7, 255, 4095, 4096, 4097, 3 * 4096 + 5}) {
        std::vector<float> x(n);
        lt_t_fill(x.data(), n, &s);
        if (n > 10) { x[3] = 1e30f; x[5] = -1e30f; x[6] = 0.0f; }
        const int64_t chunks = (n + SQ_CHUNK - 1) / SQ_CHUNK;
        std::vector<double> part(chunks, NAN);
        double got = NAN, want = NAN;
        CHECK(lt_sumsq(n, x.data(), &want) == LT_OK, "lt_sumsq");
        LAUNCH(ltk_sumsq_part, dim3((unsigned)chunks), dim3(SQ_THREADS), 0, n, (const float *)x.data(), part.data());
        LAUNCH(ltk_sumsq_total, dim3(1), dim3(32), 0, chunks, (const double *)part.data(), &got);
        const double tol = ldexp(4096.0 + 16 + 8 + 2 * (double)chunks, -53) * want;
        CHECK(fabs(got - want) <= tol, "sumsq n=%lld: %.17g, lt_sumsq %.17g (tolerance %.3g)", (long long)n, got, want, tol);
    }
    for (int64_t n : {1, 7, 255, 4095, 4096, 4097, 3 * 4096 + 5}) {
        std::vector<float> x(n);
        lt_t_fill(x.data(), n, &s);
        if (n > 10) { x[3] = 3e5f; x[5] = -3e5f; x[6] = 0.0f; } /* cancellation: the bound is relative to sum |x_i| */
        const int64_t chunks = (n + SQ_CHUNK - 1) / SQ_CHUNK;
        std::vector<double> part(chunks, NAN);
        float got = NAN;
        long double want = 0, abs = 0;
        for (int64_t i = 0; i < n; i++) { want += x[i]; abs += fabsl((long double)x[i]); }
        LAUNCH(ltk_sum_part, dim3((unsigned)chunks), dim3(SQ_THREADS), 0, n, (const float *)x.data(), part.data());
        LAUNCH(ltk_sum_total_f32, dim3(1), dim3(32), 0, chunks, (const double *)part.data(), &got);
        const double tol = ldexp(4096.0 + 16 + 8 + 2 * (double)chunks, -53) * (double)abs + 0.5 * ldexp(fabs((double)want), -23) + 1e-45;
        CHECK(fabs((double)got - (double)want) <= tol, "sum n=%lld: %.9g, reference %.17Lg (tolerance %.3g)", (long long)n, got, want, tol);
    }
    {
        /* segments of a flat buffer (offsets 16-aligned, one at a chunk tail, one longer than two chunks, one of 1) */
        const std::vector<std::pair<int64_t, int64_t>> seg = {{0, 5}, {16, 4097}, {4128, 1}, {4144, 2 * 4096 + 3}, {12352, 4096}};
        const int64_t total_n = 12352 + 4096, nseg = (int64_t)seg.size();
        std::vector<float> x(total_n, 0.0f);
        lt_t_fill(x.data(), total_n, &s);
        x[20] = 3e4f;
        std::vector<int64_t> tab;
        int64_t chunks = 0;
        for (auto [o, l] : seg) { tab.insert(tab.end(), {o, l, chunks}); chunks += (l + SQ_CHUNK - 1) / SQ_CHUNK; }
        double want = 0.0;
        for (auto [o, l] : seg) {
            const int64_t ck = (l + SQ_CHUNK - 1) / SQ_CHUNK;
            std::vector<double> part(ck, NAN);
            double t = NAN;
            LAUNCH(ltk_sumsq_part, dim3((unsigned)ck), dim3(SQ_THREADS), 0, l, (const float *)x.data() + o, part.data());
            LAUNCH(ltk_sumsq_total, dim3(1), dim3(32), 0, ck, (const double *)part.data(), &t);
            want += t;
        }
        for (double clip : {0.0, -1.0, 1.0, 1e-3, 1e9}) {
            std::vector<double> part(chunks, NAN);
            double got = NAN;
            float scale = NAN;
            LAUNCH(ltk_sumsq_seg_part, dim3((unsigned)chunks), dim3(SQ_THREADS), 0, nseg, (const int64_t *)tab.data(), (const float *)x.data(),
                   part.data());
            LAUNCH(ltk_sumsq_seg_clip, dim3(1), dim3(32), 0, nseg, (const int64_t *)tab.data(), (const double *)part.data(), clip, &got, &scale);
            CHECK(memcmp(&got, &want, 8) == 0, "seg sumsq: %.17g, per segment %.17g", got, want);
            const double norm = sqrt(want);
            const float hs = clip > 0 && norm > clip ? (float)(clip / (norm + 1e-6)) : 1.0f;
            CHECK(memcmp(&scale, &hs, 4) == 0, "clip %g: scale %.9g, host %.9g", clip, scale, hs);
            if (clip == 1.0) CHECK(scale < 1.0f, "clip 1 must bite (norm %g)", norm);
        }
    }
    return lt_test_summary();
}
