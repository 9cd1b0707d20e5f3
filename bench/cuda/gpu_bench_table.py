#!/usr/bin/env python3
"""Markdown table of a gpu_bench.py --out JSON (for BENCHMARKS.md); with a second JSON, a 'before' column.
With --steps, the training steps beside PyTorch eager (issue 18) from gpu_checks.sh's steps.jsonl (or its summary.json).

    python3 gpu_bench_table.py new.json [old.json]
    python3 gpu_bench_table.py --steps OUT/steps.jsonl
"""
import json
import sys


def steps_table(path):
    """| model | shape | precision | ours | PyTorch | ours / PyTorch | >= 1.0x |, one row per (model, precision)."""
    text = open(path).read()
    if path.endswith(".jsonl"):
        rows = [json.loads(l) for l in text.splitlines() if l.strip().startswith("{")]
    else:   # summary.json: {"steps": {"MODEL PRECISION": {"latent": ..., "pytorch": ...}}}
        rows = [r for v in json.loads(text).get("steps", {}).values() for k, r in v.items() if k in ("latent", "pytorch")]
    pairs = {}
    for r in rows:   # in file order; a later line of the same side and row replaces an earlier one
        pairs.setdefault((r["model"], r["precision"]), {})[r["side"]] = r
    dev = next((r["device"] for r in rows if r.get("side") == "pytorch" and r.get("device")), "?")
    tv = next((r["torch"] for r in rows if r.get("torch")), "?")
    print(f"Training steps on {dev} (PyTorch {tv} eager, same shapes, same optimizer; ours: `latent train ... --device cuda`)")
    print()
    print("| model | shape | precision | ours | ours ms/step | PyTorch | PyTorch ms/step | ours / PyTorch | >= 1.0x |")
    print("|---|---|---|---|---|---|---|---|---|")

    def cell(r):
        if not r:
            return "not run", "-"
        if r.get("error") or not r.get("items_per_s"):
            return "(" + str(r.get("error", "no rate"))[:120].replace("|", "/") + ")", "-"
        return f"{r['items_per_s']:,.0f} {r['unit']}/s", f"{r['ms_per_step']:.2f}"
    met = total = 0
    odd = []
    for (m, p), v in pairs.items():
        a, b = v.get("latent"), v.get("pytorch")
        shape = (a or {}).get("shape") or (b or {}).get("shape") or "?"
        if a and b and a.get("params") and b.get("params") and a["params"] != b["params"]:
            odd.append(f"{m} {p}: ours {a['params']:,} parameters, PyTorch's {b['params']:,}")
        (ra, ma), (rb, mb) = cell(a), cell(b)
        ratio, ok = "-", "-"
        if a and b and a.get("items_per_s") and b.get("items_per_s") and not a.get("error") and not b.get("error"):
            x = a["items_per_s"] / b["items_per_s"]
            ratio, ok = f"{x:.2f}x", "yes" if x >= 1.0 else "no"
            total += 1
            met += x >= 1.0
        print(f"| {m} | {shape} | {p} | {ra} | {ma} | {rb} | {mb} | {ratio} | {ok} |")
    print()
    print(f"{met} of {total} measured rows at >= 1.0x PyTorch eager; {len(pairs) - total} rows without both sides")
    checked = sum(1 for v in pairs.values() if v.get("latent", {}).get("params") and v.get("pytorch", {}).get("params"))
    print(f"parameter counts compared in {checked} rows: " + ("all equal (the same models)" if not odd else "DIFFER: " + "; ".join(odd)))


if len(sys.argv) > 1 and sys.argv[1] == "--steps":
    steps_table(sys.argv[2])
    sys.exit(0)

new = json.load(open(sys.argv[1]))
old = {}
if len(sys.argv) > 2:
    for r in json.load(open(sys.argv[2]))["results"]:
        if "ours_ms" in r:
            old[(r["name"], r["shape"])] = r["ours_ms"]
bw = new["meta"].get("copy_TBps")
print(f"GPU: {new['meta']['gpu']}, torch {new['meta']['torch']}, cuDNN {new['meta']['cudnn']}, CUDA {new['meta']['cuda']}, "
      f"copy {bw:.2f} TB/s" if bw else "")
print()
print("| op | shape | ours (ms) |" + (" before (ms) |" if old else "") +
      " peer (ms) | peer | peer / ours | ours | % of peak | err ours / peer |")
print("|---|---|---|" + ("---|" if old else "") + "---|---|---|---|---|---|")
for r in new["results"]:
    if "ours_ms" not in r:
        continue
    ratio = f"{r['ratio']:.2f}x" if r.get("ratio") else "-"
    peer = f"{r['peer_ms']:.3f}" if r["peer_ms"] == r["peer_ms"] else "-"
    rate = f"{r['ours_rate']:.2f} {r['unit']}" if r.get("ours_rate") else "-"
    if "ours_pct_peak" in r:
        pct = f"{r['ours_pct_peak']:.0f}%"
    elif r["unit"] == "TB/s" and bw and r.get("ours_rate"):
        pct = f"{100 * r['ours_rate'] / bw:.0f}% of copy"
    else:
        pct = "-"
    before = ""
    if old:
        b = old.get((r["name"], r["shape"]))
        before = f" {b:.3f} |" if b else " - |"
    pe = f"{r['peer_err']:.1e}" if r["peer_err"] == r["peer_err"] else "-"
    print(f"| {r['name']} | {r['shape']} | {r['ours_ms']:.3f} |{before} {peer} | {r['peer']} | {ratio} | {rate} | {pct} | "
          f"{r['ours_err']:.1e} / {pe} |")
