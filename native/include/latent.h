/*
 * latent.h — the one public header of liblatent: every exported symbol, the status codes, the ABI version.
 *
 * Rules of the boundary (reasons in docs/decisions.md, "The native boundary"):
 *   - every lt_* call returns an lt_status (0 = ok); details of the last failure on this thread come from
 *     lt_last_error(). The library never exits, aborts or prints.
 *   - arguments are plain pointers and small descriptor structs; Java mirrors each struct with a
 *     StructLayout and a test compares sizes and offsets with lt_struct_info().
 *   - only lt_* symbols are exported (hidden visibility elsewhere; ci/check-exports.sh enforces it).
 *   - this header is the one description of the boundary: java/src/build/GenBindings.java reads every LT_API
 *     prototype, struct and LT_ constant and generates the Java binding (dev.latent.nativ.LatentBinding: layouts,
 *     accessors, downcalls, checked wrappers named after the C name). The @-comment after each prototype says what C
 *     cannot: "@ x[n*c] y[n]" gives each pointer's extent in elements (its element size is its C type's), so
 *     the Java wrapper checks every segment before the call; "custom" means LatentNative checks it by hand (descriptors,
 *     out-parameters); "required" binds it at load (else a missing symbol fails at the call). A pointer without
 *     an extent in a function not marked custom, or a stale generated file, fails the build.
 *     "op=NAME" makes the function the CPU side of the Backend op NAME (its parameters, pointers as tensors): the
 *     generator writes the Backend method and both backends' bodies (the CUDA one calls the launcher NAME, which a
 *     .cu launch annotation generates or CudaKernels writes); "host=p" passes p as a host segment, "hand=cpu|cuda"
 *     leaves that body to CpuBackend / CudaBackend, "cpuonly" makes the CUDA body refuse, "launcher=C" names the
 *     launcher's class. "@ id=N" after a descriptor struct is its lt_struct_info id (cases generated into
 *     native/src/struct_info.inc). Grammar and walk-through: docs/extending.md.
 *
 * Glossary of shape letters:
 *   GEMM:       M, N, K (C is M x N, op(A) is M x K, op(B) is K x N), batch
 *   attention:  B batch, T sequence, C channels, NH heads, HS head size (C = NH * HS)
 *   conv:       N batch, C in-channels, H, W input, K out-channels, R, S kernel, OH, OW output
 *   latent:     D latent dimensions
 * All tensors are fp32, row-major, dense unless a leading dimension or stride says otherwise.
 */
#ifndef LATENT_H
#define LATENT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LT_API __attribute__((visibility("default")))

/* Bumped on any change of a signature, a struct or a status code. Java checks it at load. */
#define LT_ABI_VERSION 1

typedef int32_t lt_status;
enum {
    LT_OK = 0,
    LT_ERR_INVALID_ARGUMENT = 1, /* a shape, stride or pointer that cannot be right */
    LT_ERR_OUT_OF_MEMORY = 2,    /* scratch allocation failed */
    LT_ERR_UNSUPPORTED = 3,      /* ISA or feature not available */
    LT_ERR_INTERNAL = 4          /* a bug: please report with lt_last_error() */
};

/* ISA levels, lowest first. LATENT_MAX_ISA=ref|avx2|avx512 caps the level chosen at load. avx2 = AVX2 + FMA;
 * avx512 = AVX-512 F + BW + VL + DQ (with the OS saving ZMM and opmask state). */
enum { LT_ISA_REF = 0, LT_ISA_AVX2 = 1, LT_ISA_AVX512 = 2 };

/* ---- runtime ---------------------------------------------------------------------------------- */
LT_API int32_t lt_abi_version(void); /*@ required */
/* Message of the last failing call on the calling thread; "" when none. Valid until the next call. */
LT_API const char *lt_last_error(void); /*@ required */
/* Highest ISA the CPU supports (CPUID, checked once), the cap from LATENT_MAX_ISA, and the level in use. */
LT_API int32_t lt_isa_supported(void); /*@ required */
LT_API int32_t lt_isa(void); /*@ required */
/* Set the level in use: clamped to what the CPU supports; returns the level actually set. */
LT_API int32_t lt_set_isa(int32_t isa); /*@ required */
/* Why the level in use is below the CPU's best, or "" (e.g. "capped by LATENT_MAX_ISA=ref"). */
LT_API const char *lt_isa_reason(void); /*@ required */
/* 1 when the CPU has AVX512_BF16 (vdpbf16ps) and the avx512 level is supported, else 0. bf16 kernels also need
 * the level in use to be avx512; nothing emulates bf16 where this is 0. */
