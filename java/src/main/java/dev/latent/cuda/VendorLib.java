package dev.latent.cuda;

import dev.latent.nativ.NativeException;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.IntFunction;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * The plumbing every NVIDIA library binding shares (the driver {@link CudaDriver}, {@link CuBlas}, {@link CuBlasLt},
 * {@link CuDnn}, {@link CuDnnAttention}): opening the library from a list of candidates, looking up its symbols (a
 * missing one is an IllegalArgumentException naming it and what is needed), and calling entry points that return a
 * status: a non-zero status becomes one {@link NativeException} naming the call, the library's own name (and
 * description) of the status, and, for the emulated driver's CPU stand-ins, the stand-in's detail of its last refusal
 * ({@code latent_emu_last_vendor_error}).
 */
final class VendorLib {
    private static final Linker LINKER = Linker.nativeLinker();

    final SymbolLookup lookup;
    /** The emulated driver's CPU stand-in (it exports latent_emu_vendor_stand_in), not NVIDIA's library. */
    final boolean standIn;
    private final String owner;                /* "" or "libcuda.so.1 ": who lacks a missing symbol */
    private final String need;                 /* what a missing symbol says is needed: "cuBLAS 11.4 or newer needed" */
    private final IntFunction<String> names;   /* the library's name of a status, without the stand-in's detail */
    private final MethodHandle lastStandInError;   /* null: no stand-in detail (NVIDIA's library, or not asked for) */

    /**
     * @param owner     prefixes a missing symbol's message ("libcuda.so.1 lacks cuInit ..."); empty for "lacks ..."
     * @param need      what a missing symbol's message says is needed ("cuDNN 8 or 9 needed")
     * @param names     the library's name of a non-zero status (called only on failures, so it may read handles the
     *                  binding looks up after this object is made)
     * @param standInDetail whether a failure adds the emulated stand-in's detail of its last refusal (when it has one)
     */
    VendorLib(SymbolLookup lookup, String owner, String need, IntFunction<String> names, boolean standInDetail) {
        this.lookup = lookup;
        this.owner = owner.isEmpty() ? "" : owner + " ";
        this.need = need;
        this.names = names;
        this.standIn = lookup.find("latent_emu_vendor_stand_in").isPresent();
        this.lastStandInError = standInDetail ? lookup.find("latent_emu_last_vendor_error")
                .map(s -> LINKER.downcallHandle(s, FunctionDescriptor.of(ADDRESS))).orElse(null) : null;
    }

    private VendorLib(VendorLib base, String need) {
        this.lookup = base.lookup;
        this.standIn = base.standIn;
        this.owner = base.owner;
        this.need = need;
        this.names = base.names;
        this.lastStandInError = base.lastStandInError;
    }

    /** The same library and status names, for a part of it whose missing symbols need something else ("cuDNN 9's backend API"). */
    VendorLib needing(String need) { return new VendorLib(this, need); }

    /** The symbol {@code name}; IllegalArgumentException "lacks NAME (NEED)" when the library has none. */
    MemorySegment find(String name) {
        return lookup.find(name).orElseThrow(() -> new IllegalArgumentException(owner + "lacks " + name + " (" + need + ")"));
    }

    /** A required entry point returning a status (int) and taking {@code args}. */
    MethodHandle status(String name, MemoryLayout... args) {
        return LINKER.downcallHandle(find(name), FunctionDescriptor.of(JAVA_INT, args));
    }

    /** A required entry point of any signature. */
    MethodHandle function(String name, FunctionDescriptor fd) {
        return LINKER.downcallHandle(find(name), fd);
    }

    /** An entry point the library may lack (null then), e.g. cublasGetStatusName. */
    MethodHandle optional(String name, FunctionDescriptor fd) {
        return lookup.find(name).map(s -> LINKER.downcallHandle(s, fd)).orElse(null);
    }

    /**
     * Calls {@code h} (a status-returning entry point); a non-zero status becomes
     * {@code NativeException(call, status, describeStatus(status))}. Returns the status (0).
     */
    int check(String call, MethodHandle h, Object... args) {
        int rc;
        try {
            rc = (int) h.invokeWithArguments(args);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(call, t);
        }
        if (rc != 0) throw new NativeException(call, rc, describeStatus(rc));
        return rc;
    }

    /** The library's name of {@code rc}, then " (stand-in: DETAIL)" when the emulated stand-in said why. */
    String describeStatus(int rc) {
        String d = names.apply(rc);
        if (lastStandInError != null) {
            try {
                String detail = string((MemorySegment) lastStandInError.invokeExact());
                if (!detail.isEmpty()) d += " (stand-in: " + detail + ")";
            } catch (Throwable ignored) {
                // the detail is optional
            }
        }
        return d;
    }

    /** The C string {@code h(rc)} returns ({@code const char *f(int)}, e.g. cudnnGetErrorString); "" when h is null, fails or returns NULL. */
    static String text(MethodHandle h, int rc) {
        if (h == null) return "";
        try {
            return string((MemorySegment) h.invokeExact(rc));
        } catch (Throwable t) {
            return "";
        }
    }

    /** A NUL-terminated C string; "" for NULL. */
    static String string(MemorySegment p) {
        return p.equals(MemorySegment.NULL) ? "" : p.reinterpret(4096).getString(0);
    }

    /** Opens a candidate of {@link CudaVendor#candidates}: an absolute file by its path, else a soname by the dynamic linker's search. */
    static SymbolLookup open(String candidate) {
        Path p = Path.of(candidate);
        return p.isAbsolute() ? SymbolLookup.libraryLookup(p, Arena.global()) : SymbolLookup.libraryLookup(candidate, Arena.global());
    }

    /** Binds an opened library; IllegalArgumentException, UnsatisfiedLinkError or NativeException when it cannot. */
    interface Binder<T> {
        T bind(String candidate);
    }

    /**
     * The first candidate {@code bind} accepts, or the String reason none did: "no WHAT found" when there were no
     * candidates, else "no usable WHAT: " and each candidate's failure.
     */
    static Object first(List<String> candidates, String what, Binder<?> bind) {
        List<String> tried = new ArrayList<>();
        for (String cand : candidates) {
            try {
                return bind.bind(cand);
            } catch (IllegalArgumentException | UnsatisfiedLinkError | NativeException e) {
                tried.add(cand + ": " + e.getMessage());
            }
        }
        return tried.isEmpty() ? "no " + what + " found" : "no usable " + what + ": " + String.join("; ", tried);
    }
}
