package dev.latent.cuda;

import dev.latent.nativ.NativeException;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * cuDNN 9's fused flash attention (SDPA) forward through the backend (graph) API, bound through FFM:
 * cudnnBackendCreateDescriptor / SetAttribute / Finalize / GetAttribute / Execute / DestroyDescriptor. Per shape
 * (B, H, T, D) one execution plan is built once and kept: the operation graph of causal scaled dot-product attention
 * as cuDNN's SDPA engine recognises it,
 * <pre>
 *   S  = matmul(Q, K^T)                    Q (B, H, T, D), K^T (B, H, D, T): K's memory with swapped strides
 *   S1 = S * attn_scale                    attn_scale: a by-value float
 *   mask = CMP_GE(GEN_INDEX(S1, axis 2), GEN_INDEX(S1, axis 3))       row >= column: causal
 *   S2 = BINARY_SELECT(S1, -inf, mask)     -inf: a by-value float
 *   M  = reduction MAX(S2) (B, H, T, 1);  E = EXP(S2 - M);  L = reduction ADD(E)
 *   Stats = M + LOG(L)                     fp32 (B, H, T, 1): the softmax log-sum-exp, saved for the backward
 *   O  = matmul(E / L, V)                  bf16 (B, H, T, D)
 * </pre>
 * with every intermediate virtual and fp32, then the first engine configuration the heuristic (CUDNN_HEUR_MODE_A)
 * offers that finalizes into an execution plan. A call packs the seven pointers (Q, K, V, O, Stats, and host pointers
 * to the two scalars) and a workspace of the plan's size from our caching allocator into a variant pack and executes
 * it on the backend's stream (CuDnn.followStream: the legacy default stream, or the stream a CUDA-graph capture records),
 * where our kernels run.
 *
 * Stats is exactly our attention's lse contract (lt_attention_desc: the log-sum-exp of the scaled, masked scores of
 * each query row, natural log), so our backward kernel can run from cuDNN's forward, and the backward graph below from ours.
 *
 * The emulated driver implements these entry points (native/cuda_emu/vendor_emu.cc): it traces the graph through its
 * tensors' unique ids, refuses any other with CUDNN_STATUS_BAD_PARAM, and computes the attention reference from the
 * variant pack's memory, so the graph, the strides and the packing are checked in every build (CuDnnAttentionTest).
 */
final class CuDnnAttention {
    // cudnnBackendDescriptorType_t
    static final int POINTWISE = 0, ENGINECFG = 3, ENGINEHEUR = 4, EXECUTION_PLAN = 5, OP_POINTWISE = 13, OPERATION_GRAPH = 15,
            VARIANT_PACK = 16, TENSOR = 17, MATMUL = 18, OP_MATMUL = 19, REDUCTION = 21, OP_REDUCTION = 22, OP_RESHAPE = 31;
    // cudnnBackendAttributeName_t
    static final int PW_MODE = 0, PW_MATH_PREC = 1, PW_AXIS = 9, HEUR_MODE = 200, HEUR_GRAPH = 201, HEUR_RESULTS = 202,
            PLAN_HANDLE = 400, PLAN_CONFIG = 401, PLAN_WORKSPACE = 402, OPPW_DESC = 750, OPPW_X = 751, OPPW_B = 752, OPPW_Y = 753,
            OPPW_T = 758, GRAPH_HANDLE = 800, GRAPH_OPS = 801, T_ALIGN = 900, T_DTYPE = 901, T_DIMS = 902, T_STRIDES = 903,
            T_UID = 906, T_VIRTUAL = 907, T_BY_VALUE = 908, VP_UIDS = 1000, VP_PTRS = 1001, VP_WORKSPACE = 1003, MM_COMP = 1500,
            OPMM_A = 1520, OPMM_B = 1521, OPMM_C = 1522, OPMM_DESC = 1523, RED_OP = 1600, RED_COMP = 1601, OPRED_X = 1610,
            OPRED_Y = 1611, OPRED_DESC = 1612, RESHAPE_X = 2200, RESHAPE_Y = 2201;
    // cudnnBackendAttributeType_t
    static final int TY_HANDLE = 0, TY_DATA_TYPE = 1, TY_BOOLEAN = 2, TY_INT64 = 3, TY_VOID_PTR = 6, TY_HEUR_MODE = 8,
            TY_POINTWISE_MODE = 14, TY_DESCRIPTOR = 15, TY_REDUCTION_OP = 18;
    // cudnnDataType_t, cudnnPointwiseMode_t, cudnnReduceTensorOp_t, cudnnBackendHeurMode_t
    static final int DT_FLOAT = 0, DT_INT32 = 4, DT_BF16 = 9, DT_BOOLEAN = 11;
    static final int PW_ADD = 0, PW_MUL = 1, PW_DIV = 6, PW_SUB = 9, PW_EXP = 13, PW_LOG = 15, PW_IDENTITY = 21, PW_CMP_GE = 303,
            PW_CMP_LE = 305,
            PW_GEN_INDEX = 501, PW_BINARY_SELECT = 601;
    static final int RED_ADD = 0, RED_MAX = 3, HEUR_MODE_A = 3;
    static final long UID_Q = 1, UID_K = 2, UID_V = 3, UID_O = 4, UID_STATS = 5, UID_SCALE = 6, UID_NEG_INF = 7, UID_DO = 8, UID_DQ = 9,
            UID_DK = 10, UID_DV = 11, UID_SOFTMAX_SUM = 12, UID_DQ_ACCUM = 13, UID_ONE = 14;
    private static final int MAX_CONFIGS = 8;

