package dev.latent.bench.peer;

import dev.latent.spi.ConvPeer;
import org.bytedeco.dnnl.dnnl_engine;
import org.bytedeco.dnnl.dnnl_exec_arg_t;
import org.bytedeco.dnnl.dnnl_memory;
import org.bytedeco.dnnl.dnnl_memory_desc;
import org.bytedeco.dnnl.dnnl_primitive;
import org.bytedeco.dnnl.dnnl_primitive_desc;
import org.bytedeco.dnnl.dnnl_stream;
import org.bytedeco.dnnl.global.dnnl;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

import static org.bytedeco.dnnl.global.dnnl.*;

/**
 * oneDNN's convolution primitives (bytedeco dnnl presets, C API) as the {@link ConvPeer}: forward-training,
 * backward-data and backward-weights, each created with {@code format_tag_any} so oneDNN picks its fastest layout
 * (blocked nChw16c and friends at AVX-512, nChw8c at AVX2). The NCHW inputs are reordered into those layouts in
 * {@link #prepare}, outside the timed {@link Prepared#run}; {@link Prepared#readBack} reorders the result to NCHW.
 * Threads and ISA are set as for {@link OneDnnGemm} (bundled OpenMP; uncapped, i.e. oneDNN's best ISA, unless
 * -Dlatent.peer.onednn.isa=avx2), and the name carries the ISA oneDNN runs at.
 */
public final class OneDnnConv implements ConvPeer {
    private static final OneDnnGemm THREADS = new OneDnnGemm();   // loads dnnl, caps the ISA if asked, binds omp_set_num_threads
    private static final dnnl_engine ENGINE = new dnnl_engine();
    private static final dnnl_stream STREAM = new dnnl_stream();

    static {
        ok(dnnl_engine_create(ENGINE, dnnl_cpu, 0), "dnnl_engine_create");
        ok(dnnl_stream_create(STREAM, ENGINE, dnnl_stream_default_flags), "dnnl_stream_create");
    }

    static void ok(int status, String what) {
        if (status != dnnl_success) throw new IllegalStateException(what + " failed: dnnl status " + status);
    }

    @Override
    public String name() { return THREADS.name(); }

    @Override
    public void setThreads(int threads) { THREADS.setThreads(threads); }

    private static dnnl_memory_desc md(long[] dims, int tag) {
        dnnl_memory_desc m = new dnnl_memory_desc();
        ok(dnnl_memory_desc_create_with_tag(m, dims.length, dims, dnnl_f32, tag), "dnnl_memory_desc_create_with_tag");
        return m;
    }

    /** A memory over a segment's bytes (no copy) or, with seg == null, over a fresh buffer of the md's size. */
    private static dnnl_memory memory(dnnl_memory_desc m, MemorySegment seg, List<Pointer> keep) {
        Pointer handle;
        if (seg != null) {
            handle = OneDnnGemm.ptr(seg);
        } else {
            handle = new FloatPointer(Math.max(1, dnnl_memory_desc_get_size(m) / 4));
            keep.add(handle);
        }
        dnnl_memory mem = new dnnl_memory();
        ok(dnnl_memory_create(mem, m, ENGINE, handle), "dnnl_memory_create");
        return mem;
    }

    private static void reorder(dnnl_memory from, dnnl_memory_desc fromMd, dnnl_memory to, dnnl_memory_desc toMd) {
        dnnl_primitive_desc pd = new dnnl_primitive_desc();
        ok(dnnl_reorder_primitive_desc_create(pd, fromMd, ENGINE, toMd, ENGINE, null), "dnnl_reorder_primitive_desc_create");
        dnnl_primitive p = new dnnl_primitive();
        ok(dnnl_primitive_create(p, pd), "dnnl_primitive_create(reorder)");
        dnnl_exec_arg_t args = new dnnl_exec_arg_t(2);
        args.position(0).arg(DNNL_ARG_SRC).memory(from);
        args.position(1).arg(DNNL_ARG_DST).memory(to);
        ok(dnnl_primitive_execute(p, STREAM, 2, args.position(0)), "reorder");
        ok(dnnl_stream_wait(STREAM), "dnnl_stream_wait");
        dnnl_primitive_destroy(p);
        dnnl_primitive_desc_destroy(pd);
    }

