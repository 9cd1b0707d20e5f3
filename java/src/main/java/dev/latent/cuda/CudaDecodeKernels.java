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
        checkAttention(hs, c, ldq, ldo, scale, p0 + rows, "decodeAttention");
        long smem = sharedBytes(hs, p0 + rows);
        CudaKernels.need(q, 4 * ((rows - 1) * ldq + c), "decodeAttention", "q");
        CudaKernels.need(o, 4 * ((rows - 1) * ldo + c), "decodeAttention", "o");
        CudaKernels.need(kc, 4 * nh * ctx * hs, "decodeAttention", "K cache");
        CudaKernels.need(vc, 4 * nh * ctx * hs, "decodeAttention", "V cache");
        Ltk.ltk_attention_decode(cu, CudaKernels.dim(rows * nh), CudaKernels.dim(Ltk.AD_THREADS), (int) smem, rows, nh, hs, ctx, p0, scale,
                q, ldq, kc, vc, o, ldo);
    }

    /**
     * The batched append: row r of {@code qkv} (rows x ld, q | k | v) into the pool's slot {@code slot[r]} at position
     * {@code pos[r]} (int32 device arrays of {@code rows}); K and V are pools of {@code slots} caches, each
     * (slots, nh, ctx, hs). The indices are device data the launcher cannot read: the caller checks them (a row outside
     * the pool is skipped by the kernel, never written out of bounds).
     */
    public static void kvAppendRows(Cuda cu, long rows, long nh, long hs, long ctx, long slots, DeviceBuffer slot, DeviceBuffer pos,
                                    DeviceBuffer qkv, long ld, DeviceBuffer kc, DeviceBuffer vc) {
        checkRows(rows, nh, hs, ctx, slots, "kvAppendRows");
        long c = nh * hs;
        if (ld < 3 * c) throw new IllegalArgumentException("kvAppendRows: ld=" + ld + " < 3 nh hs = " + 3 * c);
        CudaKernels.need(slot, 4 * rows, "kvAppendRows", "slot");
        CudaKernels.need(pos, 4 * rows, "kvAppendRows", "pos");
        CudaKernels.need(qkv, 4 * ((rows - 1) * ld + 3 * c), "kvAppendRows", "qkv");
        CudaKernels.need(kc, 4 * slots * nh * ctx * hs, "kvAppendRows", "K cache");
        CudaKernels.need(vc, 4 * slots * nh * ctx * hs, "kvAppendRows", "V cache");
        Ltk.ltk_kv_append_rows(cu, CudaKernels.dim(CudaKernels.strideBlocks(rows * c)), CudaKernels.dim(256), 0, rows, nh, hs, ctx, slots,
                slot, pos, qkv, ld, kc, vc);
    }

    /**
     * The batched decode attention: {@code o[r, h] = softmax(scale q[r, h] . K[slot[r], h, j]) V[slot[r], h, j]} over
     * {@code j <= pos[r]}; {@code maxLen} bounds every {@code pos[r] + 1} (it sizes the shared memory). Each row runs the
     * single-sequence kernel's code on its own slot, so its bits do not depend on the other rows. The caller checks the
     * indices (see {@link #kvAppendRows}).
     */
    public static void attentionRows(Cuda cu, long rows, long nh, long hs, long ctx, long slots, long maxLen, DeviceBuffer slot,
                                     DeviceBuffer pos, float scale, DeviceBuffer q, long ldq, DeviceBuffer kc, DeviceBuffer vc,
                                     DeviceBuffer o, long ldo) {
        checkRows(rows, nh, hs, ctx, slots, "decodeAttentionRows");
        if (maxLen < 1 || maxLen > ctx) throw new IllegalArgumentException("decodeAttentionRows: maxLen " + maxLen + " outside [1, " + ctx + "]");
        long c = nh * hs;
        checkAttention(hs, c, ldq, ldo, scale, maxLen, "decodeAttentionRows");
        CudaKernels.need(slot, 4 * rows, "decodeAttentionRows", "slot");
        CudaKernels.need(pos, 4 * rows, "decodeAttentionRows", "pos");
        CudaKernels.need(q, 4 * ((rows - 1) * ldq + c), "decodeAttentionRows", "q");
        CudaKernels.need(o, 4 * ((rows - 1) * ldo + c), "decodeAttentionRows", "o");
        CudaKernels.need(kc, 4 * slots * nh * ctx * hs, "decodeAttentionRows", "K cache");
        CudaKernels.need(vc, 4 * slots * nh * ctx * hs, "decodeAttentionRows", "V cache");
        Ltk.ltk_attention_decode_rows(cu, CudaKernels.dim(rows * nh), CudaKernels.dim(Ltk.AD_THREADS), (int) sharedBytes(hs, maxLen), rows, nh,
                hs, ctx, slots, maxLen, slot, pos, scale, q, ldq, kc, vc, o, ldo);
    }

    private static void checkRows(long rows, long nh, long hs, long ctx, long slots, String op) {
        if (rows < 1 || nh < 1 || hs < 1 || ctx < 1 || slots < 1)
            throw new IllegalArgumentException(op + ": rows=" + rows + ", nh=" + nh + ", hs=" + hs + ", ctx=" + ctx + ", slots=" + slots + " must be >= 1");
    }

    /** The head size, strides, scale and shared memory of a decode-attention launch whose longest row sees maxLen keys. */
    private static void checkAttention(long hs, long c, long ldq, long ldo, float scale, long maxLen, String op) {
        if (hs > MAX_HS) throw new IllegalArgumentException(op + ": head size " + hs + " > " + MAX_HS);
        if (ldq < c || ldo < c) throw new IllegalArgumentException(op + ": ldq=" + ldq + ", ldo=" + ldo + " < nh hs = " + c);
        if (!Float.isFinite(scale)) throw new IllegalArgumentException(op + ": scale " + scale + " must be finite");
        long smem = sharedBytes(hs, maxLen);
        if (smem > MAX_SMEM)
            throw new IllegalArgumentException(op + ": " + maxLen + " keys at head size " + hs + " need " + smem
                    + " bytes of shared memory, more than " + MAX_SMEM + " (context up to " + maxContext(hs) + ")");
    }

    /** out[r] (int32) = the first index of row r's maximum of x (rows x n), NaN never chosen (Sampling.pick's greedy rule). */
    public static void argmaxRows(Cuda cu, long rows, long n, DeviceBuffer x, DeviceBuffer out) {
        if (rows < 1 || n < 1) throw new IllegalArgumentException("argmaxRows: rows=" + rows + ", n=" + n + " must be >= 1");
        CudaKernels.need(x, 4 * rows * n, "argmaxRows", "x");
        CudaKernels.need(out, 4 * rows, "argmaxRows", "out");
        Ltk.ltk_argmax_rows(cu, CudaKernels.dim(rows), CudaKernels.dim(Ltk.AD_THREADS), 0, rows, n, x, out);
    }
}
