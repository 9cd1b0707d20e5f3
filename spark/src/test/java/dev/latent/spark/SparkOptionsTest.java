package dev.latent.spark;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.ArgSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Issue 19 for the Spark entry point ({@code bin/latent ... --spark}, spark-submit's main class), as cli's CliOptionsTest
 * for the CLI: SparkMain's whole command tree is walked; every command and option has a description, and an option
 * whose value is one of a fixed set is an enum that lists its spellings in --help and takes exactly those.
 */
class SparkOptionsTest {
    /** What is wrong with the tree under {@code root}: commands and options without a description, value lists not typed as enums. */
    static List<String> problems(CommandLine root) {
        List<String> bad = new ArrayList<>();
        Deque<CommandLine> todo = new ArrayDeque<>(List.of(root));
        while (!todo.isEmpty()) {
            CommandLine c = todo.pop();
            String name = c.getCommandSpec().qualifiedName(" ");
            if (String.join("", c.getCommandSpec().usageMessage().description()).isBlank()) bad.add(name + " (the command) has no description");
            for (ArgSpec a : c.getCommandSpec().args()) {
                String what = name + " " + (a instanceof OptionSpec o ? o.longestName() : a.paramLabel());
                String description = String.join(" ", a.description());
                if (description.isBlank()) bad.add(what + " has no description");
                Class<?> e = a.type().isEnum() ? a.type() : null;
                if (e == null) {
                    if (LISTED.matcher(description).find()) bad.add(what + " lists its values (\"" + description + "\") but is typed " + a.type().getSimpleName());
                    continue;
                }
                for (Object v : e.getEnumConstants())
                    if (!Pattern.compile("(^|[\\s,(\\[])" + Pattern.quote(v.toString()) + "($|[\\s,:;)\\]])").matcher(description).find())
                        bad.add(what + ": its help does not list '" + v + "': " + description);
            }
            todo.addAll(c.getSubcommands().values());
        }
        return bad;
    }

    /** A value list written into a description the old way: "a | b", "one of a, b" (without the enum's candidates), "must be a or b". */
    static final Pattern LISTED = Pattern.compile("(^|[\\s(])[a-z0-9][\\w.-]* \\| [a-z0-9][\\w.-]*|\\bone of (?!\\$\\{COMPLETION)|\\bmust be [\\w-]+ or [\\w-]+");

    static int options(CommandLine root) {
        int n = 0;
        Deque<CommandLine> todo = new ArrayDeque<>(List.of(root));
        while (!todo.isEmpty()) {
            CommandLine c = todo.pop();
            n += c.getCommandSpec().options().size();
            todo.addAll(c.getSubcommands().values());
        }
        return n;
    }

    @Test
    void everyCommandAndOptionIsDescribedAndChoicesAreEnums() {
        CommandLine root = SparkMain.commandLine();
        assertEquals(List.of(), problems(root));
        assertTrue(options(root) >= 25, "walked the whole tree (train gpt included): " + options(root) + " options");
        OptionSpec tok = root.getSubcommands().get("train").getSubcommands().get("gpt").getCommandSpec().findOption("--tokenizer");
        assertTrue(tok.type().isEnum(), "--tokenizer is an enum, not a " + tok.type().getSimpleName());
    }

    /** A command written the old way: the walk must report it (the check above can fail). */
    @Command(name = "old", description = "a fixture")
    static final class Old implements Runnable {
        @Option(names = "--bare") int bare;
        @Option(names = "--mode", description = "must be fast or slow") String mode;
        @Override public void run() {}
    }

    @Test
    void theWalkReportsAnUndescribedOptionAndAStringChoice() {
        List<String> p = problems(new CommandLine(new Old()));
        assertEquals(List.of("old --bare has no description", "old --mode lists its values (\"must be fast or slow\") but is typed String"), p);
    }

    record Result(int rc, String err) {}

    static Result parse(String... args) {
        CommandLine cl = SparkMain.commandLine();
        StringWriter err = new StringWriter();
        cl.setErr(new PrintWriter(err, true));
        cl.setOut(new PrintWriter(new StringWriter(), true));
        cl.setExecutionStrategy(pr -> 0);   // parse and convert only: nothing starts Spark
        return new Result(cl.execute(args), err.toString());
    }

    @Test
    void tokenizerTakesExactlyItsSpellings() {
        for (String ok : new String[] {"char", "bpe"}) assertEquals(0, parse("train", "gpt", "--out", "x", "--tokenizer", ok).rc(), ok);
        for (String badValue : new String[] {"CHAR", "BPE", "word", ""}) {
            Result r = parse("train", "gpt", "--out", "x", "--tokenizer", badValue);
            assertEquals(2, r.rc(), badValue + ": " + r.err());
            assertTrue(r.err().contains("Invalid value for option '--tokenizer': expected one of [char, bpe] but was '" + badValue + "'"), r.err());
        }
        String help = new CommandLine(new SparkMain.Gpt()).getUsageMessage();
        assertTrue(help.contains("one of char, bpe"), help);
    }
}