    /** The graph to build: the causal SDPA, or (tests) a mutation of it the library must refuse. */
    enum Variant { CAUSAL, MASK_REVERSED, UNSCALED }

    private final Cuda cu;
    private final CuDnn dnn;
    private final VendorLib lib;   /* cuDNN's, shared with CuDnn: the same status names */
    private final MethodHandle create, destroy, set, finalizeH, get, execute;
    private final Arena arena = Arena.ofAuto();
    private final MemorySegment out = arena.allocate(ADDRESS), count = arena.allocate(JAVA_LONG), scalars = arena.allocate(16, 8);
    private final Map<Key, Plan> plans = new HashMap<>();
    private final Map<Key, String> refused = new HashMap<>();   /* shapes whose graph this cuDNN would not plan, and why */

    private record Key(long b, long h, long t, long d, Variant variant, boolean backward) {}

    /** A built plan: the descriptors it owns (destroyed with it) and its workspace size. */
    private record Plan(MemorySegment plan, long workspace, boolean usesOne, List<MemorySegment> owned) {}

    CuDnnAttention(Cuda cu, CuDnn dnn) {
        this.cu = cu;
        this.dnn = dnn;
        lib = dnn.lib.needing("cuDNN 9's backend API needed");
        create = bind(lib, "cudnnBackendCreateDescriptor", JAVA_INT, ADDRESS);
        destroy = bind(lib, "cudnnBackendDestroyDescriptor", ADDRESS);
        set = bind(lib, "cudnnBackendSetAttribute", ADDRESS, JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS);
        finalizeH = bind(lib, "cudnnBackendFinalize", ADDRESS);
        get = bind(lib, "cudnnBackendGetAttribute", ADDRESS, JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS, ADDRESS);
        execute = bind(lib, "cudnnBackendExecute", ADDRESS, ADDRESS, ADDRESS);
        scalars.set(JAVA_FLOAT, 4, Float.NEGATIVE_INFINITY);
        scalars.set(JAVA_FLOAT, 8, 1f);
    }

    private static MethodHandle bind(VendorLib lib, String name, MemoryLayout... args) { return lib.status(name, args); }

    /** True when every size fits the graph's int64 dims and the kernels' limits we know of (head size <= 256, even). */
    static boolean fits(long b, long h, long t, long d) {
        return b >= 1 && h >= 1 && t >= 1 && d >= 8 && d <= 256 && d % 8 == 0;
    }

    /**
     * O (bf16) and Stats (fp32, the lse) of causal attention over bf16 Q, K, V (B, H, T, D), contiguous, scaled by
     * {@code scale}. Buffers already checked by the caller against their sizes.
     */
    synchronized void forward(long b, long h, long t, long d, float scale, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer o,
                              DeviceBuffer stats) {
        forward(b, h, t, d, scale, q.address(), k.address(), v.address(), o.address(), stats.address(), Variant.CAUSAL);
    }

