package dev.latent.serve;

import dev.latent.models.gpt.BatchDecoder;
import dev.latent.models.gpt.DecodeSequence;
import dev.latent.models.gpt.DeviceKvDecoder;
import dev.latent.models.gpt.Gpt;
import dev.latent.models.gpt.GptCheckpoint;
import dev.latent.models.gpt.KvDecoder;
import dev.latent.tensor.Device;
import dev.latent.tensor.Scope;
import dev.latent.text.Tokenizer;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;

/**
 * A GPT served to many threads. The weights are loaded once (by default packed for the decoder's GEMM, see
 * {@link #load}); requests wait in one
 * bounded queue and are decoded by {@code lanes} threads, each stepping up to {@code maxBatch} requests
 * together (continuous batching: a request joins a lane's batch at the next token and leaves when done,
 * cancelled or past its deadline). A request's KV cache lives in its own scope, freed as it leaves.
 * Results do not depend on lanes, batch size or what else runs (see {@link KvDecoder}), so a request
 * gives the same text alone, batched, or from {@code bin/latent sample gpt} (which decodes packed too; a
 * generator with {@link KvDecoder.Weights#IN_PLACE} gives {@link dev.latent.models.gpt.GptSampler}'s text instead:
 * the two layouts agree to float rounding, so their texts can differ where two tokens' odds are that close).
 * <p>
 * On {@link Device#CUDA} ({@link Options#withDevice}): the model's tensors and every request's KV cache live in device
 * memory and ONE lane steps up to {@code maxBatch} requests together through {@link DeviceKvDecoder} (all their rows as
 * one batch through each block, one host synchronisation a step), whose pool holds {@code maxBatch} caches; a request
 * gives there the same tokens alone or batched (DeviceKvDecoder's class comment says where that holds bit for bit), and
 * the CPU's text to float rounding.
 */
public final class GptGenerator implements TextGenerator {
    /**
     * {@code lanes}: decoding threads (about the cores to give it); {@code maxBatch}: requests one lane
     * steps together (1 = no batching); {@code maxQueued}: requests accepted but not finished, past which
     * {@link #submit} refuses; {@code weights}: the decoder's weight layout. {@link KvDecoder.Weights#PACKED}, the
     * default, streams the matrices from k-major panels (BENCHMARKS.md S2: 2.1-2.8x a PyTorch KV-cache loop, against
     * 1.3-1.8x in place on one thread); {@link #load} then holds the matrices only packed (~1x the weight bytes),
     * while a generator over a caller's {@link Gpt} packs a copy beside the caller's model (the caller's tensors are
     * never freed). {@link KvDecoder.Weights#IN_PLACE} reads the model's matrices where they are (no copy, slower at
     * larger batches). The two layouts' texts can differ where two tokens' logits are within float rounding.
     * {@code device}: where the model decodes, {@link Device#CPU} (the default, {@link KvDecoder}) or {@link Device#CUDA}
     * ({@link DeviceKvDecoder}: one lane, so {@code lanes} must be 1; {@code weights} is not used there, the device reads
     * the model's tensors as they are).
     */
    public record Options(int lanes, int maxBatch, int maxQueued, KvDecoder.Weights weights, Device device) {
        public Options {
            if (lanes < 1 || maxBatch < 1 || maxQueued < 1) throw new IllegalArgumentException("options must be >= 1: " + this);
            java.util.Objects.requireNonNull(weights, "weights");
            java.util.Objects.requireNonNull(device, "device");
            if (device == Device.CUDA && lanes != 1)
                throw new IllegalArgumentException("options: on CUDA one lane steps the batch (lanes must be 1, got " + lanes + ")");
        }

        /** On the CPU. */
        public Options(int lanes, int maxBatch, int maxQueued, KvDecoder.Weights weights) { this(lanes, maxBatch, maxQueued, weights, Device.CPU); }

        /** The weights packed ({@link KvDecoder.Weights#PACKED}, the default), on the CPU. */
        public Options(int lanes, int maxBatch, int maxQueued) { this(lanes, maxBatch, maxQueued, KvDecoder.Weights.PACKED); }

        /** These options with another weight layout. */
        public Options withWeights(KvDecoder.Weights w) { return new Options(lanes, maxBatch, maxQueued, w, device); }

        /** These options decoding on {@code d}; on {@link Device#CUDA} with one lane (see the record's comment). */
        public Options withDevice(Device d) { return new Options(d == Device.CUDA ? 1 : lanes, maxBatch, maxQueued, weights, d); }

        /** One lane per core (at most 4), batches of up to 16 (measured best on 2 cores, docs/decisions.md), 1024 requests in flight. */
        public static Options defaults() {
            return new Options(Math.min(4, Runtime.getRuntime().availableProcessors()), 16, 1024);
        }
    }

