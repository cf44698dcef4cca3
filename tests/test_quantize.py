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
