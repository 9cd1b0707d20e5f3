package dev.latent.bench.peer;

import dev.latent.ops.Conv;
import dev.latent.spi.ConvPeer;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Our three convolution passes against oneDNN's on random shapes (kernel 1..7, stride 1..3, padding 0..3, odd
 * channels and sizes, N = 1): an independent implementation of the same maths, so a shared misunderstanding of
 * the index map would show. Also guards the bench: its ratios only count if both compute the same thing.
 */
class OneDnnConvTest {
    @Test
    void allPassesAgreeWithOneDnnOnRandomShapes() {
        OneDnnConv peer = new OneDnnConv();
        peer.setThreads(2);
        SplittableRandom r = new SplittableRandom(7);
        int checked = 0;
        for (int trial = 0; checked < 30 && trial < 500; trial++) {
            int k = 1 + r.nextInt(7), stride = 1 + r.nextInt(3), pad = r.nextInt(4);
            long h = 1 + r.nextInt(12), w = 1 + r.nextInt(12);
            if (h + 2L * pad < k || w + 2L * pad < k) continue;
            long n = r.nextInt(3) == 0 ? 1 : 1 + r.nextInt(3), c = 1 + r.nextInt(7), kk = 1 + r.nextInt(9);
            Conv.Geometry g = new Conv.Geometry(n, c, h, w, kk, k, k, stride, stride, pad, pad);
            try (Scope s = Scope.confined()) {
                Tensor x = Tensor.rand(s, trial, 1, g.inShape()), wt = Tensor.rand(s, trial, 2, g.weightShape()), dy = Tensor.rand(s, trial, 3, g.outShape());
                Tensor y = Tensor.empty(s, g.outShape()), dx = Tensor.empty(s, g.inShape()), dw = Tensor.empty(s, g.weightShape());
                Conv.forward(g, x, wt, null, y);
                Conv.backwardData(g, dy, wt, null, dx);
                Conv.backwardWeight(g, x, dy, dw, null, false);
                float[][] ours = {y.toArray(), dx.toArray(), dw.toArray()};
                Tensor[] ins = {x, wt, dy, wt, x, dy}, outs = {y, dx, dw};
                for (ConvPeer.Pass pass : ConvPeer.Pass.values()) {
                    int i = pass.ordinal();
                    try (ConvPeer.Prepared p = peer.prepare(n, c, h, w, kk, k, k, stride, pad, pass, ins[2 * i].segment(), ins[2 * i + 1].segment(),
                            outs[i].segment())) {
                        p.run();
                        p.readBack();
                    }
                    float[] theirs = outs[i].toArray();
                    double scale = 1e-30, diff = 0;
                    for (int e = 0; e < theirs.length; e++) { scale = Math.max(scale, Math.abs(theirs[e])); diff = Math.max(diff, Math.abs(theirs[e] - ours[i][e])); }
                    assertTrue(diff <= 1e-5 * scale + 1e-6, pass + " " + g + ": max diff " + diff + " of scale " + scale);
                }
                checked++;
            }
        }
        assertEquals(30, checked);
    }
}
