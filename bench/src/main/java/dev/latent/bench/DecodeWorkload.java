package dev.latent.bench;

import dev.latent.io.JsonReader;
import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptConfig;
import dev.latent.models.gpt.KvDecoder;
import dev.latent.nativ.LatentNative;
import dev.latent.tensor.Scope;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * S2: KV-cache decoding of the E1-shaped GPT (vocab 65, 6 x 6 x 384, context 256, tied): B sequences with a 16-token
 * random prompt, prefilled in one step (not timed), then 128 greedy decode steps of one token per sequence, timed;
 * tokens/s = B * 128 / time, median of the repetitions. Beside it, the same loop in PyTorch (bench/reference/gpt_decode.py)
 * in the same run, and the ceiling decode at small B is bound by: every step reads all weights once, so weight bytes per
 * step / step time is graded against the STREAM triad bandwidth measured in the same run (the KV cache read per step
 * is reported too). Both weight layouts of {@link KvDecoder} are timed (in place, and packed once into k-major panels),
 * each against the same peer run.
 * <p>
 * The PyTorch peer is found as: $LATENT_TORCH_PYTHON, else the reference venv ($LATENT_REFERENCE/.venv or
 * ../shared/reference/.venv), else ../venv-torch, beside the repository; absent, the peer is skipped with the reason.
 */
public final class DecodeWorkload {
    private DecodeWorkload() {}

    static final int PROMPT = 16, TOKENS = 128;

    public static List<Map<String, Object>> run(int threads, int[] batches, int reps, boolean peer, Consumer<String> log) throws Exception {
        LatentNative nat = LatentNative.get();
        nat.setNumThreads(threads);
        GptConfig cfg = new GptConfig(65, 6, 6, 384, 256, true);
        List<Map<String, Object>> out = new ArrayList<>();
        double triad = Ceilings.triad(threads, 3);
        log.accept(String.format("decode: triad %.1f GB/s on %d thread(s)", triad, threads));
        try (Scope s = Scope.shared()) {
            Gpt m = new Gpt(s, cfg, 1);
            try (KvDecoder inPlace = new KvDecoder(m); KvDecoder packed = new KvDecoder(m, KvDecoder.Weights.PACKED)) {
                // Weights read per step: every matrix, bias and gain once, the head (= wte, tied) once; wpe one row per sequence.
                double weightBytes = 4.0 * (m.parameterCount() - (long) cfg.context() * cfg.dim());
                for (int b : batches) {
                    // K and V read per step, averaged over the timed positions (PROMPT + 1 .. PROMPT + TOKENS keys)
                    double kvBytes = 4.0 * b * cfg.layers() * 2 * cfg.dim() * (PROMPT + 1 + (TOKENS - 1) / 2.0);
                    List<Map<String, Object>> ours = new ArrayList<>();
                    for (KvDecoder d : List.of(inPlace, packed)) {
                        double step = msPerStep(d, cfg, b, reps), tps = b * 1e3 / step, wgbs = weightBytes / (step / 1e3) / 1e9;
                        Map<String, Object> rec = new LinkedHashMap<>();
                        rec.put("workload", "gpt-decode");
                        rec.put("shape", "L6 H6 C384 T256 V65 tied, prompt " + PROMPT + ", " + TOKENS + " tokens");
                        rec.put("batch", b);
                        rec.put("impl", "latent");
                        rec.put("weights", d.weights().name().toLowerCase(java.util.Locale.ROOT));
                        rec.put("isa", LatentNative.isaName(nat.isa()));
                        rec.put("threads", threads);
                        rec.put("ms_per_step", step);
                        rec.put("tokens_per_s", tps);
                        rec.put("weight_gb_per_s", wgbs);
                        rec.put("kv_gb_per_s", kvBytes / (step / 1e3) / 1e9);
                        rec.put("triad_gb_per_s", triad);
                        rec.put("pct_triad", 100 * wgbs / triad);
                        out.add(rec);
                        ours.add(rec);
                        log.accept(String.format("decode B=%d, %d thread(s), weights %s: %.3f ms/step, %.0f tokens/s; weights %.1f GB/s = %.0f%% of triad %.1f (+ KV cache %.1f GB/s)",
                                b, threads, rec.get("weights"), step, tps, wgbs, 100 * wgbs / triad, triad, kvBytes / (step / 1e3) / 1e9));
                    }
                    if (!peer) continue;
                    Map<String, Object> p = torch(threads, b, reps, log);
                    if (p == null) continue;
                    double pt = ((Number) p.get("tokens_per_s")).doubleValue(), pstep = ((Number) p.get("median_ms_per_step")).doubleValue();
                    Map<String, Object> pr = new LinkedHashMap<>(ours.get(0));
                    pr.put("impl", "pytorch " + p.get("torch"));
                    pr.remove("isa");
                    pr.remove("weights");
                    pr.put("ms_per_step", pstep);
                    pr.put("tokens_per_s", pt);
                    pr.put("weight_gb_per_s", weightBytes / (pstep / 1e3) / 1e9);
                    pr.put("kv_gb_per_s", kvBytes / (pstep / 1e3) / 1e9);
                    pr.put("pct_triad", 100 * weightBytes / (pstep / 1e3) / 1e9 / triad);
                    StringBuilder ratios = new StringBuilder();
                    for (Map<String, Object> o : ours) {
                        double speed = ((Number) o.get("tokens_per_s")).doubleValue() / pt;
                        o.put("latent_speedup", speed);
                        pr.put("latent_speedup_" + o.get("weights"), speed);
                        ratios.append(String.format(", %.2fx %s", speed, o.get("weights")));
                    }
                    out.add(pr);
                    log.accept(String.format("pytorch decode B=%d, %d thread(s): %.3f ms/step, %.0f tokens/s; latent is%s", b, threads, pstep, pt,
                            ratios.substring(1)));
                }
            }
        }
        return out;
    }

