"""What runs around a learner's function while it is graded.

``Sandbox`` (a context manager) does five things while the learner's code runs:

* a ``TorchDispatchMode`` lets through only the PyTorch ops that make, view, copy, fill or cast
  tensors (``empty``, ``full``, ``copy_``, ``as_strided``, ``_to_copy``, ... see ``is_allowed``): the
  wrapper needs them to make its output, and Triton's interpreter to move arguments. Every other op
  (``mm``, ``mul``, ``sum``, ``eq``, ...) is refused with its name and the learner's line, so
  ``torch.matmul``, ``@`` or ``(a[:, :, None] * b).sum(1)`` cannot stand in for a kernel;
* ``Tensor.numpy()``, ``__array__``, ``tolist()`` and ``__dlpack__`` are refused too, so the
  answer cannot hand the work to NumPy that way;
* a launch of a learner's kernel is refused when its source reaches plain Python (``python_calls``:
  every name it uses must be Triton's language, a ``@triton.jit`` function, a builtin Triton compiles
  or a constant, and a call's target one of those by name or a method of a kernel value) or when it
  is handed a Python object (``argument_problem``): Triton's interpreter would run that Python on the
  CPU, a GPU does not compile it;
* every Triton launch is recorded, compiled (``JITFunction.run``) or interpreted
  (``InterpretedFunction.run``, ``TRITON_INTERPRET=1``): the launched function, its arguments, its grid
  as given (a callable too) and as started, what it returned (on a GPU the ``CompiledKernel``, whose
  ``.asm`` holds its TTIR/TTGIR), a copy of every storage it received taken right after it finished,
  and, for each storage, a copy taken just before the *first* launch that received it. Tensors count
  wherever a launch gets them: arguments, tuples of them, and the ``.base`` of a host-side
  ``TensorDescriptor`` or a ``triton.reinterpret`` wrapper. ``replay`` later restores those storages
  and launches everything again on new inputs: a result that did not come from A and B through the
  kernels (work done outside a kernel, in another thread, through ``ctypes``, or a copy of A taken
  before the launch) does not follow the new inputs. The replay launches through Triton's class-level
  ``run``, never an attribute of the kernel object, and a launch (or a nested ``@triton.jit`` call) of a
  kernel object that carries Python of the answer's own is refused (``kernel_object_problem``:
  ``kernel.run = my_run``, a subclass of the answer's own, a method of Triton's class replaced), as is
  any of the sandbox's hooks found replaced when the answer returns;
* in Triton's interpreter, the interpreter's builder is hooked while a launch runs
  (``triton.runtime.interpreter.InterpreterBuilder``: ``create_masked_load`` / ``create_masked_store``,
  which every pointer and descriptor access goes through, ``create_descriptor_load`` /
  ``create_descriptor_store``, ``create_dot``, the atomics; and ``InterpretedFunction.__call__``, which
  every nested ``@triton.jit`` call goes through). Each access (mask applied) must fall inside the views
  the launch was given, before it touches memory: an access past an edge is a ``Fault`` naming the
  operand, row and column (on a GPU it would crash or read garbage). ``tl.dot`` with a K below what
  Triton 3.6 compiles for a GPU is a ``Fault`` too. Per program (the builder's grid index) the trace
  keeps the addresses loaded and stored and the values stored, which descriptor and pointer accesses
  ran, and which ``@triton.jit`` helpers were called: the checks read *what ran*, not the source.
  Method names verified in Triton 3.6.0 and 3.9.0 (the positional arguments the hooks read are the
  same in both: ``ptrs, mask, other`` and ``ptrs, value, mask``).

``Sandbox.replay(dot_scale=2.0)`` launches again with every interpreted ``tl.dot`` returning
``acc + 2 * (a @ b)``: a result made of tl.dot's products doubles, one computed beside a ``tl.dot``
whose result goes unused does not. ``refuse_calls_into(modules, sandbox)`` makes every plain function of
the course's reference modules refuse to run while an answer runs (the FP8 and FP4 exercises).

With ``Sandbox(..., low_precision_casts=False)`` (the FP8 and FP4 exercises) a conversion on the host
between an 8-bit or 4-bit float dtype (``torch.float8_e4m3fn``, ``float8_e8m0fnu``, ``float4_e2m1fn_x2``,
...) and any other dtype is refused too: ``x.to(torch.float8_e4m3fn)`` or ``q.float()`` would do the
exercise's rounding or decoding in PyTorch. Allocating such a tensor, filling it and reinterpreting its
bytes (``.view(torch.uint8)``) stay allowed. ``read_only`` names the operands a kernel must not store
into (default A and B). Each program's trace also keeps the operand dtypes of its ``tl.dot`` calls, so a
check can tell FP8 tensor-core work from a product of tiles converted to a wider type first.

``dtype_guard`` and ``watch_files`` serve the plain-PyTorch exercises (packing FP4 codes): the first
refuses every op on a tensor of those 8-bit and 4-bit float dtypes, the second records calls into the
course's reference code or a library's (``kernels/fp4.py``, torchao). ``watch_files`` and ``watch_calls``
work through the profile hook; the ``Watched`` list they yield also notes (``.tampered``) an answer that set
the profile hook itself (``sys.setprofile``, a ``cProfile`` profiler), even if it put the grader's back.
``spawners`` lists the ways to start work in another thread or process (``threading.Thread.start``,
``_thread.start_new_thread`` and its aliases, ``multiprocessing``, ``os.fork``), which the checks refuse.

Every refusal is recorded, so an answer that catches the error and falls back still scores zero.

``time_limit`` raises ``Timeout`` (a ``BaseException``, so ``except Exception`` does not swallow it)
after a number of seconds, through ``SIGALRM``: it stops Python-level loops, including a kernel
looping forever in the interpreter. The headless runner has a hard limit of its own on top.
"""
from __future__ import annotations

import ast
import builtins
import contextlib
import functools
import os
import signal
import sys
import threading
import traceback
import types
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

# The aten ops an answer may run while it is graded: allocation, views, copies, fills, dtype casts and
# what Triton's interpreter and launcher need to move arguments. Nothing here computes with values.
_ALLOWED = frozenset({
    # allocation
    "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "empty_permuted",
    "full", "full_like", "new_full", "zeros", "zeros_like", "new_zeros", "ones", "ones_like", "new_ones",
    "arange", "scalar_tensor", "lift", "lift_fresh", "lift_fresh_copy",
    # copies, fills, casts
    "copy_", "copy", "_copy_from", "_copy_from_and_resize", "clone", "_to_copy", "fill_", "fill",
    "zero_", "detach", "detach_", "alias", "resolve_conj", "resolve_neg", "_pin_memory", "is_pinned",
    "record_stream",
    # views and storage
    "view", "_unsafe_view", "_reshape_alias", "as_strided", "as_strided_", "t", "t_", "transpose",
    "transpose_", "permute", "slice", "select", "expand", "unsqueeze", "unsqueeze_", "squeeze",
    "squeeze_", "split", "split_with_sizes", "unbind", "chunk", "narrow", "unfold", "set_", "resize_",
    "resize_as_", "_debug_has_internal_overlap", "is_same_size", "sym_size", "sym_stride", "sym_numel",
    "sym_storage_offset", "_has_compatible_shallow_copy_type",
})

# What an aten op is, in words a learner recognises.
_SDPA = "torch.nn.functional.scaled_dot_product_attention, PyTorch's fused attention"
_FRIENDLY = {
    "mm": "a matrix product: what torch.matmul, `@` and .mm() run",
    "bmm": "a batched matrix product (torch.bmm, einsum, `@` on 3-D tensors)",
    "addmm": "a matrix product (torch.addmm, F.linear)",
    "matmul": "torch.matmul / `@`",
    "dot": "torch.dot",
    "mul": "elementwise `*`",
    "add": "elementwise `+`",
    "sum": ".sum()",
    "_local_scalar_dense": "reading an element into Python (.item(), float(t), int(t))",
    "_scaled_mm": "torch._scaled_mm, PyTorch's FP8 matrix product",
    "_scaled_grouped_mm": "torch._scaled_grouped_mm, PyTorch's FP8 matrix product",
    "_softmax": "torch.softmax",
    "logsumexp": "torch.logsumexp",
    "_scaled_dot_product_flash_attention_for_cpu": _SDPA,
    "_scaled_dot_product_flash_attention": _SDPA,
    "_scaled_dot_product_efficient_attention": _SDPA,
    "_scaled_dot_product_cudnn_attention": _SDPA,
    "_scaled_dot_product_attention_math": _SDPA,
    "_fused_sdp_choice": _SDPA,
}


# Comparisons and predicates: a wrapper's own sanity checks (``assert not out.isnan().any()``). They give
# booleans, not products, and whatever an answer computes outside its kernels fails the replay anyway.
_PREDICATES = frozenset({
    "isnan", "isinf", "isfinite", "isposinf", "isneginf", "eq", "ne", "lt", "le", "gt", "ge", "equal",
    "any", "all", "logical_not", "logical_and", "logical_or", "is_nonzero", "allclose", "isclose",
})
_TENSOR_STR = os.path.join("torch", "_tensor_str.py")

# torch's 8-bit and 4-bit float dtypes (those this torch has): a conversion between one of them and another
# dtype is the work of the FP8/FP4 exercises
LOW_PRECISION_DTYPES = frozenset(
    getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz",
                                "float8_e8m0fnu", "float4_e2m1fn_x2") if hasattr(torch, n))
# aten ops that convert values from one dtype to another: (source, destination) positions
_CAST_OPS = {"_to_copy": "to", "copy_": "into", "copy": "into", "_copy_from": "from", "_copy_from_and_resize": "from"}


def cast_dtypes(op_name: str, args, kwargs) -> tuple | None:
    """``(source dtype, destination dtype)`` of an aten op that converts values (``_to_copy`` for
    ``.to()``/``.float()``, ``copy_`` for ``out.copy_(x)``, ...), or ``None`` for any other op."""
    kind = _CAST_OPS.get(op_name)
    kwargs = kwargs or {}
    try:
        if kind == "to":
            src = args[0].dtype
            return src, kwargs.get("dtype") or src
        if kind == "into":  # copy_(self, src): self is the destination
            return args[1].dtype, args[0].dtype
        if kind == "from":  # _copy_from(self, dst)
            return args[0].dtype, args[1].dtype
    except (IndexError, AttributeError):
        return None
    return None


def low_precision_cast(op_name: str, args, kwargs) -> str | None:
    """``"torch.float32 to torch.float8_e4m3fn"`` when the op converts values into or out of an 8-bit
    or 4-bit float dtype, else ``None``."""
    pair = cast_dtypes(op_name, args, kwargs)
    if pair is None or pair[0] == pair[1] or not (set(pair) & LOW_PRECISION_DTYPES):
        return None
    return f"{pair[0]} to {pair[1]}"


def _printing() -> bool:
    """Whether torch is formatting a tensor for ``print``/``repr`` (it computes to lay out the digits)."""
    frame = sys._getframe(2)
    for _ in range(40):
        if frame is None:
            return False
        if frame.f_code.co_filename.endswith(_TENSOR_STR):
            return True
        frame = frame.f_back
    return False


def is_allowed(op_name: str) -> bool:
    """Whether the aten op ``op_name`` (e.g. ``"empty"``, ``"copy_"``) may run while an answer is graded."""
    return op_name in _ALLOWED


