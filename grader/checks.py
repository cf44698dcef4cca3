"""The checks themselves. They run where the learner's function lives: in the notebook's kernel.

``check(name, fn)`` is what a notebook calls; ``headless(...)`` is what ``python -m grader`` runs in
the kernel it started. Both go through ``grade``, which never raises for anything the learner's code
does (it returns a ``Result``), ``sys.exit()`` and ``KeyboardInterrupt`` included.

A matmul exercise calls the learner's function on fresh operands (ragged, strided, transposed, every
other column, one row, one column, a long K, a precision case) inside a ``guard.Sandbox``, then checks,
in order: nothing refused or out of bounds; a kernel of the learner's own ran and no course kernel did;
no course ``@triton.jit`` helper the exercise asks the learner to write was called; the launches follow
the exercise's schedule (persistent: at most ``num_programs`` programs a launch; TMA: every kernel that
ran loads through descriptors only); the result is the plain tensor a kernel wrote, every element
written, the values right against a float64 reference computed after the call; in the interpreter,
each element of C stored exactly once, by the program whose tile it is, from loads of its own rows of A
and columns of B; and finally a replay: the recorded launches run again on new A and B, and C must follow.

Chapter 03's other two exercises: ``stream_k_pieces`` (plain Python) is called for every program of fixed and
random problems (``num_programs`` never above the iterations, as a launch clamps it); every ``(tile, K step)``
must be computed exactly once, with no empty or out-of-range piece, before each program's pieces are compared
with ``kernels.schedule.stream_k_chunks``; calls into the course's stream-K functions are refused
(``watch_calls``). ``splitk_reduce`` (a Triton kernel) runs in the sandbox with ``kernels.splitk`` refused
(``refuse_calls_into``); C must hold exactly the bits of the float32 sum of the partials in the order
``s = 0, 1, ...``, computed step by step in NumPy and cast to C's dtype (another order, a float64 or float16
accumulator, a missing split are named); the launch must have one program per block of C, and in the
interpreter each element of W is read once and each of C stored once; bfloat16 is checked on a GPU only (the
interpreter rounds float32 to bfloat16 another way); then the replay on new partial sums.

The FP8 and FP4 exercises (chapters 06 and 07) follow the same pattern with their own references:
``quantize_e4m3`` must give exactly the e4m3 values of ``kernels.fp8.quantize`` (either neighbour where
the order of a kernel's float32 operations decides, never in rows built of exact ties) and scales within
2 float32 ulps of ``amax / 448``; ``scaled_matmul_e4m3`` every element within one bfloat16 step plus the
accumulation error, with ``tl.dot`` on the e4m3 tiles themselves (read from what ran); ``dequantize_mxfp4``
exact values. Their sandbox also refuses host-side casts to or from 8-bit and 4-bit floats and every call
into the course's reference code (``kernels.fp8``, ``kernels.fp4``, ``kernels.quantize``:
``guard.refuse_calls_into``); no tensor can be handed to NumPy, and anything computed outside a kernel
fails the replay. In the interpreter, ``scaled_matmul_e4m3``'s replay doubles every ``tl.dot``'s product,
and C must double with it. The plain-PyTorch ``pack_e2m1`` and
``unpack_e2m1`` run under ``guard.DtypeGuard`` (no PyTorch float4/float8 dtypes) and ``guard.watch_files``
(no calls into ``kernels/fp4.py`` and its siblings, or torchao).

Chapter 08: ``online_softmax_update`` (plain PyTorch, float64) is compared with the grader's own float64
step on a first tile, states it never produced, tiles that raise or stay below every row's maximum, rows
masked so far or in the tile, and chains of tiles ending in the whole rows' softmax and log-sum-exp; calls
into ``kernels/attention.py`` are refused (``guard.watch_files``, and ``refuse_calls_into(kernels.attention)``,
which holds even with the profile hook switched off; setting the hook, as any thread, is refused too) and the
inputs must stay unchanged.
``attention_forward`` runs in the sandbox with ``kernels.attention`` refused (``refuse_calls_into``), so
PyTorch's products, softmax and ``scaled_dot_product_attention`` cannot run on the host; O and the
log-sum-exp are checked against float64 (the log-sum-exp within a few float32 steps), and in the
interpreter the trace must show stores only into the elements of O and lse (not elsewhere in their
allocations), each element once, and loads of at most ``block_n`` rows of K or V at a time (the block_n the
check asked for, else the wrapper's default: never the kernel's own BLOCK_N), each row once per program (one
pass over the keys: the online softmax, not a pass for the maximum and another for the sums), from the
program's own (batch, head), none wholly above the diagonal when causal (the ``S x S`` scores never reach
memory, nor a whole row of them a program's registers); finally the replay on new q, k, v. A wrong O whose
every score is off by one factor gets a hint that names the scale.
"""
from __future__ import annotations

import ast
import contextlib
import inspect
import json
import os
import random
import re
import textwrap
import time
import traceback
import zlib

import kernels  # noqa: F401  (decides the world before triton is imported)

import numpy as np
import torch

from kernels import DEVICE, ON_GPU, pick
from kernels import fp4 as _fp4
from kernels import fp8 as _fp8
from kernels import protocol as _protocol
from kernels import quantize as _quantize
from kernels import schedule as _schedule
from kernels import splitk as _splitk
from kernels import testing as T

from . import guard as _guard
from .guard import (DtypeGuard, Refused, Sandbox, Timeout, View, course_code, learner_frame, refuse_calls_into,
                    spawners, tampered_message, time_limit, watch_calls, watch_files)
from .registry import EXERCISES, HEADLESS_ENV
from .report import Result, SubCheck, new_seed

_LAST: dict[str, Result] = {}


class _Stop(Exception):
    """A sub-check failed: stop this exercise with ``status``."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def _not_implemented(exc: BaseException) -> bool:
    """Whether ``exc`` is the exercise's stub (or the learner's own ``raise NotImplementedError``), not a
    NotImplementedError raised inside Triton or torch (block pointers in Triton 3.9, say)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, NotImplementedError):
            frames = traceback.extract_tb(exc.__traceback__)
            inner = os.path.abspath(frames[-1].filename) if frames else ""
            return "replace this line with your code" in str(exc) or not inner.startswith(_LIB_PATHS)
        if "NotImplementedError" in str(exc)[:200] and "replace this line with your code" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


_LIB_PATHS = tuple(os.path.dirname(os.path.abspath(m.__file__)) + os.sep
                   for m in (torch, __import__("triton"), __import__("numpy")))


_DOT_SHAPES = re.compile(r"Input shapes should have M >= (\d+), N >= (\d+) and K >= (\d+)")


def describe_exception(exc: BaseException) -> str:
    """``Type: message (where)`` in one line, from the innermost exception of a chain; the kernel line
    when Triton's compiler says which (its CompilationError holds the source and a caret)."""
    chain, seen = [], set()
    e = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        chain.append(e)
        e = e.__cause__
    inner = chain[-1]  # Triton's interpreter and compiler wrap the real error
    lines = str(inner).split("\n")
    where = learner_frame(inner.__traceback__)
    for e in chain:
        elines = str(e).split("\n")
        carets = [i for i, line in enumerate(elines) if line.strip() == "^"]
        if carets and carets[-1] > 0:  # CompilationError: "at L:C:", kernel source, "^", message
            k = carets[-1]
            where = f"the kernel line `{elines[k - 1].strip()}`"
            if e is inner:
                lines = elines[k + 1:] or ["(no message)"]
            break
    if where == "an unknown place":
        for e in reversed(chain[:-1]):
            found = learner_frame(e.__traceback__)
            if found != "an unknown place":
                where = found
                break
    text = " ".join(" ".join(lines).split())
    dot = _DOT_SHAPES.search(" ".join(str(e) for e in chain))
    if dot:
        text = (f"tl.dot needs K (BLOCK_K) >= {dot.group(3)} on a GPU (M >= {dot.group(1)}, N >= "
                f"{dot.group(2)}): a smaller block runs in the interpreter but does not compile here. " + text)
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(inner).__name__}: {text} (at {where})"


_WORLD_ERRORS = ("Cannot call @triton.jit'd outside of the scope of a kernel", "0 active drivers")


def _world_message(fn, error: BaseException | None = None) -> str | None:
    """Why the learner's kernel cannot run in this process (decorated before ``import kernels``
    switched Triton's world), or ``None``."""
    for obj in _jit_objects_near(fn):
        try:
            msg = kernels.world_mismatch(obj)
        except Exception:
            msg = None
        if msg:
            return msg
    text, seen, e = "", set(), error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        text += str(e)
        e = e.__cause__ or e.__context__
    if "0 active drivers" in text and not ON_GPU and _autotuned_near(fn):
        return ("triton.autotune times every configuration on a GPU, so it cannot run in Triton's interpreter: "
                "launch one configuration here (e.g. block sizes from kernels.pick(cpu=..., gpu=...)) and "
                "keep the autotuner for a GPU")
    if any(w in text for w in _WORLD_ERRORS):
        return ("a @triton.jit function was made before `import kernels` chose this process's world "
                "(GPU or interpreter), so it cannot run here: restart the Python kernel and run "
                "`import kernels` first (the notebook's first cell), then your cells again")
    return None


def _autotuned_near(fn) -> bool:
    """Whether one of the @triton.jit objects near the learner's function is an autotuner."""
    return any(type(obj).__name__ == "Autotuner" or type(getattr(obj, "fn", None)).__name__ == "Autotuner"
               for obj in _jit_objects_near(fn))


def _jit_objects_near(fn):
    """@triton.jit objects the learner's function can reach: its globals and closure."""
    space = dict(getattr(fn, "__globals__", {}) or {})
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            space[id(cell)] = cell.cell_contents
        except ValueError:
            pass
    for value in space.values():
        if hasattr(value, "fn") and hasattr(value, "run") and not isinstance(value, type):
            yield value


def _accepts(fn, name) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


# --------------------------------------------------------------------------------------------------
# matmul exercises: operands
# --------------------------------------------------------------------------------------------------
_IN_PAD = 1000.0  # what surrounds the inputs: reading past an edge changes the result a lot
_IN_GUARD_ROWS = 64  # rows of _IN_PAD below an input: a K loop that runs a block too far stays inside
_OUT_PAD = -4096.0  # what surrounds a guarded output: writing past an edge shows up
# The NaN a guarded output starts as, with a payload of our own: an element that still holds exactly
# these bits was never written, while a NaN the kernel computed (from garbage it read) has other bits.
_POISON = {torch.float32: (torch.int32, 0x7FC0DEAD), torch.float16: (torch.int16, 0x7E5A),
           torch.bfloat16: (torch.int16, 0x7FDA)}

# How an operand sits in memory. "row": rows of the view are contiguous and K (or N) apart;
# "padded": rows inside a wider buffer (row-aligned for TMA: 16-byte rows); "col": column-major, a
# transposed view; "every_other": every other column of a wider buffer (column stride 2).
_LAYOUTS = {
    "row": "",
    "padded": "strided views in padded buffers",
    "col": "column-major views: A, B and C transposed in memory",
    "every_other": "every other column of wider buffers: column strides 2",
}


def _place(values, pad, layout, aligned=False, guard=_IN_GUARD_ROWS):
    """``values`` (rows x cols, on the CPU) copied into a view of a larger buffer filled with ``pad``:
    returns ``(buffer, view)``. Reading a little past an edge of the view reads ``pad``."""
    rows, cols = values.shape
    dt = values.dtype
    if layout == "col":
        big = torch.full((cols + 1 + guard, rows + 3), pad, dtype=dt, device=DEVICE)
        view = big[1:cols + 1, 1:rows + 1].t()
    elif layout == "every_other":
        big = torch.full((rows + 1 + guard, 2 * cols + 2), pad, dtype=dt, device=DEVICE)
        view = big[1:rows + 1, 1:2 * cols + 1:2]
    elif layout == "padded":
        c0, extra = (8, 16) if aligned else (1, 3)  # TMA: 8 elements before and after each row
        big = torch.full((rows + 1 + guard, cols + extra), pad, dtype=dt, device=DEVICE)
        view = big[1:rows + 1, c0:c0 + cols]
    else:
        big = torch.full((rows + 1 + guard, cols), pad, dtype=dt, device=DEVICE)
        view = big[1:rows + 1]
    view.copy_(values)
    return big, view


def _random_operands(case, gen):
    """Values of A (M x K) and B (K x N) for ``case``, on the CPU in the case's dtype.

    ``precision``: all positive; the first 128 columns of A (rows of B) large, the rest small, so that
    after the first K steps every small product lies below half a float16 ulp of the running sum: a
    float16 accumulator drops them (relative error ~1e-2), float32 keeps them (~2e-4)."""
    M, N, K, dtype = case.M, case.N, case.K, case.dtype
    if case.values == "precision":
        big = min(K, 128)

        def make(rows, cols, big_rows):
            t = torch.rand(rows, cols, generator=gen) * 0.015 + 0.015
            sl = (slice(None), slice(0, big)) if not big_rows else (slice(0, big), slice(None))
            t[sl] = torch.rand(t[sl].shape, generator=gen) * 0.5 + 0.5
            return t

        return make(M, K, False).to(dtype), make(K, N, True).to(dtype)
    return (torch.randn(M, K, generator=gen, dtype=torch.float32).to(dtype),
            torch.randn(K, N, generator=gen, dtype=torch.float32).to(dtype))


def _poison(view):
    int_dtype, bits = _POISON[view.dtype]
    view.view(int_dtype).fill_(bits)


def _unwritten(res, poisoned: bool):
    """Elements still holding the poison: our exact NaN bits if we made the output, else any NaN."""
    if poisoned and res.dtype in _POISON:
        int_dtype, bits = _POISON[res.dtype]
        return res.view(int_dtype) == bits
    return torch.isnan(res)


def _first(mask):
    return tuple(int(i) for i in mask.nonzero()[0].tolist())


def _layout_note(case, what="addresses"):
    """A hint about the case's memory layout, for messages about wrong addresses or values."""
    if case.layout == "col":
        return (f"; here A, B and C are column-major (transposed) views, e.g. A's strides are "
                f"(1, {case.strides['A'][1]}): do your {what} use stride_am and stride_ak, stride_bk and "
                f"stride_bn, stride_cm and stride_cn, and never assume a stride of 1?")
    if case.layout == "every_other":
        return (f"; here A, B and C take every other column of a wider buffer (A's strides are "
                f"{case.strides['A']}): do your {what} multiply column indices by stride_ak, stride_bn "
                f"and stride_cn instead of assuming 1?")
    if case.layout == "padded" and not case.tma:
        return (f"; here A, B and C are views inside wider buffers (A's rows are {case.strides['A'][0]} "
                f"elements apart, not K = {case.K}): do your {what} use the row strides?")
    return ""


def _unwritten_message(nan, case, persistent=None):
    M, N = case.M, case.N
    count = int(nan.sum())
    i, j = _first(nan)
    hint = ""
    if case.tma:  # no masks to blame: the store's offsets are what a TMA answer gets wrong
        hint = ("; with TMA every tile is stored by c_desc.store([row0, col0], ...) at its first row and "
                "column, in elements (the descriptor clips what lies past the edges): is that where your "
                "store goes?")
    elif case.layout in ("col", "every_other"):
        hint = _layout_note(case, "stores")
    elif persistent is not None:  # the loop, not the masks, is what a persistent answer gets wrong
        hint = (f"; {persistent} program(s) ran, and each must compute every tile of its loop, tile ids "
                "program_id, program_id + num_programs, program_id + 2 * num_programs, ... up to num_tiles: "
                "does each program stop after its first tile (a missing stride or loop)?")
    elif M > 1 and bool(nan[M - 1].all()) and not bool(nan[: M - 1].all()):
        hint = f"; the whole last row (m = {M - 1}) is missing: check the row mask / grid"
    elif N > 1 and bool(nan[:, N - 1].all()) and not bool(nan[:, : N - 1].all()):
        hint = f"; the whole last column (n = {N - 1}) is missing: check the column mask / grid"
    elif case.layout != "row":
        hint = _layout_note(case, "stores")
    return (f"{count} of {M * N} outputs never written (still the NaN the output was filled with), "
            f"first at [{i}, {j}]{hint}")


def _canary_message(big, view, M, N):
    """Where the kernel wrote into the buffer around C, or ``None``."""
    inside = torch.zeros(big.numel(), dtype=torch.bool, device=big.device)
    torch.as_strided(inside, view.shape, view.stride(), view.storage_offset() - big.storage_offset()).fill_(True)
    changed = ~inside & ~(big.reshape(-1) == _OUT_PAD)
    if not bool(changed.any()):
        return None
    lin = int(changed.nonzero()[0, 0])
    ok, rows, cols, _ = View("C", view).index(np.array([big.data_ptr() + lin * big.element_size()], np.uint64))
    return (f"the kernel wrote outside C: at row {int(rows[0])}, column {int(cols[0])} (C is {M}x{N}: rows "
            f"0..{M - 1}, columns 0..{N - 1}); check the store mask")


def _first_k_only(res, a, b, tol):
    """The chunk ``kb`` if ``res`` is, within ``tol``, the product over only the first ``kb`` values of
    K (what a kernel without its K loop computes); else ``None``."""
    K = a.shape[1]
    for kb in (8, 16, 32, 64, 128, 256):
        if kb >= K:
            break
        partial = a[:, :kb].to(torch.float64) @ b[:kb, :].to(torch.float64)
        if T.rel_error(res, partial.to(res.device)) <= tol:
            return kb
    return None


def _values_message(res, ref, dtype, case=None, a=None, b=None):
    """``None`` if ``res`` is within the dtype's tolerance of the float64 ``ref``; else what is wrong.
    ``a`` and ``b`` (the inputs' values), when given, let it recognise a kernel without a K loop."""
    tol = T.tolerance(dtype)
    err = T.rel_error(res, ref)
    if err <= tol:
        return None
    precision = case is not None and case.values == "precision" and err < 1
    # (a float16 accumulator stops growing after a few hundred positive terms, which can look like the
    # product over only the first chunk of K: the precision case says what it is about first)
    kb = _first_k_only(res, a, b, tol) if a is not None and b is not None and not precision else None
    if kb is not None:
        return (f"wrong values: relative error {err:.2e} > tolerance {tol:.0e}, and C is the product over only "
                f"the first {kb} of K = {a.shape[1]} values: does your kernel loop over all of K, e.g. "
                f"`for k0 in range(0, K, BLOCK_K)`, loading and adding every chunk?")
    got = res.detach().to("cpu", torch.float64)
    ref = ref.detach().to("cpu", torch.float64)
    diff = (got - ref).abs()
    rms = float(ref.pow(2).mean().sqrt()) or 1.0
    bad = ~torch.isfinite(got) | (diff > tol * (ref.abs() + rms))
    i, j = _first(bad) if bool(bad.any()) else _first(diff == diff.max())
    hint = " (reading past an edge of A or B? what surrounds them here is 1000)" if err > 10 else ""
    if precision:
        hint = (" (all values are positive and K is long here: a float16 accumulator drops the small late "
                "terms; accumulate in float32, e.g. tl.zeros(..., dtype=tl.float32), and convert to C's "
                "dtype only when storing)")
    elif case is not None and case.layout != "row":
        hint += _layout_note(case, "loads")
    elif case is not None and case.label == "long K":
        hint += f" (K = {case.K} is longer than any block here: does your kernel loop over all of K?)"
    return (f"wrong values: relative error {err:.2e} > tolerance {tol:.0e} for {str(dtype)[6:]}; "
            f"first bad element [{i}, {j}]: expected {float(ref[i, j]):.6g}, got {float(got[i, j]):.6g}{hint}")


def _dims(rng, lo, hi, avoid=16):
    """A size in [lo, hi] that is not a multiple of ``avoid`` (so not of any block >= 16 either)."""
    x = rng.randint(lo, hi)
    return x + 1 if x % avoid == 0 else x


class _Case:
    """One call of the learner's function. ``layout``: how A, B and C sit in memory (``_LAYOUTS``);
    ``own_out``: the wrapper allocates C itself (no guard around it); ``programs``: a persistent launch,
    whose kernels start at most ``programs`` programs (exactly ``kwargs["num_programs"]`` when given);
    ``tma``: the learner's kernels must load through TMA descriptors, and padded views keep every row
    16-byte aligned; ``values``: ``"randn"`` or ``"precision"`` (see ``_random_operands``)."""

    def __init__(self, label, M, N, K, dtype, padded=False, kwargs=None, gpu_only=False, own_out=False,
                 programs=None, tma=False, layout=None, values="randn"):
        self.label, self.M, self.N, self.K, self.dtype = label, M, N, K, dtype
        self.layout = layout or ("padded" if padded else "row")
        self.kwargs, self.gpu_only, self.own_out = kwargs or {}, gpu_only, own_out
        self.programs, self.tma, self.values = programs, tma, values
        self.strides = {}

    @property
    def padded(self):
        return self.layout != "row"

    def title(self):
        kw = "".join(f", {k}={v}" for k, v in self.kwargs.items())
        lay = _LAYOUTS[self.layout]
        if self.layout == "padded" and self.tma:
            lay = "row-aligned views in padded buffers"
        return f"{str(self.dtype)[6:]} {self.M}x{self.N}x{self.K} ({self.label}{', ' + lay if lay else ''}{kw})"


class _Exercise:
    """What a matmul exercise asks: which programs compute which elements of C (``schedule``: "element",
    "tile" or "persistent"), and which of the course's ``@triton.jit`` helpers it gives (``given``:
    prefixes of ``module.qualname``; every other helper from ``kernels`` is the learner's to write)."""

    def __init__(self, name, schedule, given=()):
        self.name, self.schedule, self.given = name, schedule, tuple(given)


_EXERCISE = {
    "naive_matmul": _Exercise("naive_matmul", "element"),
    "tiled_matmul": _Exercise("tiled_matmul", "tile"),
    "persistent_matmul": _Exercise("persistent_matmul", "persistent",
                                   ("kernels.tiled.matmul_tile", "kernels.schedule.")),
    "tma_matmul": _Exercise("tma_matmul", "persistent", ("kernels.schedule.",)),
}


# --------------------------------------------------------------------------------------------------
# matmul exercises: what ran
# --------------------------------------------------------------------------------------------------
def _program_name(launch, key):
    x, y, z = key
    g = launch.grid or (0, 1, 1)
    where = f"{x}" if g[1] == 1 and g[2] == 1 else (f"({x}, {y})" if g[2] == 1 else f"({x}, {y}, {z})")
    return f"program {where} of {launch.kernel}"


def _resolve(node, space):
    """The object a name or dotted name (``kernels.tiled.matmul_tile``) in a kernel's source stands for."""
    if isinstance(node, ast.Name):
        return space.get(node.id)
    if isinstance(node, ast.Attribute):
        owner = _resolve(node.value, space)
        return getattr(owner, node.attr, None) if owner is not None else None
    return None


def _jit_helpers(jit, seen=None, depth=0):
    """(module, qualname) of the @triton.jit functions a kernel's source names (called or not), and of
    those their sources name, a few levels deep: what a compiled kernel may have called."""
    seen = set() if seen is None else seen
    fn = getattr(jit, "fn", None)
    if fn is None or id(fn) in seen or depth > 4:
        return []
    seen.add(id(fn))
    try:
        tree = ast.parse(textwrap.dedent(getattr(jit, "src", None) or inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return []
    space = getattr(fn, "__globals__", {})
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Name, ast.Attribute)):
            helper = _resolve(node, space)
            inner = getattr(helper, "fn", None)
            if helper is not jit and callable(inner) and hasattr(helper, "run"):
                course = course_code(inner)  # the course's code under whatever module or name
                found.append(tuple(course.rsplit(".", 1)) if course else
                             (getattr(inner, "__module__", "") or "", getattr(inner, "__qualname__", "?")))
                found += _jit_helpers(helper, seen, depth + 1)
    return found


