"""``kernels.matmul`` against cuBLAS (``torch.matmul``) over a grid of shapes: decode-sized M, the
wave-tail shapes of chapter 03, odd sizes whose rows TMA cannot read as they are, and squares.

Each shape: random bf16 inputs, the error of both against a float64 reference, then, ``repeats``
times interleaved, CUDA-graph medians over enough copies of the operands to exceed L2
(``kernels.bench.rotating_graph_ms``) and ``do_bench`` medians (launched from Python, L2 flushed).
Both sides allocate their output, as ``torch.matmul(a, b)`` does. The record keeps the kernel, tile and
split :func:`kernels.dispatch.plan` chose, and why.
"""
from __future__ import annotations

import math
import statistics

import torch

from kernels import bench
from kernels import testing as T
from kernels.dispatch import matmul, plan

from ._common import tqdm

GRID = ([(m, n, n) for m in (1, 16, 64, 128, 512) for n in (4096, 8192)]
        + [(4095, 4095, 4095), (3000, 5000, 1700), (1152, 4096, 4096), (2176, 4096, 4096)]
        + [(s, s, s) for s in (1024, 2048, 4096, 8192, 16384)])
L2_MULTIPLE_BYTES = 150_000_000  # copies of the operands together exceed this (3x the H200's 50 MB L2)


def copies_for(M, N, K, elem_bytes=2, cap=8) -> int:
    """How many copies of the operands to rotate through so that one graph replays more than
    ``L2_MULTIPLE_BYTES`` (at least 1, at most ``cap``)."""
    nbytes = elem_bytes * (M * K + K * N + M * N)
    return max(1, min(cap, math.ceil(L2_MULTIPLE_BYTES / nbytes)))


def measure_shape(M, N, K, repeats=3, rep_ms=100, dtype=torch.bfloat16) -> dict:
    n = copies_for(M, N, K)
    A = [T.randn(M, K, dtype=dtype, seed=2 * i) for i in range(n)]
    B = [T.randn(K, N, dtype=dtype, seed=2 * i + 1) for i in range(n)]
    ref = A[0].double() @ B[0].double()
    scale = ref.abs().max().item()
    err = (matmul(A[0], B[0]).double() - ref).abs().max().item() / scale
    lib_err = (torch.matmul(A[0], B[0]).double() - ref).abs().max().item() / scale
    ours = [lambda a=a, b=b: matmul(a, b) for a, b in zip(A, B)]
    lib = [lambda a=a, b=b: torch.matmul(a, b) for a, b in zip(A, B)]
    g, gl, d, dl = [], [], [], []
    for _ in range(repeats):
        g.append(bench.rotating_graph_ms(ours, rep_ms))
        gl.append(bench.rotating_graph_ms(lib, rep_ms))
        d.append(bench.median_ms(ours[0], rep_ms=rep_ms))
        dl.append(bench.median_ms(lib[0], rep_ms=rep_ms))
    p = plan(M, N, K, dtype)
    flops = bench.matmul_flops(M, N, K)
    rec = dict(M=M, N=N, K=K, dtype=bench.DTYPE_NAMES[dtype], kernel=p.kernel, config=p.config.short(),
               split_k=p.split_k, rows=p.rows, why=p.why, copies=n, rel_error=err, baseline_rel_error=lib_err,
               graph_ms=statistics.median(g), baseline_graph_ms=statistics.median(gl),
               ms=statistics.median(d), baseline_ms=statistics.median(dl),
               repeats_ratio_graph=[b / a for a, b in zip(g, gl)], repeats_ratio=[b / a for a, b in zip(d, dl)])
    rec["ratio_graph"] = rec["baseline_graph_ms"] / rec["graph_ms"]
    rec["ratio"] = rec["baseline_ms"] / rec["ms"]
    rec["graph_tflops"] = flops / rec["graph_ms"] / 1e9
    rec["baseline_graph_tflops"] = flops / rec["baseline_graph_ms"] / 1e9
    rec["sm_mhz"] = bench.gpu_clocks().get("sm_mhz")
    return rec


def run_grid(quick=False) -> list[dict]:
    shapes = GRID[:4] if quick else GRID
    rows = []
    for M, N, K in tqdm(shapes, desc="grid"):
        rows.append(measure_shape(M, N, K, repeats=1 if quick else 3))
        torch.cuda.empty_cache()
    return rows


geomean = bench.geomean  # the notebook's name for it
