"""Chapter 08: attention forward against cuDNN SDPA, and what the three-line version costs.

* ``ch08_attention``: bf16, the course's fused kernel (``kernels.attention``: pointer loads with the
  default tiles, the TMA variant, and the hand-pipelined key loop with 128 x 64 tiles,
  ``overlap=True``; and ``kernels.attention_gluon``'s hand-written FlashAttention-3
  schedule, with and without ping-pong) beside ``scaled_dot_product_attention`` with the cuDNN backend
  (the baseline of every ratio) and the FlashAttention-2 backend, at the shapes of the chapter:
  head dim 128 at (B, H, S) = (4, 16, 4096) and (1, 16, 16384), causal and not; head dim 64 at
  (4, 16, 4096) and (16, 16, 1024); grouped-query heads (32 query, 8 key/value heads). FLOPs =
  ``4 B H S^2 D``, halved when causal. CUDA-graph medians; the inputs (67-134 MB each) exceed L2.
  Each kernel's output is compared with cuDNN's, and its log-sum-exp with float32 ``logsumexp`` of
  the scores of the first two heads.
* ``ch08_backward``: the backward pass (dQ, dK, dV) of the course's kernels against SDPA's cuDNN and
  FA2 backends, bf16, at the shapes above up to B * S = 16384.
* ``ch08_naive_memory``: the three lines of PyTorch (scores, softmax, weighted sum) against the fused
  kernel as S grows: peak memory allocated during the call and time (head dim 128, 16 heads).
"""
import dataclasses
import json

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from kernels import attention as A
from kernels import attention_gluon as G
from kernels import bench
from kernels.testing import rel_error

from ._common import error_text, table, tqdm

SHAPES = [(4, 16, 16, 4096, 128, False), (4, 16, 16, 4096, 128, True), (1, 16, 16, 16384, 128, False),
          (1, 16, 16, 16384, 128, True), (4, 16, 16, 4096, 64, False), (4, 16, 16, 4096, 64, True),
          (16, 16, 16, 1024, 64, False), (16, 16, 16, 1024, 64, True), (4, 32, 8, 4096, 128, False),
          (4, 32, 8, 4096, 128, True)]


def _sdpa(backend, q, k, v, causal):
    def run():
        with sdpa_kernel(backend):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                                                    enable_gqa=q.shape[1] != k.shape[1])
    return run


def _lse_error(lse, q, k, causal):
    """Largest |lse - float32 logsumexp| over the first two heads of the first sequence."""
    D = q.shape[-1]
    k2 = A._expand_kv(k[:1], q.shape[1])[0, :2].float()
    s = (q[0, :2].float() @ k2.transpose(-1, -2)) / D ** 0.5
    if causal:
        S = s.shape[-1]
        s = s.masked_fill(~torch.ones(S, S, dtype=torch.bool, device=s.device).tril(), float("-inf"))
    return float((lse[0, :2] - torch.logsumexp(s, -1)).abs().max())


