#!/usr/bin/env python3
"""PyTorch eager training steps of Latent's models, beside `bin/latent train ... --device cuda` (issue 18's step targets).

Issue 18: "Training steps, tokens/s or images/s vs PyTorch eager on the same GPU: GPT (6x6x384, context 256, batch 32, and
a GPT-2-small shape: 12x12x768, context 1024) >= 1.0x in fp32/TF32 and in bf16; DCGAN, VAE and RealNVP steps >= 1.0x."
bench/cuda/gpu_checks.sh (stage `steps`) runs this once for PyTorch's side and `latent train` per (model, precision) for
ours, from the one table below (`--latent-args` prints our command line for a row, so both sides train the same shapes).

The models are Latent's (java/src/main/java/dev/latent/models/) as the PyTorch references define them; those scripts
(../shared/reference/{gpt_char,dcgan_fmnist,vae_fmnist}.py, bench/reference/realnvp_fmnist.py, the speed references
E1-E4 in ../shared/reference/speed/bench_e2e.py) parse their own arguments and load their data at import, so the modules
are restated here, layer for layer, with each one's source named:
  gpt     Gpt.java = gpt_char.py: pre-LN blocks, fused qkv Linear, causal SDPA, 4x MLP with exact GELU, biases on every
          Linear (the head's too), learned positions, untied head; AdamW (0.9, 0.99), eps 1e-8, weight decay 0.1 on the 2-D
          weights (Linear weights, both embeddings), linear warm-up 50 then cosine to 1e-4, global-norm clip 1.0.
  gpt2s   the same at GPT-2 small's shape (12 layers, 12 heads, 768 wide, context 1024; char vocabulary, so a small head).
  dcgan   Dcgan.java = dcgan_fmnist.py: G convT 4x4 nz -> 4 ngf -> 2 ngf -> ngf -> 1 (no biases) + BatchNorm + ReLU, Tanh;
          D conv 4x4 1 -> ndf -> 2 ndf (BN) -> 4 ndf (BN) -> 1 logit, LeakyReLU 0.2; BCE with logits; Adam 2e-4 (0.5, 0.999).
          One iteration as GanTrainer's: D on real and on fake.detach(), one backward of the sum, D's step; then G's loss
          through D with D's parameters frozen (GanTrainer skips D's weight gradients there too), G's step.
  vae     ConvVae.java = vae_fmnist.py: conv 4x4/2 1 -> 32 -> 64, Linear heads mu / logvar (latent 32), Linear -> 64x7x7,
          convT 4x4/2 64 -> 32 -> 1 logits; Bernoulli (BCE with logits, summed) + KL, batch mean; Adam 1e-3.
  realnvp RealNvp.java = realnvp_fmnist.py: dequantise, logit transform with its log-det, 6 checkerboard affine couplings,
          net conv3x3 1 -> 64 ReLU 64 -> 64 ReLU 64 -> 2 (last zero-initialised), s = tanh(h0) scale; bits/dim; Adam 1e-3.
Data: random batches of the right kind (token ids; images in [0, 1], [-1, 1] or 0..255 pixels), a few held in pinned host
memory and copied to the device each step with non_blocking=True (ours uploads each batch too). The speed does not
depend on the values.

Precisions: fp32 (torch.backends.cuda.matmul.allow_tf32 = cudnn.allow_tf32 = False: cuDNN's default is True), tf32
(both True), bf16 (torch.autocast(bfloat16) over forward and loss, TF32 off; fp32 master weights and Adam state, as
ours). cudnn.benchmark = True (fixed shapes: PyTorch at its best). The optimizers are torch's defaults (foreach on CUDA,
not fused). No host synchronisation inside the timed steps (ours reads the loss every step): `warmup` steps, then
torch.cuda.synchronize(), `steps` timed steps, torch.cuda.synchronize(); the last loss is then read and must be finite.

Output: one JSON line per (model, precision), appended to --out as soon as it is measured (a killed run keeps what it
finished): {"side": "pytorch", "model", "precision", "shape", "unit", "items_per_step", "steps", "seconds", "ms_per_step",
"items_per_s", "params", "loss", ...} or {"side": "pytorch", "model", "precision", "error": ...}.

usage:
  python3 torch_steps.py --out steps.jsonl [--models gpt,gpt2s,dcgan,vae,realnvp] [--precisions fp32,tf32,bf16]
                         [--text FILE (the vocabulary: its distinct characters)] [--budget-s 150]
  python3 torch_steps.py --dry-run --out x.jsonl          # tiny shapes, on the CPU when there is no GPU (tests this file)
  python3 torch_steps.py --latent-args MODEL [--dry-run]   # our CLI's arguments for that row (no torch import)
  python3 torch_steps.py --latent-record MODEL PRECISION RC STDOUT STDERR [--checkpoint FILE] [--dry-run]   # our run's line
"""
import argparse
import json
import math
import os
import sys
import time

