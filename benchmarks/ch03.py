"""Chapter 03: persistent vs one-program-per-tile, same tile configuration, against cuBLAS.

Shapes are chosen around wave boundaries: with 128x256 tiles and N=4096 (16 tile columns), M=1024 gives
128 tiles (one wave on 132 SMs, 4 SMs idle), M=1152 gives 144 (a second wave with 12 tiles), M=2048
gives 256 (1.94 waves), M=2176 gives 272 (2.06 waves); then the square sizes and a skinny one.
"""
from kernels.persistent import matmul_persistent
from kernels.schedule import cdiv, waves
from kernels.tiled import TileConfig, matmul_tiled

from ._common import matmul_case, table, tqdm

SHAPES = [(1024, 4096, 4096), (1152, 4096, 4096), (2048, 4096, 4096), (2176, 4096, 4096),
          (1024, 1024, 1024), (2048, 2048, 2048), (4096, 4096, 4096), (8192, 8192, 8192),
          (64, 8192, 8192)]
CONFIGS = [TileConfig(128, 256, 64, 8, 8, 3), TileConfig(128, 128, 64, 8, 4, 4)]


def run(quick=False):
    shapes = SHAPES[:4] if quick else SHAPES
    configs = CONFIGS[:1] if quick else CONFIGS
    recs = []
    for cfg in configs:
        for M, N, K in tqdm(shapes, desc=f"persistent vs tiled {cfg.short()}"):
            tiles = cdiv(M, cfg.block_m) * cdiv(N, cfg.block_n)
            nw, fill = waves(tiles, 132)
            for name, fn in (
                ("tiled", lambda a, b, out, c=cfg: matmul_tiled(a, b, c, out=out)),
                ("persistent", lambda a, b, out, c=cfg: matmul_persistent(a, b, c, out=out)),
            ):
                recs.append(matmul_case(name, fn, M, N, K, config=cfg.short(), tiles=tiles,
                                        waves=nw, last_wave_fill=fill, repeats=3 if cfg is CONFIGS[0] else 1))
    return recs


TIMELINE_SHAPES = [(1152, 4096, 4096), (2176, 4096, 4096)]


def run_timeline(quick=False):
    """Which SM ran which tile, and when: the tiled and the persistent kernel (128x256x64, 8 warps, 3
    stages) with %globaltimer and %smid read around each tile (``kernels.timeline``), one record per tile."""
    import torch

    from kernels import timeline

    cfg = TileConfig(128, 256, 64, 8, 8, 3)
    recs = []
    for M, N, K in TIMELINE_SHAPES[:1] if quick else TIMELINE_SHAPES:
        torch.manual_seed(0)
        a = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(K, N, device="cuda", dtype=torch.bfloat16)
        for kernel, persistent in (("tiled", False), ("persistent", True)):
            for r in timeline.record(a, b, cfg, persistent):
                recs.append(dict(kernel=kernel, M=M, N=N, K=K, config=cfg.short(), **r))
    return recs


def run_all(quick=False):
    return {"ch03_persistent": (lambda: run(quick), {"what": "persistent vs tiled (same config) vs torch.matmul, bf16"}),
            "ch03_timeline": (lambda: run_timeline(quick), {"what": "each tile's SM, start and end, read inside "
                                                            "the tiled and persistent kernels (%globaltimer, %smid)"})}


def summary(name, records):
    if name == "ch03_timeline":
        spans = {}
        for r in records:
            k = (r["kernel"], r["M"])
            spans[k] = max(spans.get(k, 0.0), r["end_us"])
        return f"{name}\n" + "\n".join(f"{k} {m}: {len([r for r in records if (r['kernel'], r['M']) == (k, m)])} "
                                        f"tiles, last ends at {t:.1f} us" for (k, m), t in spans.items())
    return f"{name}\n" + table(records, ["kernel", "config", "M", "N", "K", "tiles", "tflops", "ratio",
                                         "ratio_graph"])
