package dev.latent.spark.collective;

import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.security.SecureRandom;
import java.time.Duration;

/**
 * An all-reduce (sum, then one scale) of float buffers between the members of a {@link Rendezvous}, over TCP:
 * a full mesh of connections (each pair of ranks, one socket), set up once through one {@code allGather} of
 * "host port token". Per bucket of the buffer, two phases:
 * <ol>
 *   <li>reduce-scatter: the bucket is cut into N chunks, chunk j owned by rank j; every rank sends its piece of
 *       chunk j to rank j (N-1 messages), and each owner sums the N pieces of its chunk with
 *       {@link RankOrder#sum} in rank order 0..N-1 (its own piece in its place), so the result does not depend
 *       on arrival order or on N's topology: it is what one process summing the N gradients in order gets;</li>
 *   <li>all-gather: each owner sends its reduced chunk to every other rank.</li>
 * </ol>
 * Each rank sends and receives 2 (N-1)/N of the buffer's bytes per call, the bandwidth-optimal volume (the
 * same as a ring all-reduce, whose rotating summation order would not be reproducible). All sends and
 * receives of a phase run at once on non-blocking sockets driven by one selector in the calling thread.
 * The buffer is processed in buckets of {@code bucketBytes} (bounding the receive scratch to (N-1)/N of a
 * bucket), one after another. Overlapping the backward pass is the caller's: the data-parallel trainers hand
 * finished gradient buckets to this class from a communication thread while the backward continues
 * ({@code dev.latent.spark.OverlappedReduce}); one thread at a time may call it.
 * <p>Messages carry a 16-byte header (call sequence number, the caller's tag, float count), checked on arrival, so
 * mismatched calls between ranks (other buffers, or the same sizes in another order) fail with a message naming both
 * sides. A peer that closes its socket (its task died)
 * fails the call at once; a peer that stops making progress fails it after {@code timeout}; an interrupt of
 * the calling thread (Spark killing the task) fails it with {@link InterruptedIOException}.
 */
public final class TcpAllReduce implements AutoCloseable {
    public static final long DEFAULT_BUCKET_BYTES = 32L << 20;
    public static final Duration DEFAULT_TIMEOUT = Duration.ofMinutes(10);
    private static final int MAGIC = 0x4C54_4152;   // "LTAR"
    private static final int HEADER = 16;

    private final int rank, size;
    private final ServerSocketChannel server;
    private final SocketChannel[] peers;
    private final SelectionKey[] keys;
    private final Selector selector;
    private final long timeoutNanos, bucketFloats;
    private final Arena arena = Arena.ofShared();
    private MemorySegment scratch = MemorySegment.NULL;
    private int seq;
    private long payloadSent, payloadReceived;

    private TcpAllReduce(int rank, int size, ServerSocketChannel server, SocketChannel[] peers, long bucketBytes, Duration timeout)
            throws IOException {
        this.rank = rank;
        this.size = size;
        this.server = server;
        this.peers = peers;
        this.bucketFloats = Math.max(size, bucketBytes / 4);
        this.timeoutNanos = timeout.toNanos();
        this.selector = Selector.open();
        this.keys = new SelectionKey[size];
        for (int p = 0; p < size; p++) {
            if (p == rank) continue;
            peers[p].configureBlocking(false);
            keys[p] = peers[p].register(selector, 0, p);
        }
    }

    public int rank() { return rank; }

    public int size() { return size; }

    /** Payload bytes this rank has sent / received so far (headers excluded). */
    public long bytesSent() { return payloadSent; }

    public long bytesReceived() { return payloadReceived; }

    public static TcpAllReduce connect(Rendezvous rv) throws IOException {
        return connect(rv, DEFAULT_BUCKET_BYTES, DEFAULT_TIMEOUT);
    }

