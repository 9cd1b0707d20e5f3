package dev.latent.spark;

import dev.latent.models.gpt.GptConfig;
import dev.latent.spark.collective.Rendezvous;
import dev.latent.spark.collective.TcpAllReduce;
import dev.latent.text.CharTokenizer;
import dev.latent.text.Tokenizer;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * The scale-out measurements of BENCHMARKS.md ("Scale-out"):
 * {@code allreduce [MB]}: loopback TCP bandwidth (one stream; two streams in opposite directions at once) and the
 * all-reduce of an MB-sized buffer between 2 ranks (threads) in the same run;
 * {@code gpt TEXT [steps]}: E1's GPT (6 x 6 x 384, context 256, batch 8 per worker, tied) one process outside
 * Spark, 1 worker through Spark (local[1]), 2 workers through Spark (local[2]), 1 native thread per worker;
 * {@code overlap TEXT [steps] [pairs]}: E1's GPT with 2 workers x 1 thread (local[2]), the all-reduce after the
 * backward and overlapped with it ({@link GptDataParallel.Job#withOverlap}) alternating, {@code pairs} times, in one
 * JVM; the workers log where the all-reduce time went.
 */
public final class ScaleOutBench {
    public static void main(String[] args) throws Exception {
        if (args.length == 0) throw new IllegalArgumentException("usage: allreduce [MB] | gpt TEXT [steps] | overlap TEXT [steps] [pairs]");
        if (args[0].equals("allreduce")) allReduce(args.length > 1 ? Integer.parseInt(args[1]) : 40);
        else if (args[0].equals("gpt")) gpt(Path.of(args[1]), args.length > 2 ? Integer.parseInt(args[2]) : 6);
        else if (args[0].equals("overlap")) overlap(Path.of(args[1]), args.length > 2 ? Integer.parseInt(args[2]) : 6,
                args.length > 3 ? Integer.parseInt(args[3]) : 3);
        else throw new IllegalArgumentException("unknown bench " + args[0]);
    }

    static double median(double[] a) {
        double[] s = a.clone();
        Arrays.sort(s);
        return s[s.length / 2];
    }

    static void allReduce(int mb) throws Exception {
        long bytes = (long) mb << 20;
        int reps = 10;
        ExecutorService ex = Executors.newCachedThreadPool();
        try (Arena a = Arena.ofShared()) {
            MemorySegment src = a.allocate(bytes, 64), dst = a.allocate(bytes, 64), src2 = a.allocate(bytes, 64), dst2 = a.allocate(bytes, 64);
            for (int dirs : new int[] {1, 2}) {
                double[] t = new double[reps];
                try (ServerSocketChannel ss = ServerSocketChannel.open().bind(new InetSocketAddress("127.0.0.1", 0))) {
                    SocketChannel c1 = SocketChannel.open(ss.getLocalAddress()), s1 = ss.accept();
                    for (SocketChannel ch : new SocketChannel[] {c1, s1}) {
                        ch.setOption(java.net.StandardSocketOptions.SO_SNDBUF, 4 << 20);
                        ch.setOption(java.net.StandardSocketOptions.SO_RCVBUF, 4 << 20);
                    }
                    for (int r = -2; r < reps; r++) {
                        long t0 = System.nanoTime();
                        List<Future<?>> fs = new ArrayList<>();
                        fs.add(ex.submit(() -> pump(c1, src, true)));
                        fs.add(ex.submit(() -> pump(s1, dst, false)));
                        if (dirs == 2) {
                            fs.add(ex.submit(() -> pump(s1, src2, true)));
                            fs.add(ex.submit(() -> pump(c1, dst2, false)));
                        }
                        for (Future<?> f : fs) f.get();
                        if (r >= 0) t[r] = (System.nanoTime() - t0) / 1e9;
                    }
                    c1.close();
                    s1.close();
                }
                System.out.printf(Locale.ROOT, "loopback TCP, %d stream(s) %s: %.2f GB/s per direction (median of %d x %d MB)%n",
                        dirs, dirs == 1 ? "one way" : "opposite ways at once", bytes / median(t) / 1e9, reps, mb);
            }
            Rendezvous[] rv = Rendezvous.inProcess(2);
            List<Future<double[]>> fs = new ArrayList<>();
            for (int k = 0; k < 2; k++) {
                int rank = k;
                fs.add(ex.submit(() -> {
                    try (TcpAllReduce c = TcpAllReduce.connect(rv[rank], TcpAllReduce.DEFAULT_BUCKET_BYTES, Duration.ofMinutes(1));
                         Arena b = Arena.ofConfined()) {
                        MemorySegment buf = b.allocate(bytes, 64);
                        for (long i = 0; i < bytes / 4; i++) buf.setAtIndex(JAVA_FLOAT, i, (i % 1000) * 1e-3f);
                        double[] t = new double[reps];
                        for (int r = -2; r < reps; r++) {
                            rv[rank].allGather("sync");
                            long t0 = System.nanoTime();
                            c.allReduce(buf, 0.5f);
                            if (r >= 0) t[r] = (System.nanoTime() - t0) / 1e9;
                        }
                        return new double[] {median(t), c.bytesSent() / (reps + 2.0)};
                    }
                }));
            }
            double[] r0 = fs.get(0).get(), r1 = fs.get(1).get();
            double tm = Math.max(r0[0], r1[0]);
            System.out.printf(Locale.ROOT, "all-reduce of %d MB, 2 ranks (threads) on loopback: %.1f ms; each rank sent %.1f MB;"
                    + " %.2f GB/s per rank per direction (bytes sent / time), %.2f GB/s algorithm bandwidth (buffer / time)%n",
                    mb, tm * 1e3, r0[1] / 1e6, r0[1] / tm / 1e9, bytes / tm / 1e9);
        } finally {
            ex.shutdownNow();
        }
    }

    static Object pump(SocketChannel ch, MemorySegment seg, boolean write) throws Exception {
        ByteBuffer b = seg.asByteBuffer();
        while (b.hasRemaining()) {
            if (write) ch.write(b);
            else if (ch.read(b) < 0) throw new java.io.EOFException();
        }
        return null;
    }

    static void gpt(Path text, int steps) throws Exception {
        String s = Files.readString(text);
        Tokenizer tok = CharTokenizer.train(s);
        int[] tokens = tok.encode(s);
        GptConfig cfg = new GptConfig(tok.vocabSize(), 6, 6, 384, 256, true);
        System.out.printf(Locale.ROOT, "E1 GPT %s: %,d parameters (%.1f MB of gradient), batch 8 per worker, %d steps (2 warm-up)%n",
                cfg, cfg.parameterCount(), cfg.parameterCount() * 4 / 1e6, steps);
        Path tmp = Files.createTempDirectory("latent-scaleout");
        GptDataParallel.Job one = job(1, tok, steps, tmp.resolve("plain"));
        GptDataParallel.Result plain = GptDataParallel.reference(one, tokens, false, Long.MAX_VALUE);
        System.out.printf(Locale.ROOT, "one process, no Spark, 1 thread: %.1f ms/step, %.0f tokens/s%n", plain.stepSeconds() * 1e3, 8 * 256 / plain.stepSeconds());
        for (int n : new int[] {1, 2}) {
            try (JavaSparkContext sc = new JavaSparkContext(new SparkConf().setMaster("local[" + n + "]").setAppName("scale-out")
                    .set("spark.ui.enabled", "false").set("spark.driver.host", "127.0.0.1").set("spark.driver.bindAddress", "127.0.0.1")
                    .set("spark.latent.collective.host", "127.0.0.1"))) {
                sc.setLogLevel("WARN");
                List<GptDataParallel.Result> rs = SparkGpt.train(sc, job(n, tok, steps, tmp.resolve("spark" + n)), tokens);
                double st = rs.stream().mapToDouble(GptDataParallel.Result::stepSeconds).max().orElseThrow();
                System.out.printf(Locale.ROOT, "Spark local[%d], %d worker(s) x 1 thread: %.1f ms/step, %.0f tokens/s (%.2fx the one-process rate), %.1f MB sent per worker per step%n",
                        n, n, st * 1e3, n * 8 * 256 / st, (n * 8 * 256 / st) / (8 * 256 / plain.stepSeconds()), rs.get(0).bytesSent() / 1e6 / steps);
            }
        }
    }

    static void overlap(Path text, int steps, int pairs) throws Exception {
        String s = Files.readString(text);
        Tokenizer tok = CharTokenizer.train(s);
        int[] tokens = tok.encode(s);
        Path tmp = Files.createTempDirectory("latent-overlap");
        try (JavaSparkContext sc = new JavaSparkContext(new SparkConf().setMaster("local[2]").setAppName("overlap")
                .set("spark.ui.enabled", "false").set("spark.driver.host", "127.0.0.1").set("spark.driver.bindAddress", "127.0.0.1")
                .set("spark.latent.collective.host", "127.0.0.1"))) {
            sc.setLogLevel("WARN");
            String hash = null;
            for (int p = 0; p < pairs; p++) {
                for (long bucket : new long[] {0, OverlappedReduce.DEFAULT_BUCKET_BYTES}) {
                    GptDataParallel.Job j = job(2, tok, steps, tmp.resolve("run" + p + "-" + bucket)).withOverlap(bucket);
                    List<GptDataParallel.Result> rs = SparkGpt.train(sc, j, tokens);
                    double st = rs.stream().mapToDouble(GptDataParallel.Result::stepSeconds).max().orElseThrow();
                    if (hash == null) hash = rs.get(0).weightsSha256();
                    for (GptDataParallel.Result r : rs)
                        if (!r.weightsSha256().equals(hash)) throw new IllegalStateException("weights differ between runs: " + r);
                    System.out.printf(Locale.ROOT, "pair %d, %s: %.1f ms/step, %.0f tokens/s%n", p + 1,
                            bucket == 0 ? "all-reduce after the backward" : "overlapped (" + (bucket >> 20) + " MiB buckets)", st * 1e3, 2 * 8 * 256 / st);
                }
            }
        }
    }

    static GptDataParallel.Job job(int n, Tokenizer tok, int steps, Path out) {
        return new GptDataParallel.Job(n, 8, 6, 6, 384, 256, true, tok.toJson(), steps, 6e-4, 6e-5, 2, 0.1, 1.0, 1000, 0, 1,
                out.toString(), false, 1);
    }
}
