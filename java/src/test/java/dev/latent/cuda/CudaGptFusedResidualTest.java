package dev.latent.cuda;

import dev.latent.models.gpt.GptConfig;
import dev.latent.models.gpt.GptFusedResidualTest;
import dev.latent.tensor.Device;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import static dev.latent.cuda.CudaTesting.device;

/**
 * On Device.CUDA, GPT's blocks with the residual adds fused into the LayerNorms (ltk_layernorm_residual_fwd /
 * _bwd_dx) give the loss and gradients of the unfused blocks (ltk_axpby then ltk_layernorm_*) bit for bit.
 */
class CudaGptFusedResidualTest {
    @BeforeAll
    static void setUp() { device(); }

    @Test
    void fusedBlocksGiveTheUnfusedLossAndGradientsBitForBit() {
        GptConfig cfg = new GptConfig(65, 2, 2, 32, 16, false);
        GptFusedResidualTest.assertSameBits(GptFusedResidualTest.lossAndGrads(Device.CUDA, cfg, 2, true, 11),
                                            GptFusedResidualTest.lossAndGrads(Device.CUDA, cfg, 2, false, 11));
    }
}
