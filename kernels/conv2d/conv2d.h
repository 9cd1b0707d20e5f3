/* 2-D convolution internals shared by conv2d.c (validation, dispatch) and its implementations. The descriptor
 * has been validated (sizes >= 1, oh/ow consistent, no int64 overflow) before any of these is called. */
#ifndef LT_CONV2D_H
#define LT_CONV2D_H

#include "lt_internal.h"

/* Direct loops, double accumulation, rounded once: the ISA-ref fallback and the readable oracle (conv2d_ref.c). */
LT_HIDDEN lt_status conv_fwd_ref(const lt_conv2d_desc *d, const float *x, const float *w, const float *bias, float *y);
LT_HIDDEN lt_status conv_bwd_data_ref(const lt_conv2d_desc *d, const float *dy, const float *w, const float *bias, float *dx);
LT_HIDDEN lt_status conv_bwd_weight_ref(const lt_conv2d_desc *d, const float *x, const float *dy, float *dw, float *db, int accumulate);
/* im2col / col2im around lt_gemm on chunks of images (conv2d_avx2.c): see the design note there. */
LT_HIDDEN lt_status conv_fwd_gemm(const lt_conv2d_desc *d, const float *x, const float *w, const float *bias, float *y);
LT_HIDDEN lt_status conv_bwd_data_gemm(const lt_conv2d_desc *d, const float *dy, const float *w, const float *bias, float *dx);
LT_HIDDEN lt_status conv_bwd_weight_gemm(const lt_conv2d_desc *d, const float *x, const float *dy, float *dw, float *db, int accumulate);

#endif