    synchronized void forward(long b, long h, long t, long d, float scale, long q, long k, long v, long o, long stats, Variant variant) {
        cu.makeCurrent();
        Plan p = plan(new Key(b, h, t, d, variant, false));
        run(p, scale, new long[] {UID_Q, UID_K, UID_V, UID_O, UID_STATS}, new long[] {q, k, v, o, stats});
    }

    /**
     * dQ, dK, dV (bf16) of causal attention from bf16 Q, K, V, O, dO and the forward's fp32 Stats (B, H, T, D) / (B, H, T),
     * contiguous: cuDNN's SDPA backward. Its two fp32 intermediates (softmax_sum, B H T; dQ_accum, B H T D) come from
     * our caching allocator for the call. Buffers already checked by the caller.
     */
    synchronized void backward(long b, long h, long t, long d, float scale, DeviceBuffer q, DeviceBuffer k, DeviceBuffer v, DeviceBuffer o,
                               DeviceBuffer dout, DeviceBuffer stats, DeviceBuffer dq, DeviceBuffer dk, DeviceBuffer dv) {
        backward(b, h, t, d, scale, q.address(), k.address(), v.address(), o.address(), dout.address(), stats.address(), dq.address(),
                dk.address(), dv.address(), Variant.CAUSAL);
    }

    synchronized void backward(long b, long h, long t, long d, float scale, long q, long k, long v, long o, long dout, long stats, long dq,
                               long dk, long dv, Variant variant) {
        cu.makeCurrent();
        Plan p = plan(new Key(b, h, t, d, variant, true));
        try (DeviceBuffer sum = cu.alloc(4 * b * h * t); DeviceBuffer acc = cu.alloc(4 * b * h * t * d)) {
            run(p, scale, new long[] {UID_Q, UID_K, UID_V, UID_O, UID_DO, UID_STATS, UID_DQ, UID_DK, UID_DV, UID_SOFTMAX_SUM, UID_DQ_ACCUM},
                    new long[] {q, k, v, o, dout, stats, dq, dk, dv, sum.address(), acc.address()});
        }
    }

    /** One execution: the device pointers given, the by-value scalars (scale, -inf, one), a workspace of the plan's size. */
    private void run(Plan p, float scale, long[] deviceUids, long[] devicePtrs) {
        scalars.set(JAVA_FLOAT, 0, scale);
        int n = deviceUids.length + 3;
        try (Arena a = Arena.ofConfined(); DeviceBuffer ws = cu.alloc(Math.max(p.workspace, 256))) {
            MemorySegment uids = a.allocate(JAVA_LONG, n), ptrs = a.allocate(JAVA_LONG, n);
            for (int i = 0; i < deviceUids.length; i++) {
                uids.setAtIndex(JAVA_LONG, i, deviceUids[i]);
                ptrs.setAtIndex(JAVA_LONG, i, devicePtrs[i]);
            }
            long[] scalarUids = {UID_SCALE, UID_NEG_INF, UID_ONE};
            for (int i = 0; i < 3; i++) {
                uids.setAtIndex(JAVA_LONG, deviceUids.length + i, scalarUids[i]);
                ptrs.setAtIndex(JAVA_LONG, deviceUids.length + i, scalars.address() + 4L * i);
            }
            int used = p.usesOne ? n : n - 1;   // the forward graph has no `one`: cuDNN refuses uids it does not know
            MemorySegment pack = descriptor(VARIANT_PACK);
            try {
                set(pack, VP_UIDS, TY_INT64, used, uids);
                set(pack, VP_PTRS, TY_VOID_PTR, used, ptrs);
                set(pack, VP_WORKSPACE, TY_VOID_PTR, 1, a.allocateFrom(JAVA_LONG, ws.address()));
                check("cudnnBackendFinalize(VARIANT_PACK)", finalizeH, pack);
                dnn.followStream();   // the backend's stream, as our kernels and the convolutions use (a capture records it)
                check("cudnnBackendExecute", execute, dnn.handle(), p.plan, pack);
            } finally {
                destroyQuietly(pack);
            }
        }
    }

    boolean standIn() { return dnn.standIn; }

    String describe() { return dnn.describe(); }

