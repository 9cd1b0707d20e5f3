#!/usr/bin/env python3
"""Latent's CUDA kernels against cuBLAS / cuDNN / PyTorch on a real GPU, in one run (issue 7).

Our kernels are launched from the fatbin that the Java backend loads (build/cuda/latent_kernels.fatbin), through
the CUDA driver API (ctypes over libcuda.so.1: cuModuleLoadData, cuLaunchKernel), on PyTorch's tensors and stream,
with the grids and blocks of dev.latent.cuda.CudaKernels. The peers are PyTorch's CUDA ops: torch.matmul (cuBLAS
SGEMM, or its TF32 tensor-core path), torch's convolution forward and backward (cuDNN, TF32 off), and
scaled_dot_product_attention in fp32 (its memory-efficient kernel: FlashAttention needs fp16/bf16). Every figure is
the median of 7 timed groups of back-to-back launches bracketed by CUDA events, ours and the peer's alternating in
the same process. Before timing, each of our outputs and the peer's is compared with an fp64 result of the same
inputs computed by PyTorch on the GPU, and the error printed beside the time (ours must be within a stated bound
or the script exits non-zero).

This is a benchmark, not a dependency: it runs only where a GPU exists (the device tool), never in the build.

    python3 gpu_bench.py --fatbin latent_kernels.fatbin [--out results.json]
    python3 gpu_bench.py --emulated PATH/libcuda_emu.so --fatbin ...   # the launch plumbing on the CPU, tiny shapes
"""
import argparse
import ctypes as C
import json
import math
import statistics
import sys

import torch
import torch.nn.functional as TF

ap = argparse.ArgumentParser()
ap.add_argument("--fatbin", required=True)
ap.add_argument("--emulated", help="libcuda_emu.so: check the launches on the CPU with tiny shapes, no timing")
ap.add_argument("--out", default=None)
ap.add_argument("--only", default="", help="comma-separated subset: gemm,attention,conv,reparam,copy,bf16tc,lnres")
args = ap.parse_args()
EMU = args.emulated is not None
ONLY = set(filter(None, args.only.split(",")))
DEV = "cpu" if EMU else "cuda"

drv = C.CDLL(args.emulated if EMU else "libcuda.so.1")


def chk(rc, what):
    if rc != 0:
        s = C.c_char_p()
        drv.cuGetErrorString(rc, C.byref(s))
        raise RuntimeError(f"{what}: CUresult {rc} ({s.value.decode() if s.value else '?'})")


if not EMU:
    torch.zeros(1, device="cuda")  # PyTorch's runtime makes the primary context; we use the same one
chk(drv.cuInit(0), "cuInit")
dev = C.c_int()
chk(drv.cuDeviceGet(C.byref(dev), 0), "cuDeviceGet")
ctx = C.c_void_p()
chk(drv.cuDevicePrimaryCtxRetain(C.byref(ctx), dev), "cuDevicePrimaryCtxRetain")
chk(drv.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
image = open(args.fatbin, "rb").read()
image_buf = C.create_string_buffer(image, len(image))
mod = C.c_void_p()
chk(drv.cuModuleLoadData(C.byref(mod), image_buf), "cuModuleLoadData")
_funcs = {}


def fn(name):
    if name not in _funcs:
        f = C.c_void_p()
        chk(drv.cuModuleGetFunction(C.byref(f), mod, name.encode()), "cuModuleGetFunction " + name)
        _funcs[name] = f
    return _funcs[name]


class GemmDesc(C.Structure):
    _fields_ = [("trans_a", C.c_int32), ("trans_b", C.c_int32), ("m", C.c_int64), ("n", C.c_int64), ("k", C.c_int64),
                ("alpha", C.c_float), ("beta", C.c_float), ("lda", C.c_int64), ("ldb", C.c_int64), ("ldc", C.c_int64),
                ("batch", C.c_int64), ("stride_a", C.c_int64), ("stride_b", C.c_int64), ("stride_c", C.c_int64)]


class AttDesc(C.Structure):
    _fields_ = [("b", C.c_int64), ("nh", C.c_int64), ("t", C.c_int64), ("hs", C.c_int64), ("causal", C.c_int32),
                ("scale", C.c_float)]


class ConvDesc(C.Structure):
    _fields_ = [(f, C.c_int64) for f in ("n", "c", "h", "w", "k", "r", "s", "oh", "ow")] + \
               [(f, C.c_int32) for f in ("stride_h", "stride_w", "pad_h", "pad_w")]


def P(t):
    return C.c_void_p(0 if t is None else t.data_ptr())


def launch(name, grid, block, *kargs):
    """cuLaunchKernel on PyTorch's current stream; kargs are ctypes values (structs by value, pointers, scalars)."""
    grid = tuple(grid) + (1,) * (3 - len(grid))
    block = tuple(block) + (1,) * (3 - len(block))
    params = (C.c_void_p * len(kargs))(*[C.cast(C.pointer(a), C.c_void_p) for a in kargs])
    stream = C.c_void_p(0 if EMU else torch.cuda.current_stream().cuda_stream)
    chk(drv.cuLaunchKernel(fn(name), *[C.c_uint(g) for g in grid], *[C.c_uint(b) for b in block], C.c_uint(0), stream,
                           params, None), "cuLaunchKernel " + name)


def sync():
    if EMU:
        chk(drv.cuCtxSynchronize(), "cuCtxSynchronize")
    else:
        torch.cuda.synchronize()


def timed(f, reps):
    """Median over 7 groups of reps back-to-back calls, seconds per call (CUDA events)."""
    if EMU:
        f()
        return float("nan")
    for _ in range(2):
        f()
    torch.cuda.synchronize()
    ts = []
    for _ in range(7):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(reps):
            f()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b) / 1e3 / reps)
    return statistics.median(ts)


