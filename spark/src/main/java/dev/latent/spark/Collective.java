package dev.latent.spark;

import dev.latent.spark.collective.Nccl;
import dev.latent.spark.collective.Rendezvous;
import dev.latent.tensor.Device;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.Supplier;

/**
 * Which collective all-reduces a data-parallel run's gradients: {@code TCP} (dev.latent.spark.collective.TcpAllReduce,
 * host buffers, rank-order sums; every device), {@code NCCL} (NVIDIA's library through FFM, device buffers; CUDA
 * workers only), or {@code AUTO}: NCCL when the workers are on CUDA and every rank finds a usable NCCL, else TCP.
 * The choice is collective: every rank reports whether it found NCCL (and rank 0 its fresh unique id) through one
 * rendezvous exchange ({@code BarrierTaskContext.allGather} in Spark, like the TCP addresses), and all ranks take
 * NCCL only if all of them can, so the ranks never disagree. Rank 0 logs the choice and the reason on stderr.
 */
public enum Collective {
    TCP, NCCL, AUTO;

    /** Parses tcp / nccl / auto (any case); IllegalArgumentException naming the set otherwise. */
    public static Collective parse(String s) {
        try {
            return valueOf(s.trim().toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException | NullPointerException e) {
            throw new IllegalArgumentException("collective '" + s + "': one of tcp, nccl, auto");
        }
    }

    /** The default of a job: -Dlatent.collective (tcp|nccl|auto) when set, else AUTO. */
    public static Collective fromSystem() {
        String p = System.getProperty("latent.collective");
        return p == null || p.isBlank() ? AUTO : parse(p);
    }

    /** What serves a run, and why: {@code comm} is the rank's NCCL communicator, or null for TCP. */
    public record Choice(Nccl.Comm comm, String reason) {
        public boolean nccl() { return comm != null; }
    }

    /** How a rank finds NCCL (tests replace it to simulate a missing library): an Nccl, or the String reason. */
    static volatile Supplier<Object> finder = Nccl::probe;

    /**
     * Decides the collective of rank {@code rv.rank()} for {@code want} on {@code device} (the same job on every
     * rank, so every rank takes the same branch): TCP needs no exchange; CUDA workers with NCCL or AUTO exchange
     * their NCCL status once and, when every rank has it, join rank 0's communicator. {@code --collective nccl}
     * without CUDA workers, or without NCCL on some rank, is an IllegalArgumentException / IllegalStateException
     * naming why.
     */
    static Choice choose(Collective want, Device device, Rendezvous rv) throws IOException {
        if (want == TCP) return new Choice(null, "TCP: asked for (--collective tcp)");
        if (device != Device.CUDA) {
            if (want == NCCL)
                throw new IllegalArgumentException("--collective nccl needs CUDA workers (--device cuda): NCCL reduces device"
                        + " buffers; " + device + " workers all-reduce over TCP");
            return new Choice(null, "TCP: " + device + " workers (NCCL serves CUDA workers only)");
        }
        if (rv == null) {
            if (want == NCCL) throw new IllegalStateException("--collective nccl: no rendezvous to exchange NCCL's unique id");
            return new Choice(null, "TCP: no rendezvous to exchange NCCL's unique id");
        }
        Object found = finder.get();
        Nccl lib = found instanceof Nccl n ? n : null;
        String mine;
        if (lib == null) mine = "no " + found;
        else if (rv.rank() == 0) mine = "ok " + lib.uniqueId();
        else mine = "ok";
        String[] all = rv.allGather(mine);
        List<String> missing = new ArrayList<>();
        for (int r = 0; r < all.length; r++)
            if (!all[r].startsWith("ok")) missing.add("rank " + r + ": " + all[r].substring(3));
        if (!missing.isEmpty()) {
            String why = "NCCL unavailable on " + missing.size() + " of " + all.length + " ranks (" + String.join("; ", missing) + ")";
            if (want == NCCL) throw new IllegalStateException("--collective nccl: " + why);
            return new Choice(null, "TCP (host copies of the device gradients): " + why);
        }
        String id = all[0].substring(3);
        Nccl.Comm c = lib.join(id, rv.rank(), rv.size());
        return new Choice(c, "NCCL: " + lib.describe() + ", CUDA workers" + (want == AUTO ? " (auto: found on every rank)" : " (--collective nccl)"));
    }
}
