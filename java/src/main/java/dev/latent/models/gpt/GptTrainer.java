package dev.latent.models.gpt;

import dev.latent.tensor.Precision;
import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.data.TextData;
import dev.latent.ops.Gemm;
import dev.latent.optim.AdamW;
import dev.latent.optim.Schedule;
import dev.latent.tensor.Device;
import dev.latent.tensor.Tensor;
import dev.latent.ops.Kernels;
import dev.latent.tensor.Scope;
import dev.latent.text.Tokenizer;
import dev.latent.train.DivergedException;
import dev.latent.train.Limits;
import dev.latent.train.TrainLoop;
import dev.latent.train.TrainingListener;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * The GPT training loop, with the reference's recipe: AdamW (0.9, 0.99, eps 1e-8, weight decay on 2-D
 * tensors), warm-up + cosine schedule, global-norm clipping, evaluation on fixed batches of train and val
 * (drawn once from seed {@code evalSeed}), checkpoints that resume bit-identically.
 */
public final class GptTrainer {
    /** Everything a run depends on; saved in the checkpoint. */
    public record Options(int batch, int steps, double lr, double minLr, int warmup, double weightDecay, double clip,
                          int evalInterval, int evalBatches, long evalSeed, int logInterval, int checkpointInterval, long seed,
                          Precision precision) {
        /** The same limits as the CLI's (Limits), so a bad value fails here, by name, not in the native AdamW mid-run. */
        public Options {
            Limits.atLeast("batch", batch, 1);
            Limits.atLeast("steps", steps, 0);
            Limits.positive("lr", lr);
            Limits.nonNegative("min_lr", minLr);
            Limits.atLeast("warmup", warmup, 0);
            Limits.nonNegative("weight_decay", weightDecay);
            Limits.nonNegative("clip", clip);
            Limits.atLeast("eval_interval", evalInterval, 1);
            Limits.atLeast("eval_batches", evalBatches, 1);
            Limits.atLeast("log_interval", logInterval, 1);
            Limits.atLeast("checkpoint_interval", checkpointInterval, 0);
            if (precision == null) throw new IllegalArgumentException("precision is null (FP32 or BF16)");
        }

        /** fp32 options (the matmuls' operands in fp32). */
        public Options(int batch, int steps, double lr, double minLr, int warmup, double weightDecay, double clip,
                       int evalInterval, int evalBatches, long evalSeed, int logInterval, int checkpointInterval, long seed) {
            this(batch, steps, lr, minLr, warmup, weightDecay, clip, evalInterval, evalBatches, evalSeed, logInterval, checkpointInterval,
                    seed, Precision.FP32);
        }

        /**
         * These options with the training steps' matmul operands in {@code p} (BF16: the linear layers' and the tied
         * head's forward and backward GEMMs in bf16 with fp32 accumulation; the rest, the optimizer, the master weights
         * and the evaluation stay fp32).
         */
        public Options withPrecision(Precision p) {
            return new Options(batch, steps, lr, minLr, warmup, weightDecay, clip, evalInterval, evalBatches, evalSeed, logInterval,
                    checkpointInterval, seed, p);
        }

        public Map<String, Object> toMap() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("batch", batch); m.put("steps", steps); m.put("lr", Double.toString(lr)); m.put("min_lr", Double.toString(minLr));
            m.put("warmup", warmup); m.put("weight_decay", Double.toString(weightDecay)); m.put("clip", Double.toString(clip));
            m.put("eval_interval", evalInterval); m.put("eval_batches", evalBatches); m.put("eval_seed", evalSeed);
            m.put("log_interval", logInterval); m.put("checkpoint_interval", checkpointInterval); m.put("seed", seed);
            m.put("precision", precision.id());
            return m;
        }
    }

    /** Train for {@code o.steps()} optimizer steps (continuing from the checkpoint in {@code out} when resuming). */
    public static Map<String, Object> train(Gpt model, Tokenizer tok, TextData data, Options o, Path out, boolean resume,
                                            Scope modelScope) throws IOException {
        return train(model, tok, data, o, out, resume, modelScope, o.steps());
    }

    /**
     * As above, but stops (with a checkpoint) once {@code stopAt} steps are done: the schedule is still the
     * one of {@code o.steps()}, so a later --resume continues exactly as if never stopped.
     */
    public static Map<String, Object> train(Gpt model, Tokenizer tok, TextData data, Options o, Path out, boolean resume,
                                            Scope modelScope, long stopAt) throws IOException {
        return train(model, tok, data, o, out, resume, modelScope, stopAt, Device.CPU);
    }

    /**
     * As above, on {@code device}: the model (on the CPU) and the optimizer state are moved there after a resume is
     * restored, and stay there when this returns (move the model back to the CPU for sampling). Checkpoints copy
     * device tensors to the host as they write them.
     */
    public static Map<String, Object> train(Gpt model, Tokenizer tok, TextData data, Options o, Path out, boolean resume,
                                            Scope modelScope, long stopAt, Device device) throws IOException {
        return train(model, tok, data, o, out, resume, modelScope, stopAt, device, TrainingListener.LOG);
    }

    /** As above, reporting steps, evaluations, the resume and each checkpoint to {@code listener}. */
    public static Map<String, Object> train(Gpt model, Tokenizer tok, TextData data, Options o, Path out, boolean resume,
                                            Scope modelScope, long stopAt, Device device, TrainingListener listener)
            throws IOException {
        return train(model, tok, data, o, out, resume, modelScope, stopAt, device, listener, false);
    }

    /**
     * As above; with {@code cudaGraph} (CUDA only, opt-in: {@code train gpt --cuda-graph}) each step after two warm-up
     * steps is replayed from a CUDA graph ({@link dev.latent.cuda.CudaGraphStep}): the batch goes into fixed device
     * buffers ({@code Kernels.stageTokensFixed}) and the learning rate and bias corrections into device memory
     * ({@code AdamW.stage}) before each step, and the captured body (forward, backward, clipping, update) makes no host
     * synchronisation; the loss and the gradient norm are read after the step in one copy (checked for divergence after
     * the update, not before it as without a graph). The same bits as without a graph.
     */
    public static Map<String, Object> train(Gpt model, Tokenizer tok, TextData data, Options o, Path out, boolean resume,
                                            Scope modelScope, long stopAt, Device device, TrainingListener listener,
                                            boolean cudaGraph) throws IOException {
        if (cudaGraph && device != Device.CUDA)
            throw new IllegalArgumentException("gpt: --cuda-graph needs --device cuda (running on " + device + ")");
        if (cudaGraph && o.precision() != Precision.FP32)
            throw new IllegalArgumentException("gpt: --cuda-graph is checked with fp32 only, not " + o.precision());
        int t = model.cfg.context(), b = o.batch();
        // refused before anything is read or moved, never emulated: TF32 is CUDA-only, BF16 on the CPU needs AVX512_BF16
        if (o.precision() == Precision.TF32 && device != Device.CUDA)
            throw new IllegalArgumentException("gpt: " + dev.latent.train.TrainingPrecision.unavailable(o.precision(), device));
        if (o.precision() == Precision.BF16 && device == Device.CPU) Gemm.requireBf16();
        AdamW opt = new AdamW(modelScope, model.namedParameters(), 0.9f, 0.99f, 1e-8f, (float) o.weightDecay());
        if (device != Device.CPU) {   // a resume copies the checkpoint straight into the moved weights and moments
            model.to(modelScope, device);
            opt.to(modelScope, device);
        }
        Schedule sched = new Schedule(o.lr(), o.minLr(), o.warmup(), o.steps());
        List<double[]> curve = new ArrayList<>(), evals = new ArrayList<>();
        Map<String, Object> last = new LinkedHashMap<>();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment x = a.allocate(JAVA_INT, (long) b * t), y = a.allocate(JAVA_INT, (long) b * t);
            EvalSet evalSet = new EvalSet(data, b, t, o, a);
            dev.latent.cuda.CudaGraphStep graphStep = cudaGraph ? new dev.latent.cuda.CudaGraphStep(2) : null;
            /* graph mode: {loss, unused, the norm's sum of squares as a double (two floats)}, written by the captured step */
            Tensor graphOut = cudaGraph ? Tensor.zeros(modelScope, Device.CUDA, 4) : null;
            TrainLoop.Family family = new TrainLoop.Family() {
                long tokens, trainNanos;   // throughput counts training steps only, not evaluation

                @Override public String name() { return "gpt"; }
                @Override public Map<String, Var> parameters() { return model.namedParameters(); }
                @Override public Map<String, AdamW> optimizers() { return Map.of("opt", opt); }
                @Override public Map<String, String> metadata() { return GptCheckpoint.metadata(model, tok, o.toMap()); }
                @Override public boolean logAt(long done) { return done % o.logInterval() == 0; }

                /** GPT's evaluation after {@code done} steps (the same fixed batches every time). */
                void evaluate(long done, TrainLoop.Run run) throws IOException {
                    double[] e = evalSet.evaluate(model);
                    Map<String, Object> ev = new LinkedHashMap<>();
                    ev.put("train_loss", e[0]);
                    ev.put("val_loss", e[1]);
                    ev.put("elapsed_s", run.elapsed());
                    last.put("step", done);
                    last.putAll(ev);
                    evals.add(new double[] {done, e[0], e[1]});
                    run.evaluation(done, String.format("step %d: eval train %.4f  val %.4f", done, e[0], e[1]), ev);
                }

                boolean evaluatesAt(long done, TrainLoop.Run run) {
                    if (done == o.steps()) return true;
                    return done % o.evalInterval() == 0 && done < run.options().stopAt();   // not at a stop point
                }

                @Override public void begin(TrainLoop.Run run) throws IOException {
                    if (evaluatesAt(run.startStep(), run)) evaluate(run.startStep(), run);
                }

                @Override public void after(long done, TrainLoop.Run run) throws IOException {
                    if (evaluatesAt(done, run)) evaluate(done, run);
                }

                /** One step through the CUDA graph; returns {loss, norm}, read after the step in one copy. */
                double[] graphedStep(long step) {
                    float lr = (float) sched.at(step);
                    graphStep.step(() -> {
                        Kernels.stageTokensFixed(x, y, (long) b * t, model.cfg.vocab());
                        opt.stage(lr);
                    }, () -> {
                        try (Graph g = Graph.open()) {
                            Var l = model.loss(x, y, b, t);
                            g.backward(l);
                            opt.updateStaged(o.clip());
                            Kernels.copy(l.value().reshape(1), graphOut.slice(0, 0, 1));
                            if (o.clip() > 0) Kernels.copy(opt.deviceNormSumOfSquares(), graphOut.slice(0, 2, 4));
                        }
                    });
                    float[] v = graphOut.toArray();   // one copy: the loss and the norm
                    long bits = (Integer.toUnsignedLong(Float.floatToRawIntBits(v[3])) << 32) | Integer.toUnsignedLong(Float.floatToRawIntBits(v[2]));
                    return new double[] {v[0], o.clip() > 0 ? Math.sqrt(Double.longBitsToDouble(bits)) : Double.NaN};
                }

                @Override public TrainLoop.StepResult step(long step) {
                    TextData.batch(data.train, b, t, o.seed(), step, x, y);
                    float loss;
                    double norm;
                    long t0 = System.nanoTime();
                    if (graphStep != null) {
                        double[] ln = graphedStep(step);
                        loss = (float) ln[0];
                        norm = ln[1];
                        DivergedException.check("gpt", step + 1, "the loss", loss, "lower --lr (" + o.lr() + ") or --clip");
                        if (o.clip() > 0) DivergedException.check("gpt", step + 1, "the gradient norm", norm, "lower --lr (" + o.lr() + ") or --clip");
                    } else
                    try (Graph g = Graph.open().precision(o.precision())) {
                        Var l = model.loss(x, y, b, t);
                        g.backward(l);
                        /* the norm (and on CUDA the clip factor) computed on the device, then the loss and the norm read
                         * together in one copy and checked before the update: one host synchronisation per step */
                        AdamW.GradNorm gn = opt.gradNorm(o.clip());
                        double[] nl = gn.valueWith(l.value());
                        loss = (float) nl[1];
                        norm = nl[0];
                        DivergedException.check("gpt", step + 1, "the loss", loss, "lower --lr (" + o.lr() + ") or --clip");
                        DivergedException.check("gpt", step + 1, "the gradient norm", norm, "lower --lr (" + o.lr() + ") or --clip");
                        opt.update((float) sched.at(step), o.clip(), gn);
                    }
                    trainNanos += System.nanoTime() - t0;
                    tokens += (long) b * t;
                    curve.add(new double[] {step, loss});
                    Map<String, Object> rec = new LinkedHashMap<>();
                    String summary = "";
                    if (logAt(step + 1)) {
                        double tps = tokens / Math.max(trainNanos / 1e9, 1e-9);
                        rec.put("loss", loss);
                        rec.put("lr", sched.at(step));
                        rec.put("grad_norm", norm);
                        rec.put("tokens_per_s", tps);
                        rec.put("elapsed_s", (System.nanoTime() - started) / 1e9);
                        last.put("step", step + 1);
                        last.putAll(rec);
                        summary = String.format("loss %.4f  %.0f tok/s", loss, tps);
                        tokens = 0;
                        trainNanos = 0;
                    }
                    return new TrainLoop.StepResult(loss, "the loss", summary, rec);
                }

                final long started = System.nanoTime();
            };
            try {
                TrainLoop.run(family, new TrainLoop.Options(out, o.steps(), stopAt, resume, o.checkpointInterval(), listener, false));
            } finally {
                if (graphStep != null) graphStep.close();
            }
        }
        curves(out, curve, evals, listener);
        return last;
    }

    static void copyWeights(Gpt from, Gpt to) {
        var src = from.namedParameters();
        to.namedParameters().forEach((k, v) -> MemorySegment.copy(src.get(k).value().segment(), 0, v.value().segment(), 0, v.value().numel() * 4));
    }

    private static void curves(Path out, List<double[]> curve, List<double[]> evals, TrainingListener listener) {
        double[] xs = curve.stream().mapToDouble(p -> p[0]).toArray(), ys = curve.stream().mapToDouble(p -> p[1]).toArray();
        double[] ex = evals.stream().mapToDouble(p -> p[0]).toArray();
        listener.onCurves(new TrainingListener.Curves(out, "GPT training loss (nats/token)", "step", "loss", List.of(
                new TrainingListener.Series("train (batch)", xs, ys),
                new TrainingListener.Series("train (eval)", ex, evals.stream().mapToDouble(p -> p[1]).toArray()),
                new TrainingListener.Series("val (eval)", ex, evals.stream().mapToDouble(p -> p[2]).toArray()))));
    }

    /** The fixed evaluation batches: drawn once from (evalSeed, stream i) for train and val. */
    static final class EvalSet {
        final MemorySegment[] tx, ty, vx, vy;
        final int b, t;

        EvalSet(TextData d, int b, int t, Options o, Arena a) {
            this.b = b;
            this.t = t;
            int n = o.evalBatches();
            tx = new MemorySegment[n]; ty = new MemorySegment[n]; vx = new MemorySegment[n]; vy = new MemorySegment[n];
            for (int i = 0; i < n; i++) {
                tx[i] = a.allocate(JAVA_INT, (long) b * t); ty[i] = a.allocate(JAVA_INT, (long) b * t);
                vx[i] = a.allocate(JAVA_INT, (long) b * t); vy[i] = a.allocate(JAVA_INT, (long) b * t);
                TextData.batch(d.train, b, t, o.evalSeed(), 2L * i, tx[i], ty[i]);
                TextData.batch(d.val, b, t, o.evalSeed(), 2L * i + 1, vx[i], vy[i]);
            }
        }

        double[] evaluate(Gpt m) {
            double tr = 0, va = 0;
            for (int i = 0; i < tx.length; i++) {
                try (Graph g = Graph.inference()) {
                    tr += F.item(m.loss(tx[i], ty[i], b, t));
                    va += F.item(m.loss(vx[i], vy[i], b, t));
                }
            }
            return new double[] {tr / tx.length, va / tx.length};
        }
    }

}
