/* attention_decode.cu in the CUDA emulation (beside attention_decode_test.c, the CPU kernels' test).
 *  - ltk_kv_append: the K and V thirds of projection rows land in the head-major cache at p0 .. p0 + rows - 1,
 *    bit for bit, and nothing else of the cache changes (NaN-prefilled sentinels stay NaN).
 *  - ltk_attention_decode against an independent double softmax written here AND against lt_attention_decode_fwd
 *    at ISA ref (the CPU decoder's kernel, fed the same head-major cache as KvDecoder feeds it: one (row, head) pair
 *    a row), each within attention_decode_test.c's derived bound per element (u = 2^-24):
 *        |o - ref| <= ((2 hs + 4) S + 2 len + 16) u W + 1e-30,  S = max_j scale sum_e |q_e k_je|,  W = sum_j w_j |v_je|
 *    (the CPU comparison with twice the bound: both sides err). Shapes: head sizes 1, 7, 37, 64, 100, 256 (AD_MAXHS),
 *    prompts of 1, 5, 37 rows from position 0, single tokens at positions 40, 128 (len 129 > the block) and 299,
 *    queries scaled by 1 and by 6 (scores up to ~+-88 after scaling: the max subtraction must hold), keys all equal
 *    (uniform weights), outputs NaN-prefilled (every element must be written), the ld of q and o padded.
 *  - ltk_kv_append_rows / ltk_attention_decode_rows (the batched forms, batch_case): pools of 1 to 5 slots, head sizes 1,
 *    7, 37, 100, 256, contexts 5 to 130, rows at random distinct (slot, pos) (len 1 and the full context among them,
 *    rows sharing a slot), plus invalid rows (slot -1 / slots, pos -1 / ctx, pos + 1 > maxlen) that must be skipped:
 *    the pool bit for bit against a plain C loop, each valid row bit for bit against ltk_attention_decode on its slot
 *    and within the bound above against the double softmax, skipped rows and padding keep a sentinel.
 *  - ltk_argmax_rows against Sampling.pick's greedy loop (first maximum, NaN never chosen, NaN at 0 -> 0) on rows of
 *    1, 3, 127, 128, 129, 1000 elements with ties, -inf, NaN, all-NaN.
 * Run: build/attention_decode_cuda_test */
#include <cmath>
#include <cstring>
#include <vector>

#include "../attention_decode/attention_decode.cu"
#include "lt_cuda_test.h"

#define U (1.0 / 16777216.0)

static uint64_t rng = 0xdec0de;

/* The independent double softmax for one (row, head) against the device's got[0..hs): counts the elements outside
 * the derived bound in *bad, and (cpu not null) those farther than twice it from lt_attention_decode_fwd in *bad_cpu.
 * kh, vh: the head's (len, hs) keys and values. */
static void check_head(int64_t hs, int64_t len, float scale, const float *q, const float *kh, const float *vh, const float *got,
                       const float *cpu, int64_t r, int64_t h, int64_t *bad, int64_t *bad_cpu) {
    std::vector<double> s(len), w(len);
    double mx = -INFINITY, big = 0, l = 0;
    for (int64_t j = 0; j < len; j++) {
        double acc = 0, mag = 0;
        for (int64_t e = 0; e < hs; e++) {
            const double t = (double)q[e] * kh[j * hs + e];
            acc += t;
            mag += fabs(t);
        }
        s[j] = acc * scale;
        if (mag * scale > big) big = mag * scale;
        if (s[j] > mx) mx = s[j];
    }
    for (int64_t j = 0; j < len; j++) l += (w[j] = exp(s[j] - mx));
    for (int64_t j = 0; j < len; j++) w[j] /= l;
    for (int64_t e = 0; e < hs; e++) {
        double ref = 0, W = 0;
        for (int64_t j = 0; j < len; j++) {
            const double vv = vh[j * hs + e];
            ref += w[j] * vv;
            W += w[j] * fabs(vv);
        }
        const double tol = ((2.0 * hs + 4) * big + 2.0 * len + 16) * U * W + 1e-30;
        if (!lt_t_agree(got[e], ref, tol) && (*bad)++ < 3)
            fprintf(stderr, "  row %lld head %lld e %lld (len %lld): got %.9g want %.9g tol %.3g\n", (long long)r, (long long)h,
                    (long long)e, (long long)len, got[e], ref, tol);
        if (cpu && !(fabs((double)got[e] - cpu[e]) <= 2 * tol) && (*bad_cpu)++ < 3)
            fprintf(stderr, "  row %lld head %lld e %lld: device %.9g, lt_attention_decode_fwd %.9g (2 tol %.3g)\n", (long long)r,
                    (long long)h, (long long)e, got[e], cpu[e], 2 * tol);
    }
}

