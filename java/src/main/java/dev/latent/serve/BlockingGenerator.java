package dev.latent.serve;

import dev.latent.tensor.Scope;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;

/**
 * The extension point for models that answer a request in one call (the image models' {@code sample(seed,
 * n)}): {@code threads} workers run {@link Work#run} per request with a fresh confined {@link Scope}, closed
 * when the call returns, so a request's native memory dies with it. The work checks
 * {@link RequestControl#check()} between the steps it chooses (images of a batch, flow steps); a stop then
 * fails the request with {@link RequestControl.StoppedException} naming the {@link Outcome}.
 * <pre>{@code
 * Generator<SampleRequest, float[]> g = new BlockingGenerator<>(2, 256, SampleRequest::timeout,
 *     (req, scope, ctl) -> vae.sample(scope, req.seed(), req.n()).toArray());
 * }</pre>
 * No batching across requests: a one-shot sampler already batches the {@code n} images of one request.
 */
public final class BlockingGenerator<Q, R> implements Generator<Q, R> {
    /** One request's work, on a worker thread, with memory in {@code scope} and stops read from {@code control}. */
    @FunctionalInterface
    public interface Work<Q, R> {
        R run(Q request, Scope scope, RequestControl control) throws Exception;
    }

    private final ExecutorService pool;
    private final Function<Q, Duration> timeoutOf;
    private final Work<Q, R> work;
    private final int maxQueued;
    private final AtomicInteger inFlight = new AtomicInteger();

    /** {@code timeoutOf} reads a request's deadline (null: none); {@code maxQueued} bounds requests in flight. */
    public BlockingGenerator(int threads, int maxQueued, Function<Q, Duration> timeoutOf, Work<Q, R> work) {
        if (threads < 1 || maxQueued < 1) throw new IllegalArgumentException("threads and maxQueued must be >= 1");
        AtomicInteger n = new AtomicInteger();
        this.pool = new ThreadPoolExecutor(threads, threads, 0, TimeUnit.SECONDS, new LinkedBlockingQueue<>(), r -> {
            Thread t = new Thread(r, "latent-generator-" + n.getAndIncrement());
            t.setDaemon(true);
            return t;
        });
        this.timeoutOf = timeoutOf;
        this.work = work;
        this.maxQueued = maxQueued;
    }

    @Override
    public Pending<R> submit(Q request) {
        if (pool.isShutdown()) throw new IllegalStateException("generator is closed");
        RequestControl ctl = RequestControl.of(timeoutOf.apply(request));
        CompletableFuture<R> f = new CompletableFuture<>();
        if (inFlight.incrementAndGet() > maxQueued) {
            inFlight.decrementAndGet();
            throw new RejectedExecutionException("generator busy: " + maxQueued + " requests in flight");
        }
        try {
            pool.execute(() -> {
                R r = null;
                Throwable err = null;
                try (Scope s = Scope.confined()) {   // closed before the caller hears back
                    ctl.check();
                    r = work.run(request, s, ctl);
                } catch (Throwable e) {
                    err = e;
                }
                inFlight.decrementAndGet();
                if (err == null) f.complete(r);
                else f.completeExceptionally(err);
            });
        } catch (RejectedExecutionException e) {
            inFlight.decrementAndGet();
            throw new IllegalStateException("generator is closed", e);
        }
        return new Pending<>(ctl, f);
    }

    @Override
    public int inFlight() { return inFlight.get(); }

    @Override
    public void close() {
        pool.shutdown();
        boolean interrupted = false;
        while (true) {
            try {
                if (pool.awaitTermination(1, TimeUnit.DAYS)) break;
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) Thread.currentThread().interrupt();
    }
}
