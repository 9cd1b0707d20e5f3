package example;

import dev.latent.Latent;
import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.autograd.Var;
import dev.latent.tensor.Tensor;

/**
 * Multiplies two small matrices with Latent from the installed artifacts and checks the answer. The argument says how
 * it was launched ({@code class-path} or {@code module-path}), and the run checks that Latent came in that way.
 */
public final class Consumer {
    public static void main(String[] args) {
        String mode = args.length > 0 ? args[0] : "class-path";
        Module latent = Tensor.class.getModule();
        if (mode.equals("module-path") && !(Consumer.class.getModule().isNamed() && "dev.latent".equals(latent.getName())))
            throw new AssertionError("module path run, but Latent is in " + latent + " and the consumer in " + Consumer.class.getModule());
        if (mode.equals("class-path") && latent.isNamed())
            throw new AssertionError("class path run, but Latent is in named module " + latent.getName());
        try (Graph g = Graph.inference()) {
            Var a = Var.constant(Tensor.of(g.scope(), new float[] {1, 2, 3, 4, 5, 6}, 2, 3));
            Var b = Var.constant(Tensor.of(g.scope(), new float[] {7, 8, 9, 10, 11, 12}, 3, 2));
            float[] c = F.matmul(a, b).value().toArray();
            float[] want = {58, 64, 139, 154};
            if (!java.util.Arrays.equals(c, want))
                throw new AssertionError("got " + java.util.Arrays.toString(c) + ", want " + java.util.Arrays.toString(want));
            System.out.println("consumer (" + mode + ", Latent in " + (latent.isNamed() ? "module " + latent.getName() : "the unnamed module")
                    + "): ok, C = " + java.util.Arrays.toString(c) + " (library " + Latent.nativeLibrary() + ", " + Latent.threads() + " threads, ISA " + Latent.isa() + ")");
        }
    }
}
