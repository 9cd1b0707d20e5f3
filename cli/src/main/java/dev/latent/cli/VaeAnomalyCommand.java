package dev.latent.cli;

import dev.latent.autograd.Graph;
import dev.latent.data.ImageData;
import dev.latent.eval.Ranking;
import dev.latent.io.Json;
import dev.latent.models.vae.VaeScores;
import dev.latent.models.vae.VaeTrainer;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code eval vae-anomaly}: a VAE trained without one class scores the test set; that class is the anomaly. */
@Command(name = "vae-anomaly", mixinStandardHelpOptions = true,
        description = "Score the test set with a VAE trained without one class (train vae --exclude-class K) and report AUROC and AUPRC "
                + "of each score (reconstruction error, negative ELBO, IWAE bound) with that class as the anomaly; one JSON object out.")
final class VaeAnomalyCommand implements Callable<Integer> {
    @Option(names = "--anomaly-class", description = "the anomalous class (default: the class the checkpoint was trained without)")
    Integer anomalyClass;
    @Option(names = "--scores", split = ",", paramLabel = "<score>", description = "scores to report, comma-separated: ${COMPLETION-CANDIDATES} (default: all)")
    List<Choices.Score> kinds = List.of(Choices.Score.values());
    @Option(names = "--iwae-k", description = "importance samples per image for the IWAE score (default: ${DEFAULT-VALUE})") int iwaeK = 16;
    @Option(names = "--n", description = "score only the first N test images (default: all)") int n = 0;
    @Mixin Mixins.Checkpoint checkpoint;
    @Mixin Mixins.EvalData data;
    @Mixin Mixins.SampleSeed seed = new Mixins.SampleSeed(1234);   // the draws of the ELBO and IWAE scores
    @Mixin Mixins.Threads threads;
    @Mixin Mixins.Device device;

    @Override
    public Integer call() throws Exception {
        threads.apply();
        dev.latent.tensor.Device on = device.resolve();
        if (iwaeK < 1 || iwaeK > 10_000) throw new IllegalArgumentException("--iwae-k must be in [1, 10000], got " + iwaeK);
        if (n < 0) throw new IllegalArgumentException("--n must be >= 0, got " + n);
        try (Scope scope = Scope.shared()) {
            VaeTrainer t = VaeTrainer.load(checkpoint.checkpoint, scope, on);
            int cls = anomalyClass != null ? anomalyClass : t.cfg.excludeClass();
            if (cls < 0)
                throw new IllegalArgumentException(checkpoint + " was trained on every class: pass --anomaly-class K, or train with --exclude-class K");
            ImageData test = ImageData.load(data.or(t.cfg.data()), "test");
            if (test.labels == null) throw new IllegalArgumentException(test.source + ": the test split has no labels");
            if (n > 0) test = test.head(n);
            boolean[] anomalous = new boolean[test.n];
            int nAnom = 0;
            for (int i = 0; i < test.n; i++) if (anomalous[i] = test.labels[i] == cls) nAnom++;
            if (nAnom == 0 || nAnom == test.n)
                throw new IllegalArgumentException(test.source + ": class " + cls + " makes " + nAnom + " of " + test.n + " test images anomalous; need both kinds");
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("model", "vae"); m.put("checkpoint", checkpoint.checkpoint.toString()); m.put("anomaly_class", cls);
            m.put("trained_without_class", t.cfg.excludeClass()); m.put("n_test", test.n); m.put("n_anomalous", nAnom);
            m.put("iwae_k", iwaeK); m.put("seed", seed.seed); m.put("trained_precision", t.precision().id());
            for (Choices.Score score : kinds) {
                VaeScores.Kind kind = score.kind;
                double[] s = scores(t, test, kind);
                Map<String, Object> r = new LinkedHashMap<>();
                r.put("auroc", Ranking.auroc(s, anomalous));
                r.put("auprc", Ranking.auprc(s, anomalous));
                double normalMean = 0, anomMean = 0;
                for (int i = 0; i < s.length; i++) if (anomalous[i]) anomMean += s[i]; else normalMean += s[i];
                r.put("mean_normal", normalMean / (test.n - nAnom));
                r.put("mean_anomalous", anomMean / nAnom);
                m.put(kind.name().toLowerCase(Locale.ROOT), r);
                System.err.printf(Locale.ROOT, "%s: AUROC %.4f, AUPRC %.4f%n", kind.name().toLowerCase(Locale.ROOT), r.get("auroc"), r.get("auprc"));
            }
            System.out.println(Json.object(m));
        }
        return 0;
    }

    /** Per-image scores of the whole test split, image i sampling from stream i. */
    private double[] scores(VaeTrainer t, ImageData test, VaeScores.Kind kind) {
        double[] out = new double[test.n];
        int chunk = kind == VaeScores.Kind.IWAE ? Math.max(1, 2000 / iwaeK) : 500;
        for (int from = 0; from < test.n; from += chunk) {
            int m = Math.min(chunk, test.n - from);
            try (Graph g = Graph.inference()) {
                Tensor x = Tensor.empty(g.scope(), m, 1, test.h, test.w);
                test.fill(x, null, from, m, 1f / 255f, 0f, 0);
                long[] streams = new long[m];
                for (int i = 0; i < m; i++) streams[i] = from + i;
                double[] s = VaeScores.score(t.evalModel(), t.cfg.likelihood(), t.cfg.sigma(), x, kind, iwaeK, seed.seed, streams);
                System.arraycopy(s, 0, out, from, m);
            }
        }
        return out;
    }
}
