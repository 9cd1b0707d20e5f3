package dev.latent.eval;

/**
 * Frechet distance between Gaussians fitted to two feature sets (FID, Heusel et al. 2017) and the Inception Score
 * (Salimans et al. 2016), in double precision: |mu1 - mu2|^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2)), with the trace of the
 * matrix square root computed as sum sqrt(eig(S1 C2 S1)), S1 = C1^(1/2) (symmetric PSD, so Jacobi eigen-
 * decompositions suffice and no complex arithmetic appears).
 */
public final class Fid {
    private Fid() {}

    /** Mean and covariance of n feature vectors (the Gaussian that the Frechet distance compares). */
    public record Stats(double[] mean, double[][] cov, int n) {}

    public static Stats stats(double[][] x) {
        int n = x.length, d = x[0].length;
        if (n < 2) throw new IllegalArgumentException("FID needs at least 2 samples, got " + n);
        double[] mu = new double[d];
        for (double[] r : x) for (int j = 0; j < d; j++) mu[j] += r[j];
        for (int j = 0; j < d; j++) mu[j] /= n;
        double[][] c = new double[d][d];
        for (double[] r : x)
            for (int i = 0; i < d; i++) {
                double a = r[i] - mu[i];
                if (a == 0) continue;
                for (int j = i; j < d; j++) c[i][j] += a * (r[j] - mu[j]);
            }
        for (int i = 0; i < d; i++)
            for (int j = i; j < d; j++) { c[i][j] /= n - 1; c[j][i] = c[i][j]; }
        return new Stats(mu, c, n);
    }

    /**
     * Feature statistics built one vector at a time and merged across parts (partitions of a distributed set) with
     * the exact pairwise update of the mean and the co-moment (Chan, Golub and LeVeque 1979): the merged statistics
     * are those of the union, to rounding, whatever the split; merged in a fixed order they are the same bits every
     * time. Serializable, so a Spark partition can return one.
     */
    public static final class Accumulator implements java.io.Serializable {
        private static final long serialVersionUID = 1L;
        private long n;
        private final double[] mean;
        private final double[][] m2;   // sum of (x - mean)(x - mean)^T, upper triangle

        public Accumulator(int d) {
            if (d < 1) throw new IllegalArgumentException("FID accumulator: dimension " + d + ", expected >= 1");
            mean = new double[d];
            m2 = new double[d][d];
        }

        public long count() { return n; }

        /** Adds one feature vector (Welford's update). */
        public Accumulator add(double[] x) {
            int d = mean.length;
            if (x.length != d) throw new IllegalArgumentException("FID accumulator: a vector of " + x.length + ", expected " + d);
            n++;
            double[] delta = new double[d];
            for (int i = 0; i < d; i++) { delta[i] = x[i] - mean[i]; mean[i] += delta[i] / n; }
            for (int i = 0; i < d; i++) {
                double a = delta[i];
                if (a == 0) continue;
                for (int j = i; j < d; j++) m2[i][j] += a * (x[j] - mean[j]);
            }
            return this;
        }

        /** Folds {@code o} into this (o is unchanged). */
        public Accumulator merge(Accumulator o) {
            int d = mean.length;
            if (o.mean.length != d) throw new IllegalArgumentException("FID accumulator: merging dimension " + o.mean.length + " into " + d);
            if (o.n == 0) return this;
            long nn = n + o.n;
            double f = (double) n * o.n / nn;
            double[] delta = new double[d];
            for (int i = 0; i < d; i++) delta[i] = o.mean[i] - mean[i];
            for (int i = 0; i < d; i++)
                for (int j = i; j < d; j++) m2[i][j] += o.m2[i][j] + delta[i] * delta[j] * f;
            for (int i = 0; i < d; i++) mean[i] += delta[i] * o.n / nn;
            n = nn;
            return this;
        }

        /** The mean and the (n - 1)-normalised covariance, as {@link #stats(double[][])} gives. */
        public Stats stats() {
            if (n < 2) throw new IllegalArgumentException("FID needs at least 2 samples, got " + n);
            if (n > Integer.MAX_VALUE) throw new IllegalArgumentException("FID: " + n + " samples, more than Stats counts");
            int d = mean.length;
            double[][] c = new double[d][d];
            for (int i = 0; i < d; i++)
                for (int j = i; j < d; j++) { c[i][j] = m2[i][j] / (n - 1); c[j][i] = c[i][j]; }
            return new Stats(mean.clone(), c, (int) n);
        }
    }

    public static double distance(Stats a, Stats b) {
        int d = a.mean.length;
        double m = 0;
        for (int i = 0; i < d; i++) m += (a.mean[i] - b.mean[i]) * (a.mean[i] - b.mean[i]);
        double tr = 0;
        for (int i = 0; i < d; i++) tr += a.cov[i][i] + b.cov[i][i];
        double[][] s1 = sqrtPsd(a.cov);
        double[][] mMat = mul(mul(s1, b.cov), s1);
        symmetrize(mMat);
        double[] ev = eigenvalues(mMat);
        double sq = 0;
        for (double v : ev) sq += Math.sqrt(Math.max(v, 0));
        return m + tr - 2 * sq;
    }

