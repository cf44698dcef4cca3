"""The checks themselves. They run where the learner's function lives: in the notebook's kernel.

``check(name, fn)`` is what a notebook calls; ``headless(...)`` is what ``python -m grader`` runs in
the kernel it started. Both go through ``grade``, which never raises for anything the learner's code
does (it returns a ``Result``); only a KeyboardInterrupt goes through.
"""
from __future__ import annotations

import ast
import inspect
import json
import os
import random
import textwrap
import time
import zlib

import kernels  # noqa: F401  (decides the world before triton is imported)

import torch

from kernels import DEVICE, ON_GPU, pick
from kernels import protocol as _protocol
from kernels import schedule as _schedule
from kernels import testing as T

from .guard import Refused, Sandbox, Timeout, learner_frame, time_limit, watch_calls
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
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, NotImplementedError) or "NotImplementedError" in str(exc)[:200]:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def describe_exception(exc: BaseException) -> str:
    """``Type: message (where)`` in one line, from the innermost exception of a chain."""
    inner = exc
    while inner.__cause__ is not None:  # Triton's interpreter wraps the real error
        inner = inner.__cause__
    lines = str(inner).split("\n")
    where = learner_frame(inner.__traceback__)
    carets = [i for i, line in enumerate(lines) if line.strip() == "^"]
    if carets and carets[-1] > 0:  # Triton's CompilationError: "at L:C:", kernel source, "^", message
        k = carets[-1]
        where = f"the kernel line `{lines[k - 1].strip()}`"
        lines = lines[k + 1 :] or ["(no message)"]
    text = " ".join(" ".join(lines).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(inner).__name__}: {text} (at {where})"


def _accepts(fn, name) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


# --------------------------------------------------------------------------------------------------
# matmul exercises
# --------------------------------------------------------------------------------------------------
_IN_PAD = 1000.0  # what surrounds the inputs: reading past an edge changes the result a lot
_IN_GUARD_ROWS = 64  # rows of _IN_PAD below an input: a K loop that runs a block too far stays inside
_OUT_PAD = -4096.0  # what surrounds a guarded output: writing past an edge shows up
# The NaN a guarded output starts as, with a payload of our own: an element that still holds exactly
# these bits was never written, while a NaN the kernel computed (from garbage it read) has other bits.
_POISON = {torch.float32: (torch.int32, 0x7FC0DEAD), torch.float16: (torch.int16, 0x7E5A),
           torch.bfloat16: (torch.int16, 0x7FDA)}


def _pad_columns(padded, aligned):
    """(first column, extra columns) of a view inside a larger buffer. ``aligned``: TMA's rules hold,
    every row starts on a 16-byte boundary (8 elements before and after each row; the caller keeps
    the row length a multiple of 8)."""
    if not padded:
        return 0, 0
    return (8, 16) if aligned else (1, 3)


def _make_input(rows, cols, dtype, padded, gen, aligned=False):
    """Random values in a view with guard rows above and below (and, if ``padded``, guard columns:
    a strided view). Reading a little past an edge reads ``_IN_PAD``, not memory outside the buffer."""
    values = torch.randn(rows, cols, generator=gen, dtype=torch.float32).to(dtype)
    c0, extra = _pad_columns(padded, aligned)
    big = torch.full((rows + 1 + _IN_GUARD_ROWS, cols + extra), _IN_PAD, dtype=dtype, device=DEVICE)
    view = big[1 : rows + 1, c0 : c0 + cols]
    view.copy_(values)
    return view


def _make_out(M, N, dtype, padded, aligned=False):
    """A poisoned (NaN) output view inside a buffer of ``_OUT_PAD``: (big, view, first column)."""
    c0, extra = _pad_columns(padded, aligned)
    big = torch.full((M + 2, N + extra), _OUT_PAD, dtype=dtype, device=DEVICE)
    view = big[1 : M + 1, c0 : c0 + N]
    int_dtype, bits = _POISON[dtype]
    view.view(int_dtype).fill_(bits)
    return big, view, c0


def _unwritten(res, poisoned: bool):
    """Elements still holding the poison: our exact NaN bits if we made the output, else any NaN."""
    if poisoned and res.dtype in _POISON:
        int_dtype, bits = _POISON[res.dtype]
        return res.view(int_dtype) == bits
    return torch.isnan(res)


