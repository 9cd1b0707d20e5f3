"""
RealNVP (affine coupling flow) on Fashion-MNIST: a PyTorch CPU quality reference.

This is ../shared/reference/realnvp_fmnist.py (read-only there), its IDX reading moved to fmnist.py (shared by this
folder's Fashion-MNIST scripts), plus one flag, --clip C (global gradient-norm
clipping, torch.nn.utils.clip_grad_norm_, before each Adam step; default 0 = none, which is the shared script
step for step: same draws, same bits). Why (issue 21, BENCHMARKS.md "RealNVP: why the two sides differed"):
the unclipped recipe is chaotic here. From the same initial weights, batches and noise, Latent and this script
agree to 1e-6 bits/dim for 30 steps, then float rounding differences grow ~10x per 10 steps and the runs are
unrelated by step ~80; two runs of this script that differ only in thread count part the same way. Per-batch
gradient norms spike to 300-1000 (median ~30), and the test bits/dim of one run's weights jumps between 4.8 and
7.1 from one 100-step checkpoint to the next, so the end-of-epoch figure is a draw, not a property of the
implementation. --clip 100 (the max_grad_norm default of a widely used PyTorch RealNVP) is the clipped variant
both sides can run (Latent: `train realnvp --clip 100`); it smooths training but did not make the end-of-epoch
test figure stable (Latent seed 1: 5.46 clipped against 4.40 unclipped; PyTorch seed 1 the other way, 4.47 clipped
against 5.41).

Data: standard gzipped IDX files in --data DIR, images 1x28x28 (D = 784).
Preprocessing (with its log-det, as in the RealNVP paper):
  uniform dequantisation  x = (pixel + u) / 256, u ~ U[0,1) per pixel
  logit transform         y = logit(a + (1 - 2a) x), a = 0.05
                          log|dy/dx| = sum_i [log(1 - 2a) - log(p_i) - log(1 - p_i)], p = a + (1 - 2a) x
Flow: 6 affine coupling layers on y, alternating checkerboard masks b (layer 0: b[i,j] = 1 where
  (i + j) is even; layer 1: the complement; ...). Each coupling:
      h = net(b * y);  raw_s, t = h[:, 0:1], h[:, 1:2];  s = tanh(raw_s) * scale   (scale: a learned scalar, init 1)
      y' = b * y + (1 - b) * (y * exp(s) + t),           log-det = sum((1 - b) * s)
  net = conv3x3(1->64, pad 1) + ReLU -> conv3x3(64->64, pad 1) + ReLU -> conv3x3(64->2, pad 1);
  the first two convs use PyTorch's default init; the last conv is zero-initialised (each coupling
  starts as the identity).
Prior: standard normal on z (784 dims). Loss: bits/dim of the discrete pixels,
  bpd = ( -[log N(z) + sum log-dets] / D + log 256 ) / log 2   (the +log 256 undoes x = v/256).
Training: Adam lr 1e-3 (betas 0.9, 0.999), batch 64, 1 epoch (938 steps), no grad clipping (--clip C: global-norm
  clipping at C), fp32,
  channels-last convolutions (--channels_last 0 for the default layout; same maths);
  shuffling and dequantisation noise from a generator seeded with the seed.
Evaluation: test bits/dim on all 10,000 test images with one dequantisation sample each (noise from
  a generator seeded 1234).

Usage:  python realnvp_fmnist.py --out realnvp_fmnist.json [--data DIR] [--epochs 1] [--max_steps N]
"""
import argparse
import json
import math
import os
import platform
import time

import fmnist
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

parser = argparse.ArgumentParser(description="RealNVP on Fashion-MNIST")
parser.add_argument("--data", default=fmnist.DEFAULT_DIR)
parser.add_argument("--out", default="realnvp_fmnist.json")
parser.add_argument("--seeds", default="1", help="comma-separated seeds, each a full run")
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--max_steps", type=int, default=0, help="stop after this many steps (0: full epochs)")
parser.add_argument("--batch_size", type=int, default=64)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--n_coupling", type=int, default=6)
parser.add_argument("--hidden", type=int, default=64)
parser.add_argument("--alpha", type=float, default=0.05)
parser.add_argument("--eval_seed", type=int, default=1234)
parser.add_argument("--test_n", type=int, default=0, help="evaluate on the first N test images (0: all)")
parser.add_argument("--log_interval", type=int, default=50)
parser.add_argument("--clip", type=float, default=0.0, help="global gradient-norm clipping threshold (0: none, the shared recipe)")
parser.add_argument("--channels_last", type=int, default=1, help="1: channels-last memory format (faster convs on CPU)")
args = parser.parse_args()
torch.set_num_threads(args.threads)


# pixels kept as float 0..255; dequantisation happens per batch
px_train = torch.from_numpy(fmnist.images(args.data, "train").astype(np.float32)).unsqueeze(1)
px_test = torch.from_numpy(fmnist.images(args.data, "t10k").astype(np.float32)).unsqueeze(1)
if args.test_n:
    px_test = px_test[:args.test_n]
