package dev.latent.cli;

import dev.latent.Choice;
import dev.latent.models.gan.Dcgan;
import dev.latent.models.pixelcnn.PixelCnnSampler;
import dev.latent.models.vae.VaeScores;
import dev.latent.models.vae.VaeTrainer;
import picocli.CommandLine;
import picocli.CommandLine.Model.ArgSpec;
import picocli.CommandLine.TypeConversionException;

import java.util.ArrayDeque;
import java.util.Deque;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * The values of the options that take one of a fixed set (issue 19): each set is an enum, a {@link Choice}, whose
 * {@code toString()} is its command-line spelling (lowercase, with hyphens, as before they were enums). picocli lists them in --help
 * ({@code ${COMPLETION-CANDIDATES}}), and {@link #register} makes every such option accept exactly those spellings: a
 * bad value is a usage error (exit 2) naming the option and the valid values, e.g. "Invalid value for option
 * '--device': expected one of [cpu, cuda] but was 'tpu'". (picocli's own enum conversion would also take the constant
 * names, "CUDA"; the spellings stay the documented ones.)
 */
final class Choices {
    private Choices() {}

    /** {@code --device}: where training runs. */
    enum Device implements Choice {
        CPU(dev.latent.tensor.Device.CPU), CUDA(dev.latent.tensor.Device.CUDA);
        final dev.latent.tensor.Device device;
        Device(dev.latent.tensor.Device device) { this.device = device; }
        @Override public String toString() { return id(); }
    }

    /** {@code --precision}: the matmul operands' precision (spelled as {@link dev.latent.tensor.Precision#id()}). */
    enum Precision implements Choice {
        FP32(dev.latent.tensor.Precision.FP32), TF32(dev.latent.tensor.Precision.TF32), BF16(dev.latent.tensor.Precision.BF16);
        final dev.latent.tensor.Precision precision;
        Precision(dev.latent.tensor.Precision p) { this.precision = p; }
        static Precision of(dev.latent.tensor.Precision p) { return valueOf(p.name()); }
        @Override public String toString() { return id(); }
    }

    /** {@code train gpt --tokenizer}. */
    enum Tokenizer implements Choice {
        CHAR, BPE;
        @Override public String toString() { return id(); }
    }

    /** {@code train vae --likelihood}. */
    enum Likelihood implements Choice {
        BERNOULLI(VaeTrainer.Likelihood.BERNOULLI), GAUSSIAN(VaeTrainer.Likelihood.GAUSSIAN);
        final VaeTrainer.Likelihood likelihood;
        Likelihood(VaeTrainer.Likelihood l) { this.likelihood = l; }
        @Override public String toString() { return id(); }
    }

    /** {@code sample pixelcnn --sampler}. */
    enum Sampler implements Choice {
        CACHED(PixelCnnSampler.Mode.CACHED), NAIVE(PixelCnnSampler.Mode.NAIVE);
        final PixelCnnSampler.Mode mode;
        Sampler(PixelCnnSampler.Mode mode) { this.mode = mode; }
        @Override public String toString() { return id(); }
    }

    /** {@code train wgan-gp --critic-norm} (the critic has no BatchNorm under a gradient penalty). */
    enum CriticNorm implements Choice {
        NONE(Dcgan.Norm.NONE), LAYER(Dcgan.Norm.LAYER);
        final Dcgan.Norm norm;
        CriticNorm(Dcgan.Norm norm) { this.norm = norm; }
        @Override public String toString() { return id(); }
    }

    /** {@code train toy-gan --loss}. */
    enum GanLoss implements Choice {
        GAN, WGAN_GP;
        @Override public String toString() { return id(); }
    }

    /** {@code train toy-gan --dist}: the 2-D Gaussian mixtures of VEEGAN / PacGAN. */
    enum ToyGanDist implements Choice {
        RING8, GRID25;
        @Override public String toString() { return id(); }
    }

    /** {@code train flow-toy --dist}. */
    enum ToyFlowDist implements Choice {
        MOONS, RINGS;
        @Override public String toString() { return id(); }
    }

    /** {@code eval vae-anomaly --scores}. */
    enum Score implements Choice {
        REC(VaeScores.Kind.REC), ELBO(VaeScores.Kind.ELBO), IWAE(VaeScores.Kind.IWAE);
        final VaeScores.Kind kind;
        Score(VaeScores.Kind kind) { this.kind = kind; }
        @Override public String toString() { return id(); }
    }

    /** The constant spelled {@code value} (its toString), or a conversion error naming the valid spellings ({@link Choice#parse}). */
    static <E extends Enum<E>> E parse(Class<E> type, String value) {
        try {
            return Choice.parse(type, value);
        } catch (IllegalArgumentException e) {
            throw new TypeConversionException(e.getMessage());
        }
    }

    /** The enum types of the options and parameters (elements of lists and arrays included) under {@code root}. */
    static Set<Class<?>> enumTypes(CommandLine root) {
        Set<Class<?>> types = new LinkedHashSet<>();
        Deque<CommandLine> todo = new ArrayDeque<>(List.of(root));
        while (!todo.isEmpty()) {
            CommandLine c = todo.pop();
            for (ArgSpec a : c.getCommandSpec().args()) {
                if (a.type().isEnum()) types.add(a.type());
                for (Class<?> t : a.auxiliaryTypes()) if (t.isEnum()) types.add(t);
            }
            todo.addAll(c.getSubcommands().values());
        }
        return types;
    }

    /** Makes every enum-typed option under {@code root} (subcommands already added) accept exactly its spellings. */
    @SuppressWarnings({"unchecked", "rawtypes"})
    static void register(CommandLine root) {
        for (Class<?> t : enumTypes(root)) {
            Class<? extends Enum> e = (Class<? extends Enum>) t;
            root.registerConverter((Class) e, v -> parse((Class) e, v));
        }
    }
}
