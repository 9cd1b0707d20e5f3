# Replays Latent's first K RealNVP steps (its initial weights, batch indices and dequantisation noise, written by
# FlowHarness.java) with the PyTorch reference's model code and Adam, and compares: the step-1 gradient, then the
# per-step losses.   python replay.py DIR K [channels_last 0|1] [clip]   (REALNVP_REF: the reference script's path)
import json, struct, sys
import numpy as np, torch
d, K = sys.argv[1], int(sys.argv[2]); cl = sys.argv[3] if len(sys.argv) > 3 else "0"
clip = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
sys.argv = ["realnvp_fmnist.py", "--threads", "1", "--channels_last", cl]
ref = __import__("os").environ.get("REALNVP_REF", "/work/shared/reference/realnvp_fmnist.py")
sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(ref)))   # its imports (bench/reference: fmnist.py)
src = open(ref).read()
exec(src[:src.index("def run(seed)")])
def st(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]; hdr = json.loads(f.read(n)); data = f.read()
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__": continue
        a, b = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype=np.float32).copy()).view(v["shape"])
    return out
model = RealNVP(6, 64, 0.05)
sd = model.state_dict(); init = st(f"{d}/init.safetensors")
for k in sd:
    if not k.endswith("mask"): sd[k] = init[k]
model.load_state_dict(sd)
if cl == "1": model = model.to(memory_format=torch.channels_last)
idx = np.fromfile(f"{d}/idx.bin", dtype="<i4"); idx = idx[:len(idx) // 64 * 64].reshape(-1, 64)
noise = np.fromfile(f"{d}/noise.bin", dtype="<f4"); noise = noise[:len(noise) // 50176 * 50176].reshape(-1, 64, 1, 28, 28)
K = min(K, len(idx), len(noise))
lat = {int(l.split()[0]): float(l.split()[1]) for l in open(f"{d}/losses.txt")}
# step-1 gradient
g1 = st(f"{d}/grad1.safetensors")
xb = px_train[torch.from_numpy(idx[0].astype(np.int64))]
loss = model.bits_per_dim(xb, torch.from_numpy(noise[0])).mean()
model.zero_grad(); loss.backward()
print(f"step-1 loss torch {loss.item():.7f} latent {lat[1]:.7f}")
for k, p in model.named_parameters():
    a, b = p.grad.flatten(), g1[k].flatten()
    rel = ((a - b).norm() / b.norm().clamp_min(1e-30)).item()
    print(f"  grad {k:28s} |g| torch {a.norm():.4e} latent {b.norm():.4e} rel diff {rel:.2e}")
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
model.zero_grad()
rows = []
for s in range(1, K + 1):
    xb = px_train[torch.from_numpy(idx[s - 1].astype(np.int64))]
    loss = model.bits_per_dim(xb, torch.from_numpy(noise[s - 1])).mean()
    opt.zero_grad(set_to_none=True); loss.backward()
    gn = torch.nn.utils.clip_grad_norm_(model.parameters(), clip if clip > 0 else float("inf")).item()
    opt.step()
    rows.append((s, loss.item(), lat.get(s), gn))
    if s <= 10 or s % 10 == 0:
        l = lat.get(s)
        print(f"step {s:4d} torch {loss.item():.6f} latent {l if l is None else round(l, 6)} diff {None if l is None else f'{loss.item() - l:+.2e}'} gnorm {gn:.3g}", flush=True)
json.dump(rows, open(f"{d}/replay-cl{cl}-clip{clip}.json", "w"))
