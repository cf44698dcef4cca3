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

The loads of A and B and the stores of whole tiles go through TMA descriptors made on the host, which
need rows contiguous and 16-byte-aligned row strides and starts (``kernels.dispatch.matmul`` copies
operands that are not); the adding of partial tiles writes C with ordinary masked stores.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import ON_GPU
from .operands import as_int, check_grid, check_inputs, needs_int64, plan_output
from .persistent import sm_count
from ._jit import device_fn
from .schedule import MAX_SPLIT_K, cdiv, split_k_piece, split_k_plan, split_tail
from .tiled import SHARED_MEMORY_LIMIT, TileConfig, _check_config, _grouped_tile, pipeline_shared_memory

_split_k_piece = device_fn(split_k_piece)


@triton.jit
def splitk_matmul_kernel(
    a_desc, b_desc, c_desc, w_ptr, c_ptr, cnt_ptr,
    M, N, K, dp_tiles, splits, steps_per_split, stride_cm,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    NUM_STAGES: tl.constexpr, UPCAST: tl.constexpr, LAST_ADDS: tl.constexpr,
):
    """Programs ``0 .. dp_tiles - 1`` compute tiles ``0 .. dp_tiles - 1`` (grouped order) whole and store
    them in C through ``c_desc``. Program ``dp_tiles + q`` computes split ``s = q % splits`` (K steps
    ``s * steps_per_split`` up to the next split's first) of tile ``dp_tiles + q // splits`` and stores
    the float32 partial tile as block ``q`` of the workspace ``w_ptr`` (``BLOCK_M x BLOCK_N`` contiguous
    elements a block). Plain stores, not TMA: a second TMA store would need its own shared buffer, which
    128 x 256 tiles have no room for.

    ``LAST_ADDS``: the program that stores a tile's last partial (counted in ``cnt_ptr``, one int32 a
    shared tile, zero before the launch) adds the tile's partials in the order ``s = 0, 1, ...`` and
    stores C itself (``c_ptr``, rows ``stride_cm`` apart), so no second kernel is needed; without it,
    :func:`splitk_reduce_kernel` does the adding."""
    pid = tl.program_id(0)
    grid_m = tl.cdiv(M, BLOCK_M)
    grid_n = tl.cdiv(N, BLOCK_N)
    k_steps = tl.cdiv(K, BLOCK_K)
    q = pid - dp_tiles
    if pid < dp_tiles:  # a whole tile
        tile = pid
        k_first = 0
        k_last = k_steps
    else:  # one split of a shared tile (kernels.schedule.split_k_piece)
        t, k_first, k_last = _split_k_piece(q, splits, steps_per_split, k_steps)
        tile = dp_tiles + t
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
        if LAST_ADDS:
            t = q // splits
            tl.debug_barrier()  # every thread's part of the partial is stored before one thread counts it
            # acq_rel: this program's partial is visible before its count; the last sees every partial
            if tl.atomic_add(cnt_ptr + t, 1, sem="acq_rel") == splits - 1:
                total = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
                for s in range(splits):  # a fixed order, whoever arrived last
                    total += tl.load(w_ptr + (t * splits + s) * (BLOCK_M * BLOCK_N) + block, cache_modifier=".cg")
                rows = row0 + tl.arange(0, BLOCK_M)
                cols = col0 + tl.arange(0, BLOCK_N)
                tl.store(c_ptr + rows[:, None] * stride_cm + cols[None, :], total.to(c_ptr.dtype.element_ty),
                         mask=(rows[:, None] < M) & (cols[None, :] < N))


@triton.jit
def splitk_reduce_kernel(
    w_ptr, c_ptr, M, N, dp_tiles, stride_cm, stride_cn,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr, ROWS: tl.constexpr, SPLITS: tl.constexpr,
):
    """Program ``(t, r)``: rows ``r * ROWS ...`` of shared tile ``dp_tiles + t``. Its value is the sum
    of the tile's ``SPLITS`` float32 partial tiles (workspace blocks ``t * SPLITS + s``, each
    ``BLOCK_M x BLOCK_N``, contiguous), added in the order ``s = 0, 1, ...``, cast to C's dtype and
    stored with masks (C may have any strides).

    ``SPLITS`` is a compile-time constant so that the loop is unrolled and the ``SPLITS`` loads, which
    do not depend on each other, can all be in flight before the first add needs its value. (At
    1152 x 4096 x 4096, 12 tiles x 11 splits, Nsight Compute timed this kernel at 7.0 us unrolled and
    8.0 us as a loop over a run-time count, each with L2 flushed before it;
    results/logs/h200_2026-12-02_splitk_reduce.json.)"""
    t = tl.program_id(0)
    pid_m, pid_n = _grouped_tile(dp_tiles + t, tl.cdiv(M, BLOCK_M), tl.cdiv(N, BLOCK_N), GROUP_M)
    r = tl.program_id(1) * ROWS + tl.arange(0, ROWS)
    cols = tl.arange(0, BLOCK_N)
    block = r[:, None] * BLOCK_N + cols[None, :]
    acc = tl.zeros((ROWS, BLOCK_N), dtype=tl.float32)
    for s in tl.static_range(SPLITS):  # a fixed order: the same bits on every run
        acc += tl.load(w_ptr + (t * SPLITS + s) * (BLOCK_M * BLOCK_N) + block)
    rows = pid_m * BLOCK_M + r
    cols = pid_n * BLOCK_N + cols
    mask = (rows[:, None] < M) & (cols[None, :] < N)
    tl.store(c_ptr + rows[:, None] * stride_cm + cols[None, :] * stride_cn, acc.to(c_ptr.dtype.element_ty),
             mask=mask)




