/* cast.cu in the CUDA emulation: ltk_round_operand (TF32 to nearest, ties away; bf16 to nearest even) and
 * ltk_f32_to_bf16 against the bit-level definitions written out here, on every rounding case: exact values, halfway
 * ties (even and odd lower bit: to even for bf16, away for TF32), just above / below halfway, the carry that bumps
 * the exponent, the largest finite float (bf16 and TF32 round it up to inf), subnormals, +-0, +-inf, NaN; then on
 * 100003 random floats (a grid-stride loop with a grid smaller than n, so every thread does several elements), and
 * y == x in place; ltk_bf16_to_f32_acc widens exactly and accumulates in fp32. A wrong rounding mode (truncation, ties to even for TF32) fails the tie and halfway cases.
 * ltk_bf16_to_f32 against the exact widening (the 16 bits become the float's high half) on all 65536 bf16 patterns
 * (+-0, subnormals, +-inf, every NaN payload kept) and on the round trip f32 -> bf16 -> f32 of the floats above, which
 * must equal ltk_round_operand's bf16 rounding bit for bit (NaN: a NaN).
 * Run: build/cast_cuda_test */
#include <cstring>
#include <vector>

#include "../cast/cast.cu"
#include "lt_cuda_test.h"

static uint32_t bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
static float from(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

/* TF32 (10 mantissa bits) to nearest, ties away from zero; inf / NaN unchanged. */
static float ref_tf32(float f) {
    uint32_t u = bits(f);
    if ((u & 0x7f800000u) == 0x7f800000u) return f;
    uint32_t lo = u & 0x1fffu, hi = u & ~0x1fffu;
    if (lo >= 0x1000u) hi += 0x2000u;
    return from(hi);
}

static bool same(float a, float b) { return bits(a) == bits(b) || (a != a && b != b); }

int main() {
    std::vector<float> x = {0.0f, -0.0f, 1.0f, -1.0f, 3.0f, from(0x3f808000u), from(0x3f818000u), from(0x3f808001u),
                            from(0x3f807fffu), from(0x3fffffffu), from(0x7f7fffffu), from(0xff7fffffu), from(0x00000001u),
                            from(0x00018000u), from(0x00008000u), from(0x3f801000u), from(0x3f803000u), from(0x3f800fffu),
                            from(0x3f801001u), from(0x7f800000u), from(0xff800000u), from(0x7fc00000u), from(0xffa00001u),
                            1e-40f, -2.5e-39f, 65504.0f, 3.14159265f, -2.71828183f};
    uint64_t s = 7;
    const size_t fixed = x.size();
    for (int i = 0; i < 100003; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x.push_back(from((uint32_t)(s >> 32)));   /* every bit pattern: all exponents, signs, NaNs */
    }
    const int64_t n = (int64_t)x.size();
    std::vector<float> yt(n), yb(n);
    std::vector<__nv_bfloat16> h(n);
    LAUNCH(ltk_round_operand, dim3(7), dim3(128), 0, (const float *)x.data(), yt.data(), n, (int32_t)CAST_TF32);
    LAUNCH(ltk_round_operand, dim3(7), dim3(128), 0, (const float *)x.data(), yb.data(), n, (int32_t)CAST_BF16);
    LAUNCH(ltk_f32_to_bf16, dim3(5), dim3(96), 0, (const float *)x.data(), h.data(), n);
    int64_t bad_t = 0, bad_b = 0, bad_h = 0;
    for (int64_t i = 0; i < n; i++) {
        const float wt = ref_tf32(x[i]);
        const uint16_t wb = lt_t_ref_bf16(x[i]);
        if (!same(yt[i], wt) && bad_t++ < 3) fprintf(stderr, "  tf32(%08x) = %08x, want %08x\n", bits(x[i]), bits(yt[i]), bits(wt));
        if (!same(yb[i], from((uint32_t)wb << 16)) && bad_b++ < 3)
            fprintf(stderr, "  round bf16(%08x) = %08x, want %04x0000\n", bits(x[i]), bits(yb[i]), wb);
        if (h[i].__x != wb && !((wb & 0x7fffu) > 0x7f80u && (h[i].__x & 0x7fffu) > 0x7f80u) && bad_h++ < 3)
            fprintf(stderr, "  bf16(%08x) = %04x, want %04x\n", bits(x[i]), h[i].__x, wb);
    }
    CHECK(bad_t == 0, "ltk_round_operand TF32: %lld of %lld differ from the definition", (long long)bad_t, (long long)n);
    CHECK(bad_b == 0, "ltk_round_operand BF16: %lld of %lld differ from the definition", (long long)bad_b, (long long)n);
    CHECK(bad_h == 0, "ltk_f32_to_bf16: %lld of %lld differ from the definition", (long long)bad_h, (long long)n);
    /* the named cases, spelled out: ties to even (bf16) and away (TF32), carry, overflow */
    CHECK(bits(yb[5]) == 0x3f800000u, "bf16 tie 1 + 2^-8 must round to even (down): %08x", bits(yb[5]));
    CHECK(bits(yb[6]) == 0x3f820000u, "bf16 tie with odd kept bit must round up: %08x", bits(yb[6]));
    CHECK(bits(yb[10]) == 0x7f800000u, "bf16(FLT_MAX) must overflow to inf: %08x", bits(yb[10]));
    CHECK(bits(yt[15]) == 0x3f802000u, "TF32 tie 1 + 2^-11 must round away from zero: %08x", bits(yt[15]));
    CHECK(bits(yt[17]) == 0x3f800000u, "TF32 just below half must round down: %08x", bits(yt[17]));
    /* in place */
    std::vector<float> z(x.begin(), x.begin() + (long)fixed);
    LAUNCH(ltk_round_operand, dim3(1), dim3(32), 0, (const float *)z.data(), z.data(), (int64_t)fixed, (int32_t)CAST_BF16);
    for (size_t i = 0; i < fixed; i++) CHECK(same(z[i], yb[i]), "in-place bf16 rounding differs at %zu", i);
    /* bf16 -> f32: every 16-bit pattern widens exactly (a grid smaller than n: several elements per thread) */
    std::vector<__nv_bfloat16> all(65536);
    for (uint32_t i = 0; i < 65536; i++) all[i].__x = (unsigned short)i;
    std::vector<float> wide(65536, from(0x7fc01234u));
    LAUNCH(ltk_bf16_to_f32, dim3(3), dim3(64), 0, (const __nv_bfloat16 *)all.data(), wide.data(), (int64_t)65536);
    int64_t bad_w = 0;
    for (uint32_t i = 0; i < 65536; i++)
        if (bits(wide[i]) != i << 16 && bad_w++ < 3) fprintf(stderr, "  f32(bf16 %04x) = %08x, want %08x\n", i, bits(wide[i]), i << 16);
    CHECK(bad_w == 0, "ltk_bf16_to_f32: %lld of 65536 patterns differ from the exact widening", (long long)bad_w);
    /* the round trip equals the in-fp32 rounding (what our kernels' fallback sees) */
    std::vector<float> back(n);
    LAUNCH(ltk_bf16_to_f32, dim3(5), dim3(96), 0, (const __nv_bfloat16 *)h.data(), back.data(), n);
    int64_t bad_r = 0;
    for (int64_t i = 0; i < n; i++)
        if (!same(back[i], yb[i]) && bad_r++ < 3) fprintf(stderr, "  f32(bf16(%08x)) = %08x, want %08x\n", bits(x[i]), bits(back[i]), bits(yb[i]));
    CHECK(bad_r == 0, "f32 -> bf16 -> f32: %lld of %lld differ from ltk_round_operand's bf16 rounding", (long long)bad_r, (long long)n);
    /* ltk_bf16_to_f32_acc: widening is exact (bits << 16), and accumulate adds in fp32 to what y held */
    std::vector<float> back_acc(n), acc(n, 0.5f);
    LAUNCH(ltk_bf16_to_f32_acc, dim3(5), dim3(96), 0, (const __nv_bfloat16 *)h.data(), back_acc.data(), n, (int32_t)0);
    LAUNCH(ltk_bf16_to_f32_acc, dim3(3), dim3(64), 0, (const __nv_bfloat16 *)h.data(), acc.data(), n, (int32_t)1);
    int64_t bad_wa = 0, bad_a = 0;
    for (int64_t i = 0; i < n; i++) {
        const float wv = from((uint32_t)h[i].__x << 16);
        if (!same(back_acc[i], wv) && bad_wa++ < 3) fprintf(stderr, "  widen(%04x) = %08x\n", h[i].__x, bits(back_acc[i]));
        if (!same(acc[i], 0.5f + wv) && bad_a++ < 3) fprintf(stderr, "  0.5 + widen(%04x) = %08x\n", h[i].__x, bits(acc[i]));
    }
    CHECK(bad_wa == 0, "ltk_bf16_to_f32_acc: %lld of %lld widened wrongly", (long long)bad_wa, (long long)n);
    CHECK(bad_a == 0, "ltk_bf16_to_f32_acc (accumulate): %lld of %lld wrong", (long long)bad_a, (long long)n);
    return lt_test_summary();
}
