"""Stream-K: a persistent matmul that shares the last tiles out by K step, so no SM idles in a tail.

Chapter 03's persistent kernel deals whole tiles to its programs. When the tiles do not fill whole
waves (``1152 x 4096`` output tiles of ``128 x 256`` on 132 SMs: 144 tiles, a second wave of 12), the
last wave keeps a few SMs busy while the rest wait. Stream-K (Osama et al., "Stream-K: Work-centric
Parallel Decomposition for Dense Matrix Multiplication on the GPU", 2023) counts work in K steps
instead of tiles: the shared tiles' ``(tile, K step)`` iterations, tile after tile, are cut into one
contiguous run per program, so every program does the same number of multiply-accumulate steps.

* The tiles that fill whole waves are computed data-parallel, one program per tile as in chapter 03;
  ``kernels.schedule.stream_k_split`` chooses how many tiles are shared (the last partial wave and one
  full wave before it).
* A program's run can begin or end inside a tile: it then holds a *partial sum* of that tile, which it
  writes to its slot of a float32 workspace (two slots a program: its first and its last piece) and
  counts in the tile's arrival counter. The program that arrives last adds every piece of the tile in
  program order (``kernels.schedule.stream_k_contributors``), whoever finished first, and stores the
  tile: the result is deterministic, the same bits on every run, at the cost of a workspace round trip
  for the shared tiles' pieces. The counter is reset for the next launch (safe in a CUDA graph).

The schedule functions are plain Python (``kernels.schedule``), compiled into the kernel here and
used as they are by the tests and pictures.

Measured on the H200 (``benchmarks/explore_streamk.py``, results/logs/h200_2026-12-02_streamk_first.json),
this first version, on chapter 02's pointer loads, does not pay yet: at 1152 x 4096 x 4096 it reaches
0.63x cuBLAS against the persistent kernel's 0.66x (128 x 256 tiles), and it is slower wherever the
tiles are split into short pieces (every shared tile's partial sums go through the workspace).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from ._jit import device_fn
from .operands import as_int, check_grid, check_inputs, plan_output
from .persistent import resolve_programs, sm_count
from .schedule import cdiv, grouped_tile, stream_k_first_program, stream_k_programs, stream_k_split
from .tiled import TileConfig, _args, _check_config, _flags, default_config, matmul_tile

_grouped_tile = device_fn(grouped_tile)
_first_program = device_fn(stream_k_first_program)


@triton.jit
def partial_tile(a_ptr, b_ptr, pid_m, pid_n, k_begin, k_end, M, N, K,
                 stride_am, stride_ak, stride_bk, stride_bn,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                 EVEN_K: tl.constexpr, UPCAST: tl.constexpr):
    """The float32 sum over K steps ``k_begin .. k_end - 1`` of tile ``(pid_m, pid_n)``: chapter 02's
    loop (``kernels.tiled.matmul_tile``) over part of K, returned instead of stored."""
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    ks = k_begin * BLOCK_K + tl.arange(0, BLOCK_K)
    rows_in = tl.max_contiguous(tl.multiple_of(rows % M, BLOCK_M), BLOCK_M)
    cols_in = tl.max_contiguous(tl.multiple_of(cols % N, BLOCK_N), BLOCK_N)
    a_tile = a_ptr + rows_in[:, None] * stride_am + ks[None, :] * stride_ak
    b_tile = b_ptr + ks[:, None] * stride_bk + cols_in[None, :] * stride_bn
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kk in range(k_begin, k_end):
        if EVEN_K:
            a = tl.load(a_tile)
            b = tl.load(b_tile)
        else:
            rest = K - kk * BLOCK_K
            a = tl.load(a_tile, mask=tl.arange(0, BLOCK_K)[None, :] < rest, other=0.0)
            b = tl.load(b_tile, mask=tl.arange(0, BLOCK_K)[:, None] < rest, other=0.0)
        if UPCAST:
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(a, b, acc)
        a_tile += BLOCK_K * stride_ak
        b_tile += BLOCK_K * stride_bk
    return acc


@triton.jit
def streamk_matmul_kernel(
    a_ptr, b_ptr, c_ptr,
    M, N, K,
    stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
    ws_ptr, cnt_ptr, num_programs, sk_tiles,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr, GROUPED: tl.constexpr, EVEN_K: tl.constexpr, UPCAST: tl.constexpr,
):
    pid = tl.program_id(0)
    grid_m = tl.cdiv(M, BLOCK_M)
    grid_n = tl.cdiv(N, BLOCK_N)
    num_tiles = grid_m * grid_n
    k_iters = tl.cdiv(K, BLOCK_K)
    dp_tiles = num_tiles - sk_tiles
    # 1. whole waves, one tile per program at a time (chapter 03)
    for tile_id in range(pid, dp_tiles, num_programs):
        pid_m, pid_n = _grouped_tile(tile_id, grid_m, grid_n, GROUP_M)
        matmul_tile(a_ptr, b_ptr, c_ptr, pid_m, pid_n, M, N, K,
                    stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
                    BLOCK_M, BLOCK_N, BLOCK_K, EVEN_K, UPCAST)
    # 2. the shared tiles, by K step
    total = sk_tiles * k_iters
    sk_programs = tl.minimum(num_programs, total)  # kernels.schedule.stream_k_programs
    if pid < sk_programs:
        start = pid * total // sk_programs
        end = (pid + 1) * total // sk_programs
        offs_m = tl.arange(0, BLOCK_M)
        offs_n = tl.arange(0, BLOCK_N)
        tile_elems = BLOCK_M * BLOCK_N
        ws_off = offs_m[:, None] * BLOCK_N + offs_n[None, :]
        it = start
        while it < end:
            t = it // k_iters
            k_begin = it - t * k_iters
            k_end = tl.minimum(end - t * k_iters, k_iters)
            pid_m, pid_n = _grouped_tile(dp_tiles + t, grid_m, grid_n, GROUP_M)
            acc = partial_tile(a_ptr, b_ptr, pid_m, pid_n, k_begin, k_end, M, N, K,
                               stride_am, stride_ak, stride_bk, stride_bn, BLOCK_M, BLOCK_N, BLOCK_K, EVEN_K, UPCAST)
            rows = pid_m * BLOCK_M + offs_m
            cols = pid_n * BLOCK_N + offs_n
            c_tile = c_ptr + rows[:, None] * stride_cm + cols[None, :] * stride_cn
            c_mask = (rows[:, None] < M) & (cols[None, :] < N)
            if (k_begin == 0) & (k_end == k_iters):  # a whole tile: no one else has a piece of it
                tl.store(c_tile, acc.to(c_ptr.dtype.element_ty), mask=c_mask)
            else:
                slot = tl.where(it == start, 0, 1)
                tl.store(ws_ptr + (pid * 2 + slot) * tile_elems + ws_off, acc)
                first = _first_program(t * k_iters, sk_programs, total)
                last = _first_program((t + 1) * k_iters - 1, sk_programs, total)
                tl.debug_barrier()  # every thread's part of the piece is stored before one thread counts it
                if tl.atomic_add(cnt_ptr + t, 1, sem="acq_rel") == last - first:
                    # every piece is in the workspace: add them in program order (deterministic)
                    total_acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
                    for q in range(first, last + 1):
                        q_slot = tl.where(q * total // sk_programs >= t * k_iters, 0, 1)
                        total_acc += tl.load(ws_ptr + (q * 2 + q_slot) * tile_elems + ws_off, cache_modifier=".cg")
                    tl.store(c_tile, total_acc.to(c_ptr.dtype.element_ty), mask=c_mask)
                    tl.atomic_xchg(cnt_ptr + t, 0)  # ready for the next launch
            it = t * k_iters + k_end


@dataclass(frozen=True)
class StreamKPlan:
    """What one stream-K launch does: ``num_programs`` persistent programs, ``sk_tiles`` of the
    ``num_tiles`` tiles shared by K step (the last ones), ``k_iters`` K steps a tile."""

    num_programs: int
    num_tiles: int
    sk_tiles: int
    k_iters: int

    @property
    def dp_tiles(self) -> int:
        return self.num_tiles - self.sk_tiles

    @property
    def sk_programs(self) -> int:
        return stream_k_programs(self.num_programs, self.sk_tiles * self.k_iters)


def plan(M: int, N: int, K: int, cfg: TileConfig, num_programs: int | None = None, sk_tiles: int | None = None,
         name: str = "matmul_streamk") -> StreamKPlan:
    """The launch for an ``(M, N, K)`` product with tiles ``cfg``: programs one per SM unless given,
    shared tiles from ``kernels.schedule.stream_k_split`` unless given (``sk_tiles`` 0 is chapter 03's
    persistent kernel, ``num_tiles`` is pure stream-K). Raises ValueError for an ``sk_tiles`` outside
    ``0 .. num_tiles`` or a ``num_programs`` that is not a positive int."""
    num_tiles = cdiv(M, cfg.block_m) * cdiv(N, cfg.block_n)
    # one program per SM even when there are fewer tiles: stream-K then splits their K loops
    programs = sm_count() if num_programs is None else resolve_programs(num_programs, num_tiles, name)
    if sk_tiles is None:
        sk_tiles = stream_k_split(num_tiles, programs)
    else:
        n = as_int(sk_tiles)  # an int or a NumPy integer, not a bool
        if n is None or not 0 <= n <= num_tiles:
            raise ValueError(f"{name}: sk_tiles must be an int from 0 to {num_tiles} (the tiles), got {sk_tiles!r}")
        sk_tiles = n
    return StreamKPlan(programs, num_tiles, sk_tiles, cdiv(K, cfg.block_k))


def workspace(p: StreamKPlan, cfg: TileConfig, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The float32 partial-sum slots (two tiles a stream-K program) and the shared tiles' arrival
    counters (int32 zeros; the kernel leaves them at zero)."""
    slots = max(1, 2 * p.sk_programs) * cfg.block_m * cfg.block_n
    return (torch.empty(slots, dtype=torch.float32, device=device),
            torch.zeros(max(1, p.sk_tiles), dtype=torch.int32, device=device))


