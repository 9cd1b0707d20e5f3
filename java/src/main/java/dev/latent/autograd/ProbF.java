package dev.latent.autograd;

import dev.latent.ops.Kernels;
import dev.latent.tensor.Device;
import dev.latent.tensor.Tensor;

import java.lang.foreign.MemorySegment;

import static dev.latent.autograd.F.*;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * The probabilistic ops of the VAE and the flows: the fused reparameterization sampler, the likelihood terms
 * (BCE, Gaussian NLL), free-bits KL, the affine coupling and diag.
 * Part of {@link F}, which exposes every public op here under the same name; see F for the conventions (devices,
 * recording, double backward).
 * <p>
 * The device tests here are semantic, not a kernel choice (the ops layer's Backend picks kernels): see {@link F}'s
 * class comment, (a) to (d).
 */
public final class ProbF {
    private ProbF() {}

    // ---- VAE (kernels/reparam) ----


    /**
     * z = mu + exp(0.5 logvar) eps with eps ~ N(0, I) drawn inside the kernel from Philox (seed, stream), and
     * kl = KL(N(mu, exp(logvar)) || N(0, I)) summed over all elements (a scalar). The backward is one fused pass:
     * z and kl are the two outputs of one multi-output node, whose rule gets both gradients at once and computes
     * dmu and dlogvar in one call, recomputing eps (never stored).
     * First-order only. logvar is clamped to [-30, 30] as the kernel documents.
     */
    public static Reparam reparam(Var mu, Var logvar, long seed, long stream) {
        sameShape("reparam", mu, logvar);
        Tensor m = dense(mu), lv = dense(logvar);
        Device dev = m.device();
        Tensor z = g().empty(dev, m.shape());
        Tensor klT;
        if (dev == Device.CPU) {
            double kl = Kernels.reparam(m, lv, seed, stream, z);
            klT = Tensor.of(g().scope, dev, new float[] {(float) kl}, 1);
        } else {   /* the KL stays on the device (the double sum rounded to float there): no synchronisation */
            klT = g().empty(dev, 1);
            Kernels.reparamOnDevice(m, lv, seed, stream, z, klT);
        }
        // One node, two outputs: its rule runs once with both gradients (null where unused), one fused kernel call.
        Var[] zk = g().recordMulti(new Tensor[] {z, klT}, "reparam", of(mu, logvar), gs -> {
            firstOrderOnly("reparam");
            float w = gs[1] != null ? scalar(gs[1].value) : 0f;
            Tensor dz = gs[0] != null ? dense(gs[0]) : g().zeros(dev, m.shape());
            Tensor dm = g().empty(dev, m.shape()), dl = g().empty(dev, m.shape());
            Kernels.reparamBackward(m, lv, seed, stream, dz, w, dm, dl);
            return of(Var.constant(dm), Var.constant(dl));
        });
        Var zv = zk[0], klv = zk[1];
        return new Reparam(zv, klv);
    }

    /**
     * {@link #reparam(Var, Var, long, long)} on CUDA with the Philox key read from device memory: {@code key} is a CUDA
     * tensor of 4 floats whose 16 bytes hold (seed, stream) as two int64, written before the step by an asynchronous
     * upload (Kernels.stageRngKey). A step captured into a CUDA graph passes only the key's address, so each replay draws
     * the eps of the key staged for it (a key passed by value would repeat the captured step's noise forever). The same
     * bits as the by-value form with that key.
     */
    public static Reparam reparam(Var mu, Var logvar, Tensor key) {
        sameShape("reparam", mu, logvar);
        Tensor m = dense(mu), lv = dense(logvar);
        Device dev = m.device();
        if (dev != Device.CUDA) throw new IllegalArgumentException("reparam with a device key: CUDA tensors needed, got " + dev);
        Tensor z = g().empty(dev, m.shape());
        Tensor klT = g().empty(dev, 1);
        Kernels.reparamOnDeviceKeyed(m, lv, key, z, klT);
        Var[] zk = g().recordMulti(new Tensor[] {z, klT}, "reparam", of(mu, logvar), gs -> {
            firstOrderOnly("reparam");
            float w = gs[1] != null ? scalar(gs[1].value) : 0f;
            Tensor dz = gs[0] != null ? dense(gs[0]) : g().zeros(dev, m.shape());
            Tensor dm = g().empty(dev, m.shape()), dl = g().empty(dev, m.shape());
            Kernels.reparamBackwardKeyed(m, lv, key, dz, w, dm, dl);
            return of(Var.constant(dm), Var.constant(dl));
        });
        return new Reparam(zk[0], zk[1]);
    }

    /** Sum over all elements of BCE-with-logits against target probabilities (the Bernoulli -log p(x|z)), times scale. */
    public static Var bceWithLogitsSum(Var logits, Tensor targets, float scale) {
        Tensor lv = dense(logits);
        Tensor tv = targets.isContiguous() ? targets : targets.contiguous();
        if (tv.numel() != lv.numel()) throw new IllegalArgumentException("bceWithLogitsSum: targets " + tv + " for logits " + lv);
        Tensor d = logits.requiresGrad && g().recording ? g().empty(lv.device(), lv.shape()) : null;
        Tensor out;
        if (lv.device() == Device.CPU) {
            double sum = Kernels.bceWithLogits(lv, tv, 0f, d, scale);
            out = Tensor.of(g().scope, lv.device(), new float[] {(float) (sum * scale)}, 1);
        } else {   /* the sum stays on the device: (float) sum, then times scale (one more float rounding than the CPU) */
            Tensor sum = g().empty(lv.device(), 1);
            Kernels.bceWithLogitsOnDevice(lv, tv, 0f, d, scale, sum);
            out = g().empty(lv.device(), 1);
            Kernels.axpby(scale, sum, 0f, out);
        }
        return rec(out, "bceWithLogitsSum", of(logits), gr -> {
            firstOrderOnly("bceWithLogitsSum");
            float s = scalar(gr.value);
            if (s == 1f) return of(Var.constant(d));
            Tensor dd = g().empty(lv.device(), lv.shape());
            Kernels.axpby(s, d, 0f, dd);
            return of(Var.constant(dd));
        });
    }

    /** Sum of (pred - target)^2 / (2 sigma^2) + log(sigma sqrt(2 pi)) per element, times scale: the Gaussian -log p(x|z). */
    public static Var gaussianNllSum(Var pred, Tensor target, double sigma, float scale) {
        Tensor pv = dense(pred), tv = target.isContiguous() ? target : target.contiguous();
        if (tv.numel() != pv.numel()) throw new IllegalArgumentException("gaussianNllSum: target " + tv + " for " + pv);
        long n = pv.numel();
        double c = Math.log(sigma * Math.sqrt(2 * Math.PI)), inv = 1 / (sigma * sigma);
        Device dev = pv.device();
        if (dev != Device.CPU) {
            /* e = pred - target on the device (float), sum of e^2 in double by ltk_sumsq (fixed chunks), then
             * (float) ((0.5 / sigma^2 * sum + n c) * scale) on the device too (ltk_sumsq_affine_f32: the double
             * expression this computed on the host, the same bits, no copy back: no synchronisation); the gradient
             * is s e / sigma^2, one axpby. The CPU forms e in double: the two differ by the float rounding of e
             * (~1e-7 relative). */
            if (tv.device() != dev) throw new IllegalArgumentException("gaussianNllSum: pred on " + dev + ", target on " + tv.device());
            Tensor e = Kernels.contiguous(g().scope, pv);
            Kernels.axpby(-1f, tv, 1f, e);
            Tensor out = g().empty(dev, 1);
            Kernels.sumOfSquaresAffineOnDevice(e, 0.5 * inv, n * c, scale, out);
            return rec(out, "gaussianNllSum", of(pred), gr -> {
                firstOrderOnly("gaussianNllSum");
                float s = (float) (scalar(gr.value) * scale * inv);
                Tensor d = g().empty(dev, pv.shape());
                Kernels.axpby(s, e, 0f, d);
                return of(Var.constant(d));
            });
        }
        MemorySegment ps = pv.segment(), ts = tv.segment();
        double acc = 0;
        for (long i = 0; i < n; i++) {
            double e = ps.getAtIndex(JAVA_FLOAT, i) - ts.getAtIndex(JAVA_FLOAT, i);
            acc += 0.5 * e * e * inv + c;
        }
        Tensor out = g().zeros(1);
        out.segment().set(JAVA_FLOAT, 0, (float) (acc * scale));
        return rec(out, "gaussianNllSum", of(pred), gr -> {
            firstOrderOnly("gaussianNllSum");
            double s = gr.value.segment().get(JAVA_FLOAT, 0) * scale * inv;
            Tensor d = g().empty(pv.shape());
            MemorySegment ds = d.segment();
            for (long i = 0; i < n; i++) ds.setAtIndex(JAVA_FLOAT, i, (float) (s * (ps.getAtIndex(JAVA_FLOAT, i) - ts.getAtIndex(JAVA_FLOAT, i))));
            return of(Var.constant(d));
        });
    }

    /**
     * Free-bits KL (Kingma et al. 2016): sum over latent dims of max(lambda, mean over the batch of KL_d), for
     * mu, logvar (B, D). Dims below lambda get no gradient, so the encoder is not pushed to collapse them.
     */
    public static Var klFreeBits(Var mu, Var logvar, double lambda) {
        sameShape("klFreeBits", mu, logvar);
        Tensor m = dense(mu), lv = dense(logvar);
        Device dev = m.device();
        if (lv.device() != dev) throw new IllegalArgumentException("klFreeBits: mu on " + dev + ", logvar on " + lv.device());
        int b = (int) m.size(0), d = (int) (m.numel() / b);
        if (dev != Device.CPU) {
            /* On CUDA (issue 18: no host synchronisation in a step): ltk_kl_free_bits_fwd / _bwd compute the loop below
             * on the device in the same order and double arithmetic (exp is the device's: within an ulp of Java's),
             * the per-dimension KL kept on the device for the backward. */
            Tensor kd = g().empty(dev, 2L * d), out = g().empty(dev, 1);
            Kernels.klFreeBitsOnDevice(m, lv, lambda, kd, out);
            return rec(out, "klFreeBits", of(mu, logvar), gr -> {
                firstOrderOnly("klFreeBits");
                Tensor dm = g().empty(dev, m.shape()), dl = g().empty(dev, m.shape());
                Kernels.klFreeBitsBackwardOnDevice(m, lv, kd, lambda, dense(gr), dm, dl);
                return of(Var.constant(dm), Var.constant(dl));
            });
        }
        float[] ms = m.toArray(), ls = lv.toArray();
        double[] kd = new double[d];
        for (int i = 0; i < b; i++)
            for (int j = 0; j < d; j++) {
                double mm = ms[i * d + j], l = Math.max(-30, Math.min(30, ls[i * d + j]));
                kd[j] += 0.5 * (mm * mm + Math.exp(l) - 1 - l) / b;
            }
        double tot = 0;
        for (double v : kd) tot += Math.max(lambda, v);
        Tensor out = Tensor.of(g().scope, dev, new float[] {(float) tot}, 1);
        return rec(out, "klFreeBits", of(mu, logvar), gr -> {
            firstOrderOnly("klFreeBits");
            double s = scalar(gr.value) / b;   /* float / int, as before: the same bits on both devices */
            float[] dms = new float[b * d], dls = new float[b * d];
            for (int i = 0; i < b; i++)
                for (int j = 0; j < d; j++) {
                    int k = i * d + j;
                    boolean on = kd[j] > lambda;
                    float l = ls[k];
                    boolean clamped = l < -30 || l > 30;
                    dms[k] = on ? (float) (s * ms[k]) : 0f;
                    dls[k] = on && !clamped ? (float) (s * 0.5 * (Math.exp(l) - 1)) : 0f;
                }
            return of(Var.constant(Tensor.of(g().scope, dev, dms, m.shape())), Var.constant(Tensor.of(g().scope, dev, dls, m.shape())));
        });
    }

    // ---- normalizing flows (kernels/coupling) ----


    /**
     * RealNVP's affine coupling (latent.h, lt_coupling_fwd) of y (N, ...) with mask (HW of 0/1), the net's output h
     * (N, 2, ...) and a learned scalar scale (1). The backward is one fused call, as {@link #reparam}'s: out and
     * logdet are the two outputs of one node whose rule runs once, with both gradients, and computes dy, dh and
     * dscale together. First-order only.
     */
    public static Coupling coupling(Var y, Var h, Var scale, Tensor mask) {
        Tensor yv = dense(y), hv = dense(h), mv = onDevice(mask, yv.device());
        Device dev = yv.device();
        long n = yv.size(0), hw = yv.numel() / n;
        if (mv.numel() != hw || hv.numel() != 2 * n * hw || scale.value.numel() != 1)
            throw new IllegalArgumentException("coupling: y " + yv + ", h " + hv + " (need 2 channels per pixel), mask " + mv + ", scale " + scale.value);
        Tensor scv = scale.value.contiguous();   /* on CUDA the kernels read the scale on the device: no copy back */
        float sc = dev == Device.CPU ? scalar(scale.value) : Float.NaN;
        Tensor out = g().empty(dev, yv.shape());
        Tensor ldT;
        if (dev != Device.CPU) {   /* logdet stays on the device (the same (float) of the same double sums) */
            ldT = g().empty(dev, n);
            Kernels.couplingForwardOnDevice(mv, yv, hv, scv, out, ldT);
        } else {
            double[] ld = new double[(int) n];
            Kernels.couplingForward(mv, yv, hv, sc, out, ld);
            float[] ldf = new float[(int) n];
            for (int i = 0; i < n; i++) ldf[i] = (float) ld[i];
            ldT = Tensor.of(g().scope, dev, ldf, n);
        }
        java.util.function.BiFunction<Var, Var, Var[]> backward = (dOut, dLd) -> {
            firstOrderOnly("coupling");
            Tensor dy = g().empty(dev, yv.shape()), dh = g().empty(dev, hv.shape());
            if (dev != Device.CPU) {   /* dlogdet and d(scale) stay on the device */
                Tensor go = dOut != null ? dense(dOut) : g().zeros(dev, yv.shape()), dsc = g().empty(dev, 1);
                Kernels.couplingBackwardOnDevice(mv, yv, hv, scv, go, dLd == null ? null : dense(dLd), dy, dh, dsc);
                return of(Var.constant(dy), Var.constant(dh), Var.constant(dsc));
            }
            double[] dl = null;
            if (dLd != null) {
                float[] f = dense(dLd).toArray();
                dl = new double[f.length];
                for (int i = 0; i < f.length; i++) dl[i] = f[i];
            }
            Tensor go = dOut != null ? dense(dOut) : g().zeros(dev, yv.shape());
            double ds = Kernels.couplingBackward(mv, yv, hv, sc, go, dl, dy, dh);
            Tensor dsc = Tensor.of(g().scope, dev, new float[] {(float) ds}, 1);
            return of(Var.constant(dy), Var.constant(dh), Var.constant(dsc));
        };
        // One node, two outputs (y' and logdet): the rule runs once with both gradients (null where unused).
        Var[] ol = g().recordMulti(new Tensor[] {out, ldT}, "coupling", of(y, h, scale), gs -> backward.apply(gs[0], gs[1]));
        return new Coupling(ol[0], ol[1]);
    }

    /** Inverse of {@link #coupling} given the net's output h computed from the masked part (no gradient). */
    public static Tensor couplingInverse(Tensor yp, Tensor h, float scale, Tensor mask) {
        Device dev = yp.device();
        Tensor y = g().empty(dev, yp.shape());
        Kernels.couplingInverse(onDevice(mask, dev), yp.contiguous(), h.contiguous(), scale, y);
        return y;
    }

    /** A constant (a coupling mask) on {@code dev}, contiguous: copied when it lives elsewhere. */
    private static Tensor onDevice(Tensor t, Device dev) {
        Tensor c = t.device() == dev ? t : t.to(g().scope, dev);
        return c.isContiguous() ? c : c.contiguous();
    }

    /** The (C, C) matrix with v (C) on its diagonal; its adjoint takes the diagonal back. */
    public static Var diag(Var v) {
        Tensor vv = dense(v);
        long c = vv.numel();
        if (vv.device() != Device.CPU) {   /* kernels/pointwise: ltk_diag_fwd / _bwd, exact copies, no host round trip */
            Device dev = vv.device();
            Tensor m = g().empty(dev, c, c);
            Kernels.diag(vv, m);
            return rec(m, "diag", of(v), gr -> {
                firstOrderOnly("diag");
                Tensor d = g().empty(dev, c);
                Kernels.diagBackward(dense(gr), d);
                return of(Var.constant(d));
            });
        }
        Tensor out = g().zeros(c, c);
        for (long i = 0; i < c; i++) out.segment().setAtIndex(JAVA_FLOAT, i * c + i, vv.segment().getAtIndex(JAVA_FLOAT, i));
        return rec(out, "diag", of(v), gr -> {
            Tensor d = g().empty(c);
            Tensor gv = dense(gr);
            for (long i = 0; i < c; i++) d.segment().setAtIndex(JAVA_FLOAT, i, gv.segment().getAtIndex(JAVA_FLOAT, i * c + i));
            firstOrderOnly("diag");
            return of(Var.constant(d));
        });
    }
}
