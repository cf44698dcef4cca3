"""What a matmul kernel of this course accepts, checked before anything is launched.

Every course kernel (``naive``, ``tiled``, ``persistent``, ``tma``, ``pingpong``) and the exercise
notebooks' given wrappers check their operands here, so a bad input gets the same one-line error
everywhere instead of a wrong answer or an error from deep inside Triton.

The contract, for ``C = A @ B`` with ``A`` of shape ``(M, K)`` and ``B`` of shape ``(K, N)``:

* ``a``, ``b`` and ``out`` are dense (strided) ``torch.Tensor`` (not NumPy arrays or lists, not sparse
  or nested tensors), 2-D, not empty, without negative strides, of one float dtype among float32,
  float16 and bfloat16 (float64, complex and integer tensors are refused rather than computed in a
  narrower type), without a pending negation or conjugation (``is_neg()``/``is_conj()``: the kernels
  read raw memory, so such a view would give ``-(A @ B)``), all on one device, the device of this world
  (``kernels.DEVICE``); on a GPU, the current CUDA device (where Triton launches);
* ``out`` has shape ``(M, N)`` and the inputs' dtype, and no two of its elements share memory (a
  view made by ``expand``, say: which of the writes would win?);
* ``out`` may share memory with ``a`` or ``b`` (``f(a, b, out=a)``). A kernel's programs would then
  overwrite inputs other programs still read, so the course's kernels compute into a temporary and
  copy it into ``out``: the result is what ``out=`` promises, ``a @ b`` as the inputs were. The
  exercise wrappers launch the learner's kernel on ``out`` itself and refuse such an ``out`` instead
  (:func:`prepare_matmul`).

Offsets inside a kernel are ``row * row_stride + col * col_stride``: 32-bit integers unless an operand
spans ``2**31`` elements or more (the logits of an LM head, say: 32769 x 65536). :func:`needs_int64`
tells the wrappers to compile the 64-bit variant of their kernel then; the common case keeps 32-bit
math.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch

from . import DEVICE, ON_GPU, world_mismatch

SUPPORTED_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
INT32_SPAN = 2**31  # an operand spanning this many elements or more needs 64-bit offsets
GRID_X_MAX = 2**31 - 1  # CUDA's limits on a launch grid: programs along x ...
GRID_YZ_MAX = 65535  # ... and along y and z
MAX_BLOCK = 2**20  # Triton's largest tensor (TRITON_MAX_TENSOR_NUMEL)


# --------------------------------------------------------------------------------------------------
# memory: spans, ranges, overlap (plain Python on shapes, strides and addresses; no tensor ops)
# --------------------------------------------------------------------------------------------------
def element_span(t: torch.Tensor) -> int:
    """How many elements ``t``'s view covers, first to last inclusive: ``1 + sum((size-1) * stride)``
    (0 if ``t`` is empty). The largest offset a kernel computes into ``t`` is ``span - 1``."""
    if t.numel() == 0:
        return 0
    return 1 + sum((n - 1) * s for n, s in zip(t.shape, t.stride()))


def needs_int64(*tensors: torch.Tensor) -> bool:
    """Whether offsets into any of ``tensors`` can reach ``2**31`` (an element span >= ``INT32_SPAN``),
    so that a kernel must compute them in 64 bits."""
    return any(element_span(t) >= INT32_SPAN for t in tensors)


def byte_range(t: torch.Tensor) -> tuple[int, int]:
    """``(first, stop)``: the addresses from ``t``'s first element to just past its last one."""
    start = t.data_ptr()
    return start, start + element_span(t) * t.element_size()


def has_internal_overlap(t: torch.Tensor) -> bool:
    """Whether two elements of the 2-D view ``t`` share memory (a stride 0 from ``expand``, or strides
    that make rows run into each other). Exact: torch's own check where it is decisive, else the
    arithmetic for two dimensions."""
    check = getattr(torch, "_debug_has_internal_overlap", None)
    if check is not None:
        verdict = int(check(t))  # 0: no, 1: yes, 2: too hard for torch
        if verdict in (0, 1):
            return bool(verdict)
    dims = [(n, s) for n, s in zip(t.shape, t.stride()) if n > 1]
    if any(s == 0 for _, s in dims):
        return True
    if len(dims) < 2:
        return False
    (n0, s0), (n1, s1) = dims
    # elements (i, j) and (i + di, j + dj) meet when di*s0 + dj*s1 == 0; the smallest such step is
    # di = s1/g, dj = -s0/g (g = gcd), and it fits inside the view iff both are below the sizes
    from math import gcd

    g = gcd(s0, s1)
    return s1 // g <= n0 - 1 and s0 // g <= n1 - 1


