"""Write the compiled code (TTGIR, PTX) of the TMA kernel with and without warp specialization.

    python -m benchmarks.dump_code [OUTDIR]      # GPU only; files ws_<cfg>.ttgir, ws_<cfg>.ptx, ...

OUTDIR defaults to ``results/<gpu>/code/`` (``kernels.bench.gpu_slug`` of this GPU).
"""
import sys
from pathlib import Path

import kernels  # noqa: F401  (before triton)
import torch

from kernels import testing as T
from kernels.tiled import TileConfig
from kernels.tma import launch


def main(argv):
    from kernels import bench

    out = Path(argv[0]) if argv else bench.RESULTS / bench.this_gpu() / "code"
    out.mkdir(parents=True, exist_ok=True)
    a = T.randn(1024, 1024, dtype=torch.bfloat16)
    b = T.randn(1024, 1024, dtype=torch.bfloat16)
    c = torch.empty(1024, 1024, dtype=torch.bfloat16, device=a.device)
    for cfg, ws in ((TileConfig(128, 256, 64, 8, 4, 3), True), (TileConfig(128, 256, 64, 8, 8, 3), False)):
        k = launch(a, b, c, cfg, 132, ws)
        tag = ("ws" if ws else "plain") + f"_{cfg.block_m}x{cfg.block_n}x{cfg.block_k}_w{cfg.num_warps}_s{cfg.num_stages}"
        for ir in ("ttgir", "ptx"):
            (out / f"{tag}.{ir}").write_text(k.asm[ir])
            print(f"wrote {tag}.{ir} ({len(k.asm[ir])} chars)")


if __name__ == "__main__":
    main(sys.argv[1:])
