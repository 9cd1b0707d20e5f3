package dev.latent.tensor;

import java.util.List;
import java.util.ServiceLoader;

/**
 * The one {@link TensorSupport} provider, looked up when a tensor first needs it. A failed lookup is not cached: every
 * use says again what was found (a static initialiser would fail once and then give bare NoClassDefFoundErrors).
 */
final class Support {
    private static volatile TensorSupport instance;

    private Support() {}

    static TensorSupport get() {
        TensorSupport s = instance;
        if (s == null) {
            synchronized (Support.class) {
                if ((s = instance) == null) instance = s = load();
            }
        }
        return s;
    }

    private static TensorSupport load() {
        List<TensorSupport> found = ServiceLoader.load(TensorSupport.class, TensorSupport.class.getClassLoader()).stream()
                .map(ServiceLoader.Provider::get).toList();
        if (found.size() != 1)
            throw new IllegalStateException("expected exactly one " + TensorSupport.class.getName() + " provider (dev.latent.ops "
                    + "provides it), found " + found.size() + ": " + found + " (a jar of the library missing, or on the path twice?)");
        return found.get(0);
    }
}
