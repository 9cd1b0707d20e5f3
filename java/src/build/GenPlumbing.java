package build;

import build.GenBindings.Fn;
import build.GenBindings.Param;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static build.GenBindings.GENERATED;
import static build.GenBindings.HEADER;
import static build.GenBindings.KERNELS;
import static build.GenBindings.OPS;
import static build.GenBindings.camel;
import static build.GenBindings.elemBytes;
import static build.GenBindings.extentLocals;
import static build.GenBindings.fail;
import static build.GenBindings.javaType;
import static build.GenBindings.params;
import static build.GenBindings.scalarLayout;
import static build.GenBindings.stripComments;

/**
 * The plumbing half of the generator ({@link GenBindings} runs it): what latent.h's {@code op=NAME} annotations and the
 * kernels' launch annotations describe, beyond the raw binding.
 * <ul>
 *   <li>{@code op=} -> ops/BackendOps.java (the Backend method), ops/CpuOps.java (its CPU body: one call of the checked
 *   LatentNative wrapper) and ops/CudaOps.java (its CUDA body: one call of the launcher); {@code host=},
 *   {@code hand=cpu|cuda}, {@code cpuonly} and {@code launcher=} say where the common case does not fit;</li>
 *   <li>{@code /*@ launch=NAME grid=stride(E)|ceil(E,R) block=B check=... p[extent] *&#47;} right before
 *   {@code LT_KERNEL} -> cuda/CudaLaunchers.java: the checked launcher NAME.</li>
 * </ul>
 * The grammar: docs/extending.md.
 */
final class GenPlumbing {
    private GenPlumbing() {}

    /** A CUDA kernel with a launch annotation ({@code /*@ launch=NAME grid=... block=... *&#47;} right before LT_KERNEL). */
    record Launch(String kernel, String file, List<Param> params, String name, String grid, String block, List<String> checks,
                  Map<String, String> extents, List<String> optional) {}

    // ---------------------------------------------------------------- Backend ops (dev.latent.ops)

    static String ident(String expr) {
        Matcher m = Pattern.compile("\\b[a-z_][a-z0-9_]*\\b").matcher(expr);
        StringBuilder b = new StringBuilder();
        while (m.find()) m.appendReplacement(b, Matcher.quoteReplacement(camel(m.group())));
        m.appendTail(b);
        return b.toString();
    }

    static String scalarJava(Param p, String where) { return javaType(scalarLayout(p.base(), where)); }