def _first(mask):
    return tuple(int(i) for i in mask.nonzero()[0].tolist())


def _unwritten_message(nan, M, N, persistent=None, tma=False):
    count = int(nan.sum())
    i, j = _first(nan)
    hint = ""
    if tma:  # no masks to blame: the store's offsets are what a TMA answer gets wrong
        hint = ("; with TMA every tile is stored by c_desc.store([row0, col0], ...) at its first row and "
                "column, in elements (the descriptor clips what lies past the edges): is that where your "
                "store goes?")
    elif M > 1 and bool(nan[M - 1].all()) and not bool(nan[: M - 1].all()):
        hint = f"; the whole last row (m = {M - 1}) is missing: check the row mask / grid"
    elif N > 1 and bool(nan[:, N - 1].all()) and not bool(nan[:, : N - 1].all()):
        hint = f"; the whole last column (n = {N - 1}) is missing: check the column mask / grid"
    if persistent is not None:  # the loop, not the masks, is what a persistent answer gets wrong
        hint = (f"; {persistent} program(s) ran, and each must compute every tile of its loop, tile ids "
                "program_id, program_id + num_programs, program_id + 2 * num_programs, ... up to num_tiles: "
                "does each program stop after its first tile (a missing stride or loop)?")
    return (f"{count} of {M * N} outputs never written (still the NaN the output was filled with), "
            f"first at [{i}, {j}]{hint}")


def _canary_message(big, c0, M, N):
    border = torch.ones_like(big, dtype=torch.bool)
    border[1 : M + 1, c0 : c0 + N] = False
    changed = border & ~(big == _OUT_PAD)
    if not bool(changed.any()):
        return None
    r, c = _first(changed)
    return (f"the kernel wrote outside C: at row {r - 1}, column {c - c0} (C is {M}x{N}: rows 0..{M - 1}, "
            f"columns 0..{N - 1}); check the store mask")


def _values_message(res, ref, dtype):
    """``None`` if ``res`` is within the dtype's tolerance of the float64 ``ref``; else what is wrong."""
    tol = T.tolerance(dtype)
    err = T.rel_error(res, ref)
    if err <= tol:
        return None
    got = res.detach().to("cpu", torch.float64)
    ref = ref.detach().to("cpu", torch.float64)
    diff = (got - ref).abs()
    rms = float(ref.pow(2).mean().sqrt()) or 1.0
    bad = ~torch.isfinite(got) | (diff > tol * (ref.abs() + rms))
    i, j = _first(bad) if bool(bad.any()) else _first(diff == diff.max())
    hint = " (reading past an edge of A or B? what surrounds them here is 1000)" if err > 10 else ""
    return (f"wrong values: relative error {err:.2e} > tolerance {tol:.0e} for {str(dtype)[6:]}; "
            f"first bad element [{i}, {j}]: expected {float(ref[i, j]):.6g}, got {float(got[i, j]):.6g}{hint}")


def _dims(rng, lo, hi, avoid=16):
    """A size in [lo, hi] that is not a multiple of ``avoid`` (so not of any block >= 16 either)."""
    x = rng.randint(lo, hi)
    return x + 1 if x % avoid == 0 else x


class _Case:
    """One call of the learner's function. ``padded``: a, b and out are strided views inside larger
    buffers; ``own_out``: the wrapper allocates C itself (no guard around it, so it runs last);
    ``programs``: a persistent launch, whose kernels must start exactly ``kwargs["num_programs"]``
    programs in all, or at most ``programs`` when no ``num_programs`` is passed (one per SM);
    ``tma``: the learner's kernel must go through TMA descriptors, and padded views keep every row
    16-byte aligned."""

    def __init__(self, label, M, N, K, dtype, padded=False, kwargs=None, gpu_only=False, own_out=False,
                 programs=None, tma=False):
        self.label, self.M, self.N, self.K, self.dtype = label, M, N, K, dtype
        self.padded, self.kwargs, self.gpu_only, self.own_out = padded, kwargs or {}, gpu_only, own_out
        self.programs, self.tma = programs, tma

    def title(self):
        kw = "".join(f", {k}={v}" for k, v in self.kwargs.items())
        lay = ""
        if self.padded:
            lay = ", row-aligned views in padded buffers" if self.tma else ", strided views in padded buffers"
        return f"{str(self.dtype)[6:]} {self.M}x{self.N}x{self.K} ({self.label}{lay}{kw})"


