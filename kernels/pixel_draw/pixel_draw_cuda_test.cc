/* pixel_draw.cu in the CUDA emulation: ltk_pixel_draw against a transcription of PixelCnnSampler.draw (Java: max in
 * float with NaN winning, x - max in float, exp and the sums in double in index order, the first k whose cumulative
 * sum exceeds u * sum, else levels - 1), for every image of the batch and several pixels of the plane:
 *  - random logits of amplitude 1 and 40, 256 and 3 and 1 levels, u across [0, 1) including 0 and 1 - 2^-53;
 *  - u exactly on a cumulative sum (the comparison is strict: the next level), one dominant logit (+-88 range),
 *    ties, -inf entries (never drawn), a row of -inf, a NaN and a +inf logit (levels - 1, as in Java);
 *  - img[r hw + p] = v / 255 and codes[r hw + p] = v, and every other element of both planes untouched
 *    (NaN / -1 sentinels), over grids of one block and of several (n 1, 5, 64, 130);
 *  - ltk_pixel_draw_at (the position in device memory, a CUDA graph's pixel step) over every pixel of a 3 x 4 plane
 *    in turn: the same codes and image as ltk_pixel_draw at that pixel, the row plane written at the column, pos
 *    advanced by one per launch (fails if the position were frozen), a position past the plane drawing nothing and
 *    staying put; ltk_pixel_column_at gathering column pos mod w exactly;
 *  - ltk_pixel_taps_at (the horizontal stack's taps at one position) against a loop over (image, channel, tap) with
 *    the zero padding written out, for mask A and B tap ranges (lo -k/2, nt k/2 or k/2 + 1), k 3 and 7, every column
 *    of w 1, 4 and 9 (the padding on both sides), n c up to 130 x 5 over 1 and several blocks; ltk_pixel_column_put_at
 *    writing column pos mod w and nothing else (NaN sentinels).
 * Run: build/pixel_draw_cuda_test */
#include <cmath>
#include <cstring>
#include <vector>

#include "../pixel_draw/pixel_draw.cu"
#include "lt_cuda_test.h"

static uint64_t rng = 0x9e11;

/* PixelCnnSampler.draw, line for line. */
static int java_draw(const float *x, int64_t levels, double u) {
    float mx = -INFINITY;
    for (int64_t k = 0; k < levels; k++) mx = (std::isnan(x[k]) || std::isnan(mx)) ? NAN : std::max(mx, x[k]);
    double sum = 0;
    for (int64_t k = 0; k < levels; k++) sum += std::exp((double)(x[k] - mx));
    const double target = u * sum;
    double acc = 0;
    for (int64_t k = 0; k < levels; k++) {
        acc += std::exp((double)(x[k] - mx));
        if (acc > target) return (int)k;
    }
    return (int)levels - 1;
}

