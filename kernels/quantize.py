"""Chapter 06 (groundwork): dynamic FP8 quantization in Triton, one program per row.

``quantize_rows(x)`` is the per-row recipe of ``kernels.fp8`` as a kernel: each program reads its row
twice, first for the largest magnitude (``amax``), then to write ``q = e4m3(x * 448 / amax)``; the
row's scale ``amax / 448`` goes to a separate float32 vector, so that ``q * scale`` approximates ``x``.
An all-zero row gets scale 1.

The rounding is done by the kernel itself, in float32 arithmetic, before the cast to ``tl.float8e4nv``:
round to nearest, ties to even mantissa, saturate at 448. The cast then only changes the storage
format of a value that is already representable. This gives the same bits in Triton's interpreter,
whose own float8 cast rounds and saturates differently (``kernels.fp8``), as on the GPU, and the same
bits as ``kernels.fp8.quantize`` computed from the format's definition (``tests/test_quantize.py``).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .operands import check_grid


@triton.jit
def round_to_e4m3(a):
    """``a`` (float32, >= 0) rounded to the nearest e4m3 value, ties to even, saturated at 448.

    Normal range (``a >= 2**-6``): keep the top 3 of float32's 23 mantissa bits, rounding the other 20
    to nearest even with integer arithmetic on the bits (a carry into the exponent is right: 1.9375
    rounds to 2.0). Subnormal range: the e4m3 step is 2**-9, so round ``a * 512`` to an integer with
    the float32 trick ``(t + 2**23) - 2**23`` (exact: ``t < 8``)."""
    bits = a.to(tl.int32, bitcast=True)
    rounded = (bits + 0x7FFFF + ((bits >> 20) & 1)) & -1048576  # -1048576 == ~0xFFFFF
    normal = rounded.to(tl.float32, bitcast=True)
    t = a * 512.0
    sub = ((t + 8388608.0) - 8388608.0) * 0.001953125
    q = tl.where(a >= 0.015625, normal, sub)
    return tl.minimum(q, 448.0)


@triton.jit
def quantize_rows_kernel(x_ptr, q_ptr, s_ptr, N, stride_xm, stride_qm, BLOCK_N: tl.constexpr):
    row = tl.program_id(0)
    x_row = x_ptr + row.to(tl.int64) * stride_xm
    # pass 1: the row's largest magnitude
    amax = tl.zeros([BLOCK_N], dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        offs = n0 + tl.arange(0, BLOCK_N)
        x = tl.load(x_row + offs, mask=offs < N, other=0.0).to(tl.float32)
        amax = tl.maximum(amax, tl.abs(x))
    m = tl.max(amax, axis=0)
    # x * (448 / amax) maps the largest magnitude onto 448; an all-zero row keeps scale 1
    safe = tl.where(m > 0, m, 448.0)  # an all-zero row: scale 1, and no division by zero
    inv = tl.math.div_rn(448.0, safe)
    tl.store(s_ptr + row, tl.math.div_rn(safe, 448.0))
    # pass 2: scale, round, saturate, then store as e4m3 (an exact conversion now)
    q_row = q_ptr + row.to(tl.int64) * stride_qm
    for n0 in range(0, N, BLOCK_N):
        offs = n0 + tl.arange(0, BLOCK_N)
        x = tl.load(x_row + offs, mask=offs < N, other=0.0).to(tl.float32)
        v = x * inv
        q = round_to_e4m3(tl.abs(v))
        q = tl.where(v < 0, -q, q)
        tl.store(q_row + offs, q.to(tl.float8e4nv), mask=offs < N)


def quantize_rows(x: torch.Tensor, block_n: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row dynamic FP8 (e4m3) quantization: ``(q, scale)`` with ``q`` ``(M, N)`` in
    ``torch.float8_e4m3fn`` and ``scale`` ``(M, 1)`` float32, so that ``q.float() * scale`` approximates
    ``x``. ``x``: ``(M, N)`` float32/float16/bfloat16 on ``kernels.DEVICE``, last dimension contiguous.

    Raises TypeError for another dtype, ValueError for a tensor that is not 2-D, not contiguous along
    its rows, empty, or that holds NaN or inf (a NaN or inf would become the row's amax and every
    scale and value of the row would be NaN: checked on the host, which costs one pass over ``x``),
    and for a ``block_n`` that is not a power of two from 16 to 4096."""
    name = "quantize_rows"
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: x must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise TypeError(f"{name}: x must be float32, float16 or bfloat16, got {x.dtype}")
    if x.dim() != 2 or x.numel() == 0:
        raise ValueError(f"{name}: x must be a non-empty 2-D tensor (rows, columns), got shape {tuple(x.shape)}")
    if x.stride(1) != 1:
        raise ValueError(f"{name}: x must be contiguous along its rows (strides {x.stride()}); pass x.contiguous()")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: x holds NaN or inf; its row's scale would be NaN")
    if block_n not in (16, 32, 64, 128, 256, 512, 1024, 2048, 4096):
        raise ValueError(f"{name}: block_n must be a power of two from 16 to 4096, got {block_n!r}")
    M, N = x.shape
    check_grid(name, (M,))
    q = torch.empty((M, N), dtype=torch.float8_e4m3fn, device=x.device)
    s = torch.empty((M, 1), dtype=torch.float32, device=x.device)
    quantize_rows_kernel[(M,)](x, q, s, N, x.stride(0), q.stride(0), BLOCK_N=block_n)
    return q, s