def _programs_message(case, launches, res):
    """``None`` if the learner's kernels that got C started as many programs as a persistent launch
    should (``case.programs``); else what is wrong."""
    own = [l for l in launches if not l.from_library and l.touches(res)]
    if not own:
        return None  # reported elsewhere (the result never went through a kernel of the learner's)
    if any(l.programs is None for l in own):
        return "could not read the launch grid of your kernel: launch it as kernel[(num_programs,)](...)"
    total = sum(l.programs for l in own)
    grids = ", ".join(f"{l.kernel}[{l.grid[0]}, {l.grid[1]}, {l.grid[2]}]" for l in own[:3])
    if len(own) > 3:
        grids += f", ... ({len(own)} launches)"
    loop = ("a persistent kernel launches exactly num_programs programs, and each one loops over the tiles "
            "`for tile_id in range(tl.program_id(0), num_tiles, num_programs)`; one program per tile is "
            "chapter 02's kernel")
    wanted = case.kwargs.get("num_programs")
    if wanted is not None and total != wanted:
        return f"num_programs={wanted} was asked for, but your kernel started {total} programs ({grids}): {loop}"
    if wanted is None and total > case.programs:
        return (f"without num_programs the wrapper should start one program per SM (at most {case.programs} "
                f"here), but your kernel started {total} programs ({grids}): {loop}")
    return None


def _run_matmul_case(fn, case, gen, subchecks, first):
    M, N, K, dtype = case.M, case.N, case.K, case.dtype
    title = case.title()
    if case.gpu_only and not ON_GPU:
        subchecks.append(SubCheck(title, "skip", "needs a CUDA GPU; this runs in Triton's interpreter"))
        return

    def stop(status, message):
        subchecks.append(SubCheck(title, "fail", message))
        raise _Stop(status, f"{title}: {message}")

    a = _make_input(M, K, dtype, case.padded, gen, aligned=case.tma)
    b = _make_input(K, N, dtype, case.padded, gen, aligned=case.tma)
    a_before, b_before = a.clone(), b.clone()
    ref = T.matmul_reference(a, b)  # before the call: an answer that writes into A or B cannot move it
    kwargs = dict(case.kwargs)
    big = None
    if not case.own_out and _accepts(fn, "out"):
        big, kwargs["out"], c0 = _make_out(M, N, dtype, case.padded, aligned=case.tma)
    res, error = None, None
    with Sandbox() as box:
        try:
            res = fn(a, b, **kwargs)
        except Refused:
            pass
        except Exception as exc:  # the learner's code raised: report it, never crash
            error = exc
    if box.refusals:
        stop("refused", "refused: " + box.refusals[0])
    if error is not None:
        if _not_implemented(error):
            stop("not_implemented", "not implemented yet (NotImplementedError)")
        stop("error", describe_exception(error))
    if not box.launches:
        stop("refused", "refused: no Triton kernel was launched; the result must be computed by your "
                        "@triton.jit kernel, launched as kernel[grid](...)")
    if all(launch.from_library for launch in box.launches):
        names = ", ".join(sorted({f"{l.module}.{l.kernel}" for l in box.launches}))
        stop("refused", f"refused: the only kernels launched were the course's own ({names}); "
                        "write and launch your own kernel")
    if isinstance(res, torch.Tensor):
        writer = next((l for l in reversed(box.launches) if l.touches(res)), None)
        if writer is not None and writer.from_library:
            stop("refused", f"refused: the result was last written by the course's own kernel "
                            f"({writer.module}.{writer.kernel}); it must come from your kernel")
        if case.programs is not None:
            msg = _programs_message(case, box.launches, res)
            if msg:
                stop("refused", "refused: " + msg)
    if not isinstance(res, torch.Tensor):
        stop("fail", f"the function returned {type(res).__name__}, not a torch.Tensor")
    if tuple(res.shape) != (M, N):
        stop("fail", f"shape error: expected ({M}, {N}), got {tuple(res.shape)}")
    if res.dtype != dtype:
        stop("fail", f"dtype error: inputs are {dtype}, the result is {res.dtype} (C should match the inputs)")
    why = box.written_by_kernel(res)
    if why:
        stop("refused", "refused: " + why)
    nan = _unwritten(res, poisoned=big is not None and res.data_ptr() == kwargs["out"].data_ptr())
    if bool(nan.all()):
        status = "not_implemented" if first else "fail"
        stop(status, "the kernel wrote nothing: every output is still the NaN the output was filled with "
                     "(not implemented yet, or a store mask that is never true?)")
    if case.tma:
        msg = _tma_message(box.launches, res)
        if msg:
            stop("refused", "refused: " + msg)
    if bool(nan.any()):
        ran = sum(l.programs or 0 for l in box.launches if not l.from_library and l.touches(res))
        if case.tma:
            stop("fail", _unwritten_message(nan, M, N, tma=True))
        stop("fail", _unwritten_message(nan, M, N, ran if case.programs is not None else None))
    if big is not None:
        msg = _canary_message(big, c0, M, N)
        if msg:
            stop("fail", msg)
    bad = ~torch.isfinite(res)
    if bool(bad.any()):
        i, j = _first(bad)
        stop("fail", f"{int(bad.sum())} outputs are NaN or inf although the kernel wrote them, first at [{i}, {j}] "
                     f"(got {float(res[i, j])}): did a load read outside A or B (missing mask or `other=0.0`)?")
    for label, now, before in (("A", a, a_before), ("B", b, b_before)):
        if not torch.equal(now.view(_POISON[dtype][0]), before.view(_POISON[dtype][0])):
            stop("fail", f"the kernel changed the input {label}: a matmul must only read A and B")
    msg = _values_message(res, ref, dtype)
    if msg:
        stop("fail", msg)
    subchecks.append(SubCheck(title, "pass"))


