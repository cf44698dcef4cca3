"""How much of a small matmul's time is the CPU launching it? (GPU only)

Times each kernel three ways at a few sizes: ``do_bench`` (CUDA events around each call, L2 flushed
between calls), ``do_bench_cudagraph`` (the calls captured in a CUDA graph: no CPU launch cost), and
the CPU time of one launch (host clock over many calls, no synchronization).
"""
import kernels  # noqa: F401  (before triton)
import torch
import triton.testing

from kernels import testing as T
from kernels import pingpong as pp
from kernels.tiled import TileConfig, matmul, matmul_tiled
from kernels.tma import matmul_tma_tuned

from ._common import cpu_launch_us


def run(sizes=(512, 1024, 2048)):
    rows = []
    for n in sizes:
        a, b = T.randn(n, n, dtype=torch.bfloat16), T.randn(n, n, dtype=torch.bfloat16)
        c = torch.empty(n, n, dtype=torch.bfloat16, device="cuda")
        matmul(a, b, out=c)  # autotune first
        for ws, host in ((False, False), (False, True), (True, False)):
            matmul_tma_tuned(a, b, warp_specialize=ws, host_descriptors=host, out=c)
        fns = {
            "torch.matmul": lambda: torch.matmul(a, b, out=c),
            "tiled autotuned": lambda: matmul(a, b, out=c),
            "tiled 64x128x64": lambda: matmul_tiled(a, b, TileConfig(64, 128, 64, 8, 4, 4), out=c),
            "tiled 128x128x64": lambda: matmul_tiled(a, b, TileConfig(128, 128, 64, 8, 4, 4), out=c),
            "tma tuned": lambda: matmul_tma_tuned(a, b, out=c),
            "tma tuned host desc": lambda: matmul_tma_tuned(a, b, host_descriptors=True, out=c),
            "tma tuned + ws": lambda: matmul_tma_tuned(a, b, warp_specialize=True, out=c),
        }
        if pp.available()[0]:
            pp.matmul_pingpong(a, b, out=c)
            fns["ping-pong (gluon)"] = lambda: pp.matmul_pingpong(a, b, out=c)
        for name, fn in fns.items():
            ev = triton.testing.do_bench(fn, return_mode="median")
            gr = triton.testing.do_bench_cudagraph(fn, return_mode="median")
            rows.append(dict(n=n, kernel=name, do_bench_us=ev * 1e3, cudagraph_us=gr * 1e3,
                             cpu_launch_us=cpu_launch_us(fn)))
    return rows


def main(argv=None):
    import argparse

    from kernels import bench

    p = argparse.ArgumentParser(prog="python -m benchmarks.launch_overhead", description=__doc__)
    p.add_argument("--dry-run", action="store_true", help="measure but do not write results/")
    args = p.parse_args(argv)
    if not kernels.ON_GPU:
        p.error("needs a CUDA GPU")
    print(kernels.describe_world())
    rows = run()
    print(f"{'n':>5} {'kernel':>20} {'do_bench us':>12} {'cudagraph us':>13} {'cpu launch us':>14}")
    for r in rows:
        print(f"{r['n']:5d} {r['kernel']:>20} {r['do_bench_us']:12.1f} {r['cudagraph_us']:13.1f} "
              f"{r['cpu_launch_us']:14.1f}")
    if not args.dry_run:
        path = bench.save(rows, "launch_overhead", script="python -m benchmarks.launch_overhead",
                          meta={"what": "CPU launch cost vs GPU time of small matmuls, bf16 n x n x n"})
        print("wrote", path.relative_to(bench.REPO))


if __name__ == "__main__":
    main()
