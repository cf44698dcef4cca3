"""``kernels.matmul(a, b)``: the course's matmul for any shape, dtype and layout, choosing among the
track's kernels by shape.

The rule (:func:`plan`), in the order it is applied, with ``S`` the number of SMs (132 on an H100 or
H200; ``kernels.persistent.INTERPRETER_SMS`` in the interpreter):

1. **A few rows** (``M <= 16``, a decode step): the time is the time to read B once. Split-K's kernel
   with ``16 x 64`` tiles and a long K step (``BLOCK_K = 256``): one program per 64 columns of B,
   each streaming its columns' whole K. (On Hopper a 16-row ``tl.dot`` compiles to ``mma.sync``, not
   ``wgmma``, whose smallest M is 64: no matter, the tensor cores are far from busy here.)
2. **Up to 128 rows**: ``64 x 64`` tiles in 6 stages, if they make at most one wave (``<= S`` tiles);
   else the persistent TMA kernel with ``64 x 128`` tiles in 8 stages. Few rows make these products
   wait on memory, and deep pipelines keep more bytes in flight per SM (at ``64 x 4096 x 4096``: 14.4 us
   with 4 stages, 11.5 us with 6).
3. **Everything larger**: the largest tile of ``128 x 256``, ``128 x 128``, ``64 x 128`` (float32:
   ``128 x 128``, ``64 x 128``) that still gives every SM about one tile (at least ``0.9 S`` tiles). With
   the largest tile, one to three full waves and a last wave less than half full (``1152 x 4096``: 144
   tiles of ``128 x 256``, a second wave of 12), the product is cut by rows where that works: the first
   rows, as many rows of tiles as the full waves hold (``Plan.rows``: 1024 of 1152, 128 tiles), if their
   tiles fill at least 90 % of those waves and at most 128 rows are left; the rows left are a second
   product with rule 1 or 2 (by their number), which reads all of B again. Otherwise the last wave is
   split by K (split-K on the tail, :func:`kernels.splitk.tail_plan`). Every other shape runs the
   persistent TMA kernel of chapter 04 (host descriptors).

The tiles, stages and the cut by rows were chosen by measuring bf16 on the H200
(``benchmarks/explore_matmul.py``, logs ``results/logs/h200_2026-12-02_explore_matmul.json`` and
``..._explore_matmul_2.json``); the split of the last wave was measured at 1152 and 2176 x 4096 x 4096
(chapter 03), where the cut by rows now wins, and no recorded shape takes it any more. float16 uses the
same tiles, float32 its own (half the K step, same bytes a step); neither was timed separately.
``benchmarks/matmul_grid.py`` records the result against cuBLAS.

TMA needs rows that are contiguous and row strides and starts that are multiples of 16 bytes. An
operand that is not (an odd K or N in 16-bit, a transposed view, a slice) is first copied into a buffer
whose rows are padded to 16 bytes (:func:`tma_ready`); a C that is not is computed in such a buffer and
copied out. The copies read and write each operand once more: at 4095^3 and 3000 x 5000 x 1700 the
whole call, copies included, ran 2.9x and 2.1x as fast as cuBLAS, which slows down several times at
such shapes (chapter 05). At small M, where the product is bound by reading B, a copy of B is not cheap;
that case was not timed.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from . import ON_GPU
from .operands import SUPPORTED_FLOAT_DTYPES, as_int, check_inputs, needs_int64, plan_output
from .persistent import sm_count
from .schedule import cdiv
from .tiled import TileConfig


@dataclass(frozen=True)
class Plan:
    """What :func:`matmul` runs: ``kernel`` is ``"splitk"`` (``kernels.splitk``; ``split_k`` as its
    argument, ``None`` for a split of the last wave only) or ``"persistent"`` (``kernels.tma``, host
    descriptors); ``why`` says which rule chose it. ``rows``: where set, this kernel computes only the
    first ``rows`` rows of C (whole waves of tiles) and the remaining rows are a second, smaller matmul
    with a plan of their own."""

    kernel: str
    config: TileConfig
    split_k: int | None
    why: str
    rows: int | None = None  # only the first ``rows`` rows of C; the rest by ``plan(M - rows, N, K)``

    def __post_init__(self):
        if self.rows is not None and (as_int(self.rows) is None or self.rows < 1):
            raise ValueError(f"Plan: rows must be None or a positive int, got {self.rows!r}")


# the tiles of the rule, for 16-bit inputs on a GPU; float32 halves BLOCK_K (same bytes a step)
_DECODE = TileConfig(16, 64, 256, 8, 4, 4)
_SMALL = TileConfig(64, 64, 128, 8, 4, 6)
_SMALL_PERSISTENT = TileConfig(64, 128, 64, 8, 4, 8)
_LARGE = [TileConfig(128, 256, 64, 8, 8, 3), TileConfig(128, 128, 64, 8, 4, 4), TileConfig(64, 128, 64, 8, 4, 5)]
# float32: 128 x 256 tiles leave no room for the float32 C tile the epilogue stages in shared memory
_LARGE_F32 = [TileConfig(128, 128, 32, 8, 4, 3), TileConfig(64, 128, 32, 8, 4, 5)]  # 128x128x32: kernels.tma.default_config
# in the interpreter every program costs Python time: small tiles, the same rule
_INTERP = {"decode": TileConfig(16, 32, 32, 4, 4, 1), "small": TileConfig(32, 32, 32, 4, 4, 1),
           "large": [TileConfig(32, 64, 32, 4, 4, 1), TileConfig(32, 32, 32, 4, 4, 1)]}


def _f32(cfg: TileConfig, dtype: torch.dtype, gpu: bool) -> TileConfig:
    if dtype != torch.float32 or not gpu:
        return cfg
    return TileConfig(cfg.block_m, cfg.block_n, max(16, cfg.block_k // 2), cfg.group_m, cfg.num_warps,
                      cfg.num_stages)


def plan(M: int, N: int, K: int, dtype: torch.dtype = torch.bfloat16, sms: int | None = None,
         on_gpu: bool | None = None) -> Plan:
    """The kernel, tile and split :func:`matmul` uses for an ``(M, K) @ (K, N)`` product (the module's
    rule). Plain Python: ``sms`` defaults to this GPU's SMs, ``on_gpu`` to this world (the interpreter
    uses small tiles with the same rule)."""
    for label, v in (("M", M), ("N", N), ("K", K)):
        if as_int(v) is None or as_int(v) < 1:
            raise ValueError(f"plan: {label} must be a positive int, got {v!r}")
    if sms is not None and (as_int(sms) is None or as_int(sms) < 1):
        raise ValueError(f"plan: sms must be a positive int (or None for this GPU's), got {sms!r}")
    if dtype not in SUPPORTED_FLOAT_DTYPES:
        raise TypeError(f"plan: dtype must be one of {', '.join(map(str, SUPPORTED_FLOAT_DTYPES))}, got {dtype!r}")
    return _plan(int(M), int(N), int(K), dtype, int(sms or sm_count()), ON_GPU if on_gpu is None else bool(on_gpu))


@functools.lru_cache(maxsize=4096)
def _plan(M: int, N: int, K: int, dtype: torch.dtype, sms: int, gpu: bool) -> Plan:
    if M <= 16:
        cfg = _DECODE if gpu else _INTERP["decode"]
        return Plan("splitk", _f32(cfg, dtype, gpu), 1, f"M={M} <= 16: one program per {cfg.block_n} columns of B "
                    f"(split-K's kernel, no split)")
    if M <= 128:
        cfg = _SMALL if gpu else _INTERP["small"]
        tiles = cdiv(M, cfg.block_m) * cdiv(N, cfg.block_n)
        if tiles <= sms:
            return Plan("splitk", _f32(cfg, dtype, gpu), 1, f"M={M} <= 128: {tiles} tiles of "
                        f"{cfg.block_m}x{cfg.block_n}, one wave (split-K's kernel, no split)")
        cfg = _SMALL_PERSISTENT if gpu else _INTERP["small"]
        small = _SMALL if gpu else _INTERP["small"]
        return Plan("persistent", _f32(cfg, dtype, gpu), None, f"M={M} <= 128: {tiles} tiles of "
                    f"{small.block_m}x{small.block_n} are more than a wave; persistent {cfg.block_m}x{cfg.block_n}")
    sizes = (_LARGE_F32 if dtype == torch.float32 else _LARGE) if gpu else _INTERP["large"]
    for cfg in sizes:
        tiles = cdiv(M, cfg.block_m) * cdiv(N, cfg.block_n)
        if 10 * tiles >= 9 * sms:
            break
    largest = cfg is sizes[0]  # (the sizes are already the dtype's: no halving of BLOCK_K here)
    waves, rest = divmod(tiles, sms)
    grid_n = cdiv(N, cfg.block_n)
    first_blocks = waves * sms // grid_n  # the most rows of tiles that fit in the full waves
    whole_rows = first_blocks * cfg.block_m
    ragged = largest and 0 < rest < sms // 2 and 1 <= waves < 4
    # the first rows' tiles must nearly fill those waves (>= 90 %), and at most 128 rows may be left
    if ragged and 0 < M - whole_rows <= 128 and 10 * first_blocks * grid_n >= 9 * waves * sms:
        return Plan("persistent", cfg, None, f"{tiles} tiles of {cfg.block_m}x{cfg.block_n} = {waves} full "
                    f"wave{'s' if waves > 1 else ''} and {rest} more: rows 0-{whole_rows - 1} "
                    f"({first_blocks * grid_n} tiles) first, the last {M - whole_rows} rows as a small-M matmul",
                    rows=whole_rows)
    if ragged:
        return Plan("splitk", cfg, None, f"{tiles} tiles of {cfg.block_m}x{cfg.block_n} = {waves} full "
                    f"wave{'s' if waves > 1 else ''} and {rest} more: the last wave split by K")
    return Plan("persistent", cfg, None, f"{tiles} tiles of {cfg.block_m}x{cfg.block_n} on {sms} SMs")


def tma_ready(t: torch.Tensor) -> bool:
    """Whether TMA can read ``t`` as it is: rows contiguous, row stride and start multiples of 16 bytes."""
    es = t.element_size()
    rows, cols = t.shape
    return (t.stride(1) == 1 and (t.stride(0) * es) % 16 == 0 and t.data_ptr() % 16 == 0
            and (rows == 1 or t.stride(0) >= cols))  # rows that do not overlap (not an expand()ed view)


def aligned_empty(rows: int, cols: int, dtype: torch.dtype, device) -> torch.Tensor:
    """An uninitialised ``(rows, cols)`` view whose rows are padded to a multiple of 16 bytes."""
    per = 16 // torch.empty((), dtype=dtype).element_size()
    return torch.empty((rows, cdiv(cols, per) * per), dtype=dtype, device=device)[:, :cols]


def aligned(t: torch.Tensor) -> torch.Tensor:
    """``t`` itself if TMA can read it, else a copy in :func:`aligned_empty` (one read, one write)."""
    if tma_ready(t):
        return t
    buf = aligned_empty(t.shape[0], t.shape[1], t.dtype, t.device)
    buf.copy_(t)
    return buf


def matmul(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ b`` with the course's best kernel for the shape (:func:`plan`).

    ``a``: ``(M, K)``, ``b``: ``(K, N)``: float32, float16 or bfloat16 (both the same) on
    ``kernels.DEVICE``, any non-negative strides (transposed views and slices included). Returns C,
    ``(M, N)``, in the inputs' dtype, contiguous (or ``out``, any strides), accumulated in float32.
    float32 inputs are multiplied on the tensor cores as TF32 (10-bit mantissa, ``tl.dot``'s default;
    torch does the same when ``torch.backends.cuda.matmul.allow_tf32`` is on). No autograd: the result
    has no ``grad_fn`` (use ``torch.matmul`` where gradients are needed).

    Raises ``TypeError``/``ValueError`` from ``kernels.operands`` for inputs no kernel can take (wrong
    rank, dtype, device, empty, mismatched inner dimensions, an ``out`` of the wrong shape or with
    elements that share memory; an ``out`` overlapping ``a`` or ``b`` is computed through a temporary).
    """
    name = "kernels.matmul"
    M, N, K = check_inputs(name, a, b)
    call = plan_output(name, a, b, out)
    p = plan(M, N, K, a.dtype)
    cfg = p.config  # the rule's tiles fit the dtype (tests/test_splitk.py checks their shared memory)
    a2, b2 = aligned(a), aligned(b)
    c = call.c
    if not tma_ready(c) or (p.kernel == "splitk" and needs_int64(c)):  # the adding uses 32-bit offsets into C
        c = aligned_empty(M, N, a.dtype, a.device)
    _run(p, a2, b2, c)
    if c is not call.c:
        call.c.copy_(c)
    return call.result()


def _run(p: Plan, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> None:
    """Launch plan ``p`` on TMA-ready ``a``, ``b``, ``c`` (and, for a plan with ``rows``, the rest)."""
    M, N = c.shape
    rows = M if p.rows is None else min(p.rows, M)  # a cut at or past the last row is no cut
    a1, c1 = (a, c) if rows == M else (a[:rows], c[:rows])
    cfg = p.config
    if p.kernel == "splitk":
        from . import splitk

        splitk.launch(a1, b, c1, cfg, p.split_k)
    else:
        from . import tma

        tma.launch(a1, b, c1, cfg, min(sm_count(), cdiv(rows, cfg.block_m) * cdiv(N, cfg.block_n)), False,
                   host_descriptors=True)
    if rows < M:  # the rows left: a small-M product of their own (views: same strides, aligned starts)
        _run(plan(M - rows, N, a.shape[1], a.dtype), a[rows:], b, c[rows:])
