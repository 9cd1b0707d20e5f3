package dev.latent.eval;

import java.util.Arrays;

/**
 * Ranking metrics of a detector's scores against binary labels (higher score = more anomalous; label true =
 * anomaly, the positive class): AUROC and AUPRC (average precision), both with ties handled exactly, as
 * scikit-learn's {@code roc_auc_score} and {@code average_precision_score} define them.
 */
public final class Ranking {
    private Ranking() {}

    /**
     * Area under the ROC curve: the probability that a random positive scores above a random negative, ties
     * counted one half (the Mann-Whitney U statistic over n+ n-). Needs at least one of each class.
     */
    public static double auroc(double[] scores, boolean[] positive) {
        int n = check(scores, positive);
        Integer[] order = order(scores);
        // average ranks (1-based) over groups of tied scores, ascending
        double rankSumPos = 0;
        long pos = 0;
        for (int i = 0; i < n; ) {
            int j = i;
            while (j + 1 < n && scores[order[j + 1]] == scores[order[i]]) j++;
            double avgRank = (i + j) / 2.0 + 1;
            for (int t = i; t <= j; t++) if (positive[order[t]]) { rankSumPos += avgRank; pos++; }
            i = j + 1;
        }
        long neg = n - pos;
        return (rankSumPos - pos * (pos + 1) / 2.0) / ((double) pos * neg);
    }

    /**
     * Average precision: sum over the distinct score thresholds, from high to low, of (recall gained) x (precision at
     * that threshold); tied scores enter together. Equals the area under the precision-recall step curve.
     */
    public static double auprc(double[] scores, boolean[] positive) {
        int n = check(scores, positive);
        Integer[] order = order(scores);
        long totalPos = 0;
        for (boolean p : positive) if (p) totalPos++;
        double ap = 0;
        long tp = 0, seen = 0;
        for (int i = n - 1; i >= 0; ) {            // descending score
            int j = i;
            while (j - 1 >= 0 && scores[order[j - 1]] == scores[order[i]]) j--;
            long newTp = 0;
            for (int t = j; t <= i; t++) if (positive[order[t]]) newTp++;
            tp += newTp;
            seen += i - j + 1;
            if (newTp > 0) ap += (double) newTp / totalPos * ((double) tp / seen);
            i = j - 1;
        }
        return ap;
    }

    private static int check(double[] scores, boolean[] positive) {
        if (scores == null || positive == null || scores.length != positive.length)
            throw new IllegalArgumentException("ranking: " + (scores == null ? "null" : scores.length) + " scores for "
                    + (positive == null ? "null" : positive.length) + " labels");
        long pos = 0;
        for (int i = 0; i < scores.length; i++) {
            if (Double.isNaN(scores[i])) throw new IllegalArgumentException("ranking: score " + i + " is NaN");
            if (positive[i]) pos++;
        }
        if (pos == 0 || pos == scores.length)
            throw new IllegalArgumentException("ranking: needs both classes, got " + pos + " positives of " + scores.length);
        return scores.length;
    }

    private static Integer[] order(double[] scores) {
        Integer[] o = new Integer[scores.length];
        for (int i = 0; i < o.length; i++) o[i] = i;
        Arrays.sort(o, (a, b) -> Double.compare(scores[a], scores[b]));
        return o;
    }
}