results = []
failures = []
torch.manual_seed(1234)
gpu_name = "emulated (libcuda_emu.so)" if EMU else torch.cuda.get_device_name(0)
# Datasheet ceilings for the H200 SXM (the H100's arithmetic): dense fp32 (FMA, non-tensor) 67 TFLOP/s, dense TF32
# tensor 495 TFLOP/s; the memory ceiling is measured below (device-to-device copy).
PEAK = {"fp32": 67e12, "tf32": 495e12}


def err_rel(got, ref64):
    return ((got.double() - ref64).abs().max() / ref64.abs().max().clamp_min(1e-30)).item()


def record(name, shape, ours_s, peer_s, peer, work, unit, ours_err, peer_err, bound, peak=None):
    ok = ours_err <= bound
    row = dict(name=name, shape=shape, ours_ms=ours_s * 1e3, peer_ms=peer_s * 1e3, peer=peer,
               ratio=(peer_s / ours_s) if ours_s == ours_s and ours_s > 0 else None,
               ours_rate=work / ours_s / 1e12 if ours_s == ours_s else None,
               peer_rate=work / peer_s / 1e12 if peer_s == peer_s else None, unit=unit,
               ours_err=ours_err, peer_err=peer_err, err_bound=bound, ok=ok)
    if peak and row["ours_rate"] is not None:
        row["ours_pct_peak"] = 100 * row["ours_rate"] * 1e12 / peak
        row["peer_pct_peak"] = 100 * row["peer_rate"] * 1e12 / peak
    results.append(row)
    if not ok:
        failures.append(f"{name} {shape}: error {ours_err:.3e} > bound {bound:.1e}")
    print(f"{name:24s} {shape:34s} ours {row['ours_ms']:9.3f} ms  {peer:22s} {row['peer_ms']:9.3f} ms  "
          f"ratio {row['ratio'] if row['ratio'] else float('nan'):6.3f}  ours {row['ours_rate'] or float('nan'):8.2f} "
          f"{unit}  err ours {ours_err:.2e} peer {peer_err:.2e}{'' if ok else '  FAIL'}", flush=True)


def want(k):
    return not ONLY or k in ONLY


# ---- memory ceiling ----
if want("copy") and not EMU:
    n = 1 << 28
    a = torch.empty(n, device=DEV)
    b = torch.empty_like(a)
    t = timed(lambda: b.copy_(a), 20)
    BW = 2 * 4 * n / t
    print(f"device-to-device copy: {BW / 1e12:.2f} TB/s (bytes read + written)", flush=True)
    results.append(dict(name="copy", shape=f"{n} floats", bw_TBps=BW / 1e12))
    del a, b
else:
    BW = float("nan")

