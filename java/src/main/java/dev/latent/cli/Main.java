package dev.latent.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code bin/latent}: train, sample, eval, bench. */
@Command(name = "latent", mixinStandardHelpOptions = true, version = "latent 0.1.0",
        description = "Generative models on the JVM with native kernels.",
        subcommands = {TrainCommand.class, SampleCommand.class, EvalCommand.class, BenchCommand.class, ImportCommand.class, ExportCommand.class})
public final class Main implements Runnable {
    @Override
    public void run() {
        new CommandLine(this).usage(System.out);
    }

    public static void main(String[] args) {
        CommandLine cl = new CommandLine(new Main());
        // A bad argument or a failed native call prints one clear line, not a stack trace.
        cl.setExecutionExceptionHandler((ex, cmd, parsed) -> {
            cmd.getErr().println("latent: " + ex.getMessage());
            return 1;
        });
        System.exit(cl.execute(args));
    }
}
