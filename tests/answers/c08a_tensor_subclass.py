# attention_forward (from an adversarial test): the attention computed on the host (NumPy through ctypes), redone
# during the replay by a torch.Tensor subclass passed as a kernel argument (its __torch_function__ runs whenever
# the grader or Triton touches it); a trivial kernel copies the result: refused, tensor arguments are plain tensors
import ctypes
import math

import numpy as np
import torch
import triton
import triton.language as tl
from torch._C import DisableTorchFunctionSubclass

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


class Hint(torch.Tensor):
    job = None

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") == "untyped_storage" and cls.job is not None:
            host_attention(*cls.job)
        with DisableTorchFunctionSubclass():
            return func(*args, **(kwargs or {}))


def attention_forward(q, k, v, causal=False, block_m=None, block_n=None):
    B, H, S, D = q.shape
    o = torch.empty_like(q)
    lse = torch.empty(B, H, S, dtype=torch.float32, device=q.device)
    base = torch.empty(o.numel() + lse.numel(), dtype=torch.float32)
    hint = base.as_subclass(Hint)
    Hint.job = (q.data_ptr(), k.data_ptr(), v.data_ptr(), base.data_ptr(), tuple(q.shape), q.dtype, bool(causal))
    copy_kernel[((o.numel() + 255) // 256,)](hint, q, k, v, o, lse, o.numel(), lse.numel(), BLOCK=256)
    return o, lse
