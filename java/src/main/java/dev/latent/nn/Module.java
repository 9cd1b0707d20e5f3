package dev.latent.nn;

import dev.latent.autograd.Var;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Anything with parameters. Names are stable (checkpoint keys), order is creation order. */
public interface Module {
    /** Adds this module's parameters under {@code prefix} (e.g. "h.0.attn.") to {@code out}. */
    void collect(String prefix, Map<String, Var> out);

    default Map<String, Var> namedParameters() {
        Map<String, Var> m = new LinkedHashMap<>();
        collect("", m);
        return m;
    }

    default List<Var> parameters() { return new ArrayList<>(namedParameters().values()); }

    /**
     * Moves every parameter to {@code device}, as copies in {@code scope} (the model's): {@code model.to(scope,
     * Device.CUDA)} before training on a GPU. Create optimizers after moving (their state follows the parameters).
     */
    default void to(dev.latent.tensor.Scope scope, dev.latent.tensor.Device device) {
        for (Var p : parameters()) p.to(scope, device);
    }
}
