"""
Dilated causal 1-D convolution (WaveNet's layer): PyTorch's conv1d against Latent's lt_conv1d_* (kernels/conv1d), both
in this one process, shape by shape, on the same data.

Shape: x (N, C, T), w (C, C, K), bias (C), dilation d; causal = conv1d(x, w, b, padding=(K-1)*d, dilation=d)[..., :T]
(PyTorch pads both sides and computes T + (K-1) d outputs, the last (K-1) d of which are dropped; Latent pads the left
only). One step = forward + backward (PyTorch: y.backward(dy), which computes dx, dw and db; Latent: lt_conv1d_fwd,
lt_conv1d_bwd_data, lt_conv1d_bwd_weight with db). FLOPs counted the same for both: 3 passes x 2 N C T C K (the
causal convolution's; PyTorch's extra outputs and Latent's padding taps are not counted).
Before timing, Latent's y, dx, dw, db are checked against PyTorch's (relative max error printed, must be < 1e-4).
Times: median of --reps steps after 2 warm-up steps, per side, in blocks (see block()). The FMA ceiling is lt_peak_fma_isa at the ISA level
Latent runs (LATENT_MAX_ISA caps it), on the same thread count, best of 3.

Usage: python conv1d_dilated.py --lib java/target/native/liblatent.so [--threads 2] [--reps 20] [--out conv1d.json]
"""
import argparse
import ctypes
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F

p = argparse.ArgumentParser(description="dilated causal conv1d: PyTorch vs Latent")
p.add_argument("--lib", required=True, help="path of liblatent.so")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--reps", type=int, default=20)
p.add_argument("--n", type=int, default=8)
p.add_argument("--c", type=int, default=64)
p.add_argument("--t", type=int, default=4096)
p.add_argument("--k", type=int, default=2)
p.add_argument("--dilations", default="1,2,4,8,16,32,64,128,256,512")
p.add_argument("--out", default=None)
a = p.parse_args()

torch.set_num_threads(a.threads)
torch.manual_seed(1)
lib = ctypes.CDLL(a.lib)
i64, f32p = ctypes.c_int64, ctypes.POINTER(ctypes.c_float)
for name, extra in (("lt_conv1d_fwd", [f32p] * 4), ("lt_conv1d_bwd_data", [f32p] * 3),
                    ("lt_conv1d_bwd_weight", [f32p] * 4 + [ctypes.c_int32])):
    fn = getattr(lib, name)
    fn.argtypes = [i64] * 6 + extra
    fn.restype = ctypes.c_int32
lib.lt_last_error.restype = ctypes.c_char_p
lib.lt_isa.restype = ctypes.c_int32
lib.lt_set_num_threads.argtypes = [ctypes.c_int32]
lib.lt_peak_fma_isa.argtypes = [ctypes.c_int32, ctypes.c_int32, i64, ctypes.POINTER(ctypes.c_double)]
lib.lt_set_num_threads(a.threads)
isa = lib.lt_isa()
isa_name = {0: "ref", 1: "avx2", 2: "avx512"}[isa]


def ptr(t):
    return ctypes.cast(t.data_ptr(), f32p)


def ok(st):
    if st != 0:
        raise RuntimeError(lib.lt_last_error().decode())


peak = 0.0
for _ in range(3):
    g = ctypes.c_double()
    if isa >= 1 and lib.lt_peak_fma_isa(isa, a.threads, 30000000, ctypes.byref(g)) == 0:
        peak = max(peak, g.value)

N, C, T, K = a.n, a.c, a.t, a.k
flop = 3 * 2.0 * N * C * T * C * K
rows = []
print(f"torch {torch.__version__} ({torch.backends.mkldnn.is_available() and 'oneDNN' or 'native'}), {a.threads} threads; "
      f"Latent ISA {isa_name}; FMA peak ({isa_name}) {peak:.1f} GFLOP/s; N={N} C={C} T={T} K={K}; medians of {a.reps}")
for idx, d in enumerate(int(s) for s in a.dilations.split(",")):
    x = torch.randn(N, C, T)
    w = (torch.randn(C, C, K) / (C * K) ** 0.5)
    b = torch.randn(C)
    dy = torch.randn(N, C, T)
    y, dx, dw, db = (torch.empty(N, C, T), torch.empty(N, C, T), torch.empty(C, C, K), torch.empty(C))

    def ours():
        ok(lib.lt_conv1d_fwd(N, C, T, C, K, d, ptr(x), ptr(w), ptr(b), ptr(y)))
        ok(lib.lt_conv1d_bwd_data(N, C, T, C, K, d, ptr(dy), ptr(w), ptr(dx)))
        ok(lib.lt_conv1d_bwd_weight(N, C, T, C, K, d, ptr(x), ptr(dy), ptr(dw), ptr(db), 0))

    xt, wt, bt = x.clone().requires_grad_(), w.clone().requires_grad_(), b.clone().requires_grad_()

    def theirs():
        xt.grad = wt.grad = bt.grad = None
        yt = F.conv1d(xt, wt, bt, padding=(K - 1) * d, dilation=d)[..., :T]
        yt.backward(dy)
        return yt

    yt = theirs()
    ours()
    err = max(((u - v.detach()).abs().max() / v.detach().abs().max()).item()
              for u, v in ((y, yt), (dx, xt.grad), (dw, wt.grad), (db, bt.grad)))
    assert err < 1e-4, f"d={d}: Latent and PyTorch differ by {err:.3g} (relative max)"
    # in blocks, not interleaved step by step: PyTorch's OpenMP workers spin for a while after each parallel region
    # and would take the cores from Latent's pool right after a PyTorch step (and the other way round); a pause
    # before each block lets the other side's threads go to sleep. The block order alternates per shape.
    def block(fn):
        time.sleep(0.5)
        for _ in range(2):
            fn()
        ts = []
        for _ in range(a.reps):
            t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
        return ts
    if idx % 2 == 0:
        tt = block(theirs); to = block(ours)
    else:
        to = block(ours); tt = block(theirs)
    mt, mo = statistics.median(tt), statistics.median(to)
    row = {"d": d, "torch_ms": mt * 1e3, "latent_ms": mo * 1e3, "torch_gflops": flop / mt / 1e9, "latent_gflops": flop / mo / 1e9,
           "ratio": mt / mo, "torch_pct_peak": 100 * flop / mt / 1e9 / peak if peak else None,
           "latent_pct_peak": 100 * flop / mo / 1e9 / peak if peak else None, "max_rel_err": err}
    rows.append(row)
    print(f"d={d:4d}  PyTorch {mt*1e3:8.2f} ms {flop/mt/1e9:6.1f} GF/s | Latent {mo*1e3:8.2f} ms {flop/mo/1e9:6.1f} GF/s | "
          f"ratio {mt/mo:5.2f}x | % of peak {row['torch_pct_peak'] or 0:5.1f} / {row['latent_pct_peak'] or 0:5.1f} | err {err:.1e}", flush=True)
if a.out:
    with open(a.out, "w") as f:
        json.dump({"machine": platform.processor() or platform.machine(), "torch": torch.__version__, "threads": a.threads,
                   "isa": isa_name, "peak_gflops": peak, "n": N, "c": C, "t": T, "k": K, "rows": rows}, f, indent=1)
