package dev.latent.spark;

import dev.latent.spark.collective.Nccl;
import dev.latent.spark.collective.Rendezvous;
import dev.latent.tensor.Device;
import dev.latent.text.CharTokenizer;
import dev.latent.text.Tokenizer;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.Supplier;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The NCCL path of CUDA workers, without a GPU: the emulated CUDA driver (libcuda_emu.so: "device" memory is host
 * memory, every kernel runs on the CPU from its .cu) and the NCCL stand-in (libnccl_emu.so, native/nccl_emu: ranks are
 * threads of this JVM, sums in rank order), both named by spark/pom.xml's surefire properties. Checks: data-parallel
 * GPT on CUDA workers through Spark (local[3]; the unique id goes through BarrierTaskContext.allGather) gives the same
 * weights, to the bit, with NCCL as with the TCP all-reduce over host copies, for N = 1, 2, 3, and NCCL served every
 * step; AUTO takes NCCL only when every rank has it, TCP otherwise, and says why; NCCL's errors are Java exceptions
 * naming the call and NCCL's error string.
 */
@Timeout(300)
class NcclTest {
    static JavaSparkContext sc;
    static Nccl emu;
    static MethodHandle allreduces, fail;

    @BeforeAll
    static void start() {
        String path = System.getProperty("latent.nccl.path");
        assertNotNull(path, "spark/pom.xml sets -Dlatent.nccl.path to the stand-in libnccl_emu.so");
        assertTrue(Files.isRegularFile(Path.of(path)), "the NCCL stand-in was not built: " + path);
        assertTrue(dev.latent.Latent.cudaAvailable(), "the emulated CUDA driver did not load: " + dev.latent.Latent.cudaDescription());
        Object o = Nccl.load(List.of(path));
        emu = assertInstanceOf(Nccl.class, o, () -> "the stand-in did not load: " + o);
        SymbolLookup lib = SymbolLookup.libraryLookup(Path.of(path), Arena.global());
        allreduces = Linker.nativeLinker().downcallHandle(lib.find("latent_nccl_emu_allreduces").orElseThrow(), FunctionDescriptor.of(JAVA_LONG));
        fail = Linker.nativeLinker().downcallHandle(lib.find("latent_nccl_emu_fail").orElseThrow(), FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
        sc = new JavaSparkContext(new SparkConf().setMaster("local[3]").setAppName("latent-nccl-test")
                .set("spark.ui.enabled", "false").set("spark.driver.host", "127.0.0.1").set("spark.driver.bindAddress", "127.0.0.1")
                .set("spark.latent.collective.host", "127.0.0.1"));
        sc.setLogLevel("WARN");
    }

    @AfterAll
    static void stop() {
        if (sc != null) sc.stop();
    }

    @AfterEach
    void restoreFinder() {
        Collective.finder = Nccl::probe;
    }

    static long calls() throws Throwable {
        return (long) allreduces.invokeExact();
    }

    static GptDataParallel.Job job(int n, Path out, Tokenizer tok, Collective c) {
        return GptReproducibilityTest.job(n, 3, 0, out, tok).on(Device.CUDA, c);
    }

    static String sameOnEveryRank(List<GptDataParallel.Result> rs, int n, String what) {
        assertEquals(n, rs.size(), what);
        for (GptDataParallel.Result r : rs) {
            assertEquals(3, r.step(), what + " rank " + r.rank());
            assertEquals(rs.get(0).weightsSha256(), r.weightsSha256(), what + ": rank " + r.rank() + " differs from rank 0");
        }
        return rs.get(0).weightsSha256();
    }

    @Test
    void ncclGivesTheTcpBitsOnCudaWorkers(@TempDir Path tmp) throws Throwable {
        Tokenizer tok = CharTokenizer.train(GptReproducibilityTest.TEXT);
        int[] tokens = tok.encode(GptReproducibilityTest.TEXT);
        List<String> hashes = new ArrayList<>();
        for (int n : new int[] {1, 2, 3}) {
            long c0 = calls();
            String tcp = sameOnEveryRank(SparkGpt.train(sc, job(n, tmp.resolve("tcp-" + n), tok, Collective.TCP), tokens), n, "TCP N=" + n);
            assertEquals(c0, calls(), "--collective tcp called NCCL");
            String nccl = sameOnEveryRank(SparkGpt.train(sc, job(n, tmp.resolve("nccl-" + n), tok, Collective.NCCL), tokens), n, "NCCL N=" + n);
            assertEquals(c0 + 3L * n, calls(), "NCCL served one all-reduce per step per rank");
            assertEquals(tcp, nccl, "N=" + n + ": NCCL and TCP all-reduce give different weights");
            assertEquals(nccl, GptReproducibilityTest.checkpointHash(tmp.resolve("nccl-" + n)), "N=" + n + ": rank 0's checkpoint");
            // and both equal the one-process reference of the same N micro-batches on CUDA
            GptDataParallel.Result ref = GptDataParallel.reference(job(n, tmp.resolve("ref-" + n), tok, Collective.AUTO), tokens, false, Long.MAX_VALUE);
            assertEquals(ref.weightsSha256(), nccl, "N=" + n + ": vs the one-process reference");
            hashes.add(nccl);
        }
        assertNotEquals(hashes.get(0), hashes.get(1), "N = 1 and 2 train on different batches: equal weights mean nothing trained");
    }

    @Test
    void autoFallsBackToTcpWithoutTheLibraryAndSaysWhy(@TempDir Path tmp) throws Throwable {
        Object missing = Nccl.load(List.of(tmp.resolve("nowhere/libnccl.so.2").toString()));
        assertInstanceOf(String.class, missing);
        assertTrue(missing.toString().contains("nowhere/libnccl.so.2"), missing.toString());
        Collective.finder = () -> missing;
        Tokenizer tok = CharTokenizer.train(GptReproducibilityTest.TEXT);
        int[] tokens = tok.encode(GptReproducibilityTest.TEXT);
        long c0 = calls();
        PrintStream was = System.err;
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        String auto;
        System.setErr(new PrintStream(err, true));
        try {
            auto = sameOnEveryRank(SparkGpt.train(sc, job(2, tmp.resolve("auto"), tok, Collective.AUTO), tokens), 2, "AUTO without NCCL");
        } finally {
            System.setErr(was);
        }
        assertEquals(c0, calls(), "no NCCL call without the library");
        String log = err.toString();
        assertTrue(log.contains("collective: TCP (host copies of the device gradients): NCCL unavailable on 2 of 2 ranks")
                && log.contains("nowhere/libnccl.so.2"), log);
        String tcp = sameOnEveryRank(SparkGpt.train(sc, job(2, tmp.resolve("tcp"), tok, Collective.TCP), tokens), 2, "TCP");
        assertEquals(tcp, auto, "the fallback is the TCP path");
        // forcing NCCL without it fails the run, naming why (Spark wraps the task's exception)
        Exception e = assertThrows(Exception.class, () -> SparkGpt.train(sc, job(2, tmp.resolve("forced"), tok, Collective.NCCL), tokens));
        String msg = String.valueOf(e.getMessage());
        for (Throwable t = e.getCause(); t != null; t = t.getCause()) msg += " / " + t.getMessage();
        assertTrue(msg.contains("--collective nccl: NCCL unavailable") && msg.contains("nowhere/libnccl.so.2"), msg);
        // CPU workers cannot take NCCL: refused when the job is made
        var iae = assertThrows(IllegalArgumentException.class, () -> GptReproducibilityTest.job(2, 3, 0, tmp, tok).on(Device.CPU, Collective.NCCL));
        assertTrue(iae.getMessage().contains("needs CUDA workers"), iae.getMessage());
    }

    /** Runs choose on n in-process ranks (threads), rank r finding finders[r]. */
    static List<Collective.Choice> choose(Collective want, List<Supplier<Object>> finders) throws Exception {
        int n = finders.size();
        Rendezvous[] rv = Rendezvous.inProcess(n);
        ExecutorService ex = Executors.newFixedThreadPool(n);
        try {
            List<Future<Collective.Choice>> fs = new ArrayList<>();
            // the finder is global: ranks that differ read their own through a thread-local
            ThreadLocal<Supplier<Object>> mine = new ThreadLocal<>();
            Collective.finder = () -> mine.get().get();
            for (int r = 0; r < n; r++) {
                int rank = r;
                fs.add(ex.submit(() -> {
                    mine.set(finders.get(rank));
                    return Collective.choose(want, Device.CUDA, rv[rank]);
                }));
            }
            List<Collective.Choice> out = new ArrayList<>();
            for (Future<Collective.Choice> f : fs) out.add(f.get());
            return out;
        } finally {
            ex.shutdownNow();
        }
    }

    @Test
    void theRanksAgreeOnTheCollective() throws Exception {
        Supplier<Object> have = () -> emu, lack = () -> "no NCCL found (test)";
        List<Collective.Choice> all = choose(Collective.AUTO, List.of(have, have));
        for (Collective.Choice c : all) {
            assertTrue(c.nccl(), c.reason());
            assertTrue(c.reason().startsWith("NCCL: NCCL 2.21.5 (") && c.reason().contains("auto: found on every rank"), c.reason());
            c.comm().close();
        }
        // one rank without NCCL: every rank takes TCP (none may wait in ncclCommInitRank for a peer that never comes)
        for (Collective.Choice c : choose(Collective.AUTO, List.of(have, lack))) {
            assertFalse(c.nccl(), c.reason());
            assertTrue(c.reason().contains("NCCL unavailable on 1 of 2 ranks (rank 1: no NCCL found (test))"), c.reason());
        }
        var e = assertThrows(java.util.concurrent.ExecutionException.class, () -> choose(Collective.NCCL, List.of(lack, have)));
        assertInstanceOf(IllegalStateException.class, e.getCause());
        assertTrue(e.getCause().getMessage().contains("--collective nccl: NCCL unavailable on 1 of 2 ranks (rank 0: no NCCL found (test))"),
                e.getCause().getMessage());
        assertEquals("TCP: asked for (--collective tcp)", Collective.choose(Collective.TCP, Device.CUDA, null).reason());
        assertEquals("TCP: CPU workers (NCCL serves CUDA workers only)", Collective.choose(Collective.AUTO, Device.CPU, null).reason());
    }

    /**
     * Real NCCL sums in its ring's (or tree's) order, not in rank order: with the stand-in summing as a ring does,
     * N = 2 is still bit-identical to the rank-order sum (a + b = b + a in float), and N = 3 is within 2(N-1) 2^-24
     * sum |g| of it (docs/decisions.md) and differs somewhere (the check can fail).
     */
    @Test
    void ringOrderEqualsTheRankOrderSumToRounding() throws Throwable {
        MethodHandle ring = Linker.nativeLinker().downcallHandle(SymbolLookup.libraryLookup(Path.of(System.getProperty("latent.nccl.path")),
                Arena.global()).find("latent_nccl_emu_ring").orElseThrow(), FunctionDescriptor.ofVoid(JAVA_INT));
        int count = 3001;
        ring.invokeExact(1);
        try (Arena a = Arena.ofShared()) {
            for (int n : new int[] {2, 3}) {
                java.util.SplittableRandom rnd = new java.util.SplittableRandom(11 + n);
                MemorySegment[] g = new MemorySegment[n], orig = new MemorySegment[n];
                for (int r = 0; r < n; r++) {
                    g[r] = a.allocate(JAVA_FLOAT, count);
                    orig[r] = a.allocate(JAVA_FLOAT, count);
                    for (int i = 0; i < count; i++)
                        orig[r].setAtIndex(JAVA_FLOAT, i, (float) (rnd.nextGaussian() * Math.scalb(1.0, rnd.nextInt(-8, 8))));
                    g[r].copyFrom(orig[r]);
                }
                MemorySegment expect = a.allocate(JAVA_FLOAT, count);
                dev.latent.spark.collective.RankOrder.sum(orig, count, 1f, expect);
                String id = emu.uniqueId();
                ExecutorService ex = Executors.newFixedThreadPool(n);
                try {
                    List<Future<?>> fs = new ArrayList<>();
                    for (int r = 0; r < n; r++) {
                        int rank = r;
                        fs.add(ex.submit(() -> {
                            try (Nccl.Comm c = emu.join(id, rank, n)) {
                                c.allReduceSum(g[rank].address(), count);
                            }
                            return null;
                        }));
                    }
                    for (Future<?> f : fs) f.get();
                } finally {
                    ex.shutdownNow();
                }
                int differ = 0;
                for (int i = 0; i < count; i++) {
                    float e = expect.getAtIndex(JAVA_FLOAT, i), got = g[0].getAtIndex(JAVA_FLOAT, i);
                    double abs = 0;
                    for (int r = 0; r < n; r++) abs += Math.abs(orig[r].getAtIndex(JAVA_FLOAT, i));
                    for (int r = 1; r < n; r++) assertEquals(Float.floatToRawIntBits(got), Float.floatToRawIntBits(g[r].getAtIndex(JAVA_FLOAT, i)), "ranks agree");
                    assertTrue(Math.abs((double) got - e) <= 2.0 * (n - 1) * Math.scalb(1.0, -24) * abs, "N=" + n + " element " + i + ": " + got + " vs " + e);
                    if (Float.floatToRawIntBits(got) != Float.floatToRawIntBits(e)) differ++;
                }
                if (n == 2) assertEquals(0, differ, "N=2: the ring order is the rank order's bits");
                else assertTrue(differ > 0, "N=3: the ring order never differed from rank order: the stand-in ignored it");
            }
        } finally {
            ring.invokeExact(0);
        }
    }

    @Test
    void ncclErrorsAreJavaExceptions() throws Throwable {
        String id = emu.uniqueId();
        assertEquals(256, id.length(), "128 bytes, hex");
        var bad = assertThrows(Nccl.NcclException.class, () -> emu.join(id, 2, 2));
        assertEquals("ncclCommInitRank(2 ranks) at rank 2 failed: invalid argument (run with NCCL_DEBUG=WARN for details) (ncclInvalidArgument, 4)",
                bad.getMessage());
        assertThrows(IllegalArgumentException.class, () -> emu.join("abcd", 0, 1));
        // an id NCCL did not make (the stand-in checks its header; real NCCL would fail to connect)
        var forged = assertThrows(Nccl.NcclException.class, () -> emu.join("00".repeat(128), 0, 1));
        assertTrue(forged.getMessage().contains("ncclInvalidArgument"), forged.getMessage());
        try (Arena a = Arena.ofConfined(); Nccl.Comm c = emu.join(emu.uniqueId(), 0, 1)) {
            MemorySegment buf = a.allocate(JAVA_FLOAT, 5);   // the emulated device memory is host memory
            for (int i = 0; i < 5; i++) buf.setAtIndex(JAVA_FLOAT, i, i + 0.5f);
            c.allReduceSum(buf.address(), 5);
            assertEquals(4.5f, buf.getAtIndex(JAVA_FLOAT, 4), "one rank: the sum is the buffer");
            int rc = (int) fail.invokeExact(MemorySegment.ofAddress(c.address()), 6);
            assertEquals(0, rc);
            var remote = assertThrows(Nccl.NcclException.class, () -> c.allReduceSum(buf.address(), 5));
            assertEquals("NCCL communicator (asynchronous error) at rank 0 failed: remote process exited or there was a network error"
                    + " (ncclRemoteError, 6)", remote.getMessage());
            assertEquals(6, remote.code);
        }
    }
}
