"""Exploration on a GPU (not a chapter record): the W4A16 kernel's variants at N = K = 8192.

    python benchmarks/explore_w4a16.py sweep      # conversions x load paths x tiles, and the CUDA-core
                                                  # kernel, at M = 1 and 16
    python benchmarks/explore_w4a16.py dump CFG   # TTGIR, PTX and cubin of one configuration (its label)
    python benchmarks/explore_w4a16.py fragments  # the prepacked (fragment-order) kernel: exactness,
                                                  # errors, and a sweep of tiles, split-K and stages
    python benchmarks/explore_w4a16.py fragments2 # its occupancy, step shape, one joined matmul, register caps
    python benchmarks/explore_w4a16.py one SPEC   # one prepacked configuration a few times (for ncu)
    python benchmarks/explore_w4a16.py bound      # what the word conversion costs: the prepacked kernel
                                                  # timed with cheaper stand-ins for it (wrong values,
                                                  # timing only), each in its own process

Writes JSON (and IR files) into $OUT or /tmp. The earlier explorations (results/logs/
h200_2026-12-01_w4a16_explore_*.json) were made by scripts of commit 4ba326e; the block_m 8 sweep
(h200_2026-12-01_w4a16_fragments_block_m8.json, wrong products: mma.sync's layout) by commit 0800b04's.
"""
import dataclasses
import itertools
import json
import os
import sys

import kernels  # noqa: F401  (decides the world first)
import torch
import triton
from triton.testing import do_bench_cudagraph

from kernels import w4a16 as W

OUT = os.environ.get("OUT", "/tmp")
N = K = 8192


def run(x, q, cfg):
    return W.w4a16_matmul(x, q, cfg)


def exact(cfg):
    """Every code pair, eight scales: how many weights differ from the dequantized ones (x = identity)."""
    codes = torch.arange(256, dtype=torch.uint8, device="cuda").reshape(1, 256).repeat(8, 1)
    sc = torch.tensor([100, 120, 127, 140, 1, 2, 160, 126], dtype=torch.uint8, device="cuda")
    w = W.MXFP4Weight(codes.contiguous(), sc.reshape(8, 1).repeat(1, 16).contiguous())
    eye = torch.eye(512, device="cuda", dtype=torch.bfloat16)
    y = torch.empty(512, 8, device="cuda", dtype=torch.bfloat16)
    W.launch(eye, w, y, dataclasses.replace(cfg, split_k=1, block_n=16, block_m=4 if cfg.gemv else 16))
    return int((y.T.double() != W.dequantize_mxfp4(w, torch.float64).bfloat16().double()).sum())


def sweep():
    torch.manual_seed(0)
    q = W.quantize_mxfp4(torch.randn(N, K, device="cuda", dtype=torch.bfloat16))
    wd = W.dequantize_mxfp4(q)
    res = {"weight_bytes": q.nbytes(), "rows": []}
    tiles = [(64, 128, 4, 4, 3), (64, 256, 2, 4, 3), (64, 256, 4, 4, 3), (32, 256, 4, 4, 4), (64, 512, 2, 4, 2),
             (128, 256, 2, 4, 3), (16, 256, 2, 4, 4), (32, 512, 1, 4, 3), (64, 128, 8, 4, 3)]
    for M in (16, 1):
        x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
        ref = x.double() @ wd.double().T
        res[f"cublas_M{M}_us"] = do_bench_cudagraph(lambda: x @ wd.T, rep=100) * 1e3
        cfgs = [W.W4A16Config(bn, bk, sk, nw, st, 16, tma, conv)
                for (bn, bk, sk, nw, st), tma, conv in itertools.product(tiles, (False, True), W.CONVERSIONS)]
        cfgs += [W.W4A16Config(bn, bk, sk, nw, st, min(M, 4), gemv=True)  # CUDA cores
                 for bn, bk, sk, nw, st in ((64, 256, 2, 4, 3), (32, 512, 2, 4, 3), (128, 256, 4, 8, 3),
                                            (16, 512, 2, 2, 3), (64, 512, 4, 4, 2), (32, 256, 4, 4, 4))]
        for cfg in cfgs:
            try:
                err = ((run(x, q, cfg).double() - ref).abs().max() / ref.abs().max()).item()
                us = do_bench_cudagraph(lambda: run(x, q, cfg), rep=100) * 1e3
                res["rows"].append(dict(M=M, config=cfg.label(), us=round(us, 2), err=err,
                                        tbps=round(q.nbytes() / us / 1e6, 3),
                                        bad_codes=exact(cfg) if M == 16 else None))
            except Exception as e:  # noqa: BLE001
                res["rows"].append(dict(M=M, config=cfg.label(), error=repr(e)[:300]))
            print(res["rows"][-1], flush=True)
    res["rows"].sort(key=lambda r: (r["M"], r.get("us", 1e9)))
    json.dump(res, open(os.path.join(OUT, "w4a16_sweep.json"), "w"), indent=1)


