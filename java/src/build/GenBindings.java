import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Generates the mechanical part of the Java binding from the C sources, which are the one description of every op:
 * <ul>
 *   <li>native/include/latent.h (every {@code LT_API} prototype, descriptor struct, {@code LT_*} constant, and the
 *   {@code /*@ ... *&#47;} annotation after a prototype: each pointer parameter's extent, {@code custom}, {@code required})
 *   -> java/src/main/java/dev/latent/nativ/LatentBinding.java: layouts, field accessors, downcall handles, raw calls and
 *   the bounds-checked wrappers;</li>
 *   <li>kernels/&#42;/&#42;.cu (every {@code LT_KERNEL void ltk_*} signature and every {@code #define NAME <integer>})
 *   -> java/src/main/java/dev/latent/cuda/Ltk.java: one typed launcher per kernel and the shared launch constants.</li>
 * </ul>
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

    record Fn(String name, String ret, List<Param> params, Map<String, String> extents, boolean custom, boolean required) {}

    record Field(String name, String base, String array) {}

    record Struct(String name, List<Field> fields) {}

    public static void main(String[] args) throws IOException {
        boolean check = args.length > 0 && args[0].equals("--check");
        Path root = Path.of(args.length > 1 ? args[1] : ".");
        String h = Files.readString(root.resolve(HEADER));
        Map<String, Long> consts = constants(h);
        List<Struct> structs = structs(h);
        List<Fn> fns = functions(h);
        String binding = binding(consts, structs, fns);
        List<Path> cu;
        try (var s = Files.walk(root.resolve(KERNELS))) {
            cu = s.filter(p -> p.toString().endsWith(".cu")).sorted().toList();
        }
        String ltk = ltk(root, cu);
        int stale = 0;
        for (var e : Map.of(BINDING, binding, LTK, ltk).entrySet()) {
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
        Matcher m = Pattern.compile("(?s)typedef struct (\\w+) \\{(.*?)\\} (\\w+);").matcher(h);
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
            out.add(new Struct(m.group(1), fields));
        }
        return out;
    }

    static List<Fn> functions(String h) {
        List<Fn> out = new ArrayList<>();
        Matcher m = Pattern.compile("(?s)LT_API ([^;(]*?)\\s*\\b(lt_\\w+)\\(([^)]*)\\);[ \\t]*(?:\\n?[ \\t]*/\\*@(.*?)\\*/)?").matcher(h);
        while (m.find()) {
            String name = m.group(2), ret = m.group(1).trim().replaceAll("\\s+", " ");
            List<Param> params = params(name, m.group(3));
            Map<String, String> ext = new LinkedHashMap<>();
            boolean custom = false, required = false;
            if (m.group(4) != null)
                for (String tok : m.group(4).trim().split("\\s+")) {
                    if (tok.isEmpty()) continue;
                    if (tok.equals("custom")) custom = true;
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
            out.add(new Fn(name, ret, params, ext, custom, required));
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
            case "double", "int64_t", "uint64_t" -> 8;
            default -> throw fail(fn + ": extent of '" + p.name + "' (" + p.ctype + "): element size unknown; mark the function custom");
        };
    }

    static String constName(String c) { return c.replaceFirst("^LT_", ""); }

    // ---------------------------------------------------------------- LatentBinding.java

    static final String GENERATED = "GENERATED by java/src/build/GenBindings.java from ";

    static String binding(Map<String, Long> consts, List<Struct> structs, List<Fn> fns) {
        StringBuilder o = new StringBuilder();
        o.append("// ").append(GENERATED).append(HEADER).append(": do not edit. Change latent.h, then run\n")
                .append("// `java java/src/build/GenBindings.java` from the repository root (the build fails while this file is stale).\n");
        o.append("package dev.latent.nativ;\n\n");
        for (String i : List.of("java.lang.foreign.FunctionDescriptor", "java.lang.foreign.Linker", "java.lang.foreign.MemoryLayout",
                "java.lang.foreign.MemorySegment", "java.lang.foreign.StructLayout", "java.lang.foreign.SymbolLookup",
                "java.lang.invoke.MethodHandle", "java.lang.invoke.VarHandle", "java.nio.file.Path"))
            o.append("import ").append(i).append(";\n");
        o.append("\nimport static dev.latent.nativ.Bounds.elems;\nimport static dev.latent.nativ.Bounds.fits;\n");
        o.append("import static java.lang.foreign.MemoryLayout.PathElement.groupElement;\n");
        o.append("import static java.lang.foreign.MemoryLayout.PathElement.sequenceElement;\n");
        for (String l : List.of("ADDRESS", "JAVA_DOUBLE", "JAVA_FLOAT", "JAVA_INT", "JAVA_LONG"))
            o.append("import static java.lang.foreign.ValueLayout.").append(l).append(";\n");
        o.append("""

                /**
                 * The mechanical part of liblatent's binding, generated from latent.h: its constants, a {@link StructLayout} and
                 * accessors per descriptor struct, a downcall handle per {@code lt_*} function, a raw call per function (named as in C,
                 * package-private: no bounds checks) and, for every function whose prototype is annotated with its pointers' extents,
                 * the public checked wrapper (the C name in camel case: {@code lt_gelu_fwd} is {@code geluFwd}). The rest of the safety
                 * layer (functions annotated {@code custom}) is hand-written in {@link LatentNative}.
                 */
                public abstract sealed class LatentBinding permits LatentNative {
                """);
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
        // handles
        o.append("\n    private final Path path;\n");
        for (Fn f : fns) o.append("    private final MethodHandle ").append(f.name).append(";\n");
        o.append("\n    LatentBinding(Path path, SymbolLookup l, Linker linker) {\n        this.path = path;\n");
        for (Fn f : fns) {
            List<String> lays = new ArrayList<>();
            lays.add(retLayout(f));
            for (Param p : f.params) lays.add(layoutOf(p, f.name));
            o.append("        ").append(f.name).append(" = ").append(f.required ? "bind" : "opt").append("(l, linker, \"").append(f.name)
                    .append("\", FunctionDescriptor.of(").append(String.join(", ", lays)).append("));\n");
        }
        o.append("    }\n");
        o.append("""

                    private MethodHandle bind(SymbolLookup l, Linker linker, String name, FunctionDescriptor fd) {
                        return linker.downcallHandle(l.find(name).orElseThrow(() -> new UnsatisfiedLinkError("symbol " + name + " missing in " + path)), fd);
                    }

                    /** Bound if present: a library built without it fails at the call, naming the symbol. */
                    private static MethodHandle opt(SymbolLookup l, Linker linker, String name, FunctionDescriptor fd) {
                        return l.find(name).map(a -> linker.downcallHandle(a, fd)).orElse(null);
                    }

                    private static MethodHandle need(MethodHandle h, String name) {
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

                    /** A {@code const char *} result: a NUL-terminated string the library keeps. */
                    private static String string(MemorySegment s) { return s.reinterpret(4096).getString(0); }
                """);
        for (Fn f : fns) emitCall(o, f);
        o.append("}\n");
        return o.toString();
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
        Map<String, String> locals = new LinkedHashMap<>();
        for (Param p : f.params)
            if (p.pointer()) {
                String e = f.extents.get(p.name);
                if (!locals.containsKey(e)) {
                    String v = "e" + locals.size();
                    locals.put(e, v);
                    List<String> fs = new ArrayList<>();
                    for (String x : e.split("\\*")) fs.add(x.matches("\\d+") ? x : camel(x));
                    o.append("        long ").append(v).append(" = elems(op, ").append(String.join(", ", fs)).append(");\n");
                }
            }
        for (Param p : f.params)
            if (p.pointer())
                o.append("        fits(op, \"").append(p.name).append("\", ").append(camel(p.name)).append(", ")
                        .append(locals.get(f.extents.get(p.name))).append(", ").append(elemBytes(p, f.name)).append(");\n");
        o.append("        ").append(status ? "" : "return ").append(f.name).append("(").append(args).append(");\n    }\n");
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
}
