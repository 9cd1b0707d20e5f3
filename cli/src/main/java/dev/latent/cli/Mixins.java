package dev.latent.cli;

import dev.latent.Latent;
import dev.latent.train.Limits;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Path;

/**
 * The options that several commands share with one meaning (issue 19), each declared once here with one description
 * and used as a picocli {@code @Mixin}. ({@link RunFolder}, {@link PrecisionOption}, {@link TrainSteps} and
 * {@link Resume} are the others.) A command whose option means something else keeps its own (toy-gan's optional
 * {@code --out}, bench's list of {@code --threads}).
 */
final class Mixins {
    private Mixins() {}

    /** {@code --threads}: the native kernels' thread count. */
    static final class Threads {
        @Option(names = "--threads", description = "native kernel threads (default: all cores)")
        Integer threads;

        /** Refuses a count below 1 (before anything is read or written). */
        void check() {
            if (threads != null) Limits.atLeast("--threads", threads, 1);
        }

        /** {@link #check}, then sets the native thread count when one was given. */
        void apply() {
            check();
            if (threads != null) Latent.setThreads(threads);
        }
    }

    /** {@code --quiet} of the image train commands. */
    static final class Quiet {
        @Option(names = "--quiet", description = "no progress lines on stderr (the final JSON summary is still printed)")
        boolean quiet;
    }

    /** {@code --cuda-graph} of the image train commands (vae, dcgan, wgan-gp, realnvp, glow; gpt has its own). */
    static final class CudaGraph {
        @Option(names = "--cuda-graph", description = "with --device cuda: replay each full-batch step (after two warm-up steps) from a CUDA"
                + " graph (opt-in until measured on a GPU; the same results; refused, naming why, where a step cannot be captured)")
        boolean on;
    }

    /** {@code --seed} of the train commands. */
    static final class TrainSeed {
        @Option(names = "--seed", description = "seed of the initial weights, the batch order and every random draw (same seed, same data: same bits) (default: ${DEFAULT-VALUE})")
        long seed = 1;
    }

    /** {@code --seed} of the commands that draw from a trained model (sample, eval vae-anomaly); the default is the command's. */
    static final class SampleSeed {
        @Option(names = "--seed", description = "seed of the random draws (same seed, same checkpoint: same output) (default: ${DEFAULT-VALUE})")
        long seed;

        SampleSeed() { this(1); }

        SampleSeed(long seed) { this.seed = seed; }
    }

    /** {@code --checkpoint} of the sample and eval commands. */
    static final class Checkpoint {
        @Option(names = "--checkpoint", required = true, description = "a checkpoint (.safetensors) file, or the run folder (a train command's --out) holding it")
        Path checkpoint;
    }

    /** {@code --out} and {@code --overwrite} of the train commands that write a run folder. */
    static final class Out {
        @Option(names = "--out", required = true,
                description = "run folder for what the run writes (checkpoint, metrics.jsonl, plots, images); created if missing, refused if it already holds files unless --overwrite")
        Path out;
        @Mixin RunFolder folder;

        /** Checks --out for a run that does not resume (see {@link RunFolder}). */
        void check() throws IOException {
            folder.check(out);
        }
    }

    /** {@code --device} of the train commands that can run on CUDA. */
    static final class Device {
        @Option(names = "--device", description = "one of ${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}); cuda without a usable GPU says why and runs on the CPU")
        Choices.Device device = Choices.Device.CPU;

        /**
         * The device to run on. cuda without a usable GPU prints the cached "CUDA unavailable: ..." reason to stderr and
         * gives the CPU; with one it prints the device's description.
         */
        dev.latent.tensor.Device resolve() {
            if (device == Choices.Device.CPU) return dev.latent.tensor.Device.CPU;
            if (Latent.cudaAvailable()) {
                System.err.println("device: " + Latent.cudaDescription());
                return dev.latent.tensor.Device.CUDA;
            }
            System.err.println(Latent.cudaUnavailableReason());   // probed once, cached: said once
            return dev.latent.tensor.Device.CPU;
        }
    }

    /** {@code --n} and {@code --max-images} of the image samplers. */
    static final class Images {
        @Option(names = "--n", description = "images to generate (default: ${DEFAULT-VALUE}; at most --max-images)")
        int n = 64;
        @Option(names = "--max-images", description = "cap on --n (default: ${DEFAULT-VALUE})")
        int maxImages = Limits.DEFAULT_MAX_IMAGES;

        /** --n at least 1, at most --max-images. */
        void check() {
            Limits.atLeast("--max-images", maxImages, 1);
            Limits.atMost("--n", n, 1, maxImages, "--max-images");
        }
    }

    /** {@code --data} of the eval commands: the test split, by default the one the checkpoint was trained on. */
    static final class EvalData {
        @Option(names = "--data", description = "dataset holding the test split: fashion-mnist, a folder of IDX files or PNGs, or an IDX file (default: the one the checkpoint was trained on)")
        String data;

        /** --data, or {@code trainedOn} when it was not given. */
        String or(String trainedOn) {
            return data != null ? data : trainedOn;
        }
    }

    /** {@code --epochs} of the image train commands that count in passes; the default is the command's. */
    static final class Epochs {
        @Option(names = "--epochs", description = "passes over the training set (default: ${DEFAULT-VALUE})")
        int epochs;

        Epochs() { this(1); }

        Epochs(int epochs) { this.epochs = epochs; }

        void check() {
            Limits.atLeast("--epochs", epochs, 1);
        }
    }

    /** {@code --batch} of the image train commands; the default is the command's. */
    static final class ImageBatch {
        @Option(names = "--batch", description = "images per optimizer step (default: ${DEFAULT-VALUE})")
        int batch;

        ImageBatch() { this(64); }

        ImageBatch(int batch) { this.batch = batch; }

        void check() {
            Limits.atLeast("--batch", batch, 1);
        }
    }

    /** {@code --limit} of the image train commands. */
    static final class TrainLimit {
        @Option(names = "--limit", description = "use only the first N training images, for quick runs (0: all)")
        int limit;

        void check() {
            Limits.atLeast("--limit", limit, 0);
        }
    }

    /** {@code --test-limit} of the image train commands that evaluate on the test split as they go. */
    static final class TestLimit {
        @Option(names = "--test-limit", description = "evaluate on the first N test images (0: all)")
        int testLimit;

        void check() {
            Limits.atLeast("--test-limit", testLimit, 0);
        }
    }

    /** {@code --iwae-k} and {@code --iwae-n} of train vae (its final evaluation) and eval vae. */
    static final class Iwae {
        @Option(names = "--iwae-k", paramLabel = "<iwaeK>", description = "importance samples of the IWAE bound (0: skip it) (default: ${DEFAULT-VALUE})")
        int k = 100;
        @Option(names = "--iwae-n", paramLabel = "<iwaeN>", description = "test images the IWAE bound is computed on (0: skip it) (default: ${DEFAULT-VALUE})")
        int n = 1000;

        void check() {
            Limits.atLeast("--iwae-k", k, 0);
            Limits.atLeast("--iwae-n", n, 0);
        }
    }

    /** {@code --data} of the image train commands (the classifier's, which needs labels, is its own). */
    static final class TrainData {
        @Option(names = "--data", description = "fashion-mnist (Debian's package), a folder of IDX files or PNGs, or an IDX file (default: ${DEFAULT-VALUE})")
        String data = "fashion-mnist";
    }
}
