package dev.latent.cli;

import dev.latent.data.Idx;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/**
 * issue 21 end to end: `train dcgan|vae --conditional`, then `sample dcgan|vae --class K` (PNG and IDX3) and
 * `sample vae --analogy`; the checkpoint's config says conditional with the class count. Refusals are HostileCliTest rows.
 */
class ConditionalCliTest {
    @TempDir Path dir;

    @Test
    void conditionalDcganAndVaeTrainAndSampleAClass() throws Exception {
        Path data = Files.createDirectories(dir.resolve("data"));
        dev.latent.SyntheticImages.write(data, "train", 40, 1);
        dev.latent.SyntheticImages.write(data, "t10k", 40, 2);   // the VAE's epoch pictures read 32 test images
        Path gan = dir.resolve("gan"), vae = dir.resolve("vae");
        assertEquals(0, HostileCliTest.quiet("train", "dcgan", "--data", data.toString(), "--out", gan.toString(), "--iters", "3", "--batch", "8",
                "--nz", "8", "--ngf", "8", "--ndf", "8", "--conditional", "--quiet"));
        assertEquals(0, HostileCliTest.quiet("train", "vae", "--data", data.toString(), "--out", vae.toString(), "--epochs", "1", "--batch", "8",
                "--latent", "4", "--iwae-n", "0", "--conditional", "--quiet"));
        for (Path run : new Path[] {gan, vae}) {
            try (var s = dev.latent.tensor.Scope.confined()) {
                String config = dev.latent.io.SafeTensors.read(run.resolve("checkpoint.safetensors"), s).metadata().get("config");
                assertTrue(config.contains("\"conditional\":true") && config.contains("\"classes\":10"), config);
            }
        }
        assertTrue(Files.isRegularFile(vae.resolve("analogy.png")));
        for (String model : new String[] {"dcgan", "vae"}) {
            Path run = model.equals("dcgan") ? gan : vae;
            Path png = dir.resolve(model + "-7.png"), idx = dir.resolve(model + "-7-idx3-ubyte");
            var r = HostileCliTest.invoke0("sample", model, "--checkpoint", run.toString(), "--out", png.toString(), "--n", "9", "--class", "7");
            assertEquals("0", r.exit(), r.err());
            assertTrue(r.out().contains("\"class\":7"), r.out());
            assertTrue(Files.size(png) > 0);
            var settings = (java.util.Map<?, ?>) dev.latent.io.Provenance.read(png).orElseThrow().get("settings");
            assertEquals(7, ((Number) settings.get("class")).intValue(), "the PNG's provenance names the class");
            r = HostileCliTest.invoke0("sample", model, "--checkpoint", run.toString(), "--out", idx.toString(), "--n", "12", "--class", "7");
            assertEquals("0", r.exit(), r.err());
            assertArrayEquals(new int[] {12, 28, 28}, Idx.read(idx).dims());
        }
        Path grid = dir.resolve("analogy.png");
        var r = HostileCliTest.invoke0("sample", "vae", "--checkpoint", vae.toString(), "--out", grid.toString(), "--n", "3", "--analogy");
        assertEquals("0", r.exit(), r.err());
        var img = dev.latent.io.Png.read(grid);
        assertTrue(img.width() > img.height(), "3 rows of 10 classes: wider than high, got " + img.width() + "x" + img.height());
    }
}
