package dev.latent.serve;

import dev.latent.io.SafeTensors;
import dev.latent.models.flow.FlowSampler;
import dev.latent.models.flow.FlowTrainer;
import dev.latent.models.flow.ImageFlow;
import dev.latent.models.gan.GanSampler;
import dev.latent.models.gan.Dcgan;
import dev.latent.models.vae.ConvVae;
import dev.latent.models.vae.VaeSampler;
import dev.latent.models.vae.VaeTrainer;
import dev.latent.tensor.Scope;
import dev.latent.train.Limits;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.stream.LongStream;

/**
 * Image-model generators for services: a checkpoint of the VAE, the DCGAN / WGAN-GP generator or a flow (RealNVP,
 * Glow) behind the thread-safe {@link Generator} front ({@link BlockingGenerator}: worker threads, a bound on
 * requests in flight, deadlines and cancellation checked between batches). The model is loaded once and only read;
 * a request's result depends on the request alone (its seed and size), never on what else runs:
 * <ul>
 * <li>VAE: image i of a request is the decoder's mean at z ~ N(0, I) from Philox (seed, 3 x 2^40 + i)
 * ({@link VaeSampler}), decoded 64 at a time; the generator keeps the model's weights only (the checkpoint, its
 * optimizer moments and the trainer are read into a temporary scope and freed).</li>
 * <li>GAN: the request's n images in one batch (the generator normalises with the batch's statistics, as the
 * reference samples it), z from Philox (seed, 0) ({@link GanSampler}).</li>
 * <li>Flow: z ~ N(0, T^2 I) from Philox (seed) through the inverse ({@link FlowSampler}); the generator holds the
 * loaded trainer (weights, and its optimizer's zeroed moments: about 3x the weights).</li>
 * </ul>
 * Pixels are 8-bit grey, row-major, 28 x 28 (the flows: the checkpoint's h x w).
 */
public final class ImageGenerators {
    private ImageGenerators() {}

    /** A request: n images, their seed, the flows' temperature (others ignore it), and a deadline (null: none). */
    public record ImageRequest(int n, long seed, double temperature, Duration timeout) {
        public ImageRequest {
            if (n < 1 || n > Limits.DEFAULT_MAX_IMAGES)
                throw new IllegalArgumentException("n must be in [1, " + Limits.DEFAULT_MAX_IMAGES + "], got " + n);
            if (!(temperature >= 0) || Double.isInfinite(temperature))
                throw new IllegalArgumentException("temperature must be finite and >= 0, got " + temperature);
            if (timeout != null && timeout.isNegative()) throw new IllegalArgumentException("timeout must not be negative, got " + timeout);
        }

        public ImageRequest(int n, long seed) { this(n, seed, 1.0, null); }
    }

    /** The images of one request: n x h x w bytes. */
    public record Images(int n, int h, int w, byte[] pixels) {}

    static final int BATCH = 64;

    /** A generator for the checkpoint (file or run folder) of any image family, picked by the checkpoint's format. */
    public static Generator<ImageRequest, Images> load(Path checkpoint, int threads, int maxQueued) throws IOException {
        String format;
        Path f = Files.isDirectory(checkpoint) ? checkpoint.resolve("checkpoint.safetensors") : checkpoint;
        if (!Files.isRegularFile(f)) throw new IOException("no checkpoint at " + f);
        try (SafeTensors.Mapped m = SafeTensors.map(f)) {
            format = m.metadata().getOrDefault("format", "");
        }
        return switch (format) {
            case "latent-vae-1" -> vae(checkpoint, threads, maxQueued);
            case "latent-gan-1" -> gan(checkpoint, threads, maxQueued);
            case "latent-realnvp-1", "latent-glow-1" -> flow(checkpoint, threads, maxQueued);
            default -> throw new IOException(f + ": format '" + format + "' is not an image model (latent-vae-1, latent-gan-1, latent-realnvp-1, latent-glow-1)");
        };
    }

    /** The VAE of {@code checkpoint}: its decoder's weights only. */
    public static Generator<ImageRequest, Images> vae(Path checkpoint, int threads, int maxQueued) throws IOException {
        Scope owned = Scope.shared();
        try {
            ConvVae model;
            VaeTrainer.Likelihood lik;
            try (Scope tmp = Scope.shared()) {
                VaeTrainer t = VaeTrainer.load(checkpoint, tmp);
                ConvVae src = t.hostModel();
                lik = t.cfg.likelihood();
                model = new ConvVae(owned, src.latent, 0);
                Map<String, dev.latent.autograd.Var> from = src.namedParameters();
                for (var e : model.namedParameters().entrySet()) {
                    var s = from.get(e.getKey()).value();
                    MemorySegment.copy(s.segment(), 0, e.getValue().value().segment(), 0, s.numel() * 4);
                }
            }
            ConvVae m = model;
            return owning(owned, new BlockingGenerator<ImageRequest, Images>(threads, maxQueued, ImageRequest::timeout, (req, scope, ctl) -> {
                byte[] px = new byte[req.n() * 784];
                for (int from = 0; from < req.n(); from += BATCH) {
                    ctl.check();
                    long[] ids = LongStream.range(from, Math.min(req.n(), from + BATCH)).toArray();
                    byte[] b = VaeSampler.sample(m, lik, req.seed(), ids);
                    System.arraycopy(b, 0, px, from * 784, b.length);
                }
                return new Images(req.n(), 28, 28, px);
            }));
        } catch (IOException | RuntimeException e) {
            owned.close();
            throw e;
        }
    }

    /** The GAN generator of {@code checkpoint}: its weights and BatchNorm statistics only (no critic, no moments). */
    public static Generator<ImageRequest, Images> gan(Path checkpoint, int threads, int maxQueued) throws IOException {
        Scope owned = Scope.shared();
        try {
            Dcgan.Generator g = GanSampler.load(checkpoint, owned);
            return owning(owned, new BlockingGenerator<ImageRequest, Images>(threads, maxQueued, ImageRequest::timeout,
                    (req, scope, ctl) -> new Images(req.n(), 28, 28, GanSampler.sample(g, req.seed(), req.n()))));
        } catch (IOException | RuntimeException e) {
            owned.close();
            throw e;
        }
    }

    /** The flow (RealNVP or Glow) of {@code checkpoint}. */
    public static Generator<ImageRequest, Images> flow(Path checkpoint, int threads, int maxQueued) throws IOException {
        Scope owned = Scope.shared();
        try {
            ImageFlow model = FlowTrainer.load(checkpoint, owned).model;
            int h = (int) ((Number) model.config().get("h")).longValue(), w = (int) ((Number) model.config().get("w")).longValue();
            return owning(owned, new BlockingGenerator<ImageRequest, Images>(threads, maxQueued, ImageRequest::timeout,
                    (req, scope, ctl) -> new Images(req.n(), h, w, FlowSampler.sample(model, req.n(), req.temperature(), req.seed()))));
        } catch (IOException | RuntimeException e) {
            owned.close();
            throw e;
        }
    }

    /** {@code g}, closing {@code scope} (the model's memory) after g has drained. */
    private static <Q, R> Generator<Q, R> owning(Scope scope, Generator<Q, R> g) {
        return new Generator<>() {
            @Override public Pending<R> submit(Q request) { return g.submit(request); }
            @Override public int inFlight() { return g.inFlight(); }
            @Override public void close() {
                try { g.close(); } finally { scope.close(); }
            }
        };
    }
}