# ---- GEMM ----
if want("gemm"):
    shapes = [(33, 47, 29), (67, 129, 77), (1030, 2050, 21)] if EMU else [(4096, 4096, 4096), (8192, 3072, 768), (8192, 768, 3072),
                                                       (4096, 1536, 384), (1000, 1000, 1000)]
    for (m, n, k) in shapes:
        A = torch.randn(m, k, device=DEV)
        B = torch.randn(k, n, device=DEV)
        Cm = torch.empty(m, n, device=DEV)
        ref = A.double() @ B.double()
        bound_scale = ((A.double().abs() @ B.double().abs()).max() / ref.abs().max()).item()
        d = GemmDesc(0, 0, m, n, k, 1.0, 0.0, k, n, n, 1, 0, 0, 0)
        # CudaKernels.gemm's choice (gemm.cu's gemm_big): 128 x 128 tiles when they give >= 128 blocks
        big = -(-m // 128) * -(-n // 128) >= 128
        for tf32 in (False, True):
            name = ("ltk_gemm_tf32" if tf32 else "ltk_gemm_f32") + ("_128" if big else "")
            tile = 128 if big else 64
            grid = ((n + tile - 1) // tile, (m + tile - 1) // tile, 1)
            run = lambda: launch(name, grid, (128 if tf32 and not big else 256,), d, P(A), P(B), P(Cm))
            run()
            sync()
            e_ours = err_rel(Cm, ref)
            if not EMU:
                torch.backends.cuda.matmul.allow_tf32 = tf32
                Ct = A @ B
                e_peer = err_rel(Ct, ref)
                peer = lambda: torch.matmul(A, B, out=Ct)
            else:
                e_peer, peer = float("nan"), None
            # fp32: k-term sums, bound k * 2^-24 of sum |a||b|; TF32 inputs: 2^-10 relative each, so ~2^-10 of it
            bound = (2 ** -10 if tf32 else k * 2 ** -24) * bound_scale * 2
            reps = max(1, int(2e9 / (2 * m * n * k) * (8 if tf32 else 1)))
            t_ours = timed(run, reps)
            t_peer = timed(peer, reps) if peer else float("nan")
            record("gemm tf32" if tf32 else "gemm fp32", f"M{m} N{n} K{k}", t_ours, t_peer,
                   "cuBLAS (torch, TF32)" if tf32 else "cuBLAS SGEMM (torch)", 2 * m * n * k, "TFLOP/s",
                   e_ours, e_peer, bound, PEAK["tf32" if tf32 else "fp32"])
        if not EMU:
            torch.backends.cuda.matmul.allow_tf32 = False
        del A, B, Cm, ref

# ---- attention ----
if want("attention"):
    shapes = [(1, 2, 37, 16), (2, 1, 70, 64)] if EMU else [(4, 16, 1024, 64), (8, 12, 1024, 64), (2, 16, 4096, 64),
                                                          (4, 8, 1024, 128)]
    for (b, nh, t, hs) in shapes:
        q, k_, v, do = (torch.randn(b, nh, t, hs, device=DEV) for _ in range(4))
        o, dq, dk, dv = (torch.empty_like(q) for _ in range(4))
        lse = torch.empty(b, nh, t, device=DEV)
        dvec = torch.empty(b * nh * t, device=DEV)
        scale = 1.0 / math.sqrt(hs)
        d = AttDesc(b, nh, t, hs, 1, scale)
        fwd = lambda: launch("ltk_attention_fwd", ((t + 31) // 32, b * nh), (64,), d, P(q), P(k_), P(v), P(o), P(lse))
        rows = b * nh * t

        def bwd():
            launch("ltk_attention_bwd_dot", ((rows + 7) // 8,), (256,), C.c_int64(rows), C.c_int64(hs), P(do), P(o),
                   P(dvec))
            small = hs <= 64  # CudaKernels.attentionBackward's choice
            g, blk, sfx = (((t + 31) // 32, b * nh), (64,), "64") if small else (((t + 7) // 8, b * nh), (128,), "")
            launch("ltk_attention_bwd_dkdv" + sfx, g, blk, d, P(q), P(k_), P(v), P(lse), P(dvec), P(do), P(dk), P(dv))
            launch("ltk_attention_bwd_dq" + sfx, g, blk, d, P(q), P(k_), P(v), P(lse), P(dvec), P(do), P(dq))

        fwd()
        bwd()
        sync()
        q64, k64, v64 = (x.double().requires_grad_() for x in (q, k_, v))
        s = (q64 @ k64.transpose(-1, -2)) * scale
        s = s.masked_fill(torch.ones(t, t, dtype=torch.bool, device=DEV).triu(1), float("-inf"))
        o64 = torch.softmax(s, -1) @ v64
        g64 = torch.autograd.grad(o64, (q64, k64, v64), do.double())
        e_ours = max(err_rel(o, o64.detach()), *(err_rel(g, r) for g, r in zip((dq, dk, dv), g64)))
        del s, q64, k64, v64
        if not EMU:
            qp, kp, vp = (x.clone().requires_grad_() for x in (q, k_, v))
            op = TF.scaled_dot_product_attention(qp, kp, vp, is_causal=True)
            gp = torch.autograd.grad(op, (qp, kp, vp), do)
            e_peer = max(err_rel(op.detach(), o64.detach()), *(err_rel(g, r) for g, r in zip(gp, g64)))
            peer_f = lambda: TF.scaled_dot_product_attention(q, k_, v, is_causal=True)

            def peer_fb():
                out = TF.scaled_dot_product_attention(qp, kp, vp, is_causal=True)
                torch.autograd.grad(out, (qp, kp, vp), do)
        else:
            e_peer, peer_f, peer_fb = float("nan"), None, None
        flops_f = 4 * b * nh * t * t * hs / 2  # causal: half the scores
        reps = max(1, int(2e10 / flops_f)) if not EMU else 1
        bound = 2e-5 * math.sqrt(t)  # fp32 online softmax / exp vs an fp64 reference, relative to max |out|
        record("attention fwd", f"B{b} NH{nh} T{t} HS{hs} causal", timed(fwd, reps),
               timed(peer_f, reps) if peer_f else float("nan"), "torch SDPA fp32", flops_f, "TFLOP/s",
               err_rel(o, o64.detach()), e_peer, bound, PEAK["fp32"])
        record("attention fwd+bwd", f"B{b} NH{nh} T{t} HS{hs} causal", timed(lambda: (fwd(), bwd()), reps),
               timed(peer_fb, reps) if peer_fb else float("nan"), "torch SDPA fp32 + autograd", 3.5 * flops_f,
               "TFLOP/s", e_ours, e_peer, bound, PEAK["fp32"])
        del q, k_, v, do, o, dq, dk, dv, lse, dvec, o64, g64

# PyTorch's SDPA in bf16 (its flash / cuDNN kernel): the peer of cuDNN's SDPA through our binding, which VendorBench
# times at the same shapes ("attention_fwd_bf16" rows: cuDNN SDPA bf16 vs our fp32 kernel). Peer only here: no ours.
if want("attention") and not EMU:
    for (b, nh, t, hs) in [(8, 12, 1024, 64), (4, 16, 1024, 64)]:
        qb, kb, vb = (torch.randn(b, nh, t, hs, device=DEV, dtype=torch.bfloat16) for _ in range(3))
        flops_f = 4 * b * nh * t * t * hs / 2
        record("attention fwd bf16 peer", f"B{b} NH{nh} T{t} HS{hs} causal", float("nan"),
               timed(lambda: TF.scaled_dot_product_attention(qb, kb, vb, is_causal=True), max(1, int(2e10 / flops_f))),
               "torch SDPA bf16", flops_f, "TFLOP/s", 0.0, float("nan"), float("inf"))
        qg, kg, vg = (x.clone().requires_grad_() for x in (qb, kb, vb))
        dob = torch.randn_like(qb)

        def peer_bf16_fb():
            out = TF.scaled_dot_product_attention(qg, kg, vg, is_causal=True)
            torch.autograd.grad(out, (qg, kg, vg), dob)
        record("attention fwd+bwd bf16 peer", f"B{b} NH{nh} T{t} HS{hs} causal", float("nan"),
               timed(peer_bf16_fb, max(1, int(2e10 / flops_f))), "torch SDPA bf16 + autograd", 3.5 * flops_f, "TFLOP/s", 0.0,
               float("nan"), float("inf"))
        del qb, kb, vb, qg, kg, vg, dob



def bench_bf16_tensor_cores():
    """Our bf16 tensor-core kernels (mma.sync m16n8k16: ltk_gemm_bf16[_128], ltk_attention_fwd_bf16; issue 18, branch
    h-tcbf16) beside cuBLAS bf16 (torch.matmul on bf16 tensors) and SDPA bf16 (torch's default flash backend, and its
    cuDNN backend where torch offers it) at the same shapes: the rows that measure issue 18's ">= 0.5x cuDNN's SDPA".
    Ours GEMM: bf16 A, B, fp32 C (the peer writes bf16 C). Ours attention: fp32 q, k, v, dout rounded to bf16 in the
    kernels (CudaKernels.attentionBf16 / attentionBackwardBf16's contract), the peer's inputs bf16. Errors against fp64
    on the bf16-rounded inputs, before timing."""
    bf = torch.bfloat16
    shapes = [(33, 47, 29), (67, 129, 77), (1030, 2050, 21)] if EMU else [(4096, 4096, 4096), (8192, 3072, 768),
                                                                        (8192, 768, 3072), (4096, 1536, 384)]
    for (m, n, k) in shapes:
        A, B = torch.randn(m, k, device=DEV).to(bf), torch.randn(k, n, device=DEV).to(bf)
        Cm = torch.empty(m, n, device=DEV)
        ref = A.double() @ B.double()
        bound_scale = ((A.double().abs() @ B.double().abs()).max() / ref.abs().max()).item()
        d = GemmDesc(0, 0, m, n, k, 1.0, 0.0, k, n, n, 1, 0, 0, 0)
        big = -(-m // 128) * -(-n // 128) >= 128  # CudaKernels.gemmBf16's choice (gemm_big)
        tile = 128 if big else 64
        grid = ((n + tile - 1) // tile, (m + tile - 1) // tile, 1)
        run = lambda: launch("ltk_gemm_bf16_128" if big else "ltk_gemm_bf16", grid, (256 if big else 128,), d, P(A), P(B), P(Cm))
        run()
        sync()
        e_ours = err_rel(Cm, ref)
        if not EMU:
            Ct = A @ B
            e_peer = err_rel(Ct.float(), ref)
            peer = lambda: torch.matmul(A, B, out=Ct)
        else:
            e_peer, peer = float("nan"), None
        # exact products, fp32 sums in any order within each 16: (k + 18) 2^-24 of sum |a||b|, doubled
        bound = 2 * (k + 18) * 2 ** -24 * bound_scale
        reps = max(1, int(2e9 / (2 * m * n * k) * 16))
        t_ours = timed(run, reps)
        t_peer = timed(peer, reps) if peer else float("nan")
        record("gemm bf16 mma", f"M{m} N{n} K{k}", t_ours, t_peer, "cuBLAS bf16 (torch)", 2 * m * n * k, "TFLOP/s",
               e_ours, e_peer, bound)
        del A, B, Cm, ref
    # GPT-2 small's attention (NH 12, HS 64, T 1024), a 16-head one, HS 128; not T 4096 (its fp64 reference and
    # backward would eat gpu_checks.sh's 240 s for the whole script)
    ashapes = [(1, 2, 37, 16), (2, 1, 70, 64), (1, 1, 65, 128)] if EMU else [(8, 12, 1024, 64), (4, 16, 1024, 64),
                                                                            (4, 8, 1024, 128)]
    for (b, nh, t, hs) in ashapes:
        q, k_, v, do = (torch.randn(b, nh, t, hs, device=DEV) for _ in range(4))
        qb, kb, vb, dob = (x.to(bf) for x in (q, k_, v, do))
        o, dq, dk, dv = (torch.empty_like(q) for _ in range(4))
        lse = torch.empty(b, nh, t, device=DEV)
        dvec = torch.empty(b * nh * t, device=DEV)
        rows = b * nh * t
        d = AttDesc(b, nh, t, hs, 1, 1.0 / math.sqrt(hs))
        fwd = lambda: launch("ltk_attention_fwd_bf16", ((t + 63) // 64, b * nh), (128,), d, P(q), P(k_), P(v), P(o), P(lse))

        def bwd():  # CudaKernels.attentionBackwardBf16
            launch("ltk_attention_bwd_dot", ((rows + 7) // 8,), (256,), C.c_int64(rows), C.c_int64(hs), P(do), P(o), P(dvec))
            g = ((t + 31) // 32, b * nh)
            launch("ltk_attention_bwd_dkdv_bf16", g, (64,), d, P(q), P(k_), P(v), P(lse), P(dvec), P(do), P(dk), P(dv))
            launch("ltk_attention_bwd_dq_bf16", g, (64,), d, P(q), P(k_), P(v), P(lse), P(dvec), P(do), P(dq))

        fwd()
        bwd()
        sync()
        q64, k64, v64 = (x.double().requires_grad_() for x in (qb, kb, vb))
        s = (q64 @ k64.transpose(-1, -2)) / math.sqrt(hs)
        s = s.masked_fill(torch.ones(t, t, dtype=torch.bool, device=DEV).triu(1), float("-inf"))
        o64 = torch.softmax(s, -1) @ v64
        g64 = torch.autograd.grad(o64, (q64, k64, v64), dob.double())
        e_f = max(err_rel(o, o64.detach()), err_rel(lse, torch.logsumexp(s.detach(), -1)))
        e_fb = max(e_f, *(err_rel(x, r) for x, r in zip((dq, dk, dv), g64)))
        del s, q64, k64, v64
        flops_f = 4 * b * nh * t * t * hs / 2
        reps = max(1, int(2e10 / flops_f)) if not EMU else 1
        bound = 2 ** -6  # P and dS rounded to bf16 (2^-9 relative) before their matmuls; fp32 elsewhere
        peers = []  # (name, forward only, forward + backward returning (out, grads))
        if not EMU:
            qg, kg, vg = (x.clone().requires_grad_() for x in (qb, kb, vb))
            import contextlib

            def sdpa(ctx):
                def f():
                    with ctx():
                        return TF.scaled_dot_product_attention(qb, kb, vb, is_causal=True)

                def fb():
                    with ctx():
                        out = TF.scaled_dot_product_attention(qg, kg, vg, is_causal=True)
                    return out, torch.autograd.grad(out, (qg, kg, vg), dob)
                return f, fb
            peers.append(("torch SDPA bf16", *sdpa(contextlib.nullcontext)))
            try:
                from torch.nn.attention import SDPBackend, sdpa_kernel
                cud = sdpa(lambda: sdpa_kernel(SDPBackend.CUDNN_ATTENTION))
                cud[1]()
                peers.append(("torch SDPA bf16 (cuDNN)", *cud))
            except Exception as ex:  # no cuDNN SDPA in this torch / for this shape: the default rows stay
                print(f"cuDNN SDPA backend unavailable: {ex}", flush=True)
        t_f = timed(fwd, reps)
        t_fb = timed(lambda: (fwd(), bwd()), reps)
        shape = f"B{b} NH{nh} T{t} HS{hs} causal"
        for (pname, pf, pfb) in peers or [("torch SDPA bf16", None, None)]:
            if pf:
                po, pg = pfb()
                e_pf = err_rel(po.detach().float(), o64.detach())
                e_pfb = max(e_pf, *(err_rel(x.float(), r) for x, r in zip(pg, g64)))
            else:
                e_pf = e_pfb = float("nan")
            record("attention fwd bf16 mma", shape, t_f, timed(pf, reps) if pf else float("nan"), pname, flops_f,
                   "TFLOP/s", e_f, e_pf, bound)
            record("attention fwd+bwd bf16 mma", shape, t_fb, timed(pfb, reps) if pfb else float("nan"),
                   pname + " + autograd", 3.5 * flops_f, "TFLOP/s", e_fb, e_pfb, bound)
        del q, k_, v, do, qb, kb, vb, dob, o, dq, dk, dv, lse, dvec, o64, g64

def bench_layernorm_residual():
    """GPT's residual add + LayerNorm: ltk_layernorm_residual_fwd (one kernel) against our unfused pair (ltk_axpby,
    then ltk_layernorm_fwd: the bits are equal, checked here too) and PyTorch eager (x + a, F.layer_norm)."""
    for rows, c in ((4, 33), (16, 64)) if EMU else ((32 * 256, 384), (8 * 1024, 768)):
        x, a = torch.randn(rows, c, device=DEV), torch.randn(rows, c, device=DEV)
        w, b = torch.randn(c, device=DEV), torch.randn(c, device=DEV)
        s, y, su, yu = (torch.empty(rows, c, device=DEV) for _ in range(4))
        mean, rstd, mu, ru = (torch.empty(rows, device=DEV) for _ in range(4))
        n, grid = rows * c, ((rows + 7) // 8,)
        eps = C.c_float(1e-5)
        fused = lambda: launch("ltk_layernorm_residual_fwd", grid, (256,), C.c_int64(rows), C.c_int64(c), eps, P(x), P(a),
                               P(w), P(b), P(s), P(y), P(mean), P(rstd))

        def unfused():
            su.copy_(x)
            launch("ltk_axpby", (max(1, min((n + 255) // 256, 65535)),), (256,), C.c_int64(n), C.c_float(1.0), P(a),
                   C.c_float(1.0), P(su))
            launch("ltk_layernorm_fwd", grid, (256,), C.c_int64(rows), C.c_int64(c), eps, P(su), P(w), P(b), P(yu),
                   P(mu), P(ru))
        fused(), unfused()
        sync()
        if not (torch.equal(s, su) and torch.equal(y, yu) and torch.equal(mean, mu) and torch.equal(rstd, ru)):
            failures.append(f"layernorm residual {rows}x{c}: fused and unfused bits differ")
        s64 = x.double() + a.double()
        ref = TF.layer_norm(s64, (c,), w.double(), b.double(), 1e-5)
        peer = lambda: TF.layer_norm(x + a, (c,), w, b, 1e-5)
        e = max(err_rel(s, s64), err_rel(y, ref))
        tf, tu = timed(fused, 20), timed(unfused, 20)
        # bytes: x, a read; s, y written (w, b, mean, rstd negligible)
        record("layernorm+residual fused", f"rows={rows} C={c}", tf, timed(peer, 20) if not EMU else float("nan"),
               "torch eager add+layer_norm", 16 * n, "TB/s", e, err_rel(peer(), ref), 1e-5)
        record("layernorm+residual unfused", f"rows={rows} C={c}", tu, tf, "ours fused", 16 * n, "TB/s", e,
               float("nan"), 1e-5)


if want("bf16tc"):
    bench_bf16_tensor_cores()

# ---- conv2d ----
if want("conv"):
    if not EMU:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
    # (N, C, H, W, K, R, S, stride, pad): DCGAN's 4x4 s2 convs, RealNVP / ResNet 3x3, a 1x1, an odd-size one
    # emulated: a split bwd_weight, stride 2, the _wide fwd / bwd_data (145 blocks), the _wide bwd_weight (C R S 288)
    shapes = [(3, 5, 9, 11, 7, 3, 3, 1, 1), (2, 17, 8, 8, 33, 4, 4, 2, 1), (8, 3, 66, 70, 5, 3, 3, 1, 1),
              (4, 32, 12, 10, 20, 3, 3, 1, 1)] if EMU else [
        (128, 128, 16, 16, 256, 4, 4, 2, 1), (128, 64, 32, 32, 128, 4, 4, 2, 1), (64, 64, 28, 28, 64, 3, 3, 1, 1),
        (128, 128, 32, 32, 128, 3, 3, 1, 1), (128, 256, 14, 14, 256, 1, 1, 1, 0), (61, 37, 23, 29, 45, 3, 3, 1, 1)]
    for (n, c, h, w, k, r, s, st, pd) in shapes:
        oh, ow = (h + 2 * pd - r) // st + 1, (w + 2 * pd - s) // st + 1
        x = torch.randn(n, c, h, w, device=DEV)
        wt = torch.randn(k, c, r, s, device=DEV)
        dy = torch.randn(n, k, oh, ow, device=DEV)
        y, dx, dw = torch.empty_like(dy), torch.empty_like(x), torch.empty_like(wt)
        d = ConvDesc(n, c, h, w, k, r, s, oh, ow, st, st, pd, pd)
        # conv2d.cu's conv2d_wide / CudaKernels.convWide: the 64 x 256 tile when it alone gives >= 128 blocks
        wide = lambda ncol, m, ph: -(-ncol // 256) * -(-m // 64) * ph >= 128
        ncf = n * oh * ow
        wf = wide(ncf, k, 1)
        tf = 256 if wf else 64
        fw = lambda: launch("ltk_conv2d_fwd_wide" if wf else "ltk_conv2d_fwd", (-(-ncf // tf), (k + 63) // 64), (256,), d,
                            P(x), P(wt), P(None), P(y))
        # bwd_data: one GEMM per stride phase (grid z), phase 0's columns the most (CudaKernels.conv2dBackwardData)
        ncd = n * -(-h // st) * -(-w // st)
        wd = wide(ncd, c, st * st)
        td = 256 if wd else 64
        bd = lambda: launch("ltk_conv2d_bwd_data_wide" if wd else "ltk_conv2d_bwd_data",
                            (-(-ncd // td), (c + 63) // 64, st * st), (256,), d, P(dy), P(wt), P(None), P(dx))
        # bwd_weight's tile and depth split: conv2d.cu's conv2d_bwd_weight_wide / _chunk (CudaKernels.conv2dBackwardWeight*)
        bwide = c * r * s >= 256
        tn = 256 if bwide else 64
        depth, tiles = n * oh * ow, -(-(c * r * s) // tn) * ((k + 63) // 64)
        splits = max(1, min(-(-(256 if bwide else 512) // tiles), -(-depth // 256), 65535))
        chunk = -(-(-(-depth // splits)) // 16) * 16
        splits = -(-depth // chunk)
        part = torch.empty(splits * k * c * r * s, device=DEV) if splits > 1 else None

        def bw():
            launch("ltk_conv2d_bwd_weight_wide" if bwide else "ltk_conv2d_bwd_weight",
                   (-(-(c * r * s) // tn), (k + 63) // 64, splits), (256,), d, P(x), P(dy),
                   P(dw), C.c_int32(0), P(part), C.c_int64(chunk))
            if splits > 1:
                nw = k * c * r * s
                launch("ltk_conv2d_bwd_weight_sum", (min((nw + 255) // 256, 1024),), (256,), C.c_int64(nw),
                       C.c_int32(splits), P(part), P(dw), C.c_int32(0))
        fw(), bd(), bw()
        sync()
        x64, w64, dy64 = x.double(), wt.double(), dy.double()
        y64 = TF.conv2d(x64, w64, stride=st, padding=pd)
        dx64 = torch.nn.grad.conv2d_input(x.shape, w64, dy64, stride=st, padding=pd)
        dw64 = torch.nn.grad.conv2d_weight(x64, wt.shape, dy64, stride=st, padding=pd)
        macs = n * k * oh * ow * c * r * s
        shape = f"N{n} C{c} {h}x{w} K{k} {r}x{s} s{st} p{pd}"
        # each output a sum of C R S (fwd), K R S / stride^2 (bwd data) or N OH OW (bwd weight) products
        for nm, ours, got, ref, peer_op, terms in (
                ("conv fwd", fw, y, y64, lambda: TF.conv2d(x, wt, stride=st, padding=pd), c * r * s),
                ("conv bwd_data", bd, dx, dx64,
                 lambda: torch.nn.grad.conv2d_input(x.shape, wt, dy, stride=st, padding=pd), k * r * s),
                ("conv bwd_weight", bw, dw, dw64,
                 lambda: torch.nn.grad.conv2d_weight(x, wt.shape, dy, stride=st, padding=pd), n * oh * ow)):
            bound = 4 * math.sqrt(terms) * 2 ** -24 * 8  # random-sign terms: error grows ~sqrt(terms); 8x margin
            e_ours = err_rel(got, ref)
            e_peer = err_rel(peer_op(), ref) if not EMU else float("nan")
            reps = max(1, int(2e10 / (2 * macs))) if not EMU else 1
            record(nm, shape, timed(ours, reps), timed(peer_op, reps) if not EMU else float("nan"),
                   "cuDNN fp32 (torch)", 2 * macs, "TFLOP/s", e_ours, e_peer, bound, PEAK["fp32"])
        del x, wt, dy, y, dx, dw, part, x64, w64, dy64, y64, dx64, dw64

# ---- reparameterization sampler ----
if want("reparam"):
    n = 1000 if EMU else 1 << 26
    mu, lv, dz = (torch.randn(n, device=DEV) for _ in range(3))
    z, dmu, dlv = (torch.empty_like(mu) for _ in range(3))
    chunks = (n + 4095) // 4096
    part = torch.empty(chunks, dtype=torch.float64, device=DEV)
    seed, stream = C.c_uint64(42), C.c_uint64(7)
    fw = lambda: launch("ltk_reparam_fwd", (chunks,), (256,), C.c_int64(n), P(mu), P(lv), seed, stream, P(z), P(part))
    bwb = max(1, min((((n + 3) // 4) + 255) // 256, 65535))
    bw = lambda: launch("ltk_reparam_bwd", (bwb,), (256,), C.c_int64(n), P(mu), P(lv), seed, stream, P(dz),
                        C.c_float(1.0), P(dmu), P(dlv))
    fw(), bw()
    sync()
    # eps recovered from z must be a standard normal sample; its moments are the check here (bit-equality with the
    # CPU's stream is CudaKernelsTest's)
    eps = (z - mu) / torch.exp(0.5 * lv)
    m1, m2 = eps.double().mean().item(), eps.double().var().item()
    e = max(abs(m1), abs(m2 - 1)) / (5 / math.sqrt(n))  # in units of 5 standard errors
    if not EMU:
        peer_f = lambda: (mu + torch.exp(0.5 * lv) * torch.randn_like(mu),
                          (-0.5 * (1 + lv - mu * mu - lv.exp())).sum())
    rf = timed(fw, 20)
    record("reparam fwd (+KL)", f"n={n}", rf, timed(peer_f, 20) if not EMU else float("nan"),
           "torch eager (randn_like)", 12 * n, "TB/s", e, float("nan"), 1.0)
    # backward against its formula in fp64 with s = exp(lv / 2) and eps = (z - mu) / s from the forward's z
    s64 = torch.exp(0.5 * lv.double())
    eps64 = (z.double() - mu.double()) / s64
    e_b = max(err_rel(dmu, dz.double() + mu.double()),
              err_rel(dlv, 0.5 * (s64 * s64 - 1) + dz.double() * eps64 * 0.5 * s64))
    del s64, eps64
    rb = timed(bw, 20)
    record("reparam bwd", f"n={n}", rb, float("nan"), "-", 20 * n, "TB/s", e_b, float("nan"), 1e-5)
    if BW == BW:
        print(f"reparam: fwd {12 * n / rf / 1e12:.2f} TB/s = {100 * 12 * n / rf / BW:.0f}% of copy; "
              f"bwd {20 * n / rb / 1e12:.2f} TB/s = {100 * 20 * n / rb / BW:.0f}% of copy", flush=True)

if want("lnres"):
    bench_layernorm_residual()

meta = dict(gpu=gpu_name, torch=torch.__version__, cudnn=None if EMU else torch.backends.cudnn.version(),
            cuda=torch.version.cuda, copy_TBps=BW / 1e12 if BW == BW else None, peak=PEAK)
if args.out:
    with open(args.out, "w") as f:
        json.dump(dict(meta=meta, results=results), f, indent=1)
print(json.dumps(meta))
if failures:
    print("FAILED:\n  " + "\n  ".join(failures))
    sys.exit(1)
print(f"all {len(results)} rows within their error bounds")
