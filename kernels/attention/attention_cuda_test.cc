/* attention.cu in the CUDA emulation (forward, D = dout . o, dk / dv, dq) against a double-precision reference
 * written here, causal and not, T and HS at tile tails (T = 1, 7, 37, 70; HS = 1, 16, 33, 72, 128); attention_bf16.cu's
 * tensor-core kernels against the bf16-rounded operands (bf16_fwd_cases, bf16_bwd_cases).
 * Tolerance, per element, eps times the sum of |terms| of that element (as attention_test.c does), with
 * eps = 4 u (HS + T + 16): every score is a float dot of HS terms (scale |q.k| <= sqrt(HS) for inputs in (-1, 1))
 * whose error moves p by that much relatively, and each output sums T terms in float.
 * Run: build/attention_cuda_test */
#include <vector>

#include "../attention/attention.cu"
#include "../attention/attention_bf16.cu"
#include "lt_cuda_test.h"

static int check(const char *what, const std::vector<float> &got, const std::vector<double> &want,
                 const std::vector<double> &tol) {
    int64_t bad = 0;
    for (size_t e = 0; e < got.size(); e++)
        if (!lt_t_agree(got[e], want[e], tol[e] + 1e-30) && bad++ < 3)
            fprintf(stderr, "  %s[%zu]: got %.9g want %.9g tol %.3g\n", what, e, got[e], want[e], tol[e]);
    return bad == 0;
}

/* ltk_attention_fwd_bf16 against a double reference on the bf16-ROUNDED q, k, v (the kernel's operands; rounded with
 * __float2bfloat16_rn as the kernel does), causal and not, T = 1, odd T, T at the 64-row block and 32-key tile tails,
 * HS 8..128 (not multiples of 16 included). Per element, with p the reference's softmax row and
 * smag = scale max_j sum_h |q_h k_jh| (the size of a score's terms):
 *   eps_s = 4 u (HS + 16) smag      the fp32 sum of a score's HS exact products (moves p relatively by about that)
 *   o:   (2^-8 + 2 eps_s + 4 u (T + 16)) sum_j p_j |v_jc|   P is rounded to bf16 (2^-9 relative) before P V, whose
 *        sums, the running sum l and the rescaling are fp32
 *   lse: 2 eps_s + 4 u (T + 16) + 4 u |lse|
 * Returns the number of cases with an element outside. */