def is_denied(op_name: str) -> bool:
    """Whether the aten op ``op_name`` (e.g. ``"mm"``, ``"add_"``) is refused while an answer is graded:
    everything that is not allocation, a view, a copy, a fill or a cast."""
    return not is_allowed(op_name)


class Refused(RuntimeError):
    """Raised inside the learner's code when it calls something the grader forbids."""


class Fault(RuntimeError):
    """Raised inside a kernel, in the interpreter, before an access the kernel must not make (past an
    edge of a tensor it was given, a store into A or B) or a ``tl.dot`` a GPU would not compile."""


class Timeout(BaseException):
    """The check ran past its time limit."""


_HERE = os.path.dirname(os.path.abspath(__file__))
_LIB_DIRS = tuple(
    os.path.dirname(os.path.abspath(m.__file__)) + os.sep
    for m in (torch, np, __import__("triton"), contextlib)  # contextlib: the standard library
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


# --------------------------------------------------------------------------------------------------
# tensors a launch receives
# --------------------------------------------------------------------------------------------------
def tensors_in(value, depth=0):
    """The torch tensors a launch argument holds: the tensor itself, the tensors of a tuple or list, the
    ``.base`` of a host-side ``TensorDescriptor`` or of a ``triton.reinterpret`` wrapper."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)) and depth < 3:
        for v in value:
            yield from tensors_in(v, depth + 1)
    else:
        base = getattr(value, "base", None)
        if isinstance(base, torch.Tensor):
            yield base


def is_descriptor(value) -> bool:
    """Whether a launch argument is a host-side TMA descriptor (``triton.tools.tensor_descriptor``)."""
    return type(value).__name__ == "TensorDescriptor" and isinstance(getattr(value, "base", None), torch.Tensor)


def storage_key(t: torch.Tensor) -> tuple:
    return (t.device.type, t.untyped_storage().data_ptr())


def _storage_bytes(t: torch.Tensor) -> torch.Tensor:
    return torch.empty(0, dtype=torch.uint8, device=t.device).set_(t.untyped_storage())


def _grid3(grid):
    """A launch grid as 3 ints, or None."""
    try:
        dims = tuple(int(g) for g in grid)
    except Exception:
        return None
    if not 1 <= len(dims) <= 3:
        return None
    return dims + (1,) * (3 - len(dims))


# --------------------------------------------------------------------------------------------------
# where an address falls
# --------------------------------------------------------------------------------------------------
class View:
    """A 2-D view the grader made (A, B or C) or any view a launch was given, for locating addresses:
    ``base`` (address of element [0, 0]), ``shape``, ``strides`` (elements), ``itemsize``, and the byte
    range ``[lo, hi)`` of its storage."""

    def __init__(self, name: str, t: torch.Tensor):
        self.name = name
        self.base = t.data_ptr()
        self.shape = tuple(t.shape)
        self.strides = tuple(t.stride())
        self.itemsize = t.element_size()
        storage = t.untyped_storage()
        self.lo = storage.data_ptr()
        self.hi = self.lo + storage.nbytes()
        span = 1 + sum((n - 1) * s for n, s in zip(self.shape, self.strides)) if t.numel() else 0
        self.span_lo, self.span_hi = self.base, self.base + span * self.itemsize

    def in_storage(self, addr: np.ndarray) -> np.ndarray:
        return (addr >= self.lo) & (addr < self.hi)

    def index(self, addr: np.ndarray):
        """``(ok, rows, cols, aligned)`` for addresses of this 2-D view's storage: ``ok`` where an address
        is an element of the view; ``rows``/``cols`` its position (floor-divided, so possibly outside
        the view: -1 is the row above, ``M`` the row below); ``aligned`` where it lies on an element's
        boundary of the view's grid."""
        big = 1 << 40
        off = addr.astype(np.int64) - np.int64(self.base)
        aligned = off % self.itemsize == 0
        e = np.floor_divide(off, self.itemsize)
        n, s = self.shape, self.strides
        # the dimension with the larger stride is the outer one; a size-1 dimension gets a stride no
        # offset reaches, so its index is 0 for every address of the view
        eff = [s[d] if n[d] > 1 and s[d] > 0 else big for d in (0, 1)]
        outer = 0 if eff[0] >= eff[1] else 1
        inner = 1 - outer
        io = np.floor_divide(e, eff[outer])
        rem = e - io * eff[outer]
        ii = np.floor_divide(rem, eff[inner])
        aligned = aligned & (rem - ii * eff[inner] == 0)
        idx = [None, None]
        idx[outer], idx[inner] = io, ii
        rows, cols = idx
        ok = aligned & (rows >= 0) & (rows < n[0]) & (cols >= 0) & (cols < n[1])
        return ok, rows, cols, aligned


# the usual masks along each operand's (rows, columns), in the exercises' names
_MASK_NAMES = {"A": ("rows < M", "ks < K"), "B": ("ks < K", "cols < N"), "C": ("rows < M", "cols < N")}
_STRIDE_NAMES = {"A": ("stride_am", "stride_ak"), "B": ("stride_bk", "stride_bn"), "C": ("stride_cm", "stride_cn")}


def _stride_hint(view, e: int) -> str:
    """Where an access outside ``view`` would have landed had the view other strides: the usual
    mistake behind it (strides assumed, not used)."""
    (n0, n1), (s0, s1) = view.shape, view.strides
    guesses = []
    if (s0, s1) != (n1, 1):
        guesses.append(((n1, 1), f"contiguous (rows {n1} elements apart, columns 1 apart)"))
    if s1 != 1 and s0 != n1:
        guesses.append(((s0, 1), "read with a column stride of 1"))
    if (s0, s1) != (1, n0):
        guesses.append(((1, n0), f"column-major (columns {n0} elements apart)"))
    for (t0, t1), words in guesses:
        if e < 0:
            break
        if t1 == 1 and t0 >= n1:
            i, j = divmod(e, t0)
        elif t0 == 1 and t1 >= n0:
            j, i = divmod(e, t1)
        else:
            continue
        if 0 <= i < n0 and 0 <= j < n1:
            m, k = _STRIDE_NAMES.get(view.name, ("the row stride", "the column stride"))
            return (f"; that address is where {view.name}[{i}, {j}] would be if {view.name} were {words}, but "
                    f"here its strides are ({s0}, {s1}): compute every address with {m} and {k}")
    return ""


@dataclass
class ProgramTrace:
    """What one program of an interpreted launch did."""

    loads: list = field(default_factory=list)  # address arrays (uint64), mask applied
    load_origins: list = field(default_factory=list)  # per load: its lowest address before the mask, or None
    stores: list = field(default_factory=list)  # (address array, value array), mask applied
    pointer_loads: int = 0
    descriptor_loads: int = 0
    pointer_stores: int = 0
    descriptor_stores: int = 0
    atomics: int = 0
    dots: int = 0
    dot_shape: tuple | None = None  # (M, N) of its first tl.dot: the tile it computes
    dot_types: set = field(default_factory=set)  # (a's dtype, b's dtype) of its tl.dot calls, e.g. "fp8e4nv"
    dot_largest: tuple | None = None  # (M, N) of its tl.dot whose output has the largest dimension
    widest: tuple | None = None  # (length, how) of the longest dimension of any block of 2 or more dimensions it
    #                               built (tl.full/zeros, broadcasts, reshapes, joins): a whole row held in registers
    longest_flat: tuple | None = None  # (length, how) of its longest 1-D block (tl.arange, a flattened tile)


class Trace:
    """What an interpreted launch did, per program (keyed by the builder's grid index)."""

    def __init__(self, sandbox, launch, views: list):
        self.sandbox = sandbox
        self.launch = launch
        self.views = views  # [(View, exact)]: the grader's views are exact, the others span-checked
        self.programs: dict[tuple, ProgramTrace] = {}
        self.helpers: set = set()  # (module, qualname) of every @triton.jit function called inside
        self.in_descriptor = 0
        self.record = launch is not None

    def program(self, builder) -> ProgramTrace:
        key = tuple(getattr(builder, "grid_idx", None) or (0, 0, 0))
        p = self.programs.get(key)
        if p is None:
            p = self.programs[key] = ProgramTrace()
        return p

    # -- the checks made before an access touches memory --------------------------------------------
    def check(self, addr: np.ndarray, write: bool, what: str):
        if addr.size == 0:
            return
        known = np.zeros(addr.shape, dtype=bool)
        for view, exact in self.views:
            inside = view.in_storage(addr)
            if not inside.any():
                continue
            known |= inside
            sub = addr[inside]
            if exact:
                ok, rows, cols, aligned = view.index(sub)
                if write and view.name in self.sandbox.read_only:
                    k = int(np.argmax(ok)) if ok.any() else 0
                    what = ("a matmul only reads A and B" if view.name in ("A", "B")
                            else f"{view.name} is an input, which the kernel only reads")
                    self.fault(f"your kernel stored into {view.name} (at row {int(rows[k])}, column "
                               f"{int(cols[k])}): {what}")
                if not ok.all():
                    k = int(np.argmin(ok))
                    e = (int(sub[k]) - view.base) // view.itemsize
                    self.fault(self._outside(view, int(rows[k]), int(cols[k]), write, bool(aligned[k]), e))
            else:
                ok = (sub >= view.span_lo) & (sub < view.span_hi)
                # several views of one storage (a tensor passed twice): any of them will do
                for other, ex in self.views:
                    if other is not view and not ex and other.lo == view.lo:
                        ok |= (sub >= other.span_lo) & (sub < other.span_hi)
                if not ok.all():
                    self.fault(f"your kernel {'wrote' if write else 'read'} outside the tensor passed as "
                               f"`{view.name}` (past its last element or before its first): check the "
                               f"{'store' if write else 'load'} mask")
        if not known.all():
            self.fault(f"your kernel {'wrote to' if write else 'read from'} an address outside every tensor it "
                       f"was given ({what}): a pointer past an edge, or a wrong stride? On a GPU this crashes")

    @staticmethod
    def _outside(view, row, col, write, aligned, e):
        n0, n1 = view.shape
        where = f"at row {row}, column {col}" if aligned else f"between elements, near row {row}, column {col}"
        verb, mask = ("wrote", "store") if write else ("read", "load")
        head = (f"your kernel {verb} outside {view.name}: {where} ({view.name} is {n0}x{n1}: rows 0..{n0 - 1}, "
                f"columns 0..{n1 - 1})")
        hint = _stride_hint(view, e)
        # one step past an edge, at a row (column) that exists: what a missing mask does. Name the mask
        # first; a wrong stride can land there too, so the stride hint, if any, follows
        past = None
        if aligned and 0 <= row < n0 and col >= n1:
            past = ("column", n1, _MASK_NAMES.get(view.name, ("", ""))[1])
        elif aligned and 0 <= col < n1 and row >= n0:
            past = ("row", n0, _MASK_NAMES.get(view.name, ("", ""))[0])
        if past is not None:
            what, n, example = past
            question = f"is this {mask} masked there{f' ({example})' if example else ''}?"
            if hint and view.strides[1] != 1:  # a transposed or sliced view: a stride ignored is likelier
                return head + hint + f". If your strides are right: {view.name}'s last {what} is {n - 1}; {question}"
            text = f"; that is past {view.name}'s last {what} ({what}s 0..{n - 1}): {question}"
            if hint:
                text += " If it is," + hint[1:]  # "; that address is where ..." as a second sentence
            return head + text
        if hint:
            return head + hint
        if 0 <= row < n0 and 0 <= col < n1 and not aligned:
            return head + f"; that is between two elements of {view.name}: does every address use its strides, in elements?"
        return head + f"; check the {mask} mask (on a GPU, going past an edge crashes or touches other data)"

    def fault(self, message: str):
        self.sandbox.fault(message)

    # -- what the hooks call ------------------------------------------------------------------------
    def access(self, builder, kind: str, ptrs, mask, value=None):
        addr = np.asarray(getattr(ptrs, "data", ptrs))
        if mask is not None:
            m = mask if isinstance(mask, np.ndarray) else np.asarray(getattr(mask, "data", mask))
            m = np.broadcast_to(m.astype(bool, copy=False), addr.shape)
            sel = addr[m]
        else:
            m = None
            sel = addr.reshape(-1)
        sel = sel.astype(np.uint64, copy=False)
        write = kind in ("store", "atomic")
        what = {"load": "a tl.load", "store": "a tl.store", "atomic": "an atomic",
                "atomic_load": "an atomic load"}[kind]
        if self.in_descriptor:
            what = "a descriptor " + ("store" if write else "load")
        self.check(sel, write, what)
        if not self.record:
            return
        p = self.program(builder)
        # where the load starts: its lowest address that the mask lets through (a load whose mask is all
        # false reads nothing, and starts nothing)
        origin = int(sel.min()) if sel.size else None
        if kind == "load":
            p.loads.append(sel.copy())
            p.load_origins.append(origin)
            if self.in_descriptor:
                p.descriptor_loads += 1
            else:
                p.pointer_loads += 1
        elif kind == "store":
            vals = np.broadcast_to(np.asarray(value.data), addr.shape)
            vals = vals[m] if m is not None else vals.reshape(-1)
            p.stores.append((sel.copy(), np.array(vals)))
            if self.in_descriptor:
                p.descriptor_stores += 1
            else:
                p.pointer_stores += 1
        else:
            p.atomics += 1
            p.loads.append(sel.copy())
            p.load_origins.append(origin)
            if write:
                p.stores.append((sel.copy(), None))

    def block(self, builder, result, how: str):
        """A block built by ``how`` (``tl.arange``, a splat, a broadcast, ...): remember the program's longest
        dimension so far."""
        if not self.record:
            return
        shape = np.shape(getattr(result, "data", None))
        if not shape:
            return
        n = int(max(shape))
        p = self.program(builder)
        if len(shape) == 1:  # a flat block: a range, or a tile reshaped to one dimension
            if p.longest_flat is None or n > p.longest_flat[0]:
                p.longest_flat = (n, f"{how} of shape ({n},)")
        elif p.widest is None or n > p.widest[0]:
            p.widest = (n, f"{how} of shape {tuple(int(d) for d in shape)}")

    def dot(self, builder, a, b):
        sa, sb = np.shape(a.data), np.shape(b.data)
        if len(sa) < 2 or len(sb) < 2:
            return
        M, K, N = sa[-2], sa[-1], sb[-1]
        bits = getattr(getattr(a, "dtype", None), "primitive_bitwidth", 32)
        # Triton 3.6's NVIDIA backend (min_dot_size) refuses K < 16 (K < 32 for 8-bit types): such a dot
        # runs here and does not compile there. M and N below 16 do compile for sm_90 (measured with 3.6),
        # but the course keeps every tile dimension >= 16, as its wrappers do (kernels.operands)
        k_min = 32 if bits == 8 else 16
        shape = f"tl.dot on a {M}x{K} tile times a {K}x{N} tile"
        if K < k_min:
            self.fault(f"{shape}: on a GPU, Triton needs K (BLOCK_K) >= {k_min} for tl.dot, so this runs in the "
                       f"interpreter but does not compile there; use BLOCK_K >= {k_min}")
        if M < 16 or N < 16:
            self.fault(f"{shape}: the course's tiles are at least 16 in every dimension (tensor cores work on "
                       f"16-wide tiles; the given wrappers refuse smaller blocks too); use BLOCK_M and BLOCK_N >= 16")
        if self.record:
            program = self.program(builder)
            program.dots += 1
            program.dot_shape = program.dot_shape or (int(M), int(N))
            if program.dot_largest is None or max(int(M), int(N)) > max(program.dot_largest):
                program.dot_largest = (int(M), int(N))
            program.dot_types.add((str(getattr(a, "dtype", "?")), str(getattr(b, "dtype", "?"))))


def _scaled_dot(original, builder, scale, args, kwargs):
    """The interpreter's ``create_dot(a, b, acc, ...)`` with the product scaled: ``acc + scale * (a @ b)``,
    the product computed by Triton's own code (on a zero accumulator) in the accumulator's dtype."""
    args = list(args)
    if len(args) > 2:
        acc = args[2]
        args[2] = type(acc)(np.zeros_like(acc.data), acc.dtype)
    else:
        acc = kwargs["d"]
        kwargs = dict(kwargs, d=type(acc)(np.zeros_like(acc.data), acc.dtype))
    product = original(builder, *args, **kwargs)
    data = product.data * np.asarray(scale, dtype=product.data.dtype) + acc.data
    return type(product)(data.astype(product.data.dtype, copy=False), product.dtype)


# --------------------------------------------------------------------------------------------------
# launches
# --------------------------------------------------------------------------------------------------
_KERNELS_DIR = os.path.dirname(os.path.abspath(__import__("kernels").__file__)) + os.sep
_course_index: dict = {}


def course_code(fn) -> str | None:
    """``"kernels.module.name"`` if ``fn`` (a function, a ``@triton.jit`` object or a code object) is the
    course's own code, whatever module or name it was given since (a copy of its function object, a
    code object with another ``co_name``): told by the file and line its code was compiled from."""
    while hasattr(fn, "fn"):
        fn = fn.fn
    code = getattr(fn, "__code__", fn)
    path = os.path.abspath(getattr(code, "co_filename", "") or "")
    if not path.startswith(_KERNELS_DIR):
        return None
    if not _course_index:
        import importlib
        import pkgutil

        import kernels

        for info in pkgutil.iter_modules(kernels.__path__):
            try:
                module = importlib.import_module(f"kernels.{info.name}")
            except Exception:
                continue
            for value in list(vars(module).values()):
                inner = value
                while hasattr(inner, "fn"):
                    inner = inner.fn
                c = getattr(inner, "__code__", None)
                if c is not None and os.path.abspath(c.co_filename).startswith(_KERNELS_DIR):
                    _course_index.setdefault((os.path.abspath(c.co_filename), c.co_firstlineno),
                                             f"{getattr(inner, '__module__', 'kernels')}.{inner.__qualname__}")
    rel = path[len(_KERNELS_DIR):].removesuffix(".py").replace(os.sep, ".")
    return _course_index.get((path, code.co_firstlineno), f"kernels.{rel}.{code.co_name}")


# --------------------------------------------------------------------------------------------------
# what a learner's kernel may name and call (read from its source)
# --------------------------------------------------------------------------------------------------
# Python's builtins a kernel body may name: those Triton's compiler understands
_KERNEL_BUILTINS = ("range", "min", "max", "len", "int", "float", "bool", "abs", "print", "isinstance", "tuple",
                    "list", "zip", "enumerate")
_BUILTIN_OBJECTS = {name: getattr(builtins, name) for name in _KERNEL_BUILTINS}
_TRITON_DIR = os.path.dirname(os.path.abspath(__import__("triton").__file__)) + os.sep
# Triton's language and Gluon's (triton.experimental.gluon.language): their modules and the files they are written in
_LANGUAGE_MODULES = ("triton.language.", "triton.experimental.gluon.language.")
_TRITON_INIT = os.path.join(_TRITON_DIR, "__init__.py")  # its few functions: cdiv, next_power_of_2 (Triton 3.6)
_LANGUAGE_DIRS = tuple(os.path.join(_TRITON_DIR, *m.split(".")[1:-1]) + os.sep for m in _LANGUAGE_MODULES)
# what ``dataclasses`` writes into a class (compiled from a string)
_DATACLASS_METHODS = {"__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__", "__lt__", "__le__",
                      "__gt__", "__ge__"}
_DATACLASS_FILES = ("<string>", __import__("dataclasses").__file__)
_CONSTANT_TYPES = (int, float, bool, complex, str, bytes, type(None))  # exact types: a subclass could overload
_FORBIDDEN_NODES = {
    ast.Lambda: "a lambda", ast.FunctionDef: "a function defined inside it", ast.AsyncFunctionDef:
    "a function defined inside it", ast.ClassDef: "a class defined inside it", ast.Import: "an import",
    ast.ImportFrom: "an import", ast.Global: "a `global` statement", ast.Nonlocal: "a `nonlocal` statement",
}


def _inner_function(jit):
    fn = getattr(jit, "fn", None)
    while hasattr(fn, "fn"):
        fn = fn.fn
    return fn


def _is_jit(obj) -> bool:
    """A ``@triton.jit`` function (compiled or interpreted), or a wrapper of one (autotune, heuristics)."""
    return hasattr(obj, "fn") and hasattr(obj, "run") and not isinstance(obj, type)


def _code_path(fn) -> str:
    code = getattr(fn, "__code__", None)
    return os.path.abspath(code.co_filename) if code is not None else ""


def _triton_module(obj) -> bool:
    return isinstance(obj, types.ModuleType) and (obj.__name__ + ".").startswith(_LANGUAGE_MODULES)


def _triton_class(obj) -> bool:
    """A class of Triton's language (``tl.constexpr``, ``tl.tensor``, ``tl.dtype``, ...), written in Triton's
    files (the interpreter's stand-ins for its methods included)."""
    if not isinstance(obj, type) or not ((getattr(obj, "__module__", "") or "") + ".").startswith(_LANGUAGE_MODULES):
        return False
    module = sys.modules.get(obj.__module__)
    if not os.path.abspath(getattr(module, "__file__", "") or "").startswith(_TRITON_DIR):
        return False
    return all(_code_path(v).startswith(_TRITON_DIR)
               or (name in _DATACLASS_METHODS and v.__code__.co_filename in _DATACLASS_FILES)
               for name, v in vars(obj).items() if isinstance(v, types.FunctionType))


def _triton_language(obj, parent) -> bool:
    """Whether ``obj`` (reached as an attribute of ``parent``, or a global when ``parent`` is None) is part of
    Triton's language: a ``triton.language`` module (or Gluon's), a function or class written in their files, or
    one of the interpreter's stand-ins for them, reached through ``tl``. Told by the files their code comes
    from, not by ``__module__`` (which anyone can set)."""
    if isinstance(obj, types.ModuleType):
        return _triton_module(obj)
    if isinstance(obj, type):
        return _triton_class(obj)
    if isinstance(obj, types.MethodType):
        return _triton_language(obj.__func__, type(obj.__self__)) and (
            _triton_class(type(obj.__self__)) or _triton_class(obj.__self__))
    if isinstance(obj, types.FunctionType):
        path = _code_path(obj)
        if not _nothing_else_inside(obj):
            return False
        if path.startswith(_LANGUAGE_DIRS) or path == _TRITON_INIT:  # triton.cdiv, triton.next_power_of_2
            return True
        return path.startswith(_TRITON_DIR) and (_triton_module(parent) or _triton_class(parent))
    # Triton's own @triton.constexpr_function helpers (triton.cdiv in 3.9), on constants; not the answer's
    if type(obj).__name__ == "ConstexprFunction" and type(obj).__module__.startswith("triton."):
        inner = getattr(obj, "fn", None)
        return (isinstance(inner, types.FunctionType) and _code_path(inner).startswith(_TRITON_DIR)
                and _nothing_else_inside(inner))
    # what the interpreter leaves in tl's modules after a nested @triton.jit call (Triton 3.9 does not put
    # them back): functools.partial of its own functions (tl.multiple_of) and Python's print (tl.static_print)
    if isinstance(obj, functools.partial):
        return _triton_language(obj.func, parent) and all(
            _plain_value(v, []) for v in list(obj.args) + list(obj.keywords.values()))
    return obj is builtins.print and _triton_module(parent)


def _nothing_else_inside(fn, depth=0) -> bool:
    """No function written outside Triton's files hides in ``fn``'s closure, defaults or ``__wrapped__``: a
    wrapper such as ``tl.core.builtin`` makes (code in ``triton/language/``) around the answer's own Python."""
    if depth > 6:
        return False
    inside = []
    for cell in fn.__closure__ or ():
        try:
            inside.append(cell.cell_contents)
        except ValueError:  # an empty cell
            pass
    inside += list(fn.__defaults__ or ()) + list((fn.__kwdefaults__ or {}).values())
    inside += [fn.__dict__["__wrapped__"]] if "__wrapped__" in fn.__dict__ else []
    for value in inside:
        while isinstance(value, (functools.partial, types.MethodType)):
            value = value.func if isinstance(value, functools.partial) else value.__func__
        if isinstance(value, types.FunctionType) and not (
                _code_path(value).startswith(_TRITON_DIR) and _nothing_else_inside(value, depth + 1)):
            return False
    return True


def _plain_value(obj, jits, depth=0) -> bool:
    """Whether ``obj`` is a value a kernel may read: a number, string, None, a Triton dtype or constexpr of
    one, a tuple of them; ``@triton.jit`` functions found inside (a constexpr, a tuple) go to ``jits``."""
    t = type(obj)
    if t in _CONSTANT_TYPES or (isinstance(obj, (np.number, np.bool_)) and t.__module__ == "numpy"):
        return True
    if depth > 3:
        return False
    if t in (tuple, list) or (isinstance(obj, tuple) and _triton_namedtuple(t)):
        return all(_plain_value(v, jits, depth + 1) or _jit_value(v, jits) for v in obj)
    if isinstance(obj, torch.dtype):
        return True
    if _triton_class(t):
        if hasattr(obj, "value") and t.__name__ == "constexpr":
            return _plain_value(obj.value, jits, depth + 1) or _jit_value(obj.value, jits)
        return not callable(obj)  # a dtype, a block type, an enum member
    if t.__module__.startswith("triton") and not callable(obj) and isinstance(getattr(t, "__members__", None), dict):
        return True  # an enum of Triton's (tl.PropagateNan.ALL)
    return False


def _triton_namedtuple(t) -> bool:
    return hasattr(t, "_fields") and all(_code_path(v).startswith(_TRITON_DIR) or not isinstance(v, types.FunctionType)
                                         for v in vars(t).values())


def _jit_value(obj, jits) -> bool:
    if _is_jit(obj):
        jits.append(obj)
        return True
    return False


def _trusted(jit) -> bool:
    """Triton's own @triton.jit functions (tl.sum, tl.cdiv, ...) and the course's: not the learner's to check."""
    fn = _inner_function(jit)
    return fn is None or _code_path(fn).startswith(_TRITON_DIR) or course_code(fn) is not None


def _kernel_sources(jit, fn):
    """The ``FunctionDef`` of the kernel's source as Triton's JIT reads it (from its first ``def`` line) and,
    in Triton's interpreter, as ``FunctionRewriter`` reads it to run it (from the *last* line that starts
    with ``def``, in Triton 3.6 and 3.9): both are checked, so what runs is what was read."""
    import ast
    import inspect
    import textwrap

    lines, _ = inspect.getsourcelines(fn)
    starts = [i for i, line in enumerate(lines) if line.strip().startswith("def ")]
    texts = [getattr(jit, "src", None) or "".join(lines[starts[0]:])]
    if type(jit).__name__ == "InterpretedFunction" and starts[-1] != starts[0]:
        texts.append("".join(lines[starts[-1]:]))
    found = []
    for text in texts:
        tree = ast.parse(textwrap.dedent(text))
        found.append(next(n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))))
    return found


