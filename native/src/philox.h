/* Philox4x32-10 (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as easy as 1, 2, 3", SC'11).
 * Counter-based: the i-th draw of stream (seed, stream) is a pure function of (i, seed, stream), so any
 * thread, ISA or GPU computes the same value for the same element. Known-answer vectors from Random123's
 * tests/kat_vectors are checked in PhiloxTest and rng_test.c.
 * Keying used by every Latent sampler: key = (lo32(seed), hi32(seed)), counter = (lo32(i), hi32(i),
 * lo32(stream), hi32(stream)); one call yields 4 uint32, so element i takes word (i & 3) of block i >> 2. */
#ifndef LT_PHILOX_H
#define LT_PHILOX_H
#include <stdint.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3], k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        if (r) { k0 += PHILOX_W0; k1 += PHILOX_W1; }
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1; c3 = (uint32_t)p0; c0 = n0; c2 = n2;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/* uint32 -> float uniform in (0, 1): the top 24 bits, offset by half an ulp, so 0 and 1 never occur. */
static inline float philox_u01(uint32_t x) { return ((float)(x >> 8) + 0.5f) * (1.0f / 16777216.0f); }

#endif
