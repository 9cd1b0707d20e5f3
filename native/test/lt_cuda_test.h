/* Helpers for the CUDA emulation tests (kernels/<op>/<op>_cuda_test.cc): a launch that records a failure with
 * the runtime's message, grid sizes, and the tolerance check of lt_test.h. Each test #includes its op's .cu
 * (the source nvcc compiles into the fatbin, not a copy) and links the C reference from latent_static. */
#ifndef LT_CUDA_TEST_H
#define LT_CUDA_TEST_H
#include "lt_cuda.cuh"
extern "C" {
#include "latent.h"
}
#include "lt_test.h"

#define LAUNCH(...) do { int rc_ = ::cuda_emu::launch(__VA_ARGS__); \
    CHECK(rc_ == 0, "launch failed (%d): %s", rc_, ::cuda_emu::last_error()); } while (0)

/* Blocks for a grid-stride kernel: capped low so the tests exercise the stride loop. */
static inline unsigned lt_cu_blocks(int64_t n, int threads, unsigned cap = 8) {
    int64_t b = (n + threads - 1) / threads;
    return (unsigned)(b < 1 ? 1 : b > cap ? cap : b);
}

/* Per-element check against float results of the reference (promoted to double). */
static inline int lt_cu_close(const char *what, const float *got, const float *want, int64_t n, double atol, double rtol) {
    double *w = (double *)malloc((size_t)n * sizeof(double));
    for (int64_t i = 0; i < n; i++) w[i] = want[i];
    int ok = lt_t_close(what, got, w, n, atol, rtol);
    free(w);
    return ok;
}

/* bf16 to nearest even as a 16-bit pattern, written out on the bits (the definition the bf16 kernels' outputs are
 * checked against: cast_cuda_test, the LayerNorm / GELU bf16 outputs); NaN -> a quiet NaN with the sign kept. */
static inline uint16_t lt_t_ref_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    uint32_t lo = u & 0xffffu, hi = u >> 16;
    if (lo > 0x8000u || (lo == 0x8000u && (hi & 1u))) hi++;   /* above half, or a tie with an odd kept bit */
    return (uint16_t)hi;
}
#endif