# The table both sides read. shape: the model's; latent_steps: `latent train`'s --steps and --log-interval (its StepClock
# times the steps after the second logged one: the first interval and a bit are warm-up); torch_steps: warm-up, timed.
MODELS = {
    "gpt": dict(
        unit="tokens",
        full=dict(layers=6, heads=6, dim=384, context=256, batch=32),
        tiny=dict(layers=2, heads=2, dim=32, context=16, batch=2),
        latent_steps=dict(full=(30, 5), tiny=(6, 2)),      # (--steps, --log-interval): logged 5, 10, .., 30 -> steps 11-30 timed
        torch_steps=dict(full=(5, 20), tiny=(1, 3))),       # (warm-up, timed)
    "gpt2s": dict(
        unit="tokens",
        full=dict(layers=12, heads=12, dim=768, context=1024, batch=8),
        tiny=dict(layers=2, heads=2, dim=32, context=32, batch=2),
        latent_steps=dict(full=(20, 5), tiny=(6, 2)),      # logged 5, 10, 15, 20 -> steps 11-20 timed
        torch_steps=dict(full=(4, 12), tiny=(1, 3))),
    "dcgan": dict(
        unit="images",
        full=dict(nz=100, ngf=64, ndf=64, batch=64),
        tiny=dict(nz=8, ngf=8, ndf=8, batch=4),
        latent_steps=dict(full=(150, 25), tiny=(6, 2)),    # logged 25, 50, .., 150 -> iterations 51-150 timed
        torch_steps=dict(full=(10, 100), tiny=(1, 3))),
    "vae": dict(
        unit="images",
        full=dict(latent=32, batch=128),
        tiny=dict(latent=4, batch=4),
        latent_steps=dict(full=(201, 50), tiny=(6, 2)),    # logged 1, 51, 101, 151, 201 -> steps 52-201 timed
        torch_steps=dict(full=(10, 100), tiny=(1, 3))),
    "realnvp": dict(
        unit="images",
        full=dict(couplings=6, hidden=64, batch=64),
        tiny=dict(couplings=2, hidden=8, batch=4),
        latent_steps=dict(full=(150, None), tiny=(100, None)),   # train realnvp logs 1, 50, 100, 150 -> steps 51-150 timed
        torch_steps=dict(full=(10, 60), tiny=(1, 3))),
}
PRECISIONS = ("fp32", "tf32", "bf16")


def shape_of(model, tiny):
    return MODELS[model]["tiny" if tiny else "full"]


def items_per_step(model, tiny):
    s = shape_of(model, tiny)
    return s["batch"] * s["context"] if MODELS[model]["unit"] == "tokens" else s["batch"]


def shape_text(model, tiny):
    return " ".join(f"{k} {v}" for k, v in shape_of(model, tiny).items())


def latent_args(model, tiny):
    """`latent train` arguments for the row (the caller adds --data, --out, --device, --precision)."""
    s = shape_of(model, tiny)
    steps, log = MODELS[model]["latent_steps"]["tiny" if tiny else "full"]
    if model in ("gpt", "gpt2s"):
        return ["gpt", "--layers", s["layers"], "--heads", s["heads"], "--dim", s["dim"], "--context", s["context"],
                "--batch", s["batch"], "--steps", steps, "--log-interval", log, "--eval-interval", steps, "--eval-batches", 1,
                "--checkpoint-interval", 0, "--sample-tokens", 0]
    if model == "dcgan":
        return ["dcgan", "--nz", s["nz"], "--ngf", s["ngf"], "--ndf", s["ndf"], "--batch", s["batch"], "--steps", steps,
                "--log-interval", log]
    if model == "vae":
        return ["vae", "--latent", s["latent"], "--batch", s["batch"], "--steps", steps, "--log-interval", log, "--iwae-k", 0]
    if model == "realnvp":
        return ["realnvp", "--couplings", s["couplings"], "--hidden", s["hidden"], "--batch", s["batch"], "--steps", steps,
                "--test-limit", 500]
    raise ValueError(model)