def _kernel_problem(jit, seen) -> str | None:
    """Why the @triton.jit function ``jit`` is refused, or None. See ``python_calls``."""
    fn = _inner_function(jit)
    if fn is None or id(fn) in seen:
        return None
    seen.add(id(fn))
    name = getattr(fn, "__name__", "?")
    where = f"inside the @triton.jit kernel {name}"
    try:
        fdefs = _kernel_sources(jit, fn)
    except (OSError, TypeError, SyntaxError, StopIteration, IndexError):
        return (f"a @triton.jit kernel whose source cannot be read ({name}; made with exec or from a string?): "
                "define your kernel with `def` in a cell or file of its own")
    # the interpreter compiles a function once from its source and keeps it: drop that copy so the launch
    # compiles again the source read here
    cache = getattr(type(jit), "rewritten_fn", None)
    if isinstance(cache, dict):
        cache.pop(fn, None)
    jits = []
    for fdef in fdefs:
        found = _source_problem(fdef, fn, where, jits)
        if found:
            return found
    for inner in jits:
        if not _trusted(inner):
            found = _kernel_problem(inner, seen)
            if found:
                return found
    return None


def _source_problem(fdef, fn, where, jits) -> str | None:
    """What ``python_calls`` refuses in one ``FunctionDef`` of ``fn``'s source; the learner's
    ``@triton.jit`` functions it names go to ``jits``."""
    import ast

    space = getattr(fn, "__globals__", {})
    a = fdef.args
    params = {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs} | {x.arg for x in (a.vararg, a.kwarg) if x}
    roots = [fdef.args] + list(fdef.body) + ([fdef.returns] if fdef.returns else [])
    parents, nodes = {}, []
    for root in roots:
        for node in ast.walk(root):
            nodes.append(node)
            for child in ast.iter_child_nodes(node):
                parents[child] = node
    local = params | {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del))}
    local |= {n.name for n in nodes if isinstance(n, ast.alias)}
    missing = object()
    for node in nodes:
        kind = _FORBIDDEN_NODES.get(type(node))
        if kind:
            return (f"{kind} {where} (the interpreter runs it as Python; a GPU cannot compile it): a kernel uses "
                    "Triton's language (tl.*) and @triton.jit functions")
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in local:
                what = "a parameter" if f.id in params else "a variable"
                return (f"calling `{f.id}`, {what} of the kernel, {where}: call Triton's functions (tl.*) and "
                        "@triton.jit functions by their own names (a name bound to a Python function would run "
                        "as Python in the interpreter)")
            if not isinstance(f, (ast.Name, ast.Attribute)):
                return (f"calling the result of `{ast.unparse(f)}` {where}: call Triton's functions (tl.*) and "
                        "@triton.jit functions by their own names")
        elif isinstance(node, ast.Attribute):
            root = node
            while isinstance(root, ast.Attribute):
                root = root.value
            on_global = isinstance(root, ast.Name) and root.id not in local
            if node.attr.startswith("__") or (not on_global and (node.attr.startswith("_") or node.attr == "handle")):
                return (f"reading `{ast.unparse(node)}` {where}: that is Triton's or Python's machinery behind a "
                        "value (in the interpreter, the NumPy data itself), not part of Triton's language")
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in local:
            top, attrs = node, []
            while isinstance(parents.get(top), ast.Attribute) and parents[top].value is top:
                top = parents[top]
                attrs.append(top.attr)
            called = isinstance(parents.get(top), ast.Call) and parents[top].func is top
            text = ast.unparse(top)
            obj = space.get(node.id, missing) if isinstance(space, dict) else missing
            if obj is missing:
                obj = _BUILTIN_OBJECTS.get(node.id, missing)
                if obj is missing or getattr(builtins, node.id, None) is not obj or attrs:
                    if hasattr(builtins, node.id):
                        return (f"calling Python's `{node.id}()` {where}" if called
                                else f"using Python's `{node.id}` {where}")
                    # not defined now: Triton's interpreter copies its own globals (np, math, tl, ...) into the
                    # kernel's module when it runs the kernel, so an undefined name is defined there. Its `tl`
                    # (Triton's language) is judged as the kernel's own would be; anything else is refused
                    obj = _interpreter_global(node.id)
                    if not _triton_module(obj):
                        return (f"using `{text}` {where}, but `{node.id}` is not defined in the kernel's module: "
                                "a kernel may use Triton's language (tl.*), @triton.jit functions and constants "
                                "defined in its module, nothing else (the interpreter would hand it its own "
                                "Python modules)")
                else:
                    continue  # range, min, len, ...
            parent = None
            for attr in attrs:
                if not (isinstance(obj, types.ModuleType) or _triton_class(obj) or _triton_language(obj, parent)
                        or _plain_value(obj, [], 0) or _is_jit(obj)):
                    break  # not something whose attributes a kernel may read: judged below, as it is
                parent = obj
                try:
                    obj = getattr(obj, attr)
                except Exception:  # it fails where the kernel runs too, with Triton's own message
                    obj = missing
                    break
            else:
                if _is_jit(obj):
                    if not _trusted(obj):
                        jits.append(obj)
                    continue
                if _triton_language(obj, parent):
                    continue
                if not called and _plain_value(obj, jits):
                    continue
            if obj is missing:
                continue  # an attribute that does not exist: an AttributeError where the kernel runs
            described = (f"the module {obj.__name__}" if isinstance(obj, types.ModuleType) else "a Python function"
                         if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, types.MethodType))
                         else f"a {type(obj).__name__}")
            if called and callable(obj):
                return (f"calling the Python function `{text}` {where} (the interpreter runs it as Python; a GPU "
                        "cannot compile it)")
            return (f"using `{text}` ({described}) {where}: a kernel may use Triton's language (tl.*), "
                    "@triton.jit functions and constants (numbers, dtypes, tl.constexpr), nothing else from Python")
    return None


