/* Runtime tests: Philox known answers (Random123 tests/kat_vectors), uniform range, the ISA cap, struct
 * info, the pool under resizing, and lt_* error reporting. Run at both ISA levels by ctest. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include "latent.h"
#include "lt_test.h"

static void philox_kat(void) {
    /* name rounds ctr[4] key[2] -> out[4], verbatim from Random123's kat_vectors (philox4x32 10 lines). */
    static const uint32_t v[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        CHECK(lt_philox4x32_10(v[i], v[i] + 4, out) == LT_OK, "philox status");
        CHECK(!memcmp(out, v[i] + 6, sizeof out), "philox KAT %d: got %08x %08x %08x %08x", i, out[0], out[1], out[2], out[3]);
    }
}

static void uniform_range(void) {
    int64_t n = 1 << 20;
    float *u = malloc(n * sizeof(float));
    CHECK(lt_rand_uniform(u, n, 42, 7) == LT_OK, "rand status");
    double mean = 0;
    int in_range = 1;
    for (int64_t i = 0; i < n; i++) { mean += u[i]; in_range &= u[i] > 0 && u[i] < 1; }
    mean /= n;
    CHECK(in_range, "uniforms must lie in (0, 1)");
    /* sd of the mean of n U(0,1) is 1/sqrt(12 n) ~ 2.8e-4; 5 sigma */
    CHECK(fabs(mean - 0.5) < 5 * 2.82e-4, "uniform mean %f", mean);
    float *u2 = malloc(n * sizeof(float));
    lt_rand_uniform(u2, n, 42, 8);
    CHECK(memcmp(u, u2, n * sizeof(float)) != 0, "streams must differ");
    lt_rand_uniform(u2, n, 42, 7);
    CHECK(!memcmp(u, u2, n * sizeof(float)), "same (seed, stream) must give the same bits");
    free(u); free(u2);
}

static void errors_and_info(void) {
    CHECK(lt_abi_version() == LT_ABI_VERSION, "abi");
    CHECK(lt_set_num_threads(0) == LT_ERR_INVALID_ARGUMENT && strstr(lt_last_error(), "n=0"), "bad thread count: %s", lt_last_error());
    CHECK(lt_philox4x32_10(NULL, NULL, NULL) == LT_ERR_INVALID_ARGUMENT, "NULL philox");
    int64_t info[16];
    CHECK(lt_struct_info(0, info, 16) == LT_OK && info[0] == sizeof(lt_gemm_desc), "struct info");
    CHECK(lt_struct_info(99, info, 16) == LT_ERR_INVALID_ARGUMENT, "unknown struct");
    const char *cap = getenv("LATENT_MAX_ISA");
    int want = !cap || !*cap ? LT_ISA_AVX512 : !strcmp(cap, "ref") ? LT_ISA_REF : !strcmp(cap, "avx2") ? LT_ISA_AVX2 : LT_ISA_AVX512;
    if (want > lt_isa_supported()) want = lt_isa_supported();
    CHECK(lt_isa() == want, "ISA with LATENT_MAX_ISA=%s: %d, want %d (%s)", cap ? cap : "(unset)", lt_isa(), want, lt_isa_reason());
    if (want < lt_isa_supported()) CHECK(strstr(lt_isa_reason(), "LATENT_MAX_ISA") != NULL, "cap reason: %s", lt_isa_reason());
    CHECK(lt_cpu_bf16() == 0 || lt_isa_supported() == LT_ISA_AVX512, "bf16 without the avx512 level");
    int supported = lt_isa_supported();
    CHECK(lt_set_isa(LT_ISA_REF) == LT_ISA_REF, "set ref");
    CHECK(lt_set_isa(99) == supported, "set clamps to supported");
    CHECK(lt_set_isa(LT_ISA_AVX2) == (supported < LT_ISA_AVX2 ? supported : LT_ISA_AVX2), "set avx2");
    lt_set_isa(want);
}

/* Many threads calling while another resizes the pool: must neither deadlock nor lose work. */
static void *hammer(void *arg) {
    float u[257];
    for (int i = 0; i < 200; i++) lt_rand_uniform(u, 257, (uint64_t)(intptr_t)arg, i);
    return NULL;
}
static void pool_resize(void) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, hammer, (void *)(intptr_t)i);
    for (int n = 1; n <= 4; n++) CHECK(lt_set_num_threads(n) == LT_OK && lt_num_threads() == n, "resize to %d", n);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    CHECK(lt_set_num_threads(2) == LT_OK, "resize back");
}

/* Kernels that size per-worker scratch by lt_pool_width() while another thread grows the pool between that call
 * and the kernel's lt_parallel_for: a worker index beyond the scratch would write out of bounds (the heap
 * corruption once seen in ConcurrencyTest). Run under ASan in CI. The attention forward of a (1, 2, 96, 32)
 * problem has 12 tasks and writes every worker's slot. */
static _Atomic int resizing_done, caller_errors, caller_calls;   /* CHECK is not thread-safe: count here */
static void *attention_caller(void *arg) {
    (void)arg;
    lt_attention_desc d = {.b = 1, .nh = 2, .t = 96, .hs = 32, .causal = 1, .scale = 0.17f};
    size_t n = 2 * 96 * 32;
    float *q = malloc(n * sizeof(float)), *o = malloc(n * sizeof(float)), *lse = malloc(2 * 96 * sizeof(float));
    lt_rand_uniform(q, (int64_t)n, 7, 0);
    float first = 0;
    for (int i = 0; !atomic_load(&resizing_done) || i < 50; i++) {
        atomic_fetch_add(&caller_calls, 1);
        if (lt_attention_fwd(&d, q, q, q, o, lse) != LT_OK) { atomic_fetch_add(&caller_errors, 1); break; }
        if (i == 0) first = o[n - 1];
        else if (o[n - 1] != first) { atomic_fetch_add(&caller_errors, 1); break; }
    }
    free(q); free(o); free(lse);
    return NULL;
}
static void pool_grows_under_scratch_sizing(void) {
    pthread_t t[3];
    atomic_store(&resizing_done, 0);
    atomic_store(&caller_errors, 0);
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, attention_caller, NULL);
    for (int r = 0; r < 400; r++) CHECK(lt_set_num_threads(1 + r % 4) == LT_OK, "resize %d", r);
    atomic_store(&resizing_done, 1);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    CHECK(atomic_load(&caller_errors) == 0, "%d attention calls failed or changed bits under resize (of %d)",
          atomic_load(&caller_errors), atomic_load(&caller_calls));
    CHECK(lt_set_num_threads(2) == LT_OK, "resize back");
}

int main(void) {
    philox_kat();
    uniform_range();
    errors_and_info();
    pool_resize();
    pool_grows_under_scratch_sizing();
    return lt_test_summary();
}
