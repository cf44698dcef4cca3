"""Chapter 06: FP8 (e4m3) matmul on the persistent TMA kernel, with three scaling recipes.

``C = (A * sa) @ (B * sb).T``, where ``A`` (M, K) and ``B`` (N, K) are e4m3 and ``sa``, ``sb`` their
float32 scales. ``B`` is stored as ``nn.Linear`` stores a weight, one output feature per row, K
contiguous: Hopper's FP8 tensor-core instruction (``wgmma`` with 8-bit inputs) reads both operands
K-major from shared memory, so this is the layout it wants, the one ``torch._scaled_mm`` asks for too.

Where the scales go depends on their granularity (``recipe``):

* ``"tensor"``: one scale per operand. ``sa * sb`` is a single number: multiply the float32
  accumulator once, in the epilogue.
* ``"row"``: one scale per row of ``A`` (a token) and one per row of ``B`` (an output feature).
  ``C[i, j] = sa[i] * sb[j] * sum_k A[i, k] * B[j, k]``: the scales factor out of the sum over K, so the
  epilogue multiplies each row of the tile by ``sa`` and each column by ``sb``.
* ``"block"``: DeepSeek-V3's recipe: ``A`` has one scale per 1 x 128 block (a token's 128 consecutive
  channels), ``B`` one per 128 x 128 block. The scales change along K, so they no longer factor out:
  every K step of 128 computes its partial product ``A_blk @ B_blk.T`` in a fresh float32 tile and adds
  it to the accumulator times ``sa[:, k] * sb[j_blk, k]``. The K loop does more work than the
  others' (a multiply-add over the whole tile per step, and the scale loads), and ``BLOCK_K`` must be
  128.

A scale's shape is the quantized tensor's grid of blocks: ``(1, 1)`` per tensor, ``(M, 1)`` and
``(N, 1)`` per row, ``(M, ceil(K/128))`` and ``(ceil(N/128), ceil(K/128))`` per block
(``kernels.fp8.scales`` gives the same shapes). The K-block scales of ``A`` are read one column per K
step; stored column-major (``sa.t().contiguous().t()``, as ``kernels.quantize.quantize_blocks`` writes
them) that column is contiguous.

The output is bfloat16, or e4m3 (``out_dtype=torch.float8_e4m3fn``: values beyond +-448 saturate,
rounding to nearest even), which halves the bytes the epilogue writes.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from . import DEVICE, ON_GPU, world_mismatch
from .operands import check_grid, has_internal_overlap
from .persistent import resolve_programs, sm_count
from .quantize import keep_nan_e4m3, round_to_e4m3
from .schedule import cdiv
from .tiled import _grouped_tile
from .tma import _check_tma, _ensure_allocator

E4M3 = torch.float8_e4m3fn
SCALE_BLOCK = 128  # the block recipe's granularity along K (and along N for B), as in DeepSeek-V3
RECIPES = ("tensor", "row", "block")
OUT_DTYPES = (torch.bfloat16, E4M3)


@dataclass(frozen=True)
class FP8Config:
    """Tile shape and launch parameters of the FP8 kernel."""

    block_m: int = 128
    block_n: int = 256
    block_k: int = 128
    group_m: int = 8
    num_warps: int = 8
    num_stages: int = 3
    epilogue_subtile: bool = False  # store the C tile as two halves (less shared memory for C)
    flatten: bool = False  # pipeline across tiles: the next tile's loads overlap this epilogue
    k_unroll: int = 1  # block recipe only: 2 runs two K blocks' dots per loop step

    def label(self) -> str:
        return (f"{self.block_m}x{self.block_n}x{self.block_k} w{self.num_warps} s{self.num_stages}"
                + (" sub" if self.epilogue_subtile else "") + (" flat" if self.flatten else "")
                + (f" unroll{self.k_unroll}" if self.k_unroll != 1 else ""))


@triton.jit
def round_to_bf16(x):
    """float32 ``x`` rounded to the nearest bfloat16 value (ties to even), still as float32: add half an
    ulp of bfloat16 (plus one if the kept part is odd) to the bits and clear the 16 dropped bits. For
    finite values; the GPU's cast does the same in one instruction."""
    bits = x.to(tl.int32, bitcast=True)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & -65536  # -65536 == ~0xFFFF
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def _store_tile(c_desc, row0, col0, val, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                EPILOGUE_SUBTILE: tl.constexpr, FP8_OUT: tl.constexpr, EXACT_CAST: tl.constexpr):
    raw = val
    if FP8_OUT:
        if EXACT_CAST:  # the interpreter's float8 cast neither rounds to even nor saturates: round here
            mag = round_to_e4m3(tl.abs(val))
            val = tl.where(val < 0, -mag, mag)
        else:
            val = tl.clamp(val, -448.0, 448.0)  # the cast rounds to nearest even; clamp to saturate
    elif EXACT_CAST:  # the interpreter's bfloat16 cast truncates: round to nearest even here
        val = round_to_bf16(val)
    if FP8_OUT:  # NaN stays NaN (the saturation above made it 448): where raw is NaN, so is val
        val = tl.where(raw != raw, raw, val)
    if EPILOGUE_SUBTILE:
        halves = tl.permute(tl.reshape(val, (BLOCK_M, 2, BLOCK_N // 2)), (0, 2, 1))
        left, right = tl.split(halves)
        c_desc.store([row0, col0], _cast_out(left, c_desc.dtype, FP8_OUT))
        c_desc.store([row0, col0 + BLOCK_N // 2], _cast_out(right, c_desc.dtype, FP8_OUT))
    else:
        c_desc.store([row0, col0], _cast_out(val, c_desc.dtype, FP8_OUT))


@triton.jit
def _cast_out(val, dtype: tl.constexpr, FP8_OUT: tl.constexpr):
    if FP8_OUT:
        return keep_nan_e4m3(val, val.to(tl.float8e4nv))  # a NaN written as e4m3's NaN bits
    return val.to(dtype)


@triton.jit
def fp8_matmul_kernel(
    a_ptr, b_ptr, c_ptr,  # tensors, or TMA descriptors made on the host (HOST_DESC)
    sa_ptr, sb_ptr,
    M, N, K,
    stride_am, stride_bn, stride_cm,
    stride_sam, stride_sak, stride_sbn, stride_sbk,
    RECIPE: tl.constexpr,  # 0: per tensor, 1: per row, 2: blockwise (1x128 for A, 128x128 for B)
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
    NUM_STAGES: tl.constexpr,
    EPILOGUE_SUBTILE: tl.constexpr,
    FLATTEN: tl.constexpr,
    FP8_OUT: tl.constexpr,
    EXACT_CAST: tl.constexpr,
    HOST_DESC: tl.constexpr,
    K_UNROLL: tl.constexpr = 1,  # block recipe: K blocks per loop step (1 or 2)
):
    if HOST_DESC:
        a_desc = a_ptr
        b_desc = b_ptr
        c_desc = c_ptr
    else:
        a_desc = tl.make_tensor_descriptor(a_ptr, shape=[M, K], strides=[stride_am, 1],
                                           block_shape=[BLOCK_M, BLOCK_K])
        b_desc = tl.make_tensor_descriptor(b_ptr, shape=[N, K], strides=[stride_bn, 1],
                                           block_shape=[BLOCK_N, BLOCK_K])
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
    if RECIPE == 0:
        scale = tl.load(sa_ptr) * tl.load(sb_ptr)  # one number for the whole output
    for tile_id in tl.range(tl.program_id(0), num_tiles, tl.num_programs(0), flatten=FLATTEN):
        pid_m, pid_n = _grouped_tile(tile_id, grid_m, grid_n, GROUP_M)
        row0 = pid_m * BLOCK_M
        col0 = pid_n * BLOCK_N
        rows = row0 + tl.arange(0, BLOCK_M)
        cols = col0 + tl.arange(0, BLOCK_N)
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        if RECIPE == 2:
            sb_row = sb_ptr + (col0 // 128) * stride_sbn  # this tile's 128 rows of B share one scale per K block
            if K_UNROLL == 1:
                for ks in tl.range(k_steps, num_stages=NUM_STAGES):
                    a = a_desc.load([row0, ks * BLOCK_K])
                    b = b_desc.load([col0, ks * BLOCK_K])
                    partial = tl.dot(a, b.T)  # a fresh float32 tile: the scales change with k
                    sa = tl.load(sa_ptr + rows * stride_sam + ks * stride_sak, mask=rows < M, other=0.0)
                    sb = tl.load(sb_row + ks * stride_sbk)
                    acc += partial * (sa * sb)[:, None]
            else:  # two K blocks per step: two independent dots the tensor cores can run back to back
                for kp in tl.range(0, k_steps, 2, num_stages=NUM_STAGES):
                    a0 = a_desc.load([row0, kp * BLOCK_K])
                    b0 = b_desc.load([col0, kp * BLOCK_K])
                    a1 = a_desc.load([row0, (kp + 1) * BLOCK_K])  # zeros past K: adds nothing
                    b1 = b_desc.load([col0, (kp + 1) * BLOCK_K])
                    p0 = tl.dot(a0, b0.T)
                    p1 = tl.dot(a1, b1.T)
                    k1 = tl.minimum(kp + 1, k_steps - 1)  # past K, p1 is zero: any finite scale will do
                    sa0 = tl.load(sa_ptr + rows * stride_sam + kp * stride_sak, mask=rows < M, other=0.0)
                    sa1 = tl.load(sa_ptr + rows * stride_sam + k1 * stride_sak, mask=rows < M, other=0.0)
                    sb0 = tl.load(sb_row + kp * stride_sbk)
                    sb1 = tl.load(sb_row + k1 * stride_sbk)
                    acc += p0 * (sa0 * sb0)[:, None] + p1 * (sa1 * sb1)[:, None]
        else:
            for ks in tl.range(k_steps, num_stages=NUM_STAGES):
                a = a_desc.load([row0, ks * BLOCK_K])  # zero-filled past the edges
                b = b_desc.load([col0, ks * BLOCK_K])
                acc = tl.dot(a, b.T, acc)
            if RECIPE == 1:
                sa = tl.load(sa_ptr + rows * stride_sam, mask=rows < M, other=0.0)
                sb = tl.load(sb_ptr + cols * stride_sbn, mask=cols < N, other=0.0)
                acc = acc * sa[:, None] * sb[None, :]
            else:
                acc = acc * scale
        _store_tile(c_desc, row0, col0, acc, BLOCK_M, BLOCK_N, EPILOGUE_SUBTILE, FP8_OUT, EXACT_CAST)


# --------------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------------
def fp8_supported(device=None) -> tuple[bool, str]:
    """Whether this world can run the FP8 kernel: ``(ok, why)``. FP8 tensor cores need compute capability
    8.9 or newer (Ada, Hopper, Blackwell); TMA descriptors need 9.0 (Hopper). Triton's interpreter runs
    it on the CPU at small sizes."""
    if not ON_GPU:
        return True, "Triton's interpreter (CPU)"
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) < (9, 0):
        return False, (f"compute capability {major}.{minor}: FP8 tensor cores need 8.9 or newer, and this "
                       f"kernel's TMA loads need 9.0 (Hopper) or newer")
    return True, f"compute capability {major}.{minor}"


def scale_shape(recipe: str, rows: int, k: int, operand: str) -> tuple[int, int]:
    """The shape a scale must have: ``(1, 1)`` per tensor; ``(rows, 1)`` per row; per block
    ``(rows, ceil(k/128))`` for ``A`` (1x128 blocks) and ``(ceil(rows/128), ceil(k/128))`` for ``B``
    (128x128 blocks)."""
    if recipe == "tensor":
        return (1, 1)
    if recipe == "row":
        return (rows, 1)
    kb = cdiv(k, SCALE_BLOCK)
    return (rows, kb) if operand == "a" else (cdiv(rows, SCALE_BLOCK), kb)


def _check_scale(name, s, want, label, device):
    if not isinstance(s, torch.Tensor):
        raise TypeError(f"{name}: {label} must be a torch.Tensor, got {type(s).__name__}")
    if s.dtype != torch.float32:
        raise TypeError(f"{name}: {label} must be float32, got {s.dtype}")
    if s.is_neg():
        raise ValueError(f"{name}: {label} is a view with a pending negation (the kernel reads raw memory); "
                         f"pass {label}.resolve_neg()")
    if s.device.type != torch.device(device).type:
        raise ValueError(f"{name}: {label} is on {s.device}, the operands on {device}")
    shape = tuple(s.shape)
    if want == (1, 1) and s.numel() == 1:
        return s.reshape(1, 1)
    if shape != want:
        raise ValueError(f"{name}: {label} must have shape {want} for this recipe, got {shape}")
    return s


def check_fp8_operands(name, a, b, a_scale, b_scale, recipe, out_dtype, out=None, check_values=False):
    """Check everything ``fp8_matmul`` is given; return ``(M, N, K, a_scale, b_scale)`` with the per-tensor
    scales as ``(1, 1)`` views. Errors as ``fp8_matmul``'s docstring says. Only shapes, dtypes, devices
    and addresses are checked, on the host; ``check_values=True`` also reads the scales (finite and
    positive), which waits for the GPU."""
    if recipe not in RECIPES:
        raise ValueError(f"{name}: recipe must be one of {RECIPES}, got {recipe!r}")
    if out_dtype not in OUT_DTYPES:
        raise TypeError(f"{name}: out_dtype must be torch.bfloat16 or torch.float8_e4m3fn, got {out_dtype}")
    for t, label in ((a, "a"), (b, "b")):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: {label} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype != E4M3:
            raise TypeError(f"{name}: {label} must be torch.float8_e4m3fn (quantize it first, e.g. "
                            f"kernels.quantize.quantize_rows), got {t.dtype}")
        if t.dim() != 2 or t.numel() == 0:
            raise ValueError(f"{name}: {label} must be a non-empty 2-D tensor, got shape {tuple(t.shape)}")
        if t.device.type != torch.device(DEVICE).type:
            raise ValueError(f"{name}: {label} is on {t.device}; this world runs kernels on {DEVICE}")
        if t.is_neg():
            raise ValueError(f"{name}: {label} is a view with a pending negation (the kernel reads raw memory); "
                             f"pass {label}.resolve_neg()")
    M, K = a.shape
    N, Kb = b.shape
    if K != Kb:
        raise ValueError(f"{name}: a is (M, K) = {tuple(a.shape)} and b is (N, K) = {tuple(b.shape)}: "
                         f"their K differ (b holds one output feature per row, like nn.Linear.weight)")
    ok, why = fp8_supported(a.device)
    if not ok:
        raise RuntimeError(f"{name}: this GPU cannot run it: {why}")
    _check_tma(a, "a", name)
    _check_tma(b, "b", name)
    a_scale = _check_scale(name, a_scale, scale_shape(recipe, M, K, "a"), "a_scale", a.device)
    b_scale = _check_scale(name, b_scale, scale_shape(recipe, N, K, "b"), "b_scale", a.device)
    for s, label in ((a_scale, "a_scale"), (b_scale, "b_scale")):
        if check_values and (not bool(torch.isfinite(s).all()) or bool((s <= 0).any())):
            raise ValueError(f"{name}: {label} must hold finite positive numbers (a scale is amax / 448)")
    es = 1 if out_dtype == E4M3 else 2
    if (N * es) % 16:
        raise ValueError(f"{name}: C's rows would be {N * es} bytes; TMA stores need a multiple of 16 (N a "
                         f"multiple of {16 // es} for {out_dtype})")
    if out is not None:
        if not isinstance(out, torch.Tensor) or out.dtype != out_dtype or tuple(out.shape) != (M, N):
            raise ValueError(f"{name}: out must be a ({M}, {N}) tensor of {out_dtype}")
        if out.device != a.device:
            raise ValueError(f"{name}: out is on {out.device}, the operands on {a.device}")
        if has_internal_overlap(out):
            raise ValueError(f"{name}: out has elements that share memory (made by expand?); pass a dense tensor")
        _check_tma(out, "out", name)
        for t in (a, b, a_scale, b_scale):
            if _overlaps(out, t):
                raise ValueError(f"{name}: out shares memory with an input; pass a separate tensor")
    return M, N, K, a_scale, b_scale


def _overlaps(x, y):
    from .operands import byte_range

    x0, x1 = byte_range(x)
    y0, y1 = byte_range(y)
    return x0 < y1 and y0 < x1


def _check_config(cfg: FP8Config, recipe: str, name: str, out_dtype=torch.bfloat16) -> FP8Config:
    if not isinstance(cfg, FP8Config):
        raise TypeError(f"{name}: config must be a kernels.fp8_gemm.FP8Config, got {type(cfg).__name__}")
    for f in ("block_m", "block_n", "block_k"):
        v = getattr(cfg, f)
        if isinstance(v, bool) or not isinstance(v, int) or v < 16 or v & (v - 1) or v > 256:
            raise ValueError(f"{name}: config.{f} must be a power of two from 16 to 256 (a TMA tile is at most "
                             f"256 along each dimension), got {v!r}")
    for f in ("group_m", "num_warps", "num_stages", "k_unroll"):
        v = getattr(cfg, f)
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"{name}: config.{f} must be an int, got {v!r}")
    if cfg.block_k < 32:
        raise ValueError(f"{name}: config.block_k must be >= 32 for 8-bit tl.dot, got {cfg.block_k}")
    if recipe == "block" and (cfg.block_k != SCALE_BLOCK or cfg.block_n > SCALE_BLOCK):
        raise ValueError(f"{name}: the block recipe needs block_k == 128 (one A scale per K step) and "
                         f"block_n <= 128 (one B scale per tile), got {cfg.label()}")
    if cfg.epilogue_subtile and cfg.block_n // 2 * (1 if out_dtype == E4M3 else 2) < 16:
        raise ValueError(f"{name}: epilogue_subtile stores half tiles of block_n // 2 columns, which must be at least "
                         f"16 bytes for TMA: block_n >= {32 if out_dtype == E4M3 else 16} for {out_dtype}")
    if cfg.k_unroll not in (1, 2) or (cfg.k_unroll == 2 and recipe != "block"):
        raise ValueError(f"{name}: config.k_unroll must be 1, or 2 with the block recipe, got {cfg.k_unroll!r}")
    if cfg.num_warps not in (4, 8) or not (1 <= cfg.num_stages <= 8) or cfg.group_m < 1:
        raise ValueError(f"{name}: num_warps must be 4 or 8, num_stages 1..8, group_m >= 1: {cfg}")
    return cfg


def default_config(recipe: str = "row", on_gpu: bool | None = None) -> FP8Config:
    """The configuration ``fp8_matmul`` uses when none is given: 32x32x32 tiles in the interpreter (32x32x128
    for the block recipe); on a
    GPU 128x256x128 (8 warps, 3 stages) for the tensor and row recipes and 128x128x128 (8 warps, 4
    stages) for the block recipe, whose B scale covers 128 columns."""
    if not (ON_GPU if on_gpu is None else on_gpu):
        return FP8Config(32, 32, 128 if recipe == "block" else 32, 4, 4, 1)
    if recipe == "block":
        return FP8Config(128, 128, 128, 8, 8, 4)
    return FP8Config(128, 256, 128, 8, 8, 3)


# --------------------------------------------------------------------------------------------------
# launch
# --------------------------------------------------------------------------------------------------
def host_descriptors_for(a, b, c, cfg: FP8Config):
    """The three TMA descriptors, made on the host (``triton.tools.tensor_descriptor``)."""
    from triton.tools.tensor_descriptor import TensorDescriptor

    M, K = a.shape
    N = b.shape[0]
    bn_c = cfg.block_n // 2 if cfg.epilogue_subtile else cfg.block_n
    return (TensorDescriptor(a, [M, K], [a.stride(0), 1], [cfg.block_m, cfg.block_k]),
            TensorDescriptor(b, [N, K], [b.stride(0), 1], [cfg.block_n, cfg.block_k]),
            TensorDescriptor(c, [M, N], [c.stride(0), 1], [cfg.block_m, bn_c]))


def launch(a, b, c, a_scale, b_scale, recipe: str, cfg: FP8Config, num_programs: int,
           host_descriptors: bool = False):
    """Launch the kernel (everything already checked); returns what Triton returns (the compiled kernel
    on a GPU)."""
    if world_mismatch(fp8_matmul_kernel):
        raise RuntimeError(world_mismatch(fp8_matmul_kernel))
    _ensure_allocator()
    M, K = a.shape
    N = b.shape[0]
    args = host_descriptors_for(a, b, c, cfg) if host_descriptors else (a, b, c)
    return fp8_matmul_kernel[(num_programs,)](
        *args, a_scale, b_scale, M, N, K, a.stride(0), b.stride(0), c.stride(0),
        a_scale.stride(0), a_scale.stride(1), b_scale.stride(0), b_scale.stride(1),
        RECIPE=RECIPES.index(recipe),
        BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, GROUP_M=cfg.group_m,
        NUM_STAGES=cfg.num_stages, EPILOGUE_SUBTILE=cfg.epilogue_subtile, FLATTEN=cfg.flatten,
        FP8_OUT=c.dtype == E4M3, EXACT_CAST=not ON_GPU, HOST_DESC=host_descriptors, K_UNROLL=cfg.k_unroll,
        num_warps=cfg.num_warps,
    )


def fp8_matmul(a: torch.Tensor, b: torch.Tensor, a_scale: torch.Tensor, b_scale: torch.Tensor,
               recipe: str = "row", out_dtype: torch.dtype = torch.bfloat16, config: FP8Config | None = None,
               num_programs: int | None = None, host_descriptors: bool = False,
               out: torch.Tensor | None = None, check_values: bool = False) -> torch.Tensor:
    """``(a * a_scale) @ (b * b_scale).T`` on the FP8 tensor cores, float32 accumulation.

    ``a``: ``(M, K)`` and ``b``: ``(N, K)``, ``torch.float8_e4m3fn`` on ``kernels.DEVICE``, K contiguous,
    row strides multiples of 16 bytes (TMA's rule; so K a multiple of 16). ``a_scale``/``b_scale``:
    float32, positive, shaped by ``recipe`` (see ``scale_shape``): ``"tensor"`` ``(1, 1)`` (or any
    one-element tensor) each; ``"row"`` ``(M, 1)`` and ``(N, 1)``; ``"block"`` ``(M, ceil(K/128))`` and
    ``(ceil(N/128), ceil(K/128))``. Returns ``(M, N)`` in ``out_dtype`` (bfloat16, or float8_e4m3fn,
    saturating at +-448), into ``out`` if given.

    Raises TypeError for operands that are not tensors or not e4m3, scales that are not float32, or an
    unsupported ``out_dtype``; ValueError for shapes that disagree, scales of the wrong shape or with
    values that are not finite and positive (only with ``check_values=True``: reading the scales waits
    for the GPU, so by default their values are not checked, as ``torch._scaled_mm`` does not: a NaN
    scale gives NaN outputs), layouts TMA cannot describe, a bad ``config``, and an
    ``out`` of the wrong shape/dtype or that shares memory with an input; RuntimeError on a GPU older
    than Hopper (FP8 tensor cores need compute capability 8.9; TMA needs 9.0).
    """
    name = "fp8_matmul"
    M, N, K, a_scale, b_scale = check_fp8_operands(name, a, b, a_scale, b_scale, recipe, out_dtype, out,
                                                   check_values)
    cfg = _check_config(config or default_config(recipe), recipe, name, out_dtype)
    c = out if out is not None else torch.empty((M, N), dtype=out_dtype, device=a.device)
    tiles = cdiv(M, cfg.block_m) * cdiv(N, cfg.block_n)
    programs = resolve_programs(num_programs, tiles, name)
    check_grid(name, (programs,))
    launch(a, b, c, a_scale, b_scale, recipe, cfg, programs, host_descriptors)
    return c


# --------------------------------------------------------------------------------------------------
# autotuned entry point (GPU)
# --------------------------------------------------------------------------------------------------
# Candidates, per recipe. Shared memory per stage is (BM + BN) * BK bytes in e4m3: 48 KiB for
# 128x256x128, so 3 stages plus a bf16 128x256 C tile (64 KiB) fill most of Hopper's 227 KiB.
TUNED_CONFIGS = {
    "tensor": [
        FP8Config(128, 256, 128, 8, 8, 3),
        FP8Config(128, 256, 128, 8, 8, 4, epilogue_subtile=True),
        FP8Config(128, 256, 128, 8, 8, 3, flatten=True),
        FP8Config(128, 128, 128, 8, 8, 4),
        FP8Config(128, 128, 128, 8, 4, 5),
        FP8Config(256, 128, 128, 8, 8, 3),
        FP8Config(64, 256, 128, 8, 4, 4),
    ],
    "block": [
        FP8Config(128, 128, 128, 8, 8, 4),
        FP8Config(128, 128, 128, 8, 4, 4),
        FP8Config(128, 128, 128, 8, 8, 3, flatten=True),
        FP8Config(256, 128, 128, 8, 8, 3),
        FP8Config(64, 128, 128, 8, 4, 5),
    ],
}
TUNED_CONFIGS["row"] = TUNED_CONFIGS["tensor"]
_tuned: dict = {}


def _set_block_shapes(nargs):
    """Autotuner pre-hook for host descriptors: set the descriptors' block shapes to the candidate's."""
    bm, bn, bk = nargs["BLOCK_M"], nargs["BLOCK_N"], nargs["BLOCK_K"]
    nargs["a_ptr"].block_shape = [bm, bk]
    nargs["b_ptr"].block_shape = [bn, bk]
    nargs["c_ptr"].block_shape = [bm, bn // 2 if nargs["EPILOGUE_SUBTILE"] else bn]


def _tuned_kernel(recipe: str, host_descriptors: bool):
    key = (recipe, host_descriptors)
    if key not in _tuned:
        from .tiled import _tuning_bench

        configs = [
            triton.Config(dict(BLOCK_M=c.block_m, BLOCK_N=c.block_n, BLOCK_K=c.block_k, GROUP_M=c.group_m,
                               NUM_STAGES=c.num_stages, EPILOGUE_SUBTILE=c.epilogue_subtile, FLATTEN=c.flatten),
                          num_warps=c.num_warps, pre_hook=_set_block_shapes if host_descriptors else None)
            for c in TUNED_CONFIGS[recipe]
        ]
        _tuned[key] = triton.autotune(configs=configs, key=["M", "N", "K", "RECIPE", "FP8_OUT", "HOST_DESC"],
                                      do_bench=_tuning_bench)(fp8_matmul_kernel)
    return _tuned[key]


def fp8_matmul_tuned(a: torch.Tensor, b: torch.Tensor, a_scale: torch.Tensor, b_scale: torch.Tensor,
                     recipe: str = "row", out_dtype: torch.dtype = torch.bfloat16,
                     host_descriptors: bool = True, out: torch.Tensor | None = None) -> torch.Tensor:
    """``fp8_matmul`` autotuned over ``TUNED_CONFIGS[recipe]`` on a GPU (the first call for a shape times
    every candidate); in the interpreter it runs ``fp8_matmul``'s default configuration. Operands,
    result and errors as ``fp8_matmul``."""
    name = "fp8_matmul_tuned"
    if not ON_GPU:
        return fp8_matmul(a, b, a_scale, b_scale, recipe, out_dtype, out=out, host_descriptors=host_descriptors)
    M, N, K, a_scale, b_scale = check_fp8_operands(name, a, b, a_scale, b_scale, recipe, out_dtype, out)
    c = out if out is not None else torch.empty((M, N), dtype=out_dtype, device=a.device)
    _ensure_allocator()
    sms = sm_count()

    def grid(meta):
        return (min(sms, cdiv(M, meta["BLOCK_M"]) * cdiv(N, meta["BLOCK_N"])),)

    args = (host_descriptors_for(a, b, c, FP8Config(64, 64, 64)) if host_descriptors else (a, b, c))
    _tuned_kernel(recipe, host_descriptors)[grid](
        *args, a_scale, b_scale, M, N, K, a.stride(0), b.stride(0), c.stride(0),
        a_scale.stride(0), a_scale.stride(1), b_scale.stride(0), b_scale.stride(1),
        RECIPE=RECIPES.index(recipe), FP8_OUT=c.dtype == E4M3, EXACT_CAST=False, HOST_DESC=host_descriptors)
    return c


def tuned_config(recipe: str = "row", host_descriptors: bool = True) -> str | None:
    """The configuration the autotuner picked last for ``recipe``, as a short label."""
    k = _tuned.get((recipe, host_descriptors))
    if k is None or k.best_config is None:
        return None
    kw = k.best_config.kwargs
    return FP8Config(kw["BLOCK_M"], kw["BLOCK_N"], kw["BLOCK_K"], kw["GROUP_M"], k.best_config.num_warps,
                     kw["NUM_STAGES"], kw["EPILOGUE_SUBTILE"], kw["FLATTEN"]).label()


# --------------------------------------------------------------------------------------------------
# references
# --------------------------------------------------------------------------------------------------
def expand_scale(s: torch.Tensor, rows: int, k: int, recipe: str, operand: str) -> torch.Tensor:
    """A scale broadcast to the full ``(rows, k)`` operand it scales (float32)."""
    if recipe == "tensor":
        return s.reshape(1, 1).expand(rows, k)
    if recipe == "row":
        return s.reshape(rows, 1).expand(rows, k)
    r = 1 if operand == "a" else SCALE_BLOCK
    return s.repeat_interleave(r, 0)[:rows].repeat_interleave(SCALE_BLOCK, 1)[:, :k]


def reference(a, b, a_scale, b_scale, recipe: str = "row") -> torch.Tensor:
    """float64 ``(a * a_scale) @ (b * b_scale).T`` of the dequantized operands: what the kernel computes,
    without its rounding (float32 accumulation, the output cast)."""
    M, K = a.shape
    N = b.shape[0]
    ad = a.double() * expand_scale(a_scale.double(), M, K, recipe, "a")
    bd = b.double() * expand_scale(b_scale.double(), N, K, recipe, "b")
    return ad @ bd.T
