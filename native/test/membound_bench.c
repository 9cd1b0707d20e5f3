/* membound_bench: the memory-bound training ops at one ISA (LATENT_MAX_ISA), each at a training size and an
 * L2-resident size, 1 and 2 threads, in GB/s against the STREAM triad measured in the same run (issue 15: does an
 * AVX-512 path pay where AVX2 already streams?). Not a test and not in `cmake --build`'s default set:
 *   cmake --build build --target membound_bench
 *   build/membound_bench [filter [rounds]]   filter: substring of the op name; at ISA avx512 it times avx2 and avx512
 *                                            interleaved in one process (lt_set_isa), `rounds` times (2)
 * Bytes are the compulsory traffic (each array read or written once per call); an op that makes two passes over
 * its input (BatchNorm: statistics then normalization) can read more. Each line: best and median ms of 15 blocks,
 * a block being enough calls for ~2 ms, so the L2-resident rows are warm-cache figures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "latent.h"
#include "lt_test.h"

typedef struct {
    int64_t n, c, hw;                    /* elements (or batchnorm's n, c, hw; coupling's n, hw) */
    float *a, *b, *c2, *d, *e, *f;       /* scratch, each of `n` (x2 where an op needs it) floats */
    float *mk, *cm, *cr;                 /* coupling mask, batchnorm per-channel arrays */
    double *ld;
    lt_adamw_desc ad;
} bufs;

typedef struct { const char *name; double bytes_per_elem; void (*run)(bufs *); } op;

static void r_adamw(bufs *s) { lt_adamw(&s->ad, s->n, s->a, s->b, s->c2, s->d); s->ad.step++; }
static void r_bn_fwd(bufs *s) { lt_batchnorm2d_fwd_train(s->n, s->c, s->hw, 1e-5f, 0.1f, s->a, NULL, NULL, s->b, s->cm, s->cr, NULL, NULL); }
static void r_bn_bwd(bufs *s) { lt_batchnorm2d_bwd(s->n, s->c, s->hw, s->a, NULL, s->cm, s->cr, s->c2, s->d, NULL, NULL); }
static void r_cp_fwd(bufs *s) { lt_coupling_fwd(s->n, s->hw, s->mk, s->a, s->b, 1.0f, s->c2, s->ld); }
static void r_cp_bwd(bufs *s) { double ds = 0; lt_coupling_bwd(s->n, s->hw, s->mk, s->a, s->b, 1.0f, s->c2, s->ld, s->d, s->e, &ds); }
static void r_relu_f(bufs *s) { lt_act_fwd(LT_ACT_RELU, s->n, 0, s->a, s->b); }
static void r_relu_b(bufs *s) { lt_act_bwd(LT_ACT_RELU, s->n, 0, s->a, s->c2, s->d); }
static void r_leaky_f(bufs *s) { lt_act_fwd(LT_ACT_LEAKY_RELU, s->n, 0.2f, s->a, s->b); }
static void r_leaky_b(bufs *s) { lt_act_bwd(LT_ACT_LEAKY_RELU, s->n, 0.2f, s->a, s->c2, s->d); }
static void r_tanh_f(bufs *s) { lt_act_fwd(LT_ACT_TANH, s->n, 0, s->a, s->b); }
static void r_tanh_b(bufs *s) { lt_act_bwd(LT_ACT_TANH, s->n, 0, s->b, s->c2, s->d); }
static void r_sig_f(bufs *s) { lt_act_fwd(LT_ACT_SIGMOID, s->n, 0, s->a, s->b); }
static void r_bce(bufs *s) { double l; lt_bce_logits(s->n, s->a, s->b, 0, &l, s->d, 1.0f); }
static void r_sumsq(bufs *s) { double o; lt_sumsq(s->n, s->a, &o); }
static void r_axpby(bufs *s) { lt_axpby(s->n, 0.5f, s->a, 0.5f, s->d); }
static void r_mul(bufs *s) { lt_mul(s->n, s->a, s->b, s->d); }
static void r_add_rows(bufs *s) { lt_add_rows(s->n / 384, 384, 16, s->a, s->b, s->d); }

static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

