package dev.latent.ops;

import dev.latent.cuda.Cuda;
import dev.latent.cuda.CudaKernels;
import dev.latent.cuda.CudaConvKernels;
import dev.latent.cuda.CudaProbKernels;
import dev.latent.cuda.CudaVendor;
import dev.latent.cuda.DeviceBuffer;
import dev.latent.nativ.LatentBinding.AttentionDesc;
import dev.latent.tensor.Device;
import dev.latent.tensor.Precision;
import dev.latent.tensor.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;

/**
 * {@link Backend} on CUDA: one launch of our kernel per op ({@link CudaKernels}, device buffers; a null optional tensor
 * is passed as null), or cuBLAS / cuDNN first where {@link CudaVendor} serves (GEMM, convolution). Int32 host inputs
 * (targets, ids) go up through {@link Kernels}' per-thread upload cache. Nothing here reads device memory from the host
 * except where the op's result is a host double (sumOfSquares, bce, reparam's KL, coupling): those synchronise.
 */
final class CudaBackend extends CudaOps {
    static final CudaBackend INSTANCE = new CudaBackend();

    private CudaBackend() {}

    private static Cuda cuda() { return Cuda.get(); }

    private static DeviceBuffer buf(Tensor t) { return t == null ? null : DeviceBuffer.of(t.deviceBuffer()); }

    @Override public Device device() { return Device.CUDA; }

    @Override public void copy(Tensor src, Tensor dst) {
        if (src.isContiguous() && dst.isContiguous()) {   /* dense to dense: a memcpy */
            dst.deviceBuffer().copyFrom(src.deviceBuffer());
            return;
        }
        CudaKernels.copyStrided(cuda(), Kernels.copyDesc(src, dst), buf(src), buf(dst));
    }

    @Override public void zero(Tensor x) { x.deviceBuffer().zero(); }

    @Override public void addRows(long n, long c, long p, Tensor x, Tensor rows, Tensor y) {
        CudaKernels.addRows(cuda(), n, c, Math.max(p, 1), buf(x), buf(rows), buf(y));
    }

    @Override public void sumRows(long n, long c, long p, Tensor x, Tensor out) {
        CudaKernels.sumRows(cuda(), n, c, Math.max(p, 1), buf(x), buf(out));
    }

    @Override public void sum(long n, Tensor x, Tensor out) { CudaKernels.sum(cuda(), n, buf(x), buf(out)); }

    @Override public void softmaxCrossEntropy(long n, long v, Tensor logits, MemorySegment targets, Tensor losses, Tensor dlogits,
                                              float dscale) {
        CudaKernels.softmaxCrossEntropy(cuda(), n, v, buf(logits), DeviceUploads.deviceInts(targets, n), buf(losses), buf(dlogits), dscale);
    }

    @Override public double bceWithLogits(long n, Tensor logits, Tensor targets, float t, Tensor dlogits, float dscale) {
        return CudaProbKernels.bceWithLogits(cuda(), n, buf(logits), buf(targets), t, buf(dlogits), dscale);
    }

    @Override public void embedding(long n, long c, MemorySegment ids, int[] id, Tensor table, Tensor out) {
        CudaKernels.embedding(cuda(), n, c, DeviceUploads.deviceInts(ids, n), buf(table), buf(out));
    }

    @Override public void embeddingBackward(long n, long c, long vocab, MemorySegment ids, int[] id, Tensor dout, Tensor dtable) {
        /* The positions grouped by id (host data: the ids), each group in increasing index order: the kernel then adds
         * every table element's terms in the CPU's order, without atomics. Built and uploaded once per batch
         * (stageTokens, or the first backward of these ids). */
        DeviceBuffer dg = DeviceUploads.deviceGroups(ids, id, vocab);   // a bound slot first (CUDA graphs: bindIds)
        int rows = DeviceUploads.groupRows(n, vocab);   // the distinct ids, then empty groups: fixed for (n, vocab)
        CudaKernels.embeddingBackward(cuda(), rows, n, c, vocab, dg, buf(dout), buf(dtable));
    }