LT_API int32_t lt_cpu_bf16(void); /*@ custom required */

/* The fixed worker pool. Default size = online cores. Resizing waits for running work to finish.
 * Many threads may call kernels at once: a call that finds the pool busy runs on its own thread,
 * so nothing oversubscribes and nothing deadlocks. Results never depend on the thread count. */
LT_API lt_status lt_set_num_threads(int32_t n); /*@ custom required */
LT_API int32_t lt_num_threads(void); /*@ required */

/* Size and field offsets of the descriptor structs, for the Java layout test.
 * which: 0 = lt_gemm_desc, 1 = lt_attention_desc, 2 = lt_adamw_desc, 3 = lt_copy_desc, 4 = lt_conv2d_desc,
 * 5 = lt_attention_decode_desc. out[0] = sizeof, out[1..] = offsetof of each field in declaration order. */
LT_API lt_status lt_struct_info(int32_t which, int64_t *out, int32_t capacity); /*@ custom required */

/* ---- RNG: Philox4x32-10 (Salmon et al., SC'11) -------------------------------------------------- */
/* out[4] = philox4x32_10(ctr[4], key[2]). Exposed for known-answer tests against Random123. */
LT_API lt_status lt_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]); /*@ custom required */
/* Fill out[n] with uniforms in (0, 1) from the stream (seed, stream): element i uses counter i. */
LT_API lt_status lt_rand_uniform(float *out, int64_t n, uint64_t seed, uint64_t stream); /*@ required out[n] */

/* ---- GEMM: C = alpha * op(A) * op(B) + beta * C, row-major ---------------------------------------
 * op(A) is M x K: A is M x K with row stride lda (trans_a = 0) or K x M (trans_a = 1).
 * op(B) is K x N: B is K x N with row stride ldb (trans_b = 0) or N x K (trans_b = 1).
 * C is M x N with row stride ldc. Strided batch: matrix b of X starts at X + b * stride_x.
 * beta == 0 means C is write-only (NaNs in C do not propagate), as in BLAS. */
typedef struct lt_gemm_desc {
    int32_t trans_a, trans_b;
    int64_t m, n, k;
    float alpha, beta;
    int64_t lda, ldb, ldc;
    int64_t batch;
    int64_t stride_a, stride_b, stride_c;
} lt_gemm_desc; /*@ id=0 */
LT_API lt_status lt_gemm(const lt_gemm_desc *d, const float *a, const float *b, float *c); /*@ custom required */
/* bf16 GEMM: the same descriptor, layouts and checks as lt_gemm; op(A) and op(B) are rounded to bf16 (round to
 * nearest even) as they are read and their products summed in fp32 (AVX512_BF16 vdpbf16ps); C, alpha, beta stay
 * fp32. Per element |C - exact| <= (2^-7 + 2^-16) * sum|alpha a b| + fp32 summation error. LT_ERR_UNSUPPORTED unless
 * lt_cpu_bf16() and the level in use is avx512 (never emulated). Bits identical across thread counts. */
LT_API lt_status lt_gemm_bf16(const lt_gemm_desc *d, const float *a, const float *b, float *c); /*@ custom required */

/* Skinny GEMM without packing: C = alpha * A B^T + beta * C with A (M, K) and B (N, K) row-major (trans_a = 0,
 * trans_b = 1, batch = 1 only; anything else is LT_ERR_INVALID_ARGUMENT): a Linear layer's y = x W^T for a few rows of x,
 * as in decoding (M = sequences in flight). Each element is the dot product of an A row and a B row summed in a fixed
 * order, so the bits depend neither on the thread count nor on M (a row is the same alone or among others); the
 * weights stream through once per call. Slower than lt_gemm once M reaches tens of rows. C must not overlap A or B. */
LT_API lt_status lt_gemm_rows(const lt_gemm_desc *d, const float *a, const float *b, float *c); /*@ custom */

