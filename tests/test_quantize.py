"""Per-row dynamic FP8 quantization in Triton (kernels.quantize): the same bits as the format's
definition (kernels.fp8) computed in float32, in the interpreter and on the GPU."""
import numpy as np
import pytest
import torch

import kernels
from kernels import fp8
from kernels import testing as T
from kernels.quantize import quantize_rows


def _reference(x: torch.Tensor):
    """What the kernel must produce, from kernels.fp8: float32 amax, 448 / amax and x * (448 / amax)
    in float32 (each correctly rounded), then round to nearest even e4m3 with saturation."""
    a = x.detach().to(torch.float32).cpu().numpy()
    amax = np.abs(a).max(axis=1, keepdims=True)
    inv = np.where(amax > 0, np.float32(448) / np.where(amax > 0, amax, 1).astype(np.float32), np.float32(1))
    v = (a * inv.astype(np.float32)).astype(np.float32)
    q = fp8.quantize(v.astype(np.float64), "e4m3")
    s = np.where(amax > 0, (amax / np.float32(448)).astype(np.float32), np.float32(1))
    return q, s


def _check(x, **kw):
    q, s = quantize_rows(x, **kw)
    assert q.dtype == torch.float8_e4m3fn and q.shape == x.shape and s.shape == (x.shape[0], 1)
    rq, rs = _reference(x)
    got = q.to(torch.float64).cpu().numpy()
    assert np.array_equal(got, rq), np.argwhere(got != rq)[:5]
    assert np.array_equal(s.cpu().numpy(), rs)
    # and it dequantizes to x within half an e4m3 step (relative 2**-4) of each value's magnitude
    d = q.to(torch.float64) * s.to(torch.float64)
    xd = x.to(torch.float64)
    assert torch.all((d - xd).abs() <= xd.abs() * 2**-4 + s.to(torch.float64) * 2**-9 * 1.01)
    return q, s


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_random_ragged_rows_with_outliers_and_zero_rows(dtype):
    M, N = kernels.pick(cpu=(13, 300), gpu=(1000, 4100))
    x = T.randn(M, N, dtype=torch.float32, seed=3)
    x[2, 5] = 3000.0  # an outlier
    x[4] = 0.0  # an all-zero row
    x[6] *= 1e-6  # a row of tiny values: its scale makes them ordinary
    x = x.to(dtype)
    q, s = _check(x, block_n=64)
    assert s[4, 0] == 1.0 and (q[4].to(torch.float32) == 0).all()
    assert q[2, 5].to(torch.float32) == 448.0


def test_exact_ties_round_to_even():
    # a row whose amax is 448 keeps its values unscaled: 1.0625 is a tie between 1.0 and 1.125
    x = torch.tensor([[448.0, 1.0625, 1.3125, -1.0625, 2**-10 * 3, 0.0]], device=kernels.DEVICE)
    q, _ = _check(x, block_n=16)
    assert q.to(torch.float32)[0, 1:5].tolist() == [1.0, 1.25, -1.0, 2**-9 * 2]


