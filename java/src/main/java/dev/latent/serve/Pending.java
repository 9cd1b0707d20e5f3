package dev.latent.serve;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;

/** A submitted request: wait for it, or cancel it (it stops at the next check, keeping partial output). */
public final class Pending<R> {
    private final RequestControl control;
    private final CompletableFuture<R> future;

    public Pending(RequestControl control, CompletableFuture<R> future) {
        this.control = control;
        this.future = future;
    }

    public void cancel() { control.cancel(); }

    public RequestControl control() { return control; }

    /** A view that completes with the result (completing or cancelling the view does not touch the request). */
    public CompletableFuture<R> future() { return future.copy(); }

    /** Waits for the result; a failure of the request is rethrown as it was thrown (unchecked). */
    public R await() throws InterruptedException {
        try {
            return future.get();
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            if (c instanceof RuntimeException r) throw r;
            if (c instanceof Error err) throw err;
            throw new IllegalStateException(c.getMessage(), c);
        }
    }
}