def _interpreter_global(name):
    """What Triton's interpreter copies into a kernel's module under ``name`` when it runs it (None if nothing)."""
    try:
        from triton.runtime import interpreter as interp
    except Exception:  # pragma: no cover
        return None
    return vars(interp).get(name)


def python_calls(jit) -> str | None:
    """Why ``jit`` (a learner's ``@triton.jit`` kernel) is refused for reaching plain Python from its body,
    or ``None``. Triton's interpreter would run such Python on the CPU, with any data it likes; a GPU
    compiler refuses it. Read from the source that runs (the kernel's and that of every ``@triton.jit``
    helper it names, however deep), strictly: every global name must stand for Triton's language
    (``tl.*``, ``triton.language.*``, libdevice, ``triton.cdiv``; told by the files their code comes from),
    a ``@triton.jit`` function, a builtin Triton compiles (``range``, ``min``, ...) or a constant (number,
    string, dtype, ``tl.constexpr``); a call's target must be one of those named directly or a method of a
    kernel value (``acc.to``, ``desc.load``). Refused: calling a name the kernel binds itself (a parameter, a variable:
    ``f = H.r; f(v)``), calling the result of an expression (``getattr(H, "r")(v)``), any other global
    (a module's function, a namespace, a Python callable, ``h = H``), lambdas, nested functions, imports,
    dunder attributes, and a value's ``.handle`` or ``_private`` attributes (the interpreter's NumPy data)."""
    return _kernel_problem(jit, set())


