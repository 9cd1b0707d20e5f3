package dev.latent.serve;

/**
 * A model behind a thread-safe front: load once, then {@link #submit} from any number of threads. Each
 * request carries its own settings (seed, limits, deadline) and gets its own native memory, freed when it
 * ends; the same request gives the same result alone or under any concurrency.
 * <p>
 * Implementations: {@link GptGenerator} (text, KV-cache decoding, batches concurrent requests) and
 * {@link BlockingGenerator}, the extension point for models that answer a request in one call, such as the
 * image samplers' {@code sample(seed, n)}: wrap that call in a {@link BlockingGenerator.Work} and the
 * threads, queue bound, per-request {@link dev.latent.tensor.Scope}, deadline and cancellation come with it.
 *
 * @param <Q> the request type (an immutable record)
 * @param <R> the result type
 */
public interface Generator<Q, R> extends AutoCloseable {
    /**
     * Queues a request and returns at once. Throws {@link IllegalArgumentException} for a bad request,
     * {@link java.util.concurrent.RejectedExecutionException} when the queue bound is reached, and
     * {@link IllegalStateException} after {@link #close()}.
     */
    Pending<R> submit(Q request);

    /** Submits and waits: the result, or the request's exception rethrown on this thread. */
    default R generate(Q request) throws InterruptedException { return submit(request).await(); }

    /** Requests queued or running now. */
    int inFlight();

    /** Stops accepting requests, lets those accepted finish, then frees what the generator owns. */
    @Override
    void close();
}
