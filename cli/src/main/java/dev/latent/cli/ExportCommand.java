package dev.latent.cli;

import dev.latent.io.SafeTensors;
import dev.latent.tensor.Scope;
import dev.latent.tensor.Tensor;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code latent export --weights-only CKPT --out OUT}: a copy of a Latent checkpoint without the optimizer's
 * moments (tensors named {@code opt.*}, {@code optG.*}, {@code optD.*}), about a third of the size. The copy
 * samples, evaluates and serves like the original; it cannot resume training.
 */
@Command(name = "export", mixinStandardHelpOptions = true,
        description = "Write a copy of a checkpoint for inference (without optimizer moments; it cannot resume training).")
final class ExportCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "CKPT", description = "a checkpoint folder (holding one .safetensors file) or a .safetensors file")
    Path checkpoint;
    @Option(names = "--out", required = true, description = "the folder to write the copy to (same file name), or a .safetensors file")
    Path out;
    @Option(names = "--weights-only", description = "drop the optimizer moments (required: the only kind of export so far)")
    boolean weightsOnly;

    /** True for an optimizer moment of any Latent checkpoint family. */
    static boolean isOptimizerState(String name) {
        return name.startsWith("opt.") || name.startsWith("optG.") || name.startsWith("optD.");
    }

    @Override
    public Integer call() throws Exception {
        // Checked here rather than as a required picocli option: a required flag reads as one taking a value.
        if (!weightsOnly) throw new IllegalArgumentException("export needs --weights-only (the only kind of export so far: a copy without optimizer moments)");
        Path in = checkpoint;
        if (Files.isDirectory(in)) {
            try (var l = Files.list(in)) {
                var files = l.filter(p -> p.getFileName().toString().endsWith(".safetensors")).toList();
                if (files.size() != 1) throw new IllegalArgumentException(in + " holds " + files.size() + " .safetensors files; name the one to export");
                in = files.get(0);
            }
        }
        Path dst = out.getFileName().toString().endsWith(".safetensors") ? out : out.resolve(in.getFileName());
        if (Files.exists(dst) && Files.isSameFile(dst, in)) throw new IllegalArgumentException("--out " + dst + " is the checkpoint itself");
        try (Scope scope = Scope.shared()) {
            SafeTensors.Loaded l = SafeTensors.read(in, scope);
            Map<String, Tensor> keep = new LinkedHashMap<>();
            long dropped = 0;
            for (var e : l.tensors().entrySet()) {
                if (isOptimizerState(e.getKey())) dropped += e.getValue().numel();
                else keep.put(e.getKey(), e.getValue());
            }
            SafeTensors.write(dst, keep, l.metadata());
            System.err.printf("%s: %d tensors kept, %d optimizer values dropped -> %s (%d bytes)%n", in, keep.size(), dropped, dst, Files.size(dst));
        }
        return 0;
    }
}
