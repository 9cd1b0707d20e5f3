package dev.latent.spark;

import dev.latent.autograd.Var;
import dev.latent.tensor.Device;
import dev.latent.tensor.DeviceMemory;
import dev.latent.tensor.Tensor;

import java.lang.foreign.MemorySegment;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

/**
 * The parameters' gradients as one flat float32 buffer (parameters in the model's named order), plus
 * {@code extra} trailing floats for values reduced with them (the loss): copied out after backward, reduced,
 * copied back in place before the optimizer step.
 */
final class Gradients {
    final List<Var> params;
    final List<String> names;
    final long numel;
    final int extra;

    Gradients(Map<String, Var> named, int extra) {
        this.params = List.copyOf(named.values());
        this.names = List.copyOf(named.keySet());
        long n = 0;
        for (Var p : params) n += p.value().numel();
        this.numel = n;
        this.extra = extra;
    }

    long floats() { return numel + extra; }

    /** Copies every parameter's gradient into {@code flat} (a missing gradient is an error: every rank must send it). */
    void gather(MemorySegment flat) {
        long off = 0;
        for (int i = 0; i < params.size(); i++) {
            Var p = params.get(i);
            if (p.grad() == null)
                throw new IllegalStateException("parameter " + names.get(i) + " got no gradient: data-parallel training needs every"
                        + " parameter in the loss (every rank reduces the same buffer)");
            Tensor g = p.grad().value();
            long n = g.numel();
            Tensor c = g.isContiguous() ? g : g.contiguous();
            if (c.device() == Device.CPU) MemorySegment.copy(c.segment(), 0, flat, off * 4, n * 4);
            else c.deviceBuffer().slice(0, n * 4).copyTo(flat.asSlice(off * 4, n * 4));   // a CUDA worker over TCP
            off += n;
        }
    }

    /** {@link #gather} into device memory (a CUDA worker whose all-reduce runs on the device): copies device to device. */
    void gatherDevice(DeviceMemory flat) {
        long off = 0;
        for (int i = 0; i < params.size(); i++) {
            Var p = params.get(i);
            if (p.grad() == null)
                throw new IllegalStateException("parameter " + names.get(i) + " got no gradient: data-parallel training needs every"
                        + " parameter in the loss (every rank reduces the same buffer)");
            Tensor g = p.grad().value();
            long n = g.numel();
            Tensor c = g.isContiguous() ? g : g.contiguous();
            if (c.device() != Device.CUDA) throw new IllegalStateException("gradient of " + names.get(i) + " is on " + c.device() + ", not CUDA");
            flat.slice(off * 4, n * 4).copyFrom(c.deviceBuffer().slice(0, n * 4));
            off += n;
        }
    }

    /** {@link #scatter} from device memory: the reduced values back into the device gradients, device to device. */
    void scatterDevice(DeviceMemory flat) {
        long off = 0;
        for (int i = 0; i < params.size(); i++) {
            Tensor g = params.get(i).grad().value();
            long n = g.numel();
            if (!g.isContiguous())
                throw new IllegalStateException("gradient of " + names.get(i) + " is a strided view; cannot write the reduced gradient in place");
            g.deviceBuffer().slice(0, n * 4).copyFrom(flat.slice(off * 4, n * 4));
            off += n;
        }
    }

    /** Writes the reduced values back into the gradients the optimizer will read. */
    void scatter(MemorySegment flat) {
        long off = 0;
        for (int i = 0; i < params.size(); i++) {
            Tensor g = params.get(i).grad().value();
            long n = g.numel();
            if (!g.isContiguous())
                throw new IllegalStateException("gradient of " + names.get(i) + " is a strided view; cannot write the reduced gradient in place");
            if (g.device() == Device.CPU) MemorySegment.copy(flat, off * 4, g.segment(), 0, n * 4);
            else g.deviceBuffer().slice(0, n * 4).copyFrom(flat.asSlice(off * 4, n * 4));
            off += n;
        }
    }

    /** SHA-256 of the parameters' bytes in order: equal hashes, equal weights to the bit. */
    static String hash(Map<String, Var> named) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            for (var e : named.entrySet()) {
                md.update(e.getKey().getBytes(java.nio.charset.StandardCharsets.UTF_8));
                Tensor v = e.getValue().value();
                if (v.device() == Device.CPU) md.update(v.segment().asByteBuffer());
                else
                    try (java.lang.foreign.Arena a = java.lang.foreign.Arena.ofConfined()) {   // a CUDA replica: hash a host copy
                        MemorySegment h = a.allocate(v.numel() * 4);
                        v.contiguous().deviceBuffer().slice(0, v.numel() * 4).copyTo(h);
                        md.update(h.asByteBuffer());
                    }
            }
            return HexFormat.of().formatHex(md.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
