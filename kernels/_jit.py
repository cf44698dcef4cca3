"""Small helpers for writing kernels that run in both worlds."""
from __future__ import annotations

import functools
import types

import torch
import triton
import triton.language as tl

from . import DEVICE, ON_GPU

SUPPORTED_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def device_fn(py_fn, jit=None):
    """Compile a plain-Python integer function (e.g. a tile schedule) into a ``@triton.jit`` helper
    (or with another decorator of the same kind, e.g. Gluon's ``gluon.jit``).

    The function keeps its own source, so the Python and the device versions cannot drift. Triton's
    interpreter wants ``triton.language`` among the function's globals, so we give it a copy of the
    function whose globals also hold ``tl``.
    """
    g = dict(py_fn.__globals__)
    g.setdefault("tl", tl)
    f = types.FunctionType(py_fn.__code__, g, py_fn.__name__, py_fn.__defaults__, py_fn.__closure__)
    functools.update_wrapper(f, py_fn)
    return (jit or triton.jit)(f)


def check_matmul_inputs(a: torch.Tensor, b: torch.Tensor, name: str = "matmul") -> None:
    """Raise a clear error for inputs a course matmul kernel cannot take."""
    for label, t in (("a", a), ("b", b)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: {label} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 2:
            raise ValueError(f"{name}: {label} must be 2-D, got shape {tuple(t.shape)}")
        if t.dtype not in SUPPORTED_FLOAT_DTYPES:
            raise TypeError(
                f"{name}: {label} has dtype {t.dtype}; supported: float32, float16, bfloat16"
            )
        if t.numel() == 0:
            raise ValueError(f"{name}: {label} is empty (shape {tuple(t.shape)}); nothing to multiply")
        if any(s < 0 for s in t.stride()):
            raise ValueError(f"{name}: {label} has a negative stride {t.stride()}")
        # offsets are computed in int32 inside the kernels
        span = sum((n - 1) * s for n, s in zip(t.shape, t.stride())) + 1
        if span >= 2**31:
            raise ValueError(f"{name}: {label} spans {span} elements; the kernel indexes with int32 (< 2**31)")
    if a.shape[1] != b.shape[0]:
        raise ValueError(
            f"{name}: inner dimensions differ: a is {tuple(a.shape)}, b is {tuple(b.shape)} "
            f"(a.shape[1]={a.shape[1]} must equal b.shape[0]={b.shape[0]})"
        )
    if a.dtype != b.dtype:
        raise TypeError(f"{name}: a is {a.dtype} but b is {b.dtype}; cast one so they match")
    if a.device != b.device:
        raise ValueError(f"{name}: a is on {a.device} but b is on {b.device}")
    want = torch.device(DEVICE)
    if a.device.type != want.type:
        where = "a CUDA GPU" if ON_GPU else "the CPU (Triton's interpreter; no GPU here)"
        raise ValueError(
            f"{name}: tensors are on {a.device}, but this process runs kernels on {where}; "
            f"move them with .to(kernels.DEVICE)"
        )


def check_out(out, shape, dtype, device, name="matmul"):
    if out is None:
        return
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"{name}: out has shape {tuple(out.shape)}, expected {tuple(shape)}")
    if out.dtype != dtype:
        raise TypeError(f"{name}: out has dtype {out.dtype}, expected {dtype}")
    if out.device != device:
        raise ValueError(f"{name}: out is on {out.device}, expected {device}")
