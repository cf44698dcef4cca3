"""Chapter 00: the ceilings of this GPU, measured (not read from the datasheet).

* the fastest bf16 matmul cuBLAS (``torch.matmul``) runs, at a few large shapes, CUDA-graph time;
* the DRAM bandwidth of a device-to-device copy of 2 GiB (a copy reads and writes every byte:
  bandwidth = 2 * bytes / time), timed with ``do_bench`` (L2 flushed) and CUDA graphs.

``kernels.roofline.measured()`` reads this record.
"""
import torch

from kernels import bench
from kernels import testing as T

from ._common import table, tqdm

SHAPES = [(4096, 4096, 4096), (8192, 8192, 8192), (6144, 6144, 6144), (8192, 8192, 4096)]
COPY_BYTES = 2 * 2**30


def run(quick=False):
    recs = []
    for M, N, K in tqdm(SHAPES[:1] if quick else SHAPES, desc="cuBLAS bf16"):
        a = T.randn(M, K, dtype=torch.bfloat16, seed=0)
        b = T.randn(K, N, dtype=torch.bfloat16, seed=1)
        c = torch.empty(M, N, dtype=torch.bfloat16, device=a.device)
        f = bench.matmul_flops(M, N, K)
        ms = bench.median_ms(lambda: torch.matmul(a, b, out=c))
        gms = bench.median_ms(lambda: torch.matmul(a, b, out=c), graph=True)
        recs.append(dict(kind="cublas", kernel="torch.matmul", dtype="bf16", M=M, N=N, K=K, ms=ms, graph_ms=gms,
                         tflops=f / ms / 1e9, graph_tflops=f / gms / 1e9, sm_mhz=bench.gpu_clocks().get("sm_mhz")))
        del a, b, c
    n = COPY_BYTES // 2
    x = T.randn(n, dtype=torch.bfloat16, seed=2)
    y = torch.empty_like(x)
    for graph in (False, True):
        ms = bench.median_ms(lambda: y.copy_(x), graph=graph)
        recs.append(dict(kind="copy", kernel="Tensor.copy_", bytes=2 * COPY_BYTES, graph=graph, ms=ms,
                         tbs=2 * COPY_BYTES / ms / 1e9, mem_mhz=bench.gpu_clocks().get("mem_mhz")))
    return recs


def run_all(quick=False):
    return {"ch00_ceilings": (lambda: run(quick), {"what": "measured ceilings: cuBLAS bf16 matmul, device-to-device copy"})}


def summary(name, records):
    return f"{name}\n" + table(records, ["kind", "M", "N", "K", "graph", "ms", "graph_tflops", "tbs"])
