package dev.latent.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.Color;
import java.awt.image.BufferedImage;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

/** The loss chart survives a machine without fonts (seen on a GPU server: the JDK's font setup threw an Error). */
class PlotTest {
    @Test
    void noFontsStillWritesTheCurves(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("loss.png");
        var s = new Plot.Series("loss", new double[] {0, 1, 2, 3}, new double[] {4, 3, 2.5, 2}, Color.BLUE);
        boolean labels = Plot.lines(f, "t", "x", "y", List.of(s), (g, str, x, y) -> {
            throw new Error("Fontconfig head is null, check your fonts or fonts configuration");
        });
        assertFalse(labels);
        BufferedImage img = ImageIO.read(f.toFile());
        assertNotNull(img);
        assertEquals(800, img.getWidth());
        int blue = 0;
        for (int y = 0; y < img.getHeight(); y++)
            for (int x = 0; x < img.getWidth(); x++) {
                Color c = new Color(img.getRGB(x, y));
                if (c.getBlue() > 150 && c.getRed() < 100) blue++;
            }
        assertNotEquals(0, blue, "the curve is drawn");
    }
}
