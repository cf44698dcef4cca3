"""Testing helpers: random inputs, relative error against float64, tolerances by dtype, poisoning.

The rules (see the course's method): never test on zeros (they hide unwritten outputs and bad
indexing); compare against a float64 reference by ``||out - ref|| / ||ref||``; poison the output before a
run so that an element the kernel forgot to write is caught.
"""
from __future__ import annotations

import torch

from . import DEVICE, ON_GPU

# Relative-error bounds by operand dtype, for matmul-like kernels with fp32 accumulation.
# fp32 operands of ``tl.dot`` go through the tensor cores as tf32 on a GPU (10-bit mantissa): ~3e-4
# is typical at large K, and a 1x1x1 product can be off by up to ~2**-9 (1.2e-3 was measured on the
# H100), hence 3e-3. fp16/bf16: the output's own rounding dominates (bf16 keeps 8 bits).
TOLERANCE = {
    torch.float32: 3e-3,
    torch.float16: 2e-3,
    torch.bfloat16: 1e-2,
}


def tolerance(dtype: torch.dtype) -> float:
    try:
        return TOLERANCE[dtype]
    except KeyError:
        raise ValueError(f"no tolerance defined for {dtype}") from None


def randn(*shape, dtype=torch.float32, device=None, seed=None, scale=1.0):
    """Random normal tensor (never zeros), made in float32 then cast, on ``device`` (default: the world's)."""
    device = torch.device(device or DEVICE)
    gen = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    t = torch.randn(*shape, generator=gen, dtype=torch.float32, device=device) * scale
    return t.to(dtype=dtype)


def rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """``||out - ref|| / ||ref||`` in float64. NaN or inf anywhere in ``out`` gives ``inf``."""
    if out.shape != ref.shape:
        raise ValueError(f"shape mismatch: out {tuple(out.shape)} vs ref {tuple(ref.shape)}")
    o = out.detach().to(torch.float64)
    r = ref.detach().to(device=o.device, dtype=torch.float64)
    if not torch.isfinite(o).all():
        return float("inf")
    denom = torch.linalg.vector_norm(r).item()
    num = torch.linalg.vector_norm(o - r).item()
    return num / denom if denom > 0 else num


def matmul_reference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` in float64 from the exact values of the (possibly low-precision) inputs.

    Computed where the inputs live (float64 on a GPU is exact enough and far faster than the CPU at
    benchmark sizes)."""
    return a.detach().to(torch.float64) @ b.detach().to(torch.float64)


def poison(t: torch.Tensor) -> torch.Tensor:
    """Fill ``t`` in place with a value no kernel should produce (NaN for floats), and return it."""
    if t.is_floating_point():
        t.fill_(float("nan"))
    else:
        t.fill_(torch.iinfo(t.dtype).min)
    return t


def poisoned_empty(shape, dtype, device=None) -> torch.Tensor:
    return poison(torch.empty(shape, dtype=dtype, device=device or DEVICE))


def unwritten(t: torch.Tensor) -> torch.Tensor:
    """Boolean mask of elements still holding the poison (NaN)."""
    if t.is_floating_point():
        return torch.isnan(t)
    return t == torch.iinfo(t.dtype).min


def assert_close_matmul(out, a, b, dtype=None, label="kernel"):
    """Check a matmul result: every element written, relative error under the dtype's tolerance."""
    dtype = dtype or a.dtype
    missing = unwritten(out)
    if missing.any():
        idx = missing.nonzero()[0].tolist()
        raise AssertionError(
            f"{label}: {int(missing.sum())} of {out.numel()} outputs never written (first at {idx})"
        )
    err = rel_error(out, matmul_reference(a, b))
    tol = tolerance(dtype)
    if not err <= tol:
        raise AssertionError(f"{label}: relative error {err:.3e} > tolerance {tol:.0e} for {dtype}")
    return err


def ragged_shapes(rng, n, lo=1, hi=None):
    """``n`` random (M, N, K) triples, sizes in [lo, hi], mostly not multiples of any block size."""
    hi = hi or (512 if ON_GPU else 80)
    return [tuple(int(x) for x in rng.integers(lo, hi + 1, size=3)) for _ in range(n)]