def _helpers_message(ex, launches):
    """``None`` unless one of the learner's kernels called a course kernel or helper that this exercise
    asks the learner to write."""
    for launch in launches:
        called = launch.trace.helpers if launch.trace is not None and not ON_GPU else _jit_helpers(launch.jit)
        for module, qualname in sorted(called):
            full = f"{module}.{qualname}"
            if module.split(".")[0] != "kernels" or full.startswith(ex.given):
                continue
            given = ""
            if ex.given:
                names = ", ".join(g.rstrip(".") for g in ex.given)
                given = f" (in this exercise you may call {names})"
            return (f"your kernel {launch.kernel} calls {full}, the course's own code for what this exercise "
                    f"asks you to write{given}; write it yourself")
    return None


def _programs_message(case, launches, res):
    """``None`` if the learner's kernels started as many programs as a persistent launch should
    (``case.programs``); else what is wrong."""
    wanted = case.kwargs.get("num_programs")
    limit = wanted if wanted is not None else case.programs
    loop = ("a persistent kernel launches num_programs programs, and each one loops over the tiles "
            "`for tile_id in range(tl.program_id(0), num_tiles, num_programs)`; one program per tile is "
            "chapter 02's kernel")
    for l in launches:
        if l.programs is None:
            return f"could not read the launch grid of your kernel {l.kernel}: launch it as kernel[(num_programs,)](...)"
        if l.programs > limit:
            asked = (f"num_programs={wanted} was asked for" if wanted is not None else
                     f"without num_programs the wrapper should start one program per SM (at most {limit} here)")
            return f"{asked}, but {l.grid_text()} started {l.programs} programs: {loop}"
    own = [l for l in launches if l.touches(res)]
    if not own:
        return None  # reported elsewhere (the result never went through a kernel of the learner's)
    total = sum(l.programs for l in own)
    grids = ", ".join(l.grid_text() for l in own[:3]) + (f", ... ({len(own)} launches)" if len(own) > 3 else "")
    if wanted is not None and total != wanted:
        tiles = _num_tiles(case, own)
        if total < wanted and tiles is not None and total == min(wanted, tiles):
            return None  # fewer programs than asked, because there are only that many tiles: fine
        return f"num_programs={wanted} was asked for, but your kernels started {total} programs ({grids}): {loop}"
    return None