def split_plan(K: int, block_k: int, split_k: int) -> tuple[int, int]:
    """``(steps_per_split, splits)`` for K in steps of ``block_k``: :func:`kernels.schedule.split_k_plan`."""
    return split_k_plan(cdiv(K, block_k), split_k)


def tail_plan(num_tiles: int, sms: int, split_k: int | None = None) -> tuple[int, int]:
    """``(dp_tiles, shared_tiles)``: :func:`kernels.schedule.split_tail` (whole waves whole, the last
    wave split; every tile split when ``split_k`` is given)."""
    return split_tail(num_tiles, sms, split_k)


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
    if split_k is not None:
        given, split_k = split_k, as_int(split_k)
        if split_k is None or not 1 <= split_k <= MAX_SPLIT_K:
            raise ValueError(f"{name}: split_k must be None or an int from 1 to {MAX_SPLIT_K}, got {given!r}")
    staged = pipeline_shared_memory(cfg, a.dtype) + cfg.block_m * cfg.block_n * a.element_size()
    if staged > SHARED_MEMORY_LIMIT:
        raise ValueError(f"{name}: config {cfg.short()} needs {staged // 1024} KiB of shared memory for {a.dtype} "
                         f"(its pipeline stages and the C tile staged for the TMA store), more than the "
                         f"{SHARED_MEMORY_LIMIT // 1024} KiB of a Hopper SM; use fewer stages or smaller tiles")
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


LAST_ADDS_MAX_SPLITS = 4  # up to this many partials, the last program adds them; beyond, a second kernel
_placeholders: dict = {}


def _placeholder(device, dtype) -> torch.Tensor:
    """A one-element tensor to pass where the kernel takes a workspace or counters it will not touch
    (made once per device and dtype: no allocation, no memset on the way to the launch)."""
    key = (str(device), dtype)
    if key not in _placeholders:
        _placeholders[key] = torch.zeros(1, dtype=dtype, device=device)
    return _placeholders[key]



def launch(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, cfg: TileConfig, split_k: int | None,
           sms: int | None = None, last_adds: bool | None = None) -> tuple[int, int, int]:
    """Launch on checked, TMA-ready operands; return ``(dp_tiles, shared_tiles, splits)``.
    ``sms``: the programs a wave holds (default: the GPU's SMs, ``INTERPRETER_SMS`` in the interpreter).
    ``last_adds``: whether the last program to finish a shared tile adds its partials (one launch), or
    :func:`splitk_reduce_kernel` does (a second launch, but every SM adding); default: the first up to
    ``LAST_ADDS_MAX_SPLITS`` splits, where one program reads few partials."""
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
    if shared * splits * cfg.block_m * cfg.block_n >= 2**31:
        raise ValueError(f"matmul_splitk: {shared} tiles split {splits} ways need a workspace of 2**31 elements or "
                         f"more, past the kernel's 32-bit offsets; use fewer splits (split-K pays where there are "
                         f"few tiles)")
    a_desc = TensorDescriptor(a, [M, K], [a.stride(0), 1], [cfg.block_m, cfg.block_k])
    b_desc = TensorDescriptor(b, [K, N], [b.stride(0), 1], [cfg.block_k, cfg.block_n])
    c_desc = TensorDescriptor(c, [M, N], [c.stride(0), 1], [cfg.block_m, cfg.block_n])
    upcast = (not ON_GPU) and a.dtype == torch.bfloat16
    if last_adds is None:
        last_adds = splits <= LAST_ADDS_MAX_SPLITS
    last_adds = bool(last_adds and shared)
    if shared:
        w = torch.empty((shared * splits * cfg.block_m, cfg.block_n), dtype=torch.float32, device=a.device)
    else:  # no partial tiles: nothing is read or written there
        w = _placeholder(a.device, torch.float32)
    cnt = torch.zeros(shared, dtype=torch.int32, device=a.device) if last_adds else _placeholder(a.device, torch.int32)
    splitk_matmul_kernel[grid](
        a_desc, b_desc, c_desc, w, c, cnt, M, N, K, dp, splits, per, c.stride(0),
        BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, GROUP_M=cfg.group_m,
        NUM_STAGES=cfg.num_stages, UPCAST=upcast, LAST_ADDS=last_adds, num_warps=cfg.num_warps)
    if shared and not last_adds:
        reduce(w, c, M, N, cfg, dp, shared, splits, sms or sm_count())
    return dp, shared, splits


def reduce(w: torch.Tensor, c: torch.Tensor, M: int, N: int, cfg: TileConfig, dp_tiles: int, shared_tiles: int,
           splits: int, sms: int = 132) -> None:
    """Add each shared tile's ``splits`` float32 partial tiles (workspace ``w``) into ``c``, in order,
    with enough programs (rows of a tile each) to give every SM two, and few enough rows a program
    that the ``splits`` loads it has in flight stay within 128 float32 registers a thread (4 warps)."""
    rows = cfg.block_m
    while rows > 1 and (shared_tiles * (cfg.block_m // rows) < 2 * sms or rows * cfg.block_n * splits > 128 * 128):
        rows //= 2
    splitk_reduce_kernel[(shared_tiles, cfg.block_m // rows)](
        w, c, M, N, dp_tiles, c.stride(0), c.stride(1),
        BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, GROUP_M=cfg.group_m, ROWS=rows, SPLITS=splits, num_warps=4)
