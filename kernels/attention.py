"""Chapter 08: attention, from three lines of PyTorch to one fused forward kernel.

``O = softmax(Q K^T * scale) V``, per batch and head. Written out, the scores ``S = Q K^T`` are an
``S_q x S_k`` matrix per head: at S = 16k that is 256 M scores, 1 GB in fp32 for every head of every
sequence, written once and read twice. The fused kernel never writes it: a program owns a tile of
``BLOCK_M`` query rows, streams the keys and values through in tiles of ``BLOCK_N``, and keeps for each
row a running maximum ``m``, a running sum ``l`` of ``exp(score - m)`` and a running output ``acc``
(:func:`online_softmax_update` says how; it is the same update in NumPy/torch that the chapter's
animation draws and the exercise asks for).

What the kernel takes:

* ``q`` ``(B, H, S_q, D)``, ``k``/``v`` ``(B, H_kv, S_k, D)`` (``layout="bhsd"``), or the models' own
  ``(B, S, H, D)`` (``layout="bshd"``): any strides, as long as the head dimension is contiguous
  (stride 1), which a ``.transpose(1, 2)`` of either layout keeps; no copy is made.
* float16, bfloat16 (and float32, which the tensor cores run as tf32 on a GPU);
  head dims 16, 32, 64 and 128;
* grouped-query attention: ``H`` a multiple of ``H_kv``, query head ``h`` reads key/value head
  ``h // (H / H_kv)`` (multi-query attention is ``H_kv = 1``);
* ``causal=True``: query ``i`` sees keys ``j <= i`` (``torch.nn.functional.scaled_dot_product_attention``'s
  ``is_causal``, aligned at the top left). Key tiles wholly above the diagonal are never loaded, and only
  the tiles that cross it are masked;
* ragged lengths: ``S_q`` and ``S_k`` need not be multiples of the tiles.

It returns ``O`` (in ``q``'s layout and dtype) and, on request, the log-sum-exp of each row's scaled scores,
``lse = log(sum_j exp(scale * q_i . k_j))`` (float32, ``(B, H, S_q)``, natural log): with it a backward pass
recomputes any probability as ``exp(scale * q_i . k_j - lse_i)`` without a second pass over the keys.

Inside, scores are kept in base 2: ``exp(x) = 2 ** (x * log2(e))``, and ``log2(e)`` is folded into the
scale once, so each score costs one multiply and one ``exp2`` (the GPU's native exponential).
"""
from __future__ import annotations

import contextlib
import math
import numbers
from dataclasses import dataclass

import numpy as np
import torch
import triton
import triton.language as tl

from . import DEVICE, ON_GPU, world_mismatch
from .operands import _dtype_advice, check_grid, cuda_device_problem

LOG2E = 1.4426950408889634  # log2(e): exp(x) == exp2(x * LOG2E)
HEAD_DIMS = (16, 32, 64, 128)
LAYOUTS = ("bhsd", "bshd")
DTYPES = (torch.float16, torch.bfloat16, torch.float32)
MAX_ROW_STRIDE = 2**31 // 256  # rows within a tile (at most 256) are addressed in 32 bits


# --------------------------------------------------------------------------------------------------
# online softmax, in plain NumPy/torch: the update the kernel makes, tile by tile
# --------------------------------------------------------------------------------------------------
def _online_step(m, l, acc, scores, values):
    lib = torch if isinstance(scores, torch.Tensor) else np
    m_tile = scores.max(1) if lib is np else scores.max(1).values
    m_new = lib.maximum(m, m_tile)
    # rows with nothing seen yet (m_new = -inf) shift by 0 instead of by -inf (which would give NaN)
    shift = lib.where(lib.isinf(m_new), lib.zeros_like(m_new), m_new)
    p = lib.exp(scores - shift[:, None])
    alpha = lib.exp(m - shift)
    return m_new, l * alpha + p.sum(1), acc * alpha[:, None] + p @ values, alpha


def online_softmax_update(m, l, acc, scores, values):
    """One step of the online softmax for a block of rows (NumPy arrays or torch tensors).

    ``m`` ``(R,)`` the running maximum of each row's scores so far (``-inf`` before the first tile),
    ``l`` ``(R,)`` the running sum of ``exp(score - m)``, ``acc`` ``(R, D)`` the running sum of
    ``exp(score - m) * value``; ``scores`` ``(R, T)`` this tile's scores (``-inf`` where masked),
    ``values`` ``(T, D)`` this tile's values. Returns the new ``(m, l, acc)``. After the last tile the
    output is ``acc / l`` and the log-sum-exp is ``m + log(l)``.

    When the maximum moves from ``m`` to ``m_new``, everything summed so far was weighted by
    ``exp(score - m)`` and must be by ``exp(score - m_new)``: both ``l`` and ``acc`` are multiplied by
    ``alpha = exp(m - m_new)`` (1 when the maximum did not move, 0 on the first tile). A row whose
    scores so far are all ``-inf`` keeps ``m = -inf``, ``l = 0`` and ``acc = 0``. Raises ``TypeError``
    for a mix of NumPy and torch, non-array or non-floating-point arguments, ``ValueError`` for shapes
    that do not agree, an empty tile or tensors on several devices."""
    arrays = (m, l, acc, scores, values)
    names = ("m", "l", "acc", "scores", "values")
    kinds = {isinstance(a, torch.Tensor) for a in arrays}
    if not all(isinstance(a, (torch.Tensor, np.ndarray)) for a in arrays) or len(kinds) != 1:
        got = ", ".join(f"{n}: {type(a).__name__}" for n, a in zip(names, arrays))
        raise TypeError(f"online_softmax_update: pass five NumPy arrays or five torch tensors, got {got}")
    dims = tuple(a.ndim for a in arrays)
    if dims != (1, 1, 2, 2, 2):
        raise ValueError(f"online_softmax_update: m (R,), l (R,), acc (R, D), scores (R, T), values (T, D); got "
                         f"{dims[0]}, {dims[1]}, {dims[2]}, {dims[3]} and {dims[4]} dimensions")
    R, T = scores.shape
    if m.shape[0] != R or l.shape[0] != R or acc.shape[0] != R or values.shape[0] != T or acc.shape[1] != values.shape[1]:
        raise ValueError(f"online_softmax_update: shapes do not agree: m {tuple(m.shape)}, l {tuple(l.shape)}, acc "
                         f"{tuple(acc.shape)}, scores {tuple(scores.shape)}, values {tuple(values.shape)}; expected "
                         f"m (R,), l (R,), acc (R, D), scores (R, T), values (T, D)")
    if T == 0:
        raise ValueError("online_softmax_update: the tile has no keys (scores (R, 0)): a tile holds at least one key "
                         "(a slice past the end of the row is empty)")
    for n, a in zip(names, arrays):
        if not (a.dtype.is_floating_point if isinstance(a, torch.Tensor) else np.issubdtype(a.dtype, np.floating)):
            raise TypeError(f"online_softmax_update: {n} must hold floating-point numbers, got {a.dtype}")
    if kinds == {True} and len({a.device for a in arrays}) != 1:
        raise ValueError("online_softmax_update: m, l, acc, scores and values must be on one device, got "
                         + ", ".join(f"{n}: {a.device}" for n, a in zip(names, arrays)))
    return _online_step(m, l, acc, scores, values)[:3]


