/* Exported Philox entry points (the samplers in kernels/ use philox.h directly). */
#include "lt_internal.h"
#include "philox.h"

lt_status lt_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    if (!ctr || !key || !out) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_philox4x32_10: NULL argument");
    philox4x32_10(ctr, key, out);
    return LT_OK;
}

lt_status lt_rand_uniform(float *out, int64_t n, uint64_t seed, uint64_t stream) {
    if (!out && n > 0) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_rand_uniform: out is NULL");
    if (n < 0) return lt_fail(LT_ERR_INVALID_ARGUMENT, "lt_rand_uniform: n=%lld < 0", (long long)n);
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    for (int64_t b = 0; b * 4 < n; b++) {
        const uint32_t ctr[4] = {(uint32_t)b, (uint32_t)((uint64_t)b >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
        uint32_t r[4];
        philox4x32_10(ctr, key, r);
        for (int j = 0; j < 4 && b * 4 + j < n; j++) out[b * 4 + j] = philox_u01(r[j]);
    }
    return LT_OK;
}
