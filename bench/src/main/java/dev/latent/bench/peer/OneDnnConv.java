package dev.latent.bench.peer;

import dev.latent.spi.ConvPeer;
import org.bytedeco.dnnl.dnnl_engine;
import org.bytedeco.dnnl.dnnl_exec_arg_t;
import org.bytedeco.dnnl.dnnl_memory;
import org.bytedeco.dnnl.dnnl_memory_desc;
import org.bytedeco.dnnl.dnnl_primitive;
import org.bytedeco.dnnl.dnnl_primitive_desc;
import org.bytedeco.dnnl.dnnl_stream;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

import static org.bytedeco.dnnl.global.dnnl.*;

/**
 * oneDNN's convolution (bytedeco dnnl presets, C API) as a {@link ConvPeer}. Same fairness settings as
 * {@link OneDnnGemm}: the ISA is capped to AVX2 (its static initializer, which this class triggers) and the thread
 * count goes through {@code omp_set_num_threads} on the calling thread.
 * <p>oneDNN picks its own layouts ({@code format_tag any}: nChw8c activations and blocked weights on AVX2); the
 * NCHW inputs are reordered into them in {@link #prepare}, so {@link Prepared#run} times the convolution primitive
 * alone, and {@link Prepared#readBack} reorders the result into the caller's NCHW buffer.
 */
public final class OneDnnConv implements ConvPeer {
    private static final OneDnnGemm GEMM = new OneDnnGemm(); // loads dnnl, caps the ISA, binds omp_set_num_threads
    private final dnnl_engine engine = new dnnl_engine();
    private final dnnl_stream stream = new dnnl_stream();

    public OneDnnConv() {
        check(dnnl_engine_create(engine, dnnl_cpu, 0), "dnnl_engine_create");
        check(dnnl_stream_create(stream, engine, 0 /* default flags */), "dnnl_stream_create");
    }

    @Override
    public String name() { return GEMM.name(); }

    @Override
    public void setThreads(int threads) { GEMM.setThreads(threads); }

    static void check(int status, String what) {
        if (status != dnnl_success) throw new IllegalStateException(what + " failed: dnnl status " + status);
    }

    private static dnnl_memory_desc md(int tag, long... dims) {
        dnnl_memory_desc md = new dnnl_memory_desc();
        check(dnnl_memory_desc_create_with_tag(md, dims.length, dims, dnnl_f32, tag), "dnnl_memory_desc_create_with_tag");
        return md;
    }

    /** A view of a native address as a javacpp Pointer (no copy). */
    private static Pointer at(long addr) {
        return new Pointer() { { address = addr; } }; // (a parameter named `address` would be shadowed by the field)
    }

