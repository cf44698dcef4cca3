"""Exploration on a GPU (not a chapter record): does the W4A16 timing read its 35.6 MB weight from L2?

    python benchmarks/explore_w4a16_l2.py

The H200's L2 holds 50 MB; one MXFP4 weight of N = K = 8192 is 35.6 MB, so graph replays over one
weight may find part of it in L2. Times each kernel over one weight and rotated over R weights (a
graph of R calls, each on its own weight: R x 35.6 MB >> L2), and a read-only floor: a kernel that only
streams the packed bytes (xor-reduced) with the kernel's own grid, and with wider steps.
Writes w4a16_l2.json into $OUT or /tmp.
"""
import json
import os

import kernels  # noqa: F401
import torch
import triton
import triton.language as tl
from triton.testing import do_bench_cudagraph

from kernels import bench, w4a16 as W, w4a16_fragments as F
from kernels.testing import rel_error

OUT = os.environ.get("OUT", "/tmp")
N = K = 8192
R = 6


@triton.jit
def read_floor_kernel(src, out, WORDS: tl.constexpr, ITERS: tl.constexpr, STAGES: tl.constexpr):
    pid = tl.program_id(0)
    base = src + pid.to(tl.int64) * ITERS * WORDS
    acc = tl.zeros((WORDS,), dtype=tl.int32)
    for i in tl.range(0, ITERS, num_stages=STAGES):
        acc ^= tl.load(base + i * WORDS + tl.arange(0, WORDS))
    tl.store(out + pid, tl.reduce(acc, 0, _xor))


@triton.jit
def _xor(a, b):
    return a ^ b


def graph_us(fn, reps=1):
    return do_bench_cudagraph(fn, rep=200, return_mode="median") * 1e3 / reps


def main():
    torch.manual_seed(0)
    res = {"env": {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__},
           "R": R, "rows": []}
    ws = [torch.randn(N, K, device="cuda", dtype=torch.bfloat16) * 0.02 for _ in range(R)]
    qs = [W.quantize_mxfp4(w) for w in ws]
    wds = [W.dequantize_mxfp4(q) for q in qs]
    fasts = [F.PrepackedW4A16Linear(q, block_n=64, block_k=256, num_warps=4) for q in qs]
    del ws
    words = [f.pw.data.view(torch.int32).reshape(-1) for f in fasts]
    nwords = words[0].numel()
    res["weight_bytes"] = fasts[0].pw.nbytes()
    for M in (1, 4, 16):
        x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
        ref = x.double() @ wds[0].double().T
        assert rel_error(fasts[0](x), ref) < 1e-2
        row = {"M": M}
        row["ours_one_us"] = graph_us(lambda: fasts[0](x))
        row["ours_rot_us"] = graph_us(lambda: [f(x) for f in fasts], R)
        row["cublas_one_us"] = graph_us(lambda: torch.matmul(x, wds[0].T))
        row["cublas_rot_us"] = graph_us(lambda: [torch.matmul(x, wd.T) for wd in wds[:3]], 3)
        print(row, flush=True)
        res["rows"].append(row)
    out = torch.empty(1 << 16, dtype=torch.int32, device="cuda")
    floor = []
    for wsz, iters, stages, nw in ((2048, 8, 3, 4), (2048, 8, 2, 4), (2048, 16, 3, 4), (4096, 8, 3, 4),
                                   (4096, 8, 4, 8), (8192, 4, 3, 8), (1024, 16, 4, 4), (2048, 32, 4, 4)):
        grid = (nwords // (wsz * iters),)
        assert grid[0] * wsz * iters == nwords
        def go(i):
            read_floor_kernel[grid](words[i], out, wsz, iters, stages, num_warps=nw)
        go(0)
        r = {"words_per_step": wsz, "iters": iters, "stages": stages, "warps": nw, "programs": grid[0],
             "one_us": graph_us(lambda: go(0)), "rot_us": graph_us(lambda: [go(i) for i in range(R)], R)}
        r["rot_tbps"] = nwords * 4 / r["rot_us"] / 1e6
        print(r, flush=True)
        floor.append(r)
    res["read_floor"] = floor
    res["clocks"] = bench.gpu_clocks()
    json.dump(res, open(os.path.join(OUT, "w4a16_l2.json"), "w"), indent=1)


def rotsweep():
    """Prepacked-kernel configurations at M = 1 and 16, each rotating over R weights."""
    torch.manual_seed(0)
    qs = [W.quantize_mxfp4(torch.randn(N, K, device="cuda", dtype=torch.bfloat16) * 0.02) for _ in range(R)]
    ref_w = W.dequantize_mxfp4(qs[0]).double()
    rows = []
    for bn, bk, nw in ((64, 256, 4), (64, 128, 4), (128, 256, 8), (64, 512, 4), (128, 128, 4)):
        pws = [F.prepack_mxfp4(q, bn, bk, nw) for q in qs]
        for M in (1, 16):
            x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
            ref = x.double() @ ref_w.T
            for split in (2, 4, 8):
                for st in (2, 3):
                    cfg = F.FragmentLaunch(16, split, st, "ptx")
                    try:
                        lays = [F.PrepackedW4A16Linear(pw, cfg) for pw in pws]
                        err = rel_error(lays[0](x), ref)
                        us = graph_us(lambda: [lay(x) for lay in lays], R)
                    except Exception as e:  # noqa: BLE001
                        err, us = None, str(e)[:80]
                    rows.append(dict(M=M, tile=f"{bn}x{bk} w{nw}", split=split, stages=st, us=us, err=err))
                    print(rows[-1], flush=True)
                    json.dump(rows, open(os.path.join(OUT, "w4a16_rotsweep.json"), "w"), indent=1)


if __name__ == "__main__":
    import sys
    rotsweep() if sys.argv[1:] == ["rotsweep"] else main()