/* kind: 0 flat n; 1 batchnorm (n, c, hw); 2 coupling (n, hw) */
static void measure(const char *name, double bpe, void (*run)(bufs *), int kind, int64_t n, int64_t c, int64_t hw,
                    const char *label, int threads, double triad) {
    bufs s = {0};
    int64_t t = kind == 1 ? n * c * hw : kind == 2 ? n * hw : n;
    s.n = kind == 0 ? t : n; s.c = c; s.hw = hw;
    uint64_t rng = 11;
    float **arr[] = {&s.a, &s.b, &s.c2, &s.d, &s.e, &s.f};
    for (int k = 0; k < 6; k++) { *arr[k] = malloc(2 * t * 4); lt_t_fill(*arr[k], 2 * t, &rng); }
    for (int64_t i = 0; i < 2 * t; i++) s.d[i] = s.d[i] * s.d[i]; /* AdamW's v >= 0 */
    s.mk = malloc((hw ? hw : 1) * 4);
    for (int64_t j = 0; j < hw; j++) s.mk[j] = (float)(j % 2);
    s.cm = malloc((c ? c : 1) * 4); s.cr = malloc((c ? c : 1) * 4);
    s.ld = calloc(n ? n : 1, 8);
    s.ad = (lt_adamw_desc){1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 1.0f, 1};
    if (kind == 1) r_bn_fwd(&s); /* mean / rstd for the backward */
    double bytes = bpe * t;
    int calls = (int)(2e-3 * 30e9 / bytes); /* ~2 ms at 30 GB/s */
    if (calls < 1) calls = 1;
    run(&s);
    double tm[15];
    for (int r = 0; r < 15; r++) {
        double t0 = lt_t_now();
        for (int k = 0; k < calls; k++) run(&s);
        tm[r] = (lt_t_now() - t0) / calls;
    }
    qsort(tm, 15, sizeof(double), cmpd);
    printf("%-6s %-14s %-22s %d thr: best %8.4f ms %6.1f GB/s %6.1f%% of triad | median %8.4f ms %6.1f GB/s\n", lt_isa() >= LT_ISA_AVX512 ? "avx512" : "avx2", name, label,
           threads, tm[0] * 1e3, bytes / tm[0] / 1e9, 100 * bytes / tm[0] / 1e9 / triad, tm[7] * 1e3, bytes / tm[7] / 1e9);
    fflush(stdout);
    for (int k = 0; k < 6; k++) free(*arr[k]);
    free(s.mk); free(s.cm); free(s.cr); free(s.ld);
}