    /**
     * Null when the causal graph of this shape has an execution plan (built now if needed), else why not: a cuDNN that
     * finds no engine for it (an older GPU, a head size its kernels do not take) answers with a status, remembered, and
     * the caller runs our kernel instead. Failures other than the library's refusal propagate.
     */
    synchronized String refusal(long b, long h, long t, long d) {
        return refusal(new Key(b, h, t, d, Variant.CAUSAL, false));
    }

    /** {@link #refusal(long, long, long, long)} for the backward graph. */
    synchronized String backwardRefusal(long b, long h, long t, long d) {
        return refusal(new Key(b, h, t, d, Variant.CAUSAL, true));
    }

    private String refusal(Key key) {
        if (plans.containsKey(key)) return null;
        String why = refused.get(key);
        if (why != null) return why;
        try {
            cu.makeCurrent();
            plan(key);
            return null;
        } catch (NativeException e) {
            refused.put(key, e.getMessage());
            return e.getMessage();
        }
    }

    /** Plans built so far (tests: a repeated shape reuses its plan). */
    synchronized int planCount() { return plans.size(); }

    private Plan plan(Key key) {
        Plan p = plans.get(key);
        if (p != null) return p;
        List<MemorySegment> owned = new ArrayList<>();
        try {
            p = build(key, owned);
            plans.put(key, p);
            return p;
        } catch (RuntimeException e) {
            for (MemorySegment m : owned) destroyQuietly(m);
            throw e;
        }
    }

    private Plan build(Key key, List<MemorySegment> owned) {
        try (Arena a = Arena.ofConfined()) {
            List<MemorySegment> ops = key.backward ? backwardOps(a, owned, key) : forwardOps(a, owned, key);
            return planOf(a, owned, ops, key);
        }
    }

    /** The forward graph's 14 operations (see the class comment). */
    private List<MemorySegment> forwardOps(Arena a, List<MemorySegment> owned, Key key) {
        long B = key.b, H = key.h, T = key.t, D = key.d;
        {
            long[] qStrides = {H * T * D, T * D, D, 1};
            MemorySegment q = tensor(a, owned, UID_Q, DT_BF16, new long[] {B, H, T, D}, qStrides, false, false);
            MemorySegment kt = tensor(a, owned, UID_K, DT_BF16, new long[] {B, H, D, T}, new long[] {H * T * D, T * D, 1, D}, false, false);
            MemorySegment v = tensor(a, owned, UID_V, DT_BF16, new long[] {B, H, T, D}, qStrides, false, false);
            MemorySegment o = tensor(a, owned, UID_O, DT_BF16, new long[] {B, H, T, D}, qStrides, false, false);
            long[] rowDims = {B, H, T, 1}, rowStrides = {H * T, T, 1, 1};
            MemorySegment stats = tensor(a, owned, UID_STATS, DT_FLOAT, rowDims, rowStrides, false, false);
            long[] one = {1, 1, 1, 1};
            MemorySegment scale = tensor(a, owned, UID_SCALE, DT_FLOAT, one, one, false, true);
            MemorySegment negInf = tensor(a, owned, UID_NEG_INF, DT_FLOAT, one, one, false, true);
            long[] sDims = {B, H, T, T}, sStrides = {H * T * T, T * T, T, 1};
            long[] uid = {100};
            java.util.function.IntFunction<MemorySegment> scores = dt -> tensor(a, owned, uid[0]++, dt, sDims, sStrides, true, false);
            java.util.function.Supplier<MemorySegment> rows = () -> tensor(a, owned, uid[0]++, DT_FLOAT, rowDims, rowStrides, true, false);
            List<MemorySegment> ops = new ArrayList<>();
            MemorySegment s = scores.apply(DT_FLOAT);
            ops.add(matmul(a, owned, q, kt, s));
            MemorySegment s1 = s;
            if (key.variant != Variant.UNSCALED) {
                s1 = scores.apply(DT_FLOAT);
                ops.add(pointwise(a, owned, PW_MUL, -1, s, scale, null, s1));
            }
            MemorySegment row = scores.apply(DT_INT32), col = scores.apply(DT_INT32), mask = scores.apply(DT_BOOLEAN);
            ops.add(pointwise(a, owned, PW_GEN_INDEX, 2, s1, null, null, row));
            ops.add(pointwise(a, owned, PW_GEN_INDEX, 3, s1, null, null, col));
            ops.add(pointwise(a, owned, key.variant == Variant.MASK_REVERSED ? PW_CMP_LE : PW_CMP_GE, -1, row, col, null, mask));
            MemorySegment s2 = scores.apply(DT_FLOAT);
            ops.add(pointwise(a, owned, PW_BINARY_SELECT, -1, s1, negInf, mask, s2));
            MemorySegment m = rows.get();
            ops.add(reduction(a, owned, RED_MAX, s2, m));
            MemorySegment s3 = scores.apply(DT_FLOAT), e = scores.apply(DT_FLOAT);
            ops.add(pointwise(a, owned, PW_SUB, -1, s2, m, null, s3));
            ops.add(pointwise(a, owned, PW_EXP, -1, s3, null, null, e));
            MemorySegment l = rows.get(), logL = rows.get();
            ops.add(reduction(a, owned, RED_ADD, e, l));
            ops.add(pointwise(a, owned, PW_LOG, -1, l, null, null, logL));
            ops.add(pointwise(a, owned, PW_ADD, -1, m, logL, null, stats));
            MemorySegment prob = scores.apply(DT_FLOAT);
            ops.add(pointwise(a, owned, PW_DIV, -1, e, l, null, prob));
            ops.add(matmul(a, owned, prob, v, o));
            return ops;
        }
    }

