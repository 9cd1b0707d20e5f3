package dev.latent.spark.collective;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * NVIDIA's NCCL ({@code libnccl.so.2}) bound through FFM: the all-reduce of CUDA workers' gradients, on the device,
 * without host copies. Optional at run time, never downloaded, never required: found the way the core finds cuBLAS
 * and cuDNN ({@code dev.latent.cuda.CudaVendor}), in this order: {@code -Dlatent.nccl.path} (a file, or a folder
 * holding libnccl.so.2), the folders of {@code LD_LIBRARY_PATH}, the CUDA toolkit ({@code $CUDA_HOME},
 * {@code $CUDA_PATH}, {@code /usr/local/cuda*}: {@code lib64}, {@code lib}, {@code targets/x86_64-linux/lib}),
 * NVIDIA's Python wheels ({@code site-packages/nvidia/&#42;/lib}: {@code nvidia-nccl-cu12} installs
 * {@code nvidia/nccl/lib/libnccl.so.2}) under {@code $VIRTUAL_ENV}, {@code $CONDA_PREFIX}, {@code PYTHONPATH},
 * {@code ~/.local} and the system's Python folders, then the dynamic linker's own search by soname (the distribution's
 * {@code libnccl2} package). A library that is found but fails to load or lacks an entry point is skipped, with its
 * reason in {@link #unavailableReason()}.
 * <p>Bound: {@code ncclGetVersion}, {@code ncclGetUniqueId}, {@code ncclCommInitRank} (the 128-byte unique id by
 * value), {@code ncclAllReduce} (float32, {@code ncclSum}), {@code ncclCommGetAsyncError}, {@code ncclCommDestroy},
 * {@code ncclGetErrorString}. Every non-success result becomes an {@link NcclException} naming the call, the rank
 * and NCCL's own error string. The all-reduce is issued on the legacy default stream (NULL), where the core's CUDA
 * kernels and copies run, so it is ordered after the backward that produced the gradient and before the kernels that
 * read the result, without events.
 */
public final class Nccl {
    static final List<String> SONAMES = List.of("libnccl.so.2");
    static final int UNIQUE_ID_BYTES = 128;
    static final int NCCL_FLOAT32 = 7, NCCL_SUM = 0;
    private static final String[] NAMES = {"ncclSuccess", "ncclUnhandledCudaError", "ncclSystemError", "ncclInternalError",
            "ncclInvalidArgument", "ncclInvalidUsage", "ncclRemoteError", "ncclInProgress"};
    private static final MemoryLayout UNIQUE_ID = MemoryLayout.structLayout(MemoryLayout.sequenceLayout(UNIQUE_ID_BYTES, JAVA_BYTE));

    private final MethodHandle getVersion, getUniqueId, commInitRank, allReduce, commDestroy, getErrorString, commGetAsyncError;
    private final String file;
    private final int version;

    private static volatile Object probed;   /* an Nccl, or the String reason there is none; null: not probed */

    private Nccl(SymbolLookup lib, String file) throws NcclException {
        Linker l = Linker.nativeLinker();
        getVersion = bind(l, lib, "ncclGetVersion", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        getUniqueId = bind(l, lib, "ncclGetUniqueId", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        commInitRank = bind(l, lib, "ncclCommInitRank", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, UNIQUE_ID, JAVA_INT));
        allReduce = bind(l, lib, "ncclAllReduce", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
        commDestroy = bind(l, lib, "ncclCommDestroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        getErrorString = bind(l, lib, "ncclGetErrorString", FunctionDescriptor.of(ADDRESS, JAVA_INT));
        commGetAsyncError = bind(l, lib, "ncclCommGetAsyncError", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        this.file = file;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_INT);
            check("ncclGetVersion", -1, (int) getVersion.invokeExact(v));
            version = v.get(JAVA_INT, 0);
        } catch (NcclException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("ncclGetVersion: " + t, t);
        }
    }

    private static MethodHandle bind(Linker l, SymbolLookup lib, String name, FunctionDescriptor fd) {
        MemorySegment sym = lib.find(name).orElseThrow(() -> new IllegalArgumentException("no symbol " + name));
        return l.downcallHandle(sym, fd);
    }

    /** The library found at run time (probed once), or null: {@link #unavailableReason()} says why. */
    public static Nccl get() {
        return probe() instanceof Nccl n ? n : null;
    }

    /** Why no NCCL serves ("" when one does). */
    public static String unavailableReason() {
        return probe() instanceof String s ? s : "";
    }

    /** The found library (an {@code Nccl}) or the reason there is none (a String); probed once per JVM. */
    public static Object probe() {
        Object p = probed;
        if (p != null) return p;
        synchronized (Nccl.class) {
            if (probed == null) probed = load(candidates());
            return probed;
        }
    }

    /** Loads the first candidate that works: an {@code Nccl}, or a String naming every candidate tried and why it failed. */
    public static Object load(List<String> candidates) {
        List<String> tried = new ArrayList<>();
        for (String cand : candidates) {
            try {
                Path p = Path.of(cand);
                SymbolLookup lib = p.isAbsolute() ? SymbolLookup.libraryLookup(p, Arena.global()) : SymbolLookup.libraryLookup(cand, Arena.global());
                return new Nccl(lib, cand);
            } catch (IllegalArgumentException | UnsatisfiedLinkError | NcclException | IllegalStateException e) {
                tried.add(cand + ": " + e.getMessage());
            }
        }
        return tried.isEmpty() ? "no NCCL found" : "no usable NCCL (" + String.join("; ", tried) + ")";
    }

    /** The library's file (or soname) and version, e.g. "NCCL 2.21.5 (/usr/lib/x86_64-linux-gnu/libnccl.so.2)". */
    public String describe() {
        int major = version / 10000, minor = version / 100 % 100, patch = version % 100;
        if (version < 10000) {   // before 2.9: major * 1000 + minor * 100 + patch
            major = version / 1000;
            minor = version / 100 % 10;
        }
        return "NCCL " + major + "." + minor + "." + patch + " (" + file + ")";
    }

    public int version() { return version; }

    /** A fresh unique id (rank 0 makes it; the others receive it through the rendezvous), hex-encoded. */
    public String uniqueId() throws NcclException {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment id = a.allocate(UNIQUE_ID);
            check("ncclGetUniqueId", 0, (int) getUniqueId.invokeExact(id));
            return HexFormat.of().formatHex(id.toArray(JAVA_BYTE));
        } catch (NcclException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /**
     * Joins communicator {@code hexId} as {@code rank} of {@code size}; blocks until every rank has joined (NCCL's
     * semantics). The CUDA context the ranks' buffers live in must be current on the calling thread.
     */
    public Comm join(String hexId, int rank, int size) throws NcclException {
        byte[] id;
        try {
            id = HexFormat.of().parseHex(hexId);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("NCCL unique id is not hex: " + e.getMessage());
        }
        if (id.length != UNIQUE_ID_BYTES) throw new IllegalArgumentException("NCCL unique id has " + id.length + " bytes, not " + UNIQUE_ID_BYTES);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment idSeg = a.allocate(UNIQUE_ID);
            MemorySegment.copy(id, 0, idSeg, JAVA_BYTE, 0, UNIQUE_ID_BYTES);
            MemorySegment out = a.allocate(ADDRESS);
            check("ncclCommInitRank(" + size + " ranks)", rank, (int) commInitRank.invokeExact(out, size, idSeg, rank));
            return new Comm(out.get(ADDRESS, 0), rank, size);
        } catch (NcclException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    void check(String call, int rank, int result) throws NcclException {
        if (result == 0) return;
        String text;
        try {
            MemorySegment s = (MemorySegment) getErrorString.invokeExact(result);
            text = s.equals(MemorySegment.NULL) ? "?" : s.reinterpret(4096).getString(0);
        } catch (Throwable t) {
            text = "?";
        }
        throw new NcclException(call, rank, result, text);
    }

    static String name(int code) {
        return code >= 0 && code < NAMES.length ? NAMES[code] : "result " + code;
    }

    /** An NCCL call that did not return ncclSuccess (or a communicator with an asynchronous error). */
    public static final class NcclException extends IOException {
        public final int code;

        NcclException(String call, int rank, int code, String text) {
            super(call + (rank >= 0 ? " at rank " + rank : "") + " failed: " + text + " (" + name(code) + ", " + code + ")");
            this.code = code;
        }
    }

    /** One rank's communicator. Not thread-safe: one thread drives it (the worker's). */
    public final class Comm implements AutoCloseable {
        private final MemorySegment comm;
        public final int rank, size;
        private boolean closed;

        private Comm(MemorySegment comm, int rank, int size) {
            this.comm = comm;
            this.rank = rank;
            this.size = size;
        }

        /**
         * In place: the {@code count} floats at device address {@code buffer} become their sum over the ranks
         * (ncclSum; NCCL's own summation order). Checks the communicator's asynchronous error first, so a failed peer
         * surfaces as an exception here, not as a hang in a later copy.
         */
        public void allReduceSum(long buffer, long count) throws NcclException {
            if (closed) throw new IllegalStateException("NCCL communicator of rank " + rank + " is closed");
            if (count < 0) throw new IllegalArgumentException("negative count " + count);
            asyncError();
            try {
                MemorySegment p = MemorySegment.ofAddress(buffer);
                check("ncclAllReduce(" + count + " floats, sum)", rank,
                        (int) allReduce.invokeExact(p, p, count, NCCL_FLOAT32, NCCL_SUM, comm, MemorySegment.NULL));
            } catch (NcclException e) {
                throw e;
            } catch (Throwable t) {
                throw new IllegalStateException(t);
            }
            asyncError();
        }

        /** Throws when NCCL reports an asynchronous error on this communicator (a peer or the network failed). */
        public void asyncError() throws NcclException {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment r = a.allocate(JAVA_INT);
                check("ncclCommGetAsyncError", rank, (int) commGetAsyncError.invokeExact(comm, r));
                int e = r.get(JAVA_INT, 0);
                if (e != 0 && e != 7) check("NCCL communicator (asynchronous error)", rank, e);   // 7: ncclInProgress
            } catch (NcclException e) {
                throw e;
            } catch (Throwable t) {
                throw new IllegalStateException(t);
            }
        }

        /** The raw communicator (ncclComm_t), for tests. */
        public long address() { return comm.address(); }

        @Override
        public void close() throws NcclException {
            if (closed) return;
            closed = true;
            try {
                check("ncclCommDestroy", rank, (int) commDestroy.invokeExact(comm));
            } catch (NcclException e) {
                throw e;
            } catch (Throwable t) {
                throw new IllegalStateException(t);
            }
        }
    }

    // ---- discovery: the core's order for NVIDIA libraries (as cuBLAS and cuDNN are found) ----

    /** Where to look, in order: absolute files that exist, then the bare soname for the dynamic linker's search. */
    public static List<String> candidates() {
        return dev.latent.Latent.nvidiaLibraryCandidates("latent.nccl.path", SONAMES);
    }
}
