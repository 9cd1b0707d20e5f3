/* Reference decode attention for one (row, head): plain loops, the scores in double (recomputed in each of three
 * passes: max, normalizer, weighted sum of V), the weighted sum accumulated in o in float in key order. No scratch,
 * so any hs and len run. The ISA-ref fallback and the readable statement of the math. */
#include <math.h>

#include "attention_decode.h"

static double score(int64_t hs, const float *q, const float *kj, float scale) {
    double s = 0;
    for (int64_t e = 0; e < hs; e++) s += (double)q[e] * kj[e];
    return s * scale;
}

void attn_decode_head_ref(int64_t hs, int64_t len, float scale, const float *q, const float *k, const float *v,
                          int64_t ld, float *o) {
    double mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < len; j++) {
        double s = score(hs, q, k + j * ld, scale);
        if (s > mx || s != s) mx = s;
    }
    for (int64_t j = 0; j < len; j++) sum += exp(score(hs, q, k + j * ld, scale) - mx);
    for (int64_t e = 0; e < hs; e++) o[e] = 0.0f;
    for (int64_t j = 0; j < len; j++) {
        float w = (float)(exp(score(hs, q, k + j * ld, scale) - mx) / sum);
        for (int64_t e = 0; e < hs; e++) o[e] += w * v[j * ld + e];
    }
}