static int bf16_fwd_cases(uint64_t *s) {
    const double U = 1.0 / (1 << 24);
    struct { int64_t b, nh, t, hs; } shapes[] = {{1, 1, 1, 8}, {1, 2, 7, 16}, {2, 1, 37, 33}, {1, 1, 70, 72}, {1, 1, 40, 128},
                                                 {1, 1, 65, 8}, {1, 2, 33, 64}, {1, 1, 100, 65}, {2, 1, 64, 24}, {1, 1, 129, 128},
                                                 {1, 1, 3, 127}};
    int failed = 0;
    for (auto sh : shapes)
        for (int causal = 0; causal < 2; causal++) {
            const int64_t BH = sh.b * sh.nh, T = sh.t, HS = sh.hs, n = BH * T * HS;
            lt_attention_desc d = {sh.b, sh.nh, T, HS, causal, (float)(1.0 / sqrt((double)HS))};
            std::vector<float> q(n), k(n), v(n), o(n, NAN), lse(BH * T, NAN);
            lt_t_fill(q.data(), n, s);
            lt_t_fill(k.data(), n, s);
            lt_t_fill(v.data(), n, s);
            for (int64_t e = 0; e < n; e += 7) q[e] *= 4.0f; /* some larger scores: the online rescaling matters */
            LAUNCH(ltk_attention_fwd_bf16, dim3((unsigned)((T + 63) / 64), (unsigned)BH), dim3(128), 0, d,
                   (const float *)q.data(), (const float *)k.data(), (const float *)v.data(), o.data(), lse.data());
            auto r16 = [](float x) { return (double)__bfloat162float(__float2bfloat16_rn(x)); };
            std::vector<double> ro(n), to(n), rl(BH * T), tl(BH * T), P(T);
            for (int64_t bh = 0; bh < BH; bh++)
                for (int64_t i = 0; i < T; i++) {
                    const int64_t qi = (bh * T + i) * HS;
                    double mx = -INFINITY, smag = 0;
                    const int64_t nj = causal ? i + 1 : T;
                    for (int64_t j = 0; j < nj; j++) {
                        double dot = 0, mag = 0;
                        for (int64_t h = 0; h < HS; h++) {
                            const double x = r16(q[qi + h]) * r16(k[(bh * T + j) * HS + h]);
                            dot += x;
                            mag += fabs(x);
                        }
                        P[j] = dot * d.scale;
                        mx = fmax(mx, P[j]);
                        smag = fmax(smag, mag * d.scale);
                    }
                    double sum = 0;
                    for (int64_t j = 0; j < nj; j++) sum += (P[j] = exp(P[j] - mx));
                    const double eps_s = 4 * U * (HS + 16) * smag;
                    rl[bh * T + i] = mx + log(sum);
                    tl[bh * T + i] = 2 * eps_s + 4 * U * (T + 16) + 4 * U * fabs(rl[bh * T + i]);
                    for (int64_t c = 0; c < HS; c++) {
                        double acc = 0, mag = 0;
                        for (int64_t j = 0; j < nj; j++) {
                            const double vv = r16(v[(bh * T + j) * HS + c]);
                            acc += P[j] / sum * vv;
                            mag += P[j] / sum * fabs(vv);
                        }
                        ro[qi + c] = acc;
                        to[qi + c] = (1.0 / 256 + 2 * eps_s + 4 * U * (T + 16)) * mag;
                    }
                }
            const bool ok = check("o", o, ro, to) && check("lse", lse, rl, tl);
            CHECK(ok, "attention fwd bf16 B%lld NH%lld T%lld HS%lld causal %d", (long long)sh.b, (long long)sh.nh,
                  (long long)T, (long long)HS, causal);
            failed += !ok;
        }
    return failed;
}

/* ltk_attention_bwd_dkdv_bf16 + ltk_attention_bwd_dq_bf16, fed as the launcher feeds them: lse and o from
 * ltk_attention_fwd_bf16, D = dout . o from ltk_attention_bwd_dot. The reference, in double, takes the same lse and D
 * (so only the backward's error is measured) and the bf16-ROUNDED q, k, v, dout (the contract's operands):
 * p = exp(s - lse), dP = dout v^T, dS = p (dP - D) scale, dv = p^T dout, dk = dS^T q, dq = dS k. Tolerances, with
 * eps_s as above (largest over the case) and M_ij = p_ij (sum_h |dout_ih v_jh| + |D_i|) scale (the size of dS_ij's terms):
 *   dv: (2^-8 + 2 eps_s + 4 u (T + 16)) sum_i p_ij |dout_ic|        (P rounded to bf16 for P^T dout)
 *   dk: (2^-8 + 2 eps_s + 4 u (HS + T + 32)) sum_i M_ij |q_ic|      (dS rounded; dP an fp32 sum of HS products)
 *   dq: the same with sum_j M_ij |k_jc|. */