def _rows(t: torch.Tensor):
    """``(pitch, start, rows, width)`` in bytes if every row of ``t`` is contiguous (``pitch`` is
    ``None`` for a single row), else ``None``."""
    es = t.element_size()
    if t.shape[1] > 1 and t.stride(1) != 1:
        return None
    pitch = t.stride(0) * es if t.shape[0] > 1 else None
    return pitch, t.data_ptr(), t.shape[0], t.shape[1] * es


def _rows_overlap(x: torch.Tensor, y: torch.Tensor) -> bool | None:
    """Exact answer for two views whose rows are contiguous and equally far apart (blocks of one
    buffer side by side, say); ``None`` if the views are not of that kind.

    Row ``i`` of ``x`` holds the bytes ``sx + i*P + [0, Wx)``, row ``j`` of ``y`` ``sy + j*P + [0, Wy)``.
    They meet iff ``sy - sx + (j - i)*P`` lies in ``(-Wy, Wx)`` for some ``i``, ``j``: an interval of
    ``k = j - i`` to intersect with ``[-(Rx - 1), Ry - 1]``."""
    rx, ry = _rows(x), _rows(y)
    if rx is None or ry is None:
        return None
    (px, sx, nx, wx), (py, sy, ny, wy) = rx, ry
    if px is not None and py is not None and px != py:
        return None
    pitch = px if px is not None else py
    d = sy - sx
    if not pitch:  # single rows, or rows all at one place (stride 0): one interval each
        return -wy < d < wx
    lo = -((wy - 1 + d) // pitch)  # ceil((-(wy - 1) - d) / pitch)
    hi = (wx - 1 - d) // pitch
    return max(lo, -(nx - 1)) <= min(hi, ny - 1)


def may_share_memory(x: torch.Tensor, y: torch.Tensor) -> bool:
    """Whether the 2-D views ``x`` and ``y`` may have an element in common.

    Exact when the byte ranges do not meet, and for two views whose rows (or columns) are contiguous
    and equally far apart, such as blocks of one buffer; otherwise ``True`` as soon as the byte ranges
    meet (views with other strides that interleave, say), which costs the course's kernels a temporary
    and never a wrong answer."""
    if x.device != y.device or x.numel() == 0 or y.numel() == 0:
        return False
    (x0, x1), (y0, y1) = byte_range(x), byte_range(y)
    if x1 <= y0 or y1 <= x0:
        return False
    for u, v in ((x, y), (x.t(), y.t())):
        exact = _rows_overlap(u, v)
        if exact is not None:
            return exact
    return True


# --------------------------------------------------------------------------------------------------
# the checks
# --------------------------------------------------------------------------------------------------
def _dtype_advice(t: torch.Tensor, label: str) -> str:
    if t.dtype == torch.float64:
        why = "float64 is not computed by these kernels (tensor cores have no float64 path)"
    elif t.dtype.is_floating_point:
        why = f"{t.dtype} is not one of the kernels' dtypes"
    elif t.dtype.is_complex:
        return (f"{label} has dtype {t.dtype}: {t.dtype} holds complex numbers, and these kernels multiply "
                f"real matrices; supported: float32, float16, bfloat16 (multiply {label}.real and "
                f"{label}.imag separately, or pass {label}.real if the imaginary part is zero)")
    else:
        why = f"{t.dtype} holds {'booleans' if t.dtype == torch.bool else 'integers'}, not floats"
    return (f"{label} has dtype {t.dtype}: {why}; supported: float32, float16, bfloat16 "
            f"(convert with {label}.float(), .half() or .bfloat16())")


def cuda_device_problem(label: str, device: torch.device, current: int) -> str | None:
    """Why a CUDA tensor on ``device`` cannot be used when the current CUDA device is ``current``
    (Triton launches on the current device, so a tensor on another GPU would be read from the wrong
    one), or ``None``. Plain Python on ``torch.device`` objects: testable without a GPU."""
    index = device.index if device.index is not None else current
    if device.type != "cuda" or index == current:
        return None
    return (f"{label} is on cuda:{index}, but the current CUDA device is cuda:{current}, where Triton "
            f"launches; run the call under `with torch.cuda.device({label}.device):` (or "
            f"torch.cuda.set_device({index})) with every operand on cuda:{index}")


def check_operand(t, label: str, name: str) -> None:
    """One operand on its own: a dense (strided) ``torch.Tensor``, 2-D, a supported float dtype, no
    pending negation or conjugation, on this world's device (on a GPU, the current CUDA device), not
    empty, no negative strides. Raises ``TypeError`` (type, dtype) or ``ValueError`` (the rest), each
    message starting with ``name``."""
    if not isinstance(t, torch.Tensor):
        module = type(t).__module__.split(".")[0]
        kind = type(t).__name__ if module == "builtins" else f"{module}.{type(t).__name__}"
        raise TypeError(f"{name}: {label} must be a torch.Tensor, got {kind}; convert it with "
                        f"torch.as_tensor({label}, dtype=torch.float32).to(kernels.DEVICE)")
    if t.is_nested:
        raise ValueError(f"{name}: {label} must be a dense (strided) tensor, got a nested tensor "
                         f"({t.layout}); pass one 2-D tensor (e.g. {label}.to_padded_tensor(0.0)[i])")
    if t.layout != torch.strided:
        raise ValueError(f"{name}: {label} must be a dense (strided) tensor, got {t.layout}; "
                         f"use {label}.to_dense()")
    if t.dim() != 2:
        raise ValueError(f"{name}: {label} must be 2-D, got shape {tuple(t.shape)}")
    if t.dtype not in SUPPORTED_FLOAT_DTYPES:
        raise TypeError(f"{name}: {_dtype_advice(t, label)}")
    if t.is_neg() or t.is_conj():
        bit = "neg" if t.is_neg() else "conj"
        what = "negation" if bit == "neg" else "conjugation"
        raise ValueError(f"{name}: {label} is a view with a pending {what} ({label}.is_{bit}() is True): its "
                         f"memory holds the values before the {what}, which the kernels would read as they "
                         f"are; call {label}.resolve_{bit}() first")
    if t.device.type != torch.device(DEVICE).type:
        where = "a CUDA GPU" if ON_GPU else "the CPU (Triton's interpreter; no GPU here)"
        raise ValueError(f"{name}: {label} is on {t.device}, but this process runs kernels on {where}; "
                         f"move it with .to(kernels.DEVICE)")
    if ON_GPU and t.device.type == "cuda":
        problem = cuda_device_problem(label, t.device, torch.cuda.current_device())
        if problem:
            raise ValueError(f"{name}: {problem}")
    if t.numel() == 0:
        raise ValueError(f"{name}: {label} is empty (shape {tuple(t.shape)}); nothing to multiply")
    if any(s < 0 for s in t.stride()):
        raise ValueError(f"{name}: {label} has a negative stride {t.stride()}")


def check_inputs(name: str, a, b) -> tuple[int, int, int]:
    """Check ``a`` (M x K) and ``b`` (K x N) against the contract; return ``(M, N, K)``.

    Raises ``TypeError`` for a non-tensor, an unsupported dtype or two dtypes; ``ValueError`` for a
    wrong rank, an empty tensor, a negative stride, a device other than ``kernels.DEVICE``, two devices,
    or inner dimensions that differ."""
    check_operand(a, "a", name)
    check_operand(b, "b", name)
    if a.dtype != b.dtype:
        raise TypeError(f"{name}: a is {a.dtype} but b is {b.dtype}; cast one so they match")
    if a.device != b.device:
        raise ValueError(f"{name}: a is on {a.device} but b is on {b.device}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"{name}: inner dimensions differ: a is {tuple(a.shape)}, b is {tuple(b.shape)} "
                         f"(a.shape[1]={a.shape[1]} must equal b.shape[0]={b.shape[0]})")
    return a.shape[0], b.shape[1], a.shape[1]


def check_out(name: str, out, a: torch.Tensor, b: torch.Tensor) -> list[str]:
    """Check ``out`` for ``a @ b`` (inputs already checked); return the labels of the inputs it may
    share memory with (``[]``, ``["a"]``, ...). Raises ``TypeError`` (type, dtype) or ``ValueError``
    (shape, device, elements that share memory)."""
    check_operand(out, "out", name)
    shape = (a.shape[0], b.shape[1])
    if tuple(out.shape) != shape:
        raise ValueError(f"{name}: out has shape {tuple(out.shape)}, expected {shape}")
    if out.dtype != a.dtype:
        raise TypeError(f"{name}: out has dtype {out.dtype}, expected {a.dtype} (C has the inputs' dtype)")
    if out.device != a.device:
        raise ValueError(f"{name}: out is on {out.device}, expected {a.device}")
    if has_internal_overlap(out):
        raise ValueError(f"{name}: elements of out share memory (shape {shape}, strides {out.stride()}, "
                         f"e.g. a view made by expand): every element of C needs its own; pass a fresh "
                         f"tensor such as torch.empty({shape[0]}, {shape[1]}, dtype={a.dtype}, "
                         f"device=kernels.DEVICE)")
    return [label for label, t in (("a", a), ("b", b)) if may_share_memory(out, t)]


def check_grid(name: str, grid, hint: str = "") -> None:
    """Refuse a launch grid CUDA cannot start: at most ``2**31 - 1`` programs along x, 65535 along y
    and z (``ValueError`` naming the axis, followed by ``hint``). Checked in both worlds, so that code
    that runs in the interpreter also runs on a GPU."""
    for axis, n in zip("xyz", grid):
        limit = GRID_X_MAX if axis == "x" else GRID_YZ_MAX
        if n > limit:
            raise ValueError(f"{name}: the launch grid {tuple(grid)} has {n} programs along {axis}; CUDA "
                             f"allows at most {limit} along {axis}{hint}")


@dataclass
class MatmulCall:
    """A checked ``a @ b``: the sizes, where the kernel writes, and whether it needs 64-bit offsets."""

    M: int
    N: int
    K: int
    c: torch.Tensor  # what the kernel writes: out, a new tensor, or a temporary when out overlaps a or b
    out: torch.Tensor | None  # the caller's out
    int64: bool  # some operand spans >= 2**31 elements: compile the kernel with 64-bit offsets

    def result(self) -> torch.Tensor:
        """After the launch: ``out`` (the temporary copied into it, if one was used), else ``c``."""
        if self.out is not None and self.c is not self.out:
            self.out.copy_(self.c)
            return self.out
        return self.c


def plan_output(name: str, a: torch.Tensor, b: torch.Tensor, out=None, *, on_overlap: str = "temporary",
                fill: float | None = None) -> MatmulCall:
    """Check ``out`` (inputs already checked, see :func:`check_inputs`) and decide where the kernel
    writes. ``out=None``: a new ``(M, N)`` tensor (filled with ``fill`` if given). ``out`` sharing
    memory with ``a`` or ``b``: a temporary copied into ``out`` by ``MatmulCall.result()``
    (``on_overlap="temporary"``), or a ``ValueError`` (``on_overlap="raise"``)."""
    M, N, K = a.shape[0], b.shape[1], a.shape[1]
    if on_overlap not in ("temporary", "raise"):
        raise ValueError(f"on_overlap must be 'temporary' or 'raise', not {on_overlap!r}")
    c = out
    if out is not None:
        shared = check_out(name, out, a, b)
        if shared and on_overlap == "raise":
            which = " and ".join(shared)
            raise ValueError(f"{name}: out shares memory with {which}: the kernel would overwrite {which} "
                             f"while other programs still read it; pass a separate out "
                             f"(e.g. torch.empty_like(out)) or out=None")
        if shared:
            c = torch.empty((M, N), dtype=a.dtype, device=a.device)
    if c is None:
        if fill is None:
            c = torch.empty((M, N), dtype=a.dtype, device=a.device)
        else:
            c = torch.full((M, N), fill, dtype=a.dtype, device=a.device)
    return MatmulCall(M, N, K, c, out, needs_int64(a, b, c))


def check_matmul(name: str, a, b, out=None, *, on_overlap: str = "temporary") -> MatmulCall:
    """:func:`check_inputs` then :func:`plan_output`: the whole contract of a course matmul kernel.

    ``name`` starts every error message. Returns a :class:`MatmulCall`: launch the kernel on
    ``call.c`` (with 64-bit offsets if ``call.int64``) and return ``call.result()``."""
    check_inputs(name, a, b)
    return plan_output(name, a, b, out, on_overlap=on_overlap)


def as_int(v):
    """``v`` as a Python ``int`` if it is an integer (``int``, ``numpy.int64``, ...; not ``bool``),
    else ``None``."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        return None
    return int(v)


def check_blocks(name: str, blocks: dict, min_block: int = 1, *, python_int: bool = False) -> dict:
    """Each block size in ``blocks`` (``{"block_k": 32, ...}``) is an integer power of two, at least
    ``min_block`` (16 where the kernel calls ``tl.dot``) and at most Triton's largest tensor
    (``2**20``). Raises ``ValueError`` naming the block. Returns the sizes as Python ``int``s (NumPy
    integers accepted), for the launch; ``python_int=True`` accepts only ``int`` (for a caller that
    launches with the values it was given)."""
    checked = {}
    for label, given in blocks.items():
        v = as_int(given) if isinstance(given, int) or not python_int else None
        if v is None:
            hint = f" (pass int({label}))" if as_int(given) is not None else ""
            raise ValueError(f"{name}: {label} must be an int, got {given!r}{hint}")
        checked[label] = v
        if v < 1 or v & (v - 1):
            raise ValueError(f"{name}: {label}={v} is not a power of two (tl.arange needs one)")
        if v < min_block:
            raise ValueError(f"{name}: {label}={v} is below {min_block}: the course's tl.dot tiles are at least "
                             f"{min_block} in every dimension (a GPU compiles tl.dot only with BLOCK_K >= 16)")
        if v > MAX_BLOCK:
            raise ValueError(f"{name}: {label}={v} is above {MAX_BLOCK}, Triton's largest tensor")
    return checked


def prepare_matmul(name: str, a, b, out=None, *, kernel=None, blocks: dict | None = None,
                   min_block: int = 1):
    """The checks of an exercise notebook's given wrapper, before it launches the learner's kernel.

    ``a`` (M x K) and ``b`` (K x N): tensors of one float dtype (float32, float16, bfloat16) on
    ``kernels.DEVICE``; ``out``: ``None`` or an ``(M, N)`` tensor of that dtype. ``kernel``: the
    learner's ``@triton.jit`` kernel, checked with :func:`kernels.world_mismatch`; ``blocks``: the block
    sizes by name (``{"block_k": block_k}``), powers of two ``>= min_block`` (16 for ``tl.dot``).

    Returns ``(M, N, K, out)``, where ``out`` is a new NaN-filled ``(M, N)`` tensor when none was
    given (an element the kernel never writes stays NaN). Raises ``TypeError``/``ValueError`` with one
    line for bad operands (see the module's contract); ``ValueError`` if ``out`` shares memory with
    ``a`` or ``b`` (the learner's kernel writes ``out`` itself, so there is no temporary here), if an
    operand spans ``2**31`` elements or more (the exercise kernels compute 32-bit offsets), or for a
    bad block size; ``RuntimeError`` if ``kernel`` was made for the other world.
    """
    if kernel is not None:
        problem = world_mismatch(kernel)
        if problem:
            raise RuntimeError(f"{name}: {problem}")
    M, N, K = check_inputs(name, a, b)
    check_blocks(name, blocks or {}, min_block, python_int=True)  # the wrapper launches with the given values
    spans = {"a": element_span(a), "b": element_span(b),
             "out": element_span(out) if isinstance(out, torch.Tensor) else M * N}
    for label, span in spans.items():
        if span >= INT32_SPAN:
            raise ValueError(f"{name}: {label} spans {span} elements; the exercise kernels compute 32-bit "
                             f"offsets, which stop at 2**31 - 1 (the course's kernels, e.g. "
                             f"kernels.tiled.matmul_tiled, switch to 64-bit offsets for such sizes)")
    call = plan_output(name, a, b, out, on_overlap="raise", fill=float("nan"))
    return M, N, K, call.c
