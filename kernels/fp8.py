"""Chapter 06 (groundwork): the FP8 formats and the scaling recipes, in plain NumPy.

Two 8-bit floating-point formats run on Hopper's tensor cores (the OCP "FP8 Formats for Deep Learning"
specification, and NVIDIA's H100 whitepaper):

* **e4m3** (``torch.float8_e4m3fn``): 1 sign bit, 4 exponent bits (bias 7), 3 mantissa bits. No
  infinities ("fn": finite): the exponent field 1111 is an ordinary binade except for its last code,
  S.1111.111, which is NaN. Largest finite value 448, smallest normal 2**-6, smallest subnormal 2**-9.
* **e5m2** (``torch.float8_e5m2``): 1 sign bit, 5 exponent bits (bias 15), 2 mantissa bits, IEEE-like:
  exponent 11111 holds ±inf (mantissa 0) and NaN. Largest finite value 57344, smallest subnormal 2**-16.

Everything here is computed from the bit layout itself (``FP8Format.decode``), not by asking torch,
so that the tests can hold torch's casts against an independent table. ``quantize`` rounds to the
nearest representable value, ties to the one with an even mantissa (what the hardware's conversion
does), and **saturates**: a value beyond the largest finite one becomes that value, never inf or NaN.
(Plain ``tensor.to(torch.float8_e4m3fn)`` does not saturate: an out-of-range value becomes NaN. Scaling
exists so that this never happens.)

Triton's interpreter casts float32 to ``tl.float8e4nv`` differently from the hardware: ties round up,
not to even, out-of-range values are not saturated (464 becomes NaN, 500 becomes 256), and a value
just above half the smallest subnormal becomes 0 (``tests/test_fp8.py``, which fails the day that is
fixed). A Triton kernel that must agree in both worlds clamps and rounds before its cast.

A *scaling recipe* says which values share one scale: the whole tensor, one row (activations) or one
column (weights), or a block (1×128 of activations, 128×128 of weights, as DeepSeek-V3 trains). For each
group, ``scale = amax / max_finite`` maps the group's largest magnitude onto the format's largest value;
the stored value is ``quantize(x / scale)`` and ``x ≈ q * scale``. An all-zero group gets scale 1.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class FP8Format:
    """An 8-bit float: ``exp_bits`` + ``man_bits`` = 7, one sign bit, exponent ``bias``; ``ieee``
    formats keep the top exponent for inf/NaN (e5m2), the others use it for numbers except NaN (e4m3fn)."""

    name: str
    exp_bits: int
    man_bits: int
    bias: int
    ieee: bool

    def decode(self, byte: int) -> float:
        """The value of one 8-bit code (0..255): ``nan``, ``±inf`` or a finite float."""
        if not 0 <= int(byte) <= 255:
            raise ValueError(f"{self.name}: a code is 0..255, got {byte!r}")
        byte = int(byte)
        sign = -1.0 if byte >> 7 else 1.0
        e = (byte >> self.man_bits) & ((1 << self.exp_bits) - 1)
        m = byte & ((1 << self.man_bits) - 1)
        top = (1 << self.exp_bits) - 1
        if self.ieee and e == top:
            return sign * math.inf if m == 0 else math.nan
        if not self.ieee and e == top and m == (1 << self.man_bits) - 1:
            return math.nan
        if e == 0:  # subnormal: no implicit leading 1
            return sign * m * 2.0 ** (1 - self.bias - self.man_bits)
        return sign * (1 + m / (1 << self.man_bits)) * 2.0 ** (e - self.bias)

    def values(self) -> np.ndarray:
        """Every finite value of the format, sorted, each once (+0 and -0 are one value); read-only."""
        return self._values

    @functools.cached_property
    def _values(self) -> np.ndarray:
        vals = {self.decode(b) for b in range(256)}
        out = np.array(sorted(v for v in vals if math.isfinite(v)), dtype=np.float64)
        out.setflags(write=False)
        return out

    @property
    def max_finite(self) -> float:
        return float(self._values[-1])

    @property
    def min_normal(self) -> float:
        return 2.0 ** (1 - self.bias)

    @property
    def min_subnormal(self) -> float:
        return 2.0 ** (1 - self.bias - self.man_bits)

    def spacing(self, x) -> np.ndarray:
        """The gap between ``|x|`` and the next larger representable value: it doubles with every
        binade (power of two), so the *relative* precision stays about ``2**-man_bits``."""
        a = np.abs(np.asarray(x, dtype=np.float64))
        e = np.floor(np.log2(np.maximum(a, self.min_normal)))
        return 2.0 ** (e - self.man_bits)


E4M3 = FP8Format("e4m3", 4, 3, 7, ieee=False)
E5M2 = FP8Format("e5m2", 5, 2, 15, ieee=True)
FORMATS = {"e4m3": E4M3, "e5m2": E5M2}


def fmt(name) -> FP8Format:
    """``"e4m3"``/``"e5m2"`` (or an ``FP8Format``) as an ``FP8Format``; raises ValueError otherwise."""
    if isinstance(name, FP8Format):
        return name
    try:
        return FORMATS[name]
    except (KeyError, TypeError):
        raise ValueError(f"FP8 format must be one of {sorted(FORMATS)}, got {name!r}") from None


def quantize(x, format="e4m3") -> np.ndarray:
    """Round ``x`` (any shape, float) to the nearest value of the format, ties to an even mantissa,
    saturating at ±``max_finite``. Returns float64 values that are exactly representable. NaN stays
    NaN; ±inf saturates like any value beyond the range (say so: a scaled tensor never holds inf)."""
    f = fmt(format)
    a = np.asarray(x, dtype=np.float64)
    sign = np.sign(a)
    mag = np.minimum(np.abs(a), f.max_finite)
    # the grid step at |x|: 2**(exponent - man_bits) for normals, the subnormal step below min_normal
    e = np.floor(np.log2(np.maximum(mag, f.min_normal)))
    step = 2.0 ** (e - f.man_bits)
    q = np.round(mag / step) * step  # numpy rounds halves to even: the even *multiple of step*
    q = np.minimum(q, f.max_finite)
    out = sign * q
    return np.where(np.isnan(a), np.nan, out)


RECIPES = ("tensor", "row", "column", "block")


def scales(x, recipe="row", format="e4m3", block=(1, 128)) -> np.ndarray:
    """One scale per group of ``x`` (a 2-D array): ``amax(group) / max_finite`` (1 for an all-zero
    group). ``recipe``: ``"tensor"`` (shape ``(1, 1)``), ``"row"`` (``(M, 1)``), ``"column"`` (``(1, N)``),
    ``"block"`` (``(ceil(M / bm), ceil(N / bn))`` for ``block=(bm, bn)``; a ragged last block uses the
    values it has). Raises ValueError for a bad recipe, block, shape, or NaN/inf in ``x``."""
    f = fmt(format)
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"scales: x must be 2-D (rows, columns), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("scales: x holds NaN or inf; a scale computed from it would be NaN or inf")
    if recipe not in RECIPES:
        raise ValueError(f"scales: recipe must be one of {RECIPES}, got {recipe!r}")
    mag = np.abs(a)
    if recipe == "tensor":
        amax = mag.max(initial=0.0).reshape(1, 1)
    elif recipe == "row":
        amax = mag.max(axis=1, keepdims=True, initial=0.0)
    elif recipe == "column":
        amax = mag.max(axis=0, keepdims=True, initial=0.0)
    else:
        bm, bn = _block(block)
        M, N = a.shape
        gm, gn = -(-M // bm), -(-N // bn)
        pad = np.zeros((gm * bm, gn * bn))
        pad[:M, :N] = mag
        amax = pad.reshape(gm, bm, gn, bn).max(axis=(1, 3))
    s = amax / f.max_finite
    return np.where(s > 0, s, 1.0)


def _block(block):
    try:
        bm, bn = (int(v) for v in block)
    except (TypeError, ValueError):
        raise ValueError(f"block must be (rows, columns), got {block!r}") from None
    if bm < 1 or bn < 1:
        raise ValueError(f"block must be positive, got {block!r}")
    return bm, bn


def expand(s, shape, recipe="row", block=(1, 128)) -> np.ndarray:
    """The per-element scale of an array of ``shape`` from ``scales(...)``'s result ``s``."""
    M, N = shape
    s = np.asarray(s, dtype=np.float64)
    if recipe == "block":
        bm, bn = _block(block)
        return np.repeat(np.repeat(s, bm, axis=0), bn, axis=1)[:M, :N]
    return np.broadcast_to(s, (M, N))