    /**
     * The backward graph's 22 operations, as cudnn-frontend's SDPA backward composes them: softmax_sum = reduction
     * ADD(dO * O) * one (non-virtual fp32); P = EXP(S * scale - Stats) under the causal mask (recomputed from Stats);
     * dV = matmul(P^T, dO); dS = (matmul(dO, V^T) - softmax_sum) * P * scale; dK = matmul(dS^T, Q);
     * dQ_accum = matmul(dS, K) (non-virtual fp32), dQ = IDENTITY(dQ_accum). P^T, dS^T and K are RESHAPEs (the same
     * values with swapped strides).
     */
    private List<MemorySegment> backwardOps(Arena a, List<MemorySegment> owned, Key key) {
        long B = key.b, H = key.h, T = key.t, D = key.d;
        long[] bhtd = {B, H, T, D}, bhdt = {B, H, D, T}, natural = {H * T * D, T * D, D, 1}, swapped = {H * T * D, T * D, 1, D};
        MemorySegment q = tensor(a, owned, UID_Q, DT_BF16, bhtd, natural, false, false);
        MemorySegment kt = tensor(a, owned, UID_K, DT_BF16, bhdt, swapped, false, false);
        MemorySegment vt = tensor(a, owned, UID_V, DT_BF16, bhdt, swapped, false, false);
        MemorySegment o = tensor(a, owned, UID_O, DT_BF16, bhtd, natural, false, false);
        MemorySegment dout = tensor(a, owned, UID_DO, DT_BF16, bhtd, natural, false, false);
        MemorySegment dq = tensor(a, owned, UID_DQ, DT_BF16, bhtd, natural, false, false);
        MemorySegment dk = tensor(a, owned, UID_DK, DT_BF16, bhtd, natural, false, false);
        MemorySegment dv = tensor(a, owned, UID_DV, DT_BF16, bhtd, natural, false, false);
        MemorySegment dqAcc = tensor(a, owned, UID_DQ_ACCUM, DT_FLOAT, bhtd, natural, false, false);
        long[] rowDims = {B, H, T, 1}, rowStrides = {H * T, T, 1, 1};
        MemorySegment stats = tensor(a, owned, UID_STATS, DT_FLOAT, rowDims, rowStrides, false, false);
        MemorySegment sum = tensor(a, owned, UID_SOFTMAX_SUM, DT_FLOAT, rowDims, rowStrides, false, false);
        long[] one4 = {1, 1, 1, 1};
        MemorySegment scale = tensor(a, owned, UID_SCALE, DT_FLOAT, one4, one4, false, true);
        MemorySegment negInf = tensor(a, owned, UID_NEG_INF, DT_FLOAT, one4, one4, false, true);
        MemorySegment one = tensor(a, owned, UID_ONE, DT_FLOAT, one4, one4, false, true);
        long[] sDims = {B, H, T, T}, sStrides = {H * T * T, T * T, T, 1}, sT = {H * T * T, T * T, 1, T};
        long[] uid = {100};
        java.util.function.IntFunction<MemorySegment> scores = dt -> tensor(a, owned, uid[0]++, dt, sDims, sStrides, true, false);
        List<MemorySegment> ops = new ArrayList<>();
        MemorySegment doo = tensor(a, owned, uid[0]++, DT_FLOAT, bhtd, natural, true, false);
        ops.add(pointwise(a, owned, PW_MUL, -1, dout, o, null, doo));
        MemorySegment red = tensor(a, owned, uid[0]++, DT_FLOAT, rowDims, rowStrides, true, false);
        ops.add(reduction(a, owned, RED_ADD, doo, red));
        ops.add(pointwise(a, owned, PW_MUL, -1, red, one, null, sum));
        MemorySegment s = scores.apply(DT_FLOAT), s1 = scores.apply(DT_FLOAT), s2 = scores.apply(DT_FLOAT);
        ops.add(matmul(a, owned, q, kt, s));
        ops.add(pointwise(a, owned, PW_MUL, -1, s, scale, null, s1));
        ops.add(pointwise(a, owned, PW_SUB, -1, s1, stats, null, s2));
        MemorySegment row = scores.apply(DT_INT32), col = scores.apply(DT_INT32), mask = scores.apply(DT_BOOLEAN), s3 = scores.apply(DT_FLOAT);
        ops.add(pointwise(a, owned, PW_GEN_INDEX, 2, s2, null, null, row));
        ops.add(pointwise(a, owned, PW_GEN_INDEX, 3, s2, null, null, col));
        ops.add(pointwise(a, owned, key.variant == Variant.MASK_REVERSED ? PW_CMP_LE : PW_CMP_GE, -1, row, col, null, mask));
        ops.add(pointwise(a, owned, PW_BINARY_SELECT, -1, s2, negInf, mask, s3));
        MemorySegment p = scores.apply(DT_FLOAT);
        ops.add(pointwise(a, owned, PW_EXP, -1, s3, null, null, p));
        MemorySegment pt = tensor(a, owned, uid[0]++, DT_BF16, sDims, sT, true, false);
        ops.add(reshape(a, owned, p, pt));
        ops.add(matmul(a, owned, pt, dout, dv));
        MemorySegment dp = scores.apply(DT_FLOAT), dp2 = scores.apply(DT_FLOAT), ds = scores.apply(DT_FLOAT), ds2 = scores.apply(DT_FLOAT);
        ops.add(matmul(a, owned, dout, vt, dp));
        ops.add(pointwise(a, owned, PW_SUB, -1, dp, sum, null, dp2));
        ops.add(pointwise(a, owned, PW_MUL, -1, dp2, p, null, ds));
        if (key.variant != Variant.UNSCALED) ops.add(pointwise(a, owned, PW_MUL, -1, ds, scale, null, ds2));
        else ds2 = ds;
        MemorySegment dst = tensor(a, owned, uid[0]++, DT_BF16, sDims, sT, true, false);
        ops.add(reshape(a, owned, ds2, dst));
        ops.add(matmul(a, owned, dst, q, dk));
        MemorySegment k = tensor(a, owned, uid[0]++, DT_BF16, bhtd, natural, true, false);
        ops.add(reshape(a, owned, kt, k));
        ops.add(matmul(a, owned, ds2, k, dqAcc));
        ops.add(pointwise(a, owned, PW_IDENTITY, -1, dqAcc, null, null, dq));
        return ops;
    }

