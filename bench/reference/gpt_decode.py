#!/usr/bin/env python3
"""S2 peer: a PyTorch KV-cache decode loop of the E1-shaped GPT (BENCHMARKS.md S2).

The model is E1's (vocab 65, 6 layers, 6 heads, 384 wide, context 256, tied embeddings, exact GELU, pre-LN,
nanoGPT's layout), random weights (N(0, 0.02), as its init). Each repetition: B sequences of a P-token random
prompt are prefilled in one forward (not timed), then N tokens are decoded greedily one step at a time, each step a
single-position forward of all B sequences against preallocated per-layer K/V caches (B, NH, T, HS), written in place,
attention by F.scaled_dot_product_attention over the filled prefix: the usual KV-cache loop. Timed: the N decode steps.
Prints one JSON object: median ms per step and tokens/s (B * N / time). Run by dev.latent.bench.DecodeWorkload with
the PyTorch venv (never a build or test dependency of Latent):

    python gpt_decode.py --threads 2 --batch 16 --prompt 16 --tokens 128 --reps 5 [--out FILE]
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--prompt", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    V, L, NH, C, T = 65, 6, 6, 384, 256
    HS = C // NH
    if a.prompt + a.tokens > T:
        raise SystemExit(f"prompt {a.prompt} + tokens {a.tokens} > context {T}")
    g = lambda *s: torch.randn(*s) * 0.02
    wte, wpe = g(V, C), g(T, C)
    layers = []
    for _ in range(L):
        layers.append(dict(ln1w=torch.ones(C), ln1b=torch.zeros(C), qkvw=g(3 * C, C), qkvb=torch.zeros(3 * C),
                           projw=g(C, C), projb=torch.zeros(C), ln2w=torch.ones(C), ln2b=torch.zeros(C),
                           fcw=g(4 * C, C), fcb=torch.zeros(4 * C), fc2w=g(C, 4 * C), fc2b=torch.zeros(C)))
    lnfw, lnfb = torch.ones(C), torch.zeros(C)
    B = a.batch

    def forward(ids, pos0, kc, vc):
        """ids (B, n) at positions pos0 .. pos0+n-1; appends K/V to the caches; returns the last position's logits."""
        n = ids.shape[1]
        x = wte[ids] + wpe[pos0:pos0 + n]
        for l, w in enumerate(layers):
            h = F.layer_norm(x, (C,), w["ln1w"], w["ln1b"])
            q, k, v = F.linear(h, w["qkvw"], w["qkvb"]).split(C, dim=2)
            q = q.view(B, n, NH, HS).transpose(1, 2)
            kc[l][:, :, pos0:pos0 + n] = k.view(B, n, NH, HS).transpose(1, 2)
            vc[l][:, :, pos0:pos0 + n] = v.view(B, n, NH, HS).transpose(1, 2)
            kk, vv = kc[l][:, :, :pos0 + n], vc[l][:, :, :pos0 + n]
            if n == 1:
                y = F.scaled_dot_product_attention(q, kk, vv)
            else:
                y = F.scaled_dot_product_attention(q, kk, vv, is_causal=True)
            y = y.transpose(1, 2).reshape(B, n, C)
            x = x + F.linear(y, w["projw"], w["projb"])
            h = F.layer_norm(x, (C,), w["ln2w"], w["ln2b"])
            x = x + F.linear(F.gelu(F.linear(h, w["fcw"], w["fcb"])), w["fc2w"], w["fc2b"])
        x = F.layer_norm(x[:, -1], (C,), lnfw, lnfb)
        return x @ wte.t()

    times = []
    with torch.inference_mode():
        kc = [torch.empty(B, NH, T, HS) for _ in range(L)]
        vc = [torch.empty(B, NH, T, HS) for _ in range(L)]
        for rep in range(a.reps + 1):   # the first repetition warms up
            ids = torch.randint(0, V, (B, a.prompt))
            nxt = forward(ids, 0, kc, vc).argmax(-1, keepdim=True)
            t0 = time.perf_counter()
            for i in range(a.tokens):
                nxt = forward(nxt, a.prompt + i, kc, vc).argmax(-1, keepdim=True)
            dt = time.perf_counter() - t0
            if rep > 0:
                times.append(dt)
    times.sort()
    med = times[len(times) // 2]
    rec = {"id": f"S2.decode.b{B}", "batch": B, "threads": a.threads, "prompt": a.prompt, "tokens": a.tokens,
           "median_ms_per_step": 1e3 * med / a.tokens, "tokens_per_s": B * a.tokens / med, "torch": torch.__version__}
    s = json.dumps(rec)
    print(s)
    if a.out:
        with open(a.out, "w") as f:
            f.write(s + "\n")


if __name__ == "__main__":
    main()
