package dev.latent.cuda;

import dev.latent.nativ.NativeException;
import org.junit.jupiter.api.Test;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.List;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.*;

/**
 * VendorLib, the plumbing the NVIDIA bindings share, on the C library (no GPU, no vendor library needed): abs(int) plays a
 * status-returning entry point. The bindings' own messages are checked against the emulated stand-ins in CuBlasTest,
 * CuBlasLtTest, CuDnnTest, CuDnnAttentionTest and CudaDriverErrorsTest.
 */
class VendorLibTest {
    private static final SymbolLookup LIBC = Linker.nativeLinker().defaultLookup();

    private static VendorLib libc(String owner) {
        return new VendorLib(LIBC, owner, "cuFoo 9 needed", rc -> "CUFOO_STATUS_" + rc, true);
    }

    @Test
    void aMissingSymbolNamesItAndWhatIsNeeded() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> libc("").status("cuFooNoSuchCall", JAVA_INT));
        assertEquals("lacks cuFooNoSuchCall (cuFoo 9 needed)", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> libc("libcufoo.so.9").function("cuFooNoSuchCall", FunctionDescriptor.of(JAVA_INT)));
        assertEquals("libcufoo.so.9 lacks cuFooNoSuchCall (cuFoo 9 needed)", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> libc("").needing("cuFoo 10's graph API needed").status("cuFooGraph"));
        assertEquals("lacks cuFooGraph (cuFoo 10's graph API needed)", e.getMessage());
        assertNull(libc("").optional("cuFooNoSuchCall", FunctionDescriptor.of(ADDRESS, JAVA_INT)));
        assertFalse(libc("").standIn, "the C library is no stand-in");
    }

    @Test
    void aNonZeroStatusIsOneNativeExceptionNamingTheCallAndTheStatus() {
        VendorLib lib = libc("");
        MethodHandle abs = lib.status("abs", JAVA_INT);
        assertEquals(0, lib.check("abs", abs, 0));
        NativeException e = assertThrows(NativeException.class, () -> lib.check("cuFooAbs", abs, -7));
        assertEquals("cuFooAbs", e.op());
        assertEquals(7, e.code());
        assertTrue(e.getMessage().startsWith("cuFooAbs failed:") && e.getMessage().endsWith(": CUFOO_STATUS_7"), e.getMessage());
        assertEquals("CUFOO_STATUS_3", lib.describeStatus(3), "no stand-in detail outside the emulated driver");
        // a wrong argument list is the caller's bug, not a status: it propagates as is
        assertThrows(RuntimeException.class, () -> lib.check("cuFooAbs", abs, "not an int"));
    }

    @Test
    void theFirstLoadableCandidateOrWhyNone() {
        assertEquals("no cuFoo found", VendorLib.first(List.of(), "cuFoo", c -> c));
        Object why = VendorLib.first(List.of("/nonexistent/libcufoo.so.9", "libcufoo-no-such-soname.so.9"), "cuFoo", VendorLib::open);
        assertTrue(why instanceof String s && s.startsWith("no usable cuFoo: /nonexistent/libcufoo.so.9: ")
                && s.contains("; libcufoo-no-such-soname.so.9: "), String.valueOf(why));
        Object got = VendorLib.first(List.of("/nonexistent/libcufoo.so.9", "second"), "cuFoo", c -> {
            if (c.startsWith("/")) throw new IllegalArgumentException("cannot open " + c);
            return "bound " + c;
        });
        assertEquals("bound second", got, "a failing candidate is passed over");
        assertThrows(IllegalStateException.class, () -> VendorLib.first(List.of("x"), "cuFoo", c -> { throw new IllegalStateException("a bug"); }),
                "only the load failures (IllegalArgumentException, UnsatisfiedLinkError, NativeException) are candidates' failures");
    }
}
