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


SPLIT_SHAPES = [(1024, 4096, 4096), (1152, 4096, 4096), (2048, 4096, 4096), (2176, 4096, 4096)]


def _rows_apart(a, b, c, cfg):
    """What ``kernels.dispatch`` does at 1152 and 2176 x 4096 x 4096, with this benchmark's tiles: the
    rows its rule cuts off (:func:`_rows_cut`) by the persistent kernel, the rows left as a second,
    small-M product with their own plan; where the rule makes no cut, all of C at once."""
    from kernels import dispatch

    rows = _rows_cut(a.shape[0], b.shape[1], a.shape[1], a.dtype)
    dispatch._run(dispatch.Plan("persistent", cfg, None, "ch03_split", rows=rows), a, b, c)


def _rows_cut(M, N, K, dtype):
    """The rows ``kernels.dispatch.plan`` gives the first kernel for this shape, or ``None`` (no cut)."""
    from kernels import dispatch

    return dispatch.plan(M, N, K, dtype).rows


def run_split(quick=False):
    """The ragged last wave, four ways, with the same 128x256x64 tiles: whole tiles (chapter 04's
    persistent TMA kernel), the last wave split by K (``kernels.splitk``, partial sums added by a second
    kernel or by the last program to finish a tile), stream-K (``kernels.streamk``, chapter 02's pointer
    loads), whole waves with the last rows as a second, small-M product, and cuBLAS. CUDA-graph medians
    rotating over copies of the operands (more than L2 together) and ``do_bench`` medians, three
    interleaved repeats; errors against float64; and whether 20 runs of the split kernel gave the same
    bits."""
    import statistics

    import torch

    from kernels import bench, splitk, streamk, tma
    from kernels import testing as T

    from .matmul_grid import copies_for

    cfg = TileConfig(128, 256, 64, 8, 8, 3)
    recs = []
    for M, N, K in tqdm(SPLIT_SHAPES[1:2] if quick else SPLIT_SHAPES, desc="split the tail"):
        n = copies_for(M, N, K)
        A = [T.randn(M, K, dtype=torch.bfloat16, seed=2 * i) for i in range(n)]
        B = [T.randn(K, N, dtype=torch.bfloat16, seed=2 * i + 1) for i in range(n)]
        C = [torch.empty(M, N, dtype=torch.bfloat16, device="cuda") for _ in range(n)]
        tiles = cdiv(M, cfg.block_m) * cdiv(N, cfg.block_n)
        whole, shared = splitk.tail_plan(tiles, 132)
        kinds = {
            "whole tiles (persistent, TMA)": lambda a, b, c: tma.launch(a, b, c, cfg, min(132, tiles), False,
                                                                        host_descriptors=True),
            "split tail, reduction kernel": lambda a, b, c: splitk.launch(a, b, c, cfg, None, last_adds=False),
            "split tail, last program adds": lambda a, b, c: splitk.launch(a, b, c, cfg, None, last_adds=True),
            "stream-K (pointer loads)": lambda a, b, c: streamk.matmul_streamk(a, b, cfg, out=c),
            "whole waves, then the last rows apart": lambda a, b, c: _rows_apart(a, b, c, cfg),
            "cuBLAS": lambda a, b, c: torch.matmul(a, b, out=c),
        }
        ref = A[0].double() @ B[0].double()
        times = {k: ([], []) for k in kinds}
        for _ in range(1 if quick else 3):
            for k, fn in kinds.items():
                calls = [lambda i=i, fn=fn: fn(A[i], B[i], C[i]) for i in range(n)]
                times[k][0].append(bench.rotating_graph_ms(calls))
                times[k][1].append(bench.median_ms(calls[0]))
        lib_g = statistics.median(times["cuBLAS"][0])
        lib_d = statistics.median(times["cuBLAS"][1])
        for k, fn in kinds.items():
            fn(A[0], B[0], C[0])
            err = ((C[0].double() - ref).abs().max() / ref.abs().max()).item()
            g, d = statistics.median(times[k][0]), statistics.median(times[k][1])
            rec = dict(kernel=k, M=M, N=N, K=K, config=cfg.short(), tiles=tiles, waves=round(tiles / 132, 3),
                       whole_tiles=whole, shared_tiles=shared, rel_error=err, graph_ms=g, ms=d,
                       baseline_graph_ms=lib_g, baseline_ms=lib_d, ratio_graph=lib_g / g, ratio=lib_d / d,
                       graph_tflops=2 * M * N * K / g / 1e9, copies=n,
                       repeats_ratio_graph=[b / a for a, b in zip(times[k][0], times["cuBLAS"][0])],
                       sm_mhz=bench.gpu_clocks().get("sm_mhz"))
            if k.startswith("split tail"):
                first = C[0].clone()
                same = True
                for _ in range(20):
                    fn(A[0], B[0], C[0])
                    same &= bool(torch.equal(C[0], first))
                rec["same_bits_20_runs"] = same
                rec["splits"] = splitk.split_plan(K, cfg.block_k, max(1, 132 // max(shared, 1)))[1]
            if k.startswith("whole waves"):
                rec["rows_in_whole_waves"] = _rows_cut(M, N, K, torch.bfloat16)
            recs.append(rec)
        del A, B, C
        torch.cuda.empty_cache()
    return recs


def run_all(quick=False):
    return {"ch03_persistent": (lambda: run(quick), {"what": "persistent vs tiled (same config) vs torch.matmul, bf16"}),
            "ch03_timeline": (lambda: run_timeline(quick), {"what": "each tile's SM, start and end, read inside "
                                                            "the tiled and persistent kernels (%globaltimer, %smid)"}),
            "ch03_split": (lambda: run_split(quick), {"what": "the ragged last wave: whole tiles, the last wave split "
                                                      "by K (split-K), stream-K, whole waves with the last rows as a "
                                                      "second product, and cuBLAS, same 128x256 tiles, bf16"})}


def summary(name, records):
    if name == "ch03_split":
        return f"{name}\n" + table(records, ["kernel", "M", "tiles", "graph_tflops", "ratio_graph", "ratio", "rel_error"])
    if name == "ch03_timeline":
        spans = {}
        for r in records:
            k = (r["kernel"], r["M"])
            spans[k] = max(spans.get(k, 0.0), r["end_us"])
        return f"{name}\n" + "\n".join(f"{k} {m}: {len([r for r in records if (r['kernel'], r['M']) == (k, m)])} "
                                        f"tiles, last ends at {t:.1f} us" for (k, m), t in spans.items())
    return f"{name}\n" + table(records, ["kernel", "config", "M", "N", "K", "tiles", "tflops", "ratio",
                                         "ratio_graph"])
