package dev.latent;

import java.util.Arrays;
import java.util.Locale;

/**
 * A value of a fixed set of choices spelled on a command line (the CLI's and latent-spark's options, issue 19): an
 * enum constant whose spelling, {@link #id()}, is its name in lowercase with hyphens for underscores ({@code WGAN_GP}:
 * "wgan-gp"). The enum's {@code toString()} returns {@code id()} (an interface cannot give it), so picocli's help
 * lists the spellings; {@link #parse} takes exactly them.
 */
public interface Choice {
    /** The constant's name in lowercase, underscores as hyphens. */
    default String id() { return ((Enum<?>) this).name().toLowerCase(Locale.ROOT).replace('_', '-'); }

    /**
     * The constant of {@code type} spelled {@code value} (its toString), or an IllegalArgumentException naming the
     * valid spellings: "expected one of [none, layer] but was 'batch'".
     */
    static <E extends Enum<E>> E parse(Class<E> type, String value) {
        E[] all = type.getEnumConstants();
        for (E e : all) if (e.toString().equals(value)) return e;
        throw new IllegalArgumentException("expected one of " + Arrays.toString(all) + " but was '" + value + "'");
    }
}