    /**
     * BackendOps.java (the Backend methods of every {@code op=} function), CpuOps.java (their CPU bodies: one call of the
     * LatentNative wrapper on the tensors' segments) and CudaOps.java (their CUDA bodies: one call of the launcher on the
     * tensors' device buffers), except the bodies marked {@code hand=cpu} / {@code hand=cuda}, which CpuBackend /
     * CudaBackend write.
     */
    static Map<String, String> backendOps(List<Fn> fns) {
        List<Fn> ops = fns.stream().filter(f -> f.op() != null).toList();
        String head = "// " + GENERATED + HEADER + " (the op= annotations): do not edit. Change latent.h, then run\n"
                + "// `java java/src/build/GenBindings.java` from the repository root (the build fails while this file is stale).\n"
                + "package dev.latent.ops;\n\n";
        StringBuilder ifc = new StringBuilder(head), cpu = new StringBuilder(head), cuda = new StringBuilder(head);
        ifc.append("import dev.latent.tensor.Tensor;\n\nimport java.lang.foreign.MemorySegment;\n\n");
        ifc.append("""
                /**
                 * The {@link Backend} methods that follow from latent.h: one per prototype annotated {@code op=NAME}, its parameters
                 * the C function's (a pointer is a validated {@link Tensor}, null where the op allows it, or a host segment where the
                 * annotation says {@code host=}). {@link CpuOps} and {@link CudaOps} implement them (docs/extending.md).
                 */
                interface BackendOps {
                """);
        cpu.append("import dev.latent.nativ.LatentNative;\nimport dev.latent.tensor.Tensor;\n\nimport java.lang.foreign.MemorySegment;\n\n");
        cpu.append("""
                /** The CPU bodies of {@link BackendOps}: one call of the checked LatentNative wrapper on the tensors' segments (null: NULL). */
                abstract class CpuOps implements Backend {
                    private static MemorySegment seg(Tensor t) { return t == null ? MemorySegment.NULL : t.segment(); }
                """);
        cuda.append("import dev.latent.cuda.Cuda;\nimport dev.latent.cuda.CudaKernels;\nimport dev.latent.cuda.CudaProbKernels;\n"
                + "import dev.latent.cuda.DeviceBuffer;\nimport dev.latent.tensor.Tensor;\n\nimport java.lang.foreign.MemorySegment;\n\n");
        cuda.append("""
                /** The CUDA bodies of {@link BackendOps}: one call of the op's launcher on the tensors' device buffers (null: null). */
                abstract class CudaOps implements Backend {
                    private static DeviceBuffer buf(Tensor t) { return t == null ? null : DeviceBuffer.of(t.deviceBuffer()); }
                """);
        for (Fn f : ops) {
            List<String> decl = new ArrayList<>(), cpuArgs = new ArrayList<>(), cudaArgs = new ArrayList<>();
            for (Param p : f.params()) {
                String n = camel(p.name());
                boolean host = f.host().contains(p.name());
                decl.add((p.pointer() ? host ? "MemorySegment" : "Tensor" : scalarJava(p, f.name())) + " " + n);
                cpuArgs.add(p.pointer() && !host ? "seg(" + n + ")" : n);
                cudaArgs.add(p.pointer() && !host ? "buf(" + n + ")" : n);
            }
            String sig = f.op() + "(" + String.join(", ", decl) + ")";
            ifc.append("\n    /** ").append(f.name()).append(" (latent.h)").append(f.extents().isEmpty() ? "" : ": " + String.join(" ",
                    f.extents().entrySet().stream().map(e -> e.getKey() + "[" + e.getValue() + "]").toList())).append(". */\n    void ")
                    .append(sig).append(";\n");
            if (!f.hand().contains("cpu"))
                cpu.append("\n    @Override public void ").append(sig).append(" {\n        LatentNative.get().").append(camel(f.name()))
                        .append("(").append(String.join(", ", cpuArgs)).append(");\n    }\n");
            if (f.hand().contains("none"))   // a CPU-only op: the CUDA body refuses, naming it
                cuda.append("\n    @Override public void ").append(sig).append(" {\n        throw new UnsupportedOperationException(\"")
                        .append(f.op()).append(": no CUDA kernel yet (").append(f.name()).append(" runs on the CPU only); move the tensors to the CPU\");\n    }\n");
            else if (!f.hand().contains("cuda"))
                cuda.append("\n    @Override public void ").append(sig).append(" {\n        ").append(f.launcher()).append(".").append(f.op())
                        .append("(Cuda.get()").append(cudaArgs.isEmpty() ? "" : ", " + String.join(", ", cudaArgs)).append(");\n    }\n");
        }
        ifc.append("}\n");
        cpu.append("}\n");
        cuda.append("}\n");
        return Map.of(OPS + "BackendOps.java", ifc.toString(), OPS + "CpuOps.java", cpu.toString(), OPS + "CudaOps.java", cuda.toString());
    }

    // ---------------------------------------------------------------- CUDA launchers (dev.latent.cuda)

