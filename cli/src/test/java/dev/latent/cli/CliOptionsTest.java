package dev.latent.cli;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import picocli.CommandLine.Model.ArgSpec;
import picocli.CommandLine.Model.OptionSpec;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

/** Issue 19: every command and every option of the CLI says what it is (a description in --help). */
class CliOptionsTest {
    @Test
    void everyCommandAndOptionHasADescription() {
        List<String> missing = new ArrayList<>();
        int options = 0, commands = 0;
        Deque<CommandLine> todo = new ArrayDeque<>(List.of(Main.commandLine()));
        while (!todo.isEmpty()) {
            CommandLine c = todo.pop();
            commands++;
            String name = c.getCommandSpec().qualifiedName(" ");
            if (String.join("", c.getCommandSpec().usageMessage().description()).isBlank()) missing.add(name + " (the command)");
            for (OptionSpec o : c.getCommandSpec().options()) {
                options++;
                if (String.join("", o.description()).isBlank()) missing.add(name + " " + o.longestName());
            }
            todo.addAll(c.getSubcommands().values());
        }
        assertEquals(List.of(), missing, "without a description, of " + options + " options in " + commands + " commands");
        assertTrue(options > 100, "walked the whole tree: " + options + " options");
    }

    /** A value list written into a description the old way: "a | b", "one of a, b", "must be a or b". */
    static final Pattern LISTED = Pattern.compile("(^|[\\s(])[a-z0-9][\\w.-]* \\| [a-z0-9][\\w.-]*|\\bone of\\b|\\bmust be [\\w-]+ or [\\w-]+");

    /**
     * Issue 19: an option whose value is one of a fixed set is an enum (picocli validates it and lists the set in --help),
     * never a String checked by hand: an option documented with a value list must be enum-typed, and an enum-typed option's
     * help must list every spelling it takes (${COMPLETION-CANDIDATES}).
     */
    @Test
    void fixedChoicesAreEnumsAndTheirHelpListsThem() {
        List<String> bad = new ArrayList<>();
        int enums = 0;
        Deque<CommandLine> todo = new ArrayDeque<>(List.of(Main.commandLine()));
        while (!todo.isEmpty()) {
            CommandLine c = todo.pop();
            String name = c.getCommandSpec().qualifiedName(" ");
            for (ArgSpec a : c.getCommandSpec().args()) {
                String what = name + " " + (a instanceof OptionSpec o ? o.longestName() : a.paramLabel());
                String description = String.join(" ", a.description());
                Class<?> e = a.type().isEnum() ? a.type() : a.auxiliaryTypes().length > 0 && a.auxiliaryTypes()[0].isEnum() ? a.auxiliaryTypes()[0] : null;
                if (e == null) {
                    if (LISTED.matcher(description).find()) bad.add(what + " lists its values (\"" + description + "\") but is typed " + a.type().getSimpleName());
                    continue;
                }
                enums++;
                for (Object v : e.getEnumConstants()) {
                    if (!Pattern.compile("(^|[\\s,(\\[])" + Pattern.quote(v.toString()) + "($|[\\s,:;)\\]])").matcher(description).find())
                        bad.add(what + ": its help does not list '" + v + "': " + description);
                    if (!v.toString().matches("[a-z0-9]+(-[a-z0-9]+)*")) bad.add(what + ": '" + v + "' is not a lowercase, hyphenated spelling");
                }
            }
            todo.addAll(c.getSubcommands().values());
        }
        assertEquals(List.of(), bad);
        assertTrue(enums >= 10, "fixed-choice options found: " + enums);
    }

    /**
     * Issue 19: an option shared with one meaning is declared once (a mixin, {@link Mixins} and the others), so its help
     * reads the same in every command: these names have exactly one description (defaults aside) across the tree.
     */
    @Test
    void sharedOptionsReadTheSameEverywhere() {
        List<String> shared = List.of("--threads", "--quiet", "--checkpoint", "--device", "--precision", "--overwrite", "--resume",
                "--stop-after", "--max-images", "--epochs", "--test-limit", "--iwae-n");
        java.util.Map<String, java.util.Map<String, List<String>>> seen = new java.util.TreeMap<>();
        Deque<CommandLine> todo = new ArrayDeque<>(List.of(Main.commandLine()));
        while (!todo.isEmpty()) {
            CommandLine c = todo.pop();
            for (OptionSpec o : c.getCommandSpec().options())
                if (shared.contains(o.longestName()))
                    seen.computeIfAbsent(o.longestName(), k -> new java.util.TreeMap<>())
                            .computeIfAbsent(String.join(" ", o.description()).replaceAll("\\(default: [^)]*\\)", ""), k -> new ArrayList<>())
                            .add(c.getCommandSpec().qualifiedName(" "));
            todo.addAll(c.getSubcommands().values());
        }
        assertEquals(new java.util.TreeSet<>(shared), seen.keySet(), "every shared option is used");
        seen.forEach((name, descriptions) -> assertEquals(1, descriptions.size(), name + " reads differently: " + descriptions));
    }

    /** The spellings are exactly the documented ones: an enum constant's Java name is refused unless it is the spelling. */
    @Test
    void choicesTakeExactlyTheirSpellings() {
        for (Class<?> t : Choices.enumTypes(Main.commandLine())) {
            for (Object v : t.getEnumConstants()) {
                @SuppressWarnings({"unchecked", "rawtypes"}) Object parsed = Choices.parse((Class) t, v.toString());
                assertSame(v, parsed);
                String name = ((Enum<?>) v).name();
                if (!name.equals(v.toString())) {
                    var ex = assertThrows(CommandLine.TypeConversionException.class, () -> Choices.parse((Class) t, name));
                    assertTrue(ex.getMessage().contains("expected one of " + java.util.Arrays.toString(t.getEnumConstants())), ex.getMessage());
                }
            }
        }
    }
}
