package dev.latent.cuda;

import dev.latent.models.InPlaceLossTest;
import dev.latent.tensor.Device;
import org.junit.jupiter.api.Test;

/**
 * On Device.CUDA, the training losses of Classifier, GatedPixelCnn and WaveNet written over their logits
 * (F.crossEntropyInPlace): InPlaceLossTest's checks on the device, the loss and every gradient bit for bit against
 * F.crossEntropy, one logits-sized device buffer less (Scope.liveDeviceBytes), two training steps' losses and weights.
 */
class CudaInPlaceLossTest extends AtRefIsaOnDevice {
    @Test
    void classifier() { InPlaceLossTest.classifier(Device.CUDA); }

    @Test
    void pixelCnn() { InPlaceLossTest.pixelCnn(Device.CUDA); }

    @Test
    void waveNet() { InPlaceLossTest.waveNet(Device.CUDA); }
}