    @Override public void adamw(long n, Tensor p, Tensor g, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
                                float weightDecay, float gradScale, long step) {
        CudaKernels.adamw(cuda(), n, buf(p), buf(g), buf(m), buf(v), lr, beta1, beta2, eps, weightDecay, gradScale, step);
    }

    @Override public double sumOfSquares(long n, Tensor x) { return CudaKernels.sumOfSquares(cuda(), n, buf(x)); }

    @Override public double sumOfSquaresSegments(Tensor x, long[] offset, long[] len) {
        return CudaKernels.sumOfSquaresSegments(cuda(), buf(x), offset, len);
    }

    @Override public double reparam(long n, Tensor mu, Tensor logvar, long seed, long stream, Tensor z) {
        return CudaProbKernels.reparam(cuda(), n, buf(mu), buf(logvar), seed, stream, buf(z));
    }

    @Override public void couplingForward(long n, long hw, Tensor mask, Tensor y, Tensor h, float scale, Tensor out, double[] logdet) {
        try (DeviceBuffer ld = logdet == null ? null : cuda().alloc(8 * n)) {
            CudaProbKernels.couplingForward(cuda(), n, hw, buf(mask), buf(y), buf(h), scale, buf(out), ld);
            if (ld != null) copyBack(ld, logdet);
        }
    }

    @Override public double couplingBackward(long n, long hw, Tensor mask, Tensor y, Tensor h, float scale, Tensor dout,
                                             double[] dlogdet, Tensor dy, Tensor dh) {
        try (Arena a = Arena.ofConfined(); DeviceBuffer dl = dlogdet == null ? null : cuda().alloc(8 * n);
             DeviceBuffer ds = cuda().alloc(8)) {
            if (dl != null) dl.copyFrom(a.allocateFrom(JAVA_DOUBLE, dlogdet));
            ds.zero();
            CudaProbKernels.couplingBackward(cuda(), n, hw, buf(mask), buf(y), buf(h), scale, buf(dout), dl, buf(dy), buf(dh), ds);
            double[] r = new double[1];
            copyBack(ds, r);
            return r[0];
        }
    }