def test_bad_input_fails_clearly():
    x = T.randn(4, 32)
    with pytest.raises(TypeError, match="float32, float16 or bfloat16"):
        quantize_rows(x.to(torch.float64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        quantize_rows(np.ones((2, 2)))
    with pytest.raises(ValueError, match="2-D"):
        quantize_rows(T.randn(32))
    with pytest.raises(ValueError, match="contiguous along its rows"):
        quantize_rows(T.randn(32, 4).t())
    bad = x.clone()
    bad[1, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        quantize_rows(bad)
    with pytest.raises(ValueError, match="block_n"):
        quantize_rows(x, block_n=100)


# --------------------------------------------------------------------------------------------------
# per-tensor and blockwise quantization (quantize_tensor, quantize_blocks)
# --------------------------------------------------------------------------------------------------
from kernels.quantize import quantize_blocks, quantize_tensor  # noqa: E402

OTHER_DEVICE = "cpu" if kernels.ON_GPU else "meta"  # a device the kernels do not run on


def _reference_groups(x: torch.Tensor, rows: int, cols: int):
    """``_reference`` with one scale per ``rows x cols`` group (ragged groups at the edges use the values
    they have): float32 amax, 448 / amax and x * (448 / amax) each correctly rounded in float32, then
    kernels.fp8's round to nearest even with saturation. Returns ``(q, scale)``, float64 and float32
    numpy arrays, the scale of shape ``(ceil(M / rows), ceil(N / cols))``."""
    a = x.detach().to(torch.float32).cpu().numpy()
    M, N = a.shape
    gm, gn = -(-M // rows), -(-N // cols)
    pad = np.zeros((gm * rows, gn * cols), dtype=np.float32)
    pad[:M, :N] = np.abs(a)
    amax = pad.reshape(gm, rows, gn, cols).max(axis=(1, 3))
    safe = np.where(amax > 0, amax, np.float32(448)).astype(np.float32)
    inv = (np.float32(448) / safe).astype(np.float32)
    inv_full = np.repeat(np.repeat(inv, rows, axis=0), cols, axis=1)[:M, :N]
    v = (a * inv_full).astype(np.float32)
    return fp8.quantize(v.astype(np.float64), "e4m3"), (safe / np.float32(448)).astype(np.float32)


def _assert_same(q, s, rq, rs):
    got = q.to(torch.float64).cpu().numpy()
    assert np.array_equal(got, rq), np.argwhere(got != rq)[:5]
    assert np.array_equal(s.cpu().numpy(), rs), (s.cpu().numpy(), rs)


def _blocky(M, N, seed, dtype=torch.float32):
    """Random values whose magnitude changes by a decade from one 128-column block to the next and
    between the first 128 rows and the rest, with an outlier, an all-zero row, and a row of tiny values."""
    x = T.randn(M, N, seed=seed)
    col_block = torch.arange(N, device=x.device) // 128
    row_block = torch.arange(M, device=x.device) // 128
    x = x * 10.0 ** (col_block[None, :] - 1.0) * 10.0 ** (-2.0 * row_block[:, None])
    x[2, 5] = 3000.0
    x[4] = 0.0
    x[6] *= 1e-6
    return x.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_quantize_tensor_bits_and_scale(dtype):
    x = _blocky(13, 300, seed=21, dtype=dtype)
    for block in [(32, 128), (8, 64), (1, 512)]:  # one program; many programs folding their amax together
        q, s = quantize_tensor(x, block=block)
        assert q.dtype == torch.float8_e4m3fn and q.shape == x.shape
        assert s.dtype == torch.float32 and s.shape == (1, 1)
        rq, rs = _reference_groups(x, *x.shape)
        _assert_same(q, s, rq, rs)
        assert q.float().abs().max() == 448  # the largest magnitude maps onto e4m3's largest value


def test_quantize_tensor_all_zero_and_tiny_tensors():
    q, s = quantize_tensor(torch.zeros(5, 40, device=kernels.DEVICE), block=(2, 16))
    assert float(s) == 1.0 and (q.float() == 0).all()
    x = T.randn(3, 17, seed=22) * 1e-30  # scaled up to ordinary e4m3 values, not flushed to zero
    q, s = quantize_tensor(x)
    _assert_same(q, s, *_reference_groups(x, 3, 17))
    assert (q.float() != 0).float().mean() > 0.9


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_quantize_blocks_1x128_bits_and_column_major_scale(dtype):
    x = _blocky(13, 300, seed=23, dtype=dtype)
    x[9, 128:256] = 0.0  # one all-zero block in an otherwise ordinary row: scale 1 for that block only
    for rpp in (1, 4, 32):  # rows per program: 13 is a multiple of none but 1
        q, s = quantize_blocks(x, (1, 128), rows_per_program=rpp)
        assert q.dtype == torch.float8_e4m3fn and q.shape == x.shape
        assert s.dtype == torch.float32 and s.shape == (13, 3) and s.stride() == (1, 13)  # column-major
        rq, rs = _reference_groups(x, 1, 128)
        _assert_same(q, s, rq, rs)
        assert s[9, 1] == 1.0 and s[9, 0] != 1.0 and s[4].tolist() == [1.0, 1.0, 1.0]
        # every block of a row has its own scale: the row's largest value in each block maps onto 448
        nz = rs != 1
        assert (q.float().abs().reshape(13, -1).cpu()[:, :256].reshape(13, 2, 128).amax(-1)[nz[:, :2]] == 448).all()


def test_quantize_blocks_128x128_bits_and_scale_layout():
    x = _blocky(150, 300, seed=24)  # 2 x 3 blocks, both ragged at the far edges
    x[128:, 256:] = 0.0  # the last block entirely zero
    q, s = quantize_blocks(x, (128, 128))
    assert s.shape == (2, 3) and s.stride(0) == 1
    rq, rs = _reference_groups(x, 128, 128)
    _assert_same(q, s, rq, rs)
    assert s[1, 2] == 1.0 and len(set(s.flatten().tolist())) == 6  # one scale per block, all different
    q1, s1 = quantize_blocks(x[:1], (128, 128))  # one row: one block row
    assert s1.shape == (1, 3)
    _assert_same(q1, s1, *_reference_groups(x[:1], 128, 128))


def test_quantize_tensor_and_blocks_refuse_bad_input():
    x = T.randn(4, 32)
    for f in (quantize_tensor, quantize_blocks):
        name = f.__name__
        with pytest.raises(TypeError, match=f"{name}: x must be float32, float16 or bfloat16"):
            f(x.to(torch.float64))
        with pytest.raises(TypeError, match="torch.Tensor"):
            f(np.ones((2, 2), dtype=np.float32))
        with pytest.raises(ValueError, match="2-D"):
            f(T.randn(32))
        with pytest.raises(ValueError, match="non-empty"):
            f(x[:0])
        with pytest.raises(ValueError, match="contiguous along its rows"):
            f(T.randn(32, 4).t())
    for block in [(32, 100), (0, 128), (3, 16), (512, 256), 5, "ab", (1, 2, 3)]:
        with pytest.raises(ValueError, match="quantize_tensor: block must be two powers of two"):
            quantize_tensor(x, block=block)
    for block in [(1, 64), (2, 128), (128, 256), (128,)]:
        with pytest.raises(ValueError, match=r"quantize_blocks: block must be \(1, 128\) or \(128, 128\)"):
            quantize_blocks(x, block=block)
    for rpp in (0, 3, 256, "4"):
        with pytest.raises(ValueError, match="rows_per_program must be a power of two from 1 to 128"):
            quantize_blocks(x, rows_per_program=rpp)


def test_quantize_blocks_refuses_a_float_rows_per_program():
    """2.0 == 2 passes the membership test, then reaches Triton as a block size and fails there."""
    with pytest.raises(ValueError, match="rows_per_program must be a power of two from 1 to 128"):
        quantize_blocks(T.randn(4, 32), rows_per_program=2.0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_quantize_tensor_and_blocks_refuse_nan_and_inf(bad):
    x = T.randn(5, 200, seed=25)
    x[1, 3] = bad
    for f in (quantize_tensor, quantize_blocks):
        with pytest.raises(ValueError, match=f"{f.__name__}: x holds NaN or inf"):
            f(x)


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # inf * 0 in the interpreter's numpy
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("how", ["tensor", "blocks 1x128", "blocks 128x128"])
def test_check_finite_false_lets_nan_and_inf_spread(how, bad):
    """With ``check_finite=False`` the check and its pass over x are skipped; documented (quantize_rows'
    message, which quantize_tensor and quantize_blocks share): NaN/inf then spread to the scale and the
    values. So the group holding the bad value must not dequantize to finite numbers, while the other
    groups are quantized as usual."""
    x = T.randn(5, 200, seed=26)
    x[1, 3] = bad
    if how == "tensor":
        q, s = quantize_tensor(x, check_finite=False)
        per_element = s.expand(5, 200)
        bad_group = torch.ones(5, 200, dtype=torch.bool, device=x.device)
    else:
        rows = 1 if how == "blocks 1x128" else 128
        q, s = quantize_blocks(x, (rows, 128), check_finite=False)
        per_element = s.repeat_interleave(rows, 0)[:5].repeat_interleave(128, 1)[:, :200]
        bad_group = torch.zeros(5, 200, dtype=torch.bool, device=x.device)
        bad_group[1 if rows == 1 else slice(None), :128] = True
        good = ~bad_group
        clean = x.clone()
        clean[1, 3] = 0.0
        rq, rs = _reference_groups(clean, rows, 128)
        rq_t = torch.from_numpy(rq).to(x.device)
        assert torch.equal(q.double()[good], rq_t[good])  # the other groups are untouched
    deq = q.float() * per_element
    assert not torch.isfinite(deq[bad_group]).all(), (
        f"{how}: a {bad} in x gave its group the finite scale {per_element[1, 3].item()} and the value "
        f"{q[1, 3].float().item()}")


def test_quantize_tensor_and_blocks_refuse_x_on_another_device():
    x = torch.ones(4, 32, device=OTHER_DEVICE)
    for f in (quantize_tensor, quantize_blocks):
        for check_finite in (True, False):
            with pytest.raises(ValueError, match=f"{f.__name__}: x is on"):
                f(x, check_finite=check_finite)


def test_quantize_tensor_and_blocks_round_exact_ties_to_even():
    # a group whose amax is 448 keeps its values unscaled. Ties go to the even mantissa, below or above:
    # 1.0625 -> 1.0, 1.1875 -> 1.25, 1.4375 -> 1.5, 1.9375 -> 2.0 (a carry into the exponent), -1.3125 ->
    # -1.25, 400 -> 384 and 432 -> 448 (e4m3's top binade), subnormals 3 * 2**-10 -> 2 * 2**-9, 7 * 2**-10 -> 4 * 2**-9
    row = [448.0, 1.0625, 1.1875, 1.4375, 1.9375, -1.3125, 400.0, 432.0, 3 * 2**-10, 7 * 2**-10, 0.0] + [0.5] * 5
    want = [448.0, 1.0, 1.25, 1.5, 2.0, -1.25, 384.0, 448.0, 2 * 2**-9, 4 * 2**-9, 0.0] + [0.5] * 5
    x = torch.tensor([row, row[::-1]], device=kernels.DEVICE)
    for q, s in (quantize_tensor(x, block=(1, 16)), quantize_blocks(x), quantize_blocks(x, (128, 128))):
        assert (s == 1).all()
        assert q.float()[0].tolist() == want and q.float()[1].tolist() == want[::-1]


def test_tiny_groups_are_not_turned_into_nan():
    """448 / amax overflows float32 below amax ~ 1.3e-36: the quantizers floor amax at 2**-110, so such
    a group comes back as itself (a NaN here would be a wrong answer for finite input)."""
    x = torch.zeros(2, 256, device=kernels.DEVICE)
    x[0, :3] = torch.tensor([1e-37, 5e-38, -2.5e-38])
    x[1, 0] = 1.0
    for name, fn, expand in (
            ("rows", quantize_rows, lambda s: s.expand(2, 256)),
            ("tensor", quantize_tensor, lambda s: s.expand(2, 256)),
            ("blocks", lambda t: quantize_blocks(t, (1, 128)), lambda s: s.repeat_interleave(128, 1))):
        q, s = fn(x)
        assert torch.isfinite(q.float()).all(), name
        back = q.double() * expand(s).double()
        if name != "tensor":  # per tensor, 1e-37 is far below the scale of the row holding 1.0: it is 0
            assert torch.allclose(back[0, :3], x[0, :3].double(), rtol=2**-3), (name, back[0, :3])


def test_block_arguments_and_negated_views_are_refused():
    x = torch.ones(4, 256, device=kernels.DEVICE)
    for bad in (128, None, (1.0, 128), (True, 128)):
        with pytest.raises(ValueError, match="quantize_blocks: block must be"):
            quantize_blocks(x, bad)
    for bad in ((1.5, 128), ("32", "128"), (32,)):
        with pytest.raises(ValueError, match="quantize_tensor: block must be two powers of two"):
            quantize_tensor(x, bad)
    for fn in (quantize_rows, quantize_tensor, quantize_blocks):
        with pytest.raises(ValueError, match="pending negation"):
            fn(x._neg_view())
