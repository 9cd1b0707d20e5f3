package dev.latent.bench;

import dev.latent.io.JsonReader;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * PyTorch CPU as a peer, through the reference benchmark scripts (shared/reference/speed), run as a child
 * process in the same bench run. Found at $LATENT_REFERENCE, else ../shared/reference beside the repository;
 * its venv (made by its setup.sh) must exist. Never a dependency: absent, the peer is simply not reported,
 * and the bench says so.
 */
public final class TorchPeer {
    private final Path dir, python;

    private TorchPeer(Path dir, Path python) {
        this.dir = dir;
        this.python = python;
    }

    /** The peer, or null with the reason printed to stderr. */
    public static TorchPeer find() {
        String env = System.getenv("LATENT_REFERENCE");
        Path dir = env != null && !env.isBlank() ? Path.of(env) : Path.of(System.getProperty("latent.home", "."), "..", "shared", "reference").normalize();
        Path py = dir.resolve(".venv/bin/python");
        if (!Files.isRegularFile(dir.resolve("speed/bench_kernels.py")) || !Files.isExecutable(py)) {
            System.err.println("bench: PyTorch peer not found (looked for " + dir + "/speed and its .venv; set LATENT_REFERENCE)");
            return null;
        }
        return new TorchPeer(dir, py);
    }

    /** Runs {@code script} (bench_kernels.py | bench_e2e.py) for workload ids {@code only}; median ms by record id. */
    public Map<String, Double> run(String script, String only, int threads) throws IOException {
        Path out = Files.createTempFile("latent-torch", ".json");
        try {
            ProcessBuilder pb = new ProcessBuilder(python.toString(), script, "--threads", Integer.toString(threads), "--out",
                    out.toString(), "--only", only).directory(dir.resolve("speed").toFile()).redirectErrorStream(true);
            pb.environment().put("OMP_NUM_THREADS", Integer.toString(threads));
            pb.environment().put("MKL_NUM_THREADS", Integer.toString(threads));
            Process p = pb.start();
            String log = new String(p.getInputStream().readAllBytes());
            if (!p.waitFor(30, TimeUnit.MINUTES) || p.exitValue() != 0) throw new IOException("PyTorch reference failed: " + log);
            Object doc = JsonReader.parse(Files.readString(out));
            List<?> recs = doc instanceof Map<?, ?> m ? (List<?>) m.get("records") : (List<?>) doc;
            Map<String, Double> ms = new HashMap<>();
            for (Object r : recs)
                if (r instanceof Map<?, ?> rm && rm.get("median_ms") instanceof Number n) ms.put((String) rm.get("id"), n.doubleValue());
            return ms;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted");
        } finally {
            Files.deleteIfExists(out);
        }
    }
}
