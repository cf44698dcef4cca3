"""What runs around a learner's function while it is graded.

``Sandbox`` (a context manager) does three things while the learner's code runs:

* a ``TorchDispatchMode`` refuses PyTorch *compute* ops (``mm``, ``mul``, ``sum``, ... see
  ``is_denied``), so ``torch.matmul``, ``@``, ``a.mm(b)`` or ``(a[:, :, None] * b).sum(1)`` cannot stand
  in for a kernel. Allocation, copy and view ops (``empty``, ``full``, ``copy_``, ``as_strided``, ...)
  still work: the wrapper needs them to make its output, and Triton's interpreter to move arguments;
* ``Tensor.numpy()``, ``__array__``, ``tolist()`` and ``__dlpack__`` are refused too, so the
  answer cannot hand the work to NumPy;
* every Triton launch is recorded, compiled (``JITFunction.run``) or interpreted
  (``InterpretedFunction.run``, ``TRITON_INTERPRET=1``), with which kernel ran, its grid (so a check
  can count the programs a launch started) and a snapshot of the tensors it was given, taken right
  after it finished. The check then asks that a kernel of the learner's own was launched, that the
  result's memory was passed to it, and that nothing changed that memory after the kernel ran.

Every refusal is recorded, so an answer that catches the error and falls back still scores zero.

``time_limit`` raises ``Timeout`` (a ``BaseException``, so ``except Exception`` does not swallow it)
after a number of seconds, through ``SIGALRM``: it stops Python-level loops, including a kernel
looping forever in the interpreter. The headless runner has a hard limit of its own on top.
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import threading
import traceback
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode

# Elementwise arithmetic and reductions: enough to build a matmul out of broadcasting.
_ARITHMETIC = {
    "add", "sub", "subtract", "rsub", "mul", "multiply", "div", "divide", "true_divide",
    "floor_divide", "addcmul", "addcdiv", "lerp", "neg", "pow", "square", "sqrt", "exp", "log",
    "reciprocal", "sum", "nansum", "mean", "prod", "cumsum", "cumprod", "logsumexp",
    "logcumsumexp", "std", "var", "std_mean", "var_mean", "norm", "linalg_vector_norm",
}
# Products of any kind, and reading a tensor element into a Python number (`.item()`, `float(t)`).
_PRODUCTS = re.compile(
    r"mm|mv$|^mv|matmul|dot|einsum|conv|linear|tensordot|kron|outer|^ger$|inner|trapz|trapezoid"
    r"|scatter_add|scatter_reduce|index_add|index_reduce|segment_reduce|matrix_power"
    r"|_local_scalar_dense"
)

# What an aten op is, in words a learner recognises.
_FRIENDLY = {
    "mm": "a matrix product: what torch.matmul, `@` and .mm() run",
    "bmm": "a batched matrix product (torch.bmm, einsum, `@` on 3-D tensors)",
    "addmm": "a matrix product (torch.addmm, F.linear)",
    "matmul": "torch.matmul / `@`",
    "dot": "torch.dot",
    "mul": "elementwise `*`",
    "sum": ".sum()",
    "_local_scalar_dense": "reading an element into Python (.item(), float(t), int(t))",
}


def is_denied(op_name: str) -> bool:
    """Whether the aten op ``op_name`` (e.g. ``"mm"``, ``"add_"``) counts as compute."""
    base = op_name.rstrip("_")  # in-place variants: add_ is add
    words = base.strip("_").split("_")  # _foreach_mul, index_add, floor_divide: any arithmetic word
    return any(w in _ARITHMETIC for w in words) or bool(_PRODUCTS.search(base))


class Refused(RuntimeError):
    """Raised inside the learner's code when it calls something the grader forbids."""


class Timeout(BaseException):
    """The check ran past its time limit."""


_HERE = os.path.dirname(os.path.abspath(__file__))
_LIB_DIRS = tuple(
    os.path.dirname(os.path.abspath(m.__file__)) + os.sep
    for m in (torch, __import__("triton"), contextlib)  # contextlib: the standard library
) + (_HERE + os.sep,)


def learner_frame(tb=None) -> str:
    """``line N: code`` of the innermost frame outside torch, triton, the stdlib and the grader."""
    frames = traceback.extract_tb(tb) if tb is not None else traceback.extract_stack()
    for fr in reversed(frames):
        path = os.path.abspath(fr.filename)
        if path.startswith(_LIB_DIRS) or fr.filename.startswith("<frozen"):
            continue
        where = "your code" if "ipykernel" in path or path.startswith(os.sep + "tmp") else os.path.basename(path)
        code = (fr.line or "").strip()
        return f"{where}, line {fr.lineno}" + (f": `{code}`" if code else "")
    return "an unknown place"


@dataclass
class Launch:
    kernel: str  # qualified name of the @triton.jit function
    module: str
    snapshots: list = field(default_factory=list)  # (storage data_ptr, uint8 copy of the storage)
    grid: tuple | None = None  # the launch grid as 3 ints (None if it could not be read)
    jit: object = None  # the launched JITFunction / InterpretedFunction (its ``.fn`` holds the source)

    @property
    def from_library(self) -> bool:
        return self.module.split(".")[0] in ("kernels", "triton", "grader")

    @property
    def programs(self) -> int | None:
        """How many programs the launch started (the product of the grid)."""
        if self.grid is None:
            return None
        return self.grid[0] * self.grid[1] * self.grid[2]

    def touches(self, result: torch.Tensor) -> bool:
        """Whether ``result``'s memory was one of the tensors this launch was given."""
        ptr = result.untyped_storage().data_ptr()
        return any(p == ptr for p, _ in self.snapshots)