    /** Implementation name oneDNN chose (e.g. "brg_conv_fwd:avx2"), for the report. */
    public static String implOf(dnnl_primitive_desc pd) {
        PointerPointer<?> out = new PointerPointer<>(1);
        check(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, out), "query impl_info_str");
        return out.getString(0);
    }

    @Override
    public Prepared prepare(long n, long c, long h, long w, long k, long r, long s, int stride, int pad, Pass pass,
                            MemorySegment a, MemorySegment b, MemorySegment out) {
        long oh = (h + 2L * pad - r) / stride + 1, ow = (w + 2L * pad - s) / stride + 1;
        long[] strides = {stride, stride}, dil = {0, 0}, padL = {pad, pad};
        // right padding so that oneDNN's output size formula lands exactly on oh, ow (floor division in ours)
        long[] padR = {(oh - 1) * stride + r - h - pad, (ow - 1) * stride + s - w - pad};
        dnnl_memory_desc xAny = md(dnnl_format_tag_any, n, c, h, w), wAny = md(dnnl_format_tag_any, k, c, r, s);
        dnnl_memory_desc yAny = md(dnnl_format_tag_any, n, k, oh, ow);
        dnnl_memory_desc xU = md(dnnl_nchw, n, c, h, w), wU = md(dnnl_oihw, k, c, r, s), yU = md(dnnl_nchw, n, k, oh, ow);
        dnnl_primitive_desc fwd = new dnnl_primitive_desc();
        check(dnnl_convolution_forward_primitive_desc_create(fwd, engine, dnnl_forward_training, dnnl_convolution_direct,
                xAny, wAny, null, yAny, strides, dil, padL, padR, null), "convolution_forward pd");
        dnnl_primitive_desc pd;
        int argA, argB, argOut, qA, qB, qOut;
        dnnl_memory_desc uA, uB, uOut;
        switch (pass) {
            case FWD -> {
                pd = fwd;
                argA = DNNL_ARG_SRC; argB = DNNL_ARG_WEIGHTS; argOut = DNNL_ARG_DST;
                qA = dnnl_query_src_md; qB = dnnl_query_weights_md; qOut = dnnl_query_dst_md;
                uA = xU; uB = wU; uOut = yU;
            }
            case BWD_DATA -> {
                pd = new dnnl_primitive_desc();
                check(dnnl_convolution_backward_data_primitive_desc_create(pd, engine, dnnl_convolution_direct, xAny,
                        wAny, yAny, strides, dil, padL, padR, fwd, null), "convolution_backward_data pd");
                argA = DNNL_ARG_DIFF_DST; argB = DNNL_ARG_WEIGHTS; argOut = DNNL_ARG_DIFF_SRC;
                qA = dnnl_query_diff_dst_md; qB = dnnl_query_weights_md; qOut = dnnl_query_diff_src_md;
                uA = yU; uB = wU; uOut = xU;
            }
            default -> {
                pd = new dnnl_primitive_desc();
                check(dnnl_convolution_backward_weights_primitive_desc_create(pd, engine, dnnl_convolution_direct, xAny,
                        wAny, null, yAny, strides, dil, padL, padR, fwd, null), "convolution_backward_weights pd");
                argA = DNNL_ARG_SRC; argB = DNNL_ARG_DIFF_DST; argOut = DNNL_ARG_DIFF_WEIGHTS;
                qA = dnnl_query_src_md; qB = dnnl_query_diff_dst_md; qOut = dnnl_query_diff_weights_md;
                uA = xU; uB = yU; uOut = wU;
            }
        }
        return new Conv(pd, fwd, implOf(pd), argA, argB, argOut, pd(pd, qA), pd(pd, qB), pd(pd, qOut), uA, uB, uOut, a, b,
                out);
    }

    private static dnnl_memory_desc pd(dnnl_primitive_desc pd, int what) {
        return dnnl_primitive_desc_query_md(pd, what, 0);
    }

    /** One bound primitive with its own arena for the memories in oneDNN's layouts. */
    private final class Conv implements Prepared {
        final String impl;
        final Arena arena = Arena.ofShared();
        final List<dnnl_primitive> prims = new ArrayList<>();
        final List<dnnl_primitive_desc> pds = new ArrayList<>();
        final List<dnnl_memory> mems = new ArrayList<>();
        final dnnl_primitive conv = new dnnl_primitive();
        final dnnl_exec_arg_t args = new dnnl_exec_arg_t(3);
        final dnnl_memory outPrim, outUser;
        final dnnl_memory_desc outPrimMd, outUserMd;

        Conv(dnnl_primitive_desc pd, dnnl_primitive_desc fwd, String impl, int argA, int argB, int argOut,
             dnnl_memory_desc mA, dnnl_memory_desc mB, dnnl_memory_desc mOut, dnnl_memory_desc uA, dnnl_memory_desc uB,
             dnnl_memory_desc uOut, MemorySegment a, MemorySegment b, MemorySegment out) {
            this.impl = impl;
            pds.add(pd);
            if (fwd != pd) pds.add(fwd);
            check(dnnl_primitive_create(conv, pd), "conv primitive");
            prims.add(conv);
            dnnl_memory inA = input(uA, mA, a), inB = input(uB, mB, b);
            outPrimMd = mOut;
            outUserMd = uOut;
            outUser = memory(uOut, out.address());
            outPrim = dnnl_memory_desc_equal(uOut, mOut) != 0 ? outUser : memory(mOut, 0);
            args.position(0).arg(argA).memory(inA);
            args.position(1).arg(argB).memory(inB);
            args.position(2).arg(argOut).memory(outPrim);
            args.position(0);
        }

        /** A memory of `desc` on our own 64-byte aligned allocation (address 0) or on the given address. */
        dnnl_memory memory(dnnl_memory_desc desc, long address) {
            if (address == 0) address = arena.allocate(Math.max(64, dnnl_memory_desc_get_size(desc)), 64).address();
            dnnl_memory m = new dnnl_memory();
            check(dnnl_memory_create(m, desc, engine, at(address)), "dnnl_memory_create");
            mems.add(m);
            return m;
        }

        /** The user's NCHW buffer, reordered once (untimed) into oneDNN's layout when that differs. */
        dnnl_memory input(dnnl_memory_desc user, dnnl_memory_desc prim, MemorySegment seg) {
            dnnl_memory u = memory(user, seg.address());
            if (dnnl_memory_desc_equal(user, prim) != 0) return u;
            dnnl_memory p = memory(prim, 0);
            reorder(u, user, p, prim);
            return p;
        }

        void reorder(dnnl_memory from, dnnl_memory_desc fromMd, dnnl_memory to, dnnl_memory_desc toMd) {
            dnnl_primitive_desc rpd = new dnnl_primitive_desc();
            check(dnnl_reorder_primitive_desc_create(rpd, fromMd, engine, toMd, engine, null), "reorder pd");
            dnnl_primitive rp = new dnnl_primitive();
            check(dnnl_primitive_create(rp, rpd), "reorder primitive");
            dnnl_exec_arg_t ra = new dnnl_exec_arg_t(2);
            ra.position(0).arg(DNNL_ARG_FROM).memory(from);
            ra.position(1).arg(DNNL_ARG_TO).memory(to);
            ra.position(0);
            check(dnnl_primitive_execute(rp, stream, 2, ra), "reorder");
            check(dnnl_stream_wait(stream), "dnnl_stream_wait");
            dnnl_primitive_destroy(rp);
            dnnl_primitive_desc_destroy(rpd);
        }

        @Override
        public void run() {
            check(dnnl_primitive_execute(conv, stream, 3, args), "conv execute");
            check(dnnl_stream_wait(stream), "dnnl_stream_wait");
        }

        @Override
        public void readBack() {
            if (outPrim != outUser) reorder(outPrim, outPrimMd, outUser, outUserMd);
        }

        @Override
        public String toString() { return impl; }

        @Override
        public void close() {
            for (dnnl_memory m : mems) dnnl_memory_destroy(m);
            for (dnnl_primitive p : prims) dnnl_primitive_destroy(p);
            for (dnnl_primitive_desc p : pds) dnnl_primitive_desc_destroy(p);
            arena.close();
        }
    }
}
