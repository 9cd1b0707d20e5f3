package dev.latent.golden;

import dev.latent.TestUtil;
import dev.latent.autograd.F;
import dev.latent.autograd.Graph;
import dev.latent.io.JsonReader;
import dev.latent.models.gpt.GptCheckpoint;
import dev.latent.tensor.Scope;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Our GPT forward on a tiny committed model against PyTorch's double-precision forward of the same weights
 * (resources/golden). fp32 through two blocks of O(1) activations: 1e-4 absolute on logits and loss.
 */
class GptGoldenTest {
    @Test
    void forwardMatchesPyTorch() throws Exception {
        Path dir = Path.of(GptGoldenTest.class.getResource("/golden/gpt_tiny.safetensors").toURI()).getParent();
        Map<String, Object> want = JsonReader.parseObject(Files.readString(dir.resolve("gpt_tiny_expected.json")));
        int b = ((Long) want.get("B")).intValue(), t = ((Long) want.get("T")).intValue();
        try (Scope s = Scope.shared(); Arena a = Arena.ofConfined(); Graph g = Graph.inference()) {
            var l = GptCheckpoint.load(dir.resolve("gpt_tiny.safetensors"), s);
            MemorySegment ids = a.allocate(JAVA_INT, (long) b * t), tg = a.allocate(JAVA_INT, (long) b * t);
            List<?> wi = (List<?>) want.get("ids"), wt = (List<?>) want.get("targets");
            for (int i = 0; i < b * t; i++) {
                ids.setAtIndex(JAVA_INT, i, ((Long) wi.get(i)).intValue());
                tg.setAtIndex(JAVA_INT, i, ((Long) wt.get(i)).intValue());
            }
            float[] logits = l.model().logits(ids, b, t).value().toArray();
            List<?> wl = (List<?>) want.get("logits");
            double[] ref = new double[wl.size()];
            for (int i = 0; i < ref.length; i++) ref[i] = ((Number) wl.get(i)).doubleValue();
            TestUtil.assertClose("logits vs PyTorch", logits, ref, 1e-4, 1e-4);
            assertEquals(((Number) want.get("loss")).doubleValue(), F.item(l.model().loss(ids, tg, b, t)), 1e-4);
        }
    }
}