_ARGUMENT_TYPES = ("TensorDescriptor", "TensorWrapper")


def argument_problem(jit, args, kwargs) -> str | None:
    """Why a launch of the learner's kernel ``jit`` with ``args``/``kwargs`` is refused, or ``None``: a kernel
    takes tensors, numbers, strings, None, dtypes, tl.constexpr, host-side tensor descriptors,
    ``triton.reinterpret`` views, tuples of them and ``@triton.jit`` functions (checked like the kernel).
    Triton's interpreter hands any other Python object (a function, a namespace) to the kernel as it is,
    where its methods would run as Python."""
    names = _arg_names(jit)
    labelled = [(names[i] if i < len(names) else f"argument {i}", v) for i, v in enumerate(args)]
    labelled += list(kwargs.items())
    for label, value in labelled:
        jits = []
        subclass = _tensor_subclass_in(value)
        if subclass is not None:
            kernel = getattr(_inner_function(jit), "__name__", "?")
            return (f"passing a {subclass.__name__} (a subclass of torch.Tensor) as {label}= to the kernel {kernel}: "
                    "pass plain torch.Tensor objects (a subclass's Python methods would run whenever the grader or "
                    "Triton touches the tensor)")
        if not _argument_ok(value, jits):
            kernel = getattr(_inner_function(jit), "__name__", "?")
            return (f"passing {type(value).__name__} {label}= to the kernel {kernel}: "
                    "a kernel takes tensors, numbers, dtypes, tensor descriptors and @triton.jit functions (the "
                    "interpreter would hand it a Python object, whose code would run as Python)")
        for inner in jits:
            if not _trusted(inner):
                found = python_calls(inner)
                if found:
                    return found
    return None


_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)


def _tensor_subclass_in(value, depth=0):
    """The first ``torch.Tensor`` subclass (other than ``nn.Parameter``) in ``value`` (a tuple, list or a
    descriptor's ``base``), else ``None``; told by ``type()``, which ``__class__`` cannot fake."""
    if isinstance(value, torch.Tensor) and type(value) not in _TENSOR_TYPES:
        return type(value)
    if depth < 3 and type(value) in (tuple, list):
        for v in value:
            found = _tensor_subclass_in(v, depth + 1)
            if found is not None:
                return found
    base = getattr(value, "base", None) if is_descriptor(value) else None
    if base is not None and depth < 3:
        return _tensor_subclass_in(base, depth + 1)
    return None


def _argument_ok(value, jits, depth=0) -> bool:
    if type(value) in _TENSOR_TYPES or _plain_value(value, jits) or _jit_value(value, jits):
        return True
    t = type(value)
    if t.__name__ in _ARGUMENT_TYPES and t.__module__.startswith("triton"):
        return True
    if isinstance(value, (tuple, list)) and depth < 3:
        return all(_argument_ok(v, jits, depth + 1) for v in value)
    return False


def _library_module(jit) -> bool:
    """A launched kernel from Triton itself, the grader, or the course (see ``course_code``)."""
    fn = getattr(jit, "fn", None)
    if course_code(fn) is not None:
        return True
    return (getattr(fn, "__module__", "") or "").split(".")[0] in ("triton", "grader")


@dataclass
class Launch:
    kernel: str  # qualified name of the @triton.jit function
    module: str
    snapshots: list = field(default_factory=list)  # (storage key, uint8 copy of the storage), after it ran
    grid: tuple | None = None  # the launch grid as 3 ints (None if it could not be read)
    jit: object = None  # the launched JITFunction / InterpretedFunction (its ``.fn`` holds the source)
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    grid_given: object = None  # the grid as the launch gave it (a tuple or a callable)
    compiled: object = None  # what run() returned: the CompiledKernel on a GPU
    trace: Trace | None = None  # in the interpreter: what each program did
    keys: list = field(default_factory=list)  # storage keys of the tensors it received
    host_descriptors: bool = False  # it received TensorDescriptor arguments

    @property
    def from_library(self) -> bool:
        return _library_module(self.jit) or self.module.split(".")[0] in ("kernels", "triton", "grader")

    @property
    def programs(self) -> int | None:
        """How many programs the launch started (the product of the grid)."""
        if self.grid is None:
            return None
        return self.grid[0] * self.grid[1] * self.grid[2]

    def touches(self, result: torch.Tensor) -> bool:
        """Whether ``result``'s memory was one of the tensors this launch was given (a descriptor's
        base counts)."""
        return storage_key(result) in self.keys

    def grid_text(self) -> str:
        g = self.grid
        return f"{self.kernel}[{g[0]}, {g[1]}, {g[2]}]" if g else f"{self.kernel}[?]"


def _arg_names(jit_fn):
    names = getattr(jit_fn, "arg_names", None)
    if names:
        return list(names)
    try:
        import inspect

        return list(inspect.signature(jit_fn.fn).parameters)
    except Exception:
        return []


class _Guard(TorchDispatchMode):
    def __init__(self, sandbox):
        super().__init__()
        self.sandbox = sandbox

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        harmless = name in _PREDICATES or (name == "_local_scalar_dense" and args and getattr(args[0], "dtype", None)
                                           is torch.bool)
        if not self.sandbox.internal and not is_allowed(name) and not harmless and not _printing():
            what = _FRIENDLY.get(name, "only allocation, views, copies, fills and casts may run while an answer "
                                       "is graded")
            self.sandbox.refuse(f"torch's `{name}` ({what})")
        if not self.sandbox.low_precision_casts and not self.sandbox.internal and not _printing():
            cast = low_precision_cast(name, args, kwargs)
            if cast:
                self.sandbox.refuse(f"a cast on the host from {cast} (`.to(...)`, `.float()`, `copy_`): "
                                    "converting to or from an 8-bit or 4-bit float is what your kernel computes")
        return func(*args, **(kwargs or {}))


_MISSING = object()
_TENSOR_ESCAPES = ("numpy", "__array__", "tolist", "__dlpack__")


def spawners() -> list[tuple]:
    """``(owner, attribute, what)`` of each way an answer could start work outside its own thread, where
    the grader's per-thread guards (dispatch modes, profile hooks) do not see it: ``threading.Thread.start``,
    the low-level ``_thread.start_new_thread`` (and its aliases: ``_thread.start_new``, ``threading``'s own
    ``_start_new_thread``, ``start_joinable_thread`` where Python has it), ``multiprocessing``'s
    ``BaseProcess.start`` and ``os.fork``."""
    import _thread
    import multiprocessing.process as mp_process

    found = [(threading.Thread, "start", "a thread (threading.Thread.start)"),
             (mp_process.BaseProcess, "start", "a process (multiprocessing)")]
    for owner, prefix in ((_thread, "_thread."), (threading, "threading.")):
        for name in ("start_new_thread", "start_new", "start_joinable_thread", "_start_new_thread",
                     "_start_joinable_thread"):
            if callable(owner.__dict__.get(name)):
                found.append((owner, name, f"a thread ({prefix}{name})"))
    if hasattr(os, "fork"):
        found.append((os, "fork", "a process (os.fork)"))
    return found


def _first_class_with(cls, name):
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass
    return None


def _foreign_members(klass) -> list[str] | None:
    """For a class written in Triton's files (``JITFunction``, ``InterpretedFunction``, Gluon's ``GluonJITFunction``,
    their bases; told by the file of its module, not by ``__module__``): the names of its functions whose code is
    not Triton's (nor the grader's own hooks), i.e. replaced by someone's Python. ``None`` for any other class."""
    members = (getattr(klass, "__module__", None),) + tuple(vars(klass).values())
    cached = _FOREIGN.get(klass)
    if cached is None or len(cached[0]) != len(members) or any(a is not b for a, b in zip(cached[0], members)):
        if len(_FOREIGN) > 256:
            _FOREIGN.clear()
        cached = _FOREIGN[klass] = (members, _foreign_members_of(klass))
    return cached[1]


_FOREIGN: dict = {}  # class -> (its __module__ and members as they were, _foreign_members): launches are many


def _foreign_members_of(klass) -> list[str] | None:
    module = sys.modules.get(getattr(klass, "__module__", "") or "")
    if not os.path.abspath(getattr(module, "__file__", "") or "").startswith(_TRITON_DIR):
        return None
    foreign = []
    for name, value in vars(klass).items():
        value = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
        value = value.fget if isinstance(value, property) else value
        # the grader's own hooks (Sandbox patches InterpretedFunction.run while an answer runs) count as Triton's
        if isinstance(value, types.FunctionType) and not _code_path(value).startswith((_TRITON_DIR, _HERE + os.sep)):
            foreign.append(name)
    return foreign


_STANDARD_BASES = frozenset({object, __import__("typing").Generic})


def kernel_object_problem(jit) -> str | None:
    """Why the launched (or called) kernel object ``jit`` is refused, or ``None``: Python of the answer's own
    hidden in the object or its class, which the grader's launch of it (the replay on new inputs) would run on
    the host. Refused: a method replaced on the object itself (``kernel.run = my_run``, ``kernel.rewrite = ...``),
    a class of the answer's own between the object and Triton's ``JITFunction`` / ``InterpretedFunction`` (a
    subclass that overrides ``run`` or any other method), and a method of Triton's own classes replaced
    (``type(kernel).run = my_run``). Triton's own subclasses (Gluon's) are fine."""
    cls = type(jit)
    name = getattr(_inner_function(jit), "__name__", None) or getattr(jit, "__name__", "?")
    own = vars(jit) if hasattr(jit, "__dict__") else {}
    for attr in own:
        klass = _first_class_with(cls, attr)
        if attr == "run" or (klass is not None and isinstance(
                vars(klass)[attr], (types.FunctionType, property, staticmethod, classmethod))):
            return (f"your kernel object {name} has its own `{attr}` (`{name}.{attr} = ...`): the grader launches "
                    f"kernels through Triton's own {cls.__name__}.{attr}, and Python put in its place would run "
                    "on the host; launch the @triton.jit function as it is, kernel[grid](...)")
    for klass in cls.__mro__:
        if klass in _STANDARD_BASES:
            continue
        foreign = _foreign_members(klass)
        if foreign is None:
            overrides = sorted(k for k, v in vars(klass).items()
                               if isinstance(v, (types.FunctionType, property, staticmethod, classmethod)))
            what = f" (it overrides {', '.join(overrides)})" if overrides else ""
            return (f"your kernel object {name} is a {klass.__name__}, a class of your own derived from Triton's "
                    f"kernel class{what}: its Python would run on the host when the kernel is launched; use "
                    "@triton.jit as it is")
        if foreign:
            return (f"Triton's {klass.__name__}.{foreign[0]} was replaced by Python of your own, which would run on "
                    "the host when the kernel is launched; leave Triton's classes as they are")
    return None