    /** The operation graph of {@code ops}, the heuristic's engine configurations, and the first that finalizes into a plan. */
    private Plan planOf(Arena a, List<MemorySegment> owned, List<MemorySegment> ops, Key key) {
        {
            MemorySegment graph = descriptor(OPERATION_GRAPH);
            owned.add(graph);
            set(graph, GRAPH_HANDLE, TY_HANDLE, 1, a.allocateFrom(JAVA_LONG, dnn.handle().address()));
            set(graph, GRAPH_OPS, TY_DESCRIPTOR, ops.size(), addresses(a, ops));
            check("cudnnBackendFinalize(OPERATIONGRAPH)", finalizeH, graph);

            MemorySegment heur = descriptor(ENGINEHEUR);
            owned.add(heur);
            set(heur, HEUR_GRAPH, TY_DESCRIPTOR, 1, addresses(a, List.of(graph)));
            set(heur, HEUR_MODE, TY_HEUR_MODE, 1, a.allocateFrom(JAVA_INT, HEUR_MODE_A));
            check("cudnnBackendFinalize(ENGINEHEUR)", finalizeH, heur);
            List<MemorySegment> configs = new ArrayList<>();
            for (int i = 0; i < MAX_CONFIGS; i++) {
                MemorySegment c = descriptor(ENGINECFG);
                owned.add(c);
                configs.add(c);
            }
            check("cudnnBackendGetAttribute(ENGINEHEUR_RESULTS)", get, heur, HEUR_RESULTS, TY_DESCRIPTOR, (long) MAX_CONFIGS, count,
                    addresses(a, configs));
            long n = Math.min(count.get(JAVA_LONG, 0), MAX_CONFIGS);
            if (n < 1) throw new NativeException("cudnnBackendGetAttribute(ENGINEHEUR_RESULTS)", 3000, "no engine for causal SDPA " + key);
            NativeException last = null;
            for (int i = 0; i < n; i++) {
                MemorySegment plan = descriptor(EXECUTION_PLAN);
                set(plan, PLAN_HANDLE, TY_HANDLE, 1, a.allocateFrom(JAVA_LONG, dnn.handle().address()));
                set(plan, PLAN_CONFIG, TY_DESCRIPTOR, 1, addresses(a, List.of(configs.get(i))));
                try {
                    check("cudnnBackendFinalize(EXECUTION_PLAN)", finalizeH, plan);
                } catch (NativeException ex) {
                    last = ex;
                    destroyQuietly(plan);
                    continue;
                }
                owned.add(plan);
                MemorySegment ws = a.allocate(JAVA_LONG);
                check("cudnnBackendGetAttribute(EXECUTION_PLAN_WORKSPACE_SIZE)", get, plan, PLAN_WORKSPACE, TY_INT64, 1L, count, ws);
                return new Plan(plan, ws.get(JAVA_LONG, 0), key.backward, owned);
            }
            throw last;
        }
    }

