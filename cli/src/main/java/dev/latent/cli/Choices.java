package dev.latent.cli;

import dev.latent.models.gan.Dcgan;
import dev.latent.models.pixelcnn.PixelCnnSampler;
import dev.latent.models.vae.VaeScores;
import dev.latent.models.vae.VaeTrainer;
import picocli.CommandLine;
import picocli.CommandLine.Model.ArgSpec;
import picocli.CommandLine.TypeConversionException;

import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.Deque;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * The values of the options that take one of a fixed set (issue 19): each set is an enum whose {@code toString()} is
 * its command-line spelling (lowercase, with hyphens, as before they were enums). picocli lists them in --help
 * ({@code ${COMPLETION-CANDIDATES}}), and {@link #register} makes every such option accept exactly those spellings: a
 * bad value is a usage error (exit 2) naming the option and the valid values, e.g. "Invalid value for option
 * '--device': expected one of [cpu, cuda] but was 'tpu'". (picocli's own enum conversion would also take the constant
 * names, "CUDA"; the spellings stay the documented ones.)
 */
final class Choices {
    private Choices() {}

    /** {@code --device}: where training runs. */
    enum Device {
        CPU("cpu", dev.latent.tensor.Device.CPU), CUDA("cuda", dev.latent.tensor.Device.CUDA);
        private final String id;
        final dev.latent.tensor.Device device;
        Device(String id, dev.latent.tensor.Device device) { this.id = id; this.device = device; }
        @Override public String toString() { return id; }
    }

    /** {@code --precision}: the matmul operands' precision. */
    enum Precision {
        FP32(dev.latent.tensor.Precision.FP32), BF16(dev.latent.tensor.Precision.BF16);
        final dev.latent.tensor.Precision precision;
        Precision(dev.latent.tensor.Precision p) { this.precision = p; }
        static Precision of(dev.latent.tensor.Precision p) { return p == dev.latent.tensor.Precision.BF16 ? BF16 : FP32; }
        @Override public String toString() { return precision.id(); }
    }

    /** {@code train gpt --tokenizer}. */
    enum Tokenizer {
        CHAR("char"), BPE("bpe");
        private final String id;
        Tokenizer(String id) { this.id = id; }
        @Override public String toString() { return id; }
    }

    /** {@code train vae --likelihood}. */
    enum Likelihood {
        BERNOULLI("bernoulli", VaeTrainer.Likelihood.BERNOULLI), GAUSSIAN("gaussian", VaeTrainer.Likelihood.GAUSSIAN);
        private final String id;
        final VaeTrainer.Likelihood likelihood;
        Likelihood(String id, VaeTrainer.Likelihood l) { this.id = id; this.likelihood = l; }
        @Override public String toString() { return id; }
    }

    /** {@code sample pixelcnn --sampler}. */
    enum Sampler {
        CACHED("cached", PixelCnnSampler.Mode.CACHED), NAIVE("naive", PixelCnnSampler.Mode.NAIVE);
        private final String id;
        final PixelCnnSampler.Mode mode;
        Sampler(String id, PixelCnnSampler.Mode mode) { this.id = id; this.mode = mode; }
        @Override public String toString() { return id; }
    }

    /** {@code train wgan-gp --critic-norm} (the critic has no BatchNorm under a gradient penalty). */
    enum CriticNorm {
        NONE("none", Dcgan.Norm.NONE), LAYER("layer", Dcgan.Norm.LAYER);
        private final String id;
        final Dcgan.Norm norm;
        CriticNorm(String id, Dcgan.Norm norm) { this.id = id; this.norm = norm; }
        @Override public String toString() { return id; }
    }

    /** {@code train toy-gan --loss}. */
    enum GanLoss {
        GAN("gan"), WGAN_GP("wgan-gp");
        private final String id;
        GanLoss(String id) { this.id = id; }
        @Override public String toString() { return id; }
    }

    /** {@code train toy-gan --dist}: the 2-D Gaussian mixtures of VEEGAN / PacGAN. */
    enum ToyGanDist {
        RING8("ring8"), GRID25("grid25");
        private final String id;
        ToyGanDist(String id) { this.id = id; }
        @Override public String toString() { return id; }
    }

    /** {@code train flow-toy --dist}. */
    enum ToyFlowDist {
        MOONS("moons"), RINGS("rings");
        private final String id;
        ToyFlowDist(String id) { this.id = id; }
        @Override public String toString() { return id; }
    }

    /** {@code eval vae-anomaly --scores}. */
    enum Score {
        REC("rec", VaeScores.Kind.REC), ELBO("elbo", VaeScores.Kind.ELBO), IWAE("iwae", VaeScores.Kind.IWAE);
        private final String id;
        final VaeScores.Kind kind;
        Score(String id, VaeScores.Kind kind) { this.id = id; this.kind = kind; }
        @Override public String toString() { return id; }
    }

    /** The constant spelled {@code value} (its toString), or a conversion error naming the valid spellings. */
    static <E extends Enum<E>> E parse(Class<E> type, String value) {
        for (E e : type.getEnumConstants()) if (e.toString().equals(value)) return e;
        throw new TypeConversionException("expected one of " + Arrays.toString(type.getEnumConstants()) + " but was '" + value + "'");
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