def online_softmax_steps(scores, values, tile: int):
    """The states of :func:`online_softmax_update` over one block of rows, ``tile`` keys at a time
    (NumPy, float64): a list of dicts ``{"start", "m", "l", "acc", "alpha"}``, one after each tile
    (``alpha``: the factor the earlier sums were rescaled by), for the chapter's plots and animation.
    ``scores`` ``(R, S)``, ``values`` ``(S, D)``."""
    scores = np.asarray(scores, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if scores.ndim != 2 or values.ndim != 2 or scores.shape[1] != values.shape[0]:
        raise ValueError(f"online_softmax_steps: scores (R, S) and values (S, D) must agree, got "
                         f"{scores.shape} and {values.shape}")
    if not (isinstance(tile, int) and not isinstance(tile, bool) and tile >= 1):
        raise ValueError(f"online_softmax_steps: tile must be a positive int, got {tile!r}")
    R, D = scores.shape[0], values.shape[1]
    m, l, acc = np.full(R, -np.inf), np.zeros(R), np.zeros((R, D))
    steps = []
    for start in range(0, scores.shape[1], tile):
        m, l, acc, alpha = _online_step(m, l, acc, scores[:, start:start + tile], values[start:start + tile])
        steps.append({"start": start, "m": m.copy(), "l": l.copy(), "acc": acc.copy(), "alpha": alpha})
    return steps


def _expand_kv(t: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, H_kv, S, D) -> (B, H, S, D): each key/value head repeated for its group of query heads."""
    return t.repeat_interleave(heads // t.shape[1], dim=1)


def _to_bhsd(t: torch.Tensor, layout: str) -> torch.Tensor:
    return t if layout == "bhsd" else t.transpose(1, 2)


def attention_reference(q, k, v, causal: bool = False, scale: float | None = None, layout: str = "bhsd"):
    """``(O, lse)`` in float64, by the three lines (scores, softmax, weighted sum) on the exact values
    of the inputs: ``O`` in ``q``'s layout, ``lse`` ``(B, H, S_q)`` (natural log). Differentiable
    (autograd gives the backward pass's reference). For tests; it materializes the whole
    ``S_q x S_k`` score matrix, so keep it small."""
    qb, kb, vb = (_to_bhsd(t, layout).to(torch.float64) for t in (q, k, v))  # differentiable: a backward reference
    D, H = qb.shape[-1], qb.shape[1]
    scale = 1.0 / math.sqrt(D) if scale is None else float(scale)
    kb, vb = _expand_kv(kb, H), _expand_kv(vb, H)
    s = (qb @ kb.transpose(-1, -2)) * scale
    if causal:
        Sq, Sk = s.shape[-2:]
        keep = torch.ones(Sq, Sk, dtype=torch.bool, device=s.device).tril()
        s = s.masked_fill(~keep, float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    o = torch.softmax(s, dim=-1) @ vb
    return (o if layout == "bhsd" else o.transpose(1, 2)), lse


def attention_reference_tiled(q, k, v, causal: bool = False, scale: float | None = None, block_n: int = 64):
    """The same ``(O, lse)`` as :func:`attention_reference` (``bhsd``, float64), computed as the kernel
    does: keys and values one tile of ``block_n`` at a time through :func:`online_softmax_update`,
    never holding more than one tile of scores per row."""
    qb, kb, vb = (t.detach().to(torch.float64) for t in (q, k, v))
    B, H, Sq, D = qb.shape
    Sk = kb.shape[2]
    scale = 1.0 / math.sqrt(D) if scale is None else float(scale)
    kb, vb = _expand_kv(kb, H), _expand_kv(vb, H)
    rows = torch.arange(Sq, device=qb.device)
    o = torch.empty_like(qb)
    lse = torch.empty(B, H, Sq, dtype=torch.float64, device=qb.device)
    for b in range(B):
        for h in range(H):
            m = torch.full((Sq,), float("-inf"), dtype=torch.float64, device=qb.device)
            l = torch.zeros(Sq, dtype=torch.float64, device=qb.device)
            acc = torch.zeros(Sq, D, dtype=torch.float64, device=qb.device)
            for start in range(0, Sk, block_n):
                s = (qb[b, h] @ kb[b, h, start:start + block_n].T) * scale
                if causal:
                    cols = torch.arange(start, start + s.shape[1], device=qb.device)
                    s = s.masked_fill(cols[None, :] > rows[:, None], float("-inf"))
                m, l, acc = online_softmax_update(m, l, acc, s, vb[b, h, start:start + block_n])
            o[b, h] = acc / l[:, None]
            lse[b, h] = m + torch.log(l)
    return o, lse


# --------------------------------------------------------------------------------------------------
# the kernel
# --------------------------------------------------------------------------------------------------
@triton.jit
def _attend(acc, l_i, m_i, q, k_src, v_src, stride_ks, stride_vs, start, end, offs_m, S_K, qk_scale,
            HEAD_DIM: tl.constexpr, BLOCK_N: tl.constexpr, MASK: tl.constexpr, CAUSAL: tl.constexpr,
            UPCAST: tl.constexpr, TMA: tl.constexpr, WARP_SPECIALIZE: tl.constexpr, LONG: tl.constexpr = False):
    """Key/value tiles ``start, start + BLOCK_N, ... < end`` into the running ``(acc, l_i, m_i)``.
    ``MASK``: check each key against ``S_K`` and, if ``CAUSAL``, against the row (the tiles that cross
    the diagonal or the end); the others skip the checks. ``TMA``: ``k_src``/``v_src`` are tensor
    descriptors (rows past ``S_K`` arrive as zeros), else base pointers."""
    offs_d = tl.arange(0, HEAD_DIM)
    for n0 in tl.range(start, end, BLOCK_N, warp_specialize=WARP_SPECIALIZE):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        k_at, v_at, rows_n = k_src, v_src, offs_n
        if LONG:  # views of 2**31 elements or more: the tile's first row in 64 bits, the rest from there
            if not TMA:
                k_at = k_src + tl.cast(n0, tl.int64) * stride_ks
                v_at = v_src + tl.cast(n0, tl.int64) * stride_vs
                rows_n = tl.arange(0, BLOCK_N)
        if TMA:
            k = k_src.load([n0, 0])
        elif MASK:
            k = tl.load(k_at + rows_n[:, None] * stride_ks + offs_d[None, :], mask=offs_n[:, None] < S_K, other=0.0)
        else:
            k = tl.load(k_at + rows_n[:, None] * stride_ks + offs_d[None, :])
        if UPCAST:  # Triton's interpreter: bf16 tl.dot is wrong there, float32 is exact
            s = tl.dot(q.to(tl.float32), tl.trans(k.to(tl.float32)))
        else:
            s = tl.dot(q, tl.trans(k))
        if MASK:
            keep = offs_n[None, :] < S_K
            if CAUSAL:
                keep = keep & (offs_n[None, :] <= offs_m[:, None])
            s = tl.where(keep, s, float("-inf"))
        # base-2 units (log2(e) is in qk_scale, which is positive): the row maximum of the scaled scores
        # is the scaled maximum, and scaling and shifting each score is one fused multiply-add
        m_new = tl.maximum(m_i, tl.max(s, 1) * qk_scale)
        p = tl.math.exp2(s * qk_scale - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        if TMA:
            v = v_src.load([n0, 0])
        elif MASK:
            v = tl.load(v_at + rows_n[:, None] * stride_vs + offs_d[None, :], mask=offs_n[:, None] < S_K, other=0.0)
        else:
            v = tl.load(v_at + rows_n[:, None] * stride_vs + offs_d[None, :])
        if UPCAST:
            acc = acc * alpha[:, None] + tl.dot(p, v.to(tl.float32))
        else:
            acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None])
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def _kv_tile(src, row0, stride, offs_n, offs_d, TMA: tl.constexpr):
    """Rows ``row0 + offs_n`` of K or V: a tensor descriptor's tile, or loads from a base pointer whose
    rows are ``stride`` apart (unmasked: the caller's rows exist)."""
    if TMA:
        t = src.load([row0, 0])
    else:
        t = tl.load(src + (row0 + offs_n)[:, None] * stride + offs_d[None, :])
    return t


@triton.jit
def _softmax_pv(acc, l_i, m_i, s, v_src, row0, stride_vs, offs_n, offs_d, qk_scale, UPCAST: tl.constexpr,
                TMA: tl.constexpr):
    """One online-softmax step (base 2, ``qk_scale`` positive) with a tile's scores ``s``, then its
    values (loaded here, after the exponentials) into ``acc``; returns ``(acc, l_i, m_i)``."""
    m_new = tl.maximum(m_i, tl.max(s, 1) * qk_scale)
    p = tl.math.exp2(s * qk_scale - m_new[:, None])
    alpha = tl.math.exp2(m_i - m_new)
    l_i = l_i * alpha + tl.sum(p, 1)
    v = _kv_tile(v_src, row0, stride_vs, offs_n, offs_d, TMA)
    if UPCAST:
        acc = acc * alpha[:, None] + tl.dot(p, v.to(tl.float32))
    else:
        acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None])
    return acc, l_i, m_new


@triton.jit
def _attend_overlap(acc, l_i, m_i, q, k_src, v_src, stride_ks, stride_vs, start, end, qk_scale,
                    HEAD_DIM: tl.constexpr, BLOCK_N: tl.constexpr, UPCAST: tl.constexpr, TMA: tl.constexpr,
                    LONG: tl.constexpr = False):
    """Like :func:`_attend` for unmasked tiles, software-pipelined by hand (FlashAttention-3's
    intra-warpgroup overlap): the scores of tile ``j + 1`` are asked of the tensor cores before the
    softmax of tile ``j`` runs, so the two can overlap (``benchmarks/probe_attention.py`` reads the
    compiled loop). Needs ``end - start`` a multiple of ``BLOCK_N``."""
    offs_d = tl.arange(0, HEAD_DIM)
    offs_n = tl.arange(0, BLOCK_N)
    if LONG:  # views of 2**31 elements or more: row offsets in 64 bits
        offs_n = offs_n.to(tl.int64)
    if start < end:
        s = _dot(q, tl.trans(_kv_tile(k_src, start, stride_ks, offs_n, offs_d, TMA)), UPCAST)
        for n0 in tl.range(start, end - BLOCK_N, BLOCK_N):
            s_next = _dot(q, tl.trans(_kv_tile(k_src, n0 + BLOCK_N, stride_ks, offs_n, offs_d, TMA)), UPCAST)
            acc, l_i, m_i = _softmax_pv(acc, l_i, m_i, s, v_src, n0, stride_vs, offs_n, offs_d, qk_scale, UPCAST, TMA)
            s = s_next
        acc, l_i, m_i = _softmax_pv(acc, l_i, m_i, s, v_src, end - BLOCK_N, stride_vs, offs_n, offs_d, qk_scale,
                                    UPCAST, TMA)
    return acc, l_i, m_i


@triton.jit
def attention_fwd_kernel(q_ptr, k_ptr, v_ptr, o_ptr, lse_ptr,
                         stride_qb, stride_qh, stride_qs, stride_kb, stride_kh, stride_ks,
                         stride_vb, stride_vh, stride_vs, stride_ob, stride_oh, stride_os,
                         H, GROUP, S_Q, S_K, qk_scale,
                         HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                         CAUSAL: tl.constexpr, STORE_LSE: tl.constexpr, UPCAST: tl.constexpr,
                         TMA: tl.constexpr = False, WARP_SPECIALIZE: tl.constexpr = False,
                         EVEN_N: tl.constexpr = False, OVERLAP: tl.constexpr = False,
                         LONGEST_FIRST: tl.constexpr = False, LONG: tl.constexpr = False):
    """One program: ``BLOCK_M`` query rows of one (batch, head); see the module docstring. ``EVEN_N``:
    ``S_K`` is a multiple of ``BLOCK_N`` (no ragged last key tile to mask, no second loop). ``TMA``:
    Q, K, V and O move through tensor descriptors built here, one 2-D ``(S, HEAD_DIM)`` view per head;
    ``WARP_SPECIALIZE``: ask Triton for a producer warp and consumer warpgroups in the key loop (then
    with one loop over every key tile, masked where needed)."""
    pid_m = tl.program_id(0)
    if LONGEST_FIRST:  # causal: the query tiles with the most keys start first
        pid_m = tl.num_programs(0) - 1 - pid_m
    bh = tl.program_id(1)
    b = (bh // H).to(tl.int64)
    h = bh % H
    hk = (h // GROUP).to(tl.int64)  # grouped-query attention: the key/value head of this query head
    h = h.to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    q_base = q_ptr + b * stride_qb + h * stride_qh
    k_src = k_ptr + b * stride_kb + hk * stride_kh
    v_src = v_ptr + b * stride_vb + hk * stride_vh
    o_base = o_ptr + b * stride_ob + h * stride_oh
    if TMA:
        q_desc = tl.make_tensor_descriptor(q_base, shape=[S_Q, HEAD_DIM], strides=[stride_qs, 1],
                                           block_shape=[BLOCK_M, HEAD_DIM])
        k_src = tl.make_tensor_descriptor(k_src, shape=[S_K, HEAD_DIM], strides=[stride_ks, 1],
                                          block_shape=[BLOCK_N, HEAD_DIM])
        v_src = tl.make_tensor_descriptor(v_src, shape=[S_K, HEAD_DIM], strides=[stride_vs, 1],
                                          block_shape=[BLOCK_N, HEAD_DIM])
        q = q_desc.load([pid_m * BLOCK_M, 0])
    else:
        rows_m = offs_m  # views of 2**31 elements or more: 64-bit offsets
        if LONG:
            rows_m = offs_m.to(tl.int64)
        q = tl.load(q_base + rows_m[:, None] * stride_qs + offs_d[None, :], mask=offs_m[:, None] < S_Q, other=0.0)
    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, HEAD_DIM), dtype=tl.float32)
    if WARP_SPECIALIZE:
        # Triton 3.6 warp-specializes a kernel with a single key loop (a second loop, for the diagonal or
        # the ragged tail, fails inside its compiler): one loop, every tile masked when any may need it
        end = tl.minimum((pid_m + 1) * BLOCK_M, S_K) if CAUSAL else S_K
        acc, l_i, m_i = _attend(acc, l_i, m_i, q, k_src, v_src, stride_ks, stride_vs, 0, end, offs_m, S_K,
                                qk_scale, HEAD_DIM, BLOCK_N, CAUSAL or not EVEN_N, CAUSAL, UPCAST, TMA, True, LONG)
    elif CAUSAL:
        # keys below the tile's first row need no mask; the tiles from there to its last row cross the
        # diagonal; keys past its last row are never loaded (BLOCK_M is a multiple of BLOCK_N)
        diag = tl.minimum(pid_m * BLOCK_M, (S_K // BLOCK_N) * BLOCK_N)
        if OVERLAP:
            acc, l_i, m_i = _attend_overlap(acc, l_i, m_i, q, k_src, v_src, stride_ks, stride_vs, 0, diag,
                                            qk_scale, HEAD_DIM, BLOCK_N, UPCAST, TMA, LONG)
        else:
            acc, l_i, m_i = _attend(acc, l_i, m_i, q, k_src, v_src, stride_ks, stride_vs, 0, diag, offs_m, S_K,
                                    qk_scale, HEAD_DIM, BLOCK_N, False, True, UPCAST, TMA, False, LONG)
        end = tl.minimum((pid_m + 1) * BLOCK_M, S_K)
        acc, l_i, m_i = _attend(acc, l_i, m_i, q, k_src, v_src, stride_ks, stride_vs, diag, end, offs_m, S_K,
                                qk_scale, HEAD_DIM, BLOCK_N, True, True, UPCAST, TMA, False, LONG)
    else:
        full = (S_K // BLOCK_N) * BLOCK_N  # whole tiles: no mask; then the ragged last one, masked
        if OVERLAP:
            acc, l_i, m_i = _attend_overlap(acc, l_i, m_i, q, k_src, v_src, stride_ks, stride_vs, 0, full,
                                            qk_scale, HEAD_DIM, BLOCK_N, UPCAST, TMA, LONG)
        else:
            acc, l_i, m_i = _attend(acc, l_i, m_i, q, k_src, v_src, stride_ks, stride_vs, 0, full, offs_m, S_K,
                                    qk_scale, HEAD_DIM, BLOCK_N, False, False, UPCAST, TMA, False, LONG)
        if not EVEN_N:
            acc, l_i, m_i = _attend(acc, l_i, m_i, q, k_src, v_src, stride_ks, stride_vs, full, S_K, offs_m, S_K,
                                    qk_scale, HEAD_DIM, BLOCK_N, True, False, UPCAST, TMA, False, LONG)
    o = (acc / l_i[:, None]).to(o_ptr.dtype.element_ty)
    if TMA:  # rows past S_Q are dropped by the copy engine
        o_desc = tl.make_tensor_descriptor(o_base, shape=[S_Q, HEAD_DIM], strides=[stride_os, 1],
                                           block_shape=[BLOCK_M, HEAD_DIM])
        o_desc.store([pid_m * BLOCK_M, 0], o)
    else:
        rows_m = offs_m
        if LONG:
            rows_m = offs_m.to(tl.int64)
        tl.store(o_base + rows_m[:, None] * stride_os + offs_d[None, :], o, mask=offs_m[:, None] < S_Q)
    if STORE_LSE:  # natural log: (m + log2(l)) is in base 2
        tl.store(lse_ptr + bh.to(tl.int64) * S_Q + offs_m, (m_i + tl.math.log2(l_i)) / 1.4426950408889634,
                 mask=offs_m < S_Q)


# --------------------------------------------------------------------------------------------------
# host side
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AttentionConfig:
    """Per-call choices of :func:`attention`: ``block_m`` query rows a program, ``block_n`` keys a
    step (``block_m`` a multiple of ``block_n``; both powers of two, at least 16), ``num_warps``,
    ``num_stages`` of software pipelining (GPU), ``tma`` (tensor descriptors: every stride but the head
    dimension's and every base address 16-byte aligned), ``warp_specialize``; ``overlap``: the loop over
    unmasked key tiles computes the next tile's scores before this tile's softmax (FlashAttention-3's
    intra-warpgroup overlap written by hand; not with ``warp_specialize``); ``longest_first``: causal
    query tiles launch in reverse order, the ones with the most keys first (no effect without a mask)."""
    block_m: int = 128
    block_n: int = 64
    num_warps: int = 8
    num_stages: int = 3
    tma: bool = False  # tensor descriptors (TMA on Hopper) for Q, K, V and O
    warp_specialize: bool = False  # a producer warp and consumer warpgroups in the key loop (with tma, 4 warps)
    overlap: bool = False  # the next tile's scores issued before this tile's softmax (unmasked tiles)
    longest_first: bool = False  # causal: launch the query tiles with the most keys first

    def label(self) -> str:
        return (f"{self.block_m}x{self.block_n} w{self.num_warps} s{self.num_stages}" + (" tma" if self.tma else "")
                + (" ws" if self.warp_specialize else "") + (" overlap" if self.overlap else "")
                + (" longest-first" if self.longest_first else ""))


def default_config(head_dim: int, seq_q: int, dtype=torch.bfloat16, on_gpu: bool | None = None) -> AttentionConfig:
    """The tiles :func:`attention` uses when none is given. In the interpreter: 16 x 16 (small sizes run
    fastest there). On a GPU (from the H200 sweep of ``benchmarks/explore_attention.py``): 128 query
    rows a program and 128 keys a step at head dim 128, 64 keys at head dim 64, 8 warps, 3 stages;
    64 rows for short sequences; float32 (twice the bytes a tile) with smaller tiles, to fit in
    shared memory."""
    on_gpu = ON_GPU if on_gpu is None else on_gpu
    if not on_gpu:
        return AttentionConfig(16, 16, 4, 1)
    if dtype == torch.float32:
        return AttentionConfig(64, 32, 4, 2)
    if seq_q <= 64:
        return AttentionConfig(64, 64, 4, 3)
    return AttentionConfig(128, 128 if head_dim >= 128 else 64, 8 if head_dim >= 64 else 4, 3)


def long_rows(*views) -> bool:
    """Whether any ``(B, H, S, D)`` view spans 2**31 elements or more along its rows (then the kernels
    address each tile's first row in 64 bits)."""
    return any(t.shape[2] * t.stride(2) >= 2**31 for t in views)


def _pow2(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0 and v & (v - 1) == 0


def check_config(cfg, name: str = "attention") -> AttentionConfig:
    """Raise ``TypeError``/``ValueError`` for a config the kernel cannot run; return it."""
    if not isinstance(cfg, AttentionConfig):
        raise TypeError(f"{name}: config must be an AttentionConfig, got {type(cfg).__name__}")
    for f in ("block_m", "block_n"):
        v = getattr(cfg, f)
        if not (_pow2(v) and 16 <= v <= 256):
            raise ValueError(f"{name}: config.{f} must be a power of two in 16..256, got {v!r}")
    if cfg.block_m % cfg.block_n:
        raise ValueError(f"{name}: config.block_m ({cfg.block_m}) must be a multiple of config.block_n "
                         f"({cfg.block_n}): the causal loop stops at a query tile's last row")
    if not isinstance(cfg.num_warps, int) or isinstance(cfg.num_warps, bool) or cfg.num_warps not in (1, 2, 4, 8, 16):
        raise ValueError(f"{name}: config.num_warps must be 1, 2, 4, 8 or 16, got {cfg.num_warps!r}")
    if not (isinstance(cfg.num_stages, int) and not isinstance(cfg.num_stages, bool) and 1 <= cfg.num_stages <= 6):
        raise ValueError(f"{name}: config.num_stages must be an int in 1..6, got {cfg.num_stages!r}")
    for f in ("tma", "warp_specialize", "overlap", "longest_first"):
        if not isinstance(getattr(cfg, f), bool):
            raise ValueError(f"{name}: config.{f} must be True or False, got {getattr(cfg, f)!r}")
    if cfg.warp_specialize and not (cfg.tma and cfg.num_warps == 4):
        raise ValueError(f"{name}: config.warp_specialize needs tma=True and num_warps=4 (Triton 3.6 on Hopper "
                         f"specializes only that: with pointer loads it fails to compile, with 8 warps it "
                         f"silently builds an ordinary kernel), got tma={cfg.tma}, num_warps={cfg.num_warps}")
    if cfg.overlap and cfg.warp_specialize:
        raise ValueError(f"{name}: config.overlap and config.warp_specialize do not go together: the warp-specialized "
                         f"kernel has a single key loop of its own")
    return cfg


def tma_problem(*tensors) -> str | None:
    """Why tensor descriptors cannot address these ``(B, H, S, D)`` views (base addresses and the batch,
    head and sequence strides must be multiples of 16 bytes), or ``None``."""
    for t in tensors:
        es = t.element_size()
        if t.data_ptr() % 16:
            return f"a base address is not 16-byte aligned ({t.data_ptr() % 16} bytes off)"
        for d in range(3):
            if t.shape[d] > 1 and (t.stride(d) * es) % 16:
                return f"a stride of {t.stride(d) * es} bytes (shape {tuple(t.shape)}) is not a multiple of 16"
    return None


def _check_tensor(t, label: str, name: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: {label} must be a torch.Tensor, got {type(t).__name__}")
    if t.layout != torch.strided or t.is_nested:
        raise ValueError(f"{name}: {label} must be a dense (strided) tensor, got {t.layout}")
    if t.dim() != 4:
        raise ValueError(f"{name}: {label} must be 4-D (batch, heads, sequence, head dim) or (batch, sequence, "
                         f"heads, head dim) with layout='bshd', got shape {tuple(t.shape)}")
    if t.dtype not in DTYPES:
        raise TypeError(f"{name}: {_dtype_advice(t, label)}")
    if t.is_neg() or t.is_conj():
        raise ValueError(f"{name}: {label} is a view with a pending negation or conjugation; call "
                         f"{label}.resolve_neg() / .resolve_conj() first")
    if t.device.type != torch.device(DEVICE).type:
        where = "a CUDA GPU" if ON_GPU else "the CPU (Triton's interpreter; no GPU here)"
        raise ValueError(f"{name}: {label} is on {t.device}, but this process runs kernels on {where}; "
                         f"move it with .to(kernels.DEVICE)")
    if ON_GPU and t.device.type == "cuda":
        problem = cuda_device_problem(label, t.device, torch.cuda.current_device())
        if problem:
            raise ValueError(f"{name}: {problem}")
    if t.numel() == 0:
        raise ValueError(f"{name}: {label} is empty (shape {tuple(t.shape)})")
    if any(s < 0 for s in t.stride()):
        raise ValueError(f"{name}: {label} has a negative stride {t.stride()}")
    if t.stride(3) != 1 and t.shape[3] > 1:
        raise ValueError(f"{name}: {label}'s head dimension must be contiguous (stride 1), got strides "
                         f"{t.stride()}; the other three dimensions may have any strides (pass "
                         f"{label}.contiguous() if it came from a transpose of the last dimension)")


def check_flags(name: str, **flags) -> None:
    """Raise ``TypeError`` unless every flag is a bool (``causal="False"`` would be truthy)."""
    for k, v in flags.items():
        if not isinstance(v, (bool, np.bool_)):
            raise TypeError(f"{name}: {k} must be True or False, got {v!r}")


def check_attention(name, q, k, v, layout: str, scale) -> tuple[int, int, int, int, int, int]:
    """Check the operands of :func:`attention`; return ``(B, H, H_kv, S_q, S_k, D)``. Raises
    ``TypeError`` (types, dtypes) or ``ValueError`` (layout, shapes, head dims, devices, strides)."""
    if layout not in LAYOUTS:
        raise ValueError(f"{name}: layout must be one of {LAYOUTS}, got {layout!r}")
    for t, label in ((q, "q"), (k, "k"), (v, "v")):
        _check_tensor(t, label, name)
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"{name}: q, k and v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"{name}: q, k and v must be on one device, got {q.device}, {k.device}, {v.device}")
    qb, kb, vb = (_to_bhsd(t, layout) for t in (q, k, v))
    B, H, Sq, D = qb.shape
    if tuple(kb.shape) != tuple(vb.shape):
        raise ValueError(f"{name}: k and v must have the same shape, got {tuple(k.shape)} and {tuple(v.shape)}")
    Bk, Hk, Sk, Dk = kb.shape
    dims = "(B, H, S, D)" if layout == "bhsd" else "(B, S, H, D)"
    if Bk != B:
        raise ValueError(f"{name}: q has batch {B} but k/v have {Bk} (shapes {dims}: {tuple(q.shape)}, {tuple(k.shape)})")
    if Dk != D:
        raise ValueError(f"{name}: q has head dim {D} but k/v have {Dk}")
    if D not in HEAD_DIMS:
        raise ValueError(f"{name}: head dim {D} is not supported; the kernel takes {HEAD_DIMS} (pad the head "
                         f"dimension with zeros up to the next one and pass scale=1/sqrt({D}))")
    if H % Hk:
        raise ValueError(f"{name}: q has {H} heads, k/v {Hk}: the key/value heads must divide the query heads "
                         f"(grouped-query attention; shapes {dims}: {tuple(q.shape)}, {tuple(k.shape)})")
    for t, label in ((qb, "q"), (kb, "k"), (vb, "v")):
        if t.shape[2] > 1 and t.stride(2) >= MAX_ROW_STRIDE:
            raise ValueError(f"{name}: {label}'s rows (sequence positions) are {t.stride(2)} elements apart; the kernel "
                             f"addresses the rows inside a tile in 32 bits and takes strides below {MAX_ROW_STRIDE} "
                             f"(2**31 / 256): pass {label}.contiguous()")
    if scale is not None and not (isinstance(scale, numbers.Real) and not isinstance(scale, (bool, np.bool_))
                                  and math.isfinite(scale) and scale > 0):
        raise ValueError(f"{name}: scale must be a positive finite number or None (1/sqrt(head dim)), got {scale!r}"
                         + (" (a tensor: pass float(scale))" if isinstance(scale, torch.Tensor) else ""))
    if scale is not None and not 1e-30 <= scale <= 1e30:
        raise ValueError(f"{name}: scale={scale!r} is outside 1e-30 .. 1e30: the kernel multiplies the scores by "
                         f"scale * log2(e) in float32, where it would round to 0 or overflow")
    return B, H, Hk, Sq, Sk, D


def attention(q, k, v, causal: bool = False, scale: float | None = None, layout: str = "bhsd",
              return_lse: bool = False, config: AttentionConfig | None = None):
    """Fused attention forward: ``softmax(q @ k^T * scale) @ v`` per batch and head (module docstring).

    ``q`` ``(B, H, S_q, D)``, ``k``/``v`` ``(B, H_kv, S_k, D)`` (or ``(B, S, H, D)`` with
    ``layout="bshd"``), one dtype (float16, bfloat16, float32), head dim in ``HEAD_DIMS``, ``H_kv``
    dividing ``H``, head dimension contiguous. ``scale`` defaults to ``1/sqrt(D)``; ``causal``: query
    ``i`` sees keys ``j <= i``. Returns ``O`` (``q``'s shape, layout and dtype; float32 accumulation),
    and with ``return_lse`` also ``lse`` ``(B, H, S_q)`` float32, natural log. Raises ``TypeError``/
    ``ValueError`` (see :func:`check_attention`, :func:`check_config`) for what it cannot take."""
    name = "attention"
    B, H, Hk, Sq, Sk, D = check_attention(name, q, k, v, layout, scale)
    check_flags(name, causal=causal, return_lse=return_lse)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        raise ValueError(f"{name}: q, k or v requires grad, and this function has no backward pass (its output "
                         f"would silently carry no gradient): use flash_attention(...) to train, or call it "
                         f"under torch.no_grad()")
    cfg = check_config(default_config(D, Sq, q.dtype) if config is None else config, name)
    if cfg.warp_specialize and (causal or cfg.num_stages > 2):
        raise ValueError(f"{name}: config.warp_specialize runs only without causal masking and with num_stages <= 2 "
                         f"(got causal={causal}, num_stages={cfg.num_stages}): compiled by Triton 3.6 on an H200, "
                         f"the warp-specialized loop gave wrong answers there (tests/test_attention.py::"
                         f"test_warp_specialized_at_size); kernels.attention_gluon.attention_fa3 is the "
                         f"warp-specialized kernel that is right")
    if world_mismatch(attention_fwd_kernel):
        raise RuntimeError(world_mismatch(attention_fwd_kernel))
    grid = (triton.cdiv(Sq, cfg.block_m), B * H)
    check_grid(name, grid)
    o = torch.empty_like(q, memory_format=torch.contiguous_format)
    lse = torch.empty((B, H, Sq), dtype=torch.float32, device=q.device) if return_lse else o
    if cfg.tma:
        problem = tma_problem(*(_to_bhsd(t, layout) for t in (q, k, v, o)))
        if problem:
            raise ValueError(f"{name}: config.tma needs 16-byte aligned addresses and strides: {problem}; "
                             f"pass a config with tma=False, or contiguous tensors")
        _ensure_allocator()
    with _too_big(name, cfg, D, q.dtype):
        launch(q, k, v, o, lse, causal, scale, layout, cfg, return_lse)
    return (o, lse) if return_lse else o


@contextlib.contextmanager
def _too_big(name, cfg, D, dtype):
    """Turn Triton's ``OutOfResources`` (the tiles and stages of ``cfg`` need more shared memory or
    registers than the GPU has) into a ``ValueError`` that says which config and what to shrink."""
    try:
        yield
    except triton.runtime.errors.OutOfResources as e:
        raise ValueError(f"{name}: config {cfg.label()} does not fit this GPU at head dim {D}, "
                         f"{str(dtype)[6:]} ({e}); use fewer num_stages or smaller block_n, or the default "
                         f"config (config=None)") from None


def launch(q, k, v, o, lse, causal, scale, layout, cfg: AttentionConfig, store_lse: bool = True):
    """Launch with no checks (``attention`` checks first): ``o`` like ``q``, ``lse`` ``(B, H, S_q)``
    float32. The lean path a CUDA graph captures."""
    qb, kb, vb, ob = (_to_bhsd(t, layout) for t in (q, k, v, o))
    B, H, Sq, D = qb.shape
    Hk, Sk = kb.shape[1], kb.shape[2]
    sm_scale = 1.0 / math.sqrt(D) if scale is None else float(scale)
    grid = (triton.cdiv(Sq, cfg.block_m), B * H)
    return attention_fwd_kernel[grid](
        qb, kb, vb, ob, lse, *qb.stride()[:3], *kb.stride()[:3], *vb.stride()[:3], *ob.stride()[:3],
        H, H // Hk, Sq, Sk, sm_scale * LOG2E,
        HEAD_DIM=D, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, CAUSAL=bool(causal), STORE_LSE=bool(store_lse),
        UPCAST=not ON_GPU, TMA=cfg.tma, WARP_SPECIALIZE=cfg.warp_specialize, EVEN_N=Sk % cfg.block_n == 0,
        OVERLAP=cfg.overlap, LONGEST_FIRST=cfg.longest_first and bool(causal), LONG=long_rows(qb, kb, vb, ob),
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages)


_allocator_set = False


def _ensure_allocator():
    """Device-side tensor descriptors need a little global scratch memory per program; Triton asks for
    it through an allocator registered once (as ``kernels.tma`` does)."""
    global _allocator_set
    if _allocator_set or not ON_GPU:
        return

    def alloc(size: int, alignment: int, stream):
        return torch.empty(size, device="cuda", dtype=torch.int8)

    triton.set_allocator(alloc)
    _allocator_set = True


def causal_tiles(seq_q: int, seq_k: int, block_m: int, block_n: int) -> np.ndarray:
    """What the causal kernel does with each (query tile, key tile) pair: 2 = loaded and used whole,
    1 = loaded and masked (it crosses the diagonal or the end of the keys), 0 = never loaded. The same
    bounds as ``attention_fwd_kernel``'s two loops (``diag`` and ``end``), in NumPy, ``(query tiles, key
    tiles)`` int array."""
    if block_m % block_n:
        raise ValueError(f"causal_tiles: block_m ({block_m}) must be a multiple of block_n ({block_n})")
    rows, cols = -(-seq_q // block_m), -(-seq_k // block_n)
    grid = np.zeros((rows, cols), dtype=np.int64)
    for pm in range(rows):
        diag = min(pm * block_m, (seq_k // block_n) * block_n)
        end = min((pm + 1) * block_m, seq_k)
        for pn in range(cols):
            n0 = pn * block_n
            grid[pm, pn] = 2 if n0 < diag else (1 if n0 < end else 0)
    return grid


# --------------------------------------------------------------------------------------------------
# the backward pass
# --------------------------------------------------------------------------------------------------
# With P = softmax(scale * Q K^T) row by row and O = P V, for an upstream gradient dO:
#   dV = P^T dO,   dP = dO V^T,   dS = P * (dP - delta) with delta_i = sum_d dO_id O_id,
#   dQ = scale * dS K,   dK = scale * dS^T Q.
# No S x S matrix is kept: P is recomputed tile by tile from Q, K and the saved log-sum-exp,
# P_ij = exp(scale * q_i . k_j - lse_i). One kernel computes dK and dV (a program per key tile, looping
# over query tiles and, for grouped-query attention, over the query heads that share the key/value
# head), another dQ (a program per query tile, looping over key tiles): each program adds into its own
# accumulators only, so no atomics are needed.
@triton.jit
def _bwd_delta_kernel(o_ptr, do_ptr, delta_ptr, stride_ob, stride_oh, stride_os, stride_dob, stride_doh,
                      stride_dos, H, S_Q, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, LONG: tl.constexpr = False):
    """delta[b, h, i] = sum_d dO[b, h, i, d] * O[b, h, i, d] (float32)."""
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = (bh // H).to(tl.int64)
    h = (bh % H).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    om = offs_m  # 64-bit row offsets for views of 2**31 elements or more
    if LONG:
        om = offs_m.to(tl.int64)
    offs_d = tl.arange(0, HEAD_DIM)
    rows = offs_m[:, None] < S_Q
    o = tl.load(o_ptr + b * stride_ob + h * stride_oh + om[:, None] * stride_os + offs_d[None, :], mask=rows,
                other=0.0).to(tl.float32)
    do = tl.load(do_ptr + b * stride_dob + h * stride_doh + om[:, None] * stride_dos + offs_d[None, :], mask=rows,
                 other=0.0).to(tl.float32)
    tl.store(delta_ptr + bh.to(tl.int64) * S_Q + offs_m, tl.sum(o * do, 1), mask=offs_m < S_Q)


@triton.jit
def _dot(a, b, UPCAST: tl.constexpr):
    """a @ b with float32 accumulation (float32 operands in Triton's interpreter, where bf16 is wrong)."""
    if UPCAST:
        return tl.dot(a.to(tl.float32), b.to(tl.float32))
    return tl.dot(a, b)


@triton.jit
def attention_bwd_dkdv_kernel(q_ptr, k_ptr, v_ptr, do_ptr, lse_ptr, delta_ptr, dk_ptr, dv_ptr,
                              stride_qb, stride_qh, stride_qs, stride_kb, stride_kh, stride_ks,
                              stride_vb, stride_vh, stride_vs, stride_dob, stride_doh, stride_dos,
                              stride_dkb, stride_dkh, stride_dks, stride_dvb, stride_dvh, stride_dvs,
                              H, H_KV, GROUP, S_Q, S_K, sm_scale,
                              HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                              CAUSAL: tl.constexpr, UPCAST: tl.constexpr, LONG: tl.constexpr = False):
    """One program: ``BLOCK_N`` keys of one (batch, key/value head); dK and dV summed over every query
    tile that sees them and every query head of the group."""
    pid_n = tl.program_id(0)
    bhk = tl.program_id(1)
    b = (bhk // H_KV).to(tl.int64)
    hk = (bhk % H_KV).to(tl.int64)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    on = offs_n
    if LONG:
        on = offs_n.to(tl.int64)
    offs_d = tl.arange(0, HEAD_DIM)
    keys = offs_n[:, None] < S_K
    k = tl.load(k_ptr + b * stride_kb + hk * stride_kh + on[:, None] * stride_ks + offs_d[None, :], mask=keys,
                other=0.0)
    v = tl.load(v_ptr + b * stride_vb + hk * stride_vh + on[:, None] * stride_vs + offs_d[None, :], mask=keys,
                other=0.0)
    dk = tl.zeros((BLOCK_N, HEAD_DIM), dtype=tl.float32)
    dv = tl.zeros((BLOCK_N, HEAD_DIM), dtype=tl.float32)
    qk_scale = sm_scale * 1.4426950408889634
    # causal: query rows before this key tile's first key see none of it
    start = (pid_n * BLOCK_N // BLOCK_M) * BLOCK_M if CAUSAL else 0
    for g in range(GROUP):
        h = hk * GROUP + g
        q_base = q_ptr + b * stride_qb + h * stride_qh
        do_base = do_ptr + b * stride_dob + h * stride_doh
        row_base = (b * H + h) * S_Q
        for m0 in range(start, S_Q, BLOCK_M):
            offs_m = m0 + tl.arange(0, BLOCK_M)
            om = offs_m  # 64-bit row offsets for views of 2**31 elements or more
            if LONG:
                om = offs_m.to(tl.int64)
            rows = offs_m[:, None] < S_Q
            q = tl.load(q_base + om[:, None] * stride_qs + offs_d[None, :], mask=rows, other=0.0)
            do = tl.load(do_base + om[:, None] * stride_dos + offs_d[None, :], mask=rows, other=0.0)
            lse2 = tl.load(lse_ptr + row_base + offs_m, mask=offs_m < S_Q, other=0.0) * 1.4426950408889634
            delta = tl.load(delta_ptr + row_base + offs_m, mask=offs_m < S_Q, other=0.0)
            # P^T for this (key tile, query tile): (BLOCK_N, BLOCK_M)
            st = _dot(k, tl.trans(q), UPCAST)
            pt = tl.math.exp2(st * qk_scale - lse2[None, :])
            keep = (offs_n[:, None] < S_K) & (offs_m[None, :] < S_Q)
            if CAUSAL:
                keep = keep & (offs_n[:, None] <= offs_m[None, :])
            pt = tl.where(keep, pt, 0.0)
            dv += _dot(pt.to(do.dtype), do, UPCAST)
            dpt = _dot(v, tl.trans(do), UPCAST)  # (dO V^T)^T
            dst = pt * (dpt - delta[None, :])
            dk += _dot(dst.to(q.dtype), q, UPCAST)
    out = offs_n[:, None] < S_K
    tl.store(dk_ptr + b * stride_dkb + hk * stride_dkh + on[:, None] * stride_dks + offs_d[None, :],
             (dk * sm_scale).to(dk_ptr.dtype.element_ty), mask=out)
    tl.store(dv_ptr + b * stride_dvb + hk * stride_dvh + on[:, None] * stride_dvs + offs_d[None, :],
             dv.to(dv_ptr.dtype.element_ty), mask=out)


@triton.jit
def attention_bwd_dq_kernel(q_ptr, k_ptr, v_ptr, do_ptr, lse_ptr, delta_ptr, dq_ptr,
                            stride_qb, stride_qh, stride_qs, stride_kb, stride_kh, stride_ks,
                            stride_vb, stride_vh, stride_vs, stride_dob, stride_doh, stride_dos,
                            stride_dqb, stride_dqh, stride_dqs,
                            H, GROUP, S_Q, S_K, sm_scale,
                            HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                            CAUSAL: tl.constexpr, UPCAST: tl.constexpr, LONG: tl.constexpr = False):
    """One program: ``BLOCK_M`` query rows of one (batch, head); dQ summed over the key tiles they see."""
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    b = (bh // H).to(tl.int64)
    h = bh % H
    hk = (h // GROUP).to(tl.int64)
    h = h.to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    om = offs_m  # 64-bit row offsets for views of 2**31 elements or more
    if LONG:
        om = offs_m.to(tl.int64)
    offs_d = tl.arange(0, HEAD_DIM)
    rows = offs_m[:, None] < S_Q
    q = tl.load(q_ptr + b * stride_qb + h * stride_qh + om[:, None] * stride_qs + offs_d[None, :], mask=rows,
                other=0.0)
    do = tl.load(do_ptr + b * stride_dob + h * stride_doh + om[:, None] * stride_dos + offs_d[None, :], mask=rows,
                 other=0.0)
    row_base = bh.to(tl.int64) * S_Q
    lse2 = tl.load(lse_ptr + row_base + offs_m, mask=offs_m < S_Q, other=0.0) * 1.4426950408889634
    delta = tl.load(delta_ptr + row_base + offs_m, mask=offs_m < S_Q, other=0.0)
    qk_scale = sm_scale * 1.4426950408889634
    k_base = k_ptr + b * stride_kb + hk * stride_kh
    v_base = v_ptr + b * stride_vb + hk * stride_vh
    dq = tl.zeros((BLOCK_M, HEAD_DIM), dtype=tl.float32)
    end = tl.minimum((pid_m + 1) * BLOCK_M, S_K) if CAUSAL else S_K
    for n0 in range(0, end, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        on = offs_n
        if LONG:
            on = offs_n.to(tl.int64)
        keys = offs_n[:, None] < S_K
        k = tl.load(k_base + on[:, None] * stride_ks + offs_d[None, :], mask=keys, other=0.0)
        v = tl.load(v_base + on[:, None] * stride_vs + offs_d[None, :], mask=keys, other=0.0)
        p = tl.math.exp2(_dot(q, tl.trans(k), UPCAST) * qk_scale - lse2[:, None])
        keep = (offs_n[None, :] < S_K) & (offs_m[:, None] < S_Q)
        if CAUSAL:
            keep = keep & (offs_n[None, :] <= offs_m[:, None])
        p = tl.where(keep, p, 0.0)
        dp = _dot(do, tl.trans(v), UPCAST)
        ds = p * (dp - delta[:, None])
        dq += _dot(ds.to(k.dtype), k, UPCAST)
    tl.store(dq_ptr + b * stride_dqb + h * stride_dqh + om[:, None] * stride_dqs + offs_d[None, :],
             (dq * sm_scale).to(dq_ptr.dtype.element_ty), mask=rows)


def default_bwd_config(head_dim: int, dtype=torch.bfloat16, on_gpu: bool | None = None) -> AttentionConfig:
    """Tiles of the backward kernels (each program holds more tiles than the forward's: smaller ones)."""
    on_gpu = ON_GPU if on_gpu is None else on_gpu
    if not on_gpu:
        return AttentionConfig(16, 16, 4, 1)
    if dtype == torch.float32 or head_dim > 64:
        return AttentionConfig(64, 32, 4, 2)
    return AttentionConfig(64, 64, 4, 2)


def attention_backward(do, q, k, v, o, lse, causal: bool = False, scale: float | None = None,
                       layout: str = "bhsd", config: AttentionConfig | None = None):
    """Gradients ``(dq, dk, dv)`` of :func:`attention`'s output for the upstream gradient ``do`` (shaped
    like ``o``), from the forward's ``o`` and ``lse``; shapes, layouts and dtypes as the inputs (for
    grouped-query attention, ``dk`` and ``dv`` add the contributions of every query head of a group).
    float32 accumulation. ``config``: ``block_m``/``block_n`` (``num_stages``, ``num_warps``) of both
    kernels (``default_bwd_config``). Raises as :func:`attention` for bad operands, and ``ValueError``
    for ``do``/``o``/``lse`` of the wrong shape."""
    name = "attention_backward"
    B, H, Hk, Sq, Sk, D = check_attention(name, q, k, v, layout, scale)
    check_flags(name, causal=causal)
    for t, label in ((do, "do"), (o, "o")):
        _check_tensor(t, label, name)
        if tuple(t.shape) != tuple(q.shape) or t.dtype != q.dtype:
            raise ValueError(f"{name}: {label} must have q's shape {tuple(q.shape)} and dtype {q.dtype}, got "
                             f"{tuple(t.shape)} {t.dtype}")
    if not isinstance(lse, torch.Tensor) or tuple(lse.shape) != (B, H, Sq) or lse.dtype != torch.float32 \
            or lse.device != q.device:
        raise ValueError(f"{name}: lse must be the forward's float32 (B, H, S_q) = {(B, H, Sq)} log-sum-exp on "
                         f"{q.device}, got {getattr(lse, 'shape', type(lse))} {getattr(lse, 'dtype', '')}")
    cfg = check_config(default_bwd_config(D, q.dtype) if config is None else config, name)
    if cfg.tma or cfg.warp_specialize or cfg.overlap or cfg.longest_first:
        raise ValueError(f"{name}: the backward kernels use pointer loads and one plain loop: config.tma, "
                         f"warp_specialize, overlap and longest_first are forward options, got {cfg.label()}")
    for fn in (attention_bwd_dkdv_kernel, attention_bwd_dq_kernel, _bwd_delta_kernel):
        if world_mismatch(fn):
            raise RuntimeError(world_mismatch(fn))
    lse = lse.contiguous()
    qb, kb, vb, ob, dob = (_to_bhsd(t, layout) for t in (q, k, v, o, do))
    dq, dk, dv = (torch.empty_like(t, memory_format=torch.contiguous_format) for t in (q, k, v))
    dqb, dkb, dvb = (_to_bhsd(t, layout) for t in (dq, dk, dv))
    sm_scale = 1.0 / math.sqrt(D) if scale is None else float(scale)
    delta = torch.empty((B, H, Sq), dtype=torch.float32, device=q.device)
    grid_q = (triton.cdiv(Sq, cfg.block_m), B * H)
    grid_k = (triton.cdiv(Sk, cfg.block_n), B * Hk)
    check_grid(name, grid_q)
    check_grid(name, grid_k)
    for t, label in ((dob, "do"), (ob, "o")):
        if t.shape[2] > 1 and t.stride(2) >= MAX_ROW_STRIDE:
            raise ValueError(f"{name}: {label}'s rows are {t.stride(2)} elements apart; the kernels take strides below "
                             f"{MAX_ROW_STRIDE}: pass {label}.contiguous()")
    long = long_rows(qb, kb, vb, ob, dob, dqb, dkb, dvb)
    with _too_big(name, cfg, D, q.dtype):
        _bwd_delta_kernel[grid_q](ob, dob, delta, *ob.stride()[:3], *dob.stride()[:3], H, Sq, HEAD_DIM=D,
                                  BLOCK_M=cfg.block_m, LONG=long)
        common = dict(HEAD_DIM=D, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, CAUSAL=bool(causal), UPCAST=not ON_GPU,
                      LONG=long, num_warps=cfg.num_warps, num_stages=cfg.num_stages)
        attention_bwd_dkdv_kernel[grid_k](qb, kb, vb, dob, lse, delta, dkb, dvb, *qb.stride()[:3], *kb.stride()[:3],
                                          *vb.stride()[:3], *dob.stride()[:3], *dkb.stride()[:3], *dvb.stride()[:3],
                                          H, Hk, H // Hk, Sq, Sk, sm_scale, **common)
        attention_bwd_dq_kernel[grid_q](qb, kb, vb, dob, lse, delta, dqb, *qb.stride()[:3], *kb.stride()[:3],
                                        *vb.stride()[:3], *dob.stride()[:3], *dqb.stride()[:3],
                                        H, H // Hk, Sq, Sk, sm_scale, **common)
    return dq, dk, dv


class FlashAttention(torch.autograd.Function):
    """:func:`attention` with a backward pass (:func:`attention_backward`), so the kernel trains:
    ``FlashAttention.apply(q, k, v, causal=False, scale=None, layout="bhsd")`` or :func:`flash_attention`."""

    @staticmethod
    def forward(ctx, q, k, v, causal=False, scale=None, layout="bhsd"):
        o, lse = attention(q, k, v, causal=causal, scale=scale, layout=layout, return_lse=True)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.args = (causal, scale, layout)
        return o

    @staticmethod
    @torch.autograd.function.once_differentiable  # the backward kernels have no backward of their own
    def backward(ctx, do):
        q, k, v, o, lse = ctx.saved_tensors
        causal, scale, layout = ctx.args
        dq, dk, dv = attention_backward(do.contiguous() if do.stride(-1) != 1 else do, q, k, v, o, lse,
                                        causal=causal, scale=scale, layout=layout)
        return dq, dk, dv, None, None, None


def flash_attention(q, k, v, causal: bool = False, scale: float | None = None, layout: str = "bhsd"):
    """Differentiable fused attention: as :func:`attention`, and ``.backward()`` runs the course's
    backward kernels."""
    return FlashAttention.apply(q, k, v, causal, scale, layout)


# --------------------------------------------------------------------------------------------------
# counting
# --------------------------------------------------------------------------------------------------
def attention_flops(B: int, H: int, S_q: int, S_k: int, D: int, causal: bool = False) -> float:
    """Floating-point operations of the forward pass: two matmuls (``Q K^T`` and ``P V``) of
    ``2 * S_q * S_k * D`` each per head, halved when causal (the convention of FlashAttention's and
    Triton's benchmarks: ``4 * B * H * S^2 * D``, ``/ 2`` causal; the softmax's exponentials are not
    counted)."""
    f = 4.0 * B * H * S_q * S_k * D
    return f / 2 if causal else f


def naive_attention_bytes(B: int, H: int, S_q: int, S_k: int, D: int, elem: int = 2, score_elem: int = 4) -> dict:
    """Bytes the three-line attention moves through memory (each step reads its inputs and writes its
    output once): ``Q``, ``K``, ``V``, ``O`` of ``elem`` bytes and the ``S_q x S_k`` scores and
    probabilities of ``score_elem`` bytes, per step. ``{"scores": bytes of one score matrix (all
    heads), "total": bytes moved, "fused": what a fused kernel moves (Q, K, V read once, O written)}``."""
    qkvo = elem * B * H * (2 * S_q * D + 2 * S_k * D)
    scores = score_elem * B * H * S_q * S_k
    # S = Q K^T writes S; softmax reads S and writes P; O = P V reads P: four passes over a score matrix
    return {"scores": float(scores), "total": float(qkvo + 4 * scores), "fused": float(qkvo)}