D = 28 * 28
print(f"data: {args.data}: train {tuple(px_train.shape)}, test {tuple(px_test.shape)}")


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
        h = self.net(b * y)
        s = torch.tanh(h[:, 0:1]) * self.scale * (1 - b)
        t = h[:, 1:2] * (1 - b)
        return b * y + (1 - b) * (y * torch.exp(s) + t), s.flatten(1).sum(1)


class RealNVP(nn.Module):
    def __init__(self, n_coupling, hidden, alpha):
        super().__init__()
        self.alpha = alpha
        self.couplings = nn.ModuleList([Coupling(k % 2, hidden) for k in range(n_coupling)])

    def bits_per_dim(self, pixels, u):
        """Per-image bits/dim of pixels (float 0..255) with dequantisation noise u in [0,1)."""
        a = self.alpha
        x = (pixels + u) / 256.0
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        p = a + (1 - 2 * a) * x
        y = torch.log(p) - torch.log1p(-p)
        logdet = (math.log(1 - 2 * a) - torch.log(p) - torch.log1p(-p)).flatten(1).sum(1)
        for c in self.couplings:
            y, ld = c(y)
            logdet = logdet + ld
        log_pz = -0.5 * (y.pow(2) + math.log(2 * math.pi)).flatten(1).sum(1)
        log_px = log_pz + logdet                              # density of x in [0,1]^D
        return (-log_px / D + math.log(256.0)) / math.log(2.0)


@torch.no_grad()
def test_bpd(model, bs=500):
    gen = torch.Generator().manual_seed(args.eval_seed)
    tot = 0.0
    for i in range(0, len(px_test), bs):
        xb = px_test[i:i + bs]
        tot += model.bits_per_dim(xb, torch.rand(xb.shape, generator=gen)).sum().item()
    return tot / len(px_test)


def run(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = RealNVP(args.n_coupling, args.hidden, args.alpha)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(seed)
    n = len(px_train)
    log, epochs, step, train_time, t_run, done = [], [], 0, 0.0, time.time(), False
    print(f"seed {seed}: {n_params} parameters")
    for ep in range(1, args.epochs + 1):
        perm = torch.randperm(n, generator=gen)
        tot, cnt, t_ep = 0.0, 0, time.time()
        for i in range(0, n, args.batch_size):
            xb = px_train[perm[i:i + args.batch_size]]
            loss = model.bits_per_dim(xb, torch.rand(xb.shape, generator=gen)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if args.clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            opt.step()
            tot += loss.item() * len(xb)
            cnt += len(xb)
            step += 1
            if step % args.log_interval == 0 or step == 1:
                el = time.time() - t_ep
                log.append({"step": step, "train_bpd_batch": loss.item(), "train_bpd_running": tot / cnt, "seconds": train_time + el})
                print(f"seed {seed} epoch {ep} step {step:4d}: bpd {loss.item():.4f} (running {tot / cnt:.4f})  {cnt / el:.0f} img/s")
            if args.max_steps and step >= args.max_steps:
                done = True
                break
        ep_time = time.time() - t_ep
        train_time += ep_time
        epochs.append({"epoch": ep, "images": cnt, "train_bpd": tot / cnt, "epoch_seconds": ep_time, "images_per_s": cnt / ep_time})
        if done:
            break
    t0 = time.time()
    te = test_bpd(model)
    test_time = time.time() - t0
    images = sum(e["images"] for e in epochs)
    print(f"seed {seed}: {step} steps, {images} images in {train_time:.1f}s ({images / train_time:.1f} img/s); "
          f"test bits/dim {te:.4f} ({len(px_test)} images, {test_time:.1f}s)")
    return {"seed": seed, "n_params": n_params, "steps": step, "train_images": images, "epochs": epochs, "log": log,
            "test_bpd": te, "test_images": len(px_test), "test_seconds": test_time, "train_seconds": train_time,
            "images_per_s": images / train_time, "wall_seconds": time.time() - t_run}


t_all = time.time()
runs = [run(int(s)) for s in args.seeds.split(",")]
tb = np.array([r["test_bpd"] for r in runs])
summary = {"test_bpd_mean": float(tb.mean()), "test_bpd_std": float(tb.std(ddof=1)) if len(tb) > 1 else 0.0,
           "images_per_s_mean": float(np.mean([r["images_per_s"] for r in runs])),
           "train_seconds_mean": float(np.mean([r["train_seconds"] for r in runs]))}
result = {"script": "realnvp_fmnist.py", "config": vars(args), "torch": torch.__version__, "numpy": np.__version__,
          "python": platform.python_version(), "threads": torch.get_num_threads(), "runs": runs,
          "summary": summary, "wall_seconds": time.time() - t_all}
os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
with open(args.out, "w") as f:
    json.dump(result, f, indent=1)
print("summary:", json.dumps(summary))
print(f"wrote {args.out}")