/* One decode step: caches (nh, ctx, hs) with positions [0, p0 + rows) filled, rows queries. */
static void step_case(int64_t nh, int64_t hs, int64_t ctx, int64_t p0, int64_t rows, float amp, bool equal_keys) {
    const int64_t c = nh * hs, ld = 3 * c + 5, ldq = ld, ldo = c + 3, len_max = p0 + rows;
    std::vector<float> kc(nh * ctx * hs, NAN), vc(nh * ctx * hs, NAN);
    /* earlier positions: random; this step's rows come through ltk_kv_append from a projection buffer */
    std::vector<float> prev(nh * ctx * hs);
    lt_t_fill(prev.data(), (int64_t)prev.size(), &rng);
    for (int64_t h = 0; h < nh; h++)
        for (int64_t j = 0; j < p0; j++)
            for (int64_t e = 0; e < hs; e++) {
                const int64_t i = (h * ctx + j) * hs + e;
                kc[i] = prev[i] * amp;
                vc[i] = prev[(i * 7 + 3) % prev.size()];
            }
    std::vector<float> qkv(rows * ld);
    lt_t_fill(qkv.data(), (int64_t)qkv.size(), &rng);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < c; i++) { qkv[r * ld + i] *= amp; qkv[r * ld + c + i] *= amp; }
    if (equal_keys) {
        for (int64_t h = 0; h < nh; h++)
            for (int64_t j = 0; j < p0; j++)
                for (int64_t e = 0; e < hs; e++) kc[(h * ctx + j) * hs + e] = 0.5f;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t i = 0; i < c; i++) qkv[r * ld + c + i] = 0.5f;
    }
    LAUNCH(ltk_kv_append, dim3(lt_cu_blocks(rows * c, 256, 3)), dim3(256), 0, rows, nh, hs, ctx, p0, (const float *)qkv.data(), ld,
           kc.data(), vc.data());
    int64_t append_bad = 0;
    for (int64_t h = 0; h < nh; h++)
        for (int64_t j = 0; j < ctx; j++)
            for (int64_t e = 0; e < hs; e++) {
                const int64_t i = (h * ctx + j) * hs + e;
                if (j < p0) continue;
                const bool in = j < p0 + rows;
                const float wk = in ? qkv[(j - p0) * ld + c + h * hs + e] : NAN, wv = in ? qkv[(j - p0) * ld + 2 * c + h * hs + e] : NAN;
                if (in ? (memcmp(&kc[i], &wk, 4) != 0 || memcmp(&vc[i], &wv, 4) != 0) : (kc[i] == kc[i] || vc[i] == vc[i])) append_bad++;
            }
    CHECK(append_bad == 0, "kv_append nh %lld hs %lld p0 %lld rows %lld: %lld cache elements wrong", (long long)nh, (long long)hs,
          (long long)p0, (long long)rows, (long long)append_bad);

    const float scale = (float)(1.0 / sqrt((double)hs));
    std::vector<float> o(rows * ldo, NAN);
    const size_t smem = (size_t)(hs + len_max + AD_SMEM_EXTRA) * 4;
    LAUNCH(ltk_attention_decode, dim3((unsigned)(rows * nh)), dim3(AD_THREADS), smem, rows, nh, hs, ctx, p0, scale, (const float *)qkv.data(), ldq,
           (const float *)kc.data(), (const float *)vc.data(), o.data(), ldo);

    /* the CPU decoder's kernel on the same cache: (row, head) pairs as rows of one head */
    lt_set_isa(LT_ISA_REF);
    const int64_t pairs = rows * nh;
    std::vector<float> qs(pairs * hs), oc(pairs * hs, NAN);
    std::vector<const float *> kp(pairs), vp(pairs);
    std::vector<int32_t> lens(pairs);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t h = 0; h < nh; h++) {
            const int64_t p = r * nh + h;
            memcpy(&qs[p * hs], &qkv[r * ld + h * hs], 4 * hs);
            kp[p] = &kc[h * ctx * hs];
            vp[p] = &vc[h * ctx * hs];
            lens[p] = (int32_t)(p0 + r + 1);
        }
    lt_attention_decode_desc d = {pairs, 1, hs, hs, hs, hs, scale, 0};
    CHECK(lt_attention_decode_fwd(&d, qs.data(), kp.data(), vp.data(), lens.data(), oc.data()) == LT_OK, "lt_attention_decode_fwd: %s", lt_last_error());

    int64_t bad = 0, bad_cpu = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t h = 0; h < nh; h++)
            check_head(hs, p0 + r + 1, scale, &qkv[r * ld + h * hs], &kc[h * ctx * hs], &vc[h * ctx * hs], &o[r * ldo + h * hs],
                       &oc[(r * nh + h) * hs], r, h, &bad, &bad_cpu);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = c; i < ldo; i++) if (o[r * ldo + i] == o[r * ldo + i]) bad++;   /* the padding is not written */
    CHECK(bad == 0, "decode nh %lld hs %lld ctx %lld p0 %lld rows %lld amp %g: %lld outside the bound vs double", (long long)nh, (long long)hs,
          (long long)ctx, (long long)p0, (long long)rows, amp, (long long)bad);
    CHECK(bad_cpu == 0, "decode nh %lld hs %lld p0 %lld rows %lld: %lld outside 2x the bound vs lt_attention_decode_fwd", (long long)nh,
          (long long)hs, (long long)p0, (long long)rows, (long long)bad_cpu);
}