def _matmul_cases(rng, hi_mn, lo_k, hi_k, block_kwargs, extra=()):
    def dims():
        return _dims(rng, 2, hi_mn), _dims(rng, 2, hi_mn), _dims(rng, lo_k, hi_k)

    # first a small ragged case: an answer that writes nothing there is "not implemented"
    cases = [_Case("small", _dims(rng, 2, 9), _dims(rng, 2, 9), _dims(rng, 2, 9), torch.float32, padded=True)]
    cases.append(_Case("smallest", 1, 1, 1, torch.float32))
    cases.append(_Case("ragged", *dims(), torch.float32))
    cases.append(_Case("ragged", *dims(), torch.float16, padded=True))
    cases += list(extra)
    for kw in block_kwargs:
        cases.append(_Case("other blocks", *dims(), torch.float32, padded=True, kwargs=kw))
    cases.append(_Case("bf16 on a GPU", *dims(), torch.bfloat16, padded=True, gpu_only=True))
    cases.append(_Case("the wrapper allocates C", *dims(), torch.float16, own_out=True))
    return cases


def _check_matmul(fn, rng, gen, cases, subchecks):
    for i, case in enumerate(cases):
        if case.kwargs and not all(_accepts(fn, k) for k in case.kwargs):
            subchecks.append(SubCheck(case.title(), "skip", "your function does not take these arguments"))
            continue
        _run_matmul_case(fn, case, gen, subchecks, first=i == 0)


def check_naive_matmul(fn, rng, gen, subchecks):
    # one program per output element: ~2 ms a program in the interpreter, so keep M x N small there
    hi_mn, hi_k = pick(cpu=(10, 45), gpu=(300, 700))
    cases = _matmul_cases(rng, hi_mn, 17, hi_k, [{"block_k": 8}])
    _check_matmul(fn, rng, gen, cases, subchecks)


def check_tiled_matmul(fn, rng, gen, subchecks):
    hi = pick(cpu=100, gpu=700)
    even = pick(cpu=64, gpu=512)
    extra = [_Case("multiples of the block", even, even, even, torch.float32)]
    cases = _matmul_cases(rng, hi, 2, hi, [{"block_m": 16, "block_n": 32, "block_k": 16}], extra)
    _check_matmul(fn, rng, gen, cases, subchecks)


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
        case("bf16 on a GPU", looping(), torch.bfloat16, 3, padded=True, gpu_only=True),
        case("the wrapper allocates C", dims(), torch.float16, own_out=True),
    ]
    for i, c in enumerate(cases):
        _run_matmul_case(fn, c, gen, subchecks, first=i == 0)