class Sandbox:
    """``with Sandbox(operands={"A": a, "B": b, "C": out}) as box: res = fn(a, b, out=out)``; then read
    ``box.refusals``, ``box.faults`` and ``box.launches``, and ``box.replay(...)``.

    ``operands``: the grader's own views, by name; in the interpreter every access to their storages
    must be an element of the view (their guard rows and columns are off limits), and stores into the
    operands named in ``read_only`` (A and B unless told) are faults. ``low_precision_casts=False``
    refuses host-side conversions into or out of 8-bit and 4-bit float dtypes (``low_precision_cast``)."""

    def __init__(self, operands: dict | None = None, read_only=("A", "B"), low_precision_casts: bool = True):
        self.operands = {k: v for k, v in (operands or {}).items() if isinstance(v, torch.Tensor)}
        self.read_only = frozenset(read_only)
        self.low_precision_casts = low_precision_casts
        self.refusals: list[str] = []
        self.faults: list[str] = []
        self.launches: list[Launch] = []
        self.internal = 0  # > 0 while the sandbox itself runs torch ops (snapshots)
        self.recording = True
        self.before: dict = {}  # storage key -> (uint8 view of the storage, copy before its first launch)
        self.dot_scale = None  # in the interpreter, while set: tl.dot returns acc + dot_scale * (a @ b)
        self._current: Trace | None = None
        self.triton_problem = None
        self._undo = []
        self._depth = 0

    # -- refusals ---------------------------------------------------------------------------------
    def refuse(self, what: str):
        msg = f"{what} at {learner_frame()}"
        self.refusals.append(msg)
        raise Refused(f"grader: {what} is not allowed while an answer is graded; "
                      "compute the result in your Triton kernel")

    def fault(self, message: str):
        self.faults.append(f"{message} (at {learner_frame()})")
        raise Fault(message)

    def _patch(self, owner, name, value):
        old = owner.__dict__.get(name, _MISSING)
        setattr(owner, name, value)
        self._undo.append((owner, name, old, value))

    def _displaced(self):
        """``"Owner.name"`` of each hook the grader placed that no longer holds the grader's object."""
        for owner, name, _, ours in self._undo:
            if owner.__dict__.get(name, _MISSING) is not ours:
                yield f"{getattr(owner, '__qualname__', getattr(owner, '__name__', '?'))}.{name}"

    def hooks_removed(self) -> str | None:
        """``None`` if every hook the grader placed is still in place; else which was taken off (an answer that
        swaps Triton's own methods back in around its launch runs it unseen)."""
        for where in self._displaced():
            return (f"{where} is not the grader's hook around your launch (put back or replaced by your "
                    "code): the grader hooks it to see what your kernel does; leave Triton's, torch's and "
                    "Python's own functions as they are")
        return None

    def _hook_ids(self):
        return frozenset(id(ours) for _, _, _, ours in self._undo)

    def _escape(self, name):
        sandbox = self
        original = getattr(torch.Tensor, name, None)

        def refused(*args, **kwargs):
            if original is not None and (sandbox.internal or _printing()):
                return original(*args, **kwargs)
            sandbox.refuse(f"Tensor.{name}() (handing the tensor to NumPy/Python)")

        return refused

    # -- launches ---------------------------------------------------------------------------------
    def _views_for(self, jit_fn, args, kwargs):
        """[(View, exact)]: the grader's operands (exact), then every other tensor the launch received."""
        views = [(View(name, t), True) for name, t in self.operands.items()]
        grader_storages = {v.lo for v, _ in views}
        names = _arg_names(jit_fn)
        labelled = [(names[i] if i < len(names) else f"argument {i}", v) for i, v in enumerate(args)]
        labelled += list(kwargs.items())
        for label, value in labelled:
            for t in tensors_in(value):
                if t.untyped_storage().data_ptr() not in grader_storages:
                    views.append((View(label, t), False))
        return views

    def _begin(self, jit_fn, args, kwargs, grid):
        fn = getattr(jit_fn, "fn", None)
        launch = Launch(getattr(fn, "__qualname__", repr(jit_fn)), getattr(fn, "__module__", "") or "",
                        jit=jit_fn, args=tuple(args), kwargs=dict(kwargs), grid_given=grid)
        launch.host_descriptors = any(is_descriptor(v) for v in list(args) + list(kwargs.values()))
        self.internal += 1
        try:
            tensors = [t for v in list(args) + list(kwargs.values()) for t in tensors_in(v)]
            if any(t.is_cuda for t in tensors):
                torch.cuda.synchronize()
            for t in tensors:
                key = storage_key(t)
                if key not in launch.keys:
                    launch.keys.append(key)
                if key not in self.before:
                    view = _storage_bytes(t)
                    self.before[key] = (view, view.clone())
        finally:
            self.internal -= 1
        self.launches.append(launch)
        return launch

    def _end(self, launch, grid, result):
        launch.grid = _grid3(grid)
        launch.compiled = result
        self.internal += 1
        try:
            tensors = [t for v in list(launch.args) + list(launch.kwargs.values()) for t in tensors_in(v)]
            if any(t.is_cuda for t in tensors):
                torch.cuda.synchronize()
            done = set()
            for t in tensors:
                key = storage_key(t)
                if key not in done:
                    done.add(key)
                    launch.snapshots.append((key, _storage_bytes(t).clone()))
            # only the latest copy of a storage is ever read (written_by_kernel): an autotuner's hundreds of
            # benchmark launches must not keep hundreds of copies
            for earlier in self.launches[:-1]:
                if earlier.snapshots:
                    earlier.snapshots = [(k, snap) for k, snap in earlier.snapshots if k not in done]
        finally:
            self.internal -= 1

    def _hook_run(self, cls):
        original = cls.run
        sandbox = self

        def run(self_, *args, grid, warmup, **kwargs):
            if warmup:
                return original(self_, *args, grid=grid, warmup=warmup, **kwargs)
            seen = [grid]
            given = grid
            ours = course_code(getattr(self_, "fn", None)) is not None or _library_module(self_)
            if callable(grid):  # grid(meta): Triton calls it with the bound arguments; keep its answer

                def grid(meta):
                    seen[0] = given(meta)
                    # the grid function is the answer's Python, run after the check below and before the
                    # kernel: what the kernel names is read again
                    python = None if ours else python_calls(self_)
                    if python:
                        sandbox.refuse(python)
                    return seen[0]

            if not ours:
                problem = kernel_object_problem(self_)
                if problem:
                    sandbox.refuse(problem)
                tampered = sandbox.triton_problem or triton_tampered(sandbox._hook_ids())
                if tampered:
                    sandbox.refuse(triton_tampered_message(tampered))
                unhooked = sandbox.hooks_removed()
                if unhooked:
                    sandbox.refuse(unhooked)
            if not ours and getattr(self_, "pre_run_hooks", None):
                sandbox.refuse(f"a pre-run hook on your kernel {getattr(self_, '__name__', '?')} "
                               "(add_pre_run_hook runs Python, not the kernel)")
            if not ours:
                python = python_calls(self_) or argument_problem(self_, args, kwargs)
                if python:  # the interpreter would run it as Python; a GPU does not compile it
                    sandbox.refuse(python)
            launch = sandbox._begin(self_, args, kwargs, given) if sandbox.recording else None
            trace = Trace(sandbox, launch, sandbox._views_for(self_, args, kwargs))
            if launch is not None:
                launch.trace = trace
            outer, sandbox._current = sandbox._current, trace
            try:
                result = original(self_, *args, grid=grid, warmup=warmup, **kwargs)
            finally:
                sandbox._current = outer
                if launch is not None:
                    sandbox._end(launch, None if callable(seen[0]) else seen[0], None)
            if not ours:
                unhooked = sandbox.hooks_removed()
                if unhooked:
                    sandbox.refuse(unhooked)
            if launch is not None:
                launch.compiled = result
            return result

        self._patch(cls, "run", run)

    def _hook_threads(self):
        """Threads and processes started while an answer runs are refused: the guard on torch ops sees
        only this thread."""
        sandbox = self

        def refusing(what, original):
            def start(*args, **kwargs):
                if sandbox.internal:
                    return original(*args, **kwargs)
                sandbox.refuse(f"starting {what} (work there is outside the grader's view and your kernel)")
            return start

        for owner, name, what in spawners():
            self._patch(owner, name, refusing(what, getattr(owner, name)))

    def _hook_interpreter(self):
        """Hooks on the interpreter's builder and on nested @triton.jit calls (no-ops on a GPU)."""
        try:
            from triton.runtime import interpreter as interp
        except Exception:  # pragma: no cover - every supported Triton has the interpreter
            return
        builder_cls = getattr(interp, "InterpreterBuilder", None)
        sandbox = self

        def first(args, kwargs, i, name):
            return args[i] if len(args) > i else kwargs.get(name)

        def hook(name, make):
            original = getattr(builder_cls, name, None)
            if original is not None:
                self._patch(builder_cls, name, make(original))

        def masked_load(original):
            def f(b, *args, **kwargs):
                trace = sandbox._current
                if trace is not None:
                    trace.access(b, "load", first(args, kwargs, 0, "ptrs"), first(args, kwargs, 1, "mask"))
                return original(b, *args, **kwargs)
            return f

        def masked_store(original):
            def f(b, *args, **kwargs):
                trace = sandbox._current
                if trace is not None:
                    trace.access(b, "store", first(args, kwargs, 0, "ptrs"), first(args, kwargs, 2, "mask"),
                                 first(args, kwargs, 1, "value"))
                return original(b, *args, **kwargs)
            return f

        def descriptor(original):
            def f(b, *args, **kwargs):
                trace = sandbox._current
                if trace is not None:
                    trace.in_descriptor += 1
                try:
                    return original(b, *args, **kwargs)
                finally:
                    if trace is not None:
                        trace.in_descriptor -= 1
            return f

        def atomic(ptr_index, mask_index, kind="atomic"):
            def make(original):
                def f(b, *args, **kwargs):
                    trace = sandbox._current
                    if trace is not None:
                        mask = args[mask_index] if mask_index is not None and len(args) > mask_index else None
                        trace.access(b, kind, args[ptr_index] if len(args) > ptr_index else kwargs.get("ptr"),
                                     mask)
                    return original(b, *args, **kwargs)
                return f
            return make

        def built(how):
            def make(original):
                def f(b, *args, **kwargs):
                    result = original(b, *args, **kwargs)
                    trace = sandbox._current
                    if trace is not None:
                        trace.block(b, result, how)
                    return result
                return f
            return make

        def dot(original):
            def f(b, *args, **kwargs):
                trace = sandbox._current
                if trace is not None:
                    trace.dot(b, first(args, kwargs, 0, "a"), first(args, kwargs, 1, "b"))
                    if sandbox.dot_scale is not None:
                        return _scaled_dot(original, b, sandbox.dot_scale, args, kwargs)
                return original(b, *args, **kwargs)
            return f

        if builder_cls is not None:
            hook("create_masked_load", masked_load)
            hook("create_masked_store", masked_store)
            for name in ("create_descriptor_load", "create_descriptor_store", "create_descriptor_gather",
                         "create_descriptor_scatter"):
                hook(name, descriptor)
            hook("create_atomic_rmw", atomic(1, 3))  # (rmwOp, ptr, val, mask, sem, scope)
            hook("create_atomic_cas", atomic(0, None))  # (ptr, cmp, val, sem, scope)
            hook("create_atomic_load", atomic(0, 1, "atomic_load"))  # Triton >= 3.7: (ptr, mask, sem, scope)
            hook("create_atomic_store", atomic(0, 2))  # (ptr, val, mask, sem, scope)
            hook("create_dot", dot)
            for name, how in (("create_make_range", "a tl.arange"), ("create_splat", "a tl.full or tl.zeros"),
                              ("create_broadcast", "a broadcast"), ("create_reshape", "a reshape"),
                              ("create_cat", "a tl.cat"), ("create_join", "a tl.join"),
                              ("create_expand_dims", "an expand_dims")):
                hook(name, built(how))

        fn_cls = getattr(interp, "InterpretedFunction", None)
        if fn_cls is not None:
            original_call = fn_cls.__call__

            def call(self_, *args, **kwargs):
                trace = sandbox._current
                if trace is not None:
                    fn = getattr(self_, "fn", None)
                    course = course_code(fn)
                    if course is not None:  # the course's code, under whatever name
                        trace.helpers.add(tuple(course.rsplit(".", 1)))
                    else:
                        trace.helpers.add((getattr(fn, "__module__", "") or "",
                                           getattr(fn, "__qualname__", "?")))
                        if not _trusted(self_):
                            problem = kernel_object_problem(self_)
                            if problem:
                                sandbox.refuse(problem)
                return original_call(self_, *args, **kwargs)

            self._patch(fn_cls, "__call__", call)

    def written_by_kernel(self, result: torch.Tensor) -> str | None:
        """``None`` if ``result``'s memory went through a launch and is unchanged since; else why not."""
        key = storage_key(result)
        for launch in reversed(self.launches):
            for k, snap in launch.snapshots:
                if k == key:
                    if result.is_cuda:
                        torch.cuda.synchronize()
                    now = _storage_bytes(result)
                    if now.shape != snap.shape or not torch.equal(now, snap):
                        return ("the returned tensor was changed after your last kernel that wrote it "
                                f"({launch.kernel}) finished: the result must come from the kernel itself")
                    return None
        return ("the returned tensor was never passed to a Triton kernel, so no kernel wrote it "
                "(return the output tensor your kernel stores into)")

    def received(self, t: torch.Tensor, launches=None) -> bool:
        """Whether ``t``'s storage was given to one of ``launches`` (default: all)."""
        key = storage_key(t)
        return any(key in l.keys for l in (self.launches if launches is None else launches))

    # -- replay -----------------------------------------------------------------------------------
    def restore(self):
        """Put back every storage a launch received as it was just before the first launch that
        received it."""
        self.internal += 1
        try:
            for view, copy in self.before.values():
                view.copy_(copy)
            if any(v.is_cuda for v, _ in self.before.values()):
                torch.cuda.synchronize()
        finally:
            self.internal -= 1

    def replay(self, launches=None, dot_scale=None):
        """Launch ``launches`` (default: every recorded one) again, in order, with the grids and
        arguments they had, guarded as before but not recorded. The caller restores storages and puts
        new inputs in place first. ``dot_scale`` (in Triton's interpreter): every ``tl.dot(a, b, acc)``
        returns ``acc + dot_scale * (a @ b)`` instead, so that a result made of tl.dot's products scales
        with them (a power of two scales float32 sums exactly), and one computed beside an unused
        ``tl.dot`` does not."""
        self.recording = False
        self.dot_scale = dot_scale
        try:
            with self:
                for launch in (self.launches if launches is None else launches):
                    # the grid as it was resolved, never the answer's grid function again: code of the
                    # answer's own must not run during the replay
                    grid = launch.grid if launch.grid is not None else launch.grid_given
                    if callable(grid):
                        raise Refused("grader: could not read the launch grid of your kernel to launch it again")
                    # through Triton's own class-level run (hooked again by ``with self``), never an attribute of
                    # the kernel object: ``kernel.run = my_run`` must not run the answer's Python again
                    _class_run(launch.jit)(launch.jit, *launch.args, grid=grid, warmup=False, **launch.kwargs)
        finally:
            self.recording = True
            self.dot_scale = None

    # -- context manager --------------------------------------------------------------------------
    def __enter__(self):
        from triton.runtime.interpreter import InterpretedFunction
        from triton.runtime.jit import JITFunction

        # what the answer may have replaced before the grader hooks anything (at import)
        self.triton_problem = triton_tampered(self._hook_ids())
        for cls in (JITFunction, InterpretedFunction):
            self._hook_run(cls)
        self._hook_interpreter()
        self._hook_threads()
        for name in _TENSOR_ESCAPES:
            self._patch(torch.Tensor, name, self._escape(name))
        self._mode = _Guard(self)
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        try:
            self._mode.__exit__(*exc)
        finally:
            # the answer put something else in place of one of the grader's hooks (Triton's run, a thread's
            # start, Tensor.numpy): what it did there went unseen
            for where in reversed(list(self._displaced())):
                self.refusals.append(f"{where} was replaced while the answer ran: the grader hooks it to "
                                     "see what the answer does; leave Triton's, torch's and Python's own "
                                     "functions as they are")
            for owner, name, old, ours in reversed(self._undo):
                if old is _MISSING:
                    delattr(owner, name)
                else:
                    setattr(owner, name, old)
            self._undo.clear()
            # Triton's own builder back where an answer replaced a method (before the grade or during it, hooked by
            # the grader or not)
            for (owner, name), own in _PRISTINE.items():
                if owner.__dict__.get(name, _MISSING) is not own and not _triton_code(owner.__dict__.get(name), frozenset()):
                    setattr(owner, name, own)
            self._current = None
            if _CURRENT_SNAPSHOT:
                changed = _CURRENT_SNAPSHOT[-1].changed()
                if changed:
                    self.refusals.append(grader_changed_message(changed))
        return False


