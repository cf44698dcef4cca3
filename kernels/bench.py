"""Benchmark helpers: time a kernel and its library baseline in the same run, and keep the numbers.

Every timing is a ``triton.testing.do_bench`` median (it flushes L2 between calls, so inputs that fit in
the cache are not flattered). A kernel's time is always reported beside the library's time for the same
problem, measured in the same process, as a ratio: ``speed vs library = library_ms / kernel_ms``
(1.0 = as fast as cuBLAS, 0.5 = half its speed).

Records are plain dicts written as JSON under ``results/<gpu>/`` (``results/h100/``, ``results/h200/``)
with the GPU's name, its clocks, the software versions and the date, so that a notebook can plot them on
a machine without a GPU. A new GPU gets a folder of its own; no record of another GPU is overwritten.
"""
from __future__ import annotations

import math

import datetime as _dt
import json
import os
import platform
import re
import statistics
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


def rotating_graph_ms(fns, rep_ms=100) -> float:
    """Median GPU time of one call in milliseconds, each call reading its operands from DRAM (GPU only).

    ``fns``: callables that do the same work, each on its own copy of the operands. They are captured
    together in one CUDA graph (``do_bench_cudagraph``), one call each, and the graph's median is
    divided by ``len(fns)``. Use it when one call's operands fit in L2 (50 MB on the H100 and H200):
    replays of a graph over one copy would then read much of it from L2, which a model whose layers
    each have their own weight does not; copies together several times larger than L2 keep the timing
    honest (the device's METHOD.md: "rotate among several input sets"). Raises ``ValueError`` for an
    empty ``fns``."""
    fns = list(fns)
    if not fns:
        raise ValueError("rotating_graph_ms: give at least one callable")
    if not ON_GPU:
        raise RuntimeError("timing needs a GPU; in the interpreter, show the recorded numbers instead")
    import triton.testing

    def all_calls():
        for fn in fns:
            fn()

    return float(triton.testing.do_bench_cudagraph(all_calls, rep=rep_ms, return_mode="median")) / len(fns)


def geomean(values) -> float:
    """The geometric mean of positive numbers (ratios to a library over a grid of shapes): the
    ``n``-th root of their product. Raises ``ValueError`` for no values or a value <= 0."""
    values = [float(v) for v in values]
    if not values or min(values) <= 0:
        raise ValueError(f"geomean needs positive values, got {values!r}")
    return math.exp(sum(math.log(v) for v in values) / len(values))