/* Skinny GEMM on pre-packed weights (kernels/gemm/gemm_packed.c), for decoding with M = sequences in flight:
 * lt_gemm_rows_pack copies B (N, K) at row stride ldb (a Linear layer's weight) into panels of LT_GEMM_PACK_NR
 * columns, k-major: packed[(p * K + k) * NR + j] = B[p * NR + j][k], zero where p * NR + j >= N; packed holds
 * ceil(N / NR) * NR * K floats (lt_gemm_rows_packed_size) and must not overlap B. lt_gemm_rows_packed then computes
 * C (M, N) at row stride ldc = A (M, K) at row stride lda times B^T, plus bias[j] when bias is not NULL: every panel
 * streams through once per call with up to 16 rows of A against it in registers. Each element is one fused
 * multiply-add chain over k = 0 .. K-1 in order from 0, then + bias[j]: its bits depend neither on M, the thread
 * count, the tile nor the ISA (the reference uses fmaf). C must not overlap A, packed or bias. Forward only. */
#define LT_GEMM_PACK_NR 16
LT_API int64_t lt_gemm_rows_packed_size(int64_t n, int64_t k); /*@ custom */
LT_API lt_status lt_gemm_rows_pack(int64_t n, int64_t k, const float *b, int64_t ldb, float *packed); /*@ custom */
LT_API lt_status lt_gemm_rows_packed(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *packed,
                                     const float *bias, float *c, int64_t ldc); /*@ custom */

/* ---- attention: multi-head scaled dot-product, FlashAttention-2 style ------------------------------
 * q, k, v, o, dq, dk, dv: (B, NH, T, HS) contiguous. lse: (B, NH, T), the log-sum-exp of each row of the
 * scaled (and, if causal, masked) scores, written by the forward and read by the backward, which recomputes
 * the scores tile by tile: the T x T matrix is never stored. A row with no visible key (impossible when
 * causal, since a query sees itself) gives o = 0 and lse = -inf. */
typedef struct lt_attention_desc {
    int64_t b, nh, t, hs;
    int32_t causal;  /* 1: query i attends to keys j <= i */
    float scale;     /* usually 1/sqrt(HS) */
} lt_attention_desc; /*@ id=1 */
LT_API lt_status lt_attention_fwd(const lt_attention_desc *d, const float *q, const float *k, const float *v,
                                  float *o, float *lse); /*@ custom op=attention host=d */
/* dq, dk, dv are overwritten. */
LT_API lt_status lt_attention_bwd(const lt_attention_desc *d, const float *q, const float *k, const float *v,
                                  const float *o, const float *lse, const float *dout, float *dq, float *dk, float *dv);
    /*@ custom op=attentionBackward host=d */
/* bf16 attention: the same descriptor, layouts, checks and lse contract; the operands of every matmul (Q K^T, P V and
 * the backward's dout V^T, dS K, P^T dout, dS^T Q) are rounded to bf16 (round to nearest even) and their products
 * summed in fp32 (AVX512_BF16 vdpbf16ps); softmax, statistics and outputs stay fp32. LT_ERR_UNSUPPORTED unless
 * lt_cpu_bf16() and the level in use is avx512 (never emulated). Bits identical across thread counts. */
LT_API lt_status lt_attention_fwd_bf16(const lt_attention_desc *d, const float *q, const float *k, const float *v,
                                       float *o, float *lse);
    /*@ custom */
LT_API lt_status lt_attention_bwd_bf16(const lt_attention_desc *d, const float *q, const float *k, const float *v,
                                       const float *o, const float *lse, const float *dout, float *dq, float *dk,
                                       float *dv);
    /*@ custom */

/* ---- decode attention: one new query per row against that row's KV cache (kernels/attention_decode) ---------
 * Inference only (no backward): the attention of KV-cache decoding. Row r (r < rows) has its query q + r*ldq, (NH*HS)
 * floats with head h at columns h*HS; its keys and values are rows 0 .. len[r]-1 of the caches k[r] and v[r] (row
 * stride ldkv floats, head h at columns h*HS); o + r*ldo receives, per head, softmax(scale * q_h . k_j) weighted sum
 * of v_j over j < len[r] (len[r] >= 1). Rows may share a cache (a prompt's positions fed at once, each with its own
 * len). One (row, head) pair is computed by one task in a fixed order, so the bits depend neither on the thread
 * count nor on the other rows. o must not overlap q or a cache the call reads. */
typedef struct lt_attention_decode_desc {
    int64_t rows, nh, hs;
    int64_t ldq, ldkv, ldo; /* row strides in floats, each >= nh * hs */
    float scale;            /* usually 1/sqrt(HS) */
    int32_t pad_;
} lt_attention_decode_desc; /*@ id=5 */
LT_API lt_status lt_attention_decode_fwd(const lt_attention_decode_desc *d, const float *q, const float *const *k,
                                         const float *const *v, const int32_t *len, float *o); /*@ custom */

