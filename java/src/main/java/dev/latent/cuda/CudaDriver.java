package dev.latent.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The CUDA driver API (libcuda.so.1, installed with the NVIDIA driver) bound through FFM: only the calls the
 * backend needs, the {@code _v2} entry points where the driver has them (64-bit sizes and device pointers).
 * No cudart: the fatbin is loaded with cuModuleLoadData and kernels start with cuLaunchKernel.
 * Every call goes through {@link #check}: a non-zero CUresult becomes a NativeException naming the call and
 * the driver's own name and description of the error.
 */
final class CudaDriver {
    final MethodHandle cuInit, cuDriverGetVersion, cuDeviceGetCount, cuDeviceGet, cuDeviceGetAttribute,
            cuDevicePrimaryCtxRetain, cuCtxSetCurrent, cuCtxSynchronize, cuModuleLoadData, cuModuleGetFunction,
            cuMemAlloc, cuMemFree, cuMemcpyHtoD, cuMemcpyDtoH, cuMemcpyDtoD, cuMemsetD8, cuStreamCreate, cuStreamSynchronize,
            cuLaunchKernel, cuGetErrorName, cuGetErrorString, cuMemHostAlloc, cuMemFreeHost, cuMemcpyHtoDAsync, cuEventCreate,
            cuEventRecord, cuEventQuery, cuEventSynchronize, cuEventDestroy,
            // stream-ordered copies, stream capture and CUDA graphs (CudaGraph)
            cuMemcpyDtoDAsync, cuMemsetD8Async, cuStreamBeginCapture, cuStreamEndCapture, cuStreamIsCapturing,
            cuGraphInstantiateWithFlags, cuGraphLaunch, cuGraphExecDestroy, cuGraphDestroy;
    private final VendorLib lib;

    /**
     * The driver library: libcuda.so.1, or what -Dlatent.cuda.driver names (the emulated driver libcuda_emu.so of
     * native/cuda_emu/driver_emu.h, which the tests use to run this backend without a GPU).
     */
    static String library() {
        String p = System.getProperty("latent.cuda.driver");
        return p == null || p.isBlank() ? "libcuda.so.1" : p;
    }

    /** Throws IllegalArgumentException when the driver library cannot be opened (no driver). */
    CudaDriver() {
        lib = new VendorLib(SymbolLookup.libraryLookup(library(), Arena.global()), library(), "driver too old", this::describeName,
                false);
        cuInit = bind(lib, "cuInit", JAVA_INT);
        cuDriverGetVersion = bind(lib, "cuDriverGetVersion", ADDRESS);
        cuDeviceGetCount = bind(lib, "cuDeviceGetCount", ADDRESS);
        cuDeviceGet = bind(lib, "cuDeviceGet", ADDRESS, JAVA_INT);
        cuDeviceGetAttribute = bind(lib, "cuDeviceGetAttribute", ADDRESS, JAVA_INT, JAVA_INT);
        cuDevicePrimaryCtxRetain = bind(lib, "cuDevicePrimaryCtxRetain", ADDRESS, JAVA_INT);
        cuCtxSetCurrent = bind(lib, "cuCtxSetCurrent", ADDRESS);
        cuCtxSynchronize = bind(lib, "cuCtxSynchronize");
        cuModuleLoadData = bind(lib, "cuModuleLoadData", ADDRESS, ADDRESS);
        cuModuleGetFunction = bind(lib, "cuModuleGetFunction", ADDRESS, ADDRESS, ADDRESS);
        cuMemAlloc = bind(lib, "cuMemAlloc_v2", ADDRESS, JAVA_LONG);
        cuMemFree = bind(lib, "cuMemFree_v2", JAVA_LONG);
        cuMemcpyHtoD = bind(lib, "cuMemcpyHtoD_v2", JAVA_LONG, ADDRESS, JAVA_LONG);
        cuMemcpyDtoH = bind(lib, "cuMemcpyDtoH_v2", ADDRESS, JAVA_LONG, JAVA_LONG);
        cuMemcpyDtoD = bind(lib, "cuMemcpyDtoD_v2", JAVA_LONG, JAVA_LONG, JAVA_LONG);
        cuMemsetD8 = bind(lib, "cuMemsetD8_v2", JAVA_LONG, JAVA_INT, JAVA_LONG);
        cuStreamCreate = bind(lib, "cuStreamCreate", ADDRESS, JAVA_INT);
        cuStreamSynchronize = bind(lib, "cuStreamSynchronize", ADDRESS);
        cuLaunchKernel = bind(lib, "cuLaunchKernel", ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT,
                JAVA_INT, ADDRESS, ADDRESS, ADDRESS);
        cuGetErrorName = bind(lib, "cuGetErrorName", JAVA_INT, ADDRESS);
        // page-locked staging and events: asynchronous uploads (Cuda.copyHtoDAsync) that do not block the host
        cuMemHostAlloc = bind(lib, "cuMemHostAlloc", ADDRESS, JAVA_LONG, JAVA_INT);
        cuMemFreeHost = bind(lib, "cuMemFreeHost", ADDRESS);
        cuMemcpyHtoDAsync = bind(lib, "cuMemcpyHtoDAsync_v2", JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS);
        cuEventCreate = bind(lib, "cuEventCreate", ADDRESS, JAVA_INT);
        cuEventRecord = bind(lib, "cuEventRecord", ADDRESS, ADDRESS);
        cuEventQuery = bind(lib, "cuEventQuery", ADDRESS);
        cuEventSynchronize = bind(lib, "cuEventSynchronize", ADDRESS);
        cuEventDestroy = bind(lib, "cuEventDestroy_v2", ADDRESS);
        cuGetErrorString = bind(lib, "cuGetErrorString", JAVA_INT, ADDRESS);
        cuMemcpyDtoDAsync = bind(lib, "cuMemcpyDtoDAsync_v2", JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS);
        cuMemsetD8Async = bind(lib, "cuMemsetD8Async", JAVA_LONG, JAVA_INT, JAVA_LONG, ADDRESS);
        cuStreamBeginCapture = bind(lib, "cuStreamBeginCapture_v2", ADDRESS, JAVA_INT);
        cuStreamEndCapture = bind(lib, "cuStreamEndCapture", ADDRESS, ADDRESS);
        cuStreamIsCapturing = bind(lib, "cuStreamIsCapturing", ADDRESS, ADDRESS);
        cuGraphInstantiateWithFlags = bind(lib, "cuGraphInstantiateWithFlags", ADDRESS, ADDRESS, JAVA_LONG);
        cuGraphLaunch = bind(lib, "cuGraphLaunch", ADDRESS, ADDRESS);
        cuGraphExecDestroy = bind(lib, "cuGraphExecDestroy", ADDRESS);
        cuGraphDestroy = bind(lib, "cuGraphDestroy", ADDRESS);
    }

    private static MethodHandle bind(VendorLib lib, String name, MemoryLayout... args) { return lib.status(name, args); }

    /** Invokes a driver call; a non-zero CUresult becomes NativeException(call, code, "NAME: description"). */
    int call(String name, MethodHandle h, Object... args) { return lib.check(name, h, args); }

    /** "CUDA_ERROR_NO_DEVICE: no CUDA-capable device is detected", from the driver itself. */
    String describe(int rc) { return lib.describeStatus(rc); }

    private String describeName(int rc) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment pn = a.allocate(ADDRESS), ps = a.allocate(ADDRESS);
            int r1 = (int) cuGetErrorName.invokeExact(rc, pn);
            int r2 = (int) cuGetErrorString.invokeExact(rc, ps);
            String n = r1 == 0 ? VendorLib.string(pn.get(ADDRESS, 0)) : "CUresult " + rc;
            String s = r2 == 0 ? VendorLib.string(ps.get(ADDRESS, 0)) : "";
            return s.isEmpty() ? n : n + ": " + s;
        } catch (Throwable t) {
            return "CUresult " + rc;
        }
    }
}