def gpu_clocks() -> dict:
    """The GPU's clocks and state now, from ``nvidia-smi`` (MHz, W, degrees C); ``{}`` where it is absent.

    ``sm_mhz``/``mem_mhz`` are the current clocks (a busy GPU boosts; an idle one drops), ``sm_max_mhz``/
    ``mem_max_mhz`` the ceilings, plus power draw, temperature and the throttle reasons bitmask. Read
    only: nothing here changes the card's settings."""
    import subprocess

    fields = {"clocks.sm": "sm_mhz", "clocks.mem": "mem_mhz", "clocks.max.sm": "sm_max_mhz",
              "clocks.max.mem": "mem_max_mhz", "power.draw": "power_w", "temperature.gpu": "temp_c",
              "clocks_throttle_reasons.active": "throttle_reasons"}
    try:
        idx = str(torch.cuda.current_device()) if ON_GPU else "0"
        out = subprocess.run(["nvidia-smi", f"--id={idx}", "--query-gpu=" + ",".join(fields),
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {}
    if out.returncode != 0 or not out.stdout.strip():
        return {}
    vals = [v.strip() for v in out.stdout.strip().splitlines()[0].split(",")]
    clocks = {}
    for key, v in zip(fields.values(), vals):
        try:
            clocks[key] = v if key == "throttle_reasons" else float(v)
        except ValueError:
            clocks[key] = v
    return clocks


def environment() -> dict:
    """What the numbers were measured on: GPU, SM count, versions, date and time (UTC), clocks."""
    import triton

    now = _dt.datetime.now(_dt.timezone.utc)
    env = {
        "torch": torch.__version__,
        "triton": triton.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "date": now.strftime("%Y-%m-%d"),
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if ON_GPU:
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=torch.cuda.get_device_name(0), sm_count=props.multi_processor_count,
                   capability=f"{props.major}.{props.minor}", clocks=gpu_clocks())
    else:
        env.update(gpu=None, sm_count=None, capability=None)
    return env


def compare(name, kernel_fn, baseline_fn, *, flops=None, nbytes=None, baseline="torch.matmul",
            graph=True, repeats=1, **fields) -> dict:
    """Time ``kernel_fn`` and ``baseline_fn`` back to back and return one record.

    ``ms``/``baseline_ms``/``ratio`` come from ``do_bench`` (launched from Python, L2 flushed);
    with ``graph=True`` also ``graph_ms``/``baseline_graph_ms``/``ratio_graph`` from CUDA-graph replay
    (GPU time only). The two agree for long kernels; for kernels of a few tens of microseconds the
    graph numbers compare the kernels and the plain ones include Python's launch cost.
    ``flops`` and ``nbytes`` (the minimum bytes moved) turn the times into TFLOP/s and GB/s.
    ``repeats > 1`` times the pair that many times, interleaved (kernel, library, kernel, library, ...):
    the times are then medians over the repeats, and ``repeats_ratio`` / ``repeats_ratio_graph`` keep
    every repeat's ratio, so that a reader sees the run-to-run spread. ``sm_mhz`` is the SM clock read
    right after the timings (``gpu_clocks``).
    """
    runs = {"ms": [], "baseline_ms": [], "graph_ms": [], "baseline_graph_ms": []}
    for _ in range(max(1, int(repeats))):
        runs["ms"].append(median_ms(kernel_fn))
        runs["baseline_ms"].append(median_ms(baseline_fn))
        if graph:
            runs["graph_ms"].append(median_ms(kernel_fn, graph=True))
            runs["baseline_graph_ms"].append(median_ms(baseline_fn, graph=True))
    med = {k: statistics.median(v) for k, v in runs.items() if v}
    kernel_ms, baseline_ms = med["ms"], med["baseline_ms"]
    rec = dict(kernel=name, ms=kernel_ms, baseline=baseline, baseline_ms=baseline_ms,
               ratio=baseline_ms / kernel_ms, **fields)
    if graph:
        rec["graph_ms"] = med["graph_ms"]
        rec["baseline_graph_ms"] = med["baseline_graph_ms"]
        rec["ratio_graph"] = rec["baseline_graph_ms"] / rec["graph_ms"]
    if repeats > 1:
        rec["repeats"] = int(repeats)
        rec["repeats_ratio"] = [b / k for k, b in zip(runs["ms"], runs["baseline_ms"])]
        if graph:
            rec["repeats_ratio_graph"] = [b / k for k, b in zip(runs["graph_ms"], runs["baseline_graph_ms"])]
    if flops is not None:
        rec["tflops"] = flops / kernel_ms / 1e9
        rec["baseline_tflops"] = flops / baseline_ms / 1e9
        if graph:
            rec["graph_tflops"] = flops / rec["graph_ms"] / 1e9
            rec["baseline_graph_tflops"] = flops / rec["baseline_graph_ms"] / 1e9
        if repeats > 1:
            rec["repeats_tflops"] = [flops / k / 1e9 for k in runs["ms"]]
    if nbytes is not None:
        rec["gbps"] = nbytes / kernel_ms / 1e6
    rec["sm_mhz"] = gpu_clocks().get("sm_mhz")
    return rec


def gpu_slug(gpu_name: str | None) -> str:
    """The folder under ``results/`` for a GPU: its model number in lower case (``"NVIDIA H100 80GB
    HBM3"`` -> ``"h100"``, ``"NVIDIA H200"`` -> ``"h200"``), with the form factor or partition when the
    name gives one, since those run at other clocks or bandwidths (``"NVIDIA H100 PCIe"`` ->
    ``"h100-pcie"``, ``"NVIDIA H100 NVL"`` -> ``"h100-nvl"``, a MIG slice -> ``"h100-mig-1g.10gb"``);
    otherwise the whole name made file-safe. Raises ValueError for an empty name."""
    name = (gpu_name or "").strip()
    m = re.search(r"\b([A-Z]{1,3}\d{2,4}[A-Z]?)\b", name)
    if m:
        slug = m.group(1).lower()
        mig = re.search(r"MIG\s+(\d+g\.\d+gb)", name, re.I)
        if mig:
            slug += f"-mig-{mig.group(1).lower()}"
        for variant in ("PCIe", "NVL"):
            if re.search(rf"\b{variant}\b", name, re.I):
                slug += f"-{variant.lower()}"
    else:
        slug = re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-.")
    if not slug or slug in NOT_GPU_FOLDERS:
        raise ValueError(f"gpu_slug: no usable GPU name in {gpu_name!r} (records are made on a GPU)")
    return slug


NOT_GPU_FOLDERS = ("logs", "code")  # folders of results/ that hold no GPU's records


def this_gpu() -> str | None:
    """``gpu_slug`` of this machine's GPU, or None in the interpreter world."""
    return gpu_slug(torch.cuda.get_device_name(0)) if ON_GPU else None


def recorded_when(env: dict) -> str:
    """When a record was made, for ordering: its UTC time, else its date (older records have no time)."""
    return env.get("time") or env.get("date") or ""


def environment_of(path: Path) -> dict | None:
    """A record's ``environment``, or None for a file that is not a readable record (warned about)."""
    try:
        env = json.loads(path.read_text()).get("environment")
    except (OSError, ValueError, AttributeError) as exc:
        import warnings

        warnings.warn(f"{path} is not a readable record ({type(exc).__name__}: {exc}); skipped")
        return None
    return env if isinstance(env, dict) and env.get("gpu") else None


def gpus() -> list[str]:
    """The GPU folders of ``results/`` (those holding at least one record), newest record first."""
    found = {}
    for folder in sorted(p for p in RESULTS.glob("*") if p.is_dir() and p.name not in NOT_GPU_FOLDERS):
        dates = [recorded_when(e) for e in map(environment_of, folder.glob("*.json")) if e]
        if dates:
            found[folder.name] = max(dates)
    return sorted(found, key=lambda g: (found[g], g), reverse=True)


def recorded_gpus(name: str) -> list[str]:
    """The GPUs (folders of ``results/``) that hold a record ``name``, oldest record first. Files that
    are not readable records are skipped with a warning."""
    docs = []
    for path in sorted(RESULTS.glob(f"*/{name}.json")):
        if path.parent.name in NOT_GPU_FOLDERS:
            continue
        env = environment_of(path)
        if env:
            docs.append((recorded_when(env), path.parent.name))
    return [gpu for _, gpu in sorted(docs)]


def result_path(name: str, gpu: str | None = None) -> Path:
    """``results/<gpu>/<name>.json``. Without ``gpu``: this machine's GPU when it has a record of its
    own, otherwise the GPU whose record is the most recent."""
    if gpu is None:
        gpus = recorded_gpus(name)
        if not gpus:
            raise FileNotFoundError(f"no results/*/{name}.json; run the benchmark on a GPU (results/README.md)")
        here = this_gpu()
        gpu = here if here in gpus else gpus[-1]
    return RESULTS / gpu / f"{name}.json"


def save(records: list[dict], name: str, script: str, meta: dict | None = None) -> Path:
    """Write ``results/<gpu>/<name>.json`` (``gpu_slug`` of this GPU): the environment, the script that
    made it, and the records. Records of other GPUs are never touched."""
    env = environment()
    folder = RESULTS / gpu_slug(env["gpu"])
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"environment": env, "script": script, "meta": meta or {}, "records": records}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    return path


def load(name: str, gpu: str | None = None) -> dict:
    """Read a record (``result_path``): this GPU's if it has one, else the most recent, or ``gpu``'s
    (``"h100"``, ``"h200"``). The document's ``"gpu_slug"`` says which. Raises FileNotFoundError with
    what makes the record."""
    path = result_path(name, gpu)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; run the benchmark on that GPU: see results/README.md")
    try:
        doc = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path} is not a readable record ({exc}); run its benchmark again") from None
    doc["gpu_slug"] = path.parent.name
    return doc


