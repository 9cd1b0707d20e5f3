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
 */
public final class ConvVae implements Module {
    public final int latent;
    final Conv2d enc0, enc2;
    final Linear mu, logvar, decFc;
    final ConvTranspose2d dec0, dec2;

    public ConvVae(Scope scope, int latent, long seed) {
        if (latent < 1) throw new IllegalArgumentException("latent size must be >= 1, got " + latent);
        this.latent = latent;
        enc0 = Conv2d.torchDefault(scope, 1, 32, 4, 2, 1, true, seed, 10);
        enc2 = Conv2d.torchDefault(scope, 32, 64, 4, 2, 1, true, seed, 12);
        mu = linear(scope, 3136, latent, seed, 14);
        logvar = linear(scope, 3136, latent, seed, 16);
        decFc = linear(scope, latent, 3136, seed, 18);
        dec0 = ConvTranspose2d.torchDefault(scope, 64, 32, 4, 2, 1, 0, true, seed, 20);
        dec2 = ConvTranspose2d.torchDefault(scope, 32, 1, 4, 2, 1, 0, true, seed, 22);
    }

    private static Linear linear(Scope s, long in, long out, long seed, long stream) {
        return new Linear(s, Init.torchDefault(s, seed, stream, in, out, in), Init.torchDefault(s, seed, stream + 1, in, out));
    }

    /** {mu, logvar}, each (B, latent), of x (B, 1, 28, 28). */
    public Var[] encode(Var x) {
        Var h = F.relu(enc2.forward(F.relu(enc0.forward(x))));
        h = F.reshape(h, h.shape()[0], 3136);
        return new Var[] {mu.forward(h), logvar.forward(h)};
    }

    /** Decoder output (B, 1, 28, 28): logits (Bernoulli) or means (Gaussian). */
    public Var decode(Var z) {
        Var h = F.relu(decFc.forward(z));
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
    }
}