/* ---- fused training kernels ---------------------------------------------------------------------------
 * Row-wise ops take (N, C) contiguous row-major. Parameter gradients (dw, db, dtable) ACCUMULATE (+=) with a
 * fixed reduction order independent of the thread count; activation gradients (dx) are overwritten. */

/* LayerNorm over C: y = (x - mean) * rstd * w + b; mean, rstd: (N) saved for the backward. */
LT_API lt_status lt_layernorm_fwd(int64_t n, int64_t c, float eps, const float *x, const float *w, const float *b,
                                  float *y, float *mean, float *rstd); /*@ x[n*c] w[c] b[c] y[n*c] mean[n] rstd[n] op=layerNorm */
LT_API lt_status lt_layernorm_bwd(int64_t n, int64_t c, const float *x, const float *w, const float *mean,
                                  const float *rstd, const float *dy, float *dx, float *dw, float *db);
    /*@ x[n*c] w[c] mean[n] rstd[n] dy[n*c] dx[n*c] dw[c] db[c] op=layerNormBackward */
/* Residual add fused with LayerNorm (GPT's pre-LN blocks): s = x + a (the new residual stream, an output), then
 * lt_layernorm_fwd on s (y, mean, rstd), in one pass over the rows; the same bits as lt_axpby's add followed by
 * lt_layernorm_fwd. s may equal x or a. bwd: dx = ds + (lt_layernorm_bwd's dx from dy), the gradient of both x and a;
 * dw, db accumulate as lt_layernorm_bwd's, with its bits; dx may equal dy. */
LT_API lt_status lt_layernorm_residual_fwd(int64_t n, int64_t c, float eps, const float *x, const float *a,
                                           const float *w, const float *b, float *s, float *y, float *mean, float *rstd);
    /*@ x[n*c] a[n*c] w[c] b[c] s[n*c] y[n*c] mean[n] rstd[n] op=layerNormResidual */
LT_API lt_status lt_layernorm_residual_bwd(int64_t n, int64_t c, const float *s, const float *w, const float *mean,
                                           const float *rstd, const float *dy, const float *ds, float *dx, float *dw,
                                           float *db);
    /*@ s[n*c] w[c] mean[n] rstd[n] dy[n*c] ds[n*c] dx[n*c] dw[c] db[c] op=layerNormResidualBackward */

/* Exact GELU, 0.5 x (1 + erf(x / sqrt 2)), over n elements; bwd: dx = dy * gelu'(x) (dx may alias dy). */
LT_API lt_status lt_gelu_fwd(int64_t n, const float *x, float *y); /*@ x[n] y[n] op=gelu */
LT_API lt_status lt_gelu_bwd(int64_t n, const float *x, const float *dy, float *dx); /*@ x[n] dy[n] dx[n] op=geluBackward */

/* Softmax + cross-entropy in one pass over logits (N, V): losses[i] = logsumexp(row) - row[target[i]].
 * target < 0 ignores the row (loss 0, zero gradient). When dlogits != NULL it is written with
 * (softmax(row) - onehot(target)) * dscale (dlogits may alias logits). */
LT_API lt_status lt_softmax_xent(int64_t n, int64_t v, const float *logits, const int32_t *targets, float *losses,
                                 float *dlogits, float dscale); /*@ logits[n*v] targets[n] losses[n] dlogits[n*v] op=softmaxCrossEntropy host=targets hand=cuda */

/* AdamW, one pass over n parameters: decoupled weight decay (p -= lr*wd*p), bias-corrected moments with
 * step t >= 1, p -= lr * mhat / (sqrt(vhat) + eps). grad_scale multiplies g first (gradient clipping). */
typedef struct lt_adamw_desc {
    float lr, beta1, beta2, eps, weight_decay, grad_scale;
    int64_t step;
} lt_adamw_desc; /*@ id=2 */
LT_API lt_status lt_adamw(const lt_adamw_desc *d, int64_t n, float *param, const float *grad, float *m, float *v);
    /*@ custom */

/* Sum of squares of x[n] in double, accumulated in fixed 4096-element chunks (global-norm clipping). */
LT_API lt_status lt_sumsq(int64_t n, const float *x, double *out); /*@ custom */
/* The sum of lt_sumsq over nseg segments x[offset[k] .. offset[k] + len[k]) in one parallel pass, with the bits of
 * lt_sumsq per segment added in segment order from 0 (one gradient-norm pass over a model's flat gradient buffer). */
