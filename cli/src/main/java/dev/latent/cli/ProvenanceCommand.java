package dev.latent.cli;

import dev.latent.io.Json;
import dev.latent.io.Provenance;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;

/** {@code latent provenance FILE.png ...}: the Latent-Provenance record of each PNG, one JSON object per line. */
@Command(name = "provenance", mixinStandardHelpOptions = true,
        description = "Print the provenance Latent wrote into PNG files (model, checkpoint SHA-256, seed, settings), one JSON object per file. "
                + "Exit status 1 when a file has none. Metadata can be stripped or forged: this is a label, not a watermark.")
final class ProvenanceCommand implements Callable<Integer> {
    @Parameters(arity = "1..*", paramLabel = "FILE.png", description = "PNG files written by Latent") List<Path> files;

    @Override
    public Integer call() throws Exception {
        int missing = 0;
        for (Path f : files) {
            if (!Files.isRegularFile(f)) throw new IllegalArgumentException(f + ": no such file");
            Optional<Map<String, Object>> p = Provenance.read(f);
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("file", f.toString());
            if (p.isPresent()) out.put("provenance", p.get());
            else {
                out.put("provenance", null);
                out.put("note", "no Latent provenance: not written by Latent, or its metadata was stripped");
                missing++;
            }
            System.out.println(Json.object(out));
        }
        return missing == 0 ? 0 : 1;
    }
}
