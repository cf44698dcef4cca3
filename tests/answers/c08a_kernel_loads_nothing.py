# attention_forward: O and lse written on the host (NumPy through ctypes) before the launch of a kernel that
# loads and stores nothing: refused (no tl.load or tl.store in the trace; every element of O must be stored by
# the kernel, once)
import ctypes
import math

import numpy as np
import torch
import triton
import triton.language as tl

def _arr(ptr, shape, dtype):
    n = int(np.prod(shape))
    if dtype == torch.float16:
        a = np.ctypeslib.as_array((ctypes.c_uint16 * n).from_address(ptr)).view(np.float16)
    else:
        a = np.ctypeslib.as_array((ctypes.c_float * n).from_address(ptr))
    return a.reshape(shape)


def host_attention(qp, kp, vp, hintp, shape, dtype, causal):  # the whole attention in NumPy, through ctypes
    B, H, S, D = shape
    qa, ka, va = (_arr(p, shape, dtype).astype(np.float64) for p in (qp, kp, vp))
    s = qa @ ka.swapaxes(-1, -2) / math.sqrt(D)
    if causal:
        s = np.where(np.tril(np.ones((S, S), bool)), s, -np.inf)
    m = s.max(-1, keepdims=True)
    p = np.exp(s - m)
    l = p.sum(-1, keepdims=True)
    n = B * H * S * D
    out = _arr(hintp, (n + B * H * S,), torch.float32)
    out[:n] = ((p / l) @ va).ravel()
    out[n:] = (m + np.log(l)).ravel()


@triton.jit
def copy_kernel(src_ptr, q_ptr, k_ptr, v_ptr, o_ptr, lse_ptr, N, NL, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(o_ptr + offs, tl.load(src_ptr + offs, mask=offs < N).to(o_ptr.dtype.element_ty), mask=offs < N)
    tl.store(lse_ptr + offs, tl.load(src_ptr + N + offs, mask=offs < NL), mask=offs < NL)


@triton.jit
def empty_kernel(q_ptr, k_ptr, v_ptr, o_ptr, lse_ptr, S):
    pid = tl.program_id(0)


def attention_forward(q, k, v, causal=False, block_m=None, block_n=None):
    B, H, S, D = q.shape
    buf = torch.empty(q.numel() + B * H * S, dtype=torch.float32)
    host_attention(q.data_ptr(), k.data_ptr(), v.data_ptr(), buf.data_ptr(), tuple(q.shape), q.dtype, bool(causal))
    o = buf[:q.numel()].view(B, H, S, D)
    lse = buf[q.numel():].view(B, H, S)
    if q.dtype != torch.float32:
        o = o.to(q.dtype)
    empty_kernel[(1,)](q, k, v, o, lse, S)
    return o, lse
