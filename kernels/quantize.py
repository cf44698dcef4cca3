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

from . import DEVICE
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


AMAX_FLOOR = 2.0 ** -110  # below this, 448 / amax would overflow float32 (448 * 2**110 < 2**128)


@triton.jit
def safe_amax(m):
    """The amax a group's scale is made from: 448 for an all-zero group (scale 1, no division by zero),
    at least ``AMAX_FLOOR`` = 2**-110 for a tiny one (its 448 / amax would overflow float32 and turn the
    group into NaN; with the floor its values are quantized against a slightly larger scale, and
    ``q * scale`` still gives them back), NaN stays NaN."""
    return tl.where(m == 0, 448.0, tl.where(m < 7.703719777548943e-34, 7.703719777548943e-34, m))


@triton.jit
def _cast_e4m3(x, inv):
    v = x * inv
    q = round_to_e4m3(tl.abs(v))
    q = tl.where(v < 0, -q, q)
    return keep_nan_e4m3(v, q.to(tl.float8e4nv))


@triton.jit
def keep_nan_e4m3(v, q):
    """``q`` (float8e4nv) with e4m3's NaN (0x7F) wherever the float32 ``v`` is NaN: the rounding would
    saturate a NaN to 448, and a cast of NaN is not reliable in every world (Triton's interpreter
    writes 384), so the NaN is written as bits."""
    bits = q.to(tl.uint8, bitcast=True)
    return tl.where(v != v, 0x7F, bits).to(tl.uint8).to(tl.float8e4nv, bitcast=True)


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
    safe = safe_amax(m)  # an all-zero row: scale 1; a tiny one: see safe_amax
    inv = tl.math.div_rn(448.0, safe)
    tl.store(s_ptr + row, tl.math.div_rn(safe, 448.0))
    # pass 2: scale, round, saturate, then store as e4m3 (an exact conversion now)
    q_row = q_ptr + row.to(tl.int64) * stride_qm
    for n0 in range(0, N, BLOCK_N):
        offs = n0 + tl.arange(0, BLOCK_N)
        x = tl.load(x_row + offs, mask=offs < N, other=0.0).to(tl.float32)
        tl.store(q_row + offs, _cast_e4m3(x, inv), mask=offs < N)


def _check_x(name, x, check_finite=True):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: x must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise TypeError(f"{name}: x must be float32, float16 or bfloat16, got {x.dtype}")
    if x.dim() != 2 or x.numel() == 0:
        raise ValueError(f"{name}: x must be a non-empty 2-D tensor (rows, columns), got shape {tuple(x.shape)}")
    if x.stride(1) != 1:
        raise ValueError(f"{name}: x must be contiguous along its rows (strides {x.stride()}); pass x.contiguous()")
    if x.is_neg() or x.is_conj():
        raise ValueError(f"{name}: x is a view with a pending negation or conjugation (the kernel reads raw "
                         f"memory); pass x.resolve_neg().resolve_conj()")
    if x.device.type != torch.device(DEVICE).type:
        raise ValueError(f"{name}: x is on {x.device}; this world runs kernels on {DEVICE}")
    capturing = x.is_cuda and torch.cuda.is_current_stream_capturing()  # nothing may wait for the GPU then
    if check_finite and not capturing and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: x holds NaN or inf (check_finite=False skips this check and its pass over x: "
                         f"a NaN is then quantized to NaN and its group's scale stays finite; an inf makes its "
                         f"group's scale inf, itself NaN and the group's other values 0)")


