package dev.latent.cli;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import picocli.CommandLine;
import picocli.CommandLine.Model.OptionSpec;

import java.util.ArrayList;
import java.util.List;

/**
 * Hostile command lines (issue 17): any sequence of arguments for any command either parses or is refused with a
 * picocli ParameterException that has a message; a parsed {@code train gpt} line then passes or fails its range
 * checks (shared Limits) with an IllegalArgumentException that names the option. Nothing runs: no file is read or
 * written. No other exception may escape, and {@link Main#describe} never answers with "null".
 */
class CliArgsFuzzTest {
    static final List<CommandLine> LEAVES = new ArrayList<>();
    /** One model, reused: picocli resets every option to its initial value before each parse. */
    static final CommandLine CL = Main.commandLine();

    static {
        HostileCliTest.collect(CL, LEAVES);
    }

    @FuzzTest(maxDuration = "6s")
    void parse(FuzzedDataProvider data) {
        CommandLine leaf = LEAVES.get(data.consumeInt(0, LEAVES.size() - 1));
        List<String> args = new ArrayList<>(List.of(leaf.getCommandSpec().qualifiedName(" ").split(" ")));
        args.remove(0);
        List<OptionSpec> options = leaf.getCommandSpec().options();
        int n = data.consumeInt(0, 12);
        for (int i = 0; i < n; i++) {
            if (data.consumeBoolean()) args.add(options.get(data.consumeInt(0, options.size() - 1)).longestName());
            args.add(data.consumeString(24));
        }
        try {
            var pr = CL.parseArgs(args.toArray(String[]::new));
            while (pr.hasSubcommand()) pr = pr.subcommand();
            if (pr.commandSpec().userObject() instanceof TrainCommand.Gpt g) {
                try {
                    g.validate();
                } catch (IllegalArgumentException e) {
                    String m = Main.describe(e);
                    if (!m.startsWith("--")) throw new AssertionError("a range error that does not name its option: " + m, e);
                }
            }
        } catch (CommandLine.ParameterException e) {
            String m = Main.describe(e);
            boolean echoed = args.stream().anyMatch(x -> x.contains("null"));   // the user's own text may say null
            if (m.isBlank() || (!echoed && m.matches("(?s).*\\bnull\\b.*"))) throw new AssertionError("usage error message: " + m, e);
        }
    }
}
