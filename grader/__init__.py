"""The course's grader.

In a notebook::

    import grader
    grader.check("naive_matmul", naive_matmul)   # prints PASS/FAIL and why, returns a Result

From a shell::

    python -m grader exercises/ch01_naive_matmul.ipynb [--json]   # runs the notebook headless, scores it
    python -m grader.generate [--check]                           # exercises/ from solutions/

``check`` imports torch and the ``kernels`` package on first use; importing ``grader`` itself is light,
so the headless runner does not pay for torch.
"""
from __future__ import annotations

from .registry import EXERCISES
from .report import Result, SubCheck

__all__ = ["check", "last", "EXERCISES", "Result", "SubCheck"]


def check(name, fn, **kwargs) -> Result:
    """Check exercise ``name`` with your function ``fn``: fresh random shapes, a float64 reference,
    PyTorch compute ops blocked while ``fn`` runs. Prints the verdict and returns a ``Result``
    (``.passed``, ``.status``, ``.message``). It never raises for a wrong answer."""
    from .checks import check as _check

    return _check(name, fn, **kwargs)


def last(name) -> Result | None:
    """The latest ``check`` result for ``name`` in this kernel."""
    from .checks import last as _last

    return _last(name)
