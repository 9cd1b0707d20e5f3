package dev.latent.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.function.ObjLongConsumer;

import static dev.latent.cuda.CudaKernels.*;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Typed launches of the kernels of the generative-model families (batchnorm.cu, bce.cu, reparam.cu, coupling.cu), split
 * out of {@link CudaKernels} by op family; the same contract: sizes checked before the launch (IllegalArgumentException
 * naming the operand), grids and blocks as each kernel's header specifies, launches asynchronous.
 */
public final class CudaProbKernels extends CudaLaunchers {
    private CudaProbKernels() {}

    // ---- batchnorm.cu ----

    private static void bnCheck(String op, long n, long c, long hw, float eps) {
        if (n < 1 || c < 1 || hw < 1)
            throw new IllegalArgumentException(op + ": n=" + n + " c=" + c + " hw=" + hw + " must all be >= 1");
        if (c > Integer.MAX_VALUE) throw new IllegalArgumentException(op + ": c=" + c + " exceeds the grid's x limit");
        Math.multiplyExact(Math.multiplyExact(Math.multiplyExact(n, c), hw), 4L);
        if (!(eps > 0)) throw new IllegalArgumentException(op + ": eps=" + eps + " must be > 0");
    }

    static void optFloats(String op, long n, String what, DeviceBuffer b) {
        if (b != null) floats(op, n, what, b);
    }

    static boolean same(DeviceBuffer a, DeviceBuffer b) { return a != null && b != null && a.address() == b.address(); }

    /**
     * Training BatchNorm2d over x (n, c, hw): batch statistics in double (block per channel, fixed order), y, mean,
     * rstd written, running statistics (may be null) updated; gamma / beta may be null (1, 0). lt_batchnorm2d_fwd_train's
     * checks: y must not be x.
     */
    public static void batchNormTrain(Cuda cu, long n, long c, long hw, float eps, float momentum, DeviceBuffer x,
                                      DeviceBuffer gamma, DeviceBuffer beta, DeviceBuffer y, DeviceBuffer mean, DeviceBuffer rstd,
                                      DeviceBuffer runningMean, DeviceBuffer runningVar) {
        String op = "batchNorm2d";
        bnCheck(op, n, c, hw, eps);
        if (!(momentum >= 0 && momentum <= 1)) throw new IllegalArgumentException(op + ": momentum=" + momentum + " must be in [0, 1]");
        floats(op, n * c * hw, "x", x, "y", y);
        floats(op, c, "mean", mean, "rstd", rstd);
        optFloats(op, c, "gamma", gamma);
        optFloats(op, c, "beta", beta);
        optFloats(op, c, "runningMean", runningMean);
        optFloats(op, c, "runningVar", runningVar);
        if (same(x, y)) throw new IllegalArgumentException(op + ": in place (y == x) is not supported: the statistics pass reads x twice");
        Ltk.ltk_bn_fwd_train(cu, dim(c), dim(BN_THREADS), 0, n, c, hw, eps, momentum, x, gamma, beta, y, mean, rstd,
                runningMean, runningVar);
    }

    /** Inference BatchNorm2d with given mean and var (c): y = (x - mean) / sqrt(var + eps) gamma + beta, in double. */
    public static void batchNormInfer(Cuda cu, long n, long c, long hw, float eps, DeviceBuffer x, DeviceBuffer gamma,
                                      DeviceBuffer beta, DeviceBuffer mean, DeviceBuffer var, DeviceBuffer y) {
        String op = "batchNorm2d";
        bnCheck(op, n, c, hw, eps);
        floats(op, n * c * hw, "x", x, "y", y);
        floats(op, c, "mean", mean, "var", var);
        optFloats(op, c, "gamma", gamma);
        optFloats(op, c, "beta", beta);
        Ltk.ltk_bn_fwd_infer(cu, dim(c, Math.min(n, MAX_GRID_YZ)), dim(Math.min(256, (hw + 31) / 32 * 32)), 0, n, c, hw,
                eps, x, gamma, beta, mean, var, y);
    }

