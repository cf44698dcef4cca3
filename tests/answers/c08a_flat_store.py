# attention_forward: a correct kernel that flattens its O tile to one dimension for the store: full marks
import kernels
import math
import torch
import triton
import triton.language as tl

@triton.jit
def attention_fwd_kernel(q_ptr, k_ptr, v_ptr, o_ptr, lse_ptr, S, qk_scale, HEAD_DIM: tl.constexpr,
                         BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr):
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    head = bh.to(tl.int64) * S * HEAD_DIM
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    q = tl.load(q_ptr + head + offs_m[:, None] * HEAD_DIM + offs_d[None, :], mask=offs_m[:, None] < S, other=0.0)
    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, HEAD_DIM), dtype=tl.float32)
    end = S
    if CAUSAL:
        end = tl.minimum((pid_m + 1) * BLOCK_M, S)
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
    ptrs = tl.reshape(o_ptr + head + offs_m[:, None] * HEAD_DIM + offs_d[None, :], (BLOCK_M * HEAD_DIM,))
    rows_ok = tl.reshape(tl.broadcast_to(offs_m[:, None] < S, (BLOCK_M, HEAD_DIM)), (BLOCK_M * HEAD_DIM,))
    tl.store(ptrs, tl.reshape(o, (BLOCK_M * HEAD_DIM,)).to(o_ptr.dtype.element_ty), mask=rows_ok)
    tl.store(lse_ptr + bh.to(tl.int64) * S + offs_m, (m_i + tl.math.log2(l_i)) * 0.6931471805599453, mask=offs_m < S)


BLOCKS = kernels.pick(cpu=(16, 16), gpu=(64, 32))


def attention_forward(q, k, v, causal=False, block_m=None, block_n=None):
    B, H, S, D = q.shape
    block_m = BLOCKS[0] if block_m is None else block_m
    block_n = BLOCKS[1] if block_n is None else block_n
    o = torch.full_like(q, float("nan"))
    lse = torch.full((B, H, S), float("nan"), dtype=torch.float32, device=q.device)
    grid = (triton.cdiv(S, block_m), B * H)
    attention_fwd_kernel[grid](q, k, v, o, lse, S, 1.4426950408889634 / math.sqrt(D), HEAD_DIM=D, BLOCK_M=block_m,
                               BLOCK_N=block_n, CAUSAL=bool(causal))
    return o, lse
