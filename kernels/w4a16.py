"""Chapter 07: a weight-only FP4 matmul (W4A16) for decode-sized batches on Hopper.

Hopper has no FP4 tensor cores, so FP4 pays there by *bytes*: when a handful of tokens (M = 1 ... 16)
meet a large weight (N = K = 8192), the matmul reads 134 MB of bf16 weights to do a few hundred
MFLOP, and its time is the time to read the weights. Stored as MXFP4 (two e2m1 values per byte, one
e8m0 scale per 32 values: 4.25 bits a weight) the same weight is 35.7 MB.

The kernel reads the packed weight tile, unpacks the two nibbles of each byte, turns each 4-bit code
into a bfloat16 value with integer operations (no table), multiplies it by its block's scale, and feeds
the bf16 tensor cores: ``y = x @ dequantize(W).T``, float32 accumulation.

Two layout choices make this fast:

* **Swap A and B.** ``tl.dot`` computes ``W_tile @ x_tile.T``, an ``(BLOCK_N, BLOCK_M)`` tile of
  ``y.T``: the weight is the operand with many rows, the few tokens the operand with few columns
  (Hopper's ``wgmma`` needs 64 rows per warpgroup in its first operand and takes as few as 8 columns
  in its second).
* **Split K.** With ``N = 8192`` and 64-row tiles there are 128 tiles for 132 SMs, each reading a
  whole 8192-long row of weights in sequence. ``SPLIT_K`` programs share a tile's K range and add
  their float32 partial sums into the output with atomic adds, so more loads are in flight at once.

The e2m1 -> number conversion (``e2m1_to_float``): a code ``s e1 e0 m`` is ``(-1)^s * 2^(e-1) *
(1 + m/2)`` for ``e > 0`` and ``(-1)^s * m/2`` for ``e = 0``. Written into float32's bits, ``e1 e0 m``
just below the exponent's lowest bit plus an exponent of 126 is that value for ``e > 0``; the two
``e = 0`` magnitudes (0 and 0.5) are picked separately. The e8m0 scale ``2^(s - 127)`` is float32's
bit pattern ``s << 23``: e8m0 is float32's exponent field, with the same bias.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from . import DEVICE, ON_GPU, world_mismatch
from .operands import check_grid

MX_BLOCK = 32  # values per MXFP4 scale (OCP Microscaling Formats v1.0)
_MIDPOINTS = (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0)  # between consecutive e2m1 magnitudes


# --------------------------------------------------------------------------------------------------
# the packed weight
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MXFP4Weight:
    """A weight ``(N, K)`` in MXFP4: ``packed`` ``(N, K/2)`` uint8, two e2m1 codes a byte, element
    ``2i`` in the low nibble (the OCP MX and ``torch.float4_e2m1fn_x2`` order); ``scales`` ``(N, K/32)``
    uint8, e8m0 (the block scale is ``2**(scales - 127)``). Made by :func:`quantize_mxfp4`, which checks
    it once; :func:`check_weight` checks one made elsewhere."""

    packed: torch.Tensor
    scales: torch.Tensor

    def __post_init__(self):
        check_weight(self, "MXFP4Weight")

    @property
    def shape(self) -> tuple[int, int]:
        return self.packed.shape[0], 2 * self.packed.shape[1]

    def nbytes(self) -> int:
        return self.packed.numel() + self.scales.numel()


def check_weight(w: MXFP4Weight, name: str = "check_weight", check_values: bool = True) -> tuple[int, int]:
    """``(N, K)`` of a valid ``MXFP4Weight``. Raises TypeError for a wrong type or dtype, ValueError for
    shapes that disagree, K not a multiple of 32, non-contiguous tensors, tensors on another device, or
    a scale of 255 (NaN in e8m0; the kernel would turn it into inf). ``check_values=False`` skips that
    last check, which reads the scales and so waits for the GPU: ``w4a16_matmul`` skips it, since a
    weight is checked once, when it is made (``MXFP4Weight.__post_init__``)."""
    if not isinstance(w, MXFP4Weight):
        raise TypeError(f"{name}: the weight must be a kernels.w4a16.MXFP4Weight (quantize_mxfp4 makes one), "
                        f"got {type(w).__name__}")
    for t, label in ((w.packed, "packed"), (w.scales, "scales")):
        if not isinstance(t, torch.Tensor) or t.dtype != torch.uint8:
            raise TypeError(f"{name}: weight.{label} must be a uint8 tensor")
        if t.dim() != 2 or not t.is_contiguous():
            raise ValueError(f"{name}: weight.{label} must be a contiguous 2-D tensor (got shape "
                             f"{tuple(t.shape)}, strides {t.stride()}); pass .contiguous()")
        if t.device.type != torch.device(DEVICE).type:
            raise ValueError(f"{name}: weight.{label} is on {t.device}; this world runs kernels on {DEVICE}")
    N, K = w.shape
    if K % MX_BLOCK or K == 0 or N == 0:
        raise ValueError(f"{name}: K = {K} must be a positive multiple of {MX_BLOCK} (one scale per 32 values)")
    if tuple(w.scales.shape) != (N, K // MX_BLOCK):
        raise ValueError(f"{name}: weight.scales must be (N, K/32) = {(N, K // MX_BLOCK)}, got {tuple(w.scales.shape)}")
    if check_values and bool((w.scales == 255).any()):  # reads the scales: waits for the GPU
        raise ValueError(f"{name}: a scale is 255, e8m0's NaN")
    return N, K


def quantize_mxfp4(w: torch.Tensor) -> MXFP4Weight:
    """Quantize a weight ``(N, K)`` (float32/float16/bfloat16, K a multiple of 32) to MXFP4 along K.

    Each block of 32 gets the scale ``2**(floor(log2(amax)) - 2)`` (OCP MX v1.0: e2m1's largest
    exponent is 2), values are divided by it and rounded to the nearest e2m1 value, ties to even,
    saturating at 6 (the block's largest value can reach ``8 * 2**-(...)``: clipped to 6, as the OCP
    recipe does); an all-zero block gets scale 1 (e8m0 127). The same codes as ``kernels.fp4.mxfp4``.
    Raises TypeError for another dtype, ValueError for a shape that is not 2-D with K a multiple of 32,
    or NaN/inf in ``w``."""
    name = "quantize_mxfp4"
    if not isinstance(w, torch.Tensor) or w.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise TypeError(f"{name}: w must be a float32/float16/bfloat16 tensor")
    if w.dim() != 2 or w.shape[1] % MX_BLOCK or w.numel() == 0:
        raise ValueError(f"{name}: w must be (N, K) with K a positive multiple of 32, got {tuple(w.shape)}")
    if not bool(torch.isfinite(w).all()):
        raise ValueError(f"{name}: w holds NaN or inf")
    N, K = w.shape
    b = w.float().reshape(N, K // MX_BLOCK, MX_BLOCK)
    amax = b.abs().amax(dim=-1)
    _, e = torch.frexp(amax)  # amax = m * 2**e, m in [0.5, 1): floor(log2(amax)) = e - 1
    exp = torch.where(amax > 0, e - 3, torch.zeros_like(e)).clamp(-127, 127)
    scaled = b / torch.ldexp(torch.ones_like(amax), exp)[..., None]
    mag = scaled.abs()
    idx = torch.zeros_like(mag, dtype=torch.uint8)
    for j, mid in enumerate(_MIDPOINTS):  # ties go to the even index (the code with mantissa bit 0)
        idx += (mag > mid if j % 2 == 0 else mag >= mid).to(torch.uint8)
    codes = (idx | (((scaled < 0) & (idx > 0)).to(torch.uint8) << 3)).reshape(N, K)  # no -0
    packed = (codes[:, 0::2] | (codes[:, 1::2] << 4)).contiguous()
    scales = (exp + 127).to(torch.uint8).contiguous()
    return MXFP4Weight(packed, scales)


def dequantize_mxfp4(w: MXFP4Weight, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """The weight as ``dtype`` ``(N, K)``, in torch (the reference the kernel is checked against)."""
    N, K = check_weight(w, "dequantize_mxfp4", check_values=False)
    from .fp4 import VALUES

    table = torch.tensor(VALUES, dtype=torch.float32, device=w.packed.device)
    codes = torch.stack((w.packed & 15, w.packed >> 4), dim=-1).reshape(N, K).long()
    scale = torch.ldexp(torch.ones(w.scales.shape, device=w.packed.device), w.scales.int() - 127)
    return (table[codes].reshape(N, K // MX_BLOCK, MX_BLOCK) * scale[..., None]).reshape(N, K).to(dtype)


# --------------------------------------------------------------------------------------------------
# the kernel
# --------------------------------------------------------------------------------------------------
@triton.jit
def e2m1_to_float(codes):
    """4-bit e2m1 codes (an integer tensor holding 0..15) -> their values as float32, exactly, with
    integer operations on float32's bits and no subnormal numbers on the way (see the module docstring).

    For a magnitude code ``e1 e0 m`` with ``e > 0``, the bits ``(e1 e0 m) << 22`` plus the exponent
    126 are the float32 ``2^(e-1) * (1 + m/2)``; the two codes with ``e = 0`` (0 and 0.5) are chosen
    separately; the sign goes to bit 31."""
    c = codes.to(tl.int32)
    mag = c & 7
    bits = tl.where(mag < 2, mag * 0x3F000000, (mag << 22) + (126 << 23))
    bits = bits | ((c & 8) << 28)
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def e2m1_to_bf16_bits(codes):
    """The same values as ``e2m1_to_float``, in bfloat16, by placing the code in bfloat16's bits
    (codes 1 and 9 become bfloat16 subnormals, then ``* 2**126``). Fewer operations, but it relies on
    the hardware keeping bfloat16 subnormals (it does: exact for every code on the H200), and Triton's
    interpreter does not compute bfloat16 arithmetic correctly, so it is used on a GPU only."""
    c = codes.to(tl.int16)
    bits = ((c & 7) << 6) | ((c & 8) << 12)
    return bits.to(tl.bfloat16, bitcast=True) * 8.507059173023462e37  # 2**126


@triton.jit
def mxfp4_pairs_to_bf16(packed, scale):
    """GPU only (inline PTX): bytes of two e2m1 codes -> ``(low, high)`` bfloat16 values times ``scale``
    (bfloat16, one per byte). Four bytes at a time: ``prmt`` spreads bytes 0,1 (and 2,3) into the two
    16-bit halves of a register; shifts and masks put each nibble's magnitude into bfloat16's bits 6..8
    and its sign into bit 15 (the value times 2**-126, as ``e2m1_to_bf16_bits``); two packed
    ``fma.rn.bf16x2`` multiply by 2**126 and by the scale."""
    return tl.inline_asm_elementwise(
        asm="""
        {
        .reg .b32 t0, t1, u, v, c126, nz;
        mov.b32 c126, 0x7E807E80;
        mov.b32 nz, 0x80008000;
        prmt.b32 t0, $4, 0, 0x4140;
        prmt.b32 t1, $4, 0, 0x4342;
        shl.b32 u, t0, 6; and.b32 u, u, 0x01C001C0; shl.b32 v, t0, 12; and.b32 v, v, 0x80008000; or.b32 $0, u, v;
        shl.b32 u, t1, 6; and.b32 u, u, 0x01C001C0; shl.b32 v, t1, 12; and.b32 v, v, 0x80008000; or.b32 $1, u, v;
        shl.b32 u, t0, 2; and.b32 u, u, 0x01C001C0; shl.b32 v, t0, 8; and.b32 v, v, 0x80008000; or.b32 $2, u, v;
        shl.b32 u, t1, 2; and.b32 u, u, 0x01C001C0; shl.b32 v, t1, 8; and.b32 v, v, 0x80008000; or.b32 $3, u, v;
        fma.rn.bf16x2 $0, $0, c126, nz; fma.rn.bf16x2 $0, $0, $5, nz;
        fma.rn.bf16x2 $1, $1, c126, nz; fma.rn.bf16x2 $1, $1, $6, nz;
        fma.rn.bf16x2 $2, $2, c126, nz; fma.rn.bf16x2 $2, $2, $5, nz;
        fma.rn.bf16x2 $3, $3, c126, nz; fma.rn.bf16x2 $3, $3, $6, nz;
        }
        """,
        constraints="=r,=r,=r,=r,r,r,r",
        args=[packed, scale],
        dtype=(tl.bfloat16, tl.bfloat16),
        is_pure=True,
        pack=4,
    )


@triton.jit
def e8m0_to_float(scales):
    """e8m0 scales (uint8) -> ``2**(s - 127)`` as float32: the byte is float32's exponent field (the
    same bias, 127). ``s = 0`` (2**-127, below float32's normal range) reads as 0."""
    return (scales.to(tl.int32) << 23).to(tl.float32, bitcast=True)


@triton.jit
def w4a16_kernel(x_ptr, wq_ptr, ws_ptr, y_ptr,  # x_ptr, wq_ptr: TMA descriptors made on the host if TMA
                 M, N, K,
                 stride_xm, stride_wn, stride_sn, stride_ym,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                 SPLIT_K: tl.constexpr, NUM_STAGES: tl.constexpr, UPCAST: tl.constexpr,
                 CONVERT: tl.constexpr = 0, TMA: tl.constexpr = False):
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    pid_m = tl.program_id(2)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # output features: rows of W
    toks = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # tokens: rows of x
    half = tl.arange(0, BLOCK_K // 2)
    blk = tl.arange(0, BLOCK_K // 32)
    kk = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    k_steps = tl.cdiv(K, BLOCK_K)
    steps = tl.cdiv(k_steps, SPLIT_K)  # this program's share of the K steps
    first = pid_k * steps
    last = tl.minimum(first + steps, k_steps)
    for ks in tl.range(first, last, num_stages=NUM_STAGES):
        k0 = ks * BLOCK_K
        row_ok = rows[:, None] < N
        # the packed weight tile (BLOCK_N, BLOCK_K / 2) and the activations (BLOCK_M, BLOCK_K)
        if TMA:  # one copy instruction per tile, no per-element addresses; zero-filled past the edges
            p = wq_ptr.load([pid_n * BLOCK_N, k0 // 2])
            x = x_ptr.load([pid_m * BLOCK_M, k0])
        else:
            p = tl.load(wq_ptr + rows[:, None] * stride_wn + (k0 // 2 + half)[None, :],
                        mask=row_ok & ((k0 // 2 + half)[None, :] < K // 2), other=0)
            x = tl.load(x_ptr + toks[:, None] * stride_xm + (k0 + kk)[None, :],
                        mask=(toks[:, None] < M) & ((k0 + kk)[None, :] < K), other=0.0)
        s = tl.load(ws_ptr + rows[:, None] * stride_sn + (k0 // 32 + blk)[None, :],
                    mask=row_ok & ((k0 // 32 + blk)[None, :] < K // 32), other=127)
        if CONVERT == 2:  # PTX: unpack, convert and scale two values per instruction
            sc = (s.to(tl.int16) << 7).to(tl.bfloat16, bitcast=True)  # 2**(s - 127) in bfloat16
            sc = tl.reshape(tl.broadcast_to(sc[:, :, None], (BLOCK_N, BLOCK_K // 32, 16)), (BLOCK_N, BLOCK_K // 2))
            lo, hi = mxfp4_pairs_to_bf16(p, sc)
            w = tl.reshape(tl.join(lo, hi), (BLOCK_N, BLOCK_K))  # byte i -> elements 2i, 2i+1
        else:
            codes = tl.reshape(tl.join(p & 15, p >> 4), (BLOCK_N, BLOCK_K))  # byte i -> elements 2i, 2i+1
            scale = tl.reshape(tl.broadcast_to(e8m0_to_float(s)[:, :, None], (BLOCK_N, BLOCK_K // 32, 32)),
                               (BLOCK_N, BLOCK_K))
            if CONVERT == 1:
                w = e2m1_to_bf16_bits(codes) * scale.to(tl.bfloat16)
            else:
                w = (e2m1_to_float(codes) * scale).to(tl.bfloat16)
        if UPCAST:  # Triton's interpreter: bf16 tl.dot is wrong there, float32 is exact
            acc = tl.dot(w.to(tl.float32), tl.trans(x.to(tl.float32)), acc)
        else:
            acc = tl.dot(w, tl.trans(x), acc)
    out = y_ptr + toks[None, :] * stride_ym + rows[:, None]  # acc is a tile of y.T
    mask = (rows[:, None] < N) & (toks[None, :] < M)
    if SPLIT_K == 1:
        tl.store(out, acc.to(y_ptr.dtype.element_ty), mask=mask)
    else:
        tl.atomic_add(out, acc, mask=mask)  # y is float32 here, zeroed before the launch


@triton.jit
def w4a16_gemv_kernel(x_ptr, wq_ptr, ws_ptr, y_ptr,
                      M, N, K,
                      stride_xm, stride_wn, stride_sn, stride_ym,
                      BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                      SPLIT_K: tl.constexpr, NUM_STAGES: tl.constexpr):
    """The same product without tensor cores, for a few tokens (``BLOCK_M`` of 1, 2 or 4): every decoded
    weight is multiplied by each token's activation on the CUDA cores, in float32. The low nibbles
    hold the even k and the high nibbles the odd k, so the activations are read as (even, odd) pairs
    and the weight tile never needs interleaving. Sums run over each 32-value block first; the block's
    scale multiplies the block's sum, once."""
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    pid_m = tl.program_id(2)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    toks = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    half = tl.arange(0, BLOCK_K // 2)
    blk = tl.arange(0, BLOCK_K // 32)
    acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    k_steps = tl.cdiv(K, BLOCK_K)
    steps = tl.cdiv(k_steps, SPLIT_K)
    first = pid_k * steps
    last = tl.minimum(first + steps, k_steps)
    for ks in tl.range(first, last, num_stages=NUM_STAGES):
        k0 = ks * BLOCK_K
        bmask = (rows[:, None] < N) & ((k0 // 2 + half)[None, :] < K // 2)
        p = tl.load(wq_ptr + rows[:, None] * stride_wn + (k0 // 2 + half)[None, :], mask=bmask, other=0)
        s = tl.load(ws_ptr + rows[:, None] * stride_sn + (k0 // 32 + blk)[None, :],
                    mask=(rows[:, None] < N) & ((k0 // 32 + blk)[None, :] < K // 32), other=127)
        w_even = e2m1_to_float(p & 15)  # (BLOCK_N, BLOCK_K / 2): elements k0 + 2i
        w_odd = e2m1_to_float(p >> 4)  # elements k0 + 2i + 1
        xmask = (toks[:, None] < M) & ((k0 // 2 + half)[None, :] < K // 2)
        xp = x_ptr + toks[:, None] * stride_xm + (k0 + 2 * half)[None, :]
        x_even = tl.load(xp, mask=xmask, other=0.0).to(tl.float32)  # (BLOCK_M, BLOCK_K / 2)
        x_odd = tl.load(xp + 1, mask=xmask, other=0.0).to(tl.float32)
        prod = w_even[:, None, :] * x_even[None, :, :] + w_odd[:, None, :] * x_odd[None, :, :]
        per_block = tl.sum(tl.reshape(prod, (BLOCK_N, BLOCK_M, BLOCK_K // 32, 16)), axis=3)
        acc += tl.sum(per_block * e8m0_to_float(s)[:, None, :], axis=2)
    out = y_ptr + toks[None, :] * stride_ym + rows[:, None]
    mask = (rows[:, None] < N) & (toks[None, :] < M)
    if SPLIT_K == 1:
        tl.store(out, acc.to(y_ptr.dtype.element_ty), mask=mask)
    else:
        tl.atomic_add(out, acc, mask=mask)


@dataclass(frozen=True)
class W4A16Config:
    """Tile shape and launch parameters of ``w4a16_kernel``."""

    block_n: int = 64
    block_k: int = 256
    split_k: int = 1
    num_warps: int = 4
    num_stages: int = 4
    block_m: int = 16
    tma: bool = False  # load the packed weight and the activations through TMA descriptors
    convert: str = "float32"  # one of CONVERSIONS
    gemv: bool = False  # CUDA cores instead of tensor cores (w4a16_gemv_kernel), block_m of 1, 2 or 4

    def label(self) -> str:
        return (f"{self.block_n}x{self.block_k} m{self.block_m} split{self.split_k} "
                f"w{self.num_warps} s{self.num_stages}" + (" tma" if self.tma else "")
                + ("" if self.convert == "float32" else f" {self.convert}") + (" gemv" if self.gemv else ""))


def default_config(M: int, N: int, on_gpu: bool | None = None) -> W4A16Config:
    """``w4a16_matmul``'s configuration when none is given: small tiles in the interpreter; on a GPU, for
    M <= 16 one 16-column token tile, 64-row weight tiles and split-K 2 (see the chapter's sweep)."""
    if not (ON_GPU if on_gpu is None else on_gpu):
        return W4A16Config(block_n=32, block_k=64, split_k=1, num_warps=4, num_stages=1, block_m=16)
    if M <= 16:
        return W4A16Config(64, 256, 2, 4, 4, 16)
    if M <= 64:
        return W4A16Config(64, 128, 1, 4, 4, 64)
    return W4A16Config(128, 128, 1, 8, 3, 128)


def _check_config(cfg, K, name):
    if not isinstance(cfg, W4A16Config):
        raise TypeError(f"{name}: config must be a kernels.w4a16.W4A16Config, got {type(cfg).__name__}")
    for f in ("block_n", "block_k") + (() if cfg.gemv else ("block_m",)):
        v = getattr(cfg, f)
        if not isinstance(v, int) or v < 16 or v & (v - 1):
            raise ValueError(f"{name}: config.{f} must be a power of two >= 16, got {v!r}")
    if cfg.gemv and (cfg.block_m not in (1, 2, 4) or cfg.tma or cfg.convert != "float32"):
        raise ValueError(f"{name}: the gemv kernel takes block_m 1, 2 or 4, pointer loads and the float32 "
                         f"conversion, got {cfg.label()}")
    if cfg.block_k < 64:
        raise ValueError(f"{name}: config.block_k must be >= 64 (two scale blocks), got {cfg.block_k}")
    if not (isinstance(cfg.split_k, int) and cfg.split_k >= 1):
        raise ValueError(f"{name}: config.split_k must be a positive int, got {cfg.split_k!r}")
    if cfg.convert not in CONVERSIONS or (cfg.convert != "float32" and not ON_GPU):
        raise ValueError(f"{name}: config.convert must be one of {CONVERSIONS} ('float32' only in Triton's "
                         f"interpreter), got {cfg.convert!r}")
    if cfg.num_warps not in (1, 2, 4, 8) or not (1 <= cfg.num_stages <= 8):
        raise ValueError(f"{name}: num_warps must be 1, 2, 4 or 8 and num_stages 1..8: {cfg}")
    return cfg


def check_w4a16(name, x, w):
    """Check ``x`` against the weight, on the host only; return ``(M, N, K)``."""
    N, K = check_weight(w, name, check_values=False)
    check_activations(name, x, (N, K), w.packed.device)
    return x.shape[0], N, K


def check_activations(name, x, weight_shape, device, rows_aligned=False, same_device=False):
    """Refuse activations ``x`` that a W4A16 kernel cannot read for a weight of ``weight_shape``
    ``(N, K)`` on ``device``: TypeError for another type or dtype than bfloat16, ValueError for a shape
    that is not ``(M, K)`` with M >= 1, rows not contiguous along K (and, with ``rows_aligned``, rows of
    more than one not 16-byte aligned), another device (type; with ``same_device`` the device itself),
    or a pending negation (the kernels read raw memory)."""
    N, K = weight_shape
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: x must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype != torch.bfloat16:
        raise TypeError(f"{name}: x must be bfloat16 (the activations), got {x.dtype}")
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"{name}: x must be (M, K) with M >= 1, got shape {tuple(x.shape)}")
    if x.shape[1] != K:
        raise ValueError(f"{name}: x is (M, K) = {tuple(x.shape)} but the weight is (N, K) = {(N, K)}")
    if x.stride(1) != 1 or (rows_aligned and x.shape[0] > 1 and x.stride(0) % 8):  # one row: its stride is unused
        raise ValueError(f"{name}: x must be contiguous along K{' with rows 16-byte aligned' if rows_aligned else ''} "
                         f"(strides {x.stride()}); pass x.contiguous()")
    if (x.device != device) if same_device else (x.device.type != device.type):
        raise ValueError(f"{name}: x is on {x.device}, the weight on {device}")
    if x.is_neg():
        raise ValueError(f"{name}: x is a view with a pending negation (the kernel reads raw memory); "
                         f"pass x.resolve_neg()")


def graph_of_call(layer, M: int, K: int, device, name: str):
    """``(x_static, run)``: a CUDA graph of ``layer(x)`` for ``M`` tokens of ``K`` values on ``device``
    (a layer whose call returns its own output buffer). Copy the input into ``x_static`` and call
    ``run()``, which replays the graph and returns that buffer. The first call (compile, allocate,
    warm up) runs outside the capture. Raises RuntimeError in Triton's interpreter (no CUDA graphs)."""
    if not ON_GPU:
        raise RuntimeError(f"{name}: CUDA graphs need a GPU")
    x = torch.zeros((M, K), dtype=torch.bfloat16, device=device)
    layer(x)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        y = layer(x)

    def run():
        g.replay()
        return y
    return x, run


CONVERSIONS = ("float32", "bf16 bits", "ptx")  # CONVERT 0, 1, 2: see e2m1_to_float, e2m1_to_bf16_bits,
# mxfp4_pairs_to_bf16. Only "float32" is exact in Triton's interpreter; the other two are GPU-only.


def launch(x, w: MXFP4Weight, y, cfg: W4A16Config):
    """Launch the kernel with no checks (``w4a16_matmul`` checks first): ``y`` is ``(M, N)``, bfloat16
    for ``split_k == 1``, zeroed float32 otherwise. The lean path a CUDA graph captures. With
    ``cfg.tma`` the packed weight and the activations are loaded through TMA descriptors made here on
    the host (rows 16-byte aligned: K a multiple of 32, base addresses 16-byte aligned)."""
    M, K = x.shape
    N = w.packed.shape[0]
    grid = (triton.cdiv(N, cfg.block_n), cfg.split_k, triton.cdiv(M, cfg.block_m))
    if cfg.gemv:
        return w4a16_gemv_kernel[grid](x, w.packed, w.scales, y, M, N, K, x.stride(0), w.packed.stride(0),
                                       w.scales.stride(0), y.stride(0), BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n,
                                       BLOCK_K=cfg.block_k, SPLIT_K=cfg.split_k, NUM_STAGES=cfg.num_stages,
                                       num_warps=cfg.num_warps)
    if cfg.tma:
        from triton.tools.tensor_descriptor import TensorDescriptor

        xa = TensorDescriptor(x, [M, K], [x.stride(0), 1], [cfg.block_m, cfg.block_k])
        wa = TensorDescriptor(w.packed, [N, K // 2], [w.packed.stride(0), 1], [cfg.block_n, cfg.block_k // 2])
    else:
        xa, wa = x, w.packed
    return w4a16_kernel[grid](xa, wa, w.scales, y, M, N, K, x.stride(0), w.packed.stride(0),
                              w.scales.stride(0), y.stride(0),
                              BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k,
                              SPLIT_K=cfg.split_k, NUM_STAGES=cfg.num_stages, UPCAST=not ON_GPU,
                              CONVERT=CONVERSIONS.index(cfg.convert), TMA=cfg.tma, num_warps=cfg.num_warps)


def w4a16_matmul(x: torch.Tensor, w: MXFP4Weight, config: W4A16Config | None = None) -> torch.Tensor:
    """``x @ dequantize_mxfp4(w).T`` with the weight read as MXFP4 and dequantized in registers.

    ``x``: ``(M, K)`` bfloat16 on ``kernels.DEVICE``, contiguous along K; ``w``: an ``MXFP4Weight`` of
    shape ``(N, K)``. Returns ``(M, N)`` bfloat16 (float32 accumulation; with ``split_k > 1`` partial
    sums are added in float32 with atomics, so the last bits can vary from run to run).
    Raises TypeError/ValueError as ``check_weight`` and for an ``x`` of another dtype, shape, layout or
    device, and for a bad ``config``."""
    name = "w4a16_matmul"
    M, N, K = check_w4a16(name, x, w)
    cfg = _check_config(config or default_config(M, N), K, name)
    if world_mismatch(w4a16_kernel):
        raise RuntimeError(world_mismatch(w4a16_kernel))
    check_grid(name, (triton.cdiv(N, cfg.block_n), cfg.split_k, triton.cdiv(M, cfg.block_m)))
    if cfg.split_k == 1:
        y = torch.empty((M, N), dtype=torch.bfloat16, device=x.device)
        launch(x, w, y, cfg)
        return y
    y = torch.zeros((M, N), dtype=torch.float32, device=x.device)
    launch(x, w, y, cfg)
    return y.to(torch.bfloat16)


def weight_bytes(N: int, K: int) -> int:
    """Bytes of an ``(N, K)`` MXFP4 weight: K/2 bytes of codes and K/32 of scales per row."""
    return N * (K // 2 + K // MX_BLOCK)


class W4A16Linear:
    """A bias-free linear layer ``y = x @ W.T`` with an MXFP4 weight, made for decode: everything that
    does not change between calls is checked and prepared once, when the layer is made, so a call does
    little more than launch the kernel.

    A Triton kernel launched from Python costs tens of microseconds of CPU time (binding and checking
    arguments, finding the compiled kernel), and a decode-sized matmul runs for about as long on the
    GPU. Two fixes, both here: a lean call (``layer(x)``: no per-call checks beyond the shape, outputs
    allocated once per M, TMA descriptors made once per input buffer), and a CUDA graph
    (``layer.graph(M)``) that replays the recorded launches with no Python in between.

    ``w``: an ``MXFP4Weight`` ``(N, K)``; ``config``: a ``W4A16Config`` (default: ``default_config``).
    Calls take ``x`` ``(M, K)`` bfloat16, contiguous, on the weight's device, and return ``(M, N)``
    bfloat16; the returned tensor is the layer's own buffer, overwritten by the next call with the same
    M (copy it to keep it). Raises as ``w4a16_matmul`` when made; a call with another K or dtype raises
    ValueError/TypeError."""

    def __init__(self, w: MXFP4Weight, config: W4A16Config | None = None):
        self.N, self.K = check_weight(w, "W4A16Linear")
        self.w = w
        self.config = config
        self._out = {}  # M -> (float32 accumulator or None, bf16 output, config)

    def _buffers(self, M, device):
        if M not in self._out:
            cfg = _check_config(self.config or default_config(M, self.N), self.K, "W4A16Linear")
            check_grid("W4A16Linear", (triton.cdiv(self.N, cfg.block_n), cfg.split_k, triton.cdiv(M, cfg.block_m)))
            acc = torch.zeros((M, self.N), dtype=torch.float32, device=device) if cfg.split_k > 1 else None
            self._out[M] = (acc, torch.empty((M, self.N), dtype=torch.bfloat16, device=device), cfg)
        return self._out[M]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if (x.dtype != torch.bfloat16 or x.dim() != 2 or x.shape[1] != self.K or x.stride(1) != 1
                or x.device != self.w.packed.device):
            check_w4a16("W4A16Linear", x, self.w)  # raises the full error
        acc, y, cfg = self._buffers(x.shape[0], x.device)
        if acc is None:
            launch(x, self.w, y, cfg)
        else:
            acc.zero_()
            launch(x, self.w, acc, cfg)
            y.copy_(acc)
        return y

    def graph(self, M: int):
        """A CUDA graph of one call for ``M`` tokens (GPU only): returns ``(x_static, run)``: copy the
        input into ``x_static`` and call ``run()``, which replays the graph and returns the output
        buffer. Raises RuntimeError in Triton's interpreter, which has no CUDA graphs."""
        return graph_of_call(self, M, self.K, self.w.packed.device, "W4A16Linear.graph")
