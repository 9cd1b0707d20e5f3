package example;

import dev.latent.nativ.LatentNative;
import dev.latent.ops.Gemm;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;

/** Multiplies two small matrices with Latent from the installed artifacts and checks the answer. */
public final class Consumer {
    public static void main(String[] args) {
        try (Scope scope = Scope.confined()) {
            Tensor a = Tensor.of(scope, new float[] {1, 2, 3, 4, 5, 6}, 2, 3);
            Tensor b = Tensor.of(scope, new float[] {7, 8, 9, 10, 11, 12}, 3, 2);
            float[] c = Gemm.matmul(scope, a, b).toArray();
            float[] want = {58, 64, 139, 154};
            if (!java.util.Arrays.equals(c, want))
                throw new AssertionError("got " + java.util.Arrays.toString(c) + ", want " + java.util.Arrays.toString(want));
            System.out.println("consumer: ok, C = " + java.util.Arrays.toString(c) + " (library " + LatentNative.get().path() + ")");
        }
    }
}
