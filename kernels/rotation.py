"""Chapter 07: Hadamard rotations along K, and what they do to FP4 (MXFP4, NVFP4) weight error.

A matmul ``y = x @ w.T`` (``x``: activations ``(M, K)``, ``w``: weights ``(N, K)``) does not change if
both operands are multiplied by the same orthonormal matrix ``R`` (``K x K``) along K:
``(x @ R) @ (w @ R).T = x @ R @ R.T @ w.T = x @ w.T``. What changes is the values the quantizer sees.
A Hadamard matrix mixes every value of a block with every other, so one large weight (an outlier
channel) is spread over the whole block: the block's largest magnitude shrinks relative to the rest,
and a shared block scale wastes fewer of e2m1's 8 magnitudes on it.

Here ``R`` is block-diagonal: one ``b x b`` rotation (``b`` a power of two, e.g. 16, 32, 64, 128) on
each run of ``b`` consecutive positions along K, so the rotation can be fused into a kernel that reads
K in blocks. ``hadamard(b)`` is Sylvester's construction (``H_2n = [[H, H], [H, -H]]``) divided by
``sqrt(b)``; ``random_hadamard(b, seed)`` multiplies its rows by random signs (a randomized Hadamard
transform, as QuaRot does: Ashkboos et al., 2024, arXiv:2404.00456). Both are orthonormal.

``fp4_matmul_errors`` measures, for a weight matrix and activations, the relative error of
``x @ w.T`` with the weights quantized to MXFP4 and NVFP4 (``kernels.fp4``), with and without the
rotation, against the float64 product (and, for scale, the error of bf16 inputs). The question it
lets a learner ask is the one studied on real language models in "Bridging the Gap Between Promise
and Performance for Microscaling FP4 Quantization" (Egiazarian et al., 2025, arXiv:2509.23202): in
post-training quantization to MXFP4 and NVFP4 they find that NVFP4's small groups (16 values) leave
the usual outlier-mitigation techniques little to gain, that MXFP4's power-of-two scales cost it much
accuracy through the error they add, and they recover part of the gap with rotations by block-wise
Hadamard transforms inside a GPTQ variant (MR-GPTQ). The numbers this module computes are for the
matrices you give it, nothing more.
"""
from __future__ import annotations

import operator

import numpy as np

from . import fp4

FORMATS = ("mxfp4", "nvfp4")


def _size(n, fn) -> int:
    if isinstance(n, bool):
        raise TypeError(f"{fn}: the size must be an integer, got {n!r}")
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"{fn}: the size must be an integer, got {type(n).__name__} {n!r}") from None
    if n < 1 or n & (n - 1):
        raise ValueError(f"{fn}: the size must be a power of two >= 1, got {n}")
    return n


def hadamard(n) -> np.ndarray:
    """The ``(n, n)`` orthonormal Hadamard matrix (float64; entries ``±1/sqrt(n)``, ``H @ H.T = I``),
    by Sylvester's construction: ``H_1 = [1]``, ``H_2m = [[H_m, H_m], [H_m, -H_m]]`` (then scaled).
    ``n`` must be a power of two (TypeError for a non-integer, ValueError otherwise)."""
    n = _size(n, "hadamard")
    h = np.ones((1, 1))
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h / np.sqrt(n)


def random_hadamard(n, seed=0) -> np.ndarray:
    """A randomized ``(n, n)`` Hadamard rotation: ``diag(s) @ hadamard(n)`` with random signs
    ``s = ±1`` drawn from ``numpy.random.default_rng(seed)``; ``seed=None``: plain ``hadamard(n)``.
    Orthonormal either way (``R @ R.T = I``)."""
    h = hadamard(_size(n, "random_hadamard"))
    if seed is None:
        return h
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=h.shape[0])
    return signs[:, None] * h


def _matrix(a, name, fn) -> np.ndarray:
    """``a`` as a finite 2-D float64 array; TypeError for a non-numeric dtype, ValueError otherwise."""
    if hasattr(a, "detach"):  # a torch tensor (on any device, any float dtype)
        a = a.detach().to("cpu").double().numpy()
    arr = np.asarray(a)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{fn}: {name} must hold real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{fn}: {name} must be 2-D, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{fn}: {name} holds NaN or inf")
    return arr


