package example.service;

import dev.latent.serve.Generator;
import dev.latent.serve.ImageGenerators;
import dev.latent.serve.ImageGenerators.ImageRequest;
import dev.latent.serve.ImageGenerators.Images;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The load test of the image generators (ImageGenerators: VAE, GAN, flows), in process: CLIENTS threads send
 * requests of N images with one of 16 seeds for SECONDS; every answer is compared with the single-threaded answer
 * computed before the load; prints images/s and the latency percentiles, and exits 1 on any wrong or failed answer.
 * Usage: ImageLoadTest CHECKPOINT [CLIENTS=8] [SECONDS=10] [N=16] [WORKERS=2]
 */
public final class ImageLoadTest {
    public static void main(String[] args) throws Exception {
        Path ckpt = Path.of(args[0]);
        int clients = args.length > 1 ? Integer.parseInt(args[1]) : 8, seconds = args.length > 2 ? Integer.parseInt(args[2]) : 10;
        int n = args.length > 3 ? Integer.parseInt(args[3]) : 16, workers = args.length > 4 ? Integer.parseInt(args[4]) : 2;
        if (clients < 1 || clients > 1024 || seconds < 1 || seconds > 3600 || workers < 1)
            throw new IllegalArgumentException("clients in [1, 1024], seconds in [1, 3600], workers >= 1");
        try (Generator<ImageRequest, Images> g = ImageGenerators.load(ckpt, workers, 4 * clients)) {
            byte[][] expected = new byte[16][];
            for (int s = 0; s < 16; s++) expected[s] = g.generate(new ImageRequest(n, 500 + s)).pixels();
            long end = System.nanoTime() + seconds * 1_000_000_000L;
            AtomicLong images = new AtomicLong(), wrong = new AtomicLong(), failed = new AtomicLong();
            List<Long> lat = Collections.synchronizedList(new ArrayList<>());
            long t0 = System.nanoTime();
            try (ExecutorService ex = Executors.newFixedThreadPool(clients)) {
                List<Future<?>> fs = new ArrayList<>();
                for (int c = 0; c < clients; c++) {
                    int client = c;
                    fs.add(ex.submit(() -> {
                        for (int i = 0; System.nanoTime() < end; i++) {
                            int s = (client * 7 + i) % 16;
                            long a = System.nanoTime();
                            try {
                                byte[] px = g.generate(new ImageRequest(n, 500 + s)).pixels();
                                lat.add(System.nanoTime() - a);
                                if (!Arrays.equals(px, expected[s])) wrong.incrementAndGet();
                                images.addAndGet(n);
                            } catch (Exception e) {
                                failed.incrementAndGet();
                            }
                        }
                        return null;
                    }));
                }
                for (Future<?> f : fs) f.get();
            }
            double wall = (System.nanoTime() - t0) / 1e9;
            long[] l = lat.stream().mapToLong(Long::longValue).sorted().toArray();
            System.out.printf(Locale.ROOT, "image load test: %s, %d clients x %d s, %d images per request, %d workers: %d requests, %.1f images/s,"
                            + " latency p50 %.1f ms, p99 %.1f ms; wrong answers %d, failed %d%n",
                    ckpt.getFileName(), clients, seconds, n, workers, l.length, images.get() / wall,
                    l.length == 0 ? 0 : l[l.length / 2] / 1e6, l.length == 0 ? 0 : l[Math.min(l.length - 1, (int) (l.length * 0.99))] / 1e6,
                    wrong.get(), failed.get());
            if (wrong.get() > 0 || failed.get() > 0 || l.length == 0) System.exit(1);
        }
    }
}
