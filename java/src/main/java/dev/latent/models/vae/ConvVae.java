package dev.latent.models.vae;

import dev.latent.autograd.F;
import dev.latent.autograd.Var;
import dev.latent.nn.Conv2d;
import dev.latent.nn.ConvTranspose2d;
import dev.latent.nn.Init;
import dev.latent.nn.Linear;
import dev.latent.nn.Module;
import dev.latent.tensor.Scope;

import java.util.Map;

/**
 * The convolutional VAE of ../shared/reference/vae_fmnist.py for 1 x 28 x 28 images: encoder conv 4x4/2 32 -> conv
 * 4x4/2 64 -> linear heads mu, logvar; decoder linear -> 64 x 7 x 7 -> convT 4x4/2 32 -> convT 4x4/2 1 (logits for the
 * Bernoulli likelihood, means for the Gaussian one). PyTorch's default init; parameter names as the reference's.
 *
 * <p>Conditional VAE (cVAE, Sohn et al. 2015; built with {@code classes > 0}): a one-hot class vector y is
 * concatenated to the encoder's flattened features (3136 + K inputs to the mu and logvar heads) and to z (D + K inputs
 * to the decoder's first linear layer). A linear layer over [h, y] is {@code W_h h + W_y y + b}, and {@code W_y y} is
 * column y of W_y, so the model keeps those one-hot columns as (K, out) tables ({@code mu_y.weight},
 * {@code logvar_y.weight}, {@code dec_fc_y.weight}, PyTorch's default init for a layer with 3136 + K or D + K inputs)
 * and adds row y: the concatenation's function without building the concatenated tensors.
 */
public final class ConvVae implements Module {
    public final int latent;
    /** Number of classes of a conditional VAE; 0 when unconditional. */
    public final int classes;
    final Conv2d enc0, enc2;
    final Linear mu, logvar, decFc;
    final ConvTranspose2d dec0, dec2;
    /** The one-hot columns of the heads and the decoder's first layer, as (classes, out) tables; null when unconditional. */
    final Var muY, logvarY, decY;

    public ConvVae(Scope scope, int latent, long seed) { this(scope, latent, 0, seed); }

    /** A VAE conditioned on {@code classes} classes (0: unconditional, the same weights as the 3-argument constructor). */
    public ConvVae(Scope scope, int latent, int classes, long seed) {
        if (latent < 1) throw new IllegalArgumentException("latent size must be >= 1, got " + latent);
        if (classes < 0) throw new IllegalArgumentException("classes must be >= 0 (0: unconditional), got " + classes);
        this.latent = latent;
        this.classes = classes;
        enc0 = Conv2d.torchDefault(scope, 1, 32, 4, 2, 1, true, seed, 10);
        enc2 = Conv2d.torchDefault(scope, 32, 64, 4, 2, 1, true, seed, 12);
        mu = linear(scope, 3136, latent, seed, 14);
        logvar = linear(scope, 3136, latent, seed, 16);
        decFc = linear(scope, latent, 3136, seed, 18);
        dec0 = ConvTranspose2d.torchDefault(scope, 64, 32, 4, 2, 1, 0, true, seed, 20);
        dec2 = ConvTranspose2d.torchDefault(scope, 32, 1, 4, 2, 1, 0, true, seed, 22);
        if (classes > 0) {
            muY = Var.param(Init.torchDefault(scope, seed, 30, 3136 + classes, classes, latent));
            logvarY = Var.param(Init.torchDefault(scope, seed, 31, 3136 + classes, classes, latent));
            decY = Var.param(Init.torchDefault(scope, seed, 32, latent + classes, classes, 3136));
        } else {
            muY = logvarY = decY = null;
        }
    }

    private void checkIds(java.lang.foreign.MemorySegment ids) {
        if (classes > 0 && ids == null) throw new IllegalArgumentException("a conditional VAE (" + classes + " classes) needs a class per image");
        if (classes == 0 && ids != null)
            throw new IllegalArgumentException("an unconditional VAE takes no class ids (it was trained without --conditional)");
    }

    private static Linear linear(Scope s, long in, long out, long seed, long stream) {
        return new Linear(s, Init.torchDefault(s, seed, stream, in, out, in), Init.torchDefault(s, seed, stream + 1, in, out));
    }

    /** {mu, logvar}, each (B, latent), of x (B, 1, 28, 28); an unconditional VAE only. */
    public Var[] encode(Var x) { return encode(x, null); }

    /** {mu, logvar} of x and, for a conditional VAE, its int32 class ids (B) in [0, classes); null for an unconditional one. */
    public Var[] encode(Var x, java.lang.foreign.MemorySegment ids) {
        checkIds(ids);
        Var h = F.relu(enc2.forward(F.relu(enc0.forward(x))));
        long b = h.shape()[0];
        h = F.reshape(h, b, 3136);
        Var m = mu.forward(h), lv = logvar.forward(h);
        if (classes > 0) {
            m = F.add(m, F.embedding(ids, b, muY));
            lv = F.add(lv, F.embedding(ids, b, logvarY));
        }
        return new Var[] {m, lv};
    }

    /** Decoder output (B, 1, 28, 28): logits (Bernoulli) or means (Gaussian); an unconditional VAE only. */
    public Var decode(Var z) { return decode(z, null); }

    /** Decoder output of z (B, latent) and, for a conditional VAE, int32 class ids (B); null for an unconditional one. */
    public Var decode(Var z, java.lang.foreign.MemorySegment ids) {
        checkIds(ids);
        Var h = decFc.forward(z);
        if (classes > 0) h = F.add(h, F.embedding(ids, z.shape()[0], decY));
        h = F.relu(h);
        h = F.reshape(h, z.shape()[0], 64, 7, 7);
        return dec2.forward(F.relu(dec0.forward(h)));
    }

    @Override
    public void collect(String prefix, Map<String, Var> out) {
        enc0.collect(prefix + "enc.0.", out);
        enc2.collect(prefix + "enc.2.", out);
        mu.collect(prefix + "mu.", out);
        logvar.collect(prefix + "logvar.", out);
        decFc.collect(prefix + "dec_fc.", out);
        dec0.collect(prefix + "dec.0.", out);
        dec2.collect(prefix + "dec.2.", out);
        if (classes > 0) {
            out.put(prefix + "mu_y.weight", muY);
            out.put(prefix + "logvar_y.weight", logvarY);
            out.put(prefix + "dec_fc_y.weight", decY);
        }
    }
}
