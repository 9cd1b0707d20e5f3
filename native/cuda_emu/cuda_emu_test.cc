/* cuda_emu_test: the emulation itself. Shuffles, ballot and barriers against hand-computed answers; atomics
 * on several worker threads; the mma.sync twin against a plain product; and the errors the runtime must return
 * (not print, not abort): deadlock, divergent barriers, a shuffle mask that excludes its caller, __trap, bad
 * launch shapes. `--bench` times a context switch. Run: build/cuda_emu_test [--bench] */
#include <cstdio>
#include <cstring>
#include <vector>

#include "lt_cuda.cuh"
#include "lt_test.h"

LT_KERNEL void k_shuffles(int *out) {
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    int *o = out + (w * 32 + lane) * 6;
    o[0] = __shfl_sync(LT_FULL_MASK, lane * 10, 3);
    o[1] = __shfl_xor_sync(LT_FULL_MASK, lane, 5);
    o[2] = __shfl_down_sync(LT_FULL_MASK, lane, 4);
    o[3] = __shfl_up_sync(LT_FULL_MASK, lane, 2, 8);
    o[4] = (int)__ballot_sync(LT_FULL_MASK, lane % 3 == 0);
    o[5] = __shfl_sync(0x0000ffffu, lane, 0) ; /* lanes >= 16 diverge: they must not call this */
}
LT_KERNEL void k_shuffles_half(int *out) { /* only the lower half-warp takes part */
    const int lane = threadIdx.x & 31;
    if (lane < 16) out[lane] = __shfl_sync(0x0000ffffu, lane + 100, 15 - lane);
}
LT_KERNEL void k_block_sum(const float *x, float *out) {
    __shared__ float red[32];
    float s = lt_block_sum(x[blockIdx.x * blockDim.x + threadIdx.x], red);
    if (threadIdx.x == 0) out[blockIdx.x] = s;
}
LT_KERNEL void k_atomic(int *counter, float *fsum) {
    atomicAdd(counter, 1);
    atomicAdd(fsum, 1.0f);
}
LT_KERNEL void k_dyn_smem(float *out) {
    LT_DYNAMIC_SHARED(float, s);
    s[threadIdx.x] = (float)threadIdx.x;
    __syncthreads();
    out[blockIdx.x * blockDim.x + threadIdx.x] = s[blockDim.x - 1 - threadIdx.x];
}
LT_KERNEL void k_deadlock(int *) {
    if (threadIdx.x == 0) __syncthreads();
    else (void)__shfl_sync(LT_FULL_MASK, 1, 0);
}
LT_KERNEL void k_exit_early(int *) {
    if (threadIdx.x >= 32) return;
    __syncthreads();
}
LT_KERNEL void k_two_barriers(int *) {
    if (threadIdx.x & 1) __syncthreads();
    else __syncthreads();
}
LT_KERNEL void k_bad_mask(int *) { (void)__shfl_sync(0x1u, 1, 0); }
LT_KERNEL void k_trap(int *) { if (threadIdx.x == 7) __trap(); }
LT_KERNEL void k_mma(const float *a, const float *b, float *c) { /* A 16x8 row-major, B 8x8 row-major (k, n) */
    const int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
    float af[4] = {a[g * 8 + t], a[(g + 8) * 8 + t], a[g * 8 + t + 4], a[(g + 8) * 8 + t + 4]};
    float bf[2] = {b[t * 8 + g], b[(t + 4) * 8 + g]};
    float cf[4] = {0, 0, 0, 0};
    lt_mma_tf32_16x8x8(cf, af, bf);
    c[g * 8 + 2 * t] = cf[0];
    c[g * 8 + 2 * t + 1] = cf[1];
    c[(g + 8) * 8 + 2 * t] = cf[2];
    c[(g + 8) * 8 + 2 * t + 1] = cf[3];
}
LT_KERNEL void k_bench(int iters, float *out) {
    float v = threadIdx.x;
    for (int i = 0; i < iters; i++) {
        __syncthreads();
        v += 1.0f;
    }
    out[threadIdx.x] = v;
}

static void expect_error(const char *what, int code, int want, const char *needle) {
    const char *msg = cuda_emu::last_error();
    CHECK(code == want && std::strstr(msg, needle) != nullptr, "%s: code %d (want %d), message \"%s\" (want \"%s\")",
          what, code, want, msg, needle);
    printf("  %s -> %s\n", what, msg);
}