def _pristine_builder() -> dict:
    """Triton's own interpreter-builder methods, as they were when the grader was imported (before any answer
    ran): what a grade puts back where an answer had replaced one before it was graded."""
    try:
        from triton.runtime.interpreter import InterpreterBuilder
    except Exception:  # pragma: no cover
        return {}
    return {(InterpreterBuilder, name): member for name, member in vars(InterpreterBuilder).items()
            if name.startswith("create_") and _triton_code(member, frozenset())}


def _class_run(jit):
    """Triton's class-level ``run`` for the kernel object ``jit`` (``InterpretedFunction.run`` or
    ``JITFunction.run``, as hooked now), whatever the object or a subclass of it holds under that name."""
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    for cls in (InterpretedFunction, JITFunction):
        if isinstance(jit, cls):
            return cls.run
    raise Refused(f"grader: could not launch your kernel again: {type(jit).__name__} is not a Triton kernel")


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


class Watched(list):
    """What a ``watch_calls`` / ``watch_files`` block saw: the calls (a list of names), and ``tampered``, what
    switched the grader's profile hook off or replaced it while the block ran (``None`` if nothing did)."""

    tampered: str | None = None


def _profile_switch(arg) -> str | None:
    """The name of ``arg`` (what a ``c_call`` profile event calls) if it sets this thread's profile hook:
    ``sys.setprofile`` (however it was reached: the same builtin), ``sys._setprofileallthreads`` (Python 3.12+),
    a ``cProfile`` profiler's ``enable`` or ``disable``."""
    if arg is _SETPROFILE or (arg is _SETPROFILE_ALL and arg is not None):
        return "sys.setprofile"
    if type(arg) is types.BuiltinMethodType and isinstance(getattr(arg, "__self__", None), _PROFILER):
        if arg.__name__ in ("enable", "disable"):
            return f"a profiler's {arg.__name__}() (cProfile)"
    return None


_SETPROFILE, _GETPROFILE = sys.setprofile, sys.getprofile  # as they were: the answer may replace sys's
_SETPROFILE_ALL = getattr(sys, "_setprofileallthreads", None)
try:
    from _lsprof import Profiler as _PROFILER
except ImportError:  # pragma: no cover - CPython has it
    _PROFILER = ()


@contextlib.contextmanager
def _profiled(on_call):
    """Install a profile hook that calls ``on_call(frame)`` on each Python call; yields a ``Watched`` list whose
    ``tampered`` tells whether the answer set the profile hook itself inside the block (a ``sys.setprofile(None)``
    would blind the watch; putting it back after does not hide the call), or left another in its place."""
    seen = Watched()
    state = {"closing": False}

    def profile(frame, event, arg):
        if event == "call":
            on_call(frame, seen)
        elif event == "c_call" and not state["closing"] and seen.tampered is None:
            switch = _profile_switch(arg)
            if switch:
                seen.tampered = f"{switch} (at {learner_frame()})"

    previous = _GETPROFILE()
    _SETPROFILE(profile)
    try:
        yield seen
    finally:
        state["closing"] = True
        if _GETPROFILE() is not profile and seen.tampered is None:
            seen.tampered = "sys.setprofile (the grader's profile hook was gone when the answer returned)"
        _SETPROFILE(previous)


@contextlib.contextmanager
def watch_calls(codes):
    """Record calls to any of the code objects ``codes`` (e.g. the library's own answer), also through a
    copy under another name (``code.replace(co_name=...)``): compared by the file and line they come from.
    Yields a ``Watched`` list (``.tampered``: the answer switched the profile hook off, see ``_profiled``)."""
    where = {(os.path.abspath(c.co_filename), c.co_firstlineno) for c in codes}

    def on_call(frame, seen):
        c = frame.f_code
        if (os.path.abspath(c.co_filename), c.co_firstlineno) in where:
            seen.append(c.co_name)

    with _profiled(on_call) as seen:
        yield seen


@contextlib.contextmanager
def watch_files(prefixes):
    """Record calls to any Python function whose source file starts with one of ``prefixes`` (a file
    such as ``kernels/fp4.py``, or a package's folder): yields a list that receives
    ``"module.function"`` of each call, however the function was reached (imported under another name,
    a copy of its code object). For plain-Python answers only: it costs every call a check. The list is a
    ``Watched``: ``.tampered`` says the answer switched the profile hook off (see ``_profiled``)."""
    prefixes = tuple(os.path.abspath(p) for p in prefixes if p)

    def on_call(frame, seen):
        if prefixes:
            path = os.path.abspath(frame.f_code.co_filename)
            if path.startswith(prefixes):
                module = frame.f_globals.get("__name__", os.path.basename(path))
                seen.append(f"{module}.{frame.f_code.co_name}")

    with _profiled(on_call) as seen:
        yield seen


def tampered_message(what: str) -> str:
    """The refusal for an answer that set the profile hook while it was watched (``Watched.tampered``)."""
    return (f"refused: your code called {what} while it was graded: the grader watches the calls an answer makes "
            "through the profile hook, and switching it off hides them; remove it")


def _dtypes_in(value, depth=0):
    if isinstance(value, torch.Tensor):
        yield value.dtype
    elif isinstance(value, torch.dtype):
        yield value
    elif isinstance(value, (tuple, list)) and depth < 3:
        for v in value:
            yield from _dtypes_in(v, depth + 1)
    elif isinstance(value, dict) and depth < 3:
        for v in value.values():
            yield from _dtypes_in(v, depth + 1)


class DtypeGuard(TorchDispatchMode):
    """``with DtypeGuard() as g: ...``: every PyTorch op that takes, makes or names a tensor of an 8-bit or
    4-bit float dtype (``torch.float4_e2m1fn_x2``, ``torch.float8_e8m0fnu``, ...) raises ``Refused``;
    ``g.refusals`` keeps what was refused and where. Other ops run: the plain-PyTorch FP4 exercises are
    written with integer bit operations."""

    def __init__(self):
        super().__init__()
        self.refusals: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        found = [d for d in _dtypes_in((args, kwargs or {})) if d in LOW_PRECISION_DTYPES]
        if found and not _printing():
            what = (f"torch's `{func.overloadpacket.__name__}` on {found[0]} (PyTorch's own 8-bit or 4-bit float "
                    "dtypes do the packing and decoding this exercise asks for)")
            self.refusals.append(f"{what} at {learner_frame()}")
            raise Refused(f"grader: {what} is not allowed here; write the bit operations yourself")
        return func(*args, **(kwargs or {}))


