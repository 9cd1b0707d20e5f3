/* reparam.cu in the CUDA emulation against lt_reparam_fwd / lt_reparam_bwd at ISA ref (reparam_ref.c): eps, z, the KL
 * sum, dmu and dlogvar must have the same bits (same float operations in the same order, the KL in the same fixed
 * order), on odd sizes (partial 32-element groups and 4096-element chunks), with logvar past the clamp and NaN.
 * Run: build/reparam_cuda_test */
#include <vector>

#include "../reparam/reparam.cu"
#include "lt_cuda_test.h"

static bool same(float a, float b) { return !memcmp(&a, &b, 4) || (a != a && b != b); }

static int64_t count_diff(const std::vector<float> &a, const std::vector<float> &b) {
    int64_t d = 0;
    for (size_t i = 0; i < a.size(); i++) d += !same(a[i], b[i]);
    return d;
}

int main() {
    lt_set_isa(LT_ISA_REF);
    uint64_t rng = 11;
    for (int64_t n : {1, 7, 8, 9, 31, 33, 1023, 4096, 4097, 10007, 70001}) {
        for (int variant = 0; variant < 3; variant++) {
            const uint64_t seed = variant == 1 ? 0xDEADBEEFCAFEF00Dull : 42 + n, stream = variant == 1 ? 0x123456789ull : 7;
            std::vector<float> mu(n), lv(n), dz(n);
            lt_t_fill(mu.data(), n, &rng);
            lt_t_fill(lv.data(), n, &rng);
            lt_t_fill(dz.data(), n, &rng);
            for (int64_t i = 0; i < n; i++) {
                if (variant == 0) mu[i] = lv[i] = 0.0f; /* z = eps */
                if (variant == 1) lv[i] *= 40.0f;        /* past the clamp */
                if (variant == 2) lv[i] *= 3.0f;
            }
            if (variant == 2 && n > 5) lv[n / 2] = NAN;
            const int64_t chunks = (n + RP_CHUNK - 1) / RP_CHUNK;
            std::vector<float> z(n, NAN), zr(n, NAN), dmu(n, NAN), dmur(n, NAN), dlv(n, NAN), dlvr(n, NAN);
            std::vector<double> part(chunks, NAN);
            double kl = NAN, klr = NAN;
            const float k = 0.37f;
            CHECK(lt_reparam_fwd(n, mu.data(), lv.data(), seed, stream, zr.data(), &klr) == LT_OK, "ref fwd");
            CHECK(lt_reparam_bwd(n, mu.data(), lv.data(), seed, stream, dz.data(), k, dmur.data(), dlvr.data()) == LT_OK,
                  "ref bwd");
            LAUNCH(ltk_reparam_fwd, dim3((unsigned)chunks), dim3(RP_THREADS), 0, n, (const float *)mu.data(),
                   (const float *)lv.data(), seed, stream, z.data(), part.data());
            LAUNCH(ltk_reparam_kl_sum, dim3(1), dim3(32), 0, chunks, (const double *)part.data(), &kl);
            LAUNCH(ltk_reparam_bwd, dim3(lt_cu_blocks(n / 4, 256)), dim3(256), 0, n, (const float *)mu.data(),
                   (const float *)lv.data(), seed, stream, (const float *)dz.data(), k, dmu.data(), dlv.data());
            const int64_t dz_ = count_diff(z, zr), dm = count_diff(dmu, dmur), dl = count_diff(dlv, dlvr);
            CHECK(dz_ == 0, "n=%lld variant %d: %lld of %lld %s differ from the C reference", (long long)n, variant,
                  (long long)dz_, (long long)n, variant == 0 ? "eps" : "z");
            CHECK(!memcmp(&kl, &klr, 8) || (kl != kl && klr != klr), "n=%lld variant %d: kl %.17g, reference %.17g",
                  (long long)n, variant, kl, klr);
            CHECK(dm == 0 && dl == 0, "n=%lld variant %d: %lld dmu, %lld dlogvar differ", (long long)n, variant,
                  (long long)dm, (long long)dl);
            /* part == NULL: z only */
            std::vector<float> z2(n, NAN);
            LAUNCH(ltk_reparam_fwd, dim3((unsigned)chunks), dim3(RP_THREADS), 0, n, (const float *)mu.data(),
                   (const float *)lv.data(), seed, stream, z2.data(), (double *)nullptr);
            CHECK(count_diff(z2, zr) == 0, "n=%lld variant %d: z differs without the KL", (long long)n, variant);
            /* the keyed kernels (CUDA graphs): (seed, stream) read from memory give the same bits; another stream other eps */
            const uint64_t key[2] = {seed, stream};
            std::vector<float> z3(n, NAN), dmu3(n, NAN), dlv3(n, NAN);
            std::vector<double> part3(chunks, NAN);
            double kl3 = NAN;
            LAUNCH(ltk_reparam_fwd_key, dim3((unsigned)chunks), dim3(RP_THREADS), 0, n, (const float *)mu.data(),
                   (const float *)lv.data(), key, z3.data(), part3.data());
            LAUNCH(ltk_reparam_kl_sum, dim3(1), dim3(32), 0, chunks, (const double *)part3.data(), &kl3);
            LAUNCH(ltk_reparam_bwd_key, dim3(lt_cu_blocks(n / 4, 256)), dim3(256), 0, n, (const float *)mu.data(),
                   (const float *)lv.data(), key, (const float *)dz.data(), k, dmu3.data(), dlv3.data());
            CHECK(count_diff(z3, zr) == 0 && count_diff(dmu3, dmur) == 0 && count_diff(dlv3, dlvr) == 0 &&
                      (!memcmp(&kl3, &klr, 8) || (kl3 != kl3 && klr != klr)),
                  "n=%lld variant %d: the keyed kernels differ from the by-value ones", (long long)n, variant);
            const uint64_t key2[2] = {seed, stream + 1};
            std::vector<float> z4(n, NAN);
            LAUNCH(ltk_reparam_fwd_key, dim3((unsigned)chunks), dim3(RP_THREADS), 0, n, (const float *)mu.data(),
                   (const float *)lv.data(), key2, z4.data(), (double *)nullptr);
            CHECK(count_diff(z4, zr) > 0, "n=%lld variant %d: the next stream drew the same eps", (long long)n, variant);
        }
    }
    return lt_test_summary();
}