    @Override
    public Prepared prepare(long n, long c, long h, long w, long k, long r, long s, int stride, int pad, Pass pass,
                            MemorySegment a, MemorySegment b, MemorySegment out) {
        long oh = (h + 2L * pad - r) / stride + 1, ow = (w + 2L * pad - s) / stride + 1;
        long[] xd = {n, c, h, w}, wd = {k, c, r, s}, yd = {n, k, oh, ow};
        long[] strides = {stride, stride}, dil = {0, 0}, padl = {pad, pad}, padr = {(oh - 1) * stride + r - h - pad, (ow - 1) * stride + s - w - pad};
        dnnl_memory_desc xa = md(xd, dnnl_format_tag_any), wa = md(wd, dnnl_format_tag_any), ya = md(yd, dnnl_format_tag_any);
        dnnl_primitive_desc fwd = new dnnl_primitive_desc();
        ok(dnnl_convolution_forward_primitive_desc_create(fwd, ENGINE, dnnl_forward_training, dnnl_convolution_direct, xa, wa, null, ya,
                strides, dil, padl, padr, null), "convolution forward pd");
        dnnl_primitive_desc pd = fwd;
        if (pass == Pass.BWD_DATA) {
            pd = new dnnl_primitive_desc();
            ok(dnnl_convolution_backward_data_primitive_desc_create(pd, ENGINE, dnnl_convolution_direct, xa, wa, ya, strides, dil, padl, padr,
                    fwd, null), "convolution backward-data pd");
        } else if (pass == Pass.BWD_WEIGHT) {
            pd = new dnnl_primitive_desc();
            ok(dnnl_convolution_backward_weights_primitive_desc_create(pd, ENGINE, dnnl_convolution_direct, xa, wa, null, ya, strides, dil,
                    padl, padr, fwd, null), "convolution backward-weights pd");
        }
        // (input a, input b, output) as the pass names them, with their user (NCHW / OIHW) and chosen layouts
        int[] q, argIds;
        long[][] dims;
        int[] tags;
        switch (pass) {
            case FWD -> { q = new int[] {dnnl_query_src_md, dnnl_query_weights_md, dnnl_query_dst_md}; argIds = new int[] {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST};
                          dims = new long[][] {xd, wd, yd}; tags = new int[] {dnnl_nchw, dnnl_oihw, dnnl_nchw}; }
            case BWD_DATA -> { q = new int[] {dnnl_query_diff_dst_md, dnnl_query_weights_md, dnnl_query_diff_src_md};
                               argIds = new int[] {DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC};
                               dims = new long[][] {yd, wd, xd}; tags = new int[] {dnnl_nchw, dnnl_oihw, dnnl_nchw}; }
            default -> { q = new int[] {dnnl_query_src_md, dnnl_query_diff_dst_md, dnnl_query_diff_weights_md};
                         argIds = new int[] {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS};
                         dims = new long[][] {xd, yd, wd}; tags = new int[] {dnnl_nchw, dnnl_nchw, dnnl_oihw}; }
        }
        MemorySegment[] segs = {a, b, out};
        List<Pointer> keep = new ArrayList<>();
        dnnl_memory[] internal = new dnnl_memory[3], user = new dnnl_memory[3];
        dnnl_memory_desc[] internalMd = new dnnl_memory_desc[3], userMd = new dnnl_memory_desc[3];
        for (int i = 0; i < 3; i++) {
            internalMd[i] = dnnl_primitive_desc_query_md(pd, q[i], 0);
            userMd[i] = md(dims[i], tags[i]);
            user[i] = memory(userMd[i], segs[i], keep);
            internal[i] = memory(internalMd[i], null, keep);
            if (i < 2) reorder(user[i], userMd[i], internal[i], internalMd[i]);
        }
        dnnl_primitive prim = new dnnl_primitive();
        ok(dnnl_primitive_create(prim, pd), "dnnl_primitive_create(convolution)");
        dnnl_exec_arg_t args = new dnnl_exec_arg_t(3);
        for (int i = 0; i < 3; i++) args.position(i).arg(argIds[i]).memory(internal[i]);
        args.position(0);
        dnnl_primitive_desc fwdPd = fwd, thePd = pd;
        return new Prepared() {
            @Override
            public void run() {
                ok(dnnl_primitive_execute(prim, STREAM, 3, args), "convolution execute");
                ok(dnnl_stream_wait(STREAM), "dnnl_stream_wait");
            }

            @Override
            public void readBack() { reorder(internal[2], internalMd[2], user[2], userMd[2]); }

            @Override
            public void close() {
                dnnl_primitive_destroy(prim);
                for (int i = 0; i < 3; i++) { dnnl_memory_destroy(internal[i]); dnnl_memory_destroy(user[i]); }
                if (thePd != fwdPd) dnnl_primitive_desc_destroy(thePd);
                dnnl_primitive_desc_destroy(fwdPd);
                keep.forEach(Pointer::close);
            }
        };
    }
}
