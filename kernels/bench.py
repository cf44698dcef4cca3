"""Benchmark helpers: time a kernel and its library baseline in the same run, and keep the numbers.

Every timing is a ``triton.testing.do_bench`` median (it flushes L2 between calls, so inputs that fit in
the cache are not flattered). A kernel's time is always reported beside the library's time for the same
problem, measured in the same process, as a ratio: ``speed vs library = library_ms / kernel_ms``
(1.0 = as fast as cuBLAS, 0.5 = half its speed).

Records are plain dicts written as JSON under ``results/`` with the GPU's name, the software versions
and the date, so that a notebook can plot them on a machine without a GPU.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from pathlib import Path

import torch

from . import ON_GPU

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "results"

DTYPE_BYTES = {torch.float32: 4, torch.float16: 2, torch.bfloat16: 2}
DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


def matmul_flops(M, N, K) -> float:
    """Floating-point operations of ``(M, K) @ (K, N)``: one multiply and one add per term."""
    return 2.0 * M * N * K


def matmul_min_bytes(M, N, K, elem_bytes=2) -> float:
    """The fewest bytes a matmul must move through DRAM: read A and B once, write C once."""
    return float(elem_bytes) * (M * K + K * N + M * N)


def median_ms(fn, warmup_ms=25, rep_ms=100, graph=False) -> float:
    """Median time of ``fn()`` in milliseconds (GPU only).

    ``graph=False``: ``do_bench``, CUDA events around each call with L2 flushed in between. When the
    CPU takes longer to launch ``fn`` than the GPU takes to run it, the GPU waits and that wait is
    counted: this is what a Python caller gets.
    ``graph=True``: ``do_bench_cudagraph``, the calls captured once in a CUDA graph and replayed, so no
    CPU launch cost: the kernel's own GPU time (L2 is not flushed between replays).
    """
    if not ON_GPU:
        raise RuntimeError("timing needs a GPU; in the interpreter, show the recorded numbers instead")
    import triton.testing

    if graph:
        return float(triton.testing.do_bench_cudagraph(fn, rep=rep_ms, return_mode="median"))
    return float(triton.testing.do_bench(fn, warmup=warmup_ms, rep=rep_ms, return_mode="median"))


def environment() -> dict:
    """What the numbers were measured on: GPU, SM count, versions, date."""
    import triton

    env = {
        "torch": torch.__version__,
        "triton": triton.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
    }
    if ON_GPU:
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=torch.cuda.get_device_name(0), sm_count=props.multi_processor_count,
                   capability=f"{props.major}.{props.minor}")
    else:
        env.update(gpu=None, sm_count=None, capability=None)
    return env


def compare(name, kernel_fn, baseline_fn, *, flops=None, nbytes=None, baseline="torch.matmul",
            graph=True, **fields) -> dict:
    """Time ``kernel_fn`` and ``baseline_fn`` back to back and return one record.

    ``ms``/``baseline_ms``/``ratio`` come from ``do_bench`` (launched from Python, L2 flushed);
    with ``graph=True`` also ``graph_ms``/``baseline_graph_ms``/``ratio_graph`` from CUDA-graph replay
    (GPU time only). The two agree for long kernels; for kernels of a few tens of microseconds the
    graph numbers compare the kernels and the plain ones include Python's launch cost.
    ``flops`` and ``nbytes`` (the minimum bytes moved) turn the times into TFLOP/s and GB/s.
    """
    kernel_ms = median_ms(kernel_fn)
    baseline_ms = median_ms(baseline_fn)
    rec = dict(kernel=name, ms=kernel_ms, baseline=baseline, baseline_ms=baseline_ms,
               ratio=baseline_ms / kernel_ms, **fields)
    if graph:
        rec["graph_ms"] = median_ms(kernel_fn, graph=True)
        rec["baseline_graph_ms"] = median_ms(baseline_fn, graph=True)
        rec["ratio_graph"] = rec["baseline_graph_ms"] / rec["graph_ms"]
    if flops is not None:
        rec["tflops"] = flops / kernel_ms / 1e9
        rec["baseline_tflops"] = flops / baseline_ms / 1e9
        if graph:
            rec["graph_tflops"] = flops / rec["graph_ms"] / 1e9
            rec["baseline_graph_tflops"] = flops / rec["baseline_graph_ms"] / 1e9
    if nbytes is not None:
        rec["gbps"] = nbytes / kernel_ms / 1e6
    return rec


def save(records: list[dict], name: str, script: str, meta: dict | None = None) -> Path:
    """Write ``results/<name>.json``: the environment, the script that made it, and the records."""
    RESULTS.mkdir(exist_ok=True)
    doc = {"environment": environment(), "script": script, "meta": meta or {}, "records": records}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    return path


def load(name: str) -> dict:
    """Read ``results/<name>.json`` (raises FileNotFoundError with the command that makes it)."""
    path = RESULTS / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; run the benchmark on a GPU: see results/README.md")
    return json.loads(path.read_text())


def describe(doc: dict) -> str:
    """A one-line provenance string for a results document, for plot titles and prose."""
    e = doc["environment"]
    return (f"{e['gpu']} ({e['sm_count']} SMs), torch {e['torch']}, triton {e['triton']}, "
            f"CUDA {e['cuda']}, {e['date']}")


def recorded_or_fresh(name: str, fresh=None, meta: dict | None = None) -> dict:
    """The results document for ``name``: measured now if a GPU is here, else the recorded one.

    ``fresh`` is a zero-argument function returning records (e.g. ``lambda: ch02.run_sweep(quick=True)``).
    A fresh measurement is returned in the same shape as a recorded one, with ``"fresh": True``; the
    recorded file is left untouched (``python -m benchmarks`` rewrites it).
    """
    if ON_GPU and fresh is not None:
        return {"environment": environment(), "script": "measured in this notebook", "meta": meta or {},
                "records": fresh(), "fresh": True}
    doc = load(name)
    doc["fresh"] = False
    return doc