    /** Opens the mesh: listens on {@code rv.host()}, exchanges addresses through {@code rv.allGather}, connects. */
    public static TcpAllReduce connect(Rendezvous rv, long bucketBytes, Duration timeout) throws IOException {
        if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN)
            throw new IOException("TcpAllReduce sends floats in native order and supports little-endian machines only");
        if (bucketBytes < 4) throw new IllegalArgumentException("bucketBytes must be >= 4, got " + bucketBytes);
        int rank = rv.rank(), n = rv.size();
        if (n < 1 || rank < 0 || rank >= n) throw new IllegalArgumentException("rank " + rank + " of " + n);
        int ms = (int) Math.min(Integer.MAX_VALUE, timeout.toMillis());
        ServerSocketChannel server = ServerSocketChannel.open();
        SocketChannel[] peers = new SocketChannel[n];
        try {
            server.bind(new InetSocketAddress(rv.host(), 0), n);
            long token = new SecureRandom().nextLong();
            int port = ((InetSocketAddress) server.getLocalAddress()).getPort();
            String[] all = rv.allGather(rv.host() + " " + port + " " + token);
            if (all.length != n) throw new IOException("allGather returned " + all.length + " addresses for " + n + " members");
            for (int j = 0; j < rank; j++) {                       // connect to every lower rank ...
                String[] f = all[j].split(" ");
                if (f.length != 3) throw new IOException("rank " + j + " advertised a malformed address: '" + all[j] + "'");
                SocketChannel ch = SocketChannel.open();
                peers[j] = ch;
                tune(ch);
                try {
                    ch.socket().connect(new InetSocketAddress(f[0], Integer.parseInt(f[1])), ms);
                } catch (IOException e) {
                    throw new IOException("rank " + rank + " could not connect to rank " + j + " at " + f[0] + ":" + f[1] + ": " + e.getMessage(), e);
                }
                ByteBuffer hello = ByteBuffer.allocate(20).putInt(MAGIC).putInt(rank).putInt(n).putLong(Long.parseLong(f[2])).flip();
                while (hello.hasRemaining()) ch.write(hello);
            }
            server.socket().setSoTimeout(ms);                     // ... and accept every higher one
            for (int k = rank + 1; k < n; k++) {
                Socket s;
                try {
                    s = server.socket().accept();
                } catch (SocketTimeoutException e) {
                    throw new IOException("rank " + rank + ": not every higher rank connected within " + timeout, e);
                }
                SocketChannel ch = s.getChannel();
                s.setSoTimeout(ms);
                byte[] b = new byte[20];
                new DataInputStream(s.getInputStream()).readFully(b);
                ByteBuffer hello = ByteBuffer.wrap(b);
                int magic = hello.getInt(), from = hello.getInt(), size = hello.getInt();
                long tok = hello.getLong();
                if (magic != MAGIC || size != n || tok != token || from <= rank || from >= n || peers[from] != null) {
                    ch.close();
                    throw new IOException("rank " + rank + ": refused a connection that is not a member of this group (rank "
                            + from + ", size " + size + ")");
                }
                tune(ch);
                peers[from] = ch;
            }
            return new TcpAllReduce(rank, n, server, peers, bucketBytes, timeout);
        } catch (IOException | RuntimeException e) {
            for (SocketChannel ch : peers) if (ch != null) try { ch.close(); } catch (IOException ignored) { }
            server.close();
            throw e;
        }
    }

    private static void tune(SocketChannel ch) throws IOException {
        ch.setOption(StandardSocketOptions.TCP_NODELAY, true);
        ch.setOption(StandardSocketOptions.SO_SNDBUF, 4 << 20);
        ch.setOption(StandardSocketOptions.SO_RCVBUF, 4 << 20);
    }

    /**
     * In place: every rank's {@code buf} (float32, native order, the same length everywhere) becomes
     * (buf_0 + buf_1 + ... + buf_{N-1}) * scale, summed in rank order, bit-identical on every rank.
     */
    public void allReduce(MemorySegment buf, float scale) throws IOException {
        allReduce(new MemorySegment[] {buf}, scale);
    }

    /**
     * As {@link #allReduce(MemorySegment, float)}, with {@code tag} carried in every message and checked: every rank
     * must pass the same tag in the same call (a bucket's index, so buckets reduced in another order on one rank fail
     * instead of summing the wrong ranges).
     */
    public void allReduce(MemorySegment buf, float scale, int tag) throws IOException {
        allReduce(new MemorySegment[] {buf}, scale, tag);
    }

    /**
     * In place into {@code pieces[0]}: every rank contributes k pieces (the same k and length everywhere; rank r's
     * piece i is contribution r*k + i of N*k), and {@code pieces[0]} becomes the sum of all N*k contributions in
     * that order, times {@code scale}, bit-identical on every rank. So N workers holding k micro-batches each give
     * the bits of one process summing the N*k micro-batches in order, for any split of them (1 x 6, 2 x 3, 3 x 2).
     * The reduce-scatter sends the k pieces unsummed (the owner must add them in global order), so a rank sends
     * (k + 1) (N-1)/N of a piece's bytes per call; k = 1 is the bandwidth-optimal 2 (N-1)/N.
     */
    public void allReduce(MemorySegment[] pieces, float scale) throws IOException {
        allReduce(pieces, scale, 0);
    }

    private void allReduce(MemorySegment[] pieces, float scale, int tag) throws IOException {
        if (pieces.length < 1) throw new IllegalArgumentException("allReduce: no pieces");
        long bytes = pieces[0].byteSize();
        for (MemorySegment p : pieces)
            if (p.byteSize() != bytes) throw new IllegalArgumentException("allReduce: pieces of " + bytes + " and " + p.byteSize() + " bytes");
        if (bytes % 4 != 0) throw new IllegalArgumentException("buffer of " + bytes + " bytes is not float32");
        long n = bytes / 4;
        int k = pieces.length;
        MemorySegment[] b = new MemorySegment[k];
        for (long off = 0; off < n; off += bucketFloats) {
            long m = Math.min(bucketFloats, n - off);
            for (int i = 0; i < k; i++) b[i] = pieces[i].asSlice(off * 4, m * 4);
            bucket(b, scale, tag);
        }
        if (n == 0) bucket(pieces, scale, tag);   // still a (empty) collective call, so sequence numbers stay in step
    }

    private long start(long len, int j) { return len * j / size; }

    private void bucket(MemorySegment[] b, float scale, int tag) throws IOException {
        int k = b.length;
        long len = b[0].byteSize() / 4;
        long myFrom = start(len, rank), myLen = start(len, rank + 1) - myFrom;
        MemorySegment[] mine = new MemorySegment[k];
        for (int i = 0; i < k; i++) mine[i] = b[i].asSlice(myFrom * 4, myLen * 4);
        if (size == 1) {
            RankOrder.sum(mine, myLen, scale, mine[0]);
            return;
        }
        long need = (size - 1) * k * myLen * 4;
        if (scratch.byteSize() < need) scratch = arena.allocate(Math.max(need, scratch.byteSize() * 2), 64);
        MemorySegment[][] sends = new MemorySegment[size][];
        MemorySegment[] recvs = new MemorySegment[size], parts = new MemorySegment[size * k];
        // reduce-scatter: my k pieces of chunk p go to p; p's k pieces of my chunk land in scratch
        for (int p = 0, q = 0; p < size; p++) {
            if (p == rank) {
                System.arraycopy(mine, 0, parts, p * k, k);
                continue;
            }
            long from = start(len, p), cnt = start(len, p + 1) - from;
            sends[p] = new MemorySegment[k];
            for (int i = 0; i < k; i++) sends[p][i] = b[i].asSlice(from * 4, cnt * 4);
            recvs[p] = scratch.asSlice(q++ * k * myLen * 4, k * myLen * 4);
            for (int i = 0; i < k; i++) parts[p * k + i] = recvs[p].asSlice(i * myLen * 4, myLen * 4);
        }
        exchange(sends, recvs, seq++, tag);
        RankOrder.sum(parts, myLen, scale, mine[0]);
        // all-gather: my reduced chunk to everyone; theirs into place
        for (int p = 0; p < size; p++) {
            if (p == rank) continue;
            sends[p] = new MemorySegment[] {mine[0]};
            recvs[p] = b[0].asSlice(start(len, p) * 4, (start(len, p + 1) - start(len, p)) * 4);
        }
        exchange(sends, recvs, seq++, tag);
    }

    /** Sends sends[p] to p and receives recvs[p] from p for every peer p, all at once. */
    private void exchange(MemorySegment[][] sends, MemorySegment[] recvs, int s, int tag) throws IOException {
        ByteBuffer[][] out = new ByteBuffer[size][], in = new ByteBuffer[size][];
        long[] sendBytes = new long[size];
        int pending = 0;
        for (int p = 0; p < size; p++) {
            if (p == rank) continue;
            out[p] = new ByteBuffer[1 + sends[p].length];
            for (int i = 0; i < sends[p].length; i++) {
                out[p][1 + i] = sends[p][i].asByteBuffer();
                sendBytes[p] += sends[p][i].byteSize();
            }
            out[p][0] = ByteBuffer.allocate(HEADER).order(ByteOrder.LITTLE_ENDIAN).putInt(s).putInt(tag).putLong(sendBytes[p] / 4).flip();
            in[p] = new ByteBuffer[] {ByteBuffer.allocate(HEADER).order(ByteOrder.LITTLE_ENDIAN), recvs[p].asByteBuffer()};
            pending += 2;
        }
        boolean[] checked = new boolean[size];
        long deadline = System.nanoTime() + timeoutNanos;
        while (pending > 0) {
            boolean progress = false;
            for (int p = 0; p < size; p++) {
                if (out[p] != null) {
                    long w = peers[p].write(out[p]);
                    if (w > 0) progress = true;
                    if (!anyRemaining(out[p])) {
                        payloadSent += sendBytes[p];
                        out[p] = null;
                        pending--;
                    }
                }
                if (in[p] != null) {
                    long r = peers[p].read(in[p]);
                    if (r < 0) throw new EOFException("rank " + rank + ": rank " + p + " closed its connection mid-all-reduce (its task failed or was killed)");
                    if (r > 0) progress = true;
                    ByteBuffer h = in[p][0];
                    if (!checked[p] && !h.hasRemaining()) {
                        int seqIn = h.getInt(0), tagIn = h.getInt(4);
                        long cnt = h.getLong(8);
                        if (seqIn != s || tagIn != tag || cnt != recvs[p].byteSize() / 4)
                            throw new IOException("rank " + rank + ": rank " + p + " sent message " + seqIn + " (tag " + tagIn + ") of "
                                    + cnt + " floats, expected message " + s + " (tag " + tag + ") of " + recvs[p].byteSize() / 4
                                    + " (the ranks called allReduce with different buffers, or in another order)");
                        checked[p] = true;
                    }
                    if (checked[p] && !in[p][1].hasRemaining()) {
                        payloadReceived += recvs[p].byteSize();
                        in[p] = null;
                        pending--;
                    }
                }
            }
            if (pending == 0) break;
            if (progress) {
                deadline = System.nanoTime() + timeoutNanos;
                continue;
            }
            for (int p = 0; p < size; p++)
                if (p != rank) keys[p].interestOps((out[p] != null ? SelectionKey.OP_WRITE : 0) | (in[p] != null ? SelectionKey.OP_READ : 0));
            long left = deadline - System.nanoTime();
            if (left <= 0) throw new IOException("rank " + rank + ": all-reduce made no progress for " + Duration.ofNanos(timeoutNanos));
            selector.select(Math.max(1, left / 1_000_000));
            selector.selectedKeys().clear();
            if (Thread.interrupted()) throw new InterruptedIOException("rank " + rank + ": all-reduce interrupted");
        }
    }

    private static boolean anyRemaining(ByteBuffer[] bs) {
        for (ByteBuffer b : bs) if (b.hasRemaining()) return true;
        return false;
    }

    @Override
    public void close() throws IOException {
        IOException first = null;
        for (SocketChannel ch : peers) {
            if (ch == null) continue;
            try { ch.close(); } catch (IOException e) { if (first == null) first = e; }
        }
        try { selector.close(); } catch (IOException e) { if (first == null) first = e; }
        try { server.close(); } catch (IOException e) { if (first == null) first = e; }
        arena.close();
        if (first != null) throw first;
    }
}
