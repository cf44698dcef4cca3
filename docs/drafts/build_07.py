import json, sys
cells = []
def md(s): cells.append(("markdown", s.strip("\n")))
def code(s): cells.append(("code", s.strip("\n")))

md(r"""
# 07 · FP4 weights for decode: MXFP4 and NVFP4 on a GPU without FP4 tensor cores

When a language model generates text, each step multiplies a handful of token vectors (M = 1 … 16)
by every weight matrix. The matmul then does almost no arithmetic per byte: the time is the time to
**read the weights**. Four-bit weights are a quarter of bf16's bytes, so they can make decoding
nearly four times faster, even on Hopper, which has no FP4 tensor cores: the kernel reads 4-bit
codes, turns them into bf16 in registers, and feeds the bf16 tensor cores.

This chapter:

1. looks at the 16 values of **e2m1** and at the two ways of sharing a scale: **MXFP4** (one
   power-of-two scale per 32 values) and **NVFP4** (one e4m3 scale per 16, and one for the tensor);
2. measures what four bits cost in accuracy, and what a Hadamard rotation does about outliers;
3. writes a **weight-only kernel (W4A16)** for decode-sized M and measures it against bf16 cuBLAS and
   the 4-bit kernels people deploy, over M from 1 to 4096;
4. looks at the other cost of a ten-microsecond kernel: launching it from Python.
""")
code(r"""
import kernels  # first, always

print(kernels.describe_world())
""")
md(r"""
## Why decode is a memory problem

`y = x @ W.T` with `x` (M, K) and `W` (N, K) does `2·M·N·K` flops and reads at least the weight's
`N·K` elements. At M = 16 and N = K = 8192 that is 16 flops per bf16 byte of weight; the H200's
tensor cores need about 200 per byte before memory stops being the limit.
""")
code(r"""
from kernels import roofline

spec = roofline.datasheet("h200")
for M in (1, 16, 256, 4096):
    ai = roofline.matmul_intensity(M, 8192, 8192)
    t_mem = (8192 * 8192 * 2 + 2 * M * 8192 * 2) / (spec.bandwidth_tbs * 1e12) * 1e6
    t_math = 2 * M * 8192 * 8192 / (spec.peak_tflops["bf16"] * 1e12) * 1e6
    print(f"M={M:5d}: {ai:7.1f} flop/byte; reading the bytes takes {t_mem:6.1f} µs, the math {t_math:6.1f} µs "
          f"(datasheet ceilings)")
""")
md(r"""
## e2m1: sixteen values

A 4-bit float has a sign, 2 exponent bits and 1 mantissa bit. Its magnitudes are 0, 0.5, 1, 1.5, 2, 3,
4, 6: no infinities, no NaN. On its own it is far too coarse for a weight; every block of weights
therefore gets a **scale**, and the codes only say where each weight lies relative to its block's
largest one.
""")
code(r"""
from kernels import fp4

for code in range(16):
    print(f"{code:2d} = {code:04b}: {fp4.VALUES[code]:+.1f}", end="    " if code % 4 != 3 else "\n")
""")
md(r"""
**MXFP4** (OCP Microscaling Formats): 32 values share one **e8m0** scale, a byte that is just an
exponent, `2^(s − 127)`. The scale is chosen from the block's largest magnitude so that it lands near
e2m1's largest value. **NVFP4** (NVIDIA's, for Blackwell): 16 values share an **e4m3** scale (which
has a mantissa: finer than a power of two), and a float32 scale for the whole tensor keeps the e4m3
scales in range. One block, both ways:
""")
code(r"""
import matplotlib.pyplot as plt
from kernels import plots

plots.plot_fp4_block()
plt.show()
""")
md(r"""
<video src="media/FP4BlockScene.mp4" controls width="760"></video>

*One MXFP4 block: the largest magnitude sets the shared exponent, every value is divided by it and
rounded to e2m1, and the codes are packed two per byte (`python -m animations.render FP4BlockScene`).*
""")
code(r"""
import numpy as np

codes = np.arange(16, dtype=np.uint8)
for order in ("low_first", "high_first"):
    packed = fp4.pack(codes, order)
    assert np.array_equal(fp4.unpack(packed, order), codes)
    print(f"{order:10s}: {' '.join(f'{b:02x}' for b in packed)}")
print(f"bits per weight: MXFP4 {fp4.bits_per_weight(32, 8)}, NVFP4 {fp4.bits_per_weight(16, 8)} "
      f"(bf16: 16)")
""")
md(r"""
Element `2i` goes to the low nibble of byte `i` in the OCP layout (and in `torch.float4_e2m1fn_x2`);
some libraries put it in the high nibble. A kernel and the code that packed its weights must agree,
and a swapped order still gives plausible-looking numbers, which is why the exercise tests both.
""")
md(r"""
## What four bits cost

The error of `x @ W.T` with W in FP4, against float64, for Gaussian weights and for weights with a
few outlier input channels (as trained LLM layers have). A **Hadamard rotation** along K (applied to
W and, at run time, to x: `x R (W R)ᵀ = x Wᵀ` since `R` is orthonormal) spreads an outlier over its
block before quantizing. Egiazarian et al. (2025, *Bridging the Gap Between Promise and Performance for
Microscaling FP4 Quantization*, arXiv:2509.23202) measure the same effects on real LLMs.
""")
code(r"""
from benchmarks import ch07
from kernels import bench

acc = bench.recorded_or_fresh("ch07_accuracy", fresh=lambda: ch07.run_accuracy())
print(acc["shown"])
print(f"{'weights':18s} {'rotation block':>14s} {'format':7s} {'plain':>7s} {'rotated':>8s}")
rows = {}
for r in acc["records"]:
    rows.setdefault((r["weights"], r["rotation_block"], r["format"]), {})[r["rotation"]] = r["rel_error"]
for (w, b, f), e in rows.items():
    print(f"{w:18s} {b:14d} {f:7s} {e['plain']:7.1%} {e['rotated']:8.1%}")
""")
md(r"""
## Hopper has no FP4 tensor cores

Triton's `tl.dot_scaled` takes block-scaled FP4 and FP8 operands. On Blackwell it maps onto tensor
cores that multiply FP4 directly; on Hopper Triton converts the operands to bf16 first, inside the
matmul. Recorded on the H200, against bf16 cuBLAS:
""")
code(r"""
ds = bench.recorded_or_fresh("ch07_dot_scaled", fresh=lambda: ch07.run_dot_scaled())
print(ds["shown"])
for r in ds["records"]:
    what = f"{r['tflops']:6.0f} TFLOP/s, {r['ratio_to_bf16']:.2f}x bf16 cuBLAS" if "tflops" in r else r["error"][:90]
    print(f"{r['kernel']:22s} {r['config']:18s} {what}")
""")
md(r"""
So on Hopper FP4 pays by **bytes**, where bytes are the limit: in decode.

## A weight-only kernel for decode (W4A16)

`kernels.w4a16` stores the weight as MXFP4 (`quantize_mxfp4`: codes packed two per byte, one e8m0
byte per 32) and computes `y = x @ dequantize(W).T` in one kernel:

* **A and B swapped.** The tensor-core instruction wants at least 64 rows in its first operand and takes
  as few as 8 columns in its second. The weight tile (64 output features) is the first operand and the
  few tokens the second: `tl.dot(W_tile, x_tile.T)` computes a tile of `yᵀ`.
* **Split K.** 8192 output features in tiles of 64 are 128 programs for 132 SMs, each reading a long
  row of weights; `split_k` programs share a tile's K range and add their float32 partial sums with
  atomic adds.
* **Decode in registers.** Each byte becomes two codes, each code a bf16 value from integer operations
  on its bits (no table), multiplied by its block's scale: an e8m0 byte is float32's exponent field.
""")
code(r"""
from kernels import w4a16

print(kernels.source(w4a16.e2m1_to_float))
print(kernels.source(w4a16.w4a16_kernel))
""")
code(r"""
import torch
from kernels import testing

N, K = kernels.pick(cpu=(96, 320), gpu=(8192, 8192))
w = testing.randn(N, K, seed=1) * 0.02
wq = w4a16.quantize_mxfp4(w)
wd = w4a16.dequantize_mxfp4(wq, torch.float64)
print(f"weight: {tuple(w.shape)}, {wq.nbytes():,} bytes as MXFP4 against {w.numel() * 2:,} as bf16")
for M in (1, 5, 16):
    x = testing.randn(M, K, seed=M).bfloat16()
    y = w4a16.w4a16_matmul(x, wq)
    ref = x.double() @ wd.T
    print(f"M={M:2d}: relative error against float64 of the dequantized weight "
          f"{((y.double() - ref).norm() / ref.norm()).item():.1e}")
""")
md(r"""
## How fast, recorded on the H200

Each kernel per call (CUDA-graph replay), over M, with the time its weight bytes take at the
datasheet bandwidth (dotted):
""")
code(r"""
doc = bench.recorded_or_fresh("ch07_w4a16", fresh=lambda: ch07.run_w4a16(quick=True))
print(doc["shown"])
plots.plot_w4a16_over_m(doc)
plt.show()
""")
code(r"""
print(f"{'kernel':9s} {'M':>5s} {'µs':>7s} {'x cuBLAS':>9s} {'weight TB/s':>12s}")
for r in doc["records"]:
    if "graph_us" in r and r["M"] in (1, 4, 16, 64, 256, 1024, 4096):
        print(f"{r['kernel']:9s} {r['M']:5d} {r['graph_us']:7.1f} {r['speedup_over_cublas']:8.2f}x {r['weight_tbps']:12.2f}")
""")
md(r"""
## The other cost: launching from Python

A decode matmul runs for microseconds; launching a Triton kernel from Python (binding arguments,
checks, finding the compiled kernel) takes tens. `w4a16.W4A16Linear` checks and allocates once, and
its `graph(M)` records the launch in a CUDA graph, which replays with no Python in between:
""")
code(r"""
ld = bench.recorded_or_fresh("ch07_launch", fresh=lambda: ch07.run_launch())
print(ld["shown"])
plots.plot_launch(ld)
plt.show()
""")
md(r"""
## Your turn

`my-work/ch07_fp4_pack.ipynb` (`make workspace` puts it there): pack and unpack e2m1 codes in both
nibble orders, and write the kernel that dequantizes an MXFP4 weight to bf16. Grade it with
`make grade NB=my-work/ch07_fp4_pack.ipynb`.

**Next:** chapter 08, flash attention.
""")

nb = {"cells": [], "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                                 "language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}
for i, (t, src) in enumerate(cells):
    lines = src.split("\n")
    source = [l + "\n" for l in lines[:-1]] + [lines[-1]]
    c = {"cell_type": t, "id": f"cell-{i:02d}", "metadata": {}, "source": source}
    if t == "code":
        c["execution_count"] = None
        c["outputs"] = []
    nb["cells"].append(c)
open(sys.argv[1], "w").write(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
