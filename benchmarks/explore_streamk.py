"""Exploration on a GPU (not a chapter record yet): the stream-K kernel (``kernels.streamk``) beside
chapter 03's persistent kernel and cuBLAS, at shapes whose tiles do not fill whole waves.

    python benchmarks/explore_streamk.py          # writes $OUT/streamk.json (or /tmp)

Each kernel is launched with its buffers allocated once (the stream-K workspace and counters too) and
timed with CUDA-graph replays and with ``do_bench``; errors against a float64 reference.
"""
import json
import os

import kernels  # noqa: F401  (decides the world first)
import torch
from triton.testing import do_bench, do_bench_cudagraph

from kernels import streamk as SK
from kernels.persistent import persistent_matmul_kernel
from kernels.tiled import TileConfig, _args, _flags

OUT = os.environ.get("OUT", "/tmp")
SHAPES = [(1152, 4096, 4096), (2176, 4096, 4096), (4096, 4096, 4096), (8192, 8192, 8192), (3000, 5000, 1700),
          (512, 8192, 8192), (128, 8192, 8192), (16, 8192, 8192), (1024, 1024, 1024)]
CONFIGS = [TileConfig(128, 256, 64, 8, 8, 3), TileConfig(128, 128, 64, 8, 4, 4)]


def launchers(a, b, cfg):
    M, K = a.shape
    N = b.shape[1]
    c = torch.empty(M, N, device="cuda", dtype=a.dtype)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    tiles = -(-M // cfg.block_m) * -(-N // cfg.block_n)
    flags = _flags(a, K, cfg.block_k, "grouped")
    meta = dict(BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, GROUP_M=cfg.group_m,
                num_warps=cfg.num_warps, num_stages=cfg.num_stages, **flags)
    out = {}

    def persistent():
        persistent_matmul_kernel[(min(sms, tiles),)](*_args(a, b, c, M, N, K), min(sms, tiles), **meta)
        return c
    out["persistent"] = persistent
    for label, sk in (("stream-K", None), ("stream-K, every tile shared", tiles)):
        p = SK.plan(M, N, K, cfg, None, sk)
        ws, cnt = SK.workspace(p, cfg, "cuda")

        def run(p=p, ws=ws, cnt=cnt):
            SK.streamk_matmul_kernel[(p.num_programs,)](*_args(a, b, c, M, N, K), ws, cnt, p.num_programs,
                                                         p.sk_tiles, **meta)
            return c
        out[f"{label} (sk_tiles {p.sk_tiles} of {p.num_tiles})"] = run
    return out


def main():
    rows = []
    for M, N, K in SHAPES:
        torch.manual_seed(0)
        a = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(K, N, device="cuda", dtype=torch.bfloat16)
        ref = a.double() @ b.double()
        cub_g = do_bench_cudagraph(lambda: a @ b, rep=100)
        cub_b = do_bench(lambda: a @ b, rep=100)
        rows.append(dict(M=M, N=N, K=K, kernel="cublas", graph_ms=cub_g, bench_ms=cub_b))
        for cfg in CONFIGS:
            for label, fn in launchers(a, b, cfg).items():
                try:
                    y = fn()
                    err = ((y.double() - ref).abs().max() / ref.abs().max()).item()
                    y1 = y.clone()
                    g = do_bench_cudagraph(fn, rep=100)
                    bb = do_bench(fn, rep=100)
                    same = bool(torch.equal(fn(), y1))
                    row = dict(M=M, N=N, K=K, kernel=label, config=f"{cfg.block_m}x{cfg.block_n}x{cfg.block_k} "
                               f"w{cfg.num_warps} s{cfg.num_stages}", graph_ms=g, bench_ms=bb, err=err,
                               same_bits_after_replays=same, ratio_graph=cub_g / g, ratio_bench=cub_b / bb)
                except Exception as e:  # noqa: BLE001
                    row = dict(M=M, N=N, K=K, kernel=label, error=repr(e)[:300])
                print(json.dumps(row), flush=True)
                rows.append(row)
    env = dict(gpu=torch.cuda.get_device_name(0), torch=torch.__version__, triton=__import__("triton").__version__)
    json.dump({"environment": env, "rows": rows}, open(os.path.join(OUT, "streamk.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
