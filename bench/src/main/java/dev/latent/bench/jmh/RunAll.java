package dev.latent.bench.jmh;

import dev.latent.bench.Ceilings;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;

import java.util.Collection;

/**
 * Runs the JMH benchmarks and grades them against the ceilings measured in the same run (before and
 * after, the better of the two: the peak moves on a shared machine).
 * <pre>java -cp ... dev.latent.bench.jmh.RunAll [regex] [--smoke] [--forks N] [--iterations N]</pre>
 * --smoke: one fork-less iteration of each, for CI (proves the harness runs; its numbers mean nothing).
 * --forks / --iterations: more samples than the annotations' defaults (the machine is noisy: a 1024^3
 * GEMM moves by +-5-10% between iterations; ratios need several forks to settle).
 */
public final class RunAll {
    public static void main(String[] args) throws RunnerException {
        String include = ".*";
        boolean smoke = false;
        int forks = -1, iterations = -1;
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--smoke")) smoke = true;
            else if (args[i].equals("--forks")) forks = Integer.parseInt(args[++i]);
            else if (args[i].equals("--iterations")) iterations = Integer.parseInt(args[++i]);
            else include = args[i];
        }
        double[] peak = {Ceilings.fmaPeak(1, 5), Ceilings.fmaPeak(2, 5)};
        double triad = smoke ? Double.NaN : Ceilings.triad(2, 5);
        ChainedOptionsBuilder ob = new OptionsBuilder().include(include);
        if (forks > 0) ob.forks(forks);
        if (iterations > 0) ob.measurementIterations(iterations);
        if (smoke) {
            ob.warmupIterations(0).measurementIterations(1).measurementTime(TimeValue.milliseconds(200)).forks(0)
                    .param("shape", "1024x1024x1024").param("threads", "1");
        }
        Collection<RunResult> results = new Runner(ob.build()).run();
        peak[0] = Math.max(peak[0], Ceilings.fmaPeak(1, 5));
        peak[1] = Math.max(peak[1], Ceilings.fmaPeak(2, 5));
        System.out.printf("%nceilings: FMA peak %.1f GFLOP/s (1 thread), %.1f GFLOP/s (2 threads); triad %.1f GB/s (2 threads)%n",
                peak[0], peak[1], triad);
        for (RunResult r : results) {
            var p = r.getParams();
            double score = r.getPrimaryResult().getScore();
            String line = p.getBenchmark().replaceAll(".*\\.", "") + " " + String.join(" ",
                    p.getParamsKeys().stream().map(k -> k + "=" + p.getParam(k)).toList());
            if (p.getBenchmark().endsWith("GemmBench.sgemm")) {
                String[] s = p.getParam("shape").split("x");
                double flops = 2.0 * Long.parseLong(s[0]) * Long.parseLong(s[1]) * Long.parseLong(s[2]);
                double gf = flops / score / 1e6;   // score in ms
                int t = Integer.parseInt(p.getParam("threads"));
                System.out.printf("%-60s %9.3f ms  %7.1f GFLOP/s  %5.1f%% of peak%n", line, score, gf, 100 * gf / peak[t - 1]);
            } else {
                System.out.printf("%-60s %9.3f %s%n", line, score, r.getPrimaryResult().getScoreUnit());
            }
        }
    }
}
