"""The weight-only MXFP4 matmul of chapter 07 (kernels.w4a16): quantization bit-exact with kernels.fp4,
the kernel's e2m1 and e8m0 conversions on every code, the matmul (pointer and TMA loads, every
conversion) against float64, bad input.

The matmul's tolerance: the weight dequantizes exactly to bfloat16 (an e2m1 value times a power of two),
products of bfloat16 values are exact in float32, so the result differs from ``x.double() @ W.T`` by the
float32 sums and the final rounding to bfloat16. Triton's interpreter truncates float32 to bfloat16
(less than 1 ulp); a GPU rounds to nearest (half an ulp); split-K adds float32 partial sums and rounds
in torch. The checks allow 2 ulps of bfloat16 at each output's magnitude, plus a bound for the sums
where they cancel: ``2**-20 * (|x| @ |W|.T)`` in the interpreter, ``2**-16`` times it on a GPU, whose
tensor cores add in their own order.
"""
import dataclasses

import numpy as np
import pytest
import torch
import triton
import triton.language as tl

import kernels
from kernels import fp4
from kernels import testing as T
from kernels import w4a16 as W
from kernels.w4a16 import MXFP4Weight, W4A16Config, dequantize_mxfp4, quantize_mxfp4, w4a16_matmul

OTHER_DEVICE = "cpu" if kernels.ON_GPU else "meta"  # a device the kernels do not run on


def _codes(w: MXFP4Weight) -> np.ndarray:
    """The e2m1 codes ``(N, K)`` of a weight, element 2i from the low nibble of byte i."""
    p = w.packed.cpu().numpy()
    return fp4.unpack(p, "low_first")


