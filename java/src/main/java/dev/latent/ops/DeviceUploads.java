package dev.latent.ops;

import dev.latent.cuda.Cuda;
import dev.latent.cuda.DeviceBuffer;
import dev.latent.cuda.Staging;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * Int32 host data on the device for {@link CudaBackend} and the CUDA-only entries of {@link Kernels}: token ids,
 * targets, the embedding backward's grouping of the ids, gradient-norm segment tables. Split out of {@link Kernels}
 * (it is CUDA's, not the boundary's); callers have checked the data (ids inside the vocabulary) before.
 */
final class DeviceUploads {
    private DeviceUploads() {}

    /*
     * Int32 host data on the device (token ids, targets, the embedding backward's grouping of the ids). A host-to-device
     * copy from pageable memory makes the host wait for the stream (a host synchronisation), so each upload is kept,
     * per thread, with a host copy of the bytes it came from (and goes up from page-locked staging, asynchronously: see
     * dev.latent.cuda.Staging): a later call with equal bytes (the same batch's ids in the
     * embedding forward and backward, its targets in the loss) reuses the device copy without copying again. An upload
     * is never written by a kernel, so reuse is exact; the comparison is a host memcmp of the int32 data. stageTokens
     * puts a batch's ids, targets and id grouping in ONE copy. The last STAGED_KEEP uploads are kept; an older one goes
     * back to the allocator (stream-ordered, so a queued kernel still reading it is safe).
     */
    private static final int STAGED_KEEP = 8;

    /** One upload: the root device buffer, and the entries (kind, vocabulary, host bytes, slice) it serves. */
    private record Upload(DeviceBuffer root, java.util.List<Staged> entries) {}

    private record Staged(int kind, long vocab, int[] host, DeviceBuffer dev) {}

    private static final int KIND_INTS = 0, KIND_GROUPS = 1, KIND_LONGS = 2;
    private static final ThreadLocal<java.util.ArrayDeque<Upload>> UPLOADS = ThreadLocal.withInitial(java.util.ArrayDeque::new);

    private static DeviceBuffer lookup(int kind, long vocab, int[] host) {
        java.util.ArrayDeque<Upload> q = UPLOADS.get();
        for (Upload u : q)
            for (Staged e : u.entries)
                if (e.kind == kind && e.vocab == vocab && Arrays.equals(e.host, host) && u.root.isAlive()) {
                    if (Cuda.get().capturing()) PINNED.get().add(u.root);   // a CUDA graph reads it on every replay: keep it
                    if (q.peekFirst() != u) {   // most recently used first: what every step uses (a segment table) stays
                        q.remove(u);
                        q.addFirst(u);
                    }
                    return e.dev;
                }
        return null;
    }

    /**
     * The device copy of {@code v} (int64, 8-byte aligned): a kept upload of equal values, or a new one, asynchronous
     * from page-locked staging (a gradient-norm segment table: the same every step, so uploaded once).
     */
    static DeviceBuffer deviceLongs(long[] v) {
        if (v.length > (Integer.MAX_VALUE - 8) / 2) throw new IllegalArgumentException(v.length + " int64 values: too many to upload at once");
        int[] w = new int[2 * v.length];
        for (int i = 0; i < v.length; i++) { w[2 * i] = (int) v[i]; w[2 * i + 1] = (int) (v[i] >>> 32); }   // little-endian words
        DeviceBuffer d = lookup(KIND_LONGS, 0, w);
        return d != null ? d : upload(new int[] {KIND_LONGS}, new long[] {0}, new int[][] {w}, new int[][] {w})[0];
    }

    /**
     * Uploads the int arrays in one host-to-device copy and registers each as (kinds[i], vocabs[i], keys[i]): the key
     * is the data itself for plain ints, the ids for their grouping. Returns the slices.
     */
    private static DeviceBuffer[] upload(int[] kinds, long[] vocabs, int[][] keys, int[][] arrays) {
        long total = 0;
        for (int[] a : arrays) total += Math.max(1, a.length);
        DeviceBuffer root = Cuda.get().alloc(4 * total);
        DeviceBuffer[] out = new DeviceBuffer[arrays.length];
        java.util.List<Staged> entries = new java.util.ArrayList<>();
        long at = 0;
        for (int i = 0; i < arrays.length; i++) {
            int len = Math.max(1, arrays[i].length);
            out[i] = root.slice(at * 4, len * 4L);
            entries.add(new Staged(kinds[i], vocabs[i], keys[i].clone(), out[i]));
            at += len;
        }
        Staging.upload(root, 4 * total, h -> {   // from page-locked staging, asynchronously (dev.latent.cuda.Staging)
            long o = 0;
            for (int[] a : arrays) {
                MemorySegment.copy(a, 0, h, JAVA_INT, o * 4, a.length);
                o += Math.max(1, a.length);
            }
        });
        java.util.ArrayDeque<Upload> q = UPLOADS.get();
        q.addFirst(new Upload(root, entries));
        evict(q);
        return out;
    }

