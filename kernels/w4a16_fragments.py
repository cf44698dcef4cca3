"""Chapter 07, second kernel: the MXFP4 weight stored in the order the tensor cores read it.

``kernels.w4a16`` reads the standard MXFP4 layout (row after row, two codes a byte) and lets Triton
place the dequantized tile where Hopper's ``wgmma`` wants its first operand. That costs: Triton loads
bytes in one register layout, the matmul needs another, and the compiled loop spends 7-9 instructions
per weight on moving, unpacking and converting, three times what the memory system leaves time for at
decode sizes (``N = K = 8192`` in 10 microseconds is 6.7 T weights a second: a few instructions each).

This kernel removes the moving. ``prepack_mxfp4`` rewrites the weight once, offline, so that the
16 bytes each thread loads are exactly the 32 weights that thread holds in ``wgmma``'s register operand
(Triton's ``DotOperand`` layout, ``kWidth = 2``; :func:`fragment_bits` spells it out bit by bit):

* a tile of ``BLOCK_N`` rows and ``BLOCK_K`` columns is stored as ``BLOCK_N * BLOCK_K / 2`` bytes;
  byte ``e`` of it is loaded by thread ``(e / 16) mod (32 * num_warps)`` into its register
  ``e mod 16`` (+ 16 for each further round), which is the plain, coalesced layout Triton gives a
  contiguous 1-D load;
* ``tl.reshape`` into one axis per bit of ``e``, ``tl.permute`` and ``tl.reshape`` again turn that
  1-D tile into the ``(BLOCK_N, BLOCK_K / 2)`` tile of the operand. Reshapes and permutes only rename
  what each register holds, so when the bits are right the compiler needs no data movement at all:
  the tile goes from the load into the conversion and into ``wgmma`` without touching shared memory;
* the low nibble of a byte holds column ``k`` of the tile's first half (``k < BLOCK_K / 2``) and the
  high nibble column ``k + BLOCK_K / 2``: two matmuls (low nibbles with the first half of the
  activations, high nibbles with the second) and no interleaving;
* the conversion works on 32-bit words, four bytes at a time, and pairs the bytes ``(0, 2)`` and
  ``(1, 3)`` so that one shift places two codes at once (``mxfp4_word_to_bf16``). The two middle
  bytes of every group of four are swapped in memory to match, so that each output register still
  holds the pair the tensor core expects.

With ``split_k > 1`` several programs share one tile's K range; each writes its float32 partial sums
into a workspace, and the last to finish (an atomic counter per tile) adds them in a fixed order and
writes the bfloat16 output, then resets its counter: one launch, deterministic, and safe to replay in
a CUDA graph.

Scales at the bottom of e8m0's range: a scale byte of 0 (``2**-127``) reads as 0 on the float32 path,
as in ``kernels.w4a16.e8m0_to_float``, and on the PTX path without folding; with folded scales it is
kept (the weight becomes a bfloat16 subnormal). Weights that small are 0 for any practical purpose.

The same code runs in Triton's interpreter (the conversion then goes through float32, as in
``kernels.w4a16``, and the memory order without the swap is used); the word conversion is PTX and runs
on a GPU only.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from . import DEVICE, ON_GPU, world_mismatch
from .operands import check_grid
from .w4a16 import (MX_BLOCK, MXFP4Weight, check_activations, check_weight, e2m1_to_float, e8m0_to_float,
                    graph_of_call)

FOLD_MAX_SCALE = 128  # e8m0 scales up to 2**1: 2**(s - 1) is then a normal bfloat16 (see mxfp4_word_to_bf16)


# --------------------------------------------------------------------------------------------------
# the fragment order
# --------------------------------------------------------------------------------------------------
def fragment_bits(block_n: int, kp: int, num_warps: int) -> list[tuple[int, int]]:
    """The register operand layout of Hopper's ``wgmma`` for a ``(block_n, kp)`` bfloat16 tile
    (Triton's ``DotOperand`` layout of an ``NVMMA`` v3 parent, ``kWidth = 2``, ``num_warps`` warps
    stacked along the rows), written as the meaning of each bit of a thread-ordered index ``e``.

    ``e``'s bits, low to high: the thread's first four register bits, then the five lane bits, the
    warp bits, and the remaining register bits. Entry ``i`` is ``(axis, bit)``: bit ``i`` of ``e``
    adds ``2**bit`` to the row (axis 0) or the column (axis 1). Read from Triton's own description of
    the layout (``gluon``'s ``to_linear_layout``; a test compiles the kernel for sm_90 and checks
    that no layout conversion is left):

    * registers: column +1, row +8, column +8, column +16, ... up to the tile's width, then row
      ``+16 * num_warps`` and up (further 64-row blocks of the same warpgroup);
    * lanes: column +2, column +4, row +1, row +2, row +4 (the ``4 x 8`` quad arrangement of
      ``mma``'s operand fragments);
    * warps: row +16, +32, ... (each warp of a warpgroup owns 16 rows).

    Raises ValueError unless ``block_n`` and ``kp`` are powers of two with ``kp >= 32`` and
    ``block_n >= 16 * num_warps``, and ``num_warps`` is 4 or 8 (one or two warpgroups). With fewer
    warps, or 8 tokens a program, Triton uses ``mma.sync`` instead of ``wgmma``, whose operand is laid
    out otherwise: measured on the H200, the same bits then give wrong products, so they are refused."""
    if num_warps not in (4, 8):  # one or two warpgroups: wgmma (fewer warps get mma.sync, another layout)
        raise ValueError(f"fragment_bits: num_warps must be 4 or 8, got {num_warps!r}")
    for v, label, low in ((block_n, "block_n", 16 * num_warps), (kp, "block_k / 2", 32)):
        if not isinstance(v, int) or v < low or v & (v - 1):
            raise ValueError(f"fragment_bits: {label} must be a power of two >= {low}, got {v!r}")
    lw = num_warps.bit_length() - 1
    regs = [(1, 0), (0, 3), (1, 3)]
    regs += [(1, c) for c in range(4, kp.bit_length() - 1)]
    regs += [(0, r) for r in range(4 + lw, block_n.bit_length() - 1)]
    lanes = [(1, 1), (1, 2), (0, 0), (0, 1), (0, 2)]
    warps = [(0, 4 + i) for i in range(lw)]
    return regs[:4] + lanes + warps + regs[4:]


def memory_bits(block_n: int, kp: int, num_warps: int) -> list[tuple[int, int]]:
    """:func:`fragment_bits` with its two lowest bits swapped: the order the bytes are stored in, so
    that the word conversion's byte pairs ``(0, 2)`` and ``(1, 3)`` land in the registers ``wgmma``
    reads as pairs of neighbouring columns."""
    bits = fragment_bits(block_n, kp, num_warps)
    return [bits[1], bits[0]] + bits[2:]


def reshape_permute(bits: list[tuple[int, int]], block_n: int, kp: int) -> tuple[tuple, tuple]:
    """``(shape, perm)`` such that ``reshape(permute(reshape(flat, shape), perm), (block_n, kp))``
    turns a flat tile whose index bits mean ``bits`` into the ``(row, column)`` tile."""
    nb = len(bits)
    order = [(0, b) for b in reversed(range(block_n.bit_length() - 1))]
    order += [(1, b) for b in reversed(range(kp.bit_length() - 1))]
    return (2,) * nb, tuple(nb - 1 - bits.index(o) for o in order)


def _source_index(bits: list[tuple[int, int]], kp: int) -> torch.Tensor:
    """For each position ``e`` of a stored tile, the row-major index ``row * kp + col`` it holds."""
    e = torch.arange(1 << len(bits))
    src = torch.zeros_like(e)
    for i, (axis, b) in enumerate(bits):
        src += ((e >> i) & 1) << b if axis == 1 else (((e >> i) & 1) << b) * kp
    return src


# --------------------------------------------------------------------------------------------------
# the prepacked weight
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PrepackedMXFP4:
    """An MXFP4 weight ``(N, K)`` rewritten by :func:`prepack_mxfp4` for ``w4a16_fragment_kernel``.

    ``data``: uint8, ``N_pad * K_pad / 2`` bytes, tile after tile (``K_pad / block_k`` tiles of each
    ``block_n``-row block, in order), each tile in :func:`memory_bits` order; ``scales``: the e8m0
    scales ``(N_pad, K_pad / 32)`` uint8, row-major (padding rows and columns hold code 0 with scale
    127). ``fold``: every scale is at most ``FOLD_MAX_SCALE``, so the kernel may merge the code's
    ``2**-126`` into the block scale (one multiply instead of two). ``written_for``: the tile the bytes
    were laid out for; it must equal ``(block_n, block_k, num_warps)``, so that a copy with another
    tile (``dataclasses.replace``) is refused rather than read in the wrong order."""

    data: torch.Tensor
    scales: torch.Tensor
    N: int
    K: int
    block_n: int
    block_k: int
    num_warps: int
    fold: bool
    written_for: tuple = ()  # the (block_n, block_k, num_warps) prepack_mxfp4 laid data out for

    def __post_init__(self):
        check_prepacked(self, "PrepackedMXFP4")

    @property
    def shape(self) -> tuple[int, int]:
        return self.N, self.K

    @property
    def padded(self) -> tuple[int, int]:
        return self.scales.shape[0], self.scales.shape[1] * MX_BLOCK

    def nbytes(self) -> int:
        return self.data.numel() + self.scales.numel()


def prepack_mxfp4(w: MXFP4Weight, block_n: int = 128, block_k: int = 256, num_warps: int = 4) -> PrepackedMXFP4:
    """Rewrite an ``MXFP4Weight`` ``(N, K)`` in fragment order (see the module docstring), padding N
    to a multiple of ``block_n`` and K to a multiple of ``block_k`` with zeros. Runs once, in torch,
    on the weight's device. Raises TypeError/ValueError as ``check_weight`` (including a NaN scale)
    and as :func:`fragment_bits` for the tile sizes."""
    N, K = check_weight(w, "prepack_mxfp4")
    for v, label in ((block_n, "block_n"), (block_k, "block_k"), (num_warps, "num_warps")):
        if not _is_int(v):
            raise ValueError(f"prepack_mxfp4: {label} must be an int, got {v!r}")
    if block_k < 64 or block_k & (block_k - 1):
        raise ValueError(f"prepack_mxfp4: block_k must be a power of two >= 64, got {block_k}")
    kp = block_k // 2
    bits = memory_bits(block_n, kp, num_warps)  # validates the tile
    n_pad, k_pad = -(-N // block_n) * block_n, -(-K // block_k) * block_k
    codes = torch.stack((w.packed & 15, w.packed >> 4), dim=-1).reshape(N, K)
    codes = torch.nn.functional.pad(codes, (0, k_pad - K, 0, n_pad - N))
    tiles = codes.reshape(n_pad // block_n, block_n, k_pad // block_k, 2, kp).permute(0, 2, 1, 3, 4)
    packed = (tiles[:, :, :, 0] | (tiles[:, :, :, 1] << 4)).reshape(n_pad // block_n, k_pad // block_k, -1)
    data = packed[:, :, _source_index(bits, kp).to(packed.device)].contiguous().reshape(-1)
    scales = torch.nn.functional.pad(w.scales, (0, (k_pad - K) // MX_BLOCK, 0, n_pad - N), value=127).contiguous()
    fold = bool(scales.max() <= FOLD_MAX_SCALE)
    return PrepackedMXFP4(data, scales, N, K, block_n, block_k, num_warps, fold, (block_n, block_k, num_warps))


# --------------------------------------------------------------------------------------------------
# the kernel
# --------------------------------------------------------------------------------------------------
_WORD_TO_BF16 = """
    shl.b32 a, $4, 6; and.b32 a, a, 0x01C001C0; shl.b32 b, $4, 12; and.b32 b, b, 0x80008000; or.b32 $0, a, b;
    shr.b32 a, $4, 2; and.b32 a, a, 0x01C001C0; shl.b32 b, $4, 4; and.b32 b, b, 0x80008000; or.b32 $1, a, b;
    shl.b32 a, $4, 2; and.b32 a, a, 0x01C001C0; shl.b32 b, $4, 8; and.b32 b, b, 0x80008000; or.b32 $2, a, b;
    shr.b32 a, $4, 6; and.b32 a, a, 0x01C001C0; and.b32 b, $4, 0x80008000; or.b32 $3, a, b;
"""
_ASM_FOLDED = tl.constexpr("{ .reg .b32 a, b;" + _WORD_TO_BF16 + """
    mul.rn.bf16x2 $0, $0, $5; mul.rn.bf16x2 $1, $1, $6; mul.rn.bf16x2 $2, $2, $7; mul.rn.bf16x2 $3, $3, $8; }""")
_ASM_TWO_MULTIPLIES = tl.constexpr("{ .reg .b32 a, b, c; mov.b32 c, 0x7E807E80;" + _WORD_TO_BF16 + """
    mul.rn.bf16x2 $0, $0, c; mul.rn.bf16x2 $0, $0, $5; mul.rn.bf16x2 $1, $1, c; mul.rn.bf16x2 $1, $1, $6;
    mul.rn.bf16x2 $2, $2, c; mul.rn.bf16x2 $2, $2, $7; mul.rn.bf16x2 $3, $3, c; mul.rn.bf16x2 $3, $3, $8; }""")


@triton.jit
def mxfp4_word_to_bf16(packed, s_lo, s_hi, FOLD: tl.constexpr):
    """GPU only (inline PTX). Four packed bytes ``b0..b3`` -> eight bfloat16 values, ``(low, high)``
    nibbles, each times its scale (bfloat16, one per byte). A code's magnitude bits go to bfloat16's
    bits 6..8 and its sign to bit 15 (the value times ``2**-126``, as ``kernels.w4a16.
    e2m1_to_bf16_bits``); bytes 0 and 2 sit 16 bits apart, so one shift places both of their codes
    into the two halves of a register, and bytes 1 and 3 likewise: four registers of two values each
    for 15 integer instructions. Output order: ``b0, b2, b1, b3`` (the stored order swaps the middle
    bytes to match). ``FOLD``: the scales are ``2**(s - 1)``, the ``2**126`` already in them (one
    ``mul.bf16x2`` a register); else they are ``2**(s - 127)`` and ``2**126`` is a second multiply."""
    return tl.inline_asm_elementwise(
        asm=_ASM_FOLDED if FOLD else _ASM_TWO_MULTIPLIES, constraints="=r,=r,=r,=r,r,r,r,r,r",
        args=[packed, s_lo, s_hi], dtype=(tl.bfloat16, tl.bfloat16), is_pure=True, pack=4)


if tuple(int(v) for v in triton.__version__.split(".")[:2]) < (3, 7):
    @triton.jit
    def _rename(flat, SHAPE: tl.constexpr, PERM: tl.constexpr, BLOCK_N: tl.constexpr, KP: tl.constexpr):
        """flat tile -> (BLOCK_N, KP) operand tile (Triton 3.6 hands tuple constexprs over wrapped)."""
        return tl.reshape(tl.permute(tl.reshape(flat, SHAPE.value), PERM.value), (BLOCK_N, KP))
else:
    @triton.jit
    def _rename(flat, SHAPE: tl.constexpr, PERM: tl.constexpr, BLOCK_N: tl.constexpr, KP: tl.constexpr):
        """flat tile -> (BLOCK_N, KP) operand tile: reshapes and a permute rename registers only."""
        return tl.reshape(tl.permute(tl.reshape(flat, SHAPE), PERM), (BLOCK_N, KP))


@triton.jit
def _broadcast_blocks(s, BLOCK_N: tl.constexpr, KP: tl.constexpr):
    """(BLOCK_N, KP / 32) -> (BLOCK_N, KP): each block's scale repeated over its 32 columns."""
    return tl.reshape(tl.broadcast_to(s[:, :, None], (BLOCK_N, KP // 32, 32)), (BLOCK_N, KP))


@triton.jit
def w4a16_fragment_kernel(x_ptr, wq_ptr, ws_ptr, y_ptr, part_ptr, cnt_ptr,
                          M, N, K, N_PAD, K_PAD, stride_xm, stride_sn, stride_ym,
                          BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                          SPLIT_K: tl.constexpr, NUM_STAGES: tl.constexpr,
                          SHAPE: tl.constexpr, PERM: tl.constexpr, CONVERT: tl.constexpr, UPCAST: tl.constexpr,
                          EVEN_K: tl.constexpr, ONE_DOT: tl.constexpr = False, TMA: tl.constexpr = False):
    """``y = x @ W.T`` for a prepacked MXFP4 ``W``; see the module docstring. ``CONVERT``: 0 float32
    (exact everywhere, the interpreter's), 1 PTX words, 2 PTX words with folded scales."""
    pid_n = tl.program_id(0)
    pid_k = tl.program_id(1)
    pid_m = tl.program_id(2)
    KP: tl.constexpr = BLOCK_K // 2
    TILE: tl.constexpr = BLOCK_N * KP
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    toks = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, KP)
    sblk = tl.arange(0, BLOCK_K // 32)
    e = tl.arange(0, TILE)
    k_steps = K_PAD // BLOCK_K
    steps = tl.cdiv(k_steps, SPLIT_K)
    first = pid_k * steps
    last = tl.minimum(first + steps, k_steps)
    if not TMA:
        tiles = wq_ptr + pid_n.to(tl.int64) * k_steps * TILE  # this row block's tiles, one after another
    srow = ws_ptr + rows[:, None] * stride_sn
    if not TMA:
        xrow = x_ptr + toks[:, None] * stride_xm
    tok_ok = toks[:, None] < M
    acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    for ks in tl.range(first, last, num_stages=NUM_STAGES):
        k0 = ks * BLOCK_K
        if TMA:  # the tile as (TILE / 256, 256) bytes of a 2-D view, one copy; x likewise
            flat = tl.reshape(wq_ptr.load([(pid_n * k_steps + ks) * (TILE // 256), 0]), (TILE,))
        else:
            flat = tl.load(tiles + ks * TILE + e)  # 16 contiguous bytes a thread, coalesced
        p = _rename(flat, SHAPE, PERM, BLOCK_N, KP)  # renames registers only
        # the step's scales in one (BLOCK_N, BLOCK_K / 32) load (wide enough for the pipeliner's async
        # copies), then the first and second halves' blocks
        s = tl.load(srow + (k0 // 32 + sblk)[None, :])
        s_lo, s_hi = tl.split(tl.permute(tl.reshape(s, (BLOCK_N, 2, KP // 32)), (0, 2, 1)))
        if CONVERT == 0:
            lo = (e2m1_to_float(p & 15) * _broadcast_blocks(e8m0_to_float(s_lo), BLOCK_N, KP)).to(tl.bfloat16)
            hi = (e2m1_to_float(p >> 4) * _broadcast_blocks(e8m0_to_float(s_hi), BLOCK_N, KP)).to(tl.bfloat16)
        else:
            bias = 126 if CONVERT == 2 else 0  # 2**(s - 1) or 2**(s - 127) as bfloat16's bits
            b_lo = ((s_lo.to(tl.int16) + bias).to(tl.int16) << 7).to(tl.bfloat16, bitcast=True)
            b_hi = ((s_hi.to(tl.int16) + bias).to(tl.int16) << 7).to(tl.bfloat16, bitcast=True)
            lo, hi = mxfp4_word_to_bf16(p, _broadcast_blocks(b_lo, BLOCK_N, KP), _broadcast_blocks(b_hi, BLOCK_N, KP),
                                        CONVERT == 2)
        if TMA:  # zero-filled past M and K
            x_lo = x_ptr.load([pid_m * BLOCK_M, k0])
            x_hi = x_ptr.load([pid_m * BLOCK_M, k0 + KP])
        elif EVEN_K:  # K is a multiple of BLOCK_K: only the token rows need a mask
            x_lo = tl.load(xrow + (k0 + cols)[None, :], mask=tok_ok, other=0.0)
            x_hi = tl.load(xrow + (k0 + KP + cols)[None, :], mask=tok_ok, other=0.0)
        else:
            x_lo = tl.load(xrow + (k0 + cols)[None, :], mask=tok_ok & ((k0 + cols)[None, :] < K), other=0.0)
            x_hi = tl.load(xrow + (k0 + KP + cols)[None, :], mask=tok_ok & ((k0 + KP + cols)[None, :] < K), other=0.0)
        if ONE_DOT:  # one (BLOCK_N, BLOCK_K) operand: the halves side by side (a register renaming)
            w = tl.reshape(tl.permute(tl.join(lo, hi), (0, 2, 1)), (BLOCK_N, BLOCK_K))
            xx = tl.reshape(tl.permute(tl.join(x_lo, x_hi), (0, 2, 1)), (BLOCK_M, BLOCK_K))
            if UPCAST:
                acc = tl.dot(w.to(tl.float32), tl.trans(xx.to(tl.float32)), acc)
            else:
                acc = tl.dot(w, tl.trans(xx), acc)
        elif UPCAST:  # Triton's interpreter: bf16 tl.dot is wrong there, float32 is exact
            acc = tl.dot(lo.to(tl.float32), tl.trans(x_lo.to(tl.float32)), acc)
            acc = tl.dot(hi.to(tl.float32), tl.trans(x_hi.to(tl.float32)), acc)
        else:
            acc = tl.dot(lo, tl.trans(x_lo), acc)
            acc = tl.dot(hi, tl.trans(x_hi), acc)
    out = y_ptr + toks[None, :] * stride_ym + rows[:, None]  # acc is a tile of y.T
    mask = (rows[:, None] < N) & (toks[None, :] < M)
    if SPLIT_K == 1:
        tl.store(out, acc.to(y_ptr.dtype.element_ty), mask=mask)
    else:
        # serial split-K: park the partial sums, count arrivals; the last program adds them in order
        m_pad = tl.num_programs(2) * BLOCK_M
        part = part_ptr + toks[None, :] * N_PAD + rows[:, None]
        tl.store(part + pid_k * m_pad * N_PAD, acc)
        counter = cnt_ptr + pid_m * tl.num_programs(0) + pid_n
        if tl.atomic_add(counter, 1, sem="acq_rel") == SPLIT_K - 1:
            total = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
            for j in tl.static_range(SPLIT_K):
                total += tl.load(part + j * m_pad * N_PAD, cache_modifier=".cg")
            tl.store(out, total.to(y_ptr.dtype.element_ty), mask=mask)
            tl.atomic_xchg(counter, 0)  # ready for the next launch (and graph replay)


# --------------------------------------------------------------------------------------------------
# host side
# --------------------------------------------------------------------------------------------------
CONVERSIONS = ("float32", "ptx")  # "ptx" uses the folded scales when the weight allows it


@dataclass(frozen=True)
class FragmentLaunch:
    """Per-call choices of ``w4a16_fragment_kernel`` (the tile of the weight is fixed when it is
    prepacked): ``block_m`` tokens a program (16, 32, 64 or 128), ``split_k`` programs per tile's K
    range, ``num_stages`` of software pipelining, ``convert`` one of ``CONVERSIONS``."""

    block_m: int = 16
    split_k: int = 1
    num_stages: int = 3
    convert: str = "ptx"
    one_dot: bool = False  # join the two halves into one (BLOCK_N, BLOCK_K) operand: one matmul a step
    tma: bool = False  # load the weight tiles and the activations through TMA descriptors (GPU only)
    maxnreg: int | None = None  # cap on registers a thread (more programs resident on an SM)


def default_launch(M: int, pw: PrepackedMXFP4, sms: int | None = None, on_gpu: bool | None = None) -> FragmentLaunch:
    """The launch ``w4a16_prepacked`` uses when none is given: the smallest token tile that holds M
    (16 to 128) and, for M <= 64, split-K up to about four programs per SM (the H200 sweep of
    ``benchmarks/explore_w4a16.py fragments2``: at N = K = 8192 with 64 x 256 tiles, split-K 4 and
    three stages were fastest for M = 1 ... 16). In the interpreter: float32 conversion, one stage."""
    if not _is_int(M) or M < 1:
        raise ValueError(f"default_launch: M must be a positive int, got {M!r}")
    gpu = ON_GPU if on_gpu is None else on_gpu
    block_m = min(128, max(16, triton.next_power_of_2(M)))
    programs = triton.cdiv(pw.padded[0], pw.block_n) * triton.cdiv(M, block_m)
    sms = sms or (torch.cuda.get_device_properties(0).multi_processor_count if gpu else 132)
    k_steps = pw.padded[1] // pw.block_k
    split = 1
    while M <= 64 and programs * split * 2 <= 4 * sms and split * 2 <= k_steps:
        split *= 2
    if not gpu:
        return FragmentLaunch(block_m, split, 1, "float32")
    return FragmentLaunch(block_m, split, 3 if block_m <= 64 else 2, "ptx")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _require_prepacked(pw, name: str) -> None:
    if not isinstance(pw, PrepackedMXFP4):
        raise TypeError(f"{name}: the weight must be a kernels.w4a16_fragments.PrepackedMXFP4 "
                        f"(prepack_mxfp4 makes one), got {type(pw).__name__}")


def check_prepacked(pw, name: str) -> None:
    """Refuse anything but a consistent ``PrepackedMXFP4``: TypeError for another type or dtype,
    ValueError for tile sizes the layout cannot cover, tensors that are not contiguous, not on one
    device of this world, or whose sizes disagree with ``N``, ``K`` and the tile (``data`` holds
    ``N_pad * K_pad / 2`` bytes, ``scales`` is ``(N_pad, K_pad / 32)``, the padding less than one tile),
    and ``fold`` set with a scale above ``FOLD_MAX_SCALE``. Runs when one is made (it reads the scales
    once); a call only checks the type."""
    _require_prepacked(pw, name)
    for f in ("N", "K", "block_n", "block_k", "num_warps"):
        if not _is_int(getattr(pw, f)):
            raise TypeError(f"{name}: {f} must be an int, got {getattr(pw, f)!r}")
    if not isinstance(pw.fold, bool):
        raise TypeError(f"{name}: fold must be a bool, got {pw.fold!r}")
    if tuple(pw.written_for) != (pw.block_n, pw.block_k, pw.num_warps):
        raise ValueError(f"{name}: data was laid out for tiles {tuple(pw.written_for)} (block_n, block_k, num_warps), "
                         f"not {(pw.block_n, pw.block_k, pw.num_warps)}: prepack the weight again with prepack_mxfp4")
    fragment_bits(pw.block_n, pw.block_k // 2 if pw.block_k % 2 == 0 else pw.block_k, pw.num_warps)
    for t, label, dim in ((pw.data, "data", 1), (pw.scales, "scales", 2)):
        if not isinstance(t, torch.Tensor) or t.dtype != torch.uint8:
            raise TypeError(f"{name}: {label} must be a uint8 tensor")
        if t.dim() != dim or not t.is_contiguous():
            raise ValueError(f"{name}: {label} must be a contiguous {dim}-D tensor, got shape {tuple(t.shape)} "
                             f"and strides {t.stride()}")
        if t.device.type != torch.device(DEVICE).type:
            raise ValueError(f"{name}: {label} is on {t.device}; this world runs kernels on {DEVICE}")
    if pw.data.device != pw.scales.device:
        raise ValueError(f"{name}: data is on {pw.data.device}, scales on {pw.scales.device}")
    n_pad, k_pad = pw.padded
    if not (n_pad % pw.block_n == 0 and k_pad % pw.block_k == 0 and n_pad > 0 and k_pad > 0):
        raise ValueError(f"{name}: scales {tuple(pw.scales.shape)} do not cover whole {pw.block_n} x {pw.block_k} tiles")
    if not (0 < pw.N <= n_pad and n_pad - pw.N < pw.block_n and 0 < pw.K <= k_pad and k_pad - pw.K < pw.block_k
            and pw.K % MX_BLOCK == 0):
        raise ValueError(f"{name}: (N, K) = {(pw.N, pw.K)} does not match the padded tiles {(n_pad, k_pad)} "
                         f"(K a multiple of 32, less than one tile of padding)")
    if pw.data.numel() != n_pad * k_pad // 2:
        raise ValueError(f"{name}: data holds {pw.data.numel()} bytes; (N_pad, K_pad) = {(n_pad, k_pad)} needs "
                         f"{n_pad * k_pad // 2}")
    top = int(pw.scales.max())  # reads the scales: waits for the GPU, once
    if top == 255:
        raise ValueError(f"{name}: a scale is 255, e8m0's NaN")
    if pw.fold and top > FOLD_MAX_SCALE:
        raise ValueError(f"{name}: fold=True but a scale is {top} > {FOLD_MAX_SCALE} (2**(s - 1) would overflow bfloat16)")


def _check_launch(cfg, pw, name):
    if not isinstance(cfg, FragmentLaunch):
        raise TypeError(f"{name}: launch must be a FragmentLaunch, got {type(cfg).__name__}")
    for f in ("block_m", "split_k", "num_stages"):
        if not _is_int(getattr(cfg, f)):
            raise ValueError(f"{name}: launch.{f} must be an int, got {getattr(cfg, f)!r}")
    if not isinstance(cfg.one_dot, bool) or not isinstance(cfg.tma, bool):
        raise ValueError(f"{name}: launch.one_dot and launch.tma must be bools, got {cfg.one_dot!r}, {cfg.tma!r}")
    if cfg.tma and not ON_GPU:
        raise ValueError(f"{name}: launch.tma needs a GPU (Triton's interpreter has no TMA of its own)")
    if cfg.maxnreg is not None and not (_is_int(cfg.maxnreg) and 24 <= cfg.maxnreg <= 255):
        raise ValueError(f"{name}: launch.maxnreg must be None or an int in 24..255, got {cfg.maxnreg!r}")
    if cfg.block_m not in (16, 32, 64, 128):  # 8 would make Triton use mma.sync, whose operand layout differs
        raise ValueError(f"{name}: launch.block_m must be 16, 32, 64 or 128, got {cfg.block_m!r}")
    k_steps = pw.padded[1] // pw.block_k
    if not (isinstance(cfg.split_k, int) and 1 <= cfg.split_k <= k_steps):
        raise ValueError(f"{name}: launch.split_k must be an int in 1..{k_steps} (the weight has {k_steps} "
                         f"K tiles), got {cfg.split_k!r}")
    if not (isinstance(cfg.num_stages, int) and 1 <= cfg.num_stages <= 6):
        raise ValueError(f"{name}: launch.num_stages must be 1..6, got {cfg.num_stages!r}")
    if cfg.convert not in CONVERSIONS or (cfg.convert != "float32" and not ON_GPU):
        raise ValueError(f"{name}: launch.convert must be one of {CONVERSIONS} ('float32' only in Triton's "
                         f"interpreter), got {cfg.convert!r}")
    return cfg


def workspace(M: int, pw: PrepackedMXFP4, cfg: FragmentLaunch, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The split-K workspace of one launch shape: float32 partial sums ``(split_k, M_pad, N_pad)`` and
    the per-tile arrival counters (int32 zeros; the kernel leaves them at zero)."""
    grid_m = triton.cdiv(M, cfg.block_m)
    grid_n = pw.padded[0] // pw.block_n
    if cfg.split_k == 1:
        return torch.empty(1, dtype=torch.float32, device=device), torch.zeros(1, dtype=torch.int32, device=device)
    part = torch.empty((cfg.split_k, grid_m * cfg.block_m, pw.padded[0]), dtype=torch.float32, device=device)
    return part, torch.zeros(grid_m * grid_n, dtype=torch.int32, device=device)


@functools.lru_cache(maxsize=None)
def _renaming(block_n: int, kp: int, num_warps: int, stored_order: bool) -> tuple[tuple, tuple]:
    """The kernel's ``(SHAPE, PERM)``: the stored byte order for the elementwise float32 path, the operand
    layout for the PTX path (whose word conversion undoes the swap). Computed once per tile, not per call."""
    bits = memory_bits(block_n, kp, num_warps) if stored_order else fragment_bits(block_n, kp, num_warps)
    return reshape_permute(bits, block_n, kp)


def launch(x, pw: PrepackedMXFP4, y, cfg: FragmentLaunch, part, counters):
    """Launch with no checks (``w4a16_prepacked`` checks first): ``y`` ``(M, N)`` bfloat16,
    ``part``/``counters`` from :func:`workspace`. The lean path a CUDA graph captures."""
    M = x.shape[0]
    n_pad, k_pad = pw.padded
    kp = pw.block_k // 2
    shape, perm = _renaming(pw.block_n, kp, pw.num_warps, cfg.convert == "float32")
    convert = 0 if cfg.convert == "float32" else (2 if pw.fold else 1)
    grid = (n_pad // pw.block_n, cfg.split_k, triton.cdiv(M, cfg.block_m))
    xa, wa = x, pw.data
    sxm = x.stride(0) if M > 1 else pw.K  # a single row's stride is never used (and may be anything)
    if cfg.tma:
        from triton.tools.tensor_descriptor import TensorDescriptor

        tile = pw.block_n * kp
        xa = TensorDescriptor(x, [M, pw.K], [sxm, 1], [cfg.block_m, kp])
        wa = TensorDescriptor(pw.data.view(-1, 256), [pw.data.numel() // 256, 256], [256, 1], [tile // 256, 256])
    return w4a16_fragment_kernel[grid](
        xa, wa, pw.scales, y, part, counters, M, pw.N, pw.K, n_pad, k_pad,
        sxm, pw.scales.stride(0), y.stride(0),
        BLOCK_M=cfg.block_m, BLOCK_N=pw.block_n, BLOCK_K=pw.block_k, SPLIT_K=cfg.split_k,
        NUM_STAGES=cfg.num_stages, SHAPE=shape, PERM=perm, CONVERT=convert, UPCAST=not ON_GPU, EVEN_K=k_pad == pw.K,
        ONE_DOT=cfg.one_dot, TMA=cfg.tma, num_warps=pw.num_warps, **({"maxnreg": cfg.maxnreg} if cfg.maxnreg else {}))


def w4a16_prepacked(x: torch.Tensor, pw: PrepackedMXFP4, config: FragmentLaunch | None = None) -> torch.Tensor:
    """``x @ W.T`` for a weight prepacked by :func:`prepack_mxfp4`: ``x`` ``(M, K)`` bfloat16 on
    ``kernels.DEVICE``, contiguous along K. Returns ``(M, N)`` bfloat16, float32 accumulation,
    deterministic (split-K partial sums are added in a fixed order). Raises TypeError/ValueError for
    a wrong weight type, an ``x`` of another dtype, shape, layout or device, or a bad ``config``."""
    name = "w4a16_prepacked"
    _require_prepacked(pw, name)  # its parts were checked once, when it was made
    _check_x(name, x, pw)
    M = x.shape[0]
    cfg = _check_launch(config or default_launch(M, pw), pw, name)
    if world_mismatch(w4a16_fragment_kernel):
        raise RuntimeError(world_mismatch(w4a16_fragment_kernel))
    check_grid(name, (pw.padded[0] // pw.block_n, cfg.split_k, triton.cdiv(M, cfg.block_m)))
    y = torch.empty((M, pw.N), dtype=torch.bfloat16, device=x.device)
    launch(x, pw, y, cfg, *workspace(M, pw, cfg, x.device))
    return y


def _check_x(name, x, pw):
    check_activations(name, x, pw.shape, pw.data.device, rows_aligned=True, same_device=True)


class PrepackedW4A16Linear:
    """A bias-free linear layer ``y = x @ W.T`` on a prepacked MXFP4 weight, made for decode: the
    per-call work is one kernel launch, with outputs and split-K workspaces allocated once per M, and
    ``graph(M)`` records that launch in a CUDA graph. ``w``: an ``MXFP4Weight`` (prepacked here with
    ``block_n``, ``block_k``, ``num_warps``) or a ``PrepackedMXFP4``; ``launch``: a ``FragmentLaunch``
    used for every M (default: ``default_launch`` per M). The returned tensor is the layer's own
    buffer, overwritten by the next call with the same M."""

    def __init__(self, w, launch_config: FragmentLaunch | None = None, block_n: int = 128, block_k: int = 256,
                 num_warps: int = 4):
        self.pw = w if isinstance(w, PrepackedMXFP4) else prepack_mxfp4(w, block_n, block_k, num_warps)
        self.N, self.K = self.pw.shape
        self.config = launch_config
        self._buf = {}

    def _buffers(self, M, device):
        if M not in self._buf:
            cfg = _check_launch(self.config or default_launch(M, self.pw), self.pw, "PrepackedW4A16Linear")
            y = torch.empty((M, self.N), dtype=torch.bfloat16, device=device)
            self._buf[M] = (y, cfg, *workspace(M, self.pw, cfg, device))
        return self._buf[M]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if (x.dtype != torch.bfloat16 or x.dim() != 2 or x.shape[1] != self.K or x.stride(1) != 1
                or x.stride(0) % 8 or x.device != self.pw.data.device or x.shape[0] == 0 or x.is_neg()):
            _check_x("PrepackedW4A16Linear", x, self.pw)
        y, cfg, part, counters = self._buffers(x.shape[0], x.device)
        launch(x, self.pw, y, cfg, part, counters)
        return y

    def graph(self, M: int):
        """``(x_static, run)``: a CUDA graph of one call for ``M`` tokens (GPU only; RuntimeError in
        the interpreter): see ``kernels.w4a16.graph_of_call``."""
        return graph_of_call(self, M, self.K, self.pw.data.device, "PrepackedW4A16Linear.graph")


# --------------------------------------------------------------------------------------------------
# evidence from the compiled code
# --------------------------------------------------------------------------------------------------
_ARG_TYPES = {"x_ptr": "*bf16", "wq_ptr": "*u8", "ws_ptr": "*u8", "y_ptr": "*bf16", "part_ptr": "*fp32",
              "cnt_ptr": "*i32"}  # every other argument of the two W4A16 kernels is an i32 or a constexpr
_ALIGNED_ARGS = ("x_ptr", "wq_ptr", "ws_ptr", "y_ptr", "part_ptr", "cnt_ptr", "N", "K", "N_PAD", "K_PAD", "stride_xm",
                 "stride_wn", "stride_sn", "stride_ym")  # 16-byte aligned, or multiples of 16, at the chapter's sizes


def compile_sm90(fn, constants: dict, num_warps: int):
    """Compile a W4A16 kernel (``kernels.w4a16.w4a16_kernel`` or ``w4a16_fragment_kernel``) for sm_90,
    given its constexprs, with the argument types and the 16-byte alignment that a launch at the
    chapter's sizes gives it (Triton specializes on both). Needs the GPU world's ``triton.jit``, not
    a GPU (:func:`compiled_loop_mix` runs it in a fresh process). Returns Triton's ``CompiledKernel``
    (``.asm["ttgir"]``, ``.asm["cubin"]``, ...)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    names = list(fn.arg_names)
    sig = {n: ("constexpr" if n in constants else _ARG_TYPES.get(n, "i32")) for n in names}
    attrs = {(names.index(a),): [["tt.divisibility", 16]] for a in _ALIGNED_ARGS if a in names}
    return triton.compile(ASTSource(fn, sig, constants, attrs), target=GPUTarget("cuda", 90, 32),
                          options={"num_warps": num_warps})


def prepacked_constants(block_n: int, block_k: int, num_warps: int, split_k: int = 4, num_stages: int = 3) -> dict:
    """The constexprs of ``w4a16_fragment_kernel`` on the PTX path with folded scales, 16 tokens a
    program, K a multiple of ``block_k``, pointer loads: what ``launch`` passes at the chapter's sizes."""
    shape, perm = _renaming(block_n, block_k // 2, num_warps, False)
    return dict(BLOCK_M=16, BLOCK_N=block_n, BLOCK_K=block_k, SPLIT_K=split_k, NUM_STAGES=num_stages, SHAPE=shape,
                PERM=perm, CONVERT=2, UPCAST=False, EVEN_K=True, ONE_DOT=False, TMA=False)


_LOOP_MIX = r"""
import json, subprocess, sys, os
import torch
torch.cuda.is_available = lambda: True  # compile as the GPU world does: no GPU is needed to compile
import kernels
import triton
from kernels import inspect_code, w4a16 as W, w4a16_fragments as F

bin_dir = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")
bn, bk, nw = 64, 256, 4
cases = {
    "row order (kernels.w4a16, PTX conversion)": (W.w4a16_kernel, dict(BLOCK_M=16, BLOCK_N=bn, BLOCK_K=bk, SPLIT_K=2,
        NUM_STAGES=3, UPCAST=False, CONVERT=2, TMA=False)),
    "prepacked (kernels.w4a16_fragments)": (F.w4a16_fragment_kernel, F.prepacked_constants(bn, bk, nw)),
}
out = {}
for label, (fn, consts) in cases.items():
    k = F.compile_sm90(fn, consts, nw)
    path = os.path.join(sys.argv[1], "k.cubin")
    open(path, "wb").write(k.asm["cubin"])
    sass = subprocess.run([os.path.join(bin_dir, "cuobjdump"), "-sass", path], capture_output=True, text=True).stdout
    mix = inspect_code.sass_main_loop(sass)
    out[label] = {"instructions": sum(mix.values()), "weights": bn * bk // (32 * nw), "mix": dict(mix.most_common())}
print(json.dumps(out))
"""


def compiled_loop_mix() -> dict:
    """Compile both W4A16 kernels for sm_90 (any machine: Triton's compiler and ptxas need no GPU) at
    a 64 x 256 weight tile, 4 warps, the PTX conversion, and count the instructions of each kernel's
    K loop (``kernels.inspect_code.sass_main_loop``). Returns ``{kernel: {"instructions": n,
    "weights": weights a thread handles per loop step, "mix": {opcode: count}}}``. Runs in a fresh
    Python process (the interpreter world's ``triton.jit`` does not compile); takes seconds."""
    import json
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "TTC_WORLD")}
    with tempfile.TemporaryDirectory() as tmp:
        env.update(PYTHONPATH=str(Path(__file__).resolve().parents[1]), TRITON_CACHE_DIR=os.path.join(tmp, "cache"))
        proc = subprocess.run([sys.executable, "-c", _LOOP_MIX, tmp], capture_output=True, text=True, env=env,
                              timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"compiled_loop_mix: the compile failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])

