package dev.latent.cuda;

import dev.latent.nativ.NativeException;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.HashMap;
import java.util.Map;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * cuDNN (libcudnn.so.9 / .8) bound through FFM, for 2-D convolution with the legacy descriptor API: NCHW float tensors,
 * KCRS filters, CUDNN_CROSS_CORRELATION (PyTorch's and our convolution), CUDNN_FMA_MATH (exact fp32: cuDNN's default
 * math allows TF32 on Ampere and newer, our kernels do not) or, for --precision tf32, CUDNN_TENSOR_OP_MATH, and per
 * geometry the algorithm {@link CuDnnAlgos} picks: the first deterministic candidate within the workspace cap of cuDNN's
 * heuristics (or of its timed search, LATENT_CUDNN_FIND=measure), else, and with LATENT_CUDNN_FIND=0, the fixed
 * deterministic algorithms (forward IMPLICIT_PRECOMP_GEMM, backward-data ALGO_1, backward-filter ALGO_1: no atomics, the
 * same bits every run), each with its workspace from our caching allocator, stream-ordered. One handle
 * on the legacy default stream, where our kernels run. Descriptors are made once per geometry and kept.
 *
 * Bias: cudnnAddTensor of a (1, K, 1, 1) tensor after the forward (and of (1, C, 1, 1) after the backward-data, the
 * forward of a transposed convolution). The bias gradient stays on our kernel.
 * The emulated driver implements these entry points from the definition (native/cuda_emu/vendor_emu.cc), so the
 * descriptors' argument order, the mode flag and the workspace plumbing are checked in every build (CuDnnTest).
 */
final class CuDnn {
    static final int NCHW = 0, FLOAT = 0, BFLOAT16 = 9, CONVOLUTION = 0, CROSS_CORRELATION = 1, FMA_MATH = 3, TENSOR_OP_MATH = 1;
    static final int FWD_ALGO = 1, BWD_DATA_ALGO = 1, BWD_FILTER_ALGO = 1;

    final String source;
    final long version;
    final boolean standIn;
    private final Cuda cu;
    private final MemorySegment handle;
    private final MethodHandle setStream;
    private MemorySegment boundStream = MemorySegment.NULL;   /* the stream the handle is bound to: the backend's (Cuda.stream) */
    private final MethodHandle createTensor, setTensor4d, createFilter, setFilter4d, createConv, setConv2d, setConvMath,
            fwdWs, bwdDataWs, bwdFilterWs, fwd, bwdData, bwdFilter, addTensor, errorString;
    final VendorLib lib;   /* the library's symbols and status checks (CuDnnAttention shares them) */
    private final MemorySegment scalars = Arena.ofAuto().allocate(16, 8);   /* alpha, beta (host pointers), 1, 1 */
    private final Map<Key, Descs> descs = new HashMap<>();
    private final Map<Key, Bf16Descs> bf16Descs = new HashMap<>();
    private final Map<Key, String> bf16Refused = new HashMap<>();
    final CuDnnAlgos algos;   /* the algorithm pick per geometry (LATENT_CUDNN_FIND) */

    /**
     * A convolution's shape as cuDNN's int32 dimensions take it, and its math type: FMA_MATH (exact fp32, the default)
     * or TENSOR_OP_MATH (TF32 tensor cores allowed, for --precision tf32).
     */
    record Key(int n, int c, int h, int w, int k, int r, int s, int oh, int ow, int strideH, int strideW, int padH, int padW, int mode,
               int math) {
        Key(int n, int c, int h, int w, int k, int r, int s, int oh, int ow, int strideH, int strideW, int padH, int padW, int mode) {
            this(n, c, h, w, k, r, s, oh, ow, strideH, strideW, padH, padW, mode, FMA_MATH);
        }
    }

    private record Descs(MemorySegment x, MemorySegment w, MemorySegment y, MemorySegment conv, MemorySegment biasK, MemorySegment biasC,
                         long fwdWs, long bwdDataWs, long bwdFilterWs) {}

