package dev.latent.models.gan;

import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.tensor.Device;
import dev.latent.tensor.Tensor;

import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * Samples of a DCGAN / WGAN-GP generator as 8-bit pixels, for services. The generator runs as the reference samples
 * it (BatchNorm on the batch's statistics, in an inference graph, which leaves the running statistics alone), so a
 * request's n images depend on (seed, n) and on nothing else: the same bits alone or under any concurrency. Many
 * threads may sample at once (the generator is only read).
 */
public final class GanSampler {
    private GanSampler() {}

    /**
     * The generator of a GAN checkpoint (file or run folder), weights and BatchNorm statistics only (no critic, no
     * optimizer moments), in {@code scope}. The file is mapped and its tensors copied one at a time.
     */
    public static Dcgan.Generator load(java.nio.file.Path dirOrFile, dev.latent.tensor.Scope scope) throws java.io.IOException {
        java.nio.file.Path f = java.nio.file.Files.isDirectory(dirOrFile) ? dirOrFile.resolve(GanTrainer.CHECKPOINT) : dirOrFile;
        if (!java.nio.file.Files.isRegularFile(f)) throw new java.io.IOException("no GAN checkpoint at " + f);
        try (dev.latent.io.SafeTensors.Mapped m = dev.latent.io.SafeTensors.map(f)) {
            if (!GanTrainer.FORMAT.equals(m.metadata().get("format")))
                throw new java.io.IOException(f + ": not a Latent GAN checkpoint (format " + m.metadata().get("format") + ")");
            java.util.Map<String, Object> c;
            try {
                c = dev.latent.io.JsonReader.parseObject(String.valueOf(m.metadata().get("config")));
            } catch (IllegalArgumentException e) {
                throw new java.io.IOException(f + ": bad config metadata: " + e.getMessage());
            }
            long nz = positive(f, c, "nz"), ngf = positive(f, c, "ngf");
            dev.latent.train.Limits.fitsInMemory("a GAN generator with nz " + nz + ", ngf " + ngf,
                    dev.latent.train.Limits.product(ngf, ngf, 64), 4);
            Dcgan.Generator g = new Dcgan.Generator(scope, nz, ngf, GanTrainer.classesIn(f, c), 0);
            java.util.Map<String, Tensor> want = new java.util.LinkedHashMap<>();
            g.namedParameters().forEach((k, v) -> want.put("G." + k, v.value()));
            g.buffers("G.", want);
            for (var e : want.entrySet()) {
                Tensor src = m.tensor(e.getKey(), scope);
                if (!java.util.Arrays.equals(src.shape(), e.getValue().shape()))
                    throw new java.io.IOException(f + ": tensor " + e.getKey() + " has shape " + java.util.Arrays.toString(src.shape())
                            + ", the config (nz " + nz + ", ngf " + ngf + ") says " + java.util.Arrays.toString(e.getValue().shape()));
                long bad = dev.latent.train.Limits.nonFinite(src);
                if (bad > 0) throw new java.io.IOException(f + ": tensor " + e.getKey() + " holds " + bad + " NaN or infinite values");
                MemorySegment.copy(src.segment(), 0, e.getValue().segment(), 0, src.numel() * 4);
            }
            return g;
        }
    }

    private static long positive(java.nio.file.Path f, java.util.Map<String, Object> c, String k) throws java.io.IOException {
        if (!(c.get(k) instanceof Long v) || v < 1 || v > 1 << 20)
            throw new java.io.IOException(f + ": config " + k + " = " + c.get(k) + ", expected an integer in [1, 2^20]");
        return v;
    }

    /** n images of the generator, z ~ N(0, I) on Philox (seed, 0), cropped from 32 x 32 to 28 x 28: n x 784 bytes, round((x + 1) 127.5). */
    public static byte[] sample(Dcgan.Generator g, long seed, int n) { return sample(g, seed, n, -1); }

    /**
     * As {@link #sample(Dcgan.Generator, long, int)}, every image of class {@code cls} for a class-conditional generator
     * (cls in [0, classes)); an unconditional one takes cls = -1 only.
     */
    public static byte[] sample(Dcgan.Generator g, long seed, int n, int cls) {
        if (n < 1) throw new IllegalArgumentException("GanSampler: n = " + n + ", expected >= 1");
        if (g.classes == 0 && cls != -1) throw new IllegalArgumentException(GanTrainer.notConditional("GanSampler"));
        if (g.classes > 0 && (cls < 0 || cls >= g.classes))
            throw new IllegalArgumentException("GanSampler: class " + cls + " outside [0, " + g.classes + ") (a conditional generator needs a class)");
        byte[] out = new byte[Math.multiplyExact(n, 784)];
        try (Graph gr = Graph.inference()) {
            Tensor z = GanTrainer.latent(gr.scope(), seed, 0, n, g.nz);
            Device dev = g.namedParameters().values().iterator().next().value().device();
            java.lang.foreign.MemorySegment ys = null;
            if (g.classes > 0) {
                ys = gr.scope().allocate(4L * n);
                for (int i = 0; i < n; i++) ys.setAtIndex(java.lang.foreign.ValueLayout.JAVA_INT, i, cls);
            }
            Var x = g.forward(Var.constant(dev == Device.CPU ? z : z.to(gr.scope(), dev)), ys);
            Tensor h = x.value().device() == Device.CPU ? x.value() : x.value().to(gr.scope(), Device.CPU);
            MemorySegment s = h.contiguous().segment();
            for (int k = 0; k < n; k++)
                for (int y = 0; y < 28; y++)
                    for (int xx = 0; xx < 28; xx++) {
                        float v = s.getAtIndex(JAVA_FLOAT, (long) k * 1024 + (y + 2) * 32 + xx + 2);
                        out[k * 784 + y * 28 + xx] = (byte) Math.round((Math.min(1f, Math.max(-1f, v)) + 1f) * 127.5f);
                    }
        }
        return out;
    }
}