def rotate(a, r) -> np.ndarray:
    """``a`` (2-D, ``(rows, K)``) times the block-diagonal matrix with ``r`` (``(b, b)``) on its diagonal:
    each run of ``b`` consecutive values along K is multiplied by ``r`` (``row_block @ r``). Rotating
    both operands of ``x @ w.T`` with the same orthonormal ``r`` leaves the product unchanged. Returns
    float64; raises ValueError if ``r`` is not square or ``b`` does not divide K."""
    a = _matrix(a, "a", "rotate")
    r = np.asarray(r, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] != r.shape[1]:
        raise ValueError(f"rotate: the rotation must be square, got shape {r.shape}")
    rows, k = a.shape
    b = r.shape[0]
    if k % b:
        raise ValueError(f"rotate: K={k} (a's shape {a.shape}) is not a multiple of the rotation's size {b}")
    return (a.reshape(rows, k // b, b) @ r).reshape(rows, k)


def block_diagonal(r, K) -> np.ndarray:
    """The full ``(K, K)`` matrix that ``rotate(a, r)`` multiplies by (``a @ block_diagonal(r, K)``);
    for small K, to look at."""
    r = np.asarray(r, dtype=np.float64)
    b = r.shape[0]
    if K % b:
        raise ValueError(f"block_diagonal: K={K} is not a multiple of the rotation's size {b}")
    return np.kron(np.eye(K // b), r)


def to_bf16(a) -> np.ndarray:
    """``a`` rounded to bfloat16 (round to nearest even, as torch's cast), returned as float64."""
    import torch

    return torch.from_numpy(np.asarray(a, dtype=np.float32)).to(torch.bfloat16).double().numpy()


def fp4_dequantized(w, format) -> np.ndarray:
    """``w`` (``(N, K)``) quantized along K to ``"mxfp4"`` (32 per e8m0 scale) or ``"nvfp4"`` (16 per
    e4m3 scale, one tensor scale) and dequantized (float64), by ``kernels.fp4``."""
    if format == "mxfp4":
        return fp4.mxfp4_dequantize(*fp4.mxfp4(w, 32), 32)
    if format == "nvfp4":
        return fp4.nvfp4_dequantize(*fp4.nvfp4(w, 16), 16)
    raise ValueError(f"fp4_dequantized: format must be one of {FORMATS}, got {format!r}")


def relative_error(y, ref) -> float:
    """``||y - ref|| / ||ref||`` (Frobenius); ValueError if ``ref`` is all zero."""
    n = np.linalg.norm(ref)
    if n == 0:
        raise ValueError("relative_error: the reference is all zero, so a relative error is undefined")
    return float(np.linalg.norm(np.asarray(y) - ref) / n)


def outlier_weights(N=256, K=512, channels=4, factor=50.0, df=None, std=0.02, seed=0) -> np.ndarray:
    """A synthetic ``(N, K)`` weight matrix (float64): values with standard deviation ``std`` (normal,
    or Student's t with ``df`` degrees of freedom for heavier tails), and ``channels`` input channels
    (columns along K) multiplied by ``factor``, as when a layer's weights absorb an activation outlier
    channel. Not a trained model's weights: a stand-in with the two properties that matter here."""
    N, K, channels = int(N), int(K), int(channels)
    if N < 1 or K < 1 or not 0 <= channels <= K:
        raise ValueError(f"outlier_weights: need N, K >= 1 and 0 <= channels <= K, got {N}, {K}, {channels}")
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((N, K)) if df is None else rng.standard_t(df, (N, K))
    w *= std
    w[:, rng.choice(K, size=channels, replace=False)] *= factor
    return w


def fp4_matmul_errors(x, w, rotation_block=32, seed=0, formats=FORMATS, quantize_activations=False) -> dict:
    """Relative error of ``x @ w.T`` with ``w`` quantized to each FP4 format, with and without a
    block Hadamard rotation along K, against the float64 product.

    ``x``: activations ``(M, K)``; ``w``: weights ``(N, K)`` (NumPy arrays or torch tensors, real,
    finite); ``rotation_block``: the rotation's size ``b`` (a power of two dividing K, e.g. 32, 64,
    128); ``seed``: its random signs (``random_hadamard``; None: plain Hadamard); ``formats``: a subset of
    ``("mxfp4", "nvfp4")``; ``quantize_activations``: quantize ``x`` to the same format too (both
    operands in FP4, as on a tensor core that multiplies FP4 by FP4); by default only the weights.

    Returns ``{"bf16": e, "mxfp4": {"plain": e, "rotated": e}, "nvfp4": {...}, "rotation_block": b,
    "seed": seed}``, each ``e = ||y - x @ w.T|| / ||x @ w.T||`` (Frobenius, float64 arithmetic); "bf16"
    is the error of rounding ``x`` and ``w`` to bfloat16, for scale. "rotated" quantizes ``w @ R``
    (and ``x @ R``) with ``R`` block-diagonal (``rotate``) and multiplies ``(x @ R) @ deq(w @ R).T``.
    K must be a multiple of 32 for MXFP4 (16 for NVFP4) and of ``rotation_block``.

    Raises TypeError for a non-numeric input, ValueError for shapes that do not fit, NaN/inf, an
    unknown format, or a zero product. The method: Egiazarian et al., 2025 (arXiv:2509.23202) measure
    this gap on real LLMs and use block-wise Hadamard rotations with MXFP4 and NVFP4."""
    fn = "fp4_matmul_errors"
    x = _matrix(x, "x", fn)
    w = _matrix(w, "w", fn)
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"{fn}: x (M, K) and w (N, K) must share K, got x {x.shape} and w {w.shape}")
    formats = tuple(formats)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"{fn}: formats must be a non-empty subset of {FORMATS}, got {formats!r}")
    K = x.shape[1]
    for f in formats:
        need = 32 if f == "mxfp4" else 16
        if K % need:
            raise ValueError(f"{fn}: K={K} is not a multiple of {f}'s block of {need} (x {x.shape}, w {w.shape})")
    r = random_hadamard(_size(rotation_block, fn), seed)
    if K % r.shape[0]:
        raise ValueError(f"{fn}: K={K} is not a multiple of rotation_block={r.shape[0]}")
    ref = x @ w.T
    if not np.linalg.norm(ref):
        raise ValueError(f"{fn}: x @ w.T is all zero, so a relative error is undefined")
    out = {"bf16": relative_error(to_bf16(x) @ to_bf16(w).T, ref), "rotation_block": r.shape[0], "seed": seed}
    xr, wr = rotate(x, r), rotate(w, r)
    for f in formats:
        res = {}
        for name, (xa, wa) in (("plain", (x, w)), ("rotated", (xr, wr))):
            xq = fp4_dequantized(xa, f) if quantize_activations else xa
            res[name] = relative_error(xq @ fp4_dequantized(wa, f).T, ref)
        out[f] = res
    return out
