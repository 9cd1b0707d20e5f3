/* gemm.cu in the CUDA emulation (exact fp32 and TF32 tensor-core kernels, 64 x 64 and 128 x 128 each; the bf16
 * tensor-core pair) against a double-precision product: M, N, K at every tile tail (0 (K), 1, 7, 16, 37, 64, 65, 129, 130, 131), all four transposes, padded leading dimensions, batches,
 * alpha / beta, beta = 0 with NaN in C (must not propagate). Tolerance per element, with mag = sum |alpha a b| +
 * |beta c|: fp32 kernels u (8 sqrt(K) + 3) mag (gemm_test.c's bound: it also sums p = 0..K-1 in order); TF32 adds
 * 2^-10 mag (each input rounded to 11 significant bits, two per product). ltk_gemm_bf16 / ltk_gemm_bf16_128 (kinds
 * 4, 5: A and B converted to bf16 with __float2bfloat16_rn, to nearest even, as ltk_f32_to_bf16 does) are checked
 * against the double product of the ROUNDED operands with the fp32 bound alone: a product of two bf16 values is exact
 * in fp32 and the mma twin sums p = 0..K-1 in order with fmaf, so the only error is the fp32 chain's (a wrong fragment
 * layout or k order in the twin, or a mis-stored tile, breaks this by orders of magnitude). On a GPU the tensor core
 * sums each group of 16 in its own order (within a few u of the same bound; not checked here: no GPU). Before the
 * shapes, one warp runs lt_mma_bf16_16x8x16 on fragments packed from the documented m16n8k16 layout (must agree)
 * and from a layout with a[1] and a[2] swapped (must disagree: the check can fail). Run: build/gemm_cuda_test */
#include <vector>

#include "../gemm/gemm.cu"
#include "lt_cuda_test.h"

/* kind 0: ltk_gemm_f32, 1: ltk_gemm_tf32, 2: ltk_gemm_f32_128, 3: ltk_gemm_tf32_128, 4: ltk_gemm_bf16, 5: ltk_gemm_bf16_128
 * (the 128 x 128 kernels on every shape, whatever gemm_big picks). */
static const char *const KIND[] = {"f32", "tf32", "f32_128", "tf32_128", "bf16", "bf16_128"};
static int run(const lt_gemm_desc &d, int kind, uint64_t *s) {
    const bool tf32 = kind == 1 || kind == 3;
    const int64_t ar = d.trans_a ? d.k : d.m, br = d.trans_b ? d.n : d.k;
    const int64_t na = d.stride_a * (d.batch - 1) + ar * d.lda, nb = d.stride_b * (d.batch - 1) + br * d.ldb;
    const int64_t nc = d.stride_c * (d.batch - 1) + d.m * d.ldc;
    std::vector<float> a(na), b(nb), c(nc);
    lt_t_fill(a.data(), na, s);
    lt_t_fill(b.data(), nb, s);
    if (d.beta == 0.0f) lt_t_nan(c.data(), nc);
    else lt_t_fill(c.data(), nc, s);
    std::vector<float> c0 = c;
    dim3 grid((unsigned)((d.n + 63) / 64), (unsigned)((d.m + 63) / 64), (unsigned)d.batch);
    dim3 grid128((unsigned)((d.n + 127) / 128), (unsigned)((d.m + 127) / 128), (unsigned)d.batch);
    if (kind == 1) LAUNCH(ltk_gemm_tf32, grid, dim3(128), 0, d, (const float *)a.data(), (const float *)b.data(), c.data());
    else if (kind == 2) LAUNCH(ltk_gemm_f32_128, grid128, dim3(256), 0, d, (const float *)a.data(), (const float *)b.data(), c.data());
    else if (kind == 4 || kind == 5) {
        std::vector<__nv_bfloat16> a16, b16;
        for (float &x : a) {
            a16.push_back(__float2bfloat16_rn(x));
            x = __bfloat162float(a16.back()); /* the reference multiplies the rounded operands */
        }
        for (float &x : b) {
            b16.push_back(__float2bfloat16_rn(x));
            x = __bfloat162float(b16.back());
        }
        if (kind == 4) LAUNCH(ltk_gemm_bf16, grid, dim3(128), 0, d, (const __nv_bfloat16 *)a16.data(), (const __nv_bfloat16 *)b16.data(), c.data());
        else LAUNCH(ltk_gemm_bf16_128, grid128, dim3(256), 0, d, (const __nv_bfloat16 *)a16.data(), (const __nv_bfloat16 *)b16.data(), c.data());
    } else if (kind == 3) LAUNCH(ltk_gemm_tf32_128, grid128, dim3(256), 0, d, (const float *)a.data(), (const float *)b.data(), c.data());
    else LAUNCH(ltk_gemm_f32, grid, dim3(256), 0, d, (const float *)a.data(), (const float *)b.data(), c.data());
    const double U = 1.0 / (1 << 24);
    int64_t bad = 0;
    for (int64_t t = 0; t < d.batch; t++)
        for (int64_t i = 0; i < d.m; i++)
            for (int64_t j = 0; j < d.n; j++) {
                double sum = 0, mag = 0;
                for (int64_t p = 0; p < d.k; p++) {
                    double x = a[t * d.stride_a + (d.trans_a ? p * d.lda + i : i * d.lda + p)];
                    double y = b[t * d.stride_b + (d.trans_b ? j * d.ldb + p : p * d.ldb + j)];
                    sum += x * y;
                    mag += fabs(x * y);
                }
                const int64_t ci = t * d.stride_c + i * d.ldc + j;
                double want = d.alpha * sum + (d.beta == 0.0f ? 0.0 : d.beta * (double)c0[ci]);
                mag = fabs(d.alpha) * mag + (d.beta == 0.0f ? 0.0 : fabs(d.beta * (double)c0[ci]));
                double tol = U * (8 * sqrt((double)d.k) + 3) * mag + (tf32 ? mag / 1024.0 : 0.0) + 1e-30;
                if (!lt_t_agree(c[ci], want, tol) && bad++ < 3)
                    fprintf(stderr, "  [%lld][%lld][%lld] got %.9g want %.9g tol %.3g\n", (long long)t, (long long)i,
                            (long long)j, c[ci], want, tol);
            }
    return (int)(bad > 0 ? bad : 0);
}

