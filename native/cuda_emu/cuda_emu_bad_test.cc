/* Kernels with deliberate bugs that the sanitizer builds must catch (registered only there, expecting the
 * sanitizer's report: see cmake/LatentCuda.cmake). This proves the fiber annotations leave the checks working:
 *   race      — threads write shared memory and read a neighbour's slot without __syncthreads (TSan: data race)
 *   oob       — the last thread writes one past the end of a global buffer (ASan: heap-buffer-overflow)
 *   oob_smem  — one past the end of dynamic shared memory (ASan: heap-buffer-overflow; it is a heap block per
 *               block in the emulation)
 * Run: build-tsan/cuda_emu_bad_test race; build-asan/cuda_emu_bad_test oob */
#include <cstdio>
#include <cstring>
#include <vector>

#include "lt_cuda.cuh"

LT_KERNEL void k_race(float *out) {
    __shared__ float s[64];
    s[threadIdx.x] = (float)threadIdx.x;
    /* missing __syncthreads(): thread i reads what thread i+1 writes */
    out[threadIdx.x] = s[(threadIdx.x + 1) % 64];
}
LT_KERNEL void k_oob(float *out, int n) { out[threadIdx.x] = (float)n; } /* launched with n + 1 threads */
LT_KERNEL void k_oob_smem(float *out) {
    LT_DYNAMIC_SHARED(float, s);
    s[threadIdx.x + 1] = 1.0f; /* dyn smem holds blockDim.x floats */
    __syncthreads();
    out[threadIdx.x] = s[threadIdx.x];
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    int rc = -1;
    if (!strcmp(mode, "race")) {
        std::vector<float> out(64);
        rc = cuda_emu::launch(k_race, dim3(1), dim3(64), 0, out.data());
    } else if (!strcmp(mode, "oob")) {
        std::vector<float> out(31);
        rc = cuda_emu::launch(k_oob, dim3(1), dim3(32), 0, out.data(), 31);
    } else if (!strcmp(mode, "oob_smem")) {
        std::vector<float> out(32);
        rc = cuda_emu::launch(k_oob_smem, dim3(1), dim3(32), 32 * sizeof(float), out.data());
    } else {
        fprintf(stderr, "usage: cuda_emu_bad_test race|oob|oob_smem\n");
        return 2;
    }
    printf("%s: launch returned %d (%s) and no sanitizer stopped it\n", mode, rc, cuda_emu::last_error());
    return 0;
}
