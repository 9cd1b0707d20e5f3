package dev.latent.models.gan;

import dev.latent.autograd.F;
import dev.latent.autograd.Var;
import dev.latent.nn.BatchNorm2d;
import dev.latent.nn.Conv2d;
import dev.latent.nn.ConvTranspose2d;
import dev.latent.nn.Init;
import dev.latent.nn.Module;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * DCGAN for 1 x 32 x 32 images (Radford et al. 2015; the PyTorch example's layout, as in
 * ../shared/reference/dcgan_fmnist.py). Init: conv weights N(0, 0.02), BatchNorm weight N(1, 0.02), bias 0.
 *
 * <p>Class-conditional variant (built with {@code classes > 0}): the generator sees a one-hot class vector
 * concatenated to z, and the discriminator is a projection discriminator (Miyato and Koyama 2018). Concatenating a
 * one-hot y to z (nz + K input channels at 1 x 1) makes the first transposed convolution's output
 * {@code convT(z) + W_y[y]}, where W_y holds the weights of the K extra input channels: the generator keeps that
 * per-class (C, 4, 4) table ({@code G.cond.weight}, K x C*16, N(0, 0.02) as the conv's weights) and adds its row,
 * the same function without materialising the concatenation. The projection discriminator adds
 * {@code <E[y], phi(x)>} to the unconditional logit, phi(x) the (C, 4, 4) features the last convolution reads
 * ({@code D.proj.weight}, K x C*16). See docs/decisions.md (class conditioning) for why.
 */
public final class Dcgan {
    private Dcgan() {}

    /** z (B, nz, 1, 1) -> 4x4 -> 8x8 -> 16x16 -> 32x32, transposed convs + BatchNorm + ReLU, Tanh out. */
    public static final class Generator implements Module {
        public final long nz;
        /** Number of classes of a conditional generator; 0 when unconditional. */
        public final int classes;
        final ConvTranspose2d[] conv = new ConvTranspose2d[4];
        final BatchNorm2d[] bn = new BatchNorm2d[3];
        /** (classes, 4 ngf * 4 * 4): the first transposed conv's weights for the one-hot input channels; null when unconditional. */
        final Var cond;
        final long c0;

        public Generator(Scope scope, long nz, long ngf, long seed) { this(scope, nz, ngf, 0, seed); }

        /** A generator conditioned on {@code classes} classes (0: unconditional, the same weights as the 4-argument constructor). */
        public Generator(Scope scope, long nz, long ngf, int classes, long seed) {
            if (classes < 0) throw new IllegalArgumentException("Generator: classes = " + classes + ", expected >= 0 (0: unconditional)");
            this.nz = nz;
            this.classes = classes;
            long[] ch = {nz, ngf * 4, ngf * 2, ngf, 1};
            c0 = ch[1];
            for (int i = 0; i < 4; i++)
                conv[i] = ConvTranspose2d.normal(scope, ch[i], ch[i + 1], 4, i == 0 ? 1 : 2, i == 0 ? 0 : 1, 0.02, seed, 100 + 2L * i);
            for (int i = 0; i < 3; i++) bn[i] = BatchNorm2d.normal(scope, ch[i + 1], 0.02, seed, 200 + i);
            cond = classes > 0 ? Var.param(Init.normal(scope, seed, 150, 0.02, classes, c0 * 16)) : null;
        }

        /** Images (B, 1, 32, 32) in [-1, 1] of z (B, nz, 1, 1); an unconditional generator only. */
        public Var forward(Var z) { return forward(z, null); }

        /**
         * Images of z (B, nz, 1, 1) and, for a conditional generator, int32 class ids (B) in [0, classes); an
         * unconditional generator takes {@code ids = null}.
         */
        public Var forward(Var z, java.lang.foreign.MemorySegment ids) {
            Var h = conv[0].forward(z);
            if (classes > 0) {
                if (ids == null) throw new IllegalArgumentException("a class-conditional generator (" + classes + " classes) needs a class per image");
                long b = z.shape()[0];
                h = F.add(h, F.reshape(F.embedding(ids, b, cond), b, c0, 4, 4));
            } else if (ids != null) {
                throw new IllegalArgumentException("an unconditional generator takes no class ids (it was trained without --conditional)");
            }
            h = F.relu(bn[0].forward(h));
            for (int i = 1; i < 3; i++) h = F.relu(bn[i].forward(conv[i].forward(h)));
            return F.tanh(conv[3].forward(h));
        }

        public void train(boolean on) { for (BatchNorm2d b : bn) b.training = on; }

        /** The parameters and BatchNorm's running statistics to {@code device}. */
        @Override
        public void to(Scope scope, dev.latent.tensor.Device device) {
            Module.super.to(scope, device);
            for (BatchNorm2d b : bn) b.buffersTo(scope, device);
        }

        @Override
        public void collect(String prefix, Map<String, Var> out) {
            for (int i = 0; i < 3; i++) {
                conv[i].collect(prefix + "main." + (3 * i) + ".", out);
                bn[i].collect(prefix + "main." + (3 * i + 1) + ".", out);
            }
            conv[3].collect(prefix + "main.9.", out);
            if (cond != null) out.put(prefix + "cond.weight", cond);
        }

        public void buffers(String prefix, Map<String, Tensor> out) {
            for (int i = 0; i < 3; i++) bn[i].buffers(prefix + "main." + (3 * i + 1) + ".", out);
        }
    }

    /** Critic normalisation: DCGAN's BatchNorm, none, or per-sample LayerNorm over (C, H, W) (WGAN-GP's advice). */
    public enum Norm { BATCH, NONE, LAYER }

    /** x (B, 1, 32, 32) -> 16 -> 8 -> 4 -> 1 logit per image; LeakyReLU 0.2; no norm on the first layer. */
    public static final class Discriminator implements Module {
        final Conv2d[] conv = new Conv2d[4];
        final BatchNorm2d[] bn = new BatchNorm2d[2];
        final Var[] lnW = new Var[2], lnB = new Var[2];
        public final Norm norm;
        /** Number of classes of a projection discriminator; 0 when unconditional. */
        public final int classes;
        /** (classes, 4 ndf * 4 * 4): the class embeddings projected onto the last features; null when unconditional. */
        final Var proj;

        public Discriminator(Scope scope, long ndf, Norm norm, long seed) { this(scope, ndf, norm, 0, seed); }

        /** A projection discriminator over {@code classes} classes (0: unconditional, as the 4-argument constructor). */
        public Discriminator(Scope scope, long ndf, Norm norm, int classes, long seed) {
            if (classes < 0) throw new IllegalArgumentException("Discriminator: classes = " + classes + ", expected >= 0 (0: unconditional)");
            this.norm = norm;
            this.classes = classes;
            proj = classes > 0 ? Var.param(Init.normal(scope, seed, 350, 0.02, classes, ndf * 4 * 16)) : null;
            long[] ch = {1, ndf, ndf * 2, ndf * 4, 1};
            for (int i = 0; i < 4; i++)
                conv[i] = Conv2d.normal(scope, ch[i], ch[i + 1], 4, i == 3 ? 1 : 2, i == 3 ? 0 : 1, 0.02, seed, 300 + i);
            long[] hw = {8 * 8, 4 * 4};
            for (int i = 0; i < 2; i++) {
                if (norm == Norm.BATCH) bn[i] = BatchNorm2d.normal(scope, ch[i + 2], 0.02, seed, 400 + i);
                if (norm == Norm.LAYER) {
                    lnW[i] = Var.param(Init.constant(scope, 1f, ch[i + 2] * hw[i]));
                    lnB[i] = Var.param(Init.constant(scope, 0f, ch[i + 2] * hw[i]));
                }
            }
        }

        /** Logits (B); an unconditional discriminator only. */
        public Var forward(Var x) { return forward(x, null); }

        /**
         * Logits (B) of x and, for a projection discriminator, int32 class ids (B): {@code psi(phi(x)) + <proj[y], phi(x)>}.
         */
        public Var forward(Var x, java.lang.foreign.MemorySegment ids) {
            if (classes > 0 && ids == null) throw new IllegalArgumentException("a projection discriminator (" + classes + " classes) needs a class per image");
            if (classes == 0 && ids != null) throw new IllegalArgumentException("an unconditional discriminator takes no class ids");
            Var h = F.leakyRelu(conv[0].forward(x), 0.2f);
            for (int i = 0; i < 2; i++) {
                h = conv[i + 1].forward(h);
                if (norm == Norm.BATCH) h = bn[i].forward(h);
                else if (norm == Norm.LAYER) {
                    long[] s = h.shape();
                    h = F.reshape(F.layerNorm(F.reshape(h, s[0], s[1] * s[2] * s[3]), lnW[i], lnB[i], 1e-5f), s);
                }
                h = F.leakyRelu(h, 0.2f);
            }
            Var out = conv[3].forward(h);
            long b = out.shape()[0];
            Var logit = F.reshape(out, b);
            if (classes == 0) return logit;
            long[] s = h.shape();
            Var phi = F.reshape(h, b, s[1] * s[2] * s[3]);
            return F.add(logit, F.reshape(F.rowSum(F.mul(phi, F.embedding(ids, b, proj))), b));
        }

        public void train(boolean on) { for (BatchNorm2d b : bn) if (b != null) b.training = on; }

        /** The parameters and BatchNorm's running statistics to {@code device}. */
        @Override
        public void to(Scope scope, dev.latent.tensor.Device device) {
            Module.super.to(scope, device);
            for (BatchNorm2d b : bn) if (b != null) b.buffersTo(scope, device);
        }

        @Override
        public void collect(String prefix, Map<String, Var> out) {
            conv[0].collect(prefix + "main.0.", out);
            int idx = 2;
            for (int i = 0; i < 2; i++) {
                conv[i + 1].collect(prefix + "main." + idx + ".", out);
                if (norm == Norm.BATCH) bn[i].collect(prefix + "main." + (idx + 1) + ".", out);
                if (norm == Norm.LAYER) {
                    out.put(prefix + "main." + (idx + 1) + ".weight", lnW[i]);
                    out.put(prefix + "main." + (idx + 1) + ".bias", lnB[i]);
                }
                idx += norm == Norm.NONE ? 2 : 3;
            }
            conv[3].collect(prefix + "main." + idx + ".", out);
            if (proj != null) out.put(prefix + "proj.weight", proj);
        }

        public void buffers(String prefix, Map<String, Tensor> out) {
            if (norm == Norm.BATCH) {
                bn[0].buffers(prefix + "main.3.", out);
                bn[1].buffers(prefix + "main.6.", out);
            }
        }
    }

    /** Parameters and buffers of both nets under "G." and "D." (checkpoint keys). */
    public static Map<String, Tensor> stateDict(Generator g, Discriminator d) {
        Map<String, Tensor> t = new LinkedHashMap<>();
        g.namedParameters().forEach((k, v) -> t.put("G." + k, v.value()));
        g.buffers("G.", t);
        d.namedParameters().forEach((k, v) -> t.put("D." + k, v.value()));
        d.buffers("D.", t);
        return t;
    }
}
