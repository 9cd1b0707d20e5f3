"""
VAE anomaly detection on Fashion-MNIST: the PyTorch CPU reference for `bin/latent eval vae-anomaly`.

For each held-out class K: train the conv VAE of ../shared/reference/vae_fmnist.py (latent 32, Adam 1e-3, batch 128,
Bernoulli likelihood on [0,1] pixels, PyTorch default init under torch.manual_seed(seed), randperm per epoch from a
generator seeded with the seed) on the training images of every class but K, then score all 10,000 test images and
report, with class K as the positive (anomalous) class, AUROC and AUPRC of three per-image scores (nats, higher =
more anomalous):
  rec   -log p(x | z = mu(x))               (no sampling)
  elbo  -log p(x | z) + KL(q(z|x) || N(0,I))  (one z)
  iwae  -log (1/k sum_j p(x, z_j) / q(z_j|x)) (k samples)
AUROC = the Mann-Whitney statistic with ties counted 1/2; AUPRC = average precision over distinct thresholds (ties
enter together), i.e. scikit-learn's roc_auc_score / average_precision_score, written out here with numpy.
The noise differs from Latent's (torch.randn vs Philox), so the sampled scores agree in distribution, not bits.

Usage:  python vae_anomaly.py --classes 0,1,...,9 --epochs 5 --out vae_anomaly.json [--data DIR] [--seed 1]
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

parser = argparse.ArgumentParser(description="VAE anomaly detection, one held-out class at a time")
parser.add_argument("--data", default=fmnist.DEFAULT_DIR)
parser.add_argument("--out", default="vae_anomaly.json")
parser.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9")
parser.add_argument("--seed", type=int, default=1)
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--batch_size", type=int, default=128)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--latent", type=int, default=32)
parser.add_argument("--iwae_k", type=int, default=16)
parser.add_argument("--eval_seed", type=int, default=1234)
args = parser.parse_args()
torch.set_num_threads(args.threads)


def images(split):
    return torch.from_numpy(fmnist.images(args.data, split).astype(np.float32) / 255.0).unsqueeze(1)


x_train, y_train = images("train"), fmnist.labels(args.data, "train").astype(np.int64)
x_test, y_test = images("t10k"), fmnist.labels(args.data, "t10k").astype(np.int64)


class VAE(nn.Module):
    def __init__(self, latent):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(), nn.Flatten())
        self.mu = nn.Linear(64 * 7 * 7, latent)
        self.logvar = nn.Linear(64 * 7 * 7, latent)
        self.dec_fc = nn.Linear(latent, 64 * 7 * 7)
        self.dec = nn.Sequential(nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 1, 4, 2, 1))

    def encode(self, x):
        h = self.enc(x)
        return self.mu(h), self.logvar(h)

    def decode(self, z):
        return self.dec(F.relu(self.dec_fc(z)).view(-1, 64, 7, 7))


def bce(logits, x):
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


LOG2PI = math.log(2 * math.pi)


@torch.no_grad()
def scores(model, x, k, bs=500):
    gen = torch.Generator().manual_seed(args.eval_seed)
    rec, elbo, iwae = [], [], []
    for i in range(0, len(x), bs):
        xb = x[i:i + bs]
        n = len(xb)
        mu, logvar = model.encode(xb)
        logvar = logvar.clamp(-30, 30)
        rec.append(bce(model.decode(mu), xb))
        eps = torch.randn(n, args.latent, generator=gen)
        z = mu + torch.exp(0.5 * logvar) * eps
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
        elbo.append(bce(model.decode(z), xb) + kl)
        eps = torch.randn(k, n, args.latent, generator=gen)
        z = mu + torch.exp(0.5 * logvar) * eps
        logits = model.decode(z.reshape(k * n, -1)).view(k, n, *xb.shape[1:])
        log_px = -F.binary_cross_entropy_with_logits(logits, xb.expand(k, *xb.shape), reduction="none").flatten(2).sum(2)
        log_pz = -0.5 * (z.pow(2) + LOG2PI).sum(2)
        log_qz = -0.5 * (eps.pow(2) + LOG2PI + logvar).sum(2)
        iwae.append(-(torch.logsumexp(log_px + log_pz - log_qz, dim=0) - math.log(k)))
    return {"rec": torch.cat(rec).double().numpy(), "elbo": torch.cat(elbo).double().numpy(), "iwae": torch.cat(iwae).double().numpy()}


def auroc(s, y):
    order = np.argsort(s, kind="mergesort")
    ss = s[order]
    ranks = np.empty(len(s))
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and ss[j + 1] == ss[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1
        i = j + 1
    pos = y.sum()
    neg = len(y) - pos
    return float((ranks[y].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def auprc(s, y):
    order = np.argsort(-s, kind="mergesort")
    ss, yy = s[order], y[order]
    total = y.sum()
    ap, tp, seen, i = 0.0, 0, 0, 0
    while i < len(ss):
        j = i
        while j + 1 < len(ss) and ss[j + 1] == ss[i]:
            j += 1
        new_tp = int(yy[i:j + 1].sum())
        tp += new_tp
        seen += j - i + 1
        if new_tp:
            ap += new_tp / total * (tp / seen)
        i = j + 1
    return float(ap)


def run(cls):
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    keep = torch.from_numpy(y_train != cls)
    xt = x_train[keep]
    model = VAE(args.latent)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    n = len(xt)
    t0 = time.time()
    for ep in range(1, args.epochs + 1):
        perm = torch.randperm(n, generator=gen)
        tot = 0.0
        for i in range(0, n, args.batch_size):
            xb = xt[perm[i:i + args.batch_size]]
            mu, logvar = model.encode(xb)
            z = mu + torch.exp(0.5 * logvar) * torch.randn(len(xb), args.latent, generator=gen)
            loss = (bce(model.decode(z), xb) - 0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot += loss.item() * len(xb)
        print(f"class {cls} epoch {ep}: train neg-ELBO {tot / n:.2f} ({time.time() - t0:.0f}s)", flush=True)
    model.eval()
    y = y_test == cls
    sc = scores(model, x_test, args.iwae_k)
    r = {"anomaly_class": cls, "n_train": n, "train_seconds": time.time() - t0}
    for name, s in sc.items():
        r[name] = {"auroc": auroc(s, y), "auprc": auprc(s, y), "mean_normal": float(s[~y].mean()), "mean_anomalous": float(s[y].mean())}
    print(f"class {cls}: " + ", ".join(f"{k} AUROC {r[k]['auroc']:.4f} AUPRC {r[k]['auprc']:.4f}" for k in sc), flush=True)
    return r


t_all = time.time()
runs = [run(int(c)) for c in args.classes.split(",")]
result = {"script": "vae_anomaly.py", "config": vars(args), "torch": torch.__version__, "numpy": np.__version__,
          "python": platform.python_version(), "threads": torch.get_num_threads(), "runs": runs, "wall_seconds": time.time() - t_all}
os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
with open(args.out, "w") as f:
    json.dump(result, f, indent=1)
print(f"wrote {args.out}")
