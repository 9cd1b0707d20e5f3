package dev.latent.spark.collective;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static org.junit.jupiter.api.Assertions.*;

/** The TCP all-reduce between N threads on loopback: exact rank-order results, the 2(N-1)/N volume, failures. */
@Timeout(120)
class TcpAllReduceTest {
    interface Member { Object run(TcpAllReduce c, int rank) throws Exception; }

    /** Runs {@code body} on n members (threads), each with its own connected TcpAllReduce; returns results by rank. */
    static List<Object> group(int n, long bucketBytes, Member body) throws Exception {
        Rendezvous[] rv = Rendezvous.inProcess(n);
        ExecutorService ex = Executors.newFixedThreadPool(n);
        try {
            List<Future<Object>> fs = new ArrayList<>();
            for (int r = 0; r < n; r++) {
                int rank = r;
                fs.add(ex.submit(() -> {
                    try (TcpAllReduce c = TcpAllReduce.connect(rv[rank], bucketBytes, Duration.ofSeconds(30))) {
                        return body.run(c, rank);
                    }
                }));
            }
            List<Object> out = new ArrayList<>();
            for (Future<Object> f : fs) out.add(f.get());
            return out;
        } finally {
            ex.shutdownNow();
        }
    }

    static float[] data(int rank, int len) {
        SplittableRandom rnd = new SplittableRandom(1000 + rank);
        float[] a = new float[len];
        for (int i = 0; i < len; i++) a[i] = (float) (rnd.nextGaussian() * Math.pow(10, rnd.nextInt(-3, 4)));
        return a;
    }

    @Test
    void sumsInRankOrderBitForBitForAnyGroupSizeLengthAndBucket() throws Exception {
        for (int n : new int[] {1, 2, 3, 4}) {
            for (int len : new int[] {0, 1, 3, 1000, 100_003}) {
                float scale = 1f / n;
                float[] expect = new float[len];
                float[][] in = new float[n][];
                for (int r = 0; r < n; r++) in[r] = data(r, len);
                for (int i = 0; i < len; i++) {
                    float acc = in[0][i];
                    for (int r = 1; r < n; r++) acc += in[r][i];
                    expect[i] = acc * scale;
                }
                List<Object> got = group(n, 4 * 4099, (c, rank) -> {
                    try (Arena a = Arena.ofConfined()) {
                        MemorySegment buf = a.allocate(JAVA_FLOAT, Math.max(1, len)).asSlice(0, 4L * len);
                        MemorySegment.copy(in[rank], 0, buf, JAVA_FLOAT, 0, len);
                        c.allReduce(buf, scale);
                        long sent = c.bytesSent(), recv = c.bytesReceived();
                        // volume: per bucket, (len - own chunk) out in phase 1 + (n-1) * own chunk in phase 2
                        double optimal = 2.0 * (n - 1) / n * 4L * len;
                        assertEquals(sent, recv, "rank " + rank + " sent and received the same volume");
                        assertTrue(sent <= optimal + 8.0 * n * (len / 4099 + 1), "rank " + rank + " sent " + sent + " > 2(N-1)/N of " + 4L * len);
                        assertTrue(sent >= optimal - 8.0 * n * (len / 4099 + 1), "rank " + rank + " sent " + sent + " < 2(N-1)/N of " + 4L * len);
                        return buf.toArray(JAVA_FLOAT);
                    }
                });
                for (int r = 0; r < n; r++) {
                    float[] g = (float[]) got.get(r);
                    for (int i = 0; i < len; i++)
                        if (Float.floatToRawIntBits(g[i]) != Float.floatToRawIntBits(expect[i]))
                            fail("n=" + n + " len=" + len + " rank " + r + " element " + i + ": " + g[i] + " != " + expect[i]);
                }
            }
        }
    }

    @Test
    void piecesPerRankGiveTheSameBitsForEverySplitOfTheContributions() throws Exception {
        // 6 contributions split as 1 x 6, 2 x 3, 3 x 2, 6 x 1: every split sums them in the order 0..5
        int m = 6, len = 10_007;
        float[][] in = new float[m][];
        for (int i = 0; i < m; i++) in[i] = data(50 + i, len);
        in[1][0] = 1e8f; in[2][0] = -1e8f; in[3][0] = 1f; in[0][0] = 0f; in[4][0] = 0f; in[5][0] = 0f;
        float[] expect = new float[len];
        for (int e = 0; e < len; e++) {
            float acc = in[0][e];
            for (int i = 1; i < m; i++) acc += in[i][e];
            expect[e] = acc * (1f / m);
        }
        for (int n : new int[] {1, 2, 3, 6}) {
            int k = m / n;
            List<Object> got = group(n, 4 * 1031, (c, rank) -> {
                MemorySegment[] ps = new MemorySegment[k];
                for (int i = 0; i < k; i++) {
                    ps[i] = Arena.ofAuto().allocate(JAVA_FLOAT, len);
                    MemorySegment.copy(in[rank * k + i], 0, ps[i], JAVA_FLOAT, 0, len);
                }
                c.allReduce(ps, 1f / m);
                double volume = (k + 1.0) * (n - 1) / n * 4L * len;
                assertEquals(volume, c.bytesSent(), 8.0 * n * k * (len / 1031 + 1), "rank " + rank + " bytes sent, k = " + k);
                return ps[0].toArray(JAVA_FLOAT);
            });
            for (int r = 0; r < n; r++) {
                float[] g = (float[]) got.get(r);
                for (int e = 0; e < len; e++)
                    if (Float.floatToRawIntBits(g[e]) != Float.floatToRawIntBits(expect[e]))
                        fail("n=" + n + " k=" + k + " rank " + r + " element " + e + ": " + g[e] + " != " + expect[e]);
            }
            assertEquals(1f / m, ((float[]) got.get(0))[0], "(1e8 + -1e8) + 1 in contribution order");
        }
    }