/* One batched step (DeviceKvDecoder.forward): a pool of `slots` caches (slots, nh, ctx, hs), random throughout (the
 * earlier positions), and `rows` rows each at its own (slot, pos), distinct pairs, row 0 at position 0 (len 1) and,
 * when full, row 1 at ctx - 1 (the whole context); several rows may share a slot. Among them `bad_rows` invalid rows at
 * random places: slot -1, slot == slots, pos -1, pos == ctx, and (when not full) pos == maxlen < ctx, which the
 * append writes and the attention must skip.
 *  - ltk_kv_append_rows: the whole pool, bit for bit, against a plain C loop of the valid rows' copies.
 *  - ltk_attention_decode_rows: each valid row bit for bit against ltk_attention_decode on its slot alone (rows 1,
 *    p0 = pos: the same ad_row_head, so the same bits), and within the bound against the double softmax; a skipped
 *    row, and every row's padding, keeps the sentinel. */
static void batch_case(int64_t slots, int64_t nh, int64_t hs, int64_t ctx, int64_t rows, bool full, float amp) {
    const int64_t c = nh * hs, ld = 3 * c + 5, ldo = c + 3, per = nh * ctx * hs, nvalid = rows - (full ? 4 : 5);
    std::vector<int32_t> slot, pos;
    while ((int64_t)slot.size() < nvalid) {
        const int64_t k = (int64_t)slot.size();
        const int32_t sl = (int32_t)(lt_t_next(&rng) % (uint64_t)slots);
        int32_t p = (int32_t)(lt_t_next(&rng) % (uint64_t)(full ? ctx : ctx - 1));
        if (k == 0) p = 0;
        if (k == 1 && full) p = (int32_t)(ctx - 1);
        bool dup = false;
        for (int64_t i = 0; i < k; i++) dup |= slot[i] == sl && pos[i] == p;
        if (!dup) { slot.push_back(sl); pos.push_back(p); }
    }
    int32_t maxlen = 0;
    for (int64_t i = 0; i < nvalid; i++) maxlen = pos[i] + 1 > maxlen ? pos[i] + 1 : maxlen;
    const int32_t bad_slot[5] = {-1, (int32_t)slots, 0, (int32_t)(slots - 1), (int32_t)(slots / 2)};
    const int32_t bad_pos[5] = {1, 0, -1, (int32_t)ctx, maxlen};
    for (int b = 0; b < (full ? 4 : 5); b++) {   /* insert at random places */
        const int64_t at = (int64_t)(lt_t_next(&rng) % (uint64_t)(slot.size() + 1));
        slot.insert(slot.begin() + at, bad_slot[b]);
        pos.insert(pos.begin() + at, bad_pos[b]);
    }
    std::vector<float> kc(slots * per), vc(slots * per), qkv(rows * ld);
    lt_t_fill(kc.data(), (int64_t)kc.size(), &rng);
    lt_t_fill(vc.data(), (int64_t)vc.size(), &rng);
    lt_t_fill(qkv.data(), (int64_t)qkv.size(), &rng);
    for (float &x : kc) x *= amp;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < 2 * c; i++) qkv[r * ld + i] *= amp;

    std::vector<float> wk = kc, wv = vc;   /* the plain loop */
    for (int64_t r = 0; r < rows; r++) {
        if (slot[r] < 0 || slot[r] >= slots || pos[r] < 0 || pos[r] >= ctx) continue;
        for (int64_t h = 0; h < nh; h++)
            for (int64_t e = 0; e < hs; e++) {
                const int64_t dst = slot[r] * per + (h * ctx + pos[r]) * hs + e;
                wk[dst] = qkv[r * ld + c + h * hs + e];
                wv[dst] = qkv[r * ld + 2 * c + h * hs + e];
            }
    }
    LAUNCH(ltk_kv_append_rows, dim3(lt_cu_blocks(rows * c, 256, 3)), dim3(256), 0, rows, nh, hs, ctx, slots, (const int32_t *)slot.data(),
           (const int32_t *)pos.data(), (const float *)qkv.data(), ld, kc.data(), vc.data());
    int64_t append_bad = 0;
    for (size_t i = 0; i < kc.size(); i++) append_bad += memcmp(&kc[i], &wk[i], 4) != 0 || memcmp(&vc[i], &wv[i], 4) != 0;
    CHECK(append_bad == 0, "kv_append_rows slots %lld nh %lld hs %lld ctx %lld rows %lld: %lld pool elements differ from the plain loop",
          (long long)slots, (long long)nh, (long long)hs, (long long)ctx, (long long)rows, (long long)append_bad);

    const float scale = (float)(1.0 / sqrt((double)hs)), sentinel = -1234.5f;
    std::vector<float> o(rows * ldo, sentinel), one(ldo, sentinel);
    LAUNCH(ltk_attention_decode_rows, dim3((unsigned)(rows * nh)), dim3(AD_THREADS), (size_t)(hs + maxlen + AD_SMEM_EXTRA) * 4, rows, nh, hs,
           ctx, slots, (int64_t)maxlen, (const int32_t *)slot.data(), (const int32_t *)pos.data(), scale, (const float *)qkv.data(), ld,
           (const float *)kc.data(), (const float *)vc.data(), o.data(), ldo);
    int64_t bad = 0, unused = 0, differ = 0, touched = 0, nskip = 0;
    for (int64_t r = 0; r < rows; r++) {
        const float *orow = &o[r * ldo];
        const bool valid = slot[r] >= 0 && slot[r] < slots && pos[r] >= 0 && pos[r] + 1 <= maxlen && pos[r] < ctx;
        for (int64_t i = valid ? c : 0; i < ldo; i++) touched += memcmp(&orow[i], &sentinel, 4) != 0;
        if (!valid) { nskip++; continue; }
        const float *ks = &kc[slot[r] * per], *vs = &vc[slot[r] * per];
        LAUNCH(ltk_attention_decode, dim3((unsigned)nh), dim3(AD_THREADS), (size_t)(hs + pos[r] + 1 + AD_SMEM_EXTRA) * 4, (int64_t)1, nh, hs,
               ctx, (int64_t)pos[r], scale, (const float *)&qkv[r * ld], ld, ks, vs, one.data(), ldo);
        differ += memcmp(orow, one.data(), 4 * c) != 0;
        for (int64_t h = 0; h < nh; h++)
            check_head(hs, pos[r] + 1, scale, &qkv[r * ld + h * hs], &ks[h * ctx * hs], &vs[h * ctx * hs], &orow[h * hs], nullptr, r, h, &bad,
                       &unused);
    }
    CHECK(nskip == (full ? 4 : 5), "decode_rows: %lld rows skipped, the test meant %d", (long long)nskip, full ? 4 : 5);
    CHECK(touched == 0, "decode_rows slots %lld nh %lld hs %lld ctx %lld rows %lld: %lld sentinel elements overwritten (skipped rows, padding)",
          (long long)slots, (long long)nh, (long long)hs, (long long)ctx, (long long)rows, (long long)touched);
    CHECK(differ == 0, "decode_rows slots %lld nh %lld hs %lld ctx %lld rows %lld: %lld rows not bit-equal to ltk_attention_decode on the slot",
          (long long)slots, (long long)nh, (long long)hs, (long long)ctx, (long long)rows, (long long)differ);
    CHECK(bad == 0, "decode_rows slots %lld nh %lld hs %lld ctx %lld rows %lld amp %g: %lld outside the bound vs double", (long long)slots,
          (long long)nh, (long long)hs, (long long)ctx, (long long)rows, amp, (long long)bad);
}