    /** A geometry's PSEUDO_BFLOAT16_CONFIG descriptors: x, w, y bf16, compute float, CUDNN_TENSOR_OP_MATH. */
    private record Bf16Descs(MemorySegment x, MemorySegment w, MemorySegment y, MemorySegment conv, long fwdWs, long bwdDataWs,
                             long bwdFilterWs) {}

    CuDnn(Cuda cu, SymbolLookup lookup, String source) {
        this.cu = cu;
        this.source = source;
        lib = new VendorLib(lookup, "", "cuDNN 8 or 9 needed", this::statusName, true);
        MethodHandle create = bind(lib, "cudnnCreate", ADDRESS);
        setStream = bind(lib, "cudnnSetStream", ADDRESS, ADDRESS);
        MethodHandle getVersion = lib.function("cudnnGetVersion", FunctionDescriptor.of(JAVA_LONG));
        createTensor = bind(lib, "cudnnCreateTensorDescriptor", ADDRESS);
        setTensor4d = bind(lib, "cudnnSetTensor4dDescriptor", ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT);
        createFilter = bind(lib, "cudnnCreateFilterDescriptor", ADDRESS);
        setFilter4d = bind(lib, "cudnnSetFilter4dDescriptor", ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT);
        createConv = bind(lib, "cudnnCreateConvolutionDescriptor", ADDRESS);
        setConv2d = bind(lib, "cudnnSetConvolution2dDescriptor", ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT,
                JAVA_INT, JAVA_INT);
        setConvMath = bind(lib, "cudnnSetConvolutionMathType", ADDRESS, JAVA_INT);
        fwdWs = bind(lib, "cudnnGetConvolutionForwardWorkspaceSize", ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS);
        bwdDataWs = bind(lib, "cudnnGetConvolutionBackwardDataWorkspaceSize", ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS);
        bwdFilterWs = bind(lib, "cudnnGetConvolutionBackwardFilterWorkspaceSize", ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT,
                ADDRESS);
        fwd = bind(lib, "cudnnConvolutionForward", ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS, JAVA_INT, JAVA_LONG,
                JAVA_LONG, ADDRESS, ADDRESS, JAVA_LONG);
        bwdData = bind(lib, "cudnnConvolutionBackwardData", ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS, JAVA_INT,
                JAVA_LONG, JAVA_LONG, ADDRESS, ADDRESS, JAVA_LONG);
        bwdFilter = bind(lib, "cudnnConvolutionBackwardFilter", ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS,
                JAVA_INT, JAVA_LONG, JAVA_LONG, ADDRESS, ADDRESS, JAVA_LONG);
        addTensor = bind(lib, "cudnnAddTensor", ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS, JAVA_LONG);
        errorString = lib.optional("cudnnGetErrorString", FunctionDescriptor.of(ADDRESS, JAVA_INT));
        standIn = lib.standIn;
        try {
            version = (long) getVersion.invokeExact();
        } catch (Throwable t) {
            throw new IllegalStateException("cudnnGetVersion", t);
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(ADDRESS);
            cu.makeCurrent();
            check("cudnnCreate", create, p);
            handle = p.get(ADDRESS, 0);
            check("cudnnSetStream", setStream, handle, MemorySegment.NULL);
        }
        algos = new CuDnnAlgos(cu, lib, handle);
        scalars.set(JAVA_FLOAT, 8, 1f);
        scalars.set(JAVA_FLOAT, 12, 1f);
    }

    /** The cudnnHandle_t (for the backend graph API's HANDLE attributes: CuDnnAttention). */
    /** The handle, bound to the backend's current stream first (CuDnnAttention executes on it: CUDA graphs capture it). */
    synchronized MemorySegment handle() {
        followStream();
        return handle;
    }

    /** cudnnGetVersion: 9.x as major 10000 + minor 100 + patch, 8.x as major 1000 + minor 100 + patch. */
    String describe() {
        String v = version >= 90000 ? version / 10000 + "." + version % 10000 / 100 + "." + version % 100
                : version / 1000 + "." + version % 1000 / 100 + "." + version % 100;
        return (standIn ? "the emulated driver's CPU stand-in for cuDNN " : "cuDNN ") + v + " (" + source + ")";
    }

