"""Split-K: several programs share one output tile's K loop, and a second kernel adds their parts.

A matmul with few output tiles (a small ``M`` such as a decode step, ``16 x 8192`` with ``K = 8192``)
cannot fill a GPU by tiles: 128 x 128 tiles give 64 programs for 132 SMs, each walking all of K. Split-K
cuts K into ``split_k`` ranges; program ``(tile, s)`` computes the float32 sum over its range, and the
``split_k`` partial tiles are added afterwards. Twice the programs, half the K loop each.

The parts meet in a float32 *workspace* ``(split_k, M_pad, N)`` (``M_pad``: M rounded up to the tile),
written by :func:`splitk_matmul_kernel` through a TMA descriptor, and :func:`splitk_reduce_kernel`
adds them **in a fixed order** (``s = 0, 1, ...``) and casts to C's dtype. The result is deterministic:
the same bits on every run, which ``tl.atomic_add`` into C would not give (float addition is not
associative and the programs finish in any order). The price is the workspace round trip:
``split_k x M x N x 4`` bytes written and read again, small next to the operands when M is small, which
is where split-K pays.

The reduction writes C with ordinary (masked) stores, so C may have any strides; the loads of A and B go
through TMA descriptors made on the host, which need rows contiguous and 16-byte-aligned row strides
(``kernels.dispatch.matmul`` copies operands that are not).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import ON_GPU
from .operands import check_grid, check_inputs, needs_int64, plan_output
from .persistent import sm_count
from .schedule import cdiv
from .tiled import TileConfig, _check_config, _grouped_tile


@triton.jit
def splitk_matmul_kernel(
    a_desc, b_desc, c_desc, w_ptr,
    M, N, K, dp_tiles, splits, steps_per_split,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    NUM_STAGES: tl.constexpr, UPCAST: tl.constexpr,
):
    """Programs ``0 .. dp_tiles - 1`` compute tiles ``0 .. dp_tiles - 1`` (grouped order) whole and store
    them in C through ``c_desc``. Program ``dp_tiles + q`` computes split ``s = q % splits`` (K steps
    ``s * steps_per_split`` up to the next split's first) of tile ``dp_tiles + q // splits`` and stores
    the float32 partial tile as block ``q`` of the workspace ``w_ptr`` (``BLOCK_M x BLOCK_N`` contiguous
    elements a block). Plain stores, not TMA: a second TMA store would need its own shared buffer, which
    128 x 256 tiles have no room for."""
    pid = tl.program_id(0)
    grid_m = tl.cdiv(M, BLOCK_M)
    grid_n = tl.cdiv(N, BLOCK_N)
    k_steps = tl.cdiv(K, BLOCK_K)
    q = pid - dp_tiles
    if pid < dp_tiles:  # a whole tile
        tile = pid
        k_first = 0
        k_last = k_steps
    else:  # one split of a shared tile
        tile = dp_tiles + q // splits
        k_first = (q % splits) * steps_per_split
        k_last = tl.minimum(k_first + steps_per_split, k_steps)
    pid_m, pid_n = _grouped_tile(tile, grid_m, grid_n, GROUP_M)
    row0 = pid_m * BLOCK_M
    col0 = pid_n * BLOCK_N
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for ks in tl.range(k_first, k_last, num_stages=NUM_STAGES):
        a = a_desc.load([row0, ks * BLOCK_K])  # zero-filled past the edges of A and B
        b = b_desc.load([ks * BLOCK_K, col0])
        if UPCAST:
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(a, b, acc)
    if pid < dp_tiles:
        c_desc.store([row0, col0], acc.to(c_desc.dtype))  # clipped at the edges of C
    else:
        block = tl.arange(0, BLOCK_M)[:, None] * BLOCK_N + tl.arange(0, BLOCK_N)[None, :]
        tl.store(w_ptr + q * (BLOCK_M * BLOCK_N) + block, acc)


@triton.jit
def splitk_reduce_kernel(
    w_ptr, c_ptr, M, N, dp_tiles, splits, stride_cm, stride_cn,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr, ROWS: tl.constexpr,
):
    """Program ``(t, r)``: rows ``r * ROWS ...`` of shared tile ``dp_tiles + t``. Its value is the sum
    of the tile's ``splits`` float32 partial tiles (workspace blocks ``t * splits + s``, each
    ``BLOCK_M x BLOCK_N``, contiguous), added in the order ``s = 0, 1, ...``, cast to C's dtype and
    stored with masks (C may have any strides)."""
    t = tl.program_id(0)
    pid_m, pid_n = _grouped_tile(dp_tiles + t, tl.cdiv(M, BLOCK_M), tl.cdiv(N, BLOCK_N), GROUP_M)
    r = tl.program_id(1) * ROWS + tl.arange(0, ROWS)
    cols = tl.arange(0, BLOCK_N)
    block = r[:, None] * BLOCK_N + cols[None, :]
    acc = tl.zeros((ROWS, BLOCK_N), dtype=tl.float32)
    for s in range(splits):  # a fixed order: the same bits on every run
        acc += tl.load(w_ptr + (t * splits + s) * (BLOCK_M * BLOCK_N) + block)
    rows = pid_m * BLOCK_M + r
    cols = pid_n * BLOCK_N + cols
    mask = (rows[:, None] < M) & (cols[None, :] < N)
    tl.store(c_ptr + rows[:, None] * stride_cm + cols[None, :] * stride_cn, acc.to(c_ptr.dtype.element_ty),
             mask=mask)


MAX_SPLIT_K = 64


def split_plan(K: int, block_k: int, split_k: int) -> tuple[int, int]:
    """``(steps_per_split, splits)``: the K steps each split walks and how many splits that makes, so
    that no split is empty (``splits <= split_k``; e.g. K = 4096 in steps of 64 with ``split_k = 3``:
    22 steps each, 3 splits; with ``split_k = 100``: 1 step each, 64 splits). Plain Python."""
    if split_k < 1:
        raise ValueError(f"split_k must be >= 1, got {split_k}")
    steps = cdiv(K, block_k)
    per = cdiv(steps, min(split_k, steps))
    return per, cdiv(steps, per)


def tail_plan(num_tiles: int, sms: int, split_k: int | None = None) -> tuple[int, int]:
    """``(dp_tiles, shared_tiles)`` for "whole waves, then split the last one": the tiles that fill whole
    waves of ``sms`` programs are computed whole; the rest (the last, partial wave) are split. With
    ``split_k`` given, every tile is split (``(0, num_tiles)``): plain split-K. Plain Python.

    Example: 144 tiles on 132 SMs: 132 whole tiles, 12 shared; split 11 ways, the 12 shared tiles
    make 132 programs of a ninth of the work, one more short wave instead of a whole one."""
    if split_k is not None or num_tiles <= sms:
        return 0, num_tiles
    return num_tiles - num_tiles % sms, num_tiles % sms


def workspace_bytes(shared_tiles: int, splits: int, block_m: int, block_n: int) -> int:
    """Bytes of the float32 workspace: one ``block_m x block_n`` partial tile per shared tile and split
    (0 without a split)."""
    return 0 if splits == 1 else shared_tiles * splits * block_m * block_n * 4


def _check_tma_operand(t: torch.Tensor, label: str, name: str) -> None:
    es = t.element_size()
    if t.stride(1) != 1 or (t.stride(0) * es) % 16 or t.data_ptr() % 16:
        raise ValueError(f"{name}: {label} (shape {tuple(t.shape)}, strides {t.stride()}) is not a layout TMA can "
                         f"read or write: rows must be contiguous, the row stride and the start a multiple of 16 "
                         f"bytes; kernels.matmul copies such operands into an aligned buffer first")


def matmul_splitk(a: torch.Tensor, b: torch.Tensor, config: TileConfig | None = None, split_k: int | None = 4,
                  out: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ b`` by split-K: several programs per output tile, then a fixed-order reduction.

    ``split_k``: every tile is computed by ``split_k`` programs (fewer when K has fewer steps, see
    :func:`split_plan`; 1: no split, no workspace). ``split_k=None``: the tiles that fill whole waves
    of one program per SM are computed whole and only the last, partial wave is split, as many ways
    as it takes to give every SM a program (:func:`tail_plan`; the remedy for a ragged last wave).

    ``a``: ``(M, K)``, ``b``: ``(K, N)``, float32/float16/bfloat16 on ``kernels.DEVICE``, rows contiguous
    and row strides and starts multiples of 16 bytes (TMA); returns C ``(M, N)`` in the inputs' dtype
    (``out`` if given, with the same layout rule), accumulated in float32 (float32 inputs go through the
    tensor cores as TF32, ``tl.dot``'s default). ``config`` defaults to :func:`default_config`.

    Raises ``TypeError``/``ValueError`` for operands outside ``kernels.operands``' contract,
    ``ValueError`` for a layout TMA cannot use, a bad config or ``split_k``.
    Method: the split-K decomposition of CUTLASS's ``GemmSplitKParallel`` (partial tiles to a workspace,
    then a reduction kernel), applied to the last wave only as in the "data-parallel + split" hybrids
    of Osama et al., "Stream-K" (2023).
    """
    name = "matmul_splitk"
    M, N, K = check_inputs(name, a, b)
    cfg = _check_config(config or default_config(a.dtype), a.dtype, name)
    if split_k is not None and (isinstance(split_k, bool) or not isinstance(split_k, int)
                                or not 1 <= split_k <= MAX_SPLIT_K):
        raise ValueError(f"{name}: split_k must be None or an int from 1 to {MAX_SPLIT_K}, got {split_k!r}")
    _check_tma_operand(a, "a", name)
    _check_tma_operand(b, "b", name)
    call = plan_output(name, a, b, out)
    _check_tma_operand(call.c, "out", name)
    launch(a, b, call.c, cfg, split_k)
    return call.result()