static void draw_case(int64_t n, int64_t levels, int pattern, float amp) {
    const int64_t hw = 6, p = (n + levels + pattern) % hw;
    std::vector<float> x(n * levels);
    lt_t_fill(x.data(), n * levels, &rng);
    for (auto &v : x) v *= amp;
    std::vector<double> u(n * hw, 0.5);
    for (int64_t r = 0; r < n; r++) {
        float *xr = &x[r * levels];
        double ur = (double)(lt_t_uniform(&rng) * 0.5f + 0.5f);
        if (r % 7 == 1) ur = 0.0;
        if (r % 7 == 2) ur = 1.0 - 1.0 / 9007199254740992.0;
        if (pattern == 1 && levels > 2) { xr[levels / 2] = 88.0f; xr[0] = -88.0f; }          /* one dominant level */
        if (pattern == 2) for (int64_t k = 0; k < levels; k++) xr[k] = (float)((k * 3) % 4);  /* ties */
        if (pattern == 3 && levels > 2) { xr[1] = -INFINITY; xr[levels - 1] = -INFINITY; }   /* never drawn */
        if (pattern == 4) for (int64_t k = 0; k < levels; k++) xr[k] = -INFINITY;             /* all -inf: NaN sums */
        if (pattern == 5 && levels > 1) xr[levels / 3] = NAN;
        if (pattern == 6) xr[0] = INFINITY;
        if (pattern == 7 && levels > 3) {   /* u exactly at the first cumulative sum: strict comparison */
            for (int64_t k = 0; k < levels; k++) xr[k] = 0.0f;
            ur = 1.0 / (double)levels;      /* target = u * levels = 1 = acc after level 0: not >, so level 1 */
        }
        u[r * hw + p] = ur;
    }
    std::vector<float> img(n * hw, NAN);
    std::vector<int32_t> codes(n * hw, -1);
    const int threads = 64;
    LAUNCH(ltk_pixel_draw, dim3((unsigned)((n + threads - 1) / threads)), dim3(threads), 0, n, levels, hw, p, (const float *)x.data(),
           (const double *)u.data(), 255.0f, img.data(), codes.data());
    for (int64_t r = 0; r < n; r++) {
        const int want = java_draw(&x[r * levels], levels, u[r * hw + p]);
        if (pattern == 7 && levels > 3) CHECK(want == 1, "pattern 7: the Java rule gives %d", want);
        if (pattern == 3 && levels > 2) CHECK(want != 1, "pattern 3: the -inf level 1 drawn");
        CHECK(codes[r * hw + p] == want, "n %lld levels %lld pattern %d amp %g row %lld: drew %d, the Java rule %d", (long long)n,
              (long long)levels, pattern, amp, (long long)r, codes[r * hw + p], want);
        CHECK(img[r * hw + p] == (float)want / 255.0f, "row %lld: img %g, want %g", (long long)r, img[r * hw + p], (float)want / 255.0f);
        for (int64_t q = 0; q < hw; q++)
            if (q != p) CHECK(std::isnan(img[r * hw + q]) && codes[r * hw + q] == -1, "row %lld: pixel %lld touched", (long long)r, (long long)q);
    }
}

static void draw_at_case(int64_t n, int threads) {
    const int64_t levels = 256, h = 3, w = 4, hw = h * w;
    std::vector<float> x(n * levels);
    std::vector<double> u(n * hw);
    for (auto &v : u) v = (double)(lt_t_uniform(&rng) * 0.5f + 0.5f);
    std::vector<float> img(n * hw, NAN), img2(n * hw, NAN), row(n * w, NAN);
    std::vector<int32_t> codes(n * hw, -1), codes2(n * hw, -1), pos(1, 0);
    for (int64_t p = 0; p < hw; p++) {
        lt_t_fill(x.data(), n * levels, &rng);
        for (auto &v : x) v *= 8.0f;
        LAUNCH(ltk_pixel_draw_at, dim3(1), dim3(threads), 0, n, levels, hw, w, pos.data(), (const float *)x.data(), (const double *)u.data(),
               255.0f, img.data(), row.data(), codes.data());
        LAUNCH(ltk_pixel_draw, dim3(1), dim3(threads), 0, n, levels, hw, p, (const float *)x.data(), (const double *)u.data(), 255.0f,
               img2.data(), codes2.data());
        CHECK(pos[0] == p + 1, "n %lld: pos %d after pixel %lld", (long long)n, pos[0], (long long)p);
        for (int64_t r = 0; r < n; r++) {
            CHECK(codes[r * hw + p] == codes2[r * hw + p] && codes[r * hw + p] >= 0, "n %lld pixel %lld row %lld: draw_at %d, draw %d", (long long)n,
                  (long long)p, (long long)r, codes[r * hw + p], codes2[r * hw + p]);
            CHECK(row[r * w + p % w] == (float)codes2[r * hw + p] / 255.0f, "row plane at pixel %lld", (long long)p);
        }
    }
    CHECK(memcmp(img.data(), img2.data(), img.size() * 4) == 0 && memcmp(codes.data(), codes2.data(), codes.size() * 4) == 0,
          "n %lld: the planes of draw_at and draw differ", (long long)n);
    LAUNCH(ltk_pixel_draw_at, dim3(1), dim3(threads), 0, n, levels, hw, w, pos.data(), (const float *)x.data(), (const double *)u.data(),
           255.0f, img.data(), row.data(), codes.data());
    CHECK(pos[0] == hw && memcmp(codes.data(), codes2.data(), codes.size() * 4) == 0, "a position past the plane: pos %d", pos[0]);
    /* the column gather */
    const int64_t c = 5;
    std::vector<float> hv(n * c * w), col(n * c, NAN);
    lt_t_fill(hv.data(), (int64_t)hv.size(), &rng);
    for (int32_t q : {0, 3, 6, 11}) {
        pos[0] = q;
        LAUNCH(ltk_pixel_column_at, dim3(2), dim3(threads), 0, n, c, w, (const int32_t *)pos.data(), (const float *)hv.data(), col.data());
        for (int64_t e = 0; e < n * c; e++)
            CHECK(col[e] == hv[e * w + q % w], "column_at pos %d element %lld", q, (long long)e);
    }
}