    private static MemorySegment addresses(Arena a, List<MemorySegment> ds) {
        MemorySegment s = a.allocate(JAVA_LONG, ds.size());
        for (int i = 0; i < ds.size(); i++) s.setAtIndex(JAVA_LONG, i, ds.get(i).address());
        return s;
    }

    private MemorySegment descriptor(int type) {
        check("cudnnBackendCreateDescriptor(" + type + ")", create, type, out);
        return out.get(ADDRESS, 0);
    }

    private MemorySegment tensor(Arena a, List<MemorySegment> owned, long uid, int dtype, long[] dims, long[] strides, boolean virtual,
                                 boolean byValue) {
        MemorySegment t = descriptor(TENSOR);
        owned.add(t);
        set(t, T_DTYPE, TY_DATA_TYPE, 1, a.allocateFrom(JAVA_INT, dtype));
        set(t, T_DIMS, TY_INT64, dims.length, a.allocateFrom(JAVA_LONG, dims));
        set(t, T_STRIDES, TY_INT64, strides.length, a.allocateFrom(JAVA_LONG, strides));
        set(t, T_UID, TY_INT64, 1, a.allocateFrom(JAVA_LONG, uid));
        set(t, T_ALIGN, TY_INT64, 1, a.allocateFrom(JAVA_LONG, 16L));
        set(t, T_VIRTUAL, TY_BOOLEAN, 1, a.allocateFrom(JAVA_BYTE, (byte) (virtual ? 1 : 0)));
        if (byValue) set(t, T_BY_VALUE, TY_BOOLEAN, 1, a.allocateFrom(JAVA_BYTE, (byte) 1));
        check("cudnnBackendFinalize(TENSOR uid " + uid + ")", finalizeH, t);
        return t;
    }

