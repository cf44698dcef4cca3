"""Exploration on a GPU (not a chapter record): tile and loop choices of the blockwise FP8 GEMM against
``torch._scaled_mm`` with the same 1x128 / 128x128 scales, at 4096^3 and 8192^3 (CUDA-graph times).

    python benchmarks/explore_fp8.py     # writes fp8_block_sweep.json into $OUT or /tmp
"""
import itertools
import json
import os

import kernels  # noqa: F401  (decides the world first)
import torch
from triton.testing import do_bench_cudagraph

from benchmarks.ch06 import torch_blockwise
from kernels import fp8_gemm as G
from kernels.quantize import quantize_blocks

OUT = os.environ.get("OUT", "/tmp")


def main():
    res = {"rows": []}
    for S in (4096, 8192):
        x, w = torch.randn(S, S, device="cuda"), torch.randn(S, S, device="cuda")
        qa, sa = quantize_blocks(x, (1, 128))
        qb, sb = quantize_blocks(w, (128, 128))
        lib, layout = torch_blockwise(qa, sa, qb, sb)
        lib_us = do_bench_cudagraph(lib, rep=100) * 1e3
        res[f"torch_{S}_us"], res["torch_layout"] = lib_us, layout
        ref = G.reference(qa[:256], qb[:256], sa[:256], sb[:2], "block")
        for (bm, bn, nw, st), unroll, flat, host in itertools.product(
                [(128, 128, 8, 3), (128, 128, 8, 4), (128, 128, 4, 4), (64, 128, 4, 5), (256, 128, 8, 3),
                 (128, 64, 4, 5)], (1, 2), (False, True), (True, False)):
            cfg = G.FP8Config(bm, bn, 128, 8, nw, st, flatten=flat, k_unroll=unroll)
            try:
                c = G.fp8_matmul(qa, qb, sa, sb, "block", config=cfg, host_descriptors=host)
                err = ((c[:256, :256].double() - ref).norm() / ref.norm()).item()
                us = do_bench_cudagraph(lambda: G.fp8_matmul(qa, qb, sa, sb, "block", config=cfg, out=c,
                                                             host_descriptors=host), rep=100) * 1e3
                row = dict(S=S, config=cfg.label(), host=host, us=round(us, 2), tflops=round(2 * S**3 / us / 1e6),
                           ratio=round(lib_us / us, 3), err=err)
            except Exception as e:  # noqa: BLE001
                row = dict(S=S, config=cfg.label(), host=host, error=repr(e)[:300])
            res["rows"].append(row)
            print(row, flush=True)
    res["rows"].sort(key=lambda r: (r["S"], -r.get("ratio", 0)))
    json.dump(res, open(os.path.join(OUT, "fp8_block_sweep.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
