package build;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Generates the mechanical part of the Java binding from the C sources, which are the one description of every op:
 * <ul>
 *   <li>native/include/latent.h (every {@code LT_API} prototype, descriptor struct, {@code LT_*} constant, and the
 *   {@code /*@ ... *&#47;} annotation after a prototype: each pointer parameter's extent, {@code custom}, {@code required})
 *   -> java/src/main/java/dev/latent/nativ/LatentBinding.java (constants, layouts, field accessors, shared helpers) and
 *   one Binding&lt;Family&gt;.java per kernels/ folder (downcall handles, raw calls and the bounds-checked wrappers of
 *   that family's functions), chained up to LatentFunctions, which LatentNative extends;</li>
 *   <li>latent.h's {@code op=NAME} annotations -> java/src/main/java/dev/latent/ops/BackendOps.java (the Backend method),
 *   CpuOps.java (its CPU body: one call of the checked wrapper) and CudaOps.java (its CUDA body: one call of the launcher),
 *   {@code host=}, {@code hand=cpu|cuda}, {@code cpuonly} and {@code launcher=} saying where the common case does not fit
 *   ({@link GenPlumbing});</li>
 *   <li>latent.h's descriptor structs and their {@code /*@ id=N *&#47;} -> native/src/struct_info.inc (lt_struct_info's
 *   cases: sizeof and every offsetof);</li>
 *   <li>kernels/&#42;/&#42;.cu (every {@code LT_KERNEL void ltk_*} signature and every {@code #define NAME <integer>})
 *   -> java/src/main/java/dev/latent/cuda/Ltk.java: one typed launcher per kernel and the shared launch constants; and
 *   their launch annotations ({@code /*@ launch=NAME grid=stride(E)|ceil(E,R) block=B check=... p[extent] *&#47;} right
 *   before LT_KERNEL) -> java/src/main/java/dev/latent/cuda/CudaLaunchers.java: the checked launcher NAME
 *   ({@link GenPlumbing}).</li>
 * </ul>
 * This file reads the C sources (latent.h's prototypes, structs, constants and annotations; the kernels' signatures)
 * and writes the binding (LatentBinding, Binding&lt;Family&gt;, LatentFunctions, Ltk, struct_info.inc); GenPlumbing.java
 * beside it writes the plumbing that the op= and launch= annotations describe. Both are package {@code build}, so the
 * source launcher (JDK 22+) compiles GenPlumbing.java when this file runs.
 * Run from the repository root: {@code java java/src/build/GenBindings.java} writes the files; {@code --check} writes
 * nothing and exits 1 naming the stale file (the Maven build runs this in generate-sources, so a prototype, struct or
 * kernel changed without regenerating fails the build). Plain JDK, no dependency, about a second.
 * The annotation grammar and the walk-through of adding an op: docs/extending.md; why: docs/decisions.md.
 */
public final class GenBindings {
    static final String HEADER = "native/include/latent.h";
    static final String KERNELS = "kernels";
    static final String BINDING = "java/src/main/java/dev/latent/nativ/LatentBinding.java";
    static final String LTK = "java/src/main/java/dev/latent/cuda/Ltk.java";

    record Param(String name, String ctype, String base, int ptr, String array) {
        boolean pointer() { return ptr > 0 || array != null; }
    }

    /**
     * One LT_API function: its prototype, its annotation (extents, custom, required) and, when annotated with
     * {@code op=NAME}, the Backend op it implements: {@code host} lists pointer parameters passed as host segments (not
     * tensors), {@code hand} the backends whose body is written by hand ("cpu", "cuda"; "none" for a
     * {@code cpuonly} op, whose CUDA body refuses), {@code launcher} the class in
     * dev.latent.cuda holding the CUDA launcher NAME (CudaKernels unless said). {@code family}: the kernels/ folder.
     */
    record Fn(String name, String ret, List<Param> params, Map<String, String> extents, boolean custom, boolean required,
              String op, List<String> host, List<String> hand, String launcher, String family) {}

    record Field(String name, String base, String array) {}

    record Struct(String name, List<Field> fields, int id) {}

    static final String OPS = "java/src/main/java/dev/latent/ops/";
    static final String CUDA = "java/src/main/java/dev/latent/cuda/";
    static final String NATIV = "java/src/main/java/dev/latent/nativ/";
    static final String STRUCT_INFO = "native/src/struct_info.inc";

    public static void main(String[] args) throws IOException {
        boolean check = args.length > 0 && args[0].equals("--check");
        Path root = Path.of(args.length > 1 ? args[1] : ".");
        String h = Files.readString(root.resolve(HEADER));
        List<String> families;
        try (var s = Files.list(root.resolve(KERNELS))) {
            families = s.filter(Files::isDirectory).map(p -> p.getFileName().toString()).sorted().toList();
        }
        Map<String, Long> consts = constants(h);
        List<Struct> structs = structs(h);
        List<Fn> fns = functions(h, families);
        List<Path> cu;
        try (var s = Files.walk(root.resolve(KERNELS))) {
            cu = s.filter(p -> p.toString().endsWith(".cu")).sorted().toList();
        }
        Map<String, String> out = new LinkedHashMap<>();
        out.putAll(binding(consts, structs, fns));
        out.put(LTK, ltk(root, cu));
        out.put(CUDA + "CudaLaunchers.java", GenPlumbing.cudaLaunchers(GenPlumbing.launches(root, cu, fns)));
        out.putAll(GenPlumbing.backendOps(fns));
        out.put(STRUCT_INFO, structInfo(structs));
        int stale = 0;
        for (var e : out.entrySet()) {
            Path p = root.resolve(e.getKey());
            String old = Files.exists(p) ? Files.readString(p) : "";
            if (old.equals(e.getValue())) continue;
            if (check) {
                System.err.println("GenBindings: " + e.getKey() + " is stale: it does not match " + HEADER + " and " + KERNELS
                        + "/*/*.cu. Run `java java/src/build/GenBindings.java` from the repository root and commit the result"
                        + firstDifference(old, e.getValue()));
                stale++;
            } else {
                Files.writeString(p, e.getValue());
                System.out.println("GenBindings: wrote " + e.getKey());
            }
        }
        // a generated binding file no family produces any more is stale too (a renamed or removed family)
        try (var s = Files.list(root.resolve(NATIV))) {
            for (Path p : s.filter(x -> x.getFileName().toString().matches("Binding[A-Z]\\w*\\.java")).sorted().toList()) {
                String rel = NATIV + p.getFileName();
                if (out.containsKey(rel) || !Files.readString(p).startsWith("// " + GENERATED)) continue;
                if (check) {
                    System.err.println("GenBindings: " + rel + " is generated but no family of " + HEADER + " produces it any more: delete it");
                    stale++;
                } else {
                    Files.delete(p);
                    System.out.println("GenBindings: deleted " + rel);
                }
            }
        }
        if (stale > 0) System.exit(1);
    }

    static String firstDifference(String a, String b) {
        String[] x = a.split("\n", -1), y = b.split("\n", -1);
        for (int i = 0; i < Math.max(x.length, y.length); i++) {
            String l = i < x.length ? x[i] : "<end of file>", r = i < y.length ? y[i] : "<end of file>";
            if (!l.equals(r)) return " (first difference at line " + (i + 1) + ":\n  file:      " + l + "\n  generated: " + r + ")";
        }
        return "";
    }

    static RuntimeException fail(String msg) {
        System.err.println("GenBindings: " + msg);
        System.exit(2);
        return new IllegalStateException(msg);
    }

    static String stripComments(String s) {
        return s.replaceAll("(?s)/\\*.*?\\*/", " ").replaceAll("//[^\n]*", " ");
    }

    // ---------------------------------------------------------------- latent.h

    /** #define LT_X <int> and the members of enum { LT_X = <int>, ... }, in header order. */
    static Map<String, Long> constants(String h) {
        Map<String, Long> c = new LinkedHashMap<>();
        Matcher m = Pattern.compile("(?m)^#define (LT_[A-Z0-9_]+) (-?\\d+)\\b").matcher(h);
        while (m.find()) c.put(m.group(1), Long.parseLong(m.group(2)));
        Matcher e = Pattern.compile("(?s)\\benum \\{(.*?)\\}").matcher(h);
        while (e.find())
            for (String item : stripComments(e.group(1)).split(",")) {
                String[] kv = item.trim().split("\\s*=\\s*");
                if (kv.length != 2) throw fail("enum member without an explicit value: '" + item.trim() + "'");
                c.put(kv[0], Long.parseLong(kv[1]));
            }
        // order as in the header
        Map<String, Long> ordered = new LinkedHashMap<>();
        c.entrySet().stream().sorted((a, b) -> Integer.compare(h.indexOf(a.getKey()), h.indexOf(b.getKey())))
                .forEach(x -> ordered.put(x.getKey(), x.getValue()));
        return ordered;
    }

    static List<Struct> structs(String h) {
        List<Struct> out = new ArrayList<>();
        Matcher m = Pattern.compile("(?s)typedef struct (\\w+) \\{(.*?)\\} (\\w+);(?:[ \\t]*/\\*@ id=(\\d+) \\*/)?").matcher(h);
        while (m.find()) {
            if (!m.group(1).equals(m.group(3))) throw fail("typedef struct " + m.group(1) + " is named " + m.group(3));
            List<Field> fields = new ArrayList<>();
            for (String decl : stripComments(m.group(2)).split(";")) {
                decl = decl.trim();
                if (decl.isEmpty()) continue;
                Matcher d = Pattern.compile("^(\\w+)\\s+(.*)$").matcher(decl);
                if (!d.matches()) throw fail(m.group(1) + ": cannot read field '" + decl + "'");
                for (String n : d.group(2).split(",")) {
                    Matcher a = Pattern.compile("^(\\w+)(?:\\[(\\w+)\\])?$").matcher(n.trim());
                    if (!a.matches()) throw fail(m.group(1) + ": cannot read field '" + n + "'");
                    fields.add(new Field(a.group(1), d.group(1), a.group(2)));
                }
            }
            if (m.group(4) == null)
                throw fail(m.group(1) + ": a descriptor struct needs its lt_struct_info id after the typedef: } " + m.group(1) + "; /*@ id=N */");
            int id = Integer.parseInt(m.group(4));
            if (out.stream().anyMatch(x -> x.id == id)) throw fail(m.group(1) + ": struct id " + id + " is taken");
            out.add(new Struct(m.group(1), fields, id));
        }
        return out;
    }

    /** The family of lt_NAME: the longest kernels/ folder NAME starts with, else the folder its latent.h section names, else runtime. */
    static String family(String name, String h, int at, List<String> families) {
        String bare = name.substring(3), best = null;
        for (String f : families) if (bare.startsWith(f) && (best == null || f.length() > best.length())) best = f;
        if (best != null) return best;
        int sec = h.lastIndexOf("/* ----", at);
        if (sec >= 0) {
            Matcher k = Pattern.compile("\\(kernels/(\\w+)").matcher(h.substring(sec, h.indexOf('\n', sec)));
            if (k.find()) return k.group(1);
        }
        return "runtime";
    }

    static List<Fn> functions(String h, List<String> families) {
        List<Fn> out = new ArrayList<>();
        Matcher m = Pattern.compile("(?s)LT_API ([^;(]*?)\\s*\\b(lt_\\w+)\\(([^)]*)\\);[ \\t]*(?:\\n?[ \\t]*/\\*@(.*?)\\*/)?").matcher(h);
        while (m.find()) {
            String name = m.group(2), ret = m.group(1).trim().replaceAll("\\s+", " ");
            List<Param> params = params(name, m.group(3));
            Map<String, String> ext = new LinkedHashMap<>();
            boolean custom = false, required = false;
            String op = null, launcher = "CudaKernels";
            List<String> host = new ArrayList<>(), hand = new ArrayList<>();
            if (m.group(4) != null)
                for (String tok : m.group(4).trim().split("\\s+")) {
                    if (tok.isEmpty()) continue;
                    if (tok.equals("custom")) custom = true;
                    else if (tok.startsWith("op=")) op = tok.substring(3);
                    else if (tok.equals("cpuonly")) hand.add("none");
                    else if (tok.startsWith("launcher=")) launcher = tok.substring(9);
                    else if (tok.startsWith("hand=")) hand.addAll(List.of(tok.substring(5).split(",")));
                    else if (tok.startsWith("host=")) {
                        for (String x : tok.substring(5).split(","))
                            if (params.stream().noneMatch(q -> q.name.equals(x) && q.pointer()))
                                throw fail(name + ": host=" + x + " is not a pointer parameter");
                        host.addAll(List.of(tok.substring(5).split(",")));
                    }
                    else if (tok.equals("required")) required = true;
                    else {
                        Matcher t = Pattern.compile("^(\\w+)\\[([\\w*]+)\\]$").matcher(tok);
                        if (!t.matches()) throw fail(name + ": annotation token '" + tok + "' is not custom, required or param[extent]");
                        String p = t.group(1);
                        Param pp = params.stream().filter(x -> x.name.equals(p)).findFirst()
                                .orElseThrow(() -> fail(name + ": annotation names '" + p + "', which is not a parameter"));
                        if (!pp.pointer()) throw fail(name + ": '" + p + "' has an extent but is not a pointer");
                        for (String f : t.group(2).split("\\*"))
                            if (!f.matches("\\d+") && params.stream().noneMatch(x -> x.name.equals(f) && !x.pointer()))
                                throw fail(name + ": extent of '" + p + "' uses '" + f + "', which is not a scalar parameter");
                        ext.put(p, t.group(2));
                    }
                }
            if (!custom)
                for (Param p : params)
                    if (p.pointer() && !ext.containsKey(p.name))
                        throw fail(name + ": pointer parameter '" + p.name + "' has no extent: annotate the prototype with /*@ "
                                + p.name + "[n] ... */ (elements it touches) or /*@ custom */ and check it in LatentNative");
            for (String x : hand)
                if (!x.equals("cpu") && !x.equals("cuda") && !x.equals("none")) throw fail(name + ": hand=" + x + " is not cpu or cuda");
            if (op != null && !ret.equals("lt_status")) throw fail(name + ": op=" + op + " needs an lt_status function");
            out.add(new Fn(name, ret, params, ext, custom, required, op, host, hand, launcher, family(name, h, m.start(), families)));
        }
        return out;
    }

    static List<Param> params(String fn, String s) {
        List<Param> out = new ArrayList<>();
        s = s.replaceAll("\\s+", " ").trim();
        if (s.equals("void") || s.isEmpty()) return out;
        for (String p : s.split(",")) {
            Matcher m = Pattern.compile("^(.*?)\\s*\\b(\\w+)(?:\\[(\\w+)\\])?$").matcher(p.trim());
            if (!m.matches()) throw fail(fn + ": cannot read parameter '" + p + "'");
            String type = m.group(1).replace("__restrict__", "").trim();
            int ptr = (int) type.chars().filter(c -> c == '*').count();
            String base = type.replace("*", " ").replace("const", " ").trim().replaceAll("\\s+", " ");
            out.add(new Param(m.group(2), type, base, ptr, m.group(3)));
        }
        return out;
    }

    // ---------------------------------------------------------------- Java names and types

    /** lt_gelu_fwd -> geluFwd; ltk_x -> x; an underscore before a digit stays (lt_philox4x32_10 -> philox4x32_10). */
    static String camel(String c) {
        String s = c.replaceFirst("^ltk?_", "");
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < s.length(); i++) {
            char ch = s.charAt(i);
            if (ch == '_' && i + 1 < s.length() && !Character.isDigit(s.charAt(i + 1))) b.append(Character.toUpperCase(s.charAt(++i)));
            else b.append(ch);
        }
        return b.toString();
    }

    static String pascal(String c) { String s = camel(c); return Character.toUpperCase(s.charAt(0)) + s.substring(1); }

    static String scalarLayout(String base, String where) {
        return switch (base) {
            case "int32_t", "uint32_t", "lt_status" -> "JAVA_INT";
            case "int64_t", "uint64_t" -> "JAVA_LONG";
            case "float" -> "JAVA_FLOAT";
            case "double" -> "JAVA_DOUBLE";
            default -> throw fail(where + ": C type '" + base + "' has no Java layout here (add it to GenBindings.scalarLayout)");
        };
    }

    static String javaType(String layout) {
        return switch (layout) {
            case "JAVA_INT" -> "int";
            case "JAVA_LONG" -> "long";
            case "JAVA_FLOAT" -> "float";
            case "JAVA_DOUBLE" -> "double";
            default -> "MemorySegment";
        };
    }

    static String layoutOf(Param p, String fn) { return p.pointer() ? "ADDRESS" : scalarLayout(p.base, fn + "(" + p.name + ")"); }

    static long elemBytes(Param p, String fn) {
        if (p.ptr > 1 || (p.ptr == 1 && p.array != null)) return 8; // an array of pointers
        return switch (p.base) {
            case "float", "int32_t", "uint32_t" -> 4;
            case "__nv_bfloat16" -> 2;
            case "double", "int64_t", "uint64_t" -> 8;
            default -> throw fail(fn + ": extent of '" + p.name + "' (" + p.ctype + "): element size unknown; mark the function custom");
        };
    }

    static String constName(String c) { return c.replaceFirst("^LT_", ""); }

    // ---------------------------------------------------------------- LatentBinding.java

    static final String GENERATED = "GENERATED by java/src/build/GenBindings.java from ";

    static final List<String> BINDING_IMPORTS = List.of("java.lang.foreign.FunctionDescriptor", "java.lang.foreign.Linker",
            "java.lang.foreign.MemoryLayout", "java.lang.foreign.MemorySegment", "java.lang.foreign.StructLayout",
            "java.lang.foreign.SymbolLookup", "java.lang.invoke.MethodHandle", "java.lang.invoke.VarHandle", "java.nio.file.Path");

    static void bindingHead(StringBuilder o, List<String> imports, boolean bounds) {
        o.append("// ").append(GENERATED).append(HEADER).append(": do not edit. Change latent.h, then run\n")
                .append("// `java java/src/build/GenBindings.java` from the repository root (the build fails while this file is stale).\n");
        o.append("package dev.latent.nativ;\n\n");
        for (String i : imports) o.append("import ").append(i).append(";\n");
        if (bounds) o.append("\nimport static dev.latent.nativ.Bounds.elems;\nimport static dev.latent.nativ.Bounds.fits;\n");
    }

    static String familyClass(String family) { return "Binding" + pascal("lt_" + family); }

    /**
     * LatentBinding.java (constants, descriptor layouts and accessors, the shared helpers) and one Binding&lt;Family&gt;.java
     * per kernels/ family (its downcall handles, raw calls and checked wrappers), chained by inheritance in family order
     * and closed by LatentFunctions, which LatentNative extends: one file per family, each a few hundred lines.
     */
    static Map<String, String> binding(Map<String, Long> consts, List<Struct> structs, List<Fn> fns) {
        Map<String, String> files = new LinkedHashMap<>();
        Map<String, List<Fn>> byFamily = new java.util.TreeMap<>();
        for (Fn f : fns) byFamily.computeIfAbsent(f.family, k -> new ArrayList<>()).add(f);
        List<String> chain = new ArrayList<>();
        for (String fam : byFamily.keySet()) chain.add(familyClass(fam));
        chain.add("LatentFunctions");
        StringBuilder o = new StringBuilder();
        bindingHead(o, BINDING_IMPORTS, false);
        o.append("import static java.lang.foreign.MemoryLayout.PathElement.groupElement;\n");
        o.append("import static java.lang.foreign.MemoryLayout.PathElement.sequenceElement;\n");
        for (String l : List.of("ADDRESS", "JAVA_DOUBLE", "JAVA_FLOAT", "JAVA_INT", "JAVA_LONG"))
            o.append("import static java.lang.foreign.ValueLayout.").append(l).append(";\n");
        o.append("""

                /**
                 * The mechanical part of liblatent's binding, generated from latent.h: its constants, a {@link StructLayout} and
                 * accessors per descriptor struct, and the helpers of the per-family binding classes (Binding&lt;Family&gt;, one per
                 * kernels/ folder, chained by inheritance up to {@link LatentFunctions}): a downcall handle per {@code lt_*}
                 * function, a raw call per function (named as in C, package-private: no bounds checks) and, for every function
                 * whose prototype is annotated with its pointers' extents, the public checked wrapper (the C name in camel case:
                 * {@code lt_gelu_fwd} is {@code geluFwd}). The rest of the safety layer (functions annotated {@code custom}) is
                 * hand-written in {@link LatentNative}.
                 */
                public abstract sealed class LatentBinding""").append(" permits ").append(chain.get(0)).append(" {\n");
        // constants
        for (var e : consts.entrySet())
            o.append("    /** ").append(e.getKey()).append(" (latent.h). */\n    public static final int ").append(constName(e.getKey()))
                    .append(" = ").append(e.getValue()).append(";\n");
        // structs
        for (Struct s : structs) {
            String L = constName(s.name.toUpperCase());
            o.append("\n    /** Mirror of ").append(s.name).append(" (latent.h), pinned to the C compiler's layout by NativeLoaderTest. */\n");
            o.append("    public static final StructLayout ").append(L).append(" = MemoryLayout.structLayout(");
            long off = 0, align = 1;
            List<String> members = new ArrayList<>();
            for (Field f : s.fields) {
                String lay = scalarLayout(f.base, s.name + "." + f.name);
                long size = lay.equals("JAVA_INT") || lay.equals("JAVA_FLOAT") ? 4 : 8;
                align = Math.max(align, size);
                if (off % size != 0) { members.add("MemoryLayout.paddingLayout(" + (size - off % size) + ")"); off += size - off % size; }
                if (f.array != null) {
                    long n = f.array.matches("\\d+") ? Long.parseLong(f.array) : consts.getOrDefault(f.array, -1L);
                    if (n < 0) throw fail(s.name + "." + f.name + ": array size " + f.array + " is not a number or an LT_ constant");
                    String len = f.array.matches("\\d+") ? f.array : constName(f.array);
                    members.add("MemoryLayout.sequenceLayout(" + len + ", " + lay + ").withName(\"" + f.name + "\")");
                    off += n * size;
                } else {
                    members.add(lay + ".withName(\"" + f.name + "\")");
                    off += size;
                }
            }
            if (off % align != 0) members.add("MemoryLayout.paddingLayout(" + (align - off % align) + ")");
            o.append("\n            ").append(String.join(",\n            ", members)).append(").withName(\"").append(s.name).append("\");\n");
            // accessors
            o.append("\n    /** Field accessors of {@link #").append(L).append("} (").append(s.name)
                    .append("), through the layout's var handles: descriptors are written and read only through them. */\n");
            o.append("    public static final class ").append(pascal(s.name)).append(" {\n        private ").append(pascal(s.name)).append("() {}\n");
            for (Field f : s.fields) {
                String lay = scalarLayout(f.base, s.name), jt = javaType(lay), vh = f.name.toUpperCase();
                if (f.array != null) {
                    o.append("        private static final VarHandle ").append(vh).append(" = ").append(L)
                            .append(".varHandle(groupElement(\"").append(f.name).append("\"), sequenceElement());\n");
                    o.append("        /** ").append(f.name).append("[i]. */\n        public static ").append(jt).append(" ").append(camel(f.name))
                            .append("(MemorySegment d, long i) { return (").append(jt).append(") ").append(vh).append(".get(d, 0L, i); }\n");
                    o.append("        /** Sets ").append(f.name).append("[i]. */\n        public static void set").append(pascal(f.name))
                            .append("(MemorySegment d, long i, ").append(jt).append(" v) { ").append(vh).append(".set(d, 0L, i, v); }\n");
                } else {
                    o.append("        private static final VarHandle ").append(vh).append(" = ").append(L)
                            .append(".varHandle(groupElement(\"").append(f.name).append("\"));\n");
                    o.append("        /** ").append(f.name).append(". */\n        public static ").append(jt).append(" ").append(camel(f.name))
                            .append("(MemorySegment d) { return (").append(jt).append(") ").append(vh).append(".get(d, 0L); }\n");
                    o.append("        /** Sets ").append(f.name).append(". */\n        public static void set").append(pascal(f.name))
                            .append("(MemorySegment d, ").append(jt).append(" v) { ").append(vh).append(".set(d, 0L, v); }\n");
                }
            }
            o.append("    }\n");
        }
        o.append("\n    /** The lt_struct_info id of each descriptor struct (its @ id in latent.h; native/src/struct_info.inc). */\n");
        for (Struct st : structs)
            o.append("    public static final int STRUCT_ID_").append(constName(st.name.toUpperCase())).append(" = ").append(st.id).append(";\n");
        o.append("\n    private final Path path;\n\n    LatentBinding(Path path) {\n        this.path = path;\n    }\n");
        o.append("""

                    final MethodHandle bind(SymbolLookup l, Linker linker, String name, FunctionDescriptor fd) {
                        return linker.downcallHandle(l.find(name).orElseThrow(() -> new UnsatisfiedLinkError("symbol " + name + " missing in " + path)), fd);
                    }

                    /** Bound if present: a library built without it fails at the call, naming the symbol. */
                    static MethodHandle opt(SymbolLookup l, Linker linker, String name, FunctionDescriptor fd) {
                        return l.find(name).map(a -> linker.downcallHandle(a, fd)).orElse(null);
                    }

                    static MethodHandle need(MethodHandle h, String name) {
                        if (h == null) throw new UnsatisfiedLinkError("symbol " + name + " missing from liblatent.so (stale native build?)");
                        return h;
                    }

                    static RuntimeException rethrow(Throwable t) {
                        if (t instanceof RuntimeException r) return r;
                        if (t instanceof Error e) throw e;
                        return new IllegalStateException(t);
                    }

                    /** The library file this binding opened. */
                    public Path path() { return path; }

                    /** A non-zero status becomes a {@link NativeException} with lt_last_error()'s detail. */
                    final void check(String op, int status) {
                        if (status != 0) throw new NativeException(op, status, lastError());
                    }

                    /** lt_last_error()'s text (the runtime family's binding). */
                    abstract String lastError();

                    /** A {@code const char *} result: a NUL-terminated string the library keeps. */
                    static String string(MemorySegment s) { return s.reinterpret(4096).getString(0); }
                }
                """);
        files.put(BINDING, o.toString());
        int i = 0;
        for (var e : byFamily.entrySet()) {
            String cls = chain.get(i), sup = i == 0 ? "LatentBinding" : chain.get(i - 1), next = chain.get(i + 1);
            i++;
            StringBuilder b = new StringBuilder();
            List<Fn> fs = e.getValue();
            boolean bounds = fs.stream().anyMatch(f -> !f.custom && f.params.stream().anyMatch(Param::pointer));
            List<String> imps = new ArrayList<>(List.of("java.lang.foreign.FunctionDescriptor", "java.lang.foreign.Linker"));
            if (fs.stream().anyMatch(f -> f.params.stream().anyMatch(Param::pointer) || f.ret.equals("const char *")))
                imps.add("java.lang.foreign.MemorySegment");
            imps.addAll(List.of("java.lang.foreign.SymbolLookup", "java.lang.invoke.MethodHandle", "java.nio.file.Path"));
            bindingHead(b, imps, bounds);
            b.append("\n");
            java.util.TreeSet<String> lays = new java.util.TreeSet<>();
            for (Fn f : fs) {
                lays.add(retLayout(f));
                for (Param p : f.params) lays.add(layoutOf(p, f.name));
            }
            for (String l : lays) b.append("import static java.lang.foreign.ValueLayout.").append(l).append(";\n");
            b.append("\n/** The ").append(e.getKey()).append(" family of latent.h");
            if (!e.getKey().equals("runtime")) b.append(" (kernels/").append(e.getKey()).append(")");
            b.append(": ").append(fs.size()).append(" function").append(fs.size() == 1 ? "" : "s")
                    .append("' downcall handles, raw calls and checked wrappers. Part of the chain {@link LatentBinding} .. {@link LatentNative}. */\n");
            b.append("public abstract sealed class ").append(cls).append(" extends ").append(sup).append(" permits ").append(next).append(" {\n");
            for (Fn f : fs) b.append("    private final MethodHandle ").append(f.name).append(";\n");
            b.append("\n    ").append(cls).append("(Path path, SymbolLookup l, Linker linker) {\n        super(path")
                    .append(i == 1 ? "" : ", l, linker").append(");\n");
            for (Fn f : fs) {
                List<String> ls = new ArrayList<>();
                ls.add(retLayout(f));
                for (Param p : f.params) ls.add(layoutOf(p, f.name));
                b.append("        ").append(f.name).append(" = ").append(f.required ? "bind" : "opt").append("(l, linker, \"").append(f.name)
                        .append("\", FunctionDescriptor.of(").append(String.join(", ", ls)).append("));\n");
            }
            b.append("    }\n");
            for (Fn f : fs) emitCall(b, f);
            b.append("}\n");
            files.put(NATIV + cls + ".java", b.toString());
        }
        String last = chain.get(chain.size() - 2);
        files.put(NATIV + "LatentFunctions.java", "// " + GENERATED + HEADER + ": do not edit.\n" + """
                package dev.latent.nativ;

                import java.lang.foreign.Linker;
                import java.lang.foreign.SymbolLookup;
                import java.nio.file.Path;

                /** The end of the generated chain of per-family bindings (a stable name for {@link LatentNative} to extend). */
                public abstract sealed class LatentFunctions extends %s permits LatentNative {
                    LatentFunctions(Path path, SymbolLookup l, Linker linker) {
                        super(path, l, linker);
                    }
                }
                """.formatted(last));
        return files;
    }

    static String retLayout(Fn f) {
        return switch (f.ret) {
            case "lt_status", "int32_t" -> "JAVA_INT";
            case "int64_t" -> "JAVA_LONG";
            case "const char *" -> "ADDRESS";
            default -> throw fail(f.name + ": return type '" + f.ret + "' is not lt_status, int32_t, int64_t or const char *");
        };
    }

    static void emitCall(StringBuilder o, Fn f) {
        List<String> decl = new ArrayList<>(), names = new ArrayList<>();
        for (Param p : f.params) {
            decl.add(javaType(layoutOf(p, f.name)) + " " + camel(p.name));
            names.add(camel(p.name));
        }
        String args = String.join(", ", names), invoke = "need(" + f.name + ", \"" + f.name + "\").invokeExact(" + args + ")";
        boolean status = f.ret.equals("lt_status");
        String rt = switch (f.ret) { case "lt_status" -> "void"; case "int32_t" -> "int"; case "int64_t" -> "long"; default -> "String"; };
        String body = switch (f.ret) {
            case "lt_status" -> "check(\"" + f.name + "\", (int) " + invoke + ");";
            case "int32_t" -> "return (int) " + invoke + ";";
            case "int64_t" -> "return (long) " + invoke + ";";
            default -> "return string((MemorySegment) " + invoke + ");";
        };
        boolean pointers = f.params.stream().anyMatch(Param::pointer);
        boolean publicDirect = !f.custom && !pointers;   // nothing to check: the raw call is the wrapper
        String sig = String.join(", ", decl);
        o.append("\n    /** ").append(f.name).append(publicDirect ? "" : ", raw: no bounds checks")
                .append(status ? "; a non-zero status throws NativeException" : "").append(". */\n");
        o.append("    ").append(publicDirect ? "public " : "").append("final ").append(rt).append(" ")
                .append(publicDirect ? camel(f.name) : f.name).append("(").append(sig).append(") {\n");
        o.append("        try { ").append(body).append(" } catch (Throwable thrown) { throw rethrow(thrown); }\n    }\n");
        if (f.custom || !pointers) return;
        // the checked wrapper: every pointer's extent, then the raw call
        StringBuilder doc = new StringBuilder();
        for (Param p : f.params)
            if (p.pointer()) doc.append(doc.isEmpty() ? "" : ", ").append(p.name).append(" holds ").append(f.extents.get(p.name).replace("*", " * "));
        o.append("\n    /** ").append(f.name).append(" (latent.h), checked: ").append(doc)
                .append(" elements (NULL passes: the library refuses or skips it); a too-small segment is an IllegalArgumentException naming the argument. */\n");
        o.append("    public ").append(rt).append(" ").append(camel(f.name)).append("(").append(sig).append(") {\n");
        o.append("        String op = \"").append(f.name).append("\";\n");
        Map<String, String> locals = extentLocals(o, f.params, f.extents, x -> x.matches("\\d+") ? x : camel(x));
        for (Param p : f.params)
            if (p.pointer())
                o.append("        fits(op, \"").append(p.name).append("\", ").append(camel(p.name)).append(", ")
                        .append(locals.get(f.extents.get(p.name))).append(", ").append(elemBytes(p, f.name)).append(");\n");
        o.append("        ").append(status ? "" : "return ").append(f.name).append("(").append(args).append(");\n    }\n");
    }

    /**
     * Declares {@code long eN = elems(op, factors...)} once per distinct extent of the pointer parameters (each factor
     * through {@code factor}: a parameter's Java name) and returns which local holds each extent: the checked wrappers'
     * and the CUDA launchers' shared preamble.
     */
    static Map<String, String> extentLocals(StringBuilder o, List<Param> params, Map<String, String> extents, UnaryOperator<String> factor) {
        Map<String, String> locals = new LinkedHashMap<>();
        for (Param p : params)
            if (p.pointer()) {
                String e = extents.get(p.name);
                if (!locals.containsKey(e)) {
                    String v = "e" + locals.size();
                    locals.put(e, v);
                    List<String> fs = new ArrayList<>();
                    for (String x : e.split("\\*")) fs.add(factor.apply(x));
                    o.append("        long ").append(v).append(" = elems(op, ").append(String.join(", ", fs)).append(");\n");
                }
            }
        return locals;
    }

    // ---------------------------------------------------------------- Ltk.java (CUDA)

    static String ltk(Path root, List<Path> files) throws IOException {
        StringBuilder o = new StringBuilder();
        o.append("// ").append(GENERATED).append(KERNELS).append("/*/*.cu: do not edit. Change a kernel's signature or a launch\n")
                .append("// constant there, then run `java java/src/build/GenBindings.java` from the repository root (the build fails while this file is stale).\n");
        o.append("package dev.latent.cuda;\n\nimport java.lang.foreign.MemorySegment;\n\n");
        o.append("""
                /**
                 * Typed launches of every {@code LT_KERNEL void ltk_*} of kernels/&#42;/&#42;.cu, named as in C, and the integer
                 * {@code #define}s of those files (block sizes, chunk lengths, tile limits) that the launch code shares with them.
                 * Parameters map int64_t/uint64_t to long, int32_t to int, float, double, any pointer to a {@link DeviceBuffer}
                 * (null: NULL) and a struct passed by value to a {@link MemorySegment} holding its bytes. Generated: a kernel whose
                 * signature changes changes its launcher here, and every launch site that no longer fits stops compiling.
                 */
                final class Ltk {
                    private Ltk() {}
                """);
        Map<String, String> seen = new LinkedHashMap<>();
        StringBuilder kernels = new StringBuilder();
        Pattern def = Pattern.compile("(?m)^#define ([A-Z][A-Z0-9_]*) (\\d+)\\b");
        Pattern ker = Pattern.compile("(?s)LT_KERNEL void\\s+(?:__launch_bounds__\\([^)]*\\)\\s*)?(ltk_\\w+)\\s*\\(([^)]*)\\)");
        for (Path p : files) {
            String src = Files.readString(p), rel = root.relativize(p).toString();
            Matcher d = def.matcher(src);
            while (d.find()) {
                String prev = seen.putIfAbsent(d.group(1), d.group(2) + " " + rel);
                if (prev != null && !prev.startsWith(d.group(2) + " "))
                    throw fail(d.group(1) + " is " + d.group(2) + " in " + rel + " but " + prev);
                if (prev == null)
                    o.append("    /** ").append(d.group(1)).append(" of ").append(rel).append(". */\n    static final int ").append(d.group(1))
                            .append(" = ").append(d.group(2)).append(";\n");
            }
            Matcher k = ker.matcher(stripComments(src));
            while (k.find()) {
                List<Param> ps = params(k.group(1), k.group(2));
                List<String> decl = new ArrayList<>(List.of("Cuda cu", "int[] grid", "int[] block", "int sharedBytes")), names = new ArrayList<>();
                for (Param q : ps) {
                    String jt = q.pointer() ? "DeviceBuffer" : switch (q.base) {
                        case "int64_t", "uint64_t" -> "long";
                        case "int32_t", "uint32_t", "int" -> "int";
                        case "float" -> "float";
                        case "double" -> "double";
                        default -> "MemorySegment";
                    };
                    decl.add(jt + " " + q.name);
                    names.add(q.name);
                }
                kernels.append("\n    /** ").append(k.group(1)).append(" (").append(rel).append(")");
                for (Param q : ps) if (!q.pointer() && q.base.startsWith("lt")) kernels.append("; ").append(q.name).append(": a ").append(q.base).append(" by value");
                kernels.append(". */\n    static void ").append(k.group(1)).append("(").append(String.join(", ", decl)).append(") {\n        cu.launch(\"")
                        .append(k.group(1)).append("\", grid, block, sharedBytes").append(names.isEmpty() ? "" : ", " + String.join(", ", names))
                        .append(");\n    }\n");
            }
        }
        o.append(kernels).append("}\n");
        return o.toString();
    }

    // ---------------------------------------------------------------- native/src/struct_info.inc

    static String structInfo(List<Struct> structs) {
        StringBuilder o = new StringBuilder();
        o.append("/* ").append(GENERATED).append(HEADER).append(" (its descriptor structs and their @ id annotations):\n")
                .append(" * do not edit. Run `java java/src/build/GenBindings.java` from the repository root after changing a struct.\n")
                .append(" * Included by runtime.c: lt_struct_info(id) reports sizeof and every field's offsetof, in declaration order,\n")
                .append(" * which NativeLoaderTest compares with the Java StructLayouts. */\n");
        int max = 0;
        for (Struct st : structs) max = Math.max(max, st.fields.size() + 1);
        o.append("#define LT_STRUCT_INFO_MAX ").append(max).append("\n\n");
        o.append("/* Writes sizeof and the field offsets of struct `which` into v (LT_STRUCT_INFO_MAX entries); returns their count, -1 for an unknown id. */\n");
        o.append("static int lt_struct_info_fill(int32_t which, int64_t *v) {\n    switch (which) {\n");
        for (Struct st : structs.stream().sorted((x, y) -> Integer.compare(x.id, y.id)).toList()) {
            o.append("    case ").append(st.id).append(":\n        v[0] = (int64_t)sizeof(").append(st.name).append(");\n");
            int i = 1;
            for (Field f : st.fields)
                o.append("        v[").append(i++).append("] = (int64_t)offsetof(").append(st.name).append(", ").append(f.name).append(");\n");
            o.append("        return ").append(i).append(";\n");
        }
        o.append("    default:\n        return -1;\n    }\n}\n");
        return o.toString();
    }
}