    /** exp(E_x KL(p(y|x) || p(y))) over `splits` equal parts: {mean, std}. */
    public static double[] inceptionScore(double[][] probs, int splits) {
        int n = probs.length, k = probs[0].length;
        splits = Math.max(1, Math.min(splits, n));
        double[] scores = new double[splits];
        for (int s = 0; s < splits; s++) {
            int lo = s * n / splits, hi = (s + 1) * n / splits;
            double[] py = new double[k];
            for (int i = lo; i < hi; i++) for (int c = 0; c < k; c++) py[c] += probs[i][c];
            for (int c = 0; c < k; c++) py[c] /= hi - lo;
            double kl = 0;
            for (int i = lo; i < hi; i++)
                for (int c = 0; c < k; c++) {
                    double p = probs[i][c];
                    if (p > 0) kl += p * (Math.log(p) - Math.log(py[c]));
                }
            scores[s] = Math.exp(kl / (hi - lo));
        }
        double mean = 0, var = 0;
        for (double v : scores) mean += v;
        mean /= splits;
        for (double v : scores) var += (v - mean) * (v - mean);
        return new double[] {mean, Math.sqrt(var / splits)};
    }

    static double[][] mul(double[][] a, double[][] b) {
        int n = a.length, m = b[0].length, k = b.length;
        double[][] c = new double[n][m];
        for (int i = 0; i < n; i++)
            for (int p = 0; p < k; p++) {
                double v = a[i][p];
                if (v == 0) continue;
                for (int j = 0; j < m; j++) c[i][j] += v * b[p][j];
            }
        return c;
    }

    static void symmetrize(double[][] a) {
        for (int i = 0; i < a.length; i++)
            for (int j = i + 1; j < a.length; j++) { double v = 0.5 * (a[i][j] + a[j][i]); a[i][j] = v; a[j][i] = v; }
    }

    /** Symmetric PSD square root V diag(sqrt(max(l, 0))) V^T. */
    static double[][] sqrtPsd(double[][] a) {
        int n = a.length;
        double[][] v = new double[n][n];
        double[] l = jacobi(copy(a), v);
        double[][] r = new double[n][n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int k = 0; k < n; k++) s += v[i][k] * Math.sqrt(Math.max(l[k], 0)) * v[j][k];
                r[i][j] = s;
            }
        return r;
    }

    static double[] eigenvalues(double[][] a) { return jacobi(copy(a), new double[a.length][a.length]); }

    private static double[][] copy(double[][] a) {
        double[][] c = new double[a.length][];
        for (int i = 0; i < a.length; i++) c[i] = a[i].clone();
        return c;
    }

    /** Cyclic Jacobi eigenvalue iteration for a symmetric matrix (destroys a); eigenvectors in the columns of v. */
    static double[] jacobi(double[][] a, double[][] v) {
        int n = a.length;
        for (int i = 0; i < n; i++) { java.util.Arrays.fill(v[i], 0); v[i][i] = 1; }
        for (int sweep = 0; sweep < 100; sweep++) {
            double off = 0, diag = 0;
            for (int i = 0; i < n; i++) {
                diag += a[i][i] * a[i][i];
                for (int j = i + 1; j < n; j++) off += a[i][j] * a[i][j];
            }
            if (off <= 1e-30 * Math.max(diag, 1e-300) || off == 0) break;
            for (int p = 0; p < n; p++)
                for (int q = p + 1; q < n; q++) {
                    double apq = a[p][q];
                    if (Math.abs(apq) < 1e-300) continue;
                    double theta = (a[q][q] - a[p][p]) / (2 * apq);
                    double t = Math.signum(theta) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
                    if (theta == 0) t = 1;
                    double c = 1 / Math.sqrt(t * t + 1), s = t * c;
                    for (int k = 0; k < n; k++) {
                        double akp = a[k][p], akq = a[k][q];
                        a[k][p] = c * akp - s * akq;
                        a[k][q] = s * akp + c * akq;
                    }
                    for (int k = 0; k < n; k++) {
                        double apk = a[p][k], aqk = a[q][k];
                        a[p][k] = c * apk - s * aqk;
                        a[q][k] = s * apk + c * aqk;
                    }
                    for (int k = 0; k < n; k++) {
                        double vkp = v[k][p], vkq = v[k][q];
                        v[k][p] = c * vkp - s * vkq;
                        v[k][q] = s * vkp + c * vkq;
                    }
                }
        }
        double[] l = new double[n];
        for (int i = 0; i < n; i++) l[i] = a[i][i];
        return l;
    }
}
