package dev.latent.cli;

import dev.latent.models.gpt.GptCheckpoint;
import dev.latent.models.gpt.KvDecoder;
import dev.latent.train.Limits;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.concurrent.Callable;

/** {@code latent sample <model>}. */
@Command(name = "sample", mixinStandardHelpOptions = true, description = "Sample from a trained model.",
        subcommands = {SampleCommand.Gpt.class, GanCommands.SampleDcgan.class, VaeCommands.Sample.class, PixelCnnCommands.Sample.class, FlowCommands.Sample.class, FlowCommands.SampleGlow.class})
final class SampleCommand implements Runnable {
    @Override
    public void run() {
        throw new IllegalArgumentException("name a model: latent sample gpt ... (see latent sample --help)");
    }

    @Command(name = "gpt", mixinStandardHelpOptions = true, description = "Continue a prompt with a trained GPT; the text is printed as it is generated.")
    static final class Gpt implements Callable<Integer> {
        @Option(names = "--prompt", description = "text to continue (default: a newline)") String prompt = "\n";
        @Option(names = "--tokens", description = "tokens to generate (default: ${DEFAULT-VALUE}; at most --max-tokens)") int tokens = 500;
        @Option(names = "--max-tokens", description = "cap on --tokens (default: ${DEFAULT-VALUE})") int maxTokens = Limits.DEFAULT_MAX_TOKENS;
        @Option(names = "--temperature", description = "0 = greedy (default: ${DEFAULT-VALUE})") double temperature = 0.8;
        @Option(names = "--top-k", description = "keep the k most likely tokens (0: all)") int topK = 0;
        @Option(names = "--top-p", description = "nucleus probability mass (default: ${DEFAULT-VALUE})") double topP = 1.0;
        @Mixin Mixins.Checkpoint checkpoint;
        @Mixin Mixins.SampleSeed seed;
        @Mixin Mixins.Threads threads;
        @Mixin Mixins.Device device;
        @Option(names = "--allow-nonfinite", description = "load a checkpoint holding NaN or infinite weights (refused by default)") boolean allowNonFinite;

        @Override
        public Integer call() throws Exception {
            Limits.atLeast("--max-tokens", maxTokens, 1);
            Limits.atMost("--tokens", tokens, 0, maxTokens, "--max-tokens");
            Limits.nonNegative("--temperature", temperature);
            Limits.atLeast("--top-k", topK, 0);
            if (!(topP > 0 && topP <= 1)) throw new IllegalArgumentException("--top-p must be in (0, 1], got " + topP);
            threads.apply();
            dev.latent.tensor.Device on = device.resolve();
            if (on == dev.latent.tensor.Device.CUDA) return onDevice();
            // Packed straight from the file, as GptGenerator.load serves by default: the same text as the service.
            GptCheckpoint.Served l = GptCheckpoint.loadPacked(checkpoint.checkpoint, allowNonFinite);
            try (KvDecoder decoder = l.decoder()) {
                int[] ids = l.tokenizer().encode(prompt);
                if (ids.length == 0) throw new IllegalArgumentException("--prompt is empty; give at least one character");
                var settings = new KvDecoder.Settings(tokens, temperature, topK, topP, seed.seed);
                stream(l.tokenizer(), ids, settings, decoder::generate);
            }
            return 0;
        }

        /** The generator both paths share: (prompt ids, settings, onToken) -> tokens. */
        interface Generate {
            int[] run(int[] ids, KvDecoder.Settings s, java.util.function.IntConsumer onToken);
        }

        /** --device cuda: the checkpoint's model on the device and DeviceKvDecoder (KV cache in device memory). */
        private Integer onDevice() throws Exception {
            try (dev.latent.tensor.Scope scope = dev.latent.tensor.Scope.shared()) {
                GptCheckpoint.Loaded l = GptCheckpoint.load(checkpoint.checkpoint, scope, allowNonFinite);
                l.model().to(scope, dev.latent.tensor.Device.CUDA);
                int[] ids = l.tokenizer().encode(prompt);
                if (ids.length == 0) throw new IllegalArgumentException("--prompt is empty; give at least one character");
                try (var decoder = new dev.latent.models.gpt.DeviceKvDecoder(l.model())) {
                    stream(l.tokenizer(), ids, new KvDecoder.Settings(tokens, temperature, topK, topP, seed.seed), decoder::generate);
                }
            }
            return 0;
        }

        private void stream(dev.latent.text.Tokenizer tok, int[] ids, KvDecoder.Settings settings, Generate decoder) {
            {
                long t0 = System.nanoTime();
                // Streamed: the text is printed (and flushed) as it is drawn, so a long run shows progress and ^C loses nothing.
                // Decoded from the start each time and printed up to its last character, which a later token may still change.
                PrintStream sys = System.out;
                sys.print(prompt);
                sys.flush();
                int[] got = new int[tokens];
                int[] n = {0}, printed = {0};
                decoder.run(ids, settings, id -> {
                    got[n[0]++] = id;
                    if (n[0] % 32 == 0) {
                        String text = tok.decode(java.util.Arrays.copyOf(got, n[0]));
                        if (text.length() - 1 > printed[0]) { sys.print(text.substring(printed[0], text.length() - 1)); printed[0] = text.length() - 1; }
                        sys.flush();
                    }
                });
                String text = tok.decode(java.util.Arrays.copyOf(got, n[0]));
                sys.println(text.substring(Math.min(printed[0], text.length())));
                sys.flush();
                double s = (System.nanoTime() - t0) / 1e9;
                System.err.printf("%d tokens in %.2f s (%.0f tokens/s)%n", n[0], s, n[0] / s);
            }
        }
    }
}
