"""Chapter 01: the naive kernel (one program per output element) against cuBLAS."""
import torch

from kernels.naive import naive_matmul

from ._common import matmul_case, table, tqdm

SIZES = [256, 512, 1024, 2048]


def run(quick=False):
    sizes = SIZES[:3] if quick else SIZES
    recs = []
    for dtype in (torch.float32, torch.bfloat16):
        for n in tqdm(sizes, desc=f"naive {dtype}"):
            recs.append(matmul_case("naive", naive_matmul, n, n, n, dtype))
    return recs


def run_all(quick=False):
    return {"ch01_naive": (lambda: run(quick), {"what": "naive Triton matmul vs torch.matmul, square sizes"})}


def summary(name, records):
    return f"{name}\n" + table(records, ["dtype", "M", "ms", "tflops", "baseline_tflops", "ratio", "ratio_graph"])
