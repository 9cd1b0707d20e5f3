/** The consumer as a named module: Latent is module dev.latent (java.base only), which exports its API and hides the raw binding. */
module example.consumer {
    requires dev.latent;
}