def run_attention(quick=False):
    shapes = SHAPES[:2] if quick else SHAPES
    recs = []
    for B, H, Hk, S, D, causal in tqdm(shapes, desc="attention shapes"):
        torch.manual_seed(0)
        q = torch.randn(B, H, S, D, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(B, Hk, S, D, device="cuda", dtype=torch.bfloat16)
        v = torch.randn(B, Hk, S, D, device="cuda", dtype=torch.bfloat16)
        flops = A.attention_flops(B, H, S, S, D, causal)
        cudnn = _sdpa(SDPBackend.CUDNN_ATTENTION, q, k, v, causal)
        ref = cudnn()
        base_ms = bench.median_ms(cudnn, graph=True)
        default = A.default_config(D, S, torch.bfloat16)
        cands = {"cuDNN SDPA": (cudnn, None), "FA2 backend SDPA": (_sdpa(SDPBackend.FLASH_ATTENTION, q, k, v, causal), None),
                 "ours": (None, default), "ours, TMA": (None, dataclasses.replace(default, tma=True)),
                 "ours, overlap": (None, dataclasses.replace(default, block_n=64, overlap=True)),
                 "ours, Gluon FA3 schedule": (None, dict(block_n=128, stages=2)),
                 "ours, Gluon FA3 schedule + ping-pong": (None, dict(block_n=128, stages=2, pingpong=True))}
        for name, (fn, cfg) in cands.items():
            rec = dict(kernel=name, B=B, H=H, H_kv=Hk, S=S, D=D, causal=causal, dtype="bf16", flops=flops,
                       baseline="cuDNN SDPA", baseline_graph_ms=base_ms)
            try:
                if isinstance(cfg, dict):  # kernels.attention_gluon
                    rec["config"] = " ".join(f"{k}={v}" for k, v in cfg.items())
                    o, lse = G.attention_fa3(q, k, v, causal=causal, return_lse=True, **cfg)
                    rec["lse_max_abs_error"] = _lse_error(lse, q, k, causal)
                    fn = lambda cfg=cfg: G.attention_fa3(q, k, v, causal=causal, **cfg)  # noqa: E731
                elif cfg is not None:
                    rec["config"] = cfg.label()
                    o, lse = A.attention(q, k, v, causal=causal, return_lse=True, config=cfg)
                    rec["lse_max_abs_error"] = _lse_error(lse, q, k, causal)
                    fn = lambda cfg=cfg: A.attention(q, k, v, causal=causal, config=cfg)  # noqa: E731
                else:
                    o = fn()
                rec["rel_error_vs_cudnn"] = rel_error(o, ref)
                ms = base_ms if name == "cuDNN SDPA" else bench.median_ms(fn, graph=True)
                rec.update(graph_ms=ms, tflops=flops / ms / 1e9, ratio_graph=base_ms / ms)
            except Exception as e:  # noqa: BLE001
                rec["error"] = error_text(e)
            recs.append(rec)
    recs[-1]["sm_mhz"] = bench.gpu_clocks().get("sm_mhz")
    return recs


def naive_attention(q, k, v, causal=False):
    """The three lines: scores, softmax, weighted sum (bf16 in, the scores in q's dtype, as PyTorch
    users write it)."""
    s = (q @ k.transpose(-1, -2)) / q.shape[-1] ** 0.5
    if causal:
        S = s.shape[-1]
        s = s.masked_fill(~torch.ones(S, S, dtype=torch.bool, device=s.device).tril(), float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def run_naive_memory(quick=False):
    recs = []
    H, D = 16, 128
    for S in tqdm((1024, 4096) if quick else (1024, 2048, 4096, 8192, 16384), desc="naive vs fused"):
        torch.manual_seed(0)
        q, k, v = (torch.randn(1, H, S, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        for name, fn in (("naive (three lines)", lambda: naive_attention(q, k, v)), ("ours", lambda: A.attention(q, k, v))):
            rec = dict(kernel=name, B=1, H=H, S=S, D=D, dtype="bf16",
                       scores_bytes=A.naive_attention_bytes(1, H, S, S, D, score_elem=2)["scores"])
            try:
                fn()
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                before = torch.cuda.memory_allocated()
                out = fn()
                torch.cuda.synchronize()
                rec["peak_extra_bytes"] = torch.cuda.max_memory_allocated() - before
                del out
                rec["ms"] = bench.median_ms(fn)
            except Exception as e:  # noqa: BLE001
                rec["error"] = error_text(e)
            recs.append(rec)
    return recs


def run_backward(quick=False):
    """The backward pass alone (``torch.autograd.grad`` of a kept forward graph, ``do_bench`` medians):
    the course's kernels (``kernels.attention.flash_attention``) against SDPA's cuDNN and FA2 backends;
    FLOPs = 2.5x the forward's (five matmuls of S^2 D per head instead of two), halved when causal.
    Errors of dQ, dK, dV against cuDNN's."""
    shapes = SHAPES[:2] if quick else [s for s in SHAPES if s[0] * s[3] <= 16384]
    recs = []
    for B, H, Hk, S, D, causal in tqdm(shapes, desc="attention backward"):
        torch.manual_seed(0)
        q, k, v = (torch.randn(B, h, S, D, device="cuda", dtype=torch.bfloat16, requires_grad=True)
                   for h in (H, Hk, Hk))
        do = torch.randn(B, H, S, D, device="cuda", dtype=torch.bfloat16)
        flops = 2.5 * A.attention_flops(B, H, S, S, D, causal)
        outs = {}
        for name, backend in (("cuDNN SDPA", SDPBackend.CUDNN_ATTENTION), ("FA2 backend SDPA", SDPBackend.FLASH_ATTENTION),
                              ("ours", None)):
            rec = dict(kernel=name, B=B, H=H, H_kv=Hk, S=S, D=D, causal=causal, dtype="bf16", flops=flops,
                       baseline="cuDNN SDPA")
            try:
                o = _sdpa(backend, q, k, v, causal)() if backend is not None else A.flash_attention(q, k, v, causal=causal)
                grads = torch.autograd.grad(o, (q, k, v), do, retain_graph=True)
                outs[name] = grads
                ms = bench.median_ms(lambda: torch.autograd.grad(o, (q, k, v), do, retain_graph=True))
                rec.update(ms=ms, tflops=flops / ms / 1e9)
                if name != "cuDNN SDPA" and "cuDNN SDPA" in outs:
                    rec.update({f"rel_error_d{n}_vs_cudnn": rel_error(g, r)
                                for n, g, r in zip("qkv", grads, outs["cuDNN SDPA"])})
            except Exception as e:  # noqa: BLE001
                rec["error"] = error_text(e)
            recs.append(rec)
        base = next((r["ms"] for r in recs[-3:] if r["kernel"] == "cuDNN SDPA" and "ms" in r), None)
        for r in recs[-3:]:
            if base and "ms" in r:
                r.update(baseline_ms=base, ratio=base / r["ms"])
    return recs


SHORT = {"cuDNN SDPA": "cuDNN", "FA2 backend SDPA": "FA2", "ours": "ours", "ours, TMA": "TMA",
         "ours, overlap": "overlap", "ours, Gluon FA3 schedule": "Gluon", "ours, Gluon FA3 schedule + ping-pong": "G+pp"}


def _shape(r):
    return f"B{r['B']} H{r['H']}/{r['H_kv']} S{r['S']} D{r['D']}" + (" causal" if r.get("causal") else "")


def ratio_table(doc) -> str:
    """One line per shape of a ``ch08_attention`` document: cuDNN's TFLOP/s, then every kernel's speed as
    a multiple of cuDNN's (``SHORT`` names the columns; ``-`` where a kernel has no timing)."""
    recs = [r for r in doc["records"] if "ratio_graph" in r]
    names = [k for k in SHORT if any(r["kernel"] == k for r in recs)]
    lines = ["speed as a multiple of cuDNN's; " + ", ".join(f"{SHORT[k]} = {k}" for k in names[1:] if SHORT[k] != k),
             f"{'shape':27s} {'cuDNN TFLOP/s':>13s}" + "".join(f"{SHORT[k]:>8s}" for k in names[1:])]
    for shape in dict.fromkeys(_shape(r) for r in recs):
        at = {r["kernel"]: r for r in recs if _shape(r) == shape}
        base = at.get("cuDNN SDPA")
        cells = "".join(f"{at[k]['ratio_graph']:8.2f}" if k in at else f"{'-':>8s}" for k in names[1:])
        lines.append(f"{shape:27s} {base['tflops'] if base else float('nan'):13.0f}" + cells)
    return "\n".join(lines)


def naive_memory_table(doc) -> str:
    """Memory allocated by one call (GB) and time (ms) per S, three lines against the fused kernel."""
    recs = [r for r in doc["records"] if "peak_extra_bytes" in r]
    lines = [f"{'S':>6s} {'scores (GB)':>12s} {'3 lines: GB':>12s} {'ms':>7s} {'fused: GB':>10s} {'ms':>7s}"]
    for S in dict.fromkeys(r["S"] for r in recs):
        n = next((r for r in recs if r["S"] == S and r["kernel"] != "ours"), None)
        f = next((r for r in recs if r["S"] == S and r["kernel"] == "ours"), None)
        if n and f:
            lines.append(f"{S:6d} {n['scores_bytes'] / 1e9:12.3f} {n['peak_extra_bytes'] / 1e9:12.3f} {n['ms']:7.3f} "
                         f"{f['peak_extra_bytes'] / 1e9:10.3f} {f['ms']:7.3f}")
    return "\n".join(lines)


SWEEP_LOG = "results/logs/h200_2026-12-01_attention_sweep.json"
HOPPER_LOG1 = "results/logs/attention_hopper_h200_2026-12-02_run1.json"


def exploration_table(path, keep, shapes, field="x_cudnn") -> str:
    """Rows of an exploration log (``benchmarks/explore_attention.py``, under ``results/logs/``) whose
    variant (or, in a tile sweep, pointer-load config) is in ``keep`` and whose shape is in ``shapes``:
    shape, variant, speed as a multiple of cuDNN's, relative error against cuDNN's output."""
    from kernels import bench

    doc = json.loads((bench.REPO / path).read_text())
    lines = [f"{'shape':38s} {'variant':22s} {'x cuDNN':>8s} {'error':>9s}"]
    for r in doc["rows"]:
        name = r.get("variant") or (r.get("config") if r.get("step") == "pointer" else None)
        if name in keep and r["shape"] in shapes:
            err = r.get("err_vs_cudnn")
            x = r.get(field)
            lines.append(f"{r['shape']:38s} {name:22s} " + (f"{x:8.2f}" if x is not None else f"{'-':>8s}")
                         + (f" {err:9.1e}" if err is not None else f" {r.get('error', '')[:40]}"))
    return "\n".join(lines)


def run_all(quick=False):
    return {
        "ch08_attention": (lambda: run_attention(quick), {"what": "attention forward, bf16, vs cuDNN SDPA and the "
                                                         "FA2 backend; CUDA-graph medians"}),
        "ch08_naive_memory": (lambda: run_naive_memory(quick), {"what": "three-line attention vs the fused kernel: "
                                                                "peak memory and time as S grows"}),
        "ch08_backward": (lambda: run_backward(quick), {"what": "attention backward, bf16, vs SDPA's cuDNN and FA2 "
                                                        "backends; do_bench medians"}),
    }


def summary(name, records):
    cols = {"ch08_attention": ["kernel", "B", "H", "H_kv", "S", "D", "causal", "tflops", "ratio_graph",
                               "rel_error_vs_cudnn", "lse_max_abs_error", "error"],
            "ch08_naive_memory": ["kernel", "S", "peak_extra_bytes", "scores_bytes", "ms", "error"],
            "ch08_backward": ["kernel", "B", "H", "H_kv", "S", "D", "causal", "tflops", "ratio",
                              "rel_error_dq_vs_cudnn", "error"]}[name]
    return f"{name}\n" + table(records, cols)