int main(int argc, char **argv) {
    const char *filter = argc > 1 ? argv[1] : "";
    if (lt_isa() < LT_ISA_AVX2) { printf("membound_bench: ISA is ref (%s); lt_peak_triad needs avx2\n", lt_isa_reason()); return 0; }
    /* Both levels in the same process, interleaved (avx2, avx512, avx2, avx512 per op and size), when the ISA in
     * use is avx512; otherwise the one level in use. */
    const int32_t isa0 = lt_isa();
    int32_t levels[2] = {LT_ISA_AVX2, LT_ISA_AVX512};
    int nlev = isa0 >= LT_ISA_AVX512 ? 2 : 1, rounds = argc > 2 ? atoi(argv[2]) : 2;
    if (nlev == 1) levels[0] = isa0;
    printf("membound_bench at ISA %s, levels timed:%s%s, %d rounds\n", lt_t_isa_name(), nlev == 2 ? " avx2" : "", nlev == 2 ? " avx512" : " the one in use", rounds);
    struct { const char *name; double bpe; void (*run)(bufs *); int kind; int64_t n, c, hw, n2, c2, hw2; const char *l1, *l2; } ops[] = {
        /* AdamW: p, g, m, v read, p, m, v written. E1's GPT has 10.7M parameters; 32768 = 896 KB (L2) */
        {"adamw", 28, r_adamw, 0, 10700000, 0, 0, 32768, 0, 0, "n=10.7M", "n=32768 (L2)"},
        /* BatchNorm fwd: x read, y written; bwd: x, dy read, dx written. DCGAN's (64,128,16,16); (8,32,8,8) = 64 KB */
        {"bn_fwd", 8, r_bn_fwd, 1, 64, 128, 256, 8, 32, 64, "(64,128,16,16)", "(8,32,8,8) (L2)"},
        {"bn_bwd", 12, r_bn_bwd, 1, 64, 128, 256, 8, 32, 64, "(64,128,16,16)", "(8,32,8,8) (L2)"},
        /* coupling fwd: y, h (2 planes) read, out written; bwd: y, h (2), dout read, dy, dh (2) written.
         * RealNVP on MNIST: n=64, hw=784 (0.2 MB per plane, cache-resident); n=64 x 3072 (CIFAR-sized planes) */
        {"coupling_fwd", 16, r_cp_fwd, 2, 64, 0, 3072, 64, 0, 784, "n=64 hw=3072", "n=64 hw=784 (L2)"},
        {"coupling_bwd", 28, r_cp_bwd, 2, 64, 0, 3072, 64, 0, 784, "n=64 hw=3072", "n=64 hw=784 (L2)"},
        /* activations: DCGAN-sized 64x128x16x16 = 2M, and 32768 (L2) */
        {"relu_fwd", 8, r_relu_f, 0, 2097152, 0, 0, 32768, 0, 0, "n=2M", "n=32768 (L2)"},
        {"relu_bwd", 12, r_relu_b, 0, 2097152, 0, 0, 32768, 0, 0, "n=2M", "n=32768 (L2)"},
        {"leaky_fwd", 8, r_leaky_f, 0, 2097152, 0, 0, 32768, 0, 0, "n=2M", "n=32768 (L2)"},
        {"leaky_bwd", 12, r_leaky_b, 0, 2097152, 0, 0, 32768, 0, 0, "n=2M", "n=32768 (L2)"},
        {"tanh_fwd", 8, r_tanh_f, 0, 2097152, 0, 0, 32768, 0, 0, "n=2M", "n=32768 (L2)"},
        {"tanh_bwd", 12, r_tanh_b, 0, 2097152, 0, 0, 32768, 0, 0, "n=2M", "n=32768 (L2)"},
        {"sigmoid_fwd", 8, r_sig_f, 0, 2097152, 0, 0, 32768, 0, 0, "n=2M", "n=32768 (L2)"},
        /* BCE with logits + dlogits: x, t read, dx written */
        {"bce", 12, r_bce, 0, 2097152, 0, 0, 32768, 0, 0, "n=2M", "n=32768 (L2)"},
        /* sumsq: x read (the gradient-norm pass over E1's 10.7M) */
        {"sumsq", 4, r_sumsq, 0, 10700000, 0, 0, 65536, 0, 0, "n=10.7M", "n=65536 (L2)"},
        /* elementwise: x, y read, y written (axpby; mul, add_rows likewise) */
        {"axpby", 12, r_axpby, 0, 2097152, 0, 0, 32768, 0, 0, "n=2M", "n=32768 (L2)"},
        {"mul", 12, r_mul, 0, 2097152, 0, 0, 32768, 0, 0, "n=2M", "n=32768 (L2)"},
        {"add_rows", 12, r_add_rows, 0, 2048 * 384, 0, 0, 96 * 384, 0, 0, "(2048,384)", "(96,384) (L2)"},
    };
    for (int th = 1; th <= 2; th++) {
        lt_set_num_threads(th);
        double triad = 0;
        lt_peak_triad(th, 1 << 24, 5, &triad);
        printf("triad %d thr: %.1f GB/s\n", th, triad);
        for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
            if (!strstr(ops[k].name, filter)) continue;
            for (int size = 0; size < 2; size++)
                for (int round = 0; round < rounds; round++)
                    for (int li = 0; li < nlev; li++) {
                        lt_set_isa(levels[li]);
                        if (size == 0) measure(ops[k].name, ops[k].bpe, ops[k].run, ops[k].kind, ops[k].n, ops[k].c, ops[k].hw, ops[k].l1, th, triad);
                        else measure(ops[k].name, ops[k].bpe, ops[k].run, ops[k].kind, ops[k].n2, ops[k].c2, ops[k].hw2, ops[k].l2, th, triad);
                    }
        }
    }
    return 0;
}
