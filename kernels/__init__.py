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
"""
from __future__ import annotations

import os
import sys

__all__ = ["WORLD", "DEVICE", "ON_GPU", "pick", "describe_world", "source"]


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
    # Triton was imported before us with the other setting; its kernels would run in the wrong world.
    try:
        from triton import knobs as _knobs  # triton >= 3.4 reads the variable lazily through knobs

        _knobs.runtime.interpret = not ON_GPU
    except Exception as exc:  # pragma: no cover - depends on the triton version
        raise RuntimeError(
            "triton was imported before `kernels` with a different TRITON_INTERPRET setting. "
            "Restart the Python kernel and `import kernels` first."
        ) from exc
os.environ["TRITON_INTERPRET"] = _want


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
