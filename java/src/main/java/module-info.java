/**
 * Latent: tensors, autograd, layers, optimizers, the model families (GPT, VAE, GAN, flows, PixelCNN, WaveNet, a
 * classifier), serving, data and checkpoint I/O on the JVM, with the native kernels bound through FFM. Needs only
 * {@code java.base}. Run with {@code --enable-native-access=dev.latent}; the native library comes from the
 * {@code dev.latent.natives.linux.x86_64} classifier jar (add it with {@code --add-modules} when nothing requires it)
 * or {@code -Dlatent.library.path}.
 * <p>
 * The exported packages are the public API; {@link dev.latent.Latent} holds the process-wide settings. The raw FFM
 * binding ({@code dev.latent.nativ}), the CUDA backend ({@code dev.latent.cuda}) and the kernels' Java entry points
 * ({@code dev.latent.ops}) are internal: not exported, except to the benchmark module, which measures them directly
 * (docs/decisions.md, "Module descriptor").
 */
module dev.latent {
    exports dev.latent;
    exports dev.latent.tensor;
    exports dev.latent.autograd;
    exports dev.latent.nn;
    exports dev.latent.optim;
    exports dev.latent.models.classifier;
    exports dev.latent.models.flow;
    exports dev.latent.models.gan;
    exports dev.latent.models.gpt;
    exports dev.latent.models.pixelcnn;
    exports dev.latent.models.vae;
    exports dev.latent.models.wavenet;
    exports dev.latent.serve;
    exports dev.latent.data;
    exports dev.latent.text;
    exports dev.latent.io;
    exports dev.latent.eval;
    exports dev.latent.train;

    // The tensor layer's allocator, generator and device copies come from ops (the tensor package depends on none of
    // nativ, cuda, ops: docs/decisions.md, "Package cycle").
    uses dev.latent.tensor.TensorSupport;
    provides dev.latent.tensor.TensorSupport with dev.latent.ops.TensorSupportProvider;

    // Internal: the benchmarks time the kernels and the binding directly (debt: docs/decisions.md).
    exports dev.latent.nativ to dev.latent.bench;
    exports dev.latent.ops to dev.latent.bench;
}
