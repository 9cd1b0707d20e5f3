"""
Gated PixelCNN on Fashion-MNIST: the PyTorch CPU reference for `bin/latent train pixelcnn` (same recipe).

Model (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders"), grey 28x28, 256 levels:
  input x = pixel / 255 (N, 1, 28, 28); target the pixel value (0..255)
  block l (l = 0 mask A, later mask B), C channels per stack:
    vp = vertical masked conv k x k (pad k//2), weight * mask: rows above the centre (A) or up to and
         including the centre row (B), every column                          -> 2C channels
    v  = tanh(vp[:, :C]) * sigmoid(vp[:, C:])
    hp = horizontal masked conv 1 x k (pad (0, k//2)): columns left of the centre (A) or up to it (B)
         + conv1x1(vp)                                                         -> 2C channels
    h  = conv1x1(tanh(hp[:, :C]) * sigmoid(hp[:, C:])) + (h if l > 0 else 0)
  first block kernel 7, the others 3; head: ReLU -> linear C->head -> ReLU -> linear head->256 on each pixel.
  (The vertical stack never sees the current row in block 0, so the 1x1 link needs no shift; no blind spot.)
  PyTorch's default init for every conv / linear (U(+-1/sqrt(fan_in))), masked taps zeroed at the start.
Loss: mean 256-way cross-entropy per pixel; bits/dim = nats / ln 2.
Training: Adam lr 1e-3 (betas 0.9, 0.999, eps 1e-8), batch 32, the first --limit training images, shuffled by a
  generator seeded with the seed, fp32, no clipping.
Evaluation: exact test bits/dim on the first --test_n test images (0: all).

Usage:  python pixelcnn_fmnist.py --out pixelcnn_fmnist.json [--data DIR] [--limit 4000] [--epochs 1] [--test_n 2000]
"""
import argparse
import json
import math
import platform
import time

import fmnist
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

parser = argparse.ArgumentParser(description="Gated PixelCNN on Fashion-MNIST")
parser.add_argument("--data", default=fmnist.DEFAULT_DIR)
parser.add_argument("--out", default="pixelcnn_fmnist.json")
parser.add_argument("--seeds", default="1", help="comma-separated seeds, each a full run")
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--batch_size", type=int, default=32)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--channels", type=int, default=64)
parser.add_argument("--layers", type=int, default=7)
parser.add_argument("--first_kernel", type=int, default=7)
parser.add_argument("--kernel", type=int, default=3)
parser.add_argument("--head", type=int, default=256)
parser.add_argument("--limit", type=int, default=0, help="use only the first N training images (0: all)")
parser.add_argument("--test_n", type=int, default=0, help="evaluate on the first N test images (0: all)")
parser.add_argument("--log_interval", type=int, default=20)
args = parser.parse_args()
torch.set_num_threads(args.threads)


px_train = torch.from_numpy(fmnist.images(args.data, "train").astype(np.int64)).unsqueeze(1)
px_test = torch.from_numpy(fmnist.images(args.data, "t10k").astype(np.int64)).unsqueeze(1)
if args.limit:
    px_train = px_train[:args.limit]
if args.test_n:
    px_test = px_test[:args.test_n]
print(f"data: {args.data}: train {tuple(px_train.shape)}, test {tuple(px_test.shape)}")


class MaskedConv(nn.Conv2d):
    """nn.Conv2d whose weight is multiplied by a fixed 0/1 mask in every forward (so its gradient is masked too)."""

    def __init__(self, cin, cout, k, kind, mask_a):
        c = k // 2
        if kind == "vertical":
            super().__init__(cin, cout, (k, k), padding=(c, c))
            m = torch.zeros(k, k)
            m[:c if mask_a else c + 1, :] = 1
        else:
            super().__init__(cin, cout, (1, k), padding=(0, c))
            m = torch.zeros(1, k)
            m[0, :c if mask_a else c + 1] = 1
        self.register_buffer("mask", m.expand_as(self.weight).clone())
        with torch.no_grad():
            self.weight.mul_(self.mask)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class Block(nn.Module):
    def __init__(self, cin, c, k, first):
        super().__init__()
        self.c, self.residual = c, not first
        self.v = MaskedConv(cin, 2 * c, k, "vertical", first)
        self.h = MaskedConv(cin, 2 * c, k, "horizontal", first)
        self.v2h = nn.Conv2d(2 * c, 2 * c, 1)
        self.hout = nn.Conv2d(c, c, 1)

    def forward(self, v, h):
        c = self.c
        vp = self.v(v)
        hp = self.h(h) + self.v2h(vp)
        v2 = torch.tanh(vp[:, :c]) * torch.sigmoid(vp[:, c:])
        h2 = self.hout(torch.tanh(hp[:, :c]) * torch.sigmoid(hp[:, c:]))
        return v2, (h2 + h if self.residual else h2)


class GatedPixelCNN(nn.Module):
    def __init__(self):
        super().__init__()
        c = args.channels
        self.blocks = nn.ModuleList([Block(1 if l == 0 else c, c, args.first_kernel if l == 0 else args.kernel, l == 0)
                                     for l in range(args.layers)])
        self.head1 = nn.Linear(c, args.head)
        self.head2 = nn.Linear(args.head, 256)

    def forward(self, x):
        v = h = x
        for b in self.blocks:
            v, h = b(v, h)
        h = F.relu(h).permute(0, 2, 3, 1).reshape(-1, h.shape[1])
        return self.head2(F.relu(self.head1(h)))   # (N 28 28, 256)


def bits(model, px):
    logits = model(px.float() / 255.0)
    return F.cross_entropy(logits, px.reshape(-1)) / math.log(2)


def evaluate(model):
    model.eval()
    tot = 0.0
    with torch.no_grad():
        for i in range(0, len(px_test), 100):
            b = px_test[i:i + 100]
            tot += bits(model, b).item() * b.numel()
    model.train()
    return tot / px_test.numel()


results = []
for seed in [int(s) for s in args.seeds.split(",")]:
    torch.manual_seed(seed)
    model = GatedPixelCNN()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    g = torch.Generator().manual_seed(seed)
    step, t0, curve = 0, time.time(), []
    for ep in range(args.epochs):
        perm = torch.randperm(len(px_train), generator=g)
        tot = 0.0
        for i in range(0, len(px_train), args.batch_size):
            b = px_train[perm[i:i + args.batch_size]]
            loss = bits(model, b)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            tot += loss.item() * len(b)
            if step % args.log_interval == 1:
                print(f"seed {seed} step {step}: {loss.item():.4f} bits/dim", flush=True)
                curve.append([step, loss.item()])
        train_s = time.time() - t0
        print(f"seed {seed} epoch {ep + 1}: train {tot / len(px_train):.4f} bits/dim, {len(px_train) / train_s:.1f} img/s", flush=True)
    bpd = evaluate(model)
    print(f"seed {seed}: test {bpd:.4f} bits/dim on {len(px_test)} images", flush=True)
    results.append({"seed": seed, "test_bits_per_dim": bpd, "train_seconds": train_s, "steps": step, "curve": curve})

out = {"model": "gated-pixelcnn", "recipe": vars(args), "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
       "results": results, "test_bits_per_dim_mean": sum(r["test_bits_per_dim"] for r in results) / len(results)}
with open(args.out, "w") as f:
    json.dump(out, f, indent=1)
print(json.dumps({k: v for k, v in out.items() if k != "results"}))
