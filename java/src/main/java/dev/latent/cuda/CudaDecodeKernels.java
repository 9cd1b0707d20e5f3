package dev.latent.cuda;

/**
 * Typed launches of kernels/attention_decode/attention_decode.cu (GPT decoding on the device: the KV cache append,
 * decode attention, the greedy argmax), with the grids that file's header specifies and its emulation test uses.
 * Each launcher checks every buffer's extent before the launch (IllegalArgumentException naming the operand): the
 * kernels trust them. A layer's cache is head-major, K and V each (nh, ctx, hs).
 */
public final class CudaDecodeKernels {
    private CudaDecodeKernels() {}

    /** Largest head size the decode kernel takes (AD_MAXHS). */
    public static final long MAX_HS = Ltk.AD_MAXHS;
    /** Dynamic shared memory a launch may use without opting in (the device's default 48 KiB). */
    static final long MAX_SMEM = 48 * 1024;

    /** Dynamic shared memory of a decode-attention launch whose last row sees {@code maxLen} keys. */
    public static long sharedBytes(long hs, long maxLen) { return 4 * (hs + maxLen + Ltk.AD_SMEM_EXTRA); }

    /**
     * The longest context the decode kernel serves at head size {@code hs} (its scores live in shared memory), so a
     * caller can refuse a model up front.
     */
    public static long maxContext(long hs) { return MAX_SMEM / 4 - hs - Ltk.AD_SMEM_EXTRA; }

    private static void check(long rows, long nh, long hs, long ctx, long p0, String op) {
        if (rows < 1 || nh < 1 || hs < 1 || ctx < 1 || p0 < 0 || p0 + rows > ctx)
            throw new IllegalArgumentException(op + ": rows=" + rows + ", nh=" + nh + ", hs=" + hs + ", p0=" + p0 + " must fit context " + ctx);
    }

    /** The K and V thirds of {@code rows} projection rows (qkv: rows x ld, q | k | v) into the caches at p0 ... */
    public static void kvAppend(Cuda cu, long rows, long nh, long hs, long ctx, long p0, DeviceBuffer qkv, long ld, DeviceBuffer kc, DeviceBuffer vc) {
        check(rows, nh, hs, ctx, p0, "kvAppend");
        long c = nh * hs;
        if (ld < 3 * c) throw new IllegalArgumentException("kvAppend: ld=" + ld + " < 3 nh hs = " + 3 * c);
        CudaKernels.need(qkv, 4 * ((rows - 1) * ld + 3 * c), "kvAppend", "qkv");
        CudaKernels.need(kc, 4 * nh * ctx * hs, "kvAppend", "K cache");
        CudaKernels.need(vc, 4 * nh * ctx * hs, "kvAppend", "V cache");
        Ltk.ltk_kv_append(cu, CudaKernels.dim(CudaKernels.strideBlocks(rows * c)), CudaKernels.dim(256), 0, rows, nh, hs, ctx, p0, qkv, ld, kc, vc);
    }

    /** {@code o[r, h] = softmax(scale q[r, h] . K[h, j]) V[h, j]} over {@code j <= p0 + r}, for {@code r < rows} (q: rows x ldq, o: rows x ldo). */
    public static void attention(Cuda cu, long rows, long nh, long hs, long ctx, long p0, float scale, DeviceBuffer q, long ldq,
                                 DeviceBuffer kc, DeviceBuffer vc, DeviceBuffer o, long ldo) {
        check(rows, nh, hs, ctx, p0, "decodeAttention");
        long c = nh * hs;
        if (hs > MAX_HS) throw new IllegalArgumentException("decodeAttention: head size " + hs + " > " + MAX_HS);
        if (ldq < c || ldo < c) throw new IllegalArgumentException("decodeAttention: ldq=" + ldq + ", ldo=" + ldo + " < nh hs = " + c);
        if (!Float.isFinite(scale)) throw new IllegalArgumentException("decodeAttention: scale " + scale + " must be finite");
        long smem = sharedBytes(hs, p0 + rows);
        if (smem > MAX_SMEM)
            throw new IllegalArgumentException("decodeAttention: " + (p0 + rows) + " keys at head size " + hs + " need " + smem
                    + " bytes of shared memory, more than " + MAX_SMEM + " (context up to " + maxContext(hs) + ")");
        CudaKernels.need(q, 4 * ((rows - 1) * ldq + c), "decodeAttention", "q");
        CudaKernels.need(o, 4 * ((rows - 1) * ldo + c), "decodeAttention", "o");
        CudaKernels.need(kc, 4 * nh * ctx * hs, "decodeAttention", "K cache");
        CudaKernels.need(vc, 4 * nh * ctx * hs, "decodeAttention", "V cache");
        Ltk.ltk_attention_decode(cu, CudaKernels.dim(rows * nh), CudaKernels.dim(Ltk.AD_THREADS), (int) smem, rows, nh, hs, ctx, p0, scale,
                q, ldq, kc, vc, o, ldo);
    }

    /** out[r] (int32) = the first index of row r's maximum of x (rows x n), NaN never chosen (Sampling.pick's greedy rule). */
    public static void argmaxRows(Cuda cu, long rows, long n, DeviceBuffer x, DeviceBuffer out) {
        if (rows < 1 || n < 1) throw new IllegalArgumentException("argmaxRows: rows=" + rows + ", n=" + n + " must be >= 1");
        CudaKernels.need(x, 4 * rows * n, "argmaxRows", "x");
        CudaKernels.need(out, 4 * rows, "argmaxRows", "out");
        Ltk.ltk_argmax_rows(cu, CudaKernels.dim(rows), CudaKernels.dim(Ltk.AD_THREADS), 0, rows, n, x, out);
    }
}