static int greedy(const std::vector<float> &x) {   /* Sampling.pick at temperature 0 */
    int best = 0;
    for (int i = 1; i < (int)x.size(); i++) if (x[i] > x[best]) best = i;
    return best;
}

static void argmax_case(int64_t n, int pattern) {
    const int64_t rows = 3;
    std::vector<float> x(rows * n);
    lt_t_fill(x.data(), rows * n, &rng);
    for (int64_t r = 0; r < rows; r++) {
        float *xr = &x[r * n];
        if (pattern == 1) for (int64_t i = 0; i < n; i++) xr[i] = (float)((i * 7) % 5);       /* many ties of the max */
        if (pattern == 2) { for (int64_t i = 0; i < n; i++) xr[i] = -INFINITY; }              /* all -inf: 0 */
        if (pattern == 3 && n > 2) { xr[n - 1] = NAN; xr[n / 2] = 5.0f; xr[1] = NAN; }       /* NaN skipped */
        if (pattern == 4) xr[0] = NAN;                                                        /* NaN first: 0 */
        if (pattern == 5) for (int64_t i = 0; i < n; i++) xr[i] = NAN;                        /* all NaN: 0 */
        if (pattern == 6 && n > 1) { xr[n - 1] = 9.0f; xr[n / 3] = 9.0f; }                     /* tie across threads */
    }
    std::vector<int32_t> got(rows, -7);
    LAUNCH(ltk_argmax_rows, dim3((unsigned)rows), dim3(AD_THREADS), 0, rows, n, (const float *)x.data(), got.data());
    for (int64_t r = 0; r < rows; r++) {
        std::vector<float> row(x.begin() + r * n, x.begin() + (r + 1) * n);
        const int want = greedy(row);
        CHECK(got[r] == want, "argmax n %lld pattern %d row %lld: %d, Sampling.pick %d", (long long)n, pattern, (long long)r, got[r], want);
    }
}