    static List<Launch> launches(Path root, List<Path> files, List<Fn> fns) throws IOException {
        List<Launch> out = new ArrayList<>();
        Pattern ann = Pattern.compile("(?s)/\\*@((?:(?!\\*/).)*)\\*/\\s*LT_KERNEL void\\s+(?:__launch_bounds__\\([^)]*\\)\\s*)?(ltk_\\w+)\\s*\\(([^)]*)\\)");
        for (Path p : files) {
            String src = Files.readString(p), rel = root.relativize(p).toString();
            Matcher m = ann.matcher(src);
            while (m.find()) {
                String k = m.group(2);
                List<Param> ps = params(k, stripComments(m.group(3)));
                String name = null, grid = null, block = null;
                List<String> checks = new ArrayList<>(), optional = new ArrayList<>();
                Map<String, String> ext = new LinkedHashMap<>();
                for (String tok : m.group(1).trim().split("\\s+")) {
                    if (tok.startsWith("launch=")) name = tok.substring(7);
                    else if (tok.startsWith("grid=")) grid = tok.substring(5);
                    else if (tok.startsWith("block=")) block = tok.substring(6);
                    else if (tok.startsWith("check=")) checks.addAll(List.of(tok.substring(6).split(",")));
                    else {
                        Matcher t = Pattern.compile("^(\\w+)\\[([\\w*+()/-]+)\\](\\?)?$").matcher(tok);
                        if (!t.matches()) throw fail(k + " (" + rel + "): launch annotation token '" + tok + "' is not launch=, grid=, block=, check= or param[extent]");
                        if (ps.stream().noneMatch(q -> q.name().equals(t.group(1)) && q.pointer()))
                            throw fail(k + ": '" + t.group(1) + "' is not a pointer parameter");
                        ext.put(t.group(1), t.group(2));
                        if (t.group(3) != null) optional.add(t.group(1));
                    }
                }
                if (name == null || grid == null || block == null) throw fail(k + " (" + rel + "): a launch annotation needs launch=, grid= and block=");
                if (!grid.matches("(stride|ceil)\\(.*\\)")) throw fail(k + ": grid=" + grid + " is not stride(E) or ceil(E,R)");
                if (!block.matches("\\d+|[A-Z][A-Z0-9_]*")) throw fail(k + ": block=" + block + " is not an integer or a #define of the .cu");
                for (String c : checks)
                    if (!c.matches("\\w+(>=|<=|>|<)-?\\d+")) throw fail(k + ": check " + c + " is not param(>=|<=|>|<)integer");
                if (ext.isEmpty()) {   // the extents of the C function of the same name
                    String cname = "lt_" + k.substring(4);
                    Fn f = fns.stream().filter(x -> x.name().equals(cname)).findFirst()
                            .orElseThrow(() -> fail(k + ": no extents in its launch annotation and no " + cname + " in latent.h to take them from"));
                    if (f.params().size() != ps.size()) throw fail(k + ": parameters differ from " + cname + "'s: give the extents in the annotation");
                    for (int i = 0; i < ps.size(); i++)
                        if (!ps.get(i).name().equals(f.params().get(i).name()) || !ps.get(i).base().equals(f.params().get(i).base())
                                || ps.get(i).pointer() != f.params().get(i).pointer())
                            throw fail(k + ": parameter " + ps.get(i).name() + " differs from " + cname + "'s: give the extents in the annotation");
                    if (f.extents().isEmpty()) throw fail(k + ": " + cname + " has no extents (custom): give them in the annotation");
                    ext.putAll(f.extents());
                }
                for (Param q : ps)
                    if (q.pointer() && !ext.containsKey(q.name())) throw fail(k + ": pointer parameter '" + q.name() + "' has no extent");
                out.add(new Launch(k, rel, ps, name, grid, block, checks, ext, optional));
            }
        }
        return out;
    }

