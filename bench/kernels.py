"""Measure the kernels the inference model is built from on a real GPU, and set them beside the calibration.

    python bench/kernels.py measure --out bench/results/kernels_h200.json    # on a GPU, PyTorch only (~40 s on an H200)
    .venv/bin/python bench/kernels.py compare bench/results/kernels_h200.json --chip h200-sxm-141gb

`measure` needs PyTorch with CUDA and nothing from this project (the device machine has torch but not the
project's venv); without a GPU it says so and exits 0. It times, with CUDA events and the median of repeats:
HBM read and copy bandwidth; bf16 and fp8 (per-tensor scaled, torch._scaled_mm) GEMMs over the token count M
for the weight shapes of Llama-3.1-8B and -70B layers, and fp8 with per-row scales beside per-tensor ones; expert
GEMMs, one grouped GEMM against one matmul per expert; causal flash-attention prefill (PyTorch's flash and cuDNN
back ends, the faster kept), and its forward + backward for training; grouped-query decode attention reading a
contiguous KV cache; RMSNorm; and a whole Llama-3.1-8B-shaped decoder with random weights (decode steps under
a CUDA graph, prefill eager) with cuBLAS and PyTorch's attention, i.e. without an engine's fused kernels or host
work.

`compare` (the project's venv, no torch) fits the model's own forms to those times: GEMM efficiency
e(M) = e_inf * M / (M + m_half) under the max(compute, weight-read) roofline the model uses, the attention
efficiency relative to that, the bandwidth share, and predicts the whole-model steps with the shipped Hopper
parameters and the engine terms set to zero (device time only), so that each fitted constant can be read
against what the silicon does. Results and reading: docs/validation.md, "Kernels measured on an H200".
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from functools import partial
from pathlib import Path

MS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
# (name, N, K) of one GPU's share of a layer's GEMMs (TP1 for 8B, TP4 for 70B)
SHAPES = (("8b.qkv", 6144, 4096), ("8b.gate_up", 28672, 4096), ("8b.down", 4096, 14336),
          ("70b_tp4.gate_up", 14336, 8192), ("70b_tp4.down", 8192, 7168))
PREFILL = ((1, 1024), (1, 2048), (1, 4096), (1, 8192), (1, 16384), (8, 1024), (4, 4096))   # (prompts, length)
DECODE = ((1, 1024), (8, 1024), (32, 1024), (128, 1024), (32, 8192), (256, 2048))
LLAMA8B = {"hidden": 4096, "layers": 32, "heads": 32, "kv_heads": 8, "head_dim": 128, "ffn": 14336, "vocab": 128256}


# ----------------------------------------------------------------------------------------------- measure (torch)
def _timer(torch, fn, reps: int = 20, warm: int = 3) -> float:
    """Median seconds of `fn()` over `reps` runs, each timed by CUDA events."""
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    return statistics.median(times)


def _bandwidth(torch) -> dict:
    x = torch.empty(2 * 2**30, dtype=torch.uint8, device="cuda")      # 2 GiB, far beyond L2
    y = torch.empty_like(x)
    t_copy = _timer(torch, partial(y.copy_, x))
    xf = x.view(torch.float32)
    t_read = _timer(torch, xf.sum)
    return {"bytes": x.numel(), "copy_s": t_copy, "read_s": t_read,
            "copy_tb_s": 2 * x.numel() / t_copy / 1e12, "read_tb_s": x.numel() / t_read / 1e12}


def _gemms(torch) -> list[dict]:
    out = []
    fp8 = getattr(torch, "float8_e4m3fn", None)
    for name, n, k in SHAPES:
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) / k ** 0.5
        w8 = w.to(fp8) if fp8 is not None else None
        one = torch.ones((), device="cuda", dtype=torch.float32)
        for m in MS:
            a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            row = {"shape": name, "m": m, "n": n, "k": k,
                   "bf16_s": _timer(torch, partial(torch.matmul, a, w.t()))}
            if w8 is not None:
                a8 = a.to(fp8)
                try:
                    row["fp8_s"] = _timer(torch, partial(torch._scaled_mm, a8, w8.t(), scale_a=one, scale_b=one,
                                                                   out_dtype=torch.bfloat16))
                except (RuntimeError, TypeError) as e:      # a torch or GPU without the fp8 path
                    row["fp8_error"] = str(e).splitlines()[0][:200]
            out.append(row)
    return out


def _fp8_scaling(torch) -> list[dict]:
    """fp8 GEMMs with one scale per tensor against one per row of the activations and per column of the weights
    (the scaling FP8 checkpoints and engines use), for the 8B shapes."""
    fp8 = torch.float8_e4m3fn
    out = []
    for name, n, k in SHAPES[:3]:
        w8 = (torch.randn(n, k, device="cuda", dtype=torch.bfloat16) / k ** 0.5).to(fp8)
        one = torch.ones((), device="cuda", dtype=torch.float32)
        sb = torch.ones(1, n, device="cuda", dtype=torch.float32)
        for m in (64, 256, 1024, 4096, 16384):
            a8 = torch.randn(m, k, device="cuda", dtype=torch.bfloat16).to(fp8)
            sa = torch.ones(m, 1, device="cuda", dtype=torch.float32)
            row = {"shape": name, "m": m, "n": n, "k": k}
            for label, (x, y) in (("tensor", (one, one)), ("rowwise", (sa, sb))):
                try:
                    row[f"{label}_s"] = _timer(torch, partial(torch._scaled_mm, a8, w8.t(), scale_a=x, scale_b=y,
                                                              out_dtype=torch.bfloat16))
                except (RuntimeError, TypeError) as err:
                    row[f"{label}_error"] = str(err).splitlines()[0][:200]
            out.append(row)
    return out


# local experts on one GPU and one expert's gate+up matrix (N = 2 x expert FFN width, K = hidden), bf16
EXPERTS = (("mixtral-8x7b", 8, 28672, 4096), ("deepseek-v3 ep8", 32, 4096, 7168), ("gpt-oss-120b ep4", 32, 5760, 2880),
           ("qwen3-235b ep8", 16, 3072, 4096), ("qwen3-30b-a3b", 128, 1536, 2048))


def _grouped_gemm(torch) -> list[dict]:
    """Expert GEMMs as MoE layers run them: one grouped GEMM over the local experts (torch._grouped_mm, the
    CUTLASS kernel torchtitan uses), `rows` tokens per expert (16-row aligned, as that kernel wants), beside
    one matmul per expert in a loop. Decode sends a few tokens to each expert, so the weight stream decides."""
    grouped = getattr(torch, "_grouped_mm", None)
    out = []
    for name, e, n, k in EXPERTS:
        w = torch.randn(e, n, k, device="cuda", dtype=torch.bfloat16) / k ** 0.5
        for rows in (16, 64, 256, 1024):
            x = torch.randn(e * rows, k, device="cuda", dtype=torch.bfloat16)
            offs = torch.arange(rows, e * rows + 1, rows, device="cuda", dtype=torch.int32)
            row = {"model": name, "experts": e, "n": n, "k": k, "rows": rows, "weight_bytes": 2 * e * n * k}
            if grouped is not None:
                try:
                    row["grouped_s"] = _timer(torch, partial(grouped, x, w.transpose(-2, -1), offs=offs,
                                                             out_dtype=torch.bfloat16))
                except (RuntimeError, TypeError) as err:
                    row["grouped_error"] = str(err).splitlines()[0][:200]
            xs = x.view(e, rows, k)

            def loop(xs=xs, w=w):
                for i in range(xs.shape[0]):
                    torch.matmul(xs[i], w[i].t())
            row["loop_s"] = _timer(torch, loop, reps=10)
            out.append(row)
    return out


def _prefill_attention(torch) -> list[dict]:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    f = torch.nn.functional.scaled_dot_product_attention
    out = []
    h, d = LLAMA8B["heads"], LLAMA8B["head_dim"]
    for b, s in PREFILL:
        q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        row = {"batch": b, "seq": s, "heads": h, "head_dim": d, "causal_flops": 4.0 * b * h * d * s * s / 2}
        for name, backend in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
            try:
                with sdpa_kernel([backend]):
                    row[f"{name}_s"] = _timer(torch, partial(f, q, k, v, is_causal=True), reps=10)
            except RuntimeError as e:
                row[f"{name}_error"] = str(e).splitlines()[0][:200]
        out.append(row)
    return out


def _training_attention(torch) -> list[dict]:
    """Causal attention forward and forward + backward (training), 32 heads x 128; the backward pass counts 2.5x
    the forward's FLOPs (five matrix products against two)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    f = torch.nn.functional.scaled_dot_product_attention
    h, d = LLAMA8B["heads"], LLAMA8B["head_dim"]
    out = []
    for b, s in ((8, 1024), (4, 2048), (2, 4096), (1, 8192), (1, 16384)):
        q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
        g = torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16)
        row = {"batch": b, "seq": s, "causal_flops_fwd": 4.0 * b * h * d * s * s / 2}

        def fwd_bwd(q=q, k=k, v=v, g=g):
            o = f(q, k, v, is_causal=True)
            o.backward(g)
        for name, backend in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
            try:
                with sdpa_kernel([backend]):
                    row[f"{name}_fwd_bwd_s"] = _timer(torch, fwd_bwd, reps=10)
            except RuntimeError as e:
                row[f"{name}_error"] = str(e).splitlines()[0][:200]
        out.append(row)
    return out


