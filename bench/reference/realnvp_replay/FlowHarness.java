import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.data.ImageData;
import dev.latent.io.SafeTensors;
import dev.latent.models.flow.FlowTrainer;
import dev.latent.models.flow.RealNvp;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

import java.io.DataOutputStream;
import java.io.FileOutputStream;
import java.io.BufferedOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/** Diagnostic: Latent's RealNVP seed S: initial weights, the step-1 gradient, the first K steps' batches (indices,
 *  dequantisation noise) and per-step losses, as FlowTrainer.run does them, for a PyTorch replay. */
public class FlowHarness {
    public static void main(String[] a) throws Exception {
        long seed = Long.parseLong(a[0]);
        int k = Integer.parseInt(a[1]);
        Path out = Path.of(a[2]);
        Files.createDirectories(out);
        ImageData train = ImageData.load("fashion-mnist", "train");
        int hw = 784, bs = 64;
        int[] perm = ImageData.permutation(train.n, seed, (1L << 40) + 1);
        try (Scope scope = Scope.shared()) {
            // the step-1 gradient at the initial weights (a bare model: the same init as the trainer's)
            RealNvp m = new RealNvp(scope, 28, 28, 6, 64, 0.05, seed);
            Map<String, Tensor> grads = new LinkedHashMap<>();
            try (Graph g = Graph.open()) {
                Tensor[] pre = m.preprocess(g.scope(), train.pixels, perm, 0, bs, seed, (2L << 40) + 1);
                Var bpd = m.bitsPerDim(Var.constant(pre[0]), pre[1]);
                g.backward(bpd);
                System.out.println("grad-step loss " + bpd.value().toArray()[0]);
                for (var e : m.namedParameters().entrySet()) {
                    float[] v = e.getValue().grad().value().toArray();
                    grads.put(e.getKey(), Tensor.of(scope, v, e.getValue().value().shape()));
                }
            }
            SafeTensors.write(out.resolve("grad1.safetensors"), grads, Map.of());
            FlowTrainer t = new FlowTrainer(new FlowTrainer.Config("fashion-mnist", out, 6, 64, 1, bs, 1e-3f, 0, seed, 0, 0, true), scope, 28, 28);
            t.save(out.resolve("init.safetensors"));
            try (DataOutputStream idx = new DataOutputStream(new BufferedOutputStream(new FileOutputStream(out.resolve("idx.bin").toFile())));
                 DataOutputStream noise = new DataOutputStream(new BufferedOutputStream(new FileOutputStream(out.resolve("noise.bin").toFile())));
                 var losses = Files.newBufferedWriter(out.resolve("losses.txt"))) {
                for (int s = 1; s <= k; s++) {
                    int from = (s - 1) * bs;
                    for (int i = 0; i < bs; i++) idx.writeInt(Integer.reverseBytes(perm[from + i]));
                    try (Scope ss = Scope.confined()) {
                        float[] u = Tensor.rand(ss, seed, (2L << 40) + s, (long) bs * hw).toArray();
                        for (float f : u) noise.writeInt(Integer.reverseBytes(Float.floatToRawIntBits(f)));
                    }
                    double l = t.trainStep(train, perm, from, bs);
                    losses.write(s + " " + l + "\n");
                    losses.flush();
                    if (s % 50 == 0) t.save(out.resolve("step" + s + ".safetensors"));
                }
            }
        }
    }
}
