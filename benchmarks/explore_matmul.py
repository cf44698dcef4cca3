"""Exploration on a GPU (not a chapter record): which of the track's kernels, with which tile and split,
is fastest at each shape of the "no cliff" grid, next to cuBLAS in the same process.

    python benchmarks/explore_matmul.py [--shapes MxNxK ...] [--quick]   # writes $OUT/explore_matmul.json

Candidates: the persistent TMA kernel with host descriptors (``kernels.tma.launch``) at four tiles,
split-K (``kernels.splitk``) at several tiles and splits, stream-K (``kernels.streamk``). Operands that
TMA cannot read (odd K or N in bf16) are copied into aligned buffers inside the timed call. Times are
CUDA-graph medians over copies of the operands that together exceed L2 (``kernels.bench.rotating_graph_ms``),
and ``do_bench`` medians; errors against a float64 reference.
"""
import argparse
import json
import os
import re
import time

import kernels  # (decides the world first)
import torch
from triton.testing import do_bench

from kernels import splitk as SKt
from kernels import streamk as STK
from kernels import tma
from kernels.bench import environment, rotating_graph_ms
from kernels.dispatch import aligned
from kernels.tiled import TileConfig

OUT = os.environ.get("OUT", "/tmp")
GRID = ([(m, n, n) for m in (1, 16, 64, 128, 512) for n in (4096, 8192)]
        + [(4095, 4095, 4095), (3000, 5000, 1700), (1152, 4096, 4096), (2176, 4096, 4096)]
        + [(s, s, s) for s in (1024, 2048, 4096, 8192, 16384)])
PERSISTENT = [TileConfig(128, 256, 64, 8, 8, 3), TileConfig(128, 128, 64, 8, 4, 4), TileConfig(64, 128, 64, 8, 4, 5),
              TileConfig(64, 128, 64, 8, 4, 8), TileConfig(64, 128, 128, 8, 4, 4)]
SPLITK = [TileConfig(64, 128, 64, 8, 4, 4), TileConfig(64, 64, 128, 8, 4, 4), TileConfig(64, 64, 128, 8, 4, 3),
          TileConfig(64, 32, 128, 8, 4, 4), TileConfig(64, 64, 64, 8, 4, 6), TileConfig(128, 128, 64, 8, 4, 4),
          TileConfig(128, 256, 64, 8, 8, 3), TileConfig(16, 64, 256, 8, 4, 4), TileConfig(16, 128, 128, 8, 4, 4),
          TileConfig(64, 128, 128, 8, 4, 3),
          # deeper pipelines: more bytes in flight per SM (M <= 128)
          TileConfig(64, 64, 128, 8, 4, 6), TileConfig(64, 64, 128, 8, 4, 5), TileConfig(64, 64, 64, 8, 4, 10),
          TileConfig(64, 32, 256, 8, 4, 4), TileConfig(64, 64, 256, 8, 4, 3), TileConfig(16, 64, 256, 8, 4, 5)]
SPLITS = [int(x) if x != 'None' else None for x in os.environ.get('SPLITS', '1 2 3 4 8 None').split()]


def out_for(M, N, dtype):
    """C as torch.matmul returns it (contiguous), and a TMA-aligned buffer to compute it in."""
    c = torch.empty(M, N, dtype=dtype, device="cuda")
    return c, aligned(c) if (N * 2) % 16 else c


