package dev.latent;

import org.junit.jupiter.api.Test;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.spi.ToolProvider;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The package layering of the core, read from the compiled classes by jdeps (what the bytecode references, not the
 * imports): {@code tensor} is the bottom layer (it references no other package of the library; device memory, the
 * generator and device copies come through {@link dev.latent.tensor.TensorSupport}), {@code nativ} references nothing of
 * the library, and {tensor, ops, nativ, cuda, io} form no cycle (issue 16 found all five in one).
 */
class PackageLayersTest {
    static final Set<String> LOW = Set.of("dev.latent.tensor", "dev.latent.ops", "dev.latent.nativ", "dev.latent.cuda", "dev.latent.io");

    /** package -> the library's packages it references. */
    static Map<String, Set<String>> packageGraph() throws Exception {
        Path classes = Path.of(Latent.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        ToolProvider jdeps = ToolProvider.findFirst("jdeps").orElseThrow(() -> new AssertionError("jdeps not in this JDK"));
        StringWriter out = new StringWriter(), err = new StringWriter();
        int rc = jdeps.run(new PrintWriter(out), new PrintWriter(err), "-verbose:package", "--multi-release", "base", classes.toString());
        assertEquals(0, rc, "jdeps failed: " + err);
        Map<String, Set<String>> g = new TreeMap<>();
        for (String line : out.toString().split("\n")) {
            String[] f = line.trim().split("\\s+");
            if (f.length >= 3 && f[1].equals("->") && f[0].startsWith("dev.latent") && f[2].startsWith("dev.latent") && !f[0].equals(f[2]))
                g.computeIfAbsent(f[0], k -> new TreeSet<>()).add(f[2]);
        }
        assertTrue(g.containsKey("dev.latent.ops"), "jdeps listed no package dependencies of dev.latent.ops:\n" + out);
        return g;
    }

    @Test
    void tensorAndNativAreAtTheBottom() throws Exception {
        Map<String, Set<String>> g = packageGraph();
        assertEquals(Set.of(), g.getOrDefault("dev.latent.tensor", Set.of()), "dev.latent.tensor must reference no other package of the library");
        assertEquals(Set.of(), g.getOrDefault("dev.latent.nativ", Set.of()), "dev.latent.nativ must reference no other package of the library");
        assertTrue(g.get("dev.latent.ops").contains("dev.latent.tensor"), "sanity: ops uses tensors " + g.get("dev.latent.ops"));
    }

    @Test
    void lowLayersFormNoCycle() throws Exception {
        Map<String, Set<String>> g = packageGraph();
        for (String start : LOW) {   // a path from start back to itself inside LOW is a cycle
            Deque<List<String>> todo = new ArrayDeque<>();
            todo.add(List.of(start));
            Set<String> seen = new TreeSet<>();
            while (!todo.isEmpty()) {
                List<String> path = todo.poll();
                for (String next : g.getOrDefault(path.getLast(), Set.of())) {
                    if (!LOW.contains(next)) continue;
                    if (next.equals(start)) fail("package cycle: " + String.join(" -> ", path) + " -> " + start);
                    if (seen.add(next)) {
                        List<String> p = new java.util.ArrayList<>(path);
                        p.add(next);
                        todo.add(p);
                    }
                }
            }
        }
    }
}
