package dev.latent.cli;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import picocli.CommandLine.Model.OptionSpec;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;

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
}
