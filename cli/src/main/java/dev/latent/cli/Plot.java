package dev.latent.cli;

import dev.latent.io.AtomicFiles;
import dev.latent.io.Png;
import dev.latent.train.TrainingListener;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Line plots as PNG (loss curves), drawn into a BufferedImage with java.awt: no plotting dependency, no window (it
 * does not set {@code java.awt.headless}, which is the application's choice; the CLI's {@link Main} runs headless).
 * The CLI's only user of java.desktop: the core library hands the curves over in a
 * {@link TrainingListener#onCurves} event and {@link ConsoleListener} draws them here as {@code loss.png}. Text needs fonts:
 * on a server without fontconfig or any font (a minimal container, a jlinked runtime), the JDK throws an Error from its
 * font setup. The curves are the point, so then the plot is written without its labels and the reason is logged once
 * ({@link System.Logger} {@code dev.latent.cli}, WARNING); a training run never fails over its chart.
 */
public final class Plot {
    private Plot() {}

    /** One curve: its legend name, the points (x[i], y[i]; non-finite y are skipped) and its colour. */
    public record Series(String name, double[] x, double[] y, Color color) {}

    /** Draws a string at (x, y); the default is Graphics2D.drawString with a 12-point sans-serif font. */
    interface Text { void draw(Graphics2D g, String s, int x, int y); }

    private static final Text AWT_TEXT = (g, s, x, y) -> {
        if (g.getFont() == null || g.getFont().getSize() != 12) g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
        g.drawString(s, x, y);
    };

    private static volatile boolean warned;

    /** Colours of the curves of a {@link TrainingListener.Curves}, in legend order (then again from the first). */
    static final Color[] PALETTE = {new Color(70, 110, 200), new Color(210, 60, 40), new Color(30, 160, 60), new Color(150, 80, 170)};

    /** Draws a run's curves into {@code file}. */
    static void curves(Path file, TrainingListener.Curves c) throws IOException {
        List<Series> series = new ArrayList<>();
        for (TrainingListener.Series s : c.series())
            series.add(new Series(s.name(), s.x(), s.y(), PALETTE[series.size() % PALETTE.length]));
        lines(file, c.title(), c.xLabel(), c.yLabel(), series);
    }

    public static void lines(Path file, String title, String xLabel, String yLabel, List<Series> series) throws IOException {
        lines(file, title, xLabel, yLabel, series, AWT_TEXT);
    }

    /** Returns whether the labels were drawn (false: no usable fonts, curves only). */
    static boolean lines(Path file, String title, String xLabel, String yLabel, List<Series> series, Text text) throws IOException {
        int w = 800, h = 500, l = 70, r = 20, t = 40, b = 50;
        double x0 = Double.POSITIVE_INFINITY, x1 = Double.NEGATIVE_INFINITY, y0 = Double.POSITIVE_INFINITY, y1 = Double.NEGATIVE_INFINITY;
        for (Series s : series)
            for (int i = 0; i < s.x().length; i++) {
                if (!Double.isFinite(s.y()[i])) continue;
                x0 = Math.min(x0, s.x()[i]); x1 = Math.max(x1, s.x()[i]);
                y0 = Math.min(y0, s.y()[i]); y1 = Math.max(y1, s.y()[i]);
            }
        if (!(x1 > x0)) { x0 = 0; x1 = Math.max(1, x1); }
        if (!(y1 > y0)) { y0 = y0 - 1; y1 = y0 + 2; }
        BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
        g.setColor(Color.WHITE);
        g.fillRect(0, 0, w, h);
        g.setColor(Color.BLACK);
        g.drawRect(l, t, w - l - r, h - t - b);
        boolean labels = true;
        try {
            text.draw(g, title, l, 20);
            text.draw(g, xLabel, w / 2, h - 10);
            text.draw(g, yLabel, 5, t - 8);
            for (int k = 0; k <= 4; k++) {
                double yv = y0 + (y1 - y0) * k / 4, xv = x0 + (x1 - x0) * k / 4;
                int py = t + (int) ((h - t - b) * (1 - k / 4.0)), px = l + (int) ((w - l - r) * k / 4.0);
                text.draw(g, String.format(Locale.ROOT, "%.3g", yv), 5, py + 4);
                text.draw(g, String.format(Locale.ROOT, "%.0f", xv), px - 10, h - b + 15);
            }
        } catch (VirtualMachineError e) {
            throw e;
        } catch (RuntimeException | Error e) {   // the JDK's font setup throws java.lang.Error ("Fontconfig head is null")
            labels = false;
            if (!warned) {
                warned = true;
                System.getLogger("dev.latent.cli").log(System.Logger.Level.WARNING,
                        "latent: " + file.getFileName() + " drawn without labels: no usable fonts (" + e + ")");
            }
        }
        int ly = t + 15;
        for (Series s : series) {
            g.setColor(s.color());
            g.setStroke(new BasicStroke(1.6f));
            int px = -1, py = -1;
            for (int i = 0; i < s.x().length; i++) {
                if (!Double.isFinite(s.y()[i])) continue;
                int qx = l + (int) ((w - l - r) * (s.x()[i] - x0) / (x1 - x0));
                int qy = t + (int) ((h - t - b) * (1 - (s.y()[i] - y0) / (y1 - y0)));
                if (px >= 0) g.drawLine(px, py, qx, qy);
                px = qx; py = qy;
            }
            if (labels) text.draw(g, s.name(), w - r - 150, ly);
            ly += 15;
        }
        g.dispose();
        Png.Image rgb = new Png.Image(w, h, 3, new byte[w * h * 3]);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int p = img.getRGB(x, y), o = (y * w + x) * 3;
                rgb.pixels()[o] = (byte) (p >> 16);
                rgb.pixels()[o + 1] = (byte) (p >> 8);
                rgb.pixels()[o + 2] = (byte) p;
            }
        AtomicFiles.writePng(file, rgb);
        return labels;
    }
}
