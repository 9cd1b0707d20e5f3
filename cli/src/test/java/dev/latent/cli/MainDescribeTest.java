package dev.latent.cli;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.util.List;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

/** Issue 19: a failure's one line names the problem and never says "null", whatever the exception carries. */
class MainDescribeTest {
    static final Pattern NULL = Pattern.compile("\\bnull\\b");

    static Throwable helpfulNpe() {
        try {
            String s = System.getProperty("no.such.property.latent");
            return new AssertionError("not thrown: " + s.length());
        } catch (NullPointerException e) {
            return e;   // "Cannot invoke "String.length()" because "s" is null"
        }
    }

    @Test
    void noMessageSaysNull() {
        List<Throwable> cases = List.of(new NullPointerException(), helpfulNpe(), new IllegalStateException((String) null),
                new IllegalArgumentException("null"), new RuntimeException(new IOException((String) null)),
                new UncheckedIOException(new IOException("")), new NoSuchFileException(null), new AccessDeniedException(null, null, null),
                new FileSystemException(null, null, null), new UnsupportedOperationException(), new RuntimeException(new NullPointerException()));
        for (Throwable t : cases) {
            String m = Main.describe(t);
            assertFalse(m.isBlank(), t.toString());
            assertFalse(NULL.matcher(m).find(), "\"null\" in '" + m + "' for " + t);
            StringWriter w = new StringWriter();
            int rc = Main.report(t, false, new PrintWriter(w, true));
            assertEquals(1, rc);
            assertFalse(NULL.matcher(w.toString()).find(), w.toString());
            assertTrue(w.toString().startsWith("latent: "), w.toString());
        }
    }

    @Test
    void aBugSaysWhereAndAsksForTheTrace() {
        String m = Main.describe(helpfulNpe());
        assertTrue(m.startsWith("internal error: a missing value (NullPointerException in MainDescribeTest.helpfulNpe)"), m);
        assertTrue(m.contains("--stacktrace"), m);
        var bare = new UnsupportedOperationException();
        bare.setStackTrace(new StackTraceElement[] {new StackTraceElement("dev.latent.x.Thing", "go", null, 1)});
        assertEquals("UnsupportedOperationException in Thing.go (no message; run with --stacktrace)", Main.describe(bare));
        assertEquals("no such file or directory: /x/y", Main.describe(new NoSuchFileException("/x/y")));
        assertEquals("permission denied", Main.describe(new AccessDeniedException(null)));
    }
}