    /** B sequences, prompts prefilled (not timed), then TOKENS steps timed; the median over reps (after one warm-up), ms per step. */
    static double msPerStep(KvDecoder d, GptConfig cfg, int b, int reps) {
        double[] ms = new double[reps];
        SplittableRandom r = new SplittableRandom(1);
        for (int rep = -1; rep < reps; rep++) {
            List<KvDecoder.Sequence> seqs = new ArrayList<>();
            try {
                for (int i = 0; i < b; i++)
                    seqs.add(d.new Sequence(r.ints(PROMPT, 0, cfg.vocab()).toArray(), new KvDecoder.Settings(TOKENS + 1, 0, 0, 1, i)));
                d.step(seqs);   // the prompts, and the first token
                long t0 = System.nanoTime();
                for (int i = 0; i < TOKENS; i++) d.step(seqs);
                if (rep >= 0) ms[rep] = (System.nanoTime() - t0) / 1e6;
            } finally {
                for (KvDecoder.Sequence q : seqs) q.close();
            }
        }
        java.util.Arrays.sort(ms);
        return ms[reps / 2] / TOKENS;
    }

    /** The PyTorch python, or null with the reason logged. */
    static Path python(Consumer<String> log) {
        List<Path> tried = new ArrayList<>();
        String env = System.getenv("LATENT_TORCH_PYTHON");
        if (env != null && !env.isBlank()) tried.add(Path.of(env));
        String ref = System.getenv("LATENT_REFERENCE");
        Path home = Path.of(System.getProperty("latent.home", ".")).toAbsolutePath();
        if (ref != null && !ref.isBlank()) tried.add(Path.of(ref, ".venv", "bin", "python"));
        tried.add(home.resolve("../shared/reference/.venv/bin/python").normalize());
        tried.add(home.resolve("../venv-torch/bin/python").normalize());
        for (Path p : tried) if (Files.isExecutable(p)) return p;
        log.accept("decode: PyTorch peer not found (tried " + tried + "; set LATENT_TORCH_PYTHON)");
        return null;
    }

    private static Map<String, Object> torch(int threads, int batch, int reps, Consumer<String> log) throws IOException {
        Path py = python(log);
        Path script = Path.of(System.getProperty("latent.home", "."), "bench", "reference", "gpt_decode.py").toAbsolutePath().normalize();
        if (py == null) return null;
        if (!Files.isRegularFile(script)) {
            log.accept("decode: PyTorch peer script not found at " + script + " (set -Dlatent.home to the repository)");
            return null;
        }
        Path outFile = Files.createTempFile("latent-decode", ".json");
        try {
            ProcessBuilder pb = new ProcessBuilder(py.toString(), script.toString(), "--threads", Integer.toString(threads), "--batch",
                    Integer.toString(batch), "--prompt", Integer.toString(PROMPT), "--tokens", Integer.toString(TOKENS), "--reps",
                    Integer.toString(reps), "--out", outFile.toString()).redirectErrorStream(true);
            pb.environment().put("OMP_NUM_THREADS", Integer.toString(threads));
            pb.environment().put("MKL_NUM_THREADS", Integer.toString(threads));
            Process p = pb.start();
            String text = new String(p.getInputStream().readAllBytes());
            if (!p.waitFor(30, TimeUnit.MINUTES) || p.exitValue() != 0) throw new IOException("PyTorch decode peer failed: " + text);
            return JsonReader.parseObject(Files.readString(outFile).strip());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted");
        } finally {
            Files.deleteIfExists(outFile);
        }
    }
}
