"""Chapter 04 (groundwork): a persistent matmul that loads and stores tiles through TMA descriptors.

On Hopper, the Tensor Memory Accelerator (TMA) copies a whole tile between global and shared memory
from one instruction, given a *tensor descriptor* (base, shape, strides, tile shape). Out-of-bounds
parts of a tile are zero-filled on load and dropped on store, so ragged edges need no masks. This
kernel builds its descriptors on the device (``tl.make_tensor_descriptor``), loops over tiles like
chapter 03's persistent kernel, and lets Triton pipeline the K loop (``num_stages``).
``warp_specialize=True`` asks Triton to split each program into a producer warp (issuing the TMA
loads) and consumer warpgroups (the math): chapter 05's subject.

Constraints of TMA, checked by the wrapper: the last dimension of A, B and C is contiguous, every other
stride and the base address are 16-byte aligned.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import ON_GPU
from .persistent import resolve_programs, sm_count
from .schedule import cdiv
from .operands import check_inputs, plan_output
from .tiled import TileConfig, _check_config, _grouped_tile


@triton.jit
def tma_persistent_matmul_kernel(
    a_ptr, b_ptr, c_ptr,
    M, N, K,
    stride_am, stride_bk, stride_cm,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
    NUM_STAGES: tl.constexpr,
    WARP_SPECIALIZE: tl.constexpr,
    EPILOGUE_SUBTILE: tl.constexpr,  # store the C tile as two halves: half the shared memory for it
    UPCAST: tl.constexpr,
    HOST_DESC: tl.constexpr = False,  # a_ptr, b_ptr, c_ptr are descriptors made on the host
    FLATTEN: tl.constexpr = False,  # pipeline across tiles: the next tile's loads overlap this epilogue
):
    if HOST_DESC:  # built once by the host and passed as kernel arguments
        a_desc = a_ptr
        b_desc = b_ptr
        c_desc = c_ptr
    else:  # built by every program, in global scratch memory (see _ensure_allocator)
        a_desc = tl.make_tensor_descriptor(a_ptr, shape=[M, K], strides=[stride_am, 1],
                                           block_shape=[BLOCK_M, BLOCK_K])
        b_desc = tl.make_tensor_descriptor(b_ptr, shape=[K, N], strides=[stride_bk, 1],
                                           block_shape=[BLOCK_K, BLOCK_N])
        if EPILOGUE_SUBTILE:
            c_desc = tl.make_tensor_descriptor(c_ptr, shape=[M, N], strides=[stride_cm, 1],
                                               block_shape=[BLOCK_M, BLOCK_N // 2])
        else:
            c_desc = tl.make_tensor_descriptor(c_ptr, shape=[M, N], strides=[stride_cm, 1],
                                               block_shape=[BLOCK_M, BLOCK_N])
    grid_m = tl.cdiv(M, BLOCK_M)
    grid_n = tl.cdiv(N, BLOCK_N)
    num_tiles = grid_m * grid_n
    k_steps = tl.cdiv(K, BLOCK_K)
    # as many programs as were launched (one per SM, or fewer when there are fewer tiles)
    for tile_id in tl.range(tl.program_id(0), num_tiles, tl.num_programs(0), flatten=FLATTEN,
                            warp_specialize=WARP_SPECIALIZE):
        pid_m, pid_n = _grouped_tile(tile_id, grid_m, grid_n, GROUP_M)
        row0 = pid_m * BLOCK_M
        col0 = pid_n * BLOCK_N
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for ks in tl.range(k_steps, num_stages=NUM_STAGES):
            a = a_desc.load([row0, ks * BLOCK_K])  # zero-filled past the edges of A
            b = b_desc.load([ks * BLOCK_K, col0])
            if UPCAST:
                a = a.to(tl.float32)
                b = b.to(tl.float32)
            acc = tl.dot(a, b, acc)
        if EPILOGUE_SUBTILE:
            halves = tl.permute(tl.reshape(acc, (BLOCK_M, 2, BLOCK_N // 2)), (0, 2, 1))
            left, right = tl.split(halves)
            c_desc.store([row0, col0], left.to(c_desc.dtype))
            c_desc.store([row0, col0 + BLOCK_N // 2], right.to(c_desc.dtype))
        else:
            c_desc.store([row0, col0], acc.to(c_desc.dtype))  # clipped at the edges of C


_allocator_set = False


def _ensure_allocator():
    """Device-side descriptors need a little global scratch memory per program; Triton asks for it
    through an allocator we register once."""
    global _allocator_set
    if _allocator_set or not ON_GPU:
        return

    def alloc(size: int, alignment: int, stream):
        return torch.empty(size, device="cuda", dtype=torch.int8)

    triton.set_allocator(alloc)
    _allocator_set = True


def _check_tma(t: torch.Tensor, label: str, name: str):
    es = t.element_size()
    if t.stride(1) != 1:
        raise ValueError(f"{name}: {label} must be contiguous along its last dimension for TMA "
                         f"(strides {t.stride()}); pass {label}.contiguous()")
    if (t.stride(0) * es) % 16:
        raise ValueError(f"{name}: {label}'s row stride is {t.stride(0) * es} bytes; TMA needs a multiple of "
                         f"16 (for {t.dtype}, a row length that is a multiple of {16 // es})")
    if t.data_ptr() % 16:
        raise ValueError(f"{name}: {label}'s data does not start on a 16-byte boundary")


def _prepare_tma(a, b, out, name):
    """The operand contract (``kernels.operands``), then TMA's layout rules for a, b and where the
    kernel writes: ``(M, N, K, call)``. The kernel writes ``call.c``; return ``call.result()``."""
    M, N, K = check_inputs(name, a, b)
    _check_tma(a, "a", name)
    _check_tma(b, "b", name)
    call = plan_output(name, a, b, out)
    _check_tma(call.c, "out", name)
    return M, N, K, call


def _check_ws(a, warp_specialize, epilogue_subtile, name, host_descriptors=False, flatten=False):
    if warp_specialize and host_descriptors and ON_GPU:
        # Triton 3.6 on Hopper: does not compile (results/<gpu>/ch04_code.json, the record with
        # warp_specialize and host_descriptors both true, keeps the compiler's error)
        raise ValueError(f"{name}: warp_specialize=True with host_descriptors=True does not compile with "
                         f"this Triton on Hopper; use device descriptors (the default) with warp_specialize")
    if warp_specialize and flatten and ON_GPU:
        # Triton 3.6 on Hopper: compiles, but into a kernel without specialized warps
        # (results/<gpu>/ch04_code.json: no ttg.warp_specialize, no setmaxnreg with flatten true)
        raise ValueError(f"{name}: warp_specialize=True with flatten=True compiles a kernel whose warps are "
                         f"not specialized with this Triton on Hopper; choose one of the two")
    if warp_specialize and ON_GPU and a.dtype == torch.float32:
        # measured on the H100 with Triton 3.6: the compiler fails in ConvertNVGPUToLLVM
        raise ValueError(f"{name}: warp_specialize=True does not compile for float32 with this Triton "
                         f"on Hopper; use float16/bfloat16 inputs or warp_specialize=False")
    if warp_specialize and epilogue_subtile and ON_GPU:
        # measured on the H100 with Triton 3.6: NVGPUWarpSpecialization fails ("unsupported op type"
        # in WSDataPartition) on the reshape/permute/split that halves the tile
        raise ValueError(f"{name}: warp_specialize=True with epilogue_subtile=True does not compile with "
                         f"this Triton on Hopper; choose one of the two")


def matmul_tma(a: torch.Tensor, b: torch.Tensor, config: TileConfig | None = None,
               num_programs: int | None = None, warp_specialize: bool = False,
               epilogue_subtile: bool = False, out: torch.Tensor | None = None,
               host_descriptors: bool = False, flatten: bool = False) -> torch.Tensor:
    """``a @ b`` with the persistent TMA kernel and one explicit configuration.

    ``host_descriptors=True`` builds the three TMA descriptors once on the host and passes them to the
    kernel, instead of every program building them on the device. ``flatten=True`` lets Triton
    pipeline the tile loop and the K loop as one loop, so the loads of a program's next tile start
    during the epilogue of the current one.

    ``a``: ``(M, K)``, ``b``: ``(K, N)``, float32/float16/bfloat16 on ``kernels.DEVICE``; returns C,
    ``(M, N)`` in the inputs' dtype (``out`` if given). Raises ``TypeError``/``ValueError`` for operands
    outside ``kernels.operands``' contract (an ``out`` that shares memory with ``a`` or ``b`` is computed
    through a temporary), ``ValueError`` for layouts TMA cannot describe (rows not contiguous, row
    strides or base addresses not multiples of 16 bytes), a bad config or ``num_programs``, and the
    option combinations that do not compile on Hopper with Triton 3.6.
    """
    return _matmul_tma("matmul_tma", a, b, config, num_programs, warp_specialize, epilogue_subtile, out,
                       host_descriptors, flatten)


def default_config(dtype: torch.dtype, on_gpu: bool | None = None) -> TileConfig:
    """``matmul_tma``'s configuration when none is given: small tiles in the interpreter; on a GPU
    128x128x32 for float32 (shared memory, see ``kernels.tiled.default_config``), else 128x256x64."""
    if not (ON_GPU if on_gpu is None else on_gpu):
        return TileConfig(32, 32, 32, 4, 4, 1)
    return TileConfig(128, 128, 32, 8, 4, 3) if dtype == torch.float32 else TileConfig(128, 256, 64, 8, 8, 3)


def _matmul_tma(name, a, b, config, num_programs, warp_specialize, epilogue_subtile, out, host_descriptors,
                flatten):
    check_inputs(name, a, b)
    cfg = config or default_config(a.dtype)
    cfg = _check_config(cfg, a.dtype, name)
    _check_ws(a, warp_specialize, epilogue_subtile, name, host_descriptors, flatten)
    M, N, K, call = _prepare_tma(a, b, out, name)
    tiles = cdiv(M, cfg.block_m) * cdiv(N, cfg.block_n)
    num_programs = resolve_programs(num_programs, tiles, name)
    launch(a, b, call.c, cfg, num_programs, warp_specialize, epilogue_subtile, host_descriptors, flatten)
    return call.result()


def host_descriptors_for(a, b, c, block_m, block_n, block_k, epilogue_subtile=False):
    """The three TMA descriptors, made on the host (``triton.tools.tensor_descriptor``)."""
    from triton.tools.tensor_descriptor import TensorDescriptor

    M, K = a.shape
    N = b.shape[1]
    return (TensorDescriptor(a, [M, K], [a.stride(0), 1], [block_m, block_k]),
            TensorDescriptor(b, [K, N], [b.stride(0), 1], [block_k, block_n]),
            TensorDescriptor(c, [M, N], [c.stride(0), 1], [block_m, block_n // (2 if epilogue_subtile else 1)]))


def launch(a, b, c, cfg: TileConfig, num_programs: int, warp_specialize: bool, epilogue_subtile=False,
           host_descriptors=False, flatten=False):
    """Launch the kernel (inputs already checked) and return what Triton returns: on a GPU the
    compiled kernel, whose ``.asm`` holds the TTGIR/PTX/SASS to inspect."""
    _ensure_allocator()
    M, K = a.shape
    N = b.shape[1]
    args = (host_descriptors_for(a, b, c, cfg.block_m, cfg.block_n, cfg.block_k, epilogue_subtile)
            if host_descriptors else (a, b, c))
    return tma_persistent_matmul_kernel[(num_programs,)](
        *args, M, N, K, a.stride(0), b.stride(0), c.stride(0),
        BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, GROUP_M=cfg.group_m,
        NUM_STAGES=cfg.num_stages, WARP_SPECIALIZE=warp_specialize, EPILOGUE_SUBTILE=epilogue_subtile,
        UPCAST=(not ON_GPU) and a.dtype == torch.bfloat16, HOST_DESC=host_descriptors, FLATTEN=flatten,
        num_warps=cfg.num_warps,
    )


# Candidates for the autotuned TMA kernel (16-bit inputs), as (config, epilogue_subtile, flatten).
# With warp_specialize only num_warps=4 and flatten=False specialize on Hopper with Triton 3.6.
TUNED_CONFIGS = [
    (TileConfig(128, 256, 64, 8, 8, 3), False, False),
    (TileConfig(128, 256, 64, 8, 8, 4), True, False),
    (TileConfig(128, 128, 64, 8, 4, 4), False, False),
    (TileConfig(128, 128, 64, 8, 4, 5), True, False),
    (TileConfig(64, 128, 64, 8, 4, 5), False, False),
    (TileConfig(128, 64, 64, 8, 4, 5), False, False),
    (TileConfig(128, 256, 64, 8, 8, 3), False, True),
    (TileConfig(128, 256, 64, 8, 8, 4), True, True),
    (TileConfig(128, 128, 64, 8, 4, 4), False, True),
]
TUNED_CONFIGS_WS = [  # no epilogue subtiling: it does not compile with warp_specialize (see _check_ws)
    (TileConfig(128, 256, 64, 8, 4, 3), False, False),
    (TileConfig(128, 128, 64, 8, 4, 4), False, False),
    (TileConfig(128, 128, 64, 8, 4, 5), False, False),
    (TileConfig(64, 128, 64, 8, 4, 5), False, False),
]
_tuned = {}


def _set_block_shapes(nargs):
    """Autotuner pre-hook for host descriptors: each candidate has its own tile, so the descriptors'
    block shapes are set to the candidate's before it runs."""
    bm, bn, bk = nargs["BLOCK_M"], nargs["BLOCK_N"], nargs["BLOCK_K"]
    nargs["a_ptr"].block_shape = [bm, bk]
    nargs["b_ptr"].block_shape = [bk, bn]
    nargs["c_ptr"].block_shape = [bm, bn // 2 if nargs["EPILOGUE_SUBTILE"] else bn]


def _tuned_kernel(warp_specialize: bool, host_descriptors: bool = False):
    key = (warp_specialize, host_descriptors)
    if key not in _tuned:
        from .tiled import _tuning_bench

        configs = [
            triton.Config(dict(BLOCK_M=c.block_m, BLOCK_N=c.block_n, BLOCK_K=c.block_k, GROUP_M=c.group_m,
                               NUM_STAGES=c.num_stages, EPILOGUE_SUBTILE=sub, FLATTEN=flat),
                          num_warps=c.num_warps, pre_hook=_set_block_shapes if host_descriptors else None)
            for c, sub, flat in (TUNED_CONFIGS_WS if warp_specialize else TUNED_CONFIGS)
        ]
        _tuned[key] = triton.autotune(configs=configs, key=["M", "N", "K", "WARP_SPECIALIZE", "HOST_DESC"],
                                      do_bench=_tuning_bench)(tma_persistent_matmul_kernel)
    return _tuned[key]


def matmul_tma_tuned(a: torch.Tensor, b: torch.Tensor, warp_specialize: bool = False,
                     out: torch.Tensor | None = None, host_descriptors: bool = False) -> torch.Tensor:
    """``a @ b`` with the persistent TMA kernel, autotuned over ``TUNED_CONFIGS`` on a GPU (16-bit
    inputs). In the interpreter, and for float32, it runs ``matmul_tma``'s default configuration.
    Operands, result and errors as ``matmul_tma``."""
    name = "matmul_tma_tuned"
    check_inputs(name, a, b)
    if not ON_GPU or a.dtype == torch.float32:
        return _matmul_tma(name, a, b, None, None, warp_specialize, False, out, host_descriptors, False)
    M, N, K, call = _prepare_tma(a, b, out, name)
    c = call.c
    _check_ws(a, warp_specialize, False, name, host_descriptors)
    _ensure_allocator()
    sms = sm_count()

    def grid(meta):
        return (min(sms, cdiv(M, meta["BLOCK_M"]) * cdiv(N, meta["BLOCK_N"])),)

    # host descriptors start with a placeholder tile; _set_block_shapes sets each candidate's
    args = host_descriptors_for(a, b, c, 64, 64, 64) if host_descriptors else (a, b, c)
    _tuned_kernel(warp_specialize, host_descriptors)[grid](
        *args, M, N, K, a.stride(0), b.stride(0), c.stride(0),
        WARP_SPECIALIZE=warp_specialize, UPCAST=False, HOST_DESC=host_descriptors)
    return call.result()


def tuned_config(warp_specialize: bool = False, host_descriptors: bool = False) -> str | None:
    """The configuration the autotuner picked last, as a short string."""
    k = _tuned.get((warp_specialize, host_descriptors))
    if k is None or k.best_config is None:
        return None
    kw, cfg = k.best_config.kwargs, k.best_config
    return (f"{kw['BLOCK_M']}x{kw['BLOCK_N']}x{kw['BLOCK_K']} w{cfg.num_warps} s{kw['NUM_STAGES']}"
            + (" sub" if kw["EPILOGUE_SUBTILE"] else "") + (" flat" if kw["FLATTEN"] else ""))