_TMA_REFUSAL = ("this exercise is about TMA: build descriptors with tl.make_tensor_descriptor and load "
                "through them (a_desc.load([row, col])) instead of tl.load on pointers with masks")


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
    ``x.load(...)`` on something other than ``tl`` / ``triton.language``."""
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


def _tma_message(launches, res):
    """``None`` if the learner's kernel that wrote ``res`` builds TMA descriptors and loads through
    them; else why it is refused."""
    own = [l for l in launches if not l.from_library and l.touches(res)]
    if not own:
        return None  # reported elsewhere
    trees = []
    for launch in own:
        trees += _jit_sources(launch.jit)
    if not trees:
        return f"could not read the source of your kernel ({own[0].kernel}) to see that it uses TMA"
    builds, loads = _uses_tma(trees)
    if not builds:
        return f"your kernel never calls tl.make_tensor_descriptor: {_TMA_REFUSAL}"
    if not loads:
        return f"your kernel builds descriptors but never loads through them (desc.load): {_TMA_REFUSAL}"
    return None


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
    cases = [
        case("small", small, torch.float32, padded=True),  # first: writing nothing there is "not implemented"
        case("smallest", (1, 8, 8), torch.float32),
        case("ragged", dims(), torch.float32),
        case("ragged", dims(), torch.float16, padded=True),
        case("programs loop", looping(), torch.float32, padded=True),
        case("programs loop", looping(), torch.float16),
        case("bf16 on a GPU", looping(), torch.bfloat16, padded=True, gpu_only=True),
        case("the wrapper allocates C", dims(), torch.float16, own_out=True),
    ]
    for i, c in enumerate(cases):
        _run_matmul_case(fn, c, gen, subchecks, first=i == 0)


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


def check_grouped_tile(fn, rng, gen, subchecks):
    grids = [(1, 1, 1), (1, 7, 3), (7, 1, 3), (4, 3, 2), (5, 3, 8), (13, 9, 4), (3, 40, 1), (9, 9, 9)]
    grids += [(rng.randint(1, 40), rng.randint(1, 40), rng.randint(1, 12)) for _ in range(30)]
    for gm, gn, g in grids:
        title = f"grid {gm}x{gn}, group_m {g}"

        def stop(status, message):
            subchecks.append(SubCheck(title, "fail", message))
            raise _Stop(status, f"{title}: {message}")

        got = []
        with watch_calls(_LIBRARY_SCHEDULE) as library_calls:
            for pid in range(gm * gn):
                try:
                    value = fn(pid, gm, gn, g)
                except Exception as exc:
                    if _not_implemented(exc):
                        stop("not_implemented", "not implemented yet (NotImplementedError)")
                    stop("error", f"program {pid}: {describe_exception(exc)}")
                if library_calls:
                    stop("refused", f"refused: it calls kernels.schedule.{library_calls[0]}, the course's "
                                    "own answer; write the arithmetic yourself")
                tile = _as_tile(value)
                if tile is None:
                    stop("fail", f"program {pid}: expected a pair of ints (pid_m, pid_n), got {value!r}")
                got.append(tile)
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
        result.status, result.message = "missing", f"no function named {name} is defined"
        return result
    if not callable(fn):
        result.status, result.message = "missing", f"{name} is a {type(fn).__name__}, not a function"
        return result
    limit = limit if limit is not None else (ex.time_limit_gpu if ON_GPU else ex.time_limit_cpu)
    rng = random.Random(seed ^ zlib.crc32(name.encode()))
    gen = torch.Generator().manual_seed(rng.randrange(2**62))
    start = time.perf_counter()
    try:
        with time_limit(limit):
            globals()[ex.check](fn, rng, gen, result.subchecks)
    except _Stop as stop:
        result.status, result.message = stop.status, stop.message
    except Timeout:
        result.status = "timeout"
        result.message = f"timed out: the check did not finish within {limit:g} s (an endless loop?)"
    except Exception as exc:  # a bug in the check itself, or something no sub-check expected
        result.status, result.message = "error", "the check failed unexpectedly: " + describe_exception(exc)
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
