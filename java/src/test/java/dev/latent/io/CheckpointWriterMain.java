package dev.latent.io;

import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptCheckpoint;
import dev.latent.tensor.Scope;

import java.nio.file.Path;
import java.util.Map;

/**
 * The child of {@link CheckpointFaultTest}: writes checkpoints of model i = 1, 2, ... (weights drawn from
 * seed i, "iteration" = i in the metadata) into args[0] forever, printing "saved i" after each, until killed.
 */
public final class CheckpointWriterMain {
    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args[0]);
        for (long i = 1; ; i++) {
            try (Scope s = Scope.shared()) {
                GptCheckpoint.save(dir, new Gpt(s, CheckpointFaultTest.CFG, i), null, CheckpointFaultTest.TOK, Map.of("iteration", i));
            }
            System.out.println("saved " + i);
            System.out.flush();
        }
    }
}