def dump(label):
    p = label.split()
    bn, bk = (int(v) for v in p[0].split("x"))
    cfg = W.W4A16Config(bn, bk, int(p[2][5:]), int(p[3][1:]), int(p[4][1:]), int(p[1][1:]), "tma" in p,
                        next((c for c in W.CONVERSIONS if c != "float32" and label.endswith(c)), "float32"))
    q = W.quantize_mxfp4(torch.randn(N, K, device="cuda", dtype=torch.bfloat16))
    x = torch.randn(16, K, device="cuda", dtype=torch.bfloat16)
    y = torch.zeros((16, N), dtype=torch.float32, device="cuda")
    k = W.launch(x, q, y, cfg)
    for kind in ("ttgir", "ptx"):
        open(os.path.join(OUT, f"w4a16.{kind}"), "w").write(k.asm[kind])
    open(os.path.join(OUT, "w4a16.cubin"), "wb").write(k.asm["cubin"])
    print(cfg.label(), "registers", k.n_regs, "spills", k.n_spills, "shared", k.metadata.shared)
    torch.cuda.synchronize()


def _time_prepacked(F, x, pw, cfg, ref, base_us, label, rep=100):
    """One launch of the prepacked kernel: its error, CUDA-graph time, and the error after the replays
    (the split-K counters must be back at zero), or the error it raised."""
    M = x.shape[0]
    try:
        y = torch.empty((M, N), dtype=torch.bfloat16, device="cuda")
        part, cnt = F.workspace(M, pw, cfg, "cuda")
        k = F.launch(x, pw, y, cfg, part, cnt)
        err = ((y.double() - ref).abs().max() / ref.abs().max()).item()
        us = do_bench_cudagraph(lambda: F.launch(x, pw, y, cfg, part, cnt), rep=rep) * 1e3
        F.launch(x, pw, y, cfg, part, cnt)
        err2 = ((y.double() - ref).abs().max() / ref.abs().max()).item()
        row = dict(M=M, config=label, us=round(us, 2), err=err, err_after=err2, regs=k.n_regs, spills=k.n_spills,
                   smem=k.metadata.shared, tbps=round(pw.nbytes() / us / 1e6, 3), x_cublas=round(base_us / us, 2))
    except Exception as e:  # noqa: BLE001
        row = dict(M=M, config=label, error=repr(e)[:300])
    print(row, flush=True)
    return row


def fragments():
    from kernels import w4a16_fragments as F

    res = {"rows": [], "exact": {}}
    # every code pair with scales on both sides of the fold limit, x = identity
    codes = torch.arange(256, dtype=torch.uint8, device="cuda").reshape(1, 256).repeat(256, 1)
    for label, sc in (("fold", [100, 120, 127, 128, 1, 2, 0, 126]), ("two multiplies", [100, 127, 140, 200, 1, 254, 0, 160])):
        s = torch.tensor(sc, dtype=torch.uint8, device="cuda").repeat_interleave(32)
        w = W.MXFP4Weight(codes.contiguous(), s.reshape(256, 1).repeat(1, 16).contiguous())
        ref = W.dequantize_mxfp4(w, torch.float64).bfloat16().double()
        eye = torch.eye(512, device="cuda", dtype=torch.bfloat16)
        for conv in F.CONVERSIONS:
            pw = F.prepack_mxfp4(w, 128, 256, 4)
            y = F.w4a16_prepacked(eye, pw, F.FragmentLaunch(16, 1, 2, conv))
            bad = (y.T.double() != ref)
            res["exact"][f"{label} {conv} fold={pw.fold}"] = int(bad.sum())
    print(res["exact"], flush=True)
    torch.manual_seed(0)
    q = W.quantize_mxfp4(torch.randn(N, K, device="cuda", dtype=torch.bfloat16))
    wd = W.dequantize_mxfp4(q)
    packs = {}
    for M in (1, 16, 4, 64, 256):
        x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
        ref = x.double() @ wd.double().T
        res[f"cublas_M{M}_us"] = do_bench_cudagraph(lambda: x @ wd.T, rep=100) * 1e3
        tiles = [(128, 256, 4), (64, 256, 4), (128, 512, 4), (128, 128, 4), (128, 256, 8), (256, 256, 8)]
        if M > 16:
            tiles = tiles[:2]
        for bn, bk, nw in tiles:
            key = (bn, bk, nw)
            if key not in packs:
                packs[key] = F.prepack_mxfp4(q, bn, bk, nw)
            pw = packs[key]
            bm = min(128, max(16, triton.next_power_of_2(M)))
            for split in ((1, 2, 4, 8) if M <= 16 else (1, 2)):
                for st in ((2, 3, 4) if M <= 16 and key == (128, 256, 4) else (3,)):
                    cfg = F.FragmentLaunch(bm, split, st, "ptx")
                    label = f"{bn}x{bk} w{nw} m{bm} split{split} s{st}"
                    res["rows"].append(_time_prepacked(F, x, pw, cfg, ref, res[f"cublas_M{M}_us"], label))
    res["rows"].sort(key=lambda r: (r["M"], r.get("us", 1e9)))
    json.dump(res, open(os.path.join(OUT, "w4a16_fragments.json"), "w"), indent=1)