    private final Scope owned;          // the model's scope when loaded here in place, else null (the caller's, or none)
    private final Gpt model;            // null when loaded packed (the decoder holds the weights)
    private final dev.latent.models.gpt.GptConfig cfg;
    private final Tokenizer tok;
    private final BatchDecoder<?> decoder;   // KvDecoder on the CPU, DeviceKvDecoder on CUDA
    private final Options opt;
    private final LinkedBlockingQueue<Job> queue = new LinkedBlockingQueue<>();
    private final AtomicInteger inFlight = new AtomicInteger();
    final AtomicInteger peakBatch = new AtomicInteger();     // the largest batch a lane stepped (tests)
    private final List<Thread> lanes = new ArrayList<>();
    private final GeneratorMetrics.Recorder recorder = new GeneratorMetrics.Recorder();
    private volatile Listener listener;

    /**
     * Observes the generator's work (for JFR events, tracing or metrics of the application's choice; the library itself
     * depends on java.base only). Called on the decoding threads: keep it short; an exception from it is ignored.
     */
    public interface Listener {
        /** One decode step: {@code sequences} stepped together in {@code nanos}, {@code drawn} tokens drawn. */
        default void onStep(int sequences, int drawn, long nanos) {}

        /** A request ended (any outcome): its time in the queue before its first step, and its result. */
        default void onRequest(long queueNanos, TextResult result) {}
    }

    /** Sets (or with null removes) the {@link Listener}. */
    public void listener(Listener l) { listener = l; }

    /** Counts, rates and latency percentiles of the recent work (see {@link GeneratorMetrics}). */
    public GeneratorMetrics metrics() { return recorder.snapshot(); }
    private volatile boolean closed;

    /**
     * Serves {@code model}, whose tensors stay the caller's (its scope must stay open until {@link #close()}; nothing of
     * it is freed here). With {@link KvDecoder.Weights#PACKED} (the default) the generator packs a copy of the matrices
     * into memory of its own, freed by {@link #close()}: the process then holds the caller's model plus ~1x the matrix
     * bytes; {@link KvDecoder.Weights#IN_PLACE} adds nothing. {@link #load} holds the matrices once either way. With
     * {@link Options#device()} CUDA the model's parameters must be on CUDA (IllegalArgumentException otherwise); the
     * generator allocates a device pool of {@code maxBatch} KV caches, freed by {@link #close()}.
     */
    public GptGenerator(Gpt model, Tokenizer tokenizer, Options options) {
        this(null, model, tokenizer, decoderFor(model, options), options);
    }

    private static BatchDecoder<?> decoderFor(Gpt model, Options o) {
        return o.device() == Device.CUDA ? new DeviceKvDecoder(model, o.maxBatch()) : new KvDecoder(model, o.weights());
    }

    private GptGenerator(Scope owned, Gpt model, Tokenizer tokenizer, BatchDecoder<?> decoder, Options options) {
        this.owned = owned;
        this.model = model;
        this.cfg = decoder.config();
        this.tok = tokenizer;
        this.decoder = decoder;
        this.opt = options;
        for (int i = 0; i < options.lanes(); i++) {
            Thread t = new Thread(this::lane, "latent-gpt-lane-" + i);
            t.setDaemon(true);
            lanes.add(t);
            t.start();
        }
    }

    /**
     * Loads a checkpoint (a training --out folder or a .safetensors file) and serves it. Only the weights are read,
     * through a mapping of the file (the optimizer moments are never touched), so the generator holds the weights once
     * plus the KV caches of the requests in flight: with {@link KvDecoder.Weights#PACKED} (the default) straight into
     * the decoder ({@link GptCheckpoint#loadPacked}: each matrix packed and its original layout dropped, no {@link Gpt}
     * kept, so {@link #model()} is not available); with {@link KvDecoder.Weights#IN_PLACE} into a model's parameters
     * ({@link GptCheckpoint#loadWeights}). On {@link Device#CUDA} ({@link Options#device()}) into a model's
     * parameters that then move to the device (the host copy is dropped), decoded by {@link DeviceKvDecoder}.
     */
    public static GptGenerator load(Path checkpoint, Options options) throws IOException {
        if (options.weights() == KvDecoder.Weights.PACKED && options.device() == Device.CPU) {
            GptCheckpoint.Served sv = GptCheckpoint.loadPacked(checkpoint, false);
            try {
                return new GptGenerator(null, null, sv.tokenizer(), sv.decoder(), options);
            } catch (RuntimeException | Error e) {
                sv.decoder().close();
                throw e;
            }
        }
        Scope s = Scope.shared();
        BatchDecoder<?> d = null;
        try {
            GptCheckpoint.Loaded l = GptCheckpoint.loadWeights(checkpoint, s, false);
            if (options.device() == Device.CUDA) l.model().to(s, Device.CUDA);
            d = decoderFor(l.model(), options);
            return new GptGenerator(s, l.model(), l.tokenizer(), d, options);
        } catch (IOException | RuntimeException | Error e) {
            if (d != null) d.close();
            s.close();
            throw e;
        }
    }