static void taps_case(int64_t n, int64_t cin, int64_t w, int64_t k, bool maskA, int blocks) {
    const int64_t lo = -(k / 2), nt = k / 2 + (maskA ? 0 : 1);
    std::vector<float> row(n * cin * w), out(n * cin * nt), col(n * cin), row2(n * cin * w);
    lt_t_fill(row.data(), (int64_t)row.size(), &rng);
    lt_t_fill(col.data(), (int64_t)col.size(), &rng);
    std::vector<int32_t> pos(1);
    for (int64_t q = 0; q < 2 * w; q++) {   /* every column, twice round (pos mod w) */
        pos[0] = (int32_t)q;
        std::fill(out.begin(), out.end(), NAN);
        LAUNCH(ltk_pixel_taps_at, dim3(blocks), dim3(32), 0, n, cin, w, lo, nt, (const int32_t *)pos.data(), (const float *)row.data(), out.data());
        const int64_t j = q % w;
        for (int64_t r = 0; r < n; r++)
            for (int64_t ci = 0; ci < cin; ci++)
                for (int64_t t = 0; t < nt; t++) {
                    const int64_t x = j - k / 2 + t;
                    const float want = (x < 0 || x >= w) ? 0.0f : row[(r * cin + ci) * w + x];
                    const float got = out[(r * cin + ci) * nt + t];
                    CHECK(got == want, "taps_at n %lld cin %lld w %lld k %lld mask %c: column %lld image %lld channel %lld tap %lld: %g, want %g",
                          (long long)n, (long long)cin, (long long)w, (long long)k, maskA ? 'A' : 'B', (long long)j, (long long)r, (long long)ci,
                          (long long)t, got, want);
                }
        std::fill(row2.begin(), row2.end(), NAN);
        LAUNCH(ltk_pixel_column_put_at, dim3(blocks), dim3(32), 0, n, cin, w, (const int32_t *)pos.data(), (const float *)col.data(), row2.data());
        for (int64_t e = 0; e < n * cin; e++)
            for (int64_t x = 0; x < w; x++)
                CHECK(x == j ? row2[e * w + x] == col[e] : std::isnan(row2[e * w + x]), "column_put_at w %lld column %lld: element %lld x %lld",
                      (long long)w, (long long)j, (long long)e, (long long)x);
    }
}

int main() {
    for (int64_t n : {1, 3, 130})
        for (int64_t cin : {1, 5})
            for (int64_t w : {1, 4, 9})
                for (int64_t k : {3, 7})
                    for (bool maskA : {true, false}) taps_case(n, cin, w, k, maskA, n > 3 ? 3 : 1);
    for (int64_t n : {1, 5, 64, 130}) draw_at_case(n, n > 64 ? 64 : 32);
    for (int64_t n : {1, 5, 64, 130})
        for (int64_t levels : {1, 3, 256})
            for (int pattern = 0; pattern <= 7; pattern++)
                for (float amp : {1.0f, 40.0f}) draw_case(n, levels, pattern, amp);
    return lt_test_summary();
}
