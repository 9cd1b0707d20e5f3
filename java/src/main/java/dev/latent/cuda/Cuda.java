package dev.latent.cuda;

import dev.latent.nativ.NativeException;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.ConcurrentHashMap;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
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

    public DeviceBuffer alloc(long bytes) {
        if (bytes <= 0) throw new IllegalArgumentException("device allocation of " + bytes + " bytes");
        current();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(JAVA_LONG);
            drv.call("cuMemAlloc_v2", drv.cuMemAlloc, p, bytes);
            return new DeviceBuffer(this, p.get(JAVA_LONG, 0), bytes);
        }
    }

    void free(long ptr) {
        current();
        drv.call("cuMemFree_v2", drv.cuMemFree, ptr);
    }

    void copyHtoD(long dst, MemorySegment src) {
        current();
        drv.call("cuMemcpyHtoD_v2", drv.cuMemcpyHtoD, dst, src, src.byteSize());
    }

    void copyDtoH(MemorySegment dst, long src) {
        current();
        drv.call("cuMemcpyDtoH_v2", drv.cuMemcpyDtoH, dst, src, dst.byteSize());
    }

    void copyDtoD(long dst, long src, long bytes) {
        current();
        drv.call("cuMemcpyDtoD_v2", drv.cuMemcpyDtoD, dst, src, bytes);
    }

    void memsetZero(long dst, long bytes) {
        current();
        drv.call("cuMemsetD8_v2", drv.cuMemsetD8, dst, 0, bytes);
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
     * Float, DeviceBuffer (a device pointer), null (a NULL pointer), MemorySegment (a struct passed by value: its
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
                    case DeviceBuffer x -> a.allocateFrom(JAVA_LONG, x.address());
                    case MemorySegment x -> a.allocate(x.byteSize(), 16).copyFrom(x);
                    default -> throw new IllegalArgumentException(kernel + ": argument " + i + " of type "
                            + args[i].getClass().getSimpleName() + " cannot be passed to a kernel");
                };
                params.setAtIndex(ADDRESS, i, v);
            }
            drv.call("cuLaunchKernel(" + kernel + ")", drv.cuLaunchKernel, f, grid[0], grid[1], grid[2], block[0], block[1],
                    block[2], sharedBytes, MemorySegment.NULL, params, MemorySegment.NULL);
        }
    }

    /** Waits for the device; an error of a kernel that already ran is thrown here. */
    public void synchronize() {
        current();
        drv.call("cuCtxSynchronize", drv.cuCtxSynchronize);
    }
}
