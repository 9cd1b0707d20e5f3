"""
Glow on Fashion-MNIST: the PyTorch CPU quality reference for `bin/latent train glow` (same recipe).

Written from the recipe (docs/decisions.md "Glow", README's `train glow` defaults) and the Glow paper (Kingma and
Dhariwal 2018, "Glow: Generative Flow with Invertible 1x1 Convolutions"), not from Latent's code: every layer is the
standard formulation, with the recipe's choices where the recipe departs from the paper (listed below).

Data and loss: exactly as ../shared/reference/realnvp_fmnist.py (the RealNVP reference):
  uniform dequantisation  x = (pixel + u) / 256, u ~ U[0,1) per pixel
  logit transform         y = logit(a + (1 - 2a) x), a = 0.05, with its log-det
  bits/dim of the discrete pixels  bpd = ( -[log N(z) + sum log-dets] / D + log 256 ) / log 2,  D = 784
Model (L = 2 levels, K = 8 steps per level, hidden 128), on y (N, 1, 28, 28):
  level l: squeeze (each 2x2 block of pixels -> 4 channels: (N, C, H, W) -> (N, 4C, H/2, W/2), channel
           4c + 2 dy + dx), then K steps of flow, then (all levels but the last) split: the second half of the
           channels is factored out as a latent z_l, the first half goes on. 28x28: level 0 (4, 14, 14) -> z_0
           (2, 14, 14); level 1 (8, 7, 7) = z_1.
  step of flow = ActNorm -> invertible 1x1 conv -> affine coupling:
    ActNorm      y = (x + b) * exp(logs) per channel, log-det H W sum(logs); data-dependent init on the first
                 training batch: b = -mean, logs = -log(std + 1e-6) per channel (population std), so the first
                 batch's output has zero mean and unit variance per channel.
    1x1 conv     LU-decomposed (the paper's section 3.2): W = P L (U + diag(sign * exp(log_s))), P fixed, L unit
                 lower triangular, U strictly upper triangular, initialised from a random rotation (QR of a
                 Gaussian matrix) and its LU factorisation; log-det H W sum(log_s).
    coupling     xa, xb = x[:, :C/2], x[:, C/2:] (xa conditions, xb is transformed);
                 h = NN(xa), NN = conv3x3(C/2 -> hidden, pad 1) ReLU conv1x1(hidden -> hidden) ReLU
                 conv3x3(hidden -> C, pad 1), the last conv zero-initialised (each step starts as ActNorm + 1x1 conv);
                 s = scale * tanh(h[:, :C/2]), t = h[:, C/2:], scale a learned scalar per coupling (init 1);
                 yb = xb * exp(s) + t; log-det sum(s). Output cat(xa, yb).
  Prior: N(0, I) on every latent (z_0 and z_1).
Init: PyTorch's default for the coupling nets' first two convs (U(+-1/sqrt(fan_in)) weights and biases), except
  that the first conv's bound uses the recipe's fan-in 9 C (see difference 3).
Training: Adam lr 1e-3 (betas 0.9, 0.999, eps 1e-8), batch 64, 1 epoch = 938 steps (the last batch has 32 images),
  fp32, no gradient clipping, shuffling and dequantisation noise from a generator seeded with the seed, the
  weights from torch.manual_seed(seed).
Evaluation: test bits/dim on all 10,000 test images, one dequantisation sample each (a generator seeded 1234),
  batches of 500; and max |inverse(forward(y)) - y| on the first 16 test images.

Deliberate differences from the Glow paper (each is the recipe's choice, so that both sides train the same model):
  1. The coupling's scale is s = scale * tanh(h) (learned scalar) with yb = xb exp(s) + t, the RealNVP form, not
     Glow's sigmoid(h + 2) with yb = (xb + t) sigmoid(h + 2); `--coupling sigmoid` runs the paper's form instead.
  2. The split latent has an N(0, I) prior, not Glow's learned conditional prior (a zero-initialised conv of the
     kept half), and there is no learned prior on the top latent either.
  3. The coupling nets have no ActNorm between their convs and a plain zero-initialised last conv (no
     exp(3 * logscale) factor); Latent's net applies its first conv to all C channels with the transformed half
     zeroed (the same function as a conv on the C/2 conditioning channels), so PyTorch's default init over that
     conv has the bound 1/sqrt(9 C), and this script uses that bound for its C/2-channel first conv.
  4. Inputs are the logit-transformed dequantised pixels (the RealNVP recipe), not Glow's x - 0.5; the log-det of
     the logit transform is part of the bits/dim, so the numbers are comparable with RealNVP's.
  5. L = 2 (28 x 28 squeezes twice without padding), K = 8, hidden 128, instead of the paper's L = 3, K = 32,
     hidden 512 on 32 x 32 images.

`--selftest` checks the model before any training: the summed log-det against the log |det| of the brute-force
Jacobian (float64, an 8 x 8 input, K = 2, hidden 8), and the inverse.

Usage:  python glow_fmnist.py --out glow_fmnist.json [--data DIR] [--seeds 1,2,3] [--threads 2] [--max_steps N]
        python glow_fmnist.py --selftest
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

parser = argparse.ArgumentParser(description="Glow on Fashion-MNIST")
parser.add_argument("--data", default=fmnist.DEFAULT_DIR)
parser.add_argument("--out", default="glow_fmnist.json")
parser.add_argument("--seeds", default="1", help="comma-separated seeds, each a full run")
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--max_steps", type=int, default=0, help="stop after this many steps (0: full epochs)")
parser.add_argument("--batch_size", type=int, default=64)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--levels", type=int, default=2)
parser.add_argument("--depth", type=int, default=8, help="K steps of flow per level")
parser.add_argument("--hidden", type=int, default=128)
parser.add_argument("--alpha", type=float, default=0.05)
parser.add_argument("--coupling", choices=["tanh", "sigmoid"], default="tanh",
                    help="tanh: the recipe's s = scale tanh(h), y = x exp(s) + t; sigmoid: the paper's (x + t) sigmoid(h + 2)")
parser.add_argument("--eval_seed", type=int, default=1234)
parser.add_argument("--test_n", type=int, default=0, help="evaluate on the first N test images (0: all)")
parser.add_argument("--log_interval", type=int, default=50)
parser.add_argument("--selftest", action="store_true", help="check log-dets against brute-force Jacobians and the inverse, then exit")
args = parser.parse_args()
torch.set_num_threads(args.threads)


def squeeze(x):
    n, c, h, w = x.shape
    return x.view(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(n, 4 * c, h // 2, w // 2)


def unsqueeze(x):
    n, c, h, w = x.shape
    return x.view(n, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c // 4, 2 * h, 2 * w)


class ActNorm(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.logs = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def data_init(self, x):
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = ((x - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True).sqrt()
        self.bias.copy_(-mean)
        self.logs.copy_(-torch.log(std + 1e-6))
        self.initialized.fill_(True)

    def forward(self, x):
        if not self.initialized:
            self.data_init(x)
        return (x + self.bias) * torch.exp(self.logs), x.shape[2] * x.shape[3] * self.logs.sum()

    def inverse(self, y):
        return y * torch.exp(-self.logs) - self.bias


class InvConv1x1LU(nn.Module):
    def __init__(self, c):
        super().__init__()
        q = torch.linalg.qr(torch.randn(c, c, dtype=torch.float64))[0]
        p, l, u = torch.linalg.lu(q)
        s = torch.diagonal(u)
        self.register_buffer("p", p.float())
        self.register_buffer("sign_s", torch.sign(s).float())
        self.register_buffer("l_mask", torch.tril(torch.ones(c, c), -1))
        self.register_buffer("eye", torch.eye(c))
        self.lower = nn.Parameter(l.float())
        self.upper = nn.Parameter(torch.triu(u, 1).float())
        self.log_s = nn.Parameter(torch.log(torch.abs(s)).float())

    def weight(self):
        l = self.lower * self.l_mask + self.eye
        u = self.upper * self.l_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.p @ l @ u

    def forward(self, x):
        c = x.shape[1]
        return F.conv2d(x, self.weight().view(c, c, 1, 1)), x.shape[2] * x.shape[3] * self.log_s.sum()

    def inverse(self, y):
        c = y.shape[1]
        w_inv = torch.linalg.inv(self.weight().double()).to(y.dtype)
        return F.conv2d(y, w_inv.view(c, c, 1, 1))


class AffineCoupling(nn.Module):
    def __init__(self, c, hidden):
        super().__init__()
        self.ca = c // 2
        cb = c - self.ca
        self.net = nn.Sequential(nn.Conv2d(self.ca, hidden, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
                                 nn.Conv2d(hidden, 2 * cb, 3, padding=1))
        bound = 1.0 / math.sqrt(9 * c)   # difference 3: the recipe's first conv has fan-in 9 C
        nn.init.uniform_(self.net[0].weight, -bound, bound)
        nn.init.uniform_(self.net[0].bias, -bound, bound)
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.scale = nn.Parameter(torch.ones(1))

    def params(self, xa):
        h = self.net(xa)
        cb = h.shape[1] // 2
        if args.coupling == "tanh":
            return self.scale * torch.tanh(h[:, :cb]), h[:, cb:]
        return F.logsigmoid(h[:, :cb] + 2.0), h[:, cb:]   # log of the paper's sigmoid(h + 2) scale

    def forward(self, x):
        xa, xb = x[:, :self.ca], x[:, self.ca:]
        log_s, t = self.params(xa)
        yb = xb * torch.exp(log_s) + t if args.coupling == "tanh" else (xb + t) * torch.exp(log_s)
        return torch.cat([xa, yb], 1), log_s.flatten(1).sum(1)

    def inverse(self, y):
        ya, yb = y[:, :self.ca], y[:, self.ca:]
        log_s, t = self.params(ya)
        xb = (yb - t) * torch.exp(-log_s) if args.coupling == "tanh" else yb * torch.exp(-log_s) - t
        return torch.cat([ya, xb], 1)


class Glow(nn.Module):
    def __init__(self, levels, depth, hidden, in_ch=1):
        super().__init__()
        self.levels = levels
        self.steps = nn.ModuleList()
        c = in_ch
        for l in range(levels):
            c *= 4
            self.steps.append(nn.ModuleList([nn.ModuleList([ActNorm(c), InvConv1x1LU(c), AffineCoupling(c, hidden)])
                                             for _ in range(depth)]))
            if l < levels - 1:
                c //= 2

    def forward(self, y):
        """Latents [z_0, ..., z_{L-1}] and the per-image log-det (n)."""
        logdet = torch.zeros(y.shape[0], dtype=y.dtype)
        zs = []
        for l, level in enumerate(self.steps):
            y = squeeze(y)
            for actnorm, conv, coupling in level:
                y, ld = actnorm(y)
                logdet = logdet + ld
                y, ld = conv(y)
                logdet = logdet + ld
                y, ld = coupling(y)
                logdet = logdet + ld
            if l < self.levels - 1:
                half = y.shape[1] // 2
                zs.append(y[:, half:])
                y = y[:, :half]
        zs.append(y)
        return zs, logdet

    def inverse(self, zs):
        y = zs[-1]
        for l in reversed(range(self.levels)):
            if l < self.levels - 1:
                y = torch.cat([y, zs[l]], 1)
            for actnorm, conv, coupling in reversed(self.steps[l]):
                y = actnorm.inverse(conv.inverse(coupling.inverse(y)))
            y = unsqueeze(y)
        return y


def preprocess(pixels, u, a):
    """(pixels + u) / 256 -> logit space: y and the per-image log-det of that map."""
    x = (pixels + u) / 256.0
    p = a + (1 - 2 * a) * x
    y = torch.log(p) - torch.log1p(-p)
    return y, (math.log(1 - 2 * a) - torch.log(p) - torch.log1p(-p)).flatten(1).sum(1)


def bits_per_dim(model, pixels, u):
    """Per-image bits/dim of pixels (float 0..255) with dequantisation noise u in [0,1)."""
    y, ld_pre = preprocess(pixels, u, args.alpha)
    zs, logdet = model(y)
    d = pixels[0].numel()
    log_pz = sum(-0.5 * (z.pow(2) + math.log(2 * math.pi)).flatten(1).sum(1) for z in zs)
    log_px = log_pz + logdet + ld_pre                         # density of x in [0,1]^D
    return (-log_px / d + math.log(256.0)) / math.log(2.0)


def selftest():
    """Brute-force checks of the log-det and the inverse on a small float64 model, with trained-looking parameters."""
    torch.manual_seed(0)
    model = Glow(2, 2, 8).double()
    x0 = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    model(x0)                                                 # ActNorm's data-dependent init
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))                 # move off the init (zero last convs, unit scales)
    worst_ld, worst_inv = 0.0, 0.0
    for i in range(2):
        xi = x0[i:i + 1]
        flat = lambda v: torch.cat([z.flatten() for z in model(v.view(1, 1, 8, 8))[0]])
        jac = torch.autograd.functional.jacobian(flat, xi.flatten())
        brute = torch.linalg.slogdet(jac)[1].item()
        ld = model(xi)[1].item()
        worst_ld = max(worst_ld, abs(brute - ld))
        zs, _ = model(xi)
        worst_inv = max(worst_inv, (model.inverse(zs) - xi).abs().max().item())
        print(f"selftest image {i}: log-det {ld:.10f}, brute-force log|det J| {brute:.10f}")
    print(f"selftest: max log-det error {worst_ld:.2e}, max inverse error {worst_inv:.2e}")
    ok = worst_ld < 1e-8 and worst_inv < 1e-10
    print("selftest", "passed" if ok else "FAILED")
    raise SystemExit(0 if ok else 1)


if args.selftest:
    selftest()


px_train = torch.from_numpy(fmnist.images(args.data, "train").astype(np.float32)).unsqueeze(1)
px_test = torch.from_numpy(fmnist.images(args.data, "t10k").astype(np.float32)).unsqueeze(1)
if args.test_n:
    px_test = px_test[:args.test_n]
print(f"data: {args.data}: train {tuple(px_train.shape)}, test {tuple(px_test.shape)}")


@torch.no_grad()
def test_bpd(model, bs=500):
    gen = torch.Generator().manual_seed(args.eval_seed)
    tot = 0.0
    for i in range(0, len(px_test), bs):
        xb = px_test[i:i + bs]
        tot += bits_per_dim(model, xb, torch.rand(xb.shape, generator=gen)).sum().item()
    return tot / len(px_test)


@torch.no_grad()
def invertibility_error(model, m=16):
    y, _ = preprocess(px_test[:m], 0.5, args.alpha)
    return (model.inverse(model(y)[0]) - y).abs().max().item()


def run(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = Glow(args.levels, args.depth, args.hidden)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    gen = torch.Generator().manual_seed(seed)
    n = len(px_train)
    log, epochs, step, train_time, t_run, done = [], [], 0, 0.0, time.time(), False
    print(f"seed {seed}: {n_params} parameters", flush=True)
    for ep in range(1, args.epochs + 1):
        perm = torch.randperm(n, generator=gen)
        tot, cnt, t_ep = 0.0, 0, time.time()
        for i in range(0, n, args.batch_size):
            xb = px_train[perm[i:i + args.batch_size]]
            loss = bits_per_dim(model, xb, torch.rand(xb.shape, generator=gen)).mean()
            if not torch.isfinite(loss):
                raise SystemExit(f"seed {seed} step {step + 1}: non-finite loss {loss.item()}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot += loss.item() * len(xb)
            cnt += len(xb)
            step += 1
            if step % args.log_interval == 0 or step == 1:
                el = time.time() - t_ep
                log.append({"step": step, "train_bpd_batch": loss.item(), "train_bpd_running": tot / cnt, "seconds": train_time + el})
                print(f"seed {seed} epoch {ep} step {step:4d}: bpd {loss.item():.4f} (running {tot / cnt:.4f})  {cnt / el:.0f} img/s", flush=True)
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
    inv = invertibility_error(model)
    images = sum(e["images"] for e in epochs)
    print(f"seed {seed}: {step} steps, {images} images in {train_time:.1f}s ({images / train_time:.1f} img/s); "
          f"test bits/dim {te:.4f} ({len(px_test)} images, {test_time:.1f}s); invertibility error {inv:.2e}", flush=True)
    return {"seed": seed, "n_params": n_params, "steps": step, "train_images": images, "epochs": epochs, "log": log,
            "test_bpd": te, "test_images": len(px_test), "test_seconds": test_time, "train_seconds": train_time,
            "invertibility_error": inv, "images_per_s": images / train_time, "wall_seconds": time.time() - t_run}


t_all = time.time()
runs = [run(int(s)) for s in args.seeds.split(",")]
tb = np.array([r["test_bpd"] for r in runs])
summary = {"test_bpd_mean": float(tb.mean()), "test_bpd_std": float(tb.std(ddof=1)) if len(tb) > 1 else 0.0,
           "images_per_s_mean": float(np.mean([r["images_per_s"] for r in runs])),
           "train_seconds_mean": float(np.mean([r["train_seconds"] for r in runs]))}
result = {"script": "glow_fmnist.py", "config": vars(args), "torch": torch.__version__, "numpy": np.__version__,
          "python": platform.python_version(), "threads": torch.get_num_threads(), "runs": runs,
          "summary": summary, "wall_seconds": time.time() - t_all}
os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
with open(args.out, "w") as f:
    json.dump(result, f, indent=1)
print("summary:", json.dumps(summary))
print(f"wrote {args.out}")