    private static MethodHandle bind(VendorLib lib, String name, MemoryLayout... args) { return lib.status(name, args); }

    /** True when every size fits cuDNN's int32 dimensions. */
    static boolean fits(long... v) {
        for (long x : v) if (x > Integer.MAX_VALUE) return false;
        return true;
    }

    private Descs descs(Key g) {
        Descs d = descs.get(g);
        if (d != null) return d;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(ADDRESS), sz = a.allocate(JAVA_LONG);
            MemorySegment x = tensor(a, FLOAT, g.n, g.c, g.h, g.w), y = tensor(a, FLOAT, g.n, g.k, g.oh, g.ow);
            MemorySegment bk = tensor(a, FLOAT, 1, g.k, 1, 1), bc = tensor(a, FLOAT, 1, g.c, 1, 1);
            check("cudnnCreateFilterDescriptor", createFilter, p);
            MemorySegment w = p.get(ADDRESS, 0);
            check("cudnnSetFilter4dDescriptor", setFilter4d, w, FLOAT, NCHW, g.k, g.c, g.r, g.s);
            check("cudnnCreateConvolutionDescriptor", createConv, p);
            MemorySegment conv = p.get(ADDRESS, 0);
            check("cudnnSetConvolution2dDescriptor", setConv2d, conv, g.padH, g.padW, g.strideH, g.strideW, 1, 1, g.mode, FLOAT);
            check("cudnnSetConvolutionMathType", setConvMath, conv, g.math);
            check("cudnnGetConvolutionForwardWorkspaceSize", fwdWs, handle, x, w, conv, y, FWD_ALGO, sz);
            long f = sz.get(JAVA_LONG, 0);
            check("cudnnGetConvolutionBackwardDataWorkspaceSize", bwdDataWs, handle, w, y, conv, x, BWD_DATA_ALGO, sz);
            long bd = sz.get(JAVA_LONG, 0);
            check("cudnnGetConvolutionBackwardFilterWorkspaceSize", bwdFilterWs, handle, x, y, conv, w, BWD_FILTER_ALGO, sz);
            long bf = sz.get(JAVA_LONG, 0);
            d = new Descs(x, w, y, conv, bk, bc, f, bd, bf);
        }
        descs.put(g, d);
        return d;
    }

    private MemorySegment tensor(Arena a, int dtype, int n, int c, int h, int w) {
        MemorySegment p = a.allocate(ADDRESS);
        check("cudnnCreateTensorDescriptor", createTensor, p);
        MemorySegment t = p.get(ADDRESS, 0);
        check("cudnnSetTensor4dDescriptor", setTensor4d, t, NCHW, dtype, n, c, h, w);
        return t;
    }

    // ---- bf16 (--precision bf16 on CUDA, h-cudaprec2): cuDNN's PSEUDO_BFLOAT16_CONFIG ----
    // x, w and y descriptors CUDNN_DATA_BFLOAT16, compute type CUDNN_DATA_FLOAT, CUDNN_TENSOR_OP_MATH, the same fixed
    // algorithms. The legacy API has no bf16-in / fp32-out configuration, so the fp32 operands are converted to bf16 on
    // the device (ltk_f32_to_bf16, to nearest even), cuDNN writes a bf16 result (fp32 accumulation, rounded once), and
    // ltk_bf16_to_f32_acc widens it into the fp32 tensor (a weight gradient is added there in fp32 when accumulating,
    // never in bf16). The bias is added afterwards in fp32 (cudnnAddTensor on the float descriptors). Where cuDNN refuses
    // the configuration for a geometry (a descriptor, workspace query or call answering NOT_SUPPORTED: no bf16 engine
    // for it on this GPU / version) the refusal is remembered and the caller runs the fp32 route on rounded operands.

    /** Null when cuDNN takes geometry g in bf16, else why not (asked once per geometry and remembered). */
    synchronized String bf16Refusal(Key g) {
        bf16Descs(g);
        return bf16Refused.get(g);
    }

    private Bf16Descs bf16Descs(Key g) {
        Bf16Descs d = bf16Descs.get(g);
        if (d != null || bf16Refused.containsKey(g)) return d;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(ADDRESS), sz = a.allocate(JAVA_LONG);
            MemorySegment x = tensor(a, BFLOAT16, g.n, g.c, g.h, g.w), y = tensor(a, BFLOAT16, g.n, g.k, g.oh, g.ow);
            check("cudnnCreateFilterDescriptor", createFilter, p);
            MemorySegment w = p.get(ADDRESS, 0);
            check("cudnnSetFilter4dDescriptor", setFilter4d, w, BFLOAT16, NCHW, g.k, g.c, g.r, g.s);
            check("cudnnCreateConvolutionDescriptor", createConv, p);
            MemorySegment conv = p.get(ADDRESS, 0);
            check("cudnnSetConvolution2dDescriptor", setConv2d, conv, g.padH, g.padW, g.strideH, g.strideW, 1, 1, g.mode, FLOAT);
            check("cudnnSetConvolutionMathType", setConvMath, conv, TENSOR_OP_MATH);
            check("cudnnGetConvolutionForwardWorkspaceSize", fwdWs, handle, x, w, conv, y, FWD_ALGO, sz);
            long f = sz.get(JAVA_LONG, 0);
            check("cudnnGetConvolutionBackwardDataWorkspaceSize", bwdDataWs, handle, w, y, conv, x, BWD_DATA_ALGO, sz);
            long bd = sz.get(JAVA_LONG, 0);
            check("cudnnGetConvolutionBackwardFilterWorkspaceSize", bwdFilterWs, handle, x, y, conv, w, BWD_FILTER_ALGO, sz);
            long bf = sz.get(JAVA_LONG, 0);
            d = new Bf16Descs(x, w, y, conv, f, bd, bf);
        } catch (NativeException e) {
            bf16Refused.put(g, e.getMessage());
            return null;
        }
        bf16Descs.put(g, d);
        return d;
    }

    /** Test hook (CuDnnFindTest): pass p's fp32 descriptors of geometry g, in the pass's argument order, without buffers. */
    synchronized CuDnnAlgos.Call descriptorsOf(CuDnnAlgos.Pass p, Key g) {
        Descs d = descs(g);
        return switch (p) {
            case FORWARD -> new CuDnnAlgos.Call(d.x, d.w, d.conv, d.y, null, null, 0);
            case BACKWARD_DATA -> new CuDnnAlgos.Call(d.w, d.y, d.conv, d.x, null, null, 0);
            case BACKWARD_FILTER -> new CuDnnAlgos.Call(d.x, d.y, d.conv, d.w, null, null, 0);
        };
    }

    /** Test hook (CuDnnFindTest): cudnnGet*WorkspaceSize of algorithm algo of pass p on g (fp32), or minus the refusal's status. */
    long workspaceSize(CuDnnAlgos.Pass p, Key g, int algo) { return algos.workspaceOf(p, descriptorsOf(p, g), algo); }

    /** Test hook (CuDnnTest): marks geometry g as refused in bf16, as if cuDNN had answered NOT_SUPPORTED for it. */
    synchronized void refuseBf16(Key g, String why) { bf16Refused.put(g, why); }

    /** cuDNN's NOT_SUPPORTED family: 9 in cuDNN 8, 3000-3999 in cuDNN 9 (sub-codes included). */
    static boolean notSupported(int rc) { return rc == 9 || (rc >= 3000 && rc < 4000); }

    /** Runs a bf16 convolution call: false (the refusal remembered) when cuDNN answers NOT_SUPPORTED, throws on other errors. */
    private boolean runBf16(Key g, String name, MethodHandle h, Object... args) {
        try {
            check(name, h, args);
            return true;
        } catch (NativeException e) {
            if (!notSupported(e.code())) throw e;
            bf16Refused.put(g, e.getMessage());
            return false;
        }
    }

    private DeviceBuffer halves(long n) { return cu.alloc(Math.max(n, 1) * 2); }

    private static long numel(int... d) {
        long n = 1;
        for (int v : d) n *= v;
        return n;
    }

    /** One bf16 call of cuDNN given its converted operands and its bf16 output (it picks its algorithm and workspace); false: not served. */
    private interface Bf16Call { boolean run(DeviceBuffer a16, DeviceBuffer b16, DeviceBuffer out16); }

    /**
     * One bf16 pass: a (na elements) and b (nb) converted to bf16 on the device, alpha 1 and beta 0, the call, then its bf16
     * result (nOut) widened into the fp32 out (added there in fp32 when accumulate); scratch from the caching allocator.
     * False (nothing written to out) when cuDNN refused the call.
     */
    private boolean bf16Pass(DeviceBuffer a, long na, DeviceBuffer b, long nb, DeviceBuffer out, long nOut, boolean accumulate, Bf16Call call) {
        cu.makeCurrent();
        followStream();
        try (DeviceBuffer a16 = halves(na); DeviceBuffer b16 = halves(nb); DeviceBuffer out16 = halves(nOut)) {
            CudaKernels.toBf16(cu, na, a, a16);
            CudaKernels.toBf16(cu, nb, b, b16);
            if (!call.run(a16, b16, out16)) return false;
            CudaKernels.fromBf16(cu, nOut, out16, out, accumulate);
        }
        return true;
    }

    /** y = conv(x, w) (+ bias (K)) with bf16 operands and fp32 accumulation (x, w, y, bias fp32 buffers); false: not served. */
    synchronized boolean forwardBf16(Key g, DeviceBuffer x, DeviceBuffer w, DeviceBuffer bias, DeviceBuffer y) {
        Bf16Descs d = bf16Descs(g);
        if (d == null) return false;
        long nx = numel(g.n, g.c, g.h, g.w), nw = numel(g.k, g.c, g.r, g.s), ny = numel(g.n, g.k, g.oh, g.ow);
        if (!bf16Pass(x, nx, w, nw, y, ny, false, (x16, w16, y16) -> {
            CuDnnAlgos.Algo al = algos.pick(CuDnnAlgos.Pass.FORWARD, g, true, TENSOR_OP_MATH,
                    new CuDnnAlgos.Call(d.x, d.w, d.conv, d.y, x16, w16, ny * 2), d.fwdWs);
            try (DeviceBuffer ws = workspace(al.workspace())) {
                setAlphaBeta(0f);
                return runBf16(g, "cudnnConvolutionForward (bf16)", fwd, handle, alpha(), d.x, x16.address(), d.w, w16.address(), d.conv,
                        al.algo(), addr(ws), al.workspace(), beta(), d.y, y16.address());
            }
        }))
            return false;
        if (bias != null) {
            Descs f = descs(g);
            check("cudnnAddTensor", addTensor, handle, one(), f.biasK, bias.address(), one(), f.y, y.address());
        }
        return true;
    }

    /** dx = conv^T(dy, w) (+ bias (C)) with bf16 operands, fp32 accumulation; false: not served. */
    synchronized boolean backwardDataBf16(Key g, DeviceBuffer dy, DeviceBuffer w, DeviceBuffer bias, DeviceBuffer dx) {
        Bf16Descs d = bf16Descs(g);
        if (d == null) return false;
        long nx = numel(g.n, g.c, g.h, g.w), nw = numel(g.k, g.c, g.r, g.s), ny = numel(g.n, g.k, g.oh, g.ow);
        if (!bf16Pass(dy, ny, w, nw, dx, nx, false, (dy16, w16, dx16) -> {
            CuDnnAlgos.Algo al = algos.pick(CuDnnAlgos.Pass.BACKWARD_DATA, g, true, TENSOR_OP_MATH,
                    new CuDnnAlgos.Call(d.w, d.y, d.conv, d.x, w16, dy16, nx * 2), d.bwdDataWs);
            try (DeviceBuffer ws = workspace(al.workspace())) {
                setAlphaBeta(0f);
                return runBf16(g, "cudnnConvolutionBackwardData (bf16)", bwdData, handle, alpha(), d.w, w16.address(), d.y, dy16.address(),
                        d.conv, al.algo(), addr(ws), al.workspace(), beta(), d.x, dx16.address());
            }
        }))
            return false;
        if (bias != null) {
            Descs f = descs(g);
            check("cudnnAddTensor", addTensor, handle, one(), f.biasC, bias.address(), one(), f.x, dx.address());
        }
        return true;
    }

    /** dw (=|+=, in fp32) the filter gradient of x and dy with bf16 operands, fp32 accumulation; false: not served. */
    synchronized boolean backwardFilterBf16(Key g, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dw, boolean accumulate) {
        Bf16Descs d = bf16Descs(g);
        if (d == null) return false;
        long nx = numel(g.n, g.c, g.h, g.w), nw = numel(g.k, g.c, g.r, g.s), ny = numel(g.n, g.k, g.oh, g.ow);
        return bf16Pass(x, nx, dy, ny, dw, nw, accumulate, (x16, dy16, dw16) -> {
            CuDnnAlgos.Algo al = algos.pick(CuDnnAlgos.Pass.BACKWARD_FILTER, g, true, TENSOR_OP_MATH,
                    new CuDnnAlgos.Call(d.x, d.y, d.conv, d.w, x16, dy16, nw * 2), d.bwdFilterWs);
            try (DeviceBuffer ws = workspace(al.workspace())) {
                setAlphaBeta(0f);
                return runBf16(g, "cudnnConvolutionBackwardFilter (bf16)", bwdFilter, handle, alpha(), d.x, x16.address(), d.y,
                        dy16.address(), d.conv, al.algo(), addr(ws), al.workspace(), beta(), d.w, dw16.address());
            }
        });
    }

    /**
     * Test hook (CuDnnTest): one forward call with descriptors of the given data types (x, w, y) and compute type, on raw
     * device buffers, alpha 1, beta 0, cross-correlation, FMA math unless tensorOp; returns cuDNN's status (0: success),
     * the descriptors destroyed-free (kept: a test makes a few). Any set-up failure is returned as its status too.
     */
    int rawForward(Key g, int xType, int wType, int yType, int computeType, DeviceBuffer x, DeviceBuffer w, DeviceBuffer y) {
        cu.makeCurrent();
        try (Arena a = Arena.ofConfined(); DeviceBuffer ws = workspace(1 << 16)) {
            MemorySegment p = a.allocate(ADDRESS);
            MemorySegment xd = tensor(a, xType, g.n, g.c, g.h, g.w), yd = tensor(a, yType, g.n, g.k, g.oh, g.ow);
            check("cudnnCreateFilterDescriptor", createFilter, p);
            MemorySegment wd = p.get(ADDRESS, 0);
            check("cudnnSetFilter4dDescriptor", setFilter4d, wd, wType, NCHW, g.k, g.c, g.r, g.s);
            check("cudnnCreateConvolutionDescriptor", createConv, p);
            MemorySegment conv = p.get(ADDRESS, 0);
            check("cudnnSetConvolution2dDescriptor", setConv2d, conv, g.padH, g.padW, g.strideH, g.strideW, 1, 1, g.mode, computeType);
            check("cudnnSetConvolutionMathType", setConvMath, conv, g.math);
            synchronized (this) {
                followStream();
                scalars.set(JAVA_FLOAT, 0, 1f);
                scalars.set(JAVA_FLOAT, 4, 0f);
                return (int) fwd.invokeWithArguments(handle, alpha(), xd, x.address(), wd, w.address(), conv, FWD_ALGO, addr(ws), 1L << 16, beta(), yd,
                        y.address());
            }
        } catch (NativeException e) {
            return e.code();
        } catch (Throwable t) {
            throw new IllegalStateException("rawForward", t);
        }
    }

    private void setAlphaBeta(float beta) {
        scalars.set(JAVA_FLOAT, 0, 1f);
        scalars.set(JAVA_FLOAT, 4, beta);
    }

    private MemorySegment alpha() { return scalars.asSlice(0, 4); }
    private MemorySegment beta() { return scalars.asSlice(4, 4); }
    private MemorySegment one() { return scalars.asSlice(8, 4); }

    /** A workspace of {@code bytes} from our allocator (null for none); closed after the call: stream-ordered reuse is safe. */
    private DeviceBuffer workspace(long bytes) { return bytes > 0 ? cu.alloc(bytes) : null; }

    private static long addr(DeviceBuffer b) { return b == null ? 0 : b.address(); }

    /** y = conv(x, w) (+ bias (K) when not null). */
    /**
     * Binds the handle to the backend's stream when it changed (Cuda.useCaptureStream: CUDA graphs capture our calls).
     * Also called by CuDnnAttention before each SDPA execution, which shares this handle.
     */
    synchronized void followStream() {
        MemorySegment s = cu.stream();
        if (s.equals(boundStream)) return;
        check("cudnnSetStream", setStream, handle, s);
        boundStream = s;
    }

    synchronized void forward(Key g, DeviceBuffer x, DeviceBuffer w, DeviceBuffer bias, DeviceBuffer y) {
        Descs d = descs(g);
        cu.makeCurrent();
        followStream();
        CuDnnAlgos.Algo a = algos.pick(CuDnnAlgos.Pass.FORWARD, g, false, g.math, new CuDnnAlgos.Call(d.x, d.w, d.conv, d.y, x, w,
                numel(g.n, g.k, g.oh, g.ow) * 4), d.fwdWs);
        setAlphaBeta(0f);
        try (DeviceBuffer ws = workspace(a.workspace())) {
            check("cudnnConvolutionForward", fwd, handle, alpha(), d.x, x.address(), d.w, w.address(), d.conv, a.algo(), addr(ws), a.workspace(),
                    beta(), d.y, y.address());
        }
        if (bias != null) check("cudnnAddTensor", addTensor, handle, one(), d.biasK, bias.address(), one(), d.y, y.address());
    }

    /** dx = conv^T(dy, w) (+ bias (C) when not null: a transposed convolution's forward). */
    synchronized void backwardData(Key g, DeviceBuffer dy, DeviceBuffer w, DeviceBuffer bias, DeviceBuffer dx) {
        Descs d = descs(g);
        cu.makeCurrent();
        followStream();
        CuDnnAlgos.Algo a = algos.pick(CuDnnAlgos.Pass.BACKWARD_DATA, g, false, g.math, new CuDnnAlgos.Call(d.w, d.y, d.conv, d.x, w, dy,
                numel(g.n, g.c, g.h, g.w) * 4), d.bwdDataWs);
        setAlphaBeta(0f);
        try (DeviceBuffer ws = workspace(a.workspace())) {
            check("cudnnConvolutionBackwardData", bwdData, handle, alpha(), d.w, w.address(), d.y, dy.address(), d.conv, a.algo(),
                    addr(ws), a.workspace(), beta(), d.x, dx.address());
        }
        if (bias != null) check("cudnnAddTensor", addTensor, handle, one(), d.biasC, bias.address(), one(), d.x, dx.address());
    }

    /** dw (=|+=) the filter gradient of x and dy. */
    synchronized void backwardFilter(Key g, DeviceBuffer x, DeviceBuffer dy, DeviceBuffer dw, boolean accumulate) {
        Descs d = descs(g);
        cu.makeCurrent();
        followStream();
        CuDnnAlgos.Algo a = algos.pick(CuDnnAlgos.Pass.BACKWARD_FILTER, g, false, g.math, new CuDnnAlgos.Call(d.x, d.y, d.conv, d.w, x, dy,
                numel(g.k, g.c, g.r, g.s) * 4), d.bwdFilterWs);
        setAlphaBeta(accumulate ? 1f : 0f);
        try (DeviceBuffer ws = workspace(a.workspace())) {
            check("cudnnConvolutionBackwardFilter", bwdFilter, handle, alpha(), d.x, x.address(), d.y, dy.address(), d.conv,
                    a.algo(), addr(ws), a.workspace(), beta(), d.w, dw.address());
        }
    }

    private void check(String name, MethodHandle h, Object... args) { lib.check(name, h, args); }

    /** cudnnGetErrorString's text (and the stand-in's detail). */
    String describeStatus(int rc) { return lib.describeStatus(rc); }

    private String statusName(int rc) {
        String s = VendorLib.text(errorString, rc);
        return s.isEmpty() ? "cudnnStatus_t " + rc : s;
    }
}
