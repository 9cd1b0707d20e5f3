/* reparam internals: reparam.c cuts the n elements into CHUNK-element chunks (a multiple of 4, so a Philox block
 * never straddles two chunks), runs one implementation per chunk and adds the chunk KL sums in chunk order.
 * eps comes from reparam_eps (reparam_ref.c, scalar) or its 4-pair vector copy (reparam_avx2.c); both run the
 * Box-Muller of reparam_bm.h with the same IEEE operations in the same order and nothing fused, so eps is
 * bit-identical between ref and AVX2 (reparam_test checks it). */
#ifndef LT_REPARAM_H
#define LT_REPARAM_H

#include "lt_internal.h"

#define REPARAM_CHUNK 4096 /* part of the contract: the KL reduction order is fixed per 4096 elements */
#define REPARAM_LV_MIN (-30.0f)
#define REPARAM_LV_MAX 30.0f

/* eps[k] = N(0, 1) draw of element lo + k of stream (seed, stream), k < len (mapping in latent.h), any lo. */
LT_HIDDEN void reparam_eps(uint64_t seed, uint64_t stream, int64_t lo, int64_t len, float *eps);

/* One chunk of elements [lo, lo + len), len <= REPARAM_CHUNK; mu, logvar, z, ... already point at element lo.
 * fwd returns the chunk's sum of (mu^2 + exp(lv) - 1 - lv) in double (not yet halved). */
LT_HIDDEN double reparam_fwd_ref(int64_t lo, int64_t len, const float *mu, const float *logvar, uint64_t seed,
                                 uint64_t stream, float *z);
LT_HIDDEN double reparam_fwd_avx2(int64_t lo, int64_t len, const float *mu, const float *logvar, uint64_t seed,
                                  uint64_t stream, float *z);
LT_HIDDEN void reparam_bwd_ref(int64_t lo, int64_t len, const float *mu, const float *logvar, uint64_t seed,
                               uint64_t stream, const float *dz, float kl_scale, float *dmu, float *dlogvar);
LT_HIDDEN void reparam_bwd_avx2(int64_t lo, int64_t len, const float *mu, const float *logvar, uint64_t seed,
                                uint64_t stream, const float *dz, float kl_scale, float *dmu, float *dlogvar);

#endif
