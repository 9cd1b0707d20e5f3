package dev.latent.spark;

import dev.latent.data.ImageData;
import dev.latent.text.CharTokenizer;
import dev.latent.text.Tokenizer;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.File;
import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.jar.JarFile;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Worker processes (issue 20): a Spark standalone master and worker started by this test as child JVMs on
 * loopback, the worker launching one executor JVM per rank (two), this JVM the driver. Data-parallel GPT training
 * through them is bit-identical to the one-process reference, and so are RealNVP and DCGAN (micro-batches split over
 * the ranks, the k-pieces all-reduce) through the same two JVMs; then a rank's executor JVM is killed mid-run
 * ({@code Runtime.halt}, what a kill -9 or an OOM kill does to a worker): Spark fails the barrier stage, the
 * worker starts a new executor, the retried stage resumes from the last checkpoint and ends with the
 * uninterrupted run's weights. Spark needs a SPARK_HOME with a jars/ folder to launch executors: the test makes
 * one from its own class path (links, no download). Everything it starts is killed at the end.
 */
@Timeout(300)
class StandaloneClusterTest {
    static final Pattern MASTER_URL = Pattern.compile("(spark://127\\.0\\.0\\.1:\\d+)");

    /** This JVM's class path, also when surefire hides it in a manifest-only jar. */
    static List<String> classPath() throws IOException {
        List<String> out = new ArrayList<>();
        for (String e : System.getProperty("java.class.path").split(File.pathSeparator)) {
            if (e.endsWith(".jar") && Path.of(e).getFileName().toString().startsWith("surefire")) {
                try (JarFile j = new JarFile(e)) {
                    String cp = j.getManifest() == null ? null : j.getManifest().getMainAttributes().getValue("Class-Path");
                    if (cp != null)
                        for (String u : cp.trim().split("\\s+")) out.add(Path.of(URI.create(u.startsWith("file:") ? u : "file:" + u)).toString());
                }
            } else {
                out.add(e);
            }
        }
        return out;
    }

