package dev.latent.cuda;

import dev.latent.tensor.Device;
import dev.latent.train.ResumeBitIdentityTestAccess;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static dev.latent.cuda.CudaTesting.device;

/**
 * Resume on the device: the checkpoint (host copies) is restored straight into the weights and AdamW moments the model
 * and optimizer hold on CUDA (the flat buffers the optimizer packed there), and the resumed run ends with the bits of an
 * uninterrupted one on the device.
 */
class CudaResumeTest {
    @BeforeAll
    static void setUp() { device(); }

    @Test
    void gptResumesOnTheDevice(@TempDir Path dir) throws Exception { ResumeBitIdentityTestAccess.gptResumes(dir, Device.CUDA); }

    /**
     * train classifier and train pixelcnn on the device at bf16 (h-cudaprec2): n steps against k steps and a resume to n,
     * the same checkpoint bit for bit (weights and AdamW moments restored into the device's buffers, the precision kept);
     * PixelCNN's epoch-end sample grid is drawn on the device (DevicePixelCnnSampler).
     */
    @Test
    void classifierAndPixelCnnResumeOnTheDeviceAtBf16(@TempDir Path dir) throws Exception {
        Path data = java.nio.file.Files.createDirectories(dir.resolve("data"));
        dev.latent.SyntheticImages.write(data, "train", 12, 1);
        dev.latent.SyntheticImages.write(data, "t10k", 4, 2);
        var train = dev.latent.data.ImageData.load(data.toString(), "train");
        var test = dev.latent.data.ImageData.load(data.toString(), "test");
        var bf16 = dev.latent.tensor.Precision.BF16;
        var none = dev.latent.train.TrainingListener.NONE;
        Path one = dir.resolve("clf-one"), two = dir.resolve("clf-two");
        long n = 5, k = 2;   /* 3 batches of 4 per epoch: the stop inside the first, the end inside the second */
        try (var s = dev.latent.tensor.Scope.shared()) {
            new dev.latent.models.classifier.Classifier(s, 10, 4).on(Device.CUDA).precision(bf16).train(train, test, one, n, false, Long.MAX_VALUE, 1, 4,
                    1e-3f, 4, true, none);
        }
        try (var s = dev.latent.tensor.Scope.shared()) {
            new dev.latent.models.classifier.Classifier(s, 10, 4).on(Device.CUDA).precision(bf16).train(train, test, two, n, false, k, 1, 4, 1e-3f,
                    4, true, none);
        }
        try (var s = dev.latent.tensor.Scope.shared()) {
            new dev.latent.models.classifier.Classifier(s, 10, 4).on(Device.CUDA).precision(bf16).train(train, test, two, n, true, Long.MAX_VALUE, 1,
                    4, 1e-3f, 4, true, none);
        }
        Path ck = one.resolve(dev.latent.models.classifier.Classifier.CHECKPOINT);
        ResumeBitIdentityTestAccess.sameCheckpoint(ck, two.resolve(dev.latent.models.classifier.Classifier.CHECKPOINT));
        try (var s = dev.latent.tensor.Scope.shared()) {
            org.junit.jupiter.api.Assertions.assertEquals(bf16, dev.latent.models.classifier.Classifier.load(ck, s).precision());
        }
        Path p1 = dir.resolve("pcnn-one"), p2 = dir.resolve("pcnn-two");
        java.util.function.Function<Path, dev.latent.models.pixelcnn.PixelCnnTrainer.Config> cfg = out -> new dev.latent.models.pixelcnn.PixelCnnTrainer.Config(
                data.toString(), out, new dev.latent.models.pixelcnn.GatedPixelCnn.Arch(4, 1, 3, 3, 8), 1, 4, 3e-3f, 1, 8, 2, 1, 1234, 1, true);
        try (var s = dev.latent.tensor.Scope.shared()) {
            new dev.latent.models.pixelcnn.PixelCnnTrainer(cfg.apply(p1), s, Device.CUDA).precision(bf16).run(3, false, Long.MAX_VALUE);
        }
        try (var s = dev.latent.tensor.Scope.shared()) {
            new dev.latent.models.pixelcnn.PixelCnnTrainer(cfg.apply(p2), s, Device.CUDA).precision(bf16).run(3, false, 1);
        }
        try (var s = dev.latent.tensor.Scope.shared()) {
            new dev.latent.models.pixelcnn.PixelCnnTrainer(cfg.apply(p2), s, Device.CUDA).precision(bf16).run(3, true, Long.MAX_VALUE);
        }
        ResumeBitIdentityTestAccess.sameCheckpoint(p1.resolve(dev.latent.models.pixelcnn.PixelCnnTrainer.CHECKPOINT),
                p2.resolve(dev.latent.models.pixelcnn.PixelCnnTrainer.CHECKPOINT));
        org.junit.jupiter.api.Assertions.assertTrue(java.nio.file.Files.isRegularFile(p1.resolve("samples-epoch-001.png")), "the sample grid of epoch 1");
    }
}
