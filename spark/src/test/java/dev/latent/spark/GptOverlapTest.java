package dev.latent.spark;

import dev.latent.autograd.F;
import dev.latent.autograd.Var;
import dev.latent.data.TextData;
import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptConfig;
import dev.latent.optim.AdamW;
import dev.latent.spark.collective.Rendezvous;
import dev.latent.spark.collective.TcpAllReduce;
import dev.latent.tensor.Scope;
import dev.latent.text.CharTokenizer;
import dev.latent.text.Tokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The all-reduce overlapped with the backward ({@link OverlappedReduce}) gives the bits of the all-reduce after the
 * backward, and really overlaps: buckets leave while later gradients are still being computed, last layers first.
 * The ranks are threads on loopback (no Spark: the collective and the step are what is tested).
 */
@Timeout(180)
class GptOverlapTest {
    interface Member<T> { T run(TcpAllReduce c, int rank) throws Exception; }

    static <T> List<T> group(int n, Member<T> body) throws Exception {
        Rendezvous[] rv = Rendezvous.inProcess(n);
        ExecutorService ex = Executors.newFixedThreadPool(n);
        try {
            List<Future<T>> fs = new ArrayList<>();
            for (int r = 0; r < n; r++) {
                int rank = r;
                fs.add(ex.submit(() -> {
                    try (TcpAllReduce c = TcpAllReduce.connect(rv[rank], TcpAllReduce.DEFAULT_BUCKET_BYTES, Duration.ofSeconds(60))) {
                        return body.run(c, rank);
                    }
                }));
            }
            List<T> out = new ArrayList<>();
            for (Future<T> f : fs) out.add(f.get());
            return out;
        } finally {
            ex.shutdownNow();
        }
    }

    static GptDataParallel.Job job(int workers, Path out, Tokenizer tok, long buckets) {
        return new GptDataParallel.Job(workers, 2, 2, 2, 32, 16, false, tok.toJson(), 4, 1e-2, 1e-3, 2, 0.1, 1.0, 1, 0,
                42, out.toString(), false, null).withOverlap(buckets);
    }

    @Test
    void overlappedStepGivesTheBitsOfTheAllReduceAfterTheBackward(@TempDir Path tmp) throws Exception {
        Tokenizer tok = CharTokenizer.train(GptReproducibilityTest.TEXT);
        int[] tokens = tok.encode(GptReproducibilityTest.TEXT);
        for (int n : new int[] {2, 3}) {
            String ref = GptDataParallel.reference(job(n, tmp.resolve("ref" + n), tok, 0), tokens, false, Long.MAX_VALUE).weightsSha256();
            List<GptDataParallel.Result> after = null;
            for (long bucket : new long[] {0, 4096, 1 << 16, OverlappedReduce.DEFAULT_BUCKET_BYTES}) {
                GptDataParallel.Job j = job(n, tmp.resolve("w" + n + "-" + bucket), tok, bucket);
                List<GptDataParallel.Result> rs = group(n, (c, rank) -> GptDataParallel.worker(j, tokens, c, false, Long.MAX_VALUE));
                for (GptDataParallel.Result r : rs) {
                    assertEquals(4, r.step());
                    assertEquals(ref, r.weightsSha256(), "N=" + n + ", buckets of " + bucket + " bytes (0: after the backward), rank " + r.rank());
                }
                if (bucket == 0) {
                    after = rs;
                    continue;
                }
                for (int r = 0; r < n; r++) {
                    assertEquals(after.get(r).loss(), rs.get(r).loss(), 0.0, "the reduced loss, rank " + r);
                    if (n == 2)   // two ranks send exactly the buffer's length per call, however it is cut
                        assertEquals(after.get(r).bytesSent(), rs.get(r).bytesSent(), "bytes sent, rank " + r);
                }
            }
        }
    }

    @Test
    void bucketsLeaveWhileTheBackwardRunsLastLayersFirst() throws Exception {
        Tokenizer tok = CharTokenizer.train(GptReproducibilityTest.TEXT);
        int[] tokens = tok.encode(GptReproducibilityTest.TEXT);
        List<List<Integer>> got = group(2, (c, rank) -> {
            try (Scope s = Scope.shared(); Arena a = Arena.ofConfined()) {
                Gpt model = new Gpt(s, new GptConfig(tok.vocabSize(), 2, 2, 32, 16, false), 42);
                AdamW opt = new AdamW(s, model.namedParameters(), 0.9f, 0.99f, 1e-8f, 0.1f);
                Gradients grads = new Gradients(model.namedParameters(), 1);
                MemorySegment x = a.allocate(JAVA_INT, 4 * 16), y = a.allocate(JAVA_INT, 4 * 16);
                TextData.batch(new TextData(tokens).train, 4, 16, 42, 0, x, y);
                try (OverlappedReduce ov = new OverlappedReduce(c, grads, 4096)) {
                    MicroBatches.stepOverlapped(ov, rank, 2, (g, r) -> {
                        Var l = model.loss(x.asSlice(r * 2 * 16 * 4L, 2 * 16 * 4L), y.asSlice(r * 2 * 16 * 4L, 2 * 16 * 4L), 2, 16);
                        float loss = F.item(l);
                        g.backward(l);
                        return loss;
                    }, v -> opt.update(1e-3f, 1.0, opt.gradNorm()));
                    assertTrue(ov.buckets() > 4, "the test model in 4 KB buckets: " + ov.buckets());
                    assertEquals(ov.buckets() - 1, ov.sentEarly(), "every bucket but the last left while the backward still ran");
                    List<Integer> order = ov.sentOrder();
                    assertEquals(ov.buckets() + 1, order.size());
                    assertEquals(ov.buckets(), order.get(order.size() - 1), "the loss goes last");
                    assertEquals(ov.buckets() - 1, order.get(0), "the last bucket (the last layers' parameters) goes first");
                    return order;
                }
            }
        });
        assertEquals(got.get(0), got.get(1), "both ranks send the buckets in the same order");
    }
}
