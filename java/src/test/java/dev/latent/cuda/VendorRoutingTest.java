package dev.latent.cuda;

import dev.latent.data.ImageData;
import dev.latent.models.gpt.GptConfig;
import dev.latent.tensor.Device;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;

import static dev.latent.cuda.CudaTesting.close;
import static dev.latent.cuda.CudaTesting.device;
import static dev.latent.cuda.CudaTesting.gradTol;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Whole training steps on CUDA with our kernels only (LATENT_CUDA_VENDOR=0's routing, CudaVendor.force(false)) against
 * the same steps where the vendor libraries serve GEMMs and convolutions (the stand-ins on the emulated driver, NVIDIA's
 * on a GPU), and against the CPU. Where cuBLAS / cuDNN are loaded the other CUDA tests run through them, so this keeps
 * our GEMM and convolution kernels covered end to end in the models. Tolerances: CudaGptTest's and CudaVaeTest's
 * (both sides are within them of the CPU).
 */
class VendorRoutingTest {
    @AfterEach
    void restore() { CudaVendor.force(null); }

    @Test
    void gptStepWithOurKernelsAndWithTheVendors() {
        device();
        GptConfig cfg = new GptConfig(65, 2, 2, 32, 16, false);
        SplittableRandom r = new SplittableRandom(5);
        int n = 2 * cfg.context();
        int[] ids = new int[n], targets = new int[n];
        for (int i = 0; i < n; i++) { ids[i] = r.nextInt(65); targets[i] = r.nextInt(65); }
        float lr = 1e-2f;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment hi = a.allocateFrom(JAVA_INT, ids), ht = a.allocateFrom(JAVA_INT, targets);
            CudaGptTest.Step cpu = CudaGptTest.step(Device.CPU, cfg, hi, ht, lr);
            CudaVendor.force(false);
            CudaGptTest.Step ours = CudaGptTest.step(Device.CUDA, cfg, hi, ht, lr);
            CudaVendor.force(true);
            CudaGptTest.Step vendor = CudaGptTest.step(Device.CUDA, cfg, hi, ht, lr);
            System.out.printf("GPT step: loss CPU %.7f, CUDA ours %.7f, CUDA vendor %.7f%n", cpu.loss(), ours.loss(), vendor.loss());
            for (CudaGptTest.Step s : new CudaGptTest.Step[] {ours, vendor}) {
                assertEquals(cpu.loss(), s.loss(), 1e-5 * Math.abs(cpu.loss()), "loss");
                for (String k : cpu.grads().keySet()) {
                    float[] gc = cpu.grads().get(k);
                    double gtol = gradTol(gc);
                    close((s == ours ? "ours" : "vendor") + " grad " + k, s.grads().get(k), gc, i -> gtol);
                }
            }
        }
    }

    @Test
    void vaeStepWithOurKernelsAndWithTheVendors() {
        device();
        ImageData data = CudaVaeTest.images(2, 15);
        CudaVaeTest.Step cpu = CudaVaeTest.step(Device.CPU, data, false, 0);
        CudaVendor.force(false);
        CudaVaeTest.compare("our kernels only", cpu, CudaVaeTest.step(Device.CUDA, data, false, 0));
        CudaVendor.force(true);
        CudaVaeTest.compare("vendor libraries where loaded", cpu, CudaVaeTest.step(Device.CUDA, data, false, 0));
    }
}