def time_it(make, copies, ref, label, rows, base, rep):
    """make(i) -> callable on copy i returning C."""
    fns = [make(i) for i in range(copies)]
    try:
        c = fns[0]()
        torch.cuda.synchronize()
        err = ((c.double() - ref).abs().max() / ref.abs().max()).item()
        g = rotating_graph_ms(fns, rep_ms=rep)
        d = do_bench(fns[0], warmup=10, rep=rep, return_mode="median")
        rows.append(dict(base, kernel=label, graph_us=g * 1e3, bench_us=d * 1e3, err=err))
        return g
    except Exception as e:  # a config that does not fit or compile: note it and go on
        rows.append(dict(base, kernel=label, error=f"{type(e).__name__}: {str(e)[:200]}"))
        return None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shapes", nargs="*")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", default=None, help="a regular expression: time only the candidates whose label matches")
    args = p.parse_args()
    only = re.compile(args.only) if args.only else None
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes] if args.shapes else GRID
    rep = 40 if args.quick else 100
    rows = []
    t0 = time.time()
    for M, N, K in shapes:
        torch.manual_seed(0)
        nbytes = 2 * (M * K + K * N + M * N)
        copies = max(1, min(8, -(-150_000_000 // nbytes)))
        A = [torch.randn(M, K, device="cuda", dtype=torch.bfloat16) for _ in range(copies)]
        B = [torch.randn(K, N, device="cuda", dtype=torch.bfloat16) for _ in range(copies)]
        ref = A[0].double() @ B[0].double()
        base = dict(M=M, N=N, K=K, copies=copies)
        cub = time_it(lambda i: (lambda: A[i] @ B[i]), copies, ref, "cuBLAS", rows, base, rep)
        best = None
        cands = []
        for cfg in PERSISTENT:
            def mk(i, cfg=cfg):
                def run():
                    a, b = aligned(A[i]), aligned(B[i])
                    c, cw = out_for(M, N, a.dtype)
                    tiles = -(-M // cfg.block_m) * -(-N // cfg.block_n)
                    tma.launch(a, b, cw, cfg, min(132, tiles), False, host_descriptors=True)
                    if cw is not c:
                        c.copy_(cw)
                    return c
                return run
            cands.append((f"persistent {cfg.short()}", mk))
        for cfg in SPLITK:
            for s, adds in [(s, adds) for s in SPLITS for adds in ((None,) if s == 1 else (True, False))]:
                tiles = -(-M // cfg.block_m) * -(-N // cfg.block_n)
                if s is None and tiles <= 132 or s is not None and (tiles * s > 8 * 132 or (s > 1 and tiles >= 2 * 132)):
                    continue
                if cfg.block_m == 16 and M > 16 or cfg.block_m > 16 and M <= 16 or cfg.block_m == 32 and M > 64:
                    continue

                def mk(i, cfg=cfg, s=s, adds=adds):
                    def run():
                        a, b = aligned(A[i]), aligned(B[i])
                        c, cw = out_for(M, N, a.dtype)
                        SKt.launch(a, b, cw, cfg, s, last_adds=adds)
                        if cw is not c:
                            c.copy_(cw)
                        return c
                    return run
                how = "" if adds is None else (" last adds" if adds else " reduce kernel")
                cands.append((f"split-K {cfg.short()} x{s or 'tail'}{how}", mk))
        if M >= 512 and (K * 2) % 16 == 0 and (N * 2) % 16 == 0:
            for cfg in (TileConfig(128, 256, 64, 8, 8, 3), TileConfig(128, 128, 64, 8, 4, 4)):
                def mk(i, cfg=cfg):
                    def run():
                        return STK.matmul_streamk(A[i], B[i], cfg)
                    return run
                cands.append((f"stream-K {cfg.short()}", mk))
        cands.append(("kernels.matmul", lambda i: (lambda: kernels.matmul(A[i], B[i]))))
        for label, mk in cands:
            if only is not None and not only.search(label) and label != "cuBLAS":
                continue
            g = time_it(mk, copies, ref, label, rows, base, rep)
            if g is not None and (best is None or g < best[1]):
                best = (label, g)
        print(f"{M}x{N}x{K}: cuBLAS {cub * 1e3:.1f} us, best {best[0]} {best[1] * 1e3:.1f} us "
              f"= {cub / best[1]:.3f}x  [{time.time() - t0:.0f} s]", flush=True)
        del A, B, ref
        torch.cuda.empty_cache()
        with open(os.path.join(OUT, "explore_matmul.json"), "w") as f:
            json.dump(dict(env=environment(), rows=rows), f)


if __name__ == "__main__":
    main()
