"""What the autotuner measured for each candidate configuration (GPU only).

    python -m benchmarks.autotune_report 4096 4096 4096
"""
import sys

import kernels  # noqa: F401  (before triton)
import torch

from kernels import testing as T
from kernels import tiled


def main(argv):
    M, N, K = (int(x) for x in (argv or ["4096", "4096", "4096"]))
    a, b = T.randn(M, K, dtype=torch.bfloat16), T.randn(K, N, dtype=torch.bfloat16)
    tiled.matmul(a, b)
    tuner = tiled._autotuned_kernel()
    timings = getattr(tuner, "configs_timings", None) or {}
    print(f"{M}x{N}x{K}: picked {tiled.best_config().short()}")
    for cfg, t in sorted(timings.items(), key=lambda kv: kv[1][0] if isinstance(kv[1], list) else kv[1]):
        t0 = t[0] if isinstance(t, list) else t
        kw = cfg.kwargs
        print(f"  {kw['BLOCK_M']}x{kw['BLOCK_N']}x{kw['BLOCK_K']} w{cfg.num_warps} s{cfg.num_stages}: "
              f"{t0 * 1e3:8.1f} us = {2 * M * N * K / t0 / 1e9:6.0f} TFLOP/s")


if __name__ == "__main__":
    main(sys.argv[1:])
