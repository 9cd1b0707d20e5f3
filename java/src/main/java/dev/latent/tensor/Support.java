package dev.latent.tensor;

import java.util.List;
import java.util.ServiceLoader;

/** The one {@link TensorSupport} provider, looked up when a tensor first needs it (lazy holder). */
final class Support {
    private Support() {}

    static final TensorSupport INSTANCE = load();

    private static TensorSupport load() {
        List<TensorSupport> found = ServiceLoader.load(TensorSupport.class, TensorSupport.class.getClassLoader()).stream()
                .map(ServiceLoader.Provider::get).toList();
        if (found.size() != 1)
            throw new IllegalStateException("expected exactly one " + TensorSupport.class.getName() + " provider (dev.latent.ops "
                    + "provides it), found " + found.size() + ": " + found + " (a jar of the library missing, or on the path twice?)");
        return found.get(0);
    }
}
