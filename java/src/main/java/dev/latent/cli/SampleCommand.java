package dev.latent.cli;

import dev.latent.models.gpt.GptCheckpoint;
import dev.latent.models.gpt.GptSampler;
import dev.latent.nativ.LatentNative;
import dev.latent.tensor.Scope;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/** {@code latent sample <model>}. */
@Command(name = "sample", mixinStandardHelpOptions = true, description = "Sample from a trained model.",
        subcommands = {SampleCommand.Gpt.class, GanCommands.SampleDcgan.class, VaeCommands.Sample.class, FlowCommands.Sample.class, FlowCommands.SampleGlow.class})
final class SampleCommand implements Runnable {
    @Override
    public void run() {
        throw new IllegalArgumentException("name a model: latent sample gpt ... (see latent sample --help)");
    }

    @Command(name = "gpt", mixinStandardHelpOptions = true, description = "Continue a prompt with a trained GPT.")
    static final class Gpt implements Callable<Integer> {
        @Option(names = "--checkpoint", required = true, description = "a training --out folder or a .safetensors file") Path checkpoint;
        @Option(names = "--prompt", description = "text to continue (default: a newline)") String prompt = "\n";
        @Option(names = "--tokens", description = "tokens to generate (default: ${DEFAULT-VALUE})") int tokens = 500;
        @Option(names = "--temperature", description = "0 = greedy (default: ${DEFAULT-VALUE})") double temperature = 0.8;
        @Option(names = "--top-k", description = "keep the k most likely tokens (0: all)") int topK = 0;
        @Option(names = "--top-p", description = "nucleus probability mass (default: ${DEFAULT-VALUE})") double topP = 1.0;
        @Option(names = "--seed") long seed = 1;
        @Option(names = "--threads") Integer threads;

        @Override
        public Integer call() throws Exception {
            if (threads != null) LatentNative.get().setNumThreads(threads);
            try (Scope scope = Scope.shared()) {
                GptCheckpoint.Loaded l = GptCheckpoint.load(checkpoint, scope);
                int[] ids = l.tokenizer().encode(prompt);
                var settings = new GptSampler.Settings(tokens, temperature, topK, topP, seed);
                long t0 = System.nanoTime();
                int[] out = new GptSampler(l.model()).generate(ids, settings);
                double s = (System.nanoTime() - t0) / 1e9;
                System.out.println(prompt + l.tokenizer().decode(out));
                System.err.printf("%d tokens in %.2f s (%.0f tokens/s)%n", out.length, s, out.length / s);
            }
            return 0;
        }
    }
}
