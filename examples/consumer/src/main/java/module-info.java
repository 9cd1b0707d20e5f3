/** The consumer as a named module: Latent's core jar is automatic module dev.latent (java.base only). */
module example.consumer {
    requires dev.latent;
}
