package dev.latent.tensor;

/** Where a tensor's memory lives. CUDA arrives with the GPU backend; every op checks the device first. */
public enum Device { CPU, CUDA }
