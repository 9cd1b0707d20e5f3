package dev.latent;

import static org.junit.jupiter.api.Assertions.fail;

/** Shared test helpers: seeded data and the tolerance check (max-abs-diff and NMSE on failure). */
public final class TestUtil {
    private TestUtil() {}

    /** Seeded uniforms in [-1, 1). */
    public static float[] randn(long seed, int n) {
        java.util.SplittableRandom r = new java.util.SplittableRandom(seed);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) (r.nextDouble() * 2 - 1);
        return x;
    }

    /** |x - ref| <= atol + rtol*|ref| for every element. */
    public static void assertClose(String what, float[] x, double[] ref, double atol, double rtol) {
        if (x.length != ref.length) fail(what + ": length " + x.length + " != " + ref.length);
        double maxd = 0, num = 0, den = 0;
        int bad = 0, worst = -1;
        for (int i = 0; i < x.length; i++) {
            double d = Math.abs(x[i] - ref[i]);
            if (!(d <= atol + rtol * Math.abs(ref[i]))) {
                bad++;
                if (worst < 0 || !(d <= maxd)) worst = i;
            }
            if (!(d <= maxd)) maxd = d;
            num += (x[i] - ref[i]) * (x[i] - ref[i]);
            den += ref[i] * ref[i];
        }
        if (bad > 0)
            fail(String.format("%s: %d/%d outside tolerance (atol %g, rtol %g); worst [%d] got %g want %g; max-abs-diff %g, NMSE %g",
                    what, bad, x.length, atol, rtol, worst, x[worst], ref[worst], maxd, den > 0 ? num / den : num));
    }
}