    /**
     * Backward of the training forward: dx overwritten; dgamma, dbeta (may be null) accumulate. As
     * lt_batchnorm2d_bwd, dx must not be x or dy.
     */
    public static void batchNormBackward(Cuda cu, long n, long c, long hw, DeviceBuffer x, DeviceBuffer gamma, DeviceBuffer mean,
                                         DeviceBuffer rstd, DeviceBuffer dy, DeviceBuffer dx, DeviceBuffer dgamma, DeviceBuffer dbeta) {
        String op = "batchNorm2dBackward";
        bnCheck(op, n, c, hw, 1);
        floats(op, n * c * hw, "x", x, "dy", dy, "dx", dx);
        floats(op, c, "mean", mean, "rstd", rstd);
        optFloats(op, c, "gamma", gamma);
        optFloats(op, c, "dgamma", dgamma);
        optFloats(op, c, "dbeta", dbeta);
        if (same(dx, x) || same(dx, dy))
            throw new IllegalArgumentException(op + ": dx must not be x or dy (as on the CPU)");
        Ltk.ltk_bn_bwd(cu, dim(c), dim(BN_THREADS), 0, n, c, hw, x, gamma, mean, rstd, dy, dx, dgamma, dbeta);
    }

    // ---- bce.cu ----

    /** A kernel summing {@code chunks} per-chunk doubles of {@code part}, in order, into the double {@code out}. */
    private interface ChunkTotal {
        void launch(long chunks, DeviceBuffer part, DeviceBuffer out);
    }

    /**
     * What the chunked double sums (BCE's loss, reparam's KL) share: ceil(n / chunk) chunks, {@code part} launched over
     * them into per-chunk doubles of this thread's scratch (given that slice and the chunk count), {@code total} summing
     * those in order into the scratch's first double, which it returns; n == 0 launches nothing and zeroes it.
     */
    private static DeviceBuffer chunkedSum(Cuda cu, long n, long chunk, ObjLongConsumer<DeviceBuffer> part, ChunkTotal total) {
        long chunks = Math.max(1, (n + chunk - 1) / chunk);
        DeviceBuffer s = scratch(cu, (chunks + 1) * 8);
        DeviceBuffer out = s.slice(0, 8), parts = s.slice(8, chunks * 8);
        if (n == 0) {
            out.zero();
        } else {
            part.accept(parts, chunks);
            total.launch(chunks, parts, out);
        }
        return out;
    }

    /** The BCE loss over n elements (ltk_bce_part, which also writes dlogits, then ltk_bce_total): {@link #chunkedSum}. */
    private static DeviceBuffer bceSum(Cuda cu, long n, DeviceBuffer logits, DeviceBuffer targets, float t, DeviceBuffer dlogits,
                                       float dscale) {
        return chunkedSum(cu, n, BCE_CHUNK,
                (part, chunks) -> Ltk.ltk_bce_part(cu, dim(chunks), dim(BCE_THREADS), 0, n, logits, targets, t, dlogits, dscale, part),
                (chunks, part, out) -> Ltk.ltk_bce_total(cu, dim(1), dim(32), 0, chunks, part, out));
    }

