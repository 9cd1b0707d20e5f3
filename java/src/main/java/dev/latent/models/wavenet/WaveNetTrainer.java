package dev.latent.models.wavenet;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.optim.AdamW;
import dev.latent.tensor.Scope;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Consumer;

/**
 * A training loop for {@link WaveNet} on a byte sequence: AdamW (0.9, 0.99, eps 1e-8, no weight decay) at a constant
 * learning rate with a linear warm-up, global-norm clipping, batches of windows at random offsets (SplittableRandom from
 * the seed: the same run gives the same batches), and a held-out evaluation on fixed, evenly spaced windows.
 *
 * <pre>{@code
 * WaveNet model = new WaveNet(scope, WaveNet.Config.doubling(32, 64, 1, 6, 2), 1);
 * var result = WaveNetTrainer.train(scope, model, train, heldOut, new WaveNetTrainer.Options(16, 128, 300, 3e-3, 1.0, 20, 32, 7), log::info);
 * byte[] text = model.sample("The ".getBytes(), 200, 0.8, 1);
 * }</pre>
 */
public final class WaveNetTrainer {
    private WaveNetTrainer() {}

    /**
     * batch windows of {@code window} predicted bytes per step, {@code steps} steps, peak learning rate {@code lr}
     * reached after {@code warmup} steps, gradient clipping at {@code clip} (0: none), {@code evalWindows} held-out
     * windows, {@code seed} for the batches.
     */
    public record Options(int batch, int window, int steps, double lr, double clip, int warmup, int evalWindows, long seed) {
        public Options {
            if (batch < 1 || window < 1 || steps < 0 || warmup < 0 || evalWindows < 1)
                throw new IllegalArgumentException("WaveNetTrainer: batch, window, evalWindows >= 1 and steps, warmup >= 0 needed");
            if (!(lr > 0) || Double.isInfinite(lr)) throw new IllegalArgumentException("WaveNetTrainer: lr must be finite and > 0, got " + lr);
            if (!(clip >= 0)) throw new IllegalArgumentException("WaveNetTrainer: clip must be >= 0, got " + clip);
        }
    }

    /** The training losses by step, the held-out loss before and after (nats per byte), the seconds spent. */
    public record Result(double[] trainLoss, double heldOutBefore, double heldOutAfter, double seconds) {}

    /** Trains {@code model} in place; optimizer state lives in {@code scope}. */
    public static Result train(Scope scope, WaveNet model, byte[] train, byte[] heldOut, Options o, Consumer<String> log) {
        if (train.length < o.window() + 1 || heldOut.length < o.window() + 1)
            throw new IllegalArgumentException("WaveNetTrainer: train (" + train.length + " bytes) and held-out (" + heldOut.length
                    + " bytes) data must each hold a window of " + (o.window() + 1) + " bytes");
        AdamW opt = new AdamW(scope, model.namedParameters(), 0.9f, 0.99f, 1e-8f, 0f);
        SplittableRandom rng = new SplittableRandom(o.seed());
        double before = evaluate(model, heldOut, o.window(), o.evalWindows());
        long t0 = System.nanoTime();
        double[] losses = new double[o.steps()];
        for (int step = 0; step < o.steps(); step++) {
            int[] offsets = new int[o.batch()];
            for (int b = 0; b < offsets.length; b++) offsets[b] = rng.nextInt(train.length - o.window());
            try (Graph g = Graph.open()) {
                Var loss = model.loss(train, offsets, o.window());
                losses[step] = F.item(loss);
                if (!Double.isFinite(losses[step]))
                    throw new ArithmeticException("WaveNet: loss " + losses[step] + " at step " + (step + 1) + "; lower the learning rate (" + o.lr() + ")");
                g.backward(loss);
                double lr = o.warmup() > 0 ? o.lr() * Math.min(1.0, (step + 1.0) / o.warmup()) : o.lr();
                opt.update((float) lr, o.clip());
            }
            if (log != null && ((step + 1) % 50 == 0 || step + 1 == o.steps()))
                log.accept(String.format("wavenet step %d/%d: train loss %.4f nats/byte", step + 1, o.steps(), losses[step]));
        }
        double secs = (System.nanoTime() - t0) / 1e9;
        double after = evaluate(model, heldOut, o.window(), o.evalWindows());
        if (log != null) log.accept(String.format("wavenet held-out loss %.4f -> %.4f nats/byte (log 256 = %.4f), %.1f s", before, after, Math.log(256), secs));
        return new Result(losses, before, after, secs);
    }

    /** Mean cross-entropy (nats per byte) over {@code windows} evenly spaced windows of {@code bytes}. */
    public static double evaluate(WaveNet model, byte[] bytes, int window, int windows) {
        if (bytes.length < window + 1) throw new IllegalArgumentException("WaveNetTrainer.evaluate: " + bytes.length + " bytes, a window needs " + (window + 1));
        int span = bytes.length - window - 1;
        List<Integer> offs = new ArrayList<>();
        for (int i = 0; i < windows; i++) offs.add(windows == 1 ? 0 : (int) ((long) span * i / (windows - 1)));
        double sum = 0;
        int per = 16;   // windows per forward pass
        for (int i = 0; i < offs.size(); i += per) {
            int[] o = offs.subList(i, Math.min(offs.size(), i + per)).stream().mapToInt(Integer::intValue).toArray();
            try (Graph g = Graph.inference()) { sum += (double) F.item(model.loss(bytes, o, window)) * o.length; }
        }
        return sum / offs.size();
    }
}
