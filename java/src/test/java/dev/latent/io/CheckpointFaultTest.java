package dev.latent.io;

import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptCheckpoint;
import dev.latent.models.gpt.GptConfig;
import dev.latent.tensor.Scope;
import dev.latent.text.CharTokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** Checkpoint writes under faults: kill -9 mid-write, a directory that refuses writes. */
class CheckpointFaultTest {
    static final CharTokenizer TOK = CharTokenizer.train("abcdefghijklmnopqrstuvwxyz .,\n");
    // ~0.95 MB per checkpoint: each write takes long enough to be cut at random points.
    static final GptConfig CFG = new GptConfig(TOK.vocabSize(), 2, 4, 96, 64, false);

    @Test
    void killMinus9DuringWritesLeavesTheLastCompleteCheckpointLoadable(@TempDir Path dir) throws Exception {
        SplittableRandom rnd = new SplittableRandom(42);
        long lastSeen = 0;
        for (int round = 0; round < 6; round++) {
            Process p = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "--enable-native-access=ALL-UNNAMED", "-Xmx256m",
                    "-Dlatent.library.path=" + System.getProperty("latent.library.path"),
                    "-cp", System.getProperty("java.class.path"), CheckpointWriterMain.class.getName(), dir.toString())
                    .redirectErrorStream(true).start();
            AtomicLong saved = new AtomicLong();
            Thread reader = Thread.ofPlatform().start(() -> {
                try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream()))) {
                    for (String l; (l = r.readLine()) != null; )
                        if (l.startsWith("saved ")) saved.set(Long.parseLong(l.substring(6)));
                } catch (IOException ignored) {
                    // the child died: that is the point
                }
            });
            // Wait until the child writes back to back (warm: ~10 ms a write, most of it in the write), then
            // kill at a random moment spanning a few writes.
            long t0 = System.nanoTime(), warm = 10 + rnd.nextInt(10);
            while (saved.get() < warm && p.isAlive() && System.nanoTime() - t0 < 60_000_000_000L) Thread.sleep(1);
            assertTrue(saved.get() >= warm, "the child wrote " + saved.get() + " checkpoints in 60 s");
            Thread.sleep(rnd.nextInt(0, 30));
            p.destroyForcibly();       // SIGKILL on Linux: no shutdown hook, no finally, mid-write
            assertTrue(p.waitFor(30, java.util.concurrent.TimeUnit.SECONDS));
            reader.join();
            long reported = saved.get();
            try (Scope s = Scope.shared()) {
                GptCheckpoint.Loaded l = GptCheckpoint.load(dir, s);
                long it = (Long) l.args().get("iteration");
                // The file is the last write that completed: the one reported, or one finished before its print.
                assertTrue(it == reported || it == reported + 1, "loaded iteration " + it + ", child reported " + reported);
                Gpt expected = new Gpt(s, CFG, it);
                var want = expected.namedParameters();
                l.model().namedParameters().forEach((k, v) -> assertArrayEquals(want.get(k).value().toArray(), v.value().toArray(), k));
                lastSeen = it;
            }
        }
        assertTrue(lastSeen >= 1);
        // Leftovers of killed writes are only temp files beside the checkpoint, never read.
        try (Stream<Path> files = Files.list(dir)) {
            List<Path> all = files.toList();
            System.out.println("kill -9 test: " + (all.size() - 1) + " of 6 kills left a temp file (cut mid-write); last good iteration " + lastSeen);
            for (Path f : all) {
                String n = f.getFileName().toString();
                assertTrue(n.equals(GptCheckpoint.FILE) || (n.startsWith(GptCheckpoint.FILE + ".") && n.endsWith(".tmp")), n);
            }
        }
    }

    @Test
    void aReadOnlyDirectoryGivesAClearErrorAndLeavesThePreviousFileAlone(@TempDir Path tmp) throws Exception {
        Path dir = Files.createDirectory(tmp.resolve("out"));
        try (Scope s = Scope.shared()) {
            Gpt m1 = new Gpt(s, CFG, 1), m2 = new Gpt(s, CFG, 2);
            GptCheckpoint.save(dir, m1, null, TOK, Map.of("iteration", 1L));
            byte[] before = Files.readAllBytes(dir.resolve(GptCheckpoint.FILE));
            Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("r-xr-xr-x"));
            try {
                Path probe = dir.resolve("probe");
                boolean refuses;
                try {
                    Files.createFile(probe);
                    Files.delete(probe);
                    refuses = false;   // root ignores permission bits
                } catch (IOException e) {
                    refuses = true;
                }
                if (refuses) {
                    IOException e = assertThrows(IOException.class, () -> GptCheckpoint.save(dir, m2, null, TOK, Map.of("iteration", 2L)));
                    assertTrue(e.getMessage().contains("could not write") && e.getMessage().contains("permission denied"), e.getMessage());
                    assertArrayEquals(before, Files.readAllBytes(dir.resolve(GptCheckpoint.FILE)), "previous checkpoint untouched");
                    try (Stream<Path> files = Files.list(dir)) {
                        assertEquals(List.of(dir.resolve(GptCheckpoint.FILE)), files.toList(), "no partial or temp file");
                    }
                }
            } finally {
                Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwxr-xr-x"));
            }
            // Running as root (CI containers), permission bits do not refuse anything; sysfs does, even to root.
            Path sys = Path.of("/sys/kernel");
            assumeTrue(Files.isDirectory(sys) && refusesWrites(sys), "no directory here refuses writes");
            List<Path> before2 = list(sys);
            IOException e = assertThrows(IOException.class, () -> GptCheckpoint.save(sys, m2, null, TOK, Map.of("iteration", 2L)));
            assertTrue(e.getMessage().contains("could not write " + sys.resolve(GptCheckpoint.FILE)), e.getMessage());
            assertTrue(e.getMessage().contains("permission denied") || e.getMessage().contains("Read-only"), e.getMessage());
            assertEquals(before2, list(sys), "nothing created");
        }
    }

    private static boolean refusesWrites(Path d) {
        try {
            Files.delete(Files.createFile(d.resolve(".latent-probe")));
            return false;
        } catch (IOException e) {
            return true;
        }
    }

    private static List<Path> list(Path d) throws IOException {
        try (Stream<Path> s = Files.list(d)) {
            return new ArrayList<>(s.sorted().toList());
        }
    }
}
