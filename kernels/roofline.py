"""Roofline helpers: how fast a kernel could possibly run, given its flops and bytes.

A kernel that does ``F`` flops and moves ``B`` bytes through DRAM needs at least
``max(F / peak_flops, B / bandwidth)`` seconds. Its *arithmetic intensity* ``F / B`` (flop per byte)
says which term wins: below the GPU's *ridge point* ``peak_flops / bandwidth`` a kernel is limited by
memory, above it by arithmetic.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .bench import DTYPE_BYTES, matmul_flops, matmul_min_bytes  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class GPUSpec:
    name: str
    sms: int
    peak_tflops: dict  # dtype name -> dense TFLOP/s
    bandwidth_tbs: float  # DRAM TB/s
    source: str

    def ridge(self, dtype="bf16") -> float:
        """Arithmetic intensity (flop/byte) where the memory and compute roofs meet."""
        return self.peak_tflops[dtype] * 1e12 / (self.bandwidth_tbs * 1e12)

    def attainable_tflops(self, intensity, dtype="bf16") -> float:
        return min(self.peak_tflops[dtype], intensity * self.bandwidth_tbs)


# Datasheet ceilings (dense, no sparsity). The H200 is the H100's chip (same SMs, clocks and tensor
# cores) with more and faster memory: 141 GB of HBM3e at 4.8 TB/s against 80 GB of HBM3 at 3.35 TB/s.
H100_DATASHEET = GPUSpec(
    "H100 SXM (datasheet)", 132,
    {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4, "fp8": 1978.9},
    3.35, "NVIDIA H100 datasheet (SXM5), dense",
)
H200_DATASHEET = dataclasses.replace(H100_DATASHEET, name="H200 SXM (datasheet)", bandwidth_tbs=4.8,
                                     source="NVIDIA H200 datasheet (SXM), dense")
DATASHEETS = {"h100": H100_DATASHEET, "h200": H200_DATASHEET}


def datasheet(gpu: str | None = None) -> GPUSpec:
    """The datasheet ceilings of ``gpu`` (``"h100"``/``"h200"``); without it, of the GPU whose
    ceilings record (``results/<gpu>/ch00_ceilings.json``) this machine would show (``bench.load``)."""
    if gpu is None:
        from . import bench

        gpu = bench.result_path("ch00_ceilings").parent.name
    try:
        return DATASHEETS[gpu]
    except KeyError:
        raise KeyError(f"no datasheet for {gpu!r}; known: {sorted(DATASHEETS)}") from None


def measured(gpu: str | None = None) -> GPUSpec:
    """The ceilings measured on a GPU, read from its record ``results/<gpu>/ch00_ceilings.json``
    (``python -m benchmarks 00``): the fastest cuBLAS bf16 matmul among the recorded shapes and timings
    (``do_bench`` or CUDA-graph replay, whichever was faster: back-to-back replays heat the GPU and lower
    its clock) and the device-to-device copy bandwidth (bytes read + bytes written per second) timed with
    ``do_bench``. Without
    ``gpu``: this GPU's record if it has one, else the most recent (``bench.load``). Raises
    FileNotFoundError when no such record exists."""
    from . import bench

    doc = bench.load("ch00_ceilings", gpu)
    cublas = [r for r in doc["records"] if r["kind"] == "cublas"]
    best = max(cublas, key=lambda r: max(r["tflops"], r["graph_tflops"]))
    peak = max(best["tflops"], best["graph_tflops"])
    copies = [r for r in doc["records"] if r["kind"] == "copy"]
    copy = [r for r in copies if not r.get("graph")] or copies
    env = doc["environment"]
    return GPUSpec(f"{env['gpu']} (measured)", env["sm_count"], {"bf16": peak}, max(r["tbs"] for r in copy),
                   f"cuBLAS bf16 {best['M']}x{best['N']}x{best['K']} and a device-to-device copy; "
                   f"{bench.describe(doc)}")


def intensity(flops, nbytes) -> float:
    return flops / nbytes


def matmul_intensity(M, N, K, elem_bytes=2) -> float:
    """Best-case intensity of a matmul: each input read once, the output written once."""
    return matmul_flops(M, N, K) / matmul_min_bytes(M, N, K, elem_bytes)


def naive_matmul_bytes(M, N, K, elem_bytes=2) -> float:
    """Bytes the naive kernel *asks for*: every output element loads a full row and column."""
    return float(elem_bytes) * M * N * 2 * K + elem_bytes * M * N


def tiled_matmul_bytes(M, N, K, block_m, block_n, elem_bytes=2) -> float:
    """Bytes a tiled kernel asks for from memory (before any L2 reuse between programs).

    Each of the ``(M/BM)*(N/BN)`` programs loads a ``BM x K`` panel of A and a ``K x BN`` panel of B.
    """
    tiles = -(-M // block_m) * -(-N // block_n)
    return float(elem_bytes) * tiles * (block_m + block_n) * K + elem_bytes * M * N


def tile_intensity(block_m, block_n, elem_bytes=2) -> float:
    """Flops per byte loaded inside one program of the tiled kernel, per step of K.

    A step loads ``(BM + BN) * BK`` elements and does ``2 * BM * BN * BK`` flops.
    """
    return 2.0 * block_m * block_n / ((block_m + block_n) * elem_bytes)


def plot_roofline(ax, spec: GPUSpec = H200_DATASHEET, dtype="bf16", points=(), xlim=(0.1, 10000)):
    """Draw the roofline of ``spec`` on a log-log matplotlib axis, with named points.

    ``points`` is an iterable of ``(label, intensity, tflops_or_None)``; a point without a measured
    speed is drawn on the roof (the best it could do).
    """
    import numpy as np

    x = np.logspace(np.log10(xlim[0]), np.log10(xlim[1]), 200)
    roof = np.minimum(spec.peak_tflops[dtype], x * spec.bandwidth_tbs)
    ax.loglog(x, roof, color="black", lw=2, label=f"{spec.name}: {dtype} roof")
    ridge = spec.ridge(dtype)
    ax.axvline(ridge, color="gray", ls=":", lw=1)
    ax.text(ridge * 1.1, spec.peak_tflops[dtype] * 0.05, f"ridge\n{ridge:.0f} flop/B", color="gray")
    for i, (label, ai, tf) in enumerate(points):
        y = tf if tf is not None else spec.attainable_tflops(ai, dtype)
        ax.scatter([ai], [y], s=50, zorder=3, color=f"C{i}", marker="o" if tf is not None else "x")
        ax.annotate(label, (ai, y), textcoords="offset points", xytext=(6, -12), fontsize=9)
    ax.set_xlabel("arithmetic intensity (flop per byte of DRAM traffic)")
    ax.set_ylabel("TFLOP/s")
    ax.set_xlim(*xlim)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    return ax
