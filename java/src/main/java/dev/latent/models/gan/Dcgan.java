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
 */
public final class Dcgan {
    private Dcgan() {}

    /** z (B, nz, 1, 1) -> 4x4 -> 8x8 -> 16x16 -> 32x32, transposed convs + BatchNorm + ReLU, Tanh out. */
    public static final class Generator implements Module {
        public final long nz;
        final ConvTranspose2d[] conv = new ConvTranspose2d[4];
        final BatchNorm2d[] bn = new BatchNorm2d[3];

        public Generator(Scope scope, long nz, long ngf, long seed) {
            this.nz = nz;
            long[] ch = {nz, ngf * 4, ngf * 2, ngf, 1};
            for (int i = 0; i < 4; i++)
                conv[i] = ConvTranspose2d.normal(scope, ch[i], ch[i + 1], 4, i == 0 ? 1 : 2, i == 0 ? 0 : 1, 0.02, seed, 100 + 2L * i);
            for (int i = 0; i < 3; i++) bn[i] = BatchNorm2d.normal(scope, ch[i + 1], 0.02, seed, 200 + i);
        }

        public Var forward(Var z) {
            Var h = z;
            for (int i = 0; i < 3; i++) h = F.relu(bn[i].forward(conv[i].forward(h)));
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

        public Discriminator(Scope scope, long ndf, Norm norm, long seed) {
            this.norm = norm;
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

        /** Logits (B). */
        public Var forward(Var x) {
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
            return F.reshape(out, out.shape()[0]);
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
