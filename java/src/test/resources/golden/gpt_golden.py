"""Recompute the tiny GPT of MakeGptGolden.java in PyTorch and write the expected logits and loss.

    python gpt_golden.py checkpoint.safetensors gpt_tiny_expected.json

Independent of Latent's code: reads the safetensors file with numpy and runs the reference model's math
(pre-LN blocks, causal SDPA, exact GELU, untied head with bias) as ../../../../../../shared/reference/gpt_char.py
defines it. The ids and targets are fixed here.
"""
import json
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

path, out = sys.argv[1], sys.argv[2]
raw = open(path, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
meta = header.pop("__metadata__")
cfg = json.loads(meta["config"])
W = {k: torch.from_numpy(np.frombuffer(raw[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]], dtype="<f4")
                         .reshape(v["shape"]).copy()).double() for k, v in header.items()}
B, T, C, NH = 2, 8, cfg["dim"], cfg["heads"]
ids = torch.tensor([[0, 3, 5, 7, 9, 1, 2, 10], [10, 9, 8, 7, 6, 5, 4, 3]])
tgt = torch.tensor([[3, 5, 7, 9, 1, 2, 10, 0], [9, 8, 7, 6, 5, 4, 3, 2]])
x = W["wte.weight"][ids] + W["wpe.weight"][:T]
for l in range(cfg["layers"]):
    p = "h.%d." % l
    h = F.layer_norm(x, (C,), W[p + "ln_1.weight"], W[p + "ln_1.bias"], 1e-5)
    q, k, v = (h @ W[p + "attn.c_attn.weight"].T + W[p + "attn.c_attn.bias"]).split(C, dim=2)
    q, k, v = (t.view(B, T, NH, C // NH).transpose(1, 2) for t in (q, k, v))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
    x = x + y @ W[p + "attn.c_proj.weight"].T + W[p + "attn.c_proj.bias"]
    h = F.layer_norm(x, (C,), W[p + "ln_2.weight"], W[p + "ln_2.bias"], 1e-5)
    x = x + F.gelu(h @ W[p + "mlp.c_fc.weight"].T + W[p + "mlp.c_fc.bias"]) @ W[p + "mlp.c_proj.weight"].T + W[p + "mlp.c_proj.bias"]
x = F.layer_norm(x, (C,), W["ln_f.weight"], W["ln_f.bias"], 1e-5)
logits = x @ W["lm_head.weight"].T + W["lm_head.bias"]
loss = F.cross_entropy(logits.view(-1, logits.size(-1)), tgt.view(-1))
json.dump({"ids": ids.flatten().tolist(), "targets": tgt.flatten().tolist(), "B": B, "T": T,
           "loss": loss.item(), "logits": logits.flatten().tolist(), "torch": torch.__version__}, open(out, "w"))
print("loss", loss.item())