LT_API lt_status lt_sumsq_segments(int64_t nseg, const int64_t *offset, const int64_t *len, const float *x, double *out);
    /*@ custom */

/* Embedding backward: dtable[ids[i], :] += dout[i, :] for i < n, c columns; ids outside [0, vocab) is an
 * error. Deterministic: rows are accumulated in index order, without atomics. */
LT_API lt_status lt_embedding_bwd(int64_t n, int64_t c, int64_t vocab, const int32_t *ids, const float *dout,
                                  float *dtable); /*@ ids[n] dout[n*c] dtable[vocab*c] */

/* ---- elementwise and layout helpers (kernels/elementwise) -------------------------------------------- */
/* y = a*x + b*y over n elements; b == 0 makes y write-only. x may equal y. */
LT_API lt_status lt_axpby(int64_t n, float a, const float *x, float b, float *y); /*@ x[n] y[n] op=axpby */
/* y = x * z elementwise (y may alias x or z). */
LT_API lt_status lt_mul(int64_t n, const float *x, const float *z, float *y); /*@ x[n] z[n] y[n] op=mul */
/* Row broadcast add: y[i, :] = x[i, :] + rows[i % period, :] for x, y (N, C), rows (period, C); y may alias x. */
LT_API lt_status lt_add_rows(int64_t n, int64_t c, int64_t period, const float *x, const float *rows, float *y);
    /*@ custom op=addRows hand=cuda */
/* Its adjoint: out[i % period, :] += x[i, :], accumulated in row order in fixed chunks (deterministic). */
LT_API lt_status lt_sum_rows(int64_t n, int64_t c, int64_t period, const float *x, float *out); /*@ custom op=sumRows hand=cuda */
/* Strided copy of a rank <= 6 tensor: dst[idx] = src[idx] (strides in elements, may be any sign >= 0 layout).
 * Used for permutes (qkv split into heads) and Tensor.contiguous(). */
#define LT_MAX_RANK 6
typedef struct lt_copy_desc {
    int32_t rank;
    int32_t pad_;
    int64_t shape[LT_MAX_RANK];
    int64_t src_stride[LT_MAX_RANK];
    int64_t dst_stride[LT_MAX_RANK];
} lt_copy_desc; /*@ id=3 */
LT_API lt_status lt_copy_strided(const lt_copy_desc *d, const float *src, float *dst); /*@ custom */

/* ---- VAE reparameterization sampler (kernels/reparam) ------------------------------------------------
 * z = mu + exp(0.5 logvar) * eps over n elements, eps ~ N(0, 1) from Philox4x32-10 stream (seed, stream), keyed as
 * lt_rand_uniform (key (lo32 seed, hi32 seed), counter (lo32 b, hi32 b, lo32 stream, hi32 stream)).
 * Mapping, in groups of 32 elements: element i, g = i >> 5, k = i & 31, uses block b = 8g + (k & 7) and its word
 * pair (w[2p], w[2p + 1]), p = k >> 4: u1 = u01(w[2p]), u2 = u01(w[2p + 1]) (u01 as lt_rand_uniform, in
 * [2^-25, 1]); eps = r cos(2 pi u2) if (k >> 3) is even, r sin(2 pi u2) if odd, r = sqrt(-2 ln u1). (So block
 * 8g + j feeds elements 32g + j + {0, 8, 16, 24}.) Computed in float from IEEE-exact operations only, every
 * multiply-add an explicit correctly rounded fma, in a fixed order (own log, sin, cos polynomials:
 * kernels/reparam/reparam_bm.h): within 4 u r of the exact Box-Muller (u = 2^-24), |eps| <= 5.8872, and the same
 * bits at every ISA, thread count and on CUDA (reparam.cu). z = fma(s, eps, mu) with s = the library's own float
 * exp(0.5 lv) (same bits everywhere too, <= 1.4 ulp).
 * logvar is clamped to [-30, 30] first (exp(15) keeps z finite; outside, every output, gradients included, is that
 * of the clamped value; NaN stays NaN). kl (may be NULL) = 0.5 sum(mu^2 + exp(logvar) - 1 - logvar), KL(q || N(0, I)):
 * float terms, summed in a fixed order (4 terms of a block in float, then per block lane in double over each
 * 4096-element chunk, chunks added in order; reparam_ref.c), so kl's bits too are the same everywhere.
 * Inputs and outputs must not overlap. */