def checkpoint_params(path):
    """Trained parameters in one of our checkpoints: the elements of its Adam first moments (opt.m.*, optD.m.*, optG.m.*),
    one per parameter element, so BatchNorm's running statistics and the masks are not counted. None without a file."""
    import re
    import struct
    if not path or not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    total = 0
    for k, v in header.items():
        if re.match(r"^opt[A-Z]?\.m\.", k):
            total += math.prod(v["shape"])
    return total


def latent_record(model, precision, rc, stdout, stderr, tiny, checkpoint=None):
    """Our run's JSON line: the train command's final JSON (its StepClock fields), or why there is none; with the
    run's checkpoint, its parameter count (the table checks it against PyTorch's: the same model on both sides)."""
    unit = MODELS[model]["unit"]
    r = {"side": "latent", "model": model, "precision": precision, "shape": shape_text(model, tiny), "unit": unit,
         "items_per_step": items_per_step(model, tiny), "rc": rc}
    out = open(stdout, errors="replace").read() if os.path.exists(stdout) else ""
    err = open(stderr, errors="replace").read() if os.path.exists(stderr) else ""
    last = None
    for line in out.splitlines():
        if line.startswith("{"):
            try:
                last = json.loads(line)
            except ValueError:
                pass
    rate = last.get(f"steady_{unit}_per_s") if last else None
    if rc == 0 and rate:
        r.update(steps=last["steady_steps"], seconds=last["steady_seconds"], items_per_s=rate,
                 ms_per_step=1000.0 * last["steady_seconds"] / last["steady_steps"])
    else:
        lines = [l for l in err.splitlines() if l.strip()]
        why = next((l for l in reversed(lines) if l.startswith("latent:")), lines[-1] if lines else "no output")
        r["error"] = ("exit %s: " % rc if rc != 0 else "no steady rate in the final JSON: ") + why[:400]
        if rc == 124 or rc == 137:
            r["error"] = "timed out (exit %s); last line: %s" % (rc, why[:300])
    params = checkpoint_params(checkpoint) if rc == 0 else None
    if params is not None:
        r["params"] = params
    for k in ("device", "CUDA", "vendor"):   # which libraries served it, as the run logged them
        hit = next((l for l in err.splitlines() if k in l), None)
        if hit:
            r.setdefault("log", []).append(hit[:300])
    return r


