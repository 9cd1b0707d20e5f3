package dev.latent.spark.collective;

import java.io.IOException;
import java.util.concurrent.BrokenBarrierException;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * How the members of a collective find each other: each knows its rank and the group's size, and all of them
 * can exchange one string each (every member gets every member's string, indexed by rank). In a Spark barrier
 * stage this is {@code BarrierTaskContext.allGather} ({@link dev.latent.spark.BarrierRendezvous}); in tests and
 * in one JVM it is {@link #inProcess}.
 */
public interface Rendezvous {
    int rank();

    int size();

    /** Blocks until every member has called it with its own message; returns all messages, by rank. */
    String[] allGather(String message) throws IOException;

    /** The host this member should listen on and advertise to its peers. */
    default String host() { return "127.0.0.1"; }

    /** {@code n} members in one JVM (threads), meeting through a barrier: member r of the result is rank r. */
    static Rendezvous[] inProcess(int n) {
        if (n < 1) throw new IllegalArgumentException("a group needs at least 1 member, got " + n);
        String[] slots = new String[n];
        CyclicBarrier barrier = new CyclicBarrier(n);
        Rendezvous[] out = new Rendezvous[n];
        for (int r = 0; r < n; r++) {
            int rank = r;
            out[r] = new Rendezvous() {
                public int rank() { return rank; }
                public int size() { return n; }
                public String[] allGather(String message) throws IOException {
                    try {
                        slots[rank] = message;
                        barrier.await(5, TimeUnit.MINUTES);
                        String[] all = slots.clone();
                        barrier.await(5, TimeUnit.MINUTES);   // nobody writes the next round before all have read
                        return all;
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        throw new java.io.InterruptedIOException("allGather interrupted at rank " + rank);
                    } catch (BrokenBarrierException | TimeoutException e) {
                        throw new IOException("allGather at rank " + rank + " of " + n + ": a member did not arrive (" + e + ")");
                    }
                }
            };
        }
        return out;
    }
}