    @Override
    public Tokenizer tokenizer() { return tok; }

    @Override
    public int context() { return cfg.context(); }

    /**
     * The served model. A generator {@link #load loaded} packed holds none (its weights live in the decoder's packed
     * panels): IllegalStateException; see {@link #config()}.
     */
    public Gpt model() {
        if (model == null) throw new IllegalStateException("this generator was loaded packed: it holds no Gpt (its weights are in the decoder)");
        return model;
    }

    /** The served model's configuration. */
    public dev.latent.models.gpt.GptConfig config() { return cfg; }

    /** The weight layout the decoder reads (on CUDA: {@link KvDecoder.Weights#IN_PLACE}, the model's tensors as they are). */
    public KvDecoder.Weights weights() { return decoder instanceof KvDecoder k ? k.weights() : KvDecoder.Weights.IN_PLACE; }

    /** Where the model decodes ({@link Options#device()}). */
    public Device device() { return opt.device(); }

    /** Bytes of one request's KV cache (the whole context; every request in flight holds one). */
    public long cacheBytes() { return decoder.cacheBytes(); }

    public Options options() { return opt; }

    @Override
    public int inFlight() { return inFlight.get(); }

    private static final class Job {
        final TextRequest req;
        final int[] prompt;
        final KvDecoder.Settings settings;
        final RequestControl control;
        final Consumer<String> onText;     // null: not streamed
        final CompletableFuture<TextResult> future = new CompletableFuture<>();
        DecodeSequence seq;
        int seen, emitted, searchFrom;     // tokens looked at, characters handed to onText, where the stop search resumes
        String stoppedText;                // the text up to the stop sequence, once one was produced
        long queueNanos = -1;              // submission to admission into a lane's batch

        Job(TextRequest req, int[] prompt, KvDecoder.Settings settings, Consumer<String> onText) {
            this.req = req;
            this.prompt = prompt;
            this.settings = settings;
            this.control = RequestControl.of(req.timeout());
            this.onText = onText;
        }

        /**
         * After a step that drew a token: looks for a stop sequence in the text so far and streams what is settled (text
         * that could still become the start of a stop sequence, or a trailing partial character, is held back). True when
         * a stop sequence was reached.
         */
        boolean progress(Tokenizer tok) {
            if (req.stop().isEmpty() && onText == null) return false;
            int n = seq.produced();
            if (n == seen) return false;
            seen = n;
            String text = tok.decode(seq.generated());
            int cut = -1, longest = 0;
            for (String st : req.stop()) {
                int i = text.indexOf(st, searchFrom);
                if (i >= 0 && (cut < 0 || i < cut)) cut = i;
                longest = Math.max(longest, st.length());
            }
            if (cut >= 0) {
                stoppedText = text.substring(0, cut);
                emit(stoppedText);
                return true;
            }
            searchFrom = Math.max(0, text.length() - longest + 1);
            int safe = text.length() - holdback(text);
            if (safe > 0 && text.charAt(safe - 1) == '\uFFFD') safe--;   // a byte-level token may complete this character
            emit(text.substring(0, safe));
            return false;
        }

        /** The longest end of {@code text} that begins one of the stop sequences (it may yet become one). */
        private int holdback(String text) {
            int h = 0;
            for (String st : req.stop())
                for (int k = Math.min(st.length() - 1, text.length()); k > h; k--)
                    if (text.regionMatches(text.length() - k, st, 0, k)) { h = k; break; }
            return h;
        }

        /** Hands the part of {@code settled} past what was already streamed to onText. */
        void emit(String settled) {
            if (onText == null || settled.length() <= emitted) return;
            String d = settled.substring(emitted);
            emitted = settled.length();
            onText.accept(d);
        }
    }

    @Override
    public Pending<TextResult> submit(TextRequest r) { return submit(r, null); }