def load_log(filename: str) -> dict:
    """A JSON exploration log, ``results/logs/<filename>`` (what ``benchmarks/explore_*.py`` scripts
    measured beyond the chapters' records; each says which script, GPU and versions made it). Raises
    FileNotFoundError for a missing log and ValueError for one that is not JSON."""
    path = RESULTS / "logs" / filename
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path} is not JSON ({exc})") from None


def code_dir(gpu: str | None = None) -> Path:
    """``results/<gpu>/code/``, the compiled code ``python -m benchmarks.dump_code`` saved (this GPU's,
    else the most recent GPU's)."""
    if gpu is None:
        gpus = [p.parent.name for p in sorted(RESULTS.glob("*/code")) if p.is_dir()]
        here = this_gpu()
        recent = recorded_gpus("ch04_code")
        gpu = here if here in gpus else next((g for g in reversed(recent) if g in gpus), gpus[-1] if gpus else None)
    if gpu is None:
        raise FileNotFoundError("no results/*/code/; run python -m benchmarks.dump_code on a GPU")
    return RESULTS / gpu / "code"


def describe(doc: dict) -> str:
    """A one-line provenance string for a results document, for plot titles and prose."""
    e = doc["environment"]
    clocks = e.get("clocks") or {}
    clk = f", SM clock up to {clocks['sm_max_mhz']:.0f} MHz" if isinstance(clocks.get("sm_max_mhz"), float) else ""
    return (f"{e['gpu']} ({e['sm_count']} SMs), torch {e['torch']}, triton {e['triton']}, "
            f"CUDA {e['cuda']}, {e['date']}{clk}")