LT_API lt_status lt_reparam_fwd(int64_t n, const float *mu, const float *logvar, uint64_t seed, uint64_t stream,
                                float *z, double *kl); /*@ mu[n] logvar[n] z[n] kl[1] */
/* Backward of z (upstream dz) plus kl_scale * kl (finite), recomputing eps (never stored); dmu, dlogvar overwritten:
 * dmu = dz + kl_scale mu, dlogvar = dz eps 0.5 exp(0.5 logvar) + kl_scale 0.5 (exp(logvar) - 1), logvar clamped. */
LT_API lt_status lt_reparam_bwd(int64_t n, const float *mu, const float *logvar, uint64_t seed, uint64_t stream,
                                const float *dz, float kl_scale, float *dmu, float *dlogvar);
    /*@ mu[n] logvar[n] dz[n] dmu[n] dlogvar[n] op=reparamBackward launcher=CudaProbKernels */

/* ---- 2-D convolution (kernels/conv2d) -------------------------------------------------------------------
 * Cross-correlation, NCHW at the API: x (N, C, H, W), w (K, C, R, S), y (N, K, OH, OW), all contiguous, with
 * OH = (H + 2 pad_h - R) / stride_h + 1 and OW likewise (floor division; the desc must carry these values, so a
 * transposed convolution with "output padding" is just a conv whose H, W are a little larger). Kernel sizes 1..7
 * are the tuned range; any R, S >= 1 with R <= H + 2 pad_h is valid. Zero padding.
 * A transposed convolution (PyTorch ConvTranspose2d, weight (Cin, Cout, R, S)) is this conv read backwards:
 * its forward is lt_conv2d_bwd_data with the conv's K = Cin, C = Cout; its backward-data is lt_conv2d_fwd; its
 * weight gradient is lt_conv2d_bwd_weight with x and dy swapped. Outputs must not overlap inputs (refused:
 * in-place convolution would race on the pool). */
typedef struct lt_conv2d_desc {
    int64_t n, c, h, w;  /* input */
    int64_t k, r, s;     /* output channels, kernel height and width */
    int64_t oh, ow;      /* output height and width, checked against the formula */
    int32_t stride_h, stride_w;
    int32_t pad_h, pad_w;
} lt_conv2d_desc; /*@ id=4 */
/* y = conv(x, w) + bias[k] (bias may be NULL). y is overwritten (write-only: NaNs in y do not propagate). */
LT_API lt_status lt_conv2d_fwd(const lt_conv2d_desc *d, const float *x, const float *w, const float *bias, float *y);
    /*@ custom */
/* dx = conv^T(dy, w) (+ bias[c] per input channel when bias != NULL, which makes this the fused forward of a
 * transposed convolution). dx is overwritten. */
LT_API lt_status lt_conv2d_bwd_data(const lt_conv2d_desc *d, const float *dy, const float *w, const float *bias,
                                    float *dx); /*@ custom */
/* dw (K, C, R, S) and db (K, may be NULL) from x and dy. accumulate = 0 overwrites, 1 adds (+=). Deterministic: a
 * fixed reduction order independent of the thread count. */
LT_API lt_status lt_conv2d_bwd_weight(const lt_conv2d_desc *d, const float *x, const float *dy, float *dw, float *db,
                                      int32_t accumulate); /*@ custom */
/* bf16 conv2d: the same descriptor, layouts and checks as the three above; the operands of every product (x or its
 * unfolded patches, w, dy) are rounded to bf16 (round to nearest even) and the products summed in fp32 (AVX512_BF16
 * vdpbf16ps, through the bf16 GEMM); bias, db and outputs stay fp32. LT_ERR_UNSUPPORTED unless lt_cpu_bf16() and
 * the level in use is avx512 (never emulated). Bits identical across thread counts. */
LT_API lt_status lt_conv2d_fwd_bf16(const lt_conv2d_desc *d, const float *x, const float *w, const float *bias,
                                    float *y); /*@ custom */
LT_API lt_status lt_conv2d_bwd_data_bf16(const lt_conv2d_desc *d, const float *dy, const float *w, const float *bias,
                                         float *dx); /*@ custom */
LT_API lt_status lt_conv2d_bwd_weight_bf16(const lt_conv2d_desc *d, const float *x, const float *dy, float *dw,
                                           float *db, int32_t accumulate); /*@ custom */

