package dev.latent.cli;

import dev.latent.models.gpt.GptCheckpoint;
import dev.latent.models.gpt.GptHuggingFace;
import dev.latent.tensor.Scope;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code latent import gpt2 DIR --out CKPT}: a Hugging Face GPT-2 folder to a Latent GPT checkpoint. */
@Command(name = "import", mixinStandardHelpOptions = true, description = "Import weights from another ecosystem.",
        subcommands = {ImportCommand.Gpt2.class})
final class ImportCommand implements Runnable {
    @Override
    public void run() {
        throw new IllegalArgumentException("name a format: latent import gpt2 DIR --out CKPT (see latent import --help)");
    }

    @Command(name = "gpt2", mixinStandardHelpOptions = true,
            description = "Convert a Hugging Face GPT-2 folder (config.json, model.safetensors, vocab.json, merges.txt) to a Latent GPT "
                    + "checkpoint (weights only, tokenizer included) that 'latent sample gpt --checkpoint CKPT' uses.")
    static final class Gpt2 implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "DIR", description = "the Hugging Face model folder") Path dir;
        @Option(names = "--out", required = true, description = "the checkpoint folder to write (created if missing)") Path out;

        @Override
        public Integer call() throws Exception {
            try (Scope scope = Scope.shared()) {
                long t0 = System.nanoTime();
                GptHuggingFace.Imported im = GptHuggingFace.load(dir, scope);
                Map<String, Object> args = new LinkedHashMap<>();
                args.put("imported_from", dir.toAbsolutePath().toString());
                args.put("format", "huggingface-gpt2");
                GptCheckpoint.save(out, im.model(), null, im.tokenizer(), args);
                var c = im.model().cfg;
                System.err.printf("imported %d parameters (%d layers, %d heads, dim %d, context %d, vocab %d, %s) in %.1f s -> %s%n",
                        im.model().parameterCount(), c.layers(), c.heads(), c.dim(), c.context(), c.vocab(), c.activation().id(),
                        (System.nanoTime() - t0) / 1e9, out.resolve(GptCheckpoint.FILE));
            }
            return 0;
        }
    }
}