def matmul_streamk(a: torch.Tensor, b: torch.Tensor, config: TileConfig | None = None,
                   num_programs: int | None = None, sk_tiles: int | None = None,
                   out: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ b`` with the stream-K persistent kernel (module docstring).

    Operands, result and errors as ``kernels.tiled.matmul_tiled`` (``config`` defaults to
    ``default_config(a.dtype, big=True)``); ``num_programs`` as ``kernels.persistent.matmul_persistent``;
    ``sk_tiles``: how many of the last tiles are shared by K step (default
    ``kernels.schedule.stream_k_split``). Deterministic: the same inputs give the same bits on every
    run. Allocates a float32 workspace of two tiles per program and one counter per shared tile."""
    name = "matmul_streamk"
    M, N, K = check_inputs(name, a, b)
    cfg = _check_config(config or default_config(a.dtype, big=True), a.dtype, name)
    p = plan(M, N, K, cfg, num_programs, sk_tiles, name)
    check_grid(name, (p.num_programs,))
    call = plan_output(name, a, b, out)
    if call.int64:
        raise ValueError(f"{name}: operands of 2**31 elements or more are not supported here; use "
                         "kernels.persistent.matmul_persistent")
    ws, cnt = workspace(p, cfg, a.device)
    streamk_matmul_kernel[(p.num_programs,)](
        *_args(a, b, call.c, M, N, K), ws, cnt, p.num_programs, p.sk_tiles,
        BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, GROUP_M=cfg.group_m,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages, **_flags(a, K, cfg.block_k, "grouped"))
    return call.result()
