"""Chapter 03: the persistent matmul, one long-lived program per SM that loops over output tiles.

The tiled kernel of chapter 02 launches one program per tile and lets the hardware hand programs to SMs
as SMs free up. A persistent kernel launches only as many programs as the GPU runs at once (one per SM
here) and each program walks the tile list itself: tile ids ``program_id, program_id + P, ...`` with
``P`` programs (``kernels.schedule.persistent_tiles``), each id mapped to a tile by the same grouped
order as chapter 02. The work per tile is chapter 02's, literally: ``kernels.tiled.matmul_tile``.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import ON_GPU
from .schedule import cdiv
from .operands import as_int, check_grid, check_inputs, plan_output
from .tiled import TileConfig, _args, _check_config, _flags, _grouped_tile, default_config, matmul_tile


@triton.jit
def persistent_matmul_kernel(
    a_ptr, b_ptr, c_ptr,
    M, N, K,
    stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
    num_programs,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
    GROUPED: tl.constexpr,  # accepted for the same call as the tiled kernel; always grouped here
    EVEN_K: tl.constexpr,
    UPCAST: tl.constexpr,
    INT64: tl.constexpr = False,  # an operand spans >= 2**31 elements: 64-bit offsets in matmul_tile
):
    grid_m = tl.cdiv(M, BLOCK_M)
    grid_n = tl.cdiv(N, BLOCK_N)
    num_tiles = grid_m * grid_n
    for tile_id in range(tl.program_id(0), num_tiles, num_programs):
        pid_m, pid_n = _grouped_tile(tile_id, grid_m, grid_n, GROUP_M)
        matmul_tile(a_ptr, b_ptr, c_ptr, pid_m, pid_n, M, N, K,
                    stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
                    BLOCK_M, BLOCK_N, BLOCK_K, EVEN_K, UPCAST, INT64)


INTERPRETER_SMS = 4  # a pretend GPU with 4 SMs, so the interpreter shows programs looping


def sm_count() -> int:
    """SMs of the current GPU (``INTERPRETER_SMS`` in the interpreter)."""
    if ON_GPU:
        return torch.cuda.get_device_properties(torch.cuda.current_device()).multi_processor_count
    return INTERPRETER_SMS


def resolve_programs(num_programs, num_tiles: int, name: str) -> int:
    """How many persistent programs to launch: ``num_programs`` if given (a positive int or NumPy
    integer, returned as an ``int``), else one per SM, or fewer when there are fewer tiles than SMs."""
    if num_programs is None:
        return min(sm_count(), num_tiles)
    n = as_int(num_programs)  # an int or a NumPy integer, not a bool
    if n is None or n < 1:
        raise ValueError(f"{name}: num_programs must be a positive int, got {num_programs!r}")
    check_grid(name, (n,))
    return n


def matmul_persistent(a: torch.Tensor, b: torch.Tensor, config: TileConfig | None = None,
                      num_programs: int | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ b`` with the persistent kernel: ``num_programs`` (default: one per SM, or fewer if there are
    fewer tiles) programs loop over the tiles in grouped order.

    Operands, result and errors as ``kernels.tiled.matmul_tiled`` (``config`` defaults to
    ``default_config(a.dtype, big=True)``); ``ValueError`` for a ``num_programs`` that is not a positive int.
    """
    name = "matmul_persistent"
    M, N, K = check_inputs(name, a, b)
    cfg = config or default_config(a.dtype, big=True)
    cfg = _check_config(cfg, a.dtype, name)
    num_tiles = cdiv(M, cfg.block_m) * cdiv(N, cfg.block_n)
    num_programs = resolve_programs(num_programs, num_tiles, name)
    call = plan_output(name, a, b, out)
    persistent_matmul_kernel[(num_programs,)](
        *_args(a, b, call.c, M, N, K), num_programs,
        BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, GROUP_M=cfg.group_m,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages, INT64=call.int64,
        **_flags(a, K, cfg.block_k, "grouped"),
    )
    return call.result()
