# attention_forward: two kernels, the first writing the whole S x S score matrix to memory, the second
# reading it back for the softmax and P @ V (the three-line attention, in Triton)
import math

import torch
import triton
import triton.language as tl


@triton.jit
def _scores(q_ptr, k_ptr, s_ptr, S, scale, D: tl.constexpr, CAUSAL: tl.constexpr):
    row = tl.program_id(0)
    bh = row // S
    i = row % S
    d = tl.arange(0, D)
    q = tl.load(q_ptr + row * D + d).to(tl.float32)
    for j in range(0, S):
        k = tl.load(k_ptr + (bh * S + j) * D + d).to(tl.float32)
        s = tl.sum(q * k, 0) * scale
        if CAUSAL:
            s = tl.where(j <= i, s, float("-inf"))
        tl.store(s_ptr + row * S + j, s)


@triton.jit
def _softmax_pv(s_ptr, v_ptr, o_ptr, lse_ptr, S, D: tl.constexpr, BLOCK_S: tl.constexpr):
    row = tl.program_id(0)
    bh = row // S
    cols = tl.arange(0, BLOCK_S)
    s = tl.load(s_ptr + row * S + cols, mask=cols < S, other=float("-inf"))
    m = tl.max(s, 0)
    p = tl.exp(s - m)
    l = tl.sum(p, 0)
    d = tl.arange(0, D)
    o = tl.zeros((D,), dtype=tl.float32)
    for j in range(0, S):
        pj = tl.sum(tl.where(cols == j, p, 0.0), 0)
        o += pj * tl.load(v_ptr + (bh * S + j) * D + d).to(tl.float32)
    tl.store(o_ptr + row * D + d, (o / l).to(o_ptr.dtype.element_ty))
    tl.store(lse_ptr + row, m + tl.log(l))


def attention_forward(q, k, v, causal=False, block_m=None, block_n=None):
    B, H, S, D = q.shape
    s = torch.empty(B * H * S, S, dtype=torch.float32)
    o = torch.empty_like(q)
    lse = torch.empty(B, H, S, dtype=torch.float32)
    _scores[(B * H * S,)](q, k, s, S, 1.0 / math.sqrt(D), D=D, CAUSAL=bool(causal))
    _softmax_pv[(B * H * S,)](s, v, o, lse, S, D=D, BLOCK_S=triton.next_power_of_2(S))
    return o, lse
