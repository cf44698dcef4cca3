"""Chapter 00: the smallest Triton kernel (vector add) and a setup check for learners."""
from __future__ import annotations

import importlib
import sys

import torch
import triton
import triton.language as tl

from . import DEVICE, ON_GPU, WORLD


@triton.jit
def add_kernel(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
    pid = tl.program_id(0)  # which program am I?
    offs = pid * BLOCK + tl.arange(0, BLOCK)  # the BLOCK elements this program owns
    mask = offs < n  # the last program may run past the end
    x = tl.load(x_ptr + offs, mask=mask)
    y = tl.load(y_ptr + offs, mask=mask)
    tl.store(out_ptr + offs, x + y, mask=mask)


def add(x: torch.Tensor, y: torch.Tensor, block: int = 1024) -> torch.Tensor:
    """``x + y`` for 1-D tensors, one Triton program per ``block`` elements."""
    if x.shape != y.shape or x.dim() != 1:
        raise ValueError(f"add: expected two 1-D tensors of one shape, got {tuple(x.shape)}, {tuple(y.shape)}")
    if x.dtype != y.dtype or x.device != y.device:
        raise ValueError("add: x and y must share dtype and device")
    if x.device.type != torch.device(DEVICE).type:
        raise ValueError(f"add: tensors are on {x.device}, kernels run on {DEVICE} here")
    out = torch.empty_like(x)
    n = x.numel()
    add_kernel[(triton.cdiv(n, block),)](x, y, out, n, BLOCK=block)
    return out


# Packages the course runs without: what each one is for.
OPTIONAL = {"manim": "only needed to re-render the animations (make animations); the videos are in chapters/media"}


def doctor() -> list[tuple[str, bool, str]]:
    """Check the learner's setup: ``(item, ok, detail)`` rows. Used by chapter 00's first cell."""
    rows = [("python >= 3.10", sys.version_info >= (3, 10), sys.version.split()[0])]
    for mod in ("torch", "triton", "numpy", "matplotlib", "ipywidgets", "manim"):
        try:
            m = importlib.import_module(mod)
            rows.append((mod, True, getattr(m, "__version__", "?")))
        except Exception as exc:  # pragma: no cover - depends on the machine
            if mod in OPTIONAL:  # the course runs without it; say what it is for
                rows.append((mod, True, f"not installed ({type(exc).__name__}): {OPTIONAL[mod]}"))
            else:
                rows.append((mod, False, f"{type(exc).__name__}: {exc}"))
    if ON_GPU:
        p = torch.cuda.get_device_properties(0)
        hopper = (p.major, p.minor) >= (9, 0)
        rows.append(("GPU", True, f"{p.name}, {p.multi_processor_count} SMs, compute capability "
                     f"{p.major}.{p.minor}" + ("" if hopper else " (chapters 04-07 need Hopper: sm_90)")))
    else:
        rows.append(("GPU", True, "none: kernels run in Triton's interpreter (fine for the whole course)"))
    try:
        x = torch.randn(3000, device=DEVICE)
        y = torch.randn(3000, device=DEVICE)
        ok = torch.equal(add(x, y), x + y)
        rows.append((f"a Triton kernel runs ({WORLD})", ok, "vector add matches torch" if ok else "WRONG RESULT"))
    except Exception as exc:  # pragma: no cover
        rows.append((f"a Triton kernel runs ({WORLD})", False, f"{type(exc).__name__}: {exc}"))
    rows.append(_matmul_row())
    return rows


def _matmul_row() -> tuple[str, bool, str]:
    """A small fp32 matmul through the course's tiled kernel (``tl.dot``), checked against float64."""
    item = f"a matmul kernel runs ({WORLD})"
    try:
        from .testing import matmul_reference, randn, rel_error, tolerance
        from .tiled import matmul_tiled

        a, b = randn(40, 24, seed=0), randn(24, 33, seed=1)
        err = rel_error(matmul_tiled(a, b), matmul_reference(a, b))
    except Exception as exc:  # pragma: no cover - depends on the machine
        return item, False, f"{type(exc).__name__}: {exc}"
    ok = err <= tolerance(torch.float32)
    return item, ok, f"tiled 40x33x24 fp32 vs float64: relative error {err:.1e}" + ("" if ok else ", WRONG RESULT")
