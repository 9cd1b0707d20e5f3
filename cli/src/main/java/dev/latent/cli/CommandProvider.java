package dev.latent.cli;

/**
 * A subcommand of {@code latent} from another module, found through {@link java.util.ServiceLoader} (a
 * {@code META-INF/services/dev.latent.cli.CommandProvider} entry). latent-bench provides {@code bench} this way, so
 * the CLI neither depends on nor builds the benchmark module (and its oneDNN peer) for its other commands.
 */
public interface CommandProvider {
    /** A new picocli command object (a class annotated with {@code @Command}), added under its own name. */
    Object command();
}