    /* Uploads a captured step read (a CUDA graph replays their pointers): never evicted. */
    private static final ThreadLocal<java.util.Set<DeviceBuffer>> PINNED =
            ThreadLocal.withInitial(() -> java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>()));

    /** Keeps the last STAGED_KEEP uploads, besides the fixed token slot (stageFixed) and what a captured step read. */
    private static void evict(java.util.ArrayDeque<Upload> q) {
        Upload fixed = FIXED.get();
        java.util.Set<DeviceBuffer> pinned = PINNED.get();
        int keep = STAGED_KEEP;
        for (Upload u : q) if ((fixed != null && u.root == fixed.root) || pinned.contains(u.root)) keep++;
        while (q.size() > keep) {
            java.util.Iterator<Upload> it = q.descendingIterator();
            while (it.hasNext()) {
                Upload u = it.next();
                if ((fixed != null && u.root == fixed.root) || pinned.contains(u.root)) continue;
                it.remove();
                u.root.close();
                break;
            }
        }
    }

    /* This thread's fixed token slot: ids, targets and grouping always in the same device buffer (CUDA graphs). */
    private static final ThreadLocal<Upload> FIXED = new ThreadLocal<>();

    /**
     * stageTokens into this thread's fixed device buffer: the same addresses for every batch of the same n and vocabulary
     * (the grouping's size depends on (n, vocab) only), written by one asynchronous upload ordered after the work already
     * queued, and registered for the lookups of the embedding, the loss and the embedding backward. A CUDA graph
     * captured over a step that reads these buffers replays with each new batch staged here.
     */
    static void stageFixed(int[] id, int[] tg, long vocab) {
        int[] gr = groups(id, vocab);
        int[][] arrays = {id, tg, gr};
        long total = 0;
        for (int[] a : arrays) total += Math.max(1, a.length);
        java.util.ArrayDeque<Upload> q = UPLOADS.get();
        Upload f = FIXED.get();
        if (f == null || !f.root.isAlive() || f.root.byteSize() != 4 * total || f.entries.get(0).host.length != id.length
                || f.entries.get(2).vocab != vocab) {
            if (f != null) q.remove(f);   // an older slot of another shape goes back with the ordinary uploads' rules
            DeviceBuffer root = Cuda.get().alloc(4 * total);
            java.util.List<Staged> entries = new java.util.ArrayList<>();
            long at = 0;
            for (int i = 0; i < 3; i++) {
                int len = Math.max(1, arrays[i].length);
                entries.add(new Staged(i == 2 ? KIND_GROUPS : KIND_INTS, i == 2 ? vocab : 0, new int[0], root.slice(at * 4, len * 4L)));
                at += len;
            }
            f = new Upload(root, entries);
        } else {
            q.remove(f);
        }
        java.util.List<Staged> keyed = new java.util.ArrayList<>();   // the same slices, keyed by this batch's bytes
        int[][] keys = {id, tg, id};
        for (int i = 0; i < 3; i++) {
            Staged e = f.entries.get(i);
            keyed.add(new Staged(e.kind, e.vocab, keys[i].clone(), e.dev));
        }
        Upload now = new Upload(f.root, keyed);
        FIXED.set(now);
        Staging.upload(f.root, 4 * total, h -> {
            long o = 0;
            for (int[] a : arrays) {
                MemorySegment.copy(a, 0, h, JAVA_INT, o * 4, a.length);
                o += Math.max(1, a.length);
            }
        });
        q.addFirst(now);
        evict(q);
    }

    /**
     * The device copy of the embedding backward's grouping of {@code id} (checked ids, vocabulary {@code vocab}): a
     * kept upload (stageTokens, or an earlier backward of these ids), or built and uploaded now.
     */
    static DeviceBuffer deviceGroups(int[] id, long vocab) {
        DeviceBuffer dg = lookup(KIND_GROUPS, vocab, id);
        return dg != null ? dg : upload(new int[] {KIND_GROUPS}, new long[] {vocab}, new int[][] {id}, new int[][] {groups(id, vocab)})[0];
    }

    /* Host id segments bound to fixed device slots (bind): the conditional VAE / DCGAN under CUDA graphs. */
    private record Bound(long n, long vocab, DeviceBuffer ids, DeviceBuffer groups) {}

    private static final ThreadLocal<java.util.Map<Long, Bound>> BOUND = ThreadLocal.withInitial(java.util.HashMap::new);

    /**
     * Binds the host segment {@code host} (n int32 ids over a vocabulary of {@code vocab}) to fixed device slots that
     * the caller rewrites with the same ids (and their grouping, {@link #groupInts}) before every step: the embedding
     * forward and backward of {@code host} (this thread) then read those slots, found by the segment's address, not by
     * its bytes (two label sets of a step may hold equal bytes in one step and differ in the next: a CUDA graph must
     * keep reading each from its own slot). No upload here or in the ops.
     */
    static void bind(MemorySegment host, long n, long vocab, DeviceBuffer ids, DeviceBuffer groups) {
        if (ids.byteSize() < 4 * n || groups.byteSize() < 4L * groupInts(n, vocab))
            throw new IllegalArgumentException("bindIds: device slots of " + ids.byteSize() + " and " + groups.byteSize() + " bytes for " + n
                    + " ids over " + vocab + " (need " + 4 * n + " and " + 4L * groupInts(n, vocab) + ")");
        BOUND.get().put(host.address(), new Bound(n, vocab, ids, groups));
    }

    /** Undoes {@link #bind} for {@code host} (nothing if it is not bound). */
    static void unbind(MemorySegment host) { BOUND.get().remove(host.address()); }

    private static Bound bound(MemorySegment s, long n) {
        java.util.Map<Long, Bound> m = BOUND.get();
        if (m.isEmpty() || !s.isNative()) return null;
        Bound b = m.get(s.address());
        return b != null && b.n == n ? b : null;
    }

    /** The int32s of the embedding backward's grouping of n ids over {@code vocab} ({@link #groups}' length). */
    static long groupInts(long n, long vocab) { return 2L * groupRows(n, vocab) + 1 + n; }

    /** The grouping of checked ids {@code id} (vocabulary {@code vocab}) as the device reads it ({@link #groups}). */
    static int[] groupsOf(int[] id, long vocab) { return groups(id, vocab); }

    /** The device grouping for the embedding backward of host ids {@code s}: a bound slot ({@link #bind}), or {@link #deviceGroups}. */
    static DeviceBuffer deviceGroups(MemorySegment s, int[] id, long vocab) {
        Bound b = bound(s, id.length);
        return b != null && b.vocab == vocab ? b.groups : deviceGroups(id, vocab);
    }

    /** The device copy of n int32s of a host segment (targets, ids): a bound slot, a kept upload of equal bytes, or a new one. */
    static DeviceBuffer deviceInts(MemorySegment s, long n) {
        if (n > Integer.MAX_VALUE - 8) throw new IllegalArgumentException(n + " int32 values: too many to upload at once");
        Bound b = bound(s, n);
        if (b != null) return b.ids;
        int[] host = s.asSlice(0, 4 * n).toArray(JAVA_INT);
        DeviceBuffer d = lookup(KIND_INTS, 0, host);
        return d != null ? d : upload(new int[] {KIND_INTS}, new long[] {0}, new int[][] {host}, new int[][] {host})[0];
    }

    /** stageTokens' upload, after its checks: {@code id} (checked ids) and {@code tg} (targets), at least one each. */
    static void stage(int[] id, int[] tg, long vocab) {
        if (lookup(KIND_INTS, 0, id) != null && lookup(KIND_INTS, 0, tg) != null && lookup(KIND_GROUPS, vocab, id) != null) return;
        upload(new int[] {KIND_INTS, KIND_INTS, KIND_GROUPS}, new long[] {0, 0, vocab}, new int[][] {id, tg, id},
                new int[][] {id, tg, groups(id, vocab)});
    }

    /** The number of group rows for n positions over a vocabulary of {@code vocab}: min(n, vocab), whatever the ids. */
    static int groupRows(long n, long vocab) { return (int) Math.min(n, vocab); }

    /**
     * The n positions grouped by id in increasing id order, each group in position order: uniq (R), start (R + 1), pos (n)
     * with R = {@link #groupRows} rows, the distinct ids first, then empty groups (start = n, which the kernel skips).
     * The size and the launch geometry depend on (n, vocab) only, not on the ids, so a captured step (CUDA graph)
     * replays correctly for any batch written into the same buffer.
     */
    private static int[] groups(int[] id, long vocab) {
        int n = id.length;
        int[] count = new int[(int) vocab];
        for (int v : id) count[v]++;
        int rows = groupRows(n, vocab);
        int[] g = new int[2 * rows + 1 + n];
        int r = 0, at = 0;
        int[] next = new int[(int) vocab];
        for (int v = 0; v < vocab; v++)
            if (count[v] > 0) {
                g[r] = v;
                g[rows + r] = at;
                next[v] = at;
                at += count[v];
                r++;
            }
        for (int e = r; e <= rows; e++) g[rows + e] = at;   // the empty groups after the distinct ids (uniq 0), and the end
        for (int i = 0; i < n; i++) g[2 * rows + 1 + next[id[i]]++] = i;
        return g;
    }
}