/* ---- dilated causal 1-D convolution (kernels/conv1d; WaveNet's layer) ------------------------------------
 * x (N, Cin, T), w (Cout, Cin, K), bias (Cout), y (N, Cout, T), all contiguous; dilation d >= 1, causal: the input is
 * padded on the left with (K-1) d zeros, so y[n, o, t] = bias[o] + sum_{i, j} w[o, i, j] x[n, i, t - (K-1-j) d] depends
 * only on inputs at times <= t (tap K-1 sees the present sample). The same as PyTorch's conv1d with padding (K-1) d and
 * dilation d, keeping the first T outputs. Outputs must not overlap inputs (refused). Every reduction runs in a fixed
 * order that depends on the shape and the ISA level only: the same bits on any thread count. */
/* y = conv(x, w) + bias (bias may be NULL); y is overwritten. */
LT_API lt_status lt_conv1d_fwd(int64_t n, int64_t cin, int64_t t, int64_t cout, int64_t k, int64_t dilation,
                               const float *x, const float *w, const float *bias, float *y); /*@ custom */
/* dx[n, i, t] = sum_{o, j} w[o, i, j] dy[n, o, t + (K-1-j) d] (dy = 0 past T); dx is overwritten. */
LT_API lt_status lt_conv1d_bwd_data(int64_t n, int64_t cin, int64_t t, int64_t cout, int64_t k, int64_t dilation,
                                    const float *dy, const float *w, float *dx); /*@ custom */
/* dw (Cout, Cin, K) and db (Cout, may be NULL) from x and dy; accumulate = 0 overwrites, 1 adds (+=). */
LT_API lt_status lt_conv1d_bwd_weight(int64_t n, int64_t cin, int64_t t, int64_t cout, int64_t k, int64_t dilation,
                                      const float *x, const float *dy, float *dw, float *db, int32_t accumulate);
    /*@ custom */

/* ---- BatchNorm2d (kernels/batchnorm) ------------------------------------------------------------------
 * x, y: (N, C, HW) contiguous (HW = H * W). Training forward uses batch statistics: mean[c], rstd[c] =
 * 1 / sqrt(var_biased + eps) are written for the backward; when running_mean / running_var are not NULL they are
 * updated in place: r = (1 - momentum) r + momentum * batch (running_var takes the unbiased variance), as PyTorch.
 * Sums in double, in a fixed order independent of the thread count. gamma / beta may be NULL (1 and 0). */
LT_API lt_status lt_batchnorm2d_fwd_train(int64_t n, int64_t c, int64_t hw, float eps, float momentum, const float *x,
                                          const float *gamma, const float *beta, float *y, float *mean, float *rstd,
                                          float *running_mean, float *running_var);
    /*@ x[n*c*hw] gamma[c] beta[c] y[n*c*hw] mean[c] rstd[c] running_mean[c] running_var[c] op=batchNormTrain launcher=CudaProbKernels */
/* Inference forward with given statistics: y = (x - mean) / sqrt(var + eps) * gamma + beta. */
LT_API lt_status lt_batchnorm2d_fwd_infer(int64_t n, int64_t c, int64_t hw, float eps, const float *x,
                                          const float *gamma, const float *beta, const float *mean, const float *var,
                                          float *y); /*@ x[n*c*hw] gamma[c] beta[c] mean[c] var[c] y[n*c*hw] op=batchNormInfer launcher=CudaProbKernels */
/* Backward of the training forward: dx overwritten; dgamma, dbeta (may be NULL) ACCUMULATE (+=). */
LT_API lt_status lt_batchnorm2d_bwd(int64_t n, int64_t c, int64_t hw, const float *x, const float *gamma,
                                    const float *mean, const float *rstd, const float *dy, float *dx, float *dgamma,
                                    float *dbeta);
    /*@ x[n*c*hw] gamma[c] mean[c] rstd[c] dy[n*c*hw] dx[n*c*hw] dgamma[c] dbeta[c] op=batchNormBackward launcher=CudaProbKernels */

/* ---- pointwise activations (kernels/activation) --------------------------------------------------------
 * kind: LT_ACT_*; alpha is LeakyReLU's negative slope (ignored otherwise). Forward y = f(x) over n elements (y may
 * alias x). Backward dx = dy * f'(.) where `in` is x for RELU and LEAKY_RELU and y (the forward output) for TANH
 * and SIGMOID (dx may alias dy). */
