package example.service;

import dev.latent.serve.GptGenerator;
import dev.latent.serve.TextResult;
import jdk.jfr.Category;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.Name;
import jdk.jfr.Timespan;

/**
 * JFR events for the service, fed by the generator's {@link GptGenerator.Listener}: {@code latent.Request} per finished
 * request and {@code latent.DecodeStep} per decode step. Here, not in the library, so the core jar needs java.base only.
 * Record with {@code -XX:StartFlightRecording} or {@code jcmd PID JFR.start}; without a recording they cost a flag check.
 */
final class JfrEvents implements GptGenerator.Listener {
    @Name("latent.Request")
    @Label("Text request")
    @Category({"Latent", "Serving"})
    @Description("A generation request ended")
    static final class RequestEvent extends Event {
        @Label("Outcome") String outcome;
        @Label("Prompt tokens") int promptTokens;
        @Label("Tokens") int tokens;
        @Label("Queue wait") @Timespan(Timespan.NANOSECONDS) long queueNanos;
        @Label("Latency") @Timespan(Timespan.NANOSECONDS) long latencyNanos;
    }

    @Name("latent.DecodeStep")
    @Label("Decode step")
    @Category({"Latent", "Serving"})
    @Description("One decode step of a lane: sequences stepped together")
    static final class StepEvent extends Event {
        @Label("Sequences") int sequences;
        @Label("Tokens drawn") int drawn;
        @Label("Step time") @Timespan(Timespan.NANOSECONDS) long nanos;
    }

    @Override
    public void onStep(int sequences, int drawn, long nanos) {
        StepEvent e = new StepEvent();
        if (!e.isEnabled()) return;
        e.sequences = sequences;
        e.drawn = drawn;
        e.nanos = nanos;
        e.commit();
    }

    @Override
    public void onRequest(long queueNanos, TextResult r) {
        RequestEvent e = new RequestEvent();
        if (!e.isEnabled()) return;
        e.outcome = r.outcome().wire();
        e.promptTokens = r.promptTokens();
        e.tokens = r.tokens().length;
        e.queueNanos = queueNanos;
        e.latencyNanos = r.nanos();
        e.commit();
    }
}
