"""Tiles to Tensor Cores: the course's reusable kernels and helpers.

Import this package *before* anything that imports ``triton``. On import it decides, once, which of
the course's two worlds this process lives in:

* ``"gpu"``: a CUDA GPU is present, kernels are compiled by Triton and run on it at real sizes;
* ``"interpreter"``: no GPU, kernels run through Triton's interpreter (``TRITON_INTERPRET=1``) on the
  CPU at small sizes.

Triton reads ``TRITON_INTERPRET`` when it is imported, which is why this decision has to come first.
Set ``TTC_WORLD=interpreter`` to force the interpreter on a GPU machine (``TTC_WORLD=gpu`` on a machine
without a GPU is an error). Notebooks never set ``TRITON_INTERPRET`` themselves: they ask
``kernels.WORLD``, ``kernels.DEVICE`` and ``kernels.pick(cpu=..., gpu=...)``.

A kernel decorated with ``@triton.jit`` before this import ran was made for the other world;
``kernels.world_mismatch(kernel)`` says so. In the interpreter world the import refuses a Triton whose
interpreter cannot run with the installed numpy (``interpreter_numpy_problem``).
"""
from __future__ import annotations

import os
import sys

__all__ = ["WORLD", "DEVICE", "ON_GPU", "pick", "describe_world", "source", "world_mismatch",
           "interpreter_numpy_problem", "matmul"]


def _decide_world() -> str:
    forced = os.environ.get("TTC_WORLD", "").strip().lower()
    if forced not in ("", "gpu", "interpreter", "cpu"):
        raise ValueError(f"TTC_WORLD must be 'gpu' or 'interpreter', not {forced!r}")
    if forced == "cpu":
        forced = "interpreter"
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0") and forced != "gpu":
        return "interpreter"
    import torch  # torch does not import triton at import time

    has_gpu = torch.cuda.is_available()
    if forced == "gpu" and not has_gpu:
        raise RuntimeError("TTC_WORLD=gpu was asked for, but torch sees no CUDA GPU")
    if forced:
        return forced
    return "gpu" if has_gpu else "interpreter"


WORLD: str = _decide_world()
ON_GPU: bool = WORLD == "gpu"
DEVICE: str = "cuda" if ON_GPU else "cpu"

_want = "0" if ON_GPU else "1"
if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET", "0") != _want:
    # Triton was imported before us with the other setting. Switching its knob now is not enough:
    # Triton's own @triton.jit helpers (tl.zeros, tl.cdiv, ...) and every kernel decorated so far were
    # built for the other world, and fail later with "Cannot call @triton.jit'd outside of the scope of
    # a kernel" or "0 active drivers".
    _made = "compiled GPU code" if _want == "1" else "Triton's interpreter"
    raise RuntimeError(
        f"`triton` was imported before `kernels`, so Triton set itself up for {_made}, but this process "
        f"runs kernels {'in the interpreter (no GPU here)' if _want == '1' else 'compiled on the GPU'}. "
        "Restart the Python kernel (Kernel > Restart in JupyterLab) and run `import kernels` before "
        "anything that imports triton (the notebooks' first cell does)."
    )
os.environ["TRITON_INTERPRET"] = _want
# Triton 3.9 warns at every compile that its floating-point fusion default (on) will change; the course
# keeps it on, as Triton 3.6 (the GPU records) has it, and says so once here instead.
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")


def _version(text: str) -> tuple[int, ...]:
    """``"3.6.0+git1234"`` -> ``(3, 6, 0)``: the leading numbers of a version string."""
    import re

    return tuple(int(x) for x in re.findall(r"\d+", text.split("+")[0])[:3])


def interpreter_numpy_problem(world: str, triton_version: str, numpy_version: str) -> str | None:
    """Why Triton's interpreter cannot run with these versions, or ``None`` when it can.

    Triton < 3.7's interpreter converts one-element arrays to Python numbers in a way numpy >= 2.4
    refuses: every matmul then fails with "only 0-dimensional arrays can be converted to Python
    scalars" (triton-lang/triton#9171, fixed in 3.7). Compiled kernels (``world="gpu"``) are unaffected.
    """
    if world != "interpreter":
        return None
    t, n = _version(triton_version), _version(numpy_version)
    if not t or not n or t >= (3, 7) or n < (2, 4):
        return None
    return (f"Triton {triton_version}'s interpreter cannot run with numpy {numpy_version}: numpy >= 2.4 "
            f"refuses a conversion it makes, and every kernel fails with \"only 0-dimensional arrays can be "
            f"converted to Python scalars\". Fix: pip install \"numpy<2.4\" (or a Triton >= 3.7), then "
            f"restart Python.")