def fragments2():
    """Occupancy and step shape of the prepacked kernel at M = 1 and 16."""
    from kernels import w4a16_fragments as F

    res = {"rows": []}
    torch.manual_seed(0)
    q = W.quantize_mxfp4(torch.randn(N, K, device="cuda", dtype=torch.bfloat16))
    wd = W.dequantize_mxfp4(q)
    packs = {}
    grid = [((64, 256, 4), 2, 4, False, None), ((64, 256, 4), 2, 4, True, None), ((64, 256, 4), 2, 2, False, None),
            ((64, 256, 4), 2, 8, False, None), ((64, 256, 4), 2, 4, False, 80), ((64, 256, 4), 3, 4, True, None),
            ((64, 128, 4), 2, 4, False, None), ((64, 128, 4), 3, 4, False, None), ((64, 128, 4), 3, 8, False, None),
            ((64, 128, 4), 4, 4, True, None), ((64, 128, 4), 2, 8, True, None), ((64, 128, 4), 3, 4, False, 64),
            ((128, 128, 8), 3, 4, False, None), ((128, 256, 8), 2, 4, True, None), ((64, 512, 4), 2, 4, True, None),
            ((64, 512, 4), 2, 2, True, None), ((128, 128, 4), 3, 8, True, None), ((64, 256, 4), 4, 4, False, None)]
    for M in (16, 1):
        x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
        ref = x.double() @ wd.double().T
        res[f"cublas_M{M}_us"] = do_bench_cudagraph(lambda: x @ wd.T, rep=100) * 1e3
        for (bn, bk, nw), st, split, one, reg in grid:
            if (bn, bk, nw) not in packs:
                packs[(bn, bk, nw)] = F.prepack_mxfp4(q, bn, bk, nw)
            pw = packs[(bn, bk, nw)]
            cfg = F.FragmentLaunch(16, split, st, "ptx", one, reg)
            label = f"{bn}x{bk} w{nw} s{st} split{split}" + (" onedot" if one else "") + (f" reg{reg}" if reg else "")
            res["rows"].append(_time_prepacked(F, x, pw, cfg, ref, res[f"cublas_M{M}_us"], label, rep=200))
    res["rows"].sort(key=lambda r: (r["M"], r.get("us", 1e9)))
    json.dump(res, open(os.path.join(OUT, "w4a16_fragments2.json"), "w"), indent=1)


def one(spec):
    """Launch one prepacked configuration 'bn,bk,warps,block_m,split,stages,M' a few times (for ncu)."""
    from kernels import w4a16_fragments as F

    bn, bk, nw, bm, split, st, M = (int(v) for v in spec.split(","))
    q = W.quantize_mxfp4(torch.randn(N, K, device="cuda", dtype=torch.bfloat16))
    pw = F.prepack_mxfp4(q, bn, bk, nw)
    x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
    cfg = F.FragmentLaunch(bm, split, st, "ptx")
    y = torch.empty((M, N), dtype=torch.bfloat16, device="cuda")
    part, cnt = F.workspace(M, pw, cfg, "cuda")
    for _ in range(3):
        k = F.launch(x, pw, y, cfg, part, cnt)
    torch.cuda.synchronize()
    print(spec, "registers", k.n_regs, "spills", k.n_spills, "shared", k.metadata.shared, flush=True)