def _decode_attention(torch) -> list[dict]:
    """One decode token per sequence; the 4 query heads that share a KV head ride as 4 query rows (exact)."""
    f = torch.nn.functional.scaled_dot_product_attention
    g, d = LLAMA8B["kv_heads"], LLAMA8B["head_dim"]
    rep = LLAMA8B["heads"] // g
    out = []
    for b, ctx in DECODE:
        q = torch.randn(b, g, rep, d, device="cuda", dtype=torch.bfloat16)
        k, v = (torch.randn(b, g, ctx, d, device="cuda", dtype=torch.bfloat16) for _ in range(2))
        t = _timer(torch, partial(f, q, k, v))
        kv = 2 * b * g * ctx * d * 2
        out.append({"batch": b, "ctx": ctx, "kv_bytes": kv, "s": t, "tb_s": kv / t / 1e12})
    return out


def _rmsnorm(torch) -> list[dict]:
    out = []
    hdim = 8192
    wgt = torch.ones(hdim, device="cuda", dtype=torch.bfloat16)
    for tokens in (1024, 8192, 65536):
        x = torch.randn(tokens, hdim, device="cuda", dtype=torch.bfloat16)
        t = _timer(torch, partial(torch.nn.functional.rms_norm, x, (hdim,), wgt))
        out.append({"tokens": tokens, "hidden": hdim, "s": t, "tb_s": 2 * x.numel() * 2 / t / 1e12})
    return out


