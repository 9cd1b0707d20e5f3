package dev.latent.spark;

import dev.latent.data.TextData;
import dev.latent.io.Json;
import dev.latent.models.gpt.GptCheckpoint;
import dev.latent.tensor.Scope;
import dev.latent.text.BpeTokenizer;
import dev.latent.text.CharTokenizer;
import dev.latent.text.Tokenizer;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@code bin/latent train gpt --spark MASTER ...} (bin/latent hands any command line with {@code --spark} here) and
 * the spark-submit main class: GPT training as a Spark barrier stage of {@code --workers} tasks, each with
 * {@code --batch} sequences per step (a global batch of workers x batch). The options are those of
 * {@code latent train gpt}, minus evaluation and sampling (run {@code latent eval}/{@code sample} on the checkpoint).
 * {@code train dcgan|wgan-gp|realnvp|glow --spark MASTER}: the image families, with {@code --micro} micro-batches of
 * {@code --batch} images per step split over the workers (the same bits for any worker count dividing it).
 */
@Command(name = "latent-spark", mixinStandardHelpOptions = true, subcommands = SparkMain.Train.class,
        description = "Latent on Apache Spark: data-parallel training in a barrier stage.")
public final class SparkMain implements Runnable {
    @Override
    public void run() { new CommandLine(this).usage(System.out); }

    public static void main(String[] args) {
        CommandLine cl = commandLine();
        cl.setExecutionExceptionHandler((ex, cmd, parsed) -> {
            cmd.getErr().println("latent: " + ex.getMessage());
            return 1;
        });
        int rc = cl.execute(args);
        if (rc != 0) System.exit(rc);
    }