int main(int argc, char **argv) {
    using namespace cuda_emu;
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        std::vector<float> out(256);
        const int iters = 2000;
        double t0 = lt_t_now();
        int rc = launch(k_bench, dim3(1), dim3(256), 0, iters, out.data());
        double t = lt_t_now() - t0;
        printf("%d x 256 threads x __syncthreads: %.3f s, %.1f ns per fiber switch (there and back), rc %d\n", iters, t,
               t / (iters * 256.0) * 1e9, rc);
        return rc;
    }
    { /* shuffles and ballot: 2 warps (the half-warp shuffle is a separate kernel) */
        std::vector<int> out(64 * 6, -1);
        int rc = launch(k_shuffles, dim3(1), dim3(64), 0, out.data());
        /* k_shuffles lets lanes >= 16 call a 16-lane shuffle: the runtime must refuse it */
        expect_error("shuffle with a mask excluding the caller", rc, ERR_DIVERGENT, "which excludes it");
        std::vector<int> h(32, -1);
        rc = launch(k_shuffles_half, dim3(1), dim3(32), 0, h.data());
        int bad = rc != 0;
        for (int l = 0; l < 16; l++) bad += h[l] != 115 - l;
        CHECK(bad == 0, "half-warp shuffle: rc %d %s", rc, last_error());
    }
    { /* the full-mask shuffles alone */
        struct K {
            static void run(int *out) {
                const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
                int *o = out + (w * 32 + lane) * 5;
                o[0] = __shfl_sync(LT_FULL_MASK, lane * 10, 3);
                o[1] = __shfl_xor_sync(LT_FULL_MASK, lane, 5);
                o[2] = __shfl_down_sync(LT_FULL_MASK, lane, 4);
                o[3] = __shfl_up_sync(LT_FULL_MASK, lane, 2, 8);
                o[4] = (int)__ballot_sync(LT_FULL_MASK, lane % 3 == 0);
            }
        };
        std::vector<int> out(64 * 5, -1);
        int rc = launch(&K::run, dim3(1), dim3(64), 0, out.data());
        unsigned ballot = 0;
        for (int l = 0; l < 32; l += 3) ballot |= 1u << l;
        int bad = rc != 0;
        for (int i = 0; i < 64; i++) {
            int l = i & 31, *o = &out[i * 5];
            bad += o[0] != 30;
            bad += o[1] != (l ^ 5);
            bad += o[2] != (l + 4 < 32 ? l + 4 : l);
            bad += o[3] != ((l & 7) >= 2 ? l - 2 : l);
            bad += (unsigned)o[4] != ballot;
        }
        CHECK(bad == 0, "shuffles/ballot: %d wrong, rc %d %s", bad, rc, last_error());
    }
    { /* block reduction over 3 blocks of 256 */
        std::vector<float> x(768), out(3, NAN);
        for (int i = 0; i < 768; i++) x[i] = (float)(i % 7);
        int rc = launch(k_block_sum, dim3(3), dim3(256), 0, (const float *)x.data(), out.data());
        for (int b = 0; b < 3; b++) {
            double s = 0;
            for (int i = 0; i < 256; i++) s += x[b * 256 + i];
            CHECK(rc == 0 && out[b] == (float)s, "block sum %d: %g want %g (%s)", b, out[b], s, last_error());
        }
    }
    { /* atomics with blocks on 2 worker threads */
        set_workers(2);
        int counter = 0;
        float fsum = 0;
        int rc = launch(k_atomic, dim3(40), dim3(128), 0, &counter, &fsum);
        CHECK(rc == 0 && counter == 40 * 128 && fsum == 40 * 128.0f, "atomics: %d %g", counter, fsum);
        set_workers(1);
    }
    { /* dynamic shared memory */
        std::vector<float> out(2 * 96, NAN);
        int rc = launch(k_dyn_smem, dim3(2), dim3(96), 96 * sizeof(float), out.data());
        int bad = rc != 0;
        for (int i = 0; i < 192; i++) bad += out[i] != (float)(95 - i % 96);
        CHECK(bad == 0, "dynamic shared memory: %d wrong (%s)", bad, last_error());
    }
    { /* mma.sync twin */
        float a[128], b[64], c[128];
        uint64_t s = 7;
        for (float &v : a) v = lt_to_tf32(lt_t_uniform(&s));
        for (float &v : b) v = lt_to_tf32(lt_t_uniform(&s));
        int rc = launch(k_mma, dim3(1), dim3(32), 0, (const float *)a, (const float *)b, c);
        double worst = 0;
        for (int i = 0; i < 16; i++)
            for (int j = 0; j < 8; j++) {
                double r = 0;
                for (int k = 0; k < 8; k++) r += (double)a[i * 8 + k] * b[k * 8 + j];
                worst = fmax(worst, fabs(r - c[i * 8 + j]));
            }
        CHECK(rc == 0 && worst < 1e-6, "mma twin: max error %g (%s)", worst, last_error());
    }
    /* errors */
    int dummy = 0;
    expect_error("deadlock", launch(k_deadlock, dim3(1), dim3(32), 0, &dummy), ERR_DEADLOCK, "deadlock in block");
    expect_error("exit before a barrier", launch(k_exit_early, dim3(1), dim3(64), 0, &dummy), ERR_DIVERGENT,
                 "exited while");
    expect_error("two barriers", launch(k_two_barriers, dim3(1), dim3(64), 0, &dummy), ERR_DIVERGENT,
                 "divergent __syncthreads");
    expect_error("bad mask", launch(k_bad_mask, dim3(1), dim3(32), 0, &dummy), ERR_DIVERGENT, "which excludes it");
    expect_error("trap", launch(k_trap, dim3(2), dim3(32), 0, &dummy), ERR_TRAP, "thread (7,0,0)");
    expect_error("1025 threads", launch(k_trap, dim3(1), dim3(1025), 0, &dummy), ERR_LAUNCH, "invalid launch");
    expect_error("partial warp full mask", launch(k_bad_mask, dim3(1), dim3(8), 0, &dummy), ERR_DIVERGENT, "");
    { /* after errors, a clean launch still works and clears the message */
        std::vector<int> h(32, -1);
        int rc = launch(k_shuffles_half, dim3(1), dim3(32), 0, h.data());
        CHECK(rc == 0 && last_error()[0] == '\0', "launch after errors: rc %d %s", rc, last_error());
    }
    return lt_test_summary();
}
