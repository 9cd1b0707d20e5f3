package dev.latent.nn;

import dev.latent.autograd.F;
import dev.latent.autograd.Var;
import dev.latent.tensor.Scope;

import java.lang.foreign.MemorySegment;
import java.util.Map;

/** A (vocab, dim) table looked up by int32 ids; N(0, std) init. */
public final class Embedding implements Module {
    public final Var weight;

    public Embedding(Scope scope, long vocab, long dim, long seed, long stream, double std) {
        this.weight = Var.param(Init.normal(scope, seed, stream, std, vocab, dim));
    }

    public Var forward(MemorySegment ids, long n) { return F.embedding(ids, n, weight); }

    @Override
    public void collect(String prefix, Map<String, Var> out) { out.put(prefix + "weight", weight); }
}