def measure_requested() -> bool:
    """Whether ``TTC_MEASURE`` asks notebooks to measure even on a recorded GPU: "1", "true", "yes" or
    "on"; anything else (unset, "0", "no", ...) does not."""
    return os.environ.get("TTC_MEASURE", "").strip().lower() in ("1", "true", "yes", "on")


def recorded_or_fresh(name: str, fresh=None, meta: dict | None = None, measure: bool | None = None) -> dict:
    """The results document a notebook shows for ``name``, and ``doc["shown"]`` says why (``which``).

    * On a GPU that has a record of its own (``results/<gpu>/<name>.json``): that record.
    * On a GPU without one: measured now, with ``fresh`` (a zero-argument function returning records,
      e.g. ``lambda: ch02.run_sweep(quick=True)``), returned in the shape of a record with
      ``"fresh": True``. Nothing is written (``python -m benchmarks`` writes records).
    * Without a GPU: the most recent record of any GPU.

    ``measure=True`` (or the environment variable ``TTC_MEASURE=1``) measures on any GPU, recorded
    or not."""
    if measure is None:
        measure = measure_requested()
    here = this_gpu()
    if ON_GPU and fresh is not None and (measure or here not in recorded_gpus(name)):
        return {"environment": environment(), "script": "measured in this notebook", "meta": meta or {},
                "records": fresh(), "fresh": True, "gpu_slug": here,
                "shown": "measured now, on this GPU (a short run: fewer sizes than the records)"}
    doc = load(name)
    doc["fresh"] = False
    doc["shown"] = which(doc)
    return doc


def which(doc: dict) -> str:
    """Why a record is the one shown: this machine's GPU, or the most recent record of another."""
    gpu = doc.get("environment", {}).get("gpu")
    if ON_GPU and this_gpu() == doc.get("gpu_slug"):
        return f"recorded on this GPU's model ({gpu}), {doc['environment']['date']}"
    where = "this machine has no GPU" if not ON_GPU else f"no record of {torch.cuda.get_device_name(0)} yet"
    return f"recorded on {gpu}, {doc['environment']['date']} (the most recent record; {where})"
