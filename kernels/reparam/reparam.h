/* reparam internals: reparam.c cuts the n elements into CHUNK-element chunks (a multiple of 32, so a 32-element
 * Philox group never straddles two chunks), runs one implementation per chunk and adds the chunk KL sums in chunk
 * order. eps, s = exp(lv / 2), z, the gradients and the chunk's KL sum are defined by the float operations of
 * reparam_bm.h and reparam_ref.c (explicit fmaf, fixed order); reparam_avx2.c (8 lanes), reparam_avx512.c (16) and reparam.cu compute
 * the same bits (reparam_test and reparam_cuda_test check it). */
#ifndef LT_REPARAM_H
#define LT_REPARAM_H

#include "lt_internal.h"

#define REPARAM_CHUNK 4096 /* part of the contract: the KL reduction order is fixed per 4096 elements */
#define REPARAM_LV_MIN (-30.0f)
#define REPARAM_LV_MAX 30.0f

/* One chunk of elements [lo, lo + len), lo a multiple of 32, len <= REPARAM_CHUNK; mu, logvar, z, ... already
 * point at element lo. fwd returns the chunk's sum of (mu^2 + exp(lv) - 1 - lv) (not yet halved). */
LT_HIDDEN double reparam_fwd_ref(int64_t lo, int64_t len, const float *mu, const float *logvar, uint64_t seed,
                                 uint64_t stream, float *z);
LT_HIDDEN double reparam_fwd_avx2(int64_t lo, int64_t len, const float *mu, const float *logvar, uint64_t seed,
                                  uint64_t stream, float *z);
LT_HIDDEN double reparam_fwd_avx512(int64_t lo, int64_t len, const float *mu, const float *logvar, uint64_t seed,
                                    uint64_t stream, float *z);
LT_HIDDEN void reparam_bwd_ref(int64_t lo, int64_t len, const float *mu, const float *logvar, uint64_t seed,
                               uint64_t stream, const float *dz, float kl_scale, float *dmu, float *dlogvar);
LT_HIDDEN void reparam_bwd_avx2(int64_t lo, int64_t len, const float *mu, const float *logvar, uint64_t seed,
                                uint64_t stream, const float *dz, float kl_scale, float *dmu, float *dlogvar);
LT_HIDDEN void reparam_bwd_avx512(int64_t lo, int64_t len, const float *mu, const float *logvar, uint64_t seed,
                                  uint64_t stream, const float *dz, float kl_scale, float *dmu, float *dlogvar);

#endif