    /**
     * As {@link #submit(TextRequest)}, streaming: {@code onText} receives the generated text piece by piece as it is
     * drawn (their concatenation is the result's text), called on a decoding thread between tokens, so it must return
     * quickly (hand the piece to a queue or a socket); text that may still turn into one of the request's stop sequences,
     * or a character a later byte-level token completes, is held back until settled. An exception from {@code onText}
     * fails the request with it. Null: not streamed.
     */
    @Override
    public Pending<TextResult> submit(TextRequest r, Consumer<String> onText) {
        if (closed) throw new IllegalStateException("generator is closed");
        int[] ids = tok.encode(r.prompt());        // IllegalArgumentException names a character outside the vocabulary
        decoder.checkPrompt(ids);
        Job j = new Job(r, ids, new KvDecoder.Settings(r.maxTokens(), r.temperature(), r.topK(), r.topP(), r.seed()), onText);
        if (inFlight.incrementAndGet() > opt.maxQueued()) {
            inFlight.decrementAndGet();
            throw new RejectedExecutionException("generator busy: " + opt.maxQueued() + " requests in flight");
        }
        synchronized (queue) {      // against close(): a job is either queued before lanes may exit, or refused
            if (closed) {
                inFlight.decrementAndGet();
                throw new IllegalStateException("generator is closed");
            }
            queue.add(j);
        }
        return new Pending<>(j.control, j.future);
    }

    /** One decoding thread: admit what fits, drop what must stop, step the rest as one batch, repeat. */
    private void lane() {
        List<Job> active = new ArrayList<>();
        try {
            while (!(closed && queue.isEmpty() && active.isEmpty())) {
                Job in = active.isEmpty() ? queue.poll(50, TimeUnit.MILLISECONDS) : active.size() < opt.maxBatch() ? queue.poll() : null;
                while (in != null) {
                    admit(in, active);
                    in = active.size() < opt.maxBatch() ? queue.poll() : null;
                }
                peakBatch.accumulateAndGet(active.size(), Math::max);
                for (int i = active.size() - 1; i >= 0; i--) {
                    Job j = active.get(i);
                    Outcome stop = j.seq.done() ? Outcome.COMPLETE : j.control.stopReason();
                    if (stop != null) finish(active.remove(i), stop);
                }
                if (active.isEmpty()) continue;
                int b = active.size();
                long t0 = System.nanoTime();
                try {
                    step(decoder, active);
                    long dt = System.nanoTime() - t0;
                    recorder.step(t0, b, b);
                    Listener l = listener;
                    if (l != null) {
                        try { l.onStep(b, b, dt); } catch (RuntimeException ignored) { /* an observer must not stop decoding */ }
                    }
                } catch (RuntimeException | Error e) {
                    for (Job j : active) fail(j, e);
                    active.clear();
                }
                for (int i = active.size() - 1; i >= 0; i--) {
                    Job j = active.get(i);
                    try {
                        if (j.progress(tok)) finish(active.remove(i), Outcome.STOP);
                    } catch (RuntimeException e) {      // the stream's callback failed: this request only
                        fail(active.remove(i), e);
                    }
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            for (Job j : active) fail(j, new IllegalStateException("generator stopped"));
        }
    }

    /** One step of the active jobs' sequences, each opened by {@code d} ({@link #admit}). */
    @SuppressWarnings("unchecked")
    private static <S extends DecodeSequence> void step(BatchDecoder<S> d, List<Job> active) {
        List<S> seqs = new ArrayList<>(active.size());
        for (Job j : active) seqs.add((S) j.seq);
        d.step(seqs);
    }

    private void admit(Job j, List<Job> active) {
        Outcome stop = j.control.stopReason();
        if (stop != null) {             // stopped while queued: nothing generated
            done(j, new TextResult("", new int[0], j.prompt.length, stop, j.control.elapsedNanos()));
            return;
        }
        try {
            j.queueNanos = j.control.elapsedNanos();
            j.seq = decoder.open(j.prompt, j.settings);
            active.add(j);
        } catch (RuntimeException | Error e) {
            fail(j, e);
        }
    }

    private void finish(Job j, Outcome o) {
        int[] out;
        try {
            out = j.seq.generated();
        } finally {
            j.seq.close();
        }
        try {
            String text = j.stoppedText != null ? j.stoppedText : tok.decode(out);
            j.emit(text);
            done(j, new TextResult(text, out, j.prompt.length, o, j.control.elapsedNanos()));
        } catch (RuntimeException e) {
            fail(j, e);
        }
    }

    private void done(Job j, TextResult r) {
        long q = j.queueNanos >= 0 ? j.queueNanos : r.nanos();
        recorder.request(q, r.nanos());
        Listener l = listener;
        if (l != null) {
            try { l.onRequest(q, r); } catch (RuntimeException ignored) { /* an observer must not fail the request */ }
        }
        inFlight.decrementAndGet();
        j.future.complete(r);
    }

    private void fail(Job j, Throwable e) {
        if (j.seq != null) j.seq.close();
        if (j.future.isDone()) return;
        inFlight.decrementAndGet();
        j.future.completeExceptionally(e);
    }

    @Override
    public void close() {
        synchronized (queue) { closed = true; }
        boolean interrupted = false;
        for (Thread t : lanes) {
            while (t.isAlive()) {
                try {
                    t.join();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        }
        decoder.close();
        if (owned != null) owned.close();
        if (interrupted) Thread.currentThread().interrupt();
    }
}