# --------------------------------------------------------------------------------------------------
# the course's reference code, refused while an answer runs
# --------------------------------------------------------------------------------------------------
_REFUSING: list = []  # the sandboxes of the refuse_calls_into blocks that are open, innermost last


def _refusing_stub(*args, **kwargs):
    """What a function of the course's reference code runs while an answer is graded (its ``__code__``,
    renamed): refuse, through the sandbox that is open."""
    import sys as _sys

    from grader.guard import _reference_call_refused

    _reference_call_refused(_sys._getframe(0))


def _reference_call_refused(frame):
    code = frame.f_code
    module = frame.f_globals.get("__name__", "?")
    name = f"{module}.{getattr(code, 'co_qualname', code.co_name)}"
    what = (f"calling {name} (in {module.replace('.', '/')}.py), the course's own code for what this exercise "
            "asks you to write")
    if _REFUSING:
        _REFUSING[-1].refuse(what)
    raise Refused(f"grader: {what} is not allowed while an answer is graded")


def _functions_of(module):
    """The plain Python functions written in ``module``'s file: its own and its classes' methods (not its
    ``@triton.jit`` kernels, which the launch checks refuse by name)."""
    path = os.path.abspath(getattr(module, "__file__", "") or "")
    found = []

    def add(f):
        if isinstance(f, (staticmethod, classmethod)):
            f = f.__func__
        if (isinstance(f, types.FunctionType) and os.path.abspath(f.__code__.co_filename) == path
                and not f.__code__.co_freevars and f not in found):
            found.append(f)

    for value in list(vars(module).values()):
        add(value)
        if isinstance(value, type) and value.__module__ == module.__name__:
            for member in list(vars(value).values()):
                add(member)
    return found


@contextlib.contextmanager
def refuse_calls_into(modules, sandbox):
    """While the block runs, every plain function of ``modules`` (their own and their classes' methods)
    refuses to run: the call raises ``Refused`` and is recorded in ``sandbox.refusals``, however the answer
    reached the function (the module's attribute, ``from kernels.fp8 import quantize``, another name).
    Each function's ``__code__`` is swapped for a refusing stub and put back after, which costs nothing per
    call, unlike a profile hook. Properties and constants stay readable."""
    swapped = []
    try:
        for module in modules:
            for f in _functions_of(module):
                code = f.__code__
                stub = _refusing_stub.__code__.replace(co_name=code.co_name)
                if hasattr(code, "co_qualname"):
                    stub = stub.replace(co_qualname=code.co_qualname)
                swapped.append((f, code, f.__defaults__, f.__kwdefaults__))
                f.__defaults__, f.__kwdefaults__ = None, None
                f.__code__ = stub
        _REFUSING.append(sandbox)
        yield
    finally:
        if _REFUSING and _REFUSING[-1] is sandbox:
            _REFUSING.pop()
        for f, code, defaults, kwdefaults in reversed(swapped):
            f.__code__, f.__defaults__, f.__kwdefaults__ = code, defaults, kwdefaults


# --------------------------------------------------------------------------------------------------
# the grader's own modules, and Triton's interpreter, as they were: an answer must not change them
# --------------------------------------------------------------------------------------------------
def _members(value):
    """What of ``value`` an answer could change in place and we compare: a function's code and defaults, a
    container's items (shallow)."""
    if isinstance(value, types.FunctionType):
        return ("function", value.__code__, value.__defaults__, dict(value.__kwdefaults__ or {}),
                tuple(value.__closure__ or ()))
    if type(value) in (dict, list, set, frozenset, tuple):
        if len(value) > 4096:  # a large table: identity of the container only
            return None
        items = list(value.items()) if type(value) is dict else list(value)
        return ("items", tuple(id(x) for kv in items for x in (kv if type(value) is dict else (kv,))))
    return None


class ModuleSnapshot:
    """Every global of the grader's modules (``grader`` and ``grader.*``), by identity, with each function's
    code, defaults and closure cells, each class's own attributes (and their functions' code) and each
    container's items: ``changed()`` names the first difference, ``restore()`` puts everything back. Taken
    before an answer runs; an answer that replaces ``grader.checks._something`` (or its ``__code__``) to
    blind a check is refused, and the grader is put back for the next answer."""

    _VOLATILE = {("grader.guard", "_CURRENT_SNAPSHOT"), ("grader.guard", "_FOREIGN"), ("grader.guard", "_REFUSING"),
                 ("grader.guard", "_course_index"),
                 ("grader.checks", "_LAST")}  # caches and stacks: their items change, they are never replaced

    def __init__(self, prefixes=("grader",)):
        self.modules = {}
        for name, module in list(sys.modules.items()):
            if module is None or not any(name == p or name.startswith(p + ".") for p in prefixes):
                continue
            space = vars(module)
            entries = {}
            for key, value in list(space.items()):
                classes = None
                if isinstance(value, type) and getattr(value, "__module__", None) == name:
                    classes = {k: (v, _members(v)) for k, v in list(vars(value).items())
                               if k not in ("__dict__", "__weakref__", "__doc__")}
                entries[key] = (value, None if (name, key) in self._VOLATILE else _members(value), classes)
            self.modules[name] = (module, entries)

    def changed(self) -> str | None:
        for name, (module, entries) in self.modules.items():
            space = vars(module)
            if sys.modules.get(name) is not module:
                return f"the module {name} was replaced in sys.modules"
            for key in list(space):
                if key not in entries and not (isinstance(space[key], types.ModuleType)
                                               and (space[key].__name__ + ".").startswith("grader.")):
                    return f"{name}.{key} was added"
            for key, (value, members, classes) in entries.items():
                if key not in space:
                    return f"{name}.{key} was deleted"
                if space[key] is not value:
                    return f"{name}.{key} was replaced"
        # identity first (above), then what the functions above are made of (their code may be swapped)
        for name, (module, entries) in self.modules.items():
            for key, (value, members, classes) in entries.items():
                if members is not None and _members(value) != members:
                    return f"{name}.{key} was changed in place (its code, defaults or items)"
                if classes is not None:
                    own = {k: v for k, v in vars(value).items() if k not in ("__dict__", "__weakref__", "__doc__")}
                    if set(own) != set(classes):
                        return f"{name}.{key}'s attributes were changed"
                    for k, (v, m) in classes.items():
                        if own[k] is not v or (m is not None and _members(v) != m):
                            return f"{name}.{key}.{k} was replaced"
        return None

    def restore(self):
        for name, (module, entries) in self.modules.items():
            sys.modules[name] = module
            space = vars(module)
            for key in list(space):
                if key not in entries and not (isinstance(space[key], types.ModuleType)
                                               and (space[key].__name__ + ".").startswith("grader.")):
                    del space[key]
            for key, (value, members, classes) in entries.items():
                space[key] = value
                self._put_back(value, members)
                if classes is not None:
                    for k in [k for k in vars(value) if k not in classes and k not in ("__dict__", "__weakref__",
                                                                                        "__doc__")]:
                        try:
                            delattr(value, k)
                        except (AttributeError, TypeError):
                            pass
                    for k, (v, m) in classes.items():
                        try:
                            if vars(value).get(k, _MISSING) is not v:
                                setattr(value, k, v)
                        except (AttributeError, TypeError):
                            pass
                        self._put_back(v, m)

    @staticmethod
    def _put_back(value, members):
        if members is None:
            return
        try:
            if members[0] == "function":
                value.__code__, value.__defaults__ = members[1], members[2]
                value.__kwdefaults__ = members[3] or None
        except (AttributeError, TypeError, ValueError):
            pass


_CURRENT_SNAPSHOT: list = []  # the snapshot of the answer now graded (read by the Sandbox on its way out)


def snapshot_tools():
    """What ``grade`` holds on to before an answer runs, to verify the grader after it: the snapshot's own
    functions and their code (put back before they run, should an answer have swapped it)."""
    funcs = (ModuleSnapshot.__init__, ModuleSnapshot.changed, ModuleSnapshot.restore, ModuleSnapshot._put_back,
             _members, grader_changed_message)
    return [(f, f.__code__, f.__defaults__) for f in funcs]


def grader_changed_message(what: str) -> str:
    return (f"your code changed the grader itself ({what}): an answer computes its result, it does not "
            "rewrite the checks that judge it")


def _triton_code(value, allowed) -> bool:
    """Whether a class attribute of Triton's interpreter is Triton's own (its code in Triton's files) or one
    of the grader's hooks (``allowed``: the ids of what a Sandbox put there)."""
    if id(value) in allowed:
        return True
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    if isinstance(value, property):
        return all(f is None or _triton_code(f, allowed) for f in (value.fget, value.fset, value.fdel))
    if isinstance(value, functools.partial):
        return _triton_code(value.func, allowed)
    if isinstance(value, types.MethodType):
        return _triton_code(value.__func__, allowed)
    if isinstance(value, types.FunctionType):
        return _code_path(value).startswith(_TRITON_DIR) and _nothing_else_inside(value)
    return not callable(value) or isinstance(value, (type, types.BuiltinFunctionType, types.ModuleType))


def triton_tampered(allowed=frozenset()) -> str | None:
    """``None`` if every class, function and builder of Triton's interpreter (``triton.runtime.interpreter``)
    and JIT (``triton.runtime.jit``) is Triton's own code (or one of the grader's hooks, ``allowed``); else
    what was replaced. An answer that swaps ``InterpreterBuilder.create_make_range`` at import runs its own
    Python inside every launch, where the grader cannot see it."""
    try:
        from triton.runtime import interpreter as interp
        from triton.runtime import jit as jit_module
    except Exception:  # pragma: no cover
        return None
    for module in (interp, jit_module):
        for key, value in list(vars(module).items()):
            if isinstance(value, type) and value.__module__ == module.__name__:
                for klass in value.__mro__:
                    if not (klass.__module__ + ".").startswith("triton."):
                        continue
                    for name, member in list(vars(klass).items()):
                        if (name in _DATACLASS_METHODS and "__dataclass_fields__" in vars(klass)
                                and isinstance(member, types.FunctionType)
                                and member.__code__.co_filename in _DATACLASS_FILES):
                            continue  # what @dataclass wrote for Triton's own dataclass
                        if not _triton_code(member, allowed):
                            return f"{klass.__qualname__}.{name}"
            elif isinstance(value, types.FunctionType) and value.__module__ == module.__name__:
                if not _triton_code(value, allowed):
                    return f"{module.__name__}.{key}"
            elif type(value).__module__ == module.__name__ and hasattr(value, "__dict__"):
                for name, member in list(vars(value).items()):
                    inside = list(member.values()) if type(member) is dict else [member]
                    if not all(_triton_code(m, allowed) for m in inside):
                        return f"{module.__name__}.{key}.{name}"
    return None


def triton_tampered_message(what: str) -> str:
    return (f"Triton's {what} is not Triton's own code (replaced by your code): the interpreter would run your "
            "Python inside every launch; leave Triton's interpreter as it is")


_PRISTINE = _pristine_builder()
