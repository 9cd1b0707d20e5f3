package dev.latent.cli;

import dev.latent.io.SafeTensors;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import java.util.zip.GZIPOutputStream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The hostile-input suite of issue 17: a table of command lines (in-process through {@link Main#run}, no JVM per case),
 * each with its expected exit status and a fragment its one-line message must hold; every file under the fixture
 * folder (an existing GPT run, which most cases also name as --out, the data files, the forged checkpoints and
 * images) must be byte-for-byte unchanged afterwards, and no file may appear.
 * Every case must also answer without a stack trace and without the word "null". Outcome classes (exit status):
 * 2 usage (unknown option, malformed or missing value), 1 refused input (a range, a file, a size, a folder), 3 a
 * diverged run; a few cases check that a well-formed request still succeeds (0). docs/hostile-inputs.md lists them.
 */
class HostileCliTest {
    static Path images, root, text, run, file, dir, oneByte, empty, nanCkpt, vaeHuge, vaePoisson, vaeSigma0, vaeNan, truncGz, idxHuge, idxBadMagic,
            notSafetensors, ganPlain, ganCond, vaePlain, vaeCond, noLabels;
    static Map<String, String> runBefore;

    /**
     * One row: a command line, what it must exit with, a fragment of its message. The files that must not change are,
     * for every row, all the files under the fixture folder (SHA-256 before and after the row; none may appear).
     */
    record Case(String name, List<String> args, int exit, String fragment) {}

    static final List<Case> CASES = new ArrayList<>();

    static void add(int exit, String fragment, String... args) {
        CASES.add(new Case(String.join(" ", args), List.of(args), exit, fragment));
    }

    @BeforeAll
    static void fixtures() throws Exception {
        root = Files.createTempDirectory("latent-hostile");
        text = root.resolve("text.txt");
        Files.writeString(text, "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money.\n".repeat(8));
        file = root.resolve("plain-file");
        Files.writeString(file, "not a folder");
        dir = Files.createDirectories(root.resolve("a-folder"));
        oneByte = root.resolve("one_byte.txt");
        Files.writeString(oneByte, "x");
        empty = root.resolve("empty.txt");
        Files.writeString(empty, "");
        run = root.resolve("run");
        int rc = quiet("train", "gpt", "--data", text.toString(), "--out", run.toString(), "--steps", "4", "--layers", "1", "--heads", "2",
                "--dim", "16", "--context", "8", "--batch", "2", "--eval-interval", "2", "--eval-batches", "1", "--log-interval", "1",
                "--checkpoint-interval", "2", "--sample-tokens", "0");
        assertEquals(0, rc, "the fixture run trains");
        notSafetensors = root.resolve("not.safetensors");
        Files.writeString(notSafetensors, "{\"hello\": 1}");
        try (Scope s = Scope.confined()) {
            var l = SafeTensors.read(run.resolve("checkpoint.safetensors"), s);
            Map<String, Tensor> t = new LinkedHashMap<>(l.tensors());
            Tensor w = t.get(t.keySet().iterator().next());
            w.segment().setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, 0, Float.NaN);
            nanCkpt = root.resolve("nan.safetensors");
            SafeTensors.write(nanCkpt, t, l.metadata());
            Tensor small = Tensor.of(s, new float[] {1, 2, 3, 4}, 4);
            vaeHuge = vae(s, small, "{\"data\":\"x\",\"latent\":2147483647,\"likelihood\":\"bernoulli\",\"sigma\":0.1}", "vae-huge");
            vaePoisson = vae(s, small, "{\"data\":\"x\",\"latent\":2,\"likelihood\":\"poisson\",\"sigma\":0.1}", "vae-poisson");
            vaeSigma0 = vae(s, small, "{\"data\":\"x\",\"latent\":2,\"likelihood\":\"gaussian\",\"sigma\":0}", "vae-sigma0");
            Tensor nan = Tensor.of(s, new float[] {1, Float.POSITIVE_INFINITY, 3, 4}, 4);
            vaeNan = vae(s, nan, "{\"data\":\"x\",\"latent\":2,\"likelihood\":\"bernoulli\",\"sigma\":0.1}", "vae-nan");
        }
        // a gzip IDX cut in the middle of its data, a header claiming 2^31-1 x 28 x 28, a wrong magic
        Path good = root.resolve("good-idx");
        ByteBuffer b = ByteBuffer.allocate(16 + 10 * 28 * 28).putInt(0x803).putInt(10).putInt(28).putInt(28);
        ByteArrayOutputStream gz = new ByteArrayOutputStream();
        try (GZIPOutputStream z = new GZIPOutputStream(gz)) { z.write(b.array()); }
        byte[] all = gz.toByteArray();
        truncGz = root.resolve("train-images-idx3-ubyte.gz");
        Files.write(truncGz, java.util.Arrays.copyOf(all, all.length / 2));
        idxHuge = root.resolve("huge-idx3-ubyte");
        Files.write(idxHuge, ByteBuffer.allocate(16).putInt(0x803).putInt(Integer.MAX_VALUE).putInt(28).putInt(28).array());
        idxBadMagic = root.resolve("bad-idx3-ubyte");
        Files.write(idxBadMagic, new byte[] {1, 2, 3, 4, 5, 6, 7, 8});
        images = Files.createDirectories(root.resolve("images"));
        dev.latent.SyntheticImages.write(images, "train", 8, 1);
        dev.latent.SyntheticImages.write(images, "t10k", 8, 2);
        // issue 21: tiny unconditional and conditional DCGAN (8 classes: the labels 0..7 of the 8 images) and VAE (10) runs,
        // and a labelled set's images without their labels
        ganPlain = root.resolve("gan-plain");
        ganCond = root.resolve("gan-cond");
        vaePlain = root.resolve("vae-plain");
        vaeCond = root.resolve("vae-cond");
        for (Path g : new Path[] {ganPlain, ganCond}) {
            List<String> a = new ArrayList<>(List.of("train", "dcgan", "--data", images.toString(), "--out", g.toString(), "--iters", "1",
                    "--batch", "4", "--nz", "4", "--ngf", "4", "--ndf", "4", "--quiet"));
            if (g == ganCond) a.add("--conditional");
            assertEquals(0, quiet(a.toArray(String[]::new)), "the " + g.getFileName() + " fixture trains");
        }
        Path vaeData = Files.createDirectories(root.resolve("vae-data"));   /* the VAE's epoch pictures read 32 test images */
        dev.latent.SyntheticImages.write(vaeData, "train", 10, 1);
        dev.latent.SyntheticImages.write(vaeData, "t10k", 32, 2);
        for (Path v : new Path[] {vaePlain, vaeCond}) {
            List<String> a = new ArrayList<>(List.of("train", "vae", "--data", vaeData.toString(), "--out", v.toString(), "--epochs", "1",
                    "--batch", "4", "--latent", "2", "--iwae-n", "0", "--quiet"));
            if (v == vaeCond) a.add("--conditional");
            assertEquals(0, quiet(a.toArray(String[]::new)), "the " + v.getFileName() + " fixture trains");
        }
        noLabels = Files.createDirectories(root.resolve("no-labels"));
        dev.latent.SyntheticImages.write(noLabels, "train", 8, 1);
        dev.latent.SyntheticImages.write(noLabels, "t10k", 8, 2);
        Files.delete(noLabels.resolve("train-labels-idx1-ubyte"));
        Files.delete(noLabels.resolve("t10k-labels-idx1-ubyte"));
        runBefore = snapshot(run);
        table();
    }

    static Path vae(Scope s, Tensor t, String config, String name) throws IOException {
        Path p = root.resolve(name + ".safetensors");
        SafeTensors.write(p, Map.of("enc.fc.weight", t), Map.of("format", "latent-vae-1", "step", "1", "config", config));
        return p;
    }

    @AfterAll
    static void cleanup() throws IOException {
        if (root == null) return;
        try (Stream<Path> w = Files.walk(root)) {
            w.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
    }

    static int quiet(String... args) {
        Result r = invoke0(args);
        if (!r.exit.equals("0")) System.err.println(r.err);
        return Integer.parseInt(r.exit);
    }

    record Result(String exit, String out, String err) {}

    static Result invoke0(String... args) {
        CliCapture c = CliCapture.main(args);
        return new Result(Integer.toString(c.rc()), c.out(), c.err());
    }

    static Map<String, String> snapshot(Path d) throws IOException {
        Map<String, String> m = new TreeMap<>();
        try (Stream<Path> w = Files.walk(d)) {
            for (Path p : w.filter(Files::isRegularFile).toList()) {
                try {
                    m.put(d.relativize(p).toString(), HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(p))));
                } catch (java.security.NoSuchAlgorithmException e) { throw new IllegalStateException(e); }
            }
        }
        return m;
    }

    // ---------------------------------------------------------------------------------------------------------

    static String R() { return run.toString(); }

    /** train gpt on the fixture's text into the existing run folder; {@code extra} options replace the defaults. */
    static String[] gpt(String... extra) {
        Map<String, String> o = new LinkedHashMap<>();
        String[] base = {"--data", text.toString(), "--out", R(), "--steps", "4", "--layers", "1", "--heads", "2", "--dim", "16",
                "--context", "8", "--batch", "2", "--sample-tokens", "0"};
        for (String[] src : new String[][] {base, extra})
            for (int i = 0; i < src.length; i++) {
                boolean flag = i + 1 >= src.length || src[i + 1].startsWith("--");
                o.put(src[i], flag ? null : src[++i]);
            }
        List<String> a = new ArrayList<>(List.of("train", "gpt"));
        o.forEach((k, v) -> { a.add(k); if (v != null) a.add(v); });
        return a.toArray(String[]::new);
    }

    static String[] with(String[] base, String... extra) {
        List<String> a = new ArrayList<>(List.of(base));
        a.addAll(List.of(extra));
        return a.toArray(String[]::new);
    }

    static void table() {
        String missing = root.resolve("no-such-file.txt").toString();
        // --- train gpt: every range, against the existing run folder (which must stay as it was) ---
        String[][] gptRange = {
                {"--steps", "-1", "--steps must be >= 0"}, {"--batch", "0", "--batch must be >= 1"}, {"--batch", "-5", "--batch"},
                {"--lr", "-1", "--lr must be finite and > 0"}, {"--lr", "0", "--lr must be"}, {"--lr", "NaN", "--lr must be"},
                {"--lr", "Infinity", "--lr must be"}, {"--lr", "-Infinity", "--lr must be"}, {"--min-lr", "-1", "--min-lr"},
                {"--min-lr", "NaN", "--min-lr"}, {"--min-lr", "0.5", "--min-lr 0.5 must be <= --lr"}, {"--warmup", "-1", "--warmup"},
                {"--weight-decay", "-0.1", "--weight-decay"}, {"--weight-decay", "NaN", "--weight-decay"}, {"--weight-decay", "Infinity", "--weight-decay"},
                {"--clip", "NaN", "--clip must be finite and >= 0"}, {"--clip", "-1", "--clip"}, {"--clip", "Infinity", "--clip"},
                {"--eval-interval", "0", "--eval-interval"}, {"--eval-interval", "-3", "--eval-interval"}, {"--eval-batches", "0", "--eval-batches"},
                {"--log-interval", "0", "--log-interval"}, {"--checkpoint-interval", "-1", "--checkpoint-interval"},
                {"--stop-after", "-1", "--stop-after must be >= 0"}, {"--sample-tokens", "-1", "--sample-tokens"},
                {"--sample-tokens", "1000000000", "over the limit"}, {"--layers", "0", "--layers"}, {"--layers", "-1", "--layers"},
                {"--heads", "0", "--heads"}, {"--dim", "0", "--dim"}, {"--dim", "-16", "--dim"}, {"--context", "0", "--context"},
                {"--heads", "3", "divisible by --heads 3"}, {"--bpe-vocab", "0", "--bpe-vocab"}, {"--threads", "0", "--threads must be >= 1"},
                {"--threads", "-4", "--threads"},
        };
        for (String[] r : gptRange) add(1, r[2], gpt(r[0], r[1]));
        // fixed-choice options (issue 19: enums): a value outside the set is a usage error naming the option and the set;
        // the spellings are exactly the documented ones (not the enum constants' names)
        add(2, "Invalid value for option '--tokenizer': expected one of [char, bpe] but was 'word'", gpt("--tokenizer", "word"));
        add(2, "Invalid value for option '--tokenizer': expected one of [char, bpe] but was ''", gpt("--tokenizer", ""));
        add(2, "Invalid value for option '--device': expected one of [cpu, cuda] but was 'tpu'", gpt("--device", "tpu"));
        add(2, "Invalid value for option '--device': expected one of [cpu, cuda] but was 'CUDA'", gpt("--device", "CUDA"));
        add(2, "Invalid value for option '--precision': expected one of [fp32, tf32, bf16] but was 'BF16'", gpt("--precision", "BF16"));
        // sizes checked against memory before allocating: a one-line error, not an OutOfMemoryError
        add(1, "needs", gpt("--dim", "1048576", "--heads", "1", "--overwrite"));
        add(1, "needs", gpt("--layers", "1000000", "--dim", "4096", "--heads", "4", "--overwrite"));
        add(1, "needs", gpt("--context", "2000000000", "--dim", "1024", "--overwrite"));
        add(1, "needs", gpt("--batch", "2000000000", "--context", "1024", "--dim", "1024", "--heads", "4", "--overwrite"));
        // --data
        add(1, "--data " + missing + ": no such file", "train", "gpt", "--data", missing, "--out", R());
        add(1, "is a folder", "train", "gpt", "--data", dir.toString(), "--out", R());
        add(1, "too short", gpt("--overwrite", "--data", oneByte.toString()));
        add(1, "is empty", gpt("--overwrite", "--data", empty.toString()));
        add(1, "is too short", gpt("--overwrite", "--context", "2000"));
        // --out
        add(1, "already holds files", gpt());
        add(1, "is an existing file", "train", "gpt", "--data", text.toString(), "--out", file.toString());
        add(1, "is a file", "train", "gpt", "--data", text.toString(), "--out", file.resolve("sub").toString());
        add(1, "--resume and --overwrite", gpt("--resume", "--overwrite"));
        add(1, "no checkpoint in", "train", "gpt", "--data", text.toString(), "--out", dir.toString(), "--resume");
        add(1, "past --steps 2", gpt("--resume", "--steps", "2"));
        add(1, "--layers 2 differs from the checkpoint's 1", gpt("--resume", "--layers", "2"));
        add(1, "--dim 32 differs from the checkpoint's 16", gpt("--resume", "--dim", "32"));
        add(1, "--context 16 differs", gpt("--resume", "--context", "16"));
        add(1, "--heads 4 differs", gpt("--resume", "--heads", "4"));
        add(1, "--tied differs", gpt("--resume", "--tied"));
        add(1, "--lr must be", gpt("--resume", "--lr", "-1"));
        add(1, "--clip must be", gpt("--resume", "--clip", "NaN"));
        // --- sample gpt ---
        String[][] sampleRange = {
                {"--tokens", "-1", "--tokens must be >= 0"}, {"--tokens", "1000000000", "--tokens 1000000000 is over the limit of 100000 (raise it with --max-tokens)"},
                {"--tokens", "2147483647", "over the limit"}, {"--max-tokens", "0", "--max-tokens"}, {"--top-k", "-3", "--top-k must be >= 0, got -3"},
                {"--top-p", "0", "--top-p must be in (0, 1]"}, {"--top-p", "1.5", "--top-p"}, {"--top-p", "NaN", "--top-p"}, {"--top-p", "-1", "--top-p"},
                {"--temperature", "-1", "--temperature must be finite and >= 0"}, {"--temperature", "NaN", "--temperature"},
                {"--temperature", "Infinity", "--temperature"}, {"--threads", "0", "--threads"}, {"--prompt", "", "--prompt is empty"},
        };
        for (String[] r : sampleRange)
            if (r[0].equals("--tokens")) add(1, r[2], "sample", "gpt", "--checkpoint", R(), r[0], r[1]);
            else add(1, r[2], "sample", "gpt", "--checkpoint", R(), "--tokens", "3", r[0], r[1]);
        add(1, "over the limit of 10", "sample", "gpt", "--checkpoint", R(), "--max-tokens", "10", "--tokens", "11");
        add(1, "no checkpoint at", "sample", "gpt", "--checkpoint", missing);
        add(1, "no checkpoint at", "sample", "gpt", "--checkpoint", dir.toString());
        add(1, "not.safetensors", "sample", "gpt", "--checkpoint", notSafetensors.toString());
        add(1, "NaN or infinite", "sample", "gpt", "--checkpoint", nanCkpt.toString());
        add(1, "--allow-nonfinite", "sample", "gpt", "--checkpoint", nanCkpt.toString());
        add(1, "not a Latent GPT checkpoint", "sample", "gpt", "--checkpoint", vaeHuge.toString());
        add(0, "", "sample", "gpt", "--checkpoint", R(), "--tokens", "5");
        add(0, "", "sample", "gpt", "--checkpoint", R(), "--tokens", "0");
        add(0, "", "sample", "gpt", "--checkpoint", R(), "--tokens", "5", "--top-k", "0", "--temperature", "0");
        // --- VAE ---
        String[] vae = {"train", "vae", "--data", missing, "--out", R()};
        String[][] vaeRange = {
                {"--lr", "0", "--lr must be finite and > 0"}, {"--lr", "NaN", "--lr"}, {"--lr", "-1e-3", "--lr"}, {"--beta", "-1", "--beta"},
                {"--beta", "NaN", "--beta"}, {"--sigma", "0", "--sigma must be finite and > 0"}, {"--sigma", "-1", "--sigma"}, {"--sigma", "NaN", "--sigma"},
                {"--sigma", "Infinity", "--sigma"}, {"--free-bits", "-1", "--free-bits"}, {"--free-bits", "NaN", "--free-bits"},
                {"--latent", "0", "--latent"}, {"--epochs", "0", "--epochs"}, {"--batch", "0", "--batch"}, {"--warmup", "-1", "--warmup"},
                {"--limit", "-1", "--limit"}, {"--iwae-k", "-1", "--iwae-k"}, {"--iwae-n", "-1", "--iwae-n"},
                {"--threads", "0", "--threads"}, {"--latent", "2000000000", "needs"}, {"--batch", "2000000000", "needs"},
                {"--log-interval", "0", "--log-interval"},
        };
        for (String[] r : vaeRange) add(1, r[2], with(vae, r[0], r[1]));
        add(2, "Invalid value for option '--likelihood': expected one of [bernoulli, gaussian] but was 'poisson'", with(vae, "--likelihood", "poisson"));
        add(2, "Invalid value for option '--device': expected one of [cpu, cuda] but was 'gpu'", with(vae, "--device", "gpu"));
        add(1, "no-such-file.txt", "train", "vae", "--data", missing, "--out", root.resolve("vae-new").toString());
        add(1, "already holds files", "train", "vae", "--data", images.toString(), "--out", R());
        add(1, "train-images-idx3-ubyte.gz", "train", "vae", "--data", truncGz.toString(), "--out", root.resolve("vae-t").toString());
        add(1, "truncated", "train", "vae", "--data", truncGz.toString(), "--out", root.resolve("vae-t").toString());
        add(1, "[2147483647, 28, 28]", "train", "vae", "--data", idxHuge.toString(), "--out", root.resolve("vae-h").toString());
        add(1, "not an IDX file", "train", "vae", "--data", idxBadMagic.toString(), "--out", root.resolve("vae-b").toString());
        String png = root.resolve("s.png").toString();
        add(1, "--n must be >= 1", "sample", "vae", "--checkpoint", vaeHuge.toString(), "--out", png, "--n", "0");
        add(1, "--n 1000000000 is over the limit of 10000 (raise it with --max-images)", "sample", "vae", "--checkpoint", vaeHuge.toString(), "--out", png, "--n", "1000000000");
        add(1, "--max-images", "sample", "vae", "--checkpoint", vaeHuge.toString(), "--out", png, "--max-images", "0");
        add(1, "config latent = 2147483647 cannot fit", "sample", "vae", "--checkpoint", vaeHuge.toString(), "--out", png);
        add(1, "config likelihood = \"poisson\"", "sample", "vae", "--checkpoint", vaePoisson.toString(), "--out", png);
        add(1, "config sigma = 0", "sample", "vae", "--checkpoint", vaeSigma0.toString(), "--out", png);
        add(1, "NaN or infinite", "sample", "vae", "--checkpoint", vaeNan.toString(), "--out", png);
        add(1, "config latent = 2147483647", "eval", "vae", "--checkpoint", vaeHuge.toString());
        add(1, "config likelihood", "eval", "vae", "--checkpoint", vaePoisson.toString());
        add(1, "no VAE checkpoint at", "eval", "vae", "--checkpoint", missing);
        add(1, "not a Latent VAE checkpoint", "sample", "vae", "--checkpoint", run.resolve("checkpoint.safetensors").toString(), "--out", png);
        // --- DCGAN / WGAN-GP ---
        for (String model : new String[] {"dcgan", "wgan-gp"}) {
            String[] g = {"train", model, "--data", missing, "--out", R()};
            String[][] gr = {{"--iters", "0"}, {"--batch", "0"}, {"--nz", "0"}, {"--ngf", "0"}, {"--ndf", "0"}, {"--log-interval", "0"},
                    {"--limit", "-1"}, {"--samples", "-1"}, {"--lr", "-1"}, {"--lr", "NaN"}, {"--lr", "0"}, {"--samples", "1000000000"},
                    {"--threads", "0"}};
            for (String[] r : gr) add(1, r[0], with(g, r[0], r[1]));
            add(2, "Invalid value for option '--device': expected one of [cpu, cuda] but was 'tpu'", with(g, "--device", "tpu"));
            add(1, "no-such-file.txt", "train", model, "--data", missing, "--out", root.resolve("g-" + model).toString());
            add(1, "already holds files", "train", model, "--data", images.toString(), "--out", R(), "--iters", "1");
        }
        add(1, "--n-critic", "train", "wgan-gp", "--data", missing, "--out", R(), "--n-critic", "0");
        add(1, "--lambda", "train", "wgan-gp", "--data", missing, "--out", R(), "--lambda", "-1");
        add(1, "--lambda", "train", "wgan-gp", "--data", missing, "--out", R(), "--lambda", "NaN");
        add(2, "Invalid value for option '--critic-norm': expected one of [none, layer] but was 'batch'", "train", "wgan-gp", "--data", missing, "--out", R(), "--critic-norm", "batch");
        // issue 15: --precision on every train command. bf16 runs every family where the CPU has AVX512_BF16 (the
        // command then fails on the next bad input, here the missing data); elsewhere it is refused naming
        // AVX512_BF16, before any file is read
        add(2, "Invalid value for option '--precision': expected one of [fp32, tf32, bf16] but was 'fp16'", "train", "gpt", "--data", text.toString(), "--out", R(), "--precision", "fp16");
        boolean bf16 = dev.latent.Latent.bf16UnavailableReason().isEmpty();
        for (String model : new String[] {"realnvp", "glow", "classifier", "wgan-gp", "dcgan", "vae", "pixelcnn"})
            add(1, bf16 ? "no-such-file.txt" : "AVX512_BF16", "train", model, "--data", missing, "--out", R(), "--precision", "bf16");
        add(1, bf16 ? "--hidden" : "AVX512_BF16", "train", "toy-gan", "--precision", "bf16", "--hidden", "0");
        add(1, bf16 ? "--steps" : "AVX512_BF16", "train", "flow-toy", "--out", R(), "--precision", "bf16", "--steps", "0");
        // issue 18: tf32 is CUDA-only, refused on the CPU before any file is read, for every train command
        add(1, "tf32 precision is CUDA-only", "train", "gpt", "--data", text.toString(), "--out", root.resolve("tf32-new").toString(), "--precision", "tf32", "--device", "cpu");
        // (on CUDA every one of them runs tf32 since h-cudaprec2: CudaCliTest.tf32OnCudaForEveryFamily; the toys since h-toycuda: CudaCliTest.toysOnCuda)
        for (String model : new String[] {"wgan-gp", "realnvp", "glow", "dcgan", "vae", "classifier", "pixelcnn"})
            add(1, "tf32 precision is CUDA-only", "train", model, "--data", missing, "--out", R(), "--precision", "tf32");
        add(1, "tf32 precision is CUDA-only", "train", "toy-gan", "--precision", "tf32", "--hidden", "0");
        add(1, "tf32 precision is CUDA-only", "train", "flow-toy", "--out", R(), "--precision", "tf32", "--steps", "0");
        add(1, "--n must be >= 1", "sample", "dcgan", "--checkpoint", R(), "--out", png, "--n", "0");
        add(1, "over the limit", "sample", "dcgan", "--checkpoint", R(), "--out", png, "--n", "1000000000");
        add(1, "not a Latent", "sample", "dcgan", "--checkpoint", R(), "--out", png);
        // --- issue 21: class conditioning (train --conditional, sample --class / --analogy) ---
        add(1, "--conditional needs labels", "train", "dcgan", "--data", noLabels.toString(), "--out", root.resolve("c-new").toString(), "--conditional");
        add(1, "--conditional needs labels", "train", "vae", "--data", noLabels.toString(), "--out", root.resolve("c-new").toString(), "--conditional");
        add(2, "Unknown option: '--conditional'", "train", "wgan-gp", "--data", images.toString(), "--out", root.resolve("c-new").toString(), "--conditional");
        add(1, "unconditional (trained without --conditional)", "sample", "dcgan", "--checkpoint", ganPlain.toString(), "--out", png, "--class", "0");
        add(1, "--class 8 is outside [0, 8)", "sample", "dcgan", "--checkpoint", ganCond.toString(), "--out", png, "--class", "8");
        add(1, "--class must be >= 0", "sample", "dcgan", "--checkpoint", ganCond.toString(), "--out", png, "--class", "-1");
        add(1, "unconditional (trained without --conditional)", "sample", "vae", "--checkpoint", vaePlain.toString(), "--out", png, "--class", "3");
        add(1, "it has no analogy grid", "sample", "vae", "--checkpoint", vaePlain.toString(), "--out", png, "--analogy");
        add(1, "--class 99 is outside [0, 10)", "sample", "vae", "--checkpoint", vaeCond.toString(), "--out", png, "--class", "99");
        add(1, "--class must be >= 0", "sample", "vae", "--checkpoint", vaeCond.toString(), "--out", png, "--class", "-3");
        add(1, "--class and --analogy exclude each other", "sample", "vae", "--checkpoint", vaeCond.toString(), "--out", png, "--class", "1", "--analogy");
        add(1, "over the limit", "sample", "vae", "--checkpoint", vaeCond.toString(), "--out", png, "--analogy", "--n", "5000");
        // --- toy GAN, classifier, FID ---
        add(2, "Invalid value for option '--loss': expected one of [gan, wgan-gp] but was 'lsgan'", "train", "toy-gan", "--loss", "lsgan");
        add(2, "Invalid value for option '--dist': expected one of [ring8, grid25] but was 'moons'", "train", "toy-gan", "--dist", "moons");
        add(1, "--seeds must be comma-separated integers", "train", "toy-gan", "--seeds", "1,x");
        add(1, "--steps must be >= 1", "train", "toy-gan", "--steps", "0");
        add(1, "--lr must be", "train", "toy-gan", "--lr", "NaN");
        add(1, "--hidden", "train", "toy-gan", "--hidden", "0");
        add(1, "--batch", "train", "toy-gan", "--batch", "0");
        add(1, "--n-critic", "train", "toy-gan", "--n-critic", "0");
        add(1, "--lambda", "train", "toy-gan", "--lambda", "-1");
        add(1, "already holds files", "train", "toy-gan", "--out", R(), "--steps", "1");
        add(1, "is an existing file", "train", "toy-gan", "--out", file.toString(), "--steps", "1");
        add(1, "--epochs", "train", "classifier", "--data", missing, "--out", R(), "--epochs", "0");
        add(1, "--lr must be", "train", "classifier", "--data", missing, "--out", R(), "--lr", "-1");
        add(1, "no-such-file.txt", "train", "classifier", "--data", missing, "--out", root.resolve("c").toString());
        add(1, "no-such-file.txt", "eval", "fid", "--classifier", missing, "--samples", missing);
        add(1, "--limit must be >= 0, got -1", "eval", "fid", "--classifier", missing, "--samples", missing, "--limit", "-1");
        // --- flows ---
        for (String model : new String[] {"realnvp", "glow"}) {
            String[] f = {"train", model, "--data", missing, "--out", R()};
            String[][] fr = {{"--epochs", "0"}, {"--batch", "0"}, {"--max-steps", "-1"}, {"--limit", "-1"}, {"--test-limit", "-1"},
                    {"--lr", "0"}, {"--lr", "NaN"}, {"--threads", "0"}, {"--hidden", "0"}};
            for (String[] r : fr) add(1, r[0], with(f, r[0], r[1]));
            add(1, "no-such-file.txt", "train", model, "--data", missing, "--out", root.resolve("f-" + model).toString());
            add(1, "--n must be >= 1", "sample", model, "--checkpoint", R(), "--out", png, "--n", "0");
            add(1, "over the limit", "sample", model, "--checkpoint", R(), "--out", png, "--n", "20000");
            add(1, "--temperature", "sample", model, "--checkpoint", R(), "--out", png, "--temperature", "-1");
            add(1, "--temperature", "sample", model, "--checkpoint", R(), "--out", png, "--temperature", "NaN");
            add(1, "not a Latent", "sample", model, "--checkpoint", R(), "--out", png);
            add(1, "not a Latent", "eval", model, "--checkpoint", R());
        }
        add(1, "--couplings", "train", "realnvp", "--data", missing, "--out", R(), "--couplings", "0");
        add(1, "--levels", "train", "glow", "--data", missing, "--out", R(), "--levels", "0");
        add(1, "--depth", "train", "glow", "--data", missing, "--out", R(), "--depth", "0");
        add(2, "Invalid value for option '--dist': expected one of [moons, rings] but was 'spirals'", "train", "flow-toy", "--out", R(), "--dist", "spirals");
        add(2, "Invalid value for option '--scores' (<score>): expected one of [rec, elbo, iwae] but was 'nll'", "eval", "vae-anomaly", "--checkpoint", R(), "--scores", "rec,nll");
        add(2, "Invalid value for option '--sampler': expected one of [cached, naive] but was 'Naive'", "sample", "pixelcnn", "--checkpoint", R(), "--out", R(), "--sampler", "Naive");
        // --- PixelCNN training: its --steps / --resume / --stop-after are TrainSteps' (checked after the data, before --out) ---
        String[] pix = {"train", "pixelcnn", "--data", images.toString(), "--out", R(), "--channels", "4", "--layers", "1", "--head", "4"};
        add(1, "--steps must be >= 1, got 0", with(pix, "--steps", "0"));
        add(1, "--steps must be >= 1, got -3", with(pix, "--steps", "-3"));
        add(1, "--stop-after must be >= 0, got -1", with(pix, "--stop-after", "-1"));
        add(2, "Invalid value for option '--steps'", with(pix, "--steps", "ten"));
        add(2, "Invalid value for option '--stop-after'", with(pix, "--stop-after", "1.5"));
        add(1, "--resume and --overwrite", with(pix, "--resume", "--overwrite"));
        add(1, "no checkpoint in", "train", "pixelcnn", "--data", images.toString(), "--out", dir.toString(), "--resume");
        add(1, "checkpoint, this run needs latent-pixelcnn-1", with(pix, "--resume"));   // the run folder holds a GPT run
        add(1, "no-such-file.txt", "train", "pixelcnn", "--data", missing, "--out", root.resolve("pix-new").toString(), "--steps", "2");
        add(1, "--steps", "train", "flow-toy", "--out", R(), "--steps", "0");
        add(1, "already holds files", "train", "flow-toy", "--out", R(), "--steps", "1");
        add(1, "checkpoint, this run needs latent-flow-toy-1", "train", "flow-toy", "--out", R(), "--steps", "2", "--resume");   // a GPT run
        add(1, "--resume and --overwrite", "train", "flow-toy", "--out", R(), "--resume", "--overwrite");
        add(1, "--stop-after must be >= 0, got -2", "train", "flow-toy", "--out", R(), "--stop-after", "-2");
        add(1, "no checkpoint in", "train", "flow-toy", "--out", dir.toString(), "--resume");
        // --- the command line itself ---
        add(2, "Unmatched argument", "frobnicate");
        // "@PATH" is an ordinary (unmatched) argument, never a file of arguments to read (CliArgsFuzzTest found "@/")
        add(2, "Unmatched argument", "@/");
        add(2, "Missing required option", "train", "gpt", "@/no/such/file");
        add(1, "name a model", "train");
        add(1, "name a model", "sample");
        add(2, "Missing required option", "train", "gpt");
        add(2, "Missing required option", "sample", "gpt");
        add(2, "Invalid value", "train", "gpt", "--out", R(), "--steps", "1e3");
        add(2, "Invalid value", "train", "gpt", "--out", R(), "--steps", "99999999999");
        add(2, "Missing required parameter", "train", "gpt", "--out");
        // without latent-bench on the class path, `bench` says where it is instead of failing obscurely
        add(1, "latent-bench module", "bench", "gemm", "--json");
        add(0, "", "--help");
        add(0, "", "train", "gpt", "--help");
        add(0, "", "--version");
        generated();
    }

    /** For every subcommand: an unknown option, and a malformed value for every numeric option (usage errors, exit 2). */
    static void generated() {
        CommandLine cl = Main.commandLine();
        List<CommandLine> leaves = new ArrayList<>();
        collect(cl, leaves);
        for (CommandLine c : leaves) {
            // `bench` is latent-bench's (its cases: BenchCommandCliTest there); here it is the stand-in that takes anything
            if (c.getCommand() instanceof Main.BenchUnavailable) continue;
            List<String> path = new ArrayList<>(List.of(c.getCommandSpec().qualifiedName(" ").split(" ")));
            path.remove(0);   // "latent"
            List<String> u = new ArrayList<>(path);
            for (var arg : c.getCommandSpec().requiredArgs()) {   // given, so that the unknown option is the error
                if (arg instanceof OptionSpec o) u.add(o.longestName());
                u.add("x");
            }
            u.add("--no-such-option");
            CASES.add(new Case(String.join(" ", u), u, 2, "Unknown option: '--no-such-option'"));
            CommandSpec spec = c.getCommandSpec();
            for (OptionSpec o : spec.options()) {
                Class<?> t = o.type();
                Class<?> e = t.isEnum() ? t : o.auxiliaryTypes().length > 0 && o.auxiliaryTypes()[0].isEnum() ? o.auxiliaryTypes()[0] : null;
                if (e != null) {   // a fixed-choice option: a value outside the set, and a constant's NAME, are usage errors listing the set
                    String set = java.util.Arrays.toString(e.getEnumConstants());
                    String head = "Invalid value for option '" + o.longestName() + "'" + (o.isMultiValue() ? " (" + o.paramLabel() + ")" : "");
                    for (String v : new String[] {"bogus", ((Enum<?>) e.getEnumConstants()[e.getEnumConstants().length - 1]).name()}) {
                        List<String> a = new ArrayList<>(path);
                        for (var arg : spec.requiredArgs()) {   // given, so that the bad value is the error
                            if (arg instanceof OptionSpec r) a.add(r.longestName());
                            a.add("x");
                        }
                        a.add(o.longestName());
                        a.add(v);
                        CASES.add(new Case(String.join(" ", a), a, 2, head + ": expected one of " + set + " but was '" + v + "'"));
                    }
                }
                boolean numeric = t == int.class || t == Integer.class || t == long.class || t == Long.class || t == float.class
                        || t == Float.class || t == double.class || t == Double.class;
                if (!numeric) continue;
                List<String> a = new ArrayList<>(path);
                a.add(o.longestName());
                a.add("twelve");
                CASES.add(new Case(String.join(" ", a), a, 2, "Invalid value for option '" + o.longestName() + "'"));
            }
        }
    }

    static void collect(CommandLine c, List<CommandLine> out) {
        if (c.getSubcommands().isEmpty()) {
            out.add(c);
            return;
        }
        for (CommandLine s : new java.util.LinkedHashSet<>(c.getSubcommands().values())) collect(s, out);
    }

    static final List<String> LOG = java.util.Collections.synchronizedList(new ArrayList<>());

    /** The outcome of every case (exit, command line, first message line), for docs/hostile-inputs.md. */
    @AfterAll
    static void writeLog() throws IOException {
        Path target = Path.of("target");
        if (Files.isDirectory(target)) Files.write(target.resolve("hostile-inputs.tsv"), LOG);
    }

    static final Pattern NULL = Pattern.compile("\\bnull\\b");

    @TestFactory
    Stream<DynamicTest> everyCase() {
        return CASES.stream().map(c -> DynamicTest.dynamicTest(c.name(), () -> {
            Map<String, String> before = snapshot(root);
            Result r = invoke0(c.args().toArray(String[]::new));
            Map<String, String> after = snapshot(root);
            LOG.add(r.exit + "\t" + c.name().replace(root.toString(), "$T") + "\t"
                    + r.err.lines().filter(l -> l.startsWith("latent: ")).findFirst().orElse("").replace(root.toString(), "$T")
                    + "\t" + (before.equals(after) ? before.size() + " files unchanged" : "FILES CHANGED"));
            String msg = "exit " + r.exit + ", stderr:\n" + r.err;
            assertEquals(c.exit(), Integer.parseInt(r.exit), msg);
            assertTrue(r.err.contains(c.fragment()) || r.out.contains(c.fragment()), "expected '" + c.fragment() + "' in " + msg);
            assertFalse(r.err.contains("\tat ") || r.err.contains("Exception in thread"), "a stack trace: " + msg);
            assertFalse(NULL.matcher(r.err).find(), "\"null\" in the answer: " + msg);
            if (c.exit() != 0) {
                String first = r.err.lines().filter(l -> l.startsWith("latent: ")).findFirst().orElse("");
                assertFalse(first.isEmpty(), "one 'latent: ...' line: " + msg);
                assertFalse(Files.exists(Path.of(first.substring(8).strip())), "the message is more than a path: " + msg);
            }
            assertEquals(runBefore, snapshot(run), "the existing run folder changed: " + msg);
            // every file of the fixture folder (the run, the data, the checkpoints, the images) is byte-for-byte the same,
            // and no file appeared: a refused command writes nothing, a successful one here only prints
            assertEquals(before, after, "a file under the fixture folder changed or appeared: " + msg);
            try (Stream<Path> w = Files.walk(root)) {
                assertEquals(List.of(), w.filter(p -> p.toString().endsWith(".tmp")).toList(), "a stray .tmp: " + msg);
            }
        }));
    }

    @Test
    void theSuiteHasAtLeast250Cases() {
        assertTrue(CASES.size() >= 250, "cases: " + CASES.size());
        System.err.println("hostile-input suite: " + CASES.size() + " command-line cases");
    }

    @Test
    void stacktraceFlagAddsTheTrace() {
        Result r = invoke0("train", "gpt", "--out", R(), "--lr", "-1", "--stacktrace");
        assertEquals("1", r.exit);
        assertTrue(r.err.startsWith("latent: --lr must be finite and > 0, got -1"), r.err);
        assertTrue(r.err.contains("\tat dev.latent"), r.err);
    }

    @Test
    void sampleStreamsAndCapsItsOutput() {
        Result r = invoke0("sample", "gpt", "--checkpoint", R(), "--tokens", "40", "--prompt", "Call");
        assertEquals("0", r.exit, r.err);
        assertTrue(r.out.startsWith("Call"), r.out);
        assertTrue(r.err.contains("40 tokens in"), r.err);
    }

    @Test
    void anOutFolderThatIsADirectoryForAPngLeavesNoTmp() throws IOException {
        Path outDir = Files.createDirectories(root.resolve("png-dir"));
        Result r = invoke0("sample", "vae", "--checkpoint", vaeHuge.toString(), "--out", outDir.toString());
        assertEquals("1", r.exit);
        try (Stream<Path> w = Files.list(root)) {
            assertEquals(List.of(), w.filter(p -> p.toString().endsWith(".tmp")).toList());
        }
    }
}