    /**
     * Sum over n elements of BCE with logits against targets (or the constant t when targets is null), in double in
     * lt_bce_logits's 4096-element chunks added in order; dlogits (may be null, may be the logits) = (sigmoid(x) - t)
     * dscale. The loss is copied back: this call synchronises.
     */
    public static double bceWithLogits(Cuda cu, long n, DeviceBuffer logits, DeviceBuffer targets, float t, DeviceBuffer dlogits, float dscale) {
        String op = "bceWithLogits";
        floats(op, n, "logits", logits);
        optFloats(op, n, "targets", targets);
        optFloats(op, n, "dlogits", dlogits);
        if (same(dlogits, targets)) throw new IllegalArgumentException(op + ": dlogits must not be the targets array");
        if (n == 0) return 0;
        DeviceBuffer out = bceSum(cu, n, logits, targets, t, dlogits, dscale);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment h = a.allocate(JAVA_DOUBLE);
            out.copyTo(h);
            return h.get(JAVA_DOUBLE, 0);
        }
    }
    /**
     * {@link #bceWithLogits} with the loss handed to a float device tensor (outF32, one element): the double sum
     * rounded to float on the device (ltk_f64_to_f32). Nothing comes back: no synchronisation.
     */
    public static void bceWithLogitsF32(Cuda cu, long n, DeviceBuffer logits, DeviceBuffer targets, float t, DeviceBuffer dlogits,
                                        float dscale, DeviceBuffer outF32) {
        String op = "bceWithLogits";
        floats(op, n, "logits", logits);
        optFloats(op, n, "targets", targets);
        optFloats(op, n, "dlogits", dlogits);
        floats(op, 1, "out", outF32);
        if (same(dlogits, targets)) throw new IllegalArgumentException(op + ": dlogits must not be the targets array");
        DeviceBuffer out = bceSum(cu, n, logits, targets, t, dlogits, dscale);
        Ltk.ltk_f64_to_f32(cu, dim(1), dim(32), 0, 1L, out, outF32);
    }

    // ---- reparam.cu ----

    /** The KL of reparam's forward over n elements ({@code fwd}: the chunk kernel, keyed or by value): {@link #chunkedSum}. */
    private static DeviceBuffer reparamKl(Cuda cu, long n, ObjLongConsumer<DeviceBuffer> fwd) {
        return chunkedSum(cu, n, RP_CHUNK, fwd, (chunks, part, kl) -> Ltk.ltk_reparam_kl_sum(cu, dim(1), dim(32), 0, chunks, part, kl));
    }

    /**
     * z = mu + exp(0.5 logvar) eps, eps from Philox (seed, stream): the CPU's bits. Returns KL(q || N(0, I)) summed
     * in double in the CPU's fixed order (per-chunk partial sums in this thread's scratch, then one thread sums them),
     * which is copied back: this call synchronises.
     */
    public static double reparam(Cuda cu, long n, DeviceBuffer mu, DeviceBuffer logvar, long seed, long stream, DeviceBuffer z) {
        floats("reparam", n, "mu", mu, "logvar", logvar, "z", z);
        if (n == 0) return 0;
        DeviceBuffer kl = reparamKl(cu, n, (part, chunks) ->
                Ltk.ltk_reparam_fwd(cu, dim(chunks), dim(RP_THREADS), 0, n, mu, logvar, seed, stream, z, part));
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_DOUBLE);
            kl.copyTo(out);
            return out.get(JAVA_DOUBLE, 0);
        }
    }

    /**
     * {@link #reparam} with the KL handed to a float device tensor (klF32, one element): the double sum is rounded to
     * float on the device (ltk_f64_to_f32, as the CPU's (float) cast). Nothing comes back: no synchronisation.
     */
    public static void reparamF32(Cuda cu, long n, DeviceBuffer mu, DeviceBuffer logvar, long seed, long stream, DeviceBuffer z,
                                  DeviceBuffer klF32) {
        floats("reparam", n, "mu", mu, "logvar", logvar, "z", z);
        floats("reparam", 1, "kl", klF32);
        DeviceBuffer kl = reparamKl(cu, n, (part, chunks) ->
                Ltk.ltk_reparam_fwd(cu, dim(chunks), dim(RP_THREADS), 0, n, mu, logvar, seed, stream, z, part));
        Ltk.ltk_f64_to_f32(cu, dim(1), dim(32), 0, 1L, kl, klF32);
    }

    /**
     * {@link #reparamF32} with the Philox key read from device memory ({@code key}: 16 bytes, seed then stream, as two
     * int64; ltk_reparam_fwd_key): a step captured into a CUDA graph reads the key staged before each replay, so each
     * replay draws new eps. Same bits as {@link #reparamF32} with that key.
     */
    public static void reparamF32Keyed(Cuda cu, long n, DeviceBuffer mu, DeviceBuffer logvar, DeviceBuffer key, DeviceBuffer z,
                                       DeviceBuffer klF32) {
        floats("reparam", n, "mu", mu, "logvar", logvar, "z", z);
        floats("reparam", 1, "kl", klF32);
        need(key, 16, "reparam", "key");
        DeviceBuffer kl = reparamKl(cu, n, (part, chunks) ->
                Ltk.ltk_reparam_fwd_key(cu, dim(chunks), dim(RP_THREADS), 0, n, mu, logvar, key, z, part));
        Ltk.ltk_f64_to_f32(cu, dim(1), dim(32), 0, 1L, kl, klF32);
    }

    /** ltk_reparam_bwd_key: {@code ltk_reparam_bwd} with the key read from device memory (16 bytes: seed, stream). */
    public static void reparamBackwardKeyed(Cuda cu, long n, DeviceBuffer mu, DeviceBuffer logvar, DeviceBuffer key, DeviceBuffer dz,
                                            float klScale, DeviceBuffer dmu, DeviceBuffer dlogvar) {
        CudaLaunchers.reparamBackwardKeyed(cu, n, mu, logvar, key, dz, klScale, dmu, dlogvar);
    }

    /**
     * Free-bits KL of mu, logvar (b, d) on the device (ltk_kl_free_bits_fwd, one block): kd (d doubles) gets each
     * dimension's batch-mean KL, out (one float) the sum over dimensions of max(lambda, kd). Nothing comes back.
     */
    public static void klFreeBits(Cuda cu, long b, long d, DeviceBuffer mu, DeviceBuffer logvar, double lambda, DeviceBuffer kd,
                                  DeviceBuffer out) {
        long n = Math.multiplyExact(b, d);
        floats("klFreeBits", n, "mu", mu, "logvar", logvar);
        floats("klFreeBits", 1, "out", out);
        need(kd, Math.multiplyExact(d, 8L), "klFreeBits", "kd");
        Ltk.ltk_kl_free_bits_fwd(cu, dim(1), dim(Ltk.FB_THREADS), 0, b, d, mu, logvar, lambda, kd, out);
    }

    /** The free-bits KL's gradients (ltk_kl_free_bits_bwd) from {@link #klFreeBits}' kd and the upstream gradient grad (one float). */
    public static void klFreeBitsBackward(Cuda cu, long b, long d, DeviceBuffer mu, DeviceBuffer logvar, DeviceBuffer kd, double lambda,
                                          DeviceBuffer grad, DeviceBuffer dmu, DeviceBuffer dlogvar) {
        long n = Math.multiplyExact(b, d);
        floats("klFreeBitsBackward", n, "mu", mu, "logvar", logvar, "dmu", dmu, "dlogvar", dlogvar);
        floats("klFreeBitsBackward", 1, "grad", grad);
        need(kd, Math.multiplyExact(d, 8L), "klFreeBitsBackward", "kd");
        Ltk.ltk_kl_free_bits_bwd(cu, dim(CudaKernels.strideBlocks(n)), dim(256), 0, b, d, mu, logvar, kd, lambda, grad, dmu, dlogvar);
    }

    /** Writes the Philox key (seed, stream) into {@code key} (16 bytes on the device) by an asynchronous staged upload. */
    public static void stageRngKey(DeviceBuffer key, long seed, long stream) {
        need(key, 16, "stageRngKey", "key");
        Staging.upload(key.slice(0, 16), 16, h -> {
            h.set(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, 0, seed);
            h.set(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, 8, stream);
        });
    }

    // ---- coupling.cu ----

    private static void cpCheck(String op, long n, long hw, DeviceBuffer mask, DeviceBuffer y, DeviceBuffer h, DeviceBuffer out) {
        if (n < 1 || hw < 1) throw new IllegalArgumentException(op + ": n=" + n + " hw=" + hw + " must be >= 1");
        if (n > Integer.MAX_VALUE) throw new IllegalArgumentException(op + ": n=" + n + " exceeds the grid's x limit");
        long nhw = Math.multiplyExact(n, hw);
        Math.multiplyExact(nhw, 8L);
        floats(op, hw, "mask", mask);
        floats(op, nhw, "y", y, "output", out);
        floats(op, 2 * nhw, "h", h);
        if (same(out, y) || same(out, h) || same(out, mask)) throw new IllegalArgumentException(op + ": the output must not overlap an input");
    }

    static void doubles(String op, long n, String what, DeviceBuffer b) {
        if (b != null) need(b, Math.multiplyExact(n, 8L), op, what);
    }

    /**
     * Affine coupling forward (lt_coupling_fwd): out (n, hw) from y (n, hw), h (n, 2, hw), mask (hw); logdet (n
     * doubles, may be null) = the per-image sum of s, in double with a fixed order.
     */
    public static void couplingForward(Cuda cu, long n, long hw, DeviceBuffer mask, DeviceBuffer y, DeviceBuffer h, float scale,
                                       DeviceBuffer out, DeviceBuffer logdet) {
        cpCheck("couplingForward", n, hw, mask, y, h, out);
        doubles("couplingForward", n, "logdet", logdet);
        Ltk.ltk_coupling_fwd(cu, dim(n), dim(CP_THREADS), 0, n, hw, mask, y, h, scale, out, logdet);
    }

    /** Affine coupling inverse (lt_coupling_inv): y from y' and h (computed from the masked part). */
    public static void couplingInverse(Cuda cu, long n, long hw, DeviceBuffer mask, DeviceBuffer yp, DeviceBuffer h, float scale, DeviceBuffer y) {
        cpCheck("couplingInverse", n, hw, mask, yp, h, y);
        Ltk.ltk_coupling_inv(cu, dim(n), dim(Math.min(256, (hw + 31) / 32 * 32)), 0, n, hw, mask, yp, h, scale, y);
    }

    /**
     * The forward with the per-image log-determinants handed to a float device tensor (n): the double sums go to this
     * thread's scratch and ltk_f64_to_f32 rounds them once, as the CPU's (float) cast. Nothing comes back to the host.
     */
    public static void couplingForwardF32(Cuda cu, long n, long hw, DeviceBuffer mask, DeviceBuffer y, DeviceBuffer h, float scale,
                                          DeviceBuffer out, DeviceBuffer logdetF32) {
        forwardF32(cu, n, hw, mask, y, h, scale, out, logdetF32);
    }

    /**
     * {@link #couplingForwardF32(Cuda, long, long, DeviceBuffer, DeviceBuffer, DeviceBuffer, float, DeviceBuffer,
     * DeviceBuffer)} with the learned scale read by the kernel from device memory ({@code scale}: one float, the
     * parameter itself): the same bits, and the scale is not copied back.
     */
    public static void couplingForwardF32(Cuda cu, long n, long hw, DeviceBuffer mask, DeviceBuffer y, DeviceBuffer h, DeviceBuffer scale,
                                          DeviceBuffer out, DeviceBuffer logdetF32) {
        floats("couplingForward", 1, "scale", scale);
        forwardF32(cu, n, hw, mask, y, h, scale, out, logdetF32);
    }

    /** scale: a Float (ltk_coupling_fwd) or a DeviceBuffer holding it (ltk_coupling_fwd_ds). */
    private static void forwardF32(Cuda cu, long n, long hw, DeviceBuffer mask, DeviceBuffer y, DeviceBuffer h, Object scale,
                                   DeviceBuffer out, DeviceBuffer logdetF32) {
        cpCheck("couplingForward", n, hw, mask, y, h, out);
        floats("couplingForward", n, "logdet", logdetF32);
        DeviceBuffer ld = scratch(cu, n * 8).slice(0, n * 8);
        if (scale instanceof DeviceBuffer ds) Ltk.ltk_coupling_fwd_ds(cu, dim(n), dim(CP_THREADS), 0, n, hw, mask, y, h, ds, out, ld);
        else Ltk.ltk_coupling_fwd(cu, dim(n), dim(CP_THREADS), 0, n, hw, mask, y, h, (Float) scale, out, ld);
        Ltk.ltk_f64_to_f32(cu, dim(strideBlocks(n)), dim(256), 0, n, ld, logdetF32);
    }

    /**
     * The backward with float device tensors for dlogdet (n, may be null) and d(scale) (1, overwritten): widened to /
     * rounded from the kernels' doubles on the device (this thread's scratch holds dlogdet, d(scale) and the per-image
     * partials). Nothing comes back to the host.
     */
    public static void couplingBackwardF32(Cuda cu, long n, long hw, DeviceBuffer mask, DeviceBuffer y, DeviceBuffer h, float scale,
                                           DeviceBuffer dout, DeviceBuffer dlogdetF32, DeviceBuffer dy, DeviceBuffer dh, DeviceBuffer dscaleF32) {
        backwardF32(cu, n, hw, mask, y, h, scale, dout, dlogdetF32, dy, dh, dscaleF32);
    }

    /** The backward with the learned scale read from device memory (one float): the same bits, nothing copied back. */
    public static void couplingBackwardF32(Cuda cu, long n, long hw, DeviceBuffer mask, DeviceBuffer y, DeviceBuffer h, DeviceBuffer scale,
                                           DeviceBuffer dout, DeviceBuffer dlogdetF32, DeviceBuffer dy, DeviceBuffer dh, DeviceBuffer dscaleF32) {
        floats("couplingBackward", 1, "scale", scale);
        backwardF32(cu, n, hw, mask, y, h, scale, dout, dlogdetF32, dy, dh, dscaleF32);
    }

    /** scale: a Float (ltk_coupling_bwd) or a DeviceBuffer holding it (ltk_coupling_bwd_ds). */
    private static void backwardF32(Cuda cu, long n, long hw, DeviceBuffer mask, DeviceBuffer y, DeviceBuffer h, Object scale,
                                    DeviceBuffer dout, DeviceBuffer dlogdetF32, DeviceBuffer dy, DeviceBuffer dh, DeviceBuffer dscaleF32) {
        String op = "couplingBackward";
        cpCheck(op, n, hw, mask, y, h, dy);
        floats(op, n * hw, "dout", dout);
        floats(op, 2 * n * hw, "dh", dh);
        if (dlogdetF32 != null) floats(op, n, "dlogdet", dlogdetF32);
        floats(op, 1, "dscale", dscaleF32);
        if (same(dh, y) || same(dh, h) || same(dh, dout) || same(dh, dy) || same(dy, dout))
            throw new IllegalArgumentException(op + ": dy or dh overlaps an input or each other");
        DeviceBuffer s = scratch(cu, (2 * n + 1) * 8);
        DeviceBuffer dl = dlogdetF32 == null ? null : s.slice(0, n * 8), ds = s.slice(n * 8, 8), part = s.slice((n + 1) * 8, n * 8);
        if (dl != null) Ltk.ltk_f32_to_f64(cu, dim(strideBlocks(n)), dim(256), 0, n, dlogdetF32, dl);
        ds.zero();
        if (scale instanceof DeviceBuffer sb) Ltk.ltk_coupling_bwd_ds(cu, dim(n), dim(CP_THREADS), 0, n, hw, mask, y, h, sb, dout, dl, dy, dh, part);
        else Ltk.ltk_coupling_bwd(cu, dim(n), dim(CP_THREADS), 0, n, hw, mask, y, h, (Float) scale, dout, dl, dy, dh, part);
        Ltk.ltk_coupling_dscale(cu, dim(1), dim(32), 0, n, part, ds);
        Ltk.ltk_f64_to_f32(cu, dim(1), dim(32), 0, 1L, ds, dscaleF32);
    }

    /**
     * Affine coupling backward (lt_coupling_bwd): dy (n, hw) and dh (n, 2, hw) overwritten from dout and dlogdet (n
     * doubles, may be null); dscale (one double on the device) += d(scale), per-image partials (this thread's
     * scratch) added in image order. Does not synchronise.
     */
    public static void couplingBackward(Cuda cu, long n, long hw, DeviceBuffer mask, DeviceBuffer y, DeviceBuffer h, float scale,
                                        DeviceBuffer dout, DeviceBuffer dlogdet, DeviceBuffer dy, DeviceBuffer dh, DeviceBuffer dscale) {
        String op = "couplingBackward";
        cpCheck(op, n, hw, mask, y, h, dy);
        floats(op, n * hw, "dout", dout);
        floats(op, 2 * n * hw, "dh", dh);
        doubles(op, n, "dlogdet", dlogdet);
        need(dscale, 8, op, "dscale");
        if (same(dh, y) || same(dh, h) || same(dh, dout) || same(dh, dy) || same(dy, dout))
            throw new IllegalArgumentException(op + ": dy or dh overlaps an input or each other");
        DeviceBuffer part = scratch(cu, n * 8).slice(0, n * 8);
        Ltk.ltk_coupling_bwd(cu, dim(n), dim(CP_THREADS), 0, n, hw, mask, y, h, scale, dout, dlogdet, dy, dh, part);
        Ltk.ltk_coupling_dscale(cu, dim(1), dim(32), 0, n, part, dscale);
    }

}
