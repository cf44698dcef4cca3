"""Chapter 07 (groundwork): FP4 (e2m1) with microscaling, in plain NumPy.

**e2m1**: 1 sign bit, 2 exponent bits (bias 1), 1 mantissa bit; no inf, no NaN. Its 8 magnitudes are
0, 0.5 (the one subnormal), 1, 1.5, 2, 3, 4, 6; with the sign, 16 codes (+0 and -0). Two values are
packed per byte; here the first value of a pair goes in the low nibble (``order="low_first"``, the
layout of PyTorch's ``float4_e2m1fn_x2`` and the OCP MX specification's examples).

Four bits hold too little range for a whole tensor, so the values share **block scales**
(microscaling):

* **MXFP4** (OCP Microscaling Formats v1.0): one power-of-two scale per 32 values, stored as e8m0 (an
  8-bit exponent). For a block whose largest magnitude is ``amax``, the scale is
  ``2**(floor(log2(amax)) - 2)``: 2 is e2m1's largest exponent, so the block's largest value lands in
  e2m1's top binade [4, 8), and values beyond 6 saturate to 6.
* **NVFP4** (NVIDIA Blackwell): one e4m3 scale per 16 values and one float32 scale for the tensor.
  The tensor scale ``amax_tensor / (448 * 6)`` keeps every block scale ``amax_block / 6 / tensor_scale``
  inside e4m3's range; the block scale is rounded to e4m3 (``kernels.fp8``).

Rounding is to nearest, ties to the even code (``quantize``), with saturation at ±6.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from . import fp8

# the 16 codes: bit 3 is the sign, bits 2-1 the exponent, bit 0 the mantissa
CODES = np.arange(16, dtype=np.uint8)


def decode(code: int) -> float:
    """The value of one 4-bit e2m1 code (0..15)."""
    if not 0 <= int(code) <= 15:
        raise ValueError(f"e2m1: a code is 0..15, got {code!r}")
    code = int(code)
    sign = -1.0 if code & 8 else 1.0
    e, m = (code >> 1) & 3, code & 1
    if e == 0:
        return sign * m * 0.5  # subnormal: 0 or 0.5
    return sign * (1 + m / 2) * 2.0 ** (e - 1)


VALUES = np.array([decode(c) for c in range(16)])  # indexed by code
MAGNITUDES = np.array(sorted({abs(v) for v in VALUES}))  # 0, 0.5, 1, 1.5, 2, 3, 4, 6
MAX = 6.0


def quantize_codes(x) -> np.ndarray:
    """The e2m1 code (uint8, 0..15) nearest to each value of ``x``, ties to the even code (the one
    whose mantissa bit is 0), saturating at ±6. Raises ValueError for NaN (e2m1 has no NaN)."""
    a = np.asarray(x, dtype=np.float64)
    if np.isnan(a).any():
        raise ValueError("e2m1 has no NaN: the input holds NaN")
    mag = np.minimum(np.abs(a), MAX)
    # distance to each magnitude; on an exact tie prefer the even code (mantissa bit 0)
    d = np.abs(mag[..., None] - MAGNITUDES)
    best = d.min(axis=-1, keepdims=True)
    codes_by_mag = np.array([_code_of(m) for m in MAGNITUDES], dtype=np.uint8)
    tie_rank = (codes_by_mag & 1).astype(np.float64)  # 0 for even mantissa
    pick = np.argmin(np.where(d <= best, tie_rank, np.inf), axis=-1)
    code = codes_by_mag[pick]
    neg = (a < 0) & (code != 0)
    return np.where(neg, code | 8, code).astype(np.uint8)


def _code_of(mag: float) -> int:
    return next(c for c in range(8) if VALUES[c] == mag)


def quantize(x) -> np.ndarray:
    """``x`` rounded to e2m1 values (float64), as ``quantize_codes`` rounds."""
    return VALUES[quantize_codes(x)]


def pack(codes, order: str = "low_first") -> np.ndarray:
    """Pack 4-bit codes two per byte along the last axis (its length must be even)."""
    c = np.asarray(codes, dtype=np.uint8)
    if c.shape[-1] % 2:
        raise ValueError(f"pack: the last dimension must be even, got {c.shape[-1]}")
    if (c > 15).any():
        raise ValueError("pack: codes are 0..15")
    first, second = c[..., 0::2], c[..., 1::2]
    if order == "low_first":
        return (first | (second << 4)).astype(np.uint8)
    if order == "high_first":
        return ((first << 4) | second).astype(np.uint8)
    raise ValueError(f"pack: order must be 'low_first' or 'high_first', got {order!r}")


def unpack(packed, order: str = "low_first") -> np.ndarray:
    """The inverse of ``pack``: bytes to codes, the last axis twice as long."""
    p = np.asarray(packed, dtype=np.uint8)
    lo, hi = p & 15, p >> 4
    if order == "low_first":
        pairs = (lo, hi)
    elif order == "high_first":
        pairs = (hi, lo)
    else:
        raise ValueError(f"unpack: order must be 'low_first' or 'high_first', got {order!r}")
    return np.stack(pairs, axis=-1).reshape(*p.shape[:-1], 2 * p.shape[-1])


def _blocks(a, size):
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"x must be 2-D (rows, K), got shape {a.shape}")
    if a.shape[1] % size:
        raise ValueError(f"K={a.shape[1]} is not a multiple of the block size {size}")
    if not np.isfinite(a).all():
        raise ValueError("x holds NaN or inf")
    return a.reshape(a.shape[0], a.shape[1] // size, size)


def mxfp4(x, block: int = 32):
    """MXFP4 along the last axis: ``(codes, exponents)``, codes ``(M, K)`` uint8 and one e8m0 exponent
    per block ``(M, K // block)`` (int: the scale is ``2**exponent``). An all-zero block gets exponent 0."""
    b = _blocks(x, block)
    amax = np.abs(b).max(axis=-1)
    exp = np.where(amax > 0, np.floor(np.log2(np.where(amax > 0, amax, 1))) - 2, 0).astype(np.int64)
    codes = quantize_codes(b / 2.0 ** exp[..., None])
    return codes.reshape(np.asarray(x).shape), exp


def mxfp4_dequantize(codes, exponents, block: int = 32) -> np.ndarray:
    c = np.asarray(codes)
    v = VALUES[c].reshape(c.shape[0], -1, block)
    return (v * 2.0 ** np.asarray(exponents)[..., None]).reshape(c.shape)


def nvfp4(x, block: int = 16):
    """NVFP4 along the last axis: ``(codes, block_scales, tensor_scale)``: codes ``(M, K)`` uint8, block
    scales ``(M, K // block)`` rounded to e4m3 values, one float tensor scale; value =
    ``e2m1 * block_scale * tensor_scale``. All-zero input: tensor scale 1."""
    b = _blocks(x, block)
    amax_t = np.abs(b).max(initial=0.0)
    tensor_scale = amax_t / (fp8.E4M3.max_finite * MAX) if amax_t > 0 else 1.0
    amax = np.abs(b).max(axis=-1)
    scales = fp8.quantize(amax / MAX / tensor_scale, "e4m3")
    safe = np.where(scales > 0, scales, 1.0)
    codes = quantize_codes(b / (safe[..., None] * tensor_scale))
    return codes.reshape(np.asarray(x).shape), scales, tensor_scale


def nvfp4_dequantize(codes, scales, tensor_scale, block: int = 16) -> np.ndarray:
    c = np.asarray(codes)
    v = VALUES[c].reshape(c.shape[0], -1, block)
    return (v * np.asarray(scales)[..., None] * tensor_scale).reshape(c.shape)


def bits_per_weight(block: int, scale_bits: int) -> float:
    """Storage per value: 4 bits plus the block's scale shared by ``block`` values (MXFP4: 4 + 8/32 =
    4.25; NVFP4: 4 + 8/16 = 4.5, the float32 tensor scale aside)."""
    return 4 + scale_bits / block



# ---------------------------------------------------------------- one block, for chapter 07's pictures
E8M0_BIAS = 127  # OCP MX v1.0: an e8m0 byte b stands for 2**(b - 127); b = 255 is NaN


@dataclasses.dataclass(frozen=True)
class QuantizedBlock:
    """One row of values quantized to MXFP4 or NVFP4, with every intermediate a picture needs.

    ``values``: the originals (float64, ``n`` of them); ``block``: values per block scale (32 or 16);
    ``scales``: the factor each block's e2m1 values are multiplied by (float64, ``n // block``; NVFP4:
    block scale times tensor scale); ``scale_bytes``: the stored 8-bit block scales (uint8: e8m0 for
    MXFP4, e4m3 for NVFP4); ``tensor_scale``: NVFP4's per-tensor scale, computed here from these values
    alone (1.0 for MXFP4); ``codes``: e2m1 codes (uint8, ``n``); ``packed``: two codes per byte, the
    first of each pair in the low nibble (uint8, ``n // 2``); ``dequantized``: ``e2m1 * scale``."""

    format: str
    values: np.ndarray
    block: int
    scales: np.ndarray
    scale_bytes: np.ndarray
    tensor_scale: float
    codes: np.ndarray
    packed: np.ndarray
    dequantized: np.ndarray

    @property
    def grid(self) -> np.ndarray:
        """``(n // block, 16)``: the value each of the 16 codes stands for in each block."""
        return self.scales[:, None] * VALUES[None, :]

    @property
    def block_of(self) -> np.ndarray:
        """The block index of each value."""
        return np.arange(self.values.size) // self.block


def _e4m3_byte(v: float) -> int:
    """The e4m3 code (0..126) of a non-negative e4m3 value."""
    hit = [b for b in range(127) if fp8.E4M3.decode(b) == v]
    if not hit:
        raise ValueError(f"{v!r} is not a non-negative e4m3 value")
    return hit[0]


def quantize_block(values, format: str = "mxfp4") -> QuantizedBlock:
    """Quantize a 1-D row of values (a length that is a multiple of 32, finite) to ``"mxfp4"`` (one e8m0
    scale per 32, ``mxfp4``) or ``"nvfp4"`` (one e4m3 scale per 16 and a tensor scale, ``nvfp4``), and
    keep every step (``QuantizedBlock``). The codes and scales are exactly those of ``mxfp4``/``nvfp4``
    on the row seen as a ``(1, n)`` tensor. Raises ValueError for another format, shape or length,
    NaN/inf, or an MXFP4 exponent outside e8m0's range (-127..127)."""
    a = np.asarray(values, dtype=np.float64)
    if format not in ("mxfp4", "nvfp4"):
        raise ValueError(f"quantize_block: format must be 'mxfp4' or 'nvfp4', got {format!r}")
    if a.ndim != 1 or a.size == 0 or a.size % 32:
        raise ValueError(f"quantize_block: values must be 1-D with a length that is a multiple of 32, "
                         f"got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("quantize_block: values hold NaN or inf")
    row = a[None, :]
    if format == "mxfp4":
        codes, exp = mxfp4(row, 32)
        exp = exp[0]
        if (exp < -E8M0_BIAS).any() or (exp > E8M0_BIAS).any():
            raise ValueError(f"quantize_block: a block exponent {exp.tolist()} is outside e8m0's -127..127")
        scales, block, ts = 2.0 ** exp, 32, 1.0
        scale_bytes = (exp + E8M0_BIAS).astype(np.uint8)
        deq = mxfp4_dequantize(codes, exp[None, :], 32)[0]
    else:
        codes, bs, ts = nvfp4(row, 16)
        bs = bs[0]
        scales, block = bs * ts, 16
        scale_bytes = np.array([_e4m3_byte(v) for v in bs], dtype=np.uint8)
        deq = nvfp4_dequantize(codes, bs[None, :], ts, 16)[0]
    codes = codes[0].astype(np.uint8)
    return QuantizedBlock(format, a, block, np.asarray(scales, dtype=np.float64), scale_bytes, float(ts),
                          codes, pack(codes), deq)


def example_block(seed=0, outlier=7.0, scale=1.0) -> np.ndarray:
    """32 values for the pictures (float64): ``scale`` times standard-normal values drawn from
    ``numpy.random.default_rng(seed)``, one of them replaced by ``scale * outlier``: a block whose
    largest value sets the shared scale. With ``outlier=7`` and ``scale=1``, MXFP4's power-of-two scale
    is 2**0, the 7 saturates to 6, and the small values round to 0 or 0.5."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(32)
    v[rng.integers(32)] = outlier
    return scale * v