/* One warp: A (16 x 16) and B (16 x 8) packed into m16n8k16 fragments (wrong = 1: a[1] and a[2] swapped), one
 * lt_mma_bf16_16x8x16 onto C = 0, C written back from the documented c layout. */
static __global__ void mma_bf16_probe(const uint16_t *A, const uint16_t *B, float *C, int wrong) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    auto pk = [](uint16_t lo, uint16_t hi) { return (uint32_t)lo | (uint32_t)hi << 16; };
    uint32_t a[4], b[2];
    a[0] = pk(A[g * 16 + 2 * t], A[g * 16 + 2 * t + 1]);
    a[1] = pk(A[(g + 8) * 16 + 2 * t], A[(g + 8) * 16 + 2 * t + 1]);
    a[2] = pk(A[g * 16 + 2 * t + 8], A[g * 16 + 2 * t + 9]);
    a[3] = pk(A[(g + 8) * 16 + 2 * t + 8], A[(g + 8) * 16 + 2 * t + 9]);
    if (wrong) {
        const uint32_t x = a[1];
        a[1] = a[2];
        a[2] = x;
    }
    b[0] = pk(B[(2 * t) * 8 + g], B[(2 * t + 1) * 8 + g]);
    b[1] = pk(B[(2 * t + 8) * 8 + g], B[(2 * t + 9) * 8 + g]);
    float c[4] = {0, 0, 0, 0};
    lt_mma_bf16_16x8x16(c, a, b);
    C[g * 8 + 2 * t] = c[0];
    C[g * 8 + 2 * t + 1] = c[1];
    C[(g + 8) * 8 + 2 * t] = c[2];
    C[(g + 8) * 8 + 2 * t + 1] = c[3];
}

/* Elements of the probe's C outside the fp32 bound of the double product (0 when the layout is right). */
static int mma_probe(int wrong, uint64_t *s) {
    float af[256], bfl[128], c[128];
    uint16_t a[256], b[128];
    lt_t_fill(af, 256, s);
    lt_t_fill(bfl, 128, s);
    for (int i = 0; i < 256; i++) a[i] = __float2bfloat16_rn(af[i]).__x;
    for (int i = 0; i < 128; i++) b[i] = __float2bfloat16_rn(bfl[i]).__x;
    LAUNCH(mma_bf16_probe, dim3(1), dim3(32), 0, (const uint16_t *)a, (const uint16_t *)b, c, wrong);
    int bad = 0;
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 8; j++) {
            double sum = 0, mag = 0;
            for (int p = 0; p < 16; p++) {
                double x = __bfloat162float(__nv_bfloat16{a[i * 16 + p]}) * (double)__bfloat162float(__nv_bfloat16{b[p * 8 + j]});
                sum += x;
                mag += fabs(x);
            }
            if (fabs(c[i * 8 + j] - sum) > (8 * 4 + 3) * mag / (1 << 24) + 1e-30) bad++;
        }
    return bad;
}

int main() {
    uint64_t s = 31;
    CHECK(mma_probe(0, &s) == 0, "lt_mma_bf16_16x8x16 on the documented fragment layout disagrees with the product");
    CHECK(mma_probe(1, &s) > 0, "lt_mma_bf16_16x8x16 on a wrong fragment layout (a[1], a[2] swapped) went unnoticed");
    struct { int64_t m, n, k; } shapes[] = {{1, 1, 1}, {7, 16, 37}, {16, 7, 1}, {37, 65, 64}, {64, 64, 16}, {65, 130, 9},
                                            {130, 37, 70}, {9, 5, 0}, {131, 129, 19}, {129, 131, 8}};
    for (int kind = 0; kind < 6; kind++) {
        lt_t_worst_ratio = 0;
        for (auto sh : shapes)
            for (int tr = 0; tr < 4; tr++) {
                lt_gemm_desc d = {};
                d.trans_a = tr & 1;
                d.trans_b = tr >> 1;
                d.m = sh.m; d.n = sh.n; d.k = sh.k;
                d.alpha = tr == 3 ? -0.5f : 1.0f;
                d.beta = tr == 1 ? 0.75f : 0.0f;
                d.lda = (d.trans_a ? sh.m : sh.k) + (tr & 2); /* padded for some */
                d.ldb = (d.trans_b ? sh.k : sh.n) + 1;
                d.ldc = sh.n + 3;
                d.batch = sh.m < 20 ? 3 : 1;
                d.stride_a = (d.trans_a ? sh.k : sh.m) * d.lda + 5;
                d.stride_b = (d.trans_b ? sh.n : sh.k) * d.ldb;
                d.stride_c = sh.m * d.ldc + 2;
                int bad = run(d, kind, &s);
                CHECK(bad == 0, "gemm %s %lldx%lldx%lld trans %d%d batch %lld: %d outside tolerance",
                      KIND[kind],
                      (long long)sh.m, (long long)sh.n, (long long)sh.k, d.trans_a, d.trans_b, (long long)d.batch, bad);
            }
        printf("%s: largest error / tolerance: %.3f\n", KIND[kind], lt_t_worst_ratio);
    }
    return lt_test_summary();
}
