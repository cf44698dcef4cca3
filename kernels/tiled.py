"""Chapter 02: the tiled matmul, with row-major or grouped (L2-friendly) tile order.

Each program computes one ``BLOCK_M x BLOCK_N`` tile of ``C``. It walks ``K`` in steps of ``BLOCK_K``:
at each step it loads a ``BLOCK_M x BLOCK_K`` tile of ``A`` and a ``BLOCK_K x BLOCK_N`` tile of ``B``
and feeds them to ``tl.dot`` (the tensor cores on a GPU), accumulating in float32 registers. Every
element it loads is used ``BLOCK_N`` (for A) or ``BLOCK_M`` (for B) times, which is the whole point.

Which tile a program computes comes from ``kernels.schedule``: the same Python source is compiled into
the kernel here and drawn by the animations and widgets.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import triton
import triton.language as tl

from . import DEVICE, ON_GPU
from ._jit import device_fn
from .operands import MAX_BLOCK, as_int, check_blocks, check_grid, check_inputs, plan_output
from .schedule import ORDERS, cdiv, grouped_tile, row_major_tile

_grouped_tile = device_fn(grouped_tile)
_row_major_tile = device_fn(row_major_tile)


@triton.jit
def matmul_tile(
    a_ptr, b_ptr, c_ptr, pid_m, pid_n,
    M, N, K,
    stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    EVEN_K: tl.constexpr,     # K % BLOCK_K == 0: no mask needed along K
    UPCAST: tl.constexpr,     # load bf16, compute the dot in fp32 (the interpreter's bf16 dot is wrong)
    INT64: tl.constexpr = False,  # an operand spans >= 2**31 elements: 64-bit offsets (the wrapper decides)
):
    """Compute and store tile ``(pid_m, pid_n)`` of C: the work of one program of the tiled kernel
    (and of one loop iteration of the persistent kernel in chapter 03)."""
    if INT64:  # every offset below is an index times a stride: 64-bit strides make them all 64-bit
        stride_am, stride_ak = tl.cast(stride_am, tl.int64), tl.cast(stride_ak, tl.int64)
        stride_bk, stride_bn = tl.cast(stride_bk, tl.int64), tl.cast(stride_bn, tl.int64)
        stride_cm, stride_cn = tl.cast(stride_cm, tl.int64), tl.cast(stride_cn, tl.int64)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    ks = tl.arange(0, BLOCK_K)
    # Rows/columns past the edge of a ragged last tile wrap around to valid ones: the loads need no
    # mask along M and N (their results are never stored), which keeps the inner loop lean.
    rows_in = tl.max_contiguous(tl.multiple_of(rows % M, BLOCK_M), BLOCK_M)
    cols_in = tl.max_contiguous(tl.multiple_of(cols % N, BLOCK_N), BLOCK_N)
    a_tile = a_ptr + rows_in[:, None] * stride_am + ks[None, :] * stride_ak
    b_tile = b_ptr + ks[:, None] * stride_bk + cols_in[None, :] * stride_bn

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        if EVEN_K:
            a = tl.load(a_tile)
            b = tl.load(b_tile)
        else:
            a = tl.load(a_tile, mask=ks[None, :] < K - k0, other=0.0)
            b = tl.load(b_tile, mask=ks[:, None] < K - k0, other=0.0)
        if UPCAST:
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(a, b, acc)
        a_tile += BLOCK_K * stride_ak
        b_tile += BLOCK_K * stride_bk

    c = acc.to(c_ptr.dtype.element_ty)
    c_tile = c_ptr + rows[:, None] * stride_cm + cols[None, :] * stride_cn
    tl.store(c_tile, c, mask=(rows[:, None] < M) & (cols[None, :] < N))


@triton.jit
def tiled_matmul_kernel(
    a_ptr, b_ptr, c_ptr,
    M, N, K,
    stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
    GROUPED: tl.constexpr,    # True: grouped order; False: row-major
    EVEN_K: tl.constexpr,
    UPCAST: tl.constexpr,
    INT64: tl.constexpr = False,
):
    """One program per tile of C; which tile comes from the schedule."""
    pid = tl.program_id(0)
    grid_m = tl.cdiv(M, BLOCK_M)
    grid_n = tl.cdiv(N, BLOCK_N)
    if GROUPED:
        pid_m, pid_n = _grouped_tile(pid, grid_m, grid_n, GROUP_M)
    else:
        pid_m, pid_n = _row_major_tile(pid, grid_m, grid_n)
    matmul_tile(a_ptr, b_ptr, c_ptr, pid_m, pid_n, M, N, K,
                stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
                BLOCK_M, BLOCK_N, BLOCK_K, EVEN_K, UPCAST, INT64)


@dataclass(frozen=True)
class TileConfig:
    """One choice of tile shape and launch parameters for the tiled kernel."""

    block_m: int = 128
    block_n: int = 128
    block_k: int = 64
    group_m: int = 8
    num_warps: int = 4
    num_stages: int = 3

    def as_dict(self):
        return asdict(self)

    def short(self) -> str:
        return (f"{self.block_m}x{self.block_n}x{self.block_k} w{self.num_warps} s{self.num_stages}"
                + (f" g{self.group_m}" if self.group_m != 8 else ""))


# The configurations the autotuner chooses from on a GPU (chosen by the sweep in chapter 02 on an
# H100; `benchmarks/ch02_tiled.py` records every one of them).
GPU_CONFIGS = [
    TileConfig(128, 256, 64, 8, 8, 3),
    TileConfig(256, 128, 64, 8, 8, 3),
    TileConfig(128, 128, 64, 8, 8, 4),
    TileConfig(128, 128, 64, 8, 4, 4),
    TileConfig(128, 128, 32, 8, 4, 4),
    TileConfig(128, 64, 64, 8, 4, 4),
    TileConfig(64, 128, 64, 8, 4, 4),
    TileConfig(64, 256, 64, 8, 4, 4),
    TileConfig(64, 64, 64, 8, 4, 4),
    TileConfig(64, 64, 128, 8, 4, 3),
]
# In the interpreter a program costs Python time, so bigger tiles (fewer programs) run faster.
INTERPRETER_CONFIG = TileConfig(32, 32, 32, 4, 4, 1)


def default_config(dtype: torch.dtype, big: bool = False) -> TileConfig:
    """A configuration that fits this world and dtype.

    Shared memory is what limits fp32: 3 stages of 128x256x64 fp32 tiles take 288 KiB, plus 128 KiB
    to rearrange the fp32 result tile before the store: 416 KiB, where an H100 program may use 227
    (measured: Triton's OutOfResources said 425984 > 232448). fp32 therefore gets 128x128x32 tiles.
    """
    if not ON_GPU:
        return INTERPRETER_CONFIG
    if dtype == torch.float32:
        return TileConfig(128, 128, 32, 8, 4, 3)
    return TileConfig(128, 256, 64, 8, 8, 3) if big else TileConfig(128, 128, 64, 8, 4, 3)


SHARED_MEMORY_LIMIT = 227 * 1024  # bytes of shared memory one program (block) may use on Hopper
MAX_WARPS = 32  # 1024 threads per block


def pipeline_shared_memory(cfg: TileConfig, dtype: torch.dtype) -> int:
    """Bytes of shared memory the pipelined K loop needs: ``num_stages`` buffers of an A tile
    (``block_m x block_k``) and a B tile (``block_k x block_n``). A lower bound on what Triton
    allocates (the epilogue may need more: see :func:`default_config`), exact for the measured case
    there: 3 stages of 128x256x64 fp32 take 288 KiB."""
    es = dtype.itemsize
    return cfg.num_stages * (cfg.block_m * cfg.block_k + cfg.block_k * cfg.block_n) * es


def _check_config(cfg: TileConfig, dtype: torch.dtype, name: str = "matmul_tiled") -> TileConfig:
    """Refuse a configuration Triton would reject (or fail on) at launch, in both worlds, so that code
    that runs in the interpreter also runs on a GPU: block sizes as :func:`kernels.operands.check_blocks`
    with ``tl.dot``'s minimum of 16, and no tile (``block_m x block_n`` and the A and B tiles) above
    Triton's largest tensor; ``group_m`` and ``num_stages`` integers >= 1; ``num_warps`` a power
    of two from 1 to 32 (Triton's rule); tiles whose pipelined buffers fit Hopper's 227 KiB of shared
    memory per program (:func:`pipeline_shared_memory` for ``dtype``). NumPy integers are accepted.
    Raises ``TypeError`` for a ``cfg`` that is not a ``TileConfig``, ``ValueError`` naming the field
    otherwise; returns the configuration with Python ``int`` fields, for the launch."""
    fields = ("block_m", "block_n", "block_k", "group_m", "num_warps", "num_stages")
    if not all(hasattr(cfg, f) for f in fields):
        raise TypeError(f"{name}: config must be a kernels.tiled.TileConfig, got {type(cfg).__name__}")
    blocks = check_blocks(name, {f: getattr(cfg, f) for f in fields[:3]}, min_block=16)
    values = dict(blocks)
    for f in fields[3:]:
        given = getattr(cfg, f)
        v = as_int(given)
        if v is None or v < 1:
            raise ValueError(f"{name}: {f} must be an int >= 1, got {given!r}")
        values[f] = v
    w = values["num_warps"]
    if w & (w - 1) or w > MAX_WARPS:
        raise ValueError(f"{name}: num_warps={w} must be a power of two from 1 to {MAX_WARPS} (Triton refuses "
                         f"others on a GPU, even where the interpreter runs them)")
    cfg = TileConfig(**values)
    for (x, y) in (("block_m", "block_n"), ("block_m", "block_k"), ("block_k", "block_n")):
        if values[x] * values[y] > MAX_BLOCK:
            raise ValueError(f"{name}: a {x} x {y} tile of {values[x]} x {values[y]} has "
                             f"{values[x] * values[y]} elements, above {MAX_BLOCK}, Triton's largest tensor")
    need = pipeline_shared_memory(cfg, dtype)
    if need > SHARED_MEMORY_LIMIT:
        es = dtype.itemsize
        raise ValueError(
            f"{name}: config {cfg.short()} needs {need // 1024} KiB of shared memory for {dtype} "
            f"({cfg.num_stages} stages x ({cfg.block_m}x{cfg.block_k} + {cfg.block_k}x{cfg.block_n}) x {es} "
            f"bytes), more than the {SHARED_MEMORY_LIMIT // 1024} KiB a Hopper GPU gives one program; "
            f"use fewer stages or smaller tiles")
    return cfg


def _tile_grid(name, M, N, block_m, block_n):
    grid = (cdiv(M, block_m) * cdiv(N, block_n),)
    check_grid(name, grid)
    return grid


def _flags(a, K, block_k, order):
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, not {order!r}")
    return dict(
        GROUPED=order == "grouped",
        EVEN_K=K % block_k == 0,
        UPCAST=(not ON_GPU) and a.dtype == torch.bfloat16,
    )


def _args(a, b, c, M, N, K):
    return (a, b, c, M, N, K, a.stride(0), a.stride(1), b.stride(0), b.stride(1),
            c.stride(0), c.stride(1))


def matmul_tiled(a: torch.Tensor, b: torch.Tensor, config: TileConfig | None = None,
                 order: str = "grouped", out: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ b`` with the tiled kernel and one explicit configuration (no autotuning).

    ``a``: ``(M, K)``, ``b``: ``(K, N)``, float32/float16/bfloat16 on ``kernels.DEVICE``; returns C,
    ``(M, N)`` in the inputs' dtype (``out`` if given), accumulated in float32. ``config`` defaults to
    ``default_config(a.dtype)``: a small one in the interpreter, 128x128 on a GPU. ``order``: ``"grouped"``
    or ``"row"``. Operands spanning ``2**31`` elements or more are indexed with 64-bit offsets.

    Raises ``TypeError``/``ValueError`` for operands outside ``kernels.operands``' contract (an ``out``
    that shares memory with ``a`` or ``b`` is computed through a temporary), ``ValueError`` for a bad
    order or config (see ``_check_config``: every field, and the shared memory its tiles need on
    Hopper), ``TypeError`` for a config that is not a ``TileConfig``.
    """
    return _matmul_tiled("matmul_tiled", a, b, config, order, out)


def _matmul_tiled(name, a, b, config, order, out, return_compiled=False):
    M, N, K = check_inputs(name, a, b)
    cfg = config or default_config(a.dtype)
    cfg = _check_config(cfg, a.dtype, name)
    flags = _flags(a, K, cfg.block_k, order)
    grid = _tile_grid(name, M, N, cfg.block_m, cfg.block_n)
    call = plan_output(name, a, b, out)
    compiled = tiled_matmul_kernel[grid](
        *_args(a, b, call.c, M, N, K),
        BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, GROUP_M=cfg.group_m,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages, INT64=call.int64, **flags,
    )
    if return_compiled:
        return call.result(), compiled
    return call.result()


def compiled_kernel(config: TileConfig, dtype: torch.dtype = torch.bfloat16, name: str = "compiled_kernel"):
    """Triton's ``CompiledKernel`` for one configuration of the tiled kernel on this GPU (GPU only),
    launched once on a small problem: ``.asm["ttgir"]``, ``.asm["ptx"]``, ``.n_regs``, ``.n_spills``,
    ``.metadata``. Raises RuntimeError in the interpreter (nothing is compiled there)."""
    if not ON_GPU:
        raise RuntimeError(f"{name}: the interpreter compiles nothing; the recorded numbers are in "
                           "results/<gpu>/ch02_sweep.json and ch02_code.json")
    n = 512
    a = torch.randn(n, n, device=DEVICE).to(dtype)
    b = torch.randn(n, n, device=DEVICE).to(dtype)
    _, k = _matmul_tiled(name, a, b, config, "grouped", None, return_compiled=True)
    if hasattr(k, "_init_handles"):
        k._init_handles()
    return k


def kernel_resources(config: TileConfig, dtype: torch.dtype = torch.bfloat16) -> dict:
    """What one configuration of the tiled kernel compiles to on this GPU (GPU only): ``n_regs``
    (registers per thread), ``n_spills`` (registers spilled to local memory, per thread, as ptxas
    reports), ``shared_bytes`` (shared memory per program) and ``num_warps``. Read from Triton's
    compiled kernel (``CompiledKernel.n_regs`` / ``.n_spills`` / ``.metadata.shared``, see
    :func:`compiled_kernel`). Raises RuntimeError in the interpreter."""
    k = compiled_kernel(config, dtype, "kernel_resources")
    return dict(n_regs=int(k.n_regs), n_spills=int(k.n_spills), shared_bytes=int(k.metadata.shared),
                num_warps=int(k.metadata.num_warps))


def _autotune_configs():
    return [
        triton.Config(dict(BLOCK_M=c.block_m, BLOCK_N=c.block_n, BLOCK_K=c.block_k, GROUP_M=c.group_m),
                      num_warps=c.num_warps, num_stages=c.num_stages)
        for c in GPU_CONFIGS
    ]


_tiled_autotuned = None


def _tuning_bench(kernel_call, quantiles):
    """How the autotuner times each candidate: a longer warm-up and more repetitions than Triton's
    default (25 ms / 100 ms). With the defaults, two runs on the H100 picked a 128x128 tile over
    128x256 at 4096^3 once, 20% slower than the best: each candidate is compiled just before it is
    timed, the GPU idles meanwhile, and a short measurement catches it before it is back at speed."""
    import triton.testing

    return triton.testing.do_bench(kernel_call, warmup=100, rep=250, quantiles=quantiles)


def _autotuned_kernel():
    global _tiled_autotuned
    if _tiled_autotuned is None:
        with_even_k = triton.heuristics({"EVEN_K": lambda args: args["K"] % args["BLOCK_K"] == 0})(
            tiled_matmul_kernel)
        _tiled_autotuned = triton.autotune(
            configs=_autotune_configs(),
            key=["M", "N", "K", "GROUPED", "INT64"],
            do_bench=_tuning_bench,
        )(with_even_k)
    return _tiled_autotuned


def matmul(a: torch.Tensor, b: torch.Tensor, order: str = "grouped",
           out: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ b`` with the tiled kernel, autotuned over ``GPU_CONFIGS`` on a GPU.

    In the interpreter it runs ``INTERPRETER_CONFIG`` (autotuning would only time Python). Operands,
    result and errors as ``matmul_tiled``.
    """
    name = "matmul"
    if not ON_GPU:
        return _matmul_tiled(name, a, b, INTERPRETER_CONFIG, order, out)
    M, N, K = check_inputs(name, a, b)
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, not {order!r}")
    _tile_grid(name, M, N, min(c.block_m for c in GPU_CONFIGS), min(c.block_n for c in GPU_CONFIGS))
    call = plan_output(name, a, b, out)
    kernel = _autotuned_kernel()

    def grid(meta):
        return (cdiv(M, meta["BLOCK_M"]) * cdiv(N, meta["BLOCK_N"]),)

    kernel[grid](*_args(a, b, call.c, M, N, K), GROUPED=order == "grouped", UPCAST=False, INT64=call.int64)
    return call.result()


def best_config() -> TileConfig | None:
    """The configuration the autotuner picked last (GPU only), as a ``TileConfig``."""
    if _tiled_autotuned is None or _tiled_autotuned.best_config is None:
        return None
    cfg = _tiled_autotuned.best_config
    kw = cfg.kwargs
    return TileConfig(kw["BLOCK_M"], kw["BLOCK_N"], kw["BLOCK_K"], kw["GROUP_M"], cfg.num_warps,
                      cfg.num_stages)
