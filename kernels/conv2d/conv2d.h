/* conv2d internals shared by conv2d.c (validation, dispatch) and its implementations. Not exported.
 *
 * Every implementation takes a descriptor that conv2d.c has already validated (sizes >= 1, oh/ow match the
 * formula, element counts fit int64, pointers non-NULL except bias/db) and writes every output element.
 * Shapes (latent.h): x (N, C, H, W), w (K, C, R, S), y (N, K, OH, OW), bias (K) for fwd, (C) for bwd_data. */
#ifndef LT_CONV2D_H
#define LT_CONV2D_H

#include "lt_internal.h"

/* Plain loops, float accumulation in a fixed order, one task per output plane: the fallback at ISA ref and the
 * readable oracle (conv2d_ref.c). */
LT_HIDDEN lt_status conv2d_fwd_ref(const lt_conv2d_desc *d, const float *x, const float *w, const float *bias,
                                   float *y);
LT_HIDDEN lt_status conv2d_bwd_data_ref(const lt_conv2d_desc *d, const float *dy, const float *w, const float *bias,
                                        float *dx);
LT_HIDDEN lt_status conv2d_bwd_weight_ref(const lt_conv2d_desc *d, const float *x, const float *dy, float *dw,
                                          float *db, int accumulate);

/* Direct register-blocked AVX2+FMA kernels on the worker pool (conv2d_avx2.c). */
LT_HIDDEN lt_status conv2d_fwd_avx2(const lt_conv2d_desc *d, const float *x, const float *w, const float *bias,
                                    float *y);
LT_HIDDEN lt_status conv2d_bwd_data_avx2(const lt_conv2d_desc *d, const float *dy, const float *w, const float *bias,
                                         float *dx);
LT_HIDDEN lt_status conv2d_bwd_weight_avx2(const lt_conv2d_desc *d, const float *x, const float *dy, float *dw,
                                           float *db, int accumulate);

/* Fully connected shapes (output 1 x 1, no padding, the kernel as large as the input) as GEMMs (conv2d_fc_avx2.c).
 * conv2d_fc_* run them on a given GEMM (gemm_avx2 for the fp32 kernels below, gemm_avx512_bf16 for conv2d_bf16.c);
 * conv2d_gemm_desc is the one-matrix, alpha = 1 GEMM descriptor both files lower to. */
LT_HIDDEN int conv2d_is_fc(const lt_conv2d_desc *d);
typedef lt_status (*conv2d_gemm_fn)(const lt_gemm_desc *g, const float *a, const float *b, float *c);
LT_HIDDEN lt_gemm_desc conv2d_gemm_desc(int ta, int tb, int64_t m, int64_t n, int64_t k, float beta, int64_t lda,
                                        int64_t ldb, int64_t ldc);
LT_HIDDEN lt_status conv2d_fc_fwd(const lt_conv2d_desc *d, const float *x, const float *w, const float *bias,
                                  float *y, conv2d_gemm_fn gemm);
LT_HIDDEN lt_status conv2d_fc_bwd_data(const lt_conv2d_desc *d, const float *dy, const float *w, const float *bias,
                                       float *dx, conv2d_gemm_fn gemm);
LT_HIDDEN lt_status conv2d_fc_bwd_weight(const lt_conv2d_desc *d, const float *x, const float *dy, float *dw,
                                         float *db, int accumulate, conv2d_gemm_fn gemm);
LT_HIDDEN lt_status conv2d_fc_fwd_avx2(const lt_conv2d_desc *d, const float *x, const float *w, const float *bias,
                                       float *y);
LT_HIDDEN lt_status conv2d_fc_bwd_data_avx2(const lt_conv2d_desc *d, const float *dy, const float *w,
                                            const float *bias, float *dx);
LT_HIDDEN lt_status conv2d_fc_bwd_weight_avx2(const lt_conv2d_desc *d, const float *x, const float *dy, float *dw,
                                              float *db, int accumulate);

/* 3x3 stride-1 convolutions with >= 16 channels on each side by Winograd: F(2x2, 3x3) for fwd and bwd_data,
 * F(3x3, 2x2) for bwd_weight (conv2d_wino_avx2.c). */
LT_HIDDEN int conv2d_wino_ok(const lt_conv2d_desc *d);
LT_HIDDEN int conv2d_wino_wgrad_ok(const lt_conv2d_desc *d);   /* bwd_weight: also outputs of at least 4 x 4 */
LT_HIDDEN lt_status conv2d_wino_fwd_avx2(const lt_conv2d_desc *d, const float *x, const float *w, const float *bias,
                                         float *y);
LT_HIDDEN lt_status conv2d_wino_bwd_data_avx2(const lt_conv2d_desc *d, const float *dy, const float *w,
                                              const float *bias, float *dx);
LT_HIDDEN lt_status conv2d_wino_bwd_weight_avx2(const lt_conv2d_desc *d, const float *x, const float *dy, float *dw,
                                                float *db, int accumulate);

/* AVX-512 siblings of the direct, bwd_weight and Winograd kernels (conv2d_avx512.c, conv2d_wgrad_avx512.c,
 * conv2d_wino_avx512.c): the same algorithms on an 8 x 32 zmm tile. Fully connected shapes keep conv2d_fc_*_avx2,
 * whose GEMM dispatches by ISA itself. */
/* Tests only: 1 sends every non-fully-connected shape to the AVX-512 kernels at avx512 (conv2d.c's use_avx512). */
LT_HIDDEN void conv2d_force_avx512(int on);
LT_HIDDEN lt_status conv2d_fwd_avx512(const lt_conv2d_desc *d, const float *x, const float *w, const float *bias,
                                      float *y);
LT_HIDDEN lt_status conv2d_bwd_data_avx512(const lt_conv2d_desc *d, const float *dy, const float *w, const float *bias,
                                           float *dx);
LT_HIDDEN lt_status conv2d_bwd_weight_avx512(const lt_conv2d_desc *d, const float *x, const float *dy, float *dw,
                                             float *db, int accumulate);
LT_HIDDEN lt_status conv2d_wino_fwd_avx512(const lt_conv2d_desc *d, const float *x, const float *w, const float *bias,
                                           float *y);
LT_HIDDEN lt_status conv2d_wino_bwd_data_avx512(const lt_conv2d_desc *d, const float *dy, const float *w,
                                                const float *bias, float *dx);
LT_HIDDEN lt_status conv2d_wino_bwd_weight_avx512(const lt_conv2d_desc *d, const float *x, const float *dy, float *dw,
                                                  float *db, int accumulate);

/* bf16 operands (RNE), fp32 sums: each pass lowered to the bf16 GEMM per block of images (conv2d_bf16.c). Each
 * refuses with LT_ERR_UNSUPPORTED unless lt_cpu_bf16() and the level in use is avx512. */
LT_HIDDEN lt_status conv2d_fwd_bf16(const lt_conv2d_desc *d, const float *x, const float *w, const float *bias,
                                    float *y);
LT_HIDDEN lt_status conv2d_bwd_data_bf16(const lt_conv2d_desc *d, const float *dy, const float *w, const float *bias,
                                         float *dx);
LT_HIDDEN lt_status conv2d_bwd_weight_bf16(const lt_conv2d_desc *d, const float *x, const float *dy, float *dw,
                                           float *db, int accumulate);

#endif