def _grid3(grid):
    """A launch grid as 3 ints, or None."""
    try:
        dims = tuple(int(g) for g in grid)
    except Exception:
        return None
    if not 1 <= len(dims) <= 3:
        return None
    return dims + (1,) * (3 - len(dims))


def _storage_bytes(t: torch.Tensor) -> torch.Tensor:
    return torch.empty(0, dtype=torch.uint8, device=t.device).set_(t.untyped_storage())


class _DenyCompute(TorchDispatchMode):
    def __init__(self, sandbox):
        super().__init__()
        self.sandbox = sandbox

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if not self.sandbox.internal and is_denied(name):
            self.sandbox.refuse(f"torch's `{name}`" + (f" ({_FRIENDLY[name]})" if name in _FRIENDLY else ""))
        return func(*args, **(kwargs or {}))


_MISSING = object()
_TENSOR_ESCAPES = ("numpy", "__array__", "tolist", "__dlpack__")


class Sandbox:
    """``with Sandbox() as box: out = fn(a, b)``; then read ``box.refusals`` and ``box.launches``."""

    def __init__(self):
        self.refusals: list[str] = []
        self.launches: list[Launch] = []
        self.internal = 0  # > 0 while the sandbox itself runs torch ops (snapshots)
        self._undo = []

    # -- refusals ---------------------------------------------------------------------------------
    def refuse(self, what: str):
        msg = f"{what} at {learner_frame()}"
        self.refusals.append(msg)
        raise Refused(f"grader: {what} is not allowed while an answer is graded; "
                      "compute the result in your Triton kernel")

    def _patch(self, owner, name, value):
        old = owner.__dict__.get(name, _MISSING)
        setattr(owner, name, value)
        self._undo.append((owner, name, old))

    def _escape(self, name):
        sandbox = self

        def refused(*args, **kwargs):
            sandbox.refuse(f"Tensor.{name}() (handing the tensor to NumPy/Python)")

        return refused

    # -- launches ---------------------------------------------------------------------------------
    def _record(self, jit_fn, args, kwargs, grid=None):
        fn = getattr(jit_fn, "fn", None)
        launch = Launch(getattr(fn, "__qualname__", repr(jit_fn)), getattr(fn, "__module__", "") or "",
                        grid=_grid3(grid), jit=jit_fn)
        self.internal += 1
        try:
            tensors = [v for v in list(args) + list(kwargs.values()) if isinstance(v, torch.Tensor)]
            if any(t.is_cuda for t in tensors):
                torch.cuda.synchronize()
            for t in tensors:
                launch.snapshots.append((t.untyped_storage().data_ptr(), _storage_bytes(t).clone()))
        finally:
            self.internal -= 1
        self.launches.append(launch)

    def _hook_run(self, cls):
        original = cls.run
        sandbox = self

        def run(self_, *args, grid, warmup, **kwargs):
            seen = [grid]
            if callable(grid):  # grid(meta): Triton calls it with the bound arguments; keep its answer
                given = grid

                def grid(meta):
                    seen[0] = given(meta)
                    return seen[0]

            result = original(self_, *args, grid=grid, warmup=warmup, **kwargs)
            if not warmup:
                sandbox._record(self_, args, kwargs, None if callable(seen[0]) else seen[0])
            return result

        self._patch(cls, "run", run)

    def written_by_kernel(self, result: torch.Tensor) -> str | None:
        """``None`` if ``result``'s memory went through a launch and is unchanged since; else why not."""
        ptr = result.untyped_storage().data_ptr()
        for launch in reversed(self.launches):
            for p, snap in launch.snapshots:
                if p == ptr:
                    if result.is_cuda:
                        torch.cuda.synchronize()
                    now = _storage_bytes(result)
                    if now.shape != snap.shape or not torch.equal(now, snap):
                        return ("the returned tensor was changed after your last kernel that wrote it "
                                f"({launch.kernel}) finished: the result must come from the kernel itself")
                    return None
        return ("the returned tensor was never passed to a Triton kernel, so no kernel wrote it "
                "(return the output tensor your kernel stores into)")

    # -- context manager --------------------------------------------------------------------------
    def __enter__(self):
        from triton.runtime.interpreter import InterpretedFunction
        from triton.runtime.jit import JITFunction

        for cls in (JITFunction, InterpretedFunction):
            self._hook_run(cls)
        for name in _TENSOR_ESCAPES:
            self._patch(torch.Tensor, name, self._escape(name))
        self._mode = _DenyCompute(self)
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        try:
            self._mode.__exit__(*exc)
        finally:
            for owner, name, old in reversed(self._undo):
                if old is _MISSING:
                    delattr(owner, name)
                else:
                    setattr(owner, name, old)
            self._undo.clear()
        return False


@contextlib.contextmanager
def time_limit(seconds):
    """Raise ``Timeout`` in this (main) thread after ``seconds``; a no-op where SIGALRM is unusable."""
    usable = (seconds and hasattr(signal, "SIGALRM")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise Timeout(f"ran past the time limit of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def watch_calls(codes):
    """Record calls to any of the code objects ``codes`` (e.g. the library's own answer)."""
    seen = []
    codes = set(codes)

    def profile(frame, event, arg):
        if event == "call" and frame.f_code in codes:
            seen.append(frame.f_code.co_name)

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield seen
    finally:
        sys.setprofile(previous)
