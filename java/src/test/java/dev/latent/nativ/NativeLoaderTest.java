package dev.latent.nativ;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.*;

class NativeLoaderTest {
    private static Path nativeJarDir() {
        return Path.of(System.getProperty("latent.test.nativejar"));
    }

    private static ClassLoader jarLoader() throws Exception {
        return new URLClassLoader(new URL[] {nativeJarDir().toUri().toURL()}, null);
    }

    @Test
    void loadsTheBuiltLibraryAndHandshakes() {
        LatentNative n = LatentNative.get();
        assertEquals(LatentNative.ABI_VERSION, n.abiVersionCritical());
        assertTrue(n.numThreads() >= 1);
    }

    @Test
    void extractsFromTheClasspathConcurrentlyAndVerifiesTheChecksum(@TempDir Path cache) throws Exception {
        ClassLoader cl = jarLoader();
        ExecutorService ex = Executors.newFixedThreadPool(4);
        List<Future<Path>> fs = new ArrayList<>();
        for (int i = 0; i < 8; i++) fs.add(ex.submit((Callable<Path>) () -> NativeLoader.extract(cl, cache)));
        Path first = fs.get(0).get();
        for (Future<Path> f : fs) assertEquals(first, f.get());
        ex.shutdown();
        byte[] lib = Files.readAllBytes(first);
        assertEquals(first.getParent().getFileName().toString(), NativeLoader.sha256(lib));
        // No temp files left behind.
        try (var s = Files.list(first.getParent())) { assertEquals(1, s.count()); }
        // The extracted file really loads and answers the handshake.
        try (Arena arena = Arena.ofShared()) {
            assertEquals(LatentNative.ABI_VERSION, LatentNative.open(first, arena).abiVersionCritical());
        }
        // A corrupted cache file is detected and replaced.
        Files.write(first, new byte[] {1, 2, 3});
        Path again = NativeLoader.extract(cl, cache);
        assertArrayEquals(lib, Files.readAllBytes(again));
    }

    @Test
    void wrongAbiVersionGivesAClearError() {
        Path bad = Path.of(System.getProperty("latent.test.badabi"));
        assertTrue(Files.exists(bad), "test fixture missing: " + bad);
        try (Arena arena = Arena.ofShared()) {
            UnsatisfiedLinkError e = assertThrows(UnsatisfiedLinkError.class, () -> LatentNative.open(bad, arena));
            assertTrue(e.getMessage().contains("ABI mismatch") && e.getMessage().contains("1001"), e.getMessage());
        }
    }

    @Test
    void missingLibrarySaysWhatItTried() {
        String saved = System.getProperty("latent.library.path");
        try {
            System.setProperty("latent.library.path", "/nonexistent/liblatent.so");
            UnsatisfiedLinkError e = assertThrows(UnsatisfiedLinkError.class,
                    () -> NativeLoader.locate(new URLClassLoader(new URL[0], null)));
            assertTrue(e.getMessage().contains("/nonexistent/liblatent.so") && e.getMessage().contains("classpath resource"), e.getMessage());
        } finally {
            System.setProperty("latent.library.path", saved);
        }
    }

    @Test
    void gemmDescriptorLayoutMatchesC() {
        long[] info = LatentNative.get().structInfo(0, 14);
        assertEquals(LatentNative.GEMM_DESC.byteSize(), info[0], "sizeof(lt_gemm_desc)");
        var names = new String[] {"trans_a", "trans_b", "m", "n", "k", "alpha", "beta", "lda", "ldb", "ldc", "batch",
                "stride_a", "stride_b", "stride_c"};
        for (int i = 0; i < names.length; i++)
            assertEquals(LatentNative.GEMM_DESC.byteOffset(java.lang.foreign.MemoryLayout.PathElement.groupElement(names[i])),
                    info[i + 1], "offsetof(lt_gemm_desc, " + names[i] + ")");
    }

    @Test
    void otherDescriptorLayoutsMatchC() {
        LatentNative n = LatentNative.get();
        String[][] fields = {
                {"b", "nh", "t", "hs", "causal", "scale"},
                {"lr", "beta1", "beta2", "eps", "weight_decay", "grad_scale", "step"},
                {"rank", "pad_", "shape", "src_stride", "dst_stride"},
                {"n", "c", "h", "w", "k", "r", "s", "oh", "ow", "stride_h", "stride_w", "pad_h", "pad_w"},
                {"rows", "nh", "hs", "ldq", "ldkv", "ldo", "scale", "pad_"}};
        java.lang.foreign.StructLayout[] layouts = {LatentNative.ATTENTION_DESC, LatentNative.ADAMW_DESC, LatentNative.COPY_DESC,
                LatentNative.CONV2D_DESC, LatentNative.ATTENTION_DECODE_DESC};
        for (int which = 1; which <= 5; which++) {
            long[] info = n.structInfo(which, fields[which - 1].length);
            var layout = layouts[which - 1];
            assertEquals(layout.byteSize(), info[0], "sizeof " + layout.name().orElseThrow());
            for (int i = 0; i < fields[which - 1].length; i++)
                assertEquals(layout.byteOffset(java.lang.foreign.MemoryLayout.PathElement.groupElement(fields[which - 1][i])),
                        info[i + 1], layout.name().orElseThrow() + "." + fields[which - 1][i]);
        }
    }

    @Test
    void philoxKnownAnswersFromRandom123() {
        LatentNative n = LatentNative.get();
        // philox4x32 10 lines of Random123's tests/kat_vectors: ctr[4] key[2] -> out[4]
        assertArrayEquals(new int[] {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}, n.philox4x32_10(new int[4], new int[2]));
        assertArrayEquals(new int[] {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
                n.philox4x32_10(new int[] {-1, -1, -1, -1}, new int[] {-1, -1}));
        assertArrayEquals(new int[] {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
                n.philox4x32_10(new int[] {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, new int[] {0xa4093822, 0x299f31d0}));
    }

    @Test
    void isaCapFromTheEnvironmentIsHonoured() {
        LatentNative n = LatentNative.get();
        String cap = System.getenv("LATENT_MAX_ISA");
        if ("ref".equals(cap)) {
            assertEquals(LatentNative.ISA_REF, n.isa());
            assertTrue(n.isaReason().contains("LATENT_MAX_ISA"), n.isaReason());
        } else if ("avx2".equals(cap)) {   // a cap below what the CPU has (an AVX-512 machine) wins; one above changes nothing
            assertEquals(Math.min(n.isaSupported(), LatentNative.ISA_AVX2), n.isa());
        } else {
            assertEquals(n.isaSupported(), n.isa());
        }
    }

    @Test
    void badThreadCountIsRejected() {
        assertThrows(IllegalArgumentException.class, () -> LatentNative.get().setNumThreads(0));
        NativeException e = assertThrows(NativeException.class, () -> LatentNative.get().setNumThreads(100000));
        assertTrue(e.getMessage().contains("lt_set_num_threads") && e.getMessage().contains("100000"), e.getMessage());
    }
}