    /** Device doubles into a host array (synchronous copy). */
    private static void copyBack(DeviceBuffer b, double[] dst) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment h = a.allocate(JAVA_DOUBLE, dst.length);
            b.copyTo(h);
            MemorySegment.copy(h, JAVA_DOUBLE, 0, dst, 0, dst.length);
        }
    }

    @Override public void conv2d(Conv.Geometry g, Tensor x, Tensor w, Tensor bias, Tensor y) {
        if (!CudaVendor.convForward(cuda(), g.dims(), buf(x), buf(w), buf(bias), buf(y)))
            CudaConvKernels.conv2d(cuda(), g.desc(), buf(x), buf(w), buf(bias), buf(y));
    }

    @Override public void conv2dBackwardData(Conv.Geometry g, Tensor dy, Tensor w, Tensor bias, Tensor dx) {
        if (!CudaVendor.convBackwardData(cuda(), g.dims(), buf(dy), buf(w), buf(bias), buf(dx)))
            CudaConvKernels.conv2dBackwardData(cuda(), g.desc(), buf(dy), buf(w), buf(bias), buf(dx));
    }

    @Override public void conv2dBackwardWeight(Conv.Geometry g, Tensor x, Tensor dy, Tensor dw, Tensor db, boolean accumulate) {
        if (CudaVendor.convBackwardFilter(cuda(), g.dims(), buf(x), buf(dy), buf(dw), accumulate)) {
            if (db != null) CudaConvKernels.conv2dBackwardBias(cuda(), g.desc(), buf(dy), buf(db), accumulate);
        } else {
            CudaConvKernels.conv2dBackwardWeight(cuda(), g.desc(), buf(x), buf(dy), buf(dw), buf(db), accumulate);
        }
    }

    @Override public void conv1d(Conv1d.Geometry g, Tensor x, Tensor w, Tensor bias, Tensor y) {
        CudaConvKernels.conv1d(cuda(), g.n(), g.cin(), g.t(), g.cout(), g.k(), g.dilation(), buf(x), buf(w), buf(bias), buf(y));
    }

    @Override public void conv1dBackwardData(Conv1d.Geometry g, Tensor dy, Tensor w, Tensor dx) {
        CudaConvKernels.conv1dBackwardData(cuda(), g.n(), g.cin(), g.t(), g.cout(), g.k(), g.dilation(), buf(dy), buf(w), buf(dx));
    }

    @Override public void conv1dBackwardWeight(Conv1d.Geometry g, Tensor x, Tensor dy, Tensor dw, Tensor db, boolean accumulate) {
        CudaConvKernels.conv1dBackwardWeight(cuda(), g.n(), g.cin(), g.t(), g.cout(), g.k(), g.dilation(), buf(x), buf(dy), buf(dw), buf(db), accumulate);
    }

    @Override public void gemm(boolean ta, boolean tb, long m, long n, long k, float alpha, float beta, long lda, long ldb, long ldc,
                               long batch, long sa, long sb, long sc, Tensor a, Tensor b, Tensor c, boolean bf16) {
        Gemm.callCuda(ta, tb, m, n, k, alpha, beta, lda, ldb, ldc, batch, sa, sb, sc, buf(a), buf(b), buf(c),
                bf16 ? Precision.BF16 : Precision.FP32);
    }

    /** GEMM at a precision (h-cudaprec): FP32 (TF32 after Gemm.setCudaTf32), TF32 and BF16 all run on CUDA (Gemm.callCuda). */
    @Override public void gemm(boolean ta, boolean tb, long m, long n, long k, float alpha, float beta, long lda, long ldb, long ldc,
                               long batch, long sa, long sb, long sc, Tensor a, Tensor b, Tensor c, Precision precision) {
        Gemm.callCuda(ta, tb, m, n, k, alpha, beta, lda, ldb, ldc, batch, sa, sb, sc, buf(a), buf(b), buf(c), precision);
    }

    // ---- reduced precision on CUDA (--precision tf32 | bf16; h-cudaprec, docs/cuda.md "Mixed precision") ----
    // GEMM: Gemm.callCuda (cuBLAS TF32 / bf16 inputs, or our ltk_gemm_tf32 / ltk_gemm_bf16). Convolution: TF32 on cuDNN
    // with CUDNN_TENSOR_OP_MATH, bf16 on cuDNN's bf16 descriptors (CudaVendor.conv*Bf16: operands converted to bf16, a
    // bf16 result widened back, h-cudaprec2) where it serves; otherwise the operands are rounded on the device
    // (ltk_round_operand) and the fp32 kernels (cuDNN with FMA math, or our implicit-GEMM kernels) run on them: the
    // same numerics as a tensor-core op (bf16 / TF32 inputs, each product exact in fp32, fp32 accumulation). Bias and
    // bias gradients stay fp32. Attention: unless vendorAttention serves, bf16 runs our bf16 tensor-core kernels
    // (CudaKernels.attentionBf16 / attentionBackwardBf16: q, k, v, dout, P and dS rounded as the CPU's bf16 attention
    // does; h-tcbf16), tf32 the operands rounded and our fp32 kernels (P and dS fp32 inside them).

    /** A dense copy of t rounded to TF32 or bf16 (kept as floats), in fresh device memory the caller closes. */
    private static DeviceBuffer rounded(String op, Tensor t, Precision p) {
        if (!t.isContiguous()) throw new IllegalArgumentException(op + ": " + p.id() + " operands must be contiguous, got " + t);
        long n = t.numel();
        DeviceBuffer out = cuda().alloc(Math.max(n, 1) * 4);
        CudaKernels.roundOperand(cuda(), n, buf(t), out, p == Precision.TF32);
        return out;
    }

    /** conv2d at a precision (Conv.forward's CUDA path). */
    void conv2d(Conv.Geometry g, Tensor x, Tensor w, Tensor bias, Tensor y, Precision p) {
        if (p == Precision.FP32) { conv2d(g, x, w, bias, y); return; }
        if (p == Precision.TF32 && CudaVendor.convForward(cuda(), g.dims(), buf(x), buf(w), buf(bias), buf(y), true)) return;
        if (p == Precision.BF16 && CudaVendor.convForwardBf16(cuda(), g.dims(), buf(x), buf(w), buf(bias), buf(y))) return;
        try (DeviceBuffer xr = rounded("conv2d", x, p); DeviceBuffer wr = rounded("conv2d", w, p)) {
            if (!CudaVendor.convForward(cuda(), g.dims(), xr, wr, buf(bias), buf(y)))
                CudaConvKernels.conv2d(cuda(), g.desc(), xr, wr, buf(bias), buf(y));
        }
    }

    /** conv2dBackwardData at a precision (dy and w rounded; bias fp32). */
    void conv2dBackwardData(Conv.Geometry g, Tensor dy, Tensor w, Tensor bias, Tensor dx, Precision p) {
        if (p == Precision.FP32) { conv2dBackwardData(g, dy, w, bias, dx); return; }
        if (p == Precision.TF32 && CudaVendor.convBackwardData(cuda(), g.dims(), buf(dy), buf(w), buf(bias), buf(dx), true)) return;
        if (p == Precision.BF16 && CudaVendor.convBackwardDataBf16(cuda(), g.dims(), buf(dy), buf(w), buf(bias), buf(dx))) return;
        try (DeviceBuffer dyr = rounded("conv2dBackwardData", dy, p); DeviceBuffer wr = rounded("conv2dBackwardData", w, p)) {
            if (!CudaVendor.convBackwardData(cuda(), g.dims(), dyr, wr, buf(bias), buf(dx)))
                CudaConvKernels.conv2dBackwardData(cuda(), g.desc(), dyr, wr, buf(bias), buf(dx));
        }
    }

    /** conv2dBackwardWeight at a precision (x and dy rounded for dw; db from the fp32 dy). */
    void conv2dBackwardWeight(Conv.Geometry g, Tensor x, Tensor dy, Tensor dw, Tensor db, boolean accumulate, Precision p) {
        if (p == Precision.FP32) { conv2dBackwardWeight(g, x, dy, dw, db, accumulate); return; }
        if ((p == Precision.TF32 && CudaVendor.convBackwardFilter(cuda(), g.dims(), buf(x), buf(dy), buf(dw), accumulate, true))
                || (p == Precision.BF16 && CudaVendor.convBackwardFilterBf16(cuda(), g.dims(), buf(x), buf(dy), buf(dw), accumulate))) {
            if (db != null) CudaConvKernels.conv2dBackwardBias(cuda(), g.desc(), buf(dy), buf(db), accumulate);
            return;
        }
        try (DeviceBuffer xr = rounded("conv2dBackwardWeight", x, p); DeviceBuffer dyr = rounded("conv2dBackwardWeight", dy, p)) {
            if (!CudaVendor.convBackwardFilter(cuda(), g.dims(), xr, dyr, buf(dw), accumulate))
                CudaConvKernels.conv2dBackwardWeight(cuda(), g.desc(), xr, dyr, buf(dw), null, accumulate);
        }
        if (db != null) CudaConvKernels.conv2dBackwardBias(cuda(), g.desc(), buf(dy), buf(db), accumulate);
    }

    /** h-tcbf16: the bf16 kernels read q, k, v (, dout) in place, so they must be dense, as rounded() requires. */
    private static void dense(String op, Tensor... ts) {
        for (Tensor t : ts)
            if (!t.isContiguous()) throw new IllegalArgumentException(op + ": bf16 operands must be contiguous, got " + t);
    }

    /** attention at a precision: vendorAttention if it serves, else (bf16) our tensor-core kernel, or (tf32) our kernel on rounded q, k, v. */
    void attention(MemorySegment desc, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, Precision p) {
        attention(desc, q, k, v, o, lse, p, null);
    }

    /** {@link #attention(MemorySegment, Tensor, Tensor, Tensor, Tensor, Tensor, Precision)}, leaving in keep (when not null) what its backward can reuse. */
    void attention(MemorySegment desc, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, Precision p, KeptOperands keep) {
        if (p == Precision.FP32) { attention(desc, q, k, v, o, lse); return; }
        if (vendorAttention(p, desc, q, k, v, o, lse, null, null, null, null, keep)) return;
        if (p == Precision.BF16) {   // h-tcbf16: our bf16 tensor-core kernel (rounds q, k, v and P itself)
            dense("attention", q, k, v);
            CudaKernels.attentionBf16(cuda(), desc, buf(q), buf(k), buf(v), buf(o), buf(lse));
            return;
        }
        try (DeviceBuffer qr = rounded("attention", q, p); DeviceBuffer kr = rounded("attention", k, p);
             DeviceBuffer vr = rounded("attention", v, p)) {
            CudaKernels.attention(cuda(), desc, qr, kr, vr, buf(o), buf(lse));
        }
    }

    /** attentionBackward at a precision: vendorAttention if it serves, else our kernel on rounded q, k, v, dout (o, lse fp32). */
    void attentionBackward(MemorySegment desc, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, Tensor dout, Tensor dq, Tensor dk,
                           Tensor dv, Precision p) {
        attentionBackward(desc, q, k, v, o, lse, dout, dq, dk, dv, p, null);
    }

    /** {@link #attentionBackward(MemorySegment, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Precision)}, reading what the forward left in kept (null or empty: nothing). */
    void attentionBackward(MemorySegment desc, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, Tensor dout, Tensor dq, Tensor dk,
                           Tensor dv, Precision p, KeptOperands kept) {
        if (p == Precision.FP32) { attentionBackward(desc, q, k, v, o, lse, dout, dq, dk, dv); return; }
        if (vendorAttention(p, desc, q, k, v, o, lse, dout, dq, dk, dv, kept)) return;
        if (p == Precision.BF16) {   // h-tcbf16: our bf16 tensor-core kernels (round q, k, v, dout, P and dS themselves)
            dense("attentionBackward", q, k, v, dout);
            CudaKernels.attentionBackwardBf16(cuda(), desc, buf(q), buf(k), buf(v), buf(o), buf(lse), buf(dout), buf(dq), buf(dk), buf(dv));
            return;
        }
        try (DeviceBuffer qr = rounded("attentionBackward", q, p); DeviceBuffer kr = rounded("attentionBackward", k, p);
             DeviceBuffer vr = rounded("attentionBackward", v, p); DeviceBuffer dr = rounded("attentionBackward", dout, p)) {
            CudaKernels.attentionBackward(cuda(), desc, qr, kr, vr, buf(o), buf(lse), dr, buf(dq), buf(dk), buf(dv));
        }
    }

    /**
     * THE HOOK for a vendor attention at reduced precision: run attention on q, k, v (B, NH, T, HS, lt_attention_desc in
     * desc) at precision p, the forward (o, lse) when dout is null, else the backward (dq, dk, dv from o, lse, dout), and
     * return true; false lets our kernels run it on rounded operands.
     *
     * <p>BF16 (h-sdpawire): cuDNN 9's SDPA where {@link CudaVendor#servesAttentionBf16} says it takes the shape (causal,
     * head size 8..256 in steps of 8, a graph this cuDNN plans; not with LATENT_CUDA_VENDOR=0). Forward: q, k, v
     * converted on the device to bf16 (ltk_f32_to_bf16, to nearest even: the same values our fallback's rounding gives),
     * cuDNN's SDPA writes o in bf16 and lse (its Stats, fp32: our kernels' lse contract) straight into the lse tensor, o
     * widened back to fp32 (ltk_bf16_to_f32, exact). Backward: q, k, v, o and dout converted, cuDNN's SDPA backward,
     * dq, dk, dv widened back (overwritten, as our kernel does). Either backward runs from either forward (Stats == lse),
     * so a shape whose forward and backward are decided differently still trains. TF32 and fp32 attention: our kernels
     * (cuDNN's SDPA engines take fp16 / bf16 only).
     *
     * <p>Fewer conversions (h-sdpaconv): where q, k, v are the adjacent slices of one packed (3, B, NH, T, HS) tensor (F.attention's
     * packed qkv), the three are converted by one launch over 3n elements, and where dq, dk, dv are adjacent slices of
     * one packed gradient, widened by one; and a forward given {@code keep} converts into a block it holds there (bf16
     * q, k, v and cuDNN's bf16 o) instead of scratch, which the backward given the same holder reads instead of
     * converting q, k, v and o again: per layer and step 2 launches in the forward (4 before) and 2 in the backward (dout
     * and one widening; 8 before). The same bf16 values either way (each conversion is exact RNE of the same fp32 input,
     * and the kept o is the very bf16 o whose widening the fp32 o is), so the results are bit-identical. Scratch comes
     * from the caching allocator per call and goes back to its cache at the end of the call (stream-ordered reuse, no
     * host synchronisation); the kept block belongs to keep's scope (the graph's), freed by {@link KeptOperands#release}.
     * {@link CudaVendor#fewerSdpaConversions()} false (tests only) restores the earlier conversions (tests compare the two bit for bit).
     */
    private static boolean vendorAttention(Precision p, MemorySegment desc, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse,
                                           Tensor dout, Tensor dq, Tensor dk, Tensor dv, KeptOperands kept) {
        if (p != Precision.BF16) return false;
        boolean backward = dout != null;
        for (Tensor x : backward ? new Tensor[] {q, k, v, o, lse, dout, dq, dk, dv} : new Tensor[] {q, k, v, o, lse})
            if (!x.isContiguous()) return false;   /* our path names the operand in its exception */
        long b = AttentionDesc.b(desc), nh = AttentionDesc.nh(desc), t = AttentionDesc.t(desc), hs = AttentionDesc.hs(desc);
        Cuda cu = cuda();
        if (!CudaVendor.servesAttentionBf16(cu, b, nh, t, hs, AttentionDesc.causal(desc) != 0, backward)) return false;
        float scale = AttentionDesc.scale(desc);
        long n = q.numel(), bytes = Math.multiplyExact(n, 2L);   /* one bf16 operand */
        boolean fewer = CudaVendor.fewerSdpaConversions();
        if (!backward) {
            DeviceBuffer held = fewer && kept != null ? DeviceBuffer.of(kept.hold(Math.multiplyExact(bytes, 4L))) : null;
            try (DeviceBuffer s = held == null ? cu.alloc(Math.multiplyExact(bytes, 4L)) : null) {
                DeviceBuffer blk = held != null ? held : s;
                DeviceBuffer qb = blk.slice(0, bytes), kb = blk.slice(bytes, bytes), vb = blk.slice(2 * bytes, bytes),
                        ob = blk.slice(3 * bytes, bytes);
                toBf16(cu, n, q, k, v, blk, fewer);
                if (!CudaVendor.attentionBf16(cu, b, nh, t, hs, scale, qb, kb, vb, ob, buf(lse))) {
                    if (held != null) kept.release();
                    return false;
                }
                CudaKernels.fromBf16(cu, n, ob, buf(o));
                return true;
            }
        }
        /* The forward's bf16 q, k, v, o when it kept them for this shape (cuDNN served it); else convert. */
        DeviceBuffer reuse = fewer && kept != null && kept.block() != null && kept.byteSize() == 4 * bytes ? DeviceBuffer.of(kept.block()) : null;
        try (DeviceBuffer s = cu.alloc(Math.multiplyExact(bytes, reuse != null ? 4L : 8L))) {
            DeviceBuffer in = reuse != null ? reuse : s, out = reuse != null ? s : s.slice(4 * bytes, 4 * bytes);
            DeviceBuffer qb = in.slice(0, bytes), kb = in.slice(bytes, bytes), vb = in.slice(2 * bytes, bytes), ob = in.slice(3 * bytes, bytes);
            DeviceBuffer db = out.slice(0, bytes), dqb = out.slice(bytes, bytes), dkb = out.slice(2 * bytes, bytes),
                    dvb = out.slice(3 * bytes, bytes);
            if (reuse == null) {
                toBf16(cu, n, q, k, v, in, fewer);
                CudaKernels.toBf16(cu, n, buf(o), ob);
            }
            CudaKernels.toBf16(cu, n, buf(dout), db);
            if (!CudaVendor.attentionBackwardBf16(cu, b, nh, t, hs, scale, qb, kb, vb, ob, db, buf(lse), dqb, dkb, dvb)) return false;
            DeviceBuffer packedGrad = fewer ? packed(n, dq, dk, dv) : null;
            if (packedGrad != null) {
                CudaKernels.fromBf16(cu, 3 * n, out.slice(bytes, 3 * bytes), packedGrad);
            } else {
                CudaKernels.fromBf16(cu, n, dqb, buf(dq));
                CudaKernels.fromBf16(cu, n, dkb, buf(dk));
                CudaKernels.fromBf16(cu, n, dvb, buf(dv));
            }
            return true;
        }
    }

    /** q, k, v (n floats each) into the first 3 x 2n bytes of dst as bf16: one launch when they are one packed run, else three. */
    private static void toBf16(Cuda cu, long n, Tensor q, Tensor k, Tensor v, DeviceBuffer dst, boolean fewer) {
        long bytes = 2 * n;
        DeviceBuffer run = fewer ? packed(n, q, k, v) : null;
        if (run != null) {
            CudaKernels.toBf16(cu, 3 * n, run, dst.slice(0, 3 * bytes));
            return;
        }
        CudaKernels.toBf16(cu, n, buf(q), dst.slice(0, bytes));
        CudaKernels.toBf16(cu, n, buf(k), dst.slice(bytes, bytes));
        CudaKernels.toBf16(cu, n, buf(v), dst.slice(2 * bytes, bytes));
    }

    /**
     * The 3n floats of a, b, c as one buffer when they are adjacent in one storage block in that order (the (3, B, NH, T, HS)
     * packed qkv or its gradient split by F.attention: a at offset x, b at x + n, c at x + 2n, each dense), else null.
     */
    private static DeviceBuffer packed(long n, Tensor a, Tensor b, Tensor c) {
        if (n == 0 || !a.isContiguous() || !b.isContiguous() || !c.isContiguous()) return null;
        if (a.storageAddress() != b.storageAddress() || a.storageAddress() != c.storageAddress()) return null;
        if (b.offset() != a.offset() + n || c.offset() != a.offset() + 2 * n) return null;
        DeviceBuffer first = buf(a);
        return first.widen(Math.multiplyExact(n, 12L));
    }

    @Override public void pointwise(String op, long n, Tensor x, Tensor y) { CudaKernels.pointwise(cuda(), op, n, buf(x), buf(y)); }

    @Override public void pointwiseBackward(String op, long n, Tensor x, Tensor dy, Tensor dx) {
        CudaKernels.pointwiseBackward(cuda(), op, n, buf(x), buf(dy), buf(dx));
    }

    @Override public void diag(long c, Tensor v, Tensor m) { CudaKernels.diag(cuda(), c, buf(v), buf(m)); }

    @Override public void diagBackward(long c, Tensor g, Tensor d) { CudaKernels.diagBackward(cuda(), c, buf(g), buf(d)); }

    // ---- cuDNN SDPA (h-sdpa): entry points on bf16 device buffers, for CUDA's bf16 precision ----

    /**
     * Causal attention forward on bf16 device buffers: q, k, v, o (B, NH, T, HS) bf16 contiguous, lse (B, NH, T) fp32,
     * through cuDNN 9's SDPA where it serves ({@link CudaVendor#attentionBf16}). Returns false, doing nothing, where it
     * does not (no cuDNN 9, LATENT_CUDA_VENDOR=0, a head size its kernels do not take): the caller then runs
     * {@link #attention} on fp32 copies. The lse written is our kernels' contract, so {@link #attentionBackward} runs
     * from it (with o converted to fp32). The hook for CUDA's bf16 precision: convert q, k, v to bf16, call this,
     * convert o back.
     */
    boolean attentionBf16(long b, long nh, long t, long hs, float scale, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer o,
                          DeviceBuffer lse) {
        return CudaVendor.attentionBf16(cuda(), b, nh, t, hs, scale, q, k, v, o, lse);
    }

    /**
     * Causal attention backward on bf16 device buffers (q, k, v, o, dout in; dq, dk, dv out; lse fp32 from either
     * forward) through cuDNN 9's SDPA backward ({@link CudaVendor#attentionBackwardBf16}); false where it does not serve:
     * the caller then runs {@link #attentionBackward} on fp32 copies.
     */
    boolean attentionBackwardBf16(long b, long nh, long t, long hs, float scale, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer o,
                                  DeviceBuffer dout, DeviceBuffer lse, DeviceBuffer dq, DeviceBuffer dk, DeviceBuffer dv) {
        return CudaVendor.attentionBackwardBf16(cuda(), b, nh, t, hs, scale, q, k, v, o, dout, lse, dq, dk, dv);
    }
}