enum { LT_ACT_RELU = 0, LT_ACT_LEAKY_RELU = 1, LT_ACT_TANH = 2, LT_ACT_SIGMOID = 3 };
LT_API lt_status lt_act_fwd(int32_t kind, int64_t n, float alpha, const float *x, float *y); /*@ x[n] y[n] op=activation */
LT_API lt_status lt_act_bwd(int32_t kind, int64_t n, float alpha, const float *in, const float *dy, float *dx);
    /*@ in[n] dy[n] dx[n] op=activationBackward */
/* Binary cross-entropy with logits, numerically stable: l_i = max(x,0) - x t + log1p(exp(-|x|)). loss (may be
 * NULL) = sum_i l_i in double, fixed 4096-element chunks added in order. dlogits (may be NULL, may alias logits) =
 * (sigmoid(x) - t) * dscale. targets may be NULL with a constant target `t_const` instead. */
LT_API lt_status lt_bce_logits(int64_t n, const float *logits, const float *targets, float t_const, double *loss,
                               float *dlogits, float dscale); /*@ logits[n] targets[n] loss[1] dlogits[n] */

/* ---- normalizing flows: affine coupling, elementwise part (kernels/coupling) ----------------------------------
 * RealNVP's affine coupling with a binary mask b (hw, values 0 or 1) over images y (n, hw) and the coupling net's
 * output h (n, 2, hw): s = tanh(h[:, 0]) * scale * (1 - b), t = h[:, 1] * (1 - b),
 *   forward  y' = b y + (1 - b) (y exp(s) + t),   logdet[i] = sum_j s[i, j]   (in double per image)
 *   inverse  y  = b y' + (1 - b) (y' - t) exp(-s)  (h computed from b y' = b y)
 * The backward takes dy' and dlogdet (n) and writes dy, dh (n, 2, hw) (overwritten) and adds d(scale) to *dscale
 * (double, summed per image then in image order: deterministic). Outputs must not overlap inputs. */
LT_API lt_status lt_coupling_fwd(int64_t n, int64_t hw, const float *mask, const float *y, const float *h, float scale,
                                 float *out, double *logdet); /*@ mask[hw] y[n*hw] h[n*2*hw] out[n*hw] logdet[n] */
LT_API lt_status lt_coupling_inv(int64_t n, int64_t hw, const float *mask, const float *yp, const float *h, float scale,
                                 float *y); /*@ mask[hw] yp[n*hw] h[n*2*hw] y[n*hw] op=couplingInverse launcher=CudaProbKernels */
LT_API lt_status lt_coupling_bwd(int64_t n, int64_t hw, const float *mask, const float *y, const float *h, float scale,
                                 const float *dout, const double *dlogdet, float *dy, float *dh, double *dscale);
    /*@ mask[hw] y[n*hw] h[n*2*hw] dout[n*hw] dlogdet[n] dy[n*hw] dh[n*2*hw] dscale[1] */

/* ---- machine ceilings, for benchmarks ------------------------------------------------------------ */
/* FMA peak: `threads` workers each run independent vfmadd chains for `iters` rounds.
 * Writes the achieved GFLOP/s. ISA must be avx2 (the reference has no meaningful peak). */
LT_API lt_status lt_peak_fma(int32_t threads, int64_t iters, double *gflops); /*@ custom required */
/* The same ceiling at a named ISA: LT_ISA_AVX2 (ymm, = lt_peak_fma) or LT_ISA_AVX512 (12 zmm chains, 16 lanes x
 * 2 flops each; LT_ERR_UNSUPPORTED unless the level in use is avx512). */
LT_API lt_status lt_peak_fma_isa(int32_t isa, int32_t threads, int64_t iters, double *gflops); /*@ custom required */
/* AVX512_BF16 dot-product ceiling: 12 vdpbf16ps chains, 64 flops per instruction (2 per bf16 pair).
 * LT_ERR_UNSUPPORTED unless lt_cpu_bf16() and the level in use is avx512. */
LT_API lt_status lt_peak_bf16(int32_t threads, int64_t iters, double *gflops); /*@ custom required */
/* STREAM triad a = b + s*c over n floats per array on `threads` workers, best of `reps`; GB/s counts
 * 3 arrays (2 read + 1 written), as STREAM does. */
LT_API lt_status lt_peak_triad(int32_t threads, int64_t n, int32_t reps, double *gbs); /*@ custom required */

#ifdef __cplusplus
}
#endif
#endif /* LATENT_H */
