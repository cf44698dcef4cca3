"""Chapter 01: the naive Triton matmul, one program per output element.

Program ``(m, n)`` computes the single number ``C[m, n]``: it walks along row ``m`` of ``A`` and
column ``n`` of ``B`` in chunks of ``BLOCK_K`` and sums the products. Every program reads ``2*K``
numbers to produce one, so the kernel moves ``2*M*N*K`` elements for ``2*M*N*K`` flops: an arithmetic
intensity of about one flop per element loaded, far below what the tensor cores need.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._jit import check_matmul_inputs, check_out


@triton.jit
def naive_matmul_kernel(
    a_ptr, b_ptr, c_ptr,
    M, N, K,
    stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
    BLOCK_K: tl.constexpr,
):
    m = tl.program_id(0)  # which row of C
    n = tl.program_id(1)  # which column of C
    acc = tl.zeros((BLOCK_K,), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        in_k = ks < K
        a = tl.load(a_ptr + m * stride_am + ks * stride_ak, mask=in_k, other=0.0)
        b = tl.load(b_ptr + ks * stride_bk + n * stride_bn, mask=in_k, other=0.0)
        acc += a.to(tl.float32) * b.to(tl.float32)
    tl.store(c_ptr + m * stride_cm + n * stride_cn, tl.sum(acc, axis=0).to(c_ptr.dtype.element_ty))


def naive_matmul(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None,
                 block_k: int = 64) -> torch.Tensor:
    """``a @ b`` with one Triton program per output element (slow on purpose: chapter 01)."""
    check_matmul_inputs(a, b, "naive_matmul")
    if block_k < 1 or block_k & (block_k - 1):
        raise ValueError(f"naive_matmul: block_k must be a power of two, got {block_k}")
    M, K = a.shape
    N = b.shape[1]
    check_out(out, (M, N), a.dtype, a.device, "naive_matmul")
    if M > 65535 or N > 65535:
        raise ValueError(f"naive_matmul: the grid is (M, N) and CUDA allows at most 65535 in y; got {M}x{N}")
    c = out if out is not None else torch.empty((M, N), dtype=a.dtype, device=a.device)
    naive_matmul_kernel[(M, N)](
        a, b, c, M, N, K,
        a.stride(0), a.stride(1), b.stride(0), b.stride(1), c.stride(0), c.stride(1),
        BLOCK_K=block_k,
    )
    return c