static void bf16_bwd_cases(uint64_t *s) {
    const double U = 1.0 / (1 << 24);
    struct { int64_t b, nh, t, hs; } shapes[] = {{1, 1, 1, 8}, {1, 2, 7, 16}, {2, 1, 37, 33}, {1, 1, 70, 72}, {1, 1, 40, 128},
                                                 {1, 1, 65, 8}, {1, 1, 100, 65}, {1, 1, 3, 127}, {1, 1, 48, 24}};
    auto r16 = [](float x) { return (double)__bfloat162float(__float2bfloat16_rn(x)); };
    for (auto sh : shapes)
        for (int causal = 0; causal < 2; causal++) {
            const int64_t BH = sh.b * sh.nh, T = sh.t, HS = sh.hs, n = BH * T * HS;
            lt_attention_desc d = {sh.b, sh.nh, T, HS, causal, (float)(1.0 / sqrt((double)HS))};
            std::vector<float> q(n), k(n), v(n), dout(n), o(n, NAN), lse(BH * T, NAN), D(BH * T, NAN);
            std::vector<float> dq(n, NAN), dk(n, NAN), dv(n, NAN);
            lt_t_fill(q.data(), n, s);
            lt_t_fill(k.data(), n, s);
            lt_t_fill(v.data(), n, s);
            lt_t_fill(dout.data(), n, s);
            for (int64_t e = 0; e < n; e += 7) q[e] *= 4.0f;
            const unsigned gx = (unsigned)((T + 31) / 32);
            LAUNCH(ltk_attention_fwd_bf16, dim3((unsigned)((T + 63) / 64), (unsigned)BH), dim3(128), 0, d,
                   (const float *)q.data(), (const float *)k.data(), (const float *)v.data(), o.data(), lse.data());
            LAUNCH(ltk_attention_bwd_dot, dim3((unsigned)((BH * T + 7) / 8)), dim3(256), 0, BH * T, HS,
                   (const float *)dout.data(), (const float *)o.data(), D.data());
            LAUNCH(ltk_attention_bwd_dkdv_bf16, dim3(gx, (unsigned)BH), dim3(64), 0, d, (const float *)q.data(),
                   (const float *)k.data(), (const float *)v.data(), (const float *)lse.data(), (const float *)D.data(),
                   (const float *)dout.data(), dk.data(), dv.data());
            LAUNCH(ltk_attention_bwd_dq_bf16, dim3(gx, (unsigned)BH), dim3(64), 0, d, (const float *)q.data(),
                   (const float *)k.data(), (const float *)v.data(), (const float *)lse.data(), (const float *)D.data(),
                   (const float *)dout.data(), dq.data());
            std::vector<double> rq(n), rk(n), rv(n), ro(n);
            for (int64_t e = 0; e < n; e++) {
                rq[e] = r16(q[e]);
                rk[e] = r16(k[e]);
                rv[e] = r16(v[e]);
                ro[e] = r16(dout[e]);
            }
            std::vector<double> wdq(n, 0), wdk(n, 0), wdv(n, 0), mdq(n, 0), mdk(n, 0), mdv(n, 0);
            std::vector<double> P(T * T), DS(T * T), M(T * T);
            double eps_s = 0;
            for (int64_t bh = 0; bh < BH; bh++) {
                const int64_t b0 = bh * T * HS;
                for (int64_t i = 0; i < T; i++)
                    for (int64_t j = 0; j < T; j++) {
                        P[i * T + j] = DS[i * T + j] = M[i * T + j] = 0;
                        if (causal && j > i) continue;
                        double sdot = 0, smag = 0, dp = 0, dpm = 0;
                        for (int64_t h = 0; h < HS; h++) {
                            sdot += rq[b0 + i * HS + h] * rk[b0 + j * HS + h];
                            smag += fabs(rq[b0 + i * HS + h] * rk[b0 + j * HS + h]);
                            dp += ro[b0 + i * HS + h] * rv[b0 + j * HS + h];
                            dpm += fabs(ro[b0 + i * HS + h] * rv[b0 + j * HS + h]);
                        }
                        eps_s = fmax(eps_s, 4 * U * (HS + 16) * smag * d.scale);
                        const double p = exp(sdot * d.scale - lse[bh * T + i]), Di = D[bh * T + i];
                        P[i * T + j] = p;
                        DS[i * T + j] = p * (dp - Di) * d.scale;
                        M[i * T + j] = p * (dpm + fabs(Di)) * d.scale;
                    }
                for (int64_t i = 0; i < T; i++)
                    for (int64_t j = 0; j < T; j++)
                        for (int64_t c = 0; c < HS; c++) {
                            const int64_t ic = b0 + i * HS + c, jc = b0 + j * HS + c;
                            wdv[jc] += P[i * T + j] * ro[ic];
                            mdv[jc] += P[i * T + j] * fabs(ro[ic]);
                            wdk[jc] += DS[i * T + j] * rq[ic];
                            mdk[jc] += M[i * T + j] * fabs(rq[ic]);
                            wdq[ic] += DS[i * T + j] * rk[jc];
                            mdq[ic] += M[i * T + j] * fabs(rk[jc]);
                        }
            }
            const double ev = 1.0 / 256 + 2 * eps_s + 4 * U * (T + 16), ek = 1.0 / 256 + 2 * eps_s + 4 * U * (HS + T + 32);
            for (int64_t e = 0; e < n; e++) {
                mdv[e] *= ev;
                mdk[e] *= ek;
                mdq[e] *= ek;
            }
            const bool ok = check("dv", dv, wdv, mdv) && check("dk", dk, wdk, mdk) && check("dq", dq, wdq, mdq);
            CHECK(ok, "attention bwd bf16 B%lld NH%lld T%lld HS%lld causal %d", (long long)sh.b, (long long)sh.nh,
                  (long long)T, (long long)HS, causal);
        }
}

