#!/usr/bin/env python3
"""Markdown table of a gpu_bench.py --out JSON (for BENCHMARKS.md); with a second JSON, a 'before' column.

    python3 gpu_bench_table.py new.json [old.json]
"""
import json
import sys

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
