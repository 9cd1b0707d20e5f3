package dev.latent.fuzz;

import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptCheckpoint;
import dev.latent.models.gpt.GptConfig;
import dev.latent.tensor.Scope;
import dev.latent.text.BpeTokenizer;
import dev.latent.text.CharTokenizer;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/** Writes the fuzzers' seed inputs into src/test/resources (run once by hand; the outputs are committed). */
public final class MakeSeeds {
    public static void main(String[] args) throws Exception {
        Path res = Path.of(args[0], "dev/latent/fuzz");
        Path st = Files.createDirectories(res.resolve("SafeTensorsFuzzTestInputs/checkpoint"));
        try (Scope s = Scope.shared()) {
            CharTokenizer ct = CharTokenizer.train("abc");
            Path tmp = Files.createTempDirectory("seed");
            GptCheckpoint.save(tmp, new Gpt(s, new GptConfig(3, 1, 1, 2, 2, true), 1), null, ct, Map.of("seed", 1));
            Files.copy(tmp.resolve(GptCheckpoint.FILE), st.resolve("tiny-char-tied"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            BpeTokenizer bt = new BpeTokenizer(new int[][] {{97, 98}, {256, 99}});
            GptCheckpoint.save(tmp, new Gpt(s, new GptConfig(258, 1, 1, 2, 2, false), 1), null, bt, Map.of());
            Files.copy(tmp.resolve(GptCheckpoint.FILE), st.resolve("tiny-bpe"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        }
        Path tk = Files.createDirectories(res.resolve("TokenizerFuzzTestInputs/load"));
        Files.writeString(tk.resolve("char"), "cab\0{\"type\":\"char\",\"code_points\":[97,98,99]}");
        Files.writeString(tk.resolve("bpe"), "abc abcd\0{\"type\":\"bpe\",\"merges\":[[97,98],[256,99],[32,257]]}");
        // GPT-2's byte-level BPE: the 256 byte symbols and three merges (written by hand in Python first; same content)
        Files.writeString(tk.resolve("gpt2"), "the theme's \uD83D\uDE00\0" + gpt2Seed());
        // Half-precision tensors, split form ('J' header NUL data): F16 1, -2 and BF16 1
        Files.write(st.resolve("split-half-precision"), concat(("J{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                + "\"b\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[4,6]}}\0").getBytes(StandardCharsets.UTF_8),
                new byte[] {0x00, 0x3C, 0x00, (byte) 0xC0, (byte) 0x80, 0x3F}));
        Path rq = Files.createDirectories(res.resolve("RequestJsonFuzzTestInputs/parse"));
        Files.write(rq.resolve("full"), ("{\"prompt\":\"The \\u00e9\",\"max_tokens\":32,\"temperature\":0.8,\"top_k\":20,\"top_p\":0.9,"
                + "\"seed\":7,\"deadline_ms\":1000}").getBytes(StandardCharsets.UTF_8));
        Files.write(rq.resolve("minimal"), "{\"prompt\":\"a\"}".getBytes(StandardCharsets.UTF_8));
    }

    /** GPT-2's byte symbols (bytes_to_unicode) + "he", "Ġt", "Ġthe" and their merges, as a tokenizer JSON. */
    private static String gpt2Seed() {
        java.util.List<String> vocab = new java.util.ArrayList<>();
        int n = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
            vocab.add(String.valueOf(printable ? (char) b : (char) (256 + n++)));
        }
        vocab.addAll(java.util.List.of("he", "\u0120t", "\u0120the"));
        return new dev.latent.text.Gpt2Tokenizer(vocab, java.util.List.of(new String[] {"h", "e"}, new String[] {"\u0120", "t"},
                new String[] {"\u0120t", "he"})).toJson();
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] c = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }
}
