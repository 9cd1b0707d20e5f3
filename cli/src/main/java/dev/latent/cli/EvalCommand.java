package dev.latent.cli;

import picocli.CommandLine.Command;

/** {@code latent eval <metric>}: one JSON object on stdout. */
@Command(name = "eval", mixinStandardHelpOptions = true, description = "Evaluate models and sample sets (one JSON object out).",
        subcommands = {GanCommands.EvalFid.class, VaeCommands.Eval.class, PixelCnnCommands.Eval.class, VaeAnomalyCommand.class, FlowCommands.Eval.class, FlowCommands.EvalGlow.class})
final class EvalCommand implements Runnable {
    @Override
    public void run() {
        throw new IllegalArgumentException("name what to evaluate: latent eval fid ... (see latent eval --help)");
    }
}