class _Llama:
    """A Llama-3.1-8B-shaped decoder with random bf16 weights and a contiguous KV cache (no rotary: it is a few
    elementwise passes, counted in the model's activation traffic, not in what this checks)."""

    def __init__(self, torch, batch: int, ctx: int) -> None:
        c = LLAMA8B
        self.t, self.c, self.batch, self.ctx = torch, c, batch, ctx
        dev, bf = "cuda", torch.bfloat16
        qkv = (c["heads"] + 2 * c["kv_heads"]) * c["head_dim"]
        self.w = [dict(qkv=torch.randn(qkv, c["hidden"], device=dev, dtype=bf) * 0.02,
                       o=torch.randn(c["hidden"], c["heads"] * c["head_dim"], device=dev, dtype=bf) * 0.02,
                       gu=torch.randn(2 * c["ffn"], c["hidden"], device=dev, dtype=bf) * 0.02,
                       down=torch.randn(c["hidden"], c["ffn"], device=dev, dtype=bf) * 0.02,
                       n1=torch.ones(c["hidden"], device=dev, dtype=bf), n2=torch.ones(c["hidden"], device=dev, dtype=bf))
                  for _ in range(c["layers"])]
        self.head = torch.randn(c["vocab"], c["hidden"], device=dev, dtype=bf) * 0.02
        self.kv = [torch.zeros(2, batch, c["kv_heads"], ctx + 1, c["head_dim"], device=dev, dtype=bf)
                   for _ in range(c["layers"])]

    def weight_bytes(self) -> int:
        return 2 * (sum(w.numel() for lw in self.w for w in lw.values()) + self.head.numel())

    def decode(self, x):
        """One decode step for `batch` sequences at context `ctx` (the new token attends ctx + 1 positions)."""
        t, c = self.t, self.c
        f = t.nn.functional
        b, g, d = self.batch, c["kv_heads"], c["head_dim"]
        rep = c["heads"] // g
        for lw, kv in zip(self.w, self.kv):
            h = f.rms_norm(x, (c["hidden"],), lw["n1"])
            qkv = h @ lw["qkv"].t()
            q, k, v = qkv.split([c["heads"] * d, g * d, g * d], dim=-1)
            kv[0, :, :, self.ctx] = k.view(b, g, d)
            kv[1, :, :, self.ctx] = v.view(b, g, d)
            a = f.scaled_dot_product_attention(q.view(b, g, rep, d), kv[0], kv[1])
            x = x + a.reshape(b, -1) @ lw["o"].t()
            h = f.rms_norm(x, (c["hidden"],), lw["n2"])
            gate, up = (h @ lw["gu"].t()).chunk(2, dim=-1)
            x = x + (f.silu(gate) * up) @ lw["down"].t()
        return x @ self.head.t()

    def prefill(self, x):
        """One prompt of x.shape[0] tokens, causal, logits for its last token."""
        t, c = self.t, self.c
        f = t.nn.functional
        s, g, d = x.shape[0], c["kv_heads"], c["head_dim"]
        for lw in self.w:
            h = f.rms_norm(x, (c["hidden"],), lw["n1"])
            q, k, v = (h @ lw["qkv"].t()).split([c["heads"] * d, g * d, g * d], dim=-1)
            # (1, heads, s, d): four dimensions, so that PyTorch picks a flash kernel, not its math fallback
            q = q.view(1, s, c["heads"], d).transpose(1, 2)
            k = k.view(1, s, g, d).transpose(1, 2).repeat_interleave(c["heads"] // g, dim=1)
            v = v.view(1, s, g, d).transpose(1, 2).repeat_interleave(c["heads"] // g, dim=1)
            a = f.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + a.transpose(1, 2).reshape(s, -1) @ lw["o"].t()
            h = f.rms_norm(x, (c["hidden"],), lw["n2"])
            gate, up = (h @ lw["gu"].t()).chunk(2, dim=-1)
            x = x + (f.silu(gate) * up) @ lw["down"].t()
        return x[-1:] @ self.head.t()


def _whole_model(torch) -> dict:
    out: dict = {"model": "Llama-3.1-8B shape, bf16, TP1", "decode": [], "prefill": []}
    for b, ctx in ((1, 1024), (8, 1024), (32, 1024), (64, 2048), (128, 1024), (256, 1024)):
        m = _Llama(torch, b, ctx)
        x = torch.randn(b, LLAMA8B["hidden"], device="cuda", dtype=torch.bfloat16)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                m.decode(x)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            m.decode(x)
        t_graph = _timer(torch, graph.replay)
        t_eager = _timer(torch, partial(m.decode, x), reps=5)
        out["decode"].append({"batch": b, "ctx": ctx, "graph_s": t_graph, "eager_s": t_eager,
                              "weight_bytes": m.weight_bytes()})
        del m, graph
        torch.cuda.empty_cache()
    m = _Llama(torch, 1, 1)
    for s in (512, 2048, 8192):
        x = torch.randn(s, LLAMA8B["hidden"], device="cuda", dtype=torch.bfloat16)
        out["prefill"].append({"tokens": s, "s": _timer(torch, partial(m.prefill, x), reps=5)})
    return out


# each part's name (the JSON key and a --parts choice) and what measures it, in the order a full run takes them
MEASURES = {"bandwidth": _bandwidth, "gemm": _gemms, "fp8_scaling": _fp8_scaling, "grouped_gemm": _grouped_gemm,
            "prefill_attention": _prefill_attention, "training_attention": _training_attention,
            "decode_attention": _decode_attention, "rmsnorm": _rmsnorm, "whole_model": _whole_model}
PARTS = tuple(MEASURES)


def measure(out_path: Path, parts: tuple[str, ...] = PARTS) -> int:
    try:
        import torch
    except ImportError:
        print("kernels: PyTorch is not installed here; skipped")
        return 0
    if not torch.cuda.is_available():
        print("kernels: no CUDA GPU here; skipped")
        return 0
    torch.backends.cuda.matmul.allow_tf32 = False
    t0 = time.time()
    res: dict = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda,
                 "date": time.strftime("%Y-%m-%d"), "method": "CUDA events, median of repeats (bench/kernels.py)"}
    clocks = _clocks()
    if clocks:
        res["nvidia_smi"] = clocks
    for name in parts:
        fn = MEASURES[name]
        t = time.time()
        try:
            res[name] = fn(torch)
        except Exception as e:         # one failing part (an old torch, out of memory) keeps the others
            res[name] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
        torch.cuda.empty_cache()
        print(f"kernels: {name} {time.time() - t:.1f} s", file=sys.stderr, flush=True)
    res["wall_s"] = round(time.time() - t0, 1)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(res, indent=1) + "\n")
    print(f"kernels: wrote {out_path} in {res['wall_s']} s")
    return 0


def _clocks() -> str | None:
    import subprocess
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,power.limit,clocks.max.sm,clocks.max.mem",
                               "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure", help="time the kernels on this machine's GPU (PyTorch only)")
    m.add_argument("--out", type=Path, default=Path("bench/results/kernels.json"))
    m.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {', '.join(PARTS)}")
    c = sub.add_parser("compare", help="fit the model's forms to a measure file and set them beside the calibration")
    c.add_argument("file", type=Path)
    c.add_argument("--chip", default="h200-sxm-141gb")
    a = ap.parse_args(argv)
    if a.cmd == "measure":
        parts = tuple(x for x in a.parts.split(",") if x)
        unknown = [x for x in parts if x not in PARTS]
        if unknown:
            ap.error(f"--parts: unknown {', '.join(unknown)}; choose from {', '.join(PARTS)}")
        return measure(a.out, parts)
    # the comparison needs the project's venv (stockpile, numpy, scipy), so it is loaded only here, by its path
    import importlib.util
    spec = importlib.util.spec_from_file_location("kernels_compare", Path(__file__).with_name("kernels_compare.py"))
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return int(mod.compare(a.file, a.chip))


if __name__ == "__main__":
    raise SystemExit(main())
