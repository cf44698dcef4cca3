"""Chapter 07's second kernel (kernels.w4a16_fragments): the MXFP4 weight rewritten in the order the
tensor cores read it. The prepacked bytes against the weight they came from, the bit layout against
Triton's own description of the operand layout, the PTX path's byte order emulated in torch, the matmul
against float64 (ragged N and K, split-K with its counters back at zero, every code and a wide range of
scales), the compiled loop (no layout conversion, no shared-memory round trip for the weight), bad input.

Tolerances as in test_w4a16.py (the same products, the same float32 sums).
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import kernels
from kernels import testing as T
from kernels import w4a16 as W
from kernels import w4a16_fragments as F
from kernels.w4a16 import MXFP4Weight, quantize_mxfp4

from test_w4a16 import NEEDS_BF16_ARITHMETIC, _check, _scaled_weight, _x  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
OTHER_DEVICE = "cpu" if kernels.ON_GPU else "meta"
TILES = [(64, 64, 4), (128, 128, 4), (128, 64, 8), (256, 64, 4)]  # (block_n, block_k, num_warps)


def _codes(w):
    return torch.stack((w.packed & 15, w.packed >> 4), dim=-1).reshape(w.shape[0], -1).long().cpu()


# --------------------------------------------------------------------------------------------------
# the fragment order
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("block_n,block_k,num_warps", TILES + [(256, 512, 8)])
def test_fragment_bits_name_every_row_and_column_bit_once(block_n, block_k, num_warps):
    bits = F.fragment_bits(block_n, block_k // 2, num_warps)
    rows = sorted(b for a, b in bits if a == 0)
    cols = sorted(b for a, b in bits if a == 1)
    assert rows == list(range(block_n.bit_length() - 1)) and cols == list(range((block_k // 2).bit_length() - 1))
    assert bits[4:9] == [(1, 1), (1, 2), (0, 0), (0, 1), (0, 2)], "lanes: the 4 x 8 quad of mma's fragments"


def test_fragment_bits_refuse_tiles_the_layout_cannot_cover():
    for args, msg in [((64, 64, 3), "num_warps must be 4 or 8"), ((32, 64, 2), "num_warps must be 4 or 8"), ((32, 64, 4), "block_n must be a power of two >= 64"),
                      ((64, 16, 4), "block_k / 2 must be a power of two >= 32"), ((96, 64, 4), "power of two")]:
        with pytest.raises(ValueError, match=msg):
            F.fragment_bits(*args)


@pytest.mark.parametrize("block_n,block_k,num_warps", TILES)
def test_prepacked_tiles_hold_the_weight(block_n, block_k, num_warps):
    """Read back through the memory order, each stored tile is the weight's (row, column) block: low
    nibbles the tile's first half of K, high nibbles the second; padding is code 0 with scale 127."""
    N, K = 100, 96 + block_k  # ragged: neither a multiple of the tile
    w = quantize_mxfp4(_scaled_weight(N, K, seed=1))
    pw = F.prepack_mxfp4(w, block_n, block_k, num_warps)
    kp = block_k // 2
    n_pad, k_pad = pw.padded
    assert n_pad % block_n == 0 and k_pad % block_k == 0 and n_pad >= N and k_pad >= K
    assert pw.data.numel() == n_pad * k_pad // 2 and pw.nbytes() == pw.data.numel() + pw.scales.numel()
    codes = torch.zeros(n_pad, k_pad, dtype=torch.long)
    codes[:N, :K] = _codes(w)
    shape, perm = F.reshape_permute(F.memory_bits(block_n, kp, num_warps), block_n, kp)
    tiles = pw.data.cpu().long().reshape(n_pad // block_n, k_pad // block_k, -1)
    for nb in range(n_pad // block_n):
        for ks in range(k_pad // block_k):
            tile = tiles[nb, ks].reshape(shape).permute(perm).reshape(block_n, kp)
            block = codes[nb * block_n:(nb + 1) * block_n, ks * block_k:(ks + 1) * block_k]
            assert torch.equal(tile & 15, block[:, :kp]) and torch.equal(tile >> 4, block[:, kp:]), (nb, ks)
    assert torch.equal(pw.scales[:N, :K // 32].cpu(), w.scales.cpu())
    assert (pw.scales[N:] == 127).all() and (pw.scales[:, K // 32:] == 127).all()


@pytest.mark.parametrize("block_n,block_k,num_warps", TILES)
def test_ptx_byte_order_gives_the_operand_tile(block_n, block_k, num_warps):
    """The GPU path, emulated: the kernel renames registers with the operand layout's bits, and the word
    conversion takes bytes (0, 2, 1, 3) for outputs (0, 1, 2, 3); what lands in each operand position
    must be that position's code."""
    N, K = 2 * block_n, 2 * block_k
    w = quantize_mxfp4(_scaled_weight(N, K, seed=2))
    pw = F.prepack_mxfp4(w, block_n, block_k, num_warps)
    kp, tile = block_k // 2, block_n * block_k // 2
    shape, perm = F.reshape_permute(F.fragment_bits(block_n, kp, num_warps), block_n, kp)
    e = torch.arange(tile)
    swapped = (e & ~3) | ((e & 1) << 1) | ((e >> 1) & 1)  # output i takes byte (0, 2, 1, 3)[i]
    codes = _codes(w)
    data = pw.data.cpu().long().reshape(N // block_n, K // block_k, tile)
    for nb in range(N // block_n):
        for ks in range(K // block_k):
            got = data[nb, ks][swapped].reshape(shape).permute(perm).reshape(block_n, kp)
            block = codes[nb * block_n:(nb + 1) * block_n, ks * block_k:(ks + 1) * block_k]
            assert torch.equal(got & 15, block[:, :kp]) and torch.equal(got >> 4, block[:, kp:])


def test_fold_is_decided_by_the_largest_scale():
    w = quantize_mxfp4(_scaled_weight(64, 128, seed=3, spread=2))
    assert F.prepack_mxfp4(w, 64, 64, 4).fold == bool(w.scales.max() <= F.FOLD_MAX_SCALE)
    big = MXFP4Weight(w.packed, torch.full_like(w.scales, F.FOLD_MAX_SCALE + 1))
    assert not F.prepack_mxfp4(big, 64, 64, 4).fold
    assert F.prepack_mxfp4(MXFP4Weight(w.packed, torch.full_like(w.scales, F.FOLD_MAX_SCALE)), 64, 64, 4).fold


# --------------------------------------------------------------------------------------------------
# the matmul
# --------------------------------------------------------------------------------------------------
N_RAGGED, K_TAIL = 100, 160  # N not a multiple of any block_n; K a multiple of 32, not of block_k


def _launches(pw):
    conv = "ptx" if kernels.ON_GPU else "float32"
    stages = 3 if kernels.ON_GPU else 1
    k_steps = pw.padded[1] // pw.block_k
    return {"default": None, "split-K 2": F.FragmentLaunch(16, min(2, k_steps), stages, conv),
            f"split-K {k_steps} (one step each)": F.FragmentLaunch(16, k_steps, stages, conv),
            "one matmul a step": F.FragmentLaunch(16, 1, stages, conv, one_dot=True),
            "block_m 32": F.FragmentLaunch(32, 1, stages, conv)}


@pytest.mark.parametrize("M", [1, 3, 17])
def test_w4a16_prepacked(M):
    w = quantize_mxfp4(_scaled_weight(N_RAGGED, K_TAIL, seed=4))
    x = _x(M, K_TAIL, seed=5 + M)
    for tile in [(64, 64, 4), (128, 128, 8), (256, 64, 4)]:
        pw = F.prepack_mxfp4(w, *tile)
        for label, cfg in _launches(pw).items():
            _check(F.w4a16_prepacked(x, pw, cfg), x, w, f"M={M} {tile} {label}")


def test_split_k_leaves_its_counters_at_zero_and_repeats():
    """The last program of each tile resets its counter: the same workspace serves the next launch
    (a CUDA graph replays exactly this), and the fixed-order sum gives the same bits every time."""
    w = quantize_mxfp4(_scaled_weight(N_RAGGED, K_TAIL * 2, seed=6))
    pw = F.prepack_mxfp4(w, 64, 64, 4)
    x = _x(5, K_TAIL * 2, seed=7)
    cfg = F.FragmentLaunch(16, 3, 3 if kernels.ON_GPU else 1, "ptx" if kernels.ON_GPU else "float32")
    part, counters = F.workspace(5, pw, cfg, x.device)
    outs = []
    for _ in range(3):
        y = T.poisoned_empty((5, N_RAGGED), torch.bfloat16)
        F.launch(x, pw, y, cfg, part, counters)
        assert int(counters.abs().sum()) == 0
        outs.append(y)
    _check(outs[0], x, w, "split-K 3")
    assert all(torch.equal(outs[0], o) for o in outs[1:]), "split-K sums must not depend on arrival order"


def test_lean_layer_matches_the_checked_wrapper():
    w = quantize_mxfp4(_scaled_weight(N_RAGGED, K_TAIL, seed=8))
    layer = F.PrepackedW4A16Linear(w, block_n=64, block_k=64, num_warps=4)
    for M in (1, 17, 1):
        x = _x(M, K_TAIL, seed=9 + M)
        assert torch.equal(layer(x), F.w4a16_prepacked(x, layer.pw))
    with pytest.raises(ValueError, match="PrepackedW4A16Linear: x is"):
        layer(_x(2, K_TAIL + 32, seed=1))
    if not kernels.ON_GPU:
        with pytest.raises(RuntimeError, match="CUDA graphs need a GPU"):
            layer.graph(1)


@pytest.mark.skipif(not kernels.ON_GPU, reason="CUDA graphs need a GPU")
def test_graph_replay_matches_a_call():
    w = quantize_mxfp4(_scaled_weight(512, 1024, seed=10))
    layer = F.PrepackedW4A16Linear(w, block_n=64, block_k=256)
    for M in (1, 16):
        x = _x(M, 1024, seed=11)
        xs, run = layer.graph(M)
        xs.copy_(x)
        assert torch.equal(run().clone(), F.w4a16_prepacked(x, layer.pw))


@NEEDS_BF16_ARITHMETIC
@pytest.mark.parametrize("scales", [(119, 128), (1, 250)], ids=["folded scales", "two multiplies"])
def test_ptx_conversion_every_code(scales):
    """Every code pair at every position of a tile, block scales from ``scales``: x is the identity, so
    each output is one weight, which must equal the dequantized weight exactly (the folded path
    multiplies once by 2**(s - 1); the other path keeps scales past 2**1; scales stop at 2**123, where
    6 * 2**123 still fits bfloat16: an infinite weight would turn the identity's zeros into NaN)."""
    gen = torch.Generator().manual_seed(12)
    N, K = 128, 512
    packed = torch.randint(0, 256, (N, K // 2), generator=gen, dtype=torch.uint8)
    packed[:, :256] = torch.arange(256, dtype=torch.uint8)
    sc = torch.randint(scales[0], scales[1] + 1, (N, K // 32), generator=gen, dtype=torch.uint8)
    w = MXFP4Weight(packed.contiguous().to(kernels.DEVICE), sc.to(kernels.DEVICE))
    pw = F.prepack_mxfp4(w, 64, 256, 4)
    assert pw.fold == (scales[1] <= F.FOLD_MAX_SCALE)
    eye = torch.eye(K, dtype=torch.bfloat16, device=kernels.DEVICE)
    y = F.w4a16_prepacked(eye, pw, F.FragmentLaunch(16, 2, 3, "ptx"))
    want = W.dequantize_mxfp4(w, torch.float64).bfloat16()
    assert torch.equal(y.T.contiguous(), want), int((y.T != want).sum())


# --------------------------------------------------------------------------------------------------
# the compiled loop
# --------------------------------------------------------------------------------------------------
COMPILE_FOR_HOPPER = r'''
import torch
torch.cuda.is_available = lambda: True  # compile as the GPU world does (no GPU is needed to compile)
import kernels
from kernels import w4a16_fragments as F

bn, bk, nw = 64, 256, 4
k = F.compile_sm90(F.w4a16_fragment_kernel, F.prepacked_constants(bn, bk, nw), nw)
ir = k.asm["ttgir"]
import re
loop = ir[ir.index("scf.for"):]
loop = loop[:loop.index("scf.yield")]
tile = bn * bk // 2
load = re.search(r"ttg.local_load .*-> tensor<%dxi8, #(\w+)>" % tile, loop)
layout = re.search(r"^#%s = (.*)$" % load.group(1), ir, re.M).group(1) if load else "none"
print("weight_tile_layout", layout.replace(" ", ""))
print("operand_converts", sum(1 for l in loop.splitlines() if "convert_layout" in l and f"{bn}x{bk // 2}x" in l))
print("wgmma_register_operand", int("dot_op<{opIdx = 0" in ir))
'''


@pytest.mark.skipif(kernels.ON_GPU, reason="on a GPU the kernel runs for real")
def test_compiled_for_hopper_the_weight_needs_no_layout_conversion(tmp_path):
    """Compiled for sm_90 (no GPU needed): in the loop, the weight tile is read from shared memory in
    its plain layout, 16 contiguous bytes a thread (``LDS.128``), and reaches the tensor cores'
    register operand with no ``convert_layout``: the reshapes and the permute only rename registers.
    (Given the bits of ``memory_bits`` instead, Triton reads the tile byte by byte in a scattered
    layout: the check below fails for it.)"""
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "TTC_WORLD")}
    env.update(PYTHONPATH=str(ROOT), TRITON_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-c", COMPILE_FOR_HOPPER], cwd=tmp_path, capture_output=True, text=True,
                          timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = dict(line.split(maxsplit=1) for line in proc.stdout.splitlines() if line.strip())
    assert out["weight_tile_layout"].startswith("#ttg.blocked<{sizePerThread=[16]"), proc.stdout
    assert out["operand_converts"] == "0", proc.stdout
    assert out["wgmma_register_operand"] == "1", proc.stdout


# --------------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------------
def test_bad_input_is_refused():
    w = quantize_mxfp4(_scaled_weight(64, 128, seed=13))
    pw = F.prepack_mxfp4(w, 64, 64, 4)
    x = _x(3, 128, seed=14)
    with pytest.raises(TypeError, match="must be a kernels.w4a16_fragments.PrepackedMXFP4"):
        F.w4a16_prepacked(x, w)
    with pytest.raises(TypeError, match="x must be bfloat16"):
        F.w4a16_prepacked(x.float(), pw)
    with pytest.raises(ValueError, match="x must be \\(M, K\\)"):
        F.w4a16_prepacked(x[0], pw)
    with pytest.raises(ValueError, match="x must be \\(M, K\\)"):
        F.w4a16_prepacked(x[:0], pw)
    with pytest.raises(ValueError, match="but the weight is"):
        F.w4a16_prepacked(_x(3, 96, seed=1), pw)
    with pytest.raises(ValueError, match="contiguous along K"):
        F.w4a16_prepacked(_x(128, 3, seed=1).t(), pw)
    with pytest.raises(ValueError, match="x is on"):
        F.w4a16_prepacked(x.to(OTHER_DEVICE), pw)
    with pytest.raises(ValueError, match="pending negation"):
        F.w4a16_prepacked(torch._neg_view(x), pw)
    for cfg, msg in [(F.FragmentLaunch(block_m=8), "block_m must be 16, 32, 64 or 128"), (F.FragmentLaunch(split_k=0), "split_k"),
                     (F.FragmentLaunch(split_k=3), "split_k must be an int in 1..2"),
                     (F.FragmentLaunch(num_stages=0), "num_stages"), (F.FragmentLaunch(convert="fp8"), "convert")]:
        with pytest.raises(ValueError, match=msg):
            F.w4a16_prepacked(x, pw, cfg)
    with pytest.raises(TypeError, match="FragmentLaunch"):
        F.w4a16_prepacked(x, pw, W.W4A16Config())
    with pytest.raises(TypeError, match="MXFP4Weight"):
        F.prepack_mxfp4(W.dequantize_mxfp4(w))
    with pytest.raises(ValueError, match="a scale is 255"):
        F.prepack_mxfp4(MXFP4Weight(w.packed, torch.full_like(w.scales, 255)))
    with pytest.raises(ValueError, match="block_n must be"):
        F.prepack_mxfp4(w, 48, 64, 4)


def test_default_launch_passes_the_checks():
    w = quantize_mxfp4(_scaled_weight(64, 256, seed=15))
    pw = F.prepack_mxfp4(w, 64, 64, 4)
    for on_gpu in (False, True):
        for M in (1, 16, 17, 64, 65, 4096):
            cfg = F.default_launch(M, pw, sms=132, on_gpu=on_gpu)
            assert cfg.block_m >= min(M, 128) or cfg.block_m == 128
            if on_gpu == kernels.ON_GPU:
                F._check_launch(cfg, pw, "default_launch")


def test_a_prepacked_weight_is_checked_when_made():
    """A hand-made or edited PrepackedMXFP4 whose parts disagree is refused (not read in the wrong
    order, past its end, or with scales that would overflow)."""
    import dataclasses

    w = quantize_mxfp4(_scaled_weight(100, 96, seed=16))
    pw = F.prepack_mxfp4(w, 64, 64, 4)
    R = dataclasses.replace
    cases = [(dict(data=pw.data[:-100]), ValueError, "data holds 8092 bytes"),
             (dict(data=torch.stack([pw.data, pw.data], 1)[:, 0]), ValueError, "contiguous 1-D"),
             (dict(data=pw.data.float()), TypeError, "data must be a uint8 tensor"),
             (dict(scales=pw.scales[:64]), ValueError, "does not match the padded tiles"),
             (dict(scales=pw.scales.T.contiguous().T), ValueError, "contiguous 2-D"),
             (dict(block_n=128), ValueError, "laid out for tiles"), (dict(block_k=128), ValueError, "laid out for tiles"),
             (dict(K=64), ValueError, "does not match"), (dict(N=200), ValueError, "does not match"),
             (dict(N=-1), ValueError, "does not match"), (dict(N=100.0), TypeError, "N must be an int"),
             (dict(scales=torch.full_like(pw.scales, 255)), ValueError, "255"),
             (dict(scales=torch.full_like(pw.scales, 200), fold=True), ValueError, "fold=True but a scale is 200")]
    for change, kind, msg in cases:
        with pytest.raises(kind, match=msg):
            R(pw, **change)
    for args, msg in [((64, 64, 4.0), "num_warps must be an int"), ((64, 64.0, 4), "block_k must be an int"),
                      ((64, 48, 4), "block_k must be a power of two >= 64")]:
        with pytest.raises(ValueError, match=msg):
            F.prepack_mxfp4(w, *args)


def test_launch_values_of_the_wrong_kind_are_refused():
    w = quantize_mxfp4(_scaled_weight(64, 128, seed=17))
    pw = F.prepack_mxfp4(w, 64, 64, 4)
    x = _x(3, 128, seed=18)
    conv = "ptx" if kernels.ON_GPU else "float32"
    for cfg, msg in [(F.FragmentLaunch(block_m=16.0, convert=conv), "block_m must be an int"),
                     (F.FragmentLaunch(one_dot="no", convert=conv), "must be bools"),
                     (F.FragmentLaunch(maxnreg=5, convert=conv), "maxnreg")]:
        with pytest.raises(ValueError, match=msg):
            F.w4a16_prepacked(x, pw, cfg)
    if not kernels.ON_GPU:
        with pytest.raises(ValueError, match="tma needs a GPU"):
            F.w4a16_prepacked(x, pw, F.FragmentLaunch(tma=True, convert=conv))
    for M in (0, -3, 2.0):
        with pytest.raises(ValueError, match="M must be a positive int"):
            F.default_launch(M, pw)


def test_lean_layer_refuses_a_negated_view_and_takes_a_single_row_of_any_stride():
    w = quantize_mxfp4(_scaled_weight(N_RAGGED, K_TAIL, seed=19))
    layer = F.PrepackedW4A16Linear(w, block_n=64, block_k=64)
    x = _x(5, K_TAIL, seed=20)
    with pytest.raises(ValueError, match="pending negation"):
        layer(torch._neg_view(x))
    one = _x(1, K_TAIL, seed=21).reshape(K_TAIL, 1).t()  # (1, K) with strides (1, 1)
    assert one.stride() == (1, 1)
    _check(F.w4a16_prepacked(one, layer.pw), one, w, "one row, stride (1, 1)")
    assert torch.equal(layer(one), F.w4a16_prepacked(one.contiguous(), layer.pw))
