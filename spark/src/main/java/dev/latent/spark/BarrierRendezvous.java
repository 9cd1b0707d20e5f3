package dev.latent.spark;

import dev.latent.spark.collective.Rendezvous;
import org.apache.spark.BarrierTaskContext;

import java.io.IOException;
import java.net.InetAddress;

/**
 * The rendezvous of a Spark barrier stage: rank = partition id, size = the number of barrier tasks, and the
 * exchange is {@link BarrierTaskContext#allGather}: no side channel to configure. The host to listen on is the
 * Spark conf {@code spark.latent.collective.host} when set (a multi-homed executor), else this task's executor
 * address as Spark reports it in the task infos, else the local host's address.
 */
public final class BarrierRendezvous implements Rendezvous {
    private final BarrierTaskContext ctx;
    private final String host;

    public BarrierRendezvous(BarrierTaskContext ctx, String configuredHost) {
        this.ctx = ctx;
        String h = configuredHost;
        if (h == null || h.isBlank()) {
            String addr = ctx.getTaskInfos()[ctx.partitionId()].address();
            h = addr == null ? "" : addr.contains(":") && addr.indexOf(':') == addr.lastIndexOf(':') ? addr.substring(0, addr.indexOf(':')) : addr;
        }
        if (h.isBlank()) {
            try {
                h = InetAddress.getLocalHost().getHostAddress();
            } catch (IOException e) {
                h = "127.0.0.1";
            }
        }
        this.host = h;
    }

    @Override public int rank() { return ctx.partitionId(); }

    @Override public int size() { return ctx.getTaskInfos().length; }

    @Override public String host() { return host; }

    @Override
    public String[] allGather(String message) {
        return ctx.allGather(message);
    }
}
