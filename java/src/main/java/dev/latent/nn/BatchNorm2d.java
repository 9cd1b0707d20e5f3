package dev.latent.nn;

import dev.latent.autograd.F;
import dev.latent.autograd.Var;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.util.Map;

/**
 * PyTorch's nn.BatchNorm2d (affine, track_running_stats, momentum 0.1, eps 1e-5). {@link #training} picks batch
 * statistics (and updates the running ones) or the running statistics. The running statistics are buffers:
 * {@link #buffers} adds them to checkpoints.
 */
public final class BatchNorm2d implements Module {
    public final Var gamma, beta;
    /** The running statistics: replaced (not copied into) by {@link #to}. */
    public Tensor runningMean, runningVar;
    public final float momentum, eps;
    public boolean training = true;

    public BatchNorm2d(Tensor gamma, Tensor beta, Scope scope, float momentum, float eps) {
        this.gamma = Var.param(gamma);
        this.beta = Var.param(beta);
        long c = gamma.numel();
        this.runningMean = Init.constant(scope, 0f, c);
        this.runningVar = Init.constant(scope, 1f, c);
        this.momentum = momentum;
        this.eps = eps;
    }

    /** gamma = 1, beta = 0 (PyTorch's default). */
    public static BatchNorm2d standard(Scope scope, long c) {
        return new BatchNorm2d(Init.constant(scope, 1f, c), Init.constant(scope, 0f, c), scope, 0.1f, 1e-5f);
    }

    /** gamma ~ N(1, std^2), beta = 0 (the DCGAN paper's init). */
    public static BatchNorm2d normal(Scope scope, long c, double std, long seed, long stream) {
        Tensor g = Init.normal(scope, seed, stream, std, c);
        var s = g.segment();
        for (long i = 0; i < c; i++) s.setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i, 1f + s.getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i));
        return new BatchNorm2d(g, Init.constant(scope, 0f, c), scope, 0.1f, 1e-5f);
    }

    public Var forward(Var x) {
        // Batch statistics in an inference graph (sampling a GAN in train mode) leave the running statistics alone.
        boolean update = training && dev.latent.autograd.Graph.current().isRecording();
        if (training && !update) return F.batchNorm2d(x, gamma, beta, null, null, true, momentum, eps);
        return F.batchNorm2d(x, gamma, beta, runningMean, runningVar, training, momentum, eps);
    }

    /** Moves the parameters and the running statistics to {@code device}. */
    @Override
    public void to(Scope scope, dev.latent.tensor.Device device) {
        Module.super.to(scope, device);
        buffersTo(scope, device);
    }

    /** Moves the running statistics alone (a containing module's {@code to} moves the parameters). */
    public void buffersTo(Scope scope, dev.latent.tensor.Device device) {
        if (runningMean.device() != device) runningMean = runningMean.to(scope, device);
        if (runningVar.device() != device) runningVar = runningVar.to(scope, device);
    }

    @Override
    public void collect(String prefix, Map<String, Var> out) {
        out.put(prefix + "weight", gamma);
        out.put(prefix + "bias", beta);
    }

    /** The running statistics under PyTorch's names (running_mean, running_var). */
    public void buffers(String prefix, Map<String, Tensor> out) {
        out.put(prefix + "running_mean", runningMean);
        out.put(prefix + "running_var", runningVar);
    }
}