def quantize_with(x, recipe="row", format="e4m3", block=(1, 128)):
    """``(q, s)``: the scales of ``recipe`` and the quantized values ``q = quantize(x / scale)``, so that
    ``q * expand(s)`` approximates ``x``. ``q`` holds exactly representable values (float64)."""
    a = np.asarray(x, dtype=np.float64)
    s = scales(a, recipe, format, block)
    return quantize(a / expand(s, a.shape, recipe, block), format), s


def dequantize(q, s, recipe="row", block=(1, 128)) -> np.ndarray:
    """``q * scale``, each element with its group's scale."""
    q = np.asarray(q, dtype=np.float64)
    return q * expand(s, q.shape, recipe, block)


def relative_error(x, recipe="row", format="e4m3", block=(1, 128)) -> float:
    """``||dequantize(quantize_with(x)) - x|| / ||x||`` (Frobenius): what a recipe loses on ``x``."""
    a = np.asarray(x, dtype=np.float64)
    q, s = quantize_with(a, recipe, format, block)
    d = dequantize(q, s, recipe, block)
    n = np.linalg.norm(a)
    return float(np.linalg.norm(d - a) / n) if n else 0.0


def outlier_tensor(M=256, N=512, outlier=1e3, count=4, seed=0) -> np.ndarray:
    """A test tensor like an LLM activation: Gaussian values and ``count`` large ``outlier`` values in a
    few columns (activation outliers concentrate in a few channels), plus one all-zero row."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((M, N))
    cols = rng.choice(N, size=count, replace=False)
    rows = rng.choice(M, size=count, replace=False)
    x[rows, cols] = outlier * np.sign(rng.standard_normal(count))
    x[M // 2] = 0.0
    return x


def error_report(x, recipe="row", format="e4m3", block=(1, 128)) -> dict:
    """What a recipe does to ``x``: the relative error of every nonzero element (``|deq - x| / |x|``),
    the Frobenius relative error, the share of nonzero values that became 0 (below the format's
    smallest subnormal after scaling), and the scales. The widget of chapter 06 draws this."""
    a = np.asarray(x, dtype=np.float64)
    q, s = quantize_with(a, recipe, format, block)
    d = dequantize(q, s, recipe, block)
    nz = a != 0
    rel = np.abs(d[nz] - a[nz]) / np.abs(a[nz])
    n = np.linalg.norm(a)
    return dict(recipe=recipe, format=fmt(format).name, elementwise=rel,
                median=float(np.median(rel)) if rel.size else 0.0,
                frobenius=float(np.linalg.norm(d - a) / n) if n else 0.0,
                flushed=float(np.mean(q[nz] == 0)) if rel.size else 0.0, scales=s)


# ---------------------------------------------------------------- chapter 06's error widget
SCALINGS = {  # the widget's choices: name -> (recipe, block); "none" divides by nothing (scale 1)
    "none": (None, None),
    "tensor": ("tensor", None),
    "row": ("row", None),
    "column": ("column", None),
    "block 1x128": ("block", (1, 128)),
    "block 128x128": ("block", (128, 128)),
}

TENSOR_KINDS = ("gaussian", "outlier_rows", "outlier_columns")


def example_tensor(kind="outlier_columns", M=256, N=512, outlier=100.0, count=4, seed=0) -> np.ndarray:
    """A float64 ``(M, N)`` test tensor of one of three kinds (``TENSOR_KINDS``), standard-normal values
    plus, for the last two, large values of magnitude about ``outlier``:

    * ``"gaussian"``: nothing else;
    * ``"outlier_rows"``: ``count`` rows (tokens) each hold ``count`` values of magnitude ``outlier``
      (random signs), the rest of the tensor is untouched;
    * ``"outlier_columns"``: ``count`` whole columns (channels) are ``outlier`` times larger, as in
      the activations of large language models, where a few feature channels are systematically large
      (Dettmers et al., "LLM.int8()", arXiv:2208.07339).

    Raises ValueError for an unknown kind, a size below 1, ``count`` above the rows or columns, or an
    ``outlier`` that is not a finite positive number."""
    if kind not in TENSOR_KINDS:
        raise ValueError(f"example_tensor: kind must be one of {TENSOR_KINDS}, got {kind!r}")
    M, N, count = int(M), int(N), int(count)
    if M < 1 or N < 1:
        raise ValueError(f"example_tensor: M and N must be >= 1, got M={M}, N={N}")
    if not (math.isfinite(outlier) and outlier > 0):
        raise ValueError(f"example_tensor: outlier must be a finite positive number, got {outlier!r}")
    if kind != "gaussian" and not 1 <= count <= min(M, N):
        raise ValueError(f"example_tensor: count must be in [1, {min(M, N)}] for M={M}, N={N}, got {count}")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((M, N))
    if kind == "outlier_rows":
        for r in rng.choice(M, size=count, replace=False):
            cols = rng.choice(N, size=count, replace=False)
            x[r, cols] = outlier * rng.choice([-1.0, 1.0], size=count)
    elif kind == "outlier_columns":
        x[:, rng.choice(N, size=count, replace=False)] *= outlier
    return x


def error_summary(x, scaling="row", format="e4m3") -> dict:
    """What FP8 quantization with one of ``SCALINGS`` does to each element of ``x`` (2-D, finite).

    Returns a dict: ``dequantized`` (float64, the shape of ``x``), ``elementwise`` (``|deq - x| / |x|``
    of every nonzero element, flattened), ``frobenius`` (``||deq - x|| / ||x||``), and as fractions of
    the nonzero elements: ``flushed`` (became 0), ``saturated`` (beyond the format's largest finite
    value after scaling, so clipped to it), ``exact`` (no error at all); ``unit_roundoff``
    (``2**-(man_bits + 1)``: the largest relative error of a value in the normal range), ``scaling``,
    ``format``. With the recipes' ``amax / max_finite`` scales nothing saturates; with ``"none"`` (scale
    1) values beyond 448 (e4m3) or 57344 (e5m2) do. Raises ValueError for an unknown scaling or format,
    and what ``scales`` raises for a bad ``x``."""
    if scaling not in SCALINGS:
        raise ValueError(f"error_summary: scaling must be one of {list(SCALINGS)}, got {scaling!r}")
    f = fmt(format)
    a = np.asarray(x, dtype=np.float64)
    recipe, block = SCALINGS[scaling]
    kw = {"block": block} if block else {}
    if recipe is None:
        if a.ndim != 2:
            raise ValueError(f"error_summary: x must be 2-D (rows, columns), got shape {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError("error_summary: x holds NaN or inf")
        per = np.ones_like(a)
    else:
        per = expand(scales(a, recipe, f, **kw), a.shape, recipe, **kw)
    scaled = a / per
    q = quantize(scaled, f)
    d = q * per
    nz = a != 0
    rel = np.abs(d[nz] - a[nz]) / np.abs(a[nz])
    n = np.linalg.norm(a)
    # |x| / (amax / max_finite) can come out a rounding error above max_finite: that is not clipping
    beyond = np.abs(scaled[nz]) > f.max_finite * (1 + 4 * np.finfo(np.float64).eps)

    def share(mask):
        return float(np.mean(mask)) if mask.size else 0.0

    return dict(scaling=scaling, format=f.name, dequantized=d, elementwise=rel,
                frobenius=float(np.linalg.norm(d - a) / n) if n else 0.0,
                flushed=share(q[nz] == 0), saturated=share(beyond), exact=share(rel == 0),
                median=float(np.median(rel)) if rel.size else 0.0, unit_roundoff=2.0 ** -(f.man_bits + 1))