def _num_tiles(case, launches):
    """How many tiles C has with the learner's tile (what its tl.dot computed, or its BLOCK_M/BLOCK_N)."""
    for l in launches:
        programs = l.trace.programs.values() if l.trace is not None and l.trace.programs else [None]
        for p in programs:
            shape = _tile_shape(l, case, p)
            if shape is not None:
                bm, bn = shape
                return -(-case.M // bm) * -(-case.N // bn)
    return None


_TMA_REFUSAL = ("this exercise is about TMA: load the tiles of A and B through tensor descriptors "
                "(a_desc.load([row, col]), with descriptors from tl.make_tensor_descriptor or host-side "
                "TensorDescriptors), not tl.load on pointers")
_IR_DESCRIPTOR_LOADS = re.compile(r"\btt\.descriptor_load\b|\bttng\.async_tma_copy_global_to_local\b"
                                  r"|\btt\.descriptor_gather\b")
_IR_POINTER_LOADS = re.compile(r"\btt\.load\b|\bttg\.async_copy_global_to_local\b|\btt\.atomic_rmw\b"
                               r"|\btt\.atomic_cas\b")


_IR_POINTER_STORES = re.compile(r"\btt\.store\b")


def _ir_loads(launch):
    """(descriptor loads, pointer loads, pointer stores) in a compiled kernel's TTIR (or TTGIR), or None."""
    asm = getattr(launch.compiled, "asm", None)
    if not asm:
        return None
    text = asm.get("ttir") or asm.get("ttgir")
    if not text:
        return None
    return (len(_IR_DESCRIPTOR_LOADS.findall(text)), len(_IR_POINTER_LOADS.findall(text)),
            len(_IR_POINTER_STORES.findall(text)))


def _tma_message(launches):
    """``None`` if every kernel of the learner's that ran loads through TMA descriptors and through
    nothing else; else why it is refused. What ran: the interpreter's counts, or the compiled code."""
    for l in launches:
        if l.trace is not None and not ON_GPU:
            desc = sum(p.descriptor_loads for p in l.trace.programs.values())
            ptr = sum(p.pointer_loads + p.atomics for p in l.trace.programs.values())
            ptr_stores = sum(p.pointer_stores for p in l.trace.programs.values())
        else:
            counts = _ir_loads(l)
            if counts is None:  # no compiled code to read: fall back on the source
                builds, loads = _uses_tma(_jit_sources(l.jit))
                desc, ptr, ptr_stores = int(loads), 0, 0
            else:
                desc, ptr, ptr_stores = counts
        if ptr:
            return f"your kernel {l.kernel} loaded through pointers ({ptr} tl.load{'s' if ptr > 1 else ''}): {_TMA_REFUSAL}"
        if ptr_stores:
            return (f"your kernel {l.kernel} stored through pointers (tl.store): this exercise stores each C tile "
                    f"through C's descriptor too, c_desc.store([row0, col0], tile)")
        # a kernel that loads nothing at all is no TMA question: its values (or its stores) are wrong
    return None


def _named_arg(launch, name, default=None):
    """The value a launch gave its parameter ``name`` (positionally or by keyword), or ``default``."""
    from .guard import _arg_names

    named = dict(zip(_arg_names(launch.jit), launch.args))
    named.update(launch.kwargs)
    return named.get(name, default)


def _tile_shape(launch, case, program=None):
    """(BLOCK_M, BLOCK_N) of a launch: the output tile of the program's ``tl.dot`` (what ran), else its
    BLOCK_M / BLOCK_N arguments, else the case's block_m / block_n, else None."""
    if program is not None and program.dot_shape is not None:
        return program.dot_shape
    bm = _named_arg(launch, "BLOCK_M", case.kwargs.get("block_m"))
    bn = _named_arg(launch, "BLOCK_N", case.kwargs.get("block_n"))
    if isinstance(bm, int) and isinstance(bn, int) and bm > 0 and bn > 0:
        return bm, bn
    return None


def _bits(values: np.ndarray, itemsize: int):
    values = np.ascontiguousarray(values)
    if values.itemsize != itemsize:
        return None
    return values.view({2: np.int16, 4: np.int32, 8: np.int64}[itemsize])


def _work_message(case, ex, launches, a, b, res):
    """In the interpreter: ``None`` if every element of C was stored exactly once, by a program of the
    learner's whose schedule it fits, with the value C now holds, from loads of that program's own rows
    of A and columns of B; else ``(status, message)``."""
    traced = [l for l in launches if l.trace is not None and l.trace.programs]
    if not traced or ON_GPU:
        return None
    M, N, K = case.M, case.N, case.K
    vA, vB, vC = View("A", a), View("B", b), View("C", res)
    count = np.zeros(M * N, dtype=np.int64)
    stored_bits = np.zeros(M * N, dtype={2: np.int16, 4: np.int32}[res.element_size()])
    by_atomic = np.zeros(M * N, dtype=bool)
    programs = []  # (launch, key, lin of C stored)
    for l in traced:
        for key, p in l.trace.programs.items():
            lins = []
            for addr, vals in p.stores:
                inside = vC.in_storage(addr)
                if not inside.any():
                    continue
                ok, rows, cols, _ = vC.index(addr[inside])
                if not ok.all():
                    k = int(np.argmin(ok))
                    return "fail", (f"{_program_name(l, key)} stored into the memory around C (at row "
                                    f"{int(rows[k])}, column {int(cols[k])}, C is {M}x{N}): check the store mask")
                lin = rows * N + cols
                np.add.at(count, lin, 1)
                bits = None if vals is None else _bits(vals[inside], res.element_size())
                if bits is None:  # an atomic, or values in another width: nothing to compare
                    by_atomic[lin] = True
                else:
                    stored_bits[lin] = bits
                lins.append(lin)
            if lins:
                programs.append((l, key, p, np.concatenate(lins)))

    twice = np.nonzero(count > 1)[0]
    if twice.size:
        e = int(twice[0])
        i, j = divmod(e, N)
        who = [_program_name(l, key) for l, key, _, lin in programs if (lin == e).any()]
        by = f" (by {who[0]} and {who[1]})" if len(who) > 1 else f" (by {who[0]})" if who else ""
        return "fail", (f"C[{i}, {j}] was stored {int(count[e])} times{by}: every element of C must be "
                        f"computed and stored once, by the one program whose {'element' if ex.schedule == 'element' else 'tile'} "
                        f"it is (programs that redo other programs' work waste the GPU)"
                        f"{_layout_note(case, 'stores') if case.layout in ('col', 'every_other') else ''}")
    final = res.detach().view({2: torch.int16, 4: torch.int32}[res.element_size()]).reshape(-1).cpu().numpy()
    never = np.nonzero(count == 0)[0]
    if never.size:
        i, j = divmod(int(never[0]), N)
        return "refused", (f"C[{i}, {j}] holds a value that no store of your kernels wrote there: C must be "
                           f"written by your kernel's tl.store (or descriptor store), not by other code")
    differs = np.nonzero((final != stored_bits) & ~by_atomic)[0]
    if differs.size:
        i, j = divmod(int(differs[0]), N)
        return "refused", (f"C[{i}, {j}] is not the value your kernel stored there: something other than "
                           f"your kernel's stores changed C")

    for l, key, p, lin in programs:
        rows, cols = np.unique(lin // N), np.unique(lin % N)
        name = _program_name(l, key)
        shape = _tile_shape(l, case, p)
        if ex.schedule == "element" and lin.size != 1:
            return "fail", (f"{name} stored {lin.size} elements of C; in this exercise each program computes "
                            f"one element, C[m, n] for program (m, n)")
        if shape is not None and ex.schedule in ("tile", "persistent"):
            bm, bn = shape
            tiles = np.unique((lin // N) // bm * (N + bn) + (lin % N) // bn)
            if ex.schedule == "tile" and tiles.size != 1:
                return "fail", (f"{name} stored elements of {tiles.size} tiles of C ({bm}x{bn} tiles): in this "
                                f"exercise each program computes one BLOCK_M x BLOCK_N tile")
            if ex.schedule == "persistent":
                num_tiles = -(-M // bm) * -(-N // bn)
                P = l.programs or 1
                want = len(range(key[0], num_tiles, P))
                group_m = _named_arg(l, "GROUP_M")
                if tiles.size == want and isinstance(group_m, int) and group_m > 0:
                    grid_m, grid_n = -(-M // bm), -(-N // bn)
                    expected = {_schedule.grouped_tile(t, grid_m, grid_n, group_m) for t in range(key[0], num_tiles, P)}
                    got = {(int(r) // bm, int(c) // bn) for r, c in zip(lin // N, lin % N)}
                    if got != expected:
                        p0 = key[0]
                        return "fail", (f"{name} computed the tiles {sorted(got)[:4]}{'...' if len(got) > 4 else ''}, "
                                        f"but tile ids {p0}, {p0} + {P}, ... in grouped order (GROUP_M={group_m}) are "
                                        f"{sorted(expected)[:4]}{'...' if len(expected) > 4 else ''}: map each tile id "
                                        f"with the grouped order, as chapter 02 did")
                if tiles.size != want:
                    p0 = key[0]
                    return "fail", (f"{name} stored {tiles.size} tile{'s' if tiles.size != 1 else ''} of C, but with "
                                    f"{P} programs and {num_tiles} tiles of {bm}x{bn}, program {p0} computes tile ids "
                                    f"{p0}, {p0} + {P}, {p0} + 2 * {P}, ... below {num_tiles}: "
                                    f"{want} tile{'s' if want != 1 else ''} (each tile once, in grouped order)")
        loaded = {}
        for label, view, R, C_ in (("A", vA, M, K), ("B", vB, K, N)):
            mask = np.zeros(R * C_, dtype=bool)
            for addr in p.loads:
                inside = view.in_storage(addr)
                if inside.any():
                    ok, r, c, _ = view.index(addr[inside])
                    mask[(r * C_ + c)[ok]] = True
            loaded[label] = mask.reshape(R, C_)
        la, lb = loaded["A"], loaded["B"]
        if not la[rows].all():
            i = int(rows[np.argmin(la[rows].all(axis=1))])
            return "refused", (f"{name} stored row {i} of C without loading all of row {i} of A (it loaded "
                               f"{int(la[i].sum())} of its {K} elements): every element of C must come from A and B "
                               f"through your kernel")
        if not lb[:, cols].all():
            j = int(cols[np.argmin(lb[:, cols].all(axis=0))])
            return "refused", (f"{name} stored column {j} of C without loading all of column {j} of B (it "
                               f"loaded {int(lb[:, j].sum())} of its {K} elements): every element of C must come "
                               f"from A and B through your kernel")
        # the rows of A (columns of B) a program may read: those of what it stores, or, with tiles, those
        # of its tiles' blocks (a ragged tile may read wrapped-around rows, as kernels.tiled.matmul_tile does)
        if ex.schedule == "element":
            ok_rows, ok_cols = rows, cols
        elif shape is not None:
            bm, bn = shape
            ok_rows = np.unique(np.concatenate([np.arange(t * bm, t * bm + bm) % M for t in np.unique(rows // bm)]))
            ok_cols = np.unique(np.concatenate([np.arange(t * bn, t * bn + bn) % N for t in np.unique(cols // bn)]))
        else:  # tiles of an unknown shape: allow twice what it stores, plus one block
            ok_rows = ok_cols = None
        what = "element" if ex.schedule == "element" else "tile(s)"
        for label, used, allowed, stored, size in (("A", np.nonzero(la.any(axis=1))[0], ok_rows, rows, M),
                                                   ("B", np.nonzero(lb.any(axis=0))[0], ok_cols, cols, N)):
            line = "row" if label == "A" else "column"
            if allowed is not None:
                extra = np.setdiff1d(used, allowed)
                if extra.size:
                    return "fail", (f"{name} loaded {line} {int(extra[0])} of {label} ({extra.size} {line}s in all) that "
                                    f"none of the elements of C it stores needs: it computes more than its own "
                                    f"{what}; each program should load only the {line}s of {label} its part of C needs")
            elif used.size > 2 * stored.size + 32:
                return "fail", (f"{name} loaded {used.size} {line}s of {label}, but the part of C it stores needs "
                                f"{stored.size}: it computes more than its own {what}")
    return None


def _replay_message(case, box, a, b, res, c_view, gen):
    """Run every recorded launch again, in order, after restoring what they received and putting new
    values into A and B: ``None`` if C follows (within tolerance), else why not."""
    new_a, new_b = _random_operands(case, gen)
    box.restore()
    a.copy_(new_a)
    b.copy_(new_b)
    if c_view is not None:
        _poison(c_view)
    ref = T.matmul_reference(new_a.to(DEVICE), new_b.to(DEVICE))
    try:
        box.replay()
    except Exception as exc:
        if box.refusals:
            return "refused", "refused when the grader ran your kernels again: " + box.refusals[-1]
        if box.faults:
            return "fail", box.faults[-1]
        return "error", ("your kernels failed when the grader launched them again on new A and B: "
                         + describe_exception(exc))
    if box.refusals:
        return "refused", "refused when the grader ran your kernels again: " + box.refusals[-1]
    err = T.rel_error(res, ref.to(res.device))
    if err <= T.tolerance(case.dtype):
        return None
    return "refused", (f"when the grader launched your kernels again on new values of A and B, C did not follow "
                       f"(relative error {err:.2e} against the new product): the result did not come from A and B "
                       f"through your kernels (work done outside a kernel, or a copy of A or B made before the "
                       f"launch)")


def _run_matmul_case(fn, case, gen, subchecks, first, ex):
    M, N, K, dtype = case.M, case.N, case.K, case.dtype
    title = case.title()
    if case.gpu_only and not ON_GPU:
        subchecks.append(SubCheck(title, "skip", "needs a CUDA GPU; this runs in Triton's interpreter"))
        return

    def stop(status, message):
        subchecks.append(SubCheck(title, "fail", message))
        raise _Stop(status, f"{title}: {message}")

    va, vb = _random_operands(case, gen)
    _, a = _place(va, _IN_PAD, case.layout, aligned=case.tma)
    _, b = _place(vb, _IN_PAD, case.layout, aligned=case.tma)
    a_private, b_private = va.clone(), vb.clone()  # the grader's own copies: the reference comes from them
    kwargs = dict(case.kwargs)
    big = c_view = None
    if not case.own_out and _accepts(fn, "out"):
        big, c_view = _place(torch.empty(M, N, dtype=dtype), _OUT_PAD, case.layout, aligned=case.tma, guard=1)
        _poison(c_view)
        kwargs["out"] = c_view
    case.strides = {"A": tuple(a.stride()), "B": tuple(b.stride()),
                    "C": tuple(c_view.stride()) if c_view is not None else (N, 1)}
    res, error = None, None
    with Sandbox(operands={"A": a, "B": b, "C": c_view}) as box:
        try:
            res = fn(a, b, **kwargs)
        except Refused:
            pass
        except Exception as exc:  # the learner's code raised: report it, never crash
            error = exc
    if box.refusals:
        stop("refused", "refused: " + box.refusals[0])
    if box.faults:
        fault = box.faults[0]
        if case.layout in ("col", "every_other") and "outside" in fault and "strides are" not in fault:
            fault += _layout_note(case)
        stop("fail", fault)
    if error is not None:
        world = _world_message(fn, error)
        if world:
            stop("error", world)
        if _not_implemented(error):
            stop("not_implemented", "not implemented yet (NotImplementedError)")
        text = describe_exception(error)
        if case.tma and "offset" in text:
            text += ("; a descriptor's offsets are element indices of the tile's first row and column "
                     "(row0 = pid_m * BLOCK_M, ks * BLOCK_K), not tile numbers")
        stop("error", text)
    if not box.launches:
        stop("refused", "refused: no Triton kernel was launched; the result must be computed by your "
                        "@triton.jit kernel, launched as kernel[grid](...)")
    library = [l for l in box.launches if l.from_library]
    learner = [l for l in box.launches if not l.from_library]
    if library:
        names = ", ".join(sorted({f"{l.module}.{l.kernel}" for l in library}))
        stop("refused", f"refused: your code launched the course's own kernel ({names}); the result must "
                        "come from your kernel alone")
    if isinstance(res, torch.Tensor) and type(res) is not torch.Tensor:
        stop("fail", f"the function returned a {type(res).__name__} (a subclass of torch.Tensor): return the "
                     "plain torch.Tensor your kernel wrote")
    if not isinstance(res, torch.Tensor):
        stop("fail", f"the function returned {type(res).__name__}, not a torch.Tensor")
    msg = _helpers_message(ex, learner)
    if msg:
        stop("refused", "refused: " + msg)
    if case.programs is not None:
        msg = _programs_message(case, learner, res)
        if msg:
            stop("refused", "refused: " + msg)
    if tuple(res.shape) != (M, N):
        stop("fail", f"shape error: expected ({M}, {N}), got {tuple(res.shape)}")
    if res.dtype != dtype:
        stop("fail", f"dtype error: inputs are {dtype}, the result is {res.dtype} (C should match the inputs)")
    why = box.written_by_kernel(res)
    if why:
        stop("refused", "refused: " + why)
    given = kwargs.get("out")
    if given is not None and (res.data_ptr(), tuple(res.shape), res.stride()) != (
            given.data_ptr(), tuple(given.shape), given.stride()):
        stop("fail", f"the caller passed out= (C as a view with strides {given.stride()}), but your function "
                     "returned another tensor: write C into out, through its strides, and return out")
    poisoned = c_view is not None and res.data_ptr() == c_view.data_ptr() and res.stride() == c_view.stride()
    nan = _unwritten(res, poisoned=poisoned)
    if bool(nan.all()):
        status = "not_implemented" if first else "fail"
        stop(status, "the kernel wrote nothing: every output is still the NaN the output was filled with "
                     "(not implemented yet, or a store mask that is never true?)")
    if case.tma:
        msg = _tma_message(learner)
        if msg:
            stop("refused", "refused: " + msg)
    for label, t in (("A", a), ("B", b)):
        if not box.received(t, learner):
            stop("refused", f"refused: {label} itself was never passed to your kernel, so it read a copy of {label} "
                            f"made outside a kernel ({label.lower()}.contiguous(), .float(), .clone(), ...): pass "
                            f"{label.lower()} itself, with its strides, and let the kernel read it")
    if bool(nan.any()):
        ran = sum(l.programs or 0 for l in learner if l.touches(res))
        stop("fail", _unwritten_message(nan, case, ran if case.programs is not None and not case.tma else None))
    if big is not None:
        msg = _canary_message(big, c_view, M, N)
        if msg:
            stop("fail", msg)
    bad = ~torch.isfinite(res)
    if bool(bad.any()):
        i, j = _first(bad)
        stop("fail", f"{int(bad.sum())} outputs are NaN or inf although the kernel wrote them, first at [{i}, {j}] "
                     f"(got {float(res[i, j])}): did a load read outside A or B (missing mask or `other=0.0`)?")
    for label, now, before in (("A", a, a_private), ("B", b, b_private)):
        if not torch.equal(now.view(_POISON[dtype][0]).cpu(), before.view(_POISON[dtype][0])):
            stop("fail", f"the kernel changed the input {label}: a matmul must only read A and B")
    # after the call, from the grader's own copies: no answer can find the reference in memory
    ref = T.matmul_reference(a_private.to(DEVICE), b_private.to(DEVICE))
    msg = _values_message(res, ref.to(res.device), dtype, case, a_private, b_private)
    if msg:
        stop("fail", msg)
    verdict = _work_message(case, ex, learner, a, b, res)
    if verdict:
        stop(verdict[0], ("refused: " if verdict[0] == "refused" else "") + verdict[1])
    verdict = _replay_message(case, box, a, b, res, c_view, gen)
    if verdict:
        stop(verdict[0], ("refused: " if verdict[0] == "refused" else "") + verdict[1])
    subchecks.append(SubCheck(title, "pass"))


def _extra_cases(rng, hi_mn, long_k, precision_k, tiny=3, layouts=("col", "every_other")):
    """The cases every matmul exercise of chapters 01-03 adds: transposed and sliced views, one row,
    one column, a K longer than twice any block, and the float16 precision case."""
    def dims():
        return _dims(rng, 2, hi_mn), _dims(rng, 2, hi_mn)

    M1, N1 = dims()
    M2, N2 = dims()
    cases = [_Case("column-major", *dims(), _dims(rng, 2, hi_mn), torch.float32, layout="col")
             if "col" in layouts else None,
             _Case("every other column", *dims(), _dims(rng, 2, hi_mn), torch.float16, layout="every_other")
             if "every_other" in layouts else None,
             _Case("one row", 1, N1, _dims(rng, 2, hi_mn), torch.float32),
             _Case("one column", M2, 1, _dims(rng, 2, hi_mn), torch.float32, padded=True),
             _Case("long K", rng.randint(1, tiny), rng.randint(2, tiny), _dims(rng, *long_k), torch.float32),
             _Case("precision: positive values, long K", rng.randint(2, tiny), rng.randint(2, tiny), precision_k,
                   torch.float16, values="precision")]
    return [c for c in cases if c is not None]


def _matmul_cases(rng, hi_mn, lo_k, hi_k, block_kwargs, extra=(), more=()):
    def dims():
        return _dims(rng, 2, hi_mn), _dims(rng, 2, hi_mn), _dims(rng, lo_k, hi_k)

    # first a small ragged case: an answer that writes nothing there is "not implemented"
    cases = [_Case("small", _dims(rng, 2, 9), _dims(rng, 2, 9), _dims(rng, 2, 9), torch.float32, padded=True)]
    cases.append(_Case("smallest", 1, 1, 1, torch.float32))
    cases.append(_Case("ragged", *dims(), torch.float32))
    cases.append(_Case("ragged", *dims(), torch.float16, padded=True))
    cases += list(extra)
    cases += list(more)
    for kw in block_kwargs:
        cases.append(_Case("other blocks", *dims(), torch.float32, padded=True, kwargs=kw))
    cases.append(_Case("bf16 on a GPU", *dims(), torch.bfloat16, padded=True, gpu_only=True))
    cases.append(_Case("the wrapper allocates C", *dims(), torch.float16, own_out=True))
    return cases


def _check_matmul(fn, rng, gen, cases, subchecks, ex):
    for i, case in enumerate(cases):
        if case.kwargs and not all(_accepts(fn, k) for k in case.kwargs):
            missing = ", ".join(f"{k}=" for k in case.kwargs if not _accepts(fn, k))
            subchecks.append(SubCheck(case.title(), "fail", f"your function does not take {missing}"))
            raise _Stop("fail", f"{case.title()}: the function must take {missing} (the given wrapper's "
                                "signature): the grader checks other block sizes through them")
        _run_matmul_case(fn, case, gen, subchecks, i == 0, ex)


def check_naive_matmul(fn, rng, gen, subchecks):
    # one program per output element: ~2 ms a program in the interpreter, so keep M x N small there
    hi_mn, hi_k = pick(cpu=(10, 45), gpu=(300, 700))
    more = _extra_cases(rng, hi_mn, pick(cpu=(150, 200), gpu=(1500, 2000)), pick(cpu=2048, gpu=4096),
                        tiny=pick(cpu=3, gpu=40))
    cases = _matmul_cases(rng, hi_mn, 17, hi_k, [{"block_k": 8}], more=more)
    _check_matmul(fn, rng, gen, cases, subchecks, _EXERCISE["naive_matmul"])


def check_tiled_matmul(fn, rng, gen, subchecks):
    hi = pick(cpu=100, gpu=700)
    even = pick(cpu=64, gpu=512)
    extra = [_Case("multiples of the block", even, even, even, torch.float32)]
    more = _extra_cases(rng, pick(cpu=40, gpu=700), pick(cpu=(150, 200), gpu=(1500, 2000)),
                        pick(cpu=2048, gpu=4096), tiny=pick(cpu=20, gpu=100))
    cases = _matmul_cases(rng, hi, 2, hi, [{"block_m": 16, "block_n": 32, "block_k": 16}], extra, more)
    _check_matmul(fn, rng, gen, cases, subchecks, _EXERCISE["tiled_matmul"])


def check_persistent_matmul(fn, rng, gen, subchecks):
    from kernels.persistent import sm_count

    if not _accepts(fn, "num_programs"):
        subchecks.append(SubCheck("the wrapper takes num_programs=", "fail", "it does not"))
        raise _Stop("fail", "the function must take a keyword argument num_programs= (how many persistent "
                            "programs to launch); keep the given wrapper's signature")
    sms = sm_count()
    hi = pick(cpu=100, gpu=700)
    lo_loop = pick(cpu=70, gpu=400)  # with the course's blocks: at least 9 tiles, so programs loop

    def dims():
        return _dims(rng, 2, hi), _dims(rng, 2, hi), _dims(rng, 2, hi)

    def looping():
        return _dims(rng, lo_loop, hi), _dims(rng, lo_loop, hi), _dims(rng, 2, hi)

    def case(label, shape, dtype, num_programs=None, **kw):
        kwargs = {"num_programs": num_programs} if num_programs is not None else None
        what = f"{label}, one program per SM" if num_programs is None else label
        return _Case(what, *shape, dtype, kwargs=kwargs, programs=sms, **kw)

    small = (_dims(rng, 2, 9), _dims(rng, 2, 9), _dims(rng, 2, 9))
    cases = [
        case("small", small, torch.float32, padded=True),  # first: writing nothing there is "not implemented"
        case("smallest", (1, 1, 1), torch.float32),
        case("ragged", dims(), torch.float32),
        case("one program does every tile", looping(), torch.float32, 1, padded=True),
        case("programs loop", looping(), torch.float16, 3, padded=True),
        case("programs loop", looping(), torch.float32, 5),
        case("programs loop", looping(), torch.float16, rng.choice([2, 4, 6, 7])),
        case("column-major", looping(), torch.float32, 3, layout="col"),
        case("every other column", looping(), torch.float16, 2, layout="every_other"),
        case("one row", (1, _dims(rng, lo_loop, hi), _dims(rng, 2, hi)), torch.float32, 2),
        case("one column", (_dims(rng, lo_loop, hi), 1, _dims(rng, 2, hi)), torch.float32, 2, padded=True),
        case("long K", (rng.randint(1, 40), rng.randint(2, 40), _dims(rng, *pick(cpu=(150, 200), gpu=(1500, 2000)))),
             torch.float32, 2),
        case("precision: positive values, long K", (rng.randint(2, 20), rng.randint(2, 20), pick(cpu=2048, gpu=4096)),
             torch.float16, values="precision"),
        case("bf16 on a GPU", looping(), torch.bfloat16, 3, padded=True, gpu_only=True),
        case("the wrapper allocates C", dims(), torch.float16, own_out=True),
    ]
    for i, c in enumerate(cases):
        _run_matmul_case(fn, c, gen, subchecks, i == 0, _EXERCISE["persistent_matmul"])


def _jit_sources(jit, seen=None, depth=0):
    """Source trees of a launched kernel and of the @triton.jit helpers it names (a few levels deep)."""
    seen = set() if seen is None else seen
    fn = getattr(jit, "fn", None)
    if fn is None or id(fn) in seen or depth > 4:
        return []
    seen.add(id(fn))
    src = getattr(jit, "src", None)
    try:
        src = src or inspect.getsource(fn)
        tree = ast.parse(textwrap.dedent(src))
    except (OSError, TypeError, SyntaxError):
        return []
    trees = [tree]
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    space = getattr(fn, "__globals__", {})
    for name in sorted(names):
        helper = space.get(name)
        if helper is not jit and hasattr(helper, "fn") and callable(getattr(helper, "fn", None)):
            trees += _jit_sources(helper, seen, depth + 1)
    return trees


def _uses_tma(trees):
    """(builds a descriptor, loads through one): calls of ``*.make_tensor_descriptor(...)`` and of
    ``x.load(...)`` on something other than ``tl`` / ``triton.language``. Only where no compiled code
    can be read (the checks read what ran)."""
    builds = loads = False
    for tree in trees:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
            if name == "make_tensor_descriptor":
                builds = True
            if isinstance(f, ast.Attribute) and f.attr == "load":
                owner = ast.unparse(f.value)
                if owner not in ("tl", "triton.language", "language"):
                    loads = True
    return builds, loads


def _dims8(rng, lo, hi, avoid=32):
    """A multiple of 8 in [lo, hi] (TMA: 16-byte rows for 16-bit types) that is not a multiple of
    ``avoid`` (so not of any block >= 32 either)."""
    x = 8 * rng.randint(max(1, lo // 8), max(1, hi // 8))
    return x + 8 if x % avoid == 0 else x


def check_tma_matmul(fn, rng, gen, subchecks):
    from kernels.persistent import sm_count

    sms = sm_count()
    hi = pick(cpu=100, gpu=700)
    lo_loop = pick(cpu=70, gpu=400)  # with the course's blocks: at least 9 tiles, so programs loop

    def dims():
        return _dims(rng, 2, hi), _dims8(rng, 8, hi), _dims8(rng, 8, hi)

    def looping():
        return _dims(rng, lo_loop, hi), _dims8(rng, lo_loop, hi), _dims8(rng, 8, hi)

    def case(label, shape, dtype, **kw):
        return _Case(label, *shape, dtype, programs=sms, tma=True, **kw)

    small = (_dims(rng, 2, 9), 8, _dims8(rng, 8, 24))
    long_k = pick(cpu=(150, 200), gpu=(1500, 2000))
    cases = [
        case("small", small, torch.float32, padded=True),  # first: writing nothing there is "not implemented"
        case("smallest", (1, 8, 8), torch.float32),
        case("ragged", dims(), torch.float32),
        case("ragged", dims(), torch.float16, padded=True),
        case("programs loop", looping(), torch.float32, padded=True),
        case("programs loop", looping(), torch.float16),
        case("one row", (1, _dims8(rng, lo_loop, hi), _dims8(rng, 8, hi)), torch.float32, padded=True),
        case("eight columns", (_dims(rng, lo_loop, hi), 8, _dims8(rng, 8, hi)), torch.float16),
        case("long K", (rng.randint(1, 40), 8 * rng.randint(1, 4), _dims8(rng, *long_k)), torch.float32),
        case("precision: positive values, long K", (rng.randint(2, 20), 8, pick(cpu=2048, gpu=4096)),
             torch.float16, values="precision"),
        case("bf16 on a GPU", looping(), torch.bfloat16, padded=True, gpu_only=True),
        case("the wrapper allocates C", dims(), torch.float16, own_out=True),
    ]
    for i, c in enumerate(cases):
        _run_matmul_case(fn, c, gen, subchecks, i == 0, _EXERCISE["tma_matmul"])


# --------------------------------------------------------------------------------------------------
# grouped_tile
# --------------------------------------------------------------------------------------------------
_LIBRARY_SCHEDULE = [_schedule.grouped_tile.__code__, _schedule.tile_of.__code__,
                     _schedule.tile_order.__code__]


def _as_tile(value):
    if isinstance(value, (tuple, list)) and len(value) == 2:
        try:
            m, n = (int(v) for v in value)
        except (TypeError, ValueError):
            return None
        if all(float(v) == int(v) for v in value):
            return m, n
    return None


def _each_program(fn, programs, args_of, library, what, take, stop) -> list:
    """``[take(p, fn(*args_of(p))) for p in programs]`` for a plain-Python schedule exercise, with calls
    into the course's ``library`` (``watch_calls``) refused as "the course's {what}", and a raise from
    ``fn`` reported for its program (``stop(status, message)`` ends the check)."""
    out = []
    with watch_calls(library) as library_calls:
        for p in programs:
            try:
                value = fn(*args_of(p))
            except Exception as exc:
                if _not_implemented(exc):
                    stop("not_implemented", "not implemented yet (NotImplementedError)")
                stop("error", f"program {p}: {describe_exception(exc)}")
            if library_calls.tampered:
                stop("refused", tampered_message(library_calls.tampered))
            if library_calls:
                stop("refused", f"refused: it calls kernels.schedule.{library_calls[0]}, the course's "
                                f"{what}; write the arithmetic yourself")
            out.append(take(p, value))
    return out


def check_grouped_tile(fn, rng, gen, subchecks):
    grids = [(1, 1, 1), (1, 7, 3), (7, 1, 3), (4, 3, 2), (5, 3, 8), (13, 9, 4), (3, 40, 1), (9, 9, 9)]
    grids += [(rng.randint(1, 40), rng.randint(1, 40), rng.randint(1, 12)) for _ in range(30)]
    for gm, gn, g in grids:
        title = f"grid {gm}x{gn}, group_m {g}"

        def stop(status, message):
            subchecks.append(SubCheck(title, "fail", message))
            raise _Stop(status, f"{title}: {message}")

        def take(pid, value):
            tile = _as_tile(value)
            if tile is None:
                stop("fail", f"program {pid}: expected a pair of ints (pid_m, pid_n), got {value!r}")
            return tile

        got = _each_program(fn, range(gm * gn), lambda pid: (pid, gm, gn, g), _LIBRARY_SCHEDULE,
                            "own answer", take, stop)
        outside = [(p, t) for p, t in enumerate(got) if not (0 <= t[0] < gm and 0 <= t[1] < gn)]
        if outside:
            p, t = outside[0]
            stop("fail", f"program {p} returns tile {t}, outside the {gm}x{gn} grid")
        owners = {}
        for p, t in enumerate(got):
            owners.setdefault(t, []).append(p)
        twice = [(t, ps) for t, ps in owners.items() if len(ps) > 1]
        if twice:
            t, ps = twice[0]
            never = gm * gn - len(owners)
            stop("fail", f"tile {t} is computed by programs {ps[0]} and {ps[1]}, and {never} tile(s) by none: "
                         "every tile must be computed exactly once")
        for pid, tile in enumerate(got):
            want = _schedule.grouped_tile(pid, gm, gn, g)
            if tile != tuple(want):
                stop("fail", f"program {pid} should compute tile {tuple(want)} in grouped order, yours "
                             f"returns {tile} (it covers every tile once, but in another order)")
    subchecks.append(SubCheck(f"{len(grids)} grids (8 fixed, 30 random), every program", "pass"))


# --------------------------------------------------------------------------------------------------
# stream_k_pieces (chapter 03)
# --------------------------------------------------------------------------------------------------
_LIBRARY_STREAM_K = [f.__code__ for f in (_schedule.stream_k_split, _schedule.stream_k_programs,
                                          _schedule.stream_k_range, _schedule.stream_k_first_program,
                                          _schedule.stream_k_chunks, _schedule.stream_k_contributors)]


def _int_like(v) -> bool:
    """An integer: a Python or NumPy int (not a bool, a float, a string or a tensor)."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _as_pieces(value):
    """``value`` as a list of ``(tile, k_begin, k_end)`` int triples, or ``None`` if it is not one."""
    if not isinstance(value, (list, tuple)):
        return None
    pieces = []
    for piece in value:
        if not isinstance(piece, (list, tuple)) or len(piece) != 3 or not all(_int_like(v) for v in piece):
            return None
        pieces.append(tuple(int(v) for v in piece))
    return pieces


def _pieces_text(pieces, limit=6):
    shown = ", ".join(str(p) for p in pieces[:limit])
    return f"[{shown}{', ...' if len(pieces) > limit else ''}]"


def _stream_k_case(fn, tiles, k_iters, programs, stop, rng):
    """Call ``fn`` for every program, in a shuffled order and then again in another (a program's pieces
    may not depend on which programs were asked before it); return ``{program: pieces}`` (checked for
    type), or stop."""
    def take(p, value):
        pieces = _as_pieces(value)
        if pieces is None:
            stop("fail", f"program {p}: expected a list of (tile, k_begin, k_end) tuples of ints, got "
                         f"{textwrap.shorten(repr(value), 120)}")
        return pieces

    got = []
    for _ in range(2):
        order = list(range(programs))
        rng.shuffle(order)
        answers = _each_program(fn, order, lambda p: (p, programs, tiles, k_iters), _LIBRARY_STREAM_K,
                                "own stream-K schedule", take, stop)
        got.append(dict(zip(order, answers)))
    for p in range(programs):
        if got[0][p] != got[1][p]:
            stop("fail", f"program {p} returned {_pieces_text(got[0][p])} once and {_pieces_text(got[1][p])} when asked "
                         "again: a program's pieces depend only on its arguments (program, num_programs, sk_tiles, "
                         "k_iters), not on the programs asked before it; the launch runs them in any order")
    return got[0]


def _stream_k_message(got, tiles, k_iters, programs):
    """``None`` if ``got`` (program -> pieces) is ``kernels.schedule.stream_k_chunks`` for every program;
    else what is wrong: pieces out of range or empty, iterations computed twice or never, then the
    difference from the even split."""
    total = tiles * k_iters
    for p, pieces in got.items():
        for t, kb, ke in pieces:
            if not 0 <= t < tiles:
                return (f"program {p} returns the piece {(t, kb, ke)}, of tile {t}: the shared tiles are numbered "
                        f"0 .. {tiles - 1} (sk_tiles = {tiles})")
            if kb >= ke:
                return (f"program {p} returns the empty piece {(t, kb, ke)} (k_begin >= k_end: no K step in it); "
                        "a program's pieces hold at least one K step each: leave out a tile its run does not reach")
            if kb < 0 or ke > k_iters:
                return (f"program {p} returns the piece {(t, kb, ke)}: a tile's K steps are 0 .. {k_iters - 1} "
                        f"(k_iters = {k_iters}), so 0 <= k_begin < k_end <= {k_iters}")
    owners: dict = {}
    for p, pieces in got.items():
        for t, kb, ke in pieces:
            for k in range(kb, ke):
                owners.setdefault((t, k), []).append(p)
    never = [(t, k) for t in range(tiles) for k in range(k_iters) if (t, k) not in owners]
    twice = sorted(key for key, ps in owners.items() if len(ps) > 1)
    if twice:
        (t, k), ps = twice[0], owners[twice[0]]
        who = (f"twice by program {ps[0]}" if ps[0] == ps[1] else f"by programs {ps[0]} and {ps[1]}")
        extra = f", and {len(never)} by none" if never else ""
        return (f"tile {t}, K step {k} is computed {who} ({len(twice)} iteration(s) more than once{extra}): every "
                f"(tile, K step) of the {tiles} x {k_iters} = {total} iterations must be computed exactly once; "
                "do neighbouring programs' runs overlap, or does a program's piece reach past its run's end?")
    if never:
        t, k = never[0]
        return (f"tile {t}, K step {k} is computed by no program ({len(never)} of the {total} iterations are "
                "missing): the runs must cover every (tile, K step) exactly once, program p's from "
                "p * total // num_programs up to (p + 1) * total // num_programs; does a run stop one step "
                "early, or a piece end before its run does?")
    for p in range(programs):
        want = _schedule.stream_k_chunks(p, programs, tiles, k_iters)
        if got[p] == want:
            continue
        start, end = p * total // programs, (p + 1) * total // programs
        mine = sorted(t * k_iters + k for t, kb, ke in got[p] for k in range(kb, ke))
        head = f"program {p} returns {_pieces_text(got[p])}, expected {_pieces_text(want)}"
        if mine == list(range(start, end)):
            return (head + ": the right K steps, cut into other pieces or given in another order; return one "
                           "piece per tile the run touches, in the order of the run (tile after tile), each a "
                           "single range of K steps")
        if mine and mine == list(range(mine[0], mine[-1] + 1)):
            return (head + f": its run is iterations [{mine[0]}, {mine[-1] + 1}), but with total = sk_tiles * k_iters "
                           f"= {total} iterations over {programs} programs, program p's run is [p * total // "
                           f"num_programs, (p + 1) * total // num_programs) = [{start}, {end}): every run within one "
                           "iteration of the others' length (iteration i is K step i % k_iters of tile i // k_iters)")
        return (head + f": program p's run is one contiguous range of iterations, [{start}, {end}) here "
                       "(iteration i is K step i % k_iters of tile i // k_iters)")
    return None


def check_stream_k_pieces(fn, rng, gen, subchecks):
    # (sk_tiles, k_iters, num_programs): one program; one iteration each; runs that end on a tile's edge;
    # k_iters = 1 (whole tiles); the chapter's 144 tiles of 64 K steps over 132 programs, and its 12 tail tiles
    fixed = [(1, 1, 1), (1, 8, 1), (1, 8, 8), (1, 8, 3), (3, 4, 5), (4, 1, 3), (5, 3, 15), (2, 5, 3), (7, 3, 4),
             (9, 7, 9), (6, 4, 2), (12, 64, 132), (144, 64, 132)]
    cases = list(fixed)
    for _ in range(30):
        tiles, k_iters = rng.randint(1, 40), rng.randint(1, 70)
        cases.append((tiles, k_iters, rng.randint(1, min(tiles * k_iters, 200))))
    for tiles, k_iters, programs in cases:
        title = f"{tiles} shared tile(s) of {k_iters} K step(s) over {programs} program(s)"
        stop = _stop_for(subchecks, title)
        got = _stream_k_case(fn, tiles, k_iters, programs, stop, rng)
        msg = _stream_k_message(got, tiles, k_iters, programs)
        if msg:
            stop("fail", msg)
    subchecks.append(SubCheck(f"{len(cases)} problems ({len(fixed)} fixed, {len(cases) - len(fixed)} random), "
                              "every program", "pass"))


# --------------------------------------------------------------------------------------------------
# pingpong_consumer
# --------------------------------------------------------------------------------------------------
_LIBRARY_PROTOCOL = [_protocol.reference_consumer.__code__]


def check_pingpong_consumer(fn, rng, gen, subchecks):
    cases = [(1, 1, 2, 0, 1), (2, 1, 2, 0, 1), (2, 3, 2, 0, 1), (7, 4, 3, 0, 1), (19, 5, 4, 1, 4),
             (10, 2, 5, 0, 1), (6, 7, 2, 2, 3), (5, 3, 3, 4, 5)]
    cases += [(rng.randint(1, 24), rng.randint(1, 8), rng.randint(2, 6), 0, 1) for _ in range(6)]
    runs = 0
    for num_tiles, k_steps, stages, program, num_programs in cases:
        title = (f"{num_tiles} tiles over {num_programs} program(s) (program {program}), "
                 f"{k_steps} K steps, {stages} stages")
        for _ in range(12):
            seed = rng.randrange(2**31)

            def stop(status, message):
                subchecks.append(SubCheck(title, "fail", message))
                raise _Stop(status, f"{title}, interleaving seed {seed}: {message}")

            failure = None
            with watch_calls(_LIBRARY_PROTOCOL) as library_calls:
                try:
                    _protocol.simulate(fn, num_tiles, k_steps, stages, program, num_programs, seed)
                except Exception as exc:
                    failure = exc
            if library_calls.tampered:
                stop("refused", tampered_message(library_calls.tampered))
            if library_calls:
                stop("refused", "refused: it calls kernels.protocol.reference_consumer, the course's own answer; "
                                "write the protocol yourself")
            if isinstance(failure, _protocol.ProtocolError):
                stop("fail", str(failure))
            if failure is not None:
                if _not_implemented(failure):
                    stop("not_implemented", "not implemented yet (NotImplementedError)")
                stop("error", describe_exception(failure))
            runs += 1
    subchecks.append(SubCheck(f"{len(cases)} problems (8 fixed, 6 random), {runs} random interleavings", "pass"))


# --------------------------------------------------------------------------------------------------
# FP8 and FP4 exercises (chapters 06 and 07): shared parts
# --------------------------------------------------------------------------------------------------
# The course's own code for what these exercises ask: calls into it (or into a library's) are refused.
_KERNELS_ROOT = os.path.dirname(os.path.abspath(kernels.__file__))
_FP_REFERENCE_FILES = tuple(os.path.join(_KERNELS_ROOT, f) for f in ("fp4.py", "fp8.py", "quantize.py", "w4a16.py",
                                                                   "w4a16_fragments.py", "fp8_gemm.py"))
_FP_REFERENCE_MODULES = (_fp4, _fp8, _quantize)  # the same three, for the Triton exercises (refuse_calls_into)
_FP_EXERCISE = _Exercise("fp", "any")  # every @triton.jit helper of kernels/ is the learner's to write
_PACKAGE_DIRS = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)


def _library_dirs(*names):
    """The folders of installed packages ``names`` (e.g. torchao), found without importing them."""
    import importlib.util

    found = []
    for name in names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is not None:
            found += list(spec.submodule_search_locations or [os.path.dirname(spec.origin or "")])
    return [d for d in found if d]


def _package_of(launch) -> str | None:
    """The installed package a launched kernel comes from (torchao, say), or ``None`` for the learner's
    own code (a notebook cell, a file of theirs)."""
    fn = getattr(launch.jit, "fn", None)
    while hasattr(fn, "fn"):
        fn = fn.fn
    path = os.path.abspath(getattr(getattr(fn, "__code__", None), "co_filename", "") or "")
    for marker in _PACKAGE_DIRS:
        if marker in path:
            package = path.split(marker, 1)[1].split(os.sep)[0]
            if package not in ("triton", "grader", "kernels"):
                return package
    return None


def _in_buffer(values, pad, padded=False, guard=2):
    """``values`` (a CPU tensor, 2-D) copied into a view of a larger buffer of ``pad`` of its dtype, on
    ``kernels.DEVICE``: ``(buffer, view)``. ``padded``: the rows lie further apart than their width."""
    rows, cols = values.shape
    c0, extra = (3, 7) if padded else (0, 0)
    big = torch.full((rows + 1 + guard, cols + extra), pad, dtype=values.dtype, device=DEVICE)
    view = big[1:rows + 1, c0:c0 + cols]
    view.copy_(values.to(DEVICE))
    return big, view


def _bytes_of(t: torch.Tensor) -> torch.Tensor:
    """A CPU copy of ``t``'s values as integers of its width (exact comparison, NaN payloads kept)."""
    return t.detach().view({1: torch.uint8, 2: torch.int16, 4: torch.int32}[t.element_size()]).cpu().clone()


def _stored_mask(launches, view):
    """In the interpreter: which elements of the 2-D ``view`` some store of ``launches`` wrote (a bool
    array), else ``None`` (on a GPU nothing is traced)."""
    traced = [l for l in launches if l.trace is not None]
    if ON_GPU or not traced:
        return None
    v = View("out", view)
    mask = np.zeros(tuple(view.shape), dtype=bool)
    for l in traced:
        for p in l.trace.programs.values():
            for addr, _ in p.stores:
                inside = v.in_storage(addr)
                if inside.any():
                    ok, rows, cols, _ = v.index(addr[inside])
                    mask[rows[ok], cols[ok]] = True
    return mask


class _FPCall:
    """One call of a learner's FP8/FP4 function, sandboxed: ``res``, ``box`` and the learner's launches."""

    def __init__(self, box, res, learner):
        self.box, self.res, self.learner = box, res, learner


def _fp_call(fn, args, kwargs, operands, read_only, stop, modules=_FP_REFERENCE_MODULES,
             low_precision_casts=False) -> _FPCall:
    """Call ``fn(*args, **kwargs)`` in a ``Sandbox`` that also refuses host-side casts to and from 8-bit
    and 4-bit floats and calls into the course's reference code (``kernels.fp8``, ``kernels.fp4``,
    ``kernels.quantize``: ``guard.refuse_calls_into``); stop on a refusal, a fault, an error, no kernel, or
    a kernel or ``@triton.jit`` helper that is not the learner's (the course's, or an installed package's
    such as torchao). ``modules`` and ``low_precision_casts``: what other exercises refuse instead
    (attention: ``kernels.attention``, and casts are fine)."""
    res, error = None, None
    with Sandbox(operands=operands, read_only=read_only, low_precision_casts=low_precision_casts) as box:
        with refuse_calls_into(modules, box):
            try:
                res = fn(*args, **kwargs)
            except Refused:
                pass
            except Exception as exc:  # the learner's code raised: report it, never crash
                error = exc
    if box.refusals:
        stop("refused", "refused: " + box.refusals[0])
    if box.faults:
        stop("fail", box.faults[0])
    if error is not None:
        world = _world_message(fn, error)
        if world:
            stop("error", world)
        if _not_implemented(error):
            stop("not_implemented", "not implemented yet (NotImplementedError)")
        stop("error", describe_exception(error))
    if not box.launches:
        stop("refused", "refused: no Triton kernel was launched; the result must be computed by your "
                        "@triton.jit kernel, launched as kernel[grid](...)")
    library = [l for l in box.launches if l.from_library]
    if library:
        names = ", ".join(sorted({f"{l.module}.{l.kernel}" for l in library}))
        stop("refused", f"refused: your code launched the course's own kernel ({names}); the result must "
                        "come from your kernel alone")
    learner = [l for l in box.launches if not l.from_library]
    packaged = [(l, _package_of(l)) for l in learner if _package_of(l)]
    if packaged:
        l, package = packaged[0]
        stop("refused", f"refused: your code launched {l.kernel}, a kernel of the installed package {package}; "
                        "the exercise is to write that kernel yourself")
    msg = _helpers_message(_FP_EXERCISE, learner)
    if msg:
        stop("refused", "refused: " + msg)
    return _FPCall(box, res, learner)


def _stop_for(subchecks, title):
    def stop(status, message):
        subchecks.append(SubCheck(title, "fail", message))
        raise _Stop(status, f"{title}: {message}")
    return stop


def _check_result_tensor(res, label, shape, dtype, stop):
    if isinstance(res, torch.Tensor) and type(res) is not torch.Tensor:
        stop("fail", f"{label} is a {type(res).__name__} (a subclass of torch.Tensor): return the plain "
                     "torch.Tensor your kernel wrote")
    if not isinstance(res, torch.Tensor):
        stop("fail", f"{label} is a {type(res).__name__}, not a torch.Tensor")
    if tuple(res.shape) != tuple(shape):
        stop("fail", f"shape error: {label} should have shape {tuple(shape)}, got {tuple(res.shape)}")
    if res.dtype != dtype:
        stop("fail", f"dtype error: {label} should be {dtype}, got {res.dtype}")


def _check_kernel_result(call, res, out, shape, dtype, stop, view_words, c_word):
    """The result of a Triton exercise's function: a tensor of ``shape`` and ``dtype`` written by the
    learner's kernel (not by torch), and ``out`` itself when the caller passed one."""
    _check_result_tensor(res, "the result", shape, dtype, stop)
    why = call.box.written_by_kernel(res)
    if why:
        stop("refused", "refused: " + why)
    if out is not None and (res.data_ptr(), res.stride()) != (out.data_ptr(), out.stride()):
        stop("fail", f"the caller passed out= ({view_words} with strides {out.stride()}), but your function "
                     f"returned another tensor: write {c_word}into out, through its strides, and return out")


def _inputs_message(call, inputs: dict, privates: dict):
    """``None`` if every grader input reached a kernel of the learner's and is unchanged; else why not."""
    for label, t in inputs.items():
        if not call.box.received(t, call.learner):
            return "refused", (f"{label} itself was never passed to your kernel, so it read a copy of {label} made "
                               f"outside a kernel (.contiguous(), .clone(), a cast, ...): pass {label} itself, "
                               "with its strides, and let the kernel read it")
    for label, t in inputs.items():
        if not torch.equal(_bytes_of(t), privates[label]):
            return "fail", f"the kernel changed the input {label}: it must only read it"
    return None


def _replay_fp(call, new_inputs: dict, views: dict, poison_views=(), dot_scale=None):
    """Restore what the launches received, put ``new_inputs`` (name -> CPU tensor) into the grader's
    ``views`` and launch every recorded kernel again (``dot_scale``: see ``Sandbox.replay``): ``None`` if
    that ran, else ``(status, message)``."""
    box = call.box
    box.restore()
    for name, values in new_inputs.items():
        views[name].copy_(values.to(DEVICE))
    for v in poison_views:
        _poison(v)
    try:
        box.replay(dot_scale=dot_scale)
    except Exception as exc:
        if box.refusals:
            return "refused", "refused when the grader ran your kernels again: " + box.refusals[-1]
        if box.faults:
            return "fail", box.faults[-1]
        return "error", ("your kernels failed when the grader launched them again on new inputs: "
                         + describe_exception(exc))
    if box.refusals:
        return "refused", "refused when the grader ran your kernels again: " + box.refusals[-1]
    return None


def _not_following(what):
    return ("refused", f"refused: when the grader launched your kernels again on new inputs, {what} did not follow: the "
                       "result did not come from the inputs through your kernels (work done outside a kernel, or "
                       "a copy of an input made before the launch)")


# --------------------------------------------------------------------------------------------------
# splitk_reduce (chapter 03)
# --------------------------------------------------------------------------------------------------
_W_PAD = 1000.0  # what surrounds the workspace: a read past its end changes a sum a lot
_ORDER_WHY = ("float32 addition is not associative, so another order (or another precision) rounds differently. "
              "The reduction adds W[0], W[1], ..., W[splits - 1] one after the other into a float32 accumulator "
              "that starts at 0.0: one fixed order, so that the same partial sums give the same bits on every run "
              "(atomic adds into C land in whatever order the programs finish, and the bits change from run to run)")


class _RCase:
    """One call of ``splitk_reduce``: ``splits`` partial sums of an ``M x N`` C of ``dtype``, C laid out as
    ``layout`` (``_LAYOUTS``; ``own_out``: the wrapper allocates a float32 C itself)."""

    def __init__(self, label, splits, M, N, dtype=torch.float32, layout="row", own_out=False, gpu_only=False):
        self.label, self.splits, self.M, self.N, self.dtype = label, splits, M, N, dtype
        self.layout, self.own_out, self.gpu_only = layout, own_out, gpu_only
        self.strides = {}

    def title(self):
        lay = {"row": "", "padded": ", C a view in a padded buffer", "col": ", C column-major",
               "every_other": ", C every other column of a wider buffer"}[self.layout]
        splits = f"{self.splits} split{'s' if self.splits > 1 else ''}"
        return f"{splits} of {self.M}x{self.N}, {str(self.dtype)[6:]} C ({self.label}{lay})"


def _c_layout_note(case) -> str:
    """A hint about where C lies, for messages about stores in the wrong place."""
    strides = case.strides.get("C")
    if strides is None or case.layout == "row":
        return ""
    if case.layout == "col":
        return (f"; here C is column-major (strides {strides}): do your stores use stride_cm and stride_cn, "
                "never assuming a stride of 1?")
    if case.layout == "every_other":
        return (f"; here C takes every other column of a wider buffer (strides {strides}): do your stores multiply "
                "the column indices by stride_cn?")
    return (f"; here C is a view inside a wider buffer (its rows are {strides[0]} elements apart, not N = "
            f"{case.N}): do your stores use stride_cm?")


def _reduce_unwritten_message(nan, case):
    M, N = case.M, case.N
    i, j = _first(nan)
    hint = ""
    if M > 1 and bool(nan[M - 1].all()) and not bool(nan[: M - 1].all()):
        hint = f"; the whole last row (m = {M - 1}) is missing: check the row mask (rows < M) and the grid"
    elif N > 1 and bool(nan[:, N - 1].all()) and not bool(nan[:, : N - 1].all()):
        hint = f"; the whole last column (n = {N - 1}) is missing: check the column mask (cols < N) and the grid"
    hint += _c_layout_note(case)  # a store that ignores C's strides also leaves rows or columns unwritten
    return (f"{int(nan.sum())} of {M * N} elements of C never written (still the NaN C was filled with), first at "
            f"[{i}, {j}]{hint}")


def _partials(gen, S, M, N, low_precision):
    """Float32 partial sums (CPU) of mixed magnitudes, so that the order of adding shows in the bits (kept
    small enough for float16 when C is float16 or bfloat16). No zeros, so no -0.0."""
    hi = 6 if low_precision else 12
    scale = torch.exp2(torch.randint(-8, hi + 1, (S, M, N), generator=gen).to(torch.float32))
    return torch.randn(S, M, N, generator=gen, dtype=torch.float32) * scale


def _sequential(w: np.ndarray, order, acc_dtype=np.float32) -> np.ndarray:
    acc = np.zeros(w.shape[1:], acc_dtype)
    for s in order:
        acc = (acc + w[s].astype(acc_dtype)).astype(acc_dtype)
    return acc


def _tree(w: np.ndarray) -> np.ndarray:
    parts = [w[s] for s in range(w.shape[0])]
    while len(parts) > 1:
        parts = [parts[i] + parts[i + 1] if i + 1 < len(parts) else parts[i] for i in range(0, len(parts), 2)]
    return np.zeros(w.shape[1:], np.float32) + parts[0]


def _in_pairs(w: np.ndarray) -> np.ndarray:
    S = w.shape[0]
    acc = np.zeros(w.shape[1:], np.float32)
    for s in range(0, S - 1, 2):
        acc = acc + (w[s] + w[s + 1])
    return acc + w[S - 1] if S % 2 else acc


def _as_c(values: np.ndarray, dtype) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(values)).to(dtype)


def _reduce_reference(w: np.ndarray, dtype) -> torch.Tensor:
    """C as the exercise defines it: the float32 sum in the order s = 0, 1, ..., from 0.0, cast to ``dtype``."""
    return _as_c(_sequential(w, range(w.shape[0])), dtype)


def _reduce_variants(w: np.ndarray, dtype):
    """(what, C) for the usual other ways of adding the partials, to name the one an answer used."""
    S = w.shape[0]
    order = ("the sum in another order: {} (the order must be s = 0, 1, ..., splits - 1); " + _ORDER_WHY)
    out = []
    if S >= 3:
        out += [(order.format("the reverse, s = splits - 1 down to 0"), _sequential(w, range(S - 1, -1, -1))),
                (order.format("in pairs, W[0] + W[1], then W[2] + W[3], ..., each pair added to the sum"),
                 _in_pairs(w)),
                (order.format("as a tree, ((W[0] + W[1]) + (W[2] + W[3])) + ..."), _tree(w))]
    f64 = _sequential(w, range(S), np.float64)
    why64 = ("the sum accumulated in float64: the exercise's C is the float32 sum (the same bits on every GPU and every "
             "run, and float64 is slow on GPUs); use tl.zeros(..., dtype=tl.float32)")
    out += [(why64, f64.astype(np.float32)), (why64, f64)]
    if dtype == torch.float16:
        out.append(("the sum accumulated in float16: each addition rounds to 11 bits; keep the accumulator in float32 "
                    "(tl.zeros(..., dtype=tl.float32)) and convert to C's dtype only when storing",
                    _sequential(w, range(S), np.float16)))
    if S >= 2:
        out += [(f"the sum of W[1] .. W[{S - 1}] only: W[0] is never added (the loop must start at s = 0)",
                 _sequential(w, range(1, S))),
                (f"the sum of W[0] .. W[{S - 2}] only: the last partial, W[{S - 1}], is never added (the loop must "
                 "run over s = 0, 1, ..., splits - 1: range(splits))", _sequential(w, range(S - 1))),
                (f"W[{S - 1}] alone: each partial replaces the accumulator instead of adding to it (acc += ..., "
                 "not acc = ...)", _sequential(w, [S - 1])),
                ("W[0] alone: only the first partial is added (does the loop run over range(splits)?)",
                 _sequential(w, [0]))]
    out.append((f"the sum plus {_W_PAD:g} everywhere, which is what lies past the end of W here: the loop reads past "
                "the end of W, one split too many (range(splits), not range(splits + 1))",
                _sequential(w, range(S)) + np.float32(_W_PAD)))
    return [(what, _as_c(v, dtype)) for what, v in out]


def _reduce_values_message(res, w: np.ndarray, case, stored=None):
    """``None`` if ``res`` holds exactly the bits of the fixed-order float32 sum; else what is wrong."""
    dtype = case.dtype
    ref = _reduce_reference(w, dtype)
    got_bits, ref_bits = _bytes_of(res), _bytes_of(ref)
    bad = got_bits != ref_bits
    if not bool(bad.any()):
        return None
    i, j = _first(bad)
    if stored is not None and not stored[i, j]:
        return f"C[{i}, {j}] was never stored by your kernel, yet it is not what C held before"
    got = res.detach().to("cpu", torch.float64)
    want = ref.to(torch.float64)
    S = w.shape[0]
    parts = ""
    if S <= 8:
        parts = f" (W[:, {i}, {j}] = [{', '.join(f'{float(x):.9g}' for x in w[:, i, j])}])"
    terms = [f"W[{s}, {i}, {j}]" for s in range(S)]
    terms = " + ".join(terms if S <= 2 else terms[:2] + ["...", terms[-1]])
    head = (f"C[{i}, {j}] is {float(got[i, j]):.9g}, but {terms}, added in that order in float32 from 0.0 and cast "
            f"to {str(dtype)[6:]}, is {float(want[i, j]):.9g}{parts}; {int(bad.sum())} of {bad.numel()} elements differ")
    for what, values in _reduce_variants(w, dtype):
        if torch.equal(_bytes_of(values), got_bits):
            return head + ". Your C is " + what
    diff = (got - want).abs()
    rms = float(want.pow(2).mean().sqrt()) or 1.0
    if bool(torch.isfinite(got).all()) and bool((diff <= 1e-5 * (want.abs() + rms)).all()):
        return head + ": close, but not the same bits: " + _ORDER_WHY
    hint = ""
    if float(diff.max()) > 100 * rms:
        hint = f" (reading outside W? what surrounds it here is {_W_PAD:g})"
    return head + hint + _c_layout_note(case)


def _reduce_grid_message(call, case, res):
    """``None`` if every kernel of the learner's that wrote C covered it with one program per block of a
    reasonable size; else what it did instead."""
    M, N = case.M, case.N
    for l in call.learner:
        if not l.touches(res):
            continue
        if l.grid is None:
            return f"could not read the launch grid of your kernel {l.kernel}: launch it as kernel[grid](...)"
        bm, bn = _named_arg(l, "BLOCK_M"), _named_arg(l, "BLOCK_N")
        if not (isinstance(bm, int) and isinstance(bn, int) and bm > 0 and bn > 0):
            return (f"{l.grid_text()}: could not find the block sizes BLOCK_M and BLOCK_N among your kernel's "
                    "arguments; keep the kernel's signature as given (BLOCK_M: tl.constexpr, BLOCK_N: "
                    "tl.constexpr) and pass them by name at the launch")
        want = (-(-M // bm), -(-N // bn), 1)
        rule = ("one program per BLOCK_M x BLOCK_N block of C, grid (cdiv(M, BLOCK_M), cdiv(N, BLOCK_N)), each "
                "adding the splits of its block")
        if bm * bn == 1 and M * N > 1:
            return (f"{l.grid_text()} starts one program per element of C (BLOCK_M = BLOCK_N = 1): {rule}; a "
                    "program that adds a block of elements at once keeps the GPU's lanes busy")
        if l.grid != want:
            return (f"{l.grid_text()} started {l.programs} program(s), but C ({M}x{N}) in blocks of {bm}x{bn} "
                    f"needs a grid of {want[0]}x{want[1]}: {rule}")
        if bm * bn > 16384:
            return (f"{l.grid_text()} works on blocks of {bm}x{bn} = {bm * bn} elements: a program holds its block "
                    "in registers, which on a GPU means at most a few thousand elements; use blocks such as the "
                    f"wrapper's, and a grid of cdiv(M, BLOCK_M) x cdiv(N, BLOCK_N) programs")
    return None


def _reduce_reads_message(call, w, case, res):
    """In the interpreter: ``None`` if the learner's kernels read every element of W once and stored every
    element of C once; else what they did instead."""
    M, N, S = case.M, case.N, case.splits
    traced = [l for l in call.learner if l.trace is not None]
    if ON_GPU or not traced:
        return None
    lo, n_w = w.data_ptr(), S * M * N
    reads = np.zeros(n_w, dtype=np.int64)
    cview = View("C", res)
    writes = np.zeros((M, N), dtype=np.int64)
    for l in traced:
        for p in l.trace.programs.values():
            for addr in p.loads:
                e = (addr.astype(np.int64) - lo) // 4
                e = e[(e >= 0) & (e < n_w)]
                np.add.at(reads, e, 1)
            for addr, _ in p.stores:
                inside = cview.in_storage(addr)
                if inside.any():
                    ok, rows, cols, _ = cview.index(addr[inside])
                    np.add.at(writes, (rows[ok], cols[ok]), 1)
    if (reads > 1).any():
        e = int(np.argmax(reads > 1))
        s, m, n = (int(x) for x in np.unravel_index(e, (S, M, N)))
        return (f"W[{s}, {m}, {n}] was read {int(reads[e])} times ({int((reads > 1).sum())} of the {n_w} elements of W "
                "more than once): each element of W is needed once; each program loads its own block of every "
                "W[s] once, masked at the ragged edges (a load without the mask reads the next row's elements "
                "too), and adds it into its accumulator")
    if (writes > 1).any():
        i, j = (int(x) for x in np.argwhere(writes > 1)[0])
        return (f"C[{i}, {j}] was stored {int(writes[i, j])} times: each program stores its block of C once, after "
                "adding every split into its float32 accumulator")
    return None


def _run_reduce_case(fn, case, rng, gen, subchecks, first):
    title = case.title()
    if case.gpu_only and not ON_GPU:
        subchecks.append(SubCheck(title, "skip", "needs a CUDA GPU: Triton's interpreter rounds float32 to "
                                                 "bfloat16 differently from a GPU"))
        return
    stop0 = _stop_for(subchecks, title)
    S, M, N = case.splits, case.M, case.N
    w_note = (f" (W, of shape ({S}, {M}, {N}), is seen here as its {S * M} rows of {N}: row r is W[r // {M}, "
              f"r % {M}]; a row past the last one is split {S} or beyond: does the loop stop at splits - 1, and are "
              "the loads masked?)")

    def stop(status, message):
        if "outside W" in message:
            message += w_note
        elif "outside C" in message and "strides are" not in message:
            message += _c_layout_note(case)
        stop0(status, message)

    low = case.dtype != torch.float32
    values = _partials(gen, S, M, N, low)
    w_np = values.numpy().copy()
    head, tail = 16, M * N + 16  # after W, a whole split more: a loop that runs one split too far stays inside
    wbuf = torch.full((head + S * M * N + tail,), _W_PAD, dtype=torch.float32, device=DEVICE)
    w = wbuf[head:head + S * M * N].view(S, M, N)
    w.copy_(values.to(DEVICE))
    private = _bytes_of(w.reshape(S * M, N))
    big = out = None
    kwargs = {}
    if not case.own_out and _accepts(fn, "out"):
        big, out = _place(torch.empty(M, N, dtype=case.dtype), _OUT_PAD, case.layout, guard=1)
        _poison(out)
        kwargs["out"] = out
    case.strides = {"C": tuple(out.stride()) if out is not None else (N, 1)}
    w2 = w.view(S * M, N)
    operands = {"W": w2, "C": out} if out is not None else {"W": w2}
    call = _fp_call(fn, (w,), kwargs, operands, ("W",), stop, modules=(_splitk,), low_precision_casts=True)
    res = call.res
    dtype = case.dtype if out is not None else torch.float32
    _check_kernel_result(call, res, out, (M, N), dtype, stop, "a view", "")
    msg = _reduce_grid_message(call, case, res)
    if msg:
        stop("fail", msg)
    nan = _unwritten(res, poisoned=out is not None)
    if bool(nan.all()):
        stop("not_implemented" if first else "fail",
             "the kernel wrote nothing: every element of C is still the NaN it was filled with "
             "(not implemented yet, or a store mask that is never true?)")
    if bool(nan.any()):
        stop("fail", _reduce_unwritten_message(nan.cpu(), case))
    if not call.box.received(w, call.learner):
        stop("refused", "refused: w itself was never passed to your kernel, so it read a copy of it made outside a "
                        "kernel (.contiguous(), .clone(), a cast, ...): pass w itself and let the kernel read it")
    if not torch.equal(_bytes_of(w2), private):
        stop("fail", "the kernel changed the workspace W: it must only read it")
    if big is not None:
        msg = _canary_message(big, out, M, N)
        if msg:
            stop("fail", msg)
    msg = _reduce_values_message(res, w_np, case, _stored_mask(call.learner, res))
    if msg:
        stop("fail", msg)
    msg = _reduce_reads_message(call, w, case, res)
    if msg:
        stop("fail", msg)
    new = _partials(gen, S, M, N, low)
    verdict = _replay_fp(call, {"W": new}, {"W": w}, [out] if out is not None else ())
    if verdict:
        stop(*verdict)
    if _reduce_values_message(res, new.numpy(), case):
        stop(*_not_following("C"))
    subchecks.append(SubCheck(title, "pass"))


def check_splitk_reduce(fn, rng, gen, subchecks):
    def dims(lo, hi):
        return _dims(rng, lo, hi)

    hi = pick(cpu=40, gpu=700)
    lo = pick(cpu=17, gpu=65)  # more than one block of the wrapper's in each direction
    cases = [
        _RCase("ragged", 3, dims(2, 15), dims(2, 15)),
        _RCase("ragged", 7, dims(lo, hi), dims(lo, hi), layout="col"),
        _RCase("ragged", 2, dims(lo, hi), dims(lo, hi), torch.float16, layout="every_other"),
        _RCase("one split: a copy", 1, dims(lo, hi), dims(lo, hi), torch.float16),
        _RCase("random splits", rng.choice([4, 5, 6, 9]), dims(lo, hi), dims(lo, hi), layout="padded"),
        _RCase("random splits", rng.choice([3, 5, 8]), dims(lo, hi), dims(lo, hi), torch.float16, layout="col"),
        _RCase("one row", rng.choice([3, 4]), 1, dims(lo, hi), layout="every_other"),
        _RCase("one column", rng.choice([3, 6]), dims(lo, hi), 1, torch.float16),
        _RCase("bf16 on a GPU", 7, dims(lo, hi), dims(lo, hi), torch.bfloat16, layout="every_other", gpu_only=True),
        _RCase("bf16 on a GPU", rng.choice([2, 3, 12]), dims(lo, hi), dims(lo, hi), torch.bfloat16, gpu_only=True),
        _RCase("the wrapper allocates C", rng.choice([3, 7]), dims(lo, hi), dims(lo, hi), own_out=True),
    ]
    for i, case in enumerate(cases):
        _run_reduce_case(fn, case, rng, gen, subchecks, i == 0)


# --------------------------------------------------------------------------------------------------
# quantize_e4m3
# --------------------------------------------------------------------------------------------------
_E4M3_TABLE = np.array([_fp8.E4M3.decode(b) for b in range(256)])  # float64 value of each byte, NaN codes NaN
_E4M3_GRID = _fp8.E4M3.values()[_fp8.E4M3.values() >= 0]  # 0, 2**-9, ..., 448
_AMBIGUOUS = 2.0**-19  # relative distance to a rounding midpoint within which float32 order decides


def _e4m3_of(t: torch.Tensor) -> np.ndarray:
    return _E4M3_TABLE[t.detach().view(torch.uint8).cpu().numpy()]


def _quantize_reference(x32: np.ndarray):
    """For float32 rows ``x32``: ``(v, q, other, near, scale)``: ``v = x * 448 / amax`` (float64), its
    e4m3 value ``q`` (nearest, ties to even, saturated), the other neighbour on the e4m3 grid ``other``,
    ``near`` where ``v`` lies so close to a midpoint between the two that the order of a kernel's float32
    operations decides, and the float32 ``scale = amax / 448`` (1 for an all-zero row)."""
    a = x32.astype(np.float64)
    amax = np.abs(a).max(axis=1)
    safe = np.where(amax > 0, amax, 448.0)
    v = a * (448.0 / safe)[:, None]
    q = _fp8.quantize(v, "e4m3")
    mag = np.minimum(np.abs(v), 448.0)
    i = np.clip(np.searchsorted(_E4M3_GRID, mag, side="right") - 1, 0, len(_E4M3_GRID) - 1)
    lo, hi = _E4M3_GRID[i], _E4M3_GRID[np.minimum(i + 1, len(_E4M3_GRID) - 1)]
    mid = (lo + hi) / 2
    near = (hi > lo) & (np.abs(mag - mid) <= _AMBIGUOUS * mid)
    other = np.sign(v) * np.where(np.abs(q) == lo, hi, lo)
    scale = np.where(amax > 0, (amax / 448.0), 1.0).astype(np.float32)
    return v, q, other, near, scale


def _quantize_message(x32, q_got, s_got, exact_rows, stored=None):
    """``None`` if ``q_got`` (float64 e4m3 values) and ``s_got`` (float32, (M,)) are right for ``x32``;
    else what is wrong. ``exact_rows``: rows whose ties every float32 order computes exactly (their
    scale is a power of two), where a tie must round to even."""
    v, q, other, near, scale = _quantize_reference(x32)
    M = x32.shape[0]
    amax = np.abs(x32.astype(np.float64)).max(axis=1)
    nan = np.isnan(q_got)
    if nan.any():
        i, j = (int(k) for k in np.argwhere(nan)[0])
        if stored is not None and not stored[i, j]:
            return (f"{int(nan.sum())} elements of q were never stored, first q[{i}, {j}] (it still holds the "
                    "NaN the wrapper filled q with): does every program store its whole row, the last "
                    "partial block included?")
        why = ("the row is all zeros: its scale must be 1 and q zeros, with no division by amax = 0"
               if amax[i] == 0 else "a value past 448 cast to e4m3 without saturating, or a NaN scale")
        return (f"{int(nan.sum())} elements of q hold e4m3's NaN code, first q[{i}, {j}] (x = {x32[i, j]:.6g}): "
                f"{why}")
    bad_s = ~(np.abs(s_got.astype(np.float64) - scale) <= 2.0**-22 * scale)
    if bad_s.any():
        i = int(np.argmax(bad_s))
        hint = ""
        if amax[i] == 0:
            hint = ": the row is all zeros, and its scale is 1 (x = q * scale must still hold, with no division by 0)"
        elif M > 1 and np.all(s_got == s_got[0]) and np.unique(scale).size > 1:
            hint = (": every row got the same scale, but each row has its own, from its own amax (per row, not "
                    "per tensor)")
        if amax[i] == 0:
            return f"scale[{i}] is {float(s_got[i]):.8g}, expected 1{hint}"
        return (f"scale[{i}] is {float(s_got[i]):.8g}, expected amax / 448 = {float(amax[i]):.8g} / 448 = "
                f"{float(scale[i]):.8g}{hint}")
    ok = (q_got == q) | (near & ~exact_rows[:, None] & (q_got == other))
    if ok.all():
        return None
    i, j = (int(k) for k in np.argwhere(~ok)[0])
    head = (f"q[{i}, {j}] is {q_got[i, j]:.8g}, expected {q[i, j]:.8g} (x = {x32[i, j]:.8g}, x / scale = "
            f"{v[i, j]:.8g})")
    mag = abs(v[i, j])
    if mag > 0 and abs(q_got[i, j]) == abs(other[i, j]) and near[i, j]:
        return head + (": an exact tie between two e4m3 values rounds to the one with the even mantissa (its "
                       "last bit 0), not up: (t + 2**23) - 2**23 rounds ties to even, while floor(t + 0.5) and "
                       "the interpreter's own cast to float8 round them up")
    if np.sign(q_got[i, j]) == -np.sign(q[i, j]) and q[i, j] != 0:
        return head + ": the sign is lost: round |x / scale| and put the sign back"
    if mag < 2.0**-6:
        return head + (": below 2**-6 e4m3 has subnormals, evenly spaced 2**-9 apart: there the rounding step "
                       "stays 2**-9")
    if abs(q_got[i, j]) == abs(other[i, j]):
        return head + ": that is the farther of the two neighbours on the e4m3 grid: round to the nearer one"
    return head + (": not one of the two e4m3 values around x / scale. Round in float32 (round_e4m3) before "
                   "the cast: Triton's interpreter's own cast to float8 does not round as a GPU's does")


def _ties_rows(rng, n_rows, n):
    """Rows of exact ties and edge values, each row scaled by a power of two so that its amax is
    ``448 * 2**k``: then every float32 order of operations computes ``x / scale`` exactly."""
    grid = _E4M3_GRID[_E4M3_GRID < 448]
    mids = (grid[1:] + grid[:-1]) / 2
    fixed = [1.0625, 1.1875, 1.3125, 17.0, 19.0, 200.0, 232.0, 3 * 2.0**-10, 5 * 2.0**-10, 2.0**-10,
             2.0**-10 * (1 + 2.0**-10), 2.0**-6, 1.0, 447.0]
    rows = []
    for r in range(n_rows):
        k = rng.choice([-6, -3, 0, 2, 5])
        vals = fixed + [float(m) for m in rng.sample(list(mids), n - len(fixed) - 1)]
        signs = [rng.choice([-1.0, 1.0]) for _ in vals]
        row = [448.0 * rng.choice([-1.0, 1.0])] + [s * v for s, v in zip(signs, vals)]
        rng.shuffle(row)
        rows.append([x * 2.0**k for x in row])
    return torch.tensor(rows, dtype=torch.float32)


def _spread_rows(gen, rng, M, N):
    """Rows from 1e-6 to 1e4 in magnitude, an outlier in a few, an all-zero row, a row with one
    nonzero value, a row of negative values: a scale per row is the only one that fits them all."""
    x = torch.randn(M, N, generator=gen)
    mags = [10.0 ** e for e in np.linspace(-6, 4, M)]
    rng.shuffle(mags)
    x *= torch.tensor(mags, dtype=torch.float32)[:, None]
    for r in rng.sample(range(M), min(2, M)):
        x[r, rng.randrange(N)] = 1e4 * mags[r] * rng.choice([-1, 1])
    special = rng.sample(range(M), min(3, M))
    x[special[0]] = 0.0
    if len(special) > 1:
        x[special[1]] = 0.0
        x[special[1], rng.randrange(N)] = -3.5 * mags[special[1]]
    if len(special) > 2:
        x[special[2]] = -x[special[2]].abs()
    return x


class _QCase:
    def __init__(self, label, values, dtype=torch.float32, padded=False, kwargs=None, exact_rows=()):
        self.label, self.values, self.dtype, self.padded = label, values, dtype, padded
        self.kwargs = kwargs or {}
        self.exact_rows = set(exact_rows)

    def title(self):
        M, N = self.values.shape
        kw = "".join(f", {k}={v}" for k, v in self.kwargs.items())
        return f"x {str(self.dtype)[6:]} {M}x{N} ({self.label}{', a view in a wider buffer' if self.padded else ''}{kw})"


def _run_quantize_case(fn, case, rng, gen, subchecks, first):
    title = case.title()
    stop = _stop_for(subchecks, title)
    values = case.values.to(case.dtype)
    M, N = values.shape
    _, x = _in_buffer(values, 1e4, case.padded)  # reading past a row's end would change its amax
    private = _bytes_of(x)
    call = _fp_call(fn, (x,), dict(case.kwargs), {"x": x}, ("x",), stop)
    res = call.res
    if not (isinstance(res, (tuple, list)) and len(res) == 2):
        stop("fail", f"the function returned {type(res).__name__}, expected a pair (q, scale)")
    q, s = res
    _check_result_tensor(q, "q", (M, N), torch.float8_e4m3fn, stop)
    _check_result_tensor(s, "scale", (M, 1), torch.float32, stop)
    for label, t in (("q", q), ("scale", s)):
        why = call.box.written_by_kernel(t)
        if why:
            stop("refused", f"refused: {label}: {why}")
    q_vals, s_vals = _e4m3_of(q), s.detach().cpu().numpy().reshape(-1)
    if np.isnan(q_vals).all() and np.isnan(s_vals).all():
        stop("not_implemented" if first else "fail",
             "the kernel wrote nothing: q and scale still hold the NaN the wrapper filled them with "
             "(not implemented yet, or a store mask that is never true?)")
    verdict = _inputs_message(call, {"x": x}, {"x": private})
    if verdict:
        stop(verdict[0], ("refused: " if verdict[0] == "refused" else "") + verdict[1])
    x32 = values.to(torch.float32).numpy()
    exact = np.array([i in case.exact_rows for i in range(M)])
    stored = _stored_mask(call.learner, q)
    if np.isnan(s_vals).any():
        i = int(np.argmax(np.isnan(s_vals)))
        zero = np.abs(x32[i]).max() == 0
        stop("fail", f"scale[{i}] is NaN" + (": the row is all zeros, and its scale is 1 (no division by amax = 0)"
                                               if zero else ": was it stored for every row?"))
    msg = _quantize_message(x32, q_vals, s_vals, exact, stored)
    if msg:
        stop("fail", msg)
    # the same launches on new values of x: q and scale must follow
    new = torch.randn(M, N, generator=gen) * torch.tensor([10.0 ** rng.uniform(-3, 3) for _ in range(M)])[:, None]
    new = new.to(case.dtype)
    first_q, first_s = _bytes_of(q), _bytes_of(s)
    verdict = _replay_fp(call, {"x": new}, {"x": x})
    if verdict:
        stop(*verdict)
    msg = _quantize_message(new.to(torch.float32).numpy(), _e4m3_of(q), s.detach().cpu().numpy().reshape(-1),
                            np.zeros(M, dtype=bool), _stored_mask(call.learner, q))
    if msg:
        # unchanged, or NaN (the wrapper's fill) where the first call had values: those came from elsewhere
        again = _e4m3_of(q)
        lost = np.isnan(again) & ~np.isnan(_E4M3_TABLE[first_q.view(torch.uint8).numpy()])
        if (torch.equal(_bytes_of(q), first_q) and torch.equal(_bytes_of(s), first_s)) or lost.any():
            stop(*_not_following("q and scale"))
        # they followed, but these values come out wrong: say which
        stop("fail", "on new values of x (the grader launched your kernel again): " + msg)
    subchecks.append(SubCheck(title, "pass"))


def check_quantize_e4m3(fn, rng, gen, subchecks):
    if not _accepts(fn, "block_n"):
        subchecks.append(SubCheck("the wrapper takes block_n=", "fail", "it does not"))
        raise _Stop("fail", "the function must take a keyword argument block_n= (keep the given wrapper's "
                            "signature): the grader checks rows longer than one block through it")
    hi_n = pick(cpu=200, gpu=5000)
    cases = [
        _QCase("small", torch.randn(rng.randint(2, 5), _dims(rng, 3, 20), generator=gen)),
        _QCase("rows of several blocks", torch.randn(rng.randint(3, 6), _dims(rng, 70, hi_n), generator=gen),
               padded=True, kwargs={"block_n": 16}),
        # rows longer than 256 at the wrapper's own block_n (several blocks each), and a row longer than the
        # largest block_n the given wrapper takes (2048): a kernel that reads one block of a fixed size whatever
        # N is misses the rest of the row
        _QCase("rows longer than 256, several blocks of your block_n",
               torch.randn(rng.randint(2, 4), _dims(rng, 300, 700), generator=gen)),
        _QCase("a row longer than the largest block_n (2048)", torch.randn(2, _dims(rng, 2049, 2600), generator=gen),
               padded=True, kwargs={"block_n": 512}),
        _QCase("rows from 1e-6 to 1e4, outliers, an all-zero row", _spread_rows(gen, rng, 9, _dims(rng, 20, 60)),
               padded=True),
        _QCase("exact ties, amax = 448 * 2**k", _ties_rows(rng, 4, 24), exact_rows=range(4), kwargs={"block_n": 16}),
        _QCase("bfloat16", _spread_rows(gen, rng, rng.randint(3, 7), _dims(rng, 20, 100)), torch.bfloat16,
               padded=True),
        _QCase("float16", torch.randn(rng.randint(2, 5), _dims(rng, 3, 40), generator=gen) * 30, torch.float16),
        _QCase("one column", torch.randn(rng.randint(3, 9), 1, generator=gen), padded=True),
    ]
    for i, case in enumerate(cases):
        _run_quantize_case(fn, case, rng, gen, subchecks, i == 0)


# --------------------------------------------------------------------------------------------------
# scaled_matmul_e4m3
# --------------------------------------------------------------------------------------------------
# Elementwise bound: one bfloat16 step of the output (2**-7 relative: Triton's interpreter converts float32
# to bfloat16 by truncation, a GPU to nearest) plus the accumulation error against |qa| @ |qb|.T (the size
# of what was summed). In the interpreter the accumulation is float32; on Hopper, Triton lets FP8 tensor
# cores accumulate with fewer bits across K by default (max_num_imprecise_acc), hence the wider bound there.
_ACC_BOUND = pick(cpu=2.0**-12, gpu=2.0**-7)
_FP8_TYPES = ("fp8e4nv", "float8e4nv")


def _e4m3_operand(gen, rng, rows, K, positive=False, spread=8):
    """``(q, s)``: e4m3 values (float64, ``(rows, K)``) and per-row float32 scales (``(rows, 1)``), from
    normal values quantized per row; each row's scale is then multiplied by its own power of two up to
    ``2**±spread``, so that a scale applied to the wrong row or per tensor gives other products."""
    x = torch.randn(rows, K, generator=gen, dtype=torch.float64)
    if positive:
        x = x.abs() + 0.05
    q, s = _fp8.quantize_with(x.numpy(), "row")
    s = s * np.array([[2.0 ** rng.randint(-spread, spread)] for _ in range(rows)])
    return torch.from_numpy(q), torch.from_numpy(s.astype(np.float32))


def _scaled_reference(qa, sa, qb, sb):
    """``(ref, scale_of_sum)``, float64: ``(qa @ qb.T) * sa * sb.T`` and ``(|qa| @ |qb|.T) * sa * sb.T``."""
    a, b = qa.to(torch.float64), qb.to(torch.float64)
    outer = sa.to(torch.float64) * sb.to(torch.float64).T
    return (a @ b.T) * outer, (a.abs() @ b.abs().T) * outer


def _scaled_message(got, qa, sa, qb, sb):
    ref, size = _scaled_reference(qa, sa, qb, sb)
    g = got.detach().to("cpu", torch.float64)
    bound = 2.0**-7 * ref.abs() + _ACC_BOUND * size
    bad = ~torch.isfinite(g) | ((g - ref).abs() > bound)
    err = T.rel_error(g, ref)
    if not bool(bad.any()) and err <= T.tolerance(torch.bfloat16):
        return None
    if not bool(bad.any()):
        i, j = _first((g - ref).abs() == (g - ref).abs().max())
    else:
        i, j = _first(bad)
    head = (f"C[{i}, {j}] is {float(g[i, j]):.6g}, expected {float(ref[i, j]):.6g} (relative error of C "
            f"{err:.2e}; bf16 tolerance {T.tolerance(torch.bfloat16):.0e}, and each element within one bf16 step)")
    if not bool(torch.isfinite(g[i, j])):
        return head + (": NaN or inf: did a load read outside qa or qb (a missing mask or other=0.0), or did the "
                       "accumulator overflow (float16 ends at 65504: accumulate in float32)?")
    r = float(ref[i, j])
    if r != 0:
        ratio = float(g[i, j]) / r
        sa0, sb0 = float(sa[0, 0]), float(sb[0, 0])
        for what, factor in ((f"qa's row-0 scale for every row (sa[0] instead of sa[{i}])", sa0 / float(sa[i, 0])),
                             (f"qb's row-0 scale for every column (sb[0] instead of sb[{j}])", sb0 / float(sb[j, 0])),
                             ("no scales at all", 1.0 / (float(sa[i, 0]) * float(sb[j, 0])))):
            if factor != 1 and factor != 0 and abs(ratio / factor - 1) < 0.02:
                return head + f": that is the product with {what}; each row i of C takes sa[i], each column j takes sb[j]"
    return head + (": C = (qa @ qb.T) * sa * sb.T, with sa (M, 1) one scale per row of C and sb (N, 1) one per "
                   "column of C")


class _SCase:
    def __init__(self, label, M, N, K, padded=False, own_out=False, positive=False, gpu_only=False):
        self.label, self.M, self.N, self.K = label, M, N, K
        self.padded, self.own_out, self.positive, self.gpu_only = padded, own_out, positive, gpu_only

    def title(self):
        extra = ", views in wider buffers" if self.padded else ""
        return f"{self.M}x{self.N}x{self.K} ({self.label}{extra})"


def _fp8_dot_message(learner, res):
    """``None`` if the learner's kernels that wrote C ran ``tl.dot`` on e4m3 tiles; else why not. In the
    interpreter from the trace, on a GPU from the compiled code (TTIR)."""
    own = [l for l in learner if l.touches(res)] or learner
    for l in own:
        if l.trace is not None and not ON_GPU:
            types = set().union(*(p.dot_types for p in l.trace.programs.values())) if l.trace.programs else set()
        else:
            asm = getattr(l.compiled, "asm", None) or {}
            text = asm.get("ttir") or asm.get("ttgir")
            if not text:
                continue  # nothing to read: the values decide
            lines = [ln for ln in text.splitlines() if re.search(r"\btt\.dot\b|\bttng\.warp_group_dot\b", ln)]
            types = {("fp8e4nv", "fp8e4nv") if "f8E4M3FN" in ln else ("other", "other") for ln in lines}
        if not types:
            return (f"your kernel {l.kernel} computed C without tl.dot: multiply the e4m3 tiles with "
                    "tl.dot(a, b, acc), which runs them on the tensor cores")
        wide = sorted({t for pair in types for t in pair if t not in _FP8_TYPES})
        if wide:
            return (f"your kernel {l.kernel} runs tl.dot on {wide[0]} tiles: pass the e4m3 tiles to tl.dot as "
                    "they are loaded (FP8 tensor cores take them directly) and apply the scales once per "
                    "element of C, after the K loop")
    return None


def _run_scaled_case(fn, case, rng, gen, subchecks, first):
    title = case.title()
    if case.gpu_only and not ON_GPU:
        subchecks.append(SubCheck(title, "skip", "needs a CUDA GPU; this runs in Triton's interpreter"))
        return
    stop = _stop_for(subchecks, title)
    M, N, K = case.M, case.N, case.K
    qa64, sa_v = _e4m3_operand(gen, rng, M, K, case.positive)
    qb64, sb_v = _e4m3_operand(gen, rng, N, K, case.positive)
    f8 = torch.float8_e4m3fn
    _, qa = _in_buffer(qa64.to(f8), 448.0, case.padded)
    _, qb = _in_buffer(qb64.to(f8), 448.0, case.padded)
    _, sa = _in_buffer(sa_v, 1e6, case.padded)
    _, sb = _in_buffer(sb_v, 1e6, case.padded)
    inputs = {"qa": qa, "sa": sa, "qb": qb, "sb": sb}
    privates = {k: _bytes_of(v) for k, v in inputs.items()}
    kwargs, big, c_view = {}, None, None
    if not case.own_out and _accepts(fn, "out"):
        big, c_view = _place(torch.empty(M, N, dtype=torch.bfloat16), _OUT_PAD, "padded" if case.padded else "row",
                             guard=1)
        _poison(c_view)
        kwargs["out"] = c_view
    operands = dict(inputs, C=c_view) if c_view is not None else dict(inputs)
    call = _fp_call(fn, (qa, sa, qb, sb), kwargs, operands, tuple(inputs), stop)
    res = call.res
    _check_kernel_result(call, res, c_view, (M, N), torch.bfloat16, stop, "C as a view", "C ")
    poisoned = c_view is not None
    nan = _unwritten(res, poisoned=poisoned)
    if bool(nan.all()):
        stop("not_implemented" if first else "fail",
             "the kernel wrote nothing: every output is still the NaN the output was filled with "
             "(not implemented yet, or a store mask that is never true?)")
    msg = _fp8_dot_message(call.learner, res)
    if msg:
        stop("refused", "refused: " + msg)
    verdict = _inputs_message(call, inputs, privates)
    if verdict:
        stop(verdict[0], ("refused: " if verdict[0] == "refused" else "") + verdict[1])
    if bool(nan.any()):
        i, j = _first(nan)
        stop("fail", f"{int(nan.sum())} of {M * N} outputs never written (still the NaN the output was filled "
                     f"with), first at [{i}, {j}]: check the grid and the store mask")
    if big is not None:
        msg = _canary_message(big, c_view, M, N)
        if msg:
            stop("fail", msg)
    msg = _scaled_message(res, qa64, sa_v, qb64, sb_v)
    if msg:
        stop("fail", msg)
    # the same launches on new operands, in the interpreter with every tl.dot's product doubled: C must
    # follow the new operands and double with the products (C is made of tl.dot's results, not of a
    # product computed beside an unused tl.dot)
    n_qa, n_sa = _e4m3_operand(gen, rng, M, K, case.positive)
    n_qb, n_sb = _e4m3_operand(gen, rng, N, K, case.positive)
    new_inputs = {"qa": n_qa.to(f8), "sa": n_sa, "qb": n_qb.to(f8), "sb": n_sb}
    poison = [c_view] if c_view is not None else ()
    factor = 1.0 if ON_GPU else 2.0
    verdict = _replay_fp(call, new_inputs, inputs, poison, dot_scale=None if ON_GPU else factor)
    if verdict:
        stop(*verdict)
    if _scaled_message(res, n_qa, n_sa * factor, n_qb, n_sb):
        if factor != 1.0 and not (_replay_fp(call, new_inputs, inputs, poison)
                                  or _scaled_message(res, n_qa, n_sa, n_qb, n_sb)):
            stop("refused", "refused: when the grader ran your kernels again with every tl.dot's product doubled, "
                            "C did not double: C must be made of tl.dot's results (acc = tl.dot(a, b, acc)), not "
                            "of a product computed beside a tl.dot whose result goes unused")
        stop(*_not_following("C"))
    subchecks.append(SubCheck(title, "pass"))


def check_scaled_matmul_e4m3(fn, rng, gen, subchecks):
    hi = pick(cpu=70, gpu=700)
    long_k = pick(cpu=1024, gpu=1024)

    def dims():
        return _dims(rng, 2, hi), _dims(rng, 2, hi), _dims(rng, 2, pick(cpu=150, gpu=1500))

    cases = [
        _SCase("small", _dims(rng, 2, 9), _dims(rng, 2, 9), _dims(rng, 2, 40)),
        _SCase("ragged, a scale per row of qa and of qb", *dims()),
        _SCase("ragged", *dims(), padded=True),
        _SCase("one row", 1, _dims(rng, 17, hi), _dims(rng, 2, 100)),
        # more than 128 rows and columns: more than one tile of any size a wrapper is likely to pick, so a
        # kernel whose tile ignores its program id leaves most of C unwritten
        _SCase("ragged, over 128 rows and columns", _dims(rng, 129, 150), _dims(rng, 129, 150), _dims(rng, 33, 60),
               padded=True),
        _SCase("one column", _dims(rng, 17, hi), 1, _dims(rng, 2, 100), padded=True),
        _SCase("positive values, long K: float32 accumulation", rng.randint(2, 16), rng.randint(2, 16), long_k,
               positive=True),
        _SCase("large", 1000 + rng.randint(1, 15), 900 + rng.randint(1, 15), 1000 + rng.randint(1, 15), gpu_only=True),
        _SCase("the wrapper allocates C", *dims(), own_out=True),
    ]
    for i, case in enumerate(cases):
        _run_scaled_case(fn, case, rng, gen, subchecks, i == 0)


# --------------------------------------------------------------------------------------------------
# pack_e2m1, unpack_e2m1 (plain PyTorch)
# --------------------------------------------------------------------------------------------------
_ORDERS = ("low_first", "high_first")


@contextlib.contextmanager
def _no_threads(spawned):
    """Refuse threads and processes started inside the block (``Refused``; ``guard.spawners``), noting
    what was started in ``spawned``: the dtype guard and the file watch see only the calling thread."""
    saved = [(owner, name, getattr(owner, name), what) for owner, name, what in spawners()]

    def refusing(what):
        def start(*args, **kwargs):
            spawned.append(what)
            raise Refused(f"starting {what}")
        return start

    for owner, name, _, what in saved:
        setattr(owner, name, refusing(what))
    try:
        yield
    finally:
        for owner, name, original, _ in saved:
            setattr(owner, name, original)


class _RefusalLog:
    """What ``refuse_calls_into`` reports to outside a ``Sandbox`` (the plain-PyTorch exercises)."""

    def __init__(self):
        self.refusals: list[str] = []

    def refuse(self, what: str):
        self.refusals.append(f"{what} at {learner_frame()}")
        raise Refused(f"grader: {what} is not allowed while an answer is graded")


def _plain_call(fn, args, kwargs, stop, watched=None, write="the bit operations", modules=None):
    """Call a plain-PyTorch answer with PyTorch's 8-bit/4-bit float dtypes refused, calls into the course's
    reference code (kernels/fp4.py, ...) or torchao recorded (or into the files and folders ``watched``),
    and the functions of the course's ``modules`` (default: ``kernels.fp4``, ``fp8``, ``quantize``) refusing to
    run (``refuse_calls_into``: that holds even with the profile hook of the watch switched off); threads and
    processes refused; stop on any of these, on the answer setting the profile hook itself, or an error.
    ``write``: what the refusal asks the learner to write."""
    res, error = None, None
    if watched is None:
        watched = list(_FP_REFERENCE_FILES) + _library_dirs("torchao")
    if modules is None:
        modules = _FP_REFERENCE_MODULES
    with DtypeGuard():  # the first op through a dispatch mode sets torch up (a second or so): not under watch
        torch.empty(0)
    spawned = []
    log = _RefusalLog()
    with watch_files(watched) as calls, _no_threads(spawned), refuse_calls_into(modules, log):
        guard = DtypeGuard()
        try:
            with guard:
                res = fn(*args, **kwargs)
        except Refused:
            pass
        except Exception as exc:
            error = exc
    if spawned:
        stop("refused", f"refused: it starts {spawned[0]}; the grader watches only the answer's own thread, so "
                        "compute in it")
    if calls.tampered:
        stop("refused", tampered_message(calls.tampered))
    if log.refusals:
        stop("refused", f"refused: {log.refusals[0]}; write {write} yourself")
    if guard.refusals:
        stop("refused", "refused: " + guard.refusals[0])
    if calls:
        where = calls[0]
        owner = "the course's own code" if where.startswith("kernels.") else "a library"
        stop("refused", f"refused: it calls {where}, {owner} for what this exercise asks you to write; write "
                        f"{write} yourself")
    if error is not None:
        if _not_implemented(error):
            stop("not_implemented", "not implemented yet (NotImplementedError)")
        stop("error", describe_exception(error))
    return res


def _expect_error(fn, args, kwargs, kinds, what, stop):
    try:
        with DtypeGuard():
            fn(*args, **kwargs)
    except kinds:
        return
    except Exception as exc:
        stop("fail", f"{what}: expected {' or '.join(k.__name__ for k in kinds)}, got {describe_exception(exc)}")
    stop("fail", f"{what}: expected {' or '.join(k.__name__ for k in kinds)} with a clear message, got a result "
                 "(the given checks at the top of the function refuse it: keep them)")


def _pack_ref(codes: np.ndarray, order: str) -> np.ndarray:
    first, second = codes[..., 0::2], codes[..., 1::2]
    return (first | (second << 4)) if order == "low_first" else ((first << 4) | second)


def _codes_cases(rng, gen):
    """(label, codes as a CPU uint8 tensor) for pack_e2m1 and, packed, for unpack_e2m1."""
    pairs = torch.tensor([[i // 16, i % 16] for i in range(256)], dtype=torch.uint8)  # every (first, second)
    wide = torch.randint(0, 16, (rng.randint(2, 9), 4 * rng.randint(2, 20)), generator=gen, dtype=torch.uint8)
    return [
        ("all 256 pairs of codes", pairs),
        ("1-D", torch.randint(0, 16, (2 * rng.randint(1, 40),), generator=gen, dtype=torch.uint8)),
        ("2-D", torch.randint(0, 16, (rng.randint(1, 9), 2 * rng.randint(1, 40)), generator=gen, dtype=torch.uint8)),
        ("3-D", torch.randint(0, 16, (2, rng.randint(1, 5), 2 * rng.randint(1, 20)), generator=gen, dtype=torch.uint8)),
        ("every other column of a wider tensor", wide[:, ::2]),
    ]




def _describe_byte_mistake(got: int, want: int, first: int, second: int, order: str) -> str:
    if got == ((want & 15) << 4 | want >> 4):
        lo = "first" if order == "low_first" else "second"
        return f": the two nibbles are swapped; with order='{order}' the {lo} code goes in the low nibble (bits 0-3)"
    return ""


def check_pack_e2m1(fn, rng, gen, subchecks):
    if not _accepts(fn, "order"):
        subchecks.append(SubCheck("the function takes order=", "fail", "it does not"))
        raise _Stop("fail", "the function must take order= ('low_first' or 'high_first'); keep the given signature")
    cases = [(label, codes, order) for label, codes in _codes_cases(rng, gen) for order in _ORDERS]
    for label, codes, order in cases:
        title = f"{label}, shape {tuple(codes.shape)}, order='{order}'"
        stop = _stop_for(subchecks, title)
        arg = codes.to(DEVICE)
        before = arg.clone()
        kwargs = {} if order == "low_first" and "pairs" in label else {"order": order}
        res = _plain_call(fn, (arg,), kwargs, stop)
        want_shape = tuple(codes.shape[:-1]) + (codes.shape[-1] // 2,)
        _check_result_tensor(res, "the result", want_shape, torch.uint8, stop)
        if not torch.equal(arg, before):
            stop("fail", "the function changed its input: it must only read the codes")
        got = res.detach().cpu().numpy()
        want = _pack_ref(codes.numpy(), order)
        if not np.array_equal(got, want):
            idx = tuple(int(i) for i in np.argwhere(got != want)[0])
            src = codes.numpy()[idx[:-1]]
            first, second = int(src[2 * idx[-1]]), int(src[2 * idx[-1] + 1])
            g, w = int(got[idx]), int(want[idx])
            stop("fail", f"byte {list(idx)} is 0x{g:02x}, expected 0x{w:02x} (the pair of codes {first}, {second}, "
                         f"order='{order}'){_describe_byte_mistake(g, w, first, second, order)}")
        subchecks.append(SubCheck(title, "pass"))
    title = "bad input: an odd number of codes, a code above 15, a float tensor"
    stop = _stop_for(subchecks, title)
    _expect_error(fn, (torch.zeros(3, 5, dtype=torch.uint8, device=DEVICE),), {}, (ValueError,), "an odd last dimension", stop)
    _expect_error(fn, (torch.full((2, 4), 16, dtype=torch.uint8, device=DEVICE),), {}, (ValueError,), "a code of 16", stop)
    _expect_error(fn, (torch.zeros(2, 4, device=DEVICE),), {}, (TypeError,), "a float32 tensor", stop)
    _expect_error(fn, (torch.zeros(2, 4, dtype=torch.uint8, device=DEVICE),), {"order": "middle"}, (ValueError,),
                  "order='middle'", stop)
    subchecks.append(SubCheck(title, "pass"))


def check_unpack_e2m1(fn, rng, gen, subchecks):
    if not _accepts(fn, "order"):
        subchecks.append(SubCheck("the function takes order=", "fail", "it does not"))
        raise _Stop("fail", "the function must take order= ('low_first' or 'high_first'); keep the given signature")
    every_byte = torch.arange(256, dtype=torch.int32).to(torch.uint8).reshape(16, 16)
    cases = [("all 256 bytes", every_byte, o) for o in _ORDERS]
    for label, codes in _codes_cases(rng, gen)[1:4]:  # 1-D, 2-D, 3-D: random codes, packed
        for order in _ORDERS:
            cases.append((label, torch.from_numpy(_pack_ref(codes.numpy(), order)), order))
    wide = torch.randint(0, 256, (rng.randint(2, 9), 2 * rng.randint(3, 30)), generator=gen, dtype=torch.int32)
    cases.append(("every other column of a wider tensor", wide.to(torch.uint8)[:, ::2], "high_first"))
    for label, packed, order in cases:
        title = f"{label}, shape {tuple(packed.shape)}, order='{order}'"
        stop = _stop_for(subchecks, title)
        arg = packed.to(DEVICE)
        before = arg.clone()
        kwargs = {} if order == "low_first" and "all 256" in label else {"order": order}
        res = _plain_call(fn, (arg,), kwargs, stop)
        want_shape = tuple(packed.shape[:-1]) + (packed.shape[-1] * 2,)
        _check_result_tensor(res, "the result", want_shape, torch.uint8, stop)
        if not torch.equal(arg, before):
            stop("fail", "the function changed its input: it must only read the bytes")
        got = res.detach().cpu().numpy()
        p = packed.numpy()
        lo, hi = p & 15, p >> 4
        pairs = (lo, hi) if order == "low_first" else (hi, lo)
        want = np.stack(pairs, axis=-1).reshape(want_shape)
        if not np.array_equal(got, want):
            idx = tuple(int(i) for i in np.argwhere(got != want)[0])
            byte = int(p[idx[:-1] + (idx[-1] // 2,)])
            which = "first" if idx[-1] % 2 == 0 else "second"
            hint = ""
            if int(got[idx]) == (byte >> 4 if (byte & 15) == int(want[idx]) else byte & 15):
                nib = "low" if (which == "first") == (order == "low_first") else "high"
                hint = f": with order='{order}' the {which} code of a byte is its {nib} nibble"
            elif int(got[idx]) > 15:
                hint = ": a code is 4 bits (0..15): mask with & 15"
            stop("fail", f"code {list(idx)} is {int(got[idx])}, expected {int(want[idx])} (the {which} code of byte "
                         f"0x{byte:02x}){hint}")
        subchecks.append(SubCheck(title, "pass"))
    title = "bad input: a float tensor, order='middle'"
    stop = _stop_for(subchecks, title)
    _expect_error(fn, (torch.zeros(2, 4, device=DEVICE),), {}, (TypeError,), "a float32 tensor", stop)
    _expect_error(fn, (torch.zeros(2, 4, dtype=torch.uint8, device=DEVICE),), {"order": "middle"}, (ValueError,),
                  "order='middle'", stop)
    subchecks.append(SubCheck(title, "pass"))


# --------------------------------------------------------------------------------------------------
# dequantize_mxfp4
# --------------------------------------------------------------------------------------------------
_E8M0_RANGE = (127 - 60, 127 + 60)  # exponents drawn; 0 (2**-127, a float32 subnormal) and 255 (NaN) aside


def _mxfp4_reference(codes: np.ndarray, exps: np.ndarray) -> np.ndarray:
    scale = 2.0 ** (exps.astype(np.float64) - 127)
    return _fp4.VALUES[codes] * np.repeat(scale, 32, axis=1)


class _DCase:
    def __init__(self, label, codes, exps, order="low_first", padded=False, own_out=False):
        self.label, self.codes, self.exps, self.order = label, codes, exps, order
        self.padded, self.own_out = padded, own_out

    def title(self):
        N, K = self.codes.shape
        extra = ", views in wider buffers" if self.padded else ""
        return f"N={N}, K={K} ({self.label}, order='{self.order}'{extra})"


def _random_mx(rng, gen, N, K):
    codes = torch.randint(0, 16, (N, K), generator=gen, dtype=torch.uint8).numpy()
    exps = torch.randint(_E8M0_RANGE[0], _E8M0_RANGE[1] + 1, (N, K // 32), generator=gen, dtype=torch.int32)
    return codes, exps.to(torch.uint8).numpy()


def _mxfp4_message(got, codes, exps, order, stored=None):
    ref = _mxfp4_reference(codes, exps)
    g = got.detach().to("cpu", torch.float64).numpy()
    bad = ~(g == ref)
    if not bad.any():
        return None
    n, k = (int(i) for i in np.argwhere(bad)[0])
    if stored is not None and not stored[n, k]:
        return (f"{int((~stored).sum())} outputs never stored, first out[{n}, {k}]: does the grid cover every "
                f"block of K (the last, partial one too), and does the store mask keep every column below K?")
    code, e = int(codes[n, k]), int(exps[n, k // 32])
    first = k % 2 == 0
    nibble = "low" if first == (order == "low_first") else "high"
    head = (f"out[{n}, {k}] is {g[n, k]:.8g}, expected {ref[n, k]:.8g}: code {code} (e2m1 value "
            f"{_fp4.VALUES[code]:g}, the {nibble} nibble of byte {k // 2} of row {n}) times 2**({e} - 127), "
            f"exponent [{n}, {k // 32}]")
    partner = int(codes[n, k + 1 if first else k - 1])
    scale = 2.0 ** (e - 127)
    if g[n, k] == _fp4.VALUES[partner] * scale and partner != code:
        return head + (f": that is the other code of the byte: with order='{order}' the first value of a pair is "
                       f"the {'low' if order == 'low_first' else 'high'} nibble")
    if ref[n, k] != 0 and g[n, k] == -ref[n, k]:
        return head + ": the sign is wrong: bit 3 of a code is its sign"
    if ref[n, k] != 0 and g[n, k] != 0 and np.isfinite(g[n, k]):
        r = np.log2(abs(g[n, k] / ref[n, k]))
        if r == int(r) and np.sign(g[n, k]) == np.sign(ref[n, k]):
            if abs(g[n, k]) == abs(_fp4.VALUES[code]):
                return head + ": the block's scale 2**(e - 127) is missing"
            return head + (f": off by 2**{int(r)}: the scale of value k is 2**(exponents[n, k // 32] - 127) (e8m0: "
                           "an exponent with bias 127; one per 32 values, not per 32 bytes)")
    decoded = g[n, k] / scale
    if np.isfinite(decoded) and decoded != _fp4.VALUES[code]:
        return head + (f": out / 2**(e - 127) = {decoded:g} is not the value of code {code}: bit 3 is the sign, "
                       "bits 2-1 the exponent (bias 1; 0 means the subnormal values 0 and 0.5) and bit 0 the mantissa")
    return head


def _run_mx_case(fn, case, rng, gen, subchecks, first):
    title = case.title()
    stop = _stop_for(subchecks, title)
    N, K = case.codes.shape
    packed_v = torch.from_numpy(_pack_ref(case.codes, case.order).astype(np.uint8))
    _, packed = _in_buffer(packed_v, 0x77, case.padded)  # past an edge: codes 7 (6.0)
    _, exps = _in_buffer(torch.from_numpy(case.exps), 200, case.padded)  # past an edge: 2**73
    inputs = {"packed": packed, "exponents": exps}
    privates = {k: _bytes_of(v) for k, v in inputs.items()}
    kwargs, big, out = {"order": case.order}, None, None
    if not case.own_out and _accepts(fn, "out"):
        big, out = _place(torch.empty(N, K, dtype=torch.bfloat16), _OUT_PAD, "padded" if case.padded else "row", guard=1)
        _poison(out)
        kwargs["out"] = out
    operands = dict(inputs, out=out) if out is not None else dict(inputs)
    call = _fp_call(fn, (packed, exps), kwargs, operands, tuple(inputs), stop)
    res = call.res
    _check_result_tensor(res, "the result", (N, K), torch.bfloat16, stop)
    why = call.box.written_by_kernel(res)
    if why:
        stop("refused", "refused: " + why)
    if out is not None and (res.data_ptr(), res.stride()) != (out.data_ptr(), out.stride()):
        stop("fail", f"the caller passed out= (a view with strides {out.stride()}), but your function returned "
                     "another tensor: write into out, through its strides, and return out")
    nan = _unwritten(res, poisoned=out is not None)
    if bool(nan.all()):
        stop("not_implemented" if first else "fail",
             "the kernel wrote nothing: every output is still the NaN the output was filled with "
             "(not implemented yet, or a store mask that is never true?)")
    verdict = _inputs_message(call, inputs, privates)
    if verdict:
        stop(verdict[0], ("refused: " if verdict[0] == "refused" else "") + verdict[1])
    if big is not None:
        msg = _canary_message(big, out, N, K)
        if msg:
            stop("fail", msg.replace("outside C", "outside out").replace("C is", "out is"))
    msg = _mxfp4_message(res, case.codes, case.exps, case.order, _stored_mask(call.learner, res))
    if msg:
        stop("fail", msg)
    codes2, exps2 = _random_mx(rng, gen, N, K)
    new = {"packed": torch.from_numpy(_pack_ref(codes2, case.order).astype(np.uint8)),
           "exponents": torch.from_numpy(exps2)}
    verdict = _replay_fp(call, new, inputs, [out] if out is not None else ())
    if verdict:
        stop(*verdict)
    if _mxfp4_message(res, codes2, exps2, case.order):
        stop(*_not_following("the dequantized weight"))
    subchecks.append(SubCheck(title, "pass"))


def check_dequantize_mxfp4(fn, rng, gen, subchecks):
    if not _accepts(fn, "order"):
        subchecks.append(SubCheck("the wrapper takes order=", "fail", "it does not"))
        raise _Stop("fail", "the function must take order= ('low_first' or 'high_first'); keep the given signature")
    # every code next to every code: row r holds the pairs (r, 0), (r, 1), ..., (r, 15)
    every = np.array([[c for s in range(16) for c in (r, s)] for r in range(16)], dtype=np.uint8)
    every_exps = np.array([[rng.randint(*_E8M0_RANGE)] for _ in range(16)], dtype=np.uint8)

    def ragged(lo, hi):
        return _random_mx(rng, gen, _dims(rng, lo, hi), 32 * rng.choice([3, 5, 7]))

    small = _random_mx(rng, gen, rng.randint(2, 9), 32)
    cases = [
        _DCase("small", *small),
        _DCase("every code at both places of a byte", every, every_exps),
        _DCase("every code at both places of a byte", every, every_exps, "high_first"),
        _DCase("ragged K: a multiple of 32, not of the block", *ragged(2, pick(cpu=40, gpu=500)), padded=True),
        _DCase("ragged K: a multiple of 32, not of the block", *ragged(2, pick(cpu=40, gpu=500)), "high_first"),
        _DCase("one row", *_random_mx(rng, gen, 1, 32 * rng.choice([5, 9])), "high_first", padded=True),
        _DCase("the wrapper allocates the output", *ragged(2, pick(cpu=20, gpu=300)), own_out=True),
    ]
    for i, case in enumerate(cases):
        _run_mx_case(fn, case, rng, gen, subchecks, i == 0)


# --------------------------------------------------------------------------------------------------
# online_softmax_update (plain PyTorch) and attention_forward (chapter 08)
# --------------------------------------------------------------------------------------------------
_ATTENTION_FILE = os.path.join(_KERNELS_ROOT, "attention.py")
_LOG2E = 1.4426950408889634


def _online_reference(m, l, acc, scores, values):
    """One step of the online softmax in float64 (the grader's own, from the definition): ``(m, l, acc)``
    and, for the messages, the step without rescaling ``acc`` and without rescaling ``l``."""
    m_new = torch.maximum(m, scores.max(dim=1).values)
    shift = torch.where(torch.isneginf(m_new), torch.zeros_like(m_new), m_new)
    p = torch.exp(scores - shift[:, None])
    alpha = torch.exp(m - shift)
    pv = p @ values
    return (m_new, l * alpha + p.sum(1), acc * alpha[:, None] + pv), (l + p.sum(1), acc + pv)


def _close64(got, want, scale):
    """Elementwise: ``got`` within 1e-10 of ``want`` (relative to ``|want|`` plus the row's ``scale``),
    equal where ``want`` is infinite or zero with a zero scale."""
    inf = torch.isinf(want)
    ok = torch.where(inf, got == want, (got - want).abs() <= 1e-10 * (want.abs() + scale))
    return ok & ~torch.isnan(got)


class _OCase:
    """One call, or a chain of calls, of ``online_softmax_update``. ``steps``: [(scores, values)], each the
    next tile; ``state``: ``(m, l, acc)`` before the first (``None``: a fresh row, ``m = -inf``, ``l = 0``,
    ``acc = 0``); ``chain``: feed the answer's own result into the next call, as a loop over tiles does."""

    def __init__(self, label, steps, state=None, chain=False):
        self.label, self.steps, self.state, self.chain = label, steps, state, chain

    def title(self):
        R = self.steps[0][0].shape[0]
        D = self.steps[0][1].shape[1]
        widths = list(dict.fromkeys(s.shape[1] for s, _ in self.steps))
        keys = f"tiles of {', '.join(map(str, widths))} key{'s' if widths != [1] else ''}"
        tiles = f", {len(self.steps)} tiles" if len(self.steps) > 1 else ""
        return f"{R} rows, {keys}, D={D} ({self.label}{tiles})"


def _fresh(R, D):
    return (torch.full((R,), float("-inf"), dtype=torch.float64), torch.zeros(R, dtype=torch.float64),
            torch.zeros(R, D, dtype=torch.float64))


def _online_message(i, got, want, unscaled, inputs, masked_before):
    """What is wrong with step ``i``'s ``got = (m, l, acc)`` against ``want``, or ``None``."""
    m, l, acc = got
    wm, wl, wacc = want
    names = ("m", "l", "acc")
    step = f"tile {i + 1}: " if i is not None else ""
    for name, g, w in zip(names, got, want):
        nan = torch.isnan(g)
        if bool(nan.any()):
            r = int(nan.nonzero()[0, 0])
            if bool(masked_before[r]):
                return (f"{step}{name}[{r}] is NaN; row {r} has seen only masked scores (-inf) so far, so its m is "
                        "still -inf, and exp(score - m) with m = -inf is exp(-inf - (-inf)) = exp(NaN): shift such "
                        "a row by 0 instead (torch.where(m_new == -inf, 0, m_new)); it keeps m = -inf, l = 0, acc = 0")
            return (f"{step}{name}[{r}] is NaN (or inf turned NaN): exp of a large score overflows; subtract the "
                    "new maximum m_new from the scores before exp, and rescale by exp(m - m_new)")
    rows_scale = wl.abs()[:, None] * inputs["values"].abs().max().clamp(min=1.0)
    checks = (("m", m, wm, torch.zeros_like(wm)), ("l", l, wl, torch.zeros_like(wl)), ("acc", acc, wacc, rows_scale))
    for name, g, w, scale in checks:
        ok = _close64(g, w, scale) if name != "m" else ((g == w) | _close64(g, w, scale))
        if bool(ok.all()):
            continue
        idx = tuple(int(x) for x in (~ok).nonzero()[0])
        where = f"{name}[{', '.join(map(str, idx))}]"
        head = f"{step}{where} is {float(g[idx]):.10g}, expected {float(w[idx]):.10g}"
        r = idx[0]
        if name == "m":
            return head + (": m is the running maximum of each row's scores, max(m, scores.max(dim=1)) (-inf "
                           "while a row has seen only -inf)")
        ul, uacc = unscaled
        if name == "acc" and bool(_close64(acc, uacc, rows_scale).all()) and not torch.equal(wacc, uacc):
            return head + (": acc was not rescaled. When a row's maximum rises from m to m_new, everything summed "
                           "so far was weighted by exp(score - m) and must be by exp(score - m_new): multiply acc "
                           "by alpha = exp(m - m_new) before adding this tile's p @ values")
        if name == "l" and bool(_close64(l, ul, torch.zeros_like(ul)).all()) and not torch.equal(wl, ul):
            return head + (": l was not rescaled: when the maximum rises, multiply the old sum by alpha = "
                           "exp(m - m_new) before adding this tile's sum of exp(score - m_new)")
        if bool(masked_before[r]) and float(w[idx]) == 0.0:
            return head + (f": row {r} has seen only masked scores (-inf) so far: it keeps l = 0 and acc = 0 "
                           "(and m = -inf)")
        if name == "l":
            return head + ": l is l * alpha + the sum over the tile of exp(score - m_new), alpha = exp(m - m_new)"
        return head + ": acc is acc * alpha + exp(scores - m_new) @ values, alpha = exp(m - m_new)"
    return None


def _run_online_case(fn, case, subchecks):
    from kernels import attention as _attention_module

    title = case.title()
    stop = _stop_for(subchecks, title)
    R = case.steps[0][0].shape[0]
    D = case.steps[0][1].shape[1]
    state = case.state if case.state is not None else _fresh(R, D)
    mine = tuple(t.clone() for t in state)  # the grader's own chain, from its reference
    theirs = tuple(t.clone() for t in state)
    for i, (scores, values) in enumerate(case.steps):
        start = theirs if case.chain else mine
        args = tuple(t.to(DEVICE) for t in (*start, scores, values))
        before = tuple(a.clone() for a in args)
        res = _plain_call(fn, args, {}, stop, watched=[_ATTENTION_FILE], modules=(_attention_module,),
                          write="the update (torch.maximum, torch.exp, @)")
        if not (isinstance(res, (tuple, list)) and len(res) == 3):
            stop("fail", f"the function returned {type(res).__name__}, expected a tuple (m, l, acc)")
        for label, t, shape in zip(("m", "l", "acc"), res, ((R,), (R,), (R, D))):
            _check_result_tensor(t, label, shape, torch.float64, stop)
        for label, a, b in zip(("m", "l", "acc", "scores", "values"), args, before):
            if not torch.equal(a, b) and not (torch.isnan(a).any() or torch.isnan(b).any()):
                stop("fail", f"the function changed its input {label}: compute the new state in new tensors (the "
                             "caller may keep the old one)")
        got = tuple(t.detach().cpu() for t in res)
        want, unscaled = _online_reference(*start, scores, values)
        masked_before = torch.isneginf(start[0])  # rows that have seen only -inf before this tile
        msg = _online_message(i if len(case.steps) > 1 else None, got, want, unscaled,
                              {"values": values}, masked_before)
        if msg:
            stop("fail", msg)
        mine = _online_reference(*mine, scores, values)[0]
        theirs = got
    if len(case.steps) > 1 and case.state is None:
        # after the last tile: acc / l and m + log(l) are the softmax-weighted values and the log-sum-exp
        scores = torch.cat([s for s, _ in case.steps], dim=1)
        values = torch.cat([v for _, v in case.steps], dim=0)
        m, l, acc = theirs
        seen = ~torch.isneginf(scores).all(dim=1)
        out = acc[seen] / l[seen][:, None]
        ref = torch.softmax(scores[seen], dim=1) @ values
        lse = torch.logsumexp(scores[seen], dim=1)
        if not (bool(torch.allclose(out, ref, rtol=1e-9, atol=1e-12)) and
                bool(torch.allclose(m[seen] + torch.log(l[seen]), lse, rtol=1e-9, atol=1e-12))):
            stop("fail", "after the last tile, acc / l is not softmax(scores) @ values over all the tiles (or "
                         "m + log(l) not their log-sum-exp)")
    subchecks.append(SubCheck(title, "pass"))


def _masked(scores, mask):
    return scores.masked_fill(mask, float("-inf"))


def check_online_softmax_update(fn, rng, gen, subchecks):
    def randn(*shape, scale=1.0):
        return torch.randn(*shape, generator=gen, dtype=torch.float64) * scale

    def tile(R, T, D, scale=2.0):
        return randn(R, T, scale=scale), randn(T, D)

    def state(R, D):
        m = randn(R, scale=3.0)
        return m, torch.rand(R, generator=gen, dtype=torch.float64) * 5 + 1, randn(R, D, scale=2.0)

    R, T, D = rng.randint(3, 9), rng.randint(3, 20), rng.randint(2, 8)
    causal = []
    for start in range(0, 24, 8):  # rows 0..7 of a causal block, keys in tiles of 8: the first rows see
        s, v = tile(8, 8, 4)      # nothing in the later tiles, and the first tile has masked entries
        rows, cols = torch.arange(8)[:, None], start + torch.arange(8)[None, :]
        causal.append((_masked(s, cols > rows), v))
    sm, sv = tile(6, 5, 3)
    all_masked = _masked(sm, torch.tensor([True, False, True, False, False, True])[:, None].expand(6, 5))
    low = state(R, D)
    high_scores, high_values = tile(R, T, D)
    high_scores = high_scores + (low[0].max() + 20.0)  # every row's maximum rises by 20 or more
    below_scores, below_values = tile(R, T, D)
    below_scores = below_scores - below_scores.max() + low[0].min() - 1.0  # below every row's maximum
    mixed = state(7, 3)
    mixed = (torch.where(torch.tensor([True, False, False, True, False, False, False]), float("-inf"), mixed[0]),
             torch.where(torch.tensor([True, False, False, True, False, False, False]), 0.0, mixed[1]),
             mixed[2] * torch.tensor([0.0, 1, 1, 0, 1, 1, 1], dtype=torch.float64)[:, None])
    mixed_scores, mixed_values = tile(7, 6, 3)
    mixed_scores[3] = float("-inf")  # row 3: nothing so far, nothing in this tile either
    mixed_scores[5] = float("-inf")  # row 5: seen scores, nothing in this tile
    one = rng.randint(2, 6)
    big = [tile(4, w, 5, scale=300.0) for w in (7, 5, 9)]  # scores in the hundreds: exp overflows unless shifted
    cases = [
        _OCase("the first tile: m = -inf, l = 0, acc = 0", [tile(R, T, D)]),
        _OCase("a state from earlier tiles", [tile(R, T, D)], state(R, D)),
        _OCase("a tile that raises every row's maximum: acc and l must be rescaled", [(high_scores, high_values)], low),
        _OCase("a tile below every row's maximum: nothing is rescaled", [(below_scores, below_values)], low),
        _OCase("rows whose scores are all masked (-inf)", [(all_masked, sv)]),
        _OCase("rows masked so far, rows masked in this tile", [(mixed_scores, mixed_values)], mixed),
        _OCase("one key a tile, D=1", [tile(one, 1, 1) for _ in range(4)], chain=True),
        _OCase("consecutive tiles of a causal block", causal, chain=True),
        _OCase("consecutive tiles of different widths", [tile(5, w, 4) for w in (rng.randint(1, 9), 16, rng.randint(2, 7))],
               chain=True),
        _OCase("scores in the hundreds", big, chain=True),
    ]
    for case in cases:
        _run_online_case(fn, case, subchecks)
    title = "bad input: scores and values that do not agree"
    stop = _stop_for(subchecks, title)
    m, l, acc = (t.to(DEVICE) for t in _fresh(3, 4))
    _expect_error(fn, (m, l, acc, torch.zeros(3, 5, dtype=torch.float64, device=DEVICE),
                       torch.zeros(6, 4, dtype=torch.float64, device=DEVICE)), {}, (ValueError,),
                  "scores (3, 5) with values (6, 4)", stop)
    subchecks.append(SubCheck(title, "pass"))


# attention_forward --------------------------------------------------------------------------------
_F32_GPU_ELEM = pick(cpu=1, gpu=4)  # float32 elements on a GPU: tf32 tensor cores (_attention_o_message)
_LSE_TOL = pick(cpu=1e-4, gpu=3e-3)  # |lse - ref| <= _LSE_TOL * (1 + |ref|): float32 scores, tf32 on a GPU
_SDPA_OPS = ("scaled_dot_product", "_fused_sdp", "_efficient_attention", "_flash_attention", "_cudnn_attention")


class _ACase:
    def __init__(self, label, B, H, S, D, dtype, causal, block_m=None, block_n=None, scale=1.0):
        self.label, self.B, self.H, self.S, self.D = label, B, H, S, D
        self.dtype, self.causal, self.scale = dtype, causal, scale
        self.kwargs = {k: v for k, v in (("block_m", block_m), ("block_n", block_n)) if v is not None}

    def title(self):
        kw = "".join(f", {k}={v}" for k, v in self.kwargs.items())
        return (f"{str(self.dtype)[6:]} B={self.B}, H={self.H}, S={self.S}, D={self.D}, "
                f"{'causal' if self.causal else 'not causal'} ({self.label}{kw})")


def _qkv_values(case, gen):
    shape = (case.B, case.H, case.S, case.D)
    q = torch.randn(*shape, generator=gen) * case.scale
    k = torch.randn(*shape, generator=gen) * case.scale
    v = torch.randn(*shape, generator=gen)
    return tuple(t.to(case.dtype) for t in (q, k, v))


def _in_rows(values, pad, guard=64):
    """``values`` (B, H, S, D) copied into a contiguous view inside a flat buffer of ``pad``, one row of
    ``pad`` before it and ``guard`` rows after: ``(view, view as (B*H*S, D) rows)``."""
    D = values.shape[-1]
    n = values.numel()
    flat = torch.full(((1 + guard) * D + n,), pad, dtype=values.dtype, device=DEVICE)
    view = flat[D:D + n].view(values.shape)
    view.copy_(values.to(DEVICE))
    return view, view.view(-1, D)


def _attention_variants(q, k, v, case, block_m, block_n):
    """Float64 outputs of common mistakes, for the messages: name -> O (B, H, S, D)."""
    from kernels.attention import attention_reference

    qd, kd, vd = (t.to(torch.float64) for t in (q, k, v))
    D, S = case.D, case.S
    scale = 1.0 / D ** 0.5
    out = {}
    if case.causal:  # the loop stops at the diagonal, but the tiles that cross it are not masked
        i, j = torch.arange(S)[:, None], torch.arange(S)[None, :]
        stop = torch.clamp(-(-((i // block_m + 1) * block_m) // block_n) * block_n, max=S)
        s = (qd @ kd.transpose(-1, -2)) * scale
        out["diagonal tiles unmasked"] = torch.softmax(s.masked_fill(j >= stop, float("-inf")), -1) @ vd
    out |= {
        "not causal": attention_reference(qd, kd, vd, False)[0] if case.causal else None,
        "causal": attention_reference(qd, kd, vd, True)[0] if not case.causal else None,
        "no scale": attention_reference(qd, kd, vd, case.causal, scale=1.0)[0],
        "log2e missing": attention_reference(qd, kd, vd, case.causal, scale=scale / _LOG2E)[0],
        "log2e twice": attention_reference(qd, kd, vd, case.causal, scale=scale * _LOG2E)[0],
    }
    if S > block_n:  # a loop that stops after its first tile of keys
        out["first tile only"] = attention_reference(qd, kd[:, :, :block_n], vd[:, :, :block_n], case.causal,
                                                     scale=scale)[0]
    if S % block_n and not case.causal:  # keys past S read as zeros (score 0, value 0) and not masked
        pad = -S % block_n
        z = torch.zeros(case.B, case.H, pad, D, dtype=torch.float64)
        out["keys past S"] = attention_reference(qd, torch.cat([kd, z], 2), torch.cat([vd, z], 2), False,
                                                 scale=scale)[0]
    # tile by tile, with acc or l not rescaled when the maximum rises
    for what in ("acc", "l"):
        o = torch.empty_like(qd)
        rows = torch.arange(S)
        for b in range(case.B):
            for h in range(case.H):
                m = torch.full((S,), float("-inf"), dtype=torch.float64)
                l, acc = torch.zeros(S, dtype=torch.float64), torch.zeros(S, D, dtype=torch.float64)
                for n0 in range(0, S, block_n):
                    s = (qd[b, h] @ kd[b, h, n0:n0 + block_n].T) * scale
                    if case.causal:
                        cols = torch.arange(n0, n0 + s.shape[1])
                        s = s.masked_fill(cols[None, :] > rows[:, None], float("-inf"))
                    (m2, l2, acc2), (ul, uacc) = _online_reference(m, l, acc, s, vd[b, h, n0:n0 + block_n])
                    m, l, acc = m2, (ul if what == "l" else l2), (uacc if what == "acc" else acc2)
                o[b, h] = acc / l[:, None]
        out[f"{what} not rescaled"] = o
    return out


_VARIANT_HINTS = {
    "diagonal tiles unmasked": "that is the output without the causal mask on the tiles that cross the diagonal: "
                               "the loop skips the tiles wholly above it, but within a tile that crosses it, keys "
                               "j > i must get the score -inf (keep = offs_n[None, :] <= offs_m[:, None])",
    "not causal": "that is the output without the causal mask: with causal=True, query i sees keys j <= i only "
                  "(scores with offs_n > offs_m set to -inf)",
    "causal": "that is the causal output, but causal=False here: mask keys only past S",
    "first tile only": "that is the output over the first BLOCK_N keys only: the loop must take in every tile of "
                       "keys, range(0, end, BLOCK_N)",
    "keys past S": "that is the output with the keys past S counted (read as zeros, score 0): set the scores of "
                   "keys offs_n >= S to -inf before the maximum and the exponentials",
    "no scale": "that is the output without the scale: the scores are q . k / sqrt(D) (qk_scale holds "
                "log2(e) / sqrt(D))",
    "log2e missing": "that is softmax with exp2 of the plain scaled scores: exp(x) = exp2(x * log2(e)), so "
                     "multiply the scores by qk_scale (which holds log2(e)) before exp2",
    "log2e twice": "that is the output with log2(e) counted twice, or exp where exp2 is meant: qk_scale "
                   "already holds log2(e), for tl.math.exp2",
    "acc not rescaled": "that is what an acc never rescaled gives: when a row's maximum rises from m_i to "
                        "m_new, multiply acc by alpha = exp2(m_i - m_new) before adding tl.dot(p, v)",
    "l not rescaled": "that is what an l never rescaled gives: l_i = l_i * alpha + tl.sum(p, 1)",
}


def _attention_o_message(o, ref, case, q, k, v, block_m, block_n):
    tol = T.tolerance(case.dtype)
    got = o.detach().to("cpu", torch.float64)
    diff = (got - ref).abs()
    rms = float(ref.pow(2).mean().sqrt()) or 1.0
    # each element within tol of its value plus the output's rms; float32 on a GPU goes through tf32
    # tensor cores (10 mantissa bits), whose rounding of P and V can put one element of a correct answer
    # past that (the reference answer failed so on the H200, at an element with 1.2e-2 relative error), so
    # it gets 4 tol there (a wrong row is off by far more)
    elem_tol = tol * (_F32_GPU_ELEM if case.dtype == torch.float32 else 1)
    bad = ~torch.isfinite(got) | (diff > elem_tol * (ref.abs() + rms))
    err = T.rel_error(got, ref)
    if not bool(bad.any()) and err <= tol:
        return None
    idx = _first(bad) if bool(bad.any()) else _first(diff == diff.max())
    b, h, i, d = idx
    head = (f"O[{b}, {h}, {i}, {d}] is {float(got[idx]):.6g}, expected {float(ref[idx]):.6g} (relative error of O "
            f"{err:.2e}, tolerance {tol:.0e} for {str(case.dtype)[6:]})")
    if not bool(torch.isfinite(got[idx])):
        return head + (": NaN or inf. Does exp2 get the scores minus the running maximum (exp2 of a large score "
                       "overflows float32)? Is every row's l above 0 when O = acc / l? Are the loads of K and V "
                       "masked with other=0.0?")
    for name, alt in _attention_variants(q, k, v, case, block_m, block_n).items():
        if alt is not None and T.rel_error(got, alt) <= tol:
            return head + ": " + _VARIANT_HINTS[name]
    c = _fitted_scale(got, q, k, v, case, tol)
    if c is not None:
        D = case.D
        return head + (f": that is the output with every score multiplied by {c:.4g}, as if the scale were "
                       f"1/sqrt({D / c ** 2:.4g}) instead of 1/sqrt(D) = 1/sqrt({D}): the scores are q . k / sqrt(D), "
                       f"and qk_scale = log2(e) / sqrt(D) = {_LOG2E / D ** 0.5:.6g} takes them to base 2 for exp2")
    if case.causal:
        return head + (" (causal=True here: query i sees keys j <= i, the keys of every tile that crosses the "
                       "diagonal masked with -inf; and with S not a multiple of the tiles, keys past S too)")
    if case.S % block_n and ON_GPU:  # in the interpreter the loads were checked, and keys past S counted are a variant
        return head + (f" (S = {case.S} is not a multiple of BLOCK_N = {block_n}: are the loads of K and V masked "
                       f"with offs_n < S, and the scores of keys past S set to -inf?)")
    return head + (" (compare your kernel with attention_reference on a small case: the scale, the running maximum "
                   "m_i, alpha = exp2(m_i - m_new), l_i and acc)")


def _fitted_scale(got, q, k, v, case, tol):
    """The factor ``c`` for which ``softmax(c * q k^T / sqrt(D)) @ v`` (masked as the case is) is ``got`` within
    ``tol``, if one is and it is not 1: a kernel whose scale is off by a factor (every row's exponent off by the
    same ratio). ``None`` otherwise."""
    qd, kd, vd = (t.to(torch.float64) for t in (q, k, v))
    s = (qd @ kd.transpose(-1, -2)) / case.D ** 0.5
    if case.causal:
        s = s.masked_fill(~torch.ones(case.S, case.S, dtype=torch.bool).tril(), float("-inf"))

    def err(log_c):
        return T.rel_error(got, torch.softmax(s * float(np.exp(log_c)), dim=-1) @ vd)

    grid = np.linspace(np.log(1 / 64), np.log(64), 49)
    errs = [err(x) for x in grid]
    i = int(np.argmin(errs))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    ratio = (5 ** 0.5 - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = err(a), err(b)
    for _ in range(40):  # golden-section search on log(c): the error is smooth and has one minimum near there
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = err(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = err(b)
    x = a if fa <= fb else b
    c = float(np.exp(x))
    if min(fa, fb) <= tol and abs(c - 1.0) > 1e-3:
        return c
    return None


def _attention_lse_message(lse, ref_lse, q, k, case):
    got = lse.detach().to("cpu", torch.float64)
    bad = ~torch.isfinite(got) | ((got - ref_lse).abs() > _LSE_TOL * (1 + ref_lse.abs()))
    if not bool(bad.any()):
        return None
    idx = _first(bad)
    head = f"lse[{', '.join(map(str, idx))}] is {float(got[idx]):.8g}, expected {float(ref_lse[idx]):.8g}"
    if bool(torch.isnan(got[idx])):
        return head + (": it was never stored (the wrapper filled lse with NaN): store (m_i + log2(l_i)) * ln(2) "
                       "for every row below S")

    def near(alt):
        return bool(((got - alt).abs() <= 10 * _LSE_TOL * (1 + alt.abs())).all())

    if near(ref_lse * _LOG2E):
        return head + (": that is the log-sum-exp in base 2 (m_i + log2(l_i)): the log-sum-exp is a natural log, "
                       "multiply by ln(2) (or divide by log2(e))")
    qd, kd = q.to(torch.float64), k.to(torch.float64)
    s = (qd @ kd.transpose(-1, -2)) / case.D ** 0.5
    if case.causal:
        s = s.masked_fill(~torch.ones(case.S, case.S, dtype=torch.bool).tril(), float("-inf"))
    rowmax = s.max(-1).values
    if near(ref_lse - rowmax) or near((ref_lse - rowmax) * _LOG2E):
        return head + (": that is log(l) alone: l is a sum of exp(score - max), so the log-sum-exp adds the "
                       "maximum back: lse = (m_i + log2(l_i)) * ln(2)")
    if near(ref_lse + rowmax):
        return head + (": that is the log-sum-exp plus the row's maximum score, what m_i + log2(l_i) gives when l_i "
                       "sums exponentials that were not shifted: p = exp2(scores - m_new), alpha = exp2(m_i - m_new) "
                       "(shifting by the running maximum also keeps exp2 from overflowing on large scores)")
    if near(rowmax) or near(rowmax * _LOG2E):
        return head + ": that is the row's maximum score alone: lse = (m_i + log2(l_i)) * ln(2)"
    return head + (": lse[b, h, i] = log(sum_j exp(q_i . k_j / sqrt(D))), natural log, over the keys row i sees: "
                   "(m_i + log2(l_i)) * ln(2) in the kernel's base-2 units")


class _Elements:
    """Where the elements of a tensor lie in memory, for locating stored addresses: ``index(addr)`` gives each
    address's position in the tensor (flattened in its logical (row-major) order), -1 where an address is no
    element's start (outside the tensor, in the gaps between its rows, in another view of its storage)."""

    def __init__(self, t: torch.Tensor):
        off = np.zeros((), dtype=np.int64)
        for n, stride in zip(t.shape, t.stride()):
            off = off[..., None] + np.arange(n, dtype=np.int64) * stride
        addr = np.int64(t.data_ptr()) + off.reshape(-1) * t.element_size()
        self.order = np.argsort(addr, kind="stable")
        self.sorted = addr[self.order]

    def index(self, addr: np.ndarray) -> np.ndarray:
        a = addr.astype(np.int64)
        pos = np.clip(np.searchsorted(self.sorted, a), 0, max(len(self.sorted) - 1, 0))
        if not len(self.sorted):
            return np.full(a.shape, -1, dtype=np.int64)
        return np.where(self.sorted[pos] == a, self.order[pos], -1)


def _attention_work_message(call, case, views, o, lse, limit_n, limit_source, limit_m=16):
    """In the interpreter: ``None`` if the learner's kernels stored only into the elements of O and lse, each
    once, and every program read its keys and values one tile of at most ``limit_n`` rows at a time (the
    ``block_n`` the grader asked for, else the wrapper's default: never what the kernel itself calls BLOCK_N),
    each row of K and V once (one pass: the online softmax), from its own head, none wholly above the diagonal
    (causal); else ``(status, message)``."""
    if ON_GPU:
        return None
    traced = [l for l in call.learner if l.trace is not None and l.trace.programs]
    if not traced:
        return "refused", ("your kernels ran no tl.load, tl.store or tl.dot at all: O and lse must be written by "
                           "your kernel's tl.store, from the q, k and v it loads")
    S, D = case.S, case.D
    widest = max(limit_m, limit_n, D)
    eo, el = _Elements(o), _Elements(lse)
    count_o = np.zeros(o.numel(), dtype=np.int64)
    count_l = np.zeros(lse.numel(), dtype=np.int64)
    bn = limit_n
    for launch in traced:
        for key, p in launch.trace.programs.items():
            name = _program_name(launch, key)
            o_rows = []
            for addr, _ in p.stores:
                io, il = eo.index(addr), el.index(addr)
                other = (io < 0) & (il < 0)
                if other.any():
                    a = int(addr[other][0])
                    shared = ""
                    for label, t in (("O", o), ("lse", lse)):
                        lo = t.untyped_storage().data_ptr()
                        if lo <= a < lo + t.untyped_storage().nbytes():
                            shared = f", into {label}'s allocation but outside the {label} your function returns"
                            break
                    return "refused", (f"{name} stored into memory other than O and lse{shared} (a buffer of scores "
                                       "or probabilities?): a fused kernel keeps each tile of scores in registers and "
                                       "writes only the elements of O and the log-sum-exp")
                if (io >= 0).any():
                    flat = io[io >= 0]
                    np.add.at(count_o, flat, 1)
                    o_rows.append(flat // D)
                if (il >= 0).any():
                    np.add.at(count_l, il[il >= 0], 1)
            o_rows = np.unique(np.concatenate(o_rows)) if o_rows else np.zeros(0, dtype=np.int64)
            heads = np.unique(o_rows // S)
            # the last query row it computes in each (batch, head) it stores (a persistent kernel may span several)
            i_max = {int(h): int(o_rows[o_rows // S == h].max() % S) for h in heads}
            # the tiles of queries (BLOCK_M rows of one head) this program loaded: a persistent-style program
            # that takes several reads each key once per tile of queries
            # (told by where each load of q starts, at its first address the mask lets through: a tile wholly
            # past S loads nothing; loads whose starts lie less than BLOCK_M rows apart are one tile, however
            # split)
            starts = sorted({int(views["q"].index(np.array([a], dtype=np.int64))[1][0])
                             for a in p.load_origins if a is not None and views["q"].in_storage(np.array([a]))[0]})
            passes, last = 0, None
            for row in starts:
                if last is None or row >= last + limit_m:
                    passes, last = passes + 1, row
            # and no more than the tiles of queries whose rows of O it stores (a load of q rows that it does
            # not compute cannot buy it another pass over the keys)
            # (whole tiles only: every row of the tile below S; a row stored from another program's tile buys
            # nothing)
            tiles_stored = 0
            for h, t in {(int(r) // S, int(r) % S // limit_m) for r in o_rows}:
                want = np.arange(h * S + t * limit_m, h * S + min((t + 1) * limit_m, S))
                tiles_stored += bool(np.isin(want, o_rows).all())
            why_fewer = ""
            if passes > max(1, tiles_stored):
                why_fewer = (f" (it loaded q for {passes} tiles of queries but stored every row of O of only "
                             f"{tiles_stored}: a tile earns a pass over the keys when the program stores its rows; "
                             "one with no rows below S needs none)")
            passes = max(1, min(passes, tiles_stored))
            reads_kv = False
            for label in ("k", "v"):
                view = views[label]
                times = np.zeros(view.shape[0] * view.shape[1], dtype=np.int64)  # loads of each element
                for addr in p.loads:
                    inside = view.in_storage(addr)
                    if not inside.any():
                        continue
                    reads_kv = True
                    ok, rows, cols, _ = view.index(addr[inside])
                    np.add.at(times, np.unique(rows[ok] * view.shape[1] + cols[ok]), 1)
                    rows = np.unique(rows[ok])
                    if rows.size > bn:
                        return "refused", (f"{name} loaded {rows.size} rows of {label} in one tl.load, more than "
                                           f"BLOCK_N = {bn} ({limit_source}): a fused kernel holds one tile of "
                                           "BLOCK_N keys and values at a time (and one BLOCK_M x BLOCK_N tile of "
                                           "scores), never a whole row of S scores")
                    if heads.size == 1 and rows.size and not np.all(rows // S == heads[0]):
                        return "fail", (f"{name} stores rows of (batch, head) {divmod(int(heads[0]), case.H)} but "
                                        f"loaded {label} of another head: each (batch, head) attends over its own "
                                        "keys and values")
                    if case.causal and i_max and rows.size:
                        for h in np.unique(rows // S):
                            if int(h) not in i_max:
                                continue
                            top = i_max[int(h)]
                            last = -(-(top + 1) // bn) * bn  # keys below the end of the tile holding its last row
                            j = int(rows[rows // S == h].max() % S)
                            if j >= last:
                                return "fail", (f"{name} computes query rows up to {top} but loaded key {j} of "
                                                f"{label}: with causal=True, tiles of keys wholly above the diagonal "
                                                "are skipped (the loop stops at min((pid_m + 1) * BLOCK_M, S))")
                if (times > passes).any():
                    e = int(np.argmax(times > passes))
                    row = e // view.shape[1]
                    return "refused", (f"{name} loaded row {row % S} of {label} (batch, head "
                                       f"{divmod(row // S, case.H)}) {int(times[e])} times"
                                       + (f" for {passes} tiles of queries" if passes > 1 else "") + why_fewer +
                                       ": a fused kernel makes one "
                                       "pass over the keys, each program reading each row of K and V once (per tile "
                                       "of queries it takes). That is "
                                       "the online softmax: keep a running maximum m_i and, when a tile raises it to "
                                       "m_new, rescale l_i and acc by alpha = exp2(m_i - m_new), instead of a first "
                                       "pass for each row's maximum and a second for the sums")
            # (in a program that reads keys or values: a kernel that does not, a copy or a fill, may run long rows;
            # a flat block no longer than a tile's elements is a tile reshaped, e.g. for its store)
            tile_elements = max(limit_m, limit_n) * max(limit_m, limit_n, D)
            too_long = None
            if p.widest is not None and p.widest[0] > widest:
                too_long = p.widest
            elif p.longest_flat is not None and p.longest_flat[0] > tile_elements:
                too_long = p.longest_flat
            if reads_kv and too_long is not None:
                n = too_long[0]
                launched = {a: _named_arg(launch, a, None) for a in ("BLOCK_M", "BLOCK_N")}
                own = [f"{a} = {b}" for a, b in launched.items() if b == n]
                return "refused", (f"{name} built {too_long[1]}: {n} long, longer than any tile of the "
                                   f"exercise (BLOCK_M = {limit_m}, BLOCK_N = {limit_n}, head dim {D}). "
                                   + (f"Your wrapper launched {own[0]}: keep the tile defaults in BLOCKS, which the "
                                      "grader reads, and the block_m and block_n it passes. " if own else "")
                                   + "A block that long holds a whole row of scores (or all of K or V) in "
                                   "registers; a fused kernel holds one BLOCK_M x BLOCK_N tile of scores at a time and "
                                   "folds it in with the online softmax")
            if p.dot_largest is not None and max(p.dot_largest) > widest:
                M, N = p.dot_largest
                return "refused", (f"{name} computed a tl.dot whose result is {M}x{N}, wider than any tile of the "
                                   f"exercise (BLOCK_M = {limit_m}, BLOCK_N = {limit_n}, head dim {D}): that holds a "
                                   "whole row of scores (or all of V) in registers. A fused kernel holds one "
                                   "BLOCK_M x BLOCK_N tile of scores at a time and folds it in with the online "
                                   "softmax")
    # every element of O and lse written by a tl.store of the learner's kernels: one that holds a value (not
    # the NaN it was filled with) but was never stored got it some other way
    for which, t, c in (("O", o, count_o), ("lse", lse, count_l)):
        flat = t.detach().reshape(-1).to("cpu")
        unstored = (c == 0) & ~torch.isnan(flat).numpy()
        if unstored.any():
            e = int(np.argmax(unstored))
            return "refused", (f"element {e} of {which} (flattened) holds a value but no tl.store of your kernels "
                               "wrote it: every element of O and lse must be stored by your kernel, once")
    if (count_o > 1).any() or (count_l > 1).any():
        which, c = ("O", count_o) if (count_o > 1).any() else ("lse", count_l)
        e = int(np.argmax(c > 1))
        return "fail", (f"element {e} of {which} (flattened) was stored {int(c[e])} times: each program stores its "
                        "own BLOCK_M rows once, after the loop over the keys")
    return None


_BLOCK_N_DEFAULT = pick(cpu=16, gpu=32)  # the given wrapper's BLOCKS[1]


_BLOCK_M_DEFAULT = pick(cpu=16, gpu=64)  # the given wrapper's BLOCKS[0]


def _default_block_n(fn, index=1, default=None) -> int:
    """The block_n the wrapper uses when the grader gives none: its module's ``BLOCKS[1]`` (the given wrapper's
    ``block_n = BLOCKS[1] if block_n is None``), if that is a block the wrapper accepts, else the given default."""
    blocks = (getattr(fn, "__globals__", None) or {}).get("BLOCKS")
    if isinstance(blocks, (tuple, list)) and len(blocks) == 2:
        b = blocks[index]
        if type(b) is int and 16 <= b <= 256 and b & (b - 1) == 0:
            return b
    return _BLOCK_N_DEFAULT if default is None else default


def _run_attention_case(fn, case, rng, gen, subchecks, first):
    from kernels import attention as _attention_module
    from kernels.attention import attention_reference

    title = case.title()
    stop = _stop_for(subchecks, title)
    B, H, S, D = case.B, case.H, case.S, case.D
    q_v, k_v, v_v = _qkv_values(case, gen)
    q, q2 = _in_rows(q_v, 1000.0)
    k, k2 = _in_rows(k_v, 1000.0)  # past an edge: keys that would take every row's attention
    v, v2 = _in_rows(v_v, 1000.0)
    inputs = {"q": q, "k": k, "v": v}
    views = {"q": View("q", q2), "k": View("k", k2), "v": View("v", v2)}
    privates = {name: _bytes_of(t) for name, t in inputs.items()}
    kwargs = dict(case.kwargs)
    call = _fp_call(fn, (q, k, v), dict(kwargs, causal=case.causal), {"q": q2, "k": k2, "v": v2},
                    ("q", "k", "v"), stop, modules=(_attention_module,), low_precision_casts=True)
    res = call.res
    if not (isinstance(res, (tuple, list)) and len(res) == 2):
        stop("fail", f"the function returned {type(res).__name__}, expected a pair (O, lse)")
    o, lse = res
    _check_result_tensor(o, "O", (B, H, S, D), case.dtype, stop)
    _check_result_tensor(lse, "lse", (B, H, S), torch.float32, stop)
    for label, t in (("O", o), ("lse", lse)):
        why = call.box.written_by_kernel(t)
        if why:
            stop("refused", f"refused: {label}: {why}")
    if bool(torch.isnan(o).all()):
        stop("not_implemented" if first else "fail",
             "the kernel wrote nothing: O still holds the NaN the wrapper filled it with (not implemented yet, or "
             "a store mask that is never true?)")
    verdict = _inputs_message(call, inputs, privates)
    if verdict:
        stop(verdict[0], ("refused: " if verdict[0] == "refused" else "") + verdict[1])
    blocks = []
    for kw, arg in (("block_m", "BLOCK_M"), ("block_n", "BLOCK_N")):
        b = kwargs.get(kw) or (_named_arg(call.learner[-1], arg, 16) if call.learner else 16)
        blocks.append(b if isinstance(b, int) and b > 0 else 16)
    block_m, block_n = blocks  # for the messages: what the kernel was launched with
    # the limit on a tile of keys: the block_n the grader asked for, else the wrapper's default; never the
    # kernel's own BLOCK_N, which a kernel holding whole rows of keys sets to S
    if "block_n" in kwargs:
        limit = (kwargs["block_n"], "the block_n the grader asked for")
    else:
        limit = (_default_block_n(fn), "the wrapper's default block_n, BLOCKS[1]")
    limit_m = kwargs.get("block_m") or _default_block_n(fn, 0, _BLOCK_M_DEFAULT)
    verdict = _attention_work_message(call, case, views, o, lse, *limit, limit_m=limit_m)
    if verdict:
        stop(verdict[0], ("refused: " if verdict[0] == "refused" else "") + verdict[1])
    nan = torch.isnan(o)
    if bool(nan.any()):
        b, h, i, d = _first(nan)
        rows = torch.isnan(o).any(-1)
        hint = ""
        if case.causal and bool(rows[..., 0].all()) and not bool(rows[..., 1:].any()):
            hint = (". Only query row 0 is NaN: in a causal mask query i sees keys j <= i, so row 0 sees key 0; "
                    "a mask that keeps j < i leaves row 0 nothing (every score -inf, l = 0)")
        stop("fail", f"{int(nan.sum())} elements of O are NaN, first O[{b}, {h}, {i}, {d}] ({int(rows.sum())} rows): "
                     "never stored (does the store mask keep every row below S, in every program?), or computed as "
                     "NaN (exp2 of -inf minus -inf, or a division by l = 0)" + hint)
    qd, kd, vd = (t.to(torch.float64) for t in (q_v, k_v, v_v))
    ref_o, ref_lse = attention_reference(qd, kd, vd, case.causal)
    msg = _attention_o_message(o, ref_o, case, q_v, k_v, v_v, block_m, block_n)
    if msg:
        stop("fail", msg)
    msg = _attention_lse_message(lse, ref_lse, q_v, k_v, case)
    if msg:
        stop("fail", msg)
    # the same launches on new q, k and v: O and lse must follow
    new = _qkv_values(case, gen)
    first_o, first_l = _bytes_of(o), _bytes_of(lse)
    verdict = _replay_fp(call, dict(zip(("q", "k", "v"), new)), inputs)
    if verdict:
        stop(*verdict)
    ref_o, ref_lse = attention_reference(*(t.to(torch.float64) for t in new), case.causal)
    msg = _attention_o_message(o, ref_o, case, *new, block_m, block_n) or _attention_lse_message(lse, ref_lse, *new[:2], case)
    if msg:
        if torch.equal(_bytes_of(o), first_o) or torch.equal(_bytes_of(lse), first_l):
            stop(*_not_following("O and lse"))
        # they changed, but these values come out wrong: say which
        stop("fail", "on new q, k and v (the grader launched your kernel again): " + msg)
    subchecks.append(SubCheck(title, "pass"))


def check_attention_forward(fn, rng, gen, subchecks):
    for kw in ("causal", "block_m", "block_n"):
        if not _accepts(fn, kw):
            subchecks.append(SubCheck(f"the wrapper takes {kw}=", "fail", "it does not"))
            raise _Stop("fail", f"the function must take {kw}= (keep the given wrapper's signature): the grader "
                                "checks causal attention and other tiles through it")
    hi = pick(cpu=60, gpu=600)
    d_big = pick(cpu=64, gpu=128)

    def ragged(lo=33):
        return _dims(rng, lo, hi)

    f32, f16 = torch.float32, torch.float16
    cases = [
        _ACase("small: fewer rows than one tile", 1, 1, rng.randint(3, 12), 16, f32, False),
        _ACase("ragged S, several tiles of keys", 1, 2, ragged(), 32, f32, False),
        _ACase("causal, ragged S", 2, 1, ragged(), 16, f16, True),
        _ACase("causal, two tiles of keys cross the diagonal", 1, 2, ragged(), 32, f32, True, block_m=32, block_n=16),
        _ACase("tiles of keys wider than the tiles of queries", 2, 1, ragged(), 16, f16, False, block_m=16,
               block_n=32),
        _ACase("causal, tiles of keys wider than the tiles of queries", 1, 1, ragged(), 16, f32, True, block_m=16,
               block_n=32),
        _ACase("scores in the hundreds: subtract the running maximum", 1, 2, ragged(), 32, f16, False, scale=6.0),
        _ACase("causal, scores in the hundreds", 1, 1, ragged(), 32, f16, True, scale=6.0),
        # past 709, exp overflows even in float64: no shift but the running maximum keeps every tile finite
        _ACase("scores in the thousands: exp overflows float64 unless shifted", 1, 2, ragged(), 32, f16, False,
               scale=20.0),
        _ACase("one query row", 2, 2, 1, 16, f32, True),
        _ACase("S a multiple of the tiles", 1, 1, 256 if ON_GPU else rng.choice((80, 96, 112)), d_big, f16, True),
        # every (batch, head) its own (program_id(1) past 4), keys past the first 64, the causal mask on long rows
        _ACase("causal, eight (batch, head) pairs, S past 64", 2, 4, ragged(300) if ON_GPU else _dims(rng, 65, 127),
               16, f32, True, block_m=32, block_n=32),
    ]
    for i, case in enumerate(cases):
        _run_attention_case(fn, case, rng, gen, subchecks, i == 0)


# --------------------------------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------------------------------
def grade(name: str, fn, seed: int | None = None, limit: float | None = None) -> Result:
    """Run exercise ``name``'s check on ``fn``. Never raises for the learner's mistakes."""
    seed = new_seed() if seed is None else int(seed)
    if name not in EXERCISES:
        return Result(name, "error", 0, 0, f"unknown exercise {name!r}; known: {', '.join(EXERCISES)}",
                      seed=seed)
    ex = EXERCISES[name]
    result = Result(name, "pass", 0, ex.points, seed=seed)
    if fn is None:
        result.status, result.message = "missing", (
            f"no function named {name} is defined; if your copy of the notebook is older than this exercise, "
            f"copy its cells from exercises/{ex.notebook}.ipynb (the course never overwrites your copy)")
        return result
    if not callable(fn):
        result.status, result.message = "missing", f"{name} is a {type(fn).__name__}, not a function"
        return result
    limit = limit if limit is not None else (ex.time_limit_gpu if ON_GPU else ex.time_limit_cpu)
    rng = random.Random(seed ^ zlib.crc32(name.encode()))
    gen = torch.Generator().manual_seed(rng.randrange(2**62))
    start = time.perf_counter()
    # the grader's own modules as they are now: after the check, anything the answer changed in them (a check
    # function replaced, its code swapped) refuses the answer, and the grader is put back as it was
    tools = _guard.snapshot_tools()
    snapshot = _guard.ModuleSnapshot()
    snapshots, changed_message = _guard._CURRENT_SNAPSHOT, _guard.grader_changed_message
    changed_of, restore_of = _guard.ModuleSnapshot.changed, _guard.ModuleSnapshot.restore
    snapshots.append(snapshot)
    try:
        with time_limit(limit):
            globals()[ex.check](fn, rng, gen, result.subchecks)
    except _Stop as stop:
        result.status, result.message = stop.status, stop.message
    except Timeout:
        result.status = "timeout"
        result.message = f"timed out: the check did not finish within {limit:g} s (an endless loop?)"
    except SystemExit as exc:  # sys.exit() / exit() in the answer: the check stops, the notebook goes on
        result.status = "error"
        result.message = (f"your code called sys.exit({'' if exc.code is None else repr(exc.code)}) (SystemExit) "
                          f"during the check, at {learner_frame(exc.__traceback__)}: a function that is graded "
                          "must return its result, not end Python")
    except KeyboardInterrupt as exc:
        result.status = "error"
        result.message = (f"interrupted (KeyboardInterrupt) at {learner_frame(exc.__traceback__)}: your code "
                          "raised it, or the check was stopped from outside; nothing was graded")
    except Exception as exc:  # a bug in the check itself, or something no sub-check expected
        result.status, result.message = "error", "the check failed unexpectedly: " + describe_exception(exc)
    finally:
        if snapshots and snapshots[-1] is snapshot:
            snapshots.pop()
        for f, code, defaults in tools:
            f.__code__, f.__defaults__ = code, defaults
        changed = changed_of(snapshot)
        if changed:
            restore_of(snapshot)
    if changed:
        result.status, result.message = "refused", "refused: " + changed_message(changed)
    result.seconds = time.perf_counter() - start
    result.points = ex.points if result.passed else 0
    return result


def check(name: str, fn, *, seed: int | None = None, limit: float | None = None, quiet=False) -> Result:
    """Check one exercise from a notebook: prints PASS/FAIL with the reasons, returns the ``Result``."""
    if os.environ.get(HEADLESS_ENV):
        result = Result(name, "skip", 0, EXERCISES[name].points if name in EXERCISES else 0,
                        "self-check skipped: `python -m grader` grades this notebook itself")
    else:
        result = grade(name, fn, seed, limit)
    _LAST[name] = result
    if not quiet:
        print(result.report())
    return result


def last(name: str) -> Result | None:
    """The most recent ``check`` result for ``name`` in this process (``None`` if never checked)."""
    return _LAST.get(name)


def headless(name: str, fn, seed: int, limit: float | None, marker: str) -> None:
    """Run by ``python -m grader`` inside the notebook's kernel: prints the result as one JSON line."""
    result = grade(name, fn, seed, limit)
    print("\n" + marker + json.dumps(result.to_dict()), flush=True)