def quantize_rows(x: torch.Tensor, block_n: int = 128,
                  check_finite: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row dynamic FP8 (e4m3) quantization: ``(q, scale)`` with ``q`` ``(M, N)`` in
    ``torch.float8_e4m3fn`` and ``scale`` ``(M, 1)`` float32, so that ``q.float() * scale`` approximates
    ``x``. ``x``: ``(M, N)`` float32/float16/bfloat16 on ``kernels.DEVICE``, last dimension contiguous.

    Raises TypeError for another dtype, ValueError for a tensor that is not 2-D, not contiguous along
    its rows, empty, or that holds NaN or inf (checked on the host, which costs one pass over ``x``;
    ``check_finite=False`` skips the check, and then a NaN is quantized to NaN while its row's scale
    stays finite, and an inf makes the row's scale inf, itself NaN and its other values 0), and for a ``block_n`` that is not a power of two from 16 to 4096."""
    name = "quantize_rows"
    _check_x(name, x, check_finite)
    if isinstance(block_n, bool) or not isinstance(block_n, int) or block_n not in (16, 32, 64, 128, 256, 512, 1024,
                                                                                    2048, 4096):
        raise ValueError(f"{name}: block_n must be a power of two from 16 to 4096, got {block_n!r}")
    M, N = x.shape
    check_grid(name, (M,))
    q = torch.empty((M, N), dtype=torch.float8_e4m3fn, device=x.device)
    s = torch.empty((M, 1), dtype=torch.float32, device=x.device)
    quantize_rows_kernel[(M,)](x, q, s, N, x.stride(0), q.stride(0), BLOCK_N=block_n)
    return q, s


@triton.jit
def amax_kernel(x_ptr, amax_ptr, M, N, stride_xm, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Largest magnitude of a ``BLOCK_M x BLOCK_N`` tile, folded into ``amax_ptr[0]`` with an atomic max
    (magnitudes are >= 0, so float32 order and the atomic's order agree)."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask = (rows[:, None] < M) & (cols[None, :] < N)
    x = tl.load(x_ptr + rows[:, None].to(tl.int64) * stride_xm + cols[None, :], mask=mask, other=0.0)
    tl.atomic_max(amax_ptr, tl.max(tl.max(tl.abs(x.to(tl.float32)), axis=1), axis=0))


@triton.jit
def scale_cast_kernel(x_ptr, q_ptr, amax_ptr, M, N, stride_xm, stride_qm,
                      BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """``q = e4m3(x * 448 / amax)`` with the one ``amax`` of the whole tensor."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    mask = (rows[:, None] < M) & (cols[None, :] < N)
    m = tl.load(amax_ptr)
    inv = tl.math.div_rn(448.0, safe_amax(m))
    x = tl.load(x_ptr + rows[:, None].to(tl.int64) * stride_xm + cols[None, :], mask=mask, other=0.0)
    tl.store(q_ptr + rows[:, None].to(tl.int64) * stride_qm + cols[None, :], _cast_e4m3(x.to(tl.float32), inv),
             mask=mask)


def quantize_tensor(x: torch.Tensor, block: tuple[int, int] = (32, 128),
                    check_finite: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-tensor dynamic FP8 (e4m3) quantization: ``(q, scale)``, ``q`` ``(M, N)`` float8_e4m3fn and
    ``scale`` ``(1, 1)`` float32 (``amax / 448``; 1 for an all-zero tensor), ``q.float() * scale`` ~ ``x``.

    Two kernels, because every value needs the amax of all of them: ``amax_kernel`` reads ``x`` once and
    folds each tile's amax into one float32 with an atomic max; ``scale_cast_kernel`` reads ``x`` again
    and writes ``q``. So the per-tensor recipe moves as many bytes as the per-row one (two reads of
    ``x``, one write of ``q``) and adds a launch. ``block``: the ``(rows, columns)`` tile of a program,
    powers of two. ``x`` and errors as ``quantize_rows``."""
    name = "quantize_tensor"
    _check_x(name, x, check_finite)
    bm, bn = _check_tile(name, block)
    M, N = x.shape
    grid = (triton.cdiv(M, bm), triton.cdiv(N, bn))
    check_grid(name, grid)
    amax = torch.zeros(1, dtype=torch.float32, device=x.device)
    q = torch.empty((M, N), dtype=torch.float8_e4m3fn, device=x.device)
    amax_kernel[grid](x, amax, M, N, x.stride(0), BLOCK_M=bm, BLOCK_N=bn)
    scale_cast_kernel[grid](x, q, amax, M, N, x.stride(0), q.stride(0), BLOCK_M=bm, BLOCK_N=bn)
    # the scale, as the kernels computed their 448 / amax (an all-zero tensor: scale 1)
    scale = torch.where(amax > 0, amax.clamp(min=AMAX_FLOOR), torch.full_like(amax, 448.0)) / 448.0
    return q, scale.reshape(1, 1)


@triton.jit
def quantize_blocks_kernel(x_ptr, q_ptr, s_ptr, M, N, stride_xm, stride_qm, stride_sm, stride_sk,
                           BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, PER_ROW: tl.constexpr):
    """One ``BLOCK_M x BLOCK_K`` tile: a scale per row of it (``PER_ROW``, the 1 x 128 recipe) or one
    for the whole tile (128 x 128), then the cast. Each value is read once."""
    pid_m = tl.program_id(0)
    pid_k = tl.program_id(1)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    mask = (rows[:, None] < M) & (cols[None, :] < N)
    x = tl.load(x_ptr + rows[:, None].to(tl.int64) * stride_xm + cols[None, :], mask=mask, other=0.0)
    x = x.to(tl.float32)
    if PER_ROW:
        m = tl.max(tl.abs(x), axis=1)  # (BLOCK_M,)
        safe = safe_amax(m)
        tl.store(s_ptr + rows * stride_sm + pid_k * stride_sk, tl.math.div_rn(safe, 448.0), mask=rows < M)
        q = _cast_e4m3(x, tl.math.div_rn(448.0, safe)[:, None])
    else:
        m = tl.max(tl.max(tl.abs(x), axis=1), axis=0)
        safe = safe_amax(m)
        tl.store(s_ptr + pid_m * stride_sm + pid_k * stride_sk, tl.math.div_rn(safe, 448.0))
        q = _cast_e4m3(x, tl.math.div_rn(448.0, safe))
    tl.store(q_ptr + rows[:, None].to(tl.int64) * stride_qm + cols[None, :], q, mask=mask)


def quantize_blocks(x: torch.Tensor, block: tuple[int, int] = (1, 128), rows_per_program: int = 32,
                    check_finite: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Blockwise dynamic FP8 (e4m3) quantization as DeepSeek-V3 trains: ``block=(1, 128)`` gives one
    scale per row per 128 columns (activations), ``block=(128, 128)`` one per 128 x 128 block (weights).
    Returns ``(q, scale)``: ``q`` ``(M, N)`` float8_e4m3fn and ``scale`` float32 of shape
    ``(ceil(M/r), ceil(N/128))`` for ``block=(r, 128)``, stored column-major (``scale.stride(0) == 1``)
    so that the matmul's K loop reads one contiguous column per step (``kernels.fp8_gemm``).
    A block that is all zeros gets scale 1. ``rows_per_program``: rows of a ``(1, 128)`` program, a power
    of two from 1 to 128. ``x`` and errors as ``quantize_rows``; ``ValueError`` for another ``block``."""
    name = "quantize_blocks"
    _check_x(name, x, check_finite)
    if not isinstance(block, (tuple, list)) or tuple(block) not in ((1, 128), (128, 128)) \
            or any(isinstance(v, bool) or not isinstance(v, int) for v in block):
        raise ValueError(f"{name}: block must be (1, 128) or (128, 128), got {block!r}")
    per_row = block[0] == 1
    bm = rows_per_program if per_row else 128
    if isinstance(bm, bool) or not isinstance(bm, int) or bm not in (1, 2, 4, 8, 16, 32, 64, 128):
        raise ValueError(f"{name}: rows_per_program must be a power of two from 1 to 128, got {bm!r}")
    M, N = x.shape
    grid = (triton.cdiv(M, bm), triton.cdiv(N, 128))
    check_grid(name, grid)
    s_rows = M if per_row else triton.cdiv(M, 128)
    scale = torch.empty((grid[1], s_rows), dtype=torch.float32, device=x.device).t()  # column-major
    q = torch.empty((M, N), dtype=torch.float8_e4m3fn, device=x.device)
    quantize_blocks_kernel[grid](x, q, scale, M, N, x.stride(0), q.stride(0), scale.stride(0), scale.stride(1),
                                 BLOCK_M=bm, BLOCK_K=128, PER_ROW=per_row)
    return q, scale


def _check_tile(name, block):
    if (not isinstance(block, (tuple, list)) or len(block) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) for v in block)):
        raise ValueError(f"{name}: block must be two powers of two (rows, columns), got {block!r}")
    bm, bn = block
    for v in (bm, bn):
        if v < 1 or v & (v - 1) or v > 4096 or bm * bn > 2**16:
            raise ValueError(f"{name}: block must be two powers of two, at most 65536 elements, got {block!r}")
    return bm, bn