def _check_interpreter_numpy() -> None:
    from importlib import metadata

    def installed(name):  # the module already imported if there is one, else the installed package
        module = sys.modules.get(name)
        return getattr(module, "__version__", None) or metadata.version(name)

    try:
        versions = installed("triton"), installed("numpy")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source build; nothing to compare
        return
    problem = interpreter_numpy_problem(WORLD, *versions)
    if problem:
        raise RuntimeError(problem)


_check_interpreter_numpy()


def pick(cpu, gpu):
    """Return ``gpu`` when running compiled on a GPU, ``cpu`` in the interpreter.

    Use it for problem sizes: ``N = kernels.pick(cpu=128, gpu=4096)``.
    """
    return gpu if ON_GPU else cpu


def describe_world() -> str:
    """One line saying which world this process runs in and with what software."""
    import torch
    import triton

    if ON_GPU:
        name = torch.cuda.get_device_name()
        sms = torch.cuda.get_device_properties(0).multi_processor_count
        where = f"compiled Triton on {name} ({sms} SMs)"
    else:
        where = "Triton's interpreter on the CPU (TRITON_INTERPRET=1): correct answers, no speed"
    return f"world={WORLD}: {where}; torch {torch.__version__}, triton {triton.__version__}"


def source(kernel) -> str:
    """The Python source of a kernel or function (works for ``@triton.jit`` kernels in both worlds)."""
    import inspect
    import textwrap

    while hasattr(kernel, "fn"):  # JITFunction, InterpretedFunction, Autotuner, Heuristics wrap .fn
        kernel = kernel.fn
    return textwrap.dedent(inspect.getsource(kernel))


def world_mismatch(fn) -> str | None:
    """Whether the ``@triton.jit`` kernel ``fn`` was made for the other world; ``None`` if it is fine.

    ``@triton.jit`` decides when it runs: in the interpreter world it makes an ``InterpretedFunction``,
    on a GPU a ``JITFunction``. A kernel decorated in a process that imported ``triton`` before
    ``kernels`` (which then switched Triton to this process's world) keeps the other kind and fails when
    launched ("Cannot call @triton.jit'd outside of the scope of a kernel", or "0 active drivers").
    Wrappers such as ``triton.autotune``/``triton.heuristics`` are looked through (``.fn``). Gluon
    kernels and anything that is not a Triton kernel give ``None``.

    Returns a one-line message naming the kernel and the fix, for the caller to raise.
    """
    from triton.runtime.jit import JITFunction

    try:
        from triton.runtime.interpreter import InterpretedFunction
    except ImportError:  # pragma: no cover - every supported Triton has it
        InterpretedFunction = ()
    seen = 0
    while not isinstance(fn, (JITFunction, InterpretedFunction)) and hasattr(fn, "fn") and seen < 10:
        fn, seen = fn.fn, seen + 1
    if isinstance(fn, JITFunction) and not ON_GPU:
        if getattr(fn, "is_gluon", lambda: False)():  # Gluon never runs in the interpreter anyway
            return None
        made_for, runs_in = "compiled GPU code", "Triton's interpreter (no GPU)"
    elif InterpretedFunction and isinstance(fn, InterpretedFunction) and ON_GPU:
        made_for, runs_in = "Triton's interpreter", "compiled code on the GPU"
    else:
        return None
    name = getattr(getattr(fn, "fn", None), "__name__", None) or repr(fn)
    return (f"`{name}` was decorated with @triton.jit before `import kernels` ran, so it was made for "
            f"{made_for}, but this process runs {runs_in}: restart the Python kernel and run "
            f"`import kernels` first")


def matmul(a, b, out=None):
    """``a @ b`` with the course's best kernel for the shape, dtype and layout: see
    :func:`kernels.dispatch.matmul` (which this calls) for the operands, the result, the errors and the
    rule that picks the kernel."""
    from .dispatch import matmul as _matmul

    return _matmul(a, b, out=out)
