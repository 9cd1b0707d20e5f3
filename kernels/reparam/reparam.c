/* lt_reparam_fwd / lt_reparam_bwd: the VAE reparameterization trick, z = mu + exp(logvar / 2) eps, fused with the
 * KL divergence to N(0, I) and its gradient (math and eps mapping in latent.h and reparam_ref.c).
 *
 * Reproducible by construction: eps of element i is a pure function of (seed, stream, i), computed in float with
 * IEEE-exact operations only (reparam_bm.h: explicit fmaf, fixed order) at every ISA, so the backward recomputes it
 * instead of storing it, and ref, AVX2, AVX-512, CUDA (reparam.cu) and any thread count give the same bits (eps, z, the
 * gradients and the KL sum). The elements are cut into 4096-element chunks;
 * tasks take TASK_CHUNKS chunks; each chunk's KL sum lands in its own slot and the slots are added in chunk order on the calling thread.
 * Implementations: reparam_*_avx512 (reparam_avx512.c) at ISA avx512, reparam_*_avx2 (reparam_avx2.c) at avx2, else
 * reparam_*_ref (reparam_ref.c).
 * Test and benchmark: reparam_test.c (`reparam_test --bench`). */
#include <math.h>

#include "reparam.h"

#define TASK_CHUNKS 16 /* 64K elements per task */
#define STACK_SLOTS 512

typedef struct {
    int64_t n;
    const float *mu, *logvar, *dz;
    uint64_t seed, stream;
    float *z, *dmu, *dlogvar, kl_scale;
    double *slot;
    int isa;
} reparam_ctx;

static void fwd_task(void *p, int64_t t, int worker) {
    const reparam_ctx *c = p;
    for (int64_t q = t * TASK_CHUNKS; q < (t + 1) * TASK_CHUNKS && q * REPARAM_CHUNK < c->n; q++) {
        const int64_t lo = q * REPARAM_CHUNK, len = c->n - lo < REPARAM_CHUNK ? c->n - lo : REPARAM_CHUNK;
        c->slot[q] = (c->isa >= LT_ISA_AVX512 ? reparam_fwd_avx512 : c->isa >= LT_ISA_AVX2 ? reparam_fwd_avx2 : reparam_fwd_ref)(
            lo, len, c->mu + lo, c->logvar + lo, c->seed, c->stream, c->z + lo);
    }
}

static void bwd_task(void *p, int64_t t, int worker) {
    const reparam_ctx *c = p;
    for (int64_t q = t * TASK_CHUNKS; q < (t + 1) * TASK_CHUNKS && q * REPARAM_CHUNK < c->n; q++) {
        const int64_t lo = q * REPARAM_CHUNK, len = c->n - lo < REPARAM_CHUNK ? c->n - lo : REPARAM_CHUNK;
        (c->isa >= LT_ISA_AVX512 ? reparam_bwd_avx512 : c->isa >= LT_ISA_AVX2 ? reparam_bwd_avx2 : reparam_bwd_ref)(
            lo, len, c->mu + lo, c->logvar + lo, c->seed, c->stream, c->dz + lo, c->kl_scale, c->dmu + lo, c->dlogvar + lo);
    }
}

static int64_t ntasks(int64_t n) {
    const int64_t chunks = (n + REPARAM_CHUNK - 1) / REPARAM_CHUNK;
    return (chunks + TASK_CHUNKS - 1) / TASK_CHUNKS;
}

lt_status lt_reparam_fwd(int64_t n, const float *mu, const float *logvar, uint64_t seed, uint64_t stream, float *z,
                         double *kl) {
#define BAD(...) lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_reparam_fwd: " __VA_ARGS__)
    if (n < 0) return BAD("n=%lld must be >= 0", (long long)n);
    if (n > INT64_MAX / 4) return BAD("n=%lld overflows int64 bytes", (long long)n);
    const char *null = n == 0 ? NULL : !mu ? "mu" : !logvar ? "logvar" : !z ? "z" : NULL;
    if (null) return BAD("%s is NULL with n=%lld", null, (long long)n);
#undef BAD
    if (n == 0) {
        if (kl) *kl = 0.0;
        return LT_OK;
    }
    const int64_t chunks = (n + REPARAM_CHUNK - 1) / REPARAM_CHUNK;
    double stack[STACK_SLOTS], *slot = chunks <= STACK_SLOTS ? stack : lt_alloc((size_t)chunks * sizeof(double));
    if (!slot) return lt_fail(LT_ERR_OUT_OF_MEMORY, "lt_reparam_fwd: %lld chunk sums", (long long)chunks);
    reparam_ctx c = {n, mu, logvar, NULL, seed, stream, z, NULL, NULL, 0.0f, slot, lt_isa_level()};
    lt_parallel_for(ntasks(n), fwd_task, &c);
    double s = 0;
    for (int64_t q = 0; q < chunks; q++) s += slot[q];
    if (slot != stack) lt_free(slot);
    if (kl) *kl = 0.5 * s;
    return LT_OK;
}

lt_status lt_reparam_bwd(int64_t n, const float *mu, const float *logvar, uint64_t seed, uint64_t stream,
                         const float *dz, float kl_scale, float *dmu, float *dlogvar) {
#define BAD(...) lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_reparam_bwd: " __VA_ARGS__)
    if (n < 0) return BAD("n=%lld must be >= 0", (long long)n);
    if (n > INT64_MAX / 4) return BAD("n=%lld overflows int64 bytes", (long long)n);
    if (!isfinite(kl_scale)) return BAD("kl_scale=%g must be finite", (double)kl_scale);
    const char *null = n == 0 ? NULL : !mu ? "mu" : !logvar ? "logvar" : !dz ? "dz" : !dmu ? "dmu" : !dlogvar ? "dlogvar" : NULL;
    if (null) return BAD("%s is NULL with n=%lld", null, (long long)n);
#undef BAD
    if (n == 0) return LT_OK;
    reparam_ctx c = {n, mu, logvar, dz, seed, stream, NULL, dmu, dlogvar, kl_scale, NULL, lt_isa_level()};
    lt_parallel_for(ntasks(n), bwd_task, &c);
    return LT_OK;
}