    private MemorySegment pointwise(Arena a, List<MemorySegment> owned, int mode, long axis, MemorySegment x, MemorySegment b,
                                    MemorySegment cond, MemorySegment y) {
        MemorySegment pw = descriptor(POINTWISE);
        owned.add(pw);
        set(pw, PW_MODE, TY_POINTWISE_MODE, 1, a.allocateFrom(JAVA_INT, mode));
        set(pw, PW_MATH_PREC, TY_DATA_TYPE, 1, a.allocateFrom(JAVA_INT, DT_FLOAT));
        if (axis >= 0) set(pw, PW_AXIS, TY_INT64, 1, a.allocateFrom(JAVA_LONG, axis));
        check("cudnnBackendFinalize(POINTWISE " + mode + ")", finalizeH, pw);
        MemorySegment op = descriptor(OP_POINTWISE);
        owned.add(op);
        set(op, OPPW_DESC, TY_DESCRIPTOR, 1, addresses(a, List.of(pw)));
        set(op, OPPW_X, TY_DESCRIPTOR, 1, addresses(a, List.of(x)));
        if (b != null) set(op, OPPW_B, TY_DESCRIPTOR, 1, addresses(a, List.of(b)));
        if (cond != null) set(op, OPPW_T, TY_DESCRIPTOR, 1, addresses(a, List.of(cond)));
        set(op, OPPW_Y, TY_DESCRIPTOR, 1, addresses(a, List.of(y)));
        check("cudnnBackendFinalize(OPERATION_POINTWISE " + mode + ")", finalizeH, op);
        return op;
    }

    private MemorySegment reshape(Arena a, List<MemorySegment> owned, MemorySegment x, MemorySegment y) {
        MemorySegment op = descriptor(OP_RESHAPE);
        owned.add(op);
        set(op, RESHAPE_X, TY_DESCRIPTOR, 1, addresses(a, List.of(x)));
        set(op, RESHAPE_Y, TY_DESCRIPTOR, 1, addresses(a, List.of(y)));
        check("cudnnBackendFinalize(OPERATION_RESHAPE)", finalizeH, op);
        return op;
    }

    private MemorySegment matmul(Arena a, List<MemorySegment> owned, MemorySegment x, MemorySegment y, MemorySegment z) {
        MemorySegment mm = descriptor(MATMUL);
        owned.add(mm);
        set(mm, MM_COMP, TY_DATA_TYPE, 1, a.allocateFrom(JAVA_INT, DT_FLOAT));
        check("cudnnBackendFinalize(MATMUL)", finalizeH, mm);
        MemorySegment op = descriptor(OP_MATMUL);
        owned.add(op);
        set(op, OPMM_A, TY_DESCRIPTOR, 1, addresses(a, List.of(x)));
        set(op, OPMM_B, TY_DESCRIPTOR, 1, addresses(a, List.of(y)));
        set(op, OPMM_C, TY_DESCRIPTOR, 1, addresses(a, List.of(z)));
        set(op, OPMM_DESC, TY_DESCRIPTOR, 1, addresses(a, List.of(mm)));
        check("cudnnBackendFinalize(OPERATION_MATMUL)", finalizeH, op);
        return op;
    }

    private MemorySegment reduction(Arena a, List<MemorySegment> owned, int operator, MemorySegment x, MemorySegment y) {
        MemorySegment rd = descriptor(REDUCTION);
        owned.add(rd);
        set(rd, RED_OP, TY_REDUCTION_OP, 1, a.allocateFrom(JAVA_INT, operator));
        set(rd, RED_COMP, TY_DATA_TYPE, 1, a.allocateFrom(JAVA_INT, DT_FLOAT));
        check("cudnnBackendFinalize(REDUCTION)", finalizeH, rd);
        MemorySegment op = descriptor(OP_REDUCTION);
        owned.add(op);
        set(op, OPRED_X, TY_DESCRIPTOR, 1, addresses(a, List.of(x)));
        set(op, OPRED_Y, TY_DESCRIPTOR, 1, addresses(a, List.of(y)));
        set(op, OPRED_DESC, TY_DESCRIPTOR, 1, addresses(a, List.of(rd)));
        check("cudnnBackendFinalize(OPERATION_REDUCTION)", finalizeH, op);
        return op;
    }

    private void set(MemorySegment d, int name, int type, long n, MemorySegment values) {
        check("cudnnBackendSetAttribute(" + name + ")", set, d, name, type, n, values);
    }

    private void destroyQuietly(MemorySegment d) {
        try {
            int ignored = (int) destroy.invoke(d);
        } catch (Throwable t) {
            // releasing after another failure: the first failure is the one reported
        }
    }

    private void check(String name, MethodHandle h, Object... args) { lib.check(name, h, args); }
}
