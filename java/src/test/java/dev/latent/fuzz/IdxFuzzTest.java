package dev.latent.fuzz;

import com.code_intelligence.jazzer.junit.DictionaryEntries;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.latent.data.Idx;

import java.io.ByteArrayInputStream;
import java.io.IOException;

/**
 * Hostile IDX files (the image/label format of MNIST and Fashion-MNIST): each reads or is refused with an
 * IOException that says why; nothing else escapes, and the heap taken stays proportional to the input (a header
 * claiming 2^31 elements must fail as "truncated" without allocating its claim). Input: the raw file bytes, or,
 * after a leading 'G', the same bytes gzipped, so the decompressing path is fuzzed too.
 */
class IdxFuzzTest {
    @FuzzTest(maxDuration = "6s")
    @DictionaryEntries({"\u0000\u0000\u0008\u0003", "\u0000\u0000\r\u0001", "\u0000\u0000\u0008\u0001"})
    void read(byte[] in) throws IOException {
        byte[] file = in;
        if (in.length > 0 && in[0] == 'G') {
            var bo = new java.io.ByteArrayOutputStream();
            try (var gz = new java.util.zip.GZIPOutputStream(bo)) { gz.write(in, 1, in.length - 1); }
            file = bo.toByteArray();
        }
        Runtime rt = Runtime.getRuntime();
        long before = rt.totalMemory() - rt.freeMemory();
        try {
            java.nio.file.Path p = file == in ? null : java.nio.file.Files.createTempFile("fuzz", ".idx.gz");
            try {
                if (p != null) java.nio.file.Files.write(p, file);
                Idx idx = p != null ? Idx.read(p) : Idx.read(new ByteArrayInputStream(in), "fuzz");
                long n = 1;
                for (int d : idx.dims()) n *= d;
                long have = idx.u8() != null ? idx.u8().length : idx.f32().length;
                if (n != have) throw new AssertionError("dims " + java.util.Arrays.toString(idx.dims()) + " but " + have + " elements");
            } finally {
                if (p != null) java.nio.file.Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            Fuzz.requireMessage(e);
        }
        long after = rt.totalMemory() - rt.freeMemory();
        // The reader grows its buffer only as data arrives (gzip can inflate ~1000x, so bound by 1032 x input + slack).
        if (after - before > 1032L * in.length + (64L << 20)) throw new AssertionError("IDX read took " + (after - before) + " heap bytes for " + in.length);
    }
}