def default_config(dtype: torch.dtype) -> TileConfig:
    """Small tiles in the interpreter; on a GPU 64 x 128 x 64 (x 32 for float32, half the bytes a step)."""
    if not ON_GPU:
        return TileConfig(32, 32, 32, 4, 4, 1)
    return TileConfig(64, 128, 32, 8, 4, 4) if dtype == torch.float32 else TileConfig(64, 128, 64, 8, 4, 4)


def launch(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, cfg: TileConfig, split_k: int | None,
           sms: int | None = None) -> tuple[int, int, int]:
    """Launch on checked, TMA-ready operands; return ``(dp_tiles, shared_tiles, splits)``.
    ``sms``: the programs a wave holds (default: the GPU's SMs, ``INTERPRETER_SMS`` in the interpreter)."""
    from triton.tools.tensor_descriptor import TensorDescriptor

    M, K = a.shape
    N = b.shape[1]
    grid_m, grid_n = cdiv(M, cfg.block_m), cdiv(N, cfg.block_n)
    tiles = grid_m * grid_n
    dp, shared = tail_plan(tiles, sms or sm_count(), split_k)
    if split_k is None:  # enough splits of the shared tiles to give every SM one program
        split_k = max(1, min(MAX_SPLIT_K, (sms or sm_count()) // max(shared, 1)))
    per, splits = split_plan(K, cfg.block_k, split_k)
    if splits == 1:
        dp, shared = tiles, 0
    grid = (dp + shared * splits,)
    check_grid("matmul_splitk", grid)
    if shared and needs_int64(c):
        raise ValueError("matmul_splitk: out spans 2**31 elements or more, past the reduction's 32-bit offsets; "
                         "use split_k=1")
    a_desc = TensorDescriptor(a, [M, K], [a.stride(0), 1], [cfg.block_m, cfg.block_k])
    b_desc = TensorDescriptor(b, [K, N], [b.stride(0), 1], [cfg.block_k, cfg.block_n])
    c_desc = TensorDescriptor(c, [M, N], [c.stride(0), 1], [cfg.block_m, cfg.block_n])
    w = torch.empty((max(shared * splits, 1) * cfg.block_m, cfg.block_n), dtype=torch.float32, device=a.device)
    upcast = (not ON_GPU) and a.dtype == torch.bfloat16
    splitk_matmul_kernel[grid](
        a_desc, b_desc, c_desc, w, M, N, K, dp, splits, per,
        BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, GROUP_M=cfg.group_m,
        NUM_STAGES=cfg.num_stages, UPCAST=upcast, num_warps=cfg.num_warps)
    if shared:
        reduce(w, c, M, N, cfg, dp, shared, splits)
    return dp, shared, splits


def reduce(w: torch.Tensor, c: torch.Tensor, M: int, N: int, cfg: TileConfig, dp_tiles: int, shared_tiles: int,
           splits: int) -> None:
    """Add each shared tile's ``splits`` float32 partial tiles (workspace ``w``) into ``c``, in order."""
    rows = min(cfg.block_m, max(1, 8192 // cfg.block_n))  # about 8192 elements a program
    splitk_reduce_kernel[(shared_tiles, cfg.block_m // rows)](
        w, c, M, N, dp_tiles, splits, c.stride(0), c.stride(1),
        BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, GROUP_M=cfg.group_m, ROWS=rows, num_warps=4)