def tiny_data(src, dst, n_train=512, n_test=256):
    """The dry run's Fashion-MNIST: the first images of each split (the emulated driver evaluates 10,000 slowly)."""
    import gzip
    import struct
    os.makedirs(dst, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
            name = f"{split}-{kind}.gz"
            with gzip.open(os.path.join(src, name), "rb") as f:
                buf = f.read()
            ndim = buf[3]
            dims = list(struct.unpack(">" + "I" * ndim, buf[4:4 + 4 * ndim]))
            per = 1
            for d in dims[1:]:
                per *= d
            dims[0] = min(n, dims[0])
            with gzip.open(os.path.join(dst, name), "wb") as f:
                f.write(buf[:4] + struct.pack(">" + "I" * ndim, *dims) + buf[4 + 4 * ndim:4 + 4 * ndim + dims[0] * per])


# ---------------------------------------------------------------------------------------------------------------- torch
def build(model, s, vocab, dev, torch, nn, F):
    """(modules, step function(i) -> loss tensor, params) for one row."""
    if model in ("gpt", "gpt2s"):
        class Block(nn.Module):
            def __init__(self, d, h, n_layer):
                super().__init__()
                self.h = h
                self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
                self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
                self.c_fc, self.mlp_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

            def forward(self, x):
                B, T, C = x.shape
                q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
                q, k, v = (t.view(B, T, self.h, C // self.h).transpose(1, 2) for t in (q, k, v))
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                x = x + self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))
                return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))

        class GPT(nn.Module):
            def __init__(self):
                super().__init__()
                d = s["dim"]
                self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(s["context"], d)
                self.blocks = nn.ModuleList([Block(d, s["heads"], s["layers"]) for _ in range(s["layers"])])
                self.ln_f = nn.LayerNorm(d)
                self.lm_head = nn.Linear(d, vocab)
                for m in self.modules():   # nanoGPT's init, as Gpt.java's
                    if isinstance(m, (nn.Linear, nn.Embedding)):
                        nn.init.normal_(m.weight, 0.0, 0.02)
                    if isinstance(m, nn.Linear):
                        nn.init.zeros_(m.bias)
                for b in self.blocks:
                    for m in (b.c_proj, b.mlp_proj):
                        nn.init.normal_(m.weight, 0.0, 0.02 / math.sqrt(2 * s["layers"]))
                self.register_buffer("pos", torch.arange(s["context"]), persistent=False)

            def forward(self, idx, tgt):
                x = self.wte(idx) + self.wpe(self.pos[:idx.shape[1]])
                for b in self.blocks:
                    x = b(x)
                logits = self.lm_head(self.ln_f(x))
                return F.cross_entropy(logits.view(-1, logits.size(-1)).float(), tgt.reshape(-1))

        net = GPT().to(dev)
        decay = [p for p in net.parameters() if p.dim() >= 2]
        rest = [p for p in net.parameters() if p.dim() < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                                lr=1e-3, betas=(0.9, 0.99), eps=1e-8)
        B, T = s["batch"], s["context"]
        pool = torch.randint(0, vocab, (4, B, T + 1))
        pool = pool.pin_memory() if dev.type == "cuda" else pool

        def lr_at(it, warmup=50, steps=500, lr=1e-3, min_lr=1e-4):
            if it < warmup:
                return lr * (it + 1) / warmup
            return min_lr + 0.5 * (1 + math.cos(math.pi * min(1.0, (it - warmup) / (steps - warmup)))) * (lr - min_lr)

        def step(i, ctx):
            batch = pool[i % 4].to(dev, non_blocking=True)
            with ctx():
                loss = net(batch[:, :-1], batch[:, 1:])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            for g in opt.param_groups:
                g["lr"] = lr_at(i)
            opt.step()
            return loss
        return step, sum(p.numel() for p in net.parameters())

    if model == "dcgan":
        nz, ngf, ndf = s["nz"], s["ngf"], s["ndf"]
        G = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, 1, 4, 2, 1, bias=False), nn.Tanh())
        D = nn.Sequential(
            nn.Conv2d(1, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 4, 1, 4, 1, 0, bias=False))
        for m in list(G.modules()) + list(D.modules()):
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)
        G, D = G.to(dev), D.to(dev)
        optD = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        optG = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        B = s["batch"]
        pool = torch.nn.functional.pad(torch.rand(4, B, 1, 28, 28) * 2 - 1, (2, 2, 2, 2), value=-1.0)
        pool = pool.pin_memory() if dev.type == "cuda" else pool
        bce = F.binary_cross_entropy_with_logits

        def step(i, ctx):
            real = pool[i % 4].to(dev, non_blocking=True)
            z = torch.randn(B, nz, 1, 1, device=dev)
            with ctx():
                fake = G(z)
                out_real, out_fake = D(real).view(-1), D(fake.detach()).view(-1)
                loss_d = bce(out_real.float(), torch.ones_like(out_real, dtype=torch.float32)) + \
                    bce(out_fake.float(), torch.zeros_like(out_fake, dtype=torch.float32))
            optD.zero_grad(set_to_none=True)
            loss_d.backward()
            optD.step()
            D.requires_grad_(False)
            with ctx():
                out = D(fake).view(-1)
                loss_g = bce(out.float(), torch.ones_like(out, dtype=torch.float32))
            optG.zero_grad(set_to_none=True)
            loss_g.backward()
            optG.step()
            D.requires_grad_(True)
            return loss_d + loss_g
        return step, sum(p.numel() for p in G.parameters()) + sum(p.numel() for p in D.parameters())

    if model == "vae":
        class VAE(nn.Module):
            def __init__(self, latent):
                super().__init__()
                self.enc = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(), nn.Flatten())
                self.mu, self.logvar = nn.Linear(64 * 7 * 7, latent), nn.Linear(64 * 7 * 7, latent)
                self.dec_fc = nn.Linear(latent, 64 * 7 * 7)
                self.dec = nn.Sequential(nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 1, 4, 2, 1))

            def forward(self, x):
                h = self.enc(x)
                mu, lv = self.mu(h).float(), self.logvar(h).float()
                z = mu + torch.exp(0.5 * lv) * torch.randn_like(mu)
                logits = self.dec(F.relu(self.dec_fc(z)).view(-1, 64, 7, 7))
                rec = F.binary_cross_entropy_with_logits(logits.float(), x, reduction="sum")
                kl = -0.5 * torch.sum(1 + lv - mu.pow(2) - lv.exp())
                return (rec + kl) / x.shape[0]

        net = VAE(s["latent"]).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        pool = (torch.rand(4, s["batch"], 1, 28, 28) > 0.5).float()
        pool = pool.pin_memory() if dev.type == "cuda" else pool

        def step(i, ctx):
            x = pool[i % 4].to(dev, non_blocking=True)
            with ctx():
                loss = net(x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss
        return step, sum(p.numel() for p in net.parameters())

    if model == "realnvp":
        a = 0.05

        def checkerboard(parity):
            i, j = torch.meshgrid(torch.arange(28), torch.arange(28), indexing="ij")
            return (((i + j) % 2) == parity).float().view(1, 1, 28, 28)

        class Coupling(nn.Module):
            def __init__(self, parity, hidden):
                super().__init__()
                self.register_buffer("mask", checkerboard(parity))
                self.net = nn.Sequential(nn.Conv2d(1, hidden, 3, padding=1), nn.ReLU(),
                                         nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(),
                                         nn.Conv2d(hidden, 2, 3, padding=1))
                nn.init.zeros_(self.net[-1].weight)
                nn.init.zeros_(self.net[-1].bias)
                self.scale = nn.Parameter(torch.ones(1))

            def forward(self, y):
                b = self.mask
                h = self.net(b * y).float()
                s_ = torch.tanh(h[:, 0:1]) * self.scale * (1 - b)
                t = h[:, 1:2] * (1 - b)
                return b * y + (1 - b) * (y * torch.exp(s_) + t), s_.flatten(1).sum(1)

        class RealNVP(nn.Module):
            def __init__(self):
                super().__init__()
                self.couplings = nn.ModuleList([Coupling(k % 2, s["hidden"]) for k in range(s["couplings"])])

            def forward(self, pixels, u):
                x = (pixels + u) / 256.0
                p = a + (1 - 2 * a) * x
                y = torch.log(p) - torch.log1p(-p)
                logdet = (math.log(1 - 2 * a) - torch.log(p) - torch.log1p(-p)).flatten(1).sum(1)
                for c in self.couplings:
                    y, ld = c(y)
                    logdet = logdet + ld
                log_pz = -0.5 * (y.pow(2) + math.log(2 * math.pi)).flatten(1).sum(1)
                return ((-(log_pz + logdet) / 784 + math.log(256.0)) / math.log(2.0)).mean()

        net = RealNVP().to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        pool = torch.randint(0, 256, (4, s["batch"], 1, 28, 28)).float()
        pool = pool.pin_memory() if dev.type == "cuda" else pool

        def step(i, ctx):
            px = pool[i % 4].to(dev, non_blocking=True)
            u = torch.rand(px.shape, device=dev)
            with ctx():
                loss = net(px, u)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss
        return step, sum(p.numel() for p in net.parameters())
    raise ValueError(model)


def measure(model, precision, args, vocab, torch, nn, F):
    import contextlib
    dev = torch.device(args.device)
    s = shape_of(model, args.dry_run)
    cuda = dev.type == "cuda"
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(1)
    if precision == "bf16":
        def ctx():
            return torch.autocast(device_type=dev.type, dtype=torch.bfloat16)
    else:
        ctx = contextlib.nullcontext
    step, params = build(model, s, vocab, dev, torch, nn, F)
    warm, n = MODELS[model]["torch_steps"]["tiny" if args.dry_run else "full"]
    if args.steps:
        n = args.steps

    def sync():
        if cuda:
            torch.cuda.synchronize()
    for i in range(warm):
        step(i, ctx)
    sync()
    t0 = time.perf_counter()
    loss = None
    for i in range(n):
        loss = step(warm + i, ctx)
    sync()
    secs = time.perf_counter() - t0
    last = float(loss.detach())   # after the timing: one read
    items = items_per_step(model, args.dry_run)
    r = {"side": "pytorch", "model": model, "precision": precision, "shape": shape_text(model, args.dry_run),
         "unit": MODELS[model]["unit"], "items_per_step": items, "warmup": warm, "steps": n, "seconds": secs,
         "ms_per_step": 1000.0 * secs / n, "items_per_s": n * items / secs, "params": params, "loss": last,
         "device": torch.cuda.get_device_name(dev) if cuda else "cpu", "torch": torch.__version__}
    if model in ("gpt", "gpt2s"):
        r["vocab"] = vocab
    if not math.isfinite(last):
        r["error"] = f"the loss after the timed steps is {last}"
    if cuda:
        r["max_memory_gib"] = torch.cuda.max_memory_allocated(dev) / 2 ** 30
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="JSON lines file (appended, one line per row as it is measured)")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--precisions", default=",".join(PRECISIONS))
    ap.add_argument("--text", help="the text our GPT trains on: its distinct characters are the vocabulary (else --vocab)")
    ap.add_argument("--vocab", type=int, default=96)
    ap.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    ap.add_argument("--steps", type=int, default=0, help="timed steps per row (default: the table's)")
    ap.add_argument("--budget-s", type=float, default=0, help="stop starting rows after this many seconds (0: none)")
    ap.add_argument("--dry-run", action="store_true", help="tiny shapes (a test of this script; on the CPU without a GPU)")
    ap.add_argument("--latent-args", metavar="MODEL", help="print our `latent train` arguments for MODEL's row and exit")
    ap.add_argument("--checkpoint", help="with --latent-record: the run's checkpoint.safetensors (its parameter count goes in the line)")
    ap.add_argument("--tiny-data", nargs=2, metavar=("SRC", "DST"), help="write the first 512 / 256 images of SRC's gzipped "
                    "Fashion-MNIST splits to DST (the dry run's data), and exit")
    ap.add_argument("--latent-record", nargs=5, metavar=("MODEL", "PRECISION", "RC", "STDOUT", "STDERR"),
                    help="print the JSON line of our run from its exit status and output files, and exit")
    args = ap.parse_args()
    if args.latent_args:
        print(" ".join(str(x) for x in latent_args(args.latent_args, args.dry_run)))
        return 0
    if args.tiny_data:
        tiny_data(*args.tiny_data)
        return 0
    if args.latent_record:
        m, p, rc, o, e = args.latent_record
        print(json.dumps(latent_record(m, p, int(rc), o, e, args.dry_run, args.checkpoint)))
        return 0
    if not args.out:
        ap.error("--out is required")
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cpu" and not args.dry_run:
        print("torch_steps: no GPU and no --dry-run: full shapes on the CPU would take long and mean nothing here", file=sys.stderr)
        return 2
    vocab = len(set(open(args.text, encoding="utf-8").read())) if args.text else args.vocab
    t_start = time.perf_counter()
    bad = 0
    for model in [m for m in args.models.split(",") if m]:
        if model not in MODELS:
            ap.error(f"unknown model {model!r} (known: {', '.join(MODELS)})")
        for precision in [p for p in args.precisions.split(",") if p]:
            if precision not in PRECISIONS:
                ap.error(f"unknown precision {precision!r}")
            if args.budget_s and time.perf_counter() - t_start > args.budget_s:
                r = {"side": "pytorch", "model": model, "precision": precision, "error": f"not run: past --budget-s {args.budget_s}"}
            else:
                try:
                    r = measure(model, precision, args, vocab, torch, nn, F)
                except Exception as e:   # one row's failure (out of memory, an op missing in bf16) is that row's result
                    r = {"side": "pytorch", "model": model, "precision": precision, "error": f"{type(e).__name__}: {str(e)[:400]}"}
                finally:
                    if args.device.startswith("cuda"):
                        torch.cuda.empty_cache()
            bad += "error" in r
            with open(args.out, "a") as f:
                f.write(json.dumps(r) + "\n")
            print(("%-8s %-5s %s" % (model, precision, r["error"])) if "error" in r else
                  "%-8s %-5s %10.1f %s/s  %8.2f ms/step  (%s)" % (model, precision, r["items_per_s"], r["unit"], r["ms_per_step"], r["shape"]),
                  flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