    static List<String> jvmFlags() {
        List<String> f = new ArrayList<>();
        for (String a : java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
            if (a.startsWith("--add-opens") || a.startsWith("--enable-native-access") || a.startsWith("-Djdk.reflect") || a.startsWith("-Dio.netty")
                    || a.startsWith("-XX:+IgnoreUnrecognizedVMOptions"))
                f.add(a);
        return f;
    }

    static Process start(List<String> cmd, Path log, Path sparkHome) throws IOException {
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().put("SPARK_HOME", sparkHome.toString());
        pb.environment().put("SPARK_LOCAL_IP", "127.0.0.1");
        pb.environment().put("SPARK_SCALA_VERSION", "2.13");   // the launcher otherwise looks for a source build
        return pb.start();
    }

    static String await(Path log, Pattern p, Process proc, long seconds) throws Exception {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (System.nanoTime() < end) {
            if (Files.exists(log)) {
                Matcher m = p.matcher(Files.readString(log));
                if (m.find()) return m.group(m.groupCount() >= 1 ? 1 : 0);
            }
            if (!proc.isAlive()) fail("exited early (" + proc.exitValue() + "):\n" + Files.readString(log));
            Thread.sleep(100);
        }
        fail("not within " + seconds + " s:\n" + (Files.exists(log) ? Files.readString(log) : "(no log)"));
        return null;
    }

    static void killTree(Process p) {
        if (p == null) return;
        p.descendants().forEach(ProcessHandle::destroyForcibly);
        p.destroyForcibly();
        try { p.waitFor(20, TimeUnit.SECONDS); } catch (InterruptedException e) { Thread.currentThread().interrupt(); }
    }

    @Test
    void twoExecutorJvmsTrainBitIdenticallyAndSurviveAKilledExecutor(@TempDir Path tmp) throws Exception {
        List<String> cp = classPath();
        Path home = Files.createDirectories(tmp.resolve("spark-home/jars"));
        Set<String> dirs = new LinkedHashSet<>();
        for (String e : cp) {
            Path p = Path.of(e);
            if (Files.isDirectory(p)) dirs.add(p.toAbsolutePath().toString());
            else if (e.endsWith(".jar") && Files.isRegularFile(p)) {
                Path link = home.resolve(p.getFileName());
                if (!Files.exists(link)) Files.createSymbolicLink(link, p.toAbsolutePath());
            }
        }
        Path sparkHome = home.getParent();
        Files.writeString(sparkHome.resolve("RELEASE"), "Spark jars linked by StandaloneClusterTest\n");   // jars/ is then the jars folder
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        String fullCp = String.join(File.pathSeparator, cp);
        List<String> base = new ArrayList<>(List.of(java, "-Xmx512m"));
        base.addAll(jvmFlags());
        base.addAll(List.of("-cp", fullCp));

        Process master = null, worker = null;
        JavaSparkContext sc = null;
        try {
            List<String> m = new ArrayList<>(base);
            m.addAll(List.of("org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", "0", "--webui-port", "0"));
            master = start(m, tmp.resolve("master.log"), sparkHome);
            String url = await(tmp.resolve("master.log"), MASTER_URL, master, 90);
            List<String> w = new ArrayList<>(base);
            w.addAll(List.of("org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", "2", "--memory", "2g",
                    "--webui-port", "0", "--work-dir", Files.createDirectories(tmp.resolve("work")).toString(), url));
            worker = start(w, tmp.resolve("worker.log"), sparkHome);
            await(tmp.resolve("master.log"), Pattern.compile("Registering worker"), master, 90);

            String execFlags = String.join(" ", jvmFlags()) + " -Dlatent.library.path=" + System.getProperty("latent.library.path");
            SparkConf conf = new SparkConf().setMaster(url).setAppName("latent-standalone-test")
                    .set("spark.ui.enabled", "false").set("spark.driver.host", "127.0.0.1").set("spark.driver.bindAddress", "127.0.0.1")
                    .set("spark.latent.collective.host", "127.0.0.1")
                    .set("spark.executor.cores", "1").set("spark.cores.max", "2").set("spark.executor.memory", "768m")
                    .set("spark.executor.extraJavaOptions", execFlags)
                    .set("spark.executor.extraClassPath", String.join(File.pathSeparator, dirs))
                    .set("spark.executorEnv.LATENT_MAX_ISA", System.getenv().getOrDefault("LATENT_MAX_ISA", "avx512"))
                    .set("spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures", "60")
                    .set("spark.scheduler.barrier.maxConcurrentTasksCheck.interval", "2s");
            sc = new JavaSparkContext(conf);
            sc.setLogLevel("WARN");
            // wait for both executors (a barrier stage needs its two slots at once)
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
            while (sc.sc().getExecutorIds().size() < 2 && System.nanoTime() < end) Thread.sleep(200);
            assertEquals(2, sc.sc().getExecutorIds().size(), "two executor JVMs registered");

            Tokenizer tok = CharTokenizer.train(GptReproducibilityTest.TEXT);
            int[] tokens = tok.encode(GptReproducibilityTest.TEXT);
            Path dist = tmp.resolve("dist"), ref = tmp.resolve("ref"), faulty = tmp.resolve("faulty");
            List<GptDataParallel.Result> rs = SparkGpt.train(sc, GptReproducibilityTest.job(2, 4, 0, dist, tok), tokens);
            GptDataParallel.Result one = GptDataParallel.reference(GptReproducibilityTest.job(2, 4, 0, ref, tok), tokens, false, Long.MAX_VALUE);
            assertEquals(2, rs.size());
            for (GptDataParallel.Result r : rs) assertEquals(one.weightsSha256(), r.weightsSha256(), "rank " + r.rank() + " in its own JVM");

            // a flow through the same two executor JVMs: RealNVP, 4 micro-batches per step on 2 ranks (2 each, the
            // k-pieces all-reduce) equals the one-process 4-micro-batch reference, to the bit
            long flowStart = System.nanoTime();
            ImageData images = GanFlowDataParallelTest.images();
            GptDataParallel.Result flowRef = FlowDataParallel.reference(GanFlowDataParallelTest.flow(1, 4, 3, 0, tmp.resolve("flow-ref")),
                    images, false, Long.MAX_VALUE);
            List<GptDataParallel.Result> flow = FlowDataParallel.train(sc, GanFlowDataParallelTest.flow(2, 4, 3, 0, tmp.resolve("flow")), images, null);
            assertEquals(2, flow.size());
            for (GptDataParallel.Result r : flow)
                assertEquals(flowRef.weightsSha256(), r.weightsSha256(), "RealNVP rank " + r.rank() + " in its own JVM");
            // and a GAN: DCGAN (BatchNorm per micro-batch, running statistics averaged with G's gradients), 4 micro-batches
            GptDataParallel.Result ganRef = GanDataParallel.reference(GanFlowDataParallelTest.gan(1, 4, 2, 0, tmp.resolve("gan-ref")),
                    images, false, Long.MAX_VALUE);
            List<GptDataParallel.Result> gan = GanDataParallel.train(sc, GanFlowDataParallelTest.gan(2, 4, 2, 0, tmp.resolve("gan")), images, null);
            assertEquals(2, gan.size());
            for (GptDataParallel.Result r : gan)
                assertEquals(ganRef.weightsSha256(), r.weightsSha256(), "DCGAN rank " + r.rank() + " in its own JVM");
            System.err.printf("StandaloneClusterTest: RealNVP and DCGAN through the two executor JVMs and their references: %.1f s%n",
                    (System.nanoTime() - flowStart) / 1e9);

            // rank 1's executor JVM halts at step 5 of 8 (checkpoint every 2): the retried stage resumes at step 4
            List<GptDataParallel.Result> after = SparkGpt.train(sc, GptReproducibilityTest.job(2, 8, 2, faulty, tok), tokens,
                    new SparkGpt.Fault(1, 5, true));
            GptDataParallel.Result clean = GptDataParallel.reference(GptReproducibilityTest.job(2, 8, 2, tmp.resolve("clean"), tok), tokens, false,
                    Long.MAX_VALUE);
            for (GptDataParallel.Result r : after) {
                assertEquals(8, r.step());
                assertEquals(clean.weightsSha256(), r.weightsSha256(), "rank " + r.rank() + " after its executor was killed");
            }
            assertEquals(clean.weightsSha256(), GptReproducibilityTest.checkpointHash(faulty));
            String workerLog = Files.readString(tmp.resolve("worker.log"));
            assertTrue(workerLog.contains("exited with code 137") || workerLog.contains("state FAILED") || workerLog.contains("exitStatus 137"),
                    "the worker saw an executor die:\n" + workerLog);
        } finally {
            if (sc != null) sc.stop();
            killTree(worker);
            killTree(master);
        }
    }
}
