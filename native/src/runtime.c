/* Runtime: ABI handshake, per-thread last error, CPUID-based ISA dispatch with the LATENT_MAX_ISA cap. */
#include <cpuid.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lt_internal.h"

static _Thread_local char last_error[512];

lt_status lt_fail(lt_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return code;
}
void lt_clear_error(void) { last_error[0] = 0; }
const char *lt_last_error(void) { return last_error; }
int32_t lt_abi_version(void) { return LT_ABI_VERSION; }

/* ---- ISA ---- */
static int isa_supported = -1; /* set once by the constructor below */
static int isa_current = LT_ISA_REF;
static int cpu_bf16;              /* AVX512_BF16 (vdpbf16ps, vcvtne2ps2bf16), usable only with the avx512 level */
static char isa_reason[160];
static char env_reason[160];      /* the LATENT_MAX_ISA cap's reason, restored when lt_set_isa returns to it */
static int env_cap = LT_ISA_AVX512;

static unsigned xcr0(void) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return lo;
}

static int detect_avx2(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    if (!(fma && osxsave && avx)) return 0;
    /* The OS must save YMM state (XCR0 bits 1 and 2). */
    if ((xcr0() & 6) != 6) return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (b >> 5) & 1; /* AVX2 */
}

/* AVX-512 F + BW + VL + DQ (what the *_avx512.c files are compiled for), and the OS saving the opmask and
 * both halves of the ZMM state (XCR0 bits 5, 6, 7) besides SSE/AVX (bits 1, 2). Called after detect_avx2. */
static int detect_avx512(void) {
    unsigned a, b, c, d;
    if ((xcr0() & 0xe6) != 0xe6) return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    int f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    if (!(f && dq && bw && vl)) return 0;
    /* CPUID.(7,1):EAX bit 5 is AVX512_BF16. */
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) cpu_bf16 = (a >> 5) & 1;
    return 1;
}

static int parse_isa(const char *s) {
    return !strcmp(s, "ref") ? LT_ISA_REF : !strcmp(s, "avx2") ? LT_ISA_AVX2 : !strcmp(s, "avx512") ? LT_ISA_AVX512 : -1;
}

/* Priority 101: before any other constructor (the native tests' ISA gate in lt_test.h reads the result). */
__attribute__((constructor(101))) static void isa_init(void) {
    isa_supported = !detect_avx2() ? LT_ISA_REF : detect_avx512() ? LT_ISA_AVX512 : LT_ISA_AVX2;
    isa_current = isa_supported;
    isa_reason[0] = 0;
    if (isa_supported == LT_ISA_REF)
        snprintf(isa_reason, sizeof isa_reason, "CPU lacks AVX2+FMA (or the OS does not save YMM state)");
    else if (isa_supported == LT_ISA_AVX2)
        snprintf(isa_reason, sizeof isa_reason, "CPU lacks AVX-512 F+BW+VL+DQ (or the OS does not save ZMM/opmask state)");
    const char *cap = getenv("LATENT_MAX_ISA");
    if (cap && *cap) {
        int lvl = parse_isa(cap);
        if (lvl < 0)
            snprintf(isa_reason, sizeof isa_reason, "LATENT_MAX_ISA=%.40s not understood (use ref|avx2|avx512); ignored", cap);
        else if (lvl < isa_current) {
            isa_current = env_cap = lvl;
            snprintf(isa_reason, sizeof isa_reason, "capped by LATENT_MAX_ISA=%s", cap);
            memcpy(env_reason, isa_reason, sizeof env_reason);
        }
    }
}

int lt_isa_level(void) { return isa_current; }
int32_t lt_isa_supported(void) { return isa_supported; }
int32_t lt_isa(void) { return isa_current; }
const char *lt_isa_reason(void) { return isa_reason; }
int32_t lt_cpu_bf16(void) { return isa_supported >= LT_ISA_AVX512 && cpu_bf16; }
int32_t lt_set_isa(int32_t isa) {
    if (isa < LT_ISA_REF) isa = LT_ISA_REF;
    if (isa > isa_supported) isa = isa_supported;
    isa_current = isa;
    if (isa < isa_supported && isa == env_cap && env_reason[0]) memcpy(isa_reason, env_reason, sizeof isa_reason);
    else if (isa < isa_supported) snprintf(isa_reason, sizeof isa_reason, "set by lt_set_isa(%d)", isa);
    else isa_reason[0] = 0;
    return isa;
}

void *lt_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    if (posix_memalign(&p, 64, (bytes + 63) & ~(size_t)63)) return NULL;
    return p;
}
void lt_free(void *p) { free(p); }

/* The cases, one per descriptor struct of latent.h with its id, are generated (GenBindings.java). */
#include "struct_info.inc"

lt_status lt_struct_info(int32_t which, int64_t *out, int32_t capacity) {
    if (!out) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_struct_info: out is NULL");
    int64_t v[LT_STRUCT_INFO_MAX];
    int n = lt_struct_info_fill(which, v);
    if (n < 0) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_struct_info: unknown struct id %d", which);
    if (capacity < n) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_struct_info: capacity %d < %d", capacity, n);
    memcpy(out, v, (size_t)n * sizeof(int64_t));
    return LT_OK;
}
