/* AVX-512 attention: attention_simd.h's FlashAttention-2 tiling and order, 16 lanes per vector. Everything that
 * header's comment says holds here with these changes: a tile has L = 48 lanes (3 zmm) instead of 24 (3 ymm); the
 * causal skips go by 16-lane vectors (a key past query q0 + 16u + 15 is never seen by vector u); the causal mask
 * and the backward's P mask are opmask stores / zero-masking; dQ += dS K goes by 6 queries x 32 head dims with
 * the head-size tail under opmasks over K rows zero-padded to 32 columns; broadcasts of K, V, dout, Q and dS
 * fold into the FMAs as {1to16} memory operands. Q^T / K^T / V^T packing, its transposes and D = dout . o stay
 * on the AVX2 code (8 x 8 transposes, not hot).
 * Determinism: as in attention_avx2.c (each output element owned by one task, fixed order inside), so 1 and 2
 * threads give the same bits at this ISA; the bits differ from the AVX2 path's (other tile sizes, other
 * summation order), both within attention_test.c's tolerance of the double reference.
 * The body is attention_simd.h, shared with attention_avx2.c; this file sets the tile and block sizes,
 * attention_avx512.h the vector width and the masked operations (shared with attention_avx512_bf16.c). Speed: BENCHMARKS.md (W2, AVX-512). */
#include <immintrin.h>

#include "attention.h"

#define AI static inline __attribute__((always_inline))

#define L 48 /* lanes of a tile: queries in the forward, keys in the backward (3 zmm) */
#ifndef FWD_BC
#define FWD_BC 64 /* keys per online-softmax step of the forward (multiple of 4): Q^T, O^T and S^T of a 48-lane tile then take 36 KB */
#endif
#define FWD_R 8    /* forward register block: 8 x 3 zmm accumulators (24 of the 32 zmm registers; AVX2 has 16, so 4) */
#define DQW 32     /* dQ block: 6 queries x 2 zmm */

#include "attention_avx512.h"
#include "attention_simd.h"