    static String cudaLaunchers(List<Launch> ls) {
        StringBuilder o = new StringBuilder();
        o.append("// ").append(GENERATED).append(KERNELS).append("/*/*.cu (the launch annotations): do not edit. Change a kernel's\n")
                .append("// annotation there, then run `java java/src/build/GenBindings.java` from the repository root (the build fails while this file is stale).\n");
        o.append("package dev.latent.cuda;\n\n");
        o.append("""
                /**
                 * The launchers that follow from the kernels' launch annotations ({@code /*@ launch=NAME grid=... block=... *&#47;} before
                 * {@code LT_KERNEL}): each checks its scalar conditions and every buffer's extent (IllegalArgumentException naming the
                 * operand, before the launch: the kernels trust them), returns when the grid's size expression is 0 and launches one
                 * kernel through {@link Ltk}. Called as {@code CudaKernels.NAME} (CudaKernels and CudaProbKernels extend this class).
                 */
                abstract class CudaLaunchers {
                    CudaLaunchers() {}

                    /** The product of the extent's factors, each >= 0 (else an IllegalArgumentException naming the op), overflow-checked. */
                    static long elems(String op, long... factors) {
                        long n = 1;
                        for (long f : factors) {
                            if (f < 0) throw new IllegalArgumentException(op + ": negative length " + f);
                            n = Math.multiplyExact(n, f);
                        }
                        return n;
                    }

                    /** b holds elems elements of elemBytes (null only where optional). */
                    static void fits(String op, String what, DeviceBuffer b, long elems, long elemBytes, boolean optional) {
                        if (b == null && optional) return;
                        CudaKernels.need(b, Math.multiplyExact(elems, elemBytes), op, what);
                    }
                """);
        for (Launch l : ls) {
            List<String> decl = new ArrayList<>(List.of("Cuda cu")), args = new ArrayList<>(), scal = new ArrayList<>();
            for (Param q : l.params) {
                String n = camel(q.name());
                decl.add((q.pointer() ? "DeviceBuffer" : scalarJava(q, l.kernel)) + " " + n);
                args.add(n);
                if (!q.pointer() && (q.base().contains("int"))) scal.add(n);
            }
            Matcher g = Pattern.compile("(stride|ceil)\\((.*)\\)").matcher(l.grid);
            g.matches();
            String blk = l.block.matches("\\d+") ? l.block : "Ltk." + l.block;
            String size, grid;
            if (g.group(1).equals("stride")) {
                size = ident(g.group(2));
                grid = "CudaKernels.strideBlocks(" + size + ", " + blk + ")";
            } else {
                int comma = g.group(2).lastIndexOf(',');
                size = ident(g.group(2).substring(0, comma));
                grid = "(" + size + " + " + g.group(2).substring(comma + 1) + " - 1) / " + g.group(2).substring(comma + 1);
            }
            o.append("\n    /** ").append(l.kernel).append(" (").append(l.file).append("): grid ").append(l.grid).append(", block ").append(l.block);
            if (!l.checks.isEmpty()) o.append(", needs ").append(String.join(", ", l.checks));
            o.append("; ").append(String.join(" ", l.extents.entrySet().stream()
                    .map(e -> e.getKey() + "[" + e.getValue() + "]" + (l.optional.contains(e.getKey()) ? " (may be null)" : "")).toList()))
                    .append(". */\n");
            o.append("    public static void ").append(l.name).append("(").append(String.join(", ", decl)).append(") {\n");
            o.append("        String op = \"").append(l.name).append("\";\n");
            String all = String.join(" + \", \" + ", scal.stream().map(x -> "\"" + x + "=\" + " + x).toList());
            for (String c : l.checks) {
                Matcher cm = Pattern.compile("(\\w+)(>=|<=|>|<)(-?\\d+)").matcher(c);
                cm.matches();
                String v = camel(cm.group(1));
                o.append("        if (!(").append(v).append(" ").append(cm.group(2)).append(" ").append(cm.group(3)).append(")) throw new IllegalArgumentException(op + \": ")
                        .append(v).append(" \" + ").append(v).append(" + \" must be ").append(cm.group(2)).append(" ").append(cm.group(3))
                        .append(scal.isEmpty() ? "\"" : " (\" + " + all + " + \")\"").append(");\n");
            }
            Map<String, String> locals = extentLocals(o, l.params, l.extents, GenPlumbing::ident);
            for (Param q : l.params)
                if (q.pointer())
                    o.append("        fits(op, \"").append(q.name()).append("\", ").append(camel(q.name())).append(", ").append(locals.get(l.extents.get(q.name())))
                            .append(", ").append(elemBytes(q, l.kernel)).append(", ").append(l.optional.contains(q.name())).append(");\n");
            o.append("        if (").append(size).append(" == 0) return;\n");
            o.append("        Ltk.").append(l.kernel).append("(cu, CudaKernels.dim(").append(grid).append("), CudaKernels.dim(").append(blk)
                    .append("), 0, ").append(String.join(", ", args)).append(");\n    }\n");
        }
        o.append("}\n");
        return o.toString();
    }
}
