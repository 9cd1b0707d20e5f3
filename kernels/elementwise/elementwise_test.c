/* Tests of the elementwise and layout kernels against double references, on SIMD-tail sizes, with
 * NaN-prefilled outputs; sum_rows bit-identical across thread counts. Tolerance: one rounding of fp32
 * arithmetic on O(1) values (1e-6 relative); sum_rows sums up to 1000 rows (1e-5 relative). */
#include "latent.h"
#include "lt_test.h"

static const int64_t sizes[] = {1, 3, 7, 8, 9, 15, 16, 37, 65, 1000, 40000};

static void test_axpby_mul(void) {
    uint64_t s = 1;
    for (unsigned i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        int64_t n = sizes[i];
        float *x = malloc(n * 4), *y = malloc(n * 4), *y0 = malloc(n * 4), *z = malloc(n * 4);
        double *want = malloc(n * 8);
        lt_t_fill(x, n, &s); lt_t_fill(y0, n, &s); lt_t_fill(z, n, &s);
        memcpy(y, y0, n * 4);
        for (int64_t j = 0; j < n; j++) want[j] = 1.5 * x[j] - 0.25 * y0[j];
        CHECK(lt_axpby(n, 1.5f, x, -0.25f, y) == LT_OK, "axpby status");
        CHECK(lt_t_close("axpby", y, want, n, 1e-6, 1e-6), "axpby n=%lld", (long long)n);
        lt_t_nan(y, n);
        for (int64_t j = 0; j < n; j++) want[j] = 2.0 * x[j];
        lt_axpby(n, 2.0f, x, 0.0f, y);
        CHECK(lt_t_close("axpby b=0", y, want, n, 1e-6, 1e-6), "axpby b=0 (NaN in y must not leak) n=%lld", (long long)n);
        lt_t_nan(y, n);
        for (int64_t j = 0; j < n; j++) want[j] = (double)x[j] * z[j];
        lt_mul(n, x, z, y);
        CHECK(lt_t_close("mul", y, want, n, 1e-6, 1e-6), "mul n=%lld", (long long)n);
        free(x); free(y); free(y0); free(z); free(want);
    }
}

static void test_rows(void) {
    uint64_t s = 2;
    int64_t shapes[][3] = {{1, 1, 1}, {7, 9, 1}, {16, 37, 4}, {65, 384, 5}, {1000, 65, 256}, {3, 200, 3}};
    for (unsigned t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        int64_t n = shapes[t][0], c = shapes[t][1], p = shapes[t][2];
        float *x = malloc(n * c * 4), *rows = malloc(p * c * 4), *y = malloc(n * c * 4), *acc = malloc(p * c * 4), *acc2 = malloc(p * c * 4);
        double *want = malloc((n > p ? n : p) * c * 8);
        lt_t_fill(x, n * c, &s); lt_t_fill(rows, p * c, &s);
        lt_t_nan(y, n * c);
        for (int64_t i = 0; i < n; i++) for (int64_t j = 0; j < c; j++) want[i * c + j] = (double)x[i * c + j] + rows[(i % p) * c + j];
        CHECK(lt_add_rows(n, c, p, x, rows, y) == LT_OK, "add_rows status");
        CHECK(lt_t_close("add_rows", y, want, n * c, 1e-6, 1e-6), "add_rows %lldx%lld period %lld", (long long)n, (long long)c, (long long)p);
        for (int64_t k = 0; k < p * c; k++) { acc[k] = 0.5f; want[k] = 0.5; }
        for (int64_t i = 0; i < n; i++) for (int64_t j = 0; j < c; j++) want[(i % p) * c + j] += x[i * c + j];
        memcpy(acc2, acc, p * c * 4);
        lt_set_num_threads(2);
        CHECK(lt_sum_rows(n, c, p, x, acc) == LT_OK, "sum_rows status");
        CHECK(lt_t_close("sum_rows", acc, want, p * c, 1e-5, 1e-5), "sum_rows %lldx%lld period %lld", (long long)n, (long long)c, (long long)p);
        lt_set_num_threads(1);
        lt_sum_rows(n, c, p, x, acc2);
        CHECK(!memcmp(acc, acc2, p * c * 4), "sum_rows: 1 vs 2 threads must be bit-identical");
        lt_set_num_threads(2);
        free(x); free(rows); free(y); free(acc); free(acc2); free(want);
    }
    CHECK(lt_add_rows(2, 2, 0, NULL, NULL, NULL) == LT_ERR_INVALID_ARGUMENT && *lt_last_error(), "period 0 rejected");
}

static void test_copy(void) {
    /* (B, T, 3, NH, HS) -> 3 x (B, NH, T, HS): the qkv split of attention, as one permuted copy of q. */
    int64_t B = 2, T = 7, NH = 3, HS = 5, C = NH * HS;
    int64_t n = B * T * 3 * C;
    float *src = malloc(n * 4), *dst = malloc(B * NH * T * HS * 4);
    for (int64_t i = 0; i < n; i++) src[i] = (float)i;
    lt_copy_desc d = {0};
    d.rank = 4;
    int64_t shape[4] = {B, NH, T, HS}, ss[4] = {T * 3 * C, HS, 3 * C, 1}, ds[4] = {NH * T * HS, T * HS, HS, 1};
    for (int k = 0; k < 4; k++) { d.shape[k] = shape[k]; d.src_stride[k] = ss[k]; d.dst_stride[k] = ds[k]; }
    lt_t_nan(dst, B * NH * T * HS);
    const float *q = src + C; /* the k part, to check the offset too */
    CHECK(lt_copy_strided(&d, q, dst) == LT_OK, "copy status");
    int ok = 1;
    for (int64_t b = 0; b < B; b++) for (int64_t h = 0; h < NH; h++) for (int64_t t = 0; t < T; t++) for (int64_t e = 0; e < HS; e++)
        ok &= dst[((b * NH + h) * T + t) * HS + e] == src[(b * T + t) * 3 * C + C + h * HS + e];
    CHECK(ok, "permuted copy");
    d.rank = 7;
    CHECK(lt_copy_strided(&d, q, dst) == LT_ERR_INVALID_ARGUMENT, "rank 7 rejected");
    /* rank 1 and 2 */
    lt_copy_desc d1 = {0};
    d1.rank = 1; d1.shape[0] = 10; d1.src_stride[0] = 2; d1.dst_stride[0] = 1;
    lt_copy_strided(&d1, src, dst);
    ok = 1;
    for (int i = 0; i < 10; i++) ok &= dst[i] == src[2 * i];
    CHECK(ok, "rank-1 strided copy");
    free(src); free(dst);
}

int main(void) {
    test_axpby_mul();
    test_rows();
    test_copy();
    return lt_test_summary();
}