int main() {
    lt_t_worst_ratio = 0;
    step_case(1, 1, 4, 0, 1, 1.0f, false);
    step_case(2, 7, 16, 0, 5, 1.0f, false);
    step_case(3, 37, 64, 40, 1, 1.0f, false);
    step_case(3, 37, 64, 40, 1, 6.0f, false);
    step_case(6, 64, 130, 128, 1, 1.0f, false);
    step_case(2, 64, 300, 0, 37, 6.0f, false);
    step_case(1, 100, 300, 299, 1, 1.0f, false);
    step_case(2, 256, 40, 3, 4, 1.0f, false);
    step_case(2, 16, 50, 20, 3, 1.0f, true);
    batch_case(3, 2, 7, 33, 9, true, 1.0f);
    batch_case(5, 3, 37, 61, 13, false, 6.0f);
    batch_case(1, 1, 1, 5, 6, true, 1.0f);      /* one slot: every row shares it */
    batch_case(4, 2, 100, 130, 11, true, 1.0f);  /* len up to 130 > the block */
    batch_case(2, 1, 256, 17, 7, false, 1.0f);   /* AD_MAXHS */
    printf("decode: worst error %.3f of the tolerance\n", lt_t_worst_ratio);
    for (int64_t n : {1, 3, 127, 128, 129, 1000})
        for (int pattern = 0; pattern <= 6; pattern++) argmax_case(n, pattern);
    return lt_test_summary();
}