_BOUND_ASM = {  # stand-ins for kernels.w4a16_fragments._ASM_FOLDED (timing only: values are wrong)
    "committed": None,
    "11 ops": """{ .reg .b32 a, b;
    shl.b32 $0, $4, 6; and.b32 $0, $0, 0x81C081C0; shl.b32 $1, $4, 3; and.b32 $1, $1, 0x81C081C0;
    and.b32 a, $4, 0x01C001C0; shl.b32 b, $4, 4; and.b32 b, b, 0x80008000; or.b32 $2, a, b;
    shf.l.wrap.b32 a, $4, $4, 9; and.b32 a, a, 0x01C001C0; shl.b32 b, $4, 5; and.b32 b, b, 0x80008000; or.b32 $3, a, b;
    mul.rn.bf16x2 $0, $0, $5; mul.rn.bf16x2 $1, $1, $6; mul.rn.bf16x2 $2, $2, $7; mul.rn.bf16x2 $3, $3, $8; }""",
    "4 ands": """{ and.b32 $0, $4, 0x81C081C0; and.b32 $1, $4, 0x40E040E0; and.b32 $2, $4, 0x20702070;
    and.b32 $3, $4, 0x10381038;
    mul.rn.bf16x2 $0, $0, $5; mul.rn.bf16x2 $1, $1, $6; mul.rn.bf16x2 $2, $2, $7; mul.rn.bf16x2 $3, $3, $8; }""",
    "no scale": "committed-without-mul",
    "4 ands, no scale": """{ and.b32 $0, $4, 0x81C081C0; and.b32 $1, $4, 0x40E040E0; and.b32 $2, $4, 0x20702070;
    and.b32 $3, $4, 0x10381038; }""",
}


def bound():
    """Each stand-in in a fresh process (the kernel's asm is a global read when it compiles)."""
    import subprocess
    rows = []
    for name in _BOUND_ASM:
        out = subprocess.run([sys.executable, __file__, "bound1", name], capture_output=True, text=True, timeout=300)
        print(out.stdout[-3000:], out.stderr[-2000:], flush=True)
        rows += [json.loads(line[5:]) for line in out.stdout.splitlines() if line.startswith("ROW: ")]
    json.dump({"rows": rows}, open(os.path.join(OUT, "w4a16_bound.json"), "w"), indent=1)


def bound1(name):
    from kernels import bench, w4a16_fragments as F
    import triton.language as tl

    asm = _BOUND_ASM[name]
    if asm == "committed-without-mul":
        asm = F._ASM_FOLDED.value.split("mul.rn")[0] + "}"
    if asm is not None:
        F._ASM_FOLDED = tl.constexpr(asm)
    torch.manual_seed(0)
    q = W.quantize_mxfp4(torch.randn(N, K, device="cuda", dtype=torch.bfloat16))
    wd = W.dequantize_mxfp4(q)
    for bn, bk, split in ((64, 256, 4), (64, 256, 8), (128, 256, 4)):
        pws = [F.prepack_mxfp4(W.MXFP4Weight(q.packed.clone(), q.scales.clone()), bn, bk, 4) for _ in range(6)]
        for M in (1, 16):
            x = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
            cfg = F.FragmentLaunch(16, split, 3, "ptx")
            bufs = []
            for pw in pws:
                y = torch.empty((M, N), dtype=torch.bfloat16, device="cuda")
                bufs.append((pw, y, *F.workspace(M, pw, cfg, "cuda")))
            k = F.launch(x, bufs[0][0], bufs[0][1], cfg, *bufs[0][2:])
            err = ((bufs[0][1].double() - x.double() @ wd.double().T).abs().max()).item()
            us = bench.rotating_graph_ms([lambda b=b: F.launch(x, b[0], b[1], cfg, *b[2:]) for b in bufs]) * 1e3
            print("ROW: " + json.dumps(dict(variant=name, M=M, tile=f"{bn}x{bk}", split=split, us=round(us, 2),
                                             max_abs_err=err, regs=k.n_regs)), flush=True)


if __name__ == "__main__":
    {"sweep": sweep, "dump": lambda: dump(sys.argv[2]), "fragments": fragments, "fragments2": fragments2,
     "one": lambda: one(sys.argv[2]), "bound": bound, "bound1": lambda: bound1(sys.argv[2])}[sys.argv[1]]()