def _scaled_weight(N, K, seed, spread=8):
    """Random weights whose 32-value blocks differ in magnitude by up to 2**(2 * spread), and whose rows
    differ as well: a kernel applying a neighbour's block scale would be far off."""
    gen = torch.Generator().manual_seed(seed)
    e = torch.randint(-spread, spread + 1, (N, K // 32), generator=gen).to(torch.float32)
    w = torch.randn(N, K, generator=gen) * (2.0 ** e).repeat_interleave(32, 1)
    return w.to(kernels.DEVICE)


# --------------------------------------------------------------------------------------------------
# quantization and dequantization against kernels.fp4
# --------------------------------------------------------------------------------------------------
def _special_rows():
    """Rows of 32-value blocks that hit the rules: every e2m1 midpoint (ties to the even code), values
    beyond 6 after scaling (saturate), small negatives rounding to 0 (must be +0), an all-zero block."""
    mids = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0]
    ties = mids + [-m for m in mids] + [4.0] + [0.0] * 17  # amax 5 -> scale 2**0: the ties land exactly
    sat = [7.5, -7.9, 6.5, 3.2, -0.1, 0.2, -0.2, 0.24] + [1.0] * 24  # amax 7.9 -> scale 1: 7.5 and 7.9 saturate
    neg_zero = [-0.01, -0.2, -0.24, 4.0] + [0.0] * 28
    zero = [0.0] * 32
    scaled_ties = [v * 2.0**-20 for v in ties]  # the same ties in another binade
    big = [v * 2.0**40 for v in sat]
    return torch.tensor([ties + sat, neg_zero + zero, scaled_ties + big, zero + ties], dtype=torch.float32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_quantize_mxfp4_equals_kernels_fp4(dtype):
    rows = _special_rows()
    if dtype == torch.float16:  # float16 holds neither 2**40 nor 2**-20 * 0.25 exactly enough: rescale
        rows = rows / rows.abs().amax(dim=1, keepdim=True).clamp_min(1) * 100
    x = torch.cat([rows, _scaled_weight(5, 64, seed=1, spread=6).cpu()]).to(dtype).to(kernels.DEVICE)
    w = quantize_mxfp4(x)
    N, K = x.shape
    assert w.shape == (N, K) and w.packed.shape == (N, K // 2) and w.scales.shape == (N, K // 32)
    assert w.packed.dtype == torch.uint8 and w.scales.dtype == torch.uint8
    codes, exps = fp4.mxfp4(x.cpu().double().numpy())
    assert np.array_equal(_codes(w), codes), np.argwhere(_codes(w) != codes)[:5]
    assert np.array_equal(w.scales.cpu().numpy().astype(np.int64) - 127, exps)
    assert np.array_equal(w.packed.cpu().numpy(), fp4.pack(codes, "low_first"))
    assert not (_codes(w) == 8).any()  # no -0
    if dtype == torch.float32:
        assert w.scales[1, 1] == 127 and w.scales[3, 0] == 127  # the all-zero blocks: scale 2**0
        assert _codes(w)[0, 32:34].tolist() == [7, 15]  # 7.5 -> 6, -7.9 -> -6 (saturated)
        assert fp4.VALUES[_codes(w)[0, :7]].tolist() == [0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0]  # ties to even


def test_dequantize_mxfp4_equals_kernels_fp4():
    x = torch.cat([_special_rows(), _scaled_weight(6, 64, seed=2).cpu()]).to(kernels.DEVICE)
    w = quantize_mxfp4(x)
    codes, exps = fp4.mxfp4(x.cpu().double().numpy())
    want = fp4.mxfp4_dequantize(codes, exps)
    got64 = dequantize_mxfp4(w, torch.float64)
    assert got64.dtype == torch.float64 and np.array_equal(got64.cpu().numpy(), want)
    got = dequantize_mxfp4(w)  # bfloat16 by default: every value is exact in it
    assert got.dtype == torch.bfloat16 and np.array_equal(got.double().cpu().numpy(), want)
    # and the weight is what it should approximate: within half an e2m1 step of each block's scale
    step = 2.0 ** np.repeat(exps, 32, axis=1)  # e2m1's largest gap is 2 (between 4 and 6), times the scale
    err = np.abs(want - np.clip(x.cpu().double().numpy(), -6 * step, 6 * step))
    assert (err <= step + 1e-300).all()


def test_weight_bytes():
    w = quantize_mxfp4(_scaled_weight(40, 96, seed=3))
    assert W.weight_bytes(40, 96) == w.nbytes() == 40 * 96 * 4.25 / 8


# --------------------------------------------------------------------------------------------------
# the kernel's conversions, on every code
# --------------------------------------------------------------------------------------------------
@triton.jit
def _convert_kernel(c_ptr, out_ptr, n, WHICH: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    c = tl.load(c_ptr + offs, mask=offs < n, other=0)
    if WHICH == 0:
        v = W.e2m1_to_float(c)
    elif WHICH == 1:
        v = W.e2m1_to_bf16_bits(c).to(tl.float32)
    else:
        v = W.e8m0_to_float(c)
    tl.store(out_ptr + offs, v, mask=offs < n)


def _convert(codes, which):
    c = torch.tensor(codes, dtype=torch.uint8, device=kernels.DEVICE)
    out = torch.full((len(codes),), float("nan"), device=kernels.DEVICE)
    _convert_kernel[(1,)](c, out, len(codes), WHICH=which, BLOCK=triton.next_power_of_2(len(codes)))
    return out.cpu().numpy().astype(np.float64)


def test_e2m1_to_float_every_code():
    got = _convert(range(16), 0)
    assert np.array_equal(got, fp4.VALUES)
    assert np.array_equal(np.signbit(got), np.signbit(fp4.VALUES))  # code 8 is -0


# Triton's interpreter stores bfloat16 as uint16 and runs elementwise arithmetic on the bit patterns
# (1.0 * 4.0 gives -2.0 in Triton 3.9's; its debugging guide says bfloat16 operations are not supported;
# triton-lang/triton#10945), so the bfloat16 arithmetic of e2m1_to_bf16_bits runs on a GPU only
NEEDS_BF16_ARITHMETIC = pytest.mark.skipif(
    not kernels.ON_GPU, reason="GPU only: Triton's interpreter does not do bfloat16 arithmetic (it computes on the bits) nor inline PTX")


@NEEDS_BF16_ARITHMETIC
def test_e2m1_to_bf16_bits_every_code():
    """Exact for every code, the two subnormal ones (+-0.5) included: the GPU keeps bfloat16 subnormals."""
    got = _convert(range(16), 1)
    assert np.array_equal(got, fp4.VALUES)
    assert np.array_equal(np.signbit(got), np.signbit(fp4.VALUES))


def test_e8m0_to_float_every_byte():
    got = _convert(range(256), 2)
    assert got[0] == 0  # 2**-127 is below float32's normal range: read as 0
    assert np.array_equal(got[1:255], 2.0 ** (np.arange(1, 255) - 127))
    assert got[255] == np.inf  # e8m0's NaN becomes inf (check_weight refuses it)


# --------------------------------------------------------------------------------------------------
# the matmul
# --------------------------------------------------------------------------------------------------
def _check(y, x, w, label):
    assert y.dtype == torch.bfloat16 and y.shape == (x.shape[0], w.shape[0]), label
    assert torch.isfinite(y.float()).all(), f"{label}: NaN/inf (unwritten outputs?)"
    wd = dequantize_mxfp4(w, torch.float64)
    ref = x.double() @ wd.T
    bound = x.double().abs() @ wd.abs().T
    ulp = 2.0 ** (torch.floor(torch.log2(ref.abs().clamp_min(1e-300))) - 7)  # bfloat16 keeps 8 bits
    err = (y.double() - ref).abs()
    over = err > 2 * ulp + kernels.pick(cpu=2.0**-20, gpu=2.0**-16) * bound
    assert not over.any(), (label, torch.nonzero(over)[:5].tolist(), float((err / ulp).max()))
    return ref


def _x(M, K, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(M, K, generator=gen) * (2.0 ** torch.randint(-4, 5, (M, 1), generator=gen))
    return x.to(torch.bfloat16).to(kernels.DEVICE)


# K = 160: a multiple of 32 but not of the block_k used (64 in the interpreter, 256 by default on a GPU)
N_RAGGED, K_TAIL = 40, 160
CONFIGS = {
    "default": None,
    "split-K 2": W4A16Config(block_n=32, block_k=64, split_k=2, num_warps=4, num_stages=1, block_m=16),
    "split-K 4 (more than the K steps)": W4A16Config(block_n=16, block_k=64, split_k=4, num_warps=4,
                                                     num_stages=1, block_m=16),
    "block_k 128, block_m 32": W4A16Config(block_n=32, block_k=128, split_k=1, num_warps=4, num_stages=1,
                                            block_m=32),
}


@pytest.mark.parametrize("M", [1, 3, 16, 17])
def test_w4a16_matmul(M):
    w = quantize_mxfp4(_scaled_weight(N_RAGGED, K_TAIL, seed=10))
    x = _x(M, K_TAIL, seed=11 + M)
    for label, cfg in CONFIGS.items():
        _check(w4a16_matmul(x, w, cfg), x, w, f"M={M} {label}")


def test_w4a16_matmul_uses_each_block_its_own_scale():
    """The test above could fail: a weight read with its block scales shifted by one block along K, or
    with the scales of the next row, gives results far outside its tolerance."""
    w = quantize_mxfp4(_scaled_weight(N_RAGGED, K_TAIL, seed=10))
    x = _x(3, K_TAIL, seed=12)
    y = w4a16_matmul(x, w)
    for wrong in (w.scales.roll(1, dims=1), w.scales.roll(1, dims=0)):
        bad = MXFP4Weight(w.packed, wrong.contiguous())
        with pytest.raises(AssertionError):
            _check(y, x, bad, "wrong scales")


@pytest.mark.parametrize("tma", [False, True], ids=["pointer loads", "TMA"])
def test_loads_by_pointer_and_by_tma(tma):
    """Pointer loads and TMA descriptors (made on the host) load the same tiles: the same products,
    through ``launch`` (no checks), with split-K and ragged M, N and K (a K tail shorter than a block)."""
    w = quantize_mxfp4(_scaled_weight(N_RAGGED, K_TAIL, seed=13))
    for M, cfg in [(1, W.default_config(1, N_RAGGED)), (17, CONFIGS["split-K 2"])]:
        x = _x(M, K_TAIL, seed=14)
        if cfg.split_k == 1:
            y = T.poisoned_empty((M, N_RAGGED), torch.bfloat16)
        else:
            y = torch.zeros((M, N_RAGGED), dtype=torch.float32, device=kernels.DEVICE)
        W.launch(x, w, y, dataclasses.replace(cfg, tma=tma))
        _check(y.to(torch.bfloat16), x, w, f"tma={tma}, M={M}, {cfg.label()}")


@NEEDS_BF16_ARITHMETIC
@pytest.mark.parametrize("tma", [False, True], ids=["pointer loads", "TMA"])
@pytest.mark.parametrize("convert", ["bf16 bits", "ptx"])
def test_gpu_conversions(convert, tma):
    """The GPU-only conversions (codes decoded in bfloat16's bits; or unpacked, decoded and scaled in
    PTX two at a time), every code present, scales spread over 2**-8 .. 2**8."""
    gen = torch.Generator().manual_seed(15)
    codes = torch.randint(0, 16, (N_RAGGED, K_TAIL), generator=gen, dtype=torch.uint8)
    codes[:, :16] = torch.arange(16, dtype=torch.uint8)
    packed = (codes[:, 0::2] | (codes[:, 1::2] << 4)).contiguous()
    scales = torch.randint(119, 136, (N_RAGGED, K_TAIL // 32), generator=gen, dtype=torch.uint8)
    w = MXFP4Weight(packed.to(kernels.DEVICE), scales.to(kernels.DEVICE))
    assert np.array_equal(_codes(w), codes.numpy())
    for M in (1, 17):
        x = _x(M, K_TAIL, seed=16)
        cfg = W.default_config(M, N_RAGGED)
        y = T.poisoned_empty((M, N_RAGGED), torch.bfloat16) if cfg.split_k == 1 else \
            torch.zeros((M, N_RAGGED), dtype=torch.float32, device=kernels.DEVICE)
        W.launch(x, w, y, dataclasses.replace(cfg, convert=convert, tma=tma))
        _check(y.to(torch.bfloat16), x, w, f"{convert}, tma={tma}, M={M}")


def test_default_configs_pass_the_checks():
    for on_gpu in (False, True):
        for M in (1, 16, 17, 64, 65, 4096):
            W._check_config(W.default_config(M, 8192, on_gpu=on_gpu), 8192, "default_config")


# --------------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------------
def _parts(N=16, K=64):
    w = quantize_mxfp4(_scaled_weight(N, K, seed=20))
    return w.packed, w.scales


def test_mxfp4_weight_refuses_bad_tensors():
    packed, scales = _parts()
    with pytest.raises(TypeError, match="MXFP4Weight: weight.packed must be a uint8 tensor"):
        MXFP4Weight(packed.to(torch.int8), scales)
    with pytest.raises(TypeError, match="weight.scales must be a uint8 tensor"):
        MXFP4Weight(packed, scales.float())
    with pytest.raises(TypeError, match="weight.packed must be a uint8 tensor"):
        MXFP4Weight(packed.cpu().numpy(), scales)
    with pytest.raises(ValueError, match="weight.packed must be a contiguous 2-D tensor"):
        MXFP4Weight(packed.reshape(-1), scales)
    with pytest.raises(ValueError, match="weight.packed must be a contiguous 2-D tensor"):
        MXFP4Weight(packed.t().contiguous().t(), scales)
    with pytest.raises(ValueError, match="weight.scales must be a contiguous 2-D tensor"):
        MXFP4Weight(packed, torch.cat([scales, scales], dim=1)[:, ::2])
    with pytest.raises(ValueError, match=r"weight.scales must be \(N, K/32\) = \(16, 2\)"):
        MXFP4Weight(packed, scales[:, :1].contiguous())
    with pytest.raises(ValueError, match=r"weight.scales must be \(N, K/32\)"):
        MXFP4Weight(packed, scales[:15].contiguous())
    with pytest.raises(ValueError, match="positive multiple of 32"):  # K = 48
        MXFP4Weight(packed[:, :24].contiguous(), scales[:, :1].contiguous())
    with pytest.raises(ValueError, match="positive multiple of 32"):
        MXFP4Weight(packed[:0], scales[:0])
    with pytest.raises(ValueError, match="is on"):
        MXFP4Weight(packed.to(OTHER_DEVICE), scales.to(OTHER_DEVICE))
    bad = scales.clone()
    bad[3, 1] = 255
    with pytest.raises(ValueError, match="255, e8m0's NaN"):
        MXFP4Weight(packed, bad)


def test_check_weight_reads_the_scales_only_when_asked():
    w = MXFP4Weight(*_parts())
    assert W.check_weight(w) == (16, 64)
    w.scales[0, 0] = 255  # changed after the weight was checked
    assert W.check_weight(w, check_values=False) == (16, 64)
    with pytest.raises(ValueError, match="check_weight: a scale is 255"):
        W.check_weight(w)
    with pytest.raises(TypeError, match="must be a kernels.w4a16.MXFP4Weight"):
        W.check_weight((w.packed, w.scales))


def test_quantize_mxfp4_refuses_bad_input():
    with pytest.raises(TypeError, match="quantize_mxfp4: w must be a float32/float16/bfloat16 tensor"):
        quantize_mxfp4(T.randn(4, 32).double())
    with pytest.raises(TypeError, match="quantize_mxfp4"):
        quantize_mxfp4(torch.ones(4, 32, dtype=torch.int32, device=kernels.DEVICE))
    with pytest.raises(TypeError, match="quantize_mxfp4"):
        quantize_mxfp4(np.ones((4, 32), dtype=np.float32))
    for shape in [(4, 48), (32,), (0, 32), (4, 0), (2, 4, 32)]:
        with pytest.raises(ValueError, match="positive multiple of 32"):
            quantize_mxfp4(torch.ones(shape, device=kernels.DEVICE))
    for bad in (float("nan"), float("inf")):
        x = T.randn(4, 32)
        x[2, 7] = bad
        with pytest.raises(ValueError, match="NaN or inf"):
            quantize_mxfp4(x)


def test_w4a16_matmul_refuses_bad_x():
    w = MXFP4Weight(*_parts())
    x = _x(3, 64, seed=21)
    for dt in (torch.float32, torch.float16):
        with pytest.raises(TypeError, match="w4a16_matmul: x must be bfloat16"):
            w4a16_matmul(x.to(dt), w)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        w4a16_matmul(x.float().cpu().numpy(), w)
    with pytest.raises(ValueError, match=r"x must be \(M, K\)"):
        w4a16_matmul(x[0], w)
    with pytest.raises(ValueError, match=r"x must be \(M, K\) with M >= 1"):
        w4a16_matmul(x[:0], w)
    with pytest.raises(ValueError, match="but the weight is"):
        w4a16_matmul(_x(3, 96, seed=22), w)
    with pytest.raises(ValueError, match="contiguous along K"):
        w4a16_matmul(_x(64, 3, seed=23).t(), w)
    with pytest.raises(ValueError, match="x is on"):
        w4a16_matmul(x.to(OTHER_DEVICE), w)
    with pytest.raises(TypeError, match="MXFP4Weight"):
        w4a16_matmul(x, dequantize_mxfp4(w))


def test_w4a16_matmul_refuses_bad_configs():
    w = MXFP4Weight(*_parts())
    x = _x(3, 64, seed=24)
    ok = dict(block_n=32, block_k=64, split_k=1, num_warps=4, num_stages=1, block_m=16)
    with pytest.raises(TypeError, match="W4A16Config"):
        w4a16_matmul(x, w, dict(ok))
    for change, msg in [(dict(block_n=48), "block_n must be a power of two >= 16"),
                        (dict(block_m=8), "block_m must be a power of two >= 16"),
                        (dict(block_k=96), "block_k must be a power of two"),
                        (dict(block_k=32), "block_k must be >= 64"),
                        (dict(split_k=0), "split_k must be a positive int"),
                        (dict(split_k=2.0), "split_k must be a positive int"),
                        (dict(num_warps=3), "num_warps must be 1, 2, 4 or 8"),
                        (dict(num_stages=0), "num_stages 1..8")]:
        with pytest.raises(ValueError, match=msg):
            w4a16_matmul(x, w, W4A16Config(**{**ok, **change}))


def test_lean_layer_matches_the_checked_wrapper():
    """W4A16Linear: the same products as w4a16_matmul, its output buffer reused per M (documented),
    a wrong input still refused with the wrapper's message, and no CUDA graph in the interpreter."""
    w = quantize_mxfp4(_scaled_weight(N_RAGGED, K_TAIL, seed=21))
    layer = W.W4A16Linear(w, CONFIGS["split-K 2"])
    for M in (1, 5):
        x = _x(M, K_TAIL, seed=22 + M)
        y = layer(x)
        _check(y, x, w, f"lean layer, M={M}")
        assert layer(_x(M, K_TAIL, seed=40)).data_ptr() == y.data_ptr()  # the same buffer, overwritten
    with pytest.raises(ValueError, match="W4A16Linear: x is"):
        layer(_x(2, K_TAIL + 32, seed=41))
    with pytest.raises(TypeError, match="bfloat16"):
        layer(_x(2, K_TAIL, seed=42).float())
    if not kernels.ON_GPU:
        with pytest.raises(RuntimeError, match="CUDA graphs need a GPU"):
            layer.graph(1)


@pytest.mark.parametrize("block_m,split_k", [(1, 1), (2, 3), (4, 2)])
def test_gemv_kernel(block_m, split_k):
    """The CUDA-core kernel for a few tokens: the same products for M of 1 to 5 (several token tiles when
    M > block_m), ragged N, a K tail, split-K; and weights whose blocks differ in scale, so a wrong
    block's scale would fail."""
    w = quantize_mxfp4(_scaled_weight(N_RAGGED, K_TAIL, seed=31))
    cfg = W4A16Config(block_n=32, block_k=64, split_k=split_k, num_warps=4, num_stages=1, block_m=block_m, gemv=True)
    for M in (1, 3, 5):
        x = _x(M, K_TAIL, seed=32 + M)
        _check(w4a16_matmul(x, w, cfg), x, w, f"gemv {cfg.label()}, M={M}")
    bad = MXFP4Weight(w.packed, w.scales.roll(1, dims=1).contiguous())
    with pytest.raises(AssertionError):
        _check(w4a16_matmul(x, w, cfg), x, bad, "gemv with another block's scales")


def test_gemv_configs_are_checked():
    w = quantize_mxfp4(_scaled_weight(64, 64, seed=35))
    x = _x(1, 64, seed=36)
    for cfg in (W4A16Config(32, 64, 1, 4, 1, 8, gemv=True), W4A16Config(32, 64, 1, 4, 1, 1, tma=True, gemv=True)):
        with pytest.raises(ValueError, match="gemv kernel takes block_m 1, 2 or 4"):
            w4a16_matmul(x, w, cfg)


def test_negated_view_of_x_is_refused():
    w = quantize_mxfp4(_scaled_weight(64, 64, seed=37))
    with pytest.raises(ValueError, match="pending negation"):
        w4a16_matmul(_x(2, 64, seed=38)._neg_view(), w)