    @Test
    void theOrderIsRankOrderNotArrivalOrRingOrder() throws Exception {
        // (1e8 + -1e8) + 1 = 1, but a ring that starts a chunk at rank 1 computes (-1e8 + 1) + 1e8 = 0.
        float[] v = {1e8f, -1e8f, 1f};
        List<Object> got = group(3, 1 << 20, (c, rank) -> {
            float[] a = new float[30];
            java.util.Arrays.fill(a, v[rank]);
            MemorySegment buf = Arena.ofAuto().allocate(JAVA_FLOAT, a.length);
            MemorySegment.copy(a, 0, buf, JAVA_FLOAT, 0, a.length);
            if (rank == 0) Thread.sleep(200);   // rank 0's piece arrives last at the other owners
            c.allReduce(buf, 1f);
            return buf.toArray(JAVA_FLOAT);
        });
        for (Object o : got) for (float f : (float[]) o) assertEquals(1f, f);
    }

    @Test
    void repeatedCallsStayInStep() throws Exception {
        List<Object> got = group(4, 1 << 12, (c, rank) -> {
            MemorySegment buf = Arena.ofAuto().allocate(JAVA_FLOAT, 5000);
            float last = 0;
            for (int k = 0; k < 20; k++) {
                buf.fill((byte) 0);
                for (int i = 0; i < 5000; i++) buf.setAtIndex(JAVA_FLOAT, i, rank + k);
                c.allReduce(buf, 1f);
                last = buf.getAtIndex(JAVA_FLOAT, 4999);
                assertEquals(6 + 4 * k, buf.getAtIndex(JAVA_FLOAT, 0));
            }
            return last;
        });
        for (Object o : got) assertEquals(6f + 4 * 19, (Float) o);
    }

    @Test
    void mismatchedBuffersFailWithAMessageNotAHang() {
        ExecutionException e = assertThrows(ExecutionException.class, () -> group(2, 1 << 20, (c, rank) -> {
            MemorySegment buf = Arena.ofAuto().allocate(JAVA_FLOAT, rank == 0 ? 100 : 120);
            try {
                c.allReduce(buf, 1f);
            } catch (IOException ex) {
                c.close();   // as a failed task would: its peer sees the connection drop
                throw ex;
            }
            return null;
        }));
        assertTrue(e.getCause() instanceof IOException, e.toString());
        assertTrue(e.getCause().getMessage().contains("expected message") || e.getCause().getMessage().contains("closed its connection"),
                e.getCause().getMessage());
    }

    @Test
    void aPeerThatDiesMidCallFailsTheOthersPromptly() {
        long t0 = System.nanoTime();
        ExecutionException e = assertThrows(ExecutionException.class, () -> group(3, 1 << 20, (c, rank) -> {
            if (rank == 2) {
                c.close();   // dies before contributing
                throw new IOException("worker 2 killed");
            }
            c.allReduce(Arena.ofAuto().allocate(JAVA_FLOAT, 1 << 16), 1f);
            return null;
        }));
        assertTrue(System.nanoTime() - t0 < 20e9, "failure took longer than 20 s: " + e);
    }

    @Test
    void strangersAreRefused() throws Exception {
        Rendezvous[] rv = Rendezvous.inProcess(2);
        // rank 1 advertises a wrong token for rank 0 through a rendezvous that tampers with the exchange
        Rendezvous liar = new Rendezvous() {
            public int rank() { return 1; }
            public int size() { return 2; }
            public String[] allGather(String m) throws IOException {
                String[] all = rv[1].allGather(m);
                String[] f = all[0].split(" ");
                all[0] = f[0] + " " + f[1] + " " + (Long.parseLong(f[2]) + 1);
                return all;
            }
        };
        ExecutorService ex = Executors.newFixedThreadPool(2);
        try {
            Future<?> a = ex.submit(() -> { TcpAllReduce.connect(rv[0], 1 << 20, Duration.ofSeconds(5)).close(); return null; });
            Future<?> b = ex.submit(() -> { TcpAllReduce.connect(liar, 1 << 20, Duration.ofSeconds(5)).close(); return null; });
            ExecutionException e = assertThrows(ExecutionException.class, a::get);
            assertTrue(e.getCause().getMessage().contains("refused"), e.getCause().getMessage());
            try { b.get(); } catch (ExecutionException ignored) { }
        } finally {
            ex.shutdownNow();
        }
    }
}
