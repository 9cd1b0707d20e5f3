package dev.latent.cuda;

import dev.latent.nativ.NativeException;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The CUDA backend: device 0's primary context and our kernels' module (latent_kernels.fatbin, built by nvcc
 * for sm_80 / sm_90 + PTX and shipped in the native classifier jar). Opened once; when anything is missing (no
 * driver, a driver older than the toolkit that built the fatbin, no device, a device older than sm_80, no
 * fatbin) {@link #available()} is false and {@link #unavailableReason()} says why, once, cached, and callers
 * stay on the CPU. Thread-safe: every call makes the context current on the calling thread first.
 */
public final class Cuda {
    /** Driver API version the fatbin needs: cubins and PTX from CUDA 13 load on a CUDA 13 driver (r580) or newer. */
    public static final int MIN_DRIVER_VERSION = 13000;
    static final String FATBIN_RESOURCE = "dev/latent/native/linux-x86_64/latent_kernels.fatbin";
    private static final int ATTR_CC_MAJOR = 75, ATTR_CC_MINOR = 76;

    private static volatile Object state; /* a Cuda, or the String reason it is unavailable */

    private final CudaDriver drv;
    private final MemorySegment ctx, module;
    private final int ccMajor, ccMinor, driverVersion;
    private final ConcurrentHashMap<String, MemorySegment> functions = new ConcurrentHashMap<>();

    private Cuda(CudaDriver drv, MemorySegment ctx, MemorySegment module, int ccMajor, int ccMinor, int driverVersion) {
        this.drv = drv;
        this.ctx = ctx;
        this.module = module;
        this.ccMajor = ccMajor;
        this.ccMinor = ccMinor;
        this.driverVersion = driverVersion;
    }

    /** True when a usable GPU and our kernels are there. The first call probes; the answer is cached. */
    public static boolean available() { return probe() instanceof Cuda; }

    /** "" when available, else "CUDA unavailable: <reason>". */
    public static String unavailableReason() { return probe() instanceof String s ? s : ""; }

    /** The backend, or UnsupportedOperationException with the reason. */
    public static Cuda get() {
        Object s = probe();
        if (s instanceof Cuda c) return c;
        throw new UnsupportedOperationException((String) s);
    }

    private static Object probe() {
        Object s = state;
        if (s != null) return s;
        synchronized (Cuda.class) {
            if (state == null) state = open();
            return state;
        }
    }

    private static Object open() {
        CudaDriver drv;
        try {
            drv = new CudaDriver();
        } catch (IllegalArgumentException | UnsatisfiedLinkError e) {
            return "CUDA unavailable: cannot load " + CudaDriver.library() + ", the NVIDIA driver library (" + e.getMessage()
                    + "); running on the CPU";
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_INT);
            drv.call("cuInit", drv.cuInit, 0);
            drv.call("cuDriverGetVersion", drv.cuDriverGetVersion, out);
            int version = out.get(JAVA_INT, 0);
            if (version < MIN_DRIVER_VERSION)
                return "CUDA unavailable: driver supports CUDA " + version / 1000 + "." + version % 1000 / 10
                        + ", the kernels need " + MIN_DRIVER_VERSION / 1000 + ".0 or newer; running on the CPU";
            drv.call("cuDeviceGetCount", drv.cuDeviceGetCount, out);
            if (out.get(JAVA_INT, 0) < 1) return "CUDA unavailable: the driver reports no device; running on the CPU";
            drv.call("cuDeviceGet", drv.cuDeviceGet, out, 0);
            int dev = out.get(JAVA_INT, 0);
            drv.call("cuDeviceGetAttribute", drv.cuDeviceGetAttribute, out, ATTR_CC_MAJOR, dev);
            int major = out.get(JAVA_INT, 0);
            drv.call("cuDeviceGetAttribute", drv.cuDeviceGetAttribute, out, ATTR_CC_MINOR, dev);
            int minor = out.get(JAVA_INT, 0);
            if (major < 8)
                return "CUDA unavailable: device 0 is sm_" + major + minor + ", the kernels need sm_80 or newer; running on the CPU";
            byte[] fatbin = fatbin();
            if (fatbin == null)
                return "CUDA unavailable: " + FATBIN_RESOURCE + " is not on the classpath (liblatent was built without nvcc;"
                        + " -Dlatent.cuda.fatbin=PATH names one); running on the CPU";
            MemorySegment pctx = a.allocate(ADDRESS);
            drv.call("cuDevicePrimaryCtxRetain", drv.cuDevicePrimaryCtxRetain, pctx, dev);
            MemorySegment ctx = pctx.get(ADDRESS, 0);
            drv.call("cuCtxSetCurrent", drv.cuCtxSetCurrent, ctx);
            MemorySegment image = Arena.global().allocate(fatbin.length + 1L, 64);
            MemorySegment.copy(fatbin, 0, image, JAVA_BYTE, 0, fatbin.length);
            MemorySegment pmod = a.allocate(ADDRESS);
            drv.call("cuModuleLoadData", drv.cuModuleLoadData, pmod, image);
            return new Cuda(drv, ctx, pmod.get(ADDRESS, 0), major, minor, version);
        } catch (NativeException e) {
            return "CUDA unavailable: " + e.getMessage() + "; running on the CPU";
        } catch (IOException e) {
            return "CUDA unavailable: cannot read the fatbin (" + e.getMessage() + "); running on the CPU";
        }
    }

    private static byte[] fatbin() throws IOException {
        String p = System.getProperty("latent.cuda.fatbin");
        if (p != null && !p.isBlank()) return Files.isRegularFile(Path.of(p)) ? Files.readAllBytes(Path.of(p)) : null;
        try (InputStream in = Cuda.class.getClassLoader().getResourceAsStream(FATBIN_RESOURCE)) {
            return in == null ? null : in.readAllBytes();
        }
    }

    public String describe() {
        return "CUDA device 0, sm_" + ccMajor + ccMinor + ", driver " + driverVersion / 1000 + "." + driverVersion % 1000 / 10;
    }

    private void current() { drv.call("cuCtxSetCurrent", drv.cuCtxSetCurrent, ctx); }

    /** The driver binding (tests: raw calls such as capturing the legacy stream). */
    CudaDriver driver() { return drv; }

    /** Makes the primary context current on this thread (before a vendor library call). */
    void makeCurrent() { current(); }

    // ---- device memory: a caching allocator --------------------------------------------------------------------
    /*
     * cuMemFree synchronises the whole device and cuMemAlloc is a driver round trip, and a training step allocates
     * every op's output: freed blocks are therefore kept, per size class, and handed out again (PyTorch's allocator
     * does the same). Safe because every launch and copy goes to the one (legacy default) stream in order: a block
     * freed on the host may still be read by a queued kernel, but any kernel that receives it later runs after that
     * one. Size classes: multiples of 512 bytes up to 1 MiB, then quarter powers of two (<= 25% slack). When
     * cuMemAlloc runs out of memory, the cache is returned to the driver and the allocation retried once.
     */
    private static final int CUDA_ERROR_OUT_OF_MEMORY = 2;
    private final Map<Long, ArrayDeque<Long>> cache = new HashMap<>();
    private long cachedBytes, liveBytes, driverAllocs, reuses;

    /** A capture needed a block of a size class the cache did not hold (CudaGraphStep warms up one more step then). */
    static final class CaptureCacheMiss extends IllegalStateException {
        CaptureCacheMiss(String message) { super(message); }
    }

    static long sizeClass(long bytes) {
        if (bytes <= 1L << 20) return (bytes + 511) & ~511L;
        long step = Long.highestOneBit(bytes - 1) >> 2;
        return (bytes + step - 1) / step * step;
    }

    /** Device memory of at least {@code bytes}, reused from the cache when a block of its size class is free. */
    public DeviceBuffer alloc(long bytes) {
        if (bytes <= 0) throw new IllegalArgumentException("device allocation of " + bytes + " bytes");
        long cls = sizeClass(bytes);
        synchronized (cache) {
            if (capturePool != null) {   /* during a capture: from the graph's own blocks, else the cache, never the driver */
                ArrayDeque<Long> own = capturePool.free.get(cls);
                Long ptr = own != null && !own.isEmpty() ? own.pop() : null;
                if (ptr == null) {
                    ArrayDeque<Long> free = cache.get(cls);
                    if (free == null || free.isEmpty())
                        throw new CaptureCacheMiss("CUDA graph capture: an allocation of " + bytes + " bytes (size class " + cls
                                + ") found no cached block, and cuMemAlloc is not permitted while a stream captures; run the step"
                                + " uncaptured first (warm-up) so that its allocations are cached, and keep its shapes fixed");
                    ptr = free.pop();
                    cachedBytes -= cls;
                    liveBytes += cls;
                } else {
                    capturePool.pooledBytes -= cls;
                    liveBytes += cls;
                }
                capturePool.owned.add(ptr);
                graphOwner.put(ptr, capturePool);
                reuses++;
                return new DeviceBuffer(this, ptr, bytes, cls);
            }
            ArrayDeque<Long> free = cache.get(cls);
            if (free != null && !free.isEmpty()) {
                cachedBytes -= cls;
                liveBytes += cls;
                reuses++;
                return new DeviceBuffer(this, free.pop(), bytes, cls);
            }
        }
        long ptr;
        try {
            ptr = driverAlloc(cls);
        } catch (NativeException e) {
            if (e.code() != CUDA_ERROR_OUT_OF_MEMORY) throw e;
            emptyCache();
            ptr = driverAlloc(cls);
        }
        synchronized (cache) {
            liveBytes += cls;
            driverAllocs++;
        }
        return new DeviceBuffer(this, ptr, bytes, cls);
    }

    /** cuMemAlloc itself, outside the cache (the vendor libraries' workspaces, which live as long as the process). */
    long driverAlloc(long bytes) {
        current();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(JAVA_LONG);
            drv.call("cuMemAlloc_v2", drv.cuMemAlloc, p, bytes);
            return p.get(JAVA_LONG, 0);
        }
    }

    /**
     * A block back into the cache (DeviceBuffer.close, or its Cleaner); during a capture, or when a live graph owns it,
     * into that graph's pool instead: the graph's kernels use it on every replay, so nothing else may get it.
     */
    void release(long ptr, long cls) {
        synchronized (cache) {
            GraphPool pool = capturePool != null ? capturePool : graphOwner.get(ptr);
            if (pool != null && !pool.closed) {
                pool.free.computeIfAbsent(cls, c -> new ArrayDeque<>()).push(ptr);
                pool.owned.add(ptr);
                graphOwner.put(ptr, pool);
                pool.pooledBytes += cls;
                liveBytes -= cls;
                return;
            }
            cache.computeIfAbsent(cls, c -> new ArrayDeque<>()).push(ptr);
            cachedBytes += cls;
            liveBytes -= cls;
        }
    }

    // ---- the stream, stream capture and CUDA graphs ------------------------------------------------------------
    /*
     * Every launch, stream-ordered copy and event record goes to stream(): the legacy default stream (NULL), or, after
     * useCaptureStream(), one stream of ours created with CU_STREAM_DEFAULT (it synchronises with the legacy stream, so
     * the synchronous copies stay ordered with it). Only such a stream can be captured. A capture records the step's
     * work instead of running it (on a GPU and in the emulated driver alike); the blocks the captured work uses are the
     * graph's (a GraphPool) until the graph is closed: blocks freed during the capture go to the pool, allocations during
     * the capture come from the pool or the cache (cuMemAlloc is not permitted then), and a block the graph allocated is
     * returned to the pool, not the cache, while the graph lives.
     */
    static final class GraphPool {
        final Map<Long, ArrayDeque<Long>> free = new HashMap<>();
        final java.util.Set<Long> owned = new java.util.HashSet<>();
        long pooledBytes;
        boolean closed;
    }

    private volatile MemorySegment stream = MemorySegment.NULL;
    private MemorySegment ownStream;
    private GraphPool capturePool;                                 /* guarded by cache */
    private final Map<Long, GraphPool> graphOwner = new HashMap<>();   /* guarded by cache */
    private volatile List<String> launchLog;

    /** The stream this backend's work goes to (NULL: the legacy default stream). */
    MemorySegment stream() { return stream; }

    /** Whether this backend runs on its own (capturable) stream: {@link #useCaptureStream()}. */
    public boolean onCaptureStream() { return !stream.equals(MemorySegment.NULL); }

    /**
     * Moves this backend's work (every thread's launches and copies, and the vendor libraries' calls) from the legacy
     * default stream to one stream of ours, which CUDA graphs can capture. Work already queued stays ordered (the stream
     * synchronises with the legacy stream). Idempotent; there is no way back (the process keeps the stream).
     */
    public synchronized void useCaptureStream() {
        if (ownStream == null) {
            current();
            try (Arena a = Arena.ofConfined()) {
                MemorySegment p = a.allocate(ADDRESS);
                drv.call("cuStreamCreate", drv.cuStreamCreate, p, 0);   // CU_STREAM_DEFAULT: blocking w.r.t. the legacy stream
                ownStream = p.get(ADDRESS, 0);
            }
        }
        stream = ownStream;
    }

    private static final int CU_STREAM_CAPTURE_MODE_GLOBAL = 0;

    /**
     * Captures the work {@code body} enqueues into a CUDA graph, instantiated and ready to {@link CudaGraph#launch()}.
     * The work is recorded, not run: launch the graph to run it. Needs {@link #useCaptureStream()}. What a real driver
     * does not permit during a capture (a synchronous copy, cuMemAlloc / cuMemFree, a synchronisation, an upload whose
     * page-locked source is reused) fails: the driver's error, or an IllegalStateException naming it, and no graph.
     */
    public CudaGraph capture(Runnable body) {
        if (!onCaptureStream())
            throw new IllegalStateException("CUDA graph capture: the legacy default stream cannot be captured; call useCaptureStream()"
                    + " before the warm-up steps");
        GraphPool pool = new GraphPool();
        synchronized (cache) {
            if (capturePool != null) throw new IllegalStateException("CUDA graph capture: a capture is already in progress");
            capturePool = pool;
        }
        current();
        try {
            drv.call("cuStreamBeginCapture_v2", drv.cuStreamBeginCapture, stream, CU_STREAM_CAPTURE_MODE_GLOBAL);
        } catch (RuntimeException e) {
            endPool(pool);
            throw e;
        }
        RuntimeException failure = null;
        MemorySegment graph = MemorySegment.NULL;
        try {
            body.run();
        } catch (RuntimeException e) {
            failure = e;
        } finally {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment pg = a.allocate(ADDRESS);
                try {
                    current();
                    drv.call("cuStreamEndCapture", drv.cuStreamEndCapture, stream, pg);
                    graph = pg.get(ADDRESS, 0);
                } catch (NativeException e) {
                    if (failure == null) failure = new IllegalStateException("CUDA graph capture failed: the captured work did something a"
                            + " capture does not permit (" + e.getMessage() + ")", e);
                    else failure.addSuppressed(e);
                }
            }
            synchronized (cache) { capturePool = null; }
        }
        if (failure != null) {
            if (!graph.equals(MemorySegment.NULL)) {
                try { drv.call("cuGraphDestroy", drv.cuGraphDestroy, graph); } catch (NativeException e) { failure.addSuppressed(e); }
            }
            endPool(pool);
            throw failure;
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment pe = a.allocate(ADDRESS);
            try {
                drv.call("cuGraphInstantiateWithFlags", drv.cuGraphInstantiateWithFlags, pe, graph, 0L);
            } finally {
                drv.call("cuGraphDestroy", drv.cuGraphDestroy, graph);   // the executable graph is a copy
            }
            return new CudaGraph(this, pe.get(ADDRESS, 0), pool);
        } catch (RuntimeException e) {
            endPool(pool);
            throw e;
        }
    }

    /** Launches an instantiated graph on the stream (no host synchronisation). */
    void graphLaunch(MemorySegment exec) {
        current();
        drv.call("cuGraphLaunch", drv.cuGraphLaunch, exec, stream);
    }

    /** Destroys an instantiated graph and gives its pool's blocks back to the cache (stream-ordered: safe). */
    void graphDestroy(MemorySegment exec, GraphPool pool) {
        current();
        try {
            drv.call("cuGraphExecDestroy", drv.cuGraphExecDestroy, exec);
        } finally {
            endPool(pool);
        }
    }

    private void endPool(GraphPool pool) {
        synchronized (cache) {
            pool.closed = true;
            for (Map.Entry<Long, ArrayDeque<Long>> e : pool.free.entrySet())
                for (long ptr : e.getValue()) {
                    cache.computeIfAbsent(e.getKey(), c -> new ArrayDeque<>()).push(ptr);
                    cachedBytes += e.getKey();
                }
            pool.free.clear();
            pool.pooledBytes = 0;
            for (long ptr : pool.owned) graphOwner.remove(ptr, pool);
            pool.owned.clear();
        }
    }

    /** Whether a capture is in progress (this backend's). */
    public boolean capturing() {
        synchronized (cache) { return capturePool != null; }
    }

    /**
     * Starts (or with false stops and returns) a log of launches: kernel name and every by-value argument (pointers
     * written as "p"), so that two steps' launches can be compared (CudaGraphStep: a value that differs between steps
     * would be frozen by a graph).
     */
    List<String> launchLog(boolean start) {
        List<String> l = launchLog;
        launchLog = start ? java.util.Collections.synchronizedList(new ArrayList<>()) : null;
        return l;
    }

    /** Returns every cached block to the driver (cuMemFree; each one synchronises the device). */
    public void emptyCache() {
        List<Long> blocks = new ArrayList<>();
        synchronized (cache) {
            for (ArrayDeque<Long> q : cache.values()) blocks.addAll(q);
            cache.clear();
            cachedBytes = 0;
        }
        current();
        for (long ptr : blocks) {
            hostSyncs.incrementAndGet();
            drv.call("cuMemFree_v2", drv.cuMemFree, ptr);
        }
    }

    /** The allocator's counters: bytes in live buffers and in the cache (size classes), cuMemAlloc calls, reuses. */
    public record MemoryStats(long liveBytes, long cachedBytes, long driverAllocs, long reuses) {}

    public MemoryStats memoryStats() {
        synchronized (cache) { return new MemoryStats(liveBytes, cachedBytes, driverAllocs, reuses); }
    }

    // ---- host synchronisations --------------------------------------------------------------------------------
    /*
     * Every call of ours that makes the host wait for the device: a synchronous device-to-host copy, a synchronous
     * host-to-device copy from pageable memory (the driver synchronises the stream before starting it), cuCtxSynchronize,
     * cuEventSynchronize, and cuMemFree / cuMemFreeHost (an implicit device-wide synchronisation). An asynchronous
     * upload from page-locked memory is not one. Counted here, so a test can bound them per training step on
     * any driver; on the emulated driver, libcuda_emu.so counts the same calls on its side (latent_emu_counters).
     */
    private final java.util.concurrent.atomic.AtomicLong hostSyncs = new java.util.concurrent.atomic.AtomicLong();

    /** The number of host synchronisations this backend has made so far (see the comment above). */
    public long hostSyncs() { return hostSyncs.get(); }

    void copyHtoD(long dst, MemorySegment src) {
        if (src.byteSize() > 0) hostSyncs.incrementAndGet();
        current();
        drv.call("cuMemcpyHtoD_v2", drv.cuMemcpyHtoD, dst, src, src.byteSize());
    }

    // ---- page-locked staging, asynchronous uploads, events ------------------------------------------------------

    /** Page-locked host memory (cuMemHostAlloc) of {@code bytes}: the source of an upload that does not block the host. */
    public MemorySegment hostAlloc(long bytes) {
        if (bytes <= 0) throw new IllegalArgumentException("page-locked allocation of " + bytes + " bytes");
        current();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(ADDRESS);
            drv.call("cuMemHostAlloc", drv.cuMemHostAlloc, p, bytes, 0);
            return p.get(ADDRESS, 0).reinterpret(bytes);
        }
    }

    /** Frees {@link #hostAlloc} memory (cuMemFreeHost may synchronise: counted as a host synchronisation). */
    public void hostFree(MemorySegment pinned) {
        hostSyncs.incrementAndGet();
        current();
        drv.call("cuMemFreeHost", drv.cuMemFreeHost, pinned);
    }

    /**
     * Host -> device on the default stream without blocking the host when {@code src} is page-locked ({@link
     * #hostAlloc}): the caller must not touch src until an event recorded after it has completed.
     */
    /** Refuses an upload during a capture (a graph would replay it from a staging slot that has been reused since). */
    void refuseUploadWhileCapturing(long bytes) {
        if (capturing())
            throw new IllegalStateException("CUDA graph capture: a host-to-device upload (" + bytes + " bytes) inside the captured"
                    + " step; a graph would replay it from a staging slot that has been reused since. Stage the step's inputs into"
                    + " fixed device buffers before the captured region (CudaGraphStep's prepare)");
    }

    void copyHtoDAsync(long dst, MemorySegment src) {
        refuseUploadWhileCapturing(src.byteSize());
        current();
        drv.call("cuMemcpyHtoDAsync_v2", drv.cuMemcpyHtoDAsync, dst, src, src.byteSize(), stream);
    }

    /** A new event (cuEventCreate, default flags). */
    public MemorySegment eventCreate() {
        current();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(ADDRESS);
            drv.call("cuEventCreate", drv.cuEventCreate, p, 0);
            return p.get(ADDRESS, 0);
        }
    }

    /** Records the event on the default stream: it completes when everything launched before it has. */
    public void eventRecord(MemorySegment event) {
        current();
        drv.call("cuEventRecord", drv.cuEventRecord, event, stream);
    }

    private static final int CUDA_ERROR_NOT_READY = 600;

    /** True when the event's work has completed (cuEventQuery; never blocks, not a synchronisation). */
    public boolean eventDone(MemorySegment event) {
        current();
        int rc;
        try {
            rc = (int) drv.cuEventQuery.invokeExact(event);
        } catch (Throwable t) {
            throw new IllegalStateException("cuEventQuery", t);
        }
        if (rc == CUDA_ERROR_NOT_READY) return false;
        if (rc != 0) throw new NativeException("cuEventQuery", rc, drv.describe(rc));
        return true;
    }

    /** Waits for the event (a host synchronisation, counted). */
    public void eventSynchronize(MemorySegment event) {
        hostSyncs.incrementAndGet();
        current();
        drv.call("cuEventSynchronize", drv.cuEventSynchronize, event);
    }

    void copyDtoH(MemorySegment dst, long src) {
        if (dst.byteSize() > 0) hostSyncs.incrementAndGet();
        current();
        drv.call("cuMemcpyDtoH_v2", drv.cuMemcpyDtoH, dst, src, dst.byteSize());
    }

    void copyDtoD(long dst, long src, long bytes) {
        current();
        MemorySegment s = stream;
        if (s.equals(MemorySegment.NULL)) drv.call("cuMemcpyDtoD_v2", drv.cuMemcpyDtoD, dst, src, bytes);
        else drv.call("cuMemcpyDtoDAsync_v2", drv.cuMemcpyDtoDAsync, dst, src, bytes, s);   // on our stream: capturable
    }

    void memsetZero(long dst, long bytes) {
        current();
        MemorySegment s = stream;
        if (s.equals(MemorySegment.NULL)) drv.call("cuMemsetD8_v2", drv.cuMemsetD8, dst, 0, bytes);
        else drv.call("cuMemsetD8Async", drv.cuMemsetD8Async, dst, 0, bytes, s);
    }

    /** The kernel {@code name} (an ltk_* symbol of the fatbin), looked up once. */
    MemorySegment function(String name) {
        return functions.computeIfAbsent(name, n -> {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment pf = a.allocate(ADDRESS);
                drv.call("cuModuleGetFunction(" + n + ")", drv.cuModuleGetFunction, pf, module, a.allocateFrom(n));
                return pf.get(ADDRESS, 0);
            }
        });
    }

    /**
     * cuLaunchKernel on the default stream. Arguments, in the kernel's order: Integer (int32_t), Long (int64_t),
     * Float, Double, DeviceBuffer (a device pointer), null (a NULL pointer), MemorySegment (a struct passed by value: its
     * bytes, laid out as the C struct, e.g. LatentNative.GEMM_DESC). Launch errors throw here; errors while the
     * kernel runs surface at {@link #synchronize()}.
     */
    public void launch(String kernel, int[] grid, int[] block, int sharedBytes, Object... args) {
        MemorySegment f = function(kernel);
        current();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment params = a.allocate(ADDRESS, Math.max(1, args.length));
            for (int i = 0; i < args.length; i++) {
                MemorySegment v = switch (args[i]) {
                    case null -> a.allocateFrom(JAVA_LONG, 0L);
                    case Integer x -> a.allocateFrom(JAVA_INT, x);
                    case Long x -> a.allocateFrom(JAVA_LONG, x);
                    case Float x -> a.allocateFrom(JAVA_FLOAT, x);
                    case Double x -> a.allocateFrom(JAVA_DOUBLE, x);
                    case DeviceBuffer x -> a.allocateFrom(JAVA_LONG, x.address());
                    case MemorySegment x -> a.allocate(x.byteSize(), 16).copyFrom(x);
                    default -> throw new IllegalArgumentException(kernel + ": argument " + i + " of type "
                            + args[i].getClass().getSimpleName() + " cannot be passed to a kernel");
                };
                params.setAtIndex(ADDRESS, i, v);
            }
            List<String> log = launchLog;
            if (log != null) log.add(describeLaunch(kernel, grid, block, sharedBytes, args));
            drv.call("cuLaunchKernel(" + kernel + ")", drv.cuLaunchKernel, f, grid[0], grid[1], grid[2], block[0], block[1],
                    block[2], sharedBytes, stream, params, MemorySegment.NULL);
        }
    }

    /** "kernel grid block smem (arg, arg, ...)" with every by-value argument's value and "p" for a device pointer. */
    private static String describeLaunch(String kernel, int[] grid, int[] block, int smem, Object[] args) {
        StringBuilder b = new StringBuilder(kernel).append(" grid ").append(java.util.Arrays.toString(grid)).append(" block ")
                .append(java.util.Arrays.toString(block)).append(" smem ").append(smem).append(" (");
        for (int i = 0; i < args.length; i++) {
            if (i > 0) b.append(", ");
            switch (args[i]) {
                case null -> b.append("null");
                case DeviceBuffer x -> b.append("p");
                case MemorySegment x -> b.append("struct ").append(java.util.HexFormat.of().formatHex(x.toArray(JAVA_BYTE)));
                case Float x -> b.append(x).append("f");
                default -> b.append(args[i]);
            }
        }
        return b.append(")").toString();
    }

    /** Waits for the device; an error of a kernel that already ran is thrown here. */
    public void synchronize() {
        hostSyncs.incrementAndGet();
        current();
        drv.call("cuCtxSynchronize", drv.cuCtxSynchronize);
    }
}
