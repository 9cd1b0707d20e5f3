package dev.latent.serve;

import dev.latent.io.SafeTensors;
import dev.latent.models.flow.RealNvp;
import dev.latent.models.gan.Dcgan;
import dev.latent.models.vae.ConvVae;
import dev.latent.models.vae.VaeSampler;
import dev.latent.models.vae.VaeTrainer;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.LongStream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The image generators (issue 19): for the VAE, the GAN generator and a RealNVP, a request's images are the same
 * bits alone and under 6 concurrent clients, differ with the seed, and (VAE) equal the library's sampler on a
 * model loaded the usual way; bad requests and checkpoints are refused with their names.
 */
class ImageGeneratorsTest {
    @TempDir static Path dir;
    static Path vae, gan, flow;

    @BeforeAll
    static void checkpoints() throws Exception {
        try (Scope s = Scope.shared()) {
            ConvVae m = new ConvVae(s, 4, 11);
            Map<String, Tensor> t = new LinkedHashMap<>();
            m.namedParameters().forEach((k, v) -> t.put(k, v.value()));
            vae = dir.resolve("vae.safetensors");
            SafeTensors.write(vae, t, Map.of("format", "latent-vae-1", "step", "0",
                    "config", "{\"data\":\"x\",\"latent\":4,\"likelihood\":\"bernoulli\",\"sigma\":0.1}"));
            Dcgan.Generator g = new Dcgan.Generator(s, 8, 8, 5);
            Map<String, Tensor> gt = new LinkedHashMap<>();
            g.namedParameters().forEach((k, v) -> gt.put("G." + k, v.value()));
            g.buffers("G.", gt);
            gan = dir.resolve("gan.safetensors");
            SafeTensors.write(gan, gt, Map.of("format", "latent-gan-1", "iter", "0",
                    "config", "{\"loss\":\"gan\",\"data\":\"x\",\"iters\":1,\"batch\":8,\"nz\":8,\"ngf\":8,\"ndf\":8,\"seed\":1}"));
            RealNvp r = new RealNvp(s, 28, 28, 2, 8, 0.05, 3);
            Map<String, Tensor> rt = new LinkedHashMap<>();
            r.namedParameters().forEach((k, v) -> rt.put(k, v.value()));
            flow = dir.resolve("realnvp.safetensors");
            SafeTensors.write(flow, rt, Map.of("format", "latent-realnvp-1", "step", "0",
                    "config", "{\"data\":\"x\",\"h\":28,\"w\":28,\"couplings\":2,\"hidden\":8}"));
        }
    }

    static void sameAloneAndUnderLoad(Path ckpt) throws Exception {
        try (Generator<ImageGenerators.ImageRequest, ImageGenerators.Images> g = ImageGenerators.load(ckpt, 3, 64)) {
            List<byte[]> alone = new ArrayList<>();
            for (int i = 0; i < 6; i++) alone.add(g.generate(new ImageGenerators.ImageRequest(3 + i, 100 + i)).pixels());
            for (int i = 0; i < 6; i++) assertEquals((3 + i) * 784, alone.get(i).length, ckpt + " request " + i);
            assertFalse(java.util.Arrays.equals(java.util.Arrays.copyOf(alone.get(0), 784), java.util.Arrays.copyOf(alone.get(1), 784)),
                    ckpt + ": another seed, another first image");
            try (ExecutorService ex = Executors.newFixedThreadPool(6)) {
                List<Future<byte[]>> fs = new ArrayList<>();
                for (int round = 0; round < 3; round++)
                    for (int i = 0; i < 6; i++) {
                        int k = i;
                        fs.add(ex.submit(() -> g.generate(new ImageGenerators.ImageRequest(3 + k, 100 + k)).pixels()));
                    }
                for (int j = 0; j < fs.size(); j++) assertArrayEquals(alone.get(j % 6), fs.get(j).get(), ckpt + " concurrent request " + j);
            }
        }
    }

    @Test
    void vaeImagesAreTheLibrarySamplersAndStableUnderLoad() throws Exception {
        sameAloneAndUnderLoad(vae);
        try (Scope s = Scope.shared(); var g = ImageGenerators.vae(vae, 2, 8)) {
            VaeTrainer t = VaeTrainer.load(vae, s);
            byte[] want = VaeSampler.sample(t.hostModel(), t.cfg.likelihood(), 7, LongStream.range(0, 70).toArray());
            assertArrayEquals(want, g.generate(new ImageGenerators.ImageRequest(70, 7)).pixels(), "70 images (two batches of the generator)");
        }
    }

    @Test
    void ganImagesAreStableUnderLoad() throws Exception { sameAloneAndUnderLoad(gan); }

    @Test
    void flowImagesAreStableUnderLoad() throws Exception { sameAloneAndUnderLoad(flow); }

    @Test
    void badRequestsAndCheckpointsAreNamed() throws Exception {
        assertThrows(IllegalArgumentException.class, () -> new ImageGenerators.ImageRequest(0, 1));
        assertThrows(IllegalArgumentException.class, () -> new ImageGenerators.ImageRequest(100_000, 1));
        assertThrows(IllegalArgumentException.class, () -> new ImageGenerators.ImageRequest(1, 1, Double.NaN, null));
        var e = assertThrows(java.io.IOException.class, () -> ImageGenerators.load(dir.resolve("missing"), 1, 1));
        assertTrue(e.getMessage().contains("missing"), e.getMessage());
        Path wrong = dir.resolve("wrong.safetensors");
        try (Scope s = Scope.shared()) {
            SafeTensors.write(wrong, Map.of("x", Tensor.of(s, new float[] {1}, 1)), Map.of("format", "latent-gpt-1"));
        }
        e = assertThrows(java.io.IOException.class, () -> ImageGenerators.load(wrong, 1, 1));
        assertTrue(e.getMessage().contains("latent-gpt-1") && e.getMessage().contains("not an image model"), e.getMessage());
        // a GAN checkpoint whose config does not match its tensors
        Path badGan = dir.resolve("bad-gan.safetensors");
        try (Scope s = Scope.shared(); var m = SafeTensors.map(gan)) {
            Map<String, Tensor> t = new LinkedHashMap<>();
            for (String k : new String[] {"G.main.0.weight"}) t.put(k, m.tensor(k, s));
            SafeTensors.write(badGan, t, Map.of("format", "latent-gan-1", "config", "{\"nz\":9,\"ngf\":8}"));
        }
        e = assertThrows(java.io.IOException.class, () -> ImageGenerators.gan(badGan, 1, 1));
        assertTrue(e.getMessage().contains("G.main.0.weight"), e.getMessage());
        try (var g = ImageGenerators.vae(vae, 1, 1)) {
            var p = g.submit(new ImageGenerators.ImageRequest(9000, 1, 1.0, java.time.Duration.ZERO));
            var ex = assertThrows(Exception.class, p::await);
            assertTrue(String.valueOf(ex.getMessage()).contains("deadline") || ex instanceof RequestControl.StoppedException, String.valueOf(ex));
        }
    }
}
