package dev.latent.models.pixelcnn;

import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.cuda.Cuda;
import dev.latent.cuda.CudaGraphStep;
import dev.latent.cuda.CudaPixelKernels;
import dev.latent.cuda.DeviceBuffer;
import dev.latent.nn.MaskedConv2d;
import dev.latent.ops.Kernels;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Objects;
import java.util.SplittableRandom;

import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * Pixel-by-pixel sampling of a {@link GatedPixelCnn} whose parameters live on {@link Device#CUDA}, the whole batch at
 * once, every layer on the device, and the per-pixel draw on the device too ({@code ltk_pixel_draw}), so nothing comes
 * back to the host per pixel: the uniforms go up once, the drawn bytes come back once.
 *
 * <p>The work per image follows the masks (as {@link PixelCnnSampler}'s cached mode, at the granularity of rows):
 * <ul>
 *   <li>When row i starts, block l's vertical stack runs on rows max(0, i - k/2) .. i of its input (the image, or
 *       block l - 1's vertical output, kept for the whole image on the device) with the layer's padding, and the last
 *       output row is row i of the full-image convolution: the taps below row i are masked, the rows above the window
 *       are outside the kernel. Its gate goes into the block's vertical output at row i, and the 1x1 link (v2h) of
 *       row i is kept for the row.</li>
 *   <li>For pixel (i, j) the horizontal stacks and the head run at (i, j) only ({@link Horizontal#POSITION}, as the
 *       cached CPU sampler): block l's inputs left of j on row i are final, so its 1 x k masked convolution at (i, j)
 *       is the n images' taps j - k/2 .. j (j - 1 for mask A) gathered from a row buffer ({@code ltk_pixel_taps_at})
 *       times the masked weight's kept columns, one GEMM of n rows; the link's column j is added, the gate, the 1x1
 *       output as a second GEMM, the residual; the result goes into the next block's row buffer at column j
 *       ({@code ltk_pixel_column_put_at}). Then the head on the last block's (n, C), giving (n, 256) logits, and
 *       {@code ltk_pixel_draw_at} writes each image's value into the image and into block 0's row buffer. Per pixel
 *       that is 1/W of the former path's horizontal work ({@link Horizontal#ROW}: the row's whole 1 x k convolutions
 *       per pixel, kept as the reference the tests compare against).</li>
 * </ul>
 * The convolutions, activations, additions and linear layers are the library's device ops ({@link F} in an inference
 * graph): cuDNN / cuBLAS where present, else our kernels.
 *
 * <p>By default the pixel step (the horizontal stacks at the pixel, the head, the draw) is a CUDA graph: captured on the
 * second pixel of a call ({@link CudaGraphStep}, the first is the warm-up) and replayed once per pixel, one
 * cuGraphLaunch instead of ~10 launches per block. Nothing in it names the pixel by value: the position is an int32 in
 * device memory that the draw advances ({@code ltk_pixel_draw_at}; the taps and columns are gathered and put at it),
 * the row buffers are fixed for the call, and the row's v2h links are copied into fixed buffers when the row starts.
 * Without the graph the same step runs plainly: the same ops on the same values, the same bytes
 * ({@code CudaPixelCnnGraphTest}). {@value #GRAPH_ENV}=0 turns it off; a capture that fails (a driver or library that
 * refuses it) is logged once per call and the call goes on uncaptured. The row starts' vertical work is not captured
 * (its window has fewer rows for the first k/2 rows).
 *
 * <p>Draws: image {@code id} uses the uniforms of {@link PixelCnnSampler} (a {@link SplittableRandom} keyed by
 * (seed, id), one per pixel in raster order) and its rule ({@link PixelCnnSampler#draw}: inverse CDF in double), so
 * for the same seed the device draws the CPU's bytes wherever the two devices' logits do not straddle a CDF boundary
 * at u (they agree to float rounding, not bit for bit: different summation orders); after a differing pixel the rest
 * of that image differs. The device's own result is deterministic: the same seed gives the same bytes on every run.
 * Host synchronisations: the upload of the uniforms and the download of the bytes, whatever the number of pixels
 * (plus what the ops' own calls do; none per pixel: {@code CudaPixelCnnTest} counts them). Not thread-safe per
 * instance beyond the model being only read: each call builds its own state.
 */
public final class DevicePixelCnnSampler {
    /** The environment variable that turns the pixel step's CUDA graph off ({@code 0}) for A/B comparisons. */
    public static final String GRAPH_ENV = "LATENT_PIXELCNN_CUDA_GRAPH";
    private static final System.Logger LOG = System.getLogger("dev.latent.models.pixelcnn");

    /**
     * How the horizontal stacks run per pixel: {@link #POSITION} (the default) at the pixel's position only, from the
     * cached rows; {@link #ROW} the former path, the whole row's 1 x k convolutions per pixel and then the pixel's
     * column (W times the work; never captured): the reference the position path is tested against.
     */
    public enum Horizontal { POSITION, ROW }

    private final GatedPixelCnn m;
    private final boolean graph;
    private final Horizontal horizontal;

    /**
     * Whether samplers made without an explicit choice capture the pixel step in a CUDA graph: yes, unless the
     * environment variable {@value #GRAPH_ENV} is {@code 0}.
     */
    public static boolean graphByDefault() { return !"0".equals(System.getenv(GRAPH_ENV)); }

    /**
     * A sampler for {@code model}, whose parameters must be on CUDA (grey images: one channel group); the pixel step
     * runs as a CUDA graph unless {@value #GRAPH_ENV}=0 ({@link #graphByDefault()}).
     */
    public DevicePixelCnnSampler(GatedPixelCnn model) { this(model, graphByDefault()); }

    /**
     * A sampler for {@code model}, the horizontal stacks at one position per pixel; with {@code graph} the pixel step
     * of {@link #sample} (the horizontal stacks at the pixel, the head and the draw) is captured once per call into a
     * CUDA graph and replayed for every pixel: one cuGraphLaunch per pixel. The pixel's position lives in device memory
     * (the draw advances it), so one graph serves every pixel. The same bytes as without ({@code CudaPixelCnnGraphTest}).
     * {@link #logits} (teacher forcing, for tests) never uses a graph.
     */
    public DevicePixelCnnSampler(GatedPixelCnn model, boolean graph) { this(model, graph, Horizontal.POSITION); }

    /** As {@link #DevicePixelCnnSampler(GatedPixelCnn, boolean)}, with the horizontal path chosen ({@link Horizontal#ROW}: no graph). */
    public DevicePixelCnnSampler(GatedPixelCnn model, boolean graph, Horizontal horizontal) {
        this.horizontal = Objects.requireNonNull(horizontal, "horizontal");
        this.graph = graph && horizontal == Horizontal.POSITION;
        m = Objects.requireNonNull(model, "model");
        Device d = model.head2.weight.value().device();
        if (d != Device.CUDA)
            throw new IllegalArgumentException("DevicePixelCnnSampler: the model's parameters are on " + d
                    + ", not CUDA; move them with model.to(scope, Device.CUDA) (or use PixelCnnSampler on the CPU)");
        for (GatedPixelCnn.Block b : model.blocks)
            if (b.vconv.groups != 1 || b.hconv.groups != 1)
                throw new IllegalArgumentException("DevicePixelCnnSampler: grey images (one channel group) only");
    }

    /** {@code n} images of h x w (8-bit grey, row-major, image after image), images 0 .. n-1 of {@code seed}. */
    public byte[] sample(int n, int h, int w, long seed) { return sample(n, h, w, seed, h * w); }

    /** As {@link #sample(int, int, int, long)} but stopping after the first {@code pixels} pixels of each image (the rest stay 0). */
    public byte[] sample(int n, int h, int w, long seed, int pixels) {
        check(n, h, w);
        if (pixels < 0 || pixels > h * w) throw new IllegalArgumentException("DevicePixelCnnSampler: pixels " + pixels + " outside [0, " + h * w + "]");
        return (byte[]) run(n, h, w, seed, pixels, null);
    }

    /**
     * The logits (n h w, 256) of {@code n} given images (8-bit grey, row-major, image after image) by this sampler's
     * path, teacher-forced: each pixel's logits are computed as in {@link #sample} and then the given pixel, not a draw,
     * goes into the image. For tests (the CPU's {@link PixelCnnSampler#logits} and {@link GatedPixelCnn#logits}).
     */
    public float[] logits(byte[] images, int n, int h, int w) {
        check(n, h, w);
        if (images.length != n * h * w) throw new IllegalArgumentException("DevicePixelCnnSampler: " + images.length + " pixels for " + n + " x " + h + " x " + w);
        return (float[]) run(n, h, w, 0, h * w, images);
    }

    private static void check(int n, int h, int w) {
        if (n < 1 || h < 1 || w < 1 || (long) n * h * w * GatedPixelCnn.LEVELS > Integer.MAX_VALUE)
            throw new IllegalArgumentException("DevicePixelCnnSampler: bad size " + n + " x " + h + " x " + w);
    }

    /** Samples (forced null: the bytes) or the teacher-forced logits of {@code forced} (a float[]). */
    private Object run(int n, int h, int w, long seed, int pixels, byte[] forced) {
        int hw = h * w, layers = m.arch.layers(), levels = GatedPixelCnn.LEVELS;
        long c = m.arch.channels();
        Cuda cu = Cuda.get();
        CudaGraphStep steps = null;
        try (Graph g = Graph.inference(); Arena a = Arena.ofConfined()) {
            Scope s = g.scope();
            Tensor img = Tensor.zeros(s, Device.CUDA, n, 1, h, w);
            Tensor u = null, codes = null, given = null, all = null;
            if (forced == null) {
                // the uniforms of PixelCnnSampler, image after image, one per pixel: up once
                MemorySegment us = a.allocate(8L * n * hw, 8);
                for (int id = 0; id < n; id++) {
                    SplittableRandom r = PixelCnnSampler.rng(seed, id);
                    for (int p = 0; p < pixels; p++) us.setAtIndex(JAVA_DOUBLE, (long) id * hw + p, r.nextDouble());
                }
                u = Tensor.empty(s, Device.CUDA, 2L * n * hw);   // doubles in a float tensor's bytes
                DeviceBuffer.of(u.deviceBuffer()).copyFrom(us);
                codes = Tensor.zeros(s, Device.CUDA, (long) n * hw);   // int32 in a float tensor's bytes
            } else {
                float[] f = new float[n * hw];
                for (int k = 0; k < f.length; k++) f[k] = (forced[k] & 0xff) / 255f;   // the sampler's v / 255f
                given = Tensor.of(s, Device.CUDA, f, n, 1, h, w);
                all = Tensor.empty(s, Device.CUDA, n, hw, levels);
            }
            // the masked weights, once (MaskedConv2d.forward multiplies per call)
            Var[] vw = new Var[layers], hwt = new Var[layers];
            Tensor[] vout = new Tensor[layers];
            for (int l = 0; l < layers; l++) {
                GatedPixelCnn.Block b = m.blocks.get(l);
                vw[l] = masked(b.vconv);
                hwt[l] = masked(b.hconv);
                vout[l] = Tensor.zeros(s, Device.CUDA, n, c, h, w);
            }
            // the position path's state, at fixed addresses for the whole call (so one graph serves every pixel)
            PositionStep at = horizontal == Horizontal.POSITION && pixels > 0 ? new PositionStep(cu, s, n, h, w, hwt, u, img, codes) : null;
            if (at != null && graph && forced == null) steps = new CudaGraphStep(1);
            MemorySegment posHost = a.allocate(4, 4);
            for (int i = 0; i < h && i * w < pixels; i++) {
                try (Graph rowG = Graph.inference()) {
                    Var[] link = new Var[layers];
                    for (int l = 0; l < layers; l++) {
                        GatedPixelCnn.Block b = m.blocks.get(l);
                        Tensor vin = l == 0 ? img : vout[l - 1];
                        int half = b.vconv.kernel / 2, lo = Math.max(0, i - half);
                        Tensor win = Kernels.contiguous(rowG.scope(), vin.slice(2, lo, i + 1));
                        Var vp = F.conv2d(Var.constant(win), vw[l], b.vconv.bias, 1, 1, half, half);
                        Var row = Var.constant(Kernels.contiguous(rowG.scope(), vp.value().slice(2, i - lo, i - lo + 1)));   // (n, 2C, 1, w)
                        Kernels.copy(GatedPixelCnn.gate(row, c).value(), vout[l].slice(2, i, i + 1));
                        link[l] = b.v2h.forward(row);
                    }
                    if (at != null) {
                        at.startRow(img.slice(2, i, i + 1), link);
                        for (int j = 0; j < w && i * w + j < pixels; j++) {
                            int p = i * w + j;
                            if (forced != null) {
                                // teacher forcing (uncaptured): the host sets the position, the given pixel goes in afterwards
                                posHost.set(JAVA_INT, 0, p);
                                DeviceBuffer.of(at.pos.deviceBuffer()).copyFrom(posHost);
                                Tensor sink = all.slice(1, p, p + 1), src = given.slice(2, i, i + 1).slice(3, j, j + 1);
                                Tensor inImg = img.slice(2, i, i + 1).slice(3, j, j + 1), inRow = at.rows[0].slice(3, j, j + 1);
                                at.run(lg -> {
                                    Kernels.copy(lg.reshape(n, 1, levels), sink);
                                    Kernels.copy(src, inImg);
                                    Kernels.copy(src, inRow);
                                });
                                continue;
                            }
                            if (steps != null) {
                                try {
                                    steps.step(() -> {}, at::draw);
                                    continue;
                                } catch (IllegalStateException e) {
                                    // a capture that failed ran nothing (the position is unchanged): this pixel and the
                                    // rest run the same step uncaptured; a failure after the capture is a real error
                                    if (steps.captured()) throw e;
                                    LOG.log(System.Logger.Level.WARNING, "DevicePixelCnnSampler: the pixel step could not be captured in a CUDA graph ("
                                            + e.getMessage() + "); sampling without the graph");
                                    steps.close();
                                    steps = null;
                                }
                            }
                            at.draw();
                        }
                        continue;
                    }
                    // Horizontal.ROW: the whole row's horizontal stacks per pixel, then column j (the reference path)
                    for (int j = 0; j < w && i * w + j < pixels; j++) {
                        try (Graph px = Graph.inference()) {
                            Var hin = Var.constant(Kernels.contiguous(px.scope(), img.slice(2, i, i + 1)));   // (n, 1, 1, w)
                            for (int l = 0; l < layers; l++) {
                                GatedPixelCnn.Block b = m.blocks.get(l);
                                int half = b.hconv.kernel / 2;
                                Var hp = F.add(F.conv2d(hin, hwt[l], b.hconv.bias, 1, 1, 0, half), link[l]);
                                Var ho = b.hout.forward(GatedPixelCnn.gate(hp, c));
                                hin = b.residual ? F.add(ho, hin) : ho;
                            }
                            Tensor col = Kernels.contiguous(px.scope(), hin.value().slice(3, j, j + 1)).reshape(n, c);
                            Tensor logits = head(Var.constant(col));   // (n, 256)
                            int p = i * w + j;
                            if (forced == null) {
                                CudaPixelKernels.pixelDraw(cu, n, levels, hw, p, buf(logits), buf(u), 255f, buf(img), buf(codes));
                            } else {
                                Kernels.copy(logits.reshape(n, 1, levels), all.slice(1, p, p + 1));
                                Kernels.copy(given.slice(2, i, i + 1).slice(3, j, j + 1), img.slice(2, i, i + 1).slice(3, j, j + 1));
                            }
                        }
                    }
                }
            }
            if (forced != null) return all.toArray();
            MemorySegment cs = a.allocate(4L * n * hw, 4);
            DeviceBuffer.of(codes.deviceBuffer()).copyTo(cs);
            byte[] out = new byte[n * hw];
            for (int k = 0; k < n * hw; k++) out[k] = (byte) cs.getAtIndex(JAVA_INT, k);
            lastReplays = steps == null ? 0 : steps.replays();
            return out;
        } finally {
            if (steps != null) steps.close();
        }
    }

    private volatile long lastReplays;

    /** The graph launches of the last {@link #sample} call (0 without a graph): for tests and the docs' counts. */
    public long lastGraphLaunches() { return lastReplays; }

    /** The head on (n, C) features: ReLU, head1, ReLU, head2, the (n, 256) logits. */
    private Tensor head(Var features) { return m.head2.forward(F.relu(m.head1.forward(F.relu(features)))).value(); }

    /**
     * The position path's pixel step and its state, every address fixed for the call and the position read on the
     * device ({@code pos}, int32), so the same launches serve every pixel (captured once, or run plainly).
     * {@code rows[l]} is block l's horizontal input on the current row: the image row (n, 1, 1, w) for block 0 (the draw
     * writes it), block l - 1's output (n, C, 1, w) after; column j of each is written by the step of pixel (i, j), and
     * the columns right of j (last row's values) are never read (the taps end at j). Per block: the taps j - k/2 .. j
     * (mask B; .. j - 1, mask A) gathered ({@code ltk_pixel_taps_at}) and one GEMM with the masked weight's kept
     * columns, plus the row's v2h link at column j ({@code ltk_pixel_column_at}), the gate, the 1x1 output as a GEMM,
     * the residual (block l's input at j), the result put into {@code rows[l + 1]} at j ({@code ltk_pixel_column_put_at}).
     */
    private final class PositionStep {
        final Cuda cu;
        final int n, h, w;
        final long c;
        final Tensor pos, u, img, codes;
        final Tensor[] rows, link;
        final Var[] tapW, outW;
        final int[] lo, nt;

        PositionStep(Cuda cu, Scope s, int n, int h, int w, Var[] hwt, Tensor u, Tensor img, Tensor codes) {
            this.cu = cu;
            this.n = n; this.h = h; this.w = w;
            this.u = u; this.img = img; this.codes = codes;
            c = m.arch.channels();
            int layers = m.arch.layers();
            pos = Tensor.zeros(s, Device.CUDA, 1);   // int32 0 in a float's bytes
            rows = new Tensor[layers];
            link = new Tensor[layers];
            tapW = new Var[layers];
            outW = new Var[layers];
            lo = new int[layers];
            nt = new int[layers];
            for (int l = 0; l < layers; l++) {
                GatedPixelCnn.Block b = m.blocks.get(l);
                long cin = l == 0 ? 1 : c;
                rows[l] = Tensor.zeros(s, Device.CUDA, n, cin, 1, w);
                link[l] = Tensor.empty(s, Device.CUDA, n, 2 * c, 1, w);
                // the horizontal mask keeps the taps left of the centre, and the centre with mask B (one group)
                lo[l] = -(b.hconv.kernel / 2);
                nt[l] = b.hconv.kernel / 2 + (b.hconv.maskA ? 0 : 1);
                tapW[l] = Var.constant(Kernels.contiguous(s, hwt[l].value().slice(3, 0, nt[l])).reshape(2 * c, cin * nt[l]));
                outW[l] = Var.constant(Kernels.contiguous(s, b.hout.weight.value()).reshape(c, c));
            }
        }

        /** Row i starts: its v2h links into the fixed buffers, its image row (zero, or the forced pixels so far: none) into rows[0]. */
        void startRow(Tensor imgRow, Var[] rowLinks) {
            for (int l = 0; l < link.length; l++) Kernels.copy(rowLinks[l].value(), link[l]);
            Kernels.copy(imgRow, rows[0]);
        }

        /** The sampling step: the logits at pos, the draw into img, rows[0] and codes, pos advanced. */
        void draw() {
            run(lg -> CudaPixelKernels.pixelDrawAt(cu, n, GatedPixelCnn.LEVELS, (long) h * w, w, buf(pos), buf(lg), buf(u), 255f, buf(img),
                    buf(rows[0]), buf(codes)));
        }

        /** The horizontal stacks and the head at pos, then {@code use} on the (n, 256) logits (in the step's own graph). */
        void run(java.util.function.Consumer<Tensor> use) {
            try (Graph px = Graph.inference()) {
                Scope ps = px.scope();
                Var out = null;
                for (int l = 0; l < rows.length; l++) {
                    GatedPixelCnn.Block b = m.blocks.get(l);
                    long cin = l == 0 ? 1 : c;
                    Tensor taps = Tensor.empty(ps, Device.CUDA, n, cin * nt[l]), lk = Tensor.empty(ps, Device.CUDA, n, 2 * c);
                    CudaPixelKernels.pixelTapsAt(cu, n, cin, w, lo[l], nt[l], buf(pos), buf(rows[l]), buf(taps));
                    CudaPixelKernels.pixelColumnAt(cu, n, 2 * c, w, buf(pos), buf(link[l]), buf(lk));
                    Var hp = F.add(F.linear(Var.constant(taps), tapW[l], b.hconv.bias), Var.constant(lk));
                    out = F.linear(GatedPixelCnn.gate(hp, c), outW[l], b.hout.bias);
                    if (b.residual) {
                        Tensor in = Tensor.empty(ps, Device.CUDA, n, c);
                        CudaPixelKernels.pixelColumnAt(cu, n, c, w, buf(pos), buf(rows[l]), buf(in));
                        out = F.add(out, Var.constant(in));
                    }
                    if (l + 1 < rows.length) CudaPixelKernels.pixelColumnPutAt(cu, n, c, w, buf(pos), buf(out.value()), buf(rows[l + 1]));
                }
                use.accept(head(out));
            }
        }
    }

    private static Var masked(MaskedConv2d mc) {
        Tensor mask = mc.mask();
        if (mask.device() != Device.CUDA) throw new IllegalStateException("DevicePixelCnnSampler: a mask is on " + mask.device() + ", its weight on CUDA");
        return F.mul(mc.weight, Var.constant(mask));
    }

    private static DeviceBuffer buf(Tensor t) {
        if (!t.isContiguous()) throw new IllegalStateException("DevicePixelCnnSampler: " + t + " is not contiguous");
        return DeviceBuffer.of(t.deviceBuffer());
    }
}
