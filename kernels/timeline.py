"""Chapter 03, measured from inside: which SM ran which tile, and when (GPU only).

Chapter 03's timelines come from a model (``kernels.schedule.simulate_launch``): every tile takes the
same time, programs start the moment an SM frees up. Here the tiled and the persistent kernels are run
again with two readings around each tile's work, taken by the GPU itself: ``%globaltimer`` (the GPU's
nanosecond clock, the same on every SM) and ``%smid`` (which SM the program runs on), read with one
line of inline PTX each. Each tile's ``(sm, start, end, program)`` goes to a small int64 buffer; the
work per tile is chapter 02's ``matmul_tile``, unchanged.

Reading the clock costs a few instructions per tile, next to a tile's tens of microseconds of work.
The interpreter has no clock and no SMs: :func:`record` raises there, and the chapter shows the
timelines recorded on the H200.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import ON_GPU
from ._jit import device_fn
from .operands import check_inputs
from .schedule import cdiv, grouped_tile
from .tiled import TileConfig, _args, _check_config, _flags, matmul_tile

_grouped_tile = device_fn(grouped_tile)
FIELDS = ("sm", "start_ns", "end_ns", "program")


@triton.jit
def _globaltimer():
    """The GPU's global nanosecond clock (PTX ``%globaltimer``), the same on every SM."""
    return tl.inline_asm_elementwise("mov.u64 $0, %globaltimer;", "=l", [], dtype=tl.int64, is_pure=False, pack=1)


@triton.jit
def _smid():
    """The SM this program runs on (PTX ``%smid``)."""
    return tl.inline_asm_elementwise("mov.u32 $0, %smid;", "=r", [], dtype=tl.int32, is_pure=False, pack=1)


@triton.jit
def _trace(trace_ptr, tile_id, t0, t1, program):
    row = trace_ptr + tile_id.to(tl.int64) * 4
    tl.store(row + 0, _smid().to(tl.int64))
    tl.store(row + 1, t0)
    tl.store(row + 2, t1)
    tl.store(row + 3, program.to(tl.int64))


@triton.jit
def traced_tiled_kernel(a_ptr, b_ptr, c_ptr, M, N, K, stride_am, stride_ak, stride_bk, stride_bn, stride_cm,
                        stride_cn, trace_ptr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                        GROUP_M: tl.constexpr, GROUPED: tl.constexpr, EVEN_K: tl.constexpr, UPCAST: tl.constexpr):
    """Chapter 02's kernel (grouped order), one program per tile, its tile's work timed."""
    pid = tl.program_id(0)
    t0 = _globaltimer()
    pid_m, pid_n = _grouped_tile(pid, tl.cdiv(M, BLOCK_M), tl.cdiv(N, BLOCK_N), GROUP_M)
    matmul_tile(a_ptr, b_ptr, c_ptr, pid_m, pid_n, M, N, K, stride_am, stride_ak, stride_bk, stride_bn,
                stride_cm, stride_cn, BLOCK_M, BLOCK_N, BLOCK_K, EVEN_K, UPCAST)
    _trace(trace_ptr, pid, t0, _globaltimer(), pid)


@triton.jit
def traced_persistent_kernel(a_ptr, b_ptr, c_ptr, M, N, K, stride_am, stride_ak, stride_bk, stride_bn, stride_cm,
                             stride_cn, trace_ptr, num_programs, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                             BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr, GROUPED: tl.constexpr,
                             EVEN_K: tl.constexpr, UPCAST: tl.constexpr):
    """Chapter 03's kernel, each tile of its loop timed."""
    grid_m = tl.cdiv(M, BLOCK_M)
    grid_n = tl.cdiv(N, BLOCK_N)
    for tile_id in range(tl.program_id(0), grid_m * grid_n, num_programs):
        t0 = _globaltimer()
        pid_m, pid_n = _grouped_tile(tile_id, grid_m, grid_n, GROUP_M)
        matmul_tile(a_ptr, b_ptr, c_ptr, pid_m, pid_n, M, N, K, stride_am, stride_ak, stride_bk, stride_bn,
                    stride_cm, stride_cn, BLOCK_M, BLOCK_N, BLOCK_K, EVEN_K, UPCAST)
        _trace(trace_ptr, tile_id, t0, _globaltimer(), tl.program_id(0))


def record(a: torch.Tensor, b: torch.Tensor, config: TileConfig, persistent: bool, warmup: int = 3) -> list[dict]:
    """Run the traced tiled (``persistent=False``) or persistent kernel on ``a @ b`` ``warmup + 1`` times
    and return the last run's tiles: ``{"tile", "sm", "start_us", "end_us", "program"}`` each, times in
    µs from the run's first tile start. GPU only (RuntimeError in the interpreter); operands as
    ``kernels.tiled.matmul_tiled`` (bf16/fp16/fp32, on the GPU)."""
    name = "timeline.record"
    if not ON_GPU:
        raise RuntimeError(f"{name}: the interpreter has no clock or SMs; the recorded timelines are in "
                           "results/<gpu>/ch03_timeline.json")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"{name}: warmup must be an int >= 0 (launches before the one recorded), got {warmup!r}")
    M, N, K = check_inputs(name, a, b)
    cfg = _check_config(config, a.dtype, name)
    tiles = cdiv(M, cfg.block_m) * cdiv(N, cfg.block_n)
    c = torch.empty(M, N, device=a.device, dtype=a.dtype)
    trace = torch.full((tiles, 4), -1, dtype=torch.int64, device=a.device)
    meta = dict(BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, GROUP_M=cfg.group_m,
                num_warps=cfg.num_warps, num_stages=cfg.num_stages, **_flags(a, K, cfg.block_k, "grouped"))
    sms = torch.cuda.get_device_properties(a.device).multi_processor_count
    for _ in range(warmup + 1):
        if persistent:
            traced_persistent_kernel[(min(sms, tiles),)](*_args(a, b, c, M, N, K), trace, min(sms, tiles), **meta)
        else:
            traced_tiled_kernel[(tiles,)](*_args(a, b, c, M, N, K), trace, **meta)
    torch.cuda.synchronize()
    t = trace.cpu()
    if (t < 0).any():
        raise RuntimeError(f"{name}: {int((t[:, 1] < 0).sum())} tiles left no timestamps")
    t0 = int(t[:, 1].min())
    return [dict(tile=i, sm=int(r[0]), start_us=(int(r[1]) - t0) / 1e3, end_us=(int(r[2]) - t0) / 1e3,
                 program=int(r[3])) for i, r in enumerate(t)]
