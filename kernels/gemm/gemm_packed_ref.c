/* lt_gemm_rows_packed reference task: per element one fmaf chain over k in order, then + bias (gemm_packed.h). */
#include <math.h>

#include "gemm_packed.h"

void gemm_packed_task_ref(GP_TASK_ARGS) {
    for (int64_t i = 0; i < m; i++) {
        const float *ai = at + (i / GP_MB) * k * GP_MB + i % GP_MB;
        for (int64_t j = 0; j < ncols; j++) {
            const float *bj = pk + (j / GP_NR) * k * GP_NR + j % GP_NR;
            float acc = 0.0f;
            for (int64_t p = 0; p < k; p++) acc = fmaf(ai[p * GP_MB], bj[p * GP_NR], acc);
            c[i * ldc + j] = bias ? acc + bias[j] : acc;
        }
    }
}
