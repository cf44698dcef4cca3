"""Small helpers for writing kernels that run in both worlds."""
from __future__ import annotations

import functools
import types

import torch
import triton
import triton.language as tl

from .operands import SUPPORTED_FLOAT_DTYPES, check_inputs  # noqa: F401  (re-exported)


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
    """Raise a clear error for inputs a course matmul kernel cannot take (``kernels.operands.check_inputs``;
    the whole contract, ``out`` included, is ``kernels.operands.check_matmul``)."""
    check_inputs(name, a, b)
