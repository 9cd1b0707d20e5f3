package dev.latent.cuda;

import dev.latent.models.gpt.GptFusedClassifierTest;
import dev.latent.tensor.Device;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import static dev.latent.cuda.CudaTesting.device;

/**
 * On Device.CUDA, the classifier fused with the loss (F.crossEntropyInPlace: ltk_softmax_xent writing d loss / d logits
 * over the logits): crossEntropy's loss and gradient bits, the logits' buffer holding the gradient, one logits-sized
 * device buffer less (GptFusedClassifierTest's checks). Gpt.loss on the device against the separate buffer:
 * CudaGptFusedResidualTest.
 */
class CudaFusedClassifierTest {
    @BeforeAll
    static void setUp() { device(); }

    @Test
    void inPlaceKeepsTheBitsAndSavesTheBuffer() { GptFusedClassifierTest.inPlaceKeepsTheBitsAndSavesTheBuffer(Device.CUDA); }
}
