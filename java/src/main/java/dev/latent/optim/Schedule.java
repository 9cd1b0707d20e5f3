package dev.latent.optim;

/** Linear warm-up to {@code lr} over {@code warmup} steps, then cosine down to {@code minLr} at {@code total}. */
public record Schedule(double lr, double minLr, int warmup, int total) {
    /** Learning rate for optimizer step {@code it} = 0, 1, ... (as the reference's lr_at). */
    public double at(long it) {
        if (it < warmup) return lr * (it + 1) / warmup;
        double ratio = Math.min(1.0, (double) (it - warmup) / Math.max(1, total - warmup));
        return minLr + 0.5 * (1.0 + Math.cos(Math.PI * ratio)) * (lr - minLr);
    }
}
