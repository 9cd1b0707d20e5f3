package dev.latent.golden;

import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptCheckpoint;
import dev.latent.models.gpt.GptConfig;
import dev.latent.tensor.Scope;
import dev.latent.text.CharTokenizer;

import java.nio.file.Path;
import java.util.Map;

/**
 * Writes the tiny GPT whose forward pass gpt_golden.py recomputes in PyTorch (an independent
 * implementation) to make the committed golden fixture. Run once by hand; see java/src/test/resources/golden/README.
 */
public final class MakeGptGolden {
    public static void main(String[] args) throws Exception {
        CharTokenizer tok = CharTokenizer.train("abcdefghijk");
        try (Scope s = Scope.shared()) {
            Gpt m = new Gpt(s, new GptConfig(11, 2, 2, 16, 8, false), 5);
            GptCheckpoint.save(Path.of(args[0]), m, null, tok, Map.of());
        }
    }
}