    /**
     * The command tree with every fixed-choice option taking exactly its documented spellings (a bad value is a usage
     * error, exit 2, that names the option and lists the set), as the CLI's own options do.
     */
    static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new SparkMain());
        exact(cl, TokenizerKind.class);
        exact(cl, CriticNorm.class);
        exact(cl, DeviceKind.class);
        exact(cl, CollectiveKind.class);
        return cl;
    }

    /** Registers a converter taking exactly the toString spellings of {@code type}'s constants. */
    private static <E extends Enum<E>> void exact(CommandLine cl, Class<E> type) {
        cl.registerConverter(type, v -> {
            try {
                return dev.latent.Choice.parse(type, v);
            } catch (IllegalArgumentException e) {
                throw new CommandLine.TypeConversionException(e.getMessage());
            }
        });
    }

    /** {@code --critic-norm} of wgan-gp: the critic's normalisation, spelled as {@code latent train wgan-gp}'s. */
    enum CriticNorm implements dev.latent.Choice {
        NONE, LAYER;
        @Override public String toString() { return id(); }
    }

    /** {@code --device} of train gpt: where each worker computes. */
    enum DeviceKind implements dev.latent.Choice {
        CPU(dev.latent.tensor.Device.CPU), CUDA(dev.latent.tensor.Device.CUDA);
        final dev.latent.tensor.Device device;
        DeviceKind(dev.latent.tensor.Device device) { this.device = device; }
        @Override public String toString() { return id(); }
    }

    /** {@code --collective} of train gpt: what all-reduces the gradients ({@link Collective}). */
    enum CollectiveKind implements dev.latent.Choice {
        TCP(Collective.TCP), NCCL(Collective.NCCL), AUTO(Collective.AUTO);
        final Collective collective;
        CollectiveKind(Collective c) { this.collective = c; }
        @Override public String toString() { return id(); }
    }

    /** {@code --tokenizer}: its spellings are the constants' toString, as {@code latent train gpt}'s. */
    enum TokenizerKind implements dev.latent.Choice {
        CHAR, BPE;
        @Override public String toString() { return id(); }
    }

    @Command(name = "train", mixinStandardHelpOptions = true, subcommands = {Gpt.class, Dcgan.class, WganGp.class, RealNvp.class, Glow.class},
            description = "Train a model on Spark.")
    static final class Train implements Runnable {
        @Override
        public void run() { new CommandLine(this).usage(System.out); }
    }

    @Command(name = "gpt", mixinStandardHelpOptions = true, description = "Data-parallel GPT training on Spark.")
    static final class Gpt implements Callable<Integer> {
        @Option(names = "--spark", description = "Spark master: local[N], spark://host:7077, k8s://..., yarn; 'submit' keeps spark-submit's") String master;
        @Option(names = "--workers", description = "barrier tasks (default: N of local[N], else required)") Integer workers;
        @Option(names = "--data", description = "UTF-8 text file (default: Moby-Dick)") Path data;
        @Option(names = "--tokenizer", description = "one of ${COMPLETION-CANDIDATES}: characters, or byte-pair merges learned from --data (default: ${DEFAULT-VALUE})") TokenizerKind tokenizer = TokenizerKind.CHAR;
        @Option(names = "--bpe-vocab", description = "BPE vocabulary size (default: ${DEFAULT-VALUE})") int bpeVocab = 512;
        @Option(names = "--layers", description = "transformer blocks (default: ${DEFAULT-VALUE})") int layers = 4;
        @Option(names = "--heads", description = "attention heads per block (must divide --dim) (default: ${DEFAULT-VALUE})") int heads = 4;
        @Option(names = "--dim", description = "embedding width (default: ${DEFAULT-VALUE})") int dim = 128;
        @Option(names = "--context", description = "context length in tokens (default: ${DEFAULT-VALUE})") int context = 128;
        @Option(names = "--tied", description = "tie the output head to the token embedding") boolean tied;
        @Option(names = "--batch", description = "sequences per worker per step (default: ${DEFAULT-VALUE})") int batch = 16;
        @Option(names = "--steps", description = "optimizer steps in total (a resumed run continues to this step) (default: ${DEFAULT-VALUE})") int steps = 500;
        @Option(names = "--lr", description = "peak AdamW learning rate (after the warm-up) (default: ${DEFAULT-VALUE})") double lr = 1e-3;
        @Option(names = "--min-lr", description = "learning rate at the end of the cosine decay (default: ${DEFAULT-VALUE})") double minLr = 1e-4;
        @Option(names = "--warmup", description = "linear warm-up steps (default: ${DEFAULT-VALUE})") int warmup = 50;
        @Option(names = "--weight-decay", description = "AdamW weight decay on the weight matrices (default: ${DEFAULT-VALUE})") double weightDecay = 0.1;
        @Option(names = "--clip", description = "gradient-norm clipping threshold (0: no clipping) (default: ${DEFAULT-VALUE})") double clip = 1.0;
        @Option(names = "--log-interval", description = "steps between progress lines and metrics records (default: ${DEFAULT-VALUE})") int logInterval = 10;
        @Option(names = "--checkpoint-interval", description = "save every N steps (0: only at the end) (default: ${DEFAULT-VALUE})") int checkpointInterval = 100;
        @Option(names = "--seed", description = "seed of the initial weights, the batch order and every random draw (same seed, same data, same workers: same bits) (default: ${DEFAULT-VALUE})") long seed = 1;
        @Option(names = "--threads", description = "native threads per worker JVM (default: all cores)") Integer threads;
        @Option(names = "--out", required = true, description = "output folder, on storage every executor sees") Path out;
        @Option(names = "--resume", description = "continue the run in --out from its checkpoint (weights, optimizer state, step, tokenizer, architecture)") boolean resume;
        @Option(names = "--device", description = "one of ${COMPLETION-CANDIDATES}: where each worker computes (cuda: one GPU per worker JVM) (default: ${DEFAULT-VALUE})") DeviceKind device = DeviceKind.CPU;
        @Option(names = "--collective", description = "one of ${COMPLETION-CANDIDATES}: the gradient all-reduce; auto takes NCCL for CUDA workers when every worker finds libnccl.so.2, else TCP (default: -Dlatent.collective, else auto)") CollectiveKind collective;
        @Option(names = "--overlap-bucket-mb", description = "all-reduce the gradients in buckets of this many MiB while the backward runs (0: after the whole backward; the same bits either way) (default: ${DEFAULT-VALUE})") double overlapBucketMb = OverlappedReduce.DEFAULT_BUCKET_BYTES / (double) (1 << 20);

        @Override
        public Integer call() throws Exception {
            if (master == null) throw new IllegalArgumentException("--spark MASTER is required (e.g. local[4])");
            int n = workers != null ? workers : localSlots(master);
            Path file = data != null ? data : TextData.defaultCorpus();
            String text = TextData.read(file);
            Tokenizer tok;
            int ly = layers, hd = heads, dm = dim, ctx = context;
            boolean ti = tied;
            if (resume && Files.isRegularFile(out.resolve(GptCheckpoint.FILE))) {
                try (Scope s = Scope.shared()) {
                    var l = GptCheckpoint.load(out, s);
                    tok = l.tokenizer();
                    var c = l.model().cfg;
                    ly = c.layers(); hd = c.heads(); dm = c.dim(); ctx = c.context(); ti = c.tied();
                }
            } else {
                tok = tokenizer == TokenizerKind.BPE ? BpeTokenizer.train(text, bpeVocab) : CharTokenizer.train(text);
            }
            int[] tokens = tok.encode(text);
            var job = new GptDataParallel.Job(n, batch, ly, hd, dm, ctx, ti, tok.toJson(), steps, lr, minLr, warmup, weightDecay, clip,
                    logInterval, checkpointInterval, seed, out.toAbsolutePath().toString(), resume, threads);
            if (!(overlapBucketMb >= 0) || Double.isInfinite(overlapBucketMb))
                throw new IllegalArgumentException("--overlap-bucket-mb must be >= 0 (0: off), got " + overlapBucketMb);
            job = job.withOverlap(overlapBucketMb == 0 ? 0 : Math.max(4, (long) (overlapBucketMb * (1 << 20))));
            job = job.on(device.device, collective != null ? collective.collective : Collective.fromSystem());
            SparkConf conf = new SparkConf().setAppName("latent train gpt");
            if (!master.equals("submit")) conf.setMaster(master);
            if (!conf.contains("spark.ui.enabled")) conf.set("spark.ui.enabled", "false");
            System.err.printf("spark: %s, %d workers x batch %d (global %d), %d tokens%n", master, n, batch, n * batch, tokens.length);
            long t0 = System.nanoTime();
            try (JavaSparkContext sc = new JavaSparkContext(conf)) {
                sc.setLogLevel("WARN");
                List<GptDataParallel.Result> rs = SparkGpt.train(sc, job, tokens);
                for (GptDataParallel.Result r : rs)
                    if (!r.weightsSha256().equals(rs.get(0).weightsSha256()))
                        throw new IllegalStateException("replicas diverged: rank " + r.rank() + " has other weights than rank 0");
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("workers", n);
                m.put("step", rs.get(0).step());
                m.put("loss", rs.get(0).loss());
                m.put("step_s", rs.get(0).stepSeconds());
                m.put("bytes_sent_per_worker", rs.get(0).bytesSent());
                m.put("wall_s", (System.nanoTime() - t0) / 1e9);
                m.put("weights_sha256", rs.get(0).weightsSha256());
                System.out.println(Json.object(m));
            }
            return 0;
        }

        static int localSlots(String master) {
            Matcher mt = Pattern.compile("local(?:-cluster)?\\[(\\d+)(?:,.*)?]").matcher(master);
            if (mt.matches()) return Integer.parseInt(mt.group(1));
            if (master.equals("local")) return 1;
            throw new IllegalArgumentException("--workers is required with master " + master + " (only local[N] implies it)");
        }
    }

    /** What the image families share: the Spark master, the split into workers and micro-batches, the data, the run. */
    abstract static class ImageCommand implements Callable<Integer> {
        @Option(names = "--spark", description = "Spark master: local[N], spark://host:7077, k8s://..., yarn; 'submit' keeps spark-submit's") String master;
        @Option(names = "--workers", description = "barrier tasks (default: N of local[N], else required)") Integer workers;
        @Option(names = "--micro", description = "micro-batches per step, a multiple of --workers; it (not --workers) fixes the bits (default: --workers)") Integer micro;
        @Option(names = "--batch", description = "images per micro-batch (default: ${DEFAULT-VALUE})") int batch = 16;
        @Option(names = "--steps", description = "optimizer steps (GAN: iterations) (default: ${DEFAULT-VALUE})") int steps = 1000;
        @Option(names = "--lr", description = "Adam learning rate (default: the family's)") Float lr;
        @Option(names = "--seed", description = "initialisation, shuffles, noise (default: ${DEFAULT-VALUE})") long seed = 1;
        @Option(names = "--data", description = "fashion-mnist, a folder of IDX files, or an IDX file (default: ${DEFAULT-VALUE})") String data = "fashion-mnist";
        @Option(names = "--train-limit", description = "use only the first N training images (0: all) (default: ${DEFAULT-VALUE})") int trainLimit;
        @Option(names = "--checkpoint-interval", description = "steps between checkpoints (default: ${DEFAULT-VALUE})") int checkpointInterval = 100;
        @Option(names = "--out", required = true, description = "output folder, on storage every executor sees") Path out;
        @Option(names = "--resume", description = "continue from the checkpoint in --out") boolean resume;
        @Option(names = "--threads", description = "native threads per worker JVM (default: all cores)") Integer threads;

        abstract String name();

        abstract List<GptDataParallel.Result> train(JavaSparkContext sc, int n, int m, dev.latent.data.ImageData images);

        @Override
        public Integer call() throws Exception {
            if (master == null) throw new IllegalArgumentException("--spark MASTER is required (e.g. local[4])");
            int n = workers != null ? workers : Gpt.localSlots(master), m = micro != null ? micro : n;
            if (m < n || m % n != 0) throw new IllegalArgumentException("--micro " + m + " must be a multiple of the " + n + " workers");
            dev.latent.data.ImageData images = dev.latent.data.ImageData.load(data, "train");
            if (trainLimit > 0) images = images.head(trainLimit);
            SparkConf conf = new SparkConf().setAppName("latent train " + name());
            if (!master.equals("submit")) conf.setMaster(master);
            if (!conf.contains("spark.ui.enabled")) conf.set("spark.ui.enabled", "false");
            System.err.printf("spark: %s, %d workers, %d micro-batches of %d (global %d), %d images%n", master, n, m, batch, m * batch, images.n);
            long t0 = System.nanoTime();
            try (JavaSparkContext sc = new JavaSparkContext(conf)) {
                sc.setLogLevel("WARN");
                List<GptDataParallel.Result> rs = train(sc, n, m, images);
                for (GptDataParallel.Result r : rs)
                    if (!r.weightsSha256().equals(rs.get(0).weightsSha256()))
                        throw new IllegalStateException("replicas diverged: rank " + r.rank() + " has other weights than rank 0");
                Map<String, Object> o = new LinkedHashMap<>();
                o.put("workers", n);
                o.put("micro_batches", m);
                o.put("step", rs.get(0).step());
                o.put("loss", rs.get(0).loss());
                o.put("step_s", rs.get(0).stepSeconds());
                o.put("bytes_sent_per_worker", rs.get(0).bytesSent());
                o.put("wall_s", (System.nanoTime() - t0) / 1e9);
                o.put("weights_sha256", rs.get(0).weightsSha256());
                System.out.println(Json.object(o));
            }
            return 0;
        }
    }

    @Command(name = "dcgan", mixinStandardHelpOptions = true, description = "Data-parallel DCGAN training on Spark (checkpoint: latent sample dcgan reads it).")
    static final class Dcgan extends ImageCommand {
        @Option(names = "--nz", description = "latent size (default: ${DEFAULT-VALUE})") int nz = 100;
        @Option(names = "--ngf", description = "generator width (default: ${DEFAULT-VALUE})") int ngf = 64;
        @Option(names = "--ndf", description = "discriminator width (default: ${DEFAULT-VALUE})") int ndf = 64;
        @Option(names = "--beta1", description = "Adam beta1 (default: ${DEFAULT-VALUE})") float beta1 = 0.5f;
        @Option(names = "--beta2", description = "Adam beta2 (default: ${DEFAULT-VALUE})") float beta2 = 0.999f;

        @Override String name() { return "dcgan"; }

        @Override
        List<GptDataParallel.Result> train(JavaSparkContext sc, int n, int m, dev.latent.data.ImageData images) {
            var job = new GanDataParallel.Job(n, m, batch, nz, ngf, ndf, lr != null ? lr : 2e-4f, beta1, beta2, seed, steps,
                    out.toAbsolutePath().toString(), checkpointInterval, resume, data);
            return GanDataParallel.train(sc, job, images, null, threads);
        }
    }

    @Command(name = "wgan-gp", mixinStandardHelpOptions = true, description = "Data-parallel WGAN-GP training on Spark (checkpoint: latent sample dcgan reads it).")
    static final class WganGp extends ImageCommand {
        @Option(names = "--nz", description = "latent size (default: ${DEFAULT-VALUE})") int nz = 100;
        @Option(names = "--ngf", description = "generator width (default: ${DEFAULT-VALUE})") int ngf = 64;
        @Option(names = "--ndf", description = "critic width (default: ${DEFAULT-VALUE})") int ndf = 64;
        @Option(names = "--n-critic", description = "critic steps per generator step (default: ${DEFAULT-VALUE})") int nCritic = 5;
        @Option(names = "--lambda", description = "weight of the gradient penalty (default: ${DEFAULT-VALUE})") float lambda = 10f;
        @Option(names = "--critic-norm", description = "one of ${COMPLETION-CANDIDATES}: the critic's normalisation (default: ${DEFAULT-VALUE})") CriticNorm criticNorm = CriticNorm.NONE;

        @Override String name() { return "wgan-gp"; }

        @Override
        List<GptDataParallel.Result> train(JavaSparkContext sc, int n, int m, dev.latent.data.ImageData images) {
            var job = GanDataParallel.Job.wganGp(n, m, batch, nz, ngf, ndf, lr != null ? lr : 1e-4f, nCritic, lambda, criticNorm.toString(), seed, steps,
                    out.toAbsolutePath().toString(), checkpointInterval, resume, data);
            return GanDataParallel.train(sc, job, images, null, threads);
        }
    }

    @Command(name = "realnvp", mixinStandardHelpOptions = true, description = "Data-parallel RealNVP training on Spark (checkpoint: latent sample|eval realnvp read it).")
    static final class RealNvp extends ImageCommand {
        @Option(names = "--couplings", description = "affine couplings (default: ${DEFAULT-VALUE})") int couplings = 6;
        @Option(names = "--hidden", description = "channels of each coupling net (default: ${DEFAULT-VALUE})") int hidden = 64;

        @Override String name() { return "realnvp"; }

        @Override
        List<GptDataParallel.Result> train(JavaSparkContext sc, int n, int m, dev.latent.data.ImageData images) {
            var job = FlowDataParallel.Job.realNvp(n, m, batch, couplings, hidden, lr != null ? lr : 1e-3f, seed, steps,
                    out.toAbsolutePath().toString(), checkpointInterval, resume, data);
            return FlowDataParallel.train(sc, job, images, null, threads);
        }
    }

    @Command(name = "glow", mixinStandardHelpOptions = true, description = "Data-parallel Glow training on Spark (checkpoint: latent sample|eval glow read it).")
    static final class Glow extends ImageCommand {
        @Option(names = "--levels", description = "multi-scale levels L (default: ${DEFAULT-VALUE})") int levels = 2;
        @Option(names = "--depth", description = "steps per level K (default: ${DEFAULT-VALUE})") int depth = 8;
        @Option(names = "--hidden", description = "channels of each coupling net (default: ${DEFAULT-VALUE})") int hidden = 128;

        @Override String name() { return "glow"; }

        @Override
        List<GptDataParallel.Result> train(JavaSparkContext sc, int n, int m, dev.latent.data.ImageData images) {
            var job = FlowDataParallel.Job.glow(n, m, batch, levels, depth, hidden, lr != null ? lr : 1e-3f, seed, steps,
                    out.toAbsolutePath().toString(), checkpointInterval, resume, data);
            return FlowDataParallel.train(sc, job, images, null, threads);
        }
    }
}