int main() {
    const double U = 1.0 / (1 << 24);
    uint64_t s = 37;
    struct { int64_t b, nh, t, hs; } shapes[] = {{1, 1, 1, 1}, {1, 2, 7, 16}, {2, 1, 37, 33}, {1, 1, 70, 72}, {1, 1, 40, 128}, {1, 1, 65, 3}, {1, 2, 33, 64}, {1, 1, 100, 65}, {2, 1, 64, 32}};
    for (auto sh : shapes)
        for (int causal = 0; causal < 2; causal++) {
            const int64_t BH = sh.b * sh.nh, T = sh.t, HS = sh.hs, n = BH * T * HS;
            lt_attention_desc d = {sh.b, sh.nh, T, HS, causal, (float)(1.0 / sqrt((double)HS))};
            std::vector<float> q(n), k(n), v(n), dout(n), o(n, NAN), lse(BH * T, NAN), dv_(BH * T, NAN);
            std::vector<float> dq(n, NAN), dk(n, NAN), dv(n, NAN);
            lt_t_fill(q.data(), n, &s);
            lt_t_fill(k.data(), n, &s);
            lt_t_fill(v.data(), n, &s);
            lt_t_fill(dout.data(), n, &s);
            LAUNCH(ltk_attention_fwd, dim3((unsigned)((T + 31) / 32), (unsigned)BH), dim3(64), 0, d, (const float *)q.data(),
                   (const float *)k.data(), (const float *)v.data(), o.data(), lse.data());
            LAUNCH(ltk_attention_bwd_dot, dim3((unsigned)((BH * T + 7) / 8)), dim3(256), 0, BH * T, HS,
                   (const float *)dout.data(), (const float *)o.data(), dv_.data());
            if (HS <= ATT_SMALL_HS) { /* the launcher's choice (CudaKernels.attentionBackward) */
                LAUNCH(ltk_attention_bwd_dkdv64, dim3((unsigned)((T + 31) / 32), (unsigned)BH), dim3(64), 0, d,
                       (const float *)q.data(), (const float *)k.data(), (const float *)v.data(), (const float *)lse.data(),
                       (const float *)dv_.data(), (const float *)dout.data(), dk.data(), dv.data());
                LAUNCH(ltk_attention_bwd_dq64, dim3((unsigned)((T + 31) / 32), (unsigned)BH), dim3(64), 0, d,
                       (const float *)q.data(), (const float *)k.data(), (const float *)v.data(), (const float *)lse.data(),
                       (const float *)dv_.data(), (const float *)dout.data(), dq.data());
            } else {
                LAUNCH(ltk_attention_bwd_dkdv, dim3((unsigned)((T + 7) / 8), (unsigned)BH), dim3(128), 0, d,
                       (const float *)q.data(), (const float *)k.data(), (const float *)v.data(), (const float *)lse.data(),
                       (const float *)dv_.data(), (const float *)dout.data(), dk.data(), dv.data());
                LAUNCH(ltk_attention_bwd_dq, dim3((unsigned)((T + 7) / 8), (unsigned)BH), dim3(128), 0, d,
                       (const float *)q.data(), (const float *)k.data(), (const float *)v.data(), (const float *)lse.data(),
                       (const float *)dv_.data(), (const float *)dout.data(), dq.data());
            }
            /* double reference and per-element tolerances */
            const double eps = 4 * U * (HS + T + 16), sc = d.scale;
            std::vector<double> ro(n, 0), rl(BH * T), rdq(n, 0), rdk(n, 0), rdv(n, 0);
            std::vector<double> to(n, 0), tl(BH * T), tdq(n, 0), tdk(n, 0), tdv(n, 0);
            std::vector<double> P(T * T), dP(T * T);
            for (int64_t bh = 0; bh < BH; bh++) {
                const int64_t b0 = bh * T * HS;
                for (int64_t i = 0; i < T; i++) {
                    const int64_t nk = causal ? i + 1 : T;
                    double m = -INFINITY, l = 0;
                    for (int64_t j = 0; j < nk; j++) {
                        double dot = 0;
                        for (int64_t c = 0; c < HS; c++) dot += (double)q[b0 + i * HS + c] * k[b0 + j * HS + c];
                        P[i * T + j] = dot * sc;
                        m = fmax(m, dot * sc);
                    }
                    for (int64_t j = 0; j < nk; j++) l += exp(P[i * T + j] - m);
                    for (int64_t j = 0; j < T; j++) P[i * T + j] = j < nk ? exp(P[i * T + j] - m) / l : 0;
                    rl[bh * T + i] = m + log(l);
                    tl[bh * T + i] = eps * (1 + fabs(m + log(l)));
                    double di = 0;
                    for (int64_t c = 0; c < HS; c++) {
                        double oc = 0, mag = 0;
                        for (int64_t j = 0; j < nk; j++) {
                            oc += P[i * T + j] * v[b0 + j * HS + c];
                            mag += P[i * T + j] * fabs((double)v[b0 + j * HS + c]);
                        }
                        ro[b0 + i * HS + c] = oc;
                        to[b0 + i * HS + c] = eps * mag;
                        di += oc * dout[b0 + i * HS + c];
                    }
                    for (int64_t j = 0; j < nk; j++) {
                        double dp = 0;
                        for (int64_t c = 0; c < HS; c++) dp += (double)dout[b0 + i * HS + c] * v[b0 + j * HS + c];
                        double pij = P[i * T + j], ds = pij * (dp - di) * sc, dsmag = pij * (fabs(dp) + fabs(di) + 1) * sc;
                        for (int64_t c = 0; c < HS; c++) {
                            rdv[b0 + j * HS + c] += pij * dout[b0 + i * HS + c];
                            tdv[b0 + j * HS + c] += eps * pij * fabs((double)dout[b0 + i * HS + c]);
                            rdk[b0 + j * HS + c] += ds * q[b0 + i * HS + c];
                            tdk[b0 + j * HS + c] += eps * dsmag * fabs((double)q[b0 + i * HS + c]);
                            rdq[b0 + i * HS + c] += ds * k[b0 + j * HS + c];
                            tdq[b0 + i * HS + c] += eps * dsmag * fabs((double)k[b0 + j * HS + c]);
                        }
                    }
                }
            }
            int ok = check("o", o, ro, to) & check("lse", lse, rl, tl) & check("dq", dq, rdq, tdq) &
                     check("dk", dk, rdk, tdk) & check("dv", dv, rdv, tdv);
            CHECK(ok, "attention B=%lld NH=%lld T=%lld HS=%lld causal=%d", (long long)sh.b, (long long)sh.nh, (long long)T,
                  (long long)HS, causal);
        }
    printf("largest error / tolerance: %.3f\n", lt_t_worst_ratio);
    lt_t_worst_ratio = 0;
    bf16_fwd_cases(&s);
    printf("attention fwd bf16: largest error / tolerance: %.3f\n", lt_t_worst_ratio);
    lt_t_worst_ratio = 0;
    bf16_bwd_cases(&s);
    printf("attention bwd bf16: largest error / tolerance: %.3f\n", lt_t_worst_ratio);
    return lt_test_summary();
}
