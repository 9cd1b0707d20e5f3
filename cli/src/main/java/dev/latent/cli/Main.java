package dev.latent.cli;

import dev.latent.train.DivergedException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.util.ArrayList;
import java.util.List;
import java.util.ServiceLoader;

/**
 * {@code bin/latent}: train, sample, eval, bench. Exit status: 0 done, 1 bad input or a failed read / write, 2 a usage
 * error (unknown option, missing or malformed value), 3 training diverged. Every failure is one line on stderr naming
 * the thing, the value and what was expected; {@code --stacktrace} (anywhere on the line) adds the full trace.
 */
@Command(name = "latent", mixinStandardHelpOptions = true, version = "latent 0.2.0",
        description = "Generative models on the JVM with native kernels.",
        subcommands = {TrainCommand.class, SampleCommand.class, EvalCommand.class, ProvenanceCommand.class, ImportCommand.class, ExportCommand.class},
        footer = "Global flag: --stacktrace prints the full stack trace of a failure (default: one line).")
public final class Main implements Runnable {
    @Override
    public void run() {
        new CommandLine(this).usage(System.out);
    }

    public static void main(String[] args) {
        // The plots (loss.png) draw with java.awt: never open a window or need a display. Set here, for this process
        // only, unless the caller chose otherwise; the library itself leaves the JVM's AWT mode alone.
        if (System.getProperty("java.awt.headless") == null) System.setProperty("java.awt.headless", "true");
        System.exit(run(args));
    }

    /** Runs one command line in this JVM and returns its exit status (what {@link #main} exits with). */
    public static int run(String... args) {
        List<String> rest = new ArrayList<>();
        boolean trace = false;
        for (String a : args) {
            if (a.equals("--stacktrace")) trace = true;
            else rest.add(a);
        }
        boolean stacktrace = trace;
        CommandLine cl = commandLine();
        PrintWriter err = new PrintWriter(System.err, true);
        cl.setErr(err);
        cl.setOut(new PrintWriter(System.out, true));
        cl.setParameterExceptionHandler((ex, a) -> {
            CommandLine c = ex.getCommandLine();
            err.println("latent: " + oneLine(ex.getMessage()) + " (see '" + c.getCommandSpec().qualifiedName() + " --help')");
            if (stacktrace) ex.printStackTrace(err);
            return c.getCommandSpec().exitCodeOnInvalidInput();
        });
        cl.setExecutionExceptionHandler((ex, cmd, parsed) -> report(ex, stacktrace, err));
        try {
            return cl.execute(rest.toArray(String[]::new));
        } catch (OutOfMemoryError | StackOverflowError e) {   // Errors are not handed to the execution handler
            return report(e, stacktrace, err);
        }
    }

    static CommandLine commandLine() {
        // No @argument files: picocli would read any "@PATH" argument as a file of arguments, and a missing or unreadable
        // one escaped as an InitializationException with a stack trace (found by CliArgsFuzzTest with "@/").
        CommandLine cl = new CommandLine(new Main()).setExpandAtFiles(false);
        // Commands from other modules on the class path (latent-bench's `bench`: oneDNN and the workloads stay out of
        // this module); without latent-bench, `bench` is a stand-in that says how to get it.
        for (CommandProvider p : ServiceLoader.load(CommandProvider.class)) cl.addSubcommand(p.command());
        if (!cl.getSubcommands().containsKey("bench")) cl.addSubcommand(new BenchUnavailable());
        Choices.register(cl);   // every fixed-choice option takes exactly its documented spellings
        return cl;
    }

    /** {@code bench} when latent-bench is not on the class path: accepts anything, runs nothing, says why. */
    @Command(name = "bench", mixinStandardHelpOptions = true,
            description = "Benchmark a workload (needs the latent-bench module on the class path: use bin/latent bench).")
    static final class BenchUnavailable implements Runnable {
        @CommandLine.Unmatched
        List<String> args = new ArrayList<>();

        @Override
        public void run() {
            throw new IllegalStateException("bench: the latent-bench module (workloads, JMH, oneDNN peer) is not on the class path; "
                    + "run 'bin/latent bench ...', which builds it and adds it");
        }
    }

    /** One line for a failure (plus the trace with --stacktrace); returns the exit status. */
    static int report(Throwable ex, boolean stacktrace, PrintWriter err) {
        err.println("latent: " + describe(ex));
        if (stacktrace) ex.printStackTrace(err);
        else if (!(ex instanceof IllegalArgumentException) && !(ex instanceof IOException) && !(ex instanceof DivergedException)
                && !(ex instanceof UncheckedIOException) && !(ex instanceof OutOfMemoryError))
            err.println("latent: (run with --stacktrace for the full trace)");
        return ex instanceof DivergedException ? DivergedException.EXIT_CODE : 1;
    }

    /** A one-line description that names the thing: never "null", never a bare path. */
    static String describe(Throwable ex) {
        if (ex instanceof UncheckedIOException u && u.getCause() != null) ex = u.getCause();
        if (ex instanceof OutOfMemoryError)
            return "out of memory (" + oneLine(ex.getMessage()) + "): the request is too large for this JVM; use smaller sizes or raise -Xmx";
        if (ex instanceof NoSuchFileException e) return "no such file or directory" + file(e) + other(e);
        if (ex instanceof AccessDeniedException e) return "permission denied" + file(e) + other(e);
        if (ex instanceof FileAlreadyExistsException e) return "already exists" + file(e) + other(e);
        if (ex instanceof NotDirectoryException e) return "not a directory" + file(e);
        if (ex instanceof DirectoryNotEmptyException e) return "directory not empty" + file(e);
        if (ex instanceof FileSystemException e)
            return (e.getReason() != null ? e.getReason() : "file system error") + file(e) + other(e);
        // a bug, not bad input: its helpful message talks about nulls in the code; say what and where instead
        if (ex instanceof NullPointerException) return "internal error: a missing value (NullPointerException" + where(ex) + "); please report it with the trace of --stacktrace";
        String m = ex.getMessage();
        if (m == null || m.isBlank() || m.equals("null")) {
            Throwable c = ex.getCause();
            return c != null && c != ex ? describe(c) : ex.getClass().getSimpleName() + where(ex) + " (no message; run with --stacktrace)";
        }
        return oneLine(m);
    }

    private static String file(FileSystemException e) {
        return e.getFile() != null ? ": " + e.getFile() : "";
    }

    private static String other(FileSystemException e) {
        return e.getOtherFile() != null ? " (and " + e.getOtherFile() + ")" : "";
    }

    /** " in Class.method" of the frame that threw, or "" without a trace. */
    private static String where(Throwable ex) {
        StackTraceElement[] st = ex.getStackTrace();
        if (st.length == 0) return "";
        String cls = st[0].getClassName();
        return " in " + cls.substring(cls.lastIndexOf('.') + 1) + "." + st[0].getMethodName();
    }

    static String oneLine(String s) {
        if (s == null) return "no message";
        String t = s.strip();
        int nl = t.indexOf('\n');
        return nl < 0 ? t : t.substring(0, nl).strip();
    }
}
