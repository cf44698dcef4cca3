# attention_forward (from an adversarial test): a correct persistent-style kernel, two tiles of queries per program (each key loaded once per tile): full marks
import kernels  # before triton: it decides GPU or interpreter (as in the cell above)
import math

import torch
import triton
import triton.language as tl

from kernels.attention import attention_reference  # the three lines, in float64: a reference to compare with
from kernels.operands import check_grid

def online_softmax_update(m, l, acc, scores, values):
    # m (R,) running maximum, l (R,) running sum of exp(score - m), acc (R, D) running sum of exp(score - m) * value;
    # scores (R, T) one tile (-inf where masked), values (T, D). Returns the new (m, l, acc).
    for label, t in (("m", m), ("l", l), ("acc", acc), ("scores", scores), ("values", values)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"online_softmax_update: {label} must be a torch.Tensor, got {type(t).__name__}")
    if scores.dim() != 2 or values.dim() != 2 or scores.shape[1] != values.shape[0]:
        raise ValueError(f"online_softmax_update: scores (R, T) and values (T, D) must agree, got "
                         f"{tuple(scores.shape)} and {tuple(values.shape)}")
    R, D = scores.shape[0], values.shape[1]
    if tuple(m.shape) != (R,) or tuple(l.shape) != (R,) or tuple(acc.shape) != (R, D):
        raise ValueError(f"online_softmax_update: m and l must be ({R},) and acc ({R}, {D}), got "
                         f"{tuple(m.shape)}, {tuple(l.shape)}, {tuple(acc.shape)}")
    ### BEGIN SOLUTION
    m_new = torch.maximum(m, scores.max(dim=1).values)
    # a row that has seen only -inf keeps m = -inf: shift it by 0, since -inf - (-inf) is NaN
    shift = torch.where(torch.isneginf(m_new), torch.zeros_like(m_new), m_new)
    p = torch.exp(scores - shift[:, None])
    alpha = torch.exp(m - shift)  # 1 if the maximum did not move, 0 on a row's first scores
    return m_new, l * alpha + p.sum(dim=1), acc * alpha[:, None] + p @ values
    ### END SOLUTION

@triton.jit
def attention_fwd_kernel(
    q_ptr, k_ptr, v_ptr, o_ptr, lse_ptr,
    S, qk_scale,
    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr,
):
    bh = tl.program_id(1)
    head = bh.to(tl.int64) * S * HEAD_DIM
    offs_d = tl.arange(0, HEAD_DIM)
    for t in range(0, 2):  # each program takes two tiles of queries: a (correct) persistent-style schedule
        pid_m = tl.program_id(0) * 2 + t
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        q = tl.load(q_ptr + head + offs_m[:, None] * HEAD_DIM + offs_d[None, :], mask=offs_m[:, None] < S, other=0.0)
        m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
        l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
        acc = tl.zeros((BLOCK_M, HEAD_DIM), dtype=tl.float32)
        if CAUSAL:
            end = tl.minimum((pid_m + 1) * BLOCK_M, S)
        else:
            end = S
        end = tl.where(pid_m * BLOCK_M < S, end, 0)  # a tile wholly past S has no rows: no keys to visit
        for n0 in range(0, end, BLOCK_N):
            offs_n = n0 + tl.arange(0, BLOCK_N)
            kv = head + offs_n[:, None] * HEAD_DIM + offs_d[None, :]
            k = tl.load(k_ptr + kv, mask=offs_n[:, None] < S, other=0.0)
            v = tl.load(v_ptr + kv, mask=offs_n[:, None] < S, other=0.0)
            keep = offs_n[None, :] < S
            if CAUSAL:
                keep = keep & (offs_n[None, :] <= offs_m[:, None])
            s = tl.where(keep, tl.dot(q, tl.trans(k)) * qk_scale, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 1))
            p = tl.math.exp2(s - m_new[:, None])
            alpha = tl.math.exp2(m_i - m_new)
            l_i = l_i * alpha + tl.sum(p, 1)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
            m_i = m_new
        o = acc / l_i[:, None]
        tl.store(o_ptr + head + offs_m[:, None] * HEAD_DIM + offs_d[None, :], o.to(o_ptr.dtype.element_ty),
                 mask=offs_m[:, None] < S)
        tl.store(lse_ptr + bh.to(tl.int64) * S + offs_m, (m_i + tl.math.log2(l_i)) * 0.6931471805599453, mask=offs_m < S)


BLOCKS = kernels.pick(cpu=(16, 16), gpu=(64, 32))  # (BLOCK_M, BLOCK_N)
LOG2E = 1.4426950408889634  # log2(e)


def attention_forward(q, k, v, causal=False, block_m=None, block_n=None):
    # O = softmax(q @ k^T / sqrt(D)) @ v per (batch, head), and lse = log(sum_j exp(q_i . k_j / sqrt(D))) per row.
    # q, k, v: contiguous (B, H, S, D), float32 or float16. Returns O (B, H, S, D) in q's dtype, lse (B, H, S) float32.
    name = "attention_forward"
    problem = kernels.world_mismatch(attention_fwd_kernel)
    if problem:
        raise RuntimeError(f"{name}: {problem}")
    for label, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: {label} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in (torch.float32, torch.float16):
            raise TypeError(f"{name}: {label} has dtype {t.dtype}; this kernel takes float32 or float16")
        if t.dim() != 4 or t.numel() == 0 or not t.is_contiguous():
            raise ValueError(f"{name}: {label} must be a non-empty contiguous (B, H, S, D) tensor, got shape "
                             f"{tuple(t.shape)}, strides {t.stride()}")
        if t.device.type != torch.device(kernels.DEVICE).type:
            raise ValueError(f"{name}: {label} is on {t.device}; move it with .to(kernels.DEVICE)")
    if not (q.shape == k.shape == v.shape) or not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"{name}: q, k and v must share a shape and a dtype, got {tuple(q.shape)} {q.dtype}, "
                         f"{tuple(k.shape)} {k.dtype}, {tuple(v.shape)} {v.dtype}")
    B, H, S, D = q.shape
    if D not in (16, 32, 64, 128):
        raise ValueError(f"{name}: head dim {D} is not 16, 32, 64 or 128")
    block_m = BLOCKS[0] if block_m is None else block_m
    block_n = BLOCKS[1] if block_n is None else block_n
    for label, b in (("block_m", block_m), ("block_n", block_n)):
        if not (isinstance(b, int) and 16 <= b <= 256 and b & (b - 1) == 0):
            raise ValueError(f"{name}: {label}={b!r} must be a power of two from 16 to 256")
    # inside larger buffers: a store past the end (a missing mask) lands in their margin, not in other memory
    o = torch.full(((B * H * S + block_m) * D,), float("nan"), dtype=q.dtype, device=q.device)[:B * H * S * D]
    lse = torch.full((B * H * S + block_m,), float("nan"), dtype=torch.float32, device=q.device)[:B * H * S]
    o, lse = o.view(B, H, S, D), lse.view(B, H, S)
    grid = (triton.cdiv(triton.cdiv(S, block_m), 2), B * H)
    check_grid(name, grid)
    attention_fwd_kernel[grid](q, k, v, o, lse, S, LOG2E / math.sqrt(D),
                               HEAD_DIM=D, BLOCK_M=block_m, BLOCK_N=block_n, CAUSAL=bool(causal))
    return o, lse