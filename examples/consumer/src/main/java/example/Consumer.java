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
        if (mode.equals("module-path")) rawBindingIsHidden(latent);
        try (Graph g = Graph.inference()) {
            Var a = Var.constant(Tensor.of(g.scope(), new float[] {1, 2, 3, 4, 5, 6}, 2, 3));
            Var b = Var.constant(Tensor.of(g.scope(), new float[] {7, 8, 9, 10, 11, 12}, 3, 2));
            float[] c = F.matmul(a, b).value().toArray();
            float[] want = {58, 64, 139, 154};
            // Philox uniforms: the tensor layer reaches the generator through its service (module-info's provides)
            for (float u : Tensor.rand(g.scope(), 1, 0, 64).toArray())
                if (!(u > 0 && u < 1)) throw new AssertionError("Tensor.rand gave " + u + ", outside (0, 1)");
            if (!java.util.Arrays.equals(c, want))
                throw new AssertionError("got " + java.util.Arrays.toString(c) + ", want " + java.util.Arrays.toString(want));
            System.out.println("consumer (" + mode + ", Latent in " + (latent.isNamed() ? "module " + latent.getName() : "the unnamed module")
                    + "): ok, C = " + java.util.Arrays.toString(c) + " (library " + Latent.nativeLibrary() + ", " + Latent.threads() + " threads, ISA " + Latent.isa() + ")");
        }
    }

    /**
     * On the module path Latent is an explicit module that exports its API, not the raw FFM binding, the CUDA backend or
     * the ops: a public method of {@code dev.latent.nativ.LatentNative} cannot be looked up from this module.
     */
    static void rawBindingIsHidden(Module latent) {
        if (latent.getDescriptor().isAutomatic()) throw new AssertionError("Latent is an automatic module (no module-info): " + latent);
        for (String internal : new String[] {"dev.latent.nativ", "dev.latent.cuda", "dev.latent.ops"})
            if (latent.isExported(internal, Consumer.class.getModule()))
                throw new AssertionError(internal + " is exported to " + Consumer.class.getModule());
        try {
            Class<?> raw = Class.forName("dev.latent.nativ.LatentNative");
            java.lang.invoke.MethodHandles.publicLookup().findStatic(raw, "get", java.lang.invoke.MethodType.methodType(raw));
            throw new AssertionError("the raw binding dev.latent.nativ.LatentNative.get() is reachable from " + Consumer.class.getModule());
        } catch (IllegalAccessException expected) {
            // the module boundary: dev.latent does not export dev.latent.nativ to this module
        } catch (ReflectiveOperationException e) {
            throw new AssertionError("LatentNative not found in the module: " + e, e);
        }
    }
}
